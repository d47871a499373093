"""Summary statistics: t-interval vs scipy, bootstrap vs scipy.stats.bootstrap, tie rule."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from avcl_bench.benchmark.errors import InputError
from avcl_bench.benchmark.reporting.stats import (
    CI_BOOTSTRAP,
    CI_NONE,
    CI_T,
    Summary,
    clip_interval,
    format_rank,
    intervals_overlap,
    rank_ranges,
    rank_with_ties,
    summarize,
)


@pytest.mark.parametrize("n", [2, 3, 5, 10])
@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
def test_t_interval_matches_scipy(n: int, confidence: float) -> None:
    rng = np.random.default_rng(n)
    values = rng.normal(0.5, 0.1, size=n)
    s = summarize(values, confidence=confidence)
    low, high = scipy_stats.t.interval(confidence, df=n - 1, loc=values.mean(), scale=scipy_stats.sem(values))
    assert s.ci_method == CI_T
    assert s.n == n
    assert s.mean == pytest.approx(values.mean(), abs=1e-12)
    assert s.std == pytest.approx(np.std(values, ddof=1), abs=1e-12)
    assert s.ci_low == pytest.approx(low, abs=1e-12)
    assert s.ci_high == pytest.approx(high, abs=1e-12)


def test_t_interval_hand_numbers() -> None:
    # t_{0.975, 2} = 4.302652729749464 (statistical tables)
    s = summarize([0.60, 0.62, 0.64])
    assert s.mean == pytest.approx(0.62)
    assert s.std == pytest.approx(0.02)
    half = 4.302652729749464 * 0.02 / math.sqrt(3)
    assert (s.ci_low, s.ci_high) == pytest.approx((0.62 - half, 0.62 + half))


def test_constant_seeds_are_deterministic_without_a_zero_width_interval() -> None:
    s = summarize([0.1, 0.1, 0.1])
    assert s.std == 0.0 and s.n == 3 and s.deterministic
    assert s.ci_method == CI_NONE and math.isnan(s.ci_low)  # no zero-width t-interval


def test_deterministic_seeds_use_the_bootstrap_over_items() -> None:
    items = np.random.default_rng(1).normal(31.3, 2.0, size=40)
    mean = float(items.mean())
    s = summarize([mean, mean, mean], items, n_boot=500, seed=3)
    one = summarize([mean], items, n_boot=500, seed=3)
    assert s.deterministic and s.ci_method == CI_BOOTSTRAP and s.n == 3
    assert (s.ci_low, s.ci_high) == (one.ci_low, one.ci_high)  # the same interval as one seed's
    assert s.ci_low < mean < s.ci_high and s.ci_high - s.ci_low > 0.5
    assert not one.deterministic  # one seed cannot tell
    # seeds that differ keep the t-interval (the items of one seed say nothing about training noise)
    assert summarize([mean, mean + 0.1], items).ci_method == CI_T


def test_interval_clipped_to_bounds() -> None:
    s = summarize([0.05, 0.9], bounds=(0.0, 1.0))  # t-interval with 1 df is very wide
    assert s.clipped and s.ci_method == CI_T
    assert (s.ci_low, s.ci_high) == (0.0, 1.0)
    assert not summarize([0.5, 0.52, 0.54], bounds=(0.0, 1.0)).clipped
    assert summarize([0.05, 0.9]).ci_low < 0  # no bounds, no clipping
    assert clip_interval(-0.46, 0.81, (0.0, None)) == (0.0, 0.81)
    assert clip_interval(-2.0, -1.0, (0.0, 1.0)) == (0.0, 0.0)
    assert clip_interval(0.2, 0.3, None) == (0.2, 0.3)


def test_single_seed_without_items_has_no_interval() -> None:
    s = summarize([0.4])
    assert s.ci_method == CI_NONE and not s.has_interval
    assert s.std == 0.0 and s.n == 1
    assert math.isnan(s.ci_low) and math.isnan(s.ci_high)


def test_items_ignored_with_several_seeds() -> None:
    s = summarize([0.4, 0.5], [0.0, 1.0, 0.3])
    assert s.ci_method == CI_T


@pytest.mark.parametrize("statistic", ["mean", "median"])
def test_bootstrap_agrees_with_scipy_bootstrap(statistic: str) -> None:
    rng = np.random.default_rng(1)
    items = rng.beta(2.0, 3.0, size=200)
    fn = np.mean if statistic == "mean" else np.median
    ours = summarize([float(fn(items))], items, n_boot=20000, seed=3, item_statistic=statistic)
    ref = scipy_stats.bootstrap((items,), fn, n_resamples=20000, method="percentile", confidence_level=0.95,
                                random_state=np.random.default_rng(7)).confidence_interval
    assert ours.ci_method == CI_BOOTSTRAP
    width = ref.high - ref.low
    assert ours.ci_low == pytest.approx(ref.low, abs=0.05 * width)
    assert ours.ci_high == pytest.approx(ref.high, abs=0.05 * width)


def test_bootstrap_is_deterministic_and_seeded() -> None:
    items = np.random.default_rng(0).random(50)
    a = summarize([items.mean()], items, seed=5)
    b = summarize([items.mean()], items, seed=5)
    c = summarize([items.mean()], items, seed=6)
    assert a == b
    assert (a.ci_low, a.ci_high) != (c.ci_low, c.ci_high)


def test_bootstrap_chunking_matches_brute_force(monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunked resampling equals a direct quantile over the same index matrix."""
    import avcl_bench.benchmark.reporting.stats as st

    items = np.random.default_rng(2).random(7)
    monkeypatch.setattr(st, "_BOOT_CHUNK_ELEMENTS", 10**9)
    got = summarize([items.mean()], items, n_boot=300, seed=11)
    idx = np.random.default_rng(11).integers(0, items.size, size=(300, items.size))
    means = np.array([items[row].mean() for row in idx])
    low, high = np.quantile(means, [0.025, 0.975])
    assert (got.ci_low, got.ci_high) == pytest.approx((low, high), abs=1e-12)


def test_bootstrap_adversarial_items() -> None:
    const = summarize([0.7], [0.7] * 9)
    assert const.ci_method == CI_BOOTSTRAP and const.ci_low == const.ci_high == pytest.approx(0.7)
    one = summarize([0.7], [0.7])  # one item: nothing to resample
    assert one.ci_method == CI_NONE


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"seed_values": []}, "seed values"),
        ({"seed_values": [0.1, float("nan")]}, "seed values"),
        ({"seed_values": [0.1, float("inf")]}, "seed values"),
        ({"seed_values": [[0.1, 0.2]]}, "seed values"),
        ({"seed_values": [0.1], "item_values": [0.1, float("nan")]}, "item values"),
        ({"seed_values": [0.1], "confidence": 1.5}, "confidence"),
        ({"seed_values": [0.1], "n_boot": 0}, "n_boot"),
        ({"seed_values": [0.1], "item_statistic": "mode"}, "item_statistic"),
    ],
)
def test_summarize_rejects_bad_input(kwargs: dict, field: str) -> None:
    with pytest.raises(InputError, match=field):
        summarize(**kwargs)


def _s(mean: float, low: float | None = None, high: float | None = None) -> Summary:
    if low is None:
        return Summary(mean, 0.0, 1, math.nan, math.nan, CI_NONE)
    return Summary(mean, 0.0, 3, low, high, CI_T)


def test_intervals_overlap() -> None:
    assert intervals_overlap(_s(0.5, 0.4, 0.6), _s(0.65, 0.6, 0.7))  # touching counts
    assert not intervals_overlap(_s(0.5, 0.4, 0.6), _s(0.75, 0.7, 0.8))
    assert intervals_overlap(_s(0.5), _s(0.5))
    assert not intervals_overlap(_s(0.5), _s(0.6))
    assert intervals_overlap(_s(0.5), _s(0.45, 0.4, 0.55))  # point inside an interval


def test_rank_disjoint_intervals() -> None:
    ranks = rank_with_ties([_s(0.5, 0.45, 0.55), _s(0.9, 0.85, 0.95), _s(0.7, 0.65, 0.75)], True)
    assert ranks == ["3", "1", "2"]


def test_rank_lower_is_better_reverses_order() -> None:
    ranks = rank_with_ties([_s(0.5, 0.45, 0.55), _s(0.9, 0.85, 0.95), _s(0.7, 0.65, 0.75)], False)
    assert ranks == ["1", "3", "2"]


def test_rank_competition_with_tie() -> None:
    # A and B overlap, C is clearly behind: 1=, 1=, 3
    ranks = rank_with_ties([_s(0.9, 0.8, 1.0), _s(0.85, 0.78, 0.92), _s(0.5, 0.45, 0.55)], True)
    assert ranks == ["1-2", "1-2", "3"]


def test_rank_ranges_do_not_chain_through_neighbours() -> None:
    # A overlaps B, B overlaps C, A does not overlap C: A is above C, B may be anywhere
    a, b, c = _s(0.9, 0.85, 0.95), _s(0.8, 0.72, 0.88), _s(0.7, 0.65, 0.75)
    assert not intervals_overlap(a, c) and intervals_overlap(b, c)
    assert rank_with_ties([c, a, b], True) == ["2-3", "1", "1-3"]
    # a long run of pairwise-overlapping neighbours: each range meets its neighbours' only
    run = [_s(1.0 - 0.1 * i, 0.93 - 0.1 * i, 1.07 - 0.1 * i) for i in range(5)]
    assert rank_with_ties(run, True) == ["1", "1-2", "2-3", "3-5", "4-5"]


def test_rank_tie_in_the_middle() -> None:
    ranks = rank_with_ties([_s(0.9, 0.88, 0.92), _s(0.6, 0.5, 0.7), _s(0.62, 0.55, 0.69), _s(0.1, 0.05, 0.15)], True)
    assert ranks == ["1", "2-3", "2-3", "4"]


def test_rank_without_intervals_ties_only_equal_means() -> None:
    assert rank_with_ties([_s(0.5), _s(0.5), _s(0.4)], True) == ["1-2", "1-2", "3"]
    assert rank_with_ties([_s(0.5)], True) == ["1"]
    assert rank_with_ties([], True) == []


def test_format_rank() -> None:
    assert format_rank(1, 1) == "1" and format_rank(2, 4) == "2-4"


@pytest.mark.parametrize("higher", [True, False])
def test_rank_ranges_brute_force_on_random_intervals(higher: bool) -> None:
    """Overlapping intervals -> rank ranges intersect; disjoint -> the better one's range lies entirely above."""
    rng = np.random.default_rng(7)
    for trial in range(400):
        n = int(rng.integers(1, 9))
        centres = rng.uniform(0, 1, size=n)
        if trial % 4 == 0:  # some equal means and points without an interval
            centres = np.round(centres, 1)
        widths = rng.uniform(0, 0.4, size=n) * (rng.uniform(size=n) < 0.85)
        summ = [_s(float(c), float(c - w), float(c + w)) if w > 0 else _s(float(c)) for c, w in zip(centres, widths)]
        ranges = rank_ranges(summ, higher)
        assert len(ranges) == n
        for i in range(n):
            b_i, w_i = ranges[i]
            assert 1 <= b_i <= w_i <= n
            for j in range(n):
                if i == j:
                    continue
                b_j, w_j = ranges[j]
                lo_i, hi_i = (summ[i].ci_low, summ[i].ci_high) if summ[i].has_interval else (summ[i].mean,) * 2
                lo_j, hi_j = (summ[j].ci_low, summ[j].ci_high) if summ[j].has_interval else (summ[j].mean,) * 2
                if intervals_overlap(summ[i], summ[j]):
                    assert max(b_i, b_j) <= min(w_i, w_j), (trial, i, j)
                elif (lo_i > hi_j) == higher:  # i is entirely better than j
                    assert w_i < b_j, (trial, i, j)
        # a model no one beats can be first; the set of certain ranks is consistent with the means
        assert min(b for b, _ in ranges) == 1
