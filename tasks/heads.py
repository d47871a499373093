"""Training of the small heads the suite puts on frozen features (probes, segment heads).

:func:`train_head` serves every classification head: seeded initialisation, shuffling
and dropout that leave the global RNG state alone, cross-entropy over the last axis (clip
logits ``(B, C)`` or segment logits ``(B, T, C)``), and early stopping on validation
accuracy keeping the best epoch, through the suite's one loop
:func:`~benchmark.training.train_early_stopping`.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from avcl_bench.benchmark.training import minibatches, train_early_stopping


def head_batch_size(batch_size: int, n_train: int, min_steps: int) -> int:
    """Shrink the batch on small train splits so that an epoch has at least ``min_steps`` steps."""
    return max(1, min(batch_size, -(-n_train // min_steps)))


def train_head(
    make_net: Callable[[], nn.Module], xtr: torch.Tensor, ytr: torch.Tensor, xva: torch.Tensor, yva: torch.Tensor,
    *, num_classes: int, epochs: int, batch_size: int, patience: int, lr: float, weight_decay: float, seed: int,
    device: str | torch.device, progress: bool = False, desc: str = "train head",
) -> tuple[nn.Module, dict[str, Any]]:
    """Train ``make_net()`` (built under ``seed``) and return it with its best val-epoch weights, in eval mode.

    Deterministic given ``seed``; the global torch RNG state is restored afterwards.
    ``progress`` shows a progress bar named ``desc`` (the run's ``--no-progress`` turns it off). Returns
    ``{"epochs_run", "best_epoch", "val_ACC", "batch_size"}`` beside the net.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = make_net().to(device)
        opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=weight_decay)
        order_rng = np.random.default_rng(seed)

        def val_accuracy(_: Any) -> float:
            with torch.no_grad():
                return float((net(xva).argmax(dim=-1) == yva).float().mean())

        def ce(idx: torch.Tensor) -> torch.Tensor:
            return nn.functional.cross_entropy(net(xtr[idx]).reshape(-1, num_classes), ytr[idx].reshape(-1))

        result = train_early_stopping(
            net, opt, lambda _: minibatches(torch.as_tensor(order_rng.permutation(len(xtr)), device=device), batch_size),
            ce, epochs=epochs, validate=val_accuracy, patience=patience, show_progress=progress, desc=desc,
            score_name="val_ACC")
    return net, {"epochs_run": result.epochs_run, "best_epoch": result.best_epoch, "val_ACC": result.best_score,
                 "batch_size": batch_size}
