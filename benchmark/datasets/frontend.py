"""A dataset's audio front end as an object: waveforms -> the audio features its clips carry.

Datasets compute their audio input once, at build time (log-mel, pooled, standardised with
the train split's statistics). Some evaluations need the features of *new* waveforms as a
model would receive them: the localization task's negative audio (silence, white noise at
the dataset's level, SLAVC protocol) is embedded through the same front end as the real
clips. A dataset exposes it as ``split.meta["audio_frontend"]``; the localization task reads
it through its ``AudioFrontend`` protocol (``samples``, ``level``, ``__call__``).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..errors import InputError

__all__ = ["FRONTEND_KEY", "StandardisedFrontend", "rms_level"]

#: ``AVSplit.meta`` key under which a dataset puts its front end
FRONTEND_KEY = "audio_frontend"


def rms_level(waves: np.ndarray, *, batch: int = 256) -> float:
    """Root mean square of ``(N, L)`` waveforms pooled over every sample (computed in batches)."""
    total, count = 0.0, 0
    for s in range(0, len(waves), batch):
        w = np.asarray(waves[s : s + batch], dtype=np.float64)
        total += float(np.sum(w * w))
        count += w.size
    return float(np.sqrt(total / count)) if count else 0.0


@dataclass(frozen=True)
class StandardisedFrontend:
    """``(features(waves) - mean) / std``: the standardised features of a dataset's clips.

    ``features`` is the dataset's own feature function (the one its build calls, so the two
    cannot drift apart), ``mean`` / ``std`` the per-dimension statistics its build
    standardised with, ``samples`` the waveform length of one clip and ``level`` the RMS of
    the dataset's test clips (the level of noise negatives).
    """

    features: Callable[[np.ndarray], np.ndarray]
    mean: np.ndarray
    std: np.ndarray
    samples: int
    level: float

    def __call__(self, waves: np.ndarray) -> np.ndarray:
        """``(B, samples)`` waveforms -> ``(B, T, Fa)`` float32 features."""
        w = np.asarray(waves, dtype=np.float32)
        if w.ndim != 2 or w.shape[1] != self.samples:
            raise InputError("audio front end", "waves", f"expected shape (B, {self.samples}), got {w.shape}")
        return ((np.asarray(self.features(w)) - self.mean) / self.std).astype(np.float32)
