"""Generation metrics vs scipy formulas, brute-force loops and torchmetrics' KID."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.linalg
import torch

import avcl_bench.tasks.generation.metrics as gen
from avcl_bench.benchmark.errors import ConfigError, InputError
from avcl_bench.tasks.base import MetricSpec
from avcl_bench.tasks.generation.metrics import (
    METRICS,
    frechet_distance,
    frechet_distance_from_stats,
    gaussian_stats,
    generation_metrics,
    kernel_inception_distance,
    paired_mrr,
    trace_sqrt_product,
)


# ----------------------------------------------------------------------------- references
def direct_fd(x: np.ndarray, y: np.ndarray, eps: float | None = None) -> float:
    """The FD formula written out with numpy/scipy; ``eps`` offsets the square-root term only."""
    mu1, mu2 = x.mean(0), y.mean(0)
    c1, c2 = np.cov(x.T), np.cov(y.T)
    off = 0.0 if eps is None else eps * np.eye(len(c1))
    root = scipy.linalg.sqrtm((c1 + off) @ (c2 + off))
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(c1) + np.trace(c2) - 2 * np.trace(root).real)


def brute_mmd2(x: np.ndarray, y: np.ndarray, degree=3, gamma=None, coef0=1.0) -> float:
    """Unbiased MMD^2 (Binkowski et al. 2018, eq. 4) with explicit loops over pairs."""
    g = 1.0 / x.shape[1] if gamma is None else gamma

    def k(a, b):
        return (g * float(np.dot(a, b)) + coef0) ** degree

    m, n = len(x), len(y)
    kxx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    kyy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    kxy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return kxx + kyy - 2 * kxy


def brute_kid(x, y, subsets, subset_size, seed, **kw):
    """The documented subset protocol, each subset scored by the brute-force estimator."""
    rng = np.random.default_rng(seed)
    size = min(subset_size, len(x), len(y))
    vals = []
    for _ in range(subsets):
        i = rng.choice(len(x), size, replace=False)
        j = rng.choice(len(y), size, replace=False)
        vals.append(brute_mmd2(x[i], y[j], **kw))
    return float(np.mean(vals)), float(np.std(vals))


def brute_mrr(g: np.ndarray, r: np.ndarray) -> float:
    total = 0.0
    for i in range(len(g)):
        scores = [float(np.dot(g[i], r[j]) / (np.linalg.norm(g[i]) * np.linalg.norm(r[j]))) for j in range(len(r))]
        rank = sum(1 for s in scores if s >= scores[i])
        total += 1.0 / rank
    return total / len(g)


def feats(seed, n, d, shift=0.0, scale=1.0):
    rng = np.random.default_rng(seed)
    mix = rng.standard_normal((d, d)) / np.sqrt(d)
    return (rng.standard_normal((n, d)) @ mix) * scale + shift


# ----------------------------------------------------------------------------- Fréchet distance
@pytest.mark.parametrize(("n", "m", "d", "shift", "scale"), [(200, 150, 8, 0.5, 1.0), (300, 300, 32, 0.0, 2.0), (50, 80, 3, -1.0, 0.3)])
def test_fd_matches_direct_formula(n, m, d, shift, scale):
    x, y = feats(1, n, d), feats(2, m, d, shift, scale)
    got = frechet_distance(x, y)
    assert type(got) is float
    assert got == pytest.approx(direct_fd(x, y), rel=1e-9, abs=1e-9)
    assert frechet_distance(y, x) == pytest.approx(got, rel=1e-7)


def test_fd_of_identical_sets_is_zero():
    x = feats(3, 400, 16, shift=3.0)
    mu, sigma = gaussian_stats(x)
    assert abs(frechet_distance(x, x)) < 1e-8 * np.trace(sigma)
    np.testing.assert_allclose(mu, x.mean(0))
    np.testing.assert_allclose(sigma, np.cov(x, rowvar=False, ddof=1))


def test_fd_closed_form_for_diagonal_gaussians():
    rng = np.random.default_rng(4)
    mu1, mu2 = rng.standard_normal(6), rng.standard_normal(6)
    v1, v2 = rng.uniform(0.1, 3, 6), rng.uniform(0.1, 3, 6)
    want = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(v1) - np.sqrt(v2)) ** 2)
    got = frechet_distance_from_stats(mu1, np.diag(v1), mu2, np.diag(v2))
    assert got == pytest.approx(want, rel=1e-10)
    # 1-D statistics given as scalars: (mu1-mu2)^2 + (s1 - s2)^2
    assert frechet_distance_from_stats(1.0, 4.0, -1.0, 9.0) == pytest.approx(4.0 + 1.0)


def test_fd_rank_deficient_is_exact():
    x, y = feats(5, 6, 20), feats(6, 9, 20, shift=0.2)  # N < D: singular covariances
    got = frechet_distance(x, y)
    assert np.isfinite(got)
    # pytorch-fid's eps offset moves the value by O(sqrt(eps)) per null direction; the exact value
    # is the limit of the offset formula as the offset vanishes
    gaps = [abs(got - direct_fd(x, y, eps=e)) for e in (1e-6, 1e-8, 1e-10, 1e-12)]
    assert gaps == sorted(gaps, reverse=True) and gaps[-1] < 1e-5
    # constant features: zero covariance on both sides, FD reduces to the mean term
    c1, c2 = np.ones((4, 3)), np.full((5, 3), 2.0)
    assert frechet_distance(c1, c2) == pytest.approx(3.0, abs=1e-5)


def test_trace_sqrt_product_matches_sqrtm_on_random_covariances():
    """Parity with pytorch-fid's formula (scipy sqrtm of the product) on non-singular covariances."""
    rng = np.random.default_rng(11)
    for d in (1, 2, 7, 64):
        a, b = rng.standard_normal((3 * d, d)), rng.standard_normal((3 * d, d)) * 3.0
        s1, s2 = np.cov(a.T).reshape(d, d), np.cov(b.T).reshape(d, d)
        want = float(np.trace(scipy.linalg.sqrtm(s1 @ s2)).real)
        assert trace_sqrt_product(s1, s2) == pytest.approx(want, rel=1e-10)
        assert trace_sqrt_product(s2, s1) == pytest.approx(want, rel=1e-10)


def test_fd_extreme_scales_stay_finite():
    x, y = feats(8, 50, 6), feats(9, 60, 6, shift=0.3)
    base = frechet_distance(x, y)
    for scale in (1e-150, 1e15):
        assert frechet_distance(x * scale, y * scale) == pytest.approx(base * scale**2, rel=1e-8)


def test_fd_invalid_covariance_raises():
    with pytest.raises(InputError, match=r"sigma1: is not a covariance: negative eigenvalue"):
        frechet_distance_from_stats(np.zeros(2), np.diag([1.0, -1.0]), np.zeros(2), np.eye(2))


def test_fd_input_errors():
    x = feats(7, 10, 4)
    with pytest.raises(InputError, match=r"feats1: needs at least 2 item"):
        frechet_distance(x[:1], x)
    bad = x.copy()
    bad[3, 2] = np.nan
    with pytest.raises(InputError, match=r"gen\.npz: feats2: contains NaN or inf"):
        frechet_distance(x, bad, source="gen.npz")
    with pytest.raises(InputError, match=r"dimension mismatch"):
        frechet_distance(x, x[:, :3])
    with pytest.raises(InputError, match=r"expected 2-D"):
        frechet_distance(x[0], x)
    with pytest.raises(InputError, match=r"sigma2: expected a \(4, 4\) covariance"):
        frechet_distance_from_stats(np.zeros(4), np.eye(4), np.zeros(4), np.eye(3))
    with pytest.raises(InputError, match=r"different lengths"):
        frechet_distance_from_stats(np.zeros(4), np.eye(4), np.zeros(3), np.eye(4))


# ----------------------------------------------------------------------------- KID
@pytest.mark.parametrize(("n", "m", "d", "subsets", "size"), [(12, 15, 5, 4, 10), (9, 9, 3, 3, 100), (20, 7, 6, 5, 6)])
def test_kid_matches_brute_force(n, m, d, subsets, size):
    x, y = feats(8, n, d), feats(9, m, d, shift=0.3)
    got = kernel_inception_distance(x, y, subsets=subsets, subset_size=size, seed=11)
    want = brute_kid(x, y, subsets, size, seed=11)
    assert got[0] == pytest.approx(want[0], rel=1e-9, abs=1e-12)
    assert got[1] == pytest.approx(want[1], rel=1e-7, abs=1e-12)


def test_kid_kernel_options_and_paths(monkeypatch):
    x, y = feats(10, 14, 4), feats(11, 12, 4, scale=1.5)
    kw = dict(degree=2, gamma=0.7, coef0=0.5)
    got = kernel_inception_distance(x, y, subsets=3, subset_size=8, seed=1, **kw)
    assert got == pytest.approx(brute_kid(x, y, 3, 8, seed=1, **kw), rel=1e-9)
    monkeypatch.setattr(gen, "_KID_GRAM_LIMIT", 0)  # per-subset kernel path
    assert kernel_inception_distance(x, y, subsets=3, subset_size=8, seed=1, **kw) == pytest.approx(got, rel=1e-12)


def test_kid_deterministic_and_identical_sets():
    x, y = feats(12, 30, 5), feats(13, 40, 5, shift=1.0)
    a = kernel_inception_distance(x, y, subsets=5, subset_size=10, seed=3)
    assert a == kernel_inception_distance(x, y, subsets=5, subset_size=10, seed=3)
    assert a != kernel_inception_distance(x, y, subsets=5, subset_size=10, seed=4)
    # whole-set subsets of identical data: the unbiased estimator is exactly balanced -> ~0
    mean, std = kernel_inception_distance(x, x, subsets=2, subset_size=30)
    assert mean == pytest.approx(brute_mmd2(x, x), abs=1e-12)
    assert brute_mmd2(x, x) < 0  # unbiased: can go below zero
    assert std == pytest.approx(0.0, abs=1e-12)


def test_kid_matches_torchmetrics_on_whole_sets():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from torchmetrics.image.kid import KernelInceptionDistance

        n, d = 25, 7
        x, y = feats(14, n, d), feats(15, n, d, shift=0.4)
        metric = KernelInceptionDistance(feature=torch.nn.Identity(), subsets=3, subset_size=n)
        metric.update(torch.from_numpy(y), real=True)
        metric.update(torch.from_numpy(x), real=False)
        tm_mean, tm_std = metric.compute()
    got_mean, got_std = kernel_inception_distance(x, y, subsets=3, subset_size=n)
    assert got_mean == pytest.approx(float(tm_mean), rel=1e-9)
    assert got_std == pytest.approx(float(tm_std), abs=1e-12)


def test_kid_errors():
    x = feats(16, 10, 3)
    with pytest.raises(ConfigError, match=r"subsets must be a positive integer"):
        kernel_inception_distance(x, x, subsets=0)
    with pytest.raises(ConfigError, match=r"gamma must be positive"):
        kernel_inception_distance(x, x, gamma=-1.0)
    with pytest.raises(ConfigError, match=r"subset_size must be at least 2"):
        kernel_inception_distance(x, x, subset_size=1)
    with pytest.raises(InputError, match=r"feats2: needs at least 2"):
        kernel_inception_distance(x, x[:1])


# ----------------------------------------------------------------------------- MRR
def test_mrr_matches_brute_force_random():
    g, r = feats(17, 40, 6), feats(18, 40, 6)
    r = 0.5 * r + g  # partly aligned pairs
    assert paired_mrr(g, r) == pytest.approx(brute_mrr(g, r), rel=1e-12)


def test_mrr_ties_are_pessimistic():
    # real items 0..3 are parallel copies: every generated item ties with all of them
    base = np.array([1.0, 2.0, 0.5])
    r = np.stack([base, 2 * base, 0.5 * base, base, [0.0, 0.0, 1.0]])
    g = np.stack([base, base, 3 * base, base, [0.0, 0.0, 2.0]])
    got = paired_mrr(g, r)
    assert got == pytest.approx(brute_mrr(g, r))
    assert got == pytest.approx((4 * (1 / 4) + 1.0) / 5)


def test_mrr_single_pair_and_errors():
    assert paired_mrr(np.array([[1.0, 0.0]]), np.array([[0.0, 3.0]])) == 1.0
    with pytest.raises(InputError, match=r"real_features: row 1 is all zeros"):
        paired_mrr(np.ones((2, 2)), np.array([[1.0, 0.0], [0.0, 0.0]]))
    with pytest.raises(InputError, match=r"equal counts"):
        paired_mrr(np.ones((2, 2)), np.ones((3, 2)))


# ----------------------------------------------------------------------------- generation_metrics
def test_generation_metrics_keys_and_values():
    g, r = feats(19, 30, 5, shift=0.2), feats(20, 30, 5)
    out = generation_metrics(g, r, kid_subsets=4, kid_subset_size=10, seed=2)
    assert set(out) == {"FD", "KID", "KID_std", "MRR"}
    assert all(type(v) is float for v in out.values())
    assert out["FD"] == pytest.approx(direct_fd(g, r), rel=1e-9)
    assert (out["KID"], out["KID_std"]) == pytest.approx(brute_kid(g, r, 4, 10, seed=2), rel=1e-9)
    assert out["MRR"] == pytest.approx(brute_mrr(g, r))
    assert "MRR" not in generation_metrics(g, r, paired=False, kid_subsets=2, kid_subset_size=5)
    unpaired = generation_metrics(g[:20], r, kid_subsets=2, kid_subset_size=5)
    assert set(unpaired) == {"FD", "KID", "KID_std"}
    with pytest.raises(InputError, match=r"paired=True needs as many"):
        generation_metrics(g[:20], r, paired=True)
    with pytest.raises(InputError, match=r"gen_features: contains NaN"):
        generation_metrics(np.full((3, 5), np.nan), r)


def test_metric_specs():
    assert set(METRICS) == {"FD", "KID", "KID_std", "MRR"}
    assert all(isinstance(m, MetricSpec) for m in METRICS.values())
    assert not METRICS["FD"].higher_is_better and not METRICS["KID"].higher_is_better
    assert METRICS["MRR"].higher_is_better


# ----------------------------------------------------------------------------- FID Inception
# Spot checks of parameter names/shapes against torchvision's Inception3 + pytorch-fid's
# patched blocks (what the pytorch-fid weights file holds).
EXPECTED_ENTRIES = {
    "Conv2d_1a_3x3.conv.weight": (32, 3, 3, 3),
    "Conv2d_4a_3x3.bn.running_var": (192,),
    "Mixed_5b.branch_pool.conv.weight": (32, 192, 1, 1),
    "Mixed_6a.branch3x3.conv.weight": (384, 288, 3, 3),
    "Mixed_6e.branch7x7dbl_5.conv.weight": (192, 192, 1, 7),
    "Mixed_7a.branch7x7x3_4.conv.weight": (192, 192, 3, 3),
    "Mixed_7c.branch3x3dbl_3b.bn.weight": (384,),
    "fc.weight": (1008, 2048),
}


@pytest.fixture(scope="module")
def inception_file(tmp_path_factory):
    from avcl_bench.tasks.generation.inception import FIDInceptionV3

    torch.manual_seed(0)
    model = FIDInceptionV3()
    path = tmp_path_factory.mktemp("inception") / "pt_inception-2015-12-05-6726825d.pth"
    torch.save(model.state_dict(), path)
    return path, model.state_dict()


def test_inception_state_dict_names(inception_file):
    _, state = inception_file
    for key, shape in EXPECTED_ENTRIES.items():
        assert tuple(state[key].shape) == shape, key
    assert not any(k.startswith("AuxLogits") for k in state)
    # torchvision documents 27,161,264 parameters for inception_v3 (aux head, 1000 classes);
    # the FID network drops the aux head and has 1008 classes
    aux_head = (768 * 128 + 2 * 128) + (128 * 768 * 25 + 2 * 768) + (768 * 1000 + 1000)
    want = 27_161_264 - aux_head + 8 * 2048 + 8
    from avcl_bench.tasks.generation.inception import FIDInceptionV3

    assert sum(p.numel() for p in FIDInceptionV3().parameters()) == want


def test_inception_load_and_features(inception_file):
    from avcl_bench.tasks.generation.inception import inception_features, load_fid_inception

    path, state = inception_file
    model = load_fid_inception(path)
    loaded = model.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in state.items())
    assert not model.training
    images = torch.rand(2, 3, 64, 48, generator=torch.Generator().manual_seed(1))
    out = inception_features(model, images, batch_size=1)
    assert out.shape == (2, 2048) and out.dtype == np.float32
    assert np.all(np.isfinite(out)) and np.all(out >= 0)  # average of ReLU outputs
    assert not np.allclose(out[0], out[1])


def test_inception_tf_pooling():
    """TensorFlow-style pooling: a constant map stays constant up to the borders."""
    from avcl_bench.tasks.generation.inception import FIDInceptionA, FIDInceptionE

    torch.manual_seed(0)
    x = torch.full((1, 192, 7, 7), 0.7)
    block = FIDInceptionA(192, pool_features=32).eval()
    with torch.no_grad():
        pooled = block.branch_pool(torch.nn.functional.avg_pool2d(x, 3, 1, 1, count_include_pad=False))
        got = block(x)[:, -32:]
    torch.testing.assert_close(got, pooled)
    torch.testing.assert_close(got, got[..., 3:4, 3:4].expand_as(got), atol=1e-6, rtol=1e-5)  # borders = centre
    with pytest.raises(ValueError):
        FIDInceptionE(8, pool="median")


def test_inception_load_errors(inception_file, tmp_path):
    from avcl_bench.tasks.generation.inception import load_fid_inception

    path, state = inception_file
    with pytest.raises(InputError, match=r"not found; download .*pt_inception-2015-12-05-6726825d\.pth.*pytorch-fid"):
        load_fid_inception(tmp_path / "nope.pth")
    renamed = dict(state)
    renamed["Mixed_5b.branch1x1_renamed.conv.weight"] = renamed.pop("Mixed_5b.branch1x1.conv.weight")
    bad = tmp_path / "renamed.pth"
    torch.save(renamed, bad)
    with pytest.raises(InputError, match=r"renamed\.pth: Mixed_5b\.branch1x1\.conv\.weight: missing"):
        load_fid_inception(bad)
    extra = dict(state)
    extra["AuxLogits.fc.weight"] = torch.zeros(1008, 768)
    torch.save(extra, bad)
    with pytest.raises(InputError, match=r"AuxLogits\.fc\.weight: unexpected key"):
        load_fid_inception(bad)
    shaped = dict(state)
    shaped["fc.weight"] = torch.zeros(1000, 2048)
    torch.save(shaped, bad)
    with pytest.raises(InputError, match=r"fc\.weight: shape \(1000, 2048\)"):
        load_fid_inception(bad)
    # a checkpoint without BatchNorm batch counters (older torch) still loads
    old = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    torch.save(old, bad)
    load_fid_inception(bad)
    bad.write_bytes(b"not a torch file")
    with pytest.raises(InputError, match=r"not a loadable"):
        load_fid_inception(bad)


def test_inception_feature_input_errors():
    from avcl_bench.tasks.generation.inception import inception_features

    model = torch.nn.Identity()  # validation happens before the model runs
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        inception_features(model, torch.full((1, 3, 8, 8), 2.0))
    with pytest.raises(InputError, match=r"shape \(N, 3, H, W\)"):
        inception_features(model, torch.rand(1, 1, 8, 8))
    with pytest.raises(InputError, match=r"uint8"):
        inception_features(model, torch.zeros(1, 3, 8, 8, dtype=torch.uint8))
    with pytest.raises(InputError, match=r"NaN"):
        inception_features(model, torch.full((1, 3, 8, 8), float("nan")))
    with pytest.raises(ConfigError, match=r"batch_size"):
        inception_features(model, torch.rand(1, 3, 8, 8), batch_size=0)


# ----------------------------------------------------------------------------- KID subset-size rule
def torch_fidelity_mmd2(f1: np.ndarray, f2: np.ndarray, degree: int = 3, coef0: float = 1.0) -> float:
    """torch-fidelity's ``kid`` formula re-implemented with numpy: the polynomial kernel
    ``(<x, y> / D + 1)^3`` and the unbiased estimator from row sums without the diagonal."""
    gamma = 1.0 / f1.shape[1]
    k_xx = (gamma * f1 @ f1.T + coef0) ** degree
    k_yy = (gamma * f2 @ f2.T + coef0) ** degree
    k_xy = (gamma * f1 @ f2.T + coef0) ** degree
    m = k_xx.shape[0]
    kt_xx_sum = (k_xx.sum(axis=1) - np.diagonal(k_xx)).sum()
    kt_yy_sum = (k_yy.sum(axis=1) - np.diagonal(k_yy)).sum()
    k_xy_sum = k_xy.sum(axis=0).sum()
    return float((kt_xx_sum + kt_yy_sum) / (m * (m - 1)) - 2 * k_xy_sum / (m * m))


@pytest.mark.parametrize(
    "n_gen, n_real, size, rule",
    [
        (1000, 1000, 1000, gen.KID_RULE_DEFAULT),
        (999, 1000, 499, gen.KID_RULE_HALF),
        (1000, 999, 499, gen.KID_RULE_HALF),
        (999, 999, 499, gen.KID_RULE_HALF),
        (5000, 1000, 1000, gen.KID_RULE_DEFAULT),
        (1999, 1500, 1000, gen.KID_RULE_DEFAULT),  # the old rule gave 750 here
        (2, 3, 2, gen.KID_RULE_HALF),
        (3, 3, 2, gen.KID_RULE_HALF),
        (40, 7, 3, gen.KID_RULE_HALF),
    ],
)
def test_kid_subset_rule_boundary(n_gen, n_real, size, rule):
    assert gen.kid_subset_rule(n_gen, n_real) == (size, rule)


def test_kid_matches_torch_fidelity_formula_on_whole_sets():
    # subsets as large as both sets are the sets themselves (permuted): every subset gives
    # torch-fidelity's value, whatever the sampler, and the std over subsets is 0
    rng = np.random.default_rng(21)
    for d, shift in ((8, 0.0), (16, 0.4), (3, 2.0)):
        x = rng.standard_normal((60, d))
        y = rng.standard_normal((60, d)) + shift
        mean, std = kernel_inception_distance(x, y, subsets=4, subset_size=60, seed=3)
        assert mean == pytest.approx(torch_fidelity_mmd2(x, y), rel=1e-10, abs=1e-12)
        assert std == pytest.approx(0.0, abs=1e-12)


def test_kid_matches_torch_fidelity_formula_per_subset():
    # the same index draws as kernel_inception_distance (default_rng(seed), gen then real):
    # each subset's value is torch-fidelity's estimator on those rows
    rng = np.random.default_rng(22)
    x, y = rng.standard_normal((1200, 6)), rng.standard_normal((1100, 6)) + 0.1
    size, rule = gen.kid_subset_rule(len(x), len(y))
    assert (size, rule) == (1000, gen.KID_RULE_DEFAULT)
    draws = np.random.default_rng(5)
    want = []
    for _ in range(3):
        i = draws.choice(len(x), size, replace=False)
        j = draws.choice(len(y), size, replace=False)
        want.append(torch_fidelity_mmd2(x[i], y[j]))
    mean, std = kernel_inception_distance(x, y, subsets=3, subset_size=size, seed=5)
    assert mean == pytest.approx(np.mean(want), rel=1e-9, abs=1e-12)
    assert std == pytest.approx(np.std(want), rel=1e-7, abs=1e-12)
