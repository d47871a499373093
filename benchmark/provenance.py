"""Provenance stamped on every result: versions, commit, device, time."""
from __future__ import annotations

import os
import platform
import re
import subprocess
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_info

from avcl_bench._version import __version__

from .errors import ConfigError
from .paths import suite_checkout


@lru_cache(maxsize=1)
def git_commit() -> tuple[str, bool] | None:
    """(commit, dirty) of the suite's own checkout, else ``None``.

    ``None`` when the suite is installed from a wheel: git is never asked about the folder the
    suite happens to be installed or run in, so a user's own repository is never stamped.
    """
    root = suite_checkout()
    if root is None:
        return None
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                             timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return sha, bool(dirty)
    except (OSError, subprocess.SubprocessError):
        return None


#: environment variables that cap or change the CPU kernels of torch (ATen, oneDNN, MKL) and OpenBLAS
KERNEL_ENV = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS", "MKL_CBWR",
              "OPENBLAS_CORETYPE")


def _cpu_vendor() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("vendor_id"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _numpy_blas() -> str | None:
    """``"openblas SkylakeX"``: numpy's own BLAS and the kernel family it picked (threadpoolctl)."""
    home = str(Path(np.__file__).resolve().parent)
    for lib in threadpool_info():
        if lib.get("user_api") == "blas" and str(lib.get("filepath", "")).startswith(home):
            return " ".join(str(x) for x in (lib.get("internal_api"), lib.get("architecture")) if x)
    return None


@lru_cache(maxsize=1)
def cpu_kernels() -> str:
    """What decides which numeric kernels this CPU runs, e.g. ``AuthenticAMD, torch AVX512, avx512_bf16,
    numpy openblas SkylakeX``: part of the device kind in every key (:func:`device_kind`).

    Two CPUs run different kernels (vector width, blocking, summation order) when their vendor
    (MKL dispatches by vendor), torch's vector capability (ATen and oneDNN), native bfloat16 / AMX
    or OpenBLAS's kernel family differ, or when one of :data:`KERNEL_ENV` caps them; the same
    fp32 training then ends elsewhere, as with another seed (measured: the separation SDR of one
    quick cell differs in the 5th digit with ``ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2``;
    the README's default numbers, computed on another machine, differ from this CPU's by up to
    2.3 FD). CPUs that agree on all of these are taken to compute the same numbers. The CPU's
    model name is left out: it would split records of identical kernels by SKU.
    """
    import torch

    try:
        caps = torch.cpu.get_capabilities()
    except (AttributeError, RuntimeError):
        caps = {}
    parts = [_cpu_vendor(), f"torch {torch.backends.cpu.get_cpu_capability()}"]
    parts += [flag for flag in ("avx512_bf16", "amx_bf16", "avx512_fp16") if caps.get(flag)]
    blas = _numpy_blas()
    if blas:
        parts.append(f"numpy {blas}")
    parts += [f"{name}={os.environ[name]}" for name in KERNEL_ENV if os.environ.get(name)]
    return ", ".join(parts)


def device_kind(device: str) -> str:
    """The kind of device numbers were computed on, part of the key: ``cpu (its kernels)``, or
    ``cuda (GPU name), cpu (...)`` / ``mps, cpu (...)``, since the host CPU still computes part of
    every number there (probes, BSS-eval, statistics); the kernels are :func:`cpu_kernels`."""
    import torch

    kind = device.split(":")[0]
    host = f"cpu ({cpu_kernels()})"
    if kind == "cuda":
        return f"cuda ({torch.cuda.get_device_name(torch.device(device))}), {host}"
    if kind == "cpu":
        return host
    return f"{kind}, {host}"


def device_description(device: str) -> str:
    if device.startswith("cuda"):
        import torch

        return f"{device} ({torch.cuda.get_device_name(torch.device(device))})"
    return f"{device} ({platform.processor() or platform.machine()})"


def provenance(device: str, duration_s: float) -> dict[str, object]:
    import torch

    return {
        "suite_version": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "platform": platform.platform(),
        "device": device_description(device),
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "duration_s": round(float(duration_s), 3),
        **checkout_stamp(),
    }


def checkout_stamp() -> dict[str, object]:
    """``git_commit`` and ``git_dirty`` of the suite's checkout; empty for a wheel install."""
    commit = git_commit()
    return {} if commit is None else {"git_commit": commit[0], "git_dirty": commit[1]}


DEVICE_PATTERN = re.compile(r"auto|cpu|mps|cuda(:\d+)?")


def select_device(requested: str = "auto") -> str:
    """``auto`` picks CUDA when available, then Apple MPS, else CPU; an explicit device must exist."""
    import torch

    if not DEVICE_PATTERN.fullmatch(requested):
        raise ConfigError(f"--device: unknown device '{requested}' (choose auto, cpu, cuda, cuda:N or mps)")
    if requested.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"--device {requested}: CUDA is not available on this machine")
        index = int(requested.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise ConfigError(f"--device {requested}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    if requested == "mps" and not (getattr(torch.backends, "mps", None) is not None
                                   and torch.backends.mps.is_available()):
        raise ConfigError("--device mps: Apple MPS is not available on this machine")
    if requested != "auto":
        return requested
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"
