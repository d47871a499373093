"""Summary statistics for reported results: means, confidence intervals and tied ranks.

Two sources of uncertainty are supported, chosen by what a result offers:

* several seeds -> a Student-t interval over the per-seed values (the seeds are treated as
  independent draws of the whole training + evaluation pipeline);
* one seed with per-test-item values -> a percentile bootstrap over test items (only the
  test-set sampling is captured, not the training randomness);
* otherwise no interval is given (``ci_method == "none"``, bounds are NaN).

A result whose seeds all give the same value is *deterministic* (``Summary.deterministic``):
a t-interval over its seeds would have zero width and claim a certainty the test set does
not give, so its interval is the bootstrap over test items when per-item values exist, and
none otherwise. When the metric declares a range (``bounds``, e.g. ``[0, 1]`` for a
fraction), the interval is clipped to it (``Summary.clipped`` says when that changed it).

Ranks are ranges (``"1"``, ``"2-4"``) that never order two models whose intervals overlap
(see :func:`rank_ranges`), so a leaderboard does not pretend that a difference inside the
noise is a win.
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
    "clip_interval",
    "format_rank",
    "intervals_overlap",
    "rank_ranges",
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
    ``ci_low`` / ``ci_high`` are NaN when ``ci_method == "none"``. ``deterministic``: two or
    more seeds, all with the same value (the interval then comes from the test items, if
    any). ``clipped``: the interval was cut to the metric's declared range.
    """

    mean: float
    std: float
    n: int
    ci_low: float
    ci_high: float
    ci_method: str
    deterministic: bool = False
    clipped: bool = False

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
    bounds: tuple[float | None, float | None] | None = None,
    source: str = "input",
) -> Summary:
    """Summarise one metric of one model over seeds (and, for one seed, over test items).

    Parameters
    ----------
    seed_values:
        The metric value of each seed (at least one, all finite).
    item_values:
        Per-test-item values of the metric (of one seed); used when there is exactly one
        seed, or when every seed gives the same value (deterministic). The bootstrap resamples items with replacement and applies
        ``item_statistic`` (``"mean"`` or ``"median"``), so the items must be the
        per-query contributions whose mean (or median) is the metric.
    confidence:
        Coverage of the interval, in (0, 1).
    n_boot:
        Number of bootstrap resamples.
    seed:
        Seed of the bootstrap generator; the same inputs always give the same interval.
    bounds:
        ``(lower, upper)`` range of the metric (either may be ``None``); the interval is
        clipped to it (see :func:`clip_interval`).
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
    # identical values give exactly 0 (np.std can leave rounding noise such as 1e-17)
    deterministic = n >= 2 and bool(np.ptp(values) == 0)
    if n >= 2 and not deterministic:
        std = float(values.std(ddof=1))
        half = float(_scipy_stats.t.ppf(0.5 + confidence / 2.0, df=n - 1)) * std / math.sqrt(n)
        return _clipped(Summary(mean, std, n, mean - half, mean + half, CI_T), bounds)
    if item_values is not None:
        items = _finite_vector(item_values, source, "item values", min_len=1)
        if items.size >= 2:
            low, high = _bootstrap_interval(items, _STATISTICS[item_statistic], confidence, int(n_boot), seed)
            return _clipped(Summary(mean, 0.0, n, low, high, CI_BOOTSTRAP, deterministic), bounds)
    return Summary(mean, 0.0, n, math.nan, math.nan, CI_NONE, deterministic)


def clip_interval(low: float, high: float, bounds: tuple[float | None, float | None] | None) -> tuple[float, float]:
    """``[low, high]`` cut to ``bounds`` (``(lower, upper)``, either may be ``None``: unbounded)."""
    if bounds is None:
        return low, high
    lower, upper = bounds
    if lower is not None:
        low, high = max(low, lower), max(high, lower)
    if upper is not None:
        low, high = min(low, upper), min(high, upper)
    return low, high


def _clipped(s: Summary, bounds: tuple[float | None, float | None] | None) -> Summary:
    low, high = clip_interval(s.ci_low, s.ci_high, bounds)
    if (low, high) == (s.ci_low, s.ci_high):
        return s
    return Summary(s.mean, s.std, s.n, low, high, s.ci_method, s.deterministic, True)


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


def _entirely_better(a: Summary, b: Summary, higher_is_better: bool) -> bool:
    """Whether the whole interval of ``a`` lies on the better side of the whole interval of ``b``."""
    a_low, a_high = _bounds(a)
    b_low, b_high = _bounds(b)
    return a_low > b_high if higher_is_better else a_high < b_low


def rank_ranges(summaries: Sequence[Summary], higher_is_better: bool) -> list[tuple[int, int]]:
    """``(best, worst)`` rank of each summary; two models are ordered only when their intervals are disjoint.

    Rule (documented so that tables can be read exactly); "A beats B" means A's whole
    interval lies on the better side of B's (a summary without an interval is the point
    ``mean``):

    * ``best = 1 + (number of models that beat it)``;
    * ``worst = min(best of each model it beats) - 1``, or the number of models when it
      beats none.

    Guarantees (tested by enumeration on random intervals): when two intervals overlap
    their rank ranges share at least one rank; when A beats B, A's whole range lies above
    B's (``worst(A) < best(B)``). Plain "number of models not beaten by it" as the worst
    rank would break the second guarantee whenever a wide interval overlaps both A and B.
    """
    n = len(summaries)
    beaten_by = [[j for j in range(n) if j != i and _entirely_better(summaries[j], summaries[i], higher_is_better)]
                 for i in range(n)]
    best = [1 + len(b) for b in beaten_by]
    worst = [n] * n
    for i in range(n):
        for j in beaten_by[i]:  # j beats i
            worst[j] = min(worst[j], best[i] - 1)
    return list(zip(best, worst))


def format_rank(best: int, worst: int) -> str:
    """``"1"`` when the rank is certain, else ``"2-4"``."""
    return str(best) if best == worst else f"{best}-{worst}"


def rank_with_ties(summaries: Sequence[Summary], higher_is_better: bool) -> list[str]:
    """Rank labels (``"1"``, ``"2-4"``) of :func:`rank_ranges`, aligned with the input order."""
    return [format_rank(b, w) for b, w in rank_ranges(summaries, higher_is_better)]
