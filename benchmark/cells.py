"""Cells: the unit of work of a run, and what a cell keeps in the cache between runs.

A *cell* is one (model, dataset, seed): the model is built and trained once, then every
requested task runs on it. Its key (:func:`cell_key`) hashes the same parts as the result
records' keys except the task's: the model's name, arguments and code hash, the dataset's
fingerprint, code and options, the size (``quick``), the seed and the runtime (threads,
device kind). So a second task on a finished cell, a rerun with other task options or a
resumed run finds the cell's

* **checkpoint** (:func:`save_checkpoint` / :func:`load_checkpoint`):
  ``cache_dir()/checkpoints/<cellkey>.pt``, a ``torch.save`` of ``{"state_dict", "fit_report",
  "config"}`` (JSON strings for the last two), written atomically and read with
  ``torch.load(weights_only=True)`` into a freshly constructed model (built under the same
  seed). Only ``torch.nn.Module`` models are checkpointed; a model opts out with
  ``checkpointable = False`` (its fitted state then lives outside its ``state_dict``);
* **embeddings** (:class:`EmbeddingCache`): ``cache_dir()/embeddings/<cellkey>/<split>-<which>.npy``,
  the exact arrays :func:`~benchmark.embedding.embed_split` returned (same dtype, same
  bytes), written atomically and read back memory-mapped (copy-on-write, so a task may
  modify its copy). A model opts out with ``cache_embeddings = False``.

Every file is written through :func:`~benchmark.store.atomic_write_bytes`, so a killed run
leaves finished files whole and no torn file behind; an unreadable cache file is ignored
(recomputed and rewritten).
"""
from __future__ import annotations

import io
import json
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from . import codehash
from .paths import cache_dir
from .store import atomic_write_bytes, config_key

__all__ = ["CELL_CACHE_VERSION", "EmbeddingCache", "can_checkpoint", "cell_key", "cell_throughput", "checkpoint_path",
           "is_warm", "load_checkpoint", "mark_cell", "save_checkpoint"]

#: bumped when the layout or content of the cell cache changes
CELL_CACHE_VERSION = 1


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def cell_key(model_id: Mapping[str, Any], dataset: Mapping[str, Any], seed: int, runtime: Mapping[str, Any]) -> str:
    """Key of a (model, dataset, seed) cell: the records' key parts without the task's.

    ``dataset`` holds the fingerprint, code hash, options and ``quick``; ``runtime`` the thread
    count and device kind. The code of the split embedder is part of it too.
    """
    return config_key({"cell_cache": CELL_CACHE_VERSION, "model": dict(model_id), "dataset": dict(dataset),
                       "seed": seed, "runtime": dict(runtime),
                       "embedding_code": codehash.suite_hash(("avcl_bench.benchmark.embedding",))})


# ------------------------------------------------------------------------------ checkpoints
def checkpoint_path(key: str) -> Path:
    return cache_dir() / "checkpoints" / f"{key}.pt"


def can_checkpoint(model: Any) -> bool:
    """A model whose trained state is its ``state_dict``: an ``nn.Module`` not declaring ``checkpointable = False``."""
    return isinstance(model, nn.Module) and bool(getattr(model, "checkpointable", True))


def save_checkpoint(key: str, model: nn.Module, fit_report: Any, config: Any,
                    compute: Mapping[str, Any] | None = None) -> Path:
    """Write the trained ``model``'s weights with its fit report, config and the cost of its
    training (``compute``: training time, peak memory; read back into the records of a rerun)."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    buf = io.BytesIO()
    torch.save({"version": CELL_CACHE_VERSION, "state_dict": state,
                "fit_report": json.dumps(fit_report, sort_keys=True, default=str),
                "config": json.dumps(config, sort_keys=True, default=str),
                "compute": json.dumps(dict(compute or {}), sort_keys=True)}, buf)
    path = checkpoint_path(key)
    atomic_write_bytes(path, buf.getvalue())
    return path


def load_checkpoint(key: str, model: nn.Module, device: str) -> dict[str, Any] | None:
    """Load the checkpoint of cell ``key`` into ``model`` (moved to ``device``): ``{"fit_report",
    "compute"}`` (``compute`` ``None`` for a checkpoint written before it was kept), or ``None``.

    ``None`` when there is none, or when it cannot be read or does not fit the model (then it
    is retrained and overwritten).
    """
    path = checkpoint_path(key)
    if not path.is_file():
        return None
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(ck["state_dict"], strict=True)
        report = json.loads(ck["fit_report"])
        compute = json.loads(ck["compute"]) if "compute" in ck else None
    except Exception as e:  # noqa: BLE001 - a torn or foreign file is recomputed, never fatal
        _log(f"[cache] ignoring unreadable checkpoint {path}: {type(e).__name__}: {str(e).splitlines()[0][:200]}")
        return None
    model.to(torch.device(device))
    return {"fit_report": report, "compute": compute}


# ------------------------------------------------------------------------------ warm cells
def _marker_path(key: str) -> Path:
    return cache_dir() / "cells" / f"{key}.json"


def mark_cell(key: str, *, needs_fit: bool, embed_items_per_s: float | None = None) -> None:
    """Note that cell ``key`` finished once; ``needs_fit``: its model must be trained again on a
    rerun (trainable, but its trained state could not be checkpointed). ``embed_items_per_s``:
    the embedding throughput measured in that run (reruns of the cell report it instead of
    measuring again)."""
    atomic_write_bytes(_marker_path(key), json.dumps({"version": CELL_CACHE_VERSION, "needs_fit": needs_fit,
                                                      "checkpoint": checkpoint_path(key).is_file(),
                                                      "embed_items_per_s": embed_items_per_s}).encode())


def _marker(key: str) -> dict[str, Any] | None:
    try:
        marker = json.loads(_marker_path(key).read_bytes())
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) and marker.get("version") == CELL_CACHE_VERSION else None


def cell_throughput(key: str) -> float | None:
    """The embedding throughput (items/s) measured when cell ``key`` first ran, if it was kept."""
    value = (_marker(key) or {}).get("embed_items_per_s")
    return float(value) if isinstance(value, (int, float)) and value > 0 else None


def is_warm(key: str) -> bool:
    """Whether cell ``key`` can be recomputed without training: it finished before, its model either
    needs no fit or its checkpoint is still in the cache. A warm cell costs its tasks' scoring on
    (mostly cached) embeddings, so remote executors run it in the driver instead of shipping it
    to a worker (for a warm rerun on Ray, starting Ray cost more than all its cells)."""
    marker = _marker(key)
    if marker is None or marker.get("needs_fit", True):
        return False
    return not marker.get("checkpoint") or checkpoint_path(key).is_file()


# ------------------------------------------------------------------------------ embeddings
class EmbeddingCache:
    """The embeddings of one cell's model, per (split, which), on disk under ``folder``.

    ``model`` is the object the tasks embed with (the runner's guarded model) and ``splits``
    the dataset's named splits: :meth:`serves` is true only for that model and those exact
    split objects, so a task embedding a subset, another split or another network computes
    afresh. ``folder=None`` disables the cache (every :meth:`get` computes).
    """

    def __init__(self, folder: Path | None, model: Any, splits: Mapping[str, Any], label: str = ""):
        self.folder = folder
        self.model = model
        self.label = label
        self._names = {id(s): name for name, s in splits.items()}
        self._splits = dict(splits)  # keeps the objects alive, so their ids stay theirs
        self.hits = 0
        self.writes = 0

    def split_name(self, model: Any, split: Any) -> str | None:
        """The split's name when this cache serves (``model``, ``split``), else ``None``."""
        if self.folder is None or model is not self.model:
            return None
        return self._names.get(id(split))

    def path(self, split_name: str, which: str) -> Path:
        assert self.folder is not None
        return self.folder / f"{split_name}-{which}.npy"

    def load(self, split_name: str, which: str) -> np.ndarray | None:
        path = self.path(split_name, which)
        if not path.is_file():
            return None
        try:
            arr = np.load(path, mmap_mode="c", allow_pickle=False)
        except (OSError, ValueError) as e:
            _log(f"[cache] ignoring unreadable embeddings {path}: {e}")
            return None
        self.hits += 1
        _log(f"[cache] embeddings {self.label} {split_name}/{which} loaded")
        return arr

    def store(self, split_name: str, which: str, arr: np.ndarray) -> None:
        buf = io.BytesIO()
        np.save(buf, np.ascontiguousarray(arr), allow_pickle=False)
        atomic_write_bytes(self.path(split_name, which), buf.getvalue())
        self.writes += 1

    def get(self, split_name: str, which: str, compute: Callable[[], np.ndarray]) -> np.ndarray:
        """The cached array, else ``compute()`` stored and returned."""
        if self.folder is None:
            return compute()
        arr = self.load(split_name, which)
        if arr is None:
            arr = compute()
            self.store(split_name, which, arr)
        return arr
