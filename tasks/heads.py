"""Training of the small heads the suite puts on frozen features (probes, segment heads).

One loop serves every head: seeded initialisation and shuffling that leave the global RNG
state alone, cross-entropy over the last axis (clip logits ``(B, C)`` or segment logits
``(B, T, C)``), and early stopping on validation accuracy keeping the best epoch.
"""
from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn


def head_batch_size(batch_size: int, n_train: int, min_steps: int) -> int:
    """Shrink the batch on small train splits so that an epoch has at least ``min_steps`` steps."""
    return max(1, min(batch_size, -(-n_train // min_steps)))


def train_head(
    make_net: Callable[[], nn.Module], xtr: torch.Tensor, ytr: torch.Tensor, xva: torch.Tensor, yva: torch.Tensor,
    *, num_classes: int, epochs: int, batch_size: int, patience: int, lr: float, weight_decay: float, seed: int,
    device: str | torch.device,
) -> tuple[nn.Module, dict[str, Any]]:
    """Train ``make_net()`` (built under ``seed``) and return it with its best val-epoch weights, in eval mode.

    Deterministic given ``seed``; the global torch RNG state is restored afterwards. Returns
    ``{"epochs_run", "best_epoch", "val_ACC", "batch_size"}`` beside the net.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = make_net().to(device)
        opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=weight_decay)
        order_rng = np.random.default_rng(seed)
        best_acc, best_state, best_epoch, bad, epoch = -1.0, copy.deepcopy(net.state_dict()), -1, 0, -1
        for epoch in range(epochs):
            net.train()
            perm = torch.as_tensor(order_rng.permutation(len(xtr)), device=device)
            for s in range(0, len(perm), batch_size):
                idx = perm[s : s + batch_size]
                logits = net(xtr[idx])
                loss = nn.functional.cross_entropy(logits.reshape(-1, num_classes), ytr[idx].reshape(-1))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            net.eval()
            with torch.no_grad():
                acc = float((net(xva).argmax(dim=-1) == yva).float().mean())
            if acc > best_acc:
                best_acc, best_state, best_epoch, bad = acc, copy.deepcopy(net.state_dict()), epoch, 0
            else:
                bad += 1
                if bad >= patience:
                    break
    net.load_state_dict(best_state)
    net.eval()
    return net, {"epochs_run": epoch + 1, "best_epoch": best_epoch, "val_ACC": best_acc, "batch_size": batch_size}
