"""GPU check: every path with a CUDA branch, run on ``cuda`` and on ``cpu`` and compared.

    python -m avcl_bench.benchmark.perf.gpu_check [--skip-run] [--n 200000] [--bss-items 64]

Prints one table per part and exits 1 when a comparison is outside its tolerance:

1. **quick default** (``run --quick`` of the default models, every family) on ``--device cuda``
   and ``--device cpu`` into two temporary folders, metric by metric. Tolerances, and why:

   * retrieval / classification / localization / event localization (fractions): 0.03
     absolute. Training on the GPU uses other kernels (cuDNN convolutions, TF32 matmuls), so
     the trained weights differ in the last bits and the differences grow over epochs; the
     seeds' spread of these metrics on the quick size is of that order.
   * separation (dB): 1.0 dB, the same reason (a trained mask head) on a log scale.
   * generation FD / KID / MRR: 10% relative: a decoder trained from the embeddings.
   * reference rows (``oracle_irm``, ``mixture``; no training): 1e-6 dB, since BSS-eval is
     float64 on both devices.

   Then the quick default once more on ``cuda`` with ``--precision bf16`` (autocast training of
   the models and of the generation frame decoder), compared with the fp32 ``cuda`` run under the same tolerances: bf16 is only
   worth recommending where its metrics stay within the seeds' spread.

2. **exact retrieval** at N = M = ``--n`` (D = 128, 100 classes): wall time of
   ``retrieval_metrics`` on CUDA and on the CPU, and their mAP difference (must be < 1e-6:
   the metric is exact in both, float32 similarities, float64 accumulation).

3. **BSS-eval** on a batch of ``--bss-items`` two-source items of 4 s at 16 kHz: torch backend
   on CUDA against the torch backend on the CPU (max |dB| difference < 1e-6, float64).

Written to run in under 8 minutes on one GPU; no test calls it (CI has no GPU).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from avcl_bench.tasks.retrieval.metrics import retrieval_metrics
from avcl_bench.tasks.separation.metrics import bss_eval_batch

#: task family -> (absolute tolerance, relative tolerance) of learned rows
TOLERANCES = {
    "retrieval": (0.03, 0.0), "classification": (0.03, 0.0), "localization": (0.03, 0.0),
    "event_localization": (0.03, 0.0), "separation": (1.0, 0.0), "generation": (0.0, 0.10),
}
REFERENCE_TOL = 1e-6


def _run(device: str, out: Path, *extra: str) -> dict[tuple[str, str], dict[str, float]]:
    cmd = [sys.executable, "-m", "avcl_bench", "run", "--quick", "--device", device, "--out", str(out),
           "--json", "--no-progress", *extra]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"run on {device} {' '.join(extra)} failed:\n{proc.stderr[-4000:]}")
    return {(r["model"], r["task"]): r["metrics"] for r in json.loads(proc.stdout)}


def _compare(a: dict, b: dict, names: tuple[str, str]) -> bool:
    """Metric-by-metric comparison of two runs within :data:`TOLERANCES`."""
    ok = True
    print(f"{'model':<12} {'task':<19} {'metric':<12} {names[0]:>12} {names[1]:>12} {'|diff|':>10} {'tol':>8}")
    for key in sorted(set(a) | set(b)):
        if key not in a or key not in b:
            print(f"missing in one run: {key}")
            ok = False
            continue
        model, task = key
        absolute, relative = TOLERANCES.get(task, (0.03, 0.0))
        for metric, g in a[key].items():
            c = b[key][metric]
            tol = REFERENCE_TOL if model in ("oracle_irm", "mixture") else max(absolute, relative * abs(c))
            diff = abs(g - c)
            flag = "" if diff <= tol else "  <-- outside"
            ok &= diff <= tol
            print(f"{model:<12} {task:<19} {metric:<12} {g:>12.6g} {c:>12.6g} {diff:>10.3g} {tol:>8.3g}{flag}")
    return ok


def check_quick_default() -> bool:
    """cuda vs cpu (fp32), then cuda bf16 autocast training vs cuda fp32, same tolerances."""
    with tempfile.TemporaryDirectory() as tmp:
        times, runs = {}, {}
        for name, device, extra in (("cuda", "cuda", ()), ("cpu", "cpu", ()), ("cuda-bf16", "cuda", ("--precision", "bf16"))):
            t0 = time.perf_counter()
            runs[name] = _run(device, Path(tmp) / name, *extra)
            times[name] = time.perf_counter() - t0
    print("quick default: " + ", ".join(f"{k} {v:.1f} s" for k, v in times.items()))
    ok = _compare(runs["cuda"], runs["cpu"], ("cuda", "cpu"))
    print("bf16 autocast training against fp32, both on cuda:")
    return _compare(runs["cuda-bf16"], runs["cuda"], ("bf16", "fp32")) and ok


def check_retrieval(n: int) -> bool:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 100, size=n)
    centres = rng.normal(size=(100, 128))
    audio = (centres[labels] + rng.normal(size=(n, 128))).astype(np.float32)
    visual = (centres[labels] + rng.normal(size=(n, 128))).astype(np.float32)
    times, maps = {}, {}
    for device in ("cuda", "cpu"):
        t0 = time.perf_counter()
        maps[device] = retrieval_metrics(audio, visual, labels, labels, device=device)["mAP"]
        if device == "cuda":
            torch.cuda.synchronize()
        times[device] = time.perf_counter() - t0
    diff = abs(maps["cuda"] - maps["cpu"])
    print(f"exact retrieval N = M = {n:,}: cuda {times['cuda']:.1f} s, cpu {times['cpu']:.1f} s "
          f"({times['cpu'] / times['cuda']:.1f}x); mAP {maps['cuda']:.6f} vs {maps['cpu']:.6f} (|diff| {diff:.2e})")
    return diff < 1e-6


def check_bss(items: int) -> bool:
    rng = np.random.default_rng(0)
    length = 4 * 16000
    sources = rng.normal(size=(items, 2, length))
    estimates = sources + 0.3 * rng.normal(size=sources.shape) + 0.2 * sources[:, ::-1]
    times, out = {}, {}
    for device in ("cuda", "cpu"):
        t0 = time.perf_counter()
        out[device] = bss_eval_batch(estimates, sources, backend="torch", device=device)
        times[device] = time.perf_counter() - t0
    diff = max(float(np.max(np.abs(a - b))) for a, b in zip(out["cuda"], out["cpu"]))
    print(f"BSS-eval batch {items}: cuda {times['cuda']:.2f} s, cpu {times['cpu']:.2f} s "
          f"({times['cpu'] / times['cuda']:.1f}x); max |dB diff| {diff:.2e}")
    return diff < 1e-6


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--skip-run", action="store_true", help="skip the quick default on both devices")
    p.add_argument("--n", type=int, default=200_000, help="items per modality of the retrieval timing")
    p.add_argument("--bss-items", type=int, default=64)
    args = p.parse_args(argv)
    if not torch.cuda.is_available():
        print("no CUDA device: nothing to check")
        return 1
    print(f"device: {torch.cuda.get_device_name(0)}, torch {torch.__version__}")
    ok = check_bss(args.bss_items)
    ok &= check_retrieval(args.n)
    if not args.skip_run:
        ok &= check_quick_default()
    print("all within tolerance" if ok else "SOME CHECKS OUTSIDE TOLERANCE")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
