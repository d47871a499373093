"""``mlp`` encoder: per-segment MLPs, mean pooling over segments.

Audio: the shared :class:`AudioFrontEnd` and a linear projection to D. Visual: the
:class:`VisualFrontEnd` (small CNN on images) followed by global average pooling and an
MLP; its 1x1 projection of the pre-pooling map is the spatial output used for localization.
"""
from __future__ import annotations

import torch
from torch import nn

from avcl_bench.benchmark.interface import DataSpec

from .base import AudioFrontEnd, ModalityEncoder, SpatialMapEncoder, VisualFrontEnd, audio_in_dim


class MLPAudioEncoder(ModalityEncoder):
    def __init__(self, spec: DataSpec, dim: int, hidden: int = 128, dropout: float = 0.1):
        super().__init__()
        self.dim = dim
        self.front = AudioFrontEnd(audio_in_dim(spec), hidden, dropout)
        self.proj = nn.Sequential(nn.GELU(), nn.Linear(hidden, dim))

    def segments(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.front(x))


class MLPVisualEncoder(SpatialMapEncoder):
    def __init__(self, spec: DataSpec, dim: int, hidden: int = 128, dropout: float = 0.1):
        super().__init__()
        self.dim = dim
        self.front = VisualFrontEnd(spec.visual_shape, hidden, spec.visual_is_image)
        # 1x1 conv = the same projection applied at each spatial position and on the pooled vector
        self.proj = nn.Sequential(nn.ReLU(), nn.Dropout(dropout), nn.Conv2d(hidden, dim, 1))

    def maps(self, x: torch.Tensor) -> torch.Tensor:
        f = self.front(x)  # (B, T, hidden, h, w)
        b, t = f.shape[:2]
        return self.proj(f.flatten(0, 1)).unflatten(0, (b, t))  # (B, T, D, h, w)


def build_audio(spec: DataSpec, dim: int, **hp) -> ModalityEncoder:
    return MLPAudioEncoder(spec, dim, **hp)


def build_visual(spec: DataSpec, dim: int, **hp) -> ModalityEncoder:
    return MLPVisualEncoder(spec, dim, **hp)
