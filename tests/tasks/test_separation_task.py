"""Separation task adapter: mixtures, mask head, references, score and export round trips."""
from __future__ import annotations

import warnings
from functools import lru_cache

import numpy as np
import pytest
import torch
from mir_eval.separation import bss_eval_sources

from avcl_bench.baselines.random_projection import RandomProjection
from avcl_bench.benchmark.datasets.avsynth import AVSynthConfig, build
from avcl_bench.benchmark.errors import InputError
from avcl_bench.tasks.base import EvalContext
from avcl_bench.tasks.separation.metrics import separation_metrics
from avcl_bench.tasks.separation.task import (
    METRICS,
    SeparationTask,
    _ideal_ratio_masks,
    _Spectral,
    mixture_pairs,
    random_partners,
    stft_params,
)

KEYS = {"SDR", "SIR", "SAR", "NSDR"}


@lru_cache(maxsize=None)
def tiny():
    return build(AVSynthConfig.quick(n_train=120, n_val=20, n_test=24))


@lru_cache(maxsize=None)
def task() -> SeparationTask:
    return SeparationTask()


@lru_cache(maxsize=None)
def references():
    return task().references(tiny(), EvalContext(seed=0, quick=True))


@lru_cache(maxsize=None)
def random_result(seed: int = 0):
    d = tiny()
    return task().evaluate(RandomProjection(d.spec, seed=0), d, EvalContext(seed=seed, quick=True))


class OracleLabels:
    """embed_visual = one-hot class of the clip (found by exact lookup of its frames)."""

    capabilities = frozenset()
    trainable = False

    def __init__(self, dataset):
        self.k = dataset.spec.num_classes
        self.table = {}
        for name in ("train", "val", "test"):
            s = dataset.split(name)
            for v, y in zip(np.asarray(s.visual), np.asarray(s.labels)):
                self.table[v.tobytes()] = int(y)
        self.dim = self.k

    def embed_visual(self, visual):
        raw = np.round(visual.cpu().numpy() * 255).astype(np.uint8)
        return torch.nn.functional.one_hot(torch.tensor([self.table[v.tobytes()] for v in raw]), self.k).float()


class OwnSeparator:
    """A model with the separation capability that returns the true source (cheating, by lookup)."""

    capabilities = frozenset({"separation"})
    trainable = False

    def __init__(self, dataset):
        s = dataset.split("test")
        self.table = {v.tobytes(): src for v, src in zip(np.asarray(s.visual), np.asarray(s.sources))}
        self.calls = 0

    def separate(self, mixture, visual, sample_rate):
        self.calls += 1
        raw = np.round(visual.cpu().numpy() * 255).astype(np.uint8)
        return torch.from_numpy(np.stack([self.table[v.tobytes()] for v in raw]))


# ----------------------------------------------------------------------------- mixtures
def test_mixture_pairs_differ_in_class_and_use_each_clip_once():
    rng = np.random.default_rng(0)
    for n in (2, 7, 40, 41):
        labels = rng.integers(0, 4, size=n)
        labels[:2] = [0, 1]
        pairs = mixture_pairs(labels)
        assert np.all(labels[pairs[:, 0]] != labels[pairs[:, 1]])
        assert len(np.unique(pairs)) == pairs.size
        if np.bincount(labels).max() <= n // 2:  # no dominant class: every clip is paired
            assert len(pairs) == n // 2
    np.testing.assert_array_equal(mixture_pairs(labels), mixture_pairs(labels))
    assert len(mixture_pairs(np.zeros(10, dtype=int))) == 0  # a single class cannot be mixed
    assert len(mixture_pairs(np.arange(400) % 10, max_pairs=50)) == 50


def test_random_partners_are_other_class_and_seeded():
    labels = np.arange(50) % 5
    p1 = random_partners(labels, np.random.default_rng(3))
    p2 = random_partners(labels, np.random.default_rng(3))
    np.testing.assert_array_equal(p1, p2)
    assert sorted(p1[:, 0]) == list(range(50))
    assert np.all(labels[p1[:, 0]] != labels[p1[:, 1]])


def test_stft_params_and_perfect_reconstruction():
    assert stft_params(4000) == (256, 64)
    assert stft_params(11025) == (512, 128)
    sp = _Spectral(4000)
    x = torch.randn(3, 2, 1000, dtype=torch.float64)
    spec = sp.stft(x)
    assert spec.shape[:3] == (3, 2, 129)
    torch.testing.assert_close(sp.istft(spec, 1000), x)


def test_ideal_ratio_masks_sum_to_one():
    specs = torch.randn(4, 2, 5, 6, dtype=torch.complex128)
    specs[0, :, 0, 0] = 0
    m = _ideal_ratio_masks(specs)
    torch.testing.assert_close(m.sum(1), torch.ones(4, 5, 6, dtype=torch.float64))
    assert float(m[0, 0, 0, 0]) == 0.5
    expect = specs[1, 0, 2, 3].abs() / (specs[1, 0, 2, 3].abs() + specs[1, 1, 2, 3].abs())
    assert float(m[1, 0, 2, 3]) == pytest.approx(float(expect))


# ----------------------------------------------------------------------------- evaluate / references
def test_metadata():
    t = task()
    assert set(t.metrics) == KEYS and set(METRICS) == KEYS
    assert t.metadata.needs == ("sources",) and t.metadata.reference_names == ("oracle_irm", "mixture")
    assert all(t.metrics[k].higher_is_better for k in KEYS)


def test_random_model_keys_and_bounds():
    refs = references()
    assert set(refs) == {"oracle_irm", "mixture"}
    res = random_result()
    for m in (res.metrics, refs["oracle_irm"], refs["mixture"]):
        assert set(m) == KEYS
        assert all(np.isfinite(v) for v in m.values())
    assert refs["mixture"]["NSDR"] == 0.0
    # the oracle is far above the unprocessed mixture; the trained head lies between
    assert refs["oracle_irm"]["SDR"] > refs["mixture"]["SDR"] + 15
    assert refs["mixture"]["SDR"] < res.metrics["SDR"] < refs["oracle_irm"]["SDR"]
    assert res.metrics["NSDR"] > 0.2  # better than no separation (NSDR 0)
    assert res.protocol.startswith("frozen visual embedding")
    assert res.config["mixtures"] == 12 and res.config["stft"] == {"n_fft": 256, "hop": 64, "window": "hann"}
    # per-mixture items average to the metric (what the reporting checks)
    for k in KEYS:
        assert len(res.item_metrics[k]) == 12
        assert np.mean(res.item_metrics[k]) == pytest.approx(res.metrics[k], rel=1e-9, abs=1e-9)


def test_deterministic_given_seed():
    a = random_result(0).metrics
    b = task().evaluate(RandomProjection(tiny().spec), tiny(), EvalContext(seed=0, quick=True)).metrics
    assert a == b
    c = random_result(1).metrics
    assert c != a


def test_informative_embedding_beats_random():
    d = tiny()
    oracle = task().evaluate(OracleLabels(d), d, EvalContext(seed=0, quick=True))
    assert oracle.metrics["SDR"] > random_result().metrics["SDR"]


def test_own_separator_is_used_and_recorded():
    d = tiny()
    model = OwnSeparator(d)
    res = task().evaluate(model, d, EvalContext(seed=0, quick=True))
    assert model.calls == 2  # one batch, once per source
    assert res.protocol == "model's own separator"
    assert res.metrics["SDR"] > 100  # the exact sources


def test_own_separator_bad_shape():
    class Bad(OwnSeparator):
        def separate(self, mixture, visual, sample_rate):
            return mixture[:, :-1]

    with pytest.raises(InputError, match="separate"):
        task().evaluate(Bad(tiny()), tiny(), EvalContext(seed=0, quick=True))


def test_references_match_mir_eval_on_a_mixture():
    """The oracle row equals mir_eval on the exported mixtures with IRM estimates built by hand."""
    d = tiny()
    ref = task().export_reference(d)
    src = ref["sources"][:2].astype(np.float64)
    sp = _Spectral(4000)
    s = sp.stft(torch.from_numpy(src))
    est = sp.istft(_ideal_ratio_masks(s) * s.sum(1, keepdim=True), src.shape[-1]).numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        want = np.mean([bss_eval_sources(src[i], est[i], compute_permutation=False)[0] for i in range(2)])
    got = separation_metrics(est, src, src.sum(1))["SDR"]
    assert got == pytest.approx(want, abs=1e-5)


# ----------------------------------------------------------------------------- score / export
def test_export_reference_and_inputs():
    d = tiny()
    ref = task().export_reference(d)
    assert ref["sources"].shape == (12, 2, 8000) and ref["mixtures"].shape == (12, 8000)
    np.testing.assert_allclose(ref["mixtures"], ref["sources"].sum(1), atol=1e-6)
    inp = task().export_inputs(d)
    np.testing.assert_array_equal(inp["mixtures"], ref["mixtures"])
    assert inp["visual"].shape == (12, 2, 10, 3, 32, 32) and inp["visual"].dtype == np.uint8
    test = d.split("test")
    np.testing.assert_array_equal(inp["visual"][:, 1], np.asarray(test.visual)[inp["clip_index"][:, 1]])
    np.testing.assert_array_equal(ref["sources"][:, 0], np.asarray(test.sources)[inp["clip_index"][:, 0]])
    assert int(inp["sample_rate"]) == 4000


def test_score_round_trip_matches_references():
    d = tiny()
    ref = task().export_reference(d)
    mix_pred = {"estimates": np.repeat(ref["mixtures"][:, None], 2, axis=1)}
    got = task().score(mix_pred, ref)
    assert set(got) == KEYS and got["NSDR"] == pytest.approx(0.0, abs=1e-9)
    assert got["SDR"] == pytest.approx(references()["mixture"]["SDR"], abs=1e-4)
    perfect = task().score({"estimates": ref["sources"]}, ref)
    assert perfect["SDR"] > 100
    assert set(task().score({"estimates": ref["sources"]}, {"sources": ref["sources"]})) == {"SDR", "SIR", "SAR"}


def test_score_errors_name_file_and_field():
    rng = np.random.default_rng(0)
    src = rng.standard_normal((3, 2, 1200))
    ref = {"sources": src, "mixtures": src.sum(1)}
    t = task()
    with pytest.raises(InputError, match="p.npz: estimates: missing"):
        t.score({}, ref, pred_source="p.npz")
    with pytest.raises(InputError, match="r.npz: sources: missing"):
        t.score({"estimates": src}, {}, ref_source="r.npz")
    with pytest.raises(InputError, match="p.npz: estimates: has 2 mixtures"):
        t.score({"estimates": src[:2]}, ref, pred_source="p.npz")
    with pytest.raises(InputError, match="p.npz: estimates: shape"):
        t.score({"estimates": src[:, :, :1000]}, ref, pred_source="p.npz")
    bad = src.copy()
    bad[1, 0, 5] = np.nan
    with pytest.raises(InputError, match="p.npz: estimates: contains NaN"):
        t.score({"estimates": bad}, ref, pred_source="p.npz")
    with pytest.raises(InputError, match="r.npz: sources: needs at least 2"):
        t.score({"estimates": src[:, :1]}, {"sources": src[:, :1]}, ref_source="r.npz")
    silent = src.copy()
    silent[2, 1] = 0
    with pytest.raises(InputError, match="r.npz: sources: mixture 2, source 1 is silent"):
        t.score({"estimates": src}, {"sources": silent}, ref_source="r.npz")
    with pytest.raises(InputError, match="r.npz: mixtures: expected shape"):
        t.score({"estimates": src}, {"sources": src, "mixtures": src[:, 0, :-1]}, ref_source="r.npz")
    with pytest.raises(InputError, match="r.npz: sources: expected 3-D"):
        t.score({"estimates": src}, {"sources": src[0]}, ref_source="r.npz")


def test_supports():
    d = tiny()
    t = task()
    assert t.supports(None, d.spec, d.split("test")) is None
    no_src = d.split("test").subset(slice(None))
    no_src.sources = None
    assert "has no sources" in t.supports(None, d.spec, no_src)
    one_class = d.split("test").subset(np.flatnonzero(d.split("test").labels == 0))
    assert "two different classes" in t.supports(None, d.spec, one_class)
