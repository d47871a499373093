"""The dataset registry: name -> loader ``(data_root, options, quick, seed) -> AVDataset``.

Each registration carries metadata shown by ``list datasets``: the tasks it supports,
the expected on-disk layout, licence and citation, and whether ``--data-root`` is needed.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..registry import Registry
from .base import AVDataset

DatasetLoader = Callable[..., AVDataset]

DATASETS: Registry[DatasetLoader] = Registry("dataset")


def register_dataset(name: str, *, tasks: tuple[str, ...], layout: str, licence: str, citation: str,
                     needs_data_root: bool, description: str, homepage: str = "",
                     options: dict[str, str] | None = None) -> Callable[[DatasetLoader], DatasetLoader]:
    return DATASETS.register(name, tasks=list(tasks), layout=layout, licence=licence, citation=citation,
                             needs_data_root=needs_data_root, description=description, homepage=homepage,
                             options=dict(options or {}))


def load_dataset(name: str, *, data_root: str | Path | None = None, options: dict[str, Any] | None = None,
                 quick: bool = False, seed: int = 0) -> AVDataset:
    """Build dataset ``name``; ``options`` are dataset-specific ``key=value`` settings.

    ``data_root`` defaults to ``$AVCL_DATA_ROOT`` when that is set.
    """
    loader = DATASETS.get(name)
    meta = DATASETS.meta(name)
    if data_root is None and os.environ.get("AVCL_DATA_ROOT"):
        data_root = os.environ["AVCL_DATA_ROOT"]
    if meta["needs_data_root"] and data_root is None:
        raise ConfigError(f"dataset '{name}' needs --data-root DIR (expected layout: {meta['layout']})")
    known = set(meta["options"])
    for key in options or {}:
        if key not in known:
            raise ConfigError(f"dataset '{name}' has no option '{key}' (options: {', '.join(sorted(known)) or 'none'})")
    return loader(data_root=None if data_root is None else Path(data_root), options=dict(options or {}),
                  quick=quick, seed=seed)
