"""Sound-localization metrics (LVS protocol) vs brute-force per-pixel loops and hand examples."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import auc as sklearn_auc

import avcl_bench.tasks.localization.metrics as loc
from avcl_bench.benchmark.errors import InputError
from avcl_bench.tasks.base import MetricSpec
from avcl_bench.tasks.localization.metrics import (
    METRICS,
    box_mask,
    ciou_per_sample,
    consensus_map,
    localization_metrics,
    summarize_ciou,
)


# ----------------------------------------------------------------------------- references
def brute_ciou(heatmap: np.ndarray, mask: np.ndarray) -> float:
    """cIoU of one sample by per-pixel loops, without sorting.

    The element at index k = floor(P/2) of the ascending sort is t; a pixel is strictly above
    t exactly when at least k+1 pixels are strictly below it.
    """
    h, w = heatmap.shape
    values = [float(heatmap[r, c]) for r in range(h) for c in range(w)]
    k = (h * w) // 2
    inter = mass = outside = 0.0
    for r in range(h):
        for c in range(w):
            below = sum(1 for v in values if v < heatmap[r, c])
            kept = below >= k + 1
            g = float(mask[r, c])
            mass += g
            if kept:
                inter += g
                if g == 0:
                    outside += 1
    return inter / (mass + outside)


def brute_auc(cious: list[float]) -> float:
    """Trapezoid sum over x = 0.05 i of the share of samples with cIoU >= x, by hand."""
    xs = [0.05 * i for i in range(21)]
    ys = [sum(1 for v in cious if v >= x) / len(cious) for x in xs]
    return sum((xs[i + 1] - xs[i]) * (ys[i] + ys[i + 1]) / 2 for i in range(20))


def bilinear_half_pixel(img: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """Bilinear resize with half-pixel centres and edge clamping, by explicit loops."""
    in_h, in_w = img.shape

    def source(dst: int, n_in: int, n_out: int) -> tuple[int, int, float]:
        x = max((dst + 0.5) * n_in / n_out - 0.5, 0.0)
        i0 = min(int(math.floor(x)), n_in - 1)
        i1 = min(i0 + 1, n_in - 1)
        return i0, i1, x - i0

    out = np.zeros((out_h, out_w))
    for r in range(out_h):
        r0, r1, fr = source(r, in_h, out_h)
        for c in range(out_w):
            c0, c1, fc = source(c, in_w, out_w)
            top = (1 - fc) * img[r0, c0] + fc * img[r0, c1]
            bottom = (1 - fc) * img[r1, c0] + fc * img[r1, c1]
            out[r, c] = (1 - fr) * top + fr * bottom
    return out


def brute_box_map(
    boxes_px: list[tuple[int, int, int, int]], h: int, w: int
) -> np.ndarray:
    """Number of boxes covering each pixel (end-exclusive integer boxes), by loops."""
    out = np.zeros((h, w))
    for r in range(h):
        for c in range(w):
            out[r, c] = sum(1 for x1, y1, x2, y2 in boxes_px if x1 <= c < x2 and y1 <= r < y2)
    return out


def random_soft_masks(rng: np.random.Generator, n: int, h: int, w: int) -> np.ndarray:
    masks = np.zeros((n, h, w))
    for i in range(n):
        for _ in range(int(rng.integers(1, 4))):
            y1, x1 = int(rng.integers(0, h - 1)), int(rng.integers(0, w - 1))
            y2, x2 = int(rng.integers(y1 + 1, h + 1)), int(rng.integers(x1 + 1, w + 1))
            masks[i, y1:y2, x1:x2] += 0.5
    return np.minimum(masks, 1.0)


def check_against_brute(heatmaps: np.ndarray, masks: np.ndarray) -> None:
    expected = [brute_ciou(h, m) for h, m in zip(heatmaps, masks)]
    got = ciou_per_sample(heatmaps, masks)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    out = localization_metrics(heatmaps, masks)
    assert out["cIoU"] == pytest.approx(np.mean([v >= 0.5 for v in expected]), abs=1e-12)
    assert out["mean_cIoU"] == pytest.approx(np.mean(expected), abs=1e-12)
    assert out["AUC"] == pytest.approx(brute_auc(expected), abs=1e-12)
    xs = [0.05 * i for i in range(21)]
    assert out["AUC"] == pytest.approx(
        sklearn_auc(xs, [np.mean(np.array(expected) >= x) for x in xs]), abs=1e-12
    )
    assert all(type(v) is float for v in out.values())


# ----------------------------------------------------------------------------- cIoU / AUC
def test_hand_computed_4x4_example() -> None:
    # Heatmap 0..15: P = 16, element 8 of the sort is 8, so pixels 9..15 are kept:
    # row 2 columns 1-3 and all of row 3.
    heat = np.arange(16, dtype=float).reshape(4, 4)
    mask = np.zeros((4, 4))
    mask[2:4, 0:2] = 1.0
    mask[2:4, 2] = 0.5  # sum(g) = 5
    # kept * g = 1 + .5 + 0 + 1 + 1 + .5 + 0 = 4; kept pixels outside g: (2,3), (3,3) -> 2
    assert ciou_per_sample(heat[None], mask[None])[0] == pytest.approx(4 / 7)
    # The mirrored heatmap keeps row 0 and row 1 columns 0-2: no overlap, 7 outside -> 0.
    out = localization_metrics(np.stack([heat, -heat]), np.stack([mask, mask]))
    assert out["cIoU"] == 0.5
    assert out["mean_cIoU"] == pytest.approx(2 / 7)
    # success curve: 1 at x=0, 0.5 for x in 0.05..0.55, 0 from 0.6 on
    # area = 0.05*(1+0.5)/2 + 10*0.05*0.5 + 0.05*0.5/2 = 0.0375 + 0.25 + 0.0125
    assert out["AUC"] == pytest.approx(0.3)


@pytest.mark.parametrize("seed", range(5))
def test_random_heatmaps_and_soft_masks(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, h, w = int(rng.integers(1, 7)), int(rng.integers(2, 9)), int(rng.integers(2, 9))
    masks = random_soft_masks(rng, n, h, w)
    heat = rng.normal(size=(n, h, w)) + 2.0 * masks  # informative, so cIoU spreads out
    check_against_brute(heat, masks)


@pytest.mark.parametrize("seed", range(4))
def test_continuous_soft_masks(seed: int) -> None:
    rng = np.random.default_rng(10 + seed)
    masks = rng.random((4, 6, 7)) * (rng.random((4, 6, 7)) < 0.5)
    masks[:, 0, 0] = 0.3  # never empty
    check_against_brute(rng.normal(size=(4, 6, 7)), masks)


@pytest.mark.parametrize("seed", range(5))
def test_heatmaps_with_ties(seed: int) -> None:
    rng = np.random.default_rng(20 + seed)
    masks = random_soft_masks(rng, 5, 6, 6)
    heat = rng.integers(0, 3, size=(5, 6, 6)).astype(float)  # 3 levels: ties at the median
    check_against_brute(heat, masks)


def test_many_samples_across_internal_chunks() -> None:
    rng = np.random.default_rng(99)
    masks = random_soft_masks(rng, 150, 4, 5)
    check_against_brute(rng.integers(0, 6, size=(150, 4, 5)).astype(float), masks)
    small = rng.normal(size=(150, 3, 3))  # resize path, chunked too
    direct = F.interpolate(torch.from_numpy(small)[:, None], size=(4, 5), mode="bilinear", align_corners=False)[:, 0]
    np.testing.assert_array_equal(ciou_per_sample(small, masks), ciou_per_sample(direct.numpy(), masks))


def test_more_than_half_tied_at_the_maximum_keeps_nothing() -> None:
    heat = np.zeros((1, 4, 4))
    heat[0, 0, :3] = -1.0  # 13 of 16 pixels share the maximum 0: element 8 is 0
    mask = np.ones((1, 4, 4))
    assert ciou_per_sample(heat, mask)[0] == 0.0
    check_against_brute(heat, mask)


def test_constant_heatmap_scores_zero() -> None:
    masks = np.ones((2, 5, 5))
    masks[1, :2] = 0.0
    heat = np.full((2, 5, 5), 3.0)
    np.testing.assert_array_equal(ciou_per_sample(heat, masks), [0.0, 0.0])
    assert localization_metrics(heat, masks) == {"cIoU": 0.0, "AUC": pytest.approx(0.05 / 2), "mean_cIoU": 0.0}


def test_single_sample_and_single_pixel() -> None:
    rng = np.random.default_rng(3)
    masks = random_soft_masks(rng, 1, 5, 4)
    check_against_brute(rng.normal(size=(1, 5, 4)), masks)
    # a 1x1 map keeps nothing (no pixel is strictly above the only one)
    assert ciou_per_sample([[[5.0]]], [[[1.0]]])[0] == 0.0


def test_perfect_heatmap() -> None:
    mask = np.zeros((1, 4, 4))
    mask[0, 2:] = 1.0  # exactly 8 pixels: the kept half is at most 7 of them (strict rule)
    heat = mask + 0.01 * np.arange(16).reshape(1, 4, 4)
    assert ciou_per_sample(heat, mask)[0] == pytest.approx(7 / 8)
    check_against_brute(heat, mask)


def test_bool_and_integer_inputs_are_accepted() -> None:
    mask = np.zeros((1, 4, 4), dtype=bool)
    mask[0, 3] = True
    heat = np.arange(16).reshape(1, 4, 4)  # int heatmap
    check_against_brute(heat.astype(float), mask.astype(float))
    assert ciou_per_sample(heat, mask)[0] == pytest.approx(4 / 7)  # keeps 9..15: all of row 3


# ----------------------------------------------------------------------------- resize path
@pytest.mark.parametrize(("small", "big"), [((4, 4), (8, 8)), ((5, 7), (12, 9)), ((9, 10), (6, 4))])
def test_heatmaps_are_resized_bilinearly_to_the_mask_size(small: tuple, big: tuple) -> None:
    rng = np.random.default_rng(sum(small) + sum(big))
    n = 3
    heat = rng.normal(size=(n, *small))
    masks = random_soft_masks(rng, n, *big)
    ref = np.stack([bilinear_half_pixel(h, *big) for h in heat])
    direct = F.interpolate(
        torch.from_numpy(heat)[:, None], size=big, mode="bilinear", align_corners=False
    )[:, 0].numpy()
    np.testing.assert_allclose(direct, ref, rtol=0, atol=1e-12)  # the documented resize
    got = ciou_per_sample(heat, masks)
    np.testing.assert_array_equal(got, ciou_per_sample(direct, masks))
    np.testing.assert_allclose(got, [brute_ciou(h, m) for h, m in zip(ref, masks)], rtol=0, atol=1e-12)


def test_same_size_is_not_resized() -> None:
    rng = np.random.default_rng(7)
    masks = random_soft_masks(rng, 2, 6, 6)
    heat = rng.normal(size=(2, 6, 6))
    np.testing.assert_allclose(
        ciou_per_sample(heat, masks), [brute_ciou(h, m) for h, m in zip(heat, masks)], rtol=0, atol=1e-12
    )


# ----------------------------------------------------------------------------- empty masks
def test_empty_mask_is_refused_naming_the_sample() -> None:
    masks = np.ones((3, 4, 4))
    masks[2] = 0.0
    with pytest.raises(InputError) as err:
        localization_metrics(np.random.default_rng(0).normal(size=(3, 4, 4)), masks, source="gt.npz")
    assert err.value.field == "masks" and "sample 2" in err.value.problem and "empty" in err.value.problem


def test_empty_mask_zero_option_scores_zero() -> None:
    masks = np.ones((2, 4, 4))
    masks[1] = 0.0
    heat = np.arange(32, dtype=float).reshape(2, 4, 4)
    got = ciou_per_sample(heat, masks, empty_mask="zero")
    assert got[0] == pytest.approx(brute_ciou(heat[0], masks[0]))
    assert got[1] == 0.0
    # nothing kept and nothing to find: still 0, not NaN
    assert ciou_per_sample(np.zeros((1, 4, 4)), np.zeros((1, 4, 4)), empty_mask="zero")[0] == 0.0


# ----------------------------------------------------------------------------- ground truth
def test_consensus_map_hand_example() -> None:
    boxes = [
        [[0, 0, 4, 4]],  # annotator 0
        [[2, 2, 6, 6]],  # annotator 1
        [[2, 2, 4, 4], [3, 3, 5, 5]],  # annotator 2: overlapping boxes also add up (as LVS)
    ]
    g = consensus_map(boxes, size=(8, 8), box_scale=1.0)
    assert g.shape == (8, 8) and g.dtype == np.float64
    assert g[1, 1] == 0.5  # one box
    assert g[2, 2] == 1.0  # three boxes, clipped
    assert g[5, 5] == 0.5  # annotator 1 only
    assert g[4, 4] == 1.0  # annotator 1 + annotator 2's second box
    assert g[1, 4] == 0.0 and g[6, 6] == 0.0 and g[3, 6] == 0.0
    assert g[0, 3] == 0.5 and g[0, 4] == 0.0  # end coordinate is exclusive
    counts = brute_box_map([tuple(b) for ann in boxes for b in ann], 8, 8)
    np.testing.assert_array_equal(g, np.minimum(counts / 2, 1.0))


def test_consensus_map_default_scale_maps_256_to_224() -> None:
    g = consensus_map([[[10, 20, 100, 50]]])  # floor(0.875 * v): x 8..86, y 17..42
    assert g.shape == (224, 224)
    expected = np.zeros((224, 224))
    expected[17:43, 8:87] = 0.5
    np.testing.assert_array_equal(g, expected)
    full = consensus_map([[[0, 0, 256, 256]], [[0, 0, 256, 256]]])
    assert (full == 1.0).all()


@pytest.mark.parametrize("seed", range(4))
def test_consensus_map_random_boxes_vs_brute_force(seed: int) -> None:
    rng = np.random.default_rng(40 + seed)
    h, w = 12, 15
    scale = (w / 20, h / 16)
    annotators = []
    for _ in range(int(rng.integers(1, 4))):
        boxes = []
        for _ in range(int(rng.integers(0, 3))):
            x1, y1 = rng.integers(0, 20), rng.integers(0, 16)
            boxes.append([x1, y1, rng.integers(x1, 21), rng.integers(y1, 17)])
        annotators.append(boxes)
    px = [
        (math.floor(x1 * scale[0]), math.floor(y1 * scale[1]), math.floor(x2 * scale[0]), math.floor(y2 * scale[1]))
        for ann in annotators for x1, y1, x2, y2 in ann
    ]
    expected = np.minimum(brute_box_map(px, h, w) / 2, 1.0)
    np.testing.assert_array_equal(consensus_map(annotators, size=(h, w), box_scale=scale), expected)
    np.testing.assert_array_equal(
        consensus_map(annotators, size=(h, w), box_scale=scale, full_agreement=1),
        np.minimum(brute_box_map(px, h, w), 1.0),
    )


def test_box_mask_hand_example() -> None:
    g = box_mask([[0.25, 0.5, 0.75, 1.0]], size=(4, 8))  # cols 2..5, rows 2..3
    expected = np.zeros((4, 8))
    expected[2:4, 2:6] = 1.0
    np.testing.assert_array_equal(g, expected)
    # union, not sum; a negative start is clipped to 0; values beyond 1 are clipped to the map
    g2 = box_mask([[-0.1, 0.0, 0.5, 0.5], [0.25, 0.25, 0.5, 0.5], [0.875, 0.75, 1.2, 1.3]], size=(4, 8))
    expected2 = np.zeros((4, 8))
    expected2[0:2, 0:4] = 1.0
    expected2[3:4, 7:8] = 1.0
    np.testing.assert_array_equal(g2, expected2)
    # zero-area boxes cover nothing; no boxes gives an empty map
    assert box_mask([[0.26875, 1.0, 0.753125, 1.0]], size=(224, 224)).sum() == 0
    assert box_mask([], size=(3, 3)).shape == (3, 3) and box_mask(np.zeros((0, 4))).sum() == 0


@pytest.mark.parametrize("seed", range(4))
def test_box_mask_random_boxes_vs_brute_force(seed: int) -> None:
    rng = np.random.default_rng(60 + seed)
    h, w = 224, 224
    lo = rng.random((3, 2))
    hi = lo + rng.random((3, 2)) * (1 - lo)
    boxes = np.concatenate([lo, hi], axis=1)
    px = [(int(w * x1), int(h * y1), int(w * x2), int(h * y2)) for x1, y1, x2, y2 in boxes]
    h_small, w_small = 20, 31  # brute force on a small map with the same rule
    px_small = [(int(w_small * x1), int(h_small * y1), int(w_small * x2), int(h_small * y2)) for x1, y1, x2, y2 in boxes]
    np.testing.assert_array_equal(box_mask(boxes, size=(h_small, w_small)), np.minimum(brute_box_map(px_small, h_small, w_small), 1.0))
    big = box_mask(boxes, size=(h, w))
    for x1, y1, x2, y2 in px:  # every box is inside the union, corners included
        if x2 > x1 and y2 > y1:
            assert big[y1, x1] == 1.0 and big[y2 - 1, x2 - 1] == 1.0


# ----------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    ("args", "kwargs", "field", "needle"),
    [
        ((np.full((1, 4, 4), np.nan), np.ones((1, 4, 4))), {}, "heatmaps", "NaN"),
        ((np.zeros((1, 4, 4)), np.full((1, 4, 4), np.nan)), {}, "masks", "NaN"),
        ((np.zeros((1, 4, 4)), np.full((1, 4, 4), 1.5)), {}, "masks", "[0, 1]"),
        ((np.zeros((1, 4, 4)), np.full((1, 4, 4), -0.1)), {}, "masks", "[0, 1]"),
        ((np.zeros((4, 4)), np.ones((1, 4, 4))), {}, "heatmaps", "3-D"),
        ((np.zeros((1, 4, 4)), np.ones((4, 4))), {}, "masks", "3-D"),
        ((np.zeros((2, 4, 4)), np.ones((3, 4, 4))), {}, "heatmaps/masks", "count mismatch"),
        ((np.zeros((0, 4, 4)), np.ones((0, 4, 4))), {}, "heatmaps", "at least 1"),
        ((np.zeros((1, 0, 4)), np.ones((1, 4, 4))), {}, "heatmaps", "1x1"),
        ((np.zeros((1, 4, 4)), np.ones((1, 4, 4))), {"empty_mask": "skip"}, "empty_mask", "'raise' or 'zero'"),
        ((np.zeros((1, 4, 4), dtype=complex), np.ones((1, 4, 4))), {}, "heatmaps", "real"),
    ],
)
def test_metric_errors(args: tuple, kwargs: dict, field: str, needle: str) -> None:
    for fn in (ciou_per_sample, localization_metrics):
        with pytest.raises(InputError) as err:
            fn(*args, source="run.npz", **kwargs)
        assert err.value.field == field
        assert needle in err.value.problem
        assert str(err.value).startswith(f"run.npz: {field}: ")


@pytest.mark.parametrize(
    ("call", "field", "needle"),
    [
        (lambda: box_mask([[0.5, 0.1, 0.4, 0.2]], source="vggss.json"), "boxes", "x2 < x1"),
        (lambda: box_mask([[0.1, 0.5, 0.4, 0.2]], source="vggss.json"), "boxes", "y2 < y1"),
        (lambda: box_mask([[0.1, 0.2, 0.4]], source="vggss.json"), "boxes", "4 numbers"),
        (lambda: box_mask([[0.1, 0.2, 0.4, 0.5], [0.1]], source="vggss.json"), "boxes", "4 numbers"),
        (lambda: box_mask([[0.1, np.nan, 0.4, 0.5]], source="vggss.json"), "boxes", "NaN"),
        (lambda: box_mask([[0.1, 0.2, 0.4, 0.5]], size=(0, 4), source="vggss.json"), "size", "positive"),
        (lambda: box_mask([[0.1, 0.2, 0.4, 0.5]], size=5, source="vggss.json"), "size", "(H, W)"),
        (lambda: consensus_map([[[0, 0, 4, 4]], [[-1, 0, 4, 4]]], source="a.xml"), "annotator 1 boxes", "negative"),
        (lambda: consensus_map([[[5, 0, 4, 4]]], source="a.xml"), "annotator 0 boxes", "x2 < x1"),
        (lambda: consensus_map([[[0, 0, 4, 4]]], box_scale=0.0, source="a.xml"), "box_scale", "positive"),
        (lambda: consensus_map([[[0, 0, 4, 4]]], box_scale=(1, 2, 3), source="a.xml"), "box_scale", "scale"),
        (lambda: consensus_map([[[0, 0, 4, 4]]], full_agreement=0, source="a.xml"), "full_agreement", "positive"),
    ],
)
def test_ground_truth_errors(call, field: str, needle: str) -> None:
    with pytest.raises(InputError) as err:
        call()
    assert err.value.field == field
    assert needle in err.value.problem


def test_summarize_ciou_batches_equal_one_call() -> None:
    rng = np.random.default_rng(5)
    masks = random_soft_masks(rng, 9, 6, 6)
    heat = rng.normal(size=(9, 6, 6)) + masks
    batched = np.concatenate([ciou_per_sample(heat[:4], masks[:4]), ciou_per_sample(heat[4:], masks[4:])])
    assert summarize_ciou(batched) == localization_metrics(heat, masks)
    assert summarize_ciou([0.5, 0.2]) == {"cIoU": 0.5, "AUC": pytest.approx(brute_auc([0.5, 0.2])), "mean_cIoU": 0.35}


@pytest.mark.parametrize(
    ("values", "needle"), [([0.2, np.nan], "NaN"), ([0.2, 1.5], "[0, 1]"), ([], "at least 1"), ([[0.2]], "1-D")]
)
def test_summarize_ciou_errors(values: list, needle: str) -> None:
    with pytest.raises(InputError) as err:
        summarize_ciou(np.array(values, dtype=float), source="ciou.npz")
    assert err.value.field == "ciou" and needle in err.value.problem


def test_metric_specs() -> None:
    assert set(METRICS) == {"cIoU", "AUC", "mean_cIoU"}
    for name, spec in METRICS.items():
        assert isinstance(spec, MetricSpec) and spec.name == name and spec.higher_is_better


def test_chunking_by_bytes_does_not_change_the_result(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(3)
    heat = rng.standard_normal((7, 5, 6))
    masks = (rng.random((7, 10, 12)) < 0.3).astype(np.float64)
    masks[:, 0, 0] = 1.0
    want = ciou_per_sample(heat, masks)
    monkeypatch.setattr(loc, "_CHUNK_BYTES", 1)  # one sample per chunk
    assert loc._chunk_rows(120) == 1
    np.testing.assert_array_equal(ciou_per_sample(heat, masks), want)


def test_memory_limit_and_mask_blame(monkeypatch: pytest.MonkeyPatch) -> None:
    heat = np.ones((2, 4, 4))
    masks = np.ones((2, 4, 4))
    bad = masks.copy()
    bad[1, 2, 2] = 3.0
    with pytest.raises(InputError, match=r"^ref.npz: masks: values must lie in \[0, 1\]"):
        localization_metrics(heat, bad, source="pred.npz", ref_source="ref.npz")
    monkeypatch.setenv("AVCL_MAX_METRIC_BYTES", "100")
    with pytest.raises(InputError, match=r"^ref.npz: masks: scoring heatmaps.*AVCL_MAX_METRIC_BYTES"):
        localization_metrics(heat, masks, source="pred.npz", ref_source="ref.npz")


# ----------------------------------------------------------------------------- ties=official (LVS script)
def lvs_script_keep(heatmap: np.ndarray) -> np.ndarray:
    """The LVS ``test.py`` binarization, line by line (``normalize_img``, ``1 - ...``, sort, set, zero, >= 0.5)."""
    value = -heatmap.copy()
    vmin, vmax = value.min(), value.max()
    if not (vmax - vmin) == 0:
        value = (value - vmin) / (vmax - vmin)
    pred = 1 - value
    threshold = np.sort(pred.flatten())[int(pred.shape[0] * pred.shape[1] / 2)]
    pred[pred > threshold] = 1
    pred[pred < 1] = 0
    infer_map = np.zeros(heatmap.shape)
    infer_map[pred >= 0.5] = 1  # cal_CIOU(pred, gt_map, 0.5)
    return infer_map


def lvs_script_ciou(heatmap: np.ndarray, gt_map: np.ndarray) -> float:
    infer_map = lvs_script_keep(heatmap)
    return float(np.sum(infer_map * gt_map) / (np.sum(gt_map) + np.sum(infer_map * (gt_map == 0))))


def tied_heatmaps(rng: np.random.Generator, n: int, h: int, w: int) -> np.ndarray:
    """Maps with ties at the maximum: few integer levels, more than half at the top, constants of every sign."""
    maps = [rng.integers(0, 3, size=(h, w)).astype(float) for _ in range(n)]
    top = np.zeros((h, w))
    top.flat[: (h * w) // 3] = -1.0  # two thirds tied at the maximum 0
    maps += [top, top + 5.0, np.full((h, w), 2.0), np.full((h, w), -2.0), np.zeros((h, w))]
    half = np.arange(h * w, dtype=float).reshape(h, w)
    half.flat[(h * w) // 2 :] = half.flat[(h * w) // 2]  # the median element is the tied maximum
    maps.append(half)
    return np.stack(maps)


@pytest.mark.parametrize("shape", [(4, 4), (5, 7), (1, 2), (3, 1)])
def test_ties_official_matches_the_lvs_script(shape: tuple) -> None:
    rng = np.random.default_rng(sum(shape))
    heat = tied_heatmaps(rng, 20, *shape)
    masks = random_soft_masks(rng, len(heat), *shape) if min(shape) > 1 else np.ones((len(heat), *shape))
    want = [lvs_script_ciou(h, m) for h, m in zip(heat, masks)]
    np.testing.assert_allclose(ciou_per_sample(heat, masks, ties="official"), want, rtol=0, atol=1e-12)
    for h in heat:
        np.testing.assert_array_equal(loc.official_keep(h.reshape(1, -1))[0], lvs_script_keep(h).ravel() == 1)
    out = localization_metrics(heat, masks, ties="official")
    assert out["mean_cIoU"] == pytest.approx(np.mean(want), abs=1e-12)


def test_ties_official_keeps_tied_maxima_and_strict_keeps_none() -> None:
    heat = np.zeros((1, 4, 4))
    heat[0, 0, :3] = -1.0  # 13 of 16 pixels tied at the maximum
    mask = np.ones((1, 4, 4))
    assert ciou_per_sample(heat, mask)[0] == 0.0
    assert ciou_per_sample(heat, mask, ties="official")[0] == pytest.approx(13 / 16)
    # constant maps: the script keeps all of a map >= 0 and none of a map < 0
    assert ciou_per_sample(np.full((1, 4, 4), 0.0), mask, ties="official")[0] == 1.0
    assert ciou_per_sample(np.full((1, 4, 4), -0.5), mask, ties="official")[0] == 0.0


def test_ties_official_equals_strict_without_ties_at_the_median() -> None:
    rng = np.random.default_rng(11)
    masks = random_soft_masks(rng, 30, 6, 7)
    heat = rng.normal(size=(30, 6, 7)) * 1e3  # continuous: no tie, the median element is below the maximum
    np.testing.assert_allclose(ciou_per_sample(heat, masks, ties="official"), ciou_per_sample(heat, masks),
                               rtol=0, atol=1e-12)
    small = rng.normal(size=(30, 3, 4))  # through the resize path too
    np.testing.assert_allclose(ciou_per_sample(small, masks, ties="official"), ciou_per_sample(small, masks),
                               rtol=0, atol=1e-12)


def test_ties_rule_is_checked() -> None:
    with pytest.raises(InputError) as err:
        ciou_per_sample(np.zeros((1, 2, 2)), np.ones((1, 2, 2)), ties="loose", source="p.npz")
    assert err.value.field == "ties" and "strict, official" in err.value.problem


# ----------------------------------------------------------------------------- SLAVC (negatives)
def brute_slavc(ciou: list[float], conf: list[float], neg_conf: list[float]) -> dict[str, float]:
    """SLAVC metrics by explicit loops from the definition (TP/FP/FN per threshold, area by recall levels)."""
    items = [(c, True, v >= 0.5) for c, v in zip(conf, ciou)] + [(c, False, False) for c in neg_conf]

    def pr(thr: float) -> tuple[float, float]:
        tp = fp = fn = 0
        for c, is_pos, localized in items:
            if c >= thr:
                if is_pos and localized:
                    tp += 1
                else:
                    fp += 1
            elif is_pos:
                fn += 1
        p = 1.0 if tp + fp == 0 else tp / (tp + fp)
        r = 1.0 if tp + fn == 0 else tp / (tp + fn)
        return p, r

    points = [pr(t) for t in sorted(set(conf) | set(neg_conf))]
    # area under p_interp(r) = max{p_k : r_k >= r}, summed over the distinct recall levels
    levels = sorted({r for _, r in points})
    ap, prev = 0.0, 0.0
    for level in levels:
        ap += (level - prev) * max(p for p, r in points if r >= level)
        prev = level
    f1 = max(0.0 if p + r == 0 else 2 * p * r / (p + r) for p, r in points)
    precision, _ = pr(-math.inf)
    return {"AP": ap, "max_F1": f1, "precision": precision}


def check_slavc(ciou, conf, neg_conf) -> dict[str, float]:
    got = loc.slavc_metrics(np.asarray(ciou, float), np.asarray(conf, float), np.asarray(neg_conf, float))
    want = brute_slavc(list(map(float, ciou)), list(map(float, conf)), list(map(float, neg_conf)))
    assert set(got) == {"AP", "max_F1", "precision"}
    for k in want:
        assert isinstance(got[k], float) and 0.0 <= got[k] <= 1.0
        assert got[k] == pytest.approx(want[k], abs=1e-12), k
    return got


@pytest.mark.parametrize("seed", range(8))
def test_slavc_random_vs_brute_force(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    n, m = int(rng.integers(1, 40)), int(rng.integers(0, 40))
    ciou = rng.random(n)
    conf = rng.normal(size=n) + 1.0
    neg = rng.normal(size=m)
    if seed % 2:  # many ties, across positives and negatives
        conf, neg = np.round(conf), np.round(neg)
    check_slavc(ciou, conf, neg)


@pytest.mark.parametrize(("ciou", "conf", "neg"), [
    ([0.7, 0.2, 0.9, 0.5], [0.3] * 4, [0.3] * 5),  # every confidence equal: one threshold
    ([0.8], [1.0], []),  # one item: localized positive
    ([0.1], [1.0], []),  # one item: mislocalized positive
    ([], [], [0.4]),  # one item: negative
    ([], [], [0.4, -1.0, 0.4]),  # all negatives
    ([0.9, 0.1, 0.6, 0.0], [0.2, 0.9, 0.5, 0.5], []),  # all positives
    ([0.9, 0.8], [5.0, 4.0], [1.0, 2.0]),  # perfect detector
    ([0.9, 0.8], [1.0, 2.0], [5.0, 4.0]),  # negatives above every positive
    ([0.0, 0.0], [1.0, 2.0], [0.5]),  # nothing localized
    ([0.5, 0.49999999], [1.0, 1.0], [1.0]),  # the 0.5 boundary counts
])
def test_slavc_adversarial_vs_brute_force(ciou, conf, neg) -> None:
    check_slavc(ciou, conf, neg)


def test_slavc_hand_values() -> None:
    perfect = check_slavc([0.9, 0.8], [5.0, 4.0], [1.0, 2.0])
    assert perfect == {"AP": 1.0, "max_F1": 1.0, "precision": 0.5}
    flat = check_slavc([0.7, 0.2, 0.9, 0.5], [0.3] * 4, [0.3] * 4)  # one threshold: p = 3/8, r = 1
    assert flat == {"AP": pytest.approx(3 / 8), "max_F1": pytest.approx(2 * 3 / 8 / (1 + 3 / 8)), "precision": 3 / 8}
    assert check_slavc([], [], [0.4, 0.1]) == {"AP": 0.0, "max_F1": 0.0, "precision": 0.0}
    # on positives only, precision is the share localized (the cIoU metric)
    ciou = [0.9, 0.1, 0.6, 0.0]
    assert check_slavc(ciou, [0.2, 0.9, 0.5, 0.5], [])["precision"] == summarize_ciou(ciou)["cIoU"]


def test_slavc_matches_the_scripts_precision_recall_rule() -> None:
    """Per threshold, the script's calc_precision_recall (bb == 0 for negatives) gives the same P/R the AP uses."""
    def script_pr(bb, ciou, conf, thr):  # utils.EvaluatorFull.calc_precision_recall, literally
        true_pos, false_pos, false_neg = 0, 0, 0
        for b, c, cf in zip(bb, ciou, conf):
            if b == 0:
                if cf >= thr:
                    false_pos += 1
            else:
                if cf >= thr:
                    if c >= 0.5:
                        true_pos += 1
                    else:
                        false_pos += 1
                else:
                    false_neg += 1
        precision = 1. if true_pos + false_pos == 0 else true_pos / (true_pos + false_pos)
        recall = 1. if true_pos + false_neg == 0 else true_pos / (true_pos + false_neg)
        return precision, recall

    rng = np.random.default_rng(5)
    ciou, conf, neg = rng.random(25), np.round(rng.normal(size=25), 1), np.round(rng.normal(size=20) - 0.5, 1)
    bb = [1] * 25 + [0] * 20
    all_c, all_conf = list(ciou) + [0.0] * 20, list(conf) + list(neg)
    p_all, _ = script_pr(bb, all_c, all_conf, -1000)
    got = check_slavc(ciou, conf, neg)
    assert got["precision"] == pytest.approx(p_all)
    f1s = [2 * p * r / (p + r) if p + r > 0 else 0.0 for p, r in (script_pr(bb, all_c, all_conf, t) for t in all_conf)]
    assert got["max_F1"] == pytest.approx(max(f1s))


def test_slavc_depends_on_the_ranking_only() -> None:
    rng = np.random.default_rng(9)
    ciou, conf, neg = rng.random(30), rng.normal(size=30), rng.normal(size=30)
    base = loc.slavc_metrics(ciou, conf, neg)
    scaled = loc.slavc_metrics(ciou, conf * 1e12 - 3e12, neg * 1e12 - 3e12)
    assert scaled == pytest.approx(base, abs=1e-12)
    assert loc.slavc_metrics(ciou, conf * 1e-12, neg * 1e-12) == pytest.approx(base, abs=1e-12)


@pytest.mark.parametrize(("args", "field", "needle"), [
    (([0.5, np.nan], [1.0, 2.0], [0.0]), "ciou", "NaN"),
    (([0.5, 1.5], [1.0, 2.0], [0.0]), "ciou", "[0, 1]"),
    (([0.5], [np.inf], [0.0]), "confidence", "inf"),
    (([0.5], [1.0], [np.nan]), "neg_confidence", "NaN"),
    (([0.5, 0.2], [1.0], [0.0]), "ciou/confidence", "count mismatch"),
    (([], [], []), "confidence", "no item"),
    (([[0.5]], [[1.0]], [0.0]), "ciou", "1-D"),
])
def test_slavc_errors(args, field: str, needle: str) -> None:
    with pytest.raises(InputError) as err:
        loc.slavc_metrics(*(np.asarray(a, dtype=float) for a in args), source="s.npz")
    assert err.value.field == field and needle in err.value.problem
    assert str(err.value).startswith(f"s.npz: {field}: ")


@pytest.mark.parametrize("shape", [(4, 4), (5, 3), (1, 1), (1, 2), (7, 9)])
def test_confidence_is_the_mean_of_the_top_quarter(shape: tuple) -> None:
    rng = np.random.default_rng(shape[0] * 10 + shape[1])
    heat = np.round(rng.normal(size=(6, *shape)), 1)  # ties too
    n = shape[0] * shape[1]
    want = [np.sort(h.flatten())[-n // 4 :].mean() for h in heat]  # SLAVC test.py, literally
    by_hand = [sum(sorted(h.ravel().tolist(), reverse=True)[: math.ceil(n / 4)]) / math.ceil(n / 4) for h in heat]
    got = loc.confidence_per_sample(heat)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
    np.testing.assert_allclose(got, by_hand, rtol=0, atol=1e-12)


def test_confidence_resizes_like_ciou() -> None:
    rng = np.random.default_rng(2)
    heat = rng.normal(size=(70, 3, 5))  # more than one chunk
    up = np.stack([bilinear_half_pixel(h, 8, 6) for h in heat])
    np.testing.assert_allclose(loc.confidence_per_sample(heat, (8, 6)), loc.confidence_per_sample(up),
                               rtol=0, atol=1e-12)
    with pytest.raises(InputError, match="^n.npz: neg_heatmaps: contains NaN"):
        loc.confidence_per_sample(np.full((1, 2, 2), np.nan), source="n.npz", field="neg_heatmaps")
    with pytest.raises(InputError, match="^n.npz: heatmaps: expected 3-D"):
        loc.confidence_per_sample(np.ones((2, 2)), source="n.npz")


def test_slavc_metric_specs() -> None:
    assert set(loc.SLAVC_METRICS) == {"AP", "max_F1", "precision"}
    for name, spec in loc.SLAVC_METRICS.items():
        assert spec.name == name and spec.higher_is_better and spec.unit == "fraction"
        assert (spec.lower, spec.upper) == (0.0, 1.0)
