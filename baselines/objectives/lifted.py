"""Lifted structured loss (Song et al., CVPR 2016), cross-modal, as used by Zheng et al. (2021a).

The survey lists the Lifted Structured Loss (LSL) among the triplet extensions that compare
each positive pair with many negatives (§3.2 iii discussion; "LSL + Adv.L" for
[Zheng et al., 2021a] in Table 1). Song et al.'s smooth form, for a positive pair (i, j)
with euclidean distance D_ij:

    J_ij = log( Σ_{(i,k)∈N} exp(α - D_ik) + Σ_{(j,l)∈N} exp(α - D_jl) ) + D_ij
    L    = 1/(2|P|) Σ_{(i,j)∈P} max(0, J_ij)^2

Cross-modal reading implemented here: a positive pair is (audio a_i, visual v_j) with
``i == j`` (or the same class when labels are given); the negatives of ``a_i`` are the
visual embeddings ``v_k`` of other items/classes and the negatives of ``v_j`` the audio
embeddings ``a_l`` of other items/classes, so every distance is between modalities.
"""
from __future__ import annotations

import torch
from torch import Tensor

from ._common import (
    REDUCTIONS,
    Reduction,
    check_batch,
    check_choice,
    check_number,
    euclidean_distances,
    reduce,
)

__all__ = ["lifted_structured_loss"]

NAME = "lifted"


def lifted_structured_loss(
    a: Tensor,
    v: Tensor,
    labels: Tensor | None = None,
    *,
    margin: float = 1.0,
    reduction: Reduction = "mean",
) -> Tensor:
    """Smooth lifted structured loss over all cross-modal positive pairs of the batch.

    Args:
        a: ``(B, D)`` audio embeddings.
        v: ``(B, D)`` visual embeddings; row ``i`` matches ``a_i``.
        labels: optional ``(B,)`` classes (positives = same class, negatives = others).
        margin: ``α`` (>= 0; Song et al. use 1.0, the default).
        reduction: ``"mean"`` = ``1/(2|P|) Σ max(0, J)^2`` (Song et al., default) or
            ``"sum"`` = ``Σ max(0, J)^2 / 2``. Positive pairs whose two ends have no
            negative at all are left out of P.
    """
    check_choice(NAME, "reduction", reduction, REDUCTIONS)
    alpha = check_number(NAME, "margin", margin, low=0.0)
    a, v, labels, pos = check_batch(NAME, a, v, labels)
    neg = ~pos

    d = euclidean_distances(a, v)
    # A finite stand-in for log(0) keeps logsumexp and its gradient finite on rows/columns
    # without negatives (exp(fill - x) underflows to exactly 0).
    fill = torch.finfo(d.dtype).min / 4
    z = torch.where(neg, alpha - d, torch.full_like(d, fill))
    lse_anchor_a = torch.logsumexp(z, dim=1)  # negatives of a_i: v_k, k ∉ class(i)
    lse_anchor_v = torch.logsumexp(z, dim=0)  # negatives of v_j: a_l, l ∉ class(j)
    j = torch.logaddexp(lse_anchor_a.unsqueeze(1), lse_anchor_v.unsqueeze(0)) + d
    has_neg = neg.any(1)
    valid = pos & (has_neg.unsqueeze(1) | has_neg.unsqueeze(0))
    terms = 0.5 * j[valid].clamp_min(0.0).pow(2)
    return reduce(terms, reduction)
