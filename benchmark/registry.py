"""A small typed registry with metadata filters (in the spirit of ``mteb.get_tasks``).

Models, tasks and datasets each live in one :class:`Registry`; code looks things up
by name instead of branching on names.
"""
from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

from .errors import UnknownNameError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to objects (classes or factories) plus free-form metadata."""

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}
        self._meta: dict[str, dict[str, Any]] = {}

    def register(self, name: str, obj: T | None = None, **meta: Any) -> Callable[[T], T] | T:
        """Register ``obj`` under ``name``; usable as a decorator when ``obj`` is omitted."""

        def _add(o: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} '{name}' is registered twice")
            self._items[name] = o
            self._meta[name] = dict(meta)
            return o

        return _add if obj is None else _add(obj)

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            known = ", ".join(sorted(self._items)) or "(none)"
            close = difflib.get_close_matches(str(name), list(self._items), n=1, cutoff=0.6)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise UnknownNameError(f"unknown {self.kind} '{name}'{hint} (known: {known})") from None

    def meta(self, name: str) -> dict[str, Any]:
        self.get(name)
        return dict(self._meta[name])

    def names(self, **filters: Any) -> list[str]:
        """Names whose metadata matches every filter (a list-valued field matches if it contains the value)."""
        out = []
        for name, meta in self._meta.items():
            ok = True
            for key, want in filters.items():
                have = meta.get(key)
                if isinstance(have, (list, tuple, set, frozenset)):
                    ok = want in have
                else:
                    ok = have == want
                if not ok:
                    break
            if ok:
                out.append(name)
        return out

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)
