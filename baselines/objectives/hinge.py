"""Bidirectional hinge (max-margin ranking) loss with in-batch negatives (survey eq. 1).

The survey prints eq. (1) as

    L(c, i, θ) = Σ_{(c,i)∈β} ( max(0, cos(c, i) + α) + max(0, cos(c, i) + α) )

which lost its primes and minus signs in extraction: as printed, both terms are identical
and would only push matched pairs apart. The loss of the cited work [Merkx et al., 2019]
is the standard bidirectional hinge over mismatched pairs of the mini-batch β:

    L = Σ_{(c,i)∈β} Σ_{c'≠c, i'≠i} max(0, cos(c, i') - cos(c, i) + α)
                                  + max(0, cos(c', i) - cos(c, i) + α)

with ``c`` the audio (spoken caption) embedding ``f(x_a; W_a)``, ``i`` the visual (image)
embedding ``g(x_v; W_v)`` of the same item, ``c'``/``i'`` the other items of the batch and
``α`` the margin. That is what :func:`hinge_loss` implements.
"""
from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from ._common import (
    DIRECTIONS,
    REDUCTIONS,
    SIMILARITIES,
    Direction,
    Reduction,
    Similarity,
    check_batch,
    check_choice,
    check_number,
    reduce,
    similarity_matrix,
)

__all__ = ["hinge_loss"]

NAME = "hinge"
NEGATIVES: tuple[str, ...] = ("all", "hardest")


def hinge_loss(
    a: Tensor,
    v: Tensor,
    labels: Tensor | None = None,
    *,
    margin: float = 0.2,
    similarity: Similarity = "cosine",
    negatives: Literal["all", "hardest"] = "all",
    direction: Direction = "both",
    reduction: Reduction = "sum",
) -> Tensor:
    """Bidirectional margin ranking loss between matched and in-batch mismatched pairs.

    For each item ``i`` of the batch (the matched pair ``(a_i, v_i)``) and each negative
    ``j``:

    * a→v term (audio anchor, wrong visual ``i'``): ``max(0, S[i, j] - S[i, i] + α)``
    * v→a term (visual anchor, wrong audio ``c'``): ``max(0, S[j, i] - S[i, i] + α)``

    where ``S[i, j] = sim(a_i, v_j)``. The per-item loss sums the terms over the negatives
    (``negatives="all"``, eq. 1) or keeps only the largest one (``"hardest"``, the VSE++
    variant of Faghri et al. 2018) and adds the requested directions.

    Args:
        a: ``(B, D)`` audio embeddings ``c = f(x_a; W_a)``.
        v: ``(B, D)`` visual embeddings ``i = g(x_v; W_v)``; row ``i`` matches ``a_i``.
        labels: optional ``(B,)`` classes; pairs of the same class are then not used as
            negatives (the positive of ``a_i`` stays ``v_i``).
        margin: ``α`` (>= 0). Default 0.2 is a common choice, not a value from the survey.
        similarity: ``"cosine"`` (survey) or ``"dot"``.
        negatives: ``"all"`` (default) or ``"hardest"``.
        direction: ``"both"`` (default, eq. 1), ``"a2v"`` or ``"v2a"``.
        reduction: ``"sum"`` over the batch (default, as eq. 1 sums over β) or ``"mean"``
            (divided by ``B``).
    """
    check_choice(NAME, "reduction", reduction, REDUCTIONS)
    check_choice(NAME, "similarity", similarity, SIMILARITIES)
    check_choice(NAME, "negatives", negatives, NEGATIVES)
    check_choice(NAME, "direction", direction, DIRECTIONS)
    alpha = check_number(NAME, "margin", margin, low=0.0)
    a, v, labels, same = check_batch(NAME, a, v, labels)
    neg = ~same

    s = similarity_matrix(a, v, similarity)
    pos = s.diagonal()
    per_item = torch.zeros_like(pos)
    zero = torch.zeros((), dtype=s.dtype, device=s.device)
    if direction in ("both", "a2v"):
        cost = torch.where(neg, (s - pos.unsqueeze(1) + alpha).clamp_min(0.0), zero)
        per_item = per_item + (cost.sum(1) if negatives == "all" else cost.amax(1))
    if direction in ("both", "v2a"):
        cost = torch.where(neg, (s - pos.unsqueeze(0) + alpha).clamp_min(0.0), zero)
        per_item = per_item + (cost.sum(0) if negatives == "all" else cost.amax(0))
    return reduce(per_item, reduction)
