"""Separation metrics vs mir_eval.separation.bss_eval_sources (the BSS-eval v3 reference).

mir_eval is slow (about half a second per mixture), so the reference values are computed
on few, short mixtures and cached per test module.
"""
from __future__ import annotations

import warnings
from functools import lru_cache

import numpy as np
import pytest
import torch
from mir_eval.separation import bss_eval_sources

import avcl_bench.tasks.separation.metrics as sep
from avcl_bench.benchmark.errors import ConfigError, InputError
from avcl_bench.tasks.base import MetricSpec
from avcl_bench.tasks.separation.metrics import FILTER_LENGTH, METRICS, bss_eval_batch, separation_metrics

TOL_DB = 1e-6


# ----------------------------------------------------------------------------- references
def mir_eval_ref(est: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """(3, N, S) SDR/SIR/SAR by calling mir_eval item by item, known source order."""
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        for n in range(ref.shape[0]):
            sdr, sir, sar, perm = bss_eval_sources(ref[n], est[n], compute_permutation=False)
            assert list(perm) == list(range(ref.shape[1]))
            out.append(np.stack([sdr, sir, sar]))
    return np.stack(out, axis=1)


def make_mixture(seed: int, n: int, s: int, length: int, *, leak: float = 0.3, noise: float = 0.05):
    """Random sources, mixtures, and imperfect estimates (filtered + leaked + noisy)."""
    rng = np.random.default_rng(seed)
    src = rng.standard_normal((n, s, length)) * rng.uniform(0.5, 2.0, size=(n, s, 1))
    mix = src.sum(axis=1)
    # a short random filter per estimate: BSS eval v3 tolerates it as "allowed distortion"
    taps = rng.standard_normal((n, s, 8)) * 0.2
    taps[..., 0] = 1.0
    filtered = np.stack([[np.convolve(src[i, j], taps[i, j])[:length] for j in range(s)] for i in range(n)])
    other = mix[:, None, :] - src
    est = filtered + leak * rng.uniform(0, 1, size=(n, s, 1)) * other + noise * rng.standard_normal((n, s, length))
    return est, src, mix


@lru_cache(maxsize=None)
def case(seed: int, n: int, s: int, length: int):
    est, src, mix = make_mixture(seed, n, s, length)
    return est, src, mix, mir_eval_ref(est, src)


# ----------------------------------------------------------------------------- agreement with mir_eval
@pytest.mark.parametrize(("seed", "n", "s", "length"), [(0, 3, 2, 4000), (1, 2, 3, 5000), (2, 1, 2, 8000)])
def test_torch_batch_matches_mir_eval(seed, n, s, length):
    est, src, _, ref = case(seed, n, s, length)
    got = np.stack(bss_eval_batch(est, src, "torch"))
    assert got.shape == (3, n, s)
    np.testing.assert_allclose(got, ref, rtol=0, atol=TOL_DB)
    # the mir_eval backend is the reference itself
    np.testing.assert_allclose(np.stack(bss_eval_batch(est, src, "mir_eval")), ref, rtol=0, atol=1e-12)


@pytest.mark.parametrize(("seed", "n", "s", "length"), [(0, 3, 2, 4000), (1, 2, 3, 5000)])
def test_separation_metrics_are_means_over_pairs(seed, n, s, length):
    est, src, _, ref = case(seed, n, s, length)
    for backend in ("auto", "torch"):
        got = separation_metrics(est, src, backend=backend)
        assert set(got) == {"SDR", "SIR", "SAR"}
        assert all(type(v) is float for v in got.values())
        for k, name in enumerate(("SDR", "SIR", "SAR")):
            assert abs(got[name] - ref[k].mean()) < TOL_DB


def test_nsdr_against_mir_eval_by_hand():
    est, src, mix, ref = case(0, 3, 2, 4000)
    mix_as_est = np.repeat(mix[:, None, :], src.shape[1], axis=1)
    ref_mix = mir_eval_ref(mix_as_est, src)
    want_nsdr = np.mean(ref[0] - ref_mix[0])
    got = separation_metrics(est, src, mix, backend="torch")
    assert set(got) == {"SDR", "SIR", "SAR", "NSDR"}
    assert abs(got["NSDR"] - want_nsdr) < TOL_DB
    assert abs(got["SDR"] - ref[0].mean()) < TOL_DB
    # the mixture scored as its own estimate: SDR/SIR agree tightly; NSDR is then 0 exactly
    sdr_m, sir_m, sar_m = bss_eval_batch(mix_as_est, src, "torch")
    np.testing.assert_allclose(sdr_m, ref_mix[0], atol=TOL_DB, rtol=0)
    np.testing.assert_allclose(sir_m, ref_mix[1], atol=TOL_DB, rtol=0)
    # the mixture lies in the span of the references: no artifacts, SAR is numerically huge
    assert np.all(sar_m > 100) and np.all(ref_mix[2] > 100)
    assert separation_metrics(mix_as_est, src, mix)["NSDR"] == pytest.approx(0.0, abs=1e-9)


def test_estimate_equal_to_source_is_near_perfect():
    _, src, _, _ = case(2, 1, 2, 8000)
    got = np.stack(bss_eval_batch(src, src, "torch"))
    ref = mir_eval_ref(src, src)
    # residuals are rounding noise: compare the regime, not the digits
    assert not np.isnan(got).any()
    assert np.all(got > 150) and np.all(ref > 150)


def test_scaled_and_delayed_estimates():
    est, src, _, ref = case(0, 3, 2, 4000)
    # SDR/SIR/SAR are invariant to the gain of the estimate
    for gain in (1e-3, -2.5, 1e4):
        np.testing.assert_allclose(np.stack(bss_eval_batch(gain * est, src, "torch")), ref, atol=1e-6, rtol=0)
    # a pure delay within the filter length is allowed distortion: only the 5 samples
    # shifted out of the window count as error (~30 dB for 4000 samples)
    delayed = np.zeros_like(src[:1])
    delayed[..., 5:] = src[:1, :, :-5]
    got = np.stack(bss_eval_batch(delayed, src[:1], "torch"))
    np.testing.assert_allclose(got, mir_eval_ref(delayed, src[:1]), atol=TOL_DB, rtol=0)
    assert np.all(got[0] > 25) and np.all(got[1] >= got[0])


def test_known_source_order_without_permutation_search():
    """Known source order: swapping the estimates must hurt (no permutation search)."""
    est, src, _, ref = case(2, 1, 2, 8000)
    swapped = est[:, ::-1].copy()
    got = np.stack(bss_eval_batch(swapped, src, "torch"))
    np.testing.assert_allclose(got, mir_eval_ref(swapped, src), atol=TOL_DB, rtol=0)
    assert got[0].mean() < ref[0].mean() - 10


def test_chunked_batches_agree(monkeypatch):
    est, src, _, ref = case(0, 3, 2, 4000)
    monkeypatch.setattr(sep, "_CHUNK_BYTES", 1)  # one item per chunk
    np.testing.assert_allclose(np.stack(bss_eval_batch(est, src, "torch")), ref, atol=TOL_DB, rtol=0)


def test_float32_input_is_evaluated_in_float64():
    est, src, _, _ = case(0, 3, 2, 4000)
    got = np.stack(bss_eval_batch(est.astype(np.float32), src.astype(np.float32), "torch"))
    want = mir_eval_ref(est.astype(np.float32).astype(np.float64), src.astype(np.float32).astype(np.float64))
    np.testing.assert_allclose(got, want, atol=TOL_DB, rtol=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_mir_eval():
    est, src, _, ref = case(1, 2, 3, 5000)
    np.testing.assert_allclose(np.stack(bss_eval_batch(est, src, "torch", device="cuda")), ref, atol=TOL_DB, rtol=0)


def test_accelerator_path_matches_mir_eval_when_run_on_the_cpu(monkeypatch):
    """The gather + Cholesky path that CUDA uses, forced onto the CPU, gives mir_eval's numbers."""
    est, src, _, ref = case(1, 2, 3, 5000)
    monkeypatch.setattr(sep, "_gram_cpu", sep._gram_gather)
    monkeypatch.setattr(sep, "_solve_cpu", sep._solve_device)
    np.testing.assert_allclose(np.stack(bss_eval_batch(est, src, "torch")), ref, atol=TOL_DB, rtol=0)


def test_cpu_gram_views_equal_the_gather():
    xc = torch.randn(3, 2, 2, 64, dtype=torch.float64)
    torch.testing.assert_close(sep._gram_cpu(xc, 8), sep._gram_gather(xc, 8), rtol=0, atol=0)


@pytest.mark.parametrize("solve", [sep._solve_cpu, sep._solve_device])
def test_solvers_fall_back_on_semidefinite_and_singular_systems(solve):
    """Cholesky fails on a singular Gram matrix: the fallback (LU, then least squares) still returns
    the minimum-norm-residual solution, as mir_eval's solve-then-lstsq."""
    rng = np.random.default_rng(0)
    basis = rng.standard_normal((6, 3))
    singular = basis @ basis.T  # PSD of rank 3
    spd = singular + 6 * np.eye(6)
    a = torch.from_numpy(np.stack([spd, singular]))
    b = torch.from_numpy(np.stack([spd @ np.ones((6, 1)), singular @ np.ones((6, 1))]))
    x = solve(a, b).numpy()
    np.testing.assert_allclose(x[0], np.ones((6, 1)), atol=1e-10)
    # the projection (what BSS eval uses) is unique even though x is not
    np.testing.assert_allclose(singular @ x[1], singular @ np.ones((6, 1)), atol=1e-8)


# ----------------------------------------------------------------------------- input errors
def _ok(n=1, s=2, length=2000, seed=5):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, s, length)), rng.standard_normal((n, s, length))


def test_silent_reference_source_names_item_and_source():
    est, src = _ok(n=3)
    src[2, 1] = 0.0
    with pytest.raises(InputError, match=r"sources: item 2, source 1 is silent"):
        separation_metrics(est, src)


def test_silent_estimate_and_mixture():
    est, src = _ok(n=2)
    est[1, 0] = 0.0
    with pytest.raises(InputError, match=r"estimates: item 1, source 0 is silent"):
        bss_eval_batch(est, src)
    est, src = _ok(n=2)
    mix = src.sum(axis=1)
    mix[0] = 0.0
    with pytest.raises(InputError, match=r"mixtures: item 0 is silent"):
        separation_metrics(est, src, mix)


def test_nan_and_inf_rejected():
    est, src = _ok()
    est[0, 1, 7] = np.nan
    with pytest.raises(InputError, match=r"pred\.npz: estimates: contains NaN or inf"):
        separation_metrics(est, src, source="pred.npz")
    est, src = _ok()
    with pytest.raises(InputError, match=r"mixtures: contains NaN or inf"):
        separation_metrics(est, src, np.full((1, src.shape[2]), np.inf))


def test_single_source_rejected():
    est, src = _ok(s=1)
    with pytest.raises(InputError, match=r"at least 2 sources"):
        separation_metrics(est, src)


def test_shape_errors():
    est, src = _ok(n=2)
    with pytest.raises(InputError, match=r"shape mismatch"):
        separation_metrics(est[:, :, :-1], src)
    with pytest.raises(InputError, match=r"shape mismatch"):
        separation_metrics(est[:1], src)
    with pytest.raises(InputError, match=r"expected 3-D array"):
        separation_metrics(est[0], src[0])
    with pytest.raises(InputError, match=r"mixtures: expected shape"):
        separation_metrics(est, src, src.sum(axis=1)[:, :-3])
    with pytest.raises(InputError, match=r"mixtures: expected 2-D"):
        separation_metrics(est, src, src.sum(axis=1)[0])


def test_too_short_for_filters():
    s = 3
    est, src = _ok(s=s, length=(s - 1) * FILTER_LENGTH)
    with pytest.raises(InputError, match=r"too short"):
        separation_metrics(est, src)


def test_unknown_backend_and_device():
    est, src = _ok()
    with pytest.raises(ConfigError, match=r"unknown separation backend"):
        separation_metrics(est, src, backend="matlab")
    with pytest.raises(ConfigError, match=r"CPU only"):
        bss_eval_batch(est, src, "mir_eval", device="cuda")


def test_metric_specs():
    assert set(METRICS) == {"SDR", "SIR", "SAR", "NSDR"}
    assert all(isinstance(m, MetricSpec) and m.higher_is_better for m in METRICS.values())


# ----------------------------------------------------------------------------- scale and blame
@pytest.mark.parametrize("scale", [1e160, 1e-300, 2.0**-1070 * 1e15])
@pytest.mark.parametrize("backend", ["torch", "mir_eval"])
def test_scaled_inputs_give_the_unscaled_values(scale: float, backend: str) -> None:
    est, src, mix, ref = case(0, 3, 2, 4000)
    base = np.stack(bss_eval_batch(est, src, backend))
    got = np.stack(bss_eval_batch(est * scale, src * scale, backend))
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, base, rtol=0, atol=TOL_DB)
    np.testing.assert_allclose(got, ref, rtol=0, atol=TOL_DB)  # mir_eval on the unscaled input
    m = separation_metrics(est * scale, src / scale if scale > 1 else src * scale, mix * scale)
    assert all(np.isfinite(v) for v in m.values())


def test_estimate_and_references_scaled_differently() -> None:
    est, src, _, ref = case(0, 3, 2, 4000)
    got = np.stack(bss_eval_batch(est * 1e160, src * 1e-300))
    np.testing.assert_allclose(got, ref, rtol=0, atol=TOL_DB)


def test_reference_problems_are_blamed_on_ref_source() -> None:
    est, src, mix, _ = case(0, 3, 2, 4000)
    silent = src.copy()
    silent[1, 0] = 0.0
    with pytest.raises(InputError, match=r"^ref.npz: sources: item 1, source 0 is silent"):
        separation_metrics(est, silent, source="pred.npz", ref_source="ref.npz")
    with pytest.raises(InputError, match=r"^ref.npz: mixtures: item 2 is silent"):
        separation_metrics(est, src, np.where(np.arange(3)[:, None] == 2, 0.0, mix), source="pred.npz",
                           ref_source="ref.npz")
    with pytest.raises(InputError, match=r"^pred.npz: estimates: item 0, source 1 is silent"):
        zero = est.copy()
        zero[0, 1] = 0.0
        separation_metrics(zero, src, source="pred.npz", ref_source="ref.npz")


def test_many_sources_are_refused_before_allocating() -> None:
    x = np.ones((1, 40, 40 * FILTER_LENGTH))
    with pytest.raises(InputError, match=r"^ref.npz: sources: BSS eval of 40 sources .* GiB .*AVCL_MAX_METRIC_BYTES"):
        bss_eval_batch(x, x, source="pred.npz", ref_source="ref.npz")
