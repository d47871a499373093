"""Adversarial (GAN) losses on discriminator logits, incl. modality adversarial learning.

Table 1 lists adversarial losses ("Adv.L") for cross-modal generation [Fanzeres and Nadeu,
2021; Mira et al., 2021; Athanasiadis et al., 2020] and for heterogeneity-gap minimisation
[Zheng et al., 2021a; Seo et al., 2020] (survey §3.1 "Generative Adversarial Networks").

Standard GAN (Goodfellow et al., 2014), with ``D`` returning logits and σ the sigmoid:

* discriminator: ``-log σ(D(x)) - log(1 - σ(D(G(z))))`` (real → 1, fake → 0);
* generator, non-saturating (default): ``-log σ(D(G(z)))`` (fake → 1);
  saturating / minimax: ``log(1 - σ(D(G(z))))``.

Modality adversary (heterogeneity gap): a modality classifier sees audio embeddings
``f(x_a; W_a)`` as class 1 and visual embeddings ``g(x_v; W_v)`` as class 0 and is trained
with the discriminator loss; the encoders are trained to fool it. Both embedding sets
come from trained networks, so the encoders' loss flips *both* targets
(``symmetric=True``): audio → 0 and visual → 1 (non-saturating), or the negated
discriminator loss (``saturating=True``, what a gradient-reversal layer optimises).
"""
from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from avcl_bench.benchmark.errors import ConfigError, InputError

from ._common import REDUCTIONS, Reduction, check_choice, check_tensor

__all__ = [
    "adversarial_loss",
    "gan_discriminator_loss",
    "gan_generator_loss",
    "modality_confusion_loss",
    "modality_discriminator_loss",
]

NAME = "adversarial"
PLAYERS: tuple[str, ...] = ("discriminator", "generator")


def _logits(x: object, field: str) -> Tensor:
    t = check_tensor(NAME, field, x, ndim=(1, 2))
    if t.dim() == 2 and t.shape[1] != 1:
        raise InputError(NAME, field, f"expected (B,) or (B, 1) logits, got shape {tuple(t.shape)}")
    return t.reshape(-1)


def _bce(logits: Tensor, target: float) -> Tensor:
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target), reduction="none")


def _combine(parts: list[Tensor], reduction: str) -> Tensor:
    """``mean``: mean of each part, added; ``sum``: sum over every item of every part."""
    if reduction == "mean":
        return torch.stack([p.mean() for p in parts]).sum()
    return torch.cat(parts).sum()


def adversarial_loss(
    real_logits: Tensor | None,
    fake_logits: Tensor,
    *,
    player: Literal["discriminator", "generator"] = "discriminator",
    symmetric: bool = False,
    saturating: bool = False,
    reduction: Reduction = "mean",
) -> Tensor:
    """Binary-cross-entropy GAN loss of one player, from discriminator logits.

    Args:
        real_logits: ``(B_r,)`` or ``(B_r, 1)`` logits on real samples (audio embeddings in
            the modality game). May be ``None`` only for the plain generator loss.
        fake_logits: ``(B_f,)`` or ``(B_f, 1)`` logits on generated samples (visual
            embeddings in the modality game).
        player: ``"discriminator"`` (real → 1, fake → 0) or ``"generator"``.
        symmetric: generator only: the "real" samples also come from a trained network
            (modality game), so their term is flipped too (real → 0).
        saturating: generator only: minimise the negated discriminator terms
            (``log(1 - σ(D(fake)))`` [+ ``log σ(D(real))``]) instead of the non-saturating
            flipped-label BCE.
        reduction: ``"mean"`` (default: mean over each set of logits, the sets' means
            added) or ``"sum"`` over every logit.
    """
    check_choice(NAME, "reduction", reduction, REDUCTIONS)
    check_choice(NAME, "player", player, PLAYERS)
    for field, flag in (("symmetric", symmetric), ("saturating", saturating)):
        if not isinstance(flag, bool):
            raise ConfigError(f"{NAME}: {field}: expected True or False, got {flag!r}")
    if player == "discriminator" and (symmetric or saturating):
        raise ConfigError(f"{NAME}: symmetric/saturating: only apply to player='generator'")
    fake = _logits(fake_logits, "fake_logits")
    need_real = player == "discriminator" or symmetric
    if need_real and real_logits is None:
        raise InputError(NAME, "real_logits", f"required for player={player!r} (symmetric={symmetric})")
    real = _logits(real_logits, "real_logits") if need_real else None
    if real is not None and (real.dtype != fake.dtype or real.device != fake.device):
        raise InputError(NAME, "real_logits/fake_logits", "dtype/device mismatch")

    if player == "discriminator":
        parts = [_bce(real, 1.0), _bce(fake, 0.0)]  # type: ignore[arg-type]
    elif saturating:
        parts = [-_bce(fake, 0.0)] + ([-_bce(real, 1.0)] if real is not None else [])
    else:
        parts = [_bce(fake, 1.0)] + ([_bce(real, 0.0)] if real is not None else [])
    return _combine(parts, reduction)


def gan_discriminator_loss(real_logits: Tensor, fake_logits: Tensor, *, reduction: Reduction = "mean") -> Tensor:
    """``-log σ(D(x)) - log(1 - σ(D(G(z))))``: the discriminator's BCE loss."""
    return adversarial_loss(real_logits, fake_logits, player="discriminator", reduction=reduction)


def gan_generator_loss(fake_logits: Tensor, *, saturating: bool = False, reduction: Reduction = "mean") -> Tensor:
    """Non-saturating ``-log σ(D(G(z)))`` (default) or minimax ``log(1 - σ(D(G(z))))``."""
    return adversarial_loss(None, fake_logits, player="generator", saturating=saturating, reduction=reduction)


def modality_discriminator_loss(
    audio_logits: Tensor, visual_logits: Tensor, *, reduction: Reduction = "mean"
) -> Tensor:
    """Modality classifier's loss: tell audio embeddings (1) from visual embeddings (0)."""
    return adversarial_loss(audio_logits, visual_logits, player="discriminator", reduction=reduction)


def modality_confusion_loss(
    audio_logits: Tensor, visual_logits: Tensor, *, saturating: bool = False, reduction: Reduction = "mean"
) -> Tensor:
    """Encoders' loss against the modality classifier (audio → 0, visual → 1; Zheng et al. 2021a).

    ``saturating=True`` returns ``-modality_discriminator_loss`` (gradient reversal).
    """
    return adversarial_loss(
        audio_logits, visual_logits, player="generator", symmetric=True, saturating=saturating, reduction=reduction
    )
