"""``vae`` encoder: variational auto-encoder towers (survey §3.1 Auto-Encoders vi).

The :mod:`~baselines.encoders.autoencoder` towers with a Gaussian posterior
``q(z | x_t) = N(mu_t, diag exp(logvar_t))`` per segment [Zhu et al., 2021b; Zhang et al.,
2021]: ``mu`` comes from the auto-encoder's latent head, ``logvar`` from a linear head on
the same front-end features (clamped to [-8, 8] for stability). During training the decoder
reads the reparameterised sample ``z = mu + exp(logvar / 2) * eps``; in eval mode it reads
``mu``. The embedding is ``mu`` (segments; clip = mean of segments; the visual spatial map
is ``mu`` at every position). ``reconstruct(x)`` returns ``(x_hat, target, mu, logvar)``
with ``x_hat``/``target`` ``(B, T, F)`` and ``mu``/``logvar`` ``(B, T, dim)`` for the
``elbo`` objective.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from avcl_bench.benchmark.interface import DataSpec

from .autoencoder import AEAudioEncoder, AEVisualEncoder
from .base import ModalityEncoder

LOGVAR_RANGE = (-8.0, 8.0)


def reparameterise(mu: torch.Tensor, logvar: torch.Tensor, sample: bool) -> torch.Tensor:
    """``mu + exp(logvar / 2) * eps`` with ``eps ~ N(0, I)`` (torch's global generator), or ``mu``."""
    if not sample:
        return mu
    return mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)


class VAEAudioEncoder(AEAudioEncoder):
    def __init__(self, spec: DataSpec, dim: int, hidden: int = 64, dropout: float = 0.1):
        super().__init__(spec, dim, hidden, dropout)
        self.logvar = nn.Linear(hidden, dim)

    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mu, logvar)``, ``(B, T, dim)`` each."""
        f = self.front(x)
        return self.head(f), self.logvar(f).clamp(*LOGVAR_RANGE)

    def reconstruct(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:  # type: ignore[override]
        mu, logvar = self.posterior(x)
        return self.decoder(reparameterise(mu, logvar, self.training)), self.target(x), mu, logvar


class VAEVisualEncoder(AEVisualEncoder):
    def __init__(self, spec: DataSpec, dim: int, hidden: int = 64, dropout: float = 0.1, recon_size: int = 8):
        super().__init__(spec, dim, hidden, dropout, recon_size)
        self.logvar = nn.Linear(hidden, dim)

    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mu, logvar)``, ``(B, T, dim)`` each: mean of the per-position means, logvar of the pooled map."""
        f = self.front(x)  # (B, T, H, h, w)
        mu = self.head(f.movedim(-3, -1)).mean(dim=(-3, -2))
        return mu, self.logvar(f.mean(dim=(-2, -1))).clamp(*LOGVAR_RANGE)

    def reconstruct(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:  # type: ignore[override]
        mu, logvar = self.posterior(x)
        return self.decoder(reparameterise(mu, logvar, self.training)), self.target(x), mu, logvar


def build_audio(spec: DataSpec, dim: int, **hp: Any) -> ModalityEncoder:
    return VAEAudioEncoder(spec, dim, **hp)


def build_visual(spec: DataSpec, dim: int, **hp: Any) -> ModalityEncoder:
    return VAEVisualEncoder(spec, dim, **hp)
