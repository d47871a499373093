"""Classification metrics vs scikit-learn and brute-force loops written from the definitions."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score, top_k_accuracy_score

from avcl_bench.benchmark.errors import InputError
from avcl_bench.tasks.base import MetricSpec
from avcl_bench.tasks.classification.metrics import METRICS, classification_metrics


# ----------------------------------------------------------------------------- references
def brute_argmax(row: np.ndarray) -> int:
    """First index holding the maximum, by an explicit scan."""
    best = 0
    for j in range(1, len(row)):
        if row[j] > row[best]:
            best = j
    return best


def brute_top5_pessimistic(scores: np.ndarray, y: np.ndarray) -> float:
    hits = 0
    for i in range(len(y)):
        rank = 0  # classes (the true one included) scoring at least as high as the true class
        for j in range(scores.shape[1]):
            if scores[i, j] >= scores[i, y[i]]:
                rank += 1
        hits += rank <= 5
    return hits / len(y)


def brute_macro_f1(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    classes = sorted(set(y_true.tolist()) | set(y_pred.tolist()))
    f1s = []
    for c in classes:
        tp = sum(1 for t, p in zip(y_true, y_pred) if t == c and p == c)
        fp = sum(1 for t, p in zip(y_true, y_pred) if t != c and p == c)
        fn = sum(1 for t, p in zip(y_true, y_pred) if t == c and p != c)
        prec = tp / (tp + fp) if tp + fp else 0.0
        rec = tp / (tp + fn) if tp + fn else 0.0
        f1s.append(2 * prec * rec / (prec + rec) if prec + rec else 0.0)
    return sum(f1s) / len(f1s)


# ----------------------------------------------------------------------------- random data
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.UndefinedMetricWarning")  # C == 5
@pytest.mark.parametrize("seed", range(6))
def test_scores_match_sklearn_on_random_tie_free_data(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, c = int(rng.integers(1, 80)), int(rng.integers(5, 15))
    y = rng.integers(0, c, size=n)
    s = rng.normal(size=(n, c))
    s[np.arange(n), y] += rng.normal(0.5, 1.0, size=n)  # better than chance, still tie-free
    out = classification_metrics(y, scores=s)
    pred = s.argmax(axis=1)
    assert set(out) == {"ACC", "top5_ACC", "macro_F1"}
    assert out["ACC"] == pytest.approx(accuracy_score(y, pred), abs=1e-12)
    assert out["top5_ACC"] == pytest.approx(
        top_k_accuracy_score(y, s, k=5, labels=np.arange(c)), abs=1e-12
    )
    assert out["macro_F1"] == pytest.approx(
        f1_score(y, pred, average="macro", zero_division=0), abs=1e-12
    )
    assert out["macro_F1"] == pytest.approx(brute_macro_f1(y, pred), abs=1e-12)
    assert all(type(v) is float for v in out.values())


@pytest.mark.parametrize("seed", range(6))
def test_labels_pred_match_sklearn(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    n, c = int(rng.integers(1, 60)), int(rng.integers(2, 9))
    y = rng.integers(0, c, size=n)
    p = np.where(rng.random(n) < 0.5, y, rng.integers(0, c, size=n))
    out = classification_metrics(y, labels_pred=p, num_classes=c)
    assert set(out) == {"ACC", "macro_F1"}
    assert out["ACC"] == pytest.approx(accuracy_score(y, p), abs=1e-12)
    assert out["macro_F1"] == pytest.approx(f1_score(y, p, average="macro", zero_division=0), abs=1e-12)
    assert out["macro_F1"] == pytest.approx(brute_macro_f1(y, p), abs=1e-12)


@pytest.mark.parametrize("seed", range(4))
def test_tied_scores_match_brute_force(seed: int) -> None:
    rng = np.random.default_rng(200 + seed)
    n, c = 40, 8
    s = rng.integers(0, 3, size=(n, c)).astype(float)  # many ties
    y = rng.integers(0, c, size=n)
    out = classification_metrics(y, scores=s)
    pred = np.array([brute_argmax(r) for r in s])
    assert out["ACC"] == pytest.approx(np.mean(pred == y), abs=1e-12)
    assert out["top5_ACC"] == pytest.approx(brute_top5_pessimistic(s, y), abs=1e-12)
    assert out["macro_F1"] == pytest.approx(brute_macro_f1(y, pred), abs=1e-12)


# ----------------------------------------------------------------------------- adversarial
def test_all_equal_scores_predict_class_zero_and_top5_is_pessimistic() -> None:
    s = np.zeros((4, 6))
    y = np.array([0, 1, 2, 5])
    out = classification_metrics(y, scores=s)
    assert out["ACC"] == 0.25  # only the item whose label is 0
    assert out["top5_ACC"] == 0.0  # 6 classes tie with the true one: 6 > 5
    # the prediction is 0 for every item: F1 of class 0 is 2*1/(1+4) = 0.4, others 0
    assert out["macro_F1"] == pytest.approx(0.4 / 4)


def test_top5_ties_at_the_boundary() -> None:
    # true class tied with exactly 4 others (5 in total) -> hit; tied with 5 others -> miss
    s = np.array([[1, 1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1, 0]], dtype=float)
    out = classification_metrics(np.array([4, 4]), scores=s)
    assert out["top5_ACC"] == 0.5
    # one class strictly above, four tied with the true one -> count 5 -> hit
    s2 = np.array([[2, 1, 1, 1, 1, 0]], dtype=float)
    assert classification_metrics(np.array([3]), scores=s2)["top5_ACC"] == 1.0


def test_single_item() -> None:
    assert classification_metrics([2], scores=[[0.1, 0.2, 0.9]]) == {"ACC": 1.0, "macro_F1": 1.0}
    assert classification_metrics([2], labels_pred=[1]) == {"ACC": 0.0, "macro_F1": 0.0}


def test_class_absent_from_predictions_counts_as_zero_f1() -> None:
    y = np.array([0, 0, 1, 1, 2])
    p = np.array([0, 0, 1, 1, 1])  # class 2 never predicted
    out = classification_metrics(y, labels_pred=p)
    expected = f1_score(y, p, average="macro", zero_division=0)
    assert out["macro_F1"] == pytest.approx(expected, abs=1e-12)
    assert out["macro_F1"] == pytest.approx((1.0 + 0.8 + 0.0) / 3)


def test_class_only_in_predictions_counts_and_unused_classes_do_not() -> None:
    y = np.array([0, 0, 1])
    p = np.array([0, 3, 1])  # class 3 predicted but absent from the truth; 2, 4 unused
    out = classification_metrics(y, labels_pred=p, num_classes=5)
    assert out["macro_F1"] == pytest.approx(f1_score(y, p, average="macro", zero_division=0), abs=1e-12)
    assert out["macro_F1"] == pytest.approx((2 / 3 + 1.0 + 0.0) / 3)


def test_fewer_than_five_classes_has_no_top5() -> None:
    out = classification_metrics([0, 1], scores=np.eye(4)[:2])
    assert "top5_ACC" not in out
    assert classification_metrics([0], scores=np.eye(5)[:1])["top5_ACC"] == 1.0


def test_integral_float_labels_are_accepted() -> None:
    out = classification_metrics(np.array([0.0, 1.0]), labels_pred=np.array([0, 1]))
    assert out["ACC"] == 1.0


# ----------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    ("kwargs", "field", "needle"),
    [
        ({"labels_true": [0, 1]}, "scores/labels_pred", "exactly one"),
        ({"labels_true": [0, 1], "scores": np.zeros((2, 3)), "labels_pred": [0, 1]}, "scores/labels_pred", "exactly one"),
        ({"labels_true": [0, 1], "scores": [[0.0, np.nan], [1.0, 0.0]]}, "scores", "NaN"),
        ({"labels_true": [0, 1], "scores": [0.0, 1.0]}, "scores", "2-D"),
        ({"labels_true": [[0, 1]], "scores": np.zeros((2, 2))}, "labels_true", "1-D"),
        ({"labels_true": [0, 1, 1], "scores": np.zeros((2, 2))}, "labels_true/scores", "count mismatch"),
        ({"labels_true": [0, 1], "labels_pred": [0]}, "labels_true/labels_pred", "count mismatch"),
        ({"labels_true": [0, 3], "scores": np.zeros((2, 3))}, "labels_true", "out of range"),
        ({"labels_true": [0, -1], "labels_pred": [0, 0]}, "labels_true", "negative"),
        ({"labels_true": [0, 1], "labels_pred": [0, -2]}, "labels_pred", "negative"),
        ({"labels_true": [0, 1], "labels_pred": [0, 4], "num_classes": 3}, "labels_pred", "out of range"),
        ({"labels_true": [0, 1], "scores": np.zeros((2, 3)), "num_classes": 4}, "scores", "num_classes"),
        ({"labels_true": [0, 1], "labels_pred": [0, 1], "num_classes": 0}, "num_classes", "positive"),
        ({"labels_true": [0.5, 1], "labels_pred": [0, 1]}, "labels_true", "integer"),
        ({"labels_true": [], "labels_pred": []}, "labels_true", "at least 1"),
        ({"labels_true": [0], "scores": np.zeros((1, 0))}, "scores", "class column"),
    ],
)
def test_errors(kwargs: dict, field: str, needle: str) -> None:
    with pytest.raises(InputError) as err:
        classification_metrics(source="preds.npz", **kwargs)
    assert err.value.field == field
    assert needle in err.value.problem
    assert str(err.value).startswith(f"preds.npz: {field}: ")


def test_metric_specs() -> None:
    assert set(METRICS) == {"ACC", "top5_ACC", "macro_F1"}
    for name, spec in METRICS.items():
        assert isinstance(spec, MetricSpec) and spec.name == name and spec.higher_is_better
        assert spec.description


def test_huge_label_ids_are_remapped_not_allocated() -> None:
    rng = np.random.default_rng(0)
    ids = np.array([0, 1, 400_000_000, 2**40])
    y_true, y_pred = ids[rng.integers(0, 4, 50)], ids[rng.integers(0, 4, 50)]
    got = classification_metrics(y_true, labels_pred=y_pred)
    assert got["macro_F1"] == pytest.approx(f1_score(y_true, y_pred, average="macro", zero_division=0), abs=1e-12)
    assert got["ACC"] == pytest.approx(accuracy_score(y_true, y_pred))


def test_truth_problems_are_blamed_on_ref_source() -> None:
    with pytest.raises(InputError, match=r"^ref.npz: labels_true: negative label"):
        classification_metrics([0, -1], labels_pred=[0, 1], source="pred.npz", ref_source="ref.npz")
    with pytest.raises(InputError, match=r"^ref.npz: labels_true: label 7"):
        classification_metrics([0, 7], scores=np.zeros((2, 3)), source="pred.npz", ref_source="ref.npz")
    with pytest.raises(InputError, match=r"^pred.npz: labels_pred: expected an integer array"):
        classification_metrics([0, 1], labels_pred=np.array([True, False]), source="pred.npz", ref_source="ref.npz")
