"""Leaderboard: every metric of every (task, dataset), models ranked with tied ranks.

One row per (task, dataset, metric, model) with the mean and its 95% confidence interval
(t-interval over seeds, or bootstrap over test items for a single seed), the metric's
direction and the tied competition rank (``"2="``: its interval overlaps a neighbour's). A model with records under several
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
from .configs import ConfigLegend, resolve_configs
from .records import as_records, records_frame
from .tables import aggregate, family_sort_key, rank_position

__all__ = ["LEADERBOARD_COLUMNS", "format_leaderboard", "leaderboard", "leaderboard_json"]

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
        _pos=agg["rank"].map(rank_position),
        _signed=[-m if h else m for m, h in zip(agg["mean"], agg["higher_is_better"])],
    )
    board = board.sort_values(["_fam", "dataset", "metric", "_pos", "_signed", "model"], kind="mergesort")
    board = board[list(LEADERBOARD_COLUMNS)].reset_index(drop=True)
    board.attrs["config_legend"] = legend
    return board


def _ci_text(low: float, high: float) -> str:
    if math.isnan(low) or math.isnan(high):
        return "-"
    return f"[{low:.3f}, {high:.3f}]"


def format_leaderboard(board: pd.DataFrame) -> str:
    """Plain-text rendering: one table per (task, dataset, metric)."""
    parts: list[str] = []
    for (task, dataset, metric), g in board.groupby(["task", "dataset", "metric"], sort=False):
        parts.append(f"== {task} | {dataset} | {metric} ({g['direction'].iloc[0]}) ==")
        rows = [
            [r["rank"], f"{r['model']} [ref]" if r["reference"] else r["model"], f"{r['mean']:.4f}",
             _ci_text(r["ci_low"], r["ci_high"]), r["ci_method"], str(r["n"])]
            for _, r in g.iterrows()
        ]
        parts.append(tabulate(rows, headers=["rank", "model", "mean", "95% CI", "CI method", "n"],
                              tablefmt="simple", disable_numparse=True))
        parts.append("")
    parts.append("'=' marks a tie: the model's 95% interval overlaps that of its neighbour in the ranking. "
                 "[ref] rows are reference points and are not ranked.")
    legend: ConfigLegend | None = board.attrs.get("config_legend")
    if legend:
        parts += ["", "Configs (model@id: the settings that differ between a model's configs):"]
        parts += [f"  {line}" for line in legend.lines()]
    return "\n".join(parts) + "\n"


def leaderboard_json(board: pd.DataFrame) -> str:
    """JSON list of leaderboard rows (NaN interval bounds become ``null``)."""
    out = []
    for r in board.to_dict(orient="records"):
        row = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
        row["n"] = int(row["n"])
        row["reference"] = bool(row["reference"])
        out.append(row)
    return json.dumps(out, indent=2, sort_keys=False, allow_nan=False) + "\n"
