"""``random``: untrained random projections, the chance reference of every task.

f(xa) = Wa * mean_t(xa_t) and g(xv) = Wv * vec(mean_t(xv_t)) with fixed Gaussian Wa, Wv
drawn from the run's seed (or an explicit ``seed`` model argument). Segment embeddings project each segment; the spatial map projects
each pixel's channel vector with a third matrix, so localization heatmaps are chance too.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from avcl_bench.benchmark.datasets.base import AVSplit
from avcl_bench.benchmark.interface import DataSpec, FitContext

from .registry import register_model


class RandomProjection:
    trainable = False
    capabilities = frozenset({"segments", "spatial"})

    def __init__(self, spec: DataSpec, dim: int = 64, seed: int | None = None):
        # default: the run's seed (the runner seeds torch before building the model)
        seed = torch.initial_seed() % 2**63 if seed is None else int(seed)
        self.spec, self.dim, self.seed = spec, dim, seed
        g = torch.Generator().manual_seed(seed)
        fa = int(np.prod(spec.audio_shape[1:]))
        c, h, w = spec.visual_shape[-3:]
        self.wa = torch.randn(fa, dim, generator=g) / math.sqrt(fa)
        self.wv = torch.randn(c * h * w, dim, generator=g) / math.sqrt(c * h * w)
        self.ws = torch.randn(c, dim, generator=g) / math.sqrt(c)

    def config(self) -> dict[str, Any]:
        return {"dim": self.dim, "projection_seed": self.seed}

    def fit(self, train: AVSplit, val: AVSplit | None, ctx: FitContext) -> None:
        """Nothing to learn (the projection is fixed by the seed)."""

    def embed_audio_segments(self, audio: torch.Tensor) -> torch.Tensor:
        return audio.float().cpu().flatten(2) @ self.wa

    def embed_visual_segments(self, visual: torch.Tensor) -> torch.Tensor:
        return visual.float().cpu().flatten(2) @ self.wv

    def embed_audio(self, audio: torch.Tensor) -> torch.Tensor:
        return self.embed_audio_segments(audio).mean(1)

    def embed_visual(self, visual: torch.Tensor) -> torch.Tensor:
        return self.embed_visual_segments(visual).mean(1)

    def embed_visual_spatial(self, visual: torch.Tensor) -> torch.Tensor:
        return torch.einsum("btchw,cd->bdhw", visual.float().cpu(), self.ws) / visual.shape[1]


@register_model("random", encoder=[], objective=[], learning="unsupervised", papers=[],
                description="untrained random projection (chance reference)", reference=True)
def build_random(spec: DataSpec, dim: int = 64, seed: int | None = None) -> RandomProjection:
    return RandomProjection(spec, dim=dim, seed=seed)
