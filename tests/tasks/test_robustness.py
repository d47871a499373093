"""The robustness task: corruptions, keys, AUCs, the cache, run-only score, and a runner run (random < learned)."""
from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import auc as sk_auc
from sklearn.metrics import average_precision_score
from sklearn.metrics.pairwise import cosine_similarity

from avcl_bench.baselines.random_projection import RandomProjection
from avcl_bench.benchmark.cli import main
from avcl_bench.benchmark.datasets.base import AVSplit, InMemoryDataset
from avcl_bench.benchmark.embedding import embed_split
from avcl_bench.benchmark.errors import ConfigError
from avcl_bench.benchmark.interface import DataSpec
from avcl_bench.benchmark.readme import headline_table
from avcl_bench.benchmark.runner import RunConfig, run
from avcl_bench.benchmark.schema import TASK_FAMILIES
from avcl_bench.tasks.base import EvalContext
from avcl_bench.tasks.classification.task import ClassificationTask
from avcl_bench.tasks.registry import TASKS, get_task
from avcl_bench.tasks.retrieval.metrics import retrieval_metrics
from avcl_bench.tasks.retrieval.task import RetrievalTask
from avcl_bench.tasks.robustness.task import (
    CORRUPTIONS,
    METRICS,
    ItemDraws,
    RobustnessTask,
    corrupt_batch,
    corrupted_map,
)

K, T, FA, HW = 4, 2, 16, 8
LEVEL_KEY = re.compile(r"^(mAP|ACC)@([a-z_]+)=(\d+(?:\.\d+)?)(dB|%)?$")


def _toy_arrays(n: int = 240, seed: int = 0) -> dict[str, np.ndarray]:
    """K well separated classes: an audio prototype per class, a bright quadrant of one colour per class."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % K
    audio = rng.standard_normal((K, T, FA))[labels] + 1.0 * rng.standard_normal((n, T, FA))
    vis = rng.uniform(0, 90, size=(n, T, 3, HW, HW))
    for i, y in enumerate(labels):
        r, c = divmod(int(y), 2)
        vis[i, :, y % 3, r * 4 : (r + 1) * 4, c * 4 : (c + 1) * 4] += 150
    split = np.array(["train"] * (n // 2) + ["val"] * (n // 6) + ["test"] * (n - n // 2 - n // 6))
    return {"audio": audio.astype(np.float32), "visual": np.clip(vis, 0, 255).astype(np.uint8), "labels": labels,
            "split": split}


@pytest.fixture(scope="module")
def toy_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("robustness") / "toy.npz"
    np.savez(path, **_toy_arrays())
    return path


@pytest.fixture(scope="module")
def dataset() -> InMemoryDataset:
    arrays = _toy_arrays()
    splits = {}
    for name in ("train", "val", "test"):
        idx = np.flatnonzero(arrays["split"] == name)
        splits[name] = AVSplit(audio=arrays["audio"][idx], visual=arrays["visual"][idx], labels=arrays["labels"][idx])
    spec = DataSpec(name="toy", audio_shape=(T, FA), visual_shape=(T, 3, HW, HW), num_classes=K,
                    class_names=tuple(map(str, range(K))), visual_is_image=True)
    return InMemoryDataset(spec=spec, splits=splits, content_hash="toy")


def _ctx(seed: int = 0, **options) -> EvalContext:
    return EvalContext(seed=seed, quick=True, options=options)


def _severity(corruption: str, label: str) -> float:
    """The protocol's severity of a level, parsed from its key label (independent of the task's table)."""
    value = float(label.removesuffix("dB").removesuffix("%"))
    if corruption == "audio_snr":
        return 10.0 ** (-value / 20.0)  # noise RMS over feature RMS
    return value / 100.0 if label.endswith("%") else value


# ----------------------------------------------------------------------------- metadata and keys
def test_registered_everywhere_and_keys_follow_the_contract() -> None:
    assert "robustness" in TASK_FAMILIES and isinstance(get_task("robustness"), RobustnessTask)
    assert "robustness" in TASKS and TASK_FAMILIES.index("robustness") == list(TASKS).index("robustness")
    meta = RobustnessTask.metadata
    assert meta.main_score == "mean_AUC" and meta.headline == ("mean_AUC", *(f"AUC_{c}" for c in CORRUPTIONS))
    assert set(CORRUPTIONS) == {"audio_snr", "visual_occlusion", "visual_noise", "missing_audio", "missing_visual"}
    levels = [k for k in METRICS if "@" in k and "=" in k and not k.startswith("AUC_")]
    assert len(levels) == sum(len(c.levels) * len(c.metrics) for c in CORRUPTIONS.values())
    for key in levels:
        m = LEVEL_KEY.match(key)
        assert m is not None, key
        assert m.group(2) in CORRUPTIONS
    assert {"mAP@audio_snr=10dB", "ACC@visual_occlusion=50%", "mAP@visual_noise=0.2", "ACC@missing_visual=100%",
            "AUC_audio_snr", "AUC_mAP@audio_snr", "mAP@clean", "ACC@clean"} <= set(METRICS)
    for spec in METRICS.values():
        assert spec.higher_is_better and spec.unit == "fraction" and (spec.lower, spec.upper) == (0.0, 1.0)
        assert spec.description


def test_supports_run_only_and_needs_both_modalities_with_frames(dataset) -> None:
    task, test = get_task("robustness"), dataset.split("test")
    model = RandomProjection(dataset.spec)
    assert task.supports(model, dataset.spec, test) is None
    assert "run-only" in task.supports(None, dataset.spec, test)
    audio_only = dataclasses.replace(dataset.spec, extra={"audio_only": True})
    assert "audio-only" in task.supports(model, audio_only, test)
    features = dataclasses.replace(dataset.spec, visual_is_image=False)
    assert "image frames" in task.supports(model, features, test)


def test_score_and_export_reference_are_one_line_errors(dataset, tmp_path, capsys) -> None:
    task = get_task("robustness")
    with pytest.raises(ConfigError, match="run-only") as e:
        task.score({"audio": np.ones((2, 2))}, {"labels": np.zeros(2, dtype=int)})
    assert "\n" not in str(e.value)
    with pytest.raises(ConfigError, match="run-only"):
        task.export_reference(dataset)
    np.savez(tmp_path / "p.npz", audio=np.ones((2, 2)))
    np.savez(tmp_path / "r.npz", labels=np.zeros(2, dtype=int))
    assert main(["score", "robustness", "--pred", str(tmp_path / "p.npz"), "--ref", str(tmp_path / "r.npz")]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "run-only" in err and len(err.strip().splitlines()) == 1


# ----------------------------------------------------------------------------- corruptions
def _batch(corruption: str, level: int, split: AVSplit, idx, seed: int = 0) -> np.ndarray:
    c = CORRUPTIONS[corruption]
    return corrupt_batch(c, c.levels[level], split, np.asarray(idx), ItemDraws(seed, c.name, len(split))).numpy()


def test_audio_noise_has_the_requested_snr(dataset) -> None:
    test = dataset.split("test")
    clean = np.asarray(test.audio, dtype=np.float64)
    idx = np.arange(len(test))
    for j, lv in enumerate(CORRUPTIONS["audio_snr"].levels):
        noisy = _batch("audio_snr", j, test, idx).astype(np.float64)
        noise = noisy - clean
        snr = 10 * np.log10(np.mean(clean**2, axis=(1, 2)) / np.mean(noise**2, axis=(1, 2)))
        # 32 values per clip: the measured SNR scatters around the target, its mean is close
        assert abs(float(np.mean(snr)) - lv.param) < 0.6, (lv.label, np.mean(snr))
        assert abs(float(np.mean(noise))) < 0.05


def test_occlusion_noise_and_missing_inputs(dataset) -> None:
    test = dataset.split("test")
    idx = np.arange(len(test))
    clean = np.asarray(test.visual, dtype=np.float32) / 255.0
    for j, lv in enumerate(CORRUPTIONS["visual_occlusion"].levels):
        occ = _batch("visual_occlusion", j, test, idx)
        changed = (occ != clean).any(axis=(1, 2))  # (N, H, W): pixels changed in any frame / channel
        zeroed = (occ == 0).all(axis=(1, 2))
        side = round(np.sqrt(lv.param) * HW)
        assert (zeroed.sum(axis=(1, 2)) == side * side).all()  # one box of the requested share per clip
        assert not (changed & ~zeroed).any()  # nothing but the box changes
        per_frame = (occ == 0).all(axis=2)  # (N, T, H, W)
        assert np.array_equal(per_frame[:, 0], per_frame[:, 1])  # the same box in every frame of a clip
    gray = AVSplit(audio=np.asarray(test.audio), visual=np.full_like(np.asarray(test.visual), 128),
                   labels=test.labels)
    for j, lv in enumerate(CORRUPTIONS["visual_noise"].levels):
        noisy = _batch("visual_noise", j, gray, idx)
        assert noisy.min() >= 0.0 and noisy.max() <= 1.0  # uint8 frames: clipped to [0, 1]
        noise = noisy - 128 / 255
        assert abs(float(np.mean(noise))) < 0.01
        if lv.param <= 0.2:  # at most 1.2% of the values clipped: the std is the requested one
            assert abs(float(np.std(noise)) - lv.param) < 0.05 * lv.param
        else:
            assert noisy.min() == 0.0 and noisy.max() == 1.0
    kept = None
    for j, lv in enumerate(CORRUPTIONS["missing_audio"].levels):
        miss = _batch("missing_audio", j, test, idx)
        zero = (miss == 0).all(axis=(1, 2))
        assert zero.sum() == round(lv.param * len(test))
        assert np.array_equal(miss[~zero], np.asarray(test.audio)[~zero])
        if kept is not None:
            assert not (kept & ~zero).any()  # nested: a clip missing at 50% is missing at 100%
        kept = zero


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_corruption_is_per_item_and_seeded(dataset, name) -> None:
    test = dataset.split("test")
    whole = _batch(name, 0, test, np.arange(len(test)))
    parts = np.concatenate([_batch(name, 0, test, np.arange(0, 7)), _batch(name, 0, test, np.arange(7, len(test)))])
    assert np.array_equal(whole, parts)  # the batch split never changes an item's corruption
    assert np.array_equal(whole, _batch(name, 0, test, np.arange(len(test)), seed=0))
    assert not np.array_equal(whole, _batch(name, 0, test, np.arange(len(test)), seed=1))
    negative = _batch(name, 0, test, np.arange(len(test)), seed=-1)  # --seeds -1 is a valid run seed
    assert not np.array_equal(negative, whole) and not np.array_equal(negative, _batch(name, 0, test,
                                                                                        np.arange(len(test)), seed=1))


# ----------------------------------------------------------------------------- mAP of corrupted embeddings
def _sklearn_map(a: np.ndarray, v: np.ndarray, y: np.ndarray) -> tuple[float, list[float]]:
    """Reference: sklearn's cosine similarity (zero rows: similarity 0) and AP per query, mean of two directions."""
    sim = cosine_similarity(a, v)
    out = []
    for s, rows in ((sim, y), (sim.T, y)):
        aps = [average_precision_score(rows == rows[i], s[i]) for i in range(len(s)) if (rows == rows[i]).any()]
        out.append(aps)
    return float((np.mean(out[0]) + np.mean(out[1])) / 2), out[0] + out[1]


@pytest.mark.parametrize("seed", range(4))
def test_corrupted_map_matches_sklearn_with_zero_rows(seed) -> None:
    rng = np.random.default_rng(seed)
    n = 30
    y = rng.integers(0, 4, n)
    a, v = rng.standard_normal((n, 6)), rng.standard_normal((n, 6))
    value, items = corrupted_map(a, v, y)
    assert value == pytest.approx(retrieval_metrics(a, v, y, y)["mAP"], abs=1e-12)  # no zero row: the task's mAP
    ref, ref_items = _sklearn_map(a, v, y)
    assert value == pytest.approx(ref, abs=1e-12) and np.allclose(items, ref_items, atol=1e-12)
    a[3] = 0.0  # an all-black frame's embedding by a linear model: similarity 0 with everything
    v[7] = 0.0
    value, items = corrupted_map(a, v, y)
    ref, ref_items = _sklearn_map(a, v, y)
    assert value == pytest.approx(ref, abs=1e-12) and np.allclose(items, ref_items, atol=1e-12)
    # the zero query ties every gallery item: its AP is the share of relevant items
    assert items[3] == pytest.approx(np.mean(y == y[3]))


def test_corrupted_map_extreme_scales_single_class_and_one_item() -> None:
    rng = np.random.default_rng(0)
    y = np.arange(12) % 3
    a, v = rng.standard_normal((12, 4)), rng.standard_normal((12, 4))
    base = corrupted_map(a, v, y)[0]
    assert corrupted_map(a * 1e-300, v * 1e300, y)[0] == pytest.approx(base, abs=1e-12)
    assert corrupted_map(a, v, np.zeros(12, dtype=int))[0] == 1.0  # every item relevant
    value, items = corrupted_map(a[:1], v[:1], y[:1])
    assert value == 1.0 and list(items) == [1.0, 1.0]


# ----------------------------------------------------------------------------- evaluate
def test_evaluate_keys_auc_items_and_clean_parity(dataset) -> None:
    model = RandomProjection(dataset.spec)
    result = get_task("robustness").evaluate(model, dataset, _ctx())
    m = result.metrics
    assert list(m) == list(METRICS)
    assert all(0.0 <= v <= 1.0 for v in m.values())
    # the clean point is the retrieval task's mAP and the classification task's fused ACC
    assert m["mAP@clean"] == pytest.approx(RetrievalTask().evaluate(model, dataset, _ctx()).metrics["mAP"], abs=1e-12)
    assert m["ACC@clean"] == ClassificationTask().evaluate(model, dataset, _ctx()).metrics["ACC"]
    # every AUC from the record's own points, with sklearn on the normalised severity axis
    for c in CORRUPTIONS.values():
        for metric in c.metrics:
            labels = [lv.label for lv in c.levels]
            sev = np.array([0.0, *(_severity(c.name, lab) for lab in labels)])
            vals = np.array([m[f"{metric}@clean"], *(m[f"{metric}@{c.name}={lab}"] for lab in labels)])
            assert m[f"AUC_{metric}@{c.name}"] == pytest.approx(sk_auc(sev / sev.max(), vals), abs=1e-12)
            assert np.mean(result.item_metrics[f"AUC_{metric}@{c.name}"]) == pytest.approx(m[f"AUC_{metric}@{c.name}"])
        assert m[f"AUC_{c.name}"] == pytest.approx(np.mean([m[f"AUC_{x}@{c.name}"] for x in c.metrics]))
    assert m["mean_AUC"] == pytest.approx(np.mean([m[f"AUC_{c}"] for c in CORRUPTIONS]))
    for key, items in result.item_metrics.items():
        assert np.mean(items) == pytest.approx(m[key], abs=1e-9), key
    assert result.config["corrupted_embeddings_cached"] is False


def test_deterministic_and_seeded(dataset) -> None:
    model = RandomProjection(dataset.spec)
    a = get_task("robustness").evaluate(model, dataset, _ctx(0)).metrics
    assert a == get_task("robustness").evaluate(model, dataset, _ctx(0)).metrics
    b = get_task("robustness").evaluate(model, dataset, _ctx(1)).metrics
    assert a["mAP@clean"] == b["mAP@clean"] and a != b  # same model and clean data, other corruption draws


def test_bad_probe_option(dataset) -> None:
    with pytest.raises(ConfigError, match="probe must be one of"):
        get_task("robustness").evaluate(RandomProjection(dataset.spec), dataset, _ctx(probe="svm"))


# ----------------------------------------------------------------------------- runner, cache, reports
@pytest.mark.usefixtures("fresh_cache")
def test_runner_random_below_learned_degrades_and_reports(toy_file, tmp_path, fresh_cache, capsys) -> None:
    out = tmp_path / "runs"
    cfg = RunConfig(models=["random", "triplet"], tasks=["retrieval", "classification", "robustness"],
                    dataset="features", data_root=str(toy_file), seeds=[0], out=out, quick=True, device="cpu",
                    progress=False, model_args={})
    recs = {(r.model, r.task): r for r in run(cfg)}
    rnd, learned = recs[("random", "robustness")].metrics, recs[("triplet", "robustness")].metrics
    assert rnd["mean_AUC"] < learned["mean_AUC"]
    assert rnd["AUC_mAP@audio_snr"] < learned["AUC_mAP@audio_snr"]
    # monotone-ish degradation of the learned model: no level beats clean by more than noise, the worst is below
    for c in CORRUPTIONS.values():
        for metric in c.metrics:
            clean = learned[f"{metric}@clean"]
            curve = [learned[f"{metric}@{c.name}={lv.label}"] for lv in c.levels]
            assert max(curve) <= clean + 0.02, (c.name, metric, clean, curve)
    for key in ("mAP@audio_snr=0dB", "mAP@visual_occlusion=75%", "mAP@visual_noise=0.4"):
        assert learned[key] < learned["mAP@clean"] - 0.01, key
    # the clean points are the other tasks' numbers; corrupted embeddings never reached the cache
    assert learned["mAP@clean"] == pytest.approx(recs[("triplet", "retrieval")].metrics["mAP"], abs=1e-12)
    assert learned["ACC@clean"] == recs[("triplet", "classification")].metrics["ACC"]
    cached = sorted(p.name for p in (fresh_cache / "embeddings").rglob("*.npy"))
    assert cached == sorted([f"{s}-{k}-b128-float64.npy" for s in ("train", "val", "test")
                             for k in ("audio", "visual")] * 2)
    # leaderboard and report read the records' task metadata
    assert main(["leaderboard", "--results", str(out), "--task", "robustness", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["metric"] for r in rows} == set(METRICS) and {r["model"] for r in rows} == {"random", "triplet"}
    top = [r for r in rows if r["metric"] == "mean_AUC" and r["rank"] == "1"]
    assert [r["model"] for r in top] == ["triplet"]
    for fmt in ("md", "latex", "html", "csv"):
        target = tmp_path / f"report.{fmt}"
        assert main(["report", "--results", str(out), "--format", fmt, "--out", str(target)]) == 0
        text = target.read_text()
        assert "robustness" in text and "mean_AUC" in text.replace("\\_", "_")
    assert "ACC@missing_visual=100%" in (tmp_path / "report.md").read_text()  # other metrics: every level
    assert r"AUC\_missing\_visual $\uparrow$" in (tmp_path / "report.latex").read_text()  # headline columns
    assert "| robustness: mean_AUC ↑ [0-1] |" in headline_table(list(recs.values()))  # the README's table
    capsys.readouterr()
    assert main(["list", "tasks", "--json"]) == 0
    listed = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert listed["robustness"]["main_score"] == "mean_AUC"


def test_reruns_reuse_and_embed_split_cache_is_the_clean_one(toy_file, tmp_path, fresh_cache) -> None:
    out = tmp_path / "runs"
    cfg = RunConfig(models=["random"], tasks=["robustness"], dataset="features", data_root=str(toy_file), seeds=[0],
                    out=out, quick=True, device="cpu", progress=False, model_args={})
    first = run(cfg)[0].metrics
    files = sorted((fresh_cache / "embeddings").rglob("*.npy"))
    assert len(files) == 6
    again = run(dataclasses.replace(cfg, out=tmp_path / "other"))[0].metrics  # recomputed from the cached clean ones
    assert again == first
    test_audio = next(f for f in files if f.name.startswith("test-audio"))
    from_cache = np.load(test_audio, allow_pickle=False)
    ds_model = RandomProjection(DataSpec(name="toy", audio_shape=(T, FA), visual_shape=(T, 3, HW, HW),
                                         num_classes=K, class_names=tuple(map(str, range(K))), visual_is_image=True),
                                seed=0)  # the runner seeds torch with the run seed
    toy = _toy_arrays()
    test = AVSplit(audio=toy["audio"][toy["split"] == "test"], visual=toy["visual"][toy["split"] == "test"],
                   labels=toy["labels"][toy["split"] == "test"])
    assert np.array_equal(from_cache, embed_split(ds_model, test, "audio"))  # clean, not a corrupted variant


@pytest.mark.usefixtures("fresh_cache")
def test_avdigits_occluded_digits_that_embed_to_zero_are_scored(shared_data, tmp_path) -> None:
    """MNIST frames are black around the digit: a 50% box can blank a frame, which the (linear, bias-free)
    random projection embeds to exactly zero; retrieval scores such an item (cosine 0) instead of stopping."""
    cfg = RunConfig(models=["random"], tasks=["robustness"], dataset="avdigits", data_root=str(shared_data), seeds=[0],
                    out=tmp_path / "runs", quick=True, device="cpu", progress=False, model_args={})
    (rec,) = run(cfg)
    m = rec.metrics
    assert set(m) == set(METRICS)
    assert m["ACC@visual_occlusion=75%"] < m["ACC@visual_occlusion=25%"] < m["ACC@clean"]
    assert m["ACC@missing_visual=100%"] < m["ACC@clean"]
