"""Summary statistics for reported results: means, confidence intervals and tied ranks.

Two sources of uncertainty are supported, chosen by what a result offers:

* several seeds -> a Student-t interval over the per-seed values (the seeds are treated as
  independent draws of the whole training + evaluation pipeline);
* one seed with per-test-item values -> a percentile bootstrap over test items (only the
  test-set sampling is captured, not the training randomness);
* otherwise no interval is given (``ci_method == "none"``, bounds are NaN).

Ranks mark ties where confidence intervals overlap, so that a leaderboard does not
pretend that a difference inside the noise is a win (see :func:`rank_with_ties`).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as _scipy_stats

from ..errors import InputError

__all__ = [
    "CI_BOOTSTRAP",
    "CI_NONE",
    "CI_T",
    "Summary",
    "intervals_overlap",
    "rank_with_ties",
    "summarize",
]

CI_T = "t-interval over seeds"
CI_BOOTSTRAP = "bootstrap over test items"
CI_NONE = "none"

# Bootstrap resamples are drawn in chunks of at most this many indices, so that a large
# test set (many items x many resamples) never allocates one huge index matrix.
_BOOT_CHUNK_ELEMENTS = 2_000_000

_STATISTICS: dict[str, Callable[..., np.ndarray]] = {"mean": np.mean, "median": np.median}


@dataclass(frozen=True)
class Summary:
    """Location, spread and confidence interval of one metric of one model.

    ``std`` is the sample standard deviation over seeds (``ddof=1``; 0 for one seed).
    ``ci_low`` / ``ci_high`` are NaN when ``ci_method == "none"``.
    """

    mean: float
    std: float
    n: int
    ci_low: float
    ci_high: float
    ci_method: str

    @property
    def has_interval(self) -> bool:
        """Whether a confidence interval was computed."""
        return self.ci_method != CI_NONE


def _finite_vector(values: object, source: str, field: str, *, min_len: int) -> np.ndarray:
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(source, field, "expected a list of numbers") from None
    if arr.ndim != 1:
        raise InputError(source, field, f"expected a flat list of numbers, got shape {arr.shape}")
    if arr.size < min_len:
        raise InputError(source, field, f"need at least {min_len} value(s), got {arr.size}")
    if not np.all(np.isfinite(arr)):
        raise InputError(source, field, "contains NaN or infinite values")
    return arr


def summarize(
    seed_values: Sequence[float],
    item_values: Sequence[float] | None = None,
    *,
    confidence: float = 0.95,
    n_boot: int = 1000,
    seed: int = 0,
    item_statistic: str = "mean",
    source: str = "input",
) -> Summary:
    """Summarise one metric of one model over seeds (and, for one seed, over test items).

    Parameters
    ----------
    seed_values:
        The metric value of each seed (at least one, all finite).
    item_values:
        Per-test-item values of the metric for a single-seed result; used only when there
        is exactly one seed. The bootstrap resamples items with replacement and applies
        ``item_statistic`` (``"mean"`` or ``"median"``), so the items must be the
        per-query contributions whose mean (or median) is the metric.
    confidence:
        Coverage of the interval, in (0, 1).
    n_boot:
        Number of bootstrap resamples.
    seed:
        Seed of the bootstrap generator; the same inputs always give the same interval.
    """
    if not (0.0 < confidence < 1.0):
        raise InputError(source, "confidence", f"must be in (0, 1), got {confidence!r}")
    if int(n_boot) != n_boot or n_boot < 1:
        raise InputError(source, "n_boot", f"must be a positive integer, got {n_boot!r}")
    if item_statistic not in _STATISTICS:
        raise InputError(source, "item_statistic", f"must be 'mean' or 'median', got {item_statistic!r}")
    values = _finite_vector(seed_values, source, "seed values", min_len=1)
    n = int(values.size)
    mean = float(values.mean())
    if n >= 2:
        # identical values give exactly 0 (np.std can leave rounding noise such as 1e-17)
        std = 0.0 if np.ptp(values) == 0 else float(values.std(ddof=1))
        half = float(_scipy_stats.t.ppf(0.5 + confidence / 2.0, df=n - 1)) * std / math.sqrt(n)
        return Summary(mean, std, n, mean - half, mean + half, CI_T)
    if item_values is not None:
        items = _finite_vector(item_values, source, "item values", min_len=1)
        if items.size >= 2:
            low, high = _bootstrap_interval(items, _STATISTICS[item_statistic], confidence, int(n_boot), seed)
            return Summary(mean, 0.0, 1, low, high, CI_BOOTSTRAP)
    return Summary(mean, 0.0, 1, math.nan, math.nan, CI_NONE)


def _bootstrap_interval(
    items: np.ndarray, statistic: Callable[..., np.ndarray], confidence: float, n_boot: int, seed: int
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``statistic`` over resampled items."""
    rng = np.random.default_rng(seed)
    m = items.size
    per_chunk = max(1, _BOOT_CHUNK_ELEMENTS // m)
    stats_out = np.empty(n_boot, dtype=np.float64)
    done = 0
    while done < n_boot:
        k = min(per_chunk, n_boot - done)
        idx = rng.integers(0, m, size=(k, m))
        stats_out[done : done + k] = statistic(items[idx], axis=1)
        done += k
    alpha = 1.0 - confidence
    low, high = np.quantile(stats_out, [alpha / 2.0, 1.0 - alpha / 2.0])
    return float(low), float(high)


def _bounds(s: Summary) -> tuple[float, float]:
    """The interval of ``s``; a result without an interval is the point ``[mean, mean]``."""
    if s.has_interval:
        return s.ci_low, s.ci_high
    return s.mean, s.mean


def intervals_overlap(a: Summary, b: Summary) -> bool:
    """Whether the confidence intervals of ``a`` and ``b`` share at least one point.

    A summary without an interval counts as the single point ``mean``, so two results
    without intervals overlap only when their means are equal.
    """
    a_low, a_high = _bounds(a)
    b_low, b_high = _bounds(b)
    return a_low <= b_high and b_low <= a_high


def rank_with_ties(summaries: Sequence[Summary], higher_is_better: bool) -> list[str]:
    """Competition ranks (``"1"``, ``"2="``, ...) with ties where intervals overlap.

    Rule (documented so that tables can be read exactly):

    1. Order the summaries by mean, best first (``higher_is_better`` decides the
       direction); equal means keep their input order.
    2. Walk down that order; a summary joins the current tie group when its interval
       overlaps the interval of the group's FIRST (best) member, else it starts a new group.
       Groups do not chain: with A overlapping B, B overlapping C but not A, C starts a new
       group (a chained rule ties a whole zoo whose neighbours overlap pairwise).
    3. Every member of a group gets the 1-based position of the group's first member
       (standard competition ranking: ``1=, 1=, 3``); members of groups with more than one
       member get a trailing ``"="``.

    Returns the rank strings aligned with the input order.
    """
    if not summaries:
        return []
    sign = -1.0 if higher_is_better else 1.0
    order = sorted(range(len(summaries)), key=lambda i: (sign * summaries[i].mean, i))
    groups: list[list[int]] = [[order[0]]]
    for cur in order[1:]:
        if intervals_overlap(summaries[groups[-1][0]], summaries[cur]):
            groups[-1].append(cur)
        else:
            groups.append([cur])
    ranks = [""] * len(summaries)
    position = 1
    for group in groups:
        label = f"{position}=" if len(group) > 1 else str(position)
        for i in group:
            ranks[i] = label
        position += len(group)
    return ranks
