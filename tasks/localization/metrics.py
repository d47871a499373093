"""Functional metrics of visual sound-source localization (protocol of LVS, Chen et al. 2021).

A model gives one heatmap per test image (higher = more likely to be sounding); the ground
truth is a map in ``[0, 1]`` built from annotators' boxes (:func:`consensus_map` for
Flickr-SoundNet, :func:`box_mask` for VGG-SS). Per sample ``n``:

1. If the heatmap's size differs from the mask's, it is resized to the mask's size with
   bilinear interpolation (``torch.nn.functional.interpolate(mode="bilinear",
   align_corners=False)``, half-pixel centres, no antialiasing: the same sampling grid as
   OpenCV's ``INTER_LINEAR`` used by the LVS evaluation script).
2. The heatmap is binarized: with ``P = H*W`` pixels and ``t`` the element at index
   ``floor(P / 2)`` of its values sorted ascending, ``b = heatmap > t`` (strictly). Half of
   the pixels (fewer on ties) are kept. The LVS script min-max normalizes the heatmap first;
   that is monotone and does not change ``b``, so it is skipped here.
3. ``cIoU_n = sum(b * g) / (sum(g) + sum(b * (g == 0)))`` where ``g`` is the soft mask:
   soft credit for the kept pixels, divided by the ground-truth mass plus the kept pixels
   that fall outside every box.

Summaries (:func:`localization_metrics`, or :func:`summarize_ciou` on per-sample values): ``cIoU`` is the share of samples with
``cIoU_n >= 0.5``; ``AUC`` is the trapezoid area under ``x -> mean(cIoU_n >= x)`` sampled at
``x = 0.05 * i``, ``i = 0..20`` (what ``sklearn.metrics.auc`` returns on that curve);
``mean_cIoU`` is the plain mean of ``cIoU_n``.

Deliberate differences from the LVS script, for edge cases only:

* Ties at the maximum (``ties="strict"``, the default). The script sets kept pixels to 1 and
  then zeroes the pixels ``< 1``, so when more than half of the (normalized) pixels equal the
  maximum they are all kept; a constant heatmap then selects the whole image. Here the strict
  rule of step 2 holds everywhere: a constant heatmap keeps no pixel and scores ``cIoU_n = 0``,
  so a model cannot gain from emitting flat maps. ``ties="official"`` reproduces the script
  instead (:func:`official_keep`): ``v = -heatmap``, min-max normalized unless it is constant,
  ``p = 1 - v``, ``t`` the element ``floor(P / 2)`` of ``p`` sorted ascending, and a pixel is
  kept when ``p > t`` or ``p >= 1``. Tied maxima are then all kept, and a constant heatmap
  keeps every pixel when its value is ``>= 0`` (``p = 1 + value``) and none when it is ``< 0``.
* Empty ground truth. ``cIoU_n`` is undefined when ``sum(g) == 0`` (the script gives 0, or
  NaN when nothing is kept either). By default such a sample is refused with an
  :class:`~benchmark.errors.InputError` naming it; ``empty_mask="zero"`` scores it 0 as the
  script does. (The public VGG-SS annotation has such samples, e.g. a single zero-height box.)

Negative audio (SLAVC, Mo & Morgado 2022; :func:`slavc_metrics`). cIoU and AUC only look at
clips whose sound source is in the image, so a model that lights up the image whatever it
hears is not penalised. The SLAVC protocol adds *negatives*, images paired with audio whose
source is not in them, and scores a detection decision: every item (positive or negative)
gets a confidence, the mean of the top ``ceil(P / 4)`` values of its heatmap at the mask's
size (:func:`confidence_per_sample`; SLAVC's ``np.sort(scores)[-n//4:].mean()``, on heatmaps
their script maps affinely to ``[0, 1]``, which does not change the ranking). At a confidence
threshold ``c`` an item is *detected* when its confidence is ``>= c``; a detected positive
with ``cIoU_n >= 0.5`` is a true positive, a detected positive with ``cIoU_n < 0.5`` and a
detected negative are false positives, an undetected positive is a false negative (an
undetected negative counts nowhere). ``precision = TP / (TP + FP)`` (1 when nothing is
detected), ``recall = TP / (TP + FN)`` (1 when ``TP + FN = 0``), as SLAVC's
``calc_precision_recall``. Reported:

* ``precision``: the precision when every item is detected (SLAVC's ``Precision`` at
  threshold ``-1000``): the share of all items that are positives localized with
  ``cIoU_n >= 0.5``. On positives only it equals ``cIoU``.
* ``AP``: the area under the interpolated precision-recall curve over every threshold
  ``c`` in the set of confidences, from recall 0 to the recall of the lowest threshold
  (which is 1): ``sum_k (r_k - r_(k-1)) * max_(j >= k) p_j`` over the thresholds in
  decreasing order, ``r_0 = 0``.
* ``max_F1``: the largest ``2 p r / (p + r)`` (0 when ``p + r = 0``) over the same thresholds.

Where this differs from SLAVC's script (``utils.EvaluatorFull``): the script samples every
``floor(N / 200)``-th sorted confidence as a threshold, skips the largest, weights each recall
step with the interpolated precision of its *lower* end and starts at the recall of the first
sampled threshold instead of 0 (so a perfect detector scores below 1, and a one-item set 0);
its F1 is printed at about 10 decile thresholds. Here every confidence is a threshold, the
area starts at recall 0 and uses the standard (upper-end) interpolation. With no positive
item every detection is a false positive: ``AP = max_F1 = precision = 0``.

References: H. Chen et al., "Localizing Visual Sounds the Hard Way", CVPR 2021, and its
evaluation code (github.com/hche11/Localizing-Visual-Sounds-the-Hard-Way, ``test.py``,
``utils.py``); A. Senocak et al., "Learning to Localize Sound Source in Visual Scenes",
CVPR 2018 (the consensus ground truth of Flickr-SoundNet); S. Mo and P. Morgado, "A Closer
Look at Weakly-Supervised Audio-Visual Source Localization", NeurIPS 2022, and its evaluation
code (github.com/stoneMo/SLAVC, ``utils.py``, ``test.py``).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from avcl_bench.benchmark.arrays import check_array, check_same_len, check_work_bytes
from avcl_bench.benchmark.errors import InputError
from avcl_bench.tasks.base import MetricSpec

__all__ = [
    "AUC_THRESHOLDS",
    "METRICS",
    "SLAVC_METRICS",
    "TIE_RULES",
    "box_mask",
    "ciou_per_sample",
    "confidence_per_sample",
    "consensus_map",
    "localization_metrics",
    "official_keep",
    "slavc_metrics",
    "summarize_ciou",
]

#: The cIoU thresholds of the success curve whose area is ``AUC`` (0, 0.05, ..., 1.0).
AUC_THRESHOLDS: np.ndarray = 0.05 * np.arange(21)
#: A sample counts as localized for ``cIoU`` when its cIoU is at least this.
CIOU_THRESHOLD = 0.5
_CHUNK = 64  # samples scored at once, at most
#: bytes of per-pixel temporaries (resized heatmap, partition copy, masks) a chunk may take
_CHUNK_BYTES = 256 * 2**20
#: bytes per mask pixel of a chunk's temporaries
_BYTES_PER_PIXEL = 32

METRICS: dict[str, MetricSpec] = {
    "cIoU": MetricSpec("cIoU", True, "share of samples whose consensus IoU is >= 0.5 (LVS protocol)", unit="fraction", lower=0.0, upper=1.0),
    "AUC": MetricSpec(
        "AUC", True, "area under the success curve mean(cIoU_n >= x) for x = 0, 0.05, ..., 1",
        unit="fraction", lower=0.0, upper=1.0,
    ),
    "mean_cIoU": MetricSpec("mean_cIoU", True, "mean per-sample consensus IoU", unit="fraction", lower=0.0, upper=1.0),
}
#: metrics of positives + negatives (SLAVC protocol, :func:`slavc_metrics`)
SLAVC_METRICS: dict[str, MetricSpec] = {
    "AP": MetricSpec(
        "AP", True, "SLAVC: area under the interpolated precision-recall curve of the heatmap confidence on "
        "positives + negative audio (true positive: confident and cIoU >= 0.5)", unit="fraction", lower=0.0, upper=1.0,
    ),
    "max_F1": MetricSpec(
        "max_F1", True, "SLAVC: best F1 over confidence thresholds on positives + negative audio",
        unit="fraction", lower=0.0, upper=1.0,
    ),
    "precision": MetricSpec(
        "precision", True, "SLAVC: share of all items (positives + negative audio) that are positives with "
        "cIoU >= 0.5 (precision when every item is detected)", unit="fraction", lower=0.0, upper=1.0,
    ),
}
#: the binarization rules of ``ties`` (see the module docstring)
TIE_RULES = ("strict", "official")


# --------------------------------------------------------------------------- ground truth
def _check_size(size: object, source: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in size)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise InputError(source, "size", f"expected (H, W), got {size!r}") from None
    if h < 1 or w < 1:
        raise InputError(source, "size", f"expected positive (H, W), got {size!r}")
    return h, w


def _check_boxes(boxes: object, source: str, field: str) -> np.ndarray:
    """``(K, 4)`` finite ``[x1, y1, x2, y2]`` boxes with ``x1 <= x2`` and ``y1 <= y2``."""
    try:
        a = np.asarray(boxes)
    except ValueError:  # ragged nested lists
        raise InputError(source, field, "expected boxes of 4 numbers [x1, y1, x2, y2] each") from None
    if a.size == 0 and a.dtype != object:
        return np.zeros((0, 4))
    a = check_array(a, source, field, ndim=2, kind="float", min_len=0)
    if a.shape[1] != 4:
        raise InputError(source, field, f"expected boxes of 4 numbers [x1, y1, x2, y2], got shape {a.shape}")
    reversed_ = (a[:, 2] < a[:, 0]) | (a[:, 3] < a[:, 1])
    if reversed_.any():
        k = int(np.flatnonzero(reversed_)[0])
        raise InputError(
            source, field, f"box {k} {a[k].tolist()} has x2 < x1 or y2 < y1 (expected [x1, y1, x2, y2])"
        )
    return a


def _paint(target: np.ndarray, x1: int, y1: int, x2: int, y2: int) -> None:
    """Add 1 on rows ``y1..y2-1`` and columns ``x1..x2-1`` (clipped to the map)."""
    target[y1:y2, x1:x2] += 1.0


def consensus_map(
    boxes_per_annotator: Sequence[object],
    size: tuple[int, int] = (224, 224),
    box_scale: float | tuple[float, float] = 224 / 256,
    *,
    full_agreement: int = 2,
    source: str = "input",
) -> np.ndarray:
    """Soft Flickr-SoundNet ground truth: ``min(1, (sum of box indicators) / full_agreement)``.

    This is the consensus map of Senocak et al. (2018) as the LVS evaluation code builds it:
    every annotated box adds 1 on the pixels it covers, the sum is divided by 2 and clipped
    at 1, so a pixel inside the boxes of two annotators counts fully and one inside a single
    annotator's box counts one half. As in that code the boxes are pooled: boxes are not
    first merged per annotator, so two overlapping boxes of one annotator also add up.

    Coordinates are the annotation's pixel coordinates (Flickr-SoundNet annotates 256x256
    frames). Each is multiplied by ``box_scale`` (one factor, or ``(x_scale, y_scale)``;
    the default maps 256 to 224) and floored; a box ``[x1, y1, x2, y2]`` then covers rows
    ``y1 .. y2-1`` and columns ``x1 .. x2-1`` (the end is exclusive), clipped to the map.

    Args:
        boxes_per_annotator: one sequence of ``[x1, y1, x2, y2]`` boxes per annotator.
        size: ``(H, W)`` of the map (the size heatmaps are scored at).
        box_scale: factor from annotation pixels to map pixels.
        full_agreement: number of overlapping boxes that make a pixel fully positive.
        source: name of the annotation file, used in error messages.

    Returns:
        ``(H, W)`` float64 map in ``[0, 1]``.
    """
    h, w = _check_size(size, source)
    try:
        scale = np.broadcast_to(np.asarray(box_scale, dtype=np.float64), (2,))
    except (TypeError, ValueError):
        raise InputError(source, "box_scale", f"expected a scale or (x_scale, y_scale), got {box_scale!r}") from None
    if not (np.isfinite(scale).all() and (scale > 0).all()):
        raise InputError(source, "box_scale", f"expected positive finite scale(s), got {box_scale!r}")
    sx, sy = float(scale[0]), float(scale[1])
    if isinstance(full_agreement, bool) or not isinstance(full_agreement, (int, np.integer)) or full_agreement < 1:
        raise InputError(source, "full_agreement", f"must be a positive integer, got {full_agreement!r}")
    out = np.zeros((h, w))
    for a, boxes in enumerate(boxes_per_annotator):
        field = f"annotator {a} boxes"
        arr = _check_boxes(boxes, source, field)
        if (arr < 0).any():
            k = int(np.flatnonzero((arr < 0).any(axis=1))[0])
            raise InputError(source, field, f"box {k} {arr[k].tolist()} has negative coordinates")
        px = np.floor(arr * np.array([sx, sy, sx, sy])).astype(np.int64)
        for x1, y1, x2, y2 in px:
            _paint(out, int(x1), int(y1), int(x2), int(y2))
    return np.minimum(out / full_agreement, 1.0)


def box_mask(boxes: object, size: tuple[int, int] = (224, 224), *, source: str = "input") -> np.ndarray:
    """Binary VGG-SS ground truth: the union of normalized ``[x1, y1, x2, y2]`` boxes.

    Following the LVS evaluation code, coordinates are clipped below at 0, multiplied by the
    map width (x) or height (y) and floored; a box then covers rows ``floor(H*y1) ..
    floor(H*y2)-1`` and columns ``floor(W*x1) .. floor(W*x2)-1``, clipped to the map. A box
    with ``x1 == x2`` or ``y1 == y2`` covers nothing.

    Args:
        boxes: ``(K, 4)`` boxes in ``[0, 1]`` image-relative coordinates (``K`` may be 0).
        size: ``(H, W)`` of the map.
        source: name of the annotation file, used in error messages.

    Returns:
        ``(H, W)`` float64 map of 0s and 1s.
    """
    h, w = _check_size(size, source)
    arr = _check_boxes(boxes, source, "boxes")
    out = np.zeros((h, w))
    px = np.floor(np.maximum(arr, 0.0) * np.array([w, h, w, h])).astype(np.int64)
    for x1, y1, x2, y2 in px:
        _paint(out, int(x1), int(y1), int(x2), int(y2))
    return np.minimum(out, 1.0)


# --------------------------------------------------------------------------- metrics
def _chunk_rows(pixels: int) -> int:
    """Samples scored at once: at most :data:`_CHUNK`, and as many as :data:`_CHUNK_BYTES` allows (at least 1)."""
    return int(max(1, min(_CHUNK, _CHUNK_BYTES // max(1, _BYTES_PER_PIXEL * pixels))))


def work_bytes(heatmaps_shape: tuple[int, ...], heatmaps_dtype: object, masks_shape: tuple[int, ...],
               masks_dtype: object) -> float:
    """Working memory of :func:`ciou_per_sample` on arrays of these shapes and dtypes: float64
    copies of inputs that are not float64 already, the range checks of the masks (bool arrays)
    and one chunk's temporaries at the masks' size."""
    def size(shape: tuple[int, ...]) -> int:
        n = 1
        for d in shape:
            n *= int(d)
        return n

    total = 0.0
    for shape, dtype in ((heatmaps_shape, heatmaps_dtype), (masks_shape, masks_dtype)):
        if np.dtype(dtype) != np.float64:  # type: ignore[call-overload]
            total += 8.0 * size(shape)
    total += 3.0 * size(masks_shape)
    if len(masks_shape) == 3:
        pixels = int(masks_shape[1]) * int(masks_shape[2])
        total += float(_BYTES_PER_PIXEL) * pixels * min(_chunk_rows(pixels), max(1, int(masks_shape[0])))
    return total


def check_memory(heatmaps: object, masks: object, source: str, ref_source: str | None = None) -> None:
    """Refuse inputs whose scoring would need more than ``$AVCL_MAX_METRIC_BYTES`` (before any copy)."""
    hm, gt = np.asarray(heatmaps), np.asarray(masks)
    if gt.dtype == object or hm.dtype == object:
        return  # refused by the array checks
    check_work_bytes(source if ref_source is None else ref_source, "masks",
                     work_bytes(hm.shape, hm.dtype, gt.shape, gt.dtype),
                     f"scoring heatmaps {hm.shape} against masks {gt.shape}")


def _resize_bilinear(heatmaps: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize ``(N, h, w)`` maps to ``size`` (half-pixel bilinear, no antialiasing)."""
    t = torch.from_numpy(np.ascontiguousarray(heatmaps, dtype=np.float64))[:, None]
    return F.interpolate(t, size=size, mode="bilinear", align_corners=False)[:, 0].numpy()


def official_keep(flat: np.ndarray) -> np.ndarray:
    """Kept pixels of ``(B, P)`` heatmaps by the LVS script's rule, operation for operation.

    ``test.py`` of LVS: ``v = normalize_img(-h)`` (min-max to ``[0, 1]``, left as is when the
    map is constant), ``pred = 1 - v``, ``t = np.sort(pred)[int(P / 2)]``, ``pred[pred > t] = 1``,
    ``pred[pred < 1] = 0``, then ``cal_CIOU`` keeps ``pred >= 0.5``: the pixels with ``pred > t``
    or ``pred >= 1`` (every pixel tied at the maximum, even when that is more than half).
    """
    v = -flat
    vmin, vmax = v.min(axis=1, keepdims=True), v.max(axis=1, keepdims=True)
    span = vmax - vmin
    flat_map = span == 0
    norm = np.where(flat_map, v, (v - vmin) / np.where(flat_map, 1.0, span))
    pred = 1.0 - norm
    k = int(pred.shape[1] / 2)
    threshold = np.partition(pred, k, axis=1)[:, k : k + 1]
    return (pred > threshold) | (pred >= 1.0)


def _strict_keep(flat: np.ndarray) -> np.ndarray:
    """Pixels strictly above the element ``floor(P / 2)`` of the ascending sort (step 2)."""
    k = flat.shape[1] // 2
    threshold = np.partition(flat, k, axis=1)[:, k]
    return flat > threshold[:, None]


#: ``ties`` rule -> ``(B, P)`` heatmaps -> ``(B, P)`` kept pixels
_KEEP_RULES = {"strict": _strict_keep, "official": official_keep}


def _check_ties(ties: object, source: str) -> str:
    if ties not in _KEEP_RULES:
        raise InputError(source, "ties", f"expected one of {', '.join(TIE_RULES)}, got {ties!r}")
    return str(ties)


def ciou_per_sample(
    heatmaps: object,
    masks: object,
    *,
    empty_mask: str = "raise",
    ties: str = "strict",
    source: str = "input",
    ref_source: str | None = None,
) -> np.ndarray:
    """Consensus IoU of every sample (see the module docstring for the protocol).

    Args:
        heatmaps: ``(N, h, w)`` real heatmaps, higher = more likely sounding. Resized
            bilinearly to the masks' size when it differs.
        masks: ``(N, H, W)`` ground-truth maps with values in ``[0, 1]``.
        empty_mask: ``"raise"`` (default) refuses a mask with no positive pixel, ``"zero"``
            scores it 0 as the LVS script does.
        ties: ``"strict"`` (default) keeps the pixels strictly above the median element;
            ``"official"`` reproduces the LVS script (:func:`official_keep`), which also keeps
            every pixel tied at the maximum.
        source: name of the file / producer, used in error messages.
        ref_source: name of the masks' file (default ``source``).

    Returns:
        ``(N,)`` float64 array of cIoU values in ``[0, 1]``.

    The working memory is checked against ``$AVCL_MAX_METRIC_BYTES`` first (see
    :func:`work_bytes`); samples are scored in chunks, so it does not grow with ``N``.
    """
    ref_source = source if ref_source is None else ref_source
    if empty_mask not in ("raise", "zero"):
        raise InputError(source, "empty_mask", f"expected 'raise' or 'zero', got {empty_mask!r}")
    keep = _KEEP_RULES[_check_ties(ties, source)]
    check_memory(heatmaps, masks, source, ref_source)
    hm = check_array(heatmaps, source, "heatmaps", ndim=3, kind="float")
    gt = check_array(masks, ref_source, "masks", ndim=3, kind="float", allow_bool=True)
    check_same_len(source, heatmaps=hm, masks=gt)
    for src, field, a in ((source, "heatmaps", hm), (ref_source, "masks", gt)):
        if a.shape[1] < 1 or a.shape[2] < 1:
            raise InputError(src, field, f"maps must be at least 1x1, got shape {a.shape}")
    outside = (gt < 0) | (gt > 1)
    if outside.any():
        idx = tuple(int(i) for i in np.argwhere(outside)[0])
        raise InputError(ref_source, "masks", f"values must lie in [0, 1], got {gt[idx]} at index {idx}")
    del outside
    mass = gt.reshape(len(gt), -1).sum(axis=1)
    empty = mass == 0
    if empty.any() and empty_mask == "raise":
        i = int(np.flatnonzero(empty)[0])
        raise InputError(
            ref_source, "masks", f"sample {i} has an empty ground-truth mask (cIoU undefined)"
        )

    size = (gt.shape[1], gt.shape[2])
    ciou = np.zeros(len(gt))
    rows = _chunk_rows(size[0] * size[1])
    for start in range(0, len(gt), rows):  # bounded temporaries for large test sets
        sl = slice(start, start + rows)
        hm_chunk = hm[sl] if hm.shape[1:] == size else _resize_bilinear(hm[sl], size)
        flat = hm_chunk.reshape(len(hm_chunk), -1)
        g = gt[sl].reshape(len(flat), -1)
        b = keep(flat)
        inter = (b * g).sum(axis=1)
        false_pos = (b & (g == 0)).sum(axis=1)
        denom = mass[sl] + false_pos
        # denom == 0 only for an empty mask with nothing kept (empty_mask="zero"): cIoU 0
        ciou[sl] = np.divide(inter, denom, out=np.zeros(len(flat)), where=denom > 0)
    return ciou


def localization_metrics(
    heatmaps: object,
    masks: object,
    *,
    empty_mask: str = "raise",
    ties: str = "strict",
    source: str = "input",
    ref_source: str | None = None,
) -> dict[str, float]:
    """``cIoU`` (share with cIoU >= 0.5), ``AUC`` and ``mean_cIoU`` over all samples.

    Arguments as :func:`ciou_per_sample`. Returns Python floats in ``[0, 1]``.
    """
    ciou = ciou_per_sample(heatmaps, masks, empty_mask=empty_mask, ties=ties, source=source, ref_source=ref_source)
    return summarize_ciou(ciou, source=source)


def summarize_ciou(ciou: object, *, source: str = "input") -> dict[str, float]:
    """``cIoU``, ``AUC`` and ``mean_cIoU`` from per-sample cIoU values.

    Lets a caller score a large test set batch by batch with :func:`ciou_per_sample`
    (bounding memory) and summarize the concatenated values once.

    Args:
        ciou: ``(N,)`` per-sample cIoU values in ``[0, 1]``.
        source: name of the file / producer, used in error messages.
    """
    c = check_array(ciou, source, "ciou", ndim=1, kind="float")
    if ((c < 0) | (c > 1)).any():
        i = int(np.flatnonzero((c < 0) | (c > 1))[0])
        raise InputError(source, "ciou", f"values must lie in [0, 1], got {c[i]} at index {i}")
    success = (c[:, None] >= AUC_THRESHOLDS[None, :]).mean(axis=0)
    return {
        "cIoU": float(np.mean(c >= CIOU_THRESHOLD)),
        "AUC": float(np.trapezoid(success, AUC_THRESHOLDS)),
        "mean_cIoU": float(np.mean(c)),
    }


# --------------------------------------------------------------------------- negatives (SLAVC)
def confidence_per_sample(heatmaps: object, size: tuple[int, int] | None = None, *, source: str = "input",
                          field: str = "heatmaps") -> np.ndarray:
    """SLAVC confidence of every heatmap: the mean of its top ``ceil(P / 4)`` pixel values.

    Args:
        heatmaps: ``(N, h, w)`` real heatmaps.
        size: ``(H, W)`` the maps are first resized to (bilinear, as for cIoU: the masks'
            size); ``None`` keeps their own size.
        source: name of the file / producer, used in error messages.
        field: name of the array in error messages (``neg_heatmaps`` for negatives).

    Returns:
        ``(N,)`` float64 confidences. ``P = H * W``; SLAVC's ``np.sort(s)[-n//4:].mean()``
        takes ``ceil(n / 4)`` values because ``-n//4`` rounds towards minus infinity.
    """
    hm = check_array(heatmaps, source, field, ndim=3, kind="float")
    if hm.shape[1] < 1 or hm.shape[2] < 1:
        raise InputError(source, field, f"maps must be at least 1x1, got shape {hm.shape}")
    out_size = (hm.shape[1], hm.shape[2]) if size is None else _check_size(size, source)
    pixels = out_size[0] * out_size[1]
    rows = _chunk_rows(pixels)
    check_work_bytes(source, field, float(_BYTES_PER_PIXEL) * pixels * min(rows, len(hm)),
                     f"the confidence of heatmaps {hm.shape} at size {out_size}")
    top = (pixels + 3) // 4
    conf = np.zeros(len(hm))
    for start in range(0, len(hm), rows):
        chunk = hm[start : start + rows]
        flat = (chunk if chunk.shape[1:] == out_size else _resize_bilinear(chunk, out_size)).reshape(len(chunk), -1)
        conf[start : start + rows] = np.partition(flat, pixels - top, axis=1)[:, pixels - top :].mean(axis=1)
    return conf


def slavc_metrics(ciou: object, confidence: object, neg_confidence: object, *,
                  source: str = "input") -> dict[str, float]:
    """``AP``, ``max_F1`` and ``precision`` of positives + negatives (SLAVC; module docstring).

    Args:
        ciou: ``(N,)`` cIoU of the positives in ``[0, 1]`` (:func:`ciou_per_sample`).
        confidence: ``(N,)`` confidence of the positives (:func:`confidence_per_sample`).
        neg_confidence: ``(M,)`` confidence of the negatives (``M`` may be 0; ``N`` too, but
            not both).
        source: name of the file / producer, used in error messages.

    Returns:
        Python floats in ``[0, 1]``.
    """
    c = check_array(ciou, source, "ciou", ndim=1, kind="float", min_len=0)
    pos = check_array(confidence, source, "confidence", ndim=1, kind="float", min_len=0)
    neg = check_array(neg_confidence, source, "neg_confidence", ndim=1, kind="float", min_len=0)
    check_same_len(source, ciou=c, confidence=pos)
    if ((c < 0) | (c > 1)).any():
        i = int(np.flatnonzero((c < 0) | (c > 1))[0])
        raise InputError(source, "ciou", f"values must lie in [0, 1], got {c[i]} at index {i}")
    if len(c) + len(neg) == 0:
        raise InputError(source, "confidence", "no item to score (no positive and no negative)")
    conf = np.concatenate([pos, neg])
    positive = np.concatenate([np.ones(len(c), dtype=bool), np.zeros(len(neg), dtype=bool)])
    hit = np.concatenate([c >= CIOU_THRESHOLD, np.zeros(len(neg), dtype=bool)])
    order = np.argsort(-conf, kind="stable")
    conf, positive, hit = conf[order], positive[order], hit[order]
    # one threshold per distinct confidence: the items detected are a prefix of the sorted order
    last = np.flatnonzero(np.append(conf[1:] != conf[:-1], True))  # last index of each tie group
    detected = last + 1
    tp = np.cumsum(hit)[last].astype(np.float64)
    fn = len(c) - np.cumsum(positive)[last]
    precision = tp / detected  # every threshold detects at least one item
    found = tp + fn
    recall = np.divide(tp, found, out=np.ones(len(tp)), where=found > 0)
    interpolated = np.maximum.accumulate(precision[::-1])[::-1]  # best precision at this recall or beyond
    ap = float(np.sum(np.diff(recall, prepend=0.0) * interpolated))
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros(len(tp)), where=denom > 0)
    return {"AP": ap, "max_F1": float(f1.max()), "precision": float(hit.sum() / len(conf))}
