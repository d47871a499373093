"""Multi-class N-pair loss (Sohn, NeurIPS 2016), cross-modal, as in Horiguchi et al. (2018).

The survey lists N-Pair Loss (NPL) among the triplet extensions that compare an anchor with
several negatives at once (§3.2 iii discussion). For N pairs ``(a_i, v_i)`` with anchor
``a_i`` (e.g. a face) and positive ``v_i`` (its voice), the other positives ``v_j`` are the
negatives of ``a_i``:

    L = 1/N Σ_i log(1 + Σ_{j≠i} exp(a_i·v_j - a_i·v_i))  [+ λ/N Σ_i (||a_i||² + ||v_i||²)]

The first term equals the softmax cross-entropy of the logits ``a·vᵀ`` with target ``i``,
i.e. InfoNCE with dot-product similarity and temperature 1.
"""
from __future__ import annotations

from torch import Tensor

from ._common import (
    Direction,
    Reduction,
    check_batch,
    check_number,
    check_options,
    directional_cross_entropy,
    non_negative_offdiagonal,
    reduce,
)

__all__ = ["npair_loss"]

NAME = "npair"


def npair_loss(
    a: Tensor,
    v: Tensor,
    labels: Tensor | None = None,
    *,
    l2_reg: float = 0.0,
    direction: Direction = "both",
    reduction: Reduction = "mean",
) -> Tensor:
    """N-pair loss on dot products of raw (unnormalised) embeddings.

    Args:
        a: ``(B, D)`` audio embeddings (anchors for ``"a2v"``).
        v: ``(B, D)`` visual embeddings; row ``i`` is the positive of ``a_i``.
        labels: optional ``(B,)`` classes; same-class items are not used as negatives
            (Sohn's multi-class N-pair sampling draws one pair per class, which makes this
            a no-op there).
        l2_reg: ``λ`` of Sohn's embedding-norm regulariser (default 0: off). The term
            ``λ (||a_i||² + ||v_i||²)`` is reduced like the loss and added once.
        direction: ``"both"`` (default, the two directional losses added), ``"a2v"``
            (audio anchors, Sohn's form) or ``"v2a"``.
        reduction: ``"mean"`` over anchors (default, the 1/N of Sohn) or ``"sum"``.
    """
    check_options(NAME, reduction=reduction, direction=direction)
    lam = check_number(NAME, "l2_reg", l2_reg, low=0.0)
    a, v, labels, same = check_batch(NAME, a, v, labels)

    logits = (a @ v.T).masked_fill(non_negative_offdiagonal(same), float("-inf"))
    total = directional_cross_entropy(logits, direction, reduction)
    if lam > 0.0:
        total = total + lam * reduce((a * a).sum(1) + (v * v).sum(1), reduction)
    return total
