"""The results store: one JSON record per (model, task, dataset, seed), written atomically.

Records are keyed by a hash of everything that determines the number (model identity and
arguments, model code hash, task name, code hash and options, dataset fingerprint and options, seed,
size, intra-op thread count and device kind), so a re-run into the same folder reuses what is
finished and computes only what is missing, and a changed model never hits a stale cache entry.

Files are written through :func:`atomic_write_bytes` (a temporary ``.<name>.<random>.tmp``
next to the target, then ``os.replace``) with the permissions the umask gives a new file;
:func:`clean_stale_temps` removes the temporary files a killed process left behind. Both are
shared with the dataset cache.
"""
from __future__ import annotations

import errno
import fnmatch
import hashlib
import json
import os
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .errors import InputError
from .schema import ResultRecord, read_record, read_records

__all__ = ["TEMP_PATTERNS", "ResultRecord", "ResultStore", "atomic_write_bytes", "atomic_write_text",
           "clean_stale_temps", "config_key", "process_start_time", "umask_mode"]

#: names of the temporary files :func:`atomic_write_bytes` writes (and of the dataset cache's
#: former ``tempfile.mkstemp`` files, ``tmpXXXX.tmp.npz``)
TEMP_PATTERNS: tuple[str, ...] = (".*.tmp", "tmp*.tmp.npz")


def config_key(config: dict[str, Any]) -> str:
    blob = json.dumps(config, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


def umask_mode(mode: int = 0o666) -> int:
    """``mode`` less the process's umask: the permissions ``open()`` gives a new file."""
    mask = os.umask(0)
    os.umask(mask)
    return mode & ~mask


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same folder and ``os.replace``.

    Never leaves a torn file: a reader sees the old content or the new one. The file gets the
    umask's permissions (``0o666 & ~umask``, as ``open()`` would give it; ``mkstemp`` alone
    gives 0600). A temporary file removed by a concurrent :func:`clean_stale_temps` before the
    rename is written once more. ``OSError`` (read-only folder, disk full) propagates.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for attempt in range(2):
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, umask_mode())
            os.replace(tmp, path)
            return
        except FileNotFoundError:
            if attempt or path.parent.is_dir() is False:
                raise
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)


def atomic_write_text(path: str | Path, text: str) -> None:
    """:func:`atomic_write_bytes` of ``text`` encoded as UTF-8."""
    atomic_write_bytes(path, text.encode("utf-8"))


def process_start_time() -> float:
    """When this process started (epoch seconds): from ``/proc`` on Linux, else the import of this module."""
    try:
        stat = Path("/proc/self/stat").read_text()
        ticks = int(stat.rpartition(")")[2].split()[19])  # field 22, starttime, in clock ticks since boot
        with open("/proc/stat") as f:
            btime = next(int(line.split()[1]) for line in f if line.startswith("btime"))
        return btime + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration, AttributeError):
        return _IMPORTED_AT


_IMPORTED_AT = time.time()


def clean_stale_temps(folder: str | Path, patterns: Iterable[str] = TEMP_PATTERNS, *, recursive: bool = True,
                      before: float | None = None) -> list[Path]:
    """Remove temporary files a killed writer left in ``folder``; returns the removed paths.

    A file is stale when its name matches one of ``patterns`` (shell globs) and it was last
    modified before ``before`` (default: this process's start), so a temporary file that a
    concurrent, younger writer is filling is left alone. Unremovable files and a missing
    folder are ignored.
    """
    root = Path(folder)
    if not root.is_dir():
        return []
    cutoff = process_start_time() if before is None else before
    pats = tuple(patterns)
    removed = []
    for p in root.rglob("*") if recursive else root.iterdir():
        if not any(fnmatch.fnmatchcase(p.name, pat) for pat in pats):
            continue
        try:
            if p.is_file() and not p.is_symlink() and p.stat().st_mtime < cutoff:
                p.unlink()
                removed.append(p)
        except OSError:
            continue
    return removed


def _probe(folder: Path) -> None:
    """Write, sync and remove a 4 KiB file in ``folder`` (``OSError`` when that is impossible)."""
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".avcl-probe.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(b"\0" * 4096)
            f.flush()
            os.fsync(f.fileno())
    finally:
        os.unlink(tmp)


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_.@" else "_" for c in name)


def _write_problem(e: OSError) -> str:
    if e.errno == errno.ENOSPC:
        return "disk full (No space left on device)"
    if e.errno == errno.EDQUOT:
        return "disk quota exceeded"
    return e.strerror or str(e)


def check_writable_folder(root: Path, what: str = "results folder") -> None:
    """Create ``root`` if needed and prove it writable with a probe file (before any compute): a
    read-only mount, a path that is a file, a missing permission or a full disk is an
    :class:`InputError` naming the folder (``what`` says which folder it is)."""
    root = Path(root)
    for p in (root, *root.parents):
        if p.exists():
            if not p.is_dir():
                raise InputError(root, None, f"{what}: {p} is a file, not a folder")
            break
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InputError(root, None, f"{what} cannot be created ({_write_problem(e)})") from None
    try:
        _probe(root)
    except OSError as e:
        raise InputError(root, None, f"{what} is not writable ({_write_problem(e)})") from None


class ResultStore:
    """A folder of result records."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def path_for(self, model: str, task: str, dataset: str, seed: int, key: str) -> Path:
        return self.root / _safe(dataset) / _safe(task) / _safe(model) / f"seed{seed}-{key[:16]}.json"

    def check_writable(self) -> None:
        """Make sure records can be written here, before any compute.

        Creates the folder, writes and removes a small probe file (so a read-only mount, a
        path that is a file, a missing permission or a full disk is found now), and removes
        the temporary files of a killed earlier run. An :class:`InputError` names the folder.
        """
        check_writable_folder(self.root)
        clean_stale_temps(self.root)

    def get(self, model: str, task: str, dataset: str, seed: int, key: str) -> ResultRecord | None:
        """The finished record with this key, or ``None``.

        A torn file, a record of another schema version or another key counts as missing,
        so that a resumed run recomputes it rather than failing.
        """
        p = self.path_for(model, task, dataset, seed, key)
        if not p.exists():
            return None
        try:
            rec = read_record(p)
        except InputError:
            return None
        return rec if rec.key == key else None

    def put(self, record: ResultRecord) -> Path:
        """Write one record; a failed write (disk full, read-only) is an :class:`InputError` naming the file."""
        p = self.path_for(record.model, record.task, record.dataset, record.seed, record.key)
        try:
            atomic_write_text(p, json.dumps(record.to_json(), indent=2, sort_keys=True) + "\n")
        except OSError as e:
            raise InputError(p, None, f"cannot write the result record ({_write_problem(e)}); the records "
                             "written before are kept, re-run the same command to resume") from None
        return p

    def records_of(self, model: str) -> list[ResultRecord]:
        """The readable records stored under model name ``model`` (any dataset, task, seed; bad files skipped)."""
        if not self.root.is_dir():
            return []
        out = []
        for p in sorted(self.root.glob(f"*/*/{_safe(model)}/*.json")):
            try:
                rec = read_record(p)
            except InputError:
                continue
            if rec.model == model:
                out.append(rec)
        return out

    def records(self) -> list[ResultRecord]:
        """Every record of the folder (:func:`~benchmark.schema.read_records`; a bad one is an error).

        A folder that does not exist yet holds no records.
        """
        return read_records(self.root) if self.root.exists() else []
