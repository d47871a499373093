"""Aggregated result tables: per-model summaries, table blocks per task family, console view.

The pipeline every output format shares is::

    records --records_frame--> tidy rows --aggregate--> one row per (model, task, dataset,
    metric) with mean / std / CI / tied rank --build_blocks--> one block per (task family,
    dataset) with our models and the surveyed Table 1 rows of the same family and metric.

Which metrics a family shows (its headline), their units and directions come from the
task metadata stored in the records (``task_meta``). Our values are reported on the
suite's scale (fractions in [0, 1], dB for separation, ranks). Surveyed rows keep the value
as printed in the survey and add ``value_normalized`` (the same number on our scale).

Numbers that are not what they seem are marked, by documented rules:

* a deterministic result (every seed the same value) is marked ``det.``; its interval is
  the bootstrap over test items (:func:`~benchmark.reporting.stats.summarize`);
* intervals are clipped to the metric's range (:func:`metric_bounds`: the range the task
  metadata declares, else ``[0, 1]`` for a ``fraction``);
* a dB value beyond :data:`DB_UNDEFINED_LIMIT` is an infinite ratio that rounding made
  finite (the SAR of the unprocessed mixture, whose artifact energy is zero): it is shown
  as ``inf`` (``undefined``), not ranked, not plotted (:func:`infinite_db_sign`);
* ranks are ranges that never order two models whose intervals overlap
  (:func:`~benchmark.reporting.stats.rank_ranges`).
"""
from __future__ import annotations

import math
import shutil
import textwrap
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from tabulate import tabulate

from ..errors import InputError, UnknownNameError
from ..schema import TASK_FAMILIES, ResultRecord, TaskMetadata
from ..surveyed import comparability, comparability_reason
from .configs import ConfigLegend, resolve_configs
from .records import as_records, metric_matches_key, records_frame, task_metadata
from .stats import Summary, format_rank, rank_ranges, summarize

__all__ = [
    "AGGREGATE_COLUMNS",
    "COMPARABILITY_DIRECT",
    "COMPARABILITY_REFERENCE",
    "DB_UNDEFINED_LIMIT",
    "FAMILY_ORDER",
    "LEGEND",
    "NOT_COMPARABLE_NOTE",
    "Block",
    "aggregate",
    "block_legend",
    "blocks_and_legend",
    "blocks_from_records",
    "build_blocks",
    "console_table",
    "family_sort_key",
    "format_ci",
    "format_mean_std",
    "format_value",
    "infinite_db_sign",
    "metric_bounds",
    "metric_header",
    "unit_label",
    "other_metric_rows",
    "our_table_rows",
    "page_legend",
    "rank_position",
    "rank_sort_key",
    "surveyed_for",
    "surveyed_table_rows",
]

#: Task families in the order tables show them; other task names follow alphabetically.
FAMILY_ORDER: tuple[str, ...] = TASK_FAMILIES

AGGREGATE_COLUMNS: tuple[str, ...] = (
    "model",
    "task",
    "dataset",
    "metric",
    "mean",
    "std",
    "n",
    "ci_low",
    "ci_high",
    "ci_method",
    "rank",
    "higher_is_better",
    "reference",
    "learning",
    "encoder",
    "objective",
    # added after the first release (existing columns keep their names and meaning)
    "rank_best",
    "rank_worst",
    "deterministic",
    "clipped",
    "undefined",
    "unit",
)

#: |value| in dB beyond which a dB metric is taken as +-inf: float64 resolves energy ratios to
#: about 1e-16 (160 dB), so a larger ratio only arises from a zero denominator plus rounding
DB_UNDEFINED_LIMIT = 200.0
NOT_RANKED = "n/d"

COMPARABILITY_DIRECT = "direct"
COMPARABILITY_REFERENCE = "reference (different dataset - not directly comparable)"
NOT_COMPARABLE_NOTE = (
    "Surveyed rows on a different dataset than ours are NOT directly comparable "
    "(different data, splits, encoders and protocols); they are shown for orientation only."
)
REFERENCE_RANK = "ref"

#: how a metadata unit is written in headers (``score``: unitless, no bracket)
_UNIT_LABELS = {"fraction": "0-1", "score": ""}


def family_sort_key(task: str) -> tuple[int, str]:
    """Sort key putting known families in :data:`FAMILY_ORDER`, others after, by name."""
    if task in FAMILY_ORDER:
        return (FAMILY_ORDER.index(task), "")
    return (len(FAMILY_ORDER), task)


def unit_label(unit: str) -> str:
    """How a metadata unit (``fraction``, ``dB``, ``rank``, ``count``, ``score``) is shown: ``0-1``, ``dB``, ..."""
    return _UNIT_LABELS.get(unit, unit)


def metric_header(metric: str, higher_is_better: bool | None, unit: str = "") -> str:
    """Column header such as ``"mAP ↑ [0-1]"`` (direction arrow and the unit's label)."""
    arrow = "" if higher_is_better is None else (" ↑" if higher_is_better else " ↓")
    label = unit_label(unit)
    return f"{metric}{arrow}" + (f" [{label}]" if label else "")


def format_mean_std(mean: float, std: float, n: int, *, pm: str = "±", deterministic: bool = False) -> str:
    """``"0.612 ± 0.013"`` (std only when there are at least two seeds).

    A deterministic result (every seed the same) reads ``"31.292 (det.)"``; an infinite
    mean (:data:`DB_UNDEFINED_LIMIT`) reads ``"inf"`` / ``"-inf"``, an undefined one ``"n/d"``.
    """
    if math.isnan(mean):
        return "n/d"
    if math.isinf(mean):
        return "inf" if mean > 0 else "-inf"
    if deterministic:
        return f"{mean:.3f} (det.)"
    if n >= 2:
        return f"{mean:.3f} {pm} {std:.3f}"
    return f"{mean:.3f}"


def format_value(cell: Mapping[str, Any], *, pm: str = "±") -> str:
    """:func:`format_mean_std` of one :func:`aggregate` row."""
    return format_mean_std(float(cell["mean"]), float(cell["std"]), int(cell["n"]), pm=pm,
                           deterministic=bool(cell.get("deterministic", False)))


_CI_SHORT = {"t-interval over seeds": "t", "bootstrap over test items": "boot"}


def format_ci(cell: Mapping[str, Any] | None, *, digits: int = 3, method: bool = True) -> str:
    """``"[0.512, 0.640] (t)"``, ``"(boot, clipped)"`` when cut to the metric's range, ``"-"`` without one."""
    if cell is None:
        return "-"
    if bool(cell.get("undefined", False)):
        return "n/d"
    lo, hi = float(cell["ci_low"]), float(cell["ci_high"])
    if math.isnan(lo) or math.isnan(hi):
        return "-"
    text = f"[{lo:.{digits}f}, {hi:.{digits}f}]"
    if not method:
        return text + (" (clipped)" if bool(cell.get("clipped", False)) else "")
    tags = [_CI_SHORT.get(str(cell["ci_method"]), str(cell["ci_method"]))]
    if bool(cell.get("clipped", False)):
        tags.append("clipped")
    return f"{text} ({', '.join(tags)})"


def metric_bounds(unit: str, lower: float | None = None, upper: float | None = None) -> tuple[float | None, float | None]:
    """The range intervals are clipped to: the declared ``lower`` / ``upper`` (``None`` / NaN:
    not declared), a ``fraction`` defaulting to ``[0, 1]``, a ``rank`` or ``count`` to ``>= 0``."""
    lo = None if lower is None or math.isnan(lower) else float(lower)
    hi = None if upper is None or math.isnan(upper) else float(upper)
    if unit == "fraction":
        lo = 0.0 if lo is None else lo
        hi = 1.0 if hi is None else hi
    elif unit in ("rank", "count") and lo is None:
        lo = 0.0
    return lo, hi


def infinite_db_sign(values: Iterable[float], unit: str) -> float:
    """``+1`` / ``-1`` when a dB metric's values include one beyond :data:`DB_UNDEFINED_LIMIT`
    (the mean is then +inf / -inf), NaN when they include both signs, ``0`` otherwise.

    Rule: BSS-eval ratios with a zero denominator are +inf (mir_eval), but a record stores
    finite floats, and rounding turns such a zero into a tiny number (the mixture's SAR
    comes out near 240 dB). No measured ratio reaches 200 dB (float64 resolves about 160 dB).
    """
    if unit != "dB":
        return 0.0
    signs = {1.0 if v > 0 else -1.0 for v in values if abs(v) > DB_UNDEFINED_LIMIT}
    if not signs:
        return 0.0
    return signs.pop() if len(signs) == 1 else math.nan


# ----------------------------------------------------------------------------- aggregation


def _check_consistent(frame: pd.DataFrame, by: list[str], column: str, what: str) -> None:
    counts = frame.groupby(by, sort=True)[column].nunique()
    bad = counts[counts > 1]
    if not bad.empty:
        key = bad.index[0]
        key = key if isinstance(key, tuple) else (key,)
        where = ", ".join(f"{b}={k}" for b, k in zip(by, key))
        raise InputError("records", column, f"{what} disagrees between records ({where})")


def aggregate(
    frame: pd.DataFrame, *, confidence: float = 0.95, n_boot: int = 1000, seed: int = 0
) -> pd.DataFrame:
    """Summarise a :func:`~benchmark.reporting.records.records_frame` per (model, task, dataset, metric).

    ``mean`` / ``std`` are over seeds; the interval is a t-interval over seeds (>= 2
    seeds) or a bootstrap over test items (one seed with per-item values), see
    :func:`~benchmark.reporting.stats.summarize`. ``rank`` is the tied competition rank
    within (task, dataset, metric) among non-reference models
    (:func:`~benchmark.reporting.stats.rank_with_ties`); reference rows get ``"ref"``.
    """
    missing = [c for c in ("model", "task", "dataset", "seed", "metric", "value", "higher_is_better") if c not in frame]
    if missing:
        raise InputError("records frame", missing[0], "missing column")
    if frame.empty:
        return pd.DataFrame(columns=list(AGGREGATE_COLUMNS))
    _check_consistent(frame, ["task", "metric"], "higher_is_better", "metric direction")
    for col in ("reference", "learning", "encoder", "objective"):
        _check_consistent(frame, ["model"], col, f"model_info ({col})")
    rows: list[dict[str, Any]] = []
    for (task, dataset, model, metric), g in frame.groupby(["task", "dataset", "model", "metric"], sort=True):
        g = g.sort_values("seed", kind="mergesort")
        first = g.iloc[0]
        unit = str(first.get("unit", "") or "")
        bounds = metric_bounds(unit, _optional_float(first.get("lower")), _optional_float(first.get("upper")))
        # per-item values of the first seed that has them: used for one seed, or when every
        # seed gives the same value (deterministic), see summarize
        items, statistic, all_items = None, "mean", []
        if "item_values" in g:
            with_items = [(v, st) for v, st in zip(g["item_values"], g.get("item_statistic", [None] * len(g)))
                          if v is not None]
            if with_items:
                items, statistic = with_items[0][0], with_items[0][1] or "mean"
                all_items = [x for v, _ in with_items for x in v]
        s = summarize(
            g["value"].tolist(), items, confidence=confidence, n_boot=n_boot, seed=seed,
            item_statistic=statistic, bounds=bounds, source=f"{model}/{task}/{dataset}/{metric}",
        )
        sign = infinite_db_sign([*g["value"].tolist(), *all_items], unit)
        undefined = sign != 0.0
        if undefined:
            s = Summary(sign * math.inf if not math.isnan(sign) else math.nan, math.nan, s.n,
                        math.nan, math.nan, "none")
        rows.append(
            {
                "model": model,
                "task": task,
                "dataset": dataset,
                "metric": metric,
                "mean": s.mean,
                "std": s.std,
                "n": s.n,
                "ci_low": s.ci_low,
                "ci_high": s.ci_high,
                "ci_method": s.ci_method,
                "rank": REFERENCE_RANK,
                "higher_is_better": bool(first["higher_is_better"]),
                "reference": bool(first.get("reference", False)),
                "learning": first.get("learning", ""),
                "encoder": first.get("encoder", ""),
                "objective": first.get("objective", ""),
                "rank_best": math.nan,
                "rank_worst": math.nan,
                "deterministic": s.deterministic,
                "clipped": s.clipped,
                "undefined": undefined,
                "unit": unit,
            }
        )
    agg = pd.DataFrame(rows, columns=list(AGGREGATE_COLUMNS))
    for _, idx in agg.groupby(["task", "dataset", "metric"], sort=True).groups.items():
        part = agg.loc[idx]
        agg.loc[part.index[~part["reference"] & part["undefined"]], "rank"] = NOT_RANKED
        ranked = part[~part["reference"] & ~part["undefined"]]
        if ranked.empty:
            continue
        summaries = [_summary_of(r) for _, r in ranked.iterrows()]
        ranges = rank_ranges(summaries, bool(ranked["higher_is_better"].iloc[0]))
        agg.loc[ranked.index, "rank"] = [format_rank(b, w) for b, w in ranges]
        agg.loc[ranked.index, "rank_best"] = [float(b) for b, _ in ranges]
        agg.loc[ranked.index, "rank_worst"] = [float(w) for _, w in ranges]
    agg["_fam"] = agg["task"].map(family_sort_key)
    agg = agg.sort_values(["_fam", "dataset", "metric", "model"], kind="mergesort").drop(columns="_fam")
    return agg.reset_index(drop=True)


def _optional_float(value: object) -> float | None:
    if value is None:
        return None
    f = float(value)  # type: ignore[arg-type]
    return None if math.isnan(f) else f


def _summary_of(row: Mapping[str, Any]) -> Summary:
    return Summary(
        float(row["mean"]), float(row["std"]), int(row["n"]),
        float(row["ci_low"]), float(row["ci_high"]), str(row["ci_method"]),
    )


def rank_position(rank: str) -> float:
    """Numeric position of a rank string: its best rank (``"2-4"`` -> 2, ``"2="`` -> 2);
    reference and unranked rows sort last."""
    text = str(rank).rstrip("=").split("-")[0]
    return float(text) if text.isdigit() else math.inf


def rank_sort_key(row: Mapping[str, Any]) -> tuple[float, float, float]:
    """Sort key of an :func:`aggregate` row: best rank, worst rank, then the mean (best first)."""
    best = rank_position(str(row["rank"]))
    worst = float(row.get("rank_worst", math.nan))
    worst = best if math.isnan(worst) else worst
    mean = float(row["mean"])
    signed = -mean if bool(row["higher_is_better"]) else mean
    return best, worst, (math.inf if math.isnan(signed) else signed)


# ----------------------------------------------------------------------------- blocks


def record_identity(rec: ResultRecord) -> dict[str, Any] | None:
    """The dataset verdict a record carries (``config.dataset.identity``), or ``None``."""
    data = rec.config.get("dataset") if isinstance(rec.config, dict) else None
    ident = data.get("identity") if isinstance(data, dict) else None
    return ident if isinstance(ident, dict) else None


def block_identities(records: Iterable[ResultRecord]) -> dict[tuple[str, str], dict[str, Any]]:
    """(task, dataset) -> the dataset verdict of all of its records together.

    Verified only when every record of the table is verified for the same ``dataset_id``; else the
    first record's reason that is not (a record without any verdict counts as not verified).
    """
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for rec in records:
        key = (rec.task, rec.dataset)
        ident = record_identity(rec) or {}
        seen = out.setdefault(key, ident)
        if seen is ident or seen.get("verified") is not True:
            continue
        if ident.get("verified") is not True:
            out[key] = ident
        elif ident.get("dataset_id") != seen.get("dataset_id"):
            out[key] = {**seen, "verified": False, "reason": "the records of this table are verified as different "
                        f"datasets ({seen.get('dataset_id')}, {ident.get('dataset_id')})"}
    return out


def comparability_label(reason: str) -> str:
    """The comparability cell of a surveyed row from :func:`~benchmark.surveyed.comparability_reason`."""
    if not reason:
        return COMPARABILITY_DIRECT
    if reason == "different dataset":
        return COMPARABILITY_REFERENCE
    return f"reference ({reason})"


def surveyed_for(surveyed: pd.DataFrame | None, family: str, metrics: Sequence[str], dataset: str,
                 identity: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """Surveyed rows of ``family`` whose ``metric_key`` matches one of ``metrics``.

    Adds ``comparability`` (:data:`COMPARABILITY_DIRECT` only when the row's ``dataset_id``
    is our ``dataset``'s canonical id and ``identity``, the records' dataset verdict, verifies the
    data as that dataset and split; :data:`COMPARABILITY_REFERENCE` for another dataset;
    ``"reference (not verified as X: why)"`` for our dataset's name on unverified data) and
    ``our_metrics`` (which of our metric columns it corresponds to). Direct rows first,
    otherwise Table 1 order.
    """
    cols = ["paper", "dataset", "dataset_id", "metric", "metric_key", "value_text", "unit",
            "value_normalized", "comparability", "our_metrics", "notes"]
    if surveyed is None or surveyed.empty:
        return pd.DataFrame(columns=cols)
    part = surveyed[surveyed["task"] == family]
    keep, ours = [], []
    for i, key in zip(part.index, part["metric_key"]):
        matched = [m for m in metrics if metric_matches_key(m, str(key))]
        if matched:
            keep.append(i)
            ours.append(", ".join(matched))
    out = part.loc[keep].copy()
    out["our_metrics"] = ours
    direct = comparability(out, dataset, identity) == "direct"
    out["comparability"] = [comparability_label(r) for r in comparability_reason(out, dataset, identity)]
    out["_order"] = (~direct).astype(int)
    out = out.sort_values("_order", kind="mergesort")
    return out[cols].reset_index(drop=True)


@dataclass
class Block:
    """Everything one table shows: our models on one (family, dataset) and the surveyed rows."""

    family: str
    dataset: str
    metrics: list[str]
    directions: dict[str, bool]
    models: list[str]
    rows: pd.DataFrame
    surveyed: pd.DataFrame = field(default_factory=pd.DataFrame)
    all_rows: pd.DataFrame = field(default_factory=pd.DataFrame)
    #: metric -> unit from the task metadata (``fraction``, ``dB``, ...; absent: unknown)
    units: dict[str, str] = field(default_factory=dict)

    def unit(self, metric: str) -> str:
        """The metric's unit label for headers (``"0-1"``, ``"dB"``, ``""``)."""
        return unit_label(self.units.get(metric, ""))

    @property
    def other_metrics(self) -> list[str]:
        """Metrics recorded for this (family, dataset) but not among the shown columns."""
        if self.all_rows.empty:
            return []
        return sorted(set(self.all_rows["metric"]) - set(self.metrics))

    @property
    def primary_metric(self) -> str:
        """The metric the block's rank column refers to (the first shown)."""
        return self.metrics[0]

    def cell(self, model: str, metric: str) -> pd.Series | None:
        """The aggregate row of ``model`` for ``metric`` (``None`` when absent)."""
        hit = self.rows[(self.rows["model"] == model) & (self.rows["metric"] == metric)]
        return None if hit.empty else hit.iloc[0]

    def model_info(self, model: str) -> pd.Series:
        """Descriptor columns (encoder, objective, learning, reference) of ``model``."""
        return self.rows[self.rows["model"] == model].iloc[0]

    def best(self, metric: str) -> set[str]:
        """Non-reference models with the best mean of ``metric`` (several when equal)."""
        part = self.rows[(self.rows["metric"] == metric) & (~self.rows["reference"])]
        if "undefined" in part:
            part = part[~part["undefined"].astype(bool)]
        if part.empty:
            return set()
        target = part["mean"].max() if self.directions[metric] else part["mean"].min()
        return set(part.loc[part["mean"] == target, "model"])


def _choose_metrics(family: str, present: Sequence[str], metrics_per_task: Mapping[str, Sequence[str]] | None,
                    meta: TaskMetadata | None) -> list[str]:
    if metrics_per_task and family in metrics_per_task:
        wanted = list(metrics_per_task[family])
        unknown = [m for m in wanted if m not in present]
        if unknown:
            raise UnknownNameError(
                f"metric {unknown[0]!r} not found for task {family!r} (available: {', '.join(sorted(present))})"
            )
        return wanted
    if meta is not None:
        chosen = [m for m in meta.headline if m in present]
        if chosen:
            return chosen
    return sorted(present)


def build_blocks(
    agg: pd.DataFrame,
    surveyed: pd.DataFrame | None = None,
    *,
    tasks: Sequence[str] | None = None,
    metrics_per_task: Mapping[str, Sequence[str]] | None = None,
    metadata: Mapping[str, TaskMetadata] | None = None,
    sort_by_rank: bool = True,
    identities: Mapping[tuple[str, str], Mapping[str, Any]] | None = None,
) -> list[Block]:
    """Split an :func:`aggregate` table into one :class:`Block` per (family, dataset).

    ``metadata`` (task name -> :class:`~benchmark.schema.TaskMetadata`, from the records)
    gives the headline metrics shown and their units; without it every metric is shown.
    Models are ordered by encoder, then objective, then name (so models differing only
    by objective sit next to each other) with ``sort_by_rank=False``, else (default) by the
    rank of the main metric (:func:`rank_sort_key`); reference models come last.
    ``identities`` ((task, dataset) -> dataset verdict, :func:`block_identities`) decides which
    surveyed rows are direct; without one none is.
    """
    metadata = metadata or {}
    identities = identities or {}
    present_tasks = sorted(set(agg["task"]), key=family_sort_key)
    if tasks is not None:
        unknown = [t for t in tasks if t not in present_tasks]
        if unknown:
            have = ", ".join(present_tasks) or "none"
            raise UnknownNameError(f"task {unknown[0]!r} has no results (tasks with results: {have})")
        present_tasks = [t for t in present_tasks if t in set(tasks)]
    blocks: list[Block] = []
    for family in present_tasks:
        fam = agg[agg["task"] == family]
        for dataset in sorted(set(fam["dataset"])):
            part = fam[fam["dataset"] == dataset]
            meta = metadata.get(family)
            metrics = _choose_metrics(family, sorted(set(part["metric"])), metrics_per_task, meta)
            rows = part[part["metric"].isin(metrics)].reset_index(drop=True)
            directions = {m: bool(rows.loc[rows["metric"] == m, "higher_is_better"].iloc[0]) for m in metrics}
            desc = rows.drop_duplicates("model")[["model", "encoder", "objective", "reference"]]
            if sort_by_rank:
                main = rows[rows["metric"] == metrics[0]]
                keys = {str(r["model"]): rank_sort_key(r) for _, r in main.iterrows()}
                missing = (math.inf, math.inf, math.inf)
                desc = desc.assign(_pos=[keys.get(m, missing) for m in desc["model"]])
                desc = desc.sort_values(["reference", "_pos", "model"], kind="mergesort")
            else:
                desc = desc.sort_values(["reference", "encoder", "objective", "model"], kind="mergesort")
            blocks.append(
                Block(
                    family=family,
                    dataset=dataset,
                    metrics=metrics,
                    directions=directions,
                    models=desc["model"].tolist(),
                    rows=rows,
                    surveyed=surveyed_for(surveyed, family, metrics, dataset, identities.get((family, dataset))),
                    all_rows=part.reset_index(drop=True),
                    units={k: m.unit for k, m in meta.metrics.items()} if meta is not None else {},
                )
            )
    return blocks


def blocks_and_legend(
    records: Iterable[ResultRecord | Mapping[str, Any]],
    surveyed: pd.DataFrame | None = None,
    *,
    tasks: Sequence[str] | None = None,
    metrics_per_task: Mapping[str, Sequence[str]] | None = None,
    latest: bool = False,
    sort_by_rank: bool = True,
) -> tuple[list[Block], ConfigLegend]:
    """Records -> config labels (:func:`~benchmark.reporting.configs.resolve_configs`) ->
    :func:`records_frame` -> :func:`aggregate` -> :func:`build_blocks`; also the config legend."""
    recs, legend = resolve_configs(as_records(records), latest=latest)
    agg = aggregate(records_frame(recs))
    if agg.empty:
        raise InputError("records", None, "no result records to report")
    blocks = build_blocks(agg, surveyed, tasks=tasks, metrics_per_task=metrics_per_task,
                          metadata=task_metadata(recs), sort_by_rank=sort_by_rank, identities=block_identities(recs))
    return blocks, legend


def blocks_from_records(
    records: Iterable[ResultRecord | Mapping[str, Any]],
    surveyed: pd.DataFrame | None = None,
    *,
    tasks: Sequence[str] | None = None,
    metrics_per_task: Mapping[str, Sequence[str]] | None = None,
    latest: bool = False,
) -> list[Block]:
    """The blocks of :func:`blocks_and_legend`."""
    return blocks_and_legend(records, surveyed, tasks=tasks, metrics_per_task=metrics_per_task, latest=latest)[0]


#: the reading guide of every table, printed once per page / run (:func:`page_legend`)
LEGEND = (
    "Our models: mean ± std over n seeds; ↑ higher is better, ↓ lower is better; [0-1] columns are fractions "
    "(the survey's percent values are converted in 'our scale'), [dB] columns are decibels. "
    "95% CI: Student-t over seeds (t), or a bootstrap over test items (boot) for one seed or a deterministic "
    "result; intervals are clipped to the metric's range ([0, 1] for fractions; 'clipped' marks a cut one). "
    "det.: every seed gave the same value (its CI, if any, is over test items). "
    "Rank (by each table's first metric; rows sorted by it): a range such as 2-4 when 95% intervals overlap; "
    "a model ranks above another only when its whole interval is better. "
    "[ref] rows are reference points (oracle bound, unprocessed mixture, chance), not ranked. "
    f"inf: a dB ratio beyond ±{DB_UNDEFINED_LIMIT:.0f} dB, i.e. a zero denominator up to rounding (the SAR of "
    "the unprocessed mixture); not ranked, not plotted."
)


def block_legend(block: Block) -> str:
    """The short per-table line: which metric the rank column refers to (the rest is :func:`page_legend`)."""
    return f"Rank is by {block.primary_metric}."


def page_legend(width: int | None = None) -> str:
    """The reading guide of a page of tables (:data:`LEGEND`); wrapped to ``width`` columns when given."""
    if width is None:
        return LEGEND
    return textwrap.fill(LEGEND, width=max(40, int(width)), break_on_hyphens=False)


def our_table_rows(block: Block, *, pm: str = "±", with_ci: bool = False) -> tuple[list[str], list[list[str]]]:
    """Header and string rows of our models for one block (shared by console and markdown).

    ``with_ci`` appends a last column with the 95% interval of the rank metric and its method
    (``t``: Student-t over seeds, ``boot``: bootstrap over test items).
    """
    header = [f"rank ({block.primary_metric})", "model", "encoder", "objective", "learning", "n"]
    header += [metric_header(m, block.directions[m], block.units.get(m, "")) for m in block.metrics]
    if with_ci:
        header.append(f"95% CI {block.primary_metric}")
    body: list[list[str]] = []
    for model in block.models:
        info = block.model_info(model)
        primary = block.cell(model, block.primary_metric)
        rank = str(primary["rank"]) if primary is not None else "-"
        name = f"{model} [ref]" if bool(info["reference"]) else model
        ns = {int(c["n"]) for m in block.metrics if (c := block.cell(model, m)) is not None}
        row = [rank, name, str(info["encoder"]), str(info["objective"]), str(info["learning"]),
               "/".join(str(n) for n in sorted(ns))]
        for m in block.metrics:
            c = block.cell(model, m)
            row.append("-" if c is None else format_value(c, pm=pm))
        if with_ci:
            row.append(format_ci(primary))
        body.append(row)
    return header, body


def other_metric_rows(block: Block) -> tuple[list[str], list[list[str]]]:
    """Long-form rows (model, metric, mean ± std, 95% CI, rank) of the block's other metrics."""
    header = ["model", "metric", "direction", "mean ± std", "95% CI", "rank", "n"]
    body = []
    order = {m: i for i, m in enumerate(block.models)}
    part = block.all_rows[block.all_rows["metric"].isin(block.other_metrics)]
    part = part.assign(_o=part["model"].map(order)).sort_values(["metric", "_o"], kind="mergesort")
    for _, r in part.iterrows():
        body.append([
            f"{r['model']} [ref]" if bool(r["reference"]) else str(r["model"]),
            str(r["metric"]) + (f" [{block.unit(str(r['metric']))}]" if block.unit(str(r["metric"])) else ""),
            "higher is better" if bool(r["higher_is_better"]) else "lower is better",
            format_value(r),
            format_ci(r, method=False),
            str(r["rank"]),
            str(int(r["n"])),
        ])
    return header, body


def surveyed_table_rows(block: Block) -> tuple[list[str], list[list[str]]]:
    """Header and string rows of the surveyed Table 1 rows of one block."""
    header = ["paper", "dataset", "metric (as printed)", "value (as printed)", "unit", "our scale", "comparability"]
    body = []
    for _, r in block.surveyed.iterrows():
        v = r["value_normalized"]
        body.append([
            str(r["paper"]), str(r["dataset"]), str(r["metric"]), str(r["value_text"]), str(r["unit"]),
            "-" if pd.isna(v) else f"{float(v):.4g}", str(r["comparability"]),
        ])
    return header, body


def console_table(
    records: Iterable[ResultRecord | Mapping[str, Any]],
    surveyed: pd.DataFrame | None = None,
    *,
    tasks: Sequence[str] | None = None,
    metrics_per_task: Mapping[str, Sequence[str]] | None = None,
    latest: bool = False,
    legend: bool = True,
    width: int | None = None,
) -> str:
    """Plain-text comparison table: one block per task family and dataset.

    The reading guide (:func:`page_legend`) comes once, at the top, wrapped to ``width``
    (default: the terminal's width); ``legend=False`` leaves it out (a caller printing
    several tables in one run prints it once). Each block lists our models sorted by rank
    (rank, encoder, objective, learning regime, seeds and the family's headline metrics as
    mean ± std, the rank metric's 95% CI), then the surveyed Table 1 rows of the same family
    and metric with their comparability, and a line saying that rows on other datasets are
    not directly comparable.
    """
    blocks, configs = blocks_and_legend(records, surveyed, tasks=tasks, metrics_per_task=metrics_per_task,
                                        latest=latest, sort_by_rank=True)
    cols = width if width is not None else shutil.get_terminal_size((100, 24)).columns
    parts: list[str] = [page_legend(cols), ""] if legend else []
    if configs:
        parts += [configs.text(), ""]
    for block in blocks:
        title = f"== {block.family} | dataset: {block.dataset} =="
        header, body = our_table_rows(block, with_ci=True)
        parts.append(title)
        parts.append(block_legend(block))
        parts.append(tabulate(body, headers=header, tablefmt="simple", disable_numparse=True))
        if surveyed is not None:
            if block.surveyed.empty:
                parts.append(f"Surveyed Table 1: no {block.family} rows for metrics {', '.join(block.metrics)}.")
            else:
                sh, sb = surveyed_table_rows(block)
                parts.append(f"Surveyed Table 1 ({block.family}; {', '.join(block.metrics)}):")
                parts.append(tabulate(sb, headers=sh, tablefmt="simple", disable_numparse=True))
                parts.append(textwrap.fill(NOT_COMPARABLE_NOTE, width=max(40, cols)))
        parts.append("")
    return "\n".join(parts).rstrip("\n") + "\n"
