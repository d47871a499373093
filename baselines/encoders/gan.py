"""``gan`` encoder: generator towers and a modality discriminator (survey §3.1 GANs i).

"Heterogeneity gap minimization through adversarial learning" [Zheng et al., 2021a; Seo
et al., 2020]: the two towers act as generators G_a, G_v of points in the common space and a
discriminator D tries to tell which modality a point came from; the towers are trained to
fool it, which pulls the two modalities' embedding distributions together while a metric
objective keeps paired / same-class points close.

* Generators (``build_audio`` / ``build_visual``): the :mod:`~baselines.encoders.cnn`
  towers (front end + MLP head per segment, mean over segments; spatial map on vision).
* Discriminator (``build_discriminator(dim, hidden)``): an MLP ``(B, dim) -> (B,)`` of
  modality logits (audio = 1), see :class:`ModalityDiscriminator`. The model owns it as a
  submodule (it is trained by the same optimiser) and plays the game with the
  ``adversarial`` objective (see ``gan_adv`` in :mod:`baselines.zoo`).
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from avcl_bench.benchmark.interface import DataSpec

from .base import ModalityEncoder
from .cnn import CNNAudioEncoder, CNNVisualEncoder


class ModalityDiscriminator(nn.Module):
    """MLP modality classifier on common-space points: ``(B, dim) -> (B,)`` logits (audio = 1)."""

    def __init__(self, dim: int, hidden: int = 64, dropout: float = 0.1):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, hidden), nn.LeakyReLU(0.2), nn.Dropout(dropout),
                                 nn.Linear(hidden, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(-1)


def build_audio(spec: DataSpec, dim: int, **hp: Any) -> ModalityEncoder:
    return CNNAudioEncoder(spec, dim, **hp)


def build_visual(spec: DataSpec, dim: int, **hp: Any) -> ModalityEncoder:
    return CNNVisualEncoder(spec, dim, **hp)


def build_discriminator(dim: int, hidden: int = 64, dropout: float = 0.1) -> ModalityDiscriminator:
    return ModalityDiscriminator(dim, hidden, dropout)
