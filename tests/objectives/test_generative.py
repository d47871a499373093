"""l2 (reconstruction), elbo (VAE) and adversarial (GAN / modality adversary)."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch.distributions import Normal, kl_divergence

from avcl_bench.baselines.objectives import (
    adversarial_loss,
    elbo_loss,
    gan_discriminator_loss,
    gan_generator_loss,
    gaussian_kl,
    modality_confusion_loss,
    modality_discriminator_loss,
    reconstruction_loss,
)
from avcl_bench.benchmark.errors import ConfigError, InputError


def _randn(*shape: int, seed: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


# ----------------------------------------------------------------------------- l2
def test_l2_hand_computed() -> None:
    # x = (1, 2), x_hat = (2, 0): squared errors (1, 4) -> mean 2.5, sum 5; abs errors (1, 2) -> 1.5, 3.
    x = torch.tensor([[1.0, 2.0]])
    xh = torch.tensor([[2.0, 0.0]])
    assert reconstruction_loss(x, xh).item() == pytest.approx(2.5)
    assert reconstruction_loss(x, xh, reduction="sum").item() == pytest.approx(5.0)
    assert reconstruction_loss(x, xh, p=1).item() == pytest.approx(1.5)
    assert reconstruction_loss(x, xh, p=1, reduction="sum").item() == pytest.approx(3.0)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_l2_matches_torch(reduction: str) -> None:
    x, xh = _randn(4, 3, 5, seed=50), _randn(4, 3, 5, seed=51).requires_grad_(True)
    assert torch.allclose(reconstruction_loss(x, xh, reduction=reduction), F.mse_loss(xh, x, reduction=reduction))  # type: ignore[arg-type]
    l1 = reconstruction_loss(x, xh, p=1, reduction=reduction)  # type: ignore[arg-type]
    assert torch.allclose(l1, F.l1_loss(xh, x, reduction=reduction))
    (grad,) = torch.autograd.grad(l1, xh)
    assert torch.isfinite(grad).all()


def test_l2_errors() -> None:
    with pytest.raises(InputError, match=r"^l2: x/x_hat: shape mismatch"):
        reconstruction_loss(torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(InputError, match=r"^l2: x_hat: contains NaN"):
        reconstruction_loss(torch.zeros(1, 2), torch.tensor([[0.0, float("nan")]]))
    with pytest.raises(InputError, match=r"^l2: x: is empty"):
        reconstruction_loss(torch.zeros(2, 0), torch.zeros(2, 0))
    with pytest.raises(ConfigError, match=r"^l2: p: expected 1"):
        reconstruction_loss(torch.zeros(1, 2), torch.zeros(1, 2), p=3)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- elbo
def test_elbo_hand_computed() -> None:
    # x = (1, 1), x_hat = (0, 1): gaussian reconstruction 0.5 * (1 + 0) = 0.5.
    # mu = (1, 0), logvar = (0, ln 2): KL = 0.5 * [(1 + 1 - 0 - 1) + (0 + 2 - ln 2 - 1)] = 1 - ln(2)/2.
    x = torch.tensor([[1.0, 1.0]], dtype=torch.float64)
    xh = torch.tensor([[0.0, 1.0]], dtype=torch.float64)
    mu = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    logvar = torch.tensor([[0.0, math.log(2.0)]], dtype=torch.float64)
    kl = 1 - math.log(2) / 2
    assert gaussian_kl(mu, logvar).item() == pytest.approx(kl, abs=1e-12)
    assert elbo_loss(x, xh, mu, logvar).item() == pytest.approx(0.5 + kl, abs=1e-12)
    assert elbo_loss(x, xh, mu, logvar, beta=4.0).item() == pytest.approx(0.5 + 4 * kl, abs=1e-12)
    assert elbo_loss(x, xh, mu, logvar, beta=0.0).item() == pytest.approx(0.5, abs=1e-12)


def test_elbo_kl_matches_torch_distributions() -> None:
    mu, logvar = _randn(6, 4, seed=52), _randn(6, 4, seed=53)
    ref = kl_divergence(Normal(mu, torch.exp(0.5 * logvar)), Normal(torch.zeros_like(mu), torch.ones_like(mu))).sum(1)
    assert torch.allclose(gaussian_kl(mu, logvar), ref, atol=1e-12)


def test_elbo_gaussian_term_is_unit_variance_nll_minus_constant() -> None:
    x, xh = _randn(5, 2, 3, seed=54), _randn(5, 2, 3, seed=55)
    mu, logvar = _randn(5, 2, seed=56), _randn(5, 2, seed=57)
    nll = -Normal(xh, torch.ones_like(xh)).log_prob(x).reshape(5, -1).sum(1)
    const = 0.5 * 6 * math.log(2 * math.pi)
    kl = kl_divergence(Normal(mu, torch.exp(0.5 * logvar)), Normal(0.0, 1.0)).sum(1)
    ref = (nll - const + kl).sum()
    assert elbo_loss(x, xh, mu, logvar, reduction="sum").item() == pytest.approx(ref.item(), rel=1e-12)


def test_elbo_bernoulli_matches_bce() -> None:
    x = torch.rand(4, 7, generator=torch.Generator().manual_seed(58), dtype=torch.float64)
    logits = _randn(4, 7, seed=59).requires_grad_(True)
    mu, logvar = _randn(4, 3, seed=60).requires_grad_(True), _randn(4, 3, seed=61).requires_grad_(True)
    got = elbo_loss(x, logits, mu, logvar, likelihood="bernoulli")
    ref = F.binary_cross_entropy_with_logits(logits, x, reduction="sum") / 4 + gaussian_kl(mu, logvar).mean()
    assert got.item() == pytest.approx(ref.item(), rel=1e-12)
    grads = torch.autograd.grad(got, (logits, mu, logvar))
    assert all(torch.isfinite(g).all() for g in grads)


def test_elbo_errors() -> None:
    x = torch.zeros(2, 3)
    z = torch.zeros(2, 2)
    with pytest.raises(InputError, match=r"^elbo: mu/logvar: shape mismatch"):
        elbo_loss(x, x, z, torch.zeros(2, 3))
    with pytest.raises(InputError, match=r"^elbo: mu: batch size 3 differs from x's 2"):
        elbo_loss(x, x, torch.zeros(3, 2), torch.zeros(3, 2))
    with pytest.raises(InputError, match=r"^elbo: x: bernoulli likelihood needs targets in \[0, 1\]"):
        elbo_loss(x + 2, x, z, z, likelihood="bernoulli")
    with pytest.raises(InputError, match=r"^elbo: logvar: contains NaN"):
        elbo_loss(x, x, z, torch.tensor([[0.0, float("inf")], [0.0, 0.0]]))
    with pytest.raises(ConfigError, match=r"^elbo: beta: must be >= 0.0"):
        elbo_loss(x, x, z, z, beta=-1.0)


# -------------------------------------------------------------------- adversarial
def test_adversarial_hand_computed() -> None:
    # sigma(ln 3) = 3/4.  Discriminator, real = ln 3: -log(3/4) = ln(4/3); fake = ln 3: -log(1/4) = ln 4.
    # Generator (non-saturating) on fake = ln 3: -log(3/4) = ln(4/3); saturating: log(1/4) = -ln 4.
    r = torch.tensor([math.log(3.0)], dtype=torch.float64)
    f = torch.tensor([math.log(3.0)], dtype=torch.float64)
    assert gan_discriminator_loss(r, f).item() == pytest.approx(math.log(4 / 3) + math.log(4), abs=1e-12)
    assert gan_generator_loss(f).item() == pytest.approx(math.log(4 / 3), abs=1e-12)
    assert gan_generator_loss(f, saturating=True).item() == pytest.approx(-math.log(4), abs=1e-12)
    # Zero logits: every BCE term is ln 2.
    zero = torch.zeros(3)
    assert adversarial_loss(zero, zero[:2]).item() == pytest.approx(2 * math.log(2), abs=1e-6)
    assert adversarial_loss(zero, zero[:2], reduction="sum").item() == pytest.approx(5 * math.log(2), abs=1e-6)


def test_adversarial_matches_bce_with_logits() -> None:
    real, fake = _randn(5, 1, seed=62), _randn(7, seed=63)
    bce = torch.nn.BCEWithLogitsLoss()
    ones, zeros = torch.ones, torch.zeros
    assert gan_discriminator_loss(real, fake).item() == pytest.approx(
        (bce(real.reshape(-1), ones(5, dtype=torch.float64)) + bce(fake, zeros(7, dtype=torch.float64))).item(), rel=1e-12
    )
    assert gan_generator_loss(fake).item() == pytest.approx(bce(fake, ones(7, dtype=torch.float64)).item(), rel=1e-12)


def test_modality_adversary() -> None:
    audio, visual = _randn(6, seed=64).requires_grad_(True), _randn(6, seed=65).requires_grad_(True)
    bce = torch.nn.BCEWithLogitsLoss()
    one, zero = torch.ones(6, dtype=torch.float64), torch.zeros(6, dtype=torch.float64)
    d = modality_discriminator_loss(audio, visual)
    assert d.item() == pytest.approx((bce(audio, one) + bce(visual, zero)).item(), rel=1e-12)
    c = modality_confusion_loss(audio, visual)  # labels flipped for both modalities
    assert c.item() == pytest.approx((bce(audio, zero) + bce(visual, one)).item(), rel=1e-12)
    assert modality_confusion_loss(audio, visual, saturating=True).item() == pytest.approx(-d.item(), rel=1e-12)
    # Gradient directions: the discriminator pushes audio logits up, the encoders push them down.
    (gd,) = torch.autograd.grad(d, audio)
    (gc,) = torch.autograd.grad(c, audio)
    assert (gd < 0).all() and (gc > 0).all()
    # A confused discriminator (zero logits) is the fixed point of both players: 2 ln 2 each.
    z = torch.zeros(4)
    assert modality_discriminator_loss(z, z).item() == pytest.approx(modality_confusion_loss(z, z).item())


def test_adversarial_errors() -> None:
    x = torch.zeros(3)
    with pytest.raises(InputError, match=r"^adversarial: real_logits: required for player='discriminator'"):
        adversarial_loss(None, x)
    with pytest.raises(InputError, match=r"^adversarial: fake_logits: expected \(B,\) or \(B, 1\) logits"):
        adversarial_loss(x, torch.zeros(3, 2))
    with pytest.raises(InputError, match=r"^adversarial: real_logits: contains NaN"):
        adversarial_loss(torch.tensor([float("nan")]), x)
    with pytest.raises(InputError, match=r"^adversarial: fake_logits: needs at least 1 item"):
        gan_generator_loss(torch.zeros(0))
    with pytest.raises(ConfigError, match=r"^adversarial: symmetric/saturating: only apply to player='generator'"):
        adversarial_loss(x, x, saturating=True)
    with pytest.raises(ConfigError, match=r"^adversarial: player: expected one of"):
        adversarial_loss(x, x, player="critic")  # type: ignore[arg-type]
