"""The suite's one training loop: improvement rule, patience, best weights."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from avcl_bench.benchmark.training import train_early_stopping


def _run(scores: list[float], **kw) -> tuple[object, float]:
    """Train a 1-weight module whose weight is set to the epoch number; validation returns ``scores``."""
    module = nn.Linear(1, 1, bias=False)
    opt = torch.optim.SGD(module.parameters(), lr=0.0)  # lr 0: the hook alone sets the weight

    def set_weight(epoch: int) -> None:
        with torch.no_grad():
            module.weight.fill_(float(epoch))

    result = train_early_stopping(module, opt, lambda _: [torch.zeros(2, 1)], lambda b: module(b).sum() * 0,
                                  epochs=len(scores), validate=lambda log: scores[log.epoch],
                                  on_epoch_end=set_weight, **kw)
    return result, float(module.weight.detach())


def test_patience_counts_epochs_without_improvement_and_the_best_weights_come_back():
    result, weight = _run([0.5, 0.6, 0.55, 0.58, 0.59, 0.9], patience=3)
    assert result.epochs_run == 5 and result.best_epoch == 1 and weight == 1.0
    result, weight = _run([0.5, 0.6, 0.55, 0.58, 0.59, 0.9], patience=None)
    assert result.epochs_run == 6 and result.best_epoch == 5 and weight == 5.0


def test_min_delta_is_absolute():
    # lower is better: 1.0 -> 0.996 is a gain of 0.004 (< min_delta), 0.993 one of 0.007
    scores = [1.0, 0.996, 0.993, 0.98, 0.979, 0.978, 0.977]
    plain, _ = _run(scores, higher_is_better=False, patience=2)
    assert plain.best_epoch == 6 and plain.epochs_run == 7
    absolute, weight = _run(scores, higher_is_better=False, patience=2, min_delta=0.005)
    assert (absolute.best_epoch, absolute.epochs_run, weight) == (3, 6, 3.0)
    # the first validated score always improves
    none, _ = _run(scores, higher_is_better=False, patience=2, min_delta=0.05)
    assert none.best_epoch == 0 and none.epochs_run == 3


@pytest.mark.parametrize("hib", [True, False])
def test_negative_scores(hib):
    sign = 1.0 if hib else -1.0
    scores = [sign * -2.0, sign * -1.99, sign * -2.5]
    result, weight = _run(scores, higher_is_better=hib, patience=5)
    assert result.best_epoch == 1 and weight == 1.0 and result.best_score == scores[1]
