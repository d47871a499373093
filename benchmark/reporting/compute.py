"""The compute table: what each trained model cost, next to what it scored.

One row per (dataset, model) from the records' :class:`~benchmark.schema.ComputeStats`
(a model's records under several configs are already relabelled ``model@id`` by
:func:`~benchmark.reporting.configs.resolve_configs`): the parameter count, the training
wall time and peak memory as the mean over seeds, the embedding throughput as the median
over seeds, and the device kinds. Every task of a cell carries the same stats, so each
(model, dataset, seed) is counted once. Reference rows and submissions of predictions
(no model run by the suite) have none and are left out.
"""
from __future__ import annotations

import math
import statistics
from collections.abc import Iterable

import pandas as pd

from ..schema import ResultRecord

__all__ = ["COMPUTE_COLUMNS", "COMPUTE_HEADERS", "compute_rows", "compute_table"]

COMPUTE_COLUMNS: tuple[str, ...] = ("dataset", "model", "parameters", "train_seconds", "peak_memory_mb",
                                    "memory_measure", "embed_items_per_s", "device", "n")
#: column titles of the rendered table (same order as :data:`COMPUTE_COLUMNS`)
COMPUTE_HEADERS: tuple[str, ...] = ("dataset", "model", "params", "train (s)", "peak mem (MiB)", "measured as",
                                    "embed (items/s)", "device", "seeds")


def _mean(values: list[float]) -> float:
    return statistics.fmean(values) if values else math.nan


def compute_table(records: Iterable[ResultRecord]) -> pd.DataFrame:
    """The compute table of ``records`` (empty when none carries compute stats), sorted by dataset and model."""
    cells: dict[tuple[str, str], dict[int, ResultRecord]] = {}
    for rec in records:
        if rec.compute is not None and not rec.model_info.reference:
            cells.setdefault((rec.dataset, rec.model), {}).setdefault(rec.seed, rec)
    rows = []
    for (dataset, model), by_seed in sorted(cells.items()):
        stats = [r.compute for r in by_seed.values()]
        params = {s.parameters for s in stats if s.parameters is not None}
        rows.append({
            "dataset": dataset,
            "model": model,
            "parameters": max(params) if params else None,
            "train_seconds": _mean([s.train_seconds for s in stats if s.train_seconds is not None]),
            "peak_memory_mb": _mean([s.peak_memory_mb for s in stats if s.peak_memory_mb is not None]),
            "memory_measure": ", ".join(sorted({s.memory_measure for s in stats if s.memory_measure})),
            "embed_items_per_s": (statistics.median(v) if (v := [s.embed_items_per_s for s in stats
                                                                 if s.embed_items_per_s is not None]) else math.nan),
            "device": ", ".join(sorted({s.device for s in stats if s.device})),
            "n": len(stats),
        })
    return pd.DataFrame(rows, columns=list(COMPUTE_COLUMNS))


def _fmt(value: object, spec: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return format(int(value) if spec.endswith("d") else value, spec)


def compute_rows(table: pd.DataFrame) -> list[list[str]]:
    """The table as text cells (``n/a`` where a value could not be measured)."""
    return [[str(r["dataset"]), str(r["model"]), _fmt(r["parameters"], ",d"), _fmt(r["train_seconds"], ".1f"),
             _fmt(r["peak_memory_mb"], ".0f"), r["memory_measure"] or "n/a", _fmt(r["embed_items_per_s"], ",.0f"),
             r["device"] or "n/a", str(int(r["n"]))]
            for _, r in table.iterrows()]
