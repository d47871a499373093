"""A grid of cells: the local executor against Ray with workers x threads = cores, and a warm rerun.

    python -m avcl_bench.benchmark.perf.grid_perf [--models all] [--seeds 0,1,2] [--tasks retrieval]
        [--threads 1]

Runs the same ``run --quick`` grid three times, each into a fresh results folder and, for the
cold runs, a fresh cell cache (the generated dataset is shared):

1. ``--executor local`` (one process, cells one after another);
2. ``--executor ray`` on a local Ray instance (all cores), ``--cpus-per-cell`` = ``--threads``,
   so cores // threads cells run at once;
3. the Ray command again into a new results folder with the cell cache of run 2 warm
   (checkpoints and embeddings are loaded, nothing is trained or embedded).

Prints the wall times, the speed-up of Ray over local, the parallel efficiency
(speed-up / workers) and the warm rerun as a fraction of the cold Ray run, and checks that the
local and Ray runs gave identical metric values. Targets (issue "Scale out"): Ray >= 1.15x the
local executor on 2 cores, warm rerun < 10% of cold.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _run(args: list[str], out: Path, cache: Path) -> tuple[float, dict[tuple, dict[str, float]]]:
    env = {**os.environ, "AVCL_CACHE": str(cache)}
    cmd = [sys.executable, "-m", "avcl_bench", "run", "--quick", "--out", str(out), "--no-progress", "--json", *args]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    return wall, {(r["model"], r["task"], r["seed"]): r["metrics"] for r in json.loads(proc.stdout)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", default="all")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--tasks", default="retrieval")
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args(argv)
    workers = max(1, (os.cpu_count() or 1) // a.threads)
    grid = ["--models", a.models, "--seeds", a.seeds, "--tasks", a.tasks, "--threads", str(a.threads)]
    ray = [*grid, "--executor", "ray", "--cpus-per-cell", str(a.threads)]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        base_cache = Path(os.environ.get("AVCL_CACHE", root / "base"))
        # build the dataset once into a base cache; each cold run gets a copy without cell caches
        _run(["--models", "random", "--tasks", a.tasks.split(",")[0]], root / "warmup", base_cache)

        def cold_cache(name: str) -> Path:
            dst = root / name
            shutil.copytree(base_cache, dst, ignore=shutil.ignore_patterns("checkpoints", "embeddings", "cells"))
            return dst

        t_local, local = _run([*grid, "--executor", "local"], root / "local", cold_cache("c_local"))
        ray_cache = cold_cache("c_ray")
        t_ray, by_ray = _run(ray, root / "ray", ray_cache)
        t_warm, warm = _run(ray, root / "ray_warm", ray_cache)
    same = local == by_ray == warm
    print(f"grid: models {a.models}, seeds {a.seeds}, tasks {a.tasks}, --threads {a.threads}, Ray workers {workers}")
    print(f"local executor      : {t_local:8.1f} s")
    print(f"ray executor (cold) : {t_ray:8.1f} s   speed-up {t_local / t_ray:.2f}x, efficiency "
          f"{t_local / t_ray / workers:.0%}")
    print(f"ray rerun (warm)    : {t_warm:8.1f} s   {t_warm / t_ray:.1%} of cold")
    print(f"identical metrics (local, ray, warm): {same} ({len(local)} records)")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
