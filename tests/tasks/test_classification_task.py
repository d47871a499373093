"""Tests of the classification adapter: probes, k-NN, keys, determinism, chance/oracle models, score()."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from avcl_bench.baselines.random_projection import RandomProjection
from avcl_bench.benchmark.datasets.avsynth import AVSynthConfig, build
from avcl_bench.benchmark.datasets.base import InMemoryDataset
from avcl_bench.benchmark.datasets.esc50 import esc50_folds, load_esc50
from avcl_bench.benchmark.errors import ConfigError, InputError, ModelError
from avcl_bench.benchmark.runner import RunConfig, run
from avcl_bench.tasks.base import EvalContext
from avcl_bench.tasks.classification.task import (
    C_GRID,
    METRICS,
    ClassificationTask,
    knn_scores,
    linear_probe,
    mlp_probe,
)
from avcl_bench.tasks.registry import get_task
from tests.datasets.test_music_features_esc50 import esc_root  # noqa: F401 - the ESC-50-layout fixture

ALL_KEYS = {"ACC", "top5_ACC", "macro_F1", "ACC_audio", "ACC_visual", "kNN_ACC", "kNN_ACC_audio", "kNN_ACC_visual"}
FOLD_KEYS = {f"ACC_fold{k}" for k in esc50_folds()}


@pytest.fixture(scope="module")
def dataset() -> InMemoryDataset:
    return build(AVSynthConfig.quick(n_train=60, n_val=20, n_test=40), use_cache=False)


class _Fake:
    """Minimal model of the interface; subclasses define the embeddings."""

    capabilities = frozenset()
    trainable = False
    dim = 10

    def fit(self, train, val, ctx) -> None:  # pragma: no cover - never trained here
        pass

    def config(self) -> dict:
        return {}


class OracleModel(_Fake):
    """Cheats: looks a clip's label up from its input bytes; both embeddings are one-hot labels."""

    def __init__(self, dataset: InMemoryDataset):
        self.k = dataset.spec.num_classes
        self.lookup: dict[bytes, int] = {}
        for name in ("train", "val", "test"):
            s = dataset.split(name)
            for a, v, y in zip(np.asarray(s.audio, dtype=np.float32), np.asarray(s.visual), s.labels):
                self.lookup[a.tobytes()] = self.lookup[v.tobytes()] = int(y)

    def _one_hot(self, keys: list[bytes]) -> torch.Tensor:
        return torch.nn.functional.one_hot(torch.tensor([self.lookup[k] for k in keys]), self.k).float()

    def embed_audio(self, audio: torch.Tensor) -> torch.Tensor:
        return self._one_hot([row.numpy().tobytes() for row in audio])

    def embed_visual(self, visual: torch.Tensor) -> torch.Tensor:
        return self._one_hot([torch.round(row * 255).to(torch.uint8).numpy().tobytes() for row in visual])


class NoiseModel(_Fake):
    """Embeddings independent of the input (a hash-free chance model): Gaussian noise."""

    def __init__(self) -> None:
        self.g = torch.Generator().manual_seed(123)

    def embed_audio(self, audio: torch.Tensor) -> torch.Tensor:
        return torch.randn(len(audio), 16, generator=self.g)

    def embed_visual(self, visual: torch.Tensor) -> torch.Tensor:
        return torch.randn(len(visual), 16, generator=self.g)


def _ctx(**options) -> EvalContext:
    return EvalContext(seed=0, quick=True, options=options)


# ----------------------------------------------------------------------------- evaluate
def test_registered_and_docstring_protocol() -> None:
    import avcl_bench.tasks.classification.task as mod

    assert isinstance(get_task("classification"), ClassificationTask)
    paragraphs = [p for p in mod.__doc__.split("\n\n") if p.strip()]
    assert len(paragraphs) >= 2 and "\n" not in paragraphs[0].strip()
    assert set(METRICS) == ALL_KEYS | FOLD_KEYS
    assert ClassificationTask.metadata.headline == ("ACC", "top5_ACC", "macro_F1")


def test_random_model_keys_ranges_and_items(dataset) -> None:
    r = ClassificationTask().evaluate(RandomProjection(dataset.spec, seed=0), dataset, _ctx())
    assert set(r.metrics) == ALL_KEYS
    assert list(r.metrics) == [k for k in METRICS if k in r.metrics]
    for k, v in r.metrics.items():
        assert isinstance(v, float) and 0.0 <= v <= 1.0, k
    # per-item values are 0/1 correctness whose mean is the metric (bootstrap contract)
    assert set(r.item_metrics) == {"ACC", "ACC_audio", "ACC_visual", "kNN_ACC", "kNN_ACC_audio", "kNN_ACC_visual"}
    for k, items in r.item_metrics.items():
        assert len(items) == 40 and set(items) <= {0.0, 1.0}
        assert math.isclose(np.mean(items), r.metrics[k], abs_tol=1e-12)
    assert r.config["probe"] == "linear" and set(r.config["probe_fit"]) == {"fused", "audio", "visual"}
    assert all(info["C"] in C_GRID for info in r.config["probe_fit"].values())


@pytest.mark.parametrize("probe", ["linear", "mlp"])
def test_deterministic(dataset, probe) -> None:
    task = ClassificationTask()
    r1 = task.evaluate(RandomProjection(dataset.spec, seed=0), dataset, _ctx(probe=probe))
    torch.manual_seed(999)  # the global RNG state must not matter
    np.random.seed(999)
    r2 = task.evaluate(RandomProjection(dataset.spec, seed=0), dataset, _ctx(probe=probe))
    assert r1.metrics == r2.metrics
    assert r1.item_metrics == r2.item_metrics


def test_oracle_model_is_perfect(dataset) -> None:
    for probe in ("linear", "mlp"):
        r = ClassificationTask().evaluate(OracleModel(dataset), dataset, _ctx(probe=probe))
        assert r.metrics == {k: 1.0 for k in ALL_KEYS}, probe


def test_noise_model_is_near_chance(dataset) -> None:
    r = ClassificationTask().evaluate(NoiseModel(), dataset, _ctx())
    # 10 balanced classes, 40 test clips: chance is 0.1 (sd ~0.05)
    for k in ("ACC", "ACC_audio", "ACC_visual", "kNN_ACC", "kNN_ACC_audio", "kNN_ACC_visual"):
        assert r.metrics[k] <= 0.3, (k, r.metrics[k])
    assert r.metrics["ACC"] < ClassificationTask().evaluate(OracleModel(dataset), dataset, _ctx()).metrics["ACC"]


def test_audio_only_dataset_probes_audio_alone(dataset) -> None:
    spec = dataclasses.replace(dataset.spec, extra={**dataset.spec.extra, "audio_only": True})
    ds = InMemoryDataset(spec=spec, splits=dataset.splits, content_hash="x")

    class AudioOnly(OracleModel):
        def embed_visual(self, visual):
            raise AssertionError("the visual tower must not be called on an audio-only dataset")

    r = ClassificationTask().evaluate(AudioOnly(dataset), ds, _ctx())
    assert set(r.metrics) == {"ACC", "top5_ACC", "macro_F1", "kNN_ACC"}
    assert r.metrics["ACC"] == 1.0 and r.config["views"] == ["audio"]


def test_fewer_than_five_classes_has_no_top5() -> None:
    ds = build(AVSynthConfig.quick(num_classes=3, n_train=30, n_val=9, n_test=12), use_cache=False)
    r = ClassificationTask().evaluate(RandomProjection(ds.spec, seed=0), ds, _ctx())
    assert set(r.metrics) == ALL_KEYS - {"top5_ACC"}


def test_bad_option_and_bad_model_outputs(dataset) -> None:
    with pytest.raises(ConfigError, match="probe"):
        ClassificationTask().evaluate(RandomProjection(dataset.spec, seed=0), dataset, _ctx(probe="svm"))

    class NaNModel(NoiseModel):
        def embed_visual(self, visual):
            out = super().embed_visual(visual)
            out[0, 0] = float("nan")
            return out

    with pytest.raises(ModelError, match="embed_visual.*NaN"):
        ClassificationTask().evaluate(NaNModel(), dataset, _ctx())

    class ShortModel(NoiseModel):
        def embed_audio(self, audio):
            return super().embed_audio(audio)[:-1]

    with pytest.raises(ModelError, match="embed_audio"):
        ClassificationTask().evaluate(ShortModel(), dataset, _ctx())


# ----------------------------------------------------------------------------- k-NN
def _knn_brute(xtr, ytr, xte, k):
    """k-NN from the definition: cosine, nearest first (lower index on ties), majority vote,
    a tied vote goes to the tied class whose member is nearest."""
    preds = []
    for q in xte:
        sims = []
        for j, t in enumerate(xtr):
            nq, nt = np.linalg.norm(q), np.linalg.norm(t)
            sims.append((-(q @ t) / (max(nq, 1e-12) * max(nt, 1e-12)), j))
        nbrs = [j for _, j in sorted(sims)][: min(k, len(xtr))]
        votes: dict[int, int] = {}
        for j in nbrs:
            votes[int(ytr[j])] = votes.get(int(ytr[j]), 0) + 1
        top = max(votes.values())
        preds.append(next(int(ytr[j]) for j in nbrs if votes[int(ytr[j])] == top))
    return np.array(preds)


@pytest.mark.parametrize("seed", range(4))
def test_knn_matches_brute_force_random(seed) -> None:
    rng = np.random.default_rng(seed)
    xtr, xte = rng.normal(size=(50, 6)), rng.normal(size=(20, 6))
    ytr = rng.integers(0, 4, size=50)
    for k in (1, 4, 10):
        s = knn_scores(xtr, ytr, xte, 4, k, chunk=7)
        np.testing.assert_array_equal(np.argmax(s, axis=1), _knn_brute(xtr, ytr, xte, k))


def test_knn_adversarial() -> None:
    # duplicated train points (similarity ties), vote ties, k > n_train, a single query, zero vectors
    xtr = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [0.0, 0.0]])
    ytr = np.array([2, 1, 0, 0, 1])
    xte = np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0], [0.0, 0.0]])
    for k in (1, 2, 3, 4, 10):
        s = knn_scores(xtr, ytr, xte, 3, k)
        np.testing.assert_array_equal(np.argmax(s, axis=1), _knn_brute(xtr, ytr, xte, k))
    # k = 2 on query [1, 0]: neighbours 0 (class 2) then 1 (class 1): tie -> nearer class 2
    assert np.argmax(knn_scores(xtr, ytr, xte[:1], 3, 2)) == 2
    s = knn_scores(xtr[:1], ytr[:1], xte[:1], 3, 10)
    assert np.argmax(s) == 2 and s.shape == (1, 3)
    assert np.all(np.isfinite(s))


# ----------------------------------------------------------------------------- probes
def test_linear_probe_selection_matches_sklearn_pipeline() -> None:
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(4, 8)) * 1.5
    ytr, yva, yte = (rng.integers(0, 4, n) for n in (80, 40, 40))
    xtr, xva, xte = (centers[y] + rng.normal(size=(len(y), 8)) * 2 + 5 for y in (ytr, yva, yte))
    scores, info = linear_probe(xtr, ytr, xva, yva, xte, 4)
    accs = {c: float(np.mean(make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=1000))
                             .fit(xtr, ytr).predict(xva) == yva)) for c in C_GRID}
    best = max(accs.values())
    assert info["val_ACC"] == pytest.approx(best)
    assert info["C"] == min(c for c, a in accs.items() if a == best)  # ties -> strongest penalty
    ref = make_pipeline(StandardScaler(), LogisticRegression(C=info["C"], max_iter=1000)).fit(xtr, ytr)
    np.testing.assert_array_equal(np.argmax(scores, axis=1), ref.predict(xte))


def test_linear_probe_binary_and_missing_classes() -> None:
    rng = np.random.default_rng(1)
    ytr = np.array([0, 2] * 20)  # class 1 never seen in train
    xtr = ytr[:, None] + rng.normal(size=(40, 3)) * 0.1
    scores, _ = linear_probe(xtr, ytr, xtr, ytr, xtr, 3)
    assert scores.shape == (40, 3) and np.all(np.isfinite(scores))
    np.testing.assert_array_equal(np.argmax(scores, axis=1), ytr)
    assert np.all(scores[:, 1] < scores[:, [0, 2]].min(axis=1))


def test_mlp_probe_learns_and_is_seeded() -> None:
    rng = np.random.default_rng(2)
    y = rng.integers(0, 3, 90)
    x = np.eye(3)[y] * 3 + rng.normal(size=(90, 3)) * 0.3
    s1, info = mlp_probe(x[:60], y[:60], x[60:75], y[60:75], x[75:], 3, seed=5, epochs=60)
    s2, _ = mlp_probe(x[:60], y[:60], x[60:75], y[60:75], x[75:], 3, seed=5, epochs=60)
    np.testing.assert_array_equal(s1, s2)
    assert np.mean(np.argmax(s1, axis=1) == y[75:]) == 1.0 and 0 <= info["best_epoch"] < info["epochs_run"] <= 60


# ----------------------------------------------------------------------------- score / export
def test_score_hand_made() -> None:
    t = ClassificationTask()
    ref = {"labels": np.array([0, 1, 2, 2, 4, 5])}
    scores = np.eye(6)[[0, 1, 2, 3, 4, 5]]
    m = t.score({"scores": scores}, ref)
    # one-hot rows tie the 5 other classes at 0: the pessimistic top-5 misses the wrong row
    assert m["ACC"] == pytest.approx(5 / 6) and m["top5_ACC"] == pytest.approx(5 / 6)
    assert set(m) == {"ACC", "top5_ACC", "macro_F1"}
    m2 = t.score({"labels": np.array([0, 1, 2, 3, 4, 5])}, ref)
    assert m2 == {"ACC": m["ACC"], "macro_F1": m["macro_F1"]}
    # scores win over labels when both are given
    assert t.score({"scores": scores, "labels": np.zeros(6, int)}, ref) == m
    # ties: argmax takes the first index, an all-equal row predicts class 0
    assert t.score({"scores": np.zeros((2, 3))}, {"labels": np.array([0, 1])})["ACC"] == 0.5


@pytest.mark.parametrize("pred, ref, match", [
    ({}, {"labels": np.array([0])}, "pred: scores: missing array"),
    ({"scores": np.zeros((1, 2))}, {}, "ref: labels: missing array"),
    ({"scores": np.zeros((3, 2))}, {"labels": np.array([0, 1])}, "pred: scores: has 3 rows but ref labels has 2"),
    ({"labels": np.array([0])}, {"labels": np.array([0, 1])}, "pred: labels: has 1 items"),
    ({"scores": np.array([[np.nan, 0.0]])}, {"labels": np.array([0])}, "pred: scores: contains NaN"),
    ({"scores": np.zeros((1, 2))}, {"labels": np.array([2])}, "ref: labels: label 2 at index 0 has no column"),
    ({"scores": np.zeros((1, 2))}, {"labels": np.array([-1])}, "ref: labels: negative label"),
    ({"scores": np.zeros(2)}, {"labels": np.array([0, 1])}, "pred: scores: expected 2-D"),
    ({"labels": np.array([0.5])}, {"labels": np.array([0])}, "pred: labels: expected an integer"),
    ({"labels": np.array([-3])}, {"labels": np.array([0])}, "pred: labels_pred: negative"),
])
def test_score_errors(pred, ref, match) -> None:
    with pytest.raises(InputError, match=match):
        ClassificationTask().score(pred, ref)


def test_export_reference_round_trip(dataset) -> None:
    t = ClassificationTask()
    ref = t.export_reference(dataset, "test")
    assert set(ref) == {"labels"} and ref["labels"].dtype == np.int64
    np.testing.assert_array_equal(ref["labels"], dataset.split("test").labels)
    perfect = np.eye(dataset.spec.num_classes)[ref["labels"]]
    assert t.score({"scores": perfect}, ref) == {"ACC": 1.0, "top5_ACC": 1.0, "macro_F1": 1.0}
    assert t.score({"labels": ref["labels"]}, ref)["ACC"] == 1.0
    assert isinstance(t.export_inputs, str) and t.export_inputs


# ----------------------------------------------------------------------------- ESC-50 fold=all
class _Trained(RandomProjection):
    trainable = True


def test_esc50_fold_all_is_the_mean_of_the_five_fold_runs(esc_root, fresh_cache) -> None:  # noqa: F811
    cv = load_esc50(data_root=esc_root, options={"fold": "all"}, quick=False, seed=0)
    task = ClassificationTask()
    model = RandomProjection(cv.spec, seed=0)
    assert task.supports(model, cv.spec, cv.split("test")) is None
    r = task.evaluate(model, cv, _ctx())
    per_fold = {}
    for k in esc50_folds():
        one = load_esc50(data_root=esc_root, options={"fold": str(k)}, quick=False, seed=0)
        per_fold[k] = task.evaluate(RandomProjection(one.spec, seed=0), one, _ctx()).metrics
    for k in esc50_folds():
        assert r.metrics[f"ACC_fold{k}"] == per_fold[k]["ACC"]
    for key in ("ACC", "top5_ACC", "macro_F1", "kNN_ACC"):
        if key in per_fold[1]:
            assert r.metrics[key] == pytest.approx(np.mean([per_fold[k][key] for k in esc50_folds()]), abs=1e-15)
    assert set(r.metrics) == set(per_fold[1]) | FOLD_KEYS
    # per-fold values are the items, their mean is the metric (the record's bootstrap contract)
    assert r.item_metrics["ACC"] == [per_fold[k]["ACC"] for k in esc50_folds()]
    for key, items in r.item_metrics.items():
        assert len(items) == 5 and math.isclose(np.mean(items), r.metrics[key], abs_tol=1e-15)
    assert r.config["cv"]["folds"] == list(esc50_folds()) and set(r.config["probe_fit"]) == {"1", "2", "3", "4", "5"}
    assert "5-fold cross-validation" in r.protocol


def test_esc50_fold_all_outside_a_run_refuses_a_trained_model(esc_root, fresh_cache) -> None:  # noqa: F811
    cv = load_esc50(data_root=esc_root, options={"fold": "all"}, quick=False, seed=0)
    assert ClassificationTask().supports(_Trained(cv.spec, seed=0), cv.spec, cv.split("test")) is None
    with pytest.raises(ConfigError, match="fold=1..5"):
        ClassificationTask().evaluate(_Trained(cv.spec, seed=0), cv, _ctx())


def test_esc50_fold_all_trains_a_model_once_per_fold_in_a_run(esc_root, fresh_cache, tmp_path, capsys) -> None:  # noqa: F811
    """In a run, fold=all of a trained model equals the mean of five fold=K runs (each its own fit)."""
    def cfg(fold: str, out: str) -> RunConfig:
        return RunConfig(models=["infonce"], tasks=["classification"], dataset="esc50", data_root=str(esc_root),
                         dataset_options={"fold": fold}, seeds=[0], out=tmp_path / out, device="cpu", progress=False,
                         model_args={"epochs": 2, "quick_epochs": 2})

    cv = run(cfg("all", "cv"))[0]
    assert capsys.readouterr().err.count("[train] infonce") == 5  # fold 1 for the cell, then folds 2-5
    for k in esc50_folds():
        one = run(cfg(str(k), f"f{k}"))[0]
        assert cv.metrics[f"ACC_fold{k}"] == one.metrics["ACC"]
    assert cv.metrics["ACC"] == pytest.approx(np.mean([cv.metrics[f"ACC_fold{k}"] for k in esc50_folds()]))
    capsys.readouterr()
    again = run(cfg("all", "cv2"))[0]  # checkpoints of every fold are reused
    assert "[train]" not in capsys.readouterr().err and again.metrics == cv.metrics
