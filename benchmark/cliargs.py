"""Parsing of the command line's list and key=value arguments (shared by every sub-command)."""
from __future__ import annotations

import argparse
import json
from typing import Any

from .errors import ConfigError
from .training import PRECISIONS


def parse_csv(text: str | None) -> list[str]:
    return [t.strip() for t in (text or "").split(",") if t.strip()]


def parse_seeds(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in parse_csv(text)]
    except ValueError:
        raise ConfigError(f"--seeds: expected comma-separated integers, got '{text}'") from None
    if not seeds:
        raise ConfigError("--seeds: no seed given")
    return seeds


def parse_kv(text: str | None, flag: str) -> dict[str, Any]:
    """``a=1,b=x`` -> {"a": 1, "b": "x"} (values parsed as JSON when they are JSON)."""
    out: dict[str, Any] = {}
    for item in parse_csv(text):
        k, sep, v = item.partition("=")
        if not sep or not k:
            raise ConfigError(f"{flag}: expected key=value, got '{item}'")
        try:
            out[k.strip()] = json.loads(v)
        except json.JSONDecodeError:
            out[k.strip()] = v
    return out


#: intra-op threads of a run unless ``--threads`` says otherwise. One thread, not the machine's
#: core count: the numbers of a record must depend only on its key, and 1 is the count every
#: machine (a laptop, a 2-core CI runner, a busy shared server) can reproduce, so records of the
#: default key are comparable everywhere; the suite's small models gain little from intra-op
#: parallelism, and independent runs (seeds, models) parallelise better as separate processes.
DEFAULT_THREADS = 1


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def add_runtime_options(p: argparse.ArgumentParser) -> None:
    """``--threads`` and ``--cell-timeout`` of ``run`` and ``submit``."""
    p.add_argument("--threads", type=_positive_int, default=DEFAULT_THREADS, metavar="N",
                   help=f"intra-op threads of torch and of numpy/scipy/sklearn's BLAS for training and heads "
                        f"(default {DEFAULT_THREADS}, whatever the core count or OMP_NUM_THREADS; part of the "
                        "results' key, since another count gives slightly different numbers). 1 is the count "
                        "every machine reproduces, so default results compare across machines; run seeds or "
                        "models as separate processes to use more cores")
    p.add_argument("--precision", choices=list(PRECISIONS), default="fp32",
                   help="training precision of the models and of the generation task's frame decoder: fp32 "
                        "(default) or bf16 (torch.autocast mixed precision, for GPUs and CPUs with native bfloat16; "
                        "part of the results' key). The other heads, the feature network and metrics stay float32/float64")
    p.add_argument("--cell-timeout", dest="cell_timeout", type=_positive_seconds, default=None, metavar="SECONDS",
                   help="stop a (model, seed) cell (constructor, fit and all its tasks) that runs longer and "
                        "report the model and the phase that hung (exit 2; logged in OUT/cell-timeouts.jsonl). "
                        "Off by default; POSIX only, the run must be in the main thread")
