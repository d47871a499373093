"""ce and center: hand-computed cases, torch references, brute force, input checks."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from avcl_bench.baselines.objectives import CenterLoss, center_loss, cross_entropy_loss
from avcl_bench.benchmark.errors import ConfigError, InputError


# ----------------------------------------------------------------------------- ce
def test_ce_hand_computed() -> None:
    # Row 0: logits (0, ln 3), label 1 -> softmax = (1/4, 3/4) -> -ln(3/4) = ln(4/3).
    # Row 1: logits (0, 0),    label 0 -> softmax = (1/2, 1/2) -> ln 2.
    logits = torch.tensor([[0.0, math.log(3.0)], [0.0, 0.0]], dtype=torch.float64)
    labels = torch.tensor([1, 0])
    expected_sum = math.log(4 / 3) + math.log(2)
    assert cross_entropy_loss(logits, labels, reduction="sum").item() == pytest.approx(expected_sum, abs=1e-12)
    assert cross_entropy_loss(logits, labels).item() == pytest.approx(expected_sum / 2, abs=1e-12)


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_ce_matches_torch(smoothing: float, reduction: str) -> None:
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(7, 4, generator=g, requires_grad=True)
    labels = torch.randint(0, 4, (7,), generator=g)
    ours = cross_entropy_loss(logits, labels, label_smoothing=smoothing, reduction=reduction)  # type: ignore[arg-type]
    ref = F.cross_entropy(logits, labels, label_smoothing=smoothing, reduction=reduction)
    assert torch.allclose(ours, ref)
    (grad,) = torch.autograd.grad(ours, logits)
    assert torch.isfinite(grad).all()


def test_ce_single_item_and_ties() -> None:
    # Constant logits over C classes: loss ln C whatever the label.
    logits = torch.zeros(1, 5)
    assert cross_entropy_loss(logits, torch.tensor([3])).item() == pytest.approx(math.log(5), abs=1e-6)


def test_ce_input_errors() -> None:
    logits = torch.zeros(2, 3)
    with pytest.raises(InputError, match=r"^ce: labels: label 3 at index 1 is out of range \[0, 3\)"):
        cross_entropy_loss(logits, torch.tensor([0, 3]))
    with pytest.raises(InputError, match=r"^ce: labels: expected an integer tensor"):
        cross_entropy_loss(logits, torch.tensor([0.0, 1.0]))
    with pytest.raises(InputError, match=r"^ce: logits: contains NaN"):
        cross_entropy_loss(torch.tensor([[0.0, float("nan")]]), torch.tensor([0]))
    with pytest.raises(InputError, match=r"^ce: logits: expected a 2-D tensor"):
        cross_entropy_loss(torch.zeros(3), torch.tensor([0, 1, 2]))
    with pytest.raises(InputError, match=r"^ce: logits: needs at least 1 class"):
        cross_entropy_loss(torch.zeros(2, 0), torch.tensor([0, 0]))
    with pytest.raises(ConfigError, match=r"^ce: label_smoothing: must be <= 1.0"):
        cross_entropy_loss(logits, torch.tensor([0, 1]), label_smoothing=2.0)


# ------------------------------------------------------------------------- center
X = torch.tensor([[1.0, 2.0], [3.0, 0.0], [0.0, 0.0]], dtype=torch.float64)
Y = torch.tensor([0, 1, 0])
C = torch.tensor([[1.0, 1.0], [2.0, 2.0]], dtype=torch.float64)


def test_center_hand_computed_l1() -> None:
    # x0 - c0 = (0, 1) -> 1;  x1 - c1 = (1, -2) -> 3;  x2 - c0 = (-1, -1) -> 2.
    assert center_loss(X, Y, C, p=1, reduction="sum").item() == pytest.approx(6.0)
    assert center_loss(X, Y, C).item() == pytest.approx(2.0)


def test_center_hand_computed_half_squared_l2() -> None:
    # 0.5 * (0 + 1) = 0.5;  0.5 * (1 + 4) = 2.5;  0.5 * (1 + 1) = 1.0 -> sum 4, mean 4/3.
    assert center_loss(X, Y, C, p=2, reduction="sum").item() == pytest.approx(4.0)
    assert center_loss(X, Y, C, p=2).item() == pytest.approx(4.0 / 3.0)


@pytest.mark.parametrize("p", [1, 2])
def test_center_matches_brute_force(p: int) -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(9, 4))
    y = rng.integers(0, 3, size=9)
    c = rng.normal(size=(5, 4))  # classes 3 and 4 are absent from the batch
    ref = 0.0
    for i in range(9):
        diff = x[i] - c[y[i]]
        ref += np.abs(diff).sum() if p == 1 else 0.5 * (diff**2).sum()
    got = center_loss(torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(c), p=p, reduction="sum")  # type: ignore[arg-type]
    assert got.item() == pytest.approx(ref, rel=1e-12)


def test_center_gradients_reach_only_used_centers() -> None:
    centers = C.clone().requires_grad_(True)
    x = X.clone().requires_grad_(True)
    loss = center_loss(x, torch.tensor([0, 0, 0]), centers, p=2)
    gx, gc = torch.autograd.grad(loss, (x, centers))
    assert torch.isfinite(gx).all() and torch.isfinite(gc).all()
    assert gc[1].abs().sum() == 0  # empty class: untouched
    assert gc[0].abs().sum() > 0


def test_center_module_learns_class_means_and_medians() -> None:
    """Minimising over the centers: p=2 -> class mean, p=1 -> coordinate-wise median."""
    torch.manual_seed(0)
    x = torch.tensor([[0.0, 0.0], [1.0, 3.0], [5.0, 1.0], [10.0, 10.0], [12.0, 8.0]])
    y = torch.tensor([0, 0, 0, 1, 1])
    # (learning rate, steps) phases: plain gradient descent for p=2; for p=1 (subgradients)
    # a coarse phase then a fine one so the oscillation around the median is small.
    for p, phases in ((2, ((0.2, 60),)), (1, ((0.05, 300), (0.002, 100)))):
        module = CenterLoss(2, 2, p=p, reduction="sum", init_centers=torch.zeros(2, 2))
        for lr, steps in phases:  # plain gradient descent (torch.optim's first import is slow)
            for _ in range(steps):
                (grad,) = torch.autograd.grad(module(x, y), module.centers)
                with torch.no_grad():
                    module.centers -= lr * grad
        got = module.centers.detach()
        if p == 2:
            want = torch.stack([x[y == k].mean(0) for k in range(2)])
            assert torch.allclose(got, want, atol=1e-4)
        else:
            # Class 0 median is (1, 1); class 1 has an even count: any point of [10, 12] x [8, 10].
            assert torch.allclose(got[0], torch.tensor([1.0, 1.0]), atol=0.05)
            assert 9.95 <= got[1, 0] <= 12.05 and 7.95 <= got[1, 1] <= 10.05
        assert module(x, y).item() == pytest.approx(center_loss(x, y, module.centers, p=p, reduction="sum").item())


def test_center_errors() -> None:
    with pytest.raises(InputError, match=r"^center: labels: label 2 at index 0 is out of range \[0, 2\)"):
        center_loss(X, torch.tensor([2, 0, 0]), C)
    with pytest.raises(InputError, match=r"^center: centers: center size 3 differs"):
        center_loss(X, Y, torch.zeros(2, 3, dtype=torch.float64))
    with pytest.raises(InputError, match=r"^center: embeddings: contains NaN"):
        center_loss(torch.tensor([[float("nan"), 0.0]]), torch.tensor([0]), C.float())
    with pytest.raises(ConfigError, match=r"^center: p: expected 1"):
        center_loss(X, Y, C, p=3)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"^center: num_classes: expected a positive integer"):
        CenterLoss(0, 4)
    with pytest.raises(InputError, match=r"^center: init_centers: expected shape \(2, 4\)"):
        CenterLoss(2, 4, init_centers=torch.zeros(3, 4))
    assert "num_classes=2, dim=4" in repr(CenterLoss(2, 4))
