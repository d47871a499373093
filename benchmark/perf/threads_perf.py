"""Intra-op threads: ``--threads 1`` against ``--threads N`` on an idle and on a loaded machine.

    python -m avcl_bench.benchmark.perf.threads_perf [--threads 1,2] [--load 2] [--repeat 2]
        [--models infonce] [--tasks retrieval,classification]

Each configuration runs ``avcl-bench run --quick --no-cache`` into a fresh results folder (so
every run trains and embeds; the generated dataset is reused from the cache), once with the machine as it is
and once while ``--load`` busy processes spin on the CPU (what a shared CI machine or a
colleague's job does to OpenMP's spin-waiting threads). The table shows min and median wall
time per case and the ratio to ``--threads 1`` in the same case; the numbers of a result do
not depend on the load, only on ``--threads`` (which is in the key).
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _spin() -> None:  # pragma: no cover - runs in a child process
    x = 0
    while True:
        x = (x * 1103515245 + 12345) % 2**31


def _run_once(threads: int, models: str, tasks: str) -> float:
    """Wall time of one quick run that trains and embeds (``--no-cache``; the dataset cache is kept)."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "avcl_bench", "run", "--quick", "--models", models, "--tasks", tasks,
               "--threads", str(threads), "--out", str(Path(tmp) / "out"), "--no-progress", "--json", "--no-cache"]
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", default="1,2", help="comma-separated thread counts to compare")
    p.add_argument("--load", type=int, default=2, help="busy processes of the loaded case")
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--models", default="infonce")
    p.add_argument("--tasks", default="retrieval,classification")
    args = p.parse_args(argv)
    _run_once(1, args.models, args.tasks)  # builds the dataset cache, untimed
    counts = [int(t) for t in args.threads.split(",")]
    print(f"{os.cpu_count()} CPUs; quick run of {args.models} on {args.tasks}; {args.repeat} repeats")
    print(f"{'case':<10} {'threads':>7} {'min s':>8} {'median s':>9} {'vs 1 thread':>12}")
    for case in ("idle", "loaded"):
        spinners = [mp.Process(target=_spin, daemon=True) for _ in range(args.load if case == "loaded" else 0)]
        for s in spinners:
            s.start()
        try:
            medians: dict[int, float] = {}
            for threads in counts:
                times = [_run_once(threads, args.models, args.tasks) for _ in range(args.repeat)]
                medians[threads] = statistics.median(times)
                ratio = medians[threads] / medians[counts[0]]
                print(f"{case:<10} {threads:>7} {min(times):>8.1f} {medians[threads]:>9.1f} {ratio:>11.2f}x")
        finally:
            for s in spinners:
                s.terminate()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
