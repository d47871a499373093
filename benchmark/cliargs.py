"""Parsing of the command line's list and key=value arguments (shared by every sub-command)."""
from __future__ import annotations

import json
from typing import Any

from .errors import ConfigError


def parse_csv(text: str | None) -> list[str]:
    return [t.strip() for t in (text or "").split(",") if t.strip()]


def parse_seeds(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in parse_csv(text)]
    except ValueError:
        raise ConfigError(f"--seeds: expected comma-separated integers, got '{text}'") from None
    if not seeds:
        raise ConfigError("--seeds: no seed given")
    return seeds


def parse_kv(text: str | None, flag: str) -> dict[str, Any]:
    """``a=1,b=x`` -> {"a": 1, "b": "x"} (values parsed as JSON when they are JSON)."""
    out: dict[str, Any] = {}
    for item in parse_csv(text):
        k, sep, v = item.partition("=")
        if not sep or not k:
            raise ConfigError(f"{flag}: expected key=value, got '{item}'")
        try:
            out[k.strip()] = json.loads(v)
        except json.JSONDecodeError:
            out[k.strip()] = v
    return out
