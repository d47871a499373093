"""Did a change move the numbers beyond the seeds' spread? Two results folders, seed by seed.

    python -m avcl_bench.benchmark.perf.seed_compare --before DIR --after DIR [--models ...]
        [--tasks ...] [--seeds 0,1,2]

A change to how the suite computes (a kernel layout, a fused loss, a cached intermediate) can
be exact in mathematics and still move every trained number, since training amplifies a
rounding difference like a change of seed. Comparing one seed before and after therefore
says little; this script compares the **distributions over seeds**. Per (task, dataset,
model), on the family's main score (``task_meta.main_score``), it prints the seeds found
before and after, mean and standard deviation of each, the difference of the means, that
difference in units of the before-spread (``diff / std_before``) and Welch's two-sided
t-test p-value (:func:`scipy.stats.ttest_ind` with ``equal_var=False``; ``nan`` with fewer
than two seeds on a side or no spread at all). ``moved`` marks a p-value under
:data:`ALPHA`: a shift the seeds' spread does not explain (a biased change, such as a
training schedule that stops too early, moves every model one way).

A deterministic model (same number on every seed, e.g. ``random``) that changes at all is
marked too. The exit status is 0 when the table was printed, 2 when a folder holds no
records; nothing is raised for a moved row (it is a script, not a test).
"""
from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass

import numpy as np
from scipy import stats

from avcl_bench.benchmark.reporting.records import load_records, records_frame
from avcl_bench.benchmark.reporting.tables import family_sort_key

from .headroom import select_records

#: a Welch p-value under this marks a row as moved
ALPHA = 0.05


@dataclass(frozen=True)
class CompareRow:
    """The main score of one (task, dataset, model) before and after a change."""

    task: str
    dataset: str
    model: str
    metric: str
    before: tuple[float, ...]
    after: tuple[float, ...]

    @property
    def diff(self) -> float:
        return float(np.mean(self.after) - np.mean(self.before))

    @property
    def std_before(self) -> float:
        return float(np.std(self.before, ddof=1)) if len(self.before) > 1 else math.nan

    @property
    def std_after(self) -> float:
        return float(np.std(self.after, ddof=1)) if len(self.after) > 1 else math.nan

    @property
    def spread_ratio(self) -> float:
        """:attr:`diff` in units of :attr:`std_before` (``nan`` without a before-spread)."""
        sd = self.std_before
        return self.diff / sd if sd > 0 else math.nan  # nan > 0 is False

    @property
    def p_value(self) -> float:
        """Welch's two-sided t-test; ``nan`` without two seeds a side or without any spread."""
        if len(self.before) < 2 or len(self.after) < 2 or (np.ptp(self.before) == 0 and np.ptp(self.after) == 0):
            return math.nan
        return float(stats.ttest_ind(self.after, self.before, equal_var=False).pvalue)

    @property
    def moved(self) -> bool:
        """Beyond the seeds' spread: Welch p < :data:`ALPHA`, or a deterministic score that changed."""
        if math.isnan(self.p_value):
            deterministic = np.ptp(self.before) == 0 and np.ptp(self.after) == 0
            return bool(deterministic and not math.isclose(self.before[0], self.after[0], rel_tol=1e-9, abs_tol=1e-12))
        return self.p_value < ALPHA


def _main_scores(records: list) -> dict[tuple[str, str, str], tuple[str, dict[int, float]]]:
    """(task, dataset, model) -> (main score name, {seed: value})."""
    main = {r.task: r.task_meta.main_score for r in records}
    frame = records_frame(records)
    out: dict[tuple[str, str, str], tuple[str, dict[int, float]]] = {}
    for (task, dataset, model), part in frame.groupby(["task", "dataset", "model"], sort=False):
        rows = part[part["metric"] == main[task]]
        if len(rows):
            out[(task, dataset, model)] = (main[task], {int(s): float(v) for s, v in zip(rows["seed"], rows["value"])})
    return out


def compare(before: list, after: list) -> list[CompareRow]:
    """One :class:`CompareRow` per (task, dataset, model) present in both record lists."""
    a, b = _main_scores(before), _main_scores(after)
    rows = []
    for key in a.keys() & b.keys():
        (metric, seeds_a), (_, seeds_b) = a[key], b[key]
        rows.append(CompareRow(*key, metric, tuple(seeds_a[s] for s in sorted(seeds_a)),
                               tuple(seeds_b[s] for s in sorted(seeds_b))))
    rows.sort(key=lambda r: (family_sort_key(r.task), r.dataset, r.model))
    return rows


def _fmt(x: float, digits: int = 3) -> str:
    return "nan" if math.isnan(x) else f"{x:.{digits}f}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--before", required=True, help="results folder of the earlier code")
    p.add_argument("--after", required=True, help="results folder of the changed code")
    p.add_argument("--models", default=None)
    p.add_argument("--tasks", default=None)
    p.add_argument("--seeds", default=None)
    args = p.parse_args(argv)
    picked = {}
    for side in ("before", "after"):
        recs = select_records(load_records(getattr(args, side)), models=args.models, tasks=args.tasks, seeds=args.seeds)
        if not recs:
            print(f"seed_compare: {getattr(args, side)}: no result records (after --models/--tasks/--seeds)",
                  file=sys.stderr)
            return 2
        picked[side] = recs
    rows = compare(picked["before"], picked["after"])
    print(f"{'task':<19} {'dataset':<9} {'model':<11} {'metric':<8} {'n':>5} {'before':>16} {'after':>16} "
          f"{'diff':>8} {'diff/std':>8} {'p':>6}  moved")
    for r in rows:
        print(f"{r.task:<19} {r.dataset:<9} {r.model:<11} {r.metric:<8} {len(r.before):>2}/{len(r.after):<2} "
              f"{_fmt(float(np.mean(r.before))):>8}±{_fmt(r.std_before):<7} {_fmt(float(np.mean(r.after))):>8}±"
              f"{_fmt(r.std_after):<7} {r.diff:+8.3f} {_fmt(r.spread_ratio, 2):>8} {_fmt(r.p_value, 3):>6}  "
              f"{'MOVED' if r.moved else 'no'}")
    moved = sum(r.moved for r in rows)
    print(f"{moved} of {len(rows)} rows moved beyond the seeds' spread (Welch p < {ALPHA})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
