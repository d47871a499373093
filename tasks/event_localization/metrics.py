"""Functional metrics of audio-visual event localization (AVE, Tian et al., ECCV 2018).

AVE videos are cut into ``T`` one-second segments (``T = 10``); each segment carries one of
``C`` labels (28 event classes plus background, ``C = 29``). The supervised AVE protocol
scores a model by its accuracy over **all segments of all test videos** (``ACC``).

:func:`event_localization_metrics` also reports ``video_ACC``, the share of videos whose
every segment is right. It is a stricter companion of ``ACC`` that this suite adds (it is
not part of the AVE paper's protocol), useful to tell apart models that are right on most
segments of every video from models that are fully right on some videos only.

With segment scores the predicted label is ``np.argmax`` over classes: on ties the
**lowest class index wins**.
"""
from __future__ import annotations

import numpy as np

from avcl_bench.benchmark.arrays import check_array, check_labels
from avcl_bench.benchmark.errors import InputError
from avcl_bench.tasks.base import MetricSpec

__all__ = ["METRICS", "event_localization_metrics"]

METRICS: dict[str, MetricSpec] = {
    "ACC": MetricSpec(
        "ACC", True, "segment-level accuracy over all N*T segments (argmax; lowest index wins ties)",
        unit="fraction", lower=0.0, upper=1.0,
    ),
    "video_ACC": MetricSpec(
        "video_ACC", True, "share of videos whose every segment is predicted right (suite addition)",
        unit="fraction", lower=0.0, upper=1.0,
    ),
}


def _check_segment_labels(
    arr: object, source: str, field: str, num_classes: int | None
) -> np.ndarray:
    """``(N, T)`` non-negative integer labels, below ``num_classes`` when that is known."""
    labels = check_labels(arr, source, field, ndim=2)
    if labels.shape[1] < 1:
        raise InputError(source, field, f"needs at least 1 segment per video, got shape {labels.shape}")
    bad = labels < 0 if num_classes is None else (labels < 0) | (labels >= num_classes)
    if bad.any():
        i, t = (int(v) for v in np.argwhere(bad)[0])
        value = int(labels[i, t])
        if value < 0:
            raise InputError(source, field, f"negative label {value} at video {i}, segment {t}")
        raise InputError(
            source, field,
            f"label {value} at video {i}, segment {t} is out of range [0, {num_classes})",
        )
    return labels


def event_localization_metrics(
    labels_true: object,
    segment_scores: object | None = None,
    segment_labels: object | None = None,
    *,
    num_classes: int | None = None,
    source: str = "input",
    ref_source: str | None = None,
) -> dict[str, float]:
    """Segment accuracy (``ACC``) and all-segments-right video accuracy (``video_ACC``).

    Args:
        labels_true: ``(N, T)`` integer ground-truth label of every segment.
        segment_scores: ``(N, T, C)`` real per-segment class scores (higher = more likely).
            Give exactly one of ``segment_scores`` and ``segment_labels``.
        segment_labels: ``(N, T)`` integer predicted label of every segment.
        num_classes: optional ``C``; with scores it must equal ``segment_scores.shape[2]``,
            with predicted labels it bounds both label arrays.
        source: name of the file / producer, used in error messages.
        ref_source: name of the file of ``labels_true`` (default ``source``).

    Returns:
        ``{"ACC": float, "video_ACC": float}``, both in ``[0, 1]``.

    Raises:
        InputError: NaN/inf scores, wrong dimensionality, shape mismatch between truth and
            prediction, negative or out-of-range labels, or not exactly one prediction array.
    """
    ref_source = source if ref_source is None else ref_source
    if (segment_scores is None) == (segment_labels is None):
        raise InputError(
            source, "segment_scores/segment_labels", "give exactly one of segment_scores and segment_labels"
        )
    if num_classes is not None:
        if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
            raise InputError(source, "num_classes", f"must be a positive integer, got {num_classes!r}")
        num_classes = int(num_classes)

    if segment_scores is not None:
        s = check_array(segment_scores, source, "segment_scores", ndim=3, kind="float")
        n_cls = s.shape[2]
        if n_cls < 1:
            raise InputError(source, "segment_scores", f"needs at least 1 class, got shape {s.shape}")
        if num_classes is not None and num_classes != n_cls:
            raise InputError(
                source, "segment_scores", f"has {n_cls} classes but num_classes={num_classes}"
            )
        y_true = _check_segment_labels(labels_true, ref_source, "labels_true", n_cls)
        if s.shape[:2] != y_true.shape:
            raise InputError(
                source, "labels_true/segment_scores",
                f"shape mismatch (labels_true {y_true.shape}, segment_scores {s.shape}: "
                "expected (N, T) and (N, T, C))",
            )
        y_pred = np.argmax(s, axis=2)  # first maximal index wins ties
    else:
        y_true = _check_segment_labels(labels_true, ref_source, "labels_true", num_classes)
        y_pred = _check_segment_labels(segment_labels, source, "segment_labels", num_classes)
        if y_pred.shape != y_true.shape:
            raise InputError(
                source, "labels_true/segment_labels",
                f"shape mismatch (labels_true {y_true.shape}, segment_labels {y_pred.shape})",
            )

    right = y_pred == y_true
    return {"ACC": float(right.mean()), "video_ACC": float(right.all(axis=1).mean())}
