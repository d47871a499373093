"""The results store: one JSON record per (model, task, dataset, seed), written atomically.

Records are keyed by a hash of everything that determines the number (model identity and
arguments, model source hash, task name and version, dataset fingerprint and options, seed,
size), so a re-run into the same folder reuses what is finished and computes only what is
missing, and a changed model never hits a stale cache entry.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from .errors import InputError
from .schema import ResultRecord, read_record, read_records

__all__ = ["ResultRecord", "ResultStore", "atomic_write_text", "config_key"]


def config_key(config: dict[str, Any]) -> str:
    blob = json.dumps(config, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


def atomic_write_text(path: Path, text: str) -> None:
    """Write via a temporary file in the same folder and ``os.replace``: never a torn file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_.@" else "_" for c in name)


class ResultStore:
    """A folder of result records."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def path_for(self, model: str, task: str, dataset: str, seed: int, key: str) -> Path:
        return self.root / _safe(dataset) / _safe(task) / _safe(model) / f"seed{seed}-{key[:16]}.json"

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
        p = self.path_for(record.model, record.task, record.dataset, record.seed, record.key)
        atomic_write_text(p, json.dumps(record.to_json(), indent=2, sort_keys=True) + "\n")
        return p

    def records(self) -> list[ResultRecord]:
        """Every record of the folder (:func:`~benchmark.schema.read_records`; a bad one is an error).

        A folder that does not exist yet holds no records.
        """
        return read_records(self.root) if self.root.exists() else []
