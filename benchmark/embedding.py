"""The suite's one way to run a model's embedding methods over a whole split.

Every task that reads frozen embeddings (retrieval, classification, event localization,
localization, separation, generation) and the baselines' validation go through
:func:`embed_batches` / :func:`embed_split`, so that the batching, the conversion to CPU
arrays and the validation of model outputs (shape, finiteness) are written once, and so
that there is one place to cache a split's embeddings: with a cache (``cache=``, or the one the
runner makes active around a task with :func:`use_cache`, see
:class:`~benchmark.cells.EmbeddingCache`) a split's arrays are computed once per cell and
read back, byte for byte the same, by every task and every rerun.

An embedding *kind* names the model method and the split field it reads (see
:data:`KINDS`): ``"audio"`` calls ``embed_audio`` on the audio, ``"visual_segments"`` calls
``embed_visual_segments`` on the visual input, and so on. Within a batch the kinds are
called in the order given. A model output of the wrong shape or with NaN/inf raises
:class:`~benchmark.errors.ModelError` (``"model output: embed_audio: ..."``).
"""
from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, overload

import numpy as np
import torch

from .datasets.base import AVSplit, audio_batch, visual_batch
from .errors import InputError, ModelError

__all__ = ["BATCH_SIZE", "KINDS", "InputFn", "active_cache", "embed_batches", "embed_split", "use_cache"]

#: ``split, batch indices, device -> model input``
InputFn = Callable[[AVSplit, np.ndarray, str], torch.Tensor]

#: kind -> (model method, default input of a batch, shape the method must return)
KINDS: dict[str, tuple[str, InputFn, str]] = {
    "audio": ("embed_audio", audio_batch, "(B, D)"),
    "visual": ("embed_visual", visual_batch, "(B, D)"),
    "audio_segments": ("embed_audio_segments", audio_batch, "(B, T, D)"),
    "visual_segments": ("embed_visual_segments", visual_batch, "(B, T, D)"),
    "visual_spatial": ("embed_visual_spatial", visual_batch, "(B, D, h, w)"),
}


#: items per model call when a task embeds a split (the batch size validate-model checks)
BATCH_SIZE = 128

#: the embedding cache of the cell whose task is running (set by the runner, see :func:`use_cache`)
_ACTIVE: contextvars.ContextVar[Any] = contextvars.ContextVar("avcl_embedding_cache", default=None)


@contextmanager
def use_cache(cache: Any) -> Iterator[None]:
    """Make ``cache`` the default of :func:`embed_split` inside the block (``None``: no cache)."""
    token = _ACTIVE.set(cache)
    try:
        yield
    finally:
        _ACTIVE.reset(token)


def active_cache() -> Any:
    """The cache :func:`use_cache` made active, or ``None``."""
    return _ACTIVE.get()


def _kinds(which: str | Sequence[str]) -> tuple[str, ...]:
    kinds = (which,) if isinstance(which, str) else tuple(which)
    unknown = [k for k in kinds if k not in KINDS]
    if unknown or not kinds:
        raise ValueError(f"embedding kinds must be among {', '.join(KINDS)}, got {which!r}")
    return kinds


def _checked(out: Any, kind: str, n: int, dtype: torch.dtype) -> torch.Tensor:
    """One batch's model output as a CPU tensor of ``dtype``, validated against ``KINDS[kind]``."""
    method, _, shape = KINDS[kind]
    t = torch.as_tensor(out).detach().cpu().to(dtype)
    want = shape.replace("B", str(n))
    if t.ndim != shape.count(",") + 1 or t.shape[0] != n:
        raise ModelError(f"model output: {method}: expected shape {want}, got {tuple(t.shape)}")
    if not bool(torch.isfinite(t).all()):
        raise ModelError(f"model output: {method}: contains NaN or inf")
    return t


@torch.no_grad()
def embed_batches(
    model: Any, split: AVSplit, which: str | Sequence[str], *, batch_size: int = BATCH_SIZE, device: str = "cpu",
    dtype: torch.dtype = torch.float64, inputs: Mapping[str, InputFn] | None = None,
) -> Iterator[tuple[np.ndarray, dict[str, torch.Tensor]]]:
    """Yield ``(indices, {kind: embeddings})`` for consecutive batches of ``split``.

    Embeddings are validated CPU tensors of ``dtype``; ``inputs`` replaces the model input
    of a kind (e.g. the localization task feeds target frames to ``embed_visual_spatial``).
    Use this form when a split's embeddings are too large to hold at once.
    """
    kinds = _kinds(which)
    feed = {k: (inputs or {}).get(k, KINDS[k][1]) for k in kinds}
    for idx in split.batches(batch_size):
        yield idx, {k: _checked(getattr(model, KINDS[k][0])(feed[k](split, idx, device)), k, len(idx), dtype)
                    for k in kinds}


@overload
def embed_split(model: Any, split: AVSplit, which: str, *, batch_size: int = ..., device: str = ...,
                dtype: torch.dtype = ..., cache: Any = ...) -> np.ndarray: ...


@overload
def embed_split(model: Any, split: AVSplit, which: Sequence[str] = ..., *, batch_size: int = ...,
                device: str = ..., dtype: torch.dtype = ..., cache: Any = ...) -> tuple[np.ndarray, ...]: ...


def embed_split(
    model: Any, split: AVSplit, which: str | Sequence[str] = ("audio", "visual"), *, batch_size: int = BATCH_SIZE,
    device: str = "cpu", dtype: torch.dtype = torch.float64, cache: Any = None,
) -> np.ndarray | tuple[np.ndarray, ...]:
    """Embeddings of a whole split as numpy arrays (float64 by default), one row per clip.

    ``which`` a kind name returns its array; a sequence of kinds returns a tuple in that
    order (default: ``(audio, visual)`` clip embeddings). ``cache`` (default: the active one,
    :func:`use_cache`) serves the arrays of its cell's model and named splits, per kind,
    batch size and dtype; kinds it lacks are computed together and stored.
    """
    kinds = _kinds(which)
    cache = active_cache() if cache is None else cache
    name = cache.split_name(model, split) if cache is not None else None
    if name is None:
        arrays = _embed_arrays(model, split, kinds, batch_size, device, dtype)
    else:
        tags = {k: f"{k}-b{batch_size}-{str(dtype).removeprefix('torch.')}" for k in kinds}
        got = {k: cache.load(name, tags[k]) for k in kinds}
        missing = tuple(k for k in kinds if got[k] is None)
        if missing:
            for k, arr in zip(missing, _embed_arrays(model, split, missing, batch_size, device, dtype)):
                cache.store(name, tags[k], arr)
                got[k] = arr
        arrays = tuple(got[k] for k in kinds)
    return arrays[0] if isinstance(which, str) else arrays


def _embed_arrays(model: Any, split: AVSplit, kinds: tuple[str, ...], batch_size: int, device: str,
                  dtype: torch.dtype) -> tuple[np.ndarray, ...]:
    parts: dict[str, list[np.ndarray]] = {k: [] for k in kinds}
    for _, out in embed_batches(model, split, kinds, batch_size=batch_size, device=device, dtype=dtype):
        for k in kinds:
            parts[k].append(out[k].numpy())
    if len(split) == 0:
        raise InputError("dataset split", None, "has no clips to embed")
    return tuple(np.concatenate(parts[k]) for k in kinds)
