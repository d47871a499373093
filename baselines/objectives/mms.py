"""Masked Margin Softmax (MMS) loss and its increasing margin schedule (survey eq. 2).

Eq. (2) of the survey, for a mini-batch of size B, with ``s(i, j)`` the similarity of
audio ``i`` and visual ``j`` (``cos`` in the survey):

    L_mms = L_av + L_va
    L_av  = -1/B Σ_i log[ e^{s(i,i) - σ} / (e^{s(i,i) - σ} + Σ_j M_ij e^{s(i,j)}) ]
    L_va  = -1/B Σ_j log[ e^{s(j,j) - σ} / (e^{s(j,j) - σ} + Σ_i M_ij e^{s(i,j)}) ]

The extracted text prints both inner sums over ``i`` and the second numerator as
``cos(jj)``; we read it as in Ilharco et al. (2019): L_av normalises each row (audio anchor
over all visuals), L_va each column (visual anchor over all audios). ``M_ij`` masks the
pairs that are not negatives: ``M_ii = 0`` always, and ``M_ij = 0`` for same-class pairs
when labels are given. The margin ``σ`` grows during training (:class:`MarginSchedule`).
"""
from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from avcl_bench.benchmark.errors import ConfigError

from ._common import (
    Direction,
    Reduction,
    Similarity,
    check_batch,
    check_choice,
    check_number,
    check_options,
    directional_cross_entropy,
    non_negative_offdiagonal,
    similarity_matrix,
)

__all__ = ["MarginSchedule", "mms_loss"]

NAME = "mms"


def mms_loss(
    a: Tensor,
    v: Tensor,
    labels: Tensor | None = None,
    *,
    margin: float = 0.1,
    similarity: Similarity = "cosine",
    direction: Direction = "both",
    reduction: Reduction = "mean",
) -> Tensor:
    """Masked margin softmax: softmax cross-entropy of the matched pair with margin ``σ``.

    Args:
        a: ``(B, D)`` audio embeddings ``f(x_a; W_a)``.
        v: ``(B, D)`` visual embeddings ``g(x_v; W_v)``; row ``i`` matches ``a_i``.
        labels: optional ``(B,)`` classes; same-class pairs get ``M_ij = 0`` (removed from
            the denominators).
        margin: ``σ`` subtracted from the matched similarity (>= 0); use
            :class:`MarginSchedule` to increase it over training. The default 0.1 is not
            from the survey.
        similarity: ``"cosine"`` (survey) or ``"dot"`` (Ilharco et al. use dot products).
        direction: ``"both"`` (``L_av + L_va``, default), ``"a2v"`` (``L_av``) or ``"v2a"``.
        reduction: ``"mean"`` (the ``1/B`` of eq. 2, default) or ``"sum"`` over anchors.
    """
    check_options(NAME, reduction=reduction, direction=direction, similarity=similarity)
    sigma = check_number(NAME, "margin", margin, low=0.0)
    a, v, labels, same = check_batch(NAME, a, v, labels)

    s = similarity_matrix(a, v, similarity)
    logits = s - sigma * torch.eye(a.shape[0], dtype=s.dtype, device=s.device)
    # M_ij = 0: drop off-diagonal non-negatives from the denominator (exp(-inf) = 0).
    logits = logits.masked_fill(non_negative_offdiagonal(same), float("-inf"))
    return directional_cross_entropy(logits, direction, reduction)


class MarginSchedule:
    """Monotonically increasing MMS margin ``σ(step)`` from ``start`` to ``end``.

    Ilharco et al. (2019) and Rouditchenko et al. (2020) increase the margin during
    training. Two shapes are offered:

    * ``"linear"``: ``σ = start + (end - start) * min(step, total_steps) / total_steps``;
    * ``"step"``: ``total_steps`` is cut into ``num_stages`` equal stages; stage ``k``
      (0-based) uses ``start + (end - start) * k / (num_stages - 1)``.

    After ``total_steps`` the margin stays at ``end``. Usage:
    ``loss = mms_loss(a, v, margin=schedule(step))``.
    """

    def __init__(
        self,
        start: float,
        end: float,
        total_steps: int,
        *,
        mode: Literal["linear", "step"] = "linear",
        num_stages: int = 4,
    ) -> None:
        self.start = check_number(NAME, "start", start, low=0.0)
        self.end = check_number(NAME, "end", end, low=0.0)
        if self.end < self.start:
            raise ConfigError(f"{NAME}: end: the margin must not decrease (start={start}, end={end})")
        if isinstance(total_steps, bool) or not isinstance(total_steps, int) or total_steps < 1:
            raise ConfigError(f"{NAME}: total_steps: expected a positive integer, got {total_steps!r}")
        self.total_steps = total_steps
        self.mode = check_choice(NAME, "mode", mode, ("linear", "step"))
        if isinstance(num_stages, bool) or not isinstance(num_stages, int) or num_stages < 2:
            raise ConfigError(f"{NAME}: num_stages: expected an integer >= 2, got {num_stages!r}")
        self.num_stages = num_stages

    def __call__(self, step: int) -> float:
        if isinstance(step, bool) or not isinstance(step, int) or step < 0:
            raise ConfigError(f"{NAME}: step: expected a non-negative integer, got {step!r}")
        t = min(step, self.total_steps)
        if self.mode == "linear":
            frac = t / self.total_steps
        else:
            stage = min(t * self.num_stages // self.total_steps, self.num_stages - 1)
            frac = stage / (self.num_stages - 1)
        return self.start + (self.end - self.start) * frac

    def __repr__(self) -> str:
        return (
            f"MarginSchedule(start={self.start}, end={self.end}, total_steps={self.total_steps}, "
            f"mode={self.mode!r}, num_stages={self.num_stages})"
        )
