"""The glibc allocator settings: freed buffers are reused instead of unmapped and faulted in again."""
from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                                reason="mallopt is glibc's")

# 200 times: allocate and touch three 8 MiB buffers, free them; print the minor page faults it cost.
# Freeing 24 MiB at the heap's top exceeds glibc's trim threshold, so by default the pages go back
# to the kernel and the next round faults them in again (what a training step does to activations).
_FAULTS = """
import resource, sys
import numpy as np
from avcl_bench.benchmark import allocator
tuned = allocator.tune() if sys.argv[1] == "tune" else False
np.ones(1 << 20)  # warm numpy up
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(200):
    a = [np.ones(1 << 20) for _ in range(3)]
    del a
print(tuned, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(mode: str, env: dict[str, str] | None = None) -> tuple[str, int]:
    out = subprocess.run([sys.executable, "-c", _FAULTS, mode], capture_output=True, text=True, check=True,
                         env={**os.environ, **(env or {})}, cwd=os.path.dirname(sys.executable))
    tuned, faults = out.stdout.split()
    return tuned, int(faults)


def test_tuned_allocator_reuses_freed_buffers_instead_of_faulting_them_in_again():
    plain_tuned, plain = _faults("plain")
    tuned, faults = _faults("tune")
    assert (plain_tuned, tuned) == ("False", "True")
    one_round = 3 * 2048  # pages of 4 KiB in one round's buffers
    assert faults < one_round, faults  # measured here: about 1,000 (tuned) against 200,000 (plain)
    assert plain > 10 * one_round, plain


def test_user_settings_win():
    tuned, _ = _faults("tune", {"GLIBC_TUNABLES": "glibc.malloc.mmap_threshold=131072"})
    assert tuned == "False"


def test_tune_is_idempotent():
    # in a child process, so that the test session's own allocator stays as it was
    code = "from avcl_bench.benchmark import allocator; a = allocator.tune(); print(a, allocator.tune() is a)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=os.path.dirname(sys.executable))
    assert out.stdout.split() == ["True", "True"]
