"""Timing of the separation metric backends: mir_eval item loop vs batched torch.

Usage::

    python -m avcl_bench.benchmark.perf.separation_perf [--items 20] [--sources 2] [--seconds 4]
        [--rate 8000] [--device cpu|cuda] [--threads 1] [--repeat 3]

Every backend gets the same number of CPU threads (torch's and, through threadpoolctl, BLAS's).
The backends run side by side, interleaved, ``--repeat`` times on the same random mixtures
(the machine may be shared and noisy); the script prints each one's min and median wall time,
the speed-up ratios of the minima and the largest absolute difference (dB) between the
per-(item, source) SDR/SIR/SAR of each backend and mir_eval's.
"""
from __future__ import annotations

import argparse
import statistics
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
    ap.add_argument("--repeat", type=int, default=3, help="interleaved repetitions of every backend")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    length = int(round(args.seconds * args.rate))
    est, src = make_inputs(args.items, args.sources, length)
    print(f"N={args.items} S={args.sources} L={length} ({args.seconds:g} s at {args.rate} Hz), device={args.device}")

    # warm-up on one item so one-off costs (FFT plans, CUDA context) are not timed
    bss_eval_batch(est[:1], src[:1], "torch", device=args.device)
    backends = {"mir_eval loop": lambda: bss_eval_batch(est, src, "mir_eval"),
                "torch batched": lambda: bss_eval_batch(est, src, "torch", device=args.device)}
    try:  # optional reference: pip install fast_bss_eval (its torch backend; the numpy one fails on numpy 2)
        import fast_bss_eval

        r, e = torch.from_numpy(src).to(args.device), torch.from_numpy(est).to(args.device)
        backends["fast_bss_eval"] = lambda: [x.cpu().numpy() for x in
                                             fast_bss_eval.bss_eval_sources(r, e, compute_permutation=False)[:3]]
    except ImportError:
        print("fast_bss_eval: not installed (pip install fast_bss_eval to compare)")
    times: dict[str, list[float]] = {name: [] for name in backends}
    outs: dict[str, list[np.ndarray]] = {}
    with threadpool_limits(limits=args.threads):  # same BLAS thread count for numpy / scipy
        for _ in range(args.repeat):
            for name, fn in backends.items():
                if args.device.startswith("cuda"):
                    torch.cuda.synchronize()
                t, outs[name] = timed(fn)
                times[name].append(t)
    ref = outs["mir_eval loop"]
    ours = min(times["torch batched"])
    for name, ts in times.items():
        diff = max(float(np.max(np.abs(a - b))) for a, b in zip(ref, outs[name]))
        ratio = "" if name == "torch batched" else f"  ours is {min(ts) / ours:5.2f}x faster"
        print(f"{name:14s}: min {min(ts):8.3f} s  median {statistics.median(ts):8.3f} s{ratio}"
              f"  max |diff| to mir_eval {diff:.1e} dB")


if __name__ == "__main__":
    main()
