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
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .errors import InputError

RECORD_KEYS = ("model", "task", "dataset", "seed", "metrics", "config", "provenance")


def config_key(config: dict[str, Any]) -> str:
    blob = json.dumps(config, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


@dataclass
class ResultRecord:
    model: str
    task: str
    dataset: str
    seed: int
    metrics: dict[str, float]
    config: dict[str, Any]
    provenance: dict[str, Any]
    key: str
    task_version: str
    protocol: str
    higher_is_better: dict[str, bool] = field(default_factory=dict)
    model_info: dict[str, Any] = field(default_factory=dict)
    item_metrics: dict[str, list[float]] = field(default_factory=dict)
    submission: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        if d["submission"] is None:
            del d["submission"]
        return d


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

    def get(self, model: str, task: str, dataset: str, seed: int, key: str) -> dict[str, Any] | None:
        """The finished record with this key, or ``None`` (a torn or foreign file counts as missing)."""
        p = self.path_for(model, task, dataset, seed, key)
        if not p.exists():
            return None
        try:
            rec = json.loads(p.read_text())
        except (OSError, json.JSONDecodeError):
            return None
        return rec if rec.get("key") == key and all(k in rec for k in RECORD_KEYS) else None

    def put(self, record: ResultRecord) -> Path:
        p = self.path_for(record.model, record.task, record.dataset, record.seed, record.key)
        atomic_write_text(p, json.dumps(record.to_json(), indent=2, sort_keys=True) + "\n")
        return p

    def records(self) -> list[dict[str, Any]]:
        out = []
        for p in sorted(self.root.rglob("*.json")):
            try:
                rec = json.loads(p.read_text())
            except (OSError, json.JSONDecodeError) as e:
                raise InputError(p, None, f"not a readable result record ({e})") from None
            if isinstance(rec, dict) and all(k in rec for k in RECORD_KEYS):
                out.append(rec)
        return out
