"""``self_attention`` encoder: single-head attention within each modality (survey §3.1 Attention ii).

Self-attention "relates different positions of a sequence to calculate a representation of
this sequence" [Cheng et al., 2020]. Each tower is the :mod:`~baselines.encoders.cnn` front
end followed by

* (visual only) single-head attention pooling over the positions of each frame's map, so a
  frame is summarised by its most relevant locations rather than their plain mean;
* one single-head self-attention layer over the T segments (pre-norm, residual), giving
  every segment context from the other segments of the same modality;
* an MLP head to the common space (the segment embeddings) and single-head additive
  attention pooling of the segment embeddings into the clip embedding.

No positional encoding is used (the layer is permutation-equivariant over segments; the
``transformer`` encoder adds positions). The visual spatial map is, at every position of
the front-end map, the segment embedding that position would get as a one-frame clip of one
location (self-attention over a single token, then the head), averaged over segments.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from avcl_bench.benchmark.interface import DataSpec

from .base import ModalityEncoder
from .cnn import AudioCNN, VisualCNN, apply_to_positions, mlp_head
from .transformer import single_tokens


class AttentionPool(nn.Module):
    """Single-head additive attention pooling: ``(..., N, C) -> (..., C)``.

    ``alpha = softmax_n(w^T tanh(W x_n))``, output ``sum_n alpha_n x_n``.
    """

    def __init__(self, channels: int, hidden: int | None = None):
        super().__init__()
        hidden = hidden or channels
        self.score = nn.Sequential(nn.Linear(channels, hidden), nn.Tanh(), nn.Linear(hidden, 1))

    def weights(self, x: torch.Tensor) -> torch.Tensor:
        """Attention weights ``(..., N)`` summing to one over ``N``."""
        return torch.softmax(self.score(x).squeeze(-1), dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.weights(x).unsqueeze(-1) * x).sum(dim=-2)


class SelfAttentionLayer(nn.Module):
    """Pre-norm single-head self-attention with a residual: ``(B, T, C) -> (B, T, C)``."""

    def __init__(self, channels: int, dropout: float = 0.1):
        super().__init__()
        self.norm = nn.LayerNorm(channels)
        self.attn = nn.MultiheadAttention(channels, num_heads=1, dropout=dropout, batch_first=True)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm(x)
        out, _ = self.attn(h, h, h, need_weights=False)
        return x + self.drop(out)


class SelfAttentionAudioEncoder(ModalityEncoder):
    def __init__(self, spec: DataSpec, dim: int, hidden: int = 64, dropout: float = 0.1):
        super().__init__()
        self.dim = dim
        self.front = AudioCNN(spec, hidden)
        self.temporal = SelfAttentionLayer(hidden, dropout)
        self.head = mlp_head(hidden, dim, dropout)
        self.clip_pool = AttentionPool(dim)

    def segments(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.temporal(self.front(x)))

    def pool(self, seg: torch.Tensor) -> torch.Tensor:
        return self.clip_pool(seg)


class SelfAttentionVisualEncoder(ModalityEncoder):
    def __init__(self, spec: DataSpec, dim: int, hidden: int = 64, dropout: float = 0.1):
        super().__init__()
        self.dim = dim
        self.front = VisualCNN(spec, hidden)
        self.spatial_pool = AttentionPool(hidden)
        self.temporal = SelfAttentionLayer(hidden, dropout)
        self.head = mlp_head(hidden, dim, dropout)
        self.clip_pool = AttentionPool(dim)

    def segments(self, x: torch.Tensor) -> torch.Tensor:
        maps = self.front(x)  # (B, T, H, h, w)
        frames = self.spatial_pool(maps.flatten(-2).transpose(-1, -2))  # (B, T, H)
        return self.head(self.temporal(frames))

    def pool(self, seg: torch.Tensor) -> torch.Tensor:
        return self.clip_pool(seg)

    def spatial(self, x: torch.Tensor) -> torch.Tensor:
        maps = self.front(x)  # (B, T, H, h, w)
        return apply_to_positions(lambda v: self.head(single_tokens(self.temporal, v)), maps).mean(dim=1)


def build_audio(spec: DataSpec, dim: int, **hp: Any) -> ModalityEncoder:
    return SelfAttentionAudioEncoder(spec, dim, **hp)


def build_visual(spec: DataSpec, dim: int, **hp: Any) -> ModalityEncoder:
    return SelfAttentionVisualEncoder(spec, dim, **hp)
