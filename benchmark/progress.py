"""What a run says while it works: one overall "cell k of n, ETA" line per cell, and per-cell logs.

Every line the runner logs goes to stderr; while a cell runs it is also appended to that cell's
log file ``<out>/logs/<dataset>/<model>-seed<k>-<cell key>.log`` (one file per cell, so a cell
computed by a Ray or SLURM worker on a shared file system leaves its log beside the records).
"""
from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator
from pathlib import Path

#: folder below ``--out`` holding the per-cell logs
LOG_DIR = "logs"

_cell_log: Path | None = None


def log(msg: str) -> None:
    """One line on stderr, and in the current cell's log file when a cell is running."""
    print(msg, file=sys.stderr, flush=True)
    if _cell_log is not None:
        try:
            with _cell_log.open("a", encoding="utf-8") as f:
                f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {msg}\n")
        except OSError:  # a log is a convenience: never fail a cell over it
            pass


def cell_log_path(out: Path, dataset: str, model: str, seed: int, cell: str) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_.@" else "_" for c in model)
    return Path(out) / LOG_DIR / dataset / f"{safe}-seed{seed}-{cell[:12]}.log"


@contextlib.contextmanager
def cell_log(path: Path) -> Iterator[None]:
    """Log lines into ``path`` (appended: a resumed cell keeps the earlier attempt's lines)."""
    global _cell_log
    previous = _cell_log
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _cell_log = path
    except OSError:
        _cell_log = None
    try:
        yield
    finally:
        _cell_log = previous


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


class CellProgress:
    """Counts the cells of a run and estimates the time left from the cells computed so far.

    Reused cells count as done at once and do not enter the estimate.
    """

    def __init__(self, total: int) -> None:
        self.total = total
        self.done = 0
        self.computed = 0
        self.start = time.perf_counter()
        self._compute_s = 0.0

    def reused(self) -> None:
        self.done += 1

    def starting(self, what: str) -> None:
        """Log ``[cell k/n] what (elapsed, ETA)`` before a cell is computed."""
        elapsed = time.perf_counter() - self.start
        left = self.total - self.done
        eta = f", ETA {_duration(self._compute_s / self.computed * left)}" if self.computed else ""
        log(f"[cell {self.done + 1}/{self.total}] {what} (elapsed {_duration(elapsed)}{eta})")

    def finished(self, seconds: float) -> None:
        self.done += 1
        self.computed += 1
        self._compute_s += seconds
