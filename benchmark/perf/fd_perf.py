"""Fréchet distance: our exact eigendecomposition trace against pytorch-fid's ``sqrtm`` formula.

    python -m avcl_bench.benchmark.perf.fd_perf [--n 10000] [--dim 2048] [--repeat 3]

Both get the same two covariances (``N x D`` features); the table shows the time of the
matrix-square-root term of each (min and median over ``--repeat``), the ratio, and the
difference of the two FD values. Target: ours faster, difference ~1e-12 relative.
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import scipy.linalg

from avcl_bench.tasks.generation.metrics import trace_sqrt_product


def _timed(fn, repeat: int) -> tuple[float, float, float]:
    times, value = [], 0.0
    for _ in range(repeat):
        t0 = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - t0)
    return min(times), statistics.median(times), value


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=10_000)
    p.add_argument("--dim", type=int, default=2048)
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args(argv)
    rng = np.random.default_rng(0)
    mix = rng.standard_normal((args.dim, args.dim)) / np.sqrt(args.dim)
    x = rng.standard_normal((args.n, args.dim)) @ mix
    y = (rng.standard_normal((args.n, args.dim)) @ mix) * 1.1 + 0.05
    s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    base = float(np.trace(s1) + np.trace(s2))
    ours = _timed(lambda: base - 2.0 * trace_sqrt_product(s1, s2), args.repeat)
    ref = _timed(lambda: base - 2.0 * float(np.trace(scipy.linalg.sqrtm(s1 @ s2)).real), args.repeat)
    print(f"N = {args.n:,}, D = {args.dim}, repeat {args.repeat}")
    print(f"{'':<28} {'min s':>8} {'median s':>9}")
    print(f"{'ours (two eigh)':<28} {ours[0]:>8.2f} {ours[1]:>9.2f}")
    print(f"{'pytorch-fid (scipy sqrtm)':<28} {ref[0]:>8.2f} {ref[1]:>9.2f}")
    print(f"speed-up (median): {ref[1] / ours[1]:.2f}x; |FD difference| {abs(ours[2] - ref[2]):.3g} "
          f"(relative {abs(ours[2] - ref[2]) / abs(ref[2]):.3g})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
