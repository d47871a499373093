"""Dataset abstractions: a dataset is a :class:`DataSpec` plus train/val/test :class:`AVSplit`s.

Arrays of a split are anything indexable like numpy along the first axis (numpy arrays,
memmaps, or lazy HDF5-backed views): big datasets are read batch by batch, never whole.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, fields, replace
from typing import Any, Protocol

import numpy as np
import torch

from ..errors import ConfigError
from ..interface import DataSpec

SPLITS = ("train", "val", "test")


@dataclass
class AVSplit:
    """One split of an audio-visual dataset.

    ``audio`` (N, T, Fa) float, ``visual`` (N, T, C, H, W) (uint8 images are scaled to
    [0, 1] per batch), ``labels`` (N,) clip classes. Optional per-task fields:
    ``segment_labels`` (N, T) with background = ``num_classes`` (event localization),
    ``masks`` (N, H, W) in [0, 1] of the sounding object (localization), ``sources`` (N, L)
    the clean waveform of the clip's sounding source (separation by mix-and-separate),
    ``waveforms`` (N, L) the clip's audio as heard, ``frames`` (N, 3, H, W) the clip's key
    frame (localization's image and, unless ``gen_frames`` is given, the target image of
    sound-to-image generation), ``gen_frames`` (N, 3, H, W) the target image of generation
    where it differs from ``frames`` (avsynth: the key frame re-centred on the sounding object).
    """

    audio: Any
    visual: Any
    labels: np.ndarray
    segment_labels: np.ndarray | None = None
    masks: Any = None
    sources: Any = None
    waveforms: Any = None
    frames: Any = None
    gen_frames: Any = None
    ids: list[str] | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(len(self.labels))

    def has(self, name: str) -> bool:
        return getattr(self, name) is not None

    def subset(self, idx: np.ndarray | slice) -> AVSplit:
        """A split restricted to ``idx`` (materialises the selected rows)."""
        kw = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name == "meta":
                kw[f.name] = dict(v)
            elif f.name == "ids":
                kw[f.name] = None if v is None else list(np.asarray(v, dtype=object)[idx])
            elif v is None:
                kw[f.name] = None
            else:
                kw[f.name] = _take(v, idx)
        return replace(self, **kw)

    def batches(self, batch_size: int, *, shuffle: bool = False, seed: int = 0) -> Iterator[np.ndarray]:
        """Index arrays of consecutive (or shuffled, seeded) batches."""
        n = len(self)
        order = np.random.default_rng(seed).permutation(n) if shuffle else np.arange(n)
        for s in range(0, n, batch_size):
            yield order[s : s + batch_size]


def _take(arr: Any, idx: np.ndarray | slice) -> np.ndarray:
    if isinstance(idx, slice):
        return np.asarray(arr[idx])
    idx = np.asarray(idx)
    if isinstance(arr, np.ndarray):
        return arr[idx]
    # h5py and friends want sorted unique indices
    order = np.argsort(idx, kind="stable")
    sorted_idx = idx[order]
    uniq, inverse = np.unique(sorted_idx, return_inverse=True)
    block = np.asarray(arr[uniq])[inverse]
    out = np.empty_like(block)
    out[order] = block
    return out


def to_float_tensor(arr: Any, device: str | torch.device = "cpu") -> torch.Tensor:
    """float32 tensor; uint8 images are scaled to [0, 1]."""
    a = np.asarray(arr)
    t = torch.from_numpy(np.ascontiguousarray(a))
    t = t.float() / 255.0 if a.dtype == np.uint8 else t.float()
    return t.to(device)


def audio_batch(split: AVSplit, idx: np.ndarray, device: str = "cpu") -> torch.Tensor:
    return to_float_tensor(_take(split.audio, idx), device)


def visual_batch(split: AVSplit, idx: np.ndarray, device: str = "cpu") -> torch.Tensor:
    return to_float_tensor(_take(split.visual, idx), device)


class AVDataset(Protocol):
    """What every dataset provides (built by a registered loader)."""

    spec: DataSpec

    def split(self, name: str) -> AVSplit: ...

    def fingerprint(self) -> str:
        """A content hash identifying the data (lands in result configs and cache keys)."""
        ...


@dataclass
class InMemoryDataset:
    """A dataset whose splits are already built."""

    spec: DataSpec
    splits: dict[str, AVSplit]
    content_hash: str

    def split(self, name: str) -> AVSplit:

        if name not in self.splits:
            raise ConfigError(f"dataset '{self.spec.name}' has no '{name}' split (has: {', '.join(self.splits)})")
        return self.splits[name]

    def fingerprint(self) -> str:
        return self.content_hash
