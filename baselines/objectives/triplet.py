"""Cross-modal triplet loss with in-batch negative mining (survey eq. 3).

Eq. (3) of the survey:

    L_triplet(x, x+, x-) = Σ_{x∈X} max(0, d_pos - d_neg + ζ),
    d_pos = ||f(x) - f(x+)||_2^2,   d_neg = ||f(x) - f(x-)||_2^2

Here the anchor comes from one modality and the positive/negative from the other, in both
directions as in Pretet et al. (2021): audio anchors ``f(x_a; W_a)`` against visual
candidates ``g(x_v; W_v)`` and vice versa. Without labels the positive of anchor ``i`` is
the other modality of the same item and every other item is a negative; with labels
(Zeng et al., 2020) every same-class item of the other modality is a positive and every
other-class item a negative.
"""
from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from avcl_bench.benchmark.errors import ConfigError

from ._common import (
    DIRECTIONS,
    REDUCTIONS,
    Direction,
    Reduction,
    check_batch,
    check_choice,
    check_number,
    directions,
    euclidean_distances,
    reduce,
    squared_distances,
)

__all__ = ["triplet_loss"]

NAME = "triplet"
MINING: tuple[str, ...] = ("all", "hard", "semi-hard", "random")


def _directional_terms(
    d: Tensor, pos: Tensor, neg: Tensor, margin: float, mining: str, generator: torch.Generator | None
) -> Tensor:
    """Hinge terms ``max(0, d_pos - d_neg + ζ)`` of one direction (anchors are rows of ``d``)."""
    has_neg = neg.any(1)
    if mining == "hard":
        # Batch-hard (Hermans et al., 2017): farthest positive, closest negative per anchor.
        inf = torch.tensor(float("inf"), dtype=d.dtype, device=d.device)
        d_pos = torch.where(pos, d, -inf).amax(1)
        d_neg = torch.where(neg, d, inf).amin(1)
        return (d_pos[has_neg] - d_neg[has_neg] + margin).clamp_min(0.0)
    valid_pairs = pos & has_neg.unsqueeze(1)  # (anchor, positive) pairs that have a negative
    if mining == "all":
        # terms[i, j, k] for anchor i, positive j, negative k: O(B^3) memory.
        terms = (d.unsqueeze(2) - d.unsqueeze(1) + margin).clamp_min(0.0)
        valid = valid_pairs.unsqueeze(2) & neg.unsqueeze(1)
        return terms[valid]
    if mining == "semi-hard":
        # FaceNet (Schroff et al., 2015): the closest negative farther than the positive;
        # when there is none, the farthest negative (the fallback of TF's semi-hard loss).
        inf = torch.tensor(float("inf"), dtype=d.dtype, device=d.device)
        farther = neg.unsqueeze(1) & (d.unsqueeze(1) > d.unsqueeze(2))  # [i, j, k]
        semi = torch.where(farther, d.unsqueeze(1), inf).amin(2)
        fallback = torch.where(neg, d, -inf).amax(1, keepdim=True).expand_as(semi)
        d_neg = torch.where(farther.any(2), semi, fallback)
        return (d - d_neg + margin).clamp_min(0.0)[valid_pairs]
    # random: one uniformly drawn in-batch negative per (anchor, positive) pair.
    anchor_idx, pos_idx = torch.nonzero(valid_pairs, as_tuple=True)
    weights = neg[anchor_idx].to(d.dtype)
    neg_idx = torch.multinomial(weights, 1, generator=generator).squeeze(1)
    return (d[anchor_idx, pos_idx] - d[anchor_idx, neg_idx] + margin).clamp_min(0.0)


def triplet_loss(
    a: Tensor,
    v: Tensor,
    labels: Tensor | None = None,
    *,
    margin: float = 0.2,
    squared: bool = True,
    mining: Literal["all", "hard", "semi-hard", "random"] = "all",
    direction: Direction = "both",
    reduction: Reduction = "sum",
    generator: torch.Generator | None = None,
) -> Tensor:
    """Triplet margin loss with cross-modal anchors and in-batch negatives.

    Each term is ``max(0, d(x, x+) - d(x, x-) + ζ)`` with ``d`` the squared euclidean
    distance of eq. 3 (``squared=False``: plain euclidean distance, the distance of
    ``torch.nn.TripletMarginLoss``). Which triplets are used (per direction):

    * ``"all"``: every (anchor, positive, negative) triplet of the batch (O(B^3) memory);
    * ``"hard"``: per anchor, its farthest positive and closest negative (batch-hard);
    * ``"semi-hard"``: per (anchor, positive), the closest negative with
      ``d_neg > d_pos``, or the farthest negative if there is none;
    * ``"random"``: per (anchor, positive), one negative drawn uniformly (``generator``
      makes it reproducible).

    Anchors without any negative (all items of their class) contribute no term.

    Args:
        a: ``(B, D)`` audio embeddings.
        v: ``(B, D)`` visual embeddings; row ``i`` matches ``a_i``.
        labels: optional ``(B,)`` classes: positives = same class, negatives = other classes.
        margin: ``ζ`` (>= 0). Default 0.2 (FaceNet's) is not from the survey.
        squared: squared euclidean distances (default, eq. 3) or plain ones.
        mining: ``"all"`` (default), ``"hard"``, ``"semi-hard"`` or ``"random"``.
        direction: ``"both"`` (default: audio anchors + visual anchors, summed), ``"a2v"``
            (audio anchors) or ``"v2a"`` (visual anchors).
        reduction: ``"sum"`` of the terms (default, eq. 3 sums over anchors) or ``"mean"``
            over the terms; computed per direction, then the directions are added.
        generator: random source for ``mining="random"`` (on the embeddings' device).
    """
    check_choice(NAME, "reduction", reduction, REDUCTIONS)
    check_choice(NAME, "mining", mining, MINING)
    check_choice(NAME, "direction", direction, DIRECTIONS)
    zeta = check_number(NAME, "margin", margin, low=0.0)
    if not isinstance(squared, bool):
        raise ConfigError(f"{NAME}: squared: expected True or False, got {squared!r}")
    a, v, labels, pos = check_batch(NAME, a, v, labels)
    neg = ~pos

    if mining == "random" and generator is not None and generator.device != a.device:
        raise ConfigError(f"{NAME}: generator: is on {generator.device} but the embeddings are on {a.device}")
    d = squared_distances(a, v) if squared else euclidean_distances(a, v)
    total = torch.zeros((), dtype=d.dtype, device=d.device)
    for transpose in directions(direction):
        terms = _directional_terms(d.T if transpose else d, pos, neg, zeta, mining, generator)
        total = total + reduce(terms, reduction)
    return total
