"""Reading stored result records and the surveyed Table 1 into validated, tidy tables.

A *result record* is one JSON object per (model, task, dataset, seed) written by the
runner (see ``docs/ARCHITECTURE.md``). Reporting works from these files only, so every
field it relies on is checked here, once, with an error that names the file and the key.
"""
from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InputError
from ..surveyed import DATASET_ALIASES, LONG_FILE

__all__ = [
    "DATASET_ALIASES",
    "FRAME_COLUMNS",
    "RECORD_KEYS",
    "SURVEYED_COLUMNS",
    "SURVEYED_FILENAME",
    "canonical_dataset_id",
    "is_record_like",
    "item_statistic",
    "load_records",
    "load_surveyed",
    "metric_matches_key",
    "records_frame",
    "validate_record",
]

#: Top-level keys every record must have (``item_metrics`` and ``submission`` are optional).
RECORD_KEYS: tuple[str, ...] = (
    "model",
    "task",
    "dataset",
    "seed",
    "metrics",
    "higher_is_better",
    "config",
    "provenance",
    "key",
    "task_version",
    "protocol",
    "model_info",
)
#: Keys every ``model_info`` object must have (``papers`` is optional).
MODEL_INFO_KEYS: tuple[str, ...] = ("encoder", "objective", "learning", "reference")

#: Columns of :func:`records_frame`.
FRAME_COLUMNS: tuple[str, ...] = (
    "model",
    "task",
    "dataset",
    "seed",
    "metric",
    "value",
    "higher_is_better",
    "reference",
    "learning",
    "encoder",
    "objective",
    "item_values",
    "item_statistic",
    "source",
)

#: Columns of the long-form surveyed table that reporting reads.
SURVEYED_COLUMNS: tuple[str, ...] = (
    "paper",
    "objective",
    "learning",
    "task",
    "metric",
    "metric_key",
    "dataset",
    "dataset_id",
    "value_text",
    "unit",
    "value_normalized",
    "notes",
)
SURVEYED_FILENAME = LONG_FILE

# A JSON object is taken for a record when it has "metrics", or both "model" and "task";
# any other JSON file (a manifest, a config dump) under the results folder is ignored.
_RECORD_MARKERS_ANY = ("metrics",)
_RECORD_MARKERS_ALL = ("model", "task")


def canonical_dataset_id(name: str) -> str:
    """The surveyed ``dataset_id`` for one of our dataset names (lower-cased otherwise)."""
    low = str(name).strip().lower()
    return DATASET_ALIASES.get(low, low)


def metric_matches_key(metric: str, metric_key: str) -> bool:
    """Whether our metric name corresponds to a surveyed ``metric_key``.

    Matching is by prefix on the ``_`` separator: ``R@10_a2v`` and ``R@10_v2a`` match
    ``R@10``, ``mAP_a2v`` matches ``mAP``; otherwise the names must be equal.
    """
    if not metric_key:
        return False
    return metric == metric_key or metric.startswith(metric_key + "_")


def is_record_like(obj: object) -> bool:
    """Whether a parsed JSON value claims to be a result record (see module notes)."""
    if not isinstance(obj, dict):
        return False
    return any(k in obj for k in _RECORD_MARKERS_ANY) or all(k in obj for k in _RECORD_MARKERS_ALL)


def _is_number(x: object) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _as_name_list(value: object, source: str, field: str) -> tuple[str, ...]:
    if isinstance(value, str):
        items: Sequence[object] = [value]
    elif isinstance(value, list):
        items = value
    else:
        raise InputError(source, field, f"expected a string or a list of strings, got {type(value).__name__}")
    if not all(isinstance(v, str) and v for v in items):  # [] is fine: references have no encoder
        raise InputError(source, field, "expected non-empty strings")
    return tuple(items)  # type: ignore[arg-type]


def item_statistic(items: Sequence[float], value: float) -> str | None:
    """Which statistic (``"mean"`` or ``"median"``) of ``items`` reproduces ``value``.

    Returns ``None`` when neither does (within 1e-6 relative tolerance).
    """
    arr = np.asarray(items, dtype=np.float64)
    for name, fn in (("mean", np.mean), ("median", np.median)):
        if math.isclose(float(fn(arr)), value, rel_tol=1e-6, abs_tol=1e-9):
            return name
    return None


def validate_record(record: object, source: str = "record") -> dict[str, Any]:
    """Check one result record and return it; raise :class:`InputError` on the first problem."""
    if not isinstance(record, dict):
        raise InputError(source, None, f"expected a JSON object, got {type(record).__name__}")
    for key in RECORD_KEYS:
        if key not in record:
            raise InputError(source, key, "missing key")
    for key in ("model", "task", "dataset"):
        if not isinstance(record[key], str) or not record[key].strip():
            raise InputError(source, key, "expected a non-empty string")
    if not isinstance(record["seed"], int) or isinstance(record["seed"], bool):
        raise InputError(source, "seed", f"expected an integer, got {record['seed']!r}")
    for key in ("config", "provenance"):
        if not isinstance(record[key], dict):
            raise InputError(source, key, "expected a JSON object")
    metrics = record["metrics"]
    if not isinstance(metrics, dict) or not metrics:
        raise InputError(source, "metrics", "expected a non-empty JSON object of metric values")
    hib = record["higher_is_better"]
    if not isinstance(hib, dict):
        raise InputError(source, "higher_is_better", "expected a JSON object of booleans")
    for name, value in metrics.items():
        if not _is_number(value) or not math.isfinite(float(value)):
            raise InputError(source, f"metrics.{name}", f"expected a finite number, got {value!r}")
        if name not in hib:
            raise InputError(source, f"higher_is_better.{name}", "missing key")
        if not isinstance(hib[name], bool):
            raise InputError(source, f"higher_is_better.{name}", f"expected true or false, got {hib[name]!r}")
    info = record["model_info"]
    if not isinstance(info, dict):
        raise InputError(source, "model_info", "expected a JSON object")
    for key in MODEL_INFO_KEYS:
        if key not in info:
            raise InputError(source, f"model_info.{key}", "missing key")
    _as_name_list(info["encoder"], source, "model_info.encoder")
    _as_name_list(info["objective"], source, "model_info.objective")
    if not isinstance(info["learning"], str):
        raise InputError(source, "model_info.learning", "expected a string")
    if not isinstance(info["reference"], bool):
        raise InputError(source, "model_info.reference", f"expected true or false, got {info['reference']!r}")
    items = record.get("item_metrics")
    if items is not None:
        if not isinstance(items, dict):
            raise InputError(source, "item_metrics", "expected a JSON object of lists")
        for name, values in items.items():
            field = f"item_metrics.{name}"
            if name not in metrics:
                raise InputError(source, field, "has no matching entry in metrics")
            if not isinstance(values, list) or not values:
                raise InputError(source, field, "expected a non-empty list of numbers")
            if not all(_is_number(v) and math.isfinite(float(v)) for v in values):
                raise InputError(source, field, "expected finite numbers only")
            if item_statistic(values, float(metrics[name])) is None:
                raise InputError(
                    source, field, f"neither the mean nor the median of the items equals metrics.{name}={metrics[name]!r}"
                )
    return record


def _read_json(path: Path) -> object:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(path, None, f"cannot read ({e.__class__.__name__}: {e})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(path, None, f"broken JSON (line {e.lineno}, column {e.colno}: {e.msg})") from None


def _record_sort_key(r: Mapping[str, Any]) -> tuple:
    return (r["task"], r["dataset"], r["model"], r["seed"], r.get("_source", ""))


def load_records(root: str | Path) -> list[dict[str, Any]]:
    """Load and validate every result record found recursively under ``root``.

    JSON files that are not record-like (see :func:`is_record_like`) are skipped; broken
    JSON or a record-like object with a missing / bad key raises :class:`InputError`
    naming the file. Each returned record gets a ``"_source"`` key (its path). Two
    records for the same (model, task, dataset, seed) are an error, since aggregating
    both would count one seed twice. The result is sorted by (task, dataset, model, seed).
    """
    base = Path(root)
    if not base.exists():
        raise InputError(base, None, "results folder not found")
    if not base.is_dir():
        raise InputError(base, None, "not a folder")
    records: list[dict[str, Any]] = []
    seen: dict[tuple, str] = {}
    for path in sorted(base.rglob("*.json")):
        if not path.is_file():
            continue
        obj = _read_json(path)
        if not is_record_like(obj):
            continue
        rec = validate_record(obj, str(path))
        ident = (rec["model"], rec["task"], rec["dataset"], rec["seed"])
        if ident in seen:
            raise InputError(
                path, None, f"duplicate record for model={ident[0]} task={ident[1]} dataset={ident[2]} "
                f"seed={ident[3]} (also in {seen[ident]})"
            )
        seen[ident] = str(path)
        rec["_source"] = str(path)
        records.append(rec)
    records.sort(key=_record_sort_key)
    return records


def records_frame(records: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """One row per (model, task, dataset, seed, metric) with model descriptors.

    ``encoder`` / ``objective`` lists are joined with ``"+"``. ``item_values`` holds the
    per-item tuple when the record has ``item_metrics`` for that metric (else ``None``),
    and ``item_statistic`` says whether the metric is their mean or median.
    Records are validated (in-memory records from the runner are accepted too).
    """
    rows: list[dict[str, Any]] = []
    for i, rec in enumerate(records):
        source = str(rec.get("_source", f"record #{i}")) if isinstance(rec, Mapping) else f"record #{i}"
        validate_record(rec, source)
        info = rec["model_info"]
        items = rec.get("item_metrics") or {}
        for metric, value in rec["metrics"].items():
            item_vals = items.get(metric)
            rows.append(
                {
                    "model": rec["model"],
                    "task": rec["task"],
                    "dataset": rec["dataset"],
                    "seed": rec["seed"],
                    "metric": metric,
                    "value": float(value),
                    "higher_is_better": bool(rec["higher_is_better"][metric]),
                    "reference": bool(info["reference"]),
                    "learning": info["learning"],
                    "encoder": "+".join(_as_name_list(info["encoder"], source, "model_info.encoder")),
                    "objective": "+".join(_as_name_list(info["objective"], source, "model_info.objective")),
                    "item_values": tuple(float(v) for v in item_vals) if item_vals is not None else None,
                    "item_statistic": item_statistic(item_vals, float(value)) if item_vals is not None else None,
                    "source": source,
                }
            )
    frame = pd.DataFrame(rows, columns=list(FRAME_COLUMNS))
    if not frame.empty:
        frame = frame.sort_values(["task", "dataset", "model", "seed", "metric"], kind="mergesort").reset_index(drop=True)
    return frame


def load_surveyed(path: str | Path) -> pd.DataFrame:
    """Read the long-form surveyed Table 1 (a CSV file, or a folder holding ``table1_long.csv``).

    Returns the table with empty strings for missing text, ``value_normalized`` as float
    (NaN when empty) and ``dataset_id`` / ``task`` / ``metric_key`` stripped. Missing
    columns or non-numeric ``value_normalized`` cells raise :class:`InputError`.
    """
    p = Path(path)
    if p.is_dir():
        p = p / SURVEYED_FILENAME
    if not p.is_file():
        raise InputError(p, None, "surveyed table not found")
    try:
        frame = pd.read_csv(p, dtype=str, keep_default_na=False)
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        raise InputError(p, None, f"not a readable CSV file ({e.__class__.__name__}: {e})") from None
    for col in SURVEYED_COLUMNS:
        if col not in frame.columns:
            raise InputError(p, col, "missing column")
    for col in frame.columns:
        frame[col] = frame[col].str.strip()
    values = []
    for i, text in enumerate(frame["value_normalized"]):
        if text == "":
            values.append(math.nan)
            continue
        try:
            v = float(text)
        except ValueError:
            raise InputError(p, f"line {i + 2}: value_normalized", f"not a number: {text!r}") from None
        if not math.isfinite(v):
            raise InputError(p, f"line {i + 2}: value_normalized", f"not a finite number: {text!r}")
        values.append(v)
    frame["value_normalized"] = pd.Series(values, dtype="float64", index=frame.index)
    return frame.reset_index(drop=True)
