"""MIL-NCE: InfoNCE with several positives per anchor (Miech et al., 2020; Alayrac et al., 2020).

The survey (§3.2 v) names Multiple Instance NCE as the extension of eq. (5) that compares an
anchor with several positive instances [Akbari et al., 2021; Alayrac et al., 2020]. For an
anchor ``x`` with positive set P and negative set N:

    L = -log[ Σ_{y∈P} e^{s(x, y)/τ} / (Σ_{y∈P} e^{s(x, y)/τ} + Σ_{y'∈N} e^{s(x, y')/τ}) ]

Negatives are all candidates of the other modality that are not positives. With exactly
one positive per anchor this is InfoNCE (:func:`~baselines.objectives.infonce.infonce_loss`).
Miech et al. pool the anchor's row and column of the score matrix into one denominator;
here each direction normalises over its own row (a→v) or column (v→a) and
``direction="both"`` adds the two, matching how the other pairwise objectives of this
package are made symmetric.
"""
from __future__ import annotations

import torch
from torch import Tensor

from avcl_bench.benchmark.errors import ConfigError, InputError

from ._common import (
    Direction,
    Reduction,
    Similarity,
    check_labels,
    check_number,
    check_options,
    check_tensor,
    directional_cross_entropy,
    positive_mask,
    require_negatives,
    similarity_matrix,
)

__all__ = ["milnce_loss"]

NAME = "milnce"


def _check_positives(positives: object, na: int, nv: int, device: torch.device) -> Tensor:
    if not isinstance(positives, Tensor) or positives.dtype != torch.bool:
        got = positives.dtype if isinstance(positives, Tensor) else type(positives).__name__
        raise InputError(NAME, "positives", f"expected a bool tensor, got {got}")
    if tuple(positives.shape) != (na, nv):
        raise InputError(NAME, "positives", f"expected shape ({na}, {nv}) (a rows x v rows), got {tuple(positives.shape)}")
    return positives.to(device)


def milnce_loss(
    a: Tensor,
    v: Tensor,
    labels: Tensor | None = None,
    *,
    positives: Tensor | None = None,
    temperature: float = 0.07,
    similarity: Similarity = "cosine",
    direction: Direction = "both",
    reduction: Reduction = "mean",
) -> Tensor:
    """Multiple-instance NCE over the ``(Na, Nv)`` score matrix ``S / τ``.

    Args:
        a: ``(Na, D)`` audio embeddings.
        v: ``(Nv, D)`` visual embeddings (``Nv`` may differ from ``Na`` with ``positives``,
            e.g. several candidate clips per audio).
        labels: optional ``(B,)`` classes (needs ``Na == Nv == B``): positives of ``a_i``
            are all ``v_j`` with ``y_j == y_i``.
        positives: optional ``(Na, Nv)`` bool matrix of positive pairs (exclusive with
            ``labels``). Without either, positives are the aligned pairs ``(a_i, v_i)``.
        temperature: ``τ`` > 0 (default 0.07).
        similarity: ``"cosine"`` (default) or ``"dot"``.
        direction: ``"both"`` (default: a→v + v→a), ``"a2v"`` (one term per audio
            anchor, over its row) or ``"v2a"`` (one per visual anchor, over its column).
        reduction: ``"mean"`` over anchors (default) or ``"sum"``.

    Every anchor of a used direction needs at least one positive, and the batch needs at
    least one negative pair.
    """
    check_options(NAME, reduction=reduction, direction=direction, similarity=similarity)
    tau = check_number(NAME, "temperature", temperature, low=0.0, low_open=True)
    a = check_tensor(NAME, "a", a, ndim=2)
    v = check_tensor(NAME, "v", v, ndim=2)
    if a.shape[1] != v.shape[1] or a.shape[1] == 0:
        raise InputError(NAME, "a/v", f"embedding sizes must match and be > 0 (a: {a.shape[1]}, v: {v.shape[1]})")
    if a.dtype != v.dtype or a.device != v.device:
        raise InputError(NAME, "a/v", f"dtype/device mismatch ({a.dtype} on {a.device} vs {v.dtype} on {v.device})")
    na, nv = a.shape[0], v.shape[0]
    if positives is not None:
        if labels is not None:
            raise ConfigError(f"{NAME}: labels/positives: give one of them, not both")
        pos = _check_positives(positives, na, nv, a.device)
    else:
        if na != nv:
            raise InputError(NAME, "a/v", f"batch size mismatch (a has {na} rows, v has {nv}); pass positives")
        if labels is not None:
            labels = check_labels(NAME, labels, na)
        pos = positive_mask(labels, na, a.device)
    if not bool((~pos).any()):
        if positives is not None:
            raise InputError(NAME, "positives", "every pair is a positive, so there are no negatives")
        require_negatives(NAME, a, ~pos, labels)

    for dim, what in ((1, "a2v"), (0, "v2a")):
        if direction not in (what, "both"):
            continue
        has_pos = pos.any(dim)
        if not bool(has_pos.all()):
            k = int(torch.nonzero(~has_pos)[0, 0])
            kind = "row (audio anchor)" if dim == 1 else "column (visual anchor)"
            raise InputError(NAME, "positives", f"{kind} {k} has no positive")
    return directional_cross_entropy(similarity_matrix(a, v, similarity) / tau, direction, reduction, positives=pos)
