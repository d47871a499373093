"""triplet (eq. 3), npair (Sohn 2016) and lifted (Song et al. 2016)."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from avcl_bench.baselines.objectives import infonce_loss, lifted_structured_loss, npair_loss, triplet_loss
from avcl_bench.benchmark.errors import ConfigError


def _np_pair(b: int, d: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(b, d)), rng.normal(size=(b, d))


def _dist(x: np.ndarray, y: np.ndarray, squared: bool) -> float:
    d2 = float(((x - y) ** 2).sum())
    return d2 if squared else math.sqrt(d2)


# ------------------------------------------------------------------------ triplet
# a0 = (0, 0), a1 = (2, 0); v0 = (1, 0), v1 = (2, 1). Squared distances D2[i, j] = |a_i - v_j|^2:
#   D2 = [[1, 5],
#         [1, 1]]
TA = torch.tensor([[0.0, 0.0], [2.0, 0.0]], dtype=torch.float64)
TV = torch.tensor([[1.0, 0.0], [2.0, 1.0]], dtype=torch.float64)


@pytest.mark.parametrize("mining", ["all", "hard", "semi-hard", "random"])
def test_triplet_hand_computed(mining: str) -> None:
    # zeta = 1. a->v: anchor a0: max(0, 1 - 5 + 1) = 0; anchor a1: max(0, 1 - 1 + 1) = 1.
    #           v->a: anchor v0: pos a0 (1), neg a1 (1): 1;  anchor v1: pos a1 (1), neg a0 (5): 0.
    # One negative per anchor, so every mining mode picks the same triplets (semi-hard: no negative
    # is strictly farther than the positive for a1 / v0, so the fallback takes the only one).
    kw = dict(margin=1.0, mining=mining, generator=torch.Generator().manual_seed(0))
    assert triplet_loss(TA, TV, **kw).item() == pytest.approx(2.0)
    assert triplet_loss(TA, TV, reduction="mean", **kw).item() == pytest.approx(0.5 + 0.5)
    assert triplet_loss(TA, TV, direction="a2v", **kw).item() == pytest.approx(1.0)
    # Plain distances: sqrt(5) = 2.236 > 2, the a0 / v1 terms stay 0, the others stay 1.
    assert triplet_loss(TA, TV, squared=False, **kw).item() == pytest.approx(2.0)


def _triplet_reference(a, v, labels, margin, squared, mining) -> float:
    """Sum over both directions of the selected hinge terms, written from the definitions."""
    n = len(a)
    y = np.arange(n) if labels is None else labels
    total = 0.0
    for anchors, cands in ((a, v), (v, a)):
        d = np.array([[_dist(anchors[i], cands[j], squared) for j in range(n)] for i in range(n)])
        for i in range(n):
            pos = [j for j in range(n) if y[j] == y[i]]
            neg = [k for k in range(n) if y[k] != y[i]]
            if not neg:
                continue
            if mining == "hard":
                total += max(0.0, max(d[i, j] for j in pos) - min(d[i, k] for k in neg) + margin)
                continue
            for j in pos:
                if mining == "all":
                    total += sum(max(0.0, d[i, j] - d[i, k] + margin) for k in neg)
                else:  # semi-hard
                    farther = [d[i, k] for k in neg if d[i, k] > d[i, j]]
                    dn = min(farther) if farther else max(d[i, k] for k in neg)
                    total += max(0.0, d[i, j] - dn + margin)
    return total


@pytest.mark.parametrize("mining", ["all", "hard", "semi-hard"])
@pytest.mark.parametrize("squared", [True, False])
@pytest.mark.parametrize("with_labels", [False, True])
def test_triplet_matches_brute_force(mining: str, squared: bool, with_labels: bool) -> None:
    a, v = _np_pair(7, 3, seed=10)
    labels = np.array([0, 1, 1, 2, 0, 1, 3]) if with_labels else None
    margin = 1.5 if squared else 0.5
    ref = _triplet_reference(a, v, labels, margin, squared, mining)
    assert ref > 0
    got = triplet_loss(
        torch.from_numpy(a), torch.from_numpy(v), None if labels is None else torch.from_numpy(labels),
        margin=margin, squared=squared, mining=mining,  # type: ignore[arg-type]
    )
    assert got.item() == pytest.approx(ref, rel=1e-9)


def test_triplet_semi_hard_ties() -> None:
    # a->v, zeta = 1, squared distances. v0 = (1, 0), v1 = (0, 1), v2 = (2, 0); a1 = v1, a2 = v2.
    # Anchor a0 = (0, 0): positive v0 at 1; negatives v1 at 1 (a tie) and v2 at 4.
    #   semi-hard: a tie is not "farther", so v2 -> max(0, 1 - 4 + 1) = 0;  hard: v1 -> 1.
    # Anchor a1: positive at 0, negatives at 2 (v0) and 5 (v2) -> 0 in both modes.
    # Anchor a2: positive at 0, negatives at 1 (v0) and 5 (v1) -> max(0, 0 - 1 + 1) = 0 in both.
    v = torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, 0.0]], dtype=torch.float64)
    a = torch.tensor([[0.0, 0.0], [0.0, 1.0], [2.0, 0.0]], dtype=torch.float64)
    kw = dict(margin=1.0, direction="a2v")
    assert triplet_loss(a, v, mining="semi-hard", **kw).item() == pytest.approx(0.0)
    assert triplet_loss(a, v, mining="hard", **kw).item() == pytest.approx(1.0)


def test_triplet_matches_torch_triplet_margin_loss() -> None:
    """squared=False, a->v, all triplets == nn.TripletMarginLoss(p=2) on the explicit triplets."""
    g = torch.Generator().manual_seed(11)
    a, v = torch.randn(6, 4, generator=g, dtype=torch.float64), torch.randn(6, 4, generator=g, dtype=torch.float64)
    labels = torch.tensor([0, 1, 0, 2, 2, 1])
    trip = [(i, j, k) for i, j, k in itertools.product(range(6), repeat=3) if labels[j] == labels[i] and labels[k] != labels[i]]
    i, j, k = (torch.tensor(t) for t in zip(*trip))
    ref = torch.nn.TripletMarginLoss(margin=0.7, p=2, eps=0.0)(a[i], v[j], v[k])
    got = triplet_loss(a, v, labels, margin=0.7, squared=False, mining="all", direction="a2v", reduction="mean")
    assert got.item() == pytest.approx(ref.item(), rel=1e-10)
    # Squared distances (eq. 3) == TripletMarginWithDistanceLoss with a squared-distance function.
    sq = torch.nn.TripletMarginWithDistanceLoss(distance_function=lambda x, y: ((x - y) ** 2).sum(-1), margin=0.7)
    ref_sq = sq(v[i], a[j], a[k])  # visual anchors (v->a)
    got_sq = triplet_loss(a, v, labels, margin=0.7, mining="all", direction="v2a", reduction="mean")
    assert got_sq.item() == pytest.approx(ref_sq.item(), rel=1e-10)


def test_triplet_random_mining_is_uniform_over_negatives() -> None:
    """E[random-negative loss] = all-triplets mean when every anchor has the same number of negatives."""
    g = torch.Generator().manual_seed(12)
    a, v = torch.randn(4, 2, generator=g, dtype=torch.float64), torch.randn(4, 2, generator=g, dtype=torch.float64)
    kw = dict(margin=2.0, direction="a2v", reduction="mean")
    target = triplet_loss(a, v, mining="all", **kw).item()
    gen = torch.Generator().manual_seed(0)
    draws = torch.tensor([triplet_loss(a, v, mining="random", generator=gen, **kw).item() for _ in range(1000)])
    se = draws.std().item() / math.sqrt(len(draws))
    assert abs(draws.mean().item() - target) < 4 * se + 1e-12
    # Every draw lies between the easiest- and hardest-negative choices.
    hard = triplet_loss(a, v, mining="hard", **kw).item()
    assert draws.max().item() <= hard + 1e-12
    # Reproducible with a seeded generator.
    v1 = triplet_loss(a, v, mining="random", generator=torch.Generator().manual_seed(5), **kw)
    v2 = triplet_loss(a, v, mining="random", generator=torch.Generator().manual_seed(5), **kw)
    assert v1.item() == v2.item()


def test_triplet_random_mining_respects_labels() -> None:
    # a->v, labels (0, 0, 1): anchors 0 and 1 have positives {v0, v1} and the single negative v2;
    # anchor 2 has positive v2 and negatives {v0, v1}. Only the last choice is random, so the sum
    # takes one of two values; a same-class "negative" would give another value.
    a = torch.tensor([[0.0, 0.0], [0.0, 1.0], [3.0, 0.0]], dtype=torch.float64)
    v = torch.tensor([[0.0, 0.5], [1.0, 1.0], [3.0, 1.0]], dtype=torch.float64)
    labels = np.array([0, 0, 1])
    d = np.array([[_dist(a[i].numpy(), v[j].numpy(), True) for j in range(3)] for i in range(3)])
    m = 100.0
    fixed = sum(m + d[i, j] - d[i, 2] for i in (0, 1) for j in (0, 1))
    allowed = {round(fixed + m + d[2, 2] - d[2, k], 9) for k in (0, 1)}
    seen = set()
    for seed in range(20):
        gen = torch.Generator().manual_seed(seed)
        got = triplet_loss(a, v, torch.from_numpy(labels), margin=m, mining="random", direction="a2v", generator=gen)
        seen.add(round(got.item(), 9))
    assert seen == allowed


def test_triplet_options_rejected() -> None:
    with pytest.raises(ConfigError, match=r"^triplet: mining: expected one of"):
        triplet_loss(TA, TV, mining="easy")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"^triplet: direction: expected one of"):
        triplet_loss(TA, TV, direction="ab")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"^triplet: squared: expected True or False"):
        triplet_loss(TA, TV, squared=1)  # type: ignore[arg-type]


# -------------------------------------------------------------------------- npair
def test_npair_hand_computed() -> None:
    # a0 = (1, 0), a1 = (0, 1); v0 = (2, 0), v1 = (1, 1). Dot products S = [[2, 1], [0, 1]].
    # a->v: row 0: log(1 + e^(1 - 2)) = log(1 + e^-1);  row 1: log(1 + e^(0 - 1)) = log(1 + e^-1)
    # v->a: col 0: log(1 + e^(0 - 2)) = log(1 + e^-2);  col 1: log(1 + e^(1 - 1)) = log 2
    a = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    v = torch.tensor([[2.0, 0.0], [1.0, 1.0]], dtype=torch.float64)
    a2v = math.log1p(math.exp(-1))
    v2a = (math.log1p(math.exp(-2)) + math.log(2)) / 2
    assert npair_loss(a, v, direction="a2v").item() == pytest.approx(a2v, abs=1e-12)
    assert npair_loss(a, v).item() == pytest.approx(a2v + v2a, abs=1e-12)
    # l2_reg = 0.5: per item |a_i|^2 + |v_i|^2 = (1 + 4), (1 + 2) -> mean 4 -> + 2.
    assert npair_loss(a, v, l2_reg=0.5).item() == pytest.approx(a2v + v2a + 2.0, abs=1e-12)


def _npair_reference(a, v, labels) -> float:
    """Sohn (2016) eq.: 1/N sum_i log(1 + sum_{j != i} exp(a_i.v_j - a_i.v_i)), a->v only."""
    n = len(a)
    y = np.arange(n) if labels is None else labels
    out = 0.0
    for i in range(n):
        out += math.log1p(sum(math.exp(a[i] @ v[j] - a[i] @ v[i]) for j in range(n) if y[j] != y[i]))
    return out / n


@pytest.mark.parametrize("with_labels", [False, True])
def test_npair_matches_brute_force(with_labels: bool) -> None:
    a, v = _np_pair(6, 3, seed=13)
    labels = np.array([0, 1, 0, 2, 1, 3]) if with_labels else None
    ref = _npair_reference(a, v, labels)
    tl = None if labels is None else torch.from_numpy(labels)
    assert npair_loss(torch.from_numpy(a), torch.from_numpy(v), tl, direction="a2v").item() == pytest.approx(ref, rel=1e-10)
    ref_v2a = _npair_reference(v, a, labels)
    assert npair_loss(torch.from_numpy(a), torch.from_numpy(v), tl).item() == pytest.approx(ref + ref_v2a, rel=1e-10)


def test_npair_is_infonce_with_dot_product_and_unit_temperature() -> None:
    g = torch.Generator().manual_seed(14)
    a, v = torch.randn(8, 5, generator=g, dtype=torch.float64), torch.randn(8, 5, generator=g, dtype=torch.float64)
    for direction in ("a2v", "v2a", "both"):
        n = npair_loss(a, v, direction=direction)  # type: ignore[arg-type]
        i = infonce_loss(a, v, temperature=1.0, similarity="dot", direction=direction)  # type: ignore[arg-type]
        assert n.item() == pytest.approx(i.item(), rel=1e-12)


def test_npair_options_rejected() -> None:
    with pytest.raises(ConfigError, match=r"^npair: l2_reg: must be >= 0.0"):
        npair_loss(TA, TV, l2_reg=-1.0)


# ------------------------------------------------------------------------- lifted
def test_lifted_hand_computed() -> None:
    # a0 = (0, 0), a1 = (0, 1); v0 = (1, 0), v1 = (1, 1). Euclidean D = [[1, sqrt2], [sqrt2, 1]].
    # Pair (0, 0): negatives of a0: v1 (sqrt2); of v0: a1 (sqrt2).
    #   J00 = log(2 e^(1 - sqrt2)) + 1 = ln 2 + 2 - sqrt2 = 1.27899...; J11 is the same by symmetry.
    # L = 1 / (2 |P|) * (J00^2 + J11^2) = J^2 / 2.
    a = torch.tensor([[0.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    v = torch.tensor([[1.0, 0.0], [1.0, 1.0]], dtype=torch.float64)
    j = math.log(2) + 2 - math.sqrt(2)
    assert lifted_structured_loss(a, v, margin=1.0).item() == pytest.approx(j**2 / 2, abs=1e-12)
    assert lifted_structured_loss(a, v, margin=1.0, reduction="sum").item() == pytest.approx(j**2, abs=1e-12)


def _lifted_reference(a, v, labels, alpha) -> float:
    """Song et al. (2016) eq. (4), cross-modal: P = {(a_i, v_j): y_i = y_j}."""
    n = len(a)
    y = np.arange(n) if labels is None else labels
    d = np.array([[_dist(a[i], v[j], False) for j in range(n)] for i in range(n)])
    terms = []
    for i, j in itertools.product(range(n), repeat=2):
        if y[i] != y[j]:
            continue
        s = sum(math.exp(alpha - d[i, k]) for k in range(n) if y[k] != y[i])
        s += sum(math.exp(alpha - d[m, j]) for m in range(n) if y[m] != y[j])
        if s == 0:
            continue
        terms.append(max(0.0, math.log(s) + d[i, j]) ** 2)
    return sum(terms) / (2 * len(terms))


@pytest.mark.parametrize("with_labels", [False, True])
def test_lifted_matches_brute_force(with_labels: bool) -> None:
    a, v = _np_pair(7, 3, seed=15)
    labels = np.array([0, 1, 0, 2, 1, 1, 0]) if with_labels else None
    ref = _lifted_reference(a, v, labels, 1.0)
    got = lifted_structured_loss(torch.from_numpy(a), torch.from_numpy(v), None if labels is None else torch.from_numpy(labels))
    assert got.item() == pytest.approx(ref, rel=1e-10)


def test_lifted_far_negatives_give_zero() -> None:
    # Matched pairs coincide, mismatched ones are 100 apart: J = log(2 e^(1 - 100)) + 0 < 0.
    a = torch.tensor([[0.0, 0.0], [100.0, 0.0]], dtype=torch.float64, requires_grad=True)
    loss = lifted_structured_loss(a, a.detach().clone())
    assert loss.item() == 0.0
    (grad,) = torch.autograd.grad(loss, a)
    assert torch.isfinite(grad).all()
