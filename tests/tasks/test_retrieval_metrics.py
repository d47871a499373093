"""Retrieval metrics vs sklearn, brute-force loops written from the protocol, and torchmetrics.

References used here:
* ``brute_ap``: the AP definition of the protocol, one query and one relevant item at a
  time: mean over relevant r of #{relevant j: s_j >= s_r} / #{j: s_j >= s_r};
* ``brute_ranks``: #{j: s_j >= s_own} per query;
* ``sklearn.metrics.average_precision_score`` (equal to the protocol when there are no ties).
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import average_precision_score

import avcl_bench.tasks.retrieval.metrics as rm
from avcl_bench.benchmark.errors import ConfigError, InputError
from avcl_bench.tasks.retrieval.metrics import METRICS, average_precision, pair_ranks, retrieval_metrics

PAIRED_KEYS = {f"R@{k}_{d}" for d in ("a2v", "v2a") for k in (1, 5, 10)} | {"MedR_a2v", "MedR_v2a"}
MAP_KEYS = {"mAP_a2v", "mAP_v2a", "mAP", "mAP_macro_a2v", "mAP_macro_v2a", "mAP_macro"}


# ----------------------------------------------------------------------------- references
def brute_ap(scores: np.ndarray, relevant: np.ndarray) -> np.ndarray:
    out = np.full(len(scores), np.nan)
    for i, (s, rel) in enumerate(zip(scores, relevant)):
        terms = []
        for r in range(len(s)):
            if rel[r]:
                at_least = [j for j in range(len(s)) if s[j] >= s[r]]
                terms.append(sum(bool(rel[j]) for j in at_least) / len(at_least))
        if terms:
            out[i] = sum(terms) / len(terms)
    return out


def brute_ranks(scores: np.ndarray) -> np.ndarray:
    return np.array([sum(1 for j in range(scores.shape[1]) if scores[i, j] >= scores[i, i]) for i in range(len(scores))])


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a / np.linalg.norm(a, axis=1, keepdims=True)) @ (b / np.linalg.norm(b, axis=1, keepdims=True)).T


def brute_macro(ap: np.ndarray, labels: np.ndarray) -> float:
    """Mean over classes (with at least one scored query) of the mean AP of the class's queries."""
    per_class = []
    for c in sorted(set(labels.tolist())):
        vals = [ap[i] for i in range(len(ap)) if labels[i] == c and not np.isnan(ap[i])]
        if vals:
            per_class.append(sum(vals) / len(vals))
    return sum(per_class) / len(per_class)


def brute_metrics(a, v, la, lv, paired: bool) -> dict[str, float]:
    out = {}
    for d, s, lq, lg in (("a2v", cosine(a, v), la, lv), ("v2a", cosine(v, a), lv, la)):
        ap = brute_ap(s, lq[:, None] == lg[None, :])
        out[f"mAP_{d}"] = float(np.nanmean(ap))
        out[f"mAP_macro_{d}"] = brute_macro(ap, lq)
        if paired:
            ranks = brute_ranks(s)
            for k in (1, 5, 10):
                out[f"R@{k}_{d}"] = float(np.mean(ranks <= k))
            out[f"MedR_{d}"] = float(np.median(ranks))
    out["mAP"] = (out["mAP_a2v"] + out["mAP_v2a"]) / 2
    out["mAP_macro"] = (out["mAP_macro_a2v"] + out["mAP_macro_v2a"]) / 2
    return out


def exact_embeddings(rng: np.random.Generator, n: int, dim: int = 8, nonzero: int = 4) -> np.ndarray:
    """Rows with ``nonzero`` entries of +-1 (norm 2): unit rows have entries +-0.5, so every
    cosine is a multiple of 1/4 computed exactly, whatever the summation order: many ties."""
    x = np.zeros((n, dim))
    for i in range(n):
        x[i, rng.choice(dim, nonzero, replace=False)] = rng.choice([-1.0, 1.0], nonzero)
    return x


def assert_metrics_close(got: dict[str, float], want: dict[str, float], tol: float = 1e-12) -> None:
    assert set(got) == set(want)
    for k in want:
        assert got[k] == pytest.approx(want[k], abs=tol), k


# ----------------------------------------------------------------------------- average_precision
@pytest.mark.parametrize("seed", range(4))
def test_average_precision_matches_sklearn_without_ties(seed):
    rng = np.random.default_rng(seed)
    scores = rng.standard_normal((25, 60))
    relevant = rng.random((25, 60)) < rng.uniform(0.05, 0.6)
    relevant[0] = False
    got = average_precision(scores, relevant)
    assert np.isnan(got[0])
    for i in range(1, 25):
        if relevant[i].any():
            assert got[i] == pytest.approx(average_precision_score(relevant[i], scores[i]), abs=1e-12)


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda r: r.standard_normal((12, 30)), id="random"),
        pytest.param(lambda r: r.integers(-2, 3, (12, 30)).astype(float), id="integer-ties"),
        pytest.param(lambda r: np.zeros((12, 30)), id="all-equal"),
        pytest.param(lambda r: r.integers(0, 2, (12, 30)) * 0.5 - 1.0, id="two-levels-negative"),
        pytest.param(lambda r: r.standard_normal((1, 1)), id="single-item"),
        pytest.param(lambda r: r.standard_normal((7, 1)), id="one-column"),
    ],
)
def test_average_precision_matches_brute_force(make):
    rng = np.random.default_rng(11)
    scores = make(rng)
    for p in (0.0, 0.2, 0.7, 1.0):
        relevant = rng.random(scores.shape) < p
        np.testing.assert_allclose(average_precision(scores, relevant), brute_ap(scores, relevant), atol=1e-12)


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 6).flatmap(
        lambda n: st.integers(1, 9).flatmap(
            lambda m: st.tuples(
                st.lists(st.lists(st.integers(-2, 2), min_size=m, max_size=m), min_size=n, max_size=n),
                st.lists(st.lists(st.booleans(), min_size=m, max_size=m), min_size=n, max_size=n),
            )
        )
    )
)
def test_average_precision_property_heavy_ties(data):
    scores, relevant = np.array(data[0], dtype=float), np.array(data[1], dtype=bool)
    np.testing.assert_allclose(average_precision(scores, relevant), brute_ap(scores, relevant), atol=1e-12)


def test_average_precision_all_equal_scores_is_prevalence():
    # every item ties with every other: precision at each relevant item is n_rel / M
    relevant = np.array([[True, False, False, True], [True, True, True, True]])
    np.testing.assert_allclose(average_precision(np.ones((2, 4)), relevant), [0.5, 1.0])


def test_average_precision_invariant_to_column_order_under_ties():
    rng = np.random.default_rng(3)
    scores = rng.integers(0, 3, (20, 40)).astype(float)
    relevant = rng.random((20, 40)) < 0.3
    want = average_precision(scores, relevant)
    for _ in range(5):
        perm = rng.permutation(40)
        np.testing.assert_array_equal(average_precision(scores[:, perm], relevant[:, perm]), want)


def test_average_precision_accepts_01_integers_and_float32():
    rng = np.random.default_rng(4)
    scores = rng.standard_normal((5, 9)).astype(np.float32)
    relevant = rng.random((5, 9)) < 0.5
    np.testing.assert_array_equal(average_precision(scores, relevant.astype(np.int8)), average_precision(scores, relevant))


# ----------------------------------------------------------------------------- pair_ranks
def test_pair_ranks_match_brute_force_with_ties():
    rng = np.random.default_rng(5)
    for scores in (rng.standard_normal((30, 30)), rng.integers(0, 3, (30, 30)).astype(float), np.zeros((4, 4))):
        np.testing.assert_array_equal(pair_ranks(scores), brute_ranks(scores))
    np.testing.assert_array_equal(pair_ranks(np.zeros((4, 4))), [4, 4, 4, 4])  # pessimistic: last of the tie


def test_pair_ranks_needs_square_matrix():
    with pytest.raises(InputError, match=r"input: scores: .*square"):
        pair_ranks(np.zeros((3, 4)))


# ----------------------------------------------------------------------------- retrieval_metrics
@pytest.mark.parametrize("seed", range(3))
def test_paired_random_embeddings_match_brute_force(seed):
    rng = np.random.default_rng(seed)
    n, classes = 60, 5
    labels = rng.integers(0, classes, n)
    centroids = rng.standard_normal((classes, 16))
    a = centroids[labels] + rng.standard_normal((n, 16))
    v = centroids[labels] + rng.standard_normal((n, 16))
    got = retrieval_metrics(a, v, labels, labels)
    assert set(got) == MAP_KEYS | PAIRED_KEYS
    assert all(type(x) is float for x in got.values())
    assert all(0.0 <= got[k] <= 1.0 for k in MAP_KEYS)
    assert_metrics_close(got, brute_metrics(a, v, labels, labels, paired=True))


def test_heavy_ties_from_embeddings_match_brute_force():
    rng = np.random.default_rng(7)
    n = 50
    a, v = exact_embeddings(rng, n), exact_embeddings(rng, n)
    la, lv = rng.integers(0, 4, n), rng.integers(0, 4, n)
    sim = cosine(a, v)
    assert len(np.unique(sim)) < 12  # the case is really tie-heavy
    assert_metrics_close(retrieval_metrics(a, v, la, lv), brute_metrics(a, v, la, lv, paired=True))


def test_unpaired_with_absent_class_matches_brute_force():
    rng = np.random.default_rng(8)
    a, v = rng.standard_normal((23, 6)), rng.standard_normal((31, 6))
    la = rng.integers(0, 5, 23)
    lv = rng.integers(0, 4, 31)  # audio class 4 has no visual item: those queries are left out
    la[:3] = 4
    got = retrieval_metrics(a, v, la, lv)
    assert set(got) == MAP_KEYS  # N != M: no pair metrics
    assert_metrics_close(got, brute_metrics(a, v, la, lv, paired=False))
    assert retrieval_metrics(a[:20], v[:20], la[:20], lv[:20], paired=False).keys() == MAP_KEYS


def test_single_item_and_all_equal_embeddings():
    got = retrieval_metrics([[1.0, 0.0]], [[2.0, 0.0]], [3], [3])
    assert got == {**dict.fromkeys(MAP_KEYS, 1.0), **{k: 1.0 for k in PAIRED_KEYS}}
    # identical embeddings: every score ties, AP = class prevalence, own pair ranks last
    labels = np.array([0, 0, 1, 1, 1])
    got = retrieval_metrics(np.ones((5, 3)), np.ones((5, 3)), labels, labels)
    want_ap = np.mean([2 / 5, 2 / 5, 3 / 5, 3 / 5, 3 / 5])
    assert got["mAP_a2v"] == pytest.approx(want_ap) and got["mAP_v2a"] == pytest.approx(want_ap)
    assert got["MedR_a2v"] == 5.0 and got["R@1_a2v"] == 0.0 and got["R@5_a2v"] == 1.0


def test_scale_of_embeddings_does_not_matter():
    rng = np.random.default_rng(9)
    a, v = rng.standard_normal((20, 5)), rng.standard_normal((20, 5))
    labels = rng.integers(0, 3, 20)
    want = retrieval_metrics(a, v, labels, labels)
    assert_metrics_close(retrieval_metrics(a * 1e250, v * 1e-250, labels, labels), want)


def test_gallery_permutation_under_ties_changes_nothing():
    rng = np.random.default_rng(10)
    n = 40
    a, v = exact_embeddings(rng, n), exact_embeddings(rng, n)
    la, lv = rng.integers(0, 3, n), rng.integers(0, 3, n)
    base = retrieval_metrics(a, v, la, lv)
    for _ in range(4):
        perm = rng.permutation(n)
        # the gallery alone: every a2v AP is the same number
        got = retrieval_metrics(a, v[perm], la, lv[perm], paired=False)
        assert got["mAP_a2v"] == base["mAP_a2v"]
        assert got["mAP_v2a"] == pytest.approx(base["mAP_v2a"], abs=1e-15)
        # both sides together keeps the pairs: ranks are unchanged
        both = retrieval_metrics(a[perm], v[perm], la[perm], lv[perm])
        assert {k: both[k] for k in PAIRED_KEYS} == {k: base[k] for k in PAIRED_KEYS}
        assert both["mAP"] == pytest.approx(base["mAP"], abs=1e-15)


@pytest.mark.parametrize("exact", [True, False], ids=["ties", "random"])
def test_block_size_never_changes_the_result(exact, monkeypatch):
    rng = np.random.default_rng(12)
    n = 45
    a, v = (exact_embeddings(rng, n), exact_embeddings(rng, n)) if exact else (rng.standard_normal((n, 8)), rng.standard_normal((n, 8)))
    la, lv = rng.integers(0, 4, n), rng.integers(0, 4, n)
    want = retrieval_metrics(a, v, la, lv)
    for block in (1, 2, 7, 44, 45, 1000):
        assert retrieval_metrics(a, v, la, lv, block_size=block) == want
    monkeypatch.setattr(rm, "BLOCK_BYTES", 1)  # automatic choice degenerates to one row per block
    assert retrieval_metrics(a, v, la, lv) == want
    assert_metrics_close(want, brute_metrics(a, v, la, lv, paired=True))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu():
    rng = np.random.default_rng(13)
    a, v = rng.standard_normal((300, 32)), rng.standard_normal((300, 32))
    labels = rng.integers(0, 6, 300)
    assert_metrics_close(retrieval_metrics(a, v, labels, labels, device="cuda"), retrieval_metrics(a, v, labels, labels))


def test_metric_specs_cover_every_key():
    rng = np.random.default_rng(14)
    labels = rng.integers(0, 2, 12)
    got = retrieval_metrics(rng.standard_normal((12, 3)), rng.standard_normal((12, 3)), labels, labels)
    assert set(got) == set(METRICS)
    assert not METRICS["MedR_a2v"].higher_is_better and METRICS["mAP"].higher_is_better


# ----------------------------------------------------------------------------- errors
def _valid():
    rng = np.random.default_rng(15)
    return rng.standard_normal((6, 4)), rng.standard_normal((6, 4)), np.arange(6) % 2, np.arange(6) % 2


@pytest.mark.parametrize(
    "change, error, message",
    [
        (lambda a, v, la, lv: (np.where(np.arange(24).reshape(6, 4) == 5, np.nan, a), v, la, lv), InputError,
         r"^src: audio: contains NaN or inf"),
        (lambda a, v, la, lv: (a, np.where(np.arange(24).reshape(6, 4) == 0, np.inf, v), la, lv), InputError,
         r"^src: visual: contains NaN or inf"),
        (lambda a, v, la, lv: (np.vstack([a[:3], np.zeros((1, 4)), a[4:]]), v, la, lv), InputError,
         r"^src: audio: row 3 has zero norm"),
        (lambda a, v, la, lv: (a, v[:, :3], la, lv), InputError, r"^src: audio/visual: embedding dimension mismatch"),
        (lambda a, v, la, lv: (a, v, la[:5], lv), InputError, r"^src: audio/audio_labels: count mismatch"),
        (lambda a, v, la, lv: (a, v, la, np.append(lv, 0)), InputError, r"^src: visual/visual_labels: count mismatch"),
        (lambda a, v, la, lv: (a[0], v, la, lv), InputError, r"^src: audio: expected 2-D array"),
        (lambda a, v, la, lv: (a.astype(object), v, la, lv), InputError, r"^src: audio: object arrays are not accepted"),
        (lambda a, v, la, lv: (a, v, la + 0.5, lv), InputError, r"^src: audio_labels: expected an integer array"),
        (lambda a, v, la, lv: (a, v, la, lv + 2), InputError, r"^src: audio_labels/visual_labels: no audio and visual"),
        (lambda a, v, la, lv: (a[:0], v, la[:0], lv), InputError, r"^src: audio: needs at least 1 item"),
    ],
)
def test_bad_inputs_raise_one_line_errors(change, error, message):
    a, v, la, lv = change(*_valid())
    with pytest.raises(error, match=message):
        retrieval_metrics(a, v, la, lv, source="src")


def test_bad_options_raise():
    a, v, la, lv = _valid()
    with pytest.raises(InputError, match=r"^input: audio/visual: count mismatch"):
        retrieval_metrics(a, v[:5], la, lv[:5], paired=True)
    for block in (0, -1, 2.5, True):
        with pytest.raises(ConfigError, match="block_size"):
            retrieval_metrics(a, v, la, lv, block_size=block)
    with pytest.raises(ConfigError, match="device"):
        retrieval_metrics(a, v, la, lv, device="no-such-device")
    with pytest.raises(ConfigError, match="paired"):
        retrieval_metrics(a, v, la, lv, paired="yes")


def test_average_precision_bad_inputs():
    with pytest.raises(InputError, match=r"^input: scores/relevant: shape mismatch"):
        average_precision(np.zeros((2, 3)), np.zeros((3, 2), bool))
    with pytest.raises(InputError, match=r"^input: relevant: expected booleans or 0/1"):
        average_precision(np.zeros((2, 3)), np.full((2, 3), 2))
    with pytest.raises(InputError, match=r"^input: scores: contains NaN"):
        average_precision(np.full((2, 3), np.nan), np.ones((2, 3), bool))


# ----------------------------------------------------------------------------- the torchmetrics trap
def test_torchmetrics_differs_on_negative_cosine_scores():
    """torchmetrics' RetrievalMAP drops relevant items scored <= 0, a trap on cosine scores.

    Our AP of [0.9 (irr), -0.2 (rel), -0.5 (rel)] is (1/2 + 2/3) / 2; torchmetrics 1.9
    counts no relevant item at all and returns 0. A monotone shift to positive scores
    makes it agree again (no ties here).
    """
    from torchmetrics.functional.retrieval import retrieval_average_precision

    scores = np.array([[0.9, -0.2, -0.5]])
    relevant = np.array([[False, True, True]])
    ours = float(average_precision(scores, relevant)[0])
    assert ours == pytest.approx((1 / 2 + 2 / 3) / 2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        raw = float(retrieval_average_precision(torch.tensor(scores[0]), torch.tensor(relevant[0])))
        shifted = float(retrieval_average_precision(torch.tensor((scores[0] + 1) / 2), torch.tensor(relevant[0])))
    assert raw == 0.0 and raw != pytest.approx(ours)
    assert shifted == pytest.approx(ours, abs=1e-6)


def test_label_problems_are_blamed_on_ref_source():
    rng = np.random.default_rng(0)
    a, v = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    with pytest.raises(InputError, match=r"^ref.npz: audio_labels/visual_labels: no audio and visual item share"):
        retrieval_metrics(a, v, np.array([0, 0, 1, 1]), np.array([2, 2, 3, 3]), source="pred.npz",
                          ref_source="ref.npz")
    with pytest.raises(InputError, match=r"^ref.npz: visual_labels: expected an integer array"):
        retrieval_metrics(a, v, np.zeros(4, int), np.zeros(4, "m8[s]"), source="pred.npz", ref_source="ref.npz")


# ----------------------------------------------------------------------------- macro averaging
def sklearn_macro(a, v, la, lv) -> dict[str, float]:
    """Per-query sklearn ``average_precision_score``, grouped by query class (no ties assumed)."""
    out = {}
    for d, s, lq, lg in (("a2v", cosine(a, v), la, lv), ("v2a", cosine(v, a), lv, la)):
        by_class: dict[int, list[float]] = {}
        for i in range(len(s)):
            rel = lg == lq[i]
            if rel.any():
                by_class.setdefault(int(lq[i]), []).append(average_precision_score(rel, s[i]))
        out[f"mAP_macro_{d}"] = float(np.mean([np.mean(v_) for v_ in by_class.values()]))
        out[f"mAP_{d}"] = float(np.mean([x for v_ in by_class.values() for x in v_]))
    return out


@pytest.mark.parametrize("seed", range(3))
def test_macro_matches_sklearn_per_query_loop_grouped_by_class(seed):
    rng = np.random.default_rng(100 + seed)
    n, m = 47, 39
    la = rng.choice(5, n, p=[0.5, 0.2, 0.15, 0.1, 0.05])  # unbalanced: micro and macro differ
    lv = rng.integers(0, 5, m)
    a, v = rng.standard_normal((n, 6)), rng.standard_normal((m, 6))
    got = retrieval_metrics(a, v, la, lv)
    want = sklearn_macro(a, v, la, lv)
    for k, x in want.items():
        assert got[k] == pytest.approx(x, abs=1e-12), k
    assert got["mAP_macro"] == pytest.approx((want["mAP_macro_a2v"] + want["mAP_macro_v2a"]) / 2, abs=1e-12)
    assert got["mAP_macro_a2v"] != pytest.approx(got["mAP_a2v"], abs=1e-6)


def test_macro_empty_class_single_item_and_ties():
    # audio class 9 has no visual item (its queries are left out of both averages); visual
    # class 7 has a single item, and no audio query (left out of v2a's macro mean)
    rng = np.random.default_rng(5)
    la = np.array([0, 0, 0, 0, 1, 9, 9])
    lv = np.array([0, 1, 1, 7, 0, 1])
    a, v = exact_embeddings(rng, len(la)), exact_embeddings(rng, len(lv))
    got = retrieval_metrics(a, v, la, lv)
    want = brute_metrics(a, v, la, lv, paired=False)
    assert_metrics_close(got, want)
    # by hand from the brute-force per-query APs: class 0 has 4 queries, class 1 one
    ap = brute_ap(cosine(a, v), la[:, None] == lv[None, :])
    assert np.isnan(ap[5:]).all()
    assert got["mAP_macro_a2v"] == pytest.approx((np.mean(ap[:4]) + ap[4]) / 2, abs=1e-12)
    # a single item per side: every average is 1
    one = retrieval_metrics([[1.0, 0.0]], [[0.5, 0.5]], [4], [4])
    assert one["mAP_macro"] == one["mAP_macro_a2v"] == one["mAP_macro_v2a"] == 1.0


def test_macro_equals_micro_on_balanced_queries_and_is_label_permutation_invariant():
    rng = np.random.default_rng(6)
    labels = np.repeat(np.arange(4), 6)
    a, v = rng.standard_normal((24, 5)), rng.standard_normal((24, 5))
    got = retrieval_metrics(a, v, labels, labels)
    assert got["mAP_macro_a2v"] == pytest.approx(got["mAP_a2v"], abs=1e-12)
    renamed = np.array([30, 2, 17, 5])[labels]
    again = retrieval_metrics(a, v, renamed, renamed)
    assert again["mAP_macro"] == pytest.approx(got["mAP_macro"], abs=1e-15)


def test_macro_mean_helper_all_nan_and_grouping():
    assert np.isnan(rm.macro_mean(np.array([np.nan, np.nan]), np.array([0, 1])))
    assert rm.macro_mean(np.array([1.0, 0.0, 0.5, np.nan]), np.array([3, 3, 8, 8])) == pytest.approx(0.5)


def test_retrieval_reports_rk_only_on_instance_pairs():
    """avdigits pairs audio and images arbitrarily within a class: no R@K / MedR there, and the
    exported REF says so, so `score` agrees with `run`."""
    from avcl_bench.benchmark.datasets import load_dataset
    from avcl_bench.tasks.registry import get_task

    task = get_task("retrieval")
    rng = np.random.default_rng(0)
    synth = load_dataset("avsynth", options={"n_train": "20", "n_val": "10", "n_test": "20"}, quick=True)
    ref = task.export_reference(synth)
    assert ref["paired"].shape == () and bool(ref["paired"])
    pred = {"audio": rng.normal(size=(20, 4)), "visual": rng.normal(size=(20, 4))}
    assert "R@10_a2v" in task.score(pred, ref)
    unpaired = {**ref, "paired": np.asarray(False)}
    got = task.score(pred, unpaired)
    assert not any(k.startswith(("R@", "MedR")) for k in got) and "mAP" in got
    assert "R@10_a2v" in task.score(pred, {k: v for k, v in ref.items() if k != "paired"})  # N == M: paired
    with pytest.raises(InputError, match="paired: must be a 0-d bool"):
        task.score(pred, {**ref, "paired": np.asarray([1, 0])})
