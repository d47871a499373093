"""AVE event-localization metrics vs brute-force loops written from the protocol definition."""
from __future__ import annotations

import numpy as np
import pytest

from avcl_bench.benchmark.errors import InputError
from avcl_bench.tasks.base import MetricSpec
from avcl_bench.tasks.event_localization.metrics import (
    CML_METRICS,
    METRICS,
    cross_modal_localization,
    event_localization_metrics,
)


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


# ----------------------------------------------------------------------------- cross-modal localization
def official_distance(x: np.ndarray, y: np.ndarray) -> float:
    """``euclidean_distance`` of cmm_test.py: sqrt(max(sum((x - y)^2), K.epsilon() = 1e-7))."""
    return float(np.sqrt(max(float(np.sum(np.square(x - y))), 1e-7)))


def official_cml(audio: np.ndarray, visual: np.ndarray, event: np.ndarray) -> tuple[float, float, int]:
    """The evaluation loop of AVE's cmm_test.py, one video at a time, with the net's distance
    replaced by the Euclidean distance of the given segment embeddings. Returns
    (A2V accuracy = its audio_count / count_num, V2A accuracy = video_count / count_num, count_num);
    videos without any event segment are skipped (the official script would fail on them)."""
    t = event.shape[1]
    count_num = audio_count = video_count = 0
    for vid in range(len(event)):
        x_test = event[vid].astype(float)
        if np.sum(x_test) == t or np.sum(x_test) == 0:
            continue
        count_num += 1
        seg = [int(k) for k in np.argwhere(x_test == 1)[:, 0]]
        length = len(seg)
        # given audio clip: slide over the visual segments
        score = []
        for nn in range(t - length + 1):
            s = 0.0
            for i in range(length):
                s += official_distance(visual[vid, nn + i], audio[vid, seg[i]])
            score.append(s)
        if int(np.argmin(score)) == seg[0]:
            audio_count += 1
        # given video clip: slide over the audio segments
        score = []
        for nn in range(t - length + 1):
            s = 0.0
            for i in range(length):
                s += official_distance(visual[vid, seg[i]], audio[vid, nn + i])
            score.append(s)
        if int(np.argmin(score)) == seg[0]:
            video_count += 1
    return audio_count / count_num, video_count / count_num, count_num


def contiguous_events(rng: np.random.Generator, n: int, t: int = 10) -> np.ndarray:
    """One contiguous event per video (as AVE), lengths 1..T, so some videos are all events."""
    mask = np.zeros((n, t), dtype=bool)
    for i in range(n):
        length = int(rng.integers(1, t + 1))
        start = int(rng.integers(0, t - length + 1))
        mask[i, start : start + length] = True
    return mask


def _check_against_official(a: np.ndarray, v: np.ndarray, mask: np.ndarray) -> None:
    res = cross_modal_localization(a, v, mask)
    want_a2v, want_v2a, count = official_cml(a, v, mask)
    assert res.metrics() == pytest.approx({"CML_A2V": want_a2v, "CML_V2A": want_v2a}, abs=1e-15)
    assert int(res.evaluated.sum()) == count
    counts = mask.sum(axis=1)
    assert res.skipped_all_event == int(np.sum(counts == mask.shape[1]))
    assert res.skipped_no_event == int(np.sum(counts == 0))


@pytest.mark.parametrize("seed", range(4))
def test_cml_matches_official_loop_random(seed):
    rng = np.random.default_rng(seed)
    n, t, d = 40, 10, 6
    mask = contiguous_events(rng, n, t)
    base = rng.standard_normal((n, t, d))
    a = base + 0.8 * rng.standard_normal((n, t, d))  # correlated modalities: a mix of hits and misses
    v = base + 0.8 * rng.standard_normal((n, t, d))
    _check_against_official(a, v, mask)


def test_cml_matches_official_loop_on_ties_and_floor():
    rng = np.random.default_rng(11)
    n, t = 30, 10
    mask = contiguous_events(rng, n, t)
    # integer embeddings from a tiny alphabet: many windows tie, argmin takes the earliest
    a = rng.integers(0, 2, (n, t, 2)).astype(float)
    v = rng.integers(0, 2, (n, t, 2)).astype(float)
    _check_against_official(a, v, mask)
    # identical embeddings everywhere: every distance is the floor, every window ties -> start 0
    same = np.ones((n, t, 3))
    res = cross_modal_localization(same, same, mask)
    assert np.all(res.start_a2v[res.evaluated] == 0)
    _check_against_official(same, same, mask)
    # distances below the floor are the floor: tiny differences do not decide
    tiny = same + 1e-6 * rng.standard_normal(same.shape)
    _check_against_official(tiny, same, mask)


def test_cml_non_contiguous_events_follow_the_official_pairing():
    # the official script pairs query segment seg[i] with candidate s + i even when the
    # event segments are not consecutive; a hit is a start equal to the first event segment
    rng = np.random.default_rng(12)
    mask = rng.random((50, 8)) < 0.4
    a, v = rng.standard_normal((50, 8, 4)), rng.standard_normal((50, 8, 4))
    _check_against_official(a, v, mask)


def test_cml_perfect_embeddings_and_hand_made_case():
    # one-hot event/background embeddings shared by both modalities: every window is found
    rng = np.random.default_rng(13)
    mask = contiguous_events(rng, 25)
    emb = np.eye(2)[mask.astype(int)]
    res = cross_modal_localization(emb, emb, mask)
    assert res.metrics() == {"CML_A2V": 1.0, "CML_V2A": 1.0}
    # T = 4, event at segments 1-2; audio event segments look like visual segments 2-3
    a = np.zeros((1, 4, 1))
    a[0, 1:3, 0] = [5.0, 6.0]
    v = np.array([[[0.0], [0.0], [5.0], [6.0]]])
    res = cross_modal_localization(a, v, np.array([[0, 1, 1, 0]], dtype=bool))
    assert res.start_a2v[0] == 2 and res.metrics()["CML_A2V"] == 0.0
    # V2A: visual segments 1-2 are (0, 5), closest audio window: segments 0-1 = (0, 5)
    assert res.start_v2a[0] == 0 and res.metrics()["CML_V2A"] == 0.0


def test_cml_skips_all_event_and_no_event_videos():
    mask = np.array([[1, 1, 1], [0, 0, 0], [1, 0, 0]], dtype=bool)
    rng = np.random.default_rng(14)
    res = cross_modal_localization(rng.standard_normal((3, 3, 2)), rng.standard_normal((3, 3, 2)), mask)
    assert res.evaluated.tolist() == [False, False, True]
    assert (res.skipped_all_event, res.skipped_no_event) == (1, 1)
    assert res.start_a2v[:2].tolist() == [-1, -1]


def test_cml_scale_extremes_and_errors():
    rng = np.random.default_rng(15)
    mask = contiguous_events(rng, 10)
    a, v = rng.standard_normal((10, 10, 3)), rng.standard_normal((10, 10, 3))
    _check_against_official(a * 1e100, v * 1e100, mask)
    with pytest.raises(InputError, match="overflow"):
        cross_modal_localization(a * 1e200, v * 1e200, mask)
    with pytest.raises(InputError, match=r"^in: audio_segments: contains NaN"):
        cross_modal_localization(np.full_like(a, np.nan), v, mask, source="in")
    with pytest.raises(InputError, match="audio_segments/visual_segments: shape mismatch"):
        cross_modal_localization(a, v[:, :, :2], mask)
    with pytest.raises(InputError, match="audio_segments/event_mask: shape mismatch"):
        cross_modal_localization(a, v, mask[:, :5])
    with pytest.raises(InputError, match=r"^r: event_mask: expected booleans or 0/1"):
        cross_modal_localization(a, v, mask.astype(int) * 2, ref_source="r")
    with pytest.raises(InputError, match=r"^r: event_mask: no video has between 1 and 9 event segments"):
        cross_modal_localization(a, v, np.ones((10, 10), bool), ref_source="r")
    assert cross_modal_localization(a, v, mask.astype(np.int8)).metrics() == cross_modal_localization(a, v, mask).metrics()
    assert set(CML_METRICS) == {"CML_A2V", "CML_V2A"} and all(m.higher_is_better for m in CML_METRICS.values())


def test_cml_skip_rule_on_the_real_ave_test_split(shared_data):
    """On the official AVE test split most videos are all events: the rule keeps only the others."""
    h5py = pytest.importorskip("h5py")
    root = shared_data / "annotations" / "ave"
    with h5py.File(root / "labels_closs.h5", "r") as f:
        closs = np.asarray(f["avadataset"])
    with h5py.File(root / "test_order.h5", "r") as f:
        order = np.asarray(f["order"])
    event = closs[order] == 1
    rng = np.random.default_rng(16)
    a, v = rng.standard_normal((*event.shape, 4)), rng.standard_normal((*event.shape, 4))
    res = cross_modal_localization(a, v, event)
    partial = (event.sum(axis=1) > 0) & (event.sum(axis=1) < 10)
    assert int(res.evaluated.sum()) == int(partial.sum()) > 0
    assert res.skipped_all_event == int(np.sum(event.sum(axis=1) == 10)) > 0
    _check_against_official(a, v, event)
