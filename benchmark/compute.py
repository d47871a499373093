"""Measuring what a model costs: parameter count, peak memory of ``fit``, embedding throughput.

The runner stamps these on every record of a trained model
(:class:`~benchmark.schema.ComputeStats`); they are measurements of the machine that ran
the cell, never part of a key.

Peak memory: on CUDA, ``torch.cuda.max_memory_allocated`` over ``fit`` (the tensors the
model allocated); on the CPU, the growth of the process's resident set over ``fit``,
sampled every :data:`SAMPLE_S` seconds from ``/proc/self/statm`` (Linux), which includes
the Python objects and arrays ``fit`` allocates; elsewhere, ``resource``'s lifetime
maximum resident set of the process (an upper bound that includes earlier cells).
"""
from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from .embedding import embed_batches

__all__ = ["PeakMemory", "count_parameters", "embedding_throughput", "peak_memory"]

#: sampling period of the CPU resident-set sampler
SAMPLE_S = 0.01
#: test items embedded (audio and visual) to measure the throughput
THROUGHPUT_ITEMS = 256
_MIB = 2.0**20


def count_parameters(model: Any) -> int | None:
    """Number of parameters of a ``torch.nn.Module`` model (shared tensors once), else ``None``."""
    if not isinstance(model, nn.Module):
        return None
    return int(sum(p.numel() for p in model.parameters()))


@dataclass
class PeakMemory:
    """The result of :func:`peak_memory`: MiB and how they were measured."""

    mb: float | None = None
    measure: str | None = None


def _rss_bytes() -> int | None:
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


@contextmanager
def peak_memory(device: str) -> Iterator[PeakMemory]:
    """Measure the peak memory of the block on ``device`` (see the module docstring)."""
    out = PeakMemory()
    if device.startswith("cuda") and torch.cuda.is_available():
        dev = torch.device(device)
        torch.cuda.synchronize(dev)
        base = torch.cuda.memory_allocated(dev)
        torch.cuda.reset_peak_memory_stats(dev)
        yield out
        torch.cuda.synchronize(dev)
        out.mb, out.measure = max(0.0, (torch.cuda.max_memory_allocated(dev) - base) / _MIB), "cuda_max_allocated"
        return
    base = _rss_bytes()
    if base is None:
        yield out
        try:
            import resource  # POSIX only

            scale = 1 if os.uname().sysname == "Darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
            out.mb, out.measure = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / _MIB, "process_max_rss"
        except (ImportError, AttributeError, OSError):
            pass
        return
    peak = [base]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(SAMPLE_S):
            now = _rss_bytes()
            if now is not None and now > peak[0]:
                peak[0] = now

    sampler = threading.Thread(target=sample, name="avcl-peak-memory", daemon=True)
    sampler.start()
    try:
        yield out
    finally:
        stop.set()
        sampler.join()
        end = _rss_bytes()
        top = max(peak[0], end if end is not None else 0)
        out.mb, out.measure = (top - base) / _MIB, "rss_growth"


def embedding_throughput(model: Any, split: Any, device: str, items: int = THROUGHPUT_ITEMS) -> float | None:
    """Items per second embedding up to ``items`` clips of ``split`` (audio and visual each), after
    one warm-up batch so that one-off costs (lazy initialisation, kernel selection) are not timed."""
    n = min(items, len(split))
    if n == 0:
        return None
    part = split.subset(np.arange(n))
    batch = min(64, n)
    for _ in embed_batches(model, part.subset(np.arange(min(batch, n))), ("audio", "visual"), batch_size=batch,
                           device=device):
        pass
    t0 = time.perf_counter()
    for _ in embed_batches(model, part, ("audio", "visual"), batch_size=batch, device=device):
        pass
    elapsed = time.perf_counter() - t0
    return n / elapsed if elapsed > 0 else None
