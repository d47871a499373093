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
from avcl_bench.tasks.localization.task import METRICS, LocalizationTask, heatmaps_of
from avcl_bench.tasks.registry import get_task

KEYS = {"cIoU", "AUC", "mean_cIoU"}


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
    # a random half of the pixels scores f / (1 + f) for mask fraction f ~ 0.15-0.25
    assert r.metrics["mean_cIoU"] < 0.35 and r.metrics["cIoU"] < 0.2
    assert set(r.item_metrics) == {"mean_cIoU", "cIoU"}
    for k, items in r.item_metrics.items():
        assert len(items) == 40 and math.isclose(np.mean(items), r.metrics[k], abs_tol=1e-12)
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
    assert task.score({"heatmaps": ref["masks"]}, ref) == {"cIoU": 1.0, "AUC": pytest.approx(1.0), "mean_cIoU": 1.0}
    with pytest.raises(InputError, match="no masks"):
        task.export_reference(_with_test(dataset, masks=None), "test")
    assert isinstance(task.export_inputs, str) and task.export_inputs
