"""Reconstruction / embedding-distance loss: mean squared (L2) or absolute (L1) error.

Table 1 lists MSE / L2 / L1 objectives for auto-encoder reconstruction (x vs x̂, survey
§3.1 "Auto-Encoders") and for pulling the two modalities' embeddings together
("using the distance between embeddings (e.g., L2 ...)", §3.2 i discussion, [Min et al.,
2021]). Both are the same element-wise error: pass ``x = f(x_a; W_a)`` and
``x_hat = g(x_v; W_v)`` for the latter.
"""
from __future__ import annotations

from typing import Literal

import torch.nn.functional as F
from torch import Tensor

from avcl_bench.benchmark.errors import ConfigError, InputError

from ._common import REDUCTIONS, Reduction, check_choice, check_tensor

__all__ = ["reconstruction_loss"]

NAME = "l2"


def reconstruction_loss(
    x: Tensor,
    x_hat: Tensor,
    *,
    p: Literal[1, 2] = 2,
    reduction: Reduction = "mean",
) -> Tensor:
    """Element-wise ``(x - x̂)^2`` (``p=2``, MSE) or ``|x - x̂|`` (``p=1``).

    Args:
        x: target, any shape ``(B, ...)`` with ``B >= 1``.
        x_hat: reconstruction (or the other modality's embedding), same shape as ``x``.
        p: 2 (default, MSE / L2) or 1 (L1).
        reduction: ``"mean"`` over all elements (default; ``torch.nn.MSELoss`` semantics)
            or ``"sum"``.
    """
    check_choice(NAME, "reduction", reduction, REDUCTIONS)
    if isinstance(p, bool) or p not in (1, 2):
        raise ConfigError(f"{NAME}: p: expected 1 (L1) or 2 (MSE), got {p!r}")
    x = check_tensor(NAME, "x", x)
    x_hat = check_tensor(NAME, "x_hat", x_hat)
    if x.shape != x_hat.shape:
        raise InputError(NAME, "x/x_hat", f"shape mismatch ({tuple(x.shape)} vs {tuple(x_hat.shape)})")
    if x.numel() == 0:
        raise InputError(NAME, "x", f"is empty (shape {tuple(x.shape)})")
    fn = F.mse_loss if p == 2 else F.l1_loss
    return fn(x_hat, x, reduction=reduction)
