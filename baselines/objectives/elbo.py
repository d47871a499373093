"""Negative evidence lower bound of a Gaussian VAE (Kingma & Welling, 2014).

Table 1 lists ELBO objectives for VAE-based methods [Zhu et al., 2021b; Zhang et al.,
2021] (survey §3.1 "Auto-Encoders", vi). For an encoder giving ``q(z|x) = N(μ, diag σ²)``
(parameterised by ``logvar = log σ²``) and a decoder output ``x̂``:

    -ELBO(x) = -E_q[log p(x|z)] + β · KL(N(μ, σ²) || N(0, I))
    KL       = ½ Σ_k (μ_k² + σ_k² - log σ_k² - 1)

``β = 1`` is the plain ELBO; ``β ≠ 1`` the β-VAE weighting.
"""
from __future__ import annotations

from typing import Literal

import torch.nn.functional as F
from torch import Tensor

from avcl_bench.benchmark.errors import InputError

from ._common import REDUCTIONS, Reduction, check_choice, check_number, check_tensor, reduce

__all__ = ["elbo_loss", "gaussian_kl"]

NAME = "elbo"
LIKELIHOODS: tuple[str, ...] = ("gaussian", "bernoulli")


def gaussian_kl(mu: Tensor, logvar: Tensor) -> Tensor:
    """Per-item ``KL(N(μ, diag exp(logvar)) || N(0, I))``, shape ``(B,)``, closed form."""
    mu = check_tensor(NAME, "mu", mu, ndim=2)
    logvar = check_tensor(NAME, "logvar", logvar, ndim=2)
    if mu.shape != logvar.shape:
        raise InputError(NAME, "mu/logvar", f"shape mismatch ({tuple(mu.shape)} vs {tuple(logvar.shape)})")
    return 0.5 * (mu.pow(2) + logvar.exp() - logvar - 1.0).sum(1)


def elbo_loss(
    x: Tensor,
    x_hat: Tensor,
    mu: Tensor,
    logvar: Tensor,
    *,
    beta: float = 1.0,
    likelihood: Literal["gaussian", "bernoulli"] = "gaussian",
    reduction: Reduction = "mean",
) -> Tensor:
    """Negative ELBO = reconstruction negative log-likelihood + ``β`` · KL, per item.

    Reconstruction term per item (summed over all features of the item):

    * ``"gaussian"`` (default): ``½ ||x - x̂||²``, the negative log-likelihood of
      ``N(x̂, I)`` without its constant ``D/2 · log 2π``;
    * ``"bernoulli"``: binary cross-entropy with ``x̂`` as *logits* and ``x`` in ``[0, 1]``.

    Args:
        x: ``(B, ...)`` data.
        x_hat: decoder output, same shape as ``x``.
        mu: ``(B, Z)`` posterior means.
        logvar: ``(B, Z)`` posterior log-variances ``log σ²``.
        beta: KL weight ``β`` (>= 0, default 1).
        likelihood: ``"gaussian"`` or ``"bernoulli"``.
        reduction: ``"mean"`` over the batch (default) or ``"sum"``.
    """
    check_choice(NAME, "reduction", reduction, REDUCTIONS)
    check_choice(NAME, "likelihood", likelihood, LIKELIHOODS)
    b = check_number(NAME, "beta", beta, low=0.0)
    x = check_tensor(NAME, "x", x, ndim=tuple(range(1, 9)))
    x_hat = check_tensor(NAME, "x_hat", x_hat, ndim=tuple(range(1, 9)))
    if x.shape != x_hat.shape:
        raise InputError(NAME, "x/x_hat", f"shape mismatch ({tuple(x.shape)} vs {tuple(x_hat.shape)})")
    kl = gaussian_kl(mu, logvar)
    if kl.shape[0] != x.shape[0]:
        raise InputError(NAME, "mu", f"batch size {kl.shape[0]} differs from x's {x.shape[0]}")
    xf, xh = x.reshape(x.shape[0], -1), x_hat.reshape(x.shape[0], -1)
    if likelihood == "gaussian":
        rec = 0.5 * (xf - xh).pow(2).sum(1)
    else:
        if bool(((xf < 0) | (xf > 1)).any()):
            raise InputError(NAME, "x", "bernoulli likelihood needs targets in [0, 1]")
        rec = F.binary_cross_entropy_with_logits(xh, xf, reduction="none").sum(1)
    return reduce(rec + b * kl, reduction)
