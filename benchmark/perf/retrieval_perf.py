"""Timing and memory of the exact retrieval metric against torchmetrics and a numpy floor.

Usage::

    python -m avcl_bench.benchmark.perf.retrieval_perf [--n 5000] [--dim 128] [--classes 10]
        [--big 50000] [--device cpu|cuda] [--threads 1] [--repeat 3] [--no-torchmetrics]

On N = M = ``--n`` random paired embeddings (``--classes`` classes, clustered so that mAP
is far from chance) it times, each as the best of ``--repeat`` runs with the same number
of CPU threads:

* ``ours``: :func:`tasks.retrieval.metrics.retrieval_metrics`, both directions (mAP,
  R@K, MedR), including the matrix products;
* ``torchmetrics``: ``RetrievalMAP`` (update + compute) on the precomputed similarity
  matrix of each direction (its time excludes the matrix product, ours includes it).
  torchmetrics 1.9 treats scores ``<= 0`` as irrelevant, so it is fed ``(sim + 1) / 2``
  (same ranking, positive; float32 in torchmetrics); its mAP is printed next to ours;
* ``numpy floor``: per direction one matrix product and an in-place ``ndarray.sort`` of
  every row (float64, the precision ours works in), both directions.

Targets: ours at least 10x faster than torchmetrics and at most 2x the numpy floor.
With ``--big`` > 0 a child process computes the metric at N = M = ``--big`` and reports
its time and peak resident memory (``VmHWM`` of the whole child process, interpreter and
libraries included; target < 3 GB). ``ru_maxrss`` is not used: Linux carries the
parent's high-water mark over ``fork``/``exec`` into the child's.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from avcl_bench.tasks.retrieval.metrics import retrieval_metrics

TARGET_VS_TORCHMETRICS = 10.0
TARGET_VS_FLOOR = 2.0
TARGET_PEAK_BYTES = 3 * 10**9


def make_inputs(n: int, dim: int, classes: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Paired audio/visual embeddings around per-class centroids, and the shared labels."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)
    centroids = rng.standard_normal((classes, dim))
    clip = centroids[labels] + 1.5 * rng.standard_normal((n, dim))
    audio = clip + 3.0 * rng.standard_normal((n, dim))
    visual = clip + 3.0 * rng.standard_normal((n, dim))
    return audio, visual, labels


def best_time(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    """Smallest wall time of ``repeat`` calls, and the last call's result."""
    best, out = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def numpy_floor(audio: np.ndarray, visual: np.ndarray) -> None:
    """The work any exact metric must do: per direction a matrix product and a row sort."""
    a = audio / np.linalg.norm(audio, axis=1, keepdims=True)
    v = visual / np.linalg.norm(visual, axis=1, keepdims=True)
    for q, g in ((a, v), (v, a)):
        s = q @ g.T
        s.sort(axis=1)


def torchmetrics_map(sim: np.ndarray, query_labels: np.ndarray, gallery_labels: np.ndarray) -> float:
    """torchmetrics ``RetrievalMAP`` of one direction, on shifted positive scores."""
    from torchmetrics.retrieval import RetrievalMAP

    n, m = sim.shape
    preds = (torch.from_numpy(sim).float().reshape(-1) + 1) / 2
    target = torch.from_numpy(query_labels[:, None] == gallery_labels[None, :]).reshape(-1)
    indexes = torch.arange(n).repeat_interleave(m)
    metric = RetrievalMAP()
    metric.update(preds, target, indexes)
    return float(metric.compute())


def peak_rss_bytes() -> int:
    """High-water resident set size of this process (``VmHWM``; ``ru_maxrss`` off Linux)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _child_big(n: int, dim: int, classes: int, device: str, threads: int) -> None:
    """Run the metric once at N = M = n and print time and peak memory as JSON."""
    torch.set_num_threads(threads)
    audio, visual, labels = make_inputs(n, dim, classes, seed=1)
    start = time.perf_counter()
    with threadpool_limits(limits=threads):
        out = retrieval_metrics(audio, visual, labels, labels, device=device)
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "peak_bytes": peak_rss_bytes(), "inputs_bytes": audio.nbytes + visual.nbytes, "mAP": out["mAP"]}))


def run_big(n: int, dim: int, classes: int, device: str, threads: int) -> dict[str, float]:
    """The ``n`` x ``n`` run in a fresh process, so its peak memory is its own."""
    cmd = [sys.executable, "-m", "avcl_bench.benchmark.perf.retrieval_perf", "--child-big", str(n), "--dim", str(dim),
           "--classes", str(classes), "--device", device, "--threads", str(threads)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"the N={n} child run failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=5000, help="N = M of the timed comparison")
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--big", type=int, default=50000, help="N = M of the memory run (0: skip)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1, help="CPU threads for torch and numpy's BLAS")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-torchmetrics", action="store_true", help="skip the (slow) torchmetrics timing")
    ap.add_argument("--child-big", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child_big:
        _child_big(args.child_big, args.dim, args.classes, args.device, args.threads)
        return
    torch.set_num_threads(args.threads)

    # the big run first, in a child, while this process is still small
    big = run_big(args.big, args.dim, args.classes, args.device, args.threads) if args.big else None

    audio, visual, labels = make_inputs(args.n, args.dim, args.classes)
    print(f"N=M={args.n} D={args.dim} classes={args.classes} device={args.device} threads={args.threads} "
          f"(best of {args.repeat}; torchmetrics: one run)")
    with threadpool_limits(limits=args.threads):
        retrieval_metrics(audio[:64], visual[:64], labels[:64], labels[:64], device=args.device)  # warm-up
        t_ours, ours = best_time(lambda: retrieval_metrics(audio, visual, labels, labels, device=args.device), args.repeat)
        t_floor, _ = best_time(lambda: numpy_floor(audio, visual), args.repeat)
        rows = [
            ("ours: retrieval_metrics, both directions", t_ours,
             f"mAP={ours['mAP']:.6f} R@1_a2v={ours['R@1_a2v']:.4f} MedR_a2v={ours['MedR_a2v']:g}"),
            ("numpy floor: 2 x (matmul + row sort), f64", t_floor, ""),
        ]
        ratio_tm = None
        if not args.no_torchmetrics:
            a = audio / np.linalg.norm(audio, axis=1, keepdims=True)
            v = visual / np.linalg.norm(visual, axis=1, keepdims=True)
            sim = a @ v.T
            t_a2v, tm_a2v = best_time(lambda: torchmetrics_map(sim, labels, labels), 1)
            sim = np.ascontiguousarray(sim.T)
            t_v2a, tm_v2a = best_time(lambda: torchmetrics_map(sim, labels, labels), 1)
            del sim
            rows.append(("torchmetrics RetrievalMAP, both directions", t_a2v + t_v2a,
                         f"mAP={(tm_a2v + tm_v2a) / 2:.6f} on (sim+1)/2"))
            ratio_tm = (t_a2v + t_v2a) / t_ours

    width = max(len(r[0]) for r in rows)
    for name, sec, note in rows:
        print(f"  {name:<{width}}  {sec:8.3f} s  {note}")
    ratio_floor = t_ours / t_floor
    print(f"  ours / numpy floor   = {ratio_floor:6.2f}  (target <= {TARGET_VS_FLOOR:g}: "
          f"{'met' if ratio_floor <= TARGET_VS_FLOOR else 'NOT met'})")
    if ratio_tm is not None:
        print(f"  torchmetrics / ours  = {ratio_tm:6.1f}  (target >= {TARGET_VS_TORCHMETRICS:g}: "
              f"{'met' if ratio_tm >= TARGET_VS_TORCHMETRICS else 'NOT met'})")
    if big is not None:
        ok = big["peak_bytes"] < TARGET_PEAK_BYTES
        print(f"  N=M={args.big}: {big['seconds']:.1f} s, peak RSS {big['peak_bytes'] / 1e9:.2f} GB "
              f"(inputs {big['inputs_bytes'] / 1e9:.2f} GB; target < {TARGET_PEAK_BYTES / 1e9:g} GB: "
              f"{'met' if ok else 'NOT met'}), mAP={big['mAP']:.4f}")


if __name__ == "__main__":
    main()
