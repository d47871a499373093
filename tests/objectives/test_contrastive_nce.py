"""contrastive (eq. 4), infonce (eq. 5) and milnce."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from avcl_bench.baselines.objectives import contrastive_loss, infonce_loss, milnce_loss
from avcl_bench.benchmark.errors import ConfigError, InputError


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def _randn(*shape: int, seed: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


# -------------------------------------------------------------------- contrastive
def test_contrastive_hand_computed() -> None:
    # a0 = (1, 0), a1 = (0, 1); v0 = (1, 0), v1 = (1, 1). Cosine distance d = 1 - cos:
    #   d(a0, v0) = 0, d(a0, v1) = 1 - 1/sqrt2, d(a1, v0) = 1, d(a1, v1) = 1 - 1/sqrt2.
    # zeta = 1. Positives (diagonal): 0^2 + (1 - 1/sqrt2)^2.
    # Negatives: max(0, 1 - (1 - 1/sqrt2))^2 = 1/2 and max(0, 1 - 1)^2 = 0.
    # Sum = (1 - 1/sqrt2)^2 + 1/2 = 2 - sqrt2.
    a = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    v = torch.tensor([[1.0, 0.0], [1.0, 1.0]], dtype=torch.float64)
    assert contrastive_loss(a, v, reduction="sum").item() == pytest.approx(2 - math.sqrt(2), abs=1e-12)
    assert contrastive_loss(a, v).item() == pytest.approx((2 - math.sqrt(2)) / 4, abs=1e-12)
    # Labels (0, 0): all four pairs positive -> 2 (1 - 1/sqrt2)^2 + 1^2.
    both_pos = 2 * (1 - 1 / math.sqrt(2)) ** 2 + 1.0
    assert contrastive_loss(a, v, torch.tensor([0, 0]), reduction="sum").item() == pytest.approx(both_pos, abs=1e-12)


def test_contrastive_is_squared_cosine_embedding_loss() -> None:
    """Per pair: contrastive(zeta) == CosineEmbeddingLoss(margin = 1 - zeta) ** 2."""
    a, v = _randn(12, 4, seed=20), _randn(12, 4, seed=21)
    targets = torch.tensor([True, False] * 6)
    for zeta in (0.5, 1.0, 1.5):
        cel = torch.nn.CosineEmbeddingLoss(margin=1 - zeta, reduction="none")(a, v, targets.double() * 2 - 1)
        ref = cel.pow(2).mean()
        got = contrastive_loss(a, v, margin=zeta, pair_targets=targets)
        assert got.item() == pytest.approx(ref.item(), rel=1e-12)


@pytest.mark.parametrize("with_labels", [False, True])
def test_contrastive_matches_brute_force(with_labels: bool) -> None:
    rng = np.random.default_rng(22)
    a, v = rng.normal(size=(5, 3)), rng.normal(size=(5, 3))
    y = np.array([0, 1, 0, 1, 2]) if with_labels else np.arange(5)
    zeta = 0.8
    ref = 0.0
    for i in range(5):
        for j in range(5):
            d = 1 - _cos(a[i], v[j])
            ref += d**2 if y[i] == y[j] else max(0.0, zeta - d) ** 2
    got = contrastive_loss(
        torch.from_numpy(a), torch.from_numpy(v), torch.from_numpy(y) if with_labels else None,
        margin=zeta, reduction="sum",
    )
    assert got.item() == pytest.approx(ref, rel=1e-10)


def test_contrastive_single_item_and_errors() -> None:
    a = torch.tensor([[1.0, 0.0]])
    assert contrastive_loss(a, torch.tensor([[0.0, 2.0]])).item() == pytest.approx(1.0)  # d = 1, positive
    with pytest.raises(ConfigError, match=r"^contrastive: labels/pair_targets: give one of them"):
        contrastive_loss(a, a, torch.tensor([0]), pair_targets=torch.tensor([True]))
    with pytest.raises(InputError, match=r"^contrastive: pair_targets: expected a bool tensor"):
        contrastive_loss(a, a, pair_targets=torch.tensor([1]))
    with pytest.raises(InputError, match=r"^contrastive: pair_targets: expected shape \(1,\)"):
        contrastive_loss(a, a, pair_targets=torch.tensor([True, False]))
    with pytest.raises(ConfigError, match=r"^contrastive: margin: must be <= 2.0"):
        contrastive_loss(a, a, margin=3.0)


# ------------------------------------------------------------------------ infonce
def test_infonce_hand_computed() -> None:
    # a0 = (1, 0), a1 = (0, 1); v0 = (1, 0), v1 = (3, 4) -> S = [[1, .6], [0, .8]], tau = 0.5:
    # logits = [[2, 1.2], [0, 1.6]]; -log(e^x / (e^x + e^y)) = log(1 + e^(y - x)).
    # a->v: log(1 + e^-.8) + log(1 + e^-1.6);  v->a: log(1 + e^-2) + log(1 + e^-.4).
    a = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    v = torch.tensor([[1.0, 0.0], [3.0, 4.0]], dtype=torch.float64)
    sp = lambda t: math.log1p(math.exp(t))  # noqa: E731
    a2v = (sp(-0.8) + sp(-1.6)) / 2
    v2a = (sp(-2.0) + sp(-0.4)) / 2
    assert infonce_loss(a, v, temperature=0.5, direction="a2v").item() == pytest.approx(a2v, abs=1e-12)
    assert infonce_loss(a, v, temperature=0.5).item() == pytest.approx(a2v + v2a, abs=1e-12)
    assert infonce_loss(a, v, temperature=0.5, reduction="sum").item() == pytest.approx(2 * (a2v + v2a), abs=1e-12)


@pytest.mark.parametrize("similarity", ["cosine", "dot"])
@pytest.mark.parametrize("tau", [0.07, 1.0])
def test_infonce_matches_torch_cross_entropy(similarity: str, tau: float) -> None:
    a, v = _randn(9, 6, seed=23), _randn(9, 6, seed=24)
    s = F.normalize(a, dim=1) @ F.normalize(v, dim=1).T if similarity == "cosine" else a @ v.T
    target = torch.arange(9)
    ref = F.cross_entropy(s / tau, target) + F.cross_entropy(s.T / tau, target)
    got = infonce_loss(a, v, temperature=tau, similarity=similarity)  # type: ignore[arg-type]
    assert got.item() == pytest.approx(ref.item(), rel=1e-12)


def test_infonce_labels_drop_same_class_negatives() -> None:
    rng = np.random.default_rng(25)
    a, v = rng.normal(size=(6, 3)), rng.normal(size=(6, 3))
    y = np.array([0, 0, 1, 2, 1, 0])
    tau = 0.3
    ref = 0.0
    for i in range(6):  # eq. (5) with loops, a->v
        pos = math.exp(_cos(a[i], v[i]) / tau)
        negs = sum(math.exp(_cos(a[i], v[j]) / tau) for j in range(6) if y[j] != y[i])
        ref -= math.log(pos / (pos + negs))
    got = infonce_loss(torch.from_numpy(a), torch.from_numpy(v), torch.from_numpy(y), temperature=tau, direction="a2v")
    assert got.item() == pytest.approx(ref / 6, rel=1e-10)


def test_infonce_options_rejected() -> None:
    a = _randn(3, 2, seed=26)
    with pytest.raises(ConfigError, match=r"^infonce: temperature: must be > 0.0"):
        infonce_loss(a, a, temperature=0.0)
    with pytest.raises(ConfigError, match=r"^infonce: similarity: expected one of"):
        infonce_loss(a, a, similarity="l2")  # type: ignore[arg-type]


# ------------------------------------------------------------------------- milnce
def test_milnce_hand_computed_two_positives() -> None:
    # a0 = (1, 0); candidates v0 = (1, 0), v1 = (0, 1), v2 = (-1, 0) -> cos = (1, 0, -1), tau = 1.
    # Positives {v0, v1}: -log((e^1 + e^0) / (e^1 + e^0 + e^-1)).
    a = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    v = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]], dtype=torch.float64)
    pos = torch.tensor([[True, True, False]])
    e = math.e
    want = -math.log((e + 1) / (e + 1 + 1 / e))
    assert milnce_loss(a, v, positives=pos, temperature=1.0, direction="a2v").item() == pytest.approx(want, abs=1e-12)
    # v->a needs a positive in every column: v2 has none.
    with pytest.raises(InputError, match=r"^milnce: positives: column \(visual anchor\) 2 has no positive"):
        milnce_loss(a, v, positives=pos)


@pytest.mark.parametrize("direction", ["a2v", "v2a", "both"])
def test_milnce_with_one_positive_is_infonce(direction: str) -> None:
    a, v = _randn(7, 4, seed=27), _randn(7, 4, seed=28)
    ref = infonce_loss(a, v, temperature=0.2, direction=direction)  # type: ignore[arg-type]
    assert milnce_loss(a, v, temperature=0.2, direction=direction).item() == pytest.approx(ref.item(), rel=1e-12)  # type: ignore[arg-type]
    eye = torch.eye(7, dtype=torch.bool)
    got = milnce_loss(a, v, positives=eye, temperature=0.2, direction=direction)  # type: ignore[arg-type]
    assert got.item() == pytest.approx(ref.item(), rel=1e-12)


def test_milnce_matches_brute_force_rectangular() -> None:
    rng = np.random.default_rng(29)
    a, v = rng.normal(size=(3, 4)), rng.normal(size=(6, 4))
    pos = np.zeros((3, 6), dtype=bool)
    pos[0, [0, 1]] = pos[1, [2, 3]] = pos[2, [4, 5]] = True  # two candidate clips per audio
    tau = 0.5
    s = np.array([[_cos(a[i], v[j]) / tau for j in range(6)] for i in range(3)])
    row_ref = np.mean([-math.log(np.exp(s[i, pos[i]]).sum() / np.exp(s[i]).sum()) for i in range(3)])
    col_ref = np.mean([-math.log(np.exp(s[pos[:, j], j]).sum() / np.exp(s[:, j]).sum()) for j in range(6)])
    kw = dict(positives=torch.from_numpy(pos), temperature=tau)
    ta, tv = torch.from_numpy(a), torch.from_numpy(v)
    assert milnce_loss(ta, tv, direction="a2v", **kw).item() == pytest.approx(row_ref, rel=1e-10)
    assert milnce_loss(ta, tv, **kw).item() == pytest.approx(row_ref + col_ref, rel=1e-10)


def test_milnce_labels_equal_positive_matrix() -> None:
    a, v = _randn(6, 3, seed=30), _randn(6, 3, seed=31)
    y = torch.tensor([0, 1, 0, 2, 1, 1])
    assert milnce_loss(a, v, y).item() == pytest.approx(
        milnce_loss(a, v, positives=y.unsqueeze(1) == y.unsqueeze(0)).item(), rel=1e-12
    )


def test_milnce_errors() -> None:
    a, v = _randn(2, 3, seed=32), _randn(3, 3, seed=33)
    with pytest.raises(InputError, match=r"^milnce: a/v: batch size mismatch .*pass positives"):
        milnce_loss(a, v)
    with pytest.raises(InputError, match=r"^milnce: positives: expected shape \(2, 3\)"):
        milnce_loss(a, v, positives=torch.ones(3, 2, dtype=torch.bool))
    with pytest.raises(InputError, match=r"^milnce: positives: every pair is a positive"):
        milnce_loss(a, v, positives=torch.ones(2, 3, dtype=torch.bool))
    with pytest.raises(InputError, match=r"^milnce: positives: expected a bool tensor"):
        milnce_loss(a, v, positives=torch.ones(2, 3))
    with pytest.raises(ConfigError, match=r"^milnce: labels/positives: give one of them"):
        milnce_loss(a, a, torch.tensor([0, 1]), positives=torch.eye(2, dtype=torch.bool))
