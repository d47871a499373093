"""Cross-entropy on class logits (survey §3.2 i, "Cross-Entropy (CE)")."""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from avcl_bench.benchmark.errors import InputError

from ._common import REDUCTIONS, Reduction, check_choice, check_labels, check_number, check_tensor

__all__ = ["cross_entropy_loss"]

NAME = "ce"


def cross_entropy_loss(
    logits: Tensor,
    labels: Tensor,
    *,
    label_smoothing: float = 0.0,
    reduction: Reduction = "mean",
) -> Tensor:
    """Softmax cross-entropy between class logits and integer labels.

    The survey (§3.2 i) uses CE "to achieve inter-class discrimination via a projection to a
    latent semantic sub-space": a classifier head on top of ``f(x_a; W_a)`` and/or
    ``g(x_v; W_v)`` produces ``logits`` and the loss is
    ``-log softmax(logits_i)[y_i]``. For two modalities call it once per modality (or on
    the concatenated logits with repeated labels) and add the results.

    Args:
        logits: ``(B, C)`` unnormalised class scores.
        labels: ``(B,)`` integer classes in ``[0, C)``.
        label_smoothing: as ``torch.nn.functional.cross_entropy`` (0 = plain CE).
        reduction: ``"mean"`` over the batch (default) or ``"sum"``.

    Returns:
        Scalar loss; identical to ``torch.nn.functional.cross_entropy`` on valid input.
    """
    check_choice(NAME, "reduction", reduction, REDUCTIONS)
    check_number(NAME, "label_smoothing", label_smoothing, low=0.0, high=1.0)
    logits = check_tensor(NAME, "logits", logits, ndim=2)
    if logits.shape[1] < 1:
        raise InputError(NAME, "logits", "needs at least 1 class column, got 0")
    labels = check_labels(NAME, labels, logits.shape[0], num_classes=logits.shape[1])
    return F.cross_entropy(logits, labels.to(logits.device), label_smoothing=label_smoothing, reduction=reduction)
