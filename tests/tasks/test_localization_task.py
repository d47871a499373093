"""Tests of the localization adapter: heatmaps, keys, chance/oracle models, supports(), score()."""
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
from avcl_bench.tasks.localization import metrics as loc
from avcl_bench.tasks.localization.task import (
    METRICS,
    NEGATIVE_KINDS,
    AudioFrontend,
    LocalizationTask,
    heatmaps_of,
    plan_negatives,
)
from avcl_bench.tasks.registry import get_task

LVS_KEYS = {"cIoU", "AUC", "mean_cIoU"}
SLAVC_KEYS = {"AP", "max_F1", "precision"}
KEYS = LVS_KEYS | SLAVC_KEYS


@pytest.fixture(scope="module")
def dataset() -> InMemoryDataset:
    return build(AVSynthConfig.quick(n_train=30, n_val=10, n_test=40), use_cache=False)


def _with_test(dataset: InMemoryDataset, **changes) -> InMemoryDataset:
    splits = dict(dataset.splits)
    splits["test"] = dataclasses.replace(splits["test"], **changes)
    return InMemoryDataset(spec=dataset.spec, splits=splits, content_hash="edited")


class OracleModel:
    """Cheats: finds the mask of a target frame by its bytes; spatial map [mask, 1 - mask], audio [1, 0]."""

    capabilities = frozenset({"spatial"})
    trainable = False
    dim = 2

    def __init__(self, dataset: InMemoryDataset):
        self.masks = {}
        for name in ("train", "val", "test"):
            s = dataset.split(name)
            for f, m in zip(np.asarray(s.frames), np.asarray(s.masks)):
                self.masks[f.tobytes()] = torch.as_tensor(m, dtype=torch.float32)
        self.inputs: list[tuple[int, ...]] = []

    def fit(self, *a) -> None:  # pragma: no cover
        pass

    def config(self) -> dict:
        return {}

    def embed_audio(self, audio: torch.Tensor) -> torch.Tensor:
        return torch.tensor([[1.0, 0.0]]).repeat(len(audio), 1)

    def embed_visual(self, visual: torch.Tensor) -> torch.Tensor:  # pragma: no cover - unused by the task
        return torch.zeros(len(visual), 2)

    def embed_visual_spatial(self, visual: torch.Tensor) -> torch.Tensor:
        self.inputs.append(tuple(visual.shape))
        assert visual.shape[1] == 1, "the target frame must be given as a one-frame clip"
        keys = [torch.round(v[0] * 255).to(torch.uint8).numpy().tobytes() for v in visual]
        m = torch.stack([self.masks[k] for k in keys])
        return torch.stack([m, 1 - m], dim=1)


def _ctx(**options) -> EvalContext:
    return EvalContext(seed=0, quick=True, options=options)


# ----------------------------------------------------------------------------- evaluate
def test_registered_and_docstring_protocol() -> None:
    import avcl_bench.tasks.localization.task as mod

    assert isinstance(get_task("localization"), LocalizationTask)
    paragraphs = [p for p in mod.__doc__.split("\n\n") if p.strip()]
    assert len(paragraphs) >= 2 and "\n" not in paragraphs[0].strip()
    assert set(METRICS) == KEYS and LocalizationTask.metadata.needs == ("masks",)


def test_random_model_is_near_chance(dataset) -> None:
    r = LocalizationTask().evaluate(RandomProjection(dataset.spec, seed=0), dataset, _ctx())
    assert set(r.metrics) == KEYS
    for v in r.metrics.values():
        assert isinstance(v, float) and 0.0 <= v <= 1.0
    # a random half of the pixels scores f / (1 + f) for mask fraction f ~ 0.15-0.25; cIoU (the share
    # of clips with IoU >= 0.5) is a count over 40 clips, so it is averaged over four projections
    runs = [r] + [LocalizationTask().evaluate(RandomProjection(dataset.spec, seed=s), dataset, _ctx()) for s in (1, 2, 3)]
    assert np.mean([x.metrics["mean_cIoU"] for x in runs]) < 0.35
    assert np.mean([x.metrics["cIoU"] for x in runs]) < 0.22
    assert set(r.item_metrics) == {"mean_cIoU", "cIoU", "precision"}
    for k, items in r.item_metrics.items():
        assert len(items) == (80 if k == "precision" else 40)  # precision: positives + one negative per image
        assert math.isclose(np.mean(items), r.metrics[k], abs_tol=1e-12)
    assert r.config["visual_input"] == "target frame"


def test_oracle_model_is_perfect(dataset) -> None:
    model = OracleModel(dataset)
    r = LocalizationTask().evaluate(model, dataset, _ctx())
    assert r.metrics["cIoU"] == 1.0 and r.metrics["mean_cIoU"] == pytest.approx(1.0)
    assert r.metrics["AUC"] == pytest.approx(1.0)
    assert all(shape[1:] == (1, 3, 32, 32) for shape in model.inputs)


def test_deterministic(dataset) -> None:
    r1 = LocalizationTask().evaluate(RandomProjection(dataset.spec, seed=3), dataset, _ctx())
    r2 = LocalizationTask().evaluate(RandomProjection(dataset.spec, seed=3), dataset, _ctx())
    assert r1.metrics == r2.metrics and r1.item_metrics == r2.item_metrics


def test_heatmaps_are_cosine_similarities(dataset) -> None:
    model = RandomProjection(dataset.spec, dim=5, seed=1)
    test = dataset.split("test")
    got = np.concatenate([h for _, h in heatmaps_of(model, test, dataset.spec, batch_size=16)])
    frames = torch.as_tensor(np.asarray(test.frames)).float()[:, None] / 255
    a = model.embed_audio(torch.as_tensor(np.asarray(test.audio))).double().numpy()
    s = model.embed_visual_spatial(frames).double().numpy()
    assert got.shape == (40, 32, 32)
    for n in (0, 17, 39):  # brute force per pixel
        for y, x in ((0, 0), (5, 31), (20, 11)):
            v = s[n, :, y, x]
            want = a[n] @ v / (np.linalg.norm(a[n]) * np.linalg.norm(v))
            assert got[n, y, x] == pytest.approx(want, rel=1e-9, abs=1e-12)


def test_without_frames_the_clip_visual_is_used(dataset) -> None:
    seen = []

    class Recorder(RandomProjection):
        def embed_visual_spatial(self, visual):
            seen.append(tuple(visual.shape))
            return super().embed_visual_spatial(visual)

    ds = _with_test(dataset, frames=None)
    r = LocalizationTask().evaluate(Recorder(dataset.spec), ds, _ctx())
    assert r.config["visual_input"] == "clip visual" and set(r.metrics) == KEYS
    assert all(shape[1:] == (10, 3, 32, 32) for shape in seen)


def test_supports(dataset) -> None:
    task, test = LocalizationTask(), dataset.split("test")
    assert task.supports(RandomProjection(dataset.spec, seed=0), dataset.spec, test) is None
    assert task.supports(None, dataset.spec, test) is None

    class NoSpatial:
        capabilities = frozenset({"segments"})

    assert "spatial" in task.supports(NoSpatial(), dataset.spec, test)
    no_masks = dataclasses.replace(test, masks=None)
    assert "masks" in task.supports(RandomProjection(dataset.spec, seed=0), dataset.spec, no_masks)


def test_empty_masks_follow_the_option(dataset) -> None:
    masks = np.array(dataset.split("test").masks)
    masks[3] = 0
    ds = _with_test(dataset, masks=masks)
    with pytest.raises(InputError, match="sample 3 has an empty mask"):
        LocalizationTask().evaluate(RandomProjection(dataset.spec, seed=0), ds, _ctx())
    r = LocalizationTask().evaluate(OracleModel(ds), ds, _ctx(empty_mask="zero"))
    assert r.item_metrics["mean_cIoU"][3] == 0.0 and r.metrics["cIoU"] == pytest.approx(39 / 40)
    with pytest.raises(ConfigError, match="empty_mask"):
        LocalizationTask().evaluate(RandomProjection(dataset.spec, seed=0), dataset, _ctx(empty_mask="skip"))


def test_broken_model_outputs(dataset) -> None:
    class WrongDim(RandomProjection):
        def embed_visual_spatial(self, visual):
            return super().embed_visual_spatial(visual)[:, :3]

    with pytest.raises(ModelError, match="embed_visual_spatial: expected shape"):
        LocalizationTask().evaluate(WrongDim(dataset.spec), dataset, _ctx())

    class NaNAudio(RandomProjection):
        def embed_audio(self, audio):
            out = super().embed_audio(audio)
            out[0, 0] = float("nan")
            return out

    with pytest.raises(ModelError, match="embed_audio: contains NaN"):
        LocalizationTask().evaluate(NaNAudio(dataset.spec), dataset, _ctx())


# ----------------------------------------------------------------------------- score / export
def _ciou_brute(heat: np.ndarray, mask: np.ndarray) -> float:
    """cIoU of one same-size map from the LVS definition (top half kept strictly above the median element)."""
    flat = sorted(heat.ravel().tolist())
    t = flat[len(flat) // 2]
    keep = heat > t
    return float((keep * mask).sum() / (mask.sum() + (keep & (mask == 0)).sum()))


def test_score_hand_made() -> None:
    task = LocalizationTask()
    rng = np.random.default_rng(0)
    masks = np.zeros((6, 8, 8))
    masks[:, 2:5, 3:6] = 1.0
    masks[1, 0, 0] = 0.5  # soft consensus values are allowed
    heat = rng.normal(size=(6, 8, 8))
    heat[0] = masks[0]  # perfect
    heat[1] = 1.0  # constant map keeps nothing
    m = task.score({"heatmaps": heat}, {"masks": masks})
    per = [_ciou_brute(h, g) for h, g in zip(heat, masks)]
    assert per[0] == 1.0 and per[1] == 0.0
    assert m["mean_cIoU"] == pytest.approx(np.mean(per))
    assert m["cIoU"] == pytest.approx(np.mean(np.array(per) >= 0.5))
    # low-resolution heatmaps are resized bilinearly (half-pixel centres) to the masks' size
    low = rng.normal(size=(6, 3, 5))
    up = torch.nn.functional.interpolate(torch.as_tensor(low)[:, None], size=(8, 8), mode="bilinear",
                                         align_corners=False)[:, 0].numpy()
    per_up = [_ciou_brute(h, g) for h, g in zip(up, masks)]
    assert task.score({"heatmaps": low}, {"masks": masks})["mean_cIoU"] == pytest.approx(np.mean(per_up))


@pytest.mark.parametrize("pred, ref, match", [
    ({}, {"masks": np.ones((1, 2, 2))}, "pred: heatmaps: missing array"),
    ({"heatmaps": np.ones((1, 2, 2))}, {}, "ref: masks: missing array"),
    ({"heatmaps": np.ones((2, 2, 2))}, {"masks": np.ones((1, 2, 2))}, "pred: heatmaps: has 2 maps but ref masks has 1"),
    ({"heatmaps": np.full((1, 2, 2), np.nan)}, {"masks": np.ones((1, 2, 2))}, "pred: heatmaps: contains NaN"),
    ({"heatmaps": np.ones((1, 2, 2))}, {"masks": np.full((1, 2, 2), 2.0)}, r"ref: masks: values must lie in \[0, 1\]"),
    ({"heatmaps": np.ones((1, 2, 2))}, {"masks": np.zeros((1, 2, 2))}, "ref: masks: sample 0 has an empty mask"),
    ({"heatmaps": np.ones((2, 2))}, {"masks": np.ones((1, 2, 2))}, "pred: heatmaps: expected 3-D"),
    ({"heatmaps": np.ones((1, 0, 2))}, {"masks": np.ones((1, 2, 2))}, "pred: heatmaps: maps must be at least 1x1"),
])
def test_score_errors(pred, ref, match) -> None:
    with pytest.raises(InputError, match=match):
        LocalizationTask().score(pred, ref)


def test_score_empty_mask_zero() -> None:
    masks = np.zeros((2, 4, 4))
    masks[0, :1, :1] = 1
    heat = masks.copy()
    assert LocalizationTask().score({"heatmaps": heat}, {"masks": masks}, empty_mask="zero")["mean_cIoU"] == 0.5
    with pytest.raises(ConfigError):
        LocalizationTask().score({"heatmaps": heat}, {"masks": masks}, empty_mask="maybe")


def test_export_reference_round_trip(dataset) -> None:
    task = LocalizationTask()
    ref = task.export_reference(dataset, "test")
    assert set(ref) == {"masks"} and ref["masks"].shape == (40, 32, 32)
    np.testing.assert_array_equal(ref["masks"], dataset.split("test").masks)
    # without neg_heatmaps the SLAVC metrics are not reported
    assert task.score({"heatmaps": ref["masks"]}, ref) == {"cIoU": 1.0, "AUC": pytest.approx(1.0), "mean_cIoU": 1.0}
    with pytest.raises(InputError, match="no masks"):
        task.export_reference(_with_test(dataset, masks=None), "test")
    assert isinstance(task.export_inputs, str) and task.export_inputs


# ----------------------------------------------------------------------------- negatives (SLAVC)
class ToyFrontend:
    """A dataset front end: mean power of each of T x Fa chunks of the waveform, in log (records its calls)."""

    def __init__(self, spec, samples: int = 600, level: float = 0.3):
        self.samples, self.level = samples, level
        self.t, self.fa = spec.audio_shape
        self.calls: list[np.ndarray] = []

    def __call__(self, waves: np.ndarray) -> np.ndarray:
        waves = np.asarray(waves, dtype=np.float64)
        self.calls.append(waves)
        chunks = waves.reshape(len(waves), self.t * self.fa, -1)
        return np.log((chunks**2).mean(axis=2) + 1e-6).reshape(len(waves), self.t, self.fa).astype(np.float32)


def _with_frontend(dataset: InMemoryDataset, frontend=None) -> tuple[InMemoryDataset, ToyFrontend]:
    t, fa = dataset.spec.audio_shape
    fe = frontend or ToyFrontend(dataset.spec, samples=t * fa * 4)
    return _with_test(dataset, meta={"audio_frontend": fe}), fe


class AudioRecorder(RandomProjection):
    """Records every audio batch it embeds."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.audio_inputs: list[np.ndarray] = []

    def embed_audio(self, audio):
        self.audio_inputs.append(audio.numpy().copy())
        return super().embed_audio(audio)


def test_plan_negatives_is_balanced_seeded_and_offscreen_is_another_class(dataset) -> None:
    test = _with_test(dataset, meta={}).split("test")
    plan = plan_negatives(test)
    assert plan.available == ("offscreen",)  # no front end: no silence / noise
    assert plan.counts() == {"offscreen": 40}
    assert plan_negatives(dataset.split("test")).available == tuple(NEGATIVE_KINDS)  # avsynth has one
    ds, _ = _with_frontend(dataset)
    plan = plan_negatives(ds.split("test"))
    assert plan.available == ("silence", "noise", "offscreen") == tuple(NEGATIVE_KINDS)
    counts = plan.counts()
    assert sum(counts.values()) == 40 and max(counts.values()) - min(counts.values()) <= 1
    labels = np.asarray(test.labels)
    off = plan.kind == list(NEGATIVE_KINDS).index("offscreen")
    assert (labels[plan.partner[off]] != labels[off]).all() and (plan.partner[~off] == -1).all()
    again = plan_negatives(ds.split("test"))
    np.testing.assert_array_equal(again.kind, plan.kind)
    np.testing.assert_array_equal(again.partner, plan.partner)
    one_class = _with_test(dataset, labels=np.zeros(40, dtype=np.int64))
    assert plan_negatives(one_class.split("test")).available == ("silence", "noise")  # no off-screen class
    assert plan_negatives(_with_test(one_class, meta={}).split("test")).available == ()


def test_negative_audio_is_silence_noise_or_another_clip(dataset) -> None:
    ds, fe = _with_frontend(dataset)
    test = ds.split("test")
    model = AudioRecorder(dataset.spec, seed=0)
    r = LocalizationTask().evaluate(model, ds, _ctx())
    assert set(r.metrics) == KEYS
    assert r.config["negatives"] == plan_negatives(test).counts() and r.config["ties"] == "strict"
    fed = np.concatenate(model.audio_inputs)  # the negatives' pass comes first, then the positives'
    neg, pos = fed[:40], fed[40:]
    np.testing.assert_array_equal(pos, np.asarray(test.audio, dtype=np.float32))
    plan = plan_negatives(test)
    names = list(NEGATIVE_KINDS)
    silence = fe(np.zeros((1, fe.samples)))[0]
    waves = np.concatenate([c for c in fe.calls if c.any()])  # the noise waveforms
    assert waves.shape == (counts := plan.counts()["noise"], fe.samples)
    assert np.sqrt((waves**2).mean()) == pytest.approx(fe.level, rel=0.05)  # white noise at the dataset's level
    assert len({w.tobytes() for w in waves}) == counts
    for n in range(40):
        kind = names[plan.kind[n]]
        if kind == "silence":
            np.testing.assert_array_equal(neg[n], silence)
        elif kind == "offscreen":
            np.testing.assert_array_equal(neg[n], test.audio[plan.partner[n]])
        else:
            assert not np.array_equal(neg[n], silence)
    r2 = LocalizationTask().evaluate(AudioRecorder(dataset.spec, seed=0), _with_frontend(dataset)[0], _ctx())
    assert r2.metrics == r.metrics  # deterministic


def test_slavc_metrics_equal_score_of_the_heatmaps_by_hand(dataset) -> None:
    ds, _ = _with_frontend(dataset)
    test = ds.split("test")
    model = AudioRecorder(dataset.spec, dim=6, seed=2)
    r = LocalizationTask().evaluate(model, ds, _ctx())
    neg_audio = torch.as_tensor(np.concatenate(model.audio_inputs)[:40])
    frames = torch.as_tensor(np.asarray(test.frames)).float()[:, None] / 255
    s = torch.nn.functional.normalize(model.embed_visual_spatial(frames).double(), dim=1)  # cosine (eps for 0)
    heat = {}
    for name, audio in (("heatmaps", torch.as_tensor(np.asarray(test.audio))), ("neg_heatmaps", neg_audio)):
        a = torch.nn.functional.normalize(model.embed_audio(audio).double(), dim=1)
        heat[name] = torch.einsum("bd,bdhw->bhw", a, s).numpy()
    scored = LocalizationTask().score(heat, {"masks": np.asarray(test.masks, dtype=np.float64)})
    assert set(scored) == KEYS
    for k in KEYS:
        assert r.metrics[k] == pytest.approx(scored[k], abs=1e-9), k


def test_a_model_that_ignores_the_audio_is_caught_by_the_negatives(dataset) -> None:
    """The oracle localizes every positive (cIoU 1) but lights up the same place for every audio."""
    ds, _ = _with_frontend(dataset)
    r = LocalizationTask().evaluate(OracleModel(dataset), ds, _ctx())
    assert r.metrics["cIoU"] == 1.0 and r.metrics["mean_cIoU"] == pytest.approx(1.0)
    assert r.metrics["precision"] == 0.5  # half the items are negatives it calls positive
    # each negative ties with its positive: precision 1/2 at every threshold
    assert r.metrics["AP"] == pytest.approx(0.5) and r.metrics["max_F1"] == pytest.approx(2 * 0.5 / 1.5)


def test_without_other_classes_or_front_end_no_slavc_metrics(dataset) -> None:
    ds = _with_test(dataset, labels=np.zeros(40, dtype=np.int64), meta={})
    r = LocalizationTask().evaluate(RandomProjection(dataset.spec, seed=0), ds, _ctx())
    assert set(r.metrics) == LVS_KEYS and "precision" not in r.item_metrics and r.config["negatives"] == {}


def test_avsynth_negatives_use_its_front_end(dataset) -> None:
    """On avsynth the silence negative is the standardised log-mel of zeros, far below every real clip."""
    model = AudioRecorder(dataset.spec, seed=1)
    r = LocalizationTask().evaluate(model, dataset, _ctx())
    test = dataset.split("test")
    fe = test.meta["audio_frontend"]
    plan = plan_negatives(test)
    assert r.config["negatives"] == plan.counts() and set(plan.counts()) == set(NEGATIVE_KINDS)
    neg = np.concatenate(model.audio_inputs)[:40]
    silent = plan.kind == list(NEGATIVE_KINDS).index("silence")
    np.testing.assert_array_equal(neg[silent], np.repeat(fe(np.zeros((1, fe.samples))), silent.sum(), axis=0))
    assert neg[silent].max() < np.asarray(test.audio).min()
    assert set(r.metrics) == KEYS and r.metrics["precision"] == pytest.approx(r.metrics["cIoU"] / 2)


def test_a_broken_front_end_is_named(dataset) -> None:
    class Wrong(ToyFrontend):
        def __call__(self, waves):
            return super().__call__(waves)[:, :1]

    t, fa = dataset.spec.audio_shape
    ds, _ = _with_frontend(dataset, Wrong(dataset.spec, samples=t * fa * 4))
    with pytest.raises(InputError, match="audio_frontend: silence features must be finite, of shape"):
        LocalizationTask().evaluate(RandomProjection(dataset.spec, seed=0), ds, _ctx())
    assert isinstance(ToyFrontend(dataset.spec), AudioFrontend)


def test_ties_option_in_evaluate(dataset) -> None:
    class Flat(OracleModel):
        def embed_visual_spatial(self, visual):  # a constant map: every pixel ties at the maximum
            return torch.ones_like(super().embed_visual_spatial(visual))

    strict = LocalizationTask().evaluate(Flat(dataset), dataset, _ctx())
    official = LocalizationTask().evaluate(Flat(dataset), dataset, _ctx(ties="official"))
    assert official.config["ties"] == "official" and strict.config["ties"] == "strict"
    assert strict.metrics["mean_cIoU"] == 0.0  # strict: nothing is above the median element
    masks = np.asarray(dataset.split("test").masks, dtype=np.float64)
    area = masks.reshape(40, -1).mean(axis=1)  # official: the whole image is kept, cIoU = mask area share
    assert official.metrics["mean_cIoU"] == pytest.approx(np.mean(area), abs=1e-12)
    with pytest.raises(ConfigError, match="option ties must be one of strict, official"):
        LocalizationTask().evaluate(RandomProjection(dataset.spec, seed=0), dataset, _ctx(ties="loose"))


def test_score_with_negatives() -> None:
    rng = np.random.default_rng(4)
    masks = np.zeros((5, 8, 8))
    masks[:, 2:6, 1:5] = 1.0
    heat = rng.normal(size=(5, 8, 8)) + 2 * masks
    neg = rng.normal(size=(7, 4, 4))  # another size: resized to the masks' size
    m = LocalizationTask().score({"heatmaps": heat, "neg_heatmaps": neg}, {"masks": masks})
    assert set(m) == KEYS
    ciou = loc.ciou_per_sample(heat, masks)
    want = loc.slavc_metrics(ciou, loc.confidence_per_sample(heat), loc.confidence_per_sample(neg, (8, 8)))
    assert {k: m[k] for k in SLAVC_KEYS} == want
    up = torch.nn.functional.interpolate(torch.as_tensor(neg)[:, None], size=(8, 8), mode="bilinear",
                                         align_corners=False)[:, 0].numpy()
    conf_up = [np.sort(h.ravel())[-64 // 4 :].mean() for h in up]
    np.testing.assert_allclose(loc.confidence_per_sample(neg, (8, 8)), conf_up, rtol=0, atol=1e-12)
    for bad, match in ((np.full((2, 4, 4), np.nan), "pred: neg_heatmaps: contains NaN"),
                       (np.ones((4, 4)), "pred: neg_heatmaps: expected 3-D"),
                       (np.ones((0, 4, 4)), "pred: neg_heatmaps: .*at least 1")):
        with pytest.raises(InputError, match=match):
            LocalizationTask().score({"heatmaps": heat, "neg_heatmaps": bad}, {"masks": masks})


def test_score_ties_official() -> None:
    masks = np.zeros((2, 4, 4))
    masks[:, :3] = 1.0
    heat = masks.copy()  # 12 of 16 pixels tied at the maximum
    task = LocalizationTask()
    assert task.score({"heatmaps": heat}, {"masks": masks})["mean_cIoU"] == 0.0
    assert task.score({"heatmaps": heat}, {"masks": masks}, ties="official")["mean_cIoU"] == 1.0
    with pytest.raises(ConfigError, match="ties"):
        task.score({"heatmaps": heat}, {"masks": masks}, ties="both")
