"""InfoNCE with in-batch negatives and temperature (survey eq. 5).

Eq. (5) of the survey, for an audio embedding ``x_a``, its paired visual embedding ``x_v``
and a set N of negatives:

    L_nce(x_a, x_v) = -log[ e^{cos(x_a, x_v)/τ} / (e^{cos(x_a, x_v)/τ} + Σ_{x'∈N} e^{cos(x_a, x')/τ}) ]

The extracted text prints the negative term as ``cos(x_a, x_v)``; the sum runs over the
negatives ``x'`` (van den Oord et al., 2018), which is what we implement. The negatives of
``a_i`` are the other visual embeddings of the batch (minus same-class ones when labels are
given). The loss is then the softmax cross-entropy of the logits ``S/τ`` with target
``i``; ``direction="both"`` adds the symmetric visual→audio term.
"""
from __future__ import annotations

from torch import Tensor

from ._common import (
    Direction,
    Reduction,
    Similarity,
    check_batch,
    check_number,
    check_options,
    directional_cross_entropy,
    non_negative_offdiagonal,
    similarity_matrix,
)

__all__ = ["infonce_loss"]

NAME = "infonce"


def infonce_loss(
    a: Tensor,
    v: Tensor,
    labels: Tensor | None = None,
    *,
    temperature: float = 0.07,
    similarity: Similarity = "cosine",
    direction: Direction = "both",
    reduction: Reduction = "mean",
) -> Tensor:
    """InfoNCE / NT-Xent between paired audio and visual embeddings.

    Args:
        a: ``(B, D)`` audio embeddings ``x_a``.
        v: ``(B, D)`` visual embeddings ``x_v``; row ``i`` is the positive of ``a_i``.
        labels: optional ``(B,)`` classes; same-class items are dropped from the negatives
            (they are neither positives nor negatives of each other).
        temperature: ``τ`` > 0 (default 0.07, a common choice; not from the survey).
        similarity: ``"cosine"`` (eq. 5, default) or ``"dot"``.
        direction: ``"both"`` (default: a→v + v→a, added), ``"a2v"`` (eq. 5) or ``"v2a"``.
        reduction: ``"mean"`` over anchors (default) or ``"sum"``.
    """
    check_options(NAME, reduction=reduction, direction=direction, similarity=similarity)
    tau = check_number(NAME, "temperature", temperature, low=0.0, low_open=True)
    a, v, labels, same = check_batch(NAME, a, v, labels)

    logits = (similarity_matrix(a, v, similarity) / tau).masked_fill(non_negative_offdiagonal(same), float("-inf"))
    return directional_cross_entropy(logits, direction, reduction)
