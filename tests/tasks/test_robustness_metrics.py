"""normalized_auc against independent references (sklearn.metrics.auc, numpy.trapezoid, hand areas)."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import auc as sk_auc

from avcl_bench.benchmark.errors import InputError
from avcl_bench.tasks.robustness.metrics import normalized_auc


def _reference(severities: np.ndarray, values: np.ndarray) -> float:
    """sklearn's trapezoidal AUC on the severity axis min-max normalised (sklearn sorts nothing: we do)."""
    s = np.asarray(severities, dtype=np.float64)
    order = np.argsort(s)
    x = (s[order] - s[order][0]) / (s[order][-1] - s[order][0])
    return float(sk_auc(x, np.asarray(values, dtype=np.float64)[order]))


@pytest.mark.parametrize("seed", range(8))
def test_random_curves_match_sklearn_and_numpy(seed) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 12))
    s = rng.choice(np.linspace(0.0, 50.0, 200), size=n, replace=False)
    v = rng.uniform(0.0, 1.0, size=n)
    got = normalized_auc(s, v)
    assert got == pytest.approx(_reference(s, v), rel=1e-12, abs=1e-15)
    order = np.argsort(s)
    x = (s[order] - s[order].min()) / np.ptp(s)
    assert got == pytest.approx(float(np.trapezoid(v[order], x)), rel=1e-12, abs=1e-15)


def test_hand_computed_areas() -> None:
    # clean 1.0, then 0.5 at half severity, 0 at full: area = 0.5*(1+0.5)/2 + 0.5*(0.5+0)/2 = 0.5
    assert normalized_auc([0, 5, 10], [1.0, 0.5, 0.0]) == pytest.approx(0.5)
    # uneven spacing: x = 0, 0.1, 1 -> 0.1*(1+1)/2 + 0.9*(1+0)/2 = 0.55
    assert normalized_auc([0, 1, 10], [1.0, 1.0, 0.0]) == pytest.approx(0.55)


def test_one_level_is_the_mean_of_clean_and_that_level() -> None:
    assert normalized_auc([0.0, 3.0], [0.8, 0.2]) == pytest.approx(0.5)
    assert normalized_auc([0.0, 3.0], [0.8, 0.2]) == pytest.approx(_reference(np.array([0.0, 3.0]), np.array([0.8, 0.2])))


def test_unsorted_levels_give_the_sorted_answer() -> None:
    s, v = np.array([0.0, 0.25, 0.5, 0.75]), np.array([0.9, 0.7, 0.4, 0.1])
    perm = np.array([2, 0, 3, 1])
    assert normalized_auc(s[perm], v[perm]) == normalized_auc(s, v)
    assert normalized_auc(list(s[perm]), list(v[perm])) == pytest.approx(_reference(s, v))


@pytest.mark.parametrize("c", [0.0, 0.37, 1.0])
def test_constant_curve_is_its_value(c) -> None:
    assert normalized_auc([0, 0.1, 0.2, 0.4], [c] * 4) == pytest.approx(c, abs=1e-15)


def test_axis_scale_and_shift_do_not_matter() -> None:
    v = np.array([0.9, 0.6, 0.55, 0.2])
    base = normalized_auc([0.0, 1.0, 2.0, 4.0], v)
    assert base == pytest.approx(_reference(np.array([0.0, 1.0, 2.0, 4.0]), v))
    for scale in (1e-300, 1e-12, 1e12, 1e300):
        assert normalized_auc(np.array([0.0, 1.0, 2.0, 4.0]) * scale, v) == pytest.approx(base, rel=1e-12)
    # a negative offset and a span over the float range
    assert normalized_auc(np.array([0.0, 1.0, 2.0, 4.0]) - 7.0, v) == pytest.approx(base, rel=1e-12)
    assert normalized_auc([-1e308, -0.5e308, 0.0, 1e308], v) == pytest.approx(
        _reference(np.array([-1.0, -0.5, 0.0, 1.0]), v), rel=1e-12)


def test_integer_inputs_and_extreme_values() -> None:
    assert normalized_auc(np.array([0, 10, 20], dtype=np.int64), np.array([2, 1, 0], dtype=np.int32)) == pytest.approx(1.0)
    assert normalized_auc([0.0, 1.0], [1e300, 1e300]) == pytest.approx(1e300)


@pytest.mark.parametrize("s, v, field, match", [
    ([0.0], [1.0], "severities", "at least 2 points"),
    ([], [], "severities", "at least 1"),
    ([0.0, 1.0, 1.0], [1.0, 0.5, 0.4], "severities", "appears twice"),
    ([0.0, np.nan], [1.0, 0.5], "severities", "NaN"),
    ([0.0, 1.0], [1.0, np.inf], "values", "NaN or inf"),
    ([0.0, 1.0], [1.0], "severities/values", "count mismatch"),
    ([[0.0, 1.0]], [[1.0, 0.5]], "severities", "1-D"),
    ([0.0, 1.0], [True, False], "values", "real number"),
    ([0.0, 1.0], ["a", "b"], "values", "real number"),
])
def test_bad_inputs_are_one_line_errors(s, v, field, match) -> None:
    with pytest.raises(InputError, match=match) as e:
        normalized_auc(s, v, source="curve")
    assert str(e.value).startswith(f"curve: {field}:") and "\n" not in str(e.value)
