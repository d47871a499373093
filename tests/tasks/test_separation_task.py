"""Separation task adapter: mixtures, mask head, references, score and export round trips."""
from __future__ import annotations

import json
import warnings
from functools import lru_cache

import numpy as np
import pytest
import torch
from mir_eval.separation import bss_eval_sources

from avcl_bench.baselines.random_projection import RandomProjection
from avcl_bench.benchmark import cli
from avcl_bench.benchmark.datasets.avsynth import AVSynthConfig, build
from avcl_bench.benchmark.errors import ConfigError, InputError
from avcl_bench.tasks.base import EvalContext
from avcl_bench.tasks.separation.metrics import separation_metrics
from avcl_bench.tasks.separation.task import (
    METRICS,
    MaskHead,
    SeparationTask,
    _ideal_ratio_masks,
    _ratio_masks,
    _Spectral,
    mixture_pairs,
    random_partners,
    score_silent_option,
    skipped_mixtures,
    stft_params,
)

KEYS = {"SDR", "SIR", "SAR", "NSDR"}
ALL_KEYS = KEYS | {"skipped"}


@lru_cache(maxsize=None)
def tiny():
    # difficulty 0: the sounding object is centred, so even the untrained random projection's
    # visual embedding names its look (and with it the pitch register) and the head can separate
    return build(AVSynthConfig.quick(n_train=120, n_val=20, n_test=24, difficulty=0.0))


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


def test_ratio_masks_from_magnitudes_equal_the_ideal_ratio_masks_bit_for_bit():
    """The head's training takes the masks from magnitudes computed once per clip."""
    specs = torch.randn(3, 2, 7, 5, dtype=torch.complex64)
    specs[1, :, 2, :] = 0
    assert torch.equal(_ratio_masks(specs.abs()), _ideal_ratio_masks(specs))


def test_mask_head_logits_give_its_masks_and_the_same_bce():
    """Training's BCE from logits equals torch's BCE of the sigmoid masks (the loss it replaced)."""
    torch.manual_seed(0)
    head = MaskHead(9, 4, hidden=8)
    torch.nn.init.normal_(head.film.weight, std=0.5)
    x, vis = torch.randn(6, 9, 11), torch.randn(6, 4)
    target = torch.rand(6, 9, 11)
    logits = head.logits(x, vis)
    torch.testing.assert_close(torch.sigmoid(logits), head(x, vis), rtol=0, atol=0)
    with_logits = torch.nn.functional.binary_cross_entropy_with_logits(logits, target, reduction="none")
    of_masks = torch.nn.functional.binary_cross_entropy(head(x, vis), target, reduction="none")
    torch.testing.assert_close(with_logits, of_masks, rtol=1e-5, atol=1e-6)
    # where float32's sigmoid saturates the old loss clamps log(0) at -100; the logits keep the slope
    big = torch.tensor([40.0, -120.0])
    t = torch.tensor([0.0, 1.0])
    assert torch.nn.functional.binary_cross_entropy(torch.sigmoid(big), t, reduction="none").tolist() == [100.0, 100.0]
    torch.testing.assert_close(torch.nn.functional.binary_cross_entropy_with_logits(big, t, reduction="none"),
                               torch.tensor([40.0, 120.0]))


# ----------------------------------------------------------------------------- evaluate / references
def test_metadata():
    t = task()
    assert set(t.metrics) == ALL_KEYS and set(METRICS) == ALL_KEYS
    assert not t.metrics["skipped"].higher_is_better and t.metrics["skipped"].unit == "count"
    assert t.metadata.needs == ("sources",) and t.metadata.reference_names == ("oracle_irm", "mixture")
    assert all(t.metrics[k].higher_is_better for k in KEYS)


def test_random_model_keys_and_bounds():
    refs = references()
    assert set(refs) == {"oracle_irm", "mixture"}
    res = random_result()
    for m in (res.metrics, refs["oracle_irm"], refs["mixture"]):
        assert set(m) == ALL_KEYS
        assert all(np.isfinite(v) for v in m.values())
        assert m["skipped"] == 0.0
    assert refs["mixture"]["NSDR"] == 0.0
    # the oracle is far above the unprocessed mixture; the trained head lies between
    assert refs["oracle_irm"]["SDR"] > refs["mixture"]["SDR"] + 15
    assert refs["mixture"]["SDR"] < res.metrics["SDR"] < refs["oracle_irm"]["SDR"]
    assert res.metrics["NSDR"] > 0.2  # better than no separation (NSDR 0)
    assert res.protocol.startswith("frozen visual embedding")
    assert res.config["skipped"] == 0 and res.config["silence_rule"].startswith("Sound of Pixels")
    assert res.config["mixtures"] == 12 and res.config["stft"] == {"n_fft": 256, "hop": 64, "window": "hann"}
    # per-mixture items average to the metric (what the reporting checks)
    for k in KEYS:
        assert len(res.item_metrics[k]) == 12
        assert np.mean(res.item_metrics[k]) == pytest.approx(res.metrics[k], rel=1e-9, abs=1e-9)


def test_deterministic_given_seed():
    a = random_result(0).metrics
    b = task().evaluate(RandomProjection(tiny().spec, seed=0), tiny(), EvalContext(seed=0, quick=True)).metrics
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
    assert set(got) == ALL_KEYS and got["NSDR"] == pytest.approx(0.0, abs=1e-9)
    assert got["SDR"] == pytest.approx(references()["mixture"]["SDR"], abs=1e-4)
    perfect = task().score({"estimates": ref["sources"]}, ref)
    assert perfect["SDR"] > 100
    assert set(task().score({"estimates": ref["sources"]}, {"sources": ref["sources"]})) == {"SDR", "SIR", "SAR", "skipped"}


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
        t.score({"estimates": src}, {"sources": silent}, ref_source="r.npz", score_silent=True)
    assert t.score({"estimates": src}, {"sources": silent}, ref_source="r.npz")["skipped"] == 1.0
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


# ----------------------------------------------------------------------------- Sound of Pixels' silence rule
def official_valid(gts_wav: np.ndarray, preds_wav: np.ndarray) -> bool:
    """``calc_metrics`` of Sound of Pixels' ``main.py``, literally: the mixture is scored iff valid."""
    valid = True
    for n in range(len(gts_wav)):
        valid *= np.sum(np.abs(gts_wav[n])) > 1e-5
        valid *= np.sum(np.abs(preds_wav[n])) > 1e-5
    return bool(valid)


def official_scores(sources: np.ndarray, estimates: np.ndarray, mixtures: np.ndarray) -> tuple[dict[str, float], int]:
    """Sound of Pixels' meters: mir_eval on every valid mixture, means over them, and the skip count."""
    sdr_m, sir_m, sar_m, nsdr_m, skipped = [], [], [], [], 0
    for gts, preds, mix in zip(sources, estimates, mixtures):
        if not official_valid(gts, preds):
            skipped += 1
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sdr, sir, sar, _ = bss_eval_sources(gts, preds, False)
            sdr_mix, _, _, _ = bss_eval_sources(gts, np.stack([mix] * len(gts)), False)
        sdr_m.append(sdr.mean())
        sir_m.append(sir.mean())
        sar_m.append(sar.mean())
        nsdr_m.append((sdr - sdr_mix).mean())
    return {"SDR": float(np.mean(sdr_m)), "SIR": float(np.mean(sir_m)), "SAR": float(np.mean(sar_m)),
            "NSDR": float(np.mean(nsdr_m))}, skipped


def _quiet_case(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Sources and estimates with near-silent signals on both sides of the 1e-5 threshold."""
    length = 1200
    src = rng.standard_normal((7, 2, length))
    est = src + 0.5 * rng.standard_normal(src.shape)
    src[1, 0] *= 0.99e-5 / np.abs(src[1, 0]).sum()   # source below the threshold: skipped
    src[2, 1] = 0.0
    src[2, 1, 10] = 1e-5                             # sum|x| exactly 1e-5: "> 1e-5" fails, skipped
    est[3, 1] = 0.0                                  # a silent estimate: skipped
    est[4, 0] *= 0.5e-5 / np.abs(est[4, 0]).sum()    # a quiet but non-zero estimate: skipped
    src[5, 1] *= 3e-5 / np.abs(src[5, 1]).sum()      # above the threshold: scored
    est[5, 1] = src[5, 1] + 1e-7 * rng.standard_normal(length)
    return src, est


def test_skip_rule_matches_official_literal_rule():
    rng = np.random.default_rng(30)
    src, est = _quiet_case(rng)
    want = np.array([not official_valid(g, p) for g, p in zip(src, est)])
    np.testing.assert_array_equal(skipped_mixtures(est, src), want)
    np.testing.assert_array_equal(np.flatnonzero(want), [1, 2, 3, 4])
    for _ in range(20):  # random scales around the threshold
        a = rng.standard_normal((5, 3, 40)) * 10.0 ** rng.uniform(-9, -5, (5, 3, 1))
        b = rng.standard_normal((5, 3, 40)) * 10.0 ** rng.uniform(-9, -5, (5, 3, 1))
        np.testing.assert_array_equal(skipped_mixtures(b, a), [not official_valid(g, p) for g, p in zip(a, b)])


def test_score_skips_as_the_official_evaluation_and_counts():
    rng = np.random.default_rng(31)
    src, est = _quiet_case(rng)
    mix = src.sum(axis=1)
    got = task().score({"estimates": est}, {"sources": src, "mixtures": mix})
    want, skipped = official_scores(src, est, mix)
    assert got["skipped"] == float(skipped) == 4.0
    for k, v in want.items():
        assert got[k] == pytest.approx(v, abs=1e-6), k


def test_score_silent_scores_quiet_mixtures_and_refuses_all_zero():
    rng = np.random.default_rng(32)
    src, est = _quiet_case(rng)
    src[2, 1] = rng.standard_normal(src.shape[-1]) * 1e-7  # quiet, non-zero
    est[3, 1] = rng.standard_normal(src.shape[-1]) * 1e-7
    mix = src.sum(axis=1)
    got = task().score({"estimates": est}, {"sources": src, "mixtures": mix}, score_silent=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sdr = np.stack([bss_eval_sources(g, p, False)[0] for g, p in zip(src, est)])
    assert got["skipped"] == 0.0 and got["SDR"] == pytest.approx(float(sdr.mean()), abs=1e-6)
    est[3, 1] = 0.0
    with pytest.raises(InputError, match="estimates: item 3, source 1 is silent"):
        task().score({"estimates": est}, {"sources": src}, score_silent=True)


def test_every_mixture_skipped_is_a_one_line_error():
    src = np.random.default_rng(33).standard_normal((2, 2, 1200))
    with pytest.raises(InputError, match=r"^p.npz: estimates: all 2 mixtures have a source or estimate .* score_silent=true"):
        task().score({"estimates": np.zeros_like(src)}, {"sources": src}, pred_source="p.npz")
    quiet = src.copy()
    quiet[:, 1] = 0.0
    with pytest.raises(InputError, match=r"^r.npz: sources: all 2 mixtures have a source with"):
        task().score({"estimates": src}, {"sources": quiet}, pred_source="p.npz", ref_source="r.npz")


def test_score_silent_option_values():
    assert score_silent_option({}) is False
    for v in (True, "true", "True", "1", "yes", 1):
        assert score_silent_option({"score_silent": v}) is True
    for v in (False, "false", "0", "no", 0):
        assert score_silent_option({"score_silent": v}) is False
    with pytest.raises(ConfigError, match="score_silent must be true or false"):
        score_silent_option({"score_silent": "maybe"})


class QuietSeparator:
    """A model with its own separator that returns silence for every other mixture."""

    capabilities = frozenset({"separation"})
    trainable = False

    def __init__(self):
        self.calls = 0

    def separate(self, mixture, visual, sample_rate):
        out = mixture.clone() * 0.5
        out[::2] = 0.0
        return out


def test_evaluate_counts_skipped_mixtures_in_the_record():
    d = tiny()
    res = task().evaluate(QuietSeparator(), d, EvalContext(seed=0, quick=True))
    n = res.config["mixtures"]
    assert res.metrics["skipped"] == float(res.config["skipped"]) == float((n + 1) // 2)
    assert len(res.item_metrics["SDR"]) == n - (n + 1) // 2
    assert np.mean(res.item_metrics["SDR"]) == pytest.approx(res.metrics["SDR"], rel=1e-9)
    with pytest.raises(InputError, match="estimates: item 0, source 0 is silent"):
        task().evaluate(QuietSeparator(), d, EvalContext(seed=0, quick=True, options={"score_silent": "true"}))


def test_score_command_task_option_score_silent(tmp_path, capsys):
    rng = np.random.default_rng(34)
    src, est = _quiet_case(rng)
    src[2, 1] = rng.standard_normal(src.shape[-1]) * 1e-7
    est[3, 1] = rng.standard_normal(src.shape[-1]) * 1e-7
    np.savez(tmp_path / "p.npz", estimates=est)
    np.savez(tmp_path / "r.npz", sources=src)
    base = ["score", "separation", "--pred", str(tmp_path / "p.npz"), "--ref", str(tmp_path / "r.npz"), "--json"]
    n_skip = float(skipped_mixtures(est, src).sum())
    assert n_skip == 2.0  # mixtures 1 and 4; all the others' signals are above the threshold
    assert cli.main(base) == 0
    assert json.loads(capsys.readouterr().out)["metrics"]["skipped"] == n_skip
    for value, skipped in (("true", 0.0), ("yes", 0.0), ("false", n_skip), ("no", n_skip)):
        assert cli.main([*base, "--task-option", f"score_silent={value}"]) == 0
        assert json.loads(capsys.readouterr().out)["metrics"]["skipped"] == skipped, value
    assert cli.main([*base, "--task-option", "score_silent=maybe"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "score_silent must be true or false" in err
