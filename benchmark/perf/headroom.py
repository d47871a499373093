"""Headroom of every task family on a dataset: can the benchmark rank the models it runs?

    python -m avcl_bench.benchmark.perf.headroom --out DIR [--run] [--quick] [--seeds 0,1,2]
        [--models random,infonce,triplet,dcca] [--tasks ...] [--dataset avsynth] [--option KEY=VALUE]

With ``--run`` the suite's own CLI (``run``) first computes (or reuses from the cache) the
records into ``DIR``; without it the records already under ``DIR`` are read. Either way,
``--models``, ``--tasks`` and ``--seeds`` also select which records are read (e.g. the four
default models out of a whole-zoo folder). Per
(task family, dataset) the family's main score (``task_meta.main_score``) is summarised
with the reporting code (:func:`benchmark.reporting.tables.aggregate`: t-interval over seeds,
or a bootstrap over test items for one seed) and the script prints:

* ``best``: the best learned (non-reference) model and its mean; ``random``: the ``random``
  reference's mean;
* ``ceiling``: for a metric declared in ``[0, 1]``, whether the best learned mean is below
  :data:`CEILING` (the family is not saturated);
* ``margin``: for a ``[0, 1]`` metric, whether the best learned model beats ``random`` by at
  least :data:`MARGIN` (absolute); for FD (lower is better, unbounded), whether the best
  learned FD is at most :data:`FD_RATIO` x random's; other metrics (dB, ranks) print the
  difference only (``n/a``);
* ``groups``: the number of tie groups among the learned models and ``random``, from
  :func:`benchmark.reporting.stats.rank_ranges` (two models are ordered only when their
  95 % intervals are disjoint): a tie group is the set of models beaten by the same number
  of others (the same best rank); ``random out``: whether ``random`` is outside the best
  group (its best rank is not 1).

Timings and numbers depend on the seeds and the run size, so this is a script, not a test.
The exit status is 0 when the table was printed (failed checks are printed, not raised).
"""
from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from avcl_bench.benchmark.cli import main as cli_main
from avcl_bench.benchmark.cliargs import parse_csv, parse_seeds
from avcl_bench.benchmark.reporting.records import load_records, records_frame
from avcl_bench.benchmark.reporting.stats import Summary, rank_ranges
from avcl_bench.benchmark.reporting.tables import aggregate, family_sort_key

#: a [0, 1] family is saturated when its best learned model reaches this
CEILING = 0.95
#: the best learned model must beat ``random`` by this much on a [0, 1] metric
MARGIN = 0.10
#: ... and reach at most this fraction of random's FD on FD
FD_RATIO = 0.8
REFERENCE_MODEL = "random"


@dataclass(frozen=True)
class FamilyRow:
    """The headroom checks of one (task, dataset) main score."""

    task: str
    dataset: str
    metric: str
    higher_is_better: bool
    best_model: str
    best: float
    random: float
    n_seeds: int
    ceiling: bool | None  # None: the metric has no [0, 1] range
    margin: bool | None  # None: no margin rule for this metric
    groups: int
    random_out: bool | None  # None: no random record

    @property
    def margin_text(self) -> str:
        if math.isnan(self.random):
            return "no random"
        if self.metric == "FD":
            return f"{self.best / self.random:.2f}x"
        diff = self.best - self.random if self.higher_is_better else self.random - self.best
        return f"{diff:+.3f}"


def _summary(row: pd.Series) -> Summary:
    return Summary(float(row["mean"]), float(row["std"]), int(row["n"]), float(row["ci_low"]),
                   float(row["ci_high"]), str(row["ci_method"]))


def tie_groups(rows: pd.DataFrame, higher_is_better: bool) -> tuple[int, list[int]]:
    """Number of tie groups and each row's best rank (``rank_ranges`` over all the rows, random included)."""
    ranges = rank_ranges([_summary(r) for _, r in rows.iterrows()], higher_is_better)
    best = [b for b, _ in ranges]
    return len(set(best)), best


def family_rows(agg: pd.DataFrame, records: list) -> list[FamilyRow]:
    """One :class:`FamilyRow` per (task, dataset) of ``agg``, on the task's main score."""
    main = {r.task: r.task_meta.main_score for r in records}
    out = []
    for (task, dataset), part in agg.groupby(["task", "dataset"], sort=False):
        metric = main[task]
        rows = part[(part["metric"] == metric) & ~part["undefined"]].reset_index(drop=True)
        learned = rows[~rows["reference"]]
        if learned.empty:
            continue
        hib = bool(rows["higher_is_better"].iloc[0])
        best_i = learned["mean"].idxmax() if hib else learned["mean"].idxmin()
        best = float(learned.loc[best_i, "mean"])
        ref = rows[rows["model"] == REFERENCE_MODEL]
        rnd = float(ref["mean"].iloc[0]) if len(ref) else math.nan
        unit = str(rows["unit"].iloc[0])
        bounded = unit == "fraction"
        ceiling = (best < CEILING if hib else None) if bounded else None
        margin: bool | None = None
        if not math.isnan(rnd):
            if bounded:
                margin = (best - rnd >= MARGIN) if hib else (rnd - best >= MARGIN)
            elif metric == "FD":
                margin = best <= FD_RATIO * rnd
        ranked = pd.concat([learned, ref]).reset_index(drop=True)
        groups, best_ranks = tie_groups(ranked, hib)
        random_out = bool(best_ranks[-1] > 1) if len(ref) else None
        out.append(FamilyRow(task, dataset, metric, hib, str(learned.loc[best_i, "model"]), best, rnd,
                             int(learned["n"].max()), ceiling, margin, groups, random_out))
    out.sort(key=lambda r: (family_sort_key(r.task), r.dataset))
    return out


def select_records(records: list, *, models: str | None = None, tasks: str | None = None,
                   seeds: str | None = None) -> list:
    """The records whose model, task and seed are in the comma-separated lists (``None``: all)."""
    want_m = None if models is None else set(parse_csv(models))
    want_t = None if tasks is None else set(parse_csv(tasks))
    want_s = None if seeds is None else set(parse_seeds(seeds))
    return [r for r in records if (want_m is None or r.model in want_m) and (want_t is None or r.task in want_t)
            and (want_s is None or r.seed in want_s)]


def _mark(flag: bool | None) -> str:
    return "n/a" if flag is None else ("ok" if flag else "FAIL")


def format_table(rows: list[FamilyRow]) -> str:
    head = (f"{'family':<19} {'dataset':<9} {'metric':<7} {'seeds':>5} {'best learned':<22} {'random':>8} "
            f"{'<0.95':>6} {'margin':>9} {'':>4} {'groups':>6} {'random out':>10}")
    lines = [head, "-" * len(head)]
    for r in rows:
        best = f"{r.best_model} {r.best:.3f}"
        lines.append(f"{r.task:<19} {r.dataset:<9} {r.metric:<7} {r.n_seeds:>5} {best:<22} {r.random:>8.3f} "
                     f"{_mark(r.ceiling):>6} {r.margin_text:>9} {_mark(r.margin):>4} {r.groups:>6} "
                     f"{_mark(r.random_out):>10}")
    lines.append(f"checks: best < {CEILING} on [0, 1] metrics; best - random >= {MARGIN} ([0, 1]) or "
                 f"FD <= {FD_RATIO} x random's; tie groups from rank_ranges over 95 % intervals "
                 "(learned models and random)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True, type=Path, help="results folder (read; written with --run)")
    p.add_argument("--run", action="store_true", help="run the suite's CLI into --out first")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--seeds", default=None)
    p.add_argument("--models", default=None)
    p.add_argument("--tasks", default=None)
    p.add_argument("--dataset", default=None)
    p.add_argument("--data-root", default=None)
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE")
    args = p.parse_args(argv)
    if args.run:
        cmd = ["run", "--out", str(args.out), "--no-progress"]
        for flag in ("seeds", "models", "tasks", "dataset", "data_root"):
            value = getattr(args, flag)
            if value is not None:
                cmd += [f"--{flag.replace('_', '-')}", str(value)]
        cmd += ["--quick"] if args.quick else []
        for opt in args.option:
            cmd += ["--option", opt]
        rc = cli_main(cmd)
        if rc:
            return rc
    records = select_records(load_records(args.out), models=args.models, tasks=args.tasks, seeds=args.seeds)
    if not records:
        print(f"headroom: {args.out}: no result records", file=sys.stderr)
        return 2
    print(format_table(family_rows(aggregate(records_frame(records)), records)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
