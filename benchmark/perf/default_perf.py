"""The full default run of this checkout against another installation of the suite, side by side.

``python -m avcl_bench.benchmark.perf.default_perf --baseline-python OLD/bin/python [--quick] [--repeat 1] [--keep DIR] [--precision bf16]``

Starts ``python -m avcl_bench run --out DIR --no-progress`` (the full default of ``python
run_benchmark.py``) with this interpreter and with ``--baseline-python`` (a virtual environment
where a previous commit is installed, e.g. ``git worktree add /tmp/old 8f28054 && python -m venv
/tmp/old-venv && /tmp/old-venv/bin/pip install torch==2.13.0 /tmp/old``) at the same time, each in
an empty working folder with its own empty cache, so both see the same machine load; then prints
each run's wall time, user and system CPU time, minor page faults and peak resident memory (from
``wait4``), and the speed-up of this checkout. With ``--repeat N`` the pair runs N times and min
and median are shown; ``--keep DIR`` keeps this checkout's results folder of the last pair (e.g. to
regenerate the README from it); ``--precision`` is passed to this checkout's run only. The two runs share the machine's cores: on 2 cores each gets
about one, which is what ``--threads 1`` (the default of both) uses.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _start(python: str, work: Path, extra: list[str]) -> tuple[subprocess.Popen, float]:
    """Start one run in ``work`` (its log in ``work/run.log``); its process and start time."""
    env = {**os.environ, "AVCL_CACHE": str(work / "cache")}
    cmd = [python, "-m", "avcl_bench", "run", "--out", str(work / "results"), "--no-progress", *extra]
    with open(work / "run.log", "w") as log:  # the child holds its own copy of the descriptor
        proc = subprocess.Popen(cmd, cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT)
    return proc, time.perf_counter()


def run_pair(pythons: dict[str, str], extra: list[str], keep: Path | None = None,
             own: dict[str, list[str]] | None = None) -> dict[str, dict[str, float]]:
    """Start one run per interpreter at once; per run ``wall``, ``user``, ``sys`` seconds, ``minflt``
    (and the number of records); ``keep`` receives the results folder of the last interpreter;
    ``own`` adds arguments to one interpreter's command only."""
    out: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="avcl-default-perf-") as tmp:
        procs = {}
        for name, py in pythons.items():
            work = Path(tmp) / name
            work.mkdir()
            procs[name] = (*_start(py, work, [*extra, *(own or {}).get(name, [])]), work)
        by_pid = {proc.pid: name for name, (proc, _, _) in procs.items()}
        while by_pid:
            pid, status, usage = os.wait4(-1, 0)  # reaps the child (for its rusage); Popen is told below
            if pid not in by_pid:
                continue
            name = by_pid.pop(pid)
            proc, t0, work = procs[name]
            code = proc.returncode = os.waitstatus_to_exitcode(status)
            if code != 0:
                tail = (work / "run.log").read_text(errors="replace")[-2000:]
                raise SystemExit(f"{name} run failed with exit status {code}:\n{tail}")
            out[name] = {"wall": time.perf_counter() - t0, "user": usage.ru_utime, "sys": usage.ru_stime,
                         "minflt": float(usage.ru_minflt), "maxrss_mb": usage.ru_maxrss / 1024,
                         "records": float(len(list((work / "results").rglob("seed*.json"))))}
        if keep is not None:
            shutil.rmtree(keep, ignore_errors=True)
            shutil.copytree(Path(tmp) / list(pythons)[-1] / "results", keep)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--baseline-python", required=True, help="interpreter of the installation to compare against")
    p.add_argument("--quick", action="store_true", help="the quick default instead of the full one")
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--keep", type=Path, default=None, help="copy this checkout's last results folder here")
    p.add_argument("--precision", default=None, help="pass --precision to this checkout's run only (e.g. bf16)")
    args = p.parse_args(argv)
    pythons = {"baseline": args.baseline_python, "this checkout": sys.executable}
    extra = ["--quick"] if args.quick else []
    own = {"this checkout": ["--precision", args.precision]} if args.precision else {}
    runs = [run_pair(pythons, extra, args.keep if i == args.repeat - 1 else None, own) for i in range(args.repeat)]
    print(f"{'run':<14} {'wall min':>9} {'wall med':>9} {'user':>8} {'sys':>7} {'minor faults':>13} {'peak RSS MB':>12} {'records':>8}")
    for name in pythons:
        walls = [r[name]["wall"] for r in runs]
        last = runs[-1][name]
        print(f"{name:<14} {min(walls):9.1f} {statistics.median(walls):9.1f} {last['user']:8.1f} {last['sys']:7.1f} "
              f"{last['minflt']:13,.0f} {last['maxrss_mb']:12.0f} {last['records']:8.0f}")
    ratios = [r["baseline"]["wall"] / r["this checkout"]["wall"] for r in runs]
    print(f"speed-up of this checkout (baseline wall / ours), per pair: {', '.join(f'{x:.2f}x' for x in ratios)}; "
          f"median {statistics.median(ratios):.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
