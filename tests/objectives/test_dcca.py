"""dcca: hand-computed correlations, numpy whitening reference, sklearn CCA, stability."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.cross_decomposition import CCA

from avcl_bench.baselines.objectives import canonical_correlations, dcca_loss
from avcl_bench.benchmark.errors import ConfigError, InputError


def _numpy_canonical_correlations(a: np.ndarray, v: np.ndarray, r1: float, r2: float) -> np.ndarray:
    """Singular values of S_aa^{-1/2} S_av S_vv^{-1/2}, whitening via symmetric eigen-decomposition."""
    ha, hv = a - a.mean(0), v - v.mean(0)
    m = len(a) - 1
    saa = ha.T @ ha / m + r1 * np.eye(a.shape[1])
    svv = hv.T @ hv / m + r2 * np.eye(v.shape[1])
    sav = ha.T @ hv / m

    def inv_sqrt(s: np.ndarray) -> np.ndarray:
        w, q = np.linalg.eigh(s)
        return q @ np.diag(w**-0.5) @ q.T

    return np.linalg.svd(inv_sqrt(saa) @ sav @ inv_sqrt(svv), compute_uv=False)


def test_dcca_hand_computed_one_dimensional() -> None:
    # 1-D: the canonical correlation is |Pearson r|. a = (1, 2, 3), v = (1, 3, 2):
    # centred a = (-1, 0, 1), v = (-1, 1, 0); cov = (1 + 0 + 0)/2 = .5, var a = var v = 2/2 = 1 -> r = .5.
    a = torch.tensor([[1.0], [2.0], [3.0]], dtype=torch.float64)
    v = torch.tensor([[1.0], [3.0], [2.0]], dtype=torch.float64)
    assert dcca_loss(a, v, r1=0.0, r2=0.0).item() == pytest.approx(-0.5, abs=1e-12)
    # Ridge r1 = r2 = 1: .5 / sqrt((1 + 1)(1 + 1)) = .25. Negated v: still |r|.
    assert dcca_loss(a, v, r1=1.0, r2=1.0).item() == pytest.approx(-0.25, abs=1e-12)
    assert dcca_loss(a, -v, r1=0.0, r2=0.0).item() == pytest.approx(-0.5, abs=1e-12)


def test_dcca_hand_computed_independent_blocks() -> None:
    # a = (x, y), v = (x, z) with x, y, z centred and pairwise orthogonal (uncorrelated):
    # correlations are 1 (x with x) and 0 (y with z).
    x = np.array([1.0, -1.0, 1.0, -1.0])
    y = np.array([1.0, 1.0, -1.0, -1.0])
    z = np.array([1.0, -1.0, -1.0, 1.0])
    a = torch.from_numpy(np.stack([x, y], 1))
    v = torch.from_numpy(np.stack([x, z], 1))
    corr = canonical_correlations(a, v, r1=0.0, r2=0.0)
    assert corr.tolist() == pytest.approx([1.0, 0.0], abs=1e-12)
    assert dcca_loss(a, v, r1=0.0, r2=0.0, top_k=1).item() == pytest.approx(-1.0, abs=1e-12)


@pytest.mark.parametrize("r", [0.0, 0.1])
def test_dcca_matches_numpy_whitening(r: float) -> None:
    rng = np.random.default_rng(40)
    z = rng.normal(size=(60, 2))
    a = np.hstack([z, rng.normal(size=(60, 1))]) @ rng.normal(size=(3, 3)) + 0.3 * rng.normal(size=(60, 3))
    v = np.hstack([z, rng.normal(size=(60, 2))]) @ rng.normal(size=(4, 4)) + 0.3 * rng.normal(size=(60, 4))
    ref = _numpy_canonical_correlations(a, v, r, r)
    got = canonical_correlations(torch.from_numpy(a), torch.from_numpy(v), r1=r, r2=r)
    assert got.numpy() == pytest.approx(ref, abs=1e-10)
    assert dcca_loss(torch.from_numpy(a), torch.from_numpy(v), r1=r, r2=r).item() == pytest.approx(-ref.sum(), abs=1e-10)
    mean2 = dcca_loss(torch.from_numpy(a), torch.from_numpy(v), r1=r, r2=r, top_k=2, reduction="mean")
    assert mean2.item() == pytest.approx(-ref[:2].mean(), abs=1e-10)


def test_dcca_matches_sklearn_cca() -> None:
    """Correlations of sklearn's CCA score pairs equal our (unregularised) canonical correlations."""
    rng = np.random.default_rng(41)
    z = rng.normal(size=(300, 2))
    a = np.hstack([z, rng.normal(size=(300, 1))]) @ rng.normal(size=(3, 3)) + 0.5 * rng.normal(size=(300, 3))
    v = z @ rng.normal(size=(2, 2)) + 0.8 * rng.normal(size=(300, 2))
    cca = CCA(n_components=2, max_iter=5000, tol=1e-12).fit(a, v)
    xs, ys = cca.transform(a, v)
    sk = [abs(np.corrcoef(xs[:, k], ys[:, k])[0, 1]) for k in range(2)]
    ours = canonical_correlations(torch.from_numpy(a), torch.from_numpy(v), r1=0.0, r2=0.0).numpy()
    assert ours == pytest.approx(sk, abs=1e-6)


def test_dcca_invariant_to_invertible_linear_maps() -> None:
    g = torch.Generator().manual_seed(42)
    a = torch.randn(40, 3, generator=g, dtype=torch.float64)
    v = a @ torch.randn(3, 3, generator=g, dtype=torch.float64) + torch.randn(40, 3, generator=g, dtype=torch.float64)
    m = torch.tensor([[2.0, 1.0, 0.0], [0.0, 1.0, 3.0], [1.0, 0.0, 1.0]], dtype=torch.float64)
    base = dcca_loss(a, v, r1=0.0, r2=0.0)
    assert dcca_loss(a @ m + 5.0, v, r1=0.0, r2=0.0).item() == pytest.approx(base.item(), abs=1e-10)
    assert -3.0 <= base.item() <= 0.0


def test_dcca_gradients_are_finite_and_improve_correlation() -> None:
    g = torch.Generator().manual_seed(43)
    a = torch.randn(32, 4, generator=g, requires_grad=True)
    v = torch.randn(32, 3, generator=g)
    loss = dcca_loss(a, v)
    assert loss.dtype == torch.float32
    (grad,) = torch.autograd.grad(loss, a)
    assert torch.isfinite(grad).all()
    with torch.no_grad():
        assert dcca_loss(a - 0.5 * grad, v).item() < loss.item()


@pytest.mark.parametrize("case", ["constant", "duplicated_columns", "fewer_items_than_dims"])
def test_dcca_degenerate_batches_stay_finite_with_ridge(case: str) -> None:
    g = torch.Generator().manual_seed(44)
    if case == "constant":
        a = torch.ones(8, 3, dtype=torch.float64)
        v = torch.randn(8, 2, generator=g, dtype=torch.float64)
    elif case == "duplicated_columns":
        col = torch.randn(8, 1, generator=g, dtype=torch.float64)
        a = torch.cat([col, col, col], 1)
        v = torch.cat([col, col], 1)  # equal singular values (repeated correlations)
    else:
        a = torch.randn(3, 6, generator=g, dtype=torch.float64)
        v = torch.randn(3, 5, generator=g, dtype=torch.float64)
    a.requires_grad_(True)
    v.requires_grad_(True)
    loss = dcca_loss(a, v, r1=1e-3, r2=1e-3)
    ga, gv = torch.autograd.grad(loss, (a, v))
    assert torch.isfinite(loss) and torch.isfinite(ga).all() and torch.isfinite(gv).all()
    if case == "constant":
        assert loss.item() == pytest.approx(0.0, abs=1e-12)


def test_dcca_errors() -> None:
    a = torch.ones(5, 2, dtype=torch.float64)
    v = torch.randn(5, 2, dtype=torch.float64)
    with pytest.raises(InputError, match=r"^dcca: a: covariance is singular .*use r1 > 0"):
        dcca_loss(a, v, r1=0.0)
    with pytest.raises(InputError, match=r"^dcca: a: needs at least 2 item"):
        dcca_loss(a[:1], v[:1])
    with pytest.raises(InputError, match=r"^dcca: a/v: batch size mismatch"):
        dcca_loss(v, v[:4])
    with pytest.raises(ConfigError, match=r"^dcca: top_k: expected an integer in \[1, 2\]"):
        dcca_loss(v, v, top_k=3)
    with pytest.raises(ConfigError, match=r"^dcca: r1: must be >= 0.0"):
        dcca_loss(v, v, r1=-1.0)
    bad = v.clone()
    bad[0, 0] = float("nan")
    with pytest.raises(InputError, match=r"^dcca: v: contains NaN"):
        dcca_loss(v, bad)
