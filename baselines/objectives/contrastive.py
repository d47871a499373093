"""Pairwise contrastive loss on cosine distances (survey eq. 4).

The survey prints eq. (4) as

    L_contr(x_a, x_v, Θ) = 1[y_i = y_j] cos(x_a, x_v)^2 + 1[y_i ≠ y_j] max(0, ζ - cos(x_a, x_v))^2

Taken literally this *penalises* similarity between matched pairs and rewards it between
mismatched ones, the opposite of what the text says the loss does ("minimizes the distance
of samples from the same class, maximizing it otherwise"). The printed form is the
Hadsell et al. (2006) contrastive loss with the distance replaced by a similarity. We
implement the standard form on the cosine distance ``d = 1 - cos(x_a, x_v)``:

    ℓ = 1[y_i = y_j] d^2 + 1[y_i ≠ y_j] max(0, ζ - d)^2

so matched pairs are pulled to ``d = 0`` (cos = 1) and mismatched pairs pushed to
``d >= ζ`` (cos <= 1 - ζ). Per pair this equals the square of
``torch.nn.CosineEmbeddingLoss(margin=1 - ζ)``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from avcl_bench.benchmark.errors import ConfigError, InputError

from ._common import (
    REDUCTIONS,
    Reduction,
    check_choice,
    check_labels,
    check_number,
    check_pair,
    positive_mask,
    reduce,
    similarity_matrix,
)

__all__ = ["contrastive_loss"]

NAME = "contrastive"


def contrastive_loss(
    a: Tensor,
    v: Tensor,
    labels: Tensor | None = None,
    *,
    margin: float = 1.0,
    pair_targets: Tensor | None = None,
    reduction: Reduction = "mean",
) -> Tensor:
    """Contrastive loss ``d^2`` / ``max(0, ζ - d)^2`` with ``d = 1 - cos``.

    Two ways to say which pairs match:

    * all ``B x B`` cross-modal pairs ``(a_i, v_j)`` of the batch (default): matched when
      ``i == j`` (no labels, Hu et al. 2020's paired / unpaired clips) or when
      ``y_i == y_j`` (labels, as Ma et al. 2020a); the loss averages over the ``B^2`` pairs;
    * explicit pairs (``pair_targets``): only the aligned pairs ``(a_i, v_i)`` are used
      and ``pair_targets[i]`` (bool) says whether they match, e.g. when the caller drew
      random negatives itself.

    Args:
        a: ``(B, D)`` audio embeddings ``x_a``.
        v: ``(B, D)`` visual embeddings ``x_v``.
        labels: optional ``(B,)`` classes ``y`` (all-pairs mode only).
        margin: ``ζ`` on the cosine distance, in ``[0, 2]`` (default 1.0: mismatched pairs
            are pushed to orthogonal or beyond).
        pair_targets: optional ``(B,)`` bool, explicit-pairs mode.
        reduction: ``"mean"`` over the pairs (default) or ``"sum"``.
    """
    check_choice(NAME, "reduction", reduction, REDUCTIONS)
    zeta = check_number(NAME, "margin", margin, low=0.0, high=2.0)
    a, v = check_pair(NAME, a, v)
    n = a.shape[0]
    if pair_targets is not None:
        if labels is not None:
            raise ConfigError(f"{NAME}: labels/pair_targets: give one of them, not both")
        if not isinstance(pair_targets, Tensor) or pair_targets.dtype != torch.bool:
            got = pair_targets.dtype if isinstance(pair_targets, Tensor) else type(pair_targets).__name__
            raise InputError(NAME, "pair_targets", f"expected a bool tensor, got {got}")
        if tuple(pair_targets.shape) != (n,):
            raise InputError(NAME, "pair_targets", f"expected shape ({n},), got {tuple(pair_targets.shape)}")
        match = pair_targets.to(a.device)
        dist = 1.0 - (F.normalize(a, dim=1, eps=1e-12) * F.normalize(v, dim=1, eps=1e-12)).sum(1)
    else:
        if labels is not None:
            labels = check_labels(NAME, labels, n)
        match = positive_mask(labels, n, a.device)
        dist = 1.0 - similarity_matrix(a, v, "cosine")
    terms = torch.where(match, dist.pow(2), (zeta - dist).clamp_min(0.0).pow(2))
    return reduce(terms.reshape(-1), reduction)
