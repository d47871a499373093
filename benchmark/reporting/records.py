"""Reading stored result records into validated, tidy tables.

A *result record* is one JSON object per (model, task, dataset, seed, config) written by the
runner; its one typed schema is :class:`~benchmark.schema.ResultRecord`, and
:func:`load_records` reads a folder with the same reader as the results store
(:func:`~benchmark.schema.read_records`), so every field reporting relies on is checked
once, with an error naming the file and the field. Task metadata (directions, units,
headline metrics) comes from the records' ``task_meta``, never from the task code.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import InputError
from ..schema import ResultRecord, TaskMetadata, is_record_like, item_statistic, read_records, record_from_json
from .configs import config_id

__all__ = [
    "FRAME_COLUMNS",
    "as_records",
    "is_record_like",
    "item_statistic",
    "load_records",
    "metric_matches_key",
    "records_frame",
    "task_metadata",
]

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
    "unit",
    "lower",
    "upper",
)


def metric_matches_key(metric: str, metric_key: str) -> bool:
    """Whether our metric name corresponds to a surveyed ``metric_key``.

    Matching is by prefix on the ``_`` separator: ``R@10_a2v`` and ``R@10_v2a`` match
    ``R@10``, ``mAP_a2v`` matches ``mAP``; otherwise the names must be equal.
    """
    if not metric_key:
        return False
    return metric == metric_key or metric.startswith(metric_key + "_")


def as_records(records: Iterable[ResultRecord | Mapping[str, Any]]) -> list[ResultRecord]:
    """Records as :class:`ResultRecord` (parsed JSON objects are validated, ``record #i`` in errors)."""
    out = []
    for i, rec in enumerate(records):
        out.append(rec if isinstance(rec, ResultRecord) else record_from_json(rec, f"record #{i}"))
    return out


def _record_sort_key(r: ResultRecord) -> tuple:
    return (r.task, r.dataset, r.model, r.seed, r.source)


def load_records(root: str | Path) -> list[ResultRecord]:
    """Load and validate every result record found recursively under ``root``.

    JSON files that are not record-like (see :func:`~benchmark.schema.is_record_like`) are
    skipped; broken JSON or a record-like object with a missing / bad field raises
    :class:`InputError` naming the file and the field. Two records for the same (model,
    config, task, dataset, seed) are an error, since aggregating both would count one seed
    twice. The result is sorted by (task, dataset, model, seed).
    """
    records = read_records(root)
    seen: dict[tuple, str] = {}
    for rec in records:
        ident = (rec.model, config_id(rec), rec.task, rec.dataset, rec.seed)
        if ident in seen:
            raise InputError(
                rec.source, None, f"duplicate record for model={rec.model} task={rec.task} dataset={rec.dataset} "
                f"seed={rec.seed} (also in {seen[ident]})"
            )
        seen[ident] = rec.source
    records.sort(key=_record_sort_key)
    return records


def task_metadata(records: Iterable[ResultRecord]) -> dict[str, TaskMetadata]:
    """Task name -> its metadata, from the newest record of each task."""
    newest: dict[str, tuple[str, TaskMetadata]] = {}
    for rec in records:
        stamp = str(rec.provenance.get("created_at", ""))
        if rec.task not in newest or stamp > newest[rec.task][0]:
            newest[rec.task] = (stamp, rec.task_meta)
    return {task: meta for task, (_, meta) in newest.items()}


def records_frame(records: Iterable[ResultRecord | Mapping[str, Any]]) -> pd.DataFrame:
    """One row per (model, task, dataset, seed, metric) with model descriptors.

    ``encoder`` / ``objective`` lists are joined with ``"+"``. ``item_values`` holds the
    per-item tuple when the record has ``item_metrics`` for that metric (else ``None``),
    and ``item_statistic`` says whether the metric is their mean or median; the direction
    comes from the record's ``task_meta``, as do ``unit`` and the declared range ``lower`` /
    ``upper`` (NaN when the metric declares none). Parsed JSON objects are validated first.
    """
    rows: list[dict[str, Any]] = []
    for i, rec in enumerate(as_records(records)):
        source = rec.source or f"record #{i}"
        info = rec.model_info
        for metric, value in rec.metrics.items():
            item_vals = rec.item_metrics.get(metric)
            meta = rec.task_meta.metrics[metric]
            rows.append(
                {
                    "model": rec.model,
                    "task": rec.task,
                    "dataset": rec.dataset,
                    "seed": rec.seed,
                    "metric": metric,
                    "value": float(value),
                    "higher_is_better": meta.higher_is_better,
                    "reference": info.reference,
                    "learning": info.learning,
                    "encoder": "+".join(info.encoder),
                    "objective": "+".join(info.objective),
                    "item_values": tuple(float(v) for v in item_vals) if item_vals is not None else None,
                    "item_statistic": item_statistic(item_vals, float(value)) if item_vals is not None else None,
                    "source": source,
                    "unit": meta.unit,
                    "lower": math.nan if meta.lower is None else float(meta.lower),
                    "upper": math.nan if meta.upper is None else float(meta.upper),
                }
            )
    frame = pd.DataFrame(rows, columns=list(FRAME_COLUMNS))
    if not frame.empty:
        frame = frame.sort_values(["task", "dataset", "model", "seed", "metric"], kind="mergesort").reset_index(drop=True)
    return frame
