"""Center loss: pull each uni-modal embedding towards its class center (survey §3.2 i discussion).

The survey describes it as "the L1 distance between the center of each class and each
uni-modal embedding" used as an intra-class regulariser next to CE [Zhen et al., 2019;
He et al., 2019]. The original center loss (Wen et al., ECCV 2016) uses half the squared
L2 distance; both are offered through ``p``.
"""
from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from avcl_bench.benchmark.errors import ConfigError, InputError

from ._common import REDUCTIONS, Reduction, check_choice, check_labels, check_tensor, reduce

__all__ = ["CenterLoss", "center_loss"]

NAME = "center"


def _check_p(p: object) -> int:
    if isinstance(p, bool) or p not in (1, 2):
        raise ConfigError(f"{NAME}: p: expected 1 (L1 distance) or 2 (half squared L2), got {p!r}")
    return int(p)  # type: ignore[call-overload]


def center_loss(
    embeddings: Tensor,
    labels: Tensor,
    centers: Tensor,
    *,
    p: Literal[1, 2] = 1,
    reduction: Reduction = "mean",
) -> Tensor:
    """Distance between every embedding and the center of its class.

    Per item ``i`` with class ``y_i`` and center ``c_{y_i}``:

    * ``p=1`` (survey): ``||x_i - c_{y_i}||_1``;
    * ``p=2`` (Wen et al., 2016): ``0.5 * ||x_i - c_{y_i}||_2^2``.

    ``embeddings`` are uni-modal embeddings ``f(x_a; W_a)`` or ``g(x_v; W_v)``; to
    regularise both modalities towards shared centers pass
    ``torch.cat([a, v])`` with ``labels.repeat(2)``. Gradients flow into ``centers`` too,
    so they can be learned by the optimiser (see :class:`CenterLoss`); Wen et al.'s separate
    center-update rule is not implemented.

    Args:
        embeddings: ``(B, D)`` embeddings.
        labels: ``(B,)`` integer classes in ``[0, K)``.
        centers: ``(K, D)`` class centers. Classes absent from the batch contribute nothing.
        p: 1 (default) or 2, see above.
        reduction: ``"mean"`` over the batch (default) or ``"sum"``.
    """
    check_choice(NAME, "reduction", reduction, REDUCTIONS)
    p = _check_p(p)
    x = check_tensor(NAME, "embeddings", embeddings, ndim=2)
    centers = check_tensor(NAME, "centers", centers, ndim=2)
    if centers.shape[1] != x.shape[1]:
        raise InputError(
            NAME, "centers", f"center size {centers.shape[1]} differs from embedding size {x.shape[1]}"
        )
    labels = check_labels(NAME, labels, x.shape[0], num_classes=centers.shape[0])
    diff = x - centers[labels.to(centers.device)]
    per_item = diff.abs().sum(1) if p == 1 else 0.5 * (diff * diff).sum(1)
    return reduce(per_item, reduction)


class CenterLoss(nn.Module):
    """Center loss with learnable centers ``(num_classes, dim)`` (an ``nn.Parameter``).

    ``CenterLoss(10, 128)(embeddings, labels)`` equals
    ``center_loss(embeddings, labels, module.centers, p=..., reduction=...)``. Centers are
    initialised from a standard normal (as Wen et al.'s reference code) unless
    ``init_centers`` is given; they are moved by whatever optimiser holds the module's
    parameters.
    """

    def __init__(
        self,
        num_classes: int,
        dim: int,
        *,
        p: Literal[1, 2] = 1,
        reduction: Reduction = "mean",
        init_centers: Tensor | None = None,
    ) -> None:
        super().__init__()
        for field, val in (("num_classes", num_classes), ("dim", dim)):
            if isinstance(val, bool) or not isinstance(val, int) or val < 1:
                raise ConfigError(f"{NAME}: {field}: expected a positive integer, got {val!r}")
        self.p = _check_p(p)
        self.reduction = check_choice(NAME, "reduction", reduction, REDUCTIONS)
        if init_centers is None:
            init = torch.randn(num_classes, dim)
        else:
            init = check_tensor(NAME, "init_centers", init_centers, ndim=2).detach().clone()
            if tuple(init.shape) != (num_classes, dim):
                raise InputError(
                    NAME, "init_centers", f"expected shape {(num_classes, dim)}, got {tuple(init.shape)}"
                )
        self.centers = nn.Parameter(init)

    def forward(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        return center_loss(embeddings, labels, self.centers, p=self.p, reduction=self.reduction)  # type: ignore[arg-type]

    def extra_repr(self) -> str:
        k, d = self.centers.shape
        return f"num_classes={k}, dim={d}, p={self.p}, reduction={self.reduction!r}"
