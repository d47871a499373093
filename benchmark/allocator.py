"""Keep freed tensor memory in the process instead of handing it back to the kernel (glibc only).

glibc's ``malloc`` serves blocks above its mmap threshold (128 KiB, raised dynamically up to
32 MiB) with a fresh ``mmap`` and unmaps them on ``free``, and trims the heap top above twice
that threshold. Training a small network on the CPU allocates and frees the same
activation-sized buffers (a batch of 128 clips x 10 frames at 32 x 32 is 84 MB per feature map)
thousands of times, so every step maps new pages and faults each one in again: the full default
spent 163 s of system time against 649 s of user time, with 54 M minor page faults.

:func:`tune` sets, once per process, ``M_MMAP_MAX`` = 0 (every block comes from the heap and
freed ones are reused), ``M_TRIM_THRESHOLD`` = 2 GiB - 1 (``mallopt`` takes an ``int``) and
``M_TOP_PAD`` = 256 MiB (address space reserved per heap extension, resident only once used).
Measured here (``run --models dcca --quick``, two runs side by side on 2 cores, settings given
as ``GLIBC_TUNABLES``): see ``benchmark/perf/README.md``. The allocator never changes a number:
same bytes, other addresses. The cost is that the resident set does not shrink
after a peak until the process ends. The environment variable ``GLIBC_TUNABLES`` (or
``MALLOC_*_``) set by the user wins: then nothing is changed. On other C libraries (macOS,
musl) it does nothing.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform

__all__ = ["SETTINGS", "tune"]

#: mallopt parameter number -> value (glibc's ``malloc.h``: M_TRIM_THRESHOLD -1, M_TOP_PAD -2, M_MMAP_MAX -4)
SETTINGS: dict[int, int] = {-4: 0, -1: (1 << 31) - 1, -2: 256 << 20}

_DONE: bool | None = None


def tune() -> bool:
    """Apply :data:`SETTINGS` with glibc's ``mallopt`` (once per process); whether they are in effect."""
    global _DONE
    if _DONE is not None:
        return _DONE
    _DONE = False
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    if "GLIBC_TUNABLES" in os.environ or any(k.startswith("MALLOC_") for k in os.environ):
        return False  # the user chose the allocator's settings
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    _DONE = all(mallopt(param, value) == 1 for param, value in SETTINGS.items())
    return _DONE
