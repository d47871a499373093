"""Leaderboard: every metric of every (task, dataset), models ranked with tied ranks.

One row per (task, dataset, metric, model) with the mean and its 95% confidence interval
(t-interval over seeds, or bootstrap over test items for a single seed), the metric's
direction and the rank range (``"2-4"`` when its interval overlaps others', see
:func:`~benchmark.reporting.stats.rank_ranges`; ``rank_best`` / ``rank_worst`` give the ends,
``deterministic`` marks a result whose seeds all agree, ``undefined`` an infinite dB value
shown as ``inf`` and not ranked). A model with records under several
configs has one row per config (``model@id``, see :mod:`benchmark.reporting.configs`); the
board's ``attrs["config_legend"]`` says what the ids mean.
"""
from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd
from tabulate import tabulate

from ..errors import InputError, UnknownNameError
from ..schema import ResultRecord
from .compute import COMPUTE_HEADERS, compute_rows, compute_table
from .configs import ConfigLegend, resolve_configs
from .records import as_records, records_frame
from .tables import aggregate, family_sort_key, format_ci, format_mean_std, rank_sort_key

__all__ = ["LEADERBOARD_COLUMNS", "LEADERBOARD_NOTE", "format_leaderboard", "leaderboard", "leaderboard_json"]

LEADERBOARD_COLUMNS: tuple[str, ...] = (
    "task",
    "dataset",
    "metric",
    "direction",
    "rank",
    "model",
    "mean",
    "ci_low",
    "ci_high",
    "ci_method",
    "n",
    "reference",
    # added after the first release (existing keys keep their names and meaning)
    "rank_best",
    "rank_worst",
    "deterministic",
    "clipped",
    "undefined",
    # the model's compute stats (benchmark/reporting/compute.py), null for reference rows
    "parameters",
    "train_seconds",
    "embed_items_per_s",
)


def leaderboard(records: Iterable[ResultRecord | Mapping[str, Any]], task: str | None = None, *,
                confidence: float = 0.95, latest: bool = False) -> pd.DataFrame:
    """Ranked results per (task, dataset, metric), best first, reference rows last.

    ``task`` restricts the board to one task family (:class:`UnknownNameError` when no
    record has it). ``direction`` is ``"higher is better"`` or ``"lower is better"``.
    ``latest`` keeps only the newest config of each model.
    """
    recs, legend = resolve_configs(as_records(records), latest=latest)
    agg = aggregate(records_frame(recs), confidence=confidence)
    if agg.empty:
        raise InputError("records", None, "no result records to rank")
    if task is not None:
        if task not in set(agg["task"]):
            have = ", ".join(sorted(set(agg["task"]), key=family_sort_key))
            raise UnknownNameError(f"task {task!r} has no results (tasks with results: {have})")
        agg = agg[agg["task"] == task]
    board = agg.assign(
        direction=agg["higher_is_better"].map({True: "higher is better", False: "lower is better"}),
        _fam=agg["task"].map(family_sort_key),
        _pos=[rank_sort_key(r) for _, r in agg.iterrows()],
    )
    board = board.sort_values(["_fam", "dataset", "metric", "_pos", "model"], kind="mergesort")
    compute = compute_table(recs)
    stats = compute.set_index(["dataset", "model"]) if not compute.empty else None
    for col in ("parameters", "train_seconds", "embed_items_per_s"):
        board[col] = [stats[col].get((d, m)) if stats is not None else None
                      for d, m in zip(board["dataset"], board["model"])]
    board = board[list(LEADERBOARD_COLUMNS)].reset_index(drop=True)
    board.attrs["config_legend"] = legend
    board.attrs["compute"] = compute[compute["dataset"].isin(set(board["dataset"]))] if not compute.empty else compute
    return board


LEADERBOARD_NOTE = (
    "Rank: a range such as 2-4 when 95% intervals overlap; a model ranks above another only when its whole "
    "interval is better. (det.): every seed gave the same value, its CI is a bootstrap over test items. Intervals "
    "are clipped to the metric's range. inf: a dB ratio with a zero denominator up to rounding, not ranked (n/d). "
    "[ref] rows are reference points and are not ranked."
)


def _mean_text(r: Any) -> str:
    mean = float(r["mean"])
    if not math.isfinite(mean):
        return format_mean_std(mean, 0.0, 1)
    return f"{mean:.4f}" + (" (det.)" if bool(r.get("deterministic", False)) else "")


def format_leaderboard(board: pd.DataFrame) -> str:
    """Plain-text rendering: one table per (task, dataset, metric)."""
    parts: list[str] = []
    for (task, dataset, metric), g in board.groupby(["task", "dataset", "metric"], sort=False):
        parts.append(f"== {task} | {dataset} | {metric} ({g['direction'].iloc[0]}) ==")
        rows = [
            [r["rank"], f"{r['model']} [ref]" if r["reference"] else r["model"], _mean_text(r),
             format_ci(r, method=False), r["ci_method"], str(r["n"])]
            for _, r in g.iterrows()
        ]
        parts.append(tabulate(rows, headers=["rank", "model", "mean", "95% CI", "CI method", "n"],
                              tablefmt="simple", disable_numparse=True))
        parts.append("")
    compute = board.attrs.get("compute")
    if compute is not None and not compute.empty:
        parts.append("== compute (trained models: params, fit wall time and peak memory, embedding throughput) ==")
        parts.append(tabulate(compute_rows(compute), headers=list(COMPUTE_HEADERS), tablefmt="simple",
                              disable_numparse=True))
        parts.append("")
    parts.append(LEADERBOARD_NOTE)
    legend: ConfigLegend | None = board.attrs.get("config_legend")
    if legend:
        parts += ["", "Configs (model@id: the settings that differ between a model's configs):"]
        parts += [f"  {line}" for line in legend.lines()]
    return "\n".join(parts) + "\n"


def leaderboard_json(board: pd.DataFrame) -> str:
    """JSON list of leaderboard rows (NaN interval bounds and an infinite mean become ``null``;
    ``undefined`` says the mean is infinite, ``rank_best`` / ``rank_worst`` are ``null`` when unranked)."""
    out = []
    for r in board.to_dict(orient="records"):
        row = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in r.items()}
        row["n"] = int(row["n"])
        for key in ("reference", "deterministic", "clipped", "undefined"):
            if key in row:
                row[key] = bool(row[key])
        for key in ("rank_best", "rank_worst", "parameters"):
            if row.get(key) is not None:
                row[key] = int(row[key])
        out.append(row)
    return json.dumps(out, indent=2, sort_keys=False, allow_nan=False) + "\n"
