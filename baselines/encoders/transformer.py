"""``transformer`` encoder: transformer encoder layers over segments (survey §3.1 Attention iii).

Each tower is the :mod:`~baselines.encoders.cnn` front end (the survey notes the TF encoder's
input "can be replaced by different feature extractors"), a linear embedding plus fixed
sinusoidal positional encoding of the segment index, ``layers`` pre-norm
``nn.TransformerEncoderLayer``\\ s (multi-head self-attention + feed-forward) and a
LayerNorm + linear projection to the common space per segment; the clip embedding is the
mean of the segment embeddings. Sinusoidal positions are computed for any T, so the
encoder runs on single frames (T = 1) and on longer clips than it was trained on.

Visual frames are summarised by the mean of their front-end map before the temporal
layers; the spatial map is, at every front-end position, the embedding that position would
get as a one-frame clip (its feature as a length-1 sequence through the same layers),
averaged over segments: it lives in the common space but carries no temporal context.
"""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from avcl_bench.benchmark.errors import ConfigError
from avcl_bench.benchmark.interface import DataSpec

from .base import ModalityEncoder
from .cnn import AudioCNN, VisualCNN, apply_to_positions


def sinusoidal_positions(t: int, channels: int, device: torch.device | None = None) -> torch.Tensor:
    """``(t, channels)`` fixed positional encoding of Vaswani et al. (2017)."""
    pos = torch.arange(t, dtype=torch.float32, device=device)[:, None]
    freq = torch.exp(torch.arange(0, channels, 2, dtype=torch.float32, device=device) * (-math.log(10000.0) / channels))
    pe = torch.zeros(t, channels, device=device)
    pe[:, 0::2] = torch.sin(pos * freq)
    pe[:, 1::2] = torch.cos(pos * freq)[:, : channels // 2]
    return pe


class TemporalTransformer(nn.Module):
    """``(B, T, C) -> (B, T, dim)``: embedding + positions, transformer layers, projection."""

    def __init__(self, channels: int, dim: int, *, layers: int = 2, heads: int = 4, dropout: float = 0.1):
        super().__init__()
        if isinstance(heads, bool) or not isinstance(heads, int) or heads < 1 or channels % heads:
            raise ConfigError(f"transformer encoder: heads must divide hidden={channels}, got {heads!r}")
        if isinstance(layers, bool) or not isinstance(layers, int) or layers < 1:
            raise ConfigError(f"transformer encoder: layers must be a positive integer, got {layers!r}")
        self.embed = nn.Linear(channels, channels)
        layer = nn.TransformerEncoderLayer(channels, heads, dim_feedforward=2 * channels, dropout=dropout,
                                           activation="gelu", batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.out = nn.Sequential(nn.LayerNorm(channels), nn.Linear(channels, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embed(x) + sinusoidal_positions(x.shape[1], x.shape[2], x.device)
        return self.out(self.encoder(h))


class TransformerAudioEncoder(ModalityEncoder):
    def __init__(self, spec: DataSpec, dim: int, hidden: int = 64, dropout: float = 0.1, layers: int = 2,
                 heads: int = 4):
        super().__init__()
        self.dim = dim
        self.front = AudioCNN(spec, hidden)
        self.temporal = TemporalTransformer(hidden, dim, layers=layers, heads=heads, dropout=dropout)

    def segments(self, x: torch.Tensor) -> torch.Tensor:
        return self.temporal(self.front(x))


class TransformerVisualEncoder(ModalityEncoder):
    def __init__(self, spec: DataSpec, dim: int, hidden: int = 64, dropout: float = 0.1, layers: int = 2,
                 heads: int = 4):
        super().__init__()
        self.dim = dim
        self.front = VisualCNN(spec, hidden)
        self.temporal = TemporalTransformer(hidden, dim, layers=layers, heads=heads, dropout=dropout)

    def segments(self, x: torch.Tensor) -> torch.Tensor:
        return self.temporal(self.front(x).mean(dim=(-2, -1)))

    def spatial(self, x: torch.Tensor) -> torch.Tensor:
        maps = self.front(x)  # (B, T, H, h, w)
        return apply_to_positions(lambda v: single_tokens(self.temporal, v), maps).mean(dim=1)


def single_tokens(temporal: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Run a ``(N, T, C) -> (N, T, D)`` sequence model on every vector of ``(..., C)`` as a length-1 sequence."""
    lead = x.shape[:-1]
    return temporal(x.reshape(-1, 1, x.shape[-1])).reshape(*lead, -1)


def build_audio(spec: DataSpec, dim: int, **hp: Any) -> ModalityEncoder:
    return TransformerAudioEncoder(spec, dim, **hp)


def build_visual(spec: DataSpec, dim: int, **hp: Any) -> ModalityEncoder:
    return TransformerVisualEncoder(spec, dim, **hp)
