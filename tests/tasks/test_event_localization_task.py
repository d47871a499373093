"""Tests of the event-localization adapter: segment heads, keys, chance/oracle models, score()."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from avcl_bench.baselines.random_projection import RandomProjection
from avcl_bench.benchmark.datasets.avsynth import AVSynthConfig, build
from avcl_bench.benchmark.datasets.base import InMemoryDataset
from avcl_bench.benchmark.errors import ConfigError, InputError, ModelError
from avcl_bench.tasks.base import EvalContext
from avcl_bench.tasks.event_localization.metrics import cross_modal_localization
from avcl_bench.tasks.event_localization.task import (
    METRICS,
    EventLocalizationTask,
    HeadConfig,
    segment_embeddings,
    segment_features,
    train_segment_head,
)
from avcl_bench.tasks.registry import get_task

KEYS = {"ACC", "video_ACC"}
CML_KEYS = {"CML_A2V", "CML_V2A"}


@pytest.fixture(scope="module")
def dataset() -> InMemoryDataset:
    return build(AVSynthConfig.quick(n_train=60, n_val=20, n_test=40), use_cache=False)


class _Fake:
    capabilities = frozenset({"segments"})
    trainable = False
    dim = 11

    def fit(self, *a) -> None:  # pragma: no cover
        pass

    def config(self) -> dict:
        return {}

    def embed_audio(self, audio: torch.Tensor) -> torch.Tensor:  # pragma: no cover - unused by the task
        return self.embed_audio_segments(audio).mean(1)

    def embed_visual(self, visual: torch.Tensor) -> torch.Tensor:  # pragma: no cover - unused by the task
        return self.embed_visual_segments(visual).mean(1)


class OracleModel(_Fake):
    """Cheats: looks a clip's segment labels up from its input bytes; segment embeddings are one-hot labels."""

    def __init__(self, dataset: InMemoryDataset):
        self.c = dataset.spec.num_classes + 1
        self.lookup: dict[bytes, np.ndarray] = {}
        for name in ("train", "val", "test"):
            s = dataset.split(name)
            for a, v, y in zip(np.asarray(s.audio, dtype=np.float32), np.asarray(s.visual), s.segment_labels):
                self.lookup[a.tobytes()] = self.lookup[v.tobytes()] = y

    def _one_hot(self, keys: list[bytes]) -> torch.Tensor:
        return torch.nn.functional.one_hot(torch.as_tensor(np.stack([self.lookup[k] for k in keys])), self.c).float()

    def embed_audio_segments(self, audio: torch.Tensor) -> torch.Tensor:
        return self._one_hot([row.numpy().tobytes() for row in audio])

    def embed_visual_segments(self, visual: torch.Tensor) -> torch.Tensor:
        return self._one_hot([torch.round(row * 255).to(torch.uint8).numpy().tobytes() for row in visual])


class NoiseModel(_Fake):
    """Segment embeddings independent of the input: a chance model."""

    def __init__(self) -> None:
        self.g = torch.Generator().manual_seed(7)

    def embed_audio_segments(self, audio: torch.Tensor) -> torch.Tensor:
        return torch.randn(audio.shape[0], audio.shape[1], 8, generator=self.g)

    def embed_visual_segments(self, visual: torch.Tensor) -> torch.Tensor:
        return torch.randn(visual.shape[0], visual.shape[1], 8, generator=self.g)


def _ctx(**options) -> EvalContext:
    return EvalContext(seed=0, quick=True, options=options)


def _majority_rate(dataset: InMemoryDataset) -> float:
    """Accuracy of always predicting the most frequent train segment label (the chance level)."""
    train, test = dataset.split("train").segment_labels, dataset.split("test").segment_labels
    return float(np.mean(test == np.bincount(train.ravel()).argmax()))


# ----------------------------------------------------------------------------- evaluate
def test_registered_and_docstring_protocol() -> None:
    import avcl_bench.tasks.event_localization.task as mod

    assert isinstance(get_task("event_localization"), EventLocalizationTask)
    paragraphs = [p for p in mod.__doc__.split("\n\n") if p.strip()]
    assert len(paragraphs) >= 2 and "\n" not in paragraphs[0].strip()
    assert set(METRICS) == KEYS | CML_KEYS and EventLocalizationTask.metadata.needs == ("segment_labels",)


@pytest.mark.parametrize("head", ["linear", "gru"])
def test_random_model_keys_items_and_determinism(dataset, head) -> None:
    task = EventLocalizationTask()
    r1 = task.evaluate(RandomProjection(dataset.spec, seed=0), dataset, _ctx(event_head=head))
    assert set(r1.metrics) == KEYS | CML_KEYS
    for v in r1.metrics.values():
        assert isinstance(v, float) and 0.0 <= v <= 1.0
    assert r1.metrics["video_ACC"] <= r1.metrics["ACC"]
    videos = r1.config["cml"]["videos"]
    for k, items in r1.item_metrics.items():
        assert len(items) == (videos if k in CML_KEYS else 40)
        assert math.isclose(np.mean(items), r1.metrics[k], abs_tol=1e-12)
    assert r1.config["head"]["head"] == head and r1.config["num_classes"] == dataset.spec.num_classes + 1
    torch.manual_seed(123)  # the global RNG state must not matter
    r2 = task.evaluate(RandomProjection(dataset.spec, seed=0), dataset, _ctx(event_head=head))
    assert r1.metrics == r2.metrics and r1.item_metrics == r2.item_metrics


@pytest.mark.parametrize("head", ["linear", "gru"])
def test_oracle_is_perfect_and_noise_is_chance(dataset, head) -> None:
    task = EventLocalizationTask()
    oracle = task.evaluate(OracleModel(dataset), dataset, _ctx(event_head=head)).metrics
    assert oracle["ACC"] >= 0.99, oracle
    assert oracle["CML_A2V"] == oracle["CML_V2A"] == 1.0, oracle
    noise = task.evaluate(NoiseModel(), dataset, _ctx(event_head=head)).metrics
    # chance = predicting the majority label (background) everywhere
    assert noise["ACC"] <= _majority_rate(dataset) + 0.1, noise
    assert noise["video_ACC"] <= 0.1


def test_supports(dataset) -> None:
    task, test = EventLocalizationTask(), dataset.split("test")
    assert task.supports(RandomProjection(dataset.spec, seed=0), dataset.spec, test) is None
    assert task.supports(None, dataset.spec, test) is None

    class ClipOnly:
        capabilities = frozenset({"spatial"})

    assert "segments" in task.supports(ClipOnly(), dataset.spec, test)
    no_labels = dataclasses.replace(test, segment_labels=None)
    assert "segment_labels" in task.supports(RandomProjection(dataset.spec, seed=0), dataset.spec, no_labels)


def test_bad_option_model_and_labels(dataset) -> None:
    task = EventLocalizationTask()
    with pytest.raises(ConfigError, match="event_head"):
        task.evaluate(RandomProjection(dataset.spec, seed=0), dataset, _ctx(event_head="lstm"))

    class WrongT(RandomProjection):
        def embed_visual_segments(self, visual):
            return super().embed_visual_segments(visual)[:, :-1]

    with pytest.raises(ModelError, match="embed_visual_segments: expected shape"):
        task.evaluate(WrongT(dataset.spec), dataset, _ctx())

    class NaNModel(NoiseModel):
        def embed_audio_segments(self, audio):
            out = super().embed_audio_segments(audio)
            out[0, 0, 0] = float("inf")
            return out

    with pytest.raises(ModelError, match="NaN or inf"):
        task.evaluate(NaNModel(), dataset, _ctx())

    bad = np.array(dataset.split("val").segment_labels)
    bad[2, 4] = dataset.spec.num_classes + 1
    splits = {**dataset.splits, "val": dataclasses.replace(dataset.split("val"), segment_labels=bad)}
    ds = InMemoryDataset(spec=dataset.spec, splits=splits, content_hash="edited")
    with pytest.raises(InputError, match="val segment_labels: label 11 at clip 2, segment 4 is out of range"):
        task.evaluate(RandomProjection(dataset.spec, seed=0), ds, _ctx())


def test_segment_features_concatenate_audio_and_visual(dataset) -> None:
    model = RandomProjection(dataset.spec, dim=4, seed=0)
    test = dataset.split("test")
    f = segment_features(model, test, batch_size=16)
    assert f.shape == (40, 10, 8) and f.dtype == np.float32
    a = model.embed_audio_segments(torch.as_tensor(np.asarray(test.audio[:3])))
    v = model.embed_visual_segments(torch.as_tensor(np.asarray(test.visual[:3])).float() / 255)
    np.testing.assert_allclose(f[:3], torch.cat([a, v], 2).numpy(), rtol=1e-6)


def test_train_segment_head_early_stops_on_val() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, size=(50, 5))
    x = (np.eye(3)[y] * 2 + rng.normal(size=(50, 5, 3)) * 0.2 + 10).astype(np.float32)
    cfg = HeadConfig(epochs=300, patience=15)
    net, (mu, sd), info = train_segment_head(x[:40], y[:40], x[40:], y[40:], 3, cfg, seed=1)
    assert info["val_ACC"] == 1.0 and info["epochs_run"] == info["best_epoch"] + 1 + cfg.patience < 300
    pred = net(torch.as_tensor(((x[40:] - mu) / sd).astype(np.float32))).argmax(2).numpy()
    np.testing.assert_array_equal(pred, y[40:])
    with pytest.raises(ConfigError):
        train_segment_head(x, y, x, y, 3, HeadConfig(head="transformer"))


# ----------------------------------------------------------------------------- score / export
def test_score_hand_made() -> None:
    task = EventLocalizationTask()
    ref = {"segment_labels": np.array([[0, 1, 2], [2, 2, 2]])}
    scores = np.zeros((2, 3, 3))
    scores[0, [0, 1, 2], [0, 1, 2]] = 1  # all right
    scores[1, :, 0] = 1  # all wrong
    scores[1, 2] = 0  # tie: argmax takes class 0, still wrong
    m = task.score({"segment_scores": scores}, ref)
    assert m == {"ACC": 0.5, "video_ACC": 0.5}
    labels = np.array([[0, 1, 2], [2, 0, 2]])
    assert task.score({"segment_labels": labels}, ref) == {"ACC": pytest.approx(5 / 6), "video_ACC": 0.5}
    assert task.score({"segment_scores": scores, "segment_labels": labels}, ref) == m  # scores win


@pytest.mark.parametrize("pred, ref, match", [
    ({}, {"segment_labels": np.zeros((1, 2), int)}, "pred: segment_scores: missing array"),
    ({"segment_labels": np.zeros((1, 2), int)}, {}, "ref: segment_labels: missing array"),
    ({"segment_labels": np.zeros((2, 2), int)}, {"segment_labels": np.zeros((1, 2), int)},
     r"pred: segment_labels: has shape \(2, 2\) but ref segment_labels has \(1, 2\)"),
    ({"segment_scores": np.zeros((1, 3, 2))}, {"segment_labels": np.zeros((1, 2), int)},
     "pred: segment_scores: has shape"),
    ({"segment_scores": np.full((1, 2, 2), np.nan)}, {"segment_labels": np.zeros((1, 2), int)},
     "pred: segment_scores: contains NaN"),
    ({"segment_scores": np.zeros((1, 2, 2))}, {"segment_labels": np.array([[0, 2]])},
     "ref: segment_labels: label 2 at clip 0, segment 1 has no class"),
    ({"segment_labels": np.zeros((1, 2), int)}, {"segment_labels": np.array([[0, -1]])},
     "ref: segment_labels: negative label -1 at clip 0, segment 1"),
    ({"segment_labels": np.array([[0, -2]])}, {"segment_labels": np.zeros((1, 2), int)},
     "pred: segment_labels: negative label"),
    ({"segment_labels": np.zeros(2, int)}, {"segment_labels": np.zeros((1, 2), int)}, "pred: segment_labels: expected 2-D"),
    ({"segment_labels": np.zeros((1, 2), int)}, {"segment_labels": np.zeros((1, 0), int)}, "at least 1 segment"),
])
def test_score_errors(pred, ref, match) -> None:
    with pytest.raises(InputError, match=match):
        EventLocalizationTask().score(pred, ref)


def test_export_reference_round_trip(dataset) -> None:
    task = EventLocalizationTask()
    ref = task.export_reference(dataset, "test")
    assert set(ref) == {"segment_labels", "background"} and ref["segment_labels"].dtype == np.int64
    assert int(ref["background"]) == dataset.spec.num_classes
    np.testing.assert_array_equal(ref["segment_labels"], dataset.split("test").segment_labels)
    perfect = np.eye(dataset.spec.num_classes + 1)[ref["segment_labels"]]
    assert task.score({"segment_scores": perfect}, ref) == {"ACC": 1.0, "video_ACC": 1.0}
    assert task.score({"segment_labels": ref["segment_labels"]}, ref) == {"ACC": 1.0, "video_ACC": 1.0}
    assert isinstance(task.export_inputs, str) and task.export_inputs


# ----------------------------------------------------------------------------- cross-modal localization
def test_evaluate_cml_equals_metric_on_the_test_segment_embeddings(dataset) -> None:
    task = EventLocalizationTask()
    model = RandomProjection(dataset.spec, seed=0)
    res = task.evaluate(model, dataset, _ctx())
    test = dataset.split("test")
    a, v = segment_embeddings(model, test)
    mask = np.asarray(test.segment_labels) != dataset.spec.num_classes
    want = cross_modal_localization(a, v, mask)
    assert {k: res.metrics[k] for k in CML_KEYS} == want.metrics()
    cfg = res.config["cml"]
    assert cfg["videos"] == int(want.evaluated.sum())
    assert cfg["skipped_all_event"] == want.skipped_all_event and cfg["skipped_no_event"] == want.skipped_no_event


class _WideVisual(NoiseModel):
    def embed_visual_segments(self, visual: torch.Tensor) -> torch.Tensor:
        return torch.randn(visual.shape[0], visual.shape[1], 5, generator=self.g)


def test_evaluate_without_common_space_reports_no_cml(dataset) -> None:
    res = EventLocalizationTask().evaluate(_WideVisual(), dataset, _ctx())
    assert set(res.metrics) == KEYS and "differ in dimension" in res.config["cml"]["not_computed"]


def test_score_cml_from_stored_segment_embeddings() -> None:
    rng = np.random.default_rng(3)
    labels = np.full((6, 10), 4)
    for i in range(6):
        start = int(rng.integers(0, 6))
        labels[i, start : start + int(rng.integers(1, 5))] = int(rng.integers(0, 4))
    labels[5] = 2  # all events: skipped
    a, v = rng.standard_normal((6, 10, 3)), rng.standard_normal((6, 10, 3))
    ref = {"segment_labels": labels, "background": np.asarray(4)}
    want = cross_modal_localization(a, v, labels != 4).metrics()
    task = EventLocalizationTask()
    assert task.score({"audio_segments": a, "visual_segments": v}, ref) == want
    both = task.score({"audio_segments": a, "visual_segments": v, "segment_labels": labels}, ref)
    assert both == {"ACC": 1.0, "video_ACC": 1.0, **want}
    with pytest.raises(InputError, match="ref: background: missing array"):
        task.score({"audio_segments": a, "visual_segments": v}, {"segment_labels": labels})
    with pytest.raises(InputError, match="pred: visual_segments: missing array"):
        task.score({"audio_segments": a}, ref)
    with pytest.raises(InputError, match=r"pred: audio_segments: has shape \(6, 9, 3\)"):
        task.score({"audio_segments": a[:, :9], "visual_segments": v[:, :9]}, ref)
