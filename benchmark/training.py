"""The suite's one mini-batch training loop with early stopping on a validation score.

Every trained piece of the suite runs through :func:`train_early_stopping`: the baselines'
``fit`` (early stop on val retrieval mAP), the probes and segment heads of the
classification and event-localization tasks (val accuracy), the separation mask head (val
loss), the generation decoder (val L1) and the generation feature network (fixed epochs,
no validation). It lives in the engine because both ``baselines`` and ``tasks`` import the
engine and neither imports the other for training.

The loop owns what the call sites used to repeat: per epoch ``train()``, the batch schedule,
``zero_grad`` / ``backward`` / (optional gradient clipping) / ``step``, the epoch's train
loss, ``eval()`` and validation, the improvement test with its ``min_delta``, patience, a
deep copy of the best weights, and their restoration at the end. What differs between the
call sites (the batches, the loss, the score, hooks) comes in as callables. The loop draws
no random numbers itself, so the callables' RNG use is exactly theirs: results do not
depend on the loop having been factored out.
"""
from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import torch
from torch import nn
from tqdm.auto import tqdm

__all__ = ["EpochLog", "TrainResult", "minibatches", "progress", "train_early_stopping"]

B = TypeVar("B")
S = TypeVar("S", bound=Sequence[Any])


@dataclass
class EpochLog:
    """What one epoch produced.

    ``train_loss`` is the mean batch loss weighted by batch length (0.0 when no batch ran),
    ``last_loss`` the loss of the epoch's last batch (``None`` when no batch ran) and
    ``score`` the validation score (``None`` on epochs that were not validated).
    """

    epoch: int
    train_loss: float
    last_loss: float | None
    score: float | None = None


@dataclass
class TrainResult:
    """Outcome of :func:`train_early_stopping`.

    ``best_epoch`` is ``-1`` and ``best_score`` ``None`` when no epoch was validated (the
    module then keeps its last weights).
    """

    epochs_run: int
    best_epoch: int = -1
    best_score: float | None = None
    history: list[EpochLog] = field(default_factory=list)

    @property
    def scores(self) -> list[float]:
        """The validation scores of the validated epochs, in order."""
        return [e.score for e in self.history if e.score is not None]


def minibatches(order: S, batch_size: int) -> Iterator[S]:
    """Consecutive slices ``order[lo : lo + batch_size]`` of an epoch's item order (the last may be short)."""
    for lo in range(0, len(order), batch_size):
        yield order[lo : lo + batch_size]


def progress(it: Iterable[B], enabled: bool, desc: str) -> Iterable[B]:
    """``it`` wrapped in a transient tqdm bar when ``enabled`` (else ``it`` itself)."""
    return tqdm(it, desc=desc, leave=False, dynamic_ncols=True) if enabled else it


def train_early_stopping(
    module: nn.Module,
    optimizer: torch.optim.Optimizer,
    batches: Callable[[int], Iterable[B]],
    loss: Callable[[B], torch.Tensor],
    *,
    epochs: int,
    validate: Callable[[EpochLog], float | None] | None = None,
    higher_is_better: bool = True,
    min_delta: float = 0.0,
    patience: int | None = None,
    min_batch: int = 1,
    clip_grad_norm: float | None = None,
    on_epoch_start: Callable[[int], None] | None = None,
    on_epoch_end: Callable[[int], None] | None = None,
    show_progress: bool = False,
    desc: str = "train",
    score_name: str = "val",
    autocast: torch.dtype | None = None,
) -> TrainResult:
    """Train ``module`` for at most ``epochs`` epochs, keeping the weights of the best validated epoch.

    Each epoch: ``on_epoch_start(epoch)``, ``module.train()``, then for every batch of
    ``batches(epoch)`` whose ``len`` is at least ``min_batch`` (shorter ones are skipped,
    e.g. for batch norm): ``loss(batch)``, ``zero_grad(set_to_none=True)``, ``backward``,
    gradient-norm clipping of the optimizer's parameters to ``clip_grad_norm`` (when given)
    and ``step``. Then ``on_epoch_end(epoch)``; then, with ``validate``, ``module.eval()``
    and ``score = validate(log)`` (``None``: this epoch is not validated).

    A score improves on the best so far when it exceeds it by more than ``min_delta``
    (``higher_is_better``) or lies more than ``min_delta`` below it; the first validated
    score always improves. An improvement deep-copies ``module.state_dict()``; otherwise
    ``patience`` (``None``: never) counts validated epochs without one and stops training
    when reached. At the end the best weights are loaded back (when any epoch was
    validated) and the module is left in eval mode.

    ``batches`` and ``loss`` are called in that order, once per epoch and once per kept
    batch, so any RNG they draw from is consumed as in a hand-written loop.

    ``autocast`` (e.g. ``torch.bfloat16``, see :func:`autocast_dtype`) runs ``loss(batch)``
    under ``torch.autocast`` on the device of ``module``'s parameters (mixed precision: matmuls
    and convolutions in that dtype, reductions and the weights in float32); ``backward`` and
    the optimizer step stay outside it, as torch recommends. Validation is never autocast.
    """
    if patience is not None and patience < 1:
        raise ValueError(f"patience must be >= 1 or None, got {patience}")
    params = [p for group in optimizer.param_groups for p in group["params"]]
    device_type = params[0].device.type if params else "cpu"
    best = -math.inf if higher_is_better else math.inf
    best_state: dict[str, Any] | None = None
    result = TrainResult(epochs_run=0)
    bad = 0
    bar = progress(range(epochs), show_progress, desc)
    for epoch in bar:
        if on_epoch_start is not None:
            on_epoch_start(epoch)
        module.train()
        total, count, last = 0.0, 0, None
        for batch in batches(epoch):
            n = len(batch)  # type: ignore[arg-type]
            if n < min_batch:
                continue
            if autocast is None:
                value = loss(batch)
            else:
                with torch.autocast(device_type=device_type, dtype=autocast):
                    value = loss(batch)
            optimizer.zero_grad(set_to_none=True)
            value.backward()
            if clip_grad_norm is not None:
                nn.utils.clip_grad_norm_(params, clip_grad_norm)
            optimizer.step()
            last = float(value.detach())
            total += last * n
            count += n
        if on_epoch_end is not None:
            on_epoch_end(epoch)
        log = EpochLog(epoch=epoch, train_loss=total / max(count, 1), last_loss=last)
        if validate is not None:
            module.eval()
            log.score = validate(log)
        result.history.append(log)
        result.epochs_run = epoch + 1
        if hasattr(bar, "set_postfix"):
            shown = {"train_loss": log.train_loss, score_name: log.score}
            bar.set_postfix({k: round(v, 4) for k, v in shown.items() if v is not None})
        if log.score is None:
            continue
        improved = log.score > best + min_delta if higher_is_better else log.score < best - min_delta
        if improved:
            best, best_state, bad = log.score, copy.deepcopy(module.state_dict()), 0
            result.best_epoch, result.best_score = epoch, log.score
        else:
            bad += 1
            if patience is not None and bad >= patience:
                break
    if best_state is not None:
        module.load_state_dict(best_state)
    module.eval()
    return result


#: ``--precision`` choices -> the autocast dtype of model training (``None``: plain float32)
PRECISIONS: dict[str, torch.dtype | None] = {"fp32": None, "bf16": torch.bfloat16}


def autocast_dtype(precision: str) -> torch.dtype | None:
    """The ``autocast`` argument of :func:`train_early_stopping` for a run's ``--precision``."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r} (choose from {', '.join(PRECISIONS)})")
    return PRECISIONS[precision]
