"""Timing of the separation metric backends: mir_eval item loop vs batched torch.

Usage::

    python -m avcl_bench.benchmark.perf.separation_perf [--items 20] [--sources 2] [--seconds 4]
        [--rate 8000] [--device cpu|cuda] [--threads 1]

Both backends get the same number of CPU threads. Prints the wall time of both backends on the same random mixtures, the speed-up ratio
and the largest absolute difference (dB) between their per-(item, source) SDR/SIR/SAR.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from avcl_bench.tasks.separation.metrics import bss_eval_batch


def make_inputs(items: int, sources: int, length: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Random sources and imperfect estimates (a leak of the other sources plus noise)."""
    rng = np.random.default_rng(seed)
    src = rng.standard_normal((items, sources, length))
    other = src.sum(axis=1, keepdims=True) - src
    est = src + 0.2 * other + 0.05 * rng.standard_normal(src.shape)
    return est, src


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - start, out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=20)
    ap.add_argument("--sources", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--rate", type=int, default=8000)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1, help="CPU threads for torch and for numpy's BLAS")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    length = int(round(args.seconds * args.rate))
    est, src = make_inputs(args.items, args.sources, length)
    print(f"N={args.items} S={args.sources} L={length} ({args.seconds:g} s at {args.rate} Hz), device={args.device}")

    # warm-up on one item so one-off costs (FFT plans, CUDA context) are not timed
    bss_eval_batch(est[:1], src[:1], "torch", device=args.device)
    with threadpool_limits(limits=args.threads):  # same BLAS thread count for numpy
        t_ref, ref = timed(bss_eval_batch, est, src, "mir_eval")
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
    t_torch, got = timed(bss_eval_batch, est, src, "torch", device=args.device)

    diff = max(float(np.max(np.abs(a - b))) for a, b in zip(ref, got))
    print(f"mir_eval loop : {t_ref:8.3f} s")
    print(f"torch batched : {t_torch:8.3f} s")
    print(f"speed-up      : {t_ref / t_torch:8.1f}x")
    print(f"max |diff| dB : {diff:.3e}  (SDR/SIR/SAR over {ref[0].size} pairs)")
    try:  # optional reference: pip install fast_bss_eval (its torch backend; the numpy one fails on numpy 2)
        import fast_bss_eval
    except ImportError:
        print("fast_bss_eval: not installed (pip install fast_bss_eval to compare)")
        return
    r, e = torch.from_numpy(src).to(args.device), torch.from_numpy(est).to(args.device)
    t_fast, fast = timed(fast_bss_eval.bss_eval_sources, r, e, compute_permutation=False)
    diff_fast = max(float(np.max(np.abs(a - b.cpu().numpy()))) for a, b in zip(ref, fast[:3]))
    print(f"fast_bss_eval : {t_fast:8.3f} s  (torch backend; ours is {t_fast / t_torch:.2f}x its speed, "
          f"its max |diff| to mir_eval {diff_fast:.3e} dB)")


if __name__ == "__main__":
    main()
