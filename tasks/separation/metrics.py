"""Sound-separation metrics: BSS-eval v3 SDR / SIR / SAR and NSDR.

The protocol is ``bss_eval_sources`` of BSS-eval v3 (Vincent et al., 2006) exactly as
``mir_eval.separation.bss_eval_sources(reference, estimate, compute_permutation=False)``
computes it: estimate ``j`` is evaluated against reference source ``j`` (the separation
task knows which estimate is meant for which source, so no permutation search), with
time-invariant distortion filters of :data:`FILTER_LENGTH` taps.

For an estimate ``e`` of source ``j`` let ``P_j e`` be its least-squares projection on
the delayed copies (delays ``0 .. FILTER_LENGTH-1``) of reference ``j`` and ``P e`` the
projection on the delayed copies of all references. Then::

    SDR = 10 log10(|P_j e|^2 / |e - P_j e|^2)
    SIR = 10 log10(|P_j e|^2 / |P e - P_j e|^2)
    SAR = 10 log10(|P e|^2   / |e - P e|^2)

(a zero denominator gives ``+inf`` in mir_eval; here such an input is refused, see below).
NSDR is the SDR improvement of the estimate over the unprocessed mixture used as the
estimate of every source.

The three ratios are invariant to scaling each estimate and each reference source, so
before the float64 computation every signal (item, source) is divided by the power of two
nearest its peak magnitude: the result is exactly that of the unscaled signals, and inputs
scaled by 1e160 or 1e-300 give the same finite values instead of overflowing (NaN) or
underflowing (inf). A ratio that is still not finite (an estimate that lies exactly in the
span of the delayed references, so that a distortion energy is exactly 0) makes
:func:`separation_metrics` refuse the input with an :class:`~benchmark.errors.InputError`
naming the item: a mean is never reported as inf or NaN.
The working memory of the computation (Gram matrices of ``(S*512)^2`` per item) is checked
against ``$AVCL_MAX_METRIC_BYTES`` before anything is allocated.

Two backends compute the same numbers: ``"mir_eval"`` (the reference implementation,
one item at a time) and ``"torch"``, a batched float64 implementation of the same
definition that solves the normal equations of all (item, source) pairs at once and
runs on any torch device (on the CPU: Gram matrices from strided Toeplitz views and LAPACK's
Cholesky solver with BLAS pinned to torch's thread count; on accelerators: a gather and
``torch.linalg.cholesky_ex``). The test suite checks that both agree to 1e-6 dB.
"""
from __future__ import annotations

import math
import warnings

import numpy as np

from avcl_bench.benchmark.arrays import check_array, check_work_bytes
from avcl_bench.benchmark.errors import ConfigError, InputError
from avcl_bench.tasks.base import MetricSpec

#: Length of the time-invariant distortion filters (mir_eval hard-codes 512 taps).
FILTER_LENGTH = 512

#: Bytes of Gram matrices the torch backend builds per chunk of items.
_CHUNK_BYTES = 256 * 2**20

BACKENDS = ("auto", "torch", "mir_eval")

METRICS: dict[str, MetricSpec] = {
    "SDR": MetricSpec("SDR", True, "signal-to-distortion ratio in dB (BSS-eval v3, known source order), mean over (mixture, source)", unit="dB"),
    "SIR": MetricSpec("SIR", True, "signal-to-interference ratio in dB (BSS-eval v3), mean over (mixture, source)", unit="dB"),
    "SAR": MetricSpec("SAR", True, "signal-to-artifacts ratio in dB (BSS-eval v3), mean over (mixture, source)", unit="dB"),
    "NSDR": MetricSpec("NSDR", True, "SDR of the estimate minus SDR of the unprocessed mixture, mean over (mixture, source)", unit="dB"),
}


def _check_signals(arr: object, source: str, field: str, ndim: int) -> np.ndarray:
    """Validate a real, finite signal array of ``ndim`` dimensions; returns float64."""
    return check_array(arr, source, field, ndim=ndim, kind="float")


def _check_not_silent(x: np.ndarray, source: str, field: str, why: str) -> None:
    """Every signal along the last axis must contain a non-zero sample."""
    silent = ~np.any(x != 0, axis=-1)
    if silent.any():
        idx = tuple(int(i) for i in np.argwhere(silent)[0])
        where = f"item {idx[0]}" + (f", source {idx[1]}" if len(idx) > 1 else "")
        raise InputError(source, field, f"{where} is silent (all zeros): {why}")


def _validate_pair(estimates: object, sources: object, source: str,
                   ref_source: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Shared validation of ``estimates`` (blamed on ``source``) / ``sources`` (on ``ref_source``), both (N, S, L)."""
    ref_source = source if ref_source is None else ref_source
    est = _check_signals(estimates, source, "estimates", 3)
    ref = _check_signals(sources, ref_source, "sources", 3)
    if est.shape != ref.shape:
        raise InputError(source, "estimates/sources", f"shape mismatch: estimates {est.shape} vs sources {ref.shape}")
    n, s, length = ref.shape
    if s < 2:
        raise InputError(ref_source, "sources", f"BSS eval needs at least 2 sources per mixture, got S={s}")
    min_len = (s - 1) * FILTER_LENGTH + 1
    if length < min_len:
        raise InputError(
            ref_source, "sources",
            f"signals of {length} samples are too short: {s} sources need at least {min_len} samples "
            f"for the {FILTER_LENGTH}-tap distortion filters to be determined",
        )
    check_work_bytes(ref_source, "sources", work_bytes(ref.shape),
                     f"BSS eval of {s} sources x {length} samples per mixture")
    _check_not_silent(ref, ref_source, "sources", "BSS eval is undefined for a silent reference source")
    _check_not_silent(est, source, "estimates", "BSS eval is undefined for a silent estimate")
    return est, ref


def work_bytes(shape: tuple[int, ...]) -> float:
    """Working memory of BSS eval on ``(N, S, L)`` signals, either backend: the normalised
    float64 copies of estimates and references, plus per item the ``(S*F)^2`` Gram matrix, its
    LU factors and gather index, and ``S^2`` cross-correlations of ``n_fft`` samples (real and
    complex)."""
    n, s, length = (int(d) for d in shape)
    n_fft = 2 ** math.ceil(math.log2(length + FILTER_LENGTH - 1))
    per_item = 24.0 * (s * FILTER_LENGTH) ** 2 + 48.0 * s * s * n_fft
    return 16.0 * n * s * length + per_item


def _normalise(x: np.ndarray) -> np.ndarray:
    """Every signal (last axis) divided by the power of two nearest its peak magnitude.

    A power of two scales exactly, so the BSS ratios (invariant to each signal's scale) come
    out as for the unscaled input, while squares and products can neither overflow nor
    underflow. Silent signals are left as they are.
    """
    peak = np.max(np.abs(x), axis=-1, keepdims=True)
    _, exp = np.frexp(peak)
    return np.ldexp(x, -exp)


def _check_finite_ratios(source: str, field: str, **ratios: np.ndarray) -> None:
    for name, v in ratios.items():
        bad = ~np.isfinite(v)
        if bad.any():
            i, j = (int(k) for k in np.argwhere(bad)[0])
            raise InputError(source, field, f"mixture {i}, source {j}: {name} is {v[i, j]} (the signal lies exactly "
                             "in the span of the delayed references, so the BSS eval ratio is unbounded)")


def _resolve_backend(backend: str) -> str:
    if backend not in BACKENDS:
        raise ConfigError(f"unknown separation backend {backend!r} (choose from {', '.join(BACKENDS)})")
    if backend != "auto":
        return backend
    try:
        import torch  # noqa: F401
    except ImportError:  # pragma: no cover - torch is a hard dependency of the suite
        return "mir_eval"
    return "torch"


def _bss_eval_mir_eval(est: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Reference path: mir_eval, one item at a time."""
    from mir_eval.separation import bss_eval_sources

    n, s, _ = ref.shape
    out = np.empty((3, n, s))
    with warnings.catch_warnings():
        # mir_eval 0.8 marks its separation module deprecated; it is still the reference.
        warnings.simplefilter("ignore", FutureWarning)
        for i in range(n):
            sdr, sir, sar, _ = bss_eval_sources(ref[i], est[i], compute_permutation=False)
            out[:, i] = sdr, sir, sar
    return out[0], out[1], out[2]


def _safe_db(num, den):
    """``10 log10(num / den)`` with ``+inf`` where ``den == 0`` (as mir_eval's ``_safe_db``)."""
    import torch

    return torch.where(den == 0, torch.full_like(num, math.inf), 10.0 * torch.log10(num / den))


def _bss_eval_torch(
    est: np.ndarray, ref: np.ndarray, device: str | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Batched float64 BSS-eval v3 (``bss_eval_sources`` without permutation).

    Per item, the Gram matrix ``G`` of the delayed references (S*F x S*F, F filter taps)
    is built from FFT cross-correlations; the S estimates are the right-hand sides of one
    solve for the all-source projection, and the diagonal blocks of ``G`` give the
    single-source projections. Projections are rebuilt by FFT convolution, then the
    energy ratios follow the definitions in the module docstring.
    """
    import torch

    dev = torch.device(device or "cpu")
    n, s, length = ref.shape
    flen = FILTER_LENGTH
    out_len = length + flen - 1  # length of the filtered signals, as mir_eval pads
    n_fft = 2 ** math.ceil(math.log2(out_len))
    neg = (-torch.arange(flen, device=dev)) % n_fft  # index of lag -a
    build, solve = (_gram_cpu, _solve_cpu) if dev.type == "cpu" else (_gram_gather, _solve_device)

    chunk = max(1, _CHUNK_BYTES // (8 * (s * flen) ** 2 * 2))  # G plus its factors
    sdr = np.empty((n, s))
    sir = np.empty((n, s))
    sar = np.empty((n, s))
    for lo in range(0, n, chunk):
        hi = min(n, lo + chunk)
        b = hi - lo
        r = torch.tensor(ref[lo:hi], dtype=torch.float64, device=dev)
        e = torch.tensor(est[lo:hi], dtype=torch.float64, device=dev)
        rf = torch.fft.rfft(r, n=n_fft)  # (B, S, K)
        ef = torch.fft.rfft(e, n=n_fft)
        # xc[b, i, k, t] = sum_u r_i[u + t] r_k[u]; xe[b, i, j, t] = sum_u r_i[u + t] e_j[u]
        xc = torch.fft.irfft(rf[:, :, None, :] * rf[:, None, :, :].conj(), n=n_fft)
        xe = torch.fft.irfft(rf[:, :, None, :] * ef[:, None, :, :].conj(), n=n_fft)
        # G[(i, a), (k, c)] = <r_i delayed by a, r_k delayed by c> = xc[i, k, c - a]
        gram = build(xc, flen)  # (B, S*F, S*F), rows/columns ordered (source, delay)
        del xc
        # <r_i delayed by a, e_j> = xe[i, j, -a]
        rhs = xe[..., neg]  # (B, S_i, S_j, F_a)
        rhs_all = rhs.permute(0, 1, 3, 2).reshape(b, s * flen, s)
        rhs_own = rhs.diagonal(dim1=1, dim2=2).permute(0, 2, 1)[..., None]  # (B, S, F, 1)
        # the diagonal blocks of G are the single-source Gram matrices G_jj
        gram_own = torch.stack([gram[:, j * flen:(j + 1) * flen, j * flen:(j + 1) * flen] for j in range(s)], 1)

        coef_own = solve(gram_own, rhs_own)[..., 0]  # [b, j, a]
        coef_all = solve(gram, rhs_all).reshape(b, s, flen, s)  # [b, i, a, j]
        del gram, gram_own

        # Filtering: projections as sums of FFT convolutions of the references.
        cf_all = torch.fft.rfft(coef_all, n=n_fft, dim=2)  # (B, S_i, K, S_j)
        proj_all = torch.fft.irfft(torch.einsum("bik,bikj->bjk", rf, cf_all), n=n_fft)[..., :out_len]
        proj_own = torch.fft.irfft(rf * torch.fft.rfft(coef_own, n=n_fft), n=n_fft)[..., :out_len]
        e_pad = torch.nn.functional.pad(e, (0, flen - 1))

        def energy(x):
            return (x * x).sum(dim=-1)

        own = energy(proj_own)
        lo_hi = slice(lo, hi)
        sdr[lo_hi] = _safe_db(own, energy(e_pad - proj_own)).cpu().numpy()
        sir[lo_hi] = _safe_db(own, energy(proj_all - proj_own)).cpu().numpy()
        sar[lo_hi] = _safe_db(energy(proj_all), energy(e_pad - proj_all)).cpu().numpy()
    return sdr, sir, sar


def _gram_gather(xc, flen: int):
    """Block-Toeplitz Gram matrix ``G[b, (i, a), (k, c)] = xc[b, i, k, (c - a) mod n_fft]`` by one gather
    (any torch device; torch has no negative strides)."""
    import torch

    b, s, _, n_fft = xc.shape
    taps = torch.arange(flen, device=xc.device)
    lag = (taps[None, :] - taps[:, None]) % n_fft  # lag[a, c] = c - a (circular index)
    src_i = torch.arange(s, device=xc.device)
    index = ((src_i[:, None, None, None] * s + src_i[None, None, :, None]) * n_fft
             + lag[None, :, None, :]).reshape(s * flen, s * flen)
    return xc.reshape(b, -1)[:, index]


def _gram_cpu(xc, flen: int):
    """The same Gram matrix on the CPU from zero-copy Toeplitz views (numpy allows the negative row
    stride): each (F, F) block is one strided copy, several times faster than an index gather."""
    import torch

    x = xc.numpy()
    b, s, _, n_fft = x.shape
    # v[..., m] = xc[..., m - (F - 1)] for lags -(F-1) .. F-1, so T[a, c] = v[F - 1 + c - a]
    v = np.concatenate([x[..., n_fft - flen + 1:], x[..., :flen]], axis=-1)
    item, row, col = v.strides[0], v.strides[1], v.strides[2]
    step = v.strides[3]
    toeplitz = np.lib.stride_tricks.as_strided(
        v[..., flen - 1:], shape=(b, s, s, flen, flen), strides=(item, row, col, -step, step), writeable=False)
    gram = np.empty((b, s, flen, s, flen))
    gram[...] = toeplitz.transpose(0, 1, 3, 2, 4)
    return torch.from_numpy(gram.reshape(b, s * flen, s * flen))


def _solve_cpu(a, b):
    """Batched solve of the symmetric positive semi-definite Gram systems on the CPU: LAPACK's
    Cholesky solver ``dposv`` (half the flops of the LU that ``numpy.linalg.solve`` uses).

    Only one triangle of ``a`` is read, i.e. the Gram matrix is taken as exactly symmetric (its
    two triangles differ by FFT rounding). A system that is not numerically positive definite
    falls back to LU and then least squares, as mir_eval (``np.linalg.solve``, then
    ``np.linalg.lstsq`` on ``LinAlgError``); the projection is unique even when the filter
    coefficients are not.
    """
    import torch
    from scipy.linalg import lapack
    from threadpoolctl import threadpool_limits

    am, bm = a.numpy(), b.numpy()
    lead = am.shape[:-2]
    am2 = am.reshape(-1, *am.shape[-2:])
    bm2 = bm.reshape(-1, *bm.shape[-2:])
    out = np.empty_like(bm2)
    # LAPACK gets torch's thread count: the backend's work never oversubscribes the run's --threads
    with threadpool_limits(limits=torch.get_num_threads(), user_api="blas"):
        for k in range(len(am2)):
            out[k] = _solve_one(lapack, am2[k], bm2[k])
    return torch.from_numpy(out.reshape(*lead, *out.shape[-2:]))


def _solve_one(lapack, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """One Gram system: Cholesky (``dposv``), else LU, else least squares."""
    # a C-ordered symmetric matrix is its own Fortran-ordered transpose (kept intact for the fallback)
    _, x, info = lapack.dposv(a.T, b, lower=0)
    if info == 0:
        return x
    try:
        return np.linalg.solve(a, b)
    except np.linalg.LinAlgError:
        return np.linalg.lstsq(a, b, rcond=None)[0]


def _solve_device(a, b):
    """Batched solve on an accelerator: Cholesky, then LU, then least squares for the systems
    that are not numerically positive definite or are singular (see :func:`_solve_cpu`)."""
    import torch

    chol, info = torch.linalg.cholesky_ex(a)
    x = torch.cholesky_solve(b, chol)
    bad = info != 0
    if bool(bad.any()):
        xs, info_lu = torch.linalg.solve_ex(a[bad], b[bad])
        sing = info_lu != 0
        if bool(sing.any()):
            xs[sing] = torch.linalg.lstsq(a[bad][sing].cpu(), b[bad][sing].cpu(), driver="gelsd").solution.to(x.device)
        x[bad] = xs
    return x


def bss_eval_batch(
    estimates: object,
    sources: object,
    backend: str = "auto",
    *,
    device: str | None = None,
    source: str = "input",
    ref_source: str | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """BSS-eval v3 SDR, SIR, SAR per (item, source) with the known source order.

    ``estimates`` and ``sources`` are ``(N, S, L)``; estimate ``[n, j]`` is scored
    against reference ``[n, j]``. Returns three ``(N, S)`` float64 arrays in dB (``+inf`` where
    a distortion energy is exactly 0, as mir_eval).
    ``backend``: ``"mir_eval"``, ``"torch"`` (batched, runs on ``device``) or ``"auto"``
    (torch when importable). ``device`` only applies to the torch backend. ``source`` names
    the estimates' file in error messages, ``ref_source`` the references' (default ``source``).
    Every signal is first normalised by a power of two (see the module docstring).
    """
    est, ref = _validate_pair(estimates, sources, source, ref_source)
    resolved = _resolve_backend(backend)
    if resolved == "mir_eval" and device not in (None, "cpu"):
        raise ConfigError(f"the mir_eval separation backend runs on the CPU only (got device={device!r})")
    est, ref = _normalise(est), _normalise(ref)
    with np.errstate(all="ignore"):
        if resolved == "mir_eval":
            return _bss_eval_mir_eval(est, ref)
        return _bss_eval_torch(est, ref, device)


def separation_metrics(
    estimates: object,
    sources: object,
    mixtures: object | None = None,
    *,
    backend: str = "auto",
    device: str | None = None,
    source: str = "input",
    ref_source: str | None = None,
) -> dict[str, float]:
    """Mean BSS-eval v3 ``SDR``, ``SIR``, ``SAR`` (and ``NSDR``) over (mixture, source) pairs.

    ``estimates``/``sources``: ``(N, S, L)`` with ``S >= 2``; ``mixtures``: optional
    ``(N, L)``. When given, ``NSDR`` = mean of SDR(estimate) - SDR(mixture used as the
    estimate of each source). Silent references, estimates or mixtures are rejected:
    BSS eval is undefined for them. ``source`` names the estimates' file in error messages,
    ``ref_source`` that of the sources and mixtures (default ``source``).
    """
    ref_source = source if ref_source is None else ref_source
    est, ref = _validate_pair(estimates, sources, source, ref_source)
    mix = None
    if mixtures is not None:
        mix = _check_signals(mixtures, ref_source, "mixtures", 2)
        if mix.shape != (ref.shape[0], ref.shape[2]):
            raise InputError(
                ref_source, "mixtures",
                f"expected shape (N, L) = {(ref.shape[0], ref.shape[2])} to match sources {ref.shape}, got {mix.shape}",
            )
        _check_not_silent(mix, ref_source, "mixtures", "BSS eval is undefined for a silent mixture")
    sdr, sir, sar = bss_eval_batch(est, ref, backend, device=device, source=source, ref_source=ref_source)
    _check_finite_ratios(source, "estimates", SDR=sdr, SIR=sir, SAR=sar)
    out = {"SDR": float(np.mean(sdr)), "SIR": float(np.mean(sir)), "SAR": float(np.mean(sar))}
    if mix is not None:
        mix_est = np.broadcast_to(mix[:, None, :], ref.shape)
        sdr_mix, _, _ = bss_eval_batch(mix_est, ref, backend, device=device, source=ref_source, ref_source=ref_source)
        _check_finite_ratios(ref_source, "mixtures", SDR=sdr_mix)
        out["NSDR"] = float(np.mean(sdr - sdr_mix))
    return out
