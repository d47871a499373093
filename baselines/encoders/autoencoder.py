"""``autoencoder`` encoder: encoder-decoder towers whose latent is the embedding (survey §3.1 Auto-Encoders).

"The encoder computes the latent space h = f(x) from the input x and the decoder computes
its reverse mapping x̂ = g(h)". Each tower encodes every segment with the
:mod:`~baselines.encoders.cnn` front end and an MLP head into a ``dim``-dimensional latent
(the segment embedding; the clip embedding is their mean) and decodes each segment's latent
with an MLP back to a reconstruction target of that segment:

* audio: the segment's feature vector itself (e.g. its log-mel patch);
* visual RGB frames: the frame average-pooled to ``recon_size x recon_size`` pixels (a
  low-resolution frame; decoding full frames from a 64-d latent would spend the model on
  pixel detail irrelevant to correlation);
* visual feature maps / vectors: the spatially averaged feature vector.

``reconstruct(x)`` returns ``(x_hat, target)``, both ``(B, T, F)``, for the ``l2`` objective.
The visual latent is computed at every position of the front-end map (the spatial output)
and averaged per segment.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from avcl_bench.benchmark.errors import ConfigError
from avcl_bench.benchmark.interface import DataSpec

from .base import ModalityEncoder, SpatialMapEncoder, audio_in_dim
from .cnn import AudioCNN, VisualCNN, apply_to_positions, mlp_head


def decoder(dim: int, hidden: int, out: int) -> nn.Sequential:
    """MLP decoder ``(..., dim) -> (..., out)``."""
    return nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, hidden), nn.GELU(),
                         nn.Linear(hidden, out))


class AEAudioEncoder(ModalityEncoder):
    def __init__(self, spec: DataSpec, dim: int, hidden: int = 64, dropout: float = 0.1):
        super().__init__()
        self.dim = dim
        self.front = AudioCNN(spec, hidden)
        self.head = mlp_head(hidden, dim, dropout)
        self.decoder = decoder(dim, hidden, audio_in_dim(spec))

    def segments(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.front(x))

    def target(self, x: torch.Tensor) -> torch.Tensor:
        """What the decoder reconstructs: ``(B, T, Fa)``, the input itself."""
        return x

    def reconstruct(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x_hat, target)`` of every segment, ``(B, T, Fa)`` each."""
        return self.decoder(self.segments(x)), self.target(x)


class AEVisualEncoder(SpatialMapEncoder):
    def __init__(self, spec: DataSpec, dim: int, hidden: int = 64, dropout: float = 0.1, recon_size: int = 8):
        super().__init__()
        if isinstance(recon_size, bool) or not isinstance(recon_size, int) or recon_size < 1:
            raise ConfigError(f"autoencoder: recon_size must be a positive integer, got {recon_size!r}")
        self.dim = dim
        c, h, w = (int(s) for s in spec.visual_shape[-3:])
        self.is_image = bool(spec.visual_is_image)
        self.recon_hw = (min(recon_size, h), min(recon_size, w))
        self.front = VisualCNN(spec, hidden)
        self.head = mlp_head(hidden, dim, dropout)
        out = c * self.recon_hw[0] * self.recon_hw[1] if self.is_image else c
        self.decoder = decoder(dim, hidden, out)

    def maps(self, x: torch.Tensor) -> torch.Tensor:
        return apply_to_positions(self.head, self.front(x))  # (B, T, D, h, w)

    def target(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, T, F)``: low-resolution frames (images) or the spatially averaged features."""
        b, t = x.shape[:2]
        if self.is_image:
            return F.adaptive_avg_pool2d(x.flatten(0, 1), self.recon_hw).flatten(1).unflatten(0, (b, t))
        return x.mean(dim=(-2, -1))

    def reconstruct(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x_hat, target)`` of every segment, ``(B, T, F)`` each."""
        return self.decoder(self.segments(x)), self.target(x)


def build_audio(spec: DataSpec, dim: int, **hp: Any) -> ModalityEncoder:
    return AEAudioEncoder(spec, dim, **hp)


def build_visual(spec: DataSpec, dim: int, **hp: Any) -> ModalityEncoder:
    return AEVisualEncoder(spec, dim, **hp)
