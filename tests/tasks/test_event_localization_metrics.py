"""AVE event-localization metrics vs brute-force loops written from the protocol definition."""
from __future__ import annotations

import numpy as np
import pytest

from avcl_bench.benchmark.errors import InputError
from avcl_bench.tasks.base import MetricSpec
from avcl_bench.tasks.event_localization.metrics import METRICS, event_localization_metrics


def brute_force(y_true: np.ndarray, scores: np.ndarray) -> tuple[float, float]:
    """Loop over videos and segments; argmax by an explicit scan keeping the first maximum."""
    n, t, c = scores.shape
    right_segments, right_videos = 0, 0
    for i in range(n):
        all_right = True
        for k in range(t):
            best = 0
            for j in range(1, c):
                if scores[i, k, j] > scores[i, k, best]:
                    best = j
            if best == y_true[i, k]:
                right_segments += 1
            else:
                all_right = False
        right_videos += all_right
    return right_segments / (n * t), right_videos / n


@pytest.mark.parametrize("seed", range(6))
def test_random_scores_match_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, t, c = int(rng.integers(1, 30)), int(rng.integers(1, 12)), int(rng.integers(2, 30))
    y = rng.integers(0, c, size=(n, t))
    s = rng.normal(size=(n, t, c))
    s[np.arange(n)[:, None], np.arange(t)[None, :], y] += 1.5  # mostly right, some videos fully
    acc, vid = brute_force(y, s)
    out = event_localization_metrics(y, segment_scores=s)
    assert out == {"ACC": pytest.approx(acc, abs=1e-12), "video_ACC": pytest.approx(vid, abs=1e-12)}
    assert all(type(v) is float for v in out.values())


@pytest.mark.parametrize("seed", range(4))
def test_tied_scores_match_brute_force(seed: int) -> None:
    rng = np.random.default_rng(50 + seed)
    y = rng.integers(0, 4, size=(12, 10))
    s = rng.integers(0, 2, size=(12, 10, 4)).astype(float)  # ties everywhere
    acc, vid = brute_force(y, s)
    out = event_localization_metrics(y, segment_scores=s, num_classes=4)
    assert out["ACC"] == pytest.approx(acc, abs=1e-12)
    assert out["video_ACC"] == pytest.approx(vid, abs=1e-12)


@pytest.mark.parametrize("seed", range(4))
def test_labels_path_equals_scores_path(seed: int) -> None:
    rng = np.random.default_rng(80 + seed)
    y = rng.integers(0, 5, size=(9, 10))
    s = rng.normal(size=(9, 10, 5))
    pred = np.array([[int(np.argmax(seg)) for seg in video] for video in s])
    assert event_localization_metrics(y, segment_labels=pred) == event_localization_metrics(y, segment_scores=s)


def test_constant_scores_predict_class_zero() -> None:
    y = np.array([[0, 0, 1], [0, 0, 0]])
    out = event_localization_metrics(y, segment_scores=np.ones((2, 3, 3)))
    assert out == {"ACC": 5 / 6, "video_ACC": 0.5}


def test_single_segment() -> None:
    assert event_localization_metrics([[2]], segment_scores=[[[0.0, 1.0, 3.0]]]) == {"ACC": 1.0, "video_ACC": 1.0}
    assert event_localization_metrics([[2]], segment_labels=[[1]]) == {"ACC": 0.0, "video_ACC": 0.0}


def test_video_acc_hand_example() -> None:
    y = np.array([[1, 2, 3, 4], [1, 1, 1, 1], [0, 0, 0, 0]])
    p = np.array([[1, 2, 3, 4], [1, 1, 0, 1], [0, 0, 0, 0]])
    assert event_localization_metrics(y, segment_labels=p) == {"ACC": 11 / 12, "video_ACC": 2 / 3}


@pytest.mark.parametrize(
    ("kwargs", "field", "needle"),
    [
        ({"labels_true": [[0]]}, "segment_scores/segment_labels", "exactly one"),
        ({"labels_true": [[0]], "segment_scores": np.zeros((1, 1, 2)), "segment_labels": [[0]]},
         "segment_scores/segment_labels", "exactly one"),
        ({"labels_true": [[0, 1]], "segment_scores": [[[0.0, np.nan], [1.0, 0.0]]]}, "segment_scores", "NaN"),
        ({"labels_true": [[0, 1]], "segment_scores": np.zeros((1, 2))}, "segment_scores", "3-D"),
        ({"labels_true": [0, 1], "segment_labels": [0, 1]}, "labels_true", "2-D"),
        ({"labels_true": [[0, 1]], "segment_scores": np.zeros((1, 3, 2))}, "labels_true/segment_scores", "shape mismatch"),
        ({"labels_true": [[0, 1]], "segment_scores": np.zeros((2, 2, 2))}, "labels_true/segment_scores", "shape mismatch"),
        ({"labels_true": [[0, 1]], "segment_labels": [[0, 1, 1]]}, "labels_true/segment_labels", "shape mismatch"),
        ({"labels_true": [[0, 2]], "segment_scores": np.zeros((1, 2, 2))}, "labels_true", "out of range"),
        ({"labels_true": [[0, -1]], "segment_labels": [[0, 0]]}, "labels_true", "negative"),
        ({"labels_true": [[0, 1]], "segment_labels": [[0, -3]]}, "segment_labels", "negative"),
        ({"labels_true": [[0, 1]], "segment_labels": [[0, 5]], "num_classes": 2}, "segment_labels", "out of range"),
        ({"labels_true": [[0, 1]], "segment_scores": np.zeros((1, 2, 3)), "num_classes": 2}, "segment_scores", "num_classes"),
        ({"labels_true": [[0, 1]], "segment_labels": [[0, 1]], "num_classes": -1}, "num_classes", "positive"),
        ({"labels_true": np.zeros((0, 10), int), "segment_labels": np.zeros((0, 10), int)}, "labels_true", "at least 1"),
        ({"labels_true": np.zeros((2, 0), int), "segment_labels": np.zeros((2, 0), int)}, "labels_true", "segment"),
        ({"labels_true": [[0.5]], "segment_labels": [[0]]}, "labels_true", "integer"),
    ],
)
def test_errors(kwargs: dict, field: str, needle: str) -> None:
    with pytest.raises(InputError) as err:
        event_localization_metrics(source="ave.npz", **kwargs)
    assert err.value.field == field
    assert needle in err.value.problem
    assert str(err.value).startswith(f"ave.npz: {field}: ")


def test_metric_specs() -> None:
    assert set(METRICS) == {"ACC", "video_ACC"}
    for name, spec in METRICS.items():
        assert isinstance(spec, MetricSpec) and spec.name == name and spec.higher_is_better
