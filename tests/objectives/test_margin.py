"""hinge (eq. 1), mms (eq. 2) and MarginSchedule."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from avcl_bench.baselines.objectives import MarginSchedule, hinge_loss, infonce_loss, mms_loss
from avcl_bench.benchmark.errors import ConfigError

# Two items, 2-D. a0 = (1, 0), a1 = (0, 1); v0 = (1, 0), v1 = (3, 4) (cosine (0.6, 0.8)).
# Cosine matrix S[i, j] = cos(a_i, v_j):  S = [[1.0, 0.6],
#                                              [0.0, 0.8]]
A2 = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
V2 = torch.tensor([[1.0, 0.0], [3.0, 4.0]], dtype=torch.float64)


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    return 0.0 if na == 0 or nb == 0 else float(a @ b / (na * nb))


# -------------------------------------------------------------------------- hinge
def test_hinge_hand_computed() -> None:
    # alpha = 0.5.
    # a->v: item 0: max(0, S01 - S00 + .5) = max(0, .6 - 1 + .5) = 0.1
    #       item 1: max(0, S10 - S11 + .5) = max(0, 0 - .8 + .5) = 0
    # v->a: item 0: max(0, S10 - S00 + .5) = max(0, 0 - 1 + .5)  = 0
    #       item 1: max(0, S01 - S11 + .5) = max(0, .6 - .8 + .5) = 0.3
    kw = dict(margin=0.5)
    assert hinge_loss(A2, V2, **kw).item() == pytest.approx(0.4)  # default: sum over the batch
    assert hinge_loss(A2, V2, reduction="mean", **kw).item() == pytest.approx(0.2)
    assert hinge_loss(A2, V2, direction="a2v", **kw).item() == pytest.approx(0.1)
    assert hinge_loss(A2, V2, direction="v2a", **kw).item() == pytest.approx(0.3)


def _hinge_reference(a, v, labels, margin, hardest, sim) -> float:
    n = len(a)
    s = np.array([[(_cos(a[i], v[j]) if sim == "cosine" else float(a[i] @ v[j])) for j in range(n)] for i in range(n)])
    total = 0.0
    for i in range(n):
        negs = [j for j in range(n) if j != i and (labels is None or labels[j] != labels[i])]
        c_terms = [max(0.0, s[i, j] - s[i, i] + margin) for j in negs]  # wrong visual for audio i
        i_terms = [max(0.0, s[j, i] - s[i, i] + margin) for j in negs]  # wrong audio for visual i
        if hardest:
            total += max(c_terms, default=0.0) + max(i_terms, default=0.0)
        else:
            total += sum(c_terms) + sum(i_terms)
    return total


@pytest.mark.parametrize("negatives", ["all", "hardest"])
@pytest.mark.parametrize("similarity", ["cosine", "dot"])
@pytest.mark.parametrize("with_labels", [False, True])
def test_hinge_matches_brute_force(negatives: str, similarity: str, with_labels: bool) -> None:
    rng = np.random.default_rng(4)
    a, v = rng.normal(size=(6, 3)), rng.normal(size=(6, 3))
    labels = np.array([0, 1, 0, 2, 1, 1]) if with_labels else None
    ref = _hinge_reference(a, v, labels, 0.3, negatives == "hardest", similarity)
    got = hinge_loss(
        torch.from_numpy(a), torch.from_numpy(v), None if labels is None else torch.from_numpy(labels),
        margin=0.3, negatives=negatives, similarity=similarity,  # type: ignore[arg-type]
    )
    assert got.item() == pytest.approx(ref, rel=1e-10)


def test_hinge_equals_cosine_embedding_loss_when_pairs_coincide() -> None:
    """With v = a every matched cosine is 1, so each hinge term max(0, cos(a_i, a_j) - 1 + alpha)
    is CosineEmbeddingLoss(y=-1, margin=1 - alpha); both directions give the same sum."""
    g = torch.Generator().manual_seed(5)
    a = torch.randn(5, 4, generator=g, dtype=torch.float64)
    alpha = 1.2  # margin 1 - alpha < 0 so that some terms are active
    i, j = torch.nonzero(~torch.eye(5, dtype=torch.bool), as_tuple=True)
    ref = torch.nn.CosineEmbeddingLoss(margin=1 - alpha, reduction="sum")(a[i], a[j], -torch.ones(len(i), dtype=torch.float64))
    assert ref > 0
    assert hinge_loss(a, a.clone(), margin=alpha).item() == pytest.approx(2 * ref.item(), rel=1e-10)


def test_hinge_zero_when_separated() -> None:
    # Orthonormal matched pairs: S = I, so every term is max(0, 0 - 1 + alpha) = 0 for alpha <= 1.
    eye = torch.eye(3, dtype=torch.float64)
    assert hinge_loss(eye, eye, margin=1.0).item() == 0.0
    assert hinge_loss(eye, eye, margin=1.5).item() == pytest.approx(6 * 2 * 0.5)


def test_hinge_options_rejected() -> None:
    with pytest.raises(ConfigError, match=r"^hinge: margin: must be >= 0.0"):
        hinge_loss(A2, V2, margin=-0.1)
    with pytest.raises(ConfigError, match=r"^hinge: negatives: expected one of"):
        hinge_loss(A2, V2, negatives="semi")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"^hinge: margin: must be finite"):
        hinge_loss(A2, V2, margin=float("nan"))


# ---------------------------------------------------------------------------- mms
def test_mms_hand_computed() -> None:
    # sigma = 0.1, -log(e^x / (e^x + e^y)) = log(1 + e^(y - x)):
    # L_av row 0: x = S00 - .1 = .9, y = S01 = .6 -> log(1 + e^-.3)
    #      row 1: x = S11 - .1 = .7, y = S10 = 0  -> log(1 + e^-.7)
    # L_va col 0: x = S00 - .1 = .9, y = S10 = 0  -> log(1 + e^-.9)
    #      col 1: x = S11 - .1 = .7, y = S01 = .6 -> log(1 + e^-.1)
    sp = lambda t: math.log1p(math.exp(t))  # noqa: E731
    l_av = (sp(-0.3) + sp(-0.7)) / 2
    l_va = (sp(-0.9) + sp(-0.1)) / 2
    assert mms_loss(A2, V2, margin=0.1).item() == pytest.approx(l_av + l_va, abs=1e-12)
    assert mms_loss(A2, V2, margin=0.1, direction="a2v").item() == pytest.approx(l_av, abs=1e-12)
    assert mms_loss(A2, V2, margin=0.1, direction="v2a", reduction="sum").item() == pytest.approx(2 * l_va, abs=1e-12)


def _mms_reference(a, v, labels, sigma) -> float:
    """Eq. (2) with loops: M_ij = 1 iff j != i and (no labels or y_i != y_j)."""
    n = len(a)
    s = np.array([[_cos(a[i], v[j]) for j in range(n)] for i in range(n)])
    m = np.array([[float(i != j and (labels is None or labels[i] != labels[j])) for j in range(n)] for i in range(n)])
    l_av = l_va = 0.0
    for i in range(n):
        num = math.exp(s[i, i] - sigma)
        l_av -= math.log(num / (num + sum(m[i, j] * math.exp(s[i, j]) for j in range(n))))
        l_va -= math.log(num / (num + sum(m[j, i] * math.exp(s[j, i]) for j in range(n))))
    return (l_av + l_va) / n


@pytest.mark.parametrize("with_labels", [False, True])
def test_mms_matches_brute_force(with_labels: bool) -> None:
    rng = np.random.default_rng(6)
    a, v = rng.normal(size=(7, 4)), rng.normal(size=(7, 4))
    labels = np.array([0, 0, 1, 2, 1, 0, 3]) if with_labels else None
    ref = _mms_reference(a, v, labels, 0.25)
    got = mms_loss(torch.from_numpy(a), torch.from_numpy(v), None if labels is None else torch.from_numpy(labels), margin=0.25)
    assert got.item() == pytest.approx(ref, rel=1e-10)


def test_mms_without_margin_is_infonce_at_temperature_one() -> None:
    g = torch.Generator().manual_seed(7)
    a, v = torch.randn(6, 3, generator=g, dtype=torch.float64), torch.randn(6, 3, generator=g, dtype=torch.float64)
    labels = torch.tensor([0, 1, 1, 2, 0, 3])
    for lab in (None, labels):
        assert mms_loss(a, v, lab, margin=0.0).item() == pytest.approx(infonce_loss(a, v, lab, temperature=1.0).item(), rel=1e-12)


def test_mms_larger_margin_larger_loss() -> None:
    g = torch.Generator().manual_seed(8)
    a, v = torch.randn(5, 3, generator=g), torch.randn(5, 3, generator=g)
    values = [mms_loss(a, v, margin=m).item() for m in (0.0, 0.1, 0.5, 1.0)]
    assert values == sorted(values) and values[0] < values[-1]


# ----------------------------------------------------------------- MarginSchedule
def test_margin_schedule_linear() -> None:
    sched = MarginSchedule(0.1, 0.5, 100)
    assert [sched(s) for s in (0, 25, 50, 100, 1000)] == pytest.approx([0.1, 0.2, 0.3, 0.5, 0.5])


def test_margin_schedule_step() -> None:
    # 4 stages over 100 steps: [0, 25) -> 0, [25, 50) -> 1/3, [50, 75) -> 2/3, [75, ...) -> 1 of the range.
    sched = MarginSchedule(0.0, 0.3, 100, mode="step", num_stages=4)
    got = [sched(s) for s in (0, 24, 25, 49, 50, 74, 75, 99, 100, 500)]
    assert got == pytest.approx([0.0, 0.0, 0.1, 0.1, 0.2, 0.2, 0.3, 0.3, 0.3, 0.3])


@pytest.mark.parametrize("mode", ["linear", "step"])
def test_margin_schedule_is_monotone(mode: str) -> None:
    sched = MarginSchedule(0.001, 0.2, 37, mode=mode, num_stages=5)  # type: ignore[arg-type]
    values = [sched(s) for s in range(60)]
    assert all(x <= y for x, y in zip(values, values[1:]))
    assert values[0] == pytest.approx(0.001) and values[-1] == pytest.approx(0.2)


def test_margin_schedule_errors() -> None:
    with pytest.raises(ConfigError, match=r"^mms: end: the margin must not decrease"):
        MarginSchedule(0.5, 0.1, 10)
    with pytest.raises(ConfigError, match=r"^mms: total_steps: expected a positive integer"):
        MarginSchedule(0.0, 0.1, 0)
    with pytest.raises(ConfigError, match=r"^mms: num_stages: expected an integer >= 2"):
        MarginSchedule(0.0, 0.1, 10, mode="step", num_stages=1)
    with pytest.raises(ConfigError, match=r"^mms: mode: expected one of"):
        MarginSchedule(0.0, 0.1, 10, mode="cosine")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"^mms: step: expected a non-negative integer"):
        MarginSchedule(0.0, 0.1, 10)(-1)
    assert "MarginSchedule(start=0.0" in repr(MarginSchedule(0.0, 0.1, 10))
