"""Deep CCA objective: negative total canonical correlation of a batch (Andrew et al., 2013).

Table 1 lists DCCA for [Rajan et al., 2021]; the survey's introduction and §3.1 discuss
CCA-style correlation constraints between the audio sub-space ``f(x_a; W_a)`` and the
visual sub-space ``g(x_v; W_v)``. With centred batches ``H_a`` (B x Da) and ``H_v``
(B x Dv):

    Σ_aa = H_aᵀH_a/(B-1) + r1·I,   Σ_vv = H_vᵀH_v/(B-1) + r2·I,   Σ_av = H_aᵀH_v/(B-1)
    T    = Σ_aa^{-1/2} Σ_av Σ_vv^{-1/2}
    corr = Σ_k σ_k(T)      (the canonical correlations are the singular values of T)

The loss is ``-corr`` (optionally only the ``top_k`` largest correlations, as in Wang et
al.'s 2015 variant). For numerical stability the whitening uses Cholesky factors instead of
an eigendecomposition (``L⁻¹ Σ_av L_v⁻ᵀ`` has the same singular values as ``T``, and its
gradient has no eigen-gap terms), and the computation runs in float64.
"""
from __future__ import annotations

import torch
from torch import Tensor

from avcl_bench.benchmark.errors import ConfigError, InputError

from ._common import REDUCTIONS, Reduction, check_choice, check_number, check_pair

__all__ = ["canonical_correlations", "dcca_loss"]

NAME = "dcca"


def _whitener(h: Tensor, r: float, field: str) -> Tensor:
    """Lower Cholesky factor of the regularised covariance of the centred batch ``h``."""
    cov = h.T @ h / (h.shape[0] - 1)
    cov = cov + r * torch.eye(h.shape[1], dtype=h.dtype, device=h.device)
    chol, info = torch.linalg.cholesky_ex(cov)
    if int(info) != 0:
        hint = "r1" if field == "a" else "r2"
        raise InputError(
            NAME, field, f"covariance is singular (rank-deficient or constant batch); use {hint} > 0 or a larger batch"
        )
    return chol


def canonical_correlations(a: Tensor, v: Tensor, *, r1: float = 1e-3, r2: float = 1e-3) -> Tensor:
    """All ``min(Da, Dv)`` regularised canonical correlations of the batch, descending (float64)."""
    a, v = check_pair(NAME, a, v, min_len=2, same_dim=False)
    r1 = check_number(NAME, "r1", r1, low=0.0)
    r2 = check_number(NAME, "r2", r2, low=0.0)
    ha = a.double() - a.double().mean(0, keepdim=True)
    hv = v.double() - v.double().mean(0, keepdim=True)
    la = _whitener(ha, r1, "a")
    lv = _whitener(hv, r2, "v")
    cross = ha.T @ hv / (ha.shape[0] - 1)
    x = torch.linalg.solve_triangular(la, cross, upper=False)  # La^{-1} Σ_av
    t = torch.linalg.solve_triangular(lv, x.T, upper=False).T  # La^{-1} Σ_av Lv^{-T}
    return torch.linalg.svdvals(t)


def dcca_loss(
    a: Tensor,
    v: Tensor,
    *,
    r1: float = 1e-3,
    r2: float = 1e-3,
    top_k: int | None = None,
    reduction: Reduction = "sum",
) -> Tensor:
    """Negative sum (or mean) of the canonical correlations between ``a`` and ``v``.

    Args:
        a: ``(B, Da)`` audio embeddings, ``B >= 2``.
        v: ``(B, Dv)`` visual embeddings (``Dv`` may differ from ``Da``).
        r1, r2: ridge terms added to the audio / visual covariances (>= 0; > 0 keeps the
            whitening defined when ``B - 1 < D`` or a batch is constant). Default 1e-3.
        top_k: use only the ``k`` largest correlations (``1 <= k <= min(Da, Dv)``); default
            all of them.
        reduction: ``"sum"`` (default, DCCA's total correlation) or ``"mean"`` over the
            used correlations. The loss is a batch statistic: there is no per-item term.

    Returns:
        Scalar ``-Σ ρ_k`` in the dtype of ``a``; in ``[-k, 0]`` (lower is better).
    """
    check_choice(NAME, "reduction", reduction, REDUCTIONS)
    corrs = canonical_correlations(a, v, r1=r1, r2=r2)
    k = corrs.shape[0]
    if top_k is not None:
        if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= k:
            raise ConfigError(f"{NAME}: top_k: expected an integer in [1, {k}], got {top_k!r}")
        k = top_k
    used = corrs[:k]
    total = -(used.sum() if reduction == "sum" else used.mean())
    return total.to(a.dtype)
