"""``co_attention`` encoder: cross-modal attention with a residual (survey §3.1 Attention i).

Co-attention "encodes a feature vector with context from another" modality and adds a
residual connection, "adding missing relevant information from one modality to another"
[Zheng et al., 2021b; Duan et al., 2021]. Retrieval galleries, however, embed each
modality alone, so the towers are built to work both ways:

* ``features(x) -> (B, T, D)``: uni-modal segment features (cnn front end + MLP head);
* ``attend(query, context)``: the co-attention block, ``q + MHA(LN(q), LN(c), LN(c))``
  followed by a residual feed-forward layer, ``q`` from this modality and ``c`` the
  segment features of the other one (``cross_segments(x, context)``);
* ``segments(x)`` / ``forward(x)``: the same block with the modality's own segments as
  context (self-context), so ``embed_audio`` needs audio only. Sharing the block between
  self- and cross-context is the combination of intra- and inter-modal attention of Cheng
  et al. (2020); a model trains both uses (see ``coattn_ce`` in :mod:`baselines.zoo`, which
  also exposes the cross-attended segments as ``embed_av_segments(audio, visual)``).

The clip embedding is the mean of the attended segments. The visual spatial map lets every
position of the frame maps attend to the clip's own segment features (self-context, as
``segments``) and averages over segments.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from avcl_bench.benchmark.errors import ConfigError
from avcl_bench.benchmark.interface import DataSpec

from .base import ModalityEncoder
from .cnn import AudioCNN, VisualCNN, apply_to_positions, mlp_head


class CoAttentionBlock(nn.Module):
    """``(B, Tq, D), (B, Tc, D) -> (B, Tq, D)``: residual multi-head attention of queries over a context."""

    def __init__(self, dim: int, heads: int = 4, dropout: float = 0.1):
        super().__init__()
        if isinstance(heads, bool) or not isinstance(heads, int) or heads < 1 or dim % heads:
            raise ConfigError(f"co_attention encoder: heads must divide dim={dim}, got {heads!r}")
        self.norm_q = nn.LayerNorm(dim)
        self.norm_c = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.ff = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, 2 * dim), nn.GELU(), nn.Dropout(dropout),
                                nn.Linear(2 * dim, dim))
        self.drop = nn.Dropout(dropout)

    def forward(self, query: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        c = self.norm_c(context)
        out, _ = self.attn(self.norm_q(query), c, c, need_weights=False)
        h = query + self.drop(out)
        return h + self.drop(self.ff(h))


class _CoAttentionEncoder(ModalityEncoder):
    block: CoAttentionBlock

    def features(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def attend(self, query: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """Co-attention of this modality's segment features over ``context`` segment features."""
        return self.block(query, context)

    def segments(self, x: torch.Tensor) -> torch.Tensor:
        f = self.features(x)
        return self.attend(f, f)

    def cross_segments(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """Segments of ``x`` attended over the other modality's ``features`` ``(B, T', D)``."""
        return self.attend(self.features(x), context)


class CoAttentionAudioEncoder(_CoAttentionEncoder):
    def __init__(self, spec: DataSpec, dim: int, hidden: int = 64, dropout: float = 0.1, heads: int = 4):
        super().__init__()
        self.dim = dim
        self.front = AudioCNN(spec, hidden)
        self.head = mlp_head(hidden, dim, dropout)
        self.block = CoAttentionBlock(dim, heads, dropout)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.front(x))


class CoAttentionVisualEncoder(_CoAttentionEncoder):
    def __init__(self, spec: DataSpec, dim: int, hidden: int = 64, dropout: float = 0.1, heads: int = 4):
        super().__init__()
        self.dim = dim
        self.front = VisualCNN(spec, hidden)
        self.head = mlp_head(hidden, dim, dropout)
        self.block = CoAttentionBlock(dim, heads, dropout)

    def _maps(self, x: torch.Tensor) -> torch.Tensor:
        return apply_to_positions(self.head, self.front(x))  # (B, T, D, h, w)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self._maps(x).mean(dim=(-2, -1))

    def spatial(self, x: torch.Tensor) -> torch.Tensor:
        maps = self._maps(x)
        b, t, d, h, w = maps.shape
        context = maps.mean(dim=(-2, -1))  # (B, T, D)
        queries = maps.permute(0, 1, 3, 4, 2).reshape(b, t * h * w, d)
        out = self.attend(queries, context).reshape(b, t, h, w, d)
        return out.permute(0, 1, 4, 2, 3).mean(dim=1)


def build_audio(spec: DataSpec, dim: int, **hp: Any) -> ModalityEncoder:
    return CoAttentionAudioEncoder(spec, dim, **hp)


def build_visual(spec: DataSpec, dim: int, **hp: Any) -> ModalityEncoder:
    return CoAttentionVisualEncoder(spec, dim, **hp)
