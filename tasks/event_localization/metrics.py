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

Cross-modal localization (CML)
------------------------------
:func:`cross_modal_localization` follows ``cmm_test.py`` of the AVE release (Tian et al.,
ECCV 2018). Per video, the ``l`` event segments ``e_0 < ... < e_{l-1}`` of one modality are the
query; every window of ``l`` consecutive segments ``[s, s + l)`` of the other modality
(``s = 0 .. T - l``) is scored by ``sum_i d(query segment e_i, candidate segment s + i)`` with
the Euclidean distance ``d(x, y) = sqrt(max(|x - y|^2, 1e-7))`` (Keras' ``K.epsilon()``
floor of the official contrastive net). The predicted window starts at the ``argmin`` (the
earliest start on ties) and the video counts as localized when that start equals ``e_0``.
``CML_A2V``: audio event segments query the visual segments; ``CML_V2A``: the reverse;
each the share of localized videos. Videos whose ``T`` segments are all events are skipped,
as the official script does (only one window exists); videos without any event segment
are skipped too (the official script has no query for them and fails).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from avcl_bench.benchmark.arrays import check_array, check_bool_mask, check_labels
from avcl_bench.benchmark.errors import InputError
from avcl_bench.tasks.base import MetricSpec

__all__ = ["CML_EPSILON", "CML_METRICS", "METRICS", "CMLResult", "cross_modal_localization",
           "event_localization_metrics"]

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


#: metrics of :func:`cross_modal_localization` (present when the segment embeddings share a space)
CML_METRICS: dict[str, MetricSpec] = {
    "CML_A2V": MetricSpec(
        "CML_A2V", True, "cross-modal localization (AVE cmm_test.py): share of videos whose visual event window "
        "is found exactly from the audio event segments", unit="fraction", lower=0.0, upper=1.0,
    ),
    "CML_V2A": MetricSpec(
        "CML_V2A", True, "cross-modal localization (AVE cmm_test.py): share of videos whose audio event window "
        "is found exactly from the visual event segments", unit="fraction", lower=0.0, upper=1.0,
    ),
}

#: the floor of the squared distance in the official net (Keras ``K.epsilon()``)
CML_EPSILON = 1e-7


@dataclass(frozen=True)
class CMLResult:
    """Per-video outcome of :func:`cross_modal_localization`.

    ``evaluated`` (N,) bool: the video has between 1 and T - 1 event segments;
    ``start_a2v`` / ``start_v2a`` (N,) int: predicted window start (-1 where not evaluated);
    ``correct_a2v`` / ``correct_v2a`` (N,) bool: the start equals the first event segment.
    """

    evaluated: np.ndarray
    start_a2v: np.ndarray
    start_v2a: np.ndarray
    correct_a2v: np.ndarray
    correct_v2a: np.ndarray
    skipped_all_event: int
    skipped_no_event: int

    def metrics(self) -> dict[str, float]:
        """``CML_A2V`` and ``CML_V2A``: the shares of localized videos among the evaluated ones."""
        ev = self.evaluated
        return {"CML_A2V": float(self.correct_a2v[ev].mean()), "CML_V2A": float(self.correct_v2a[ev].mean())}


def _window_starts(dist: np.ndarray, seg: np.ndarray, query_axis: int) -> int:
    """argmin over starts ``s`` of ``sum_i dist[..]`` pairing query segment ``seg[i]`` with ``s + i``.

    ``dist[t_v, t_a]`` is the distance of visual segment ``t_v`` and audio segment ``t_a``;
    ``query_axis`` 1 means the audio segments are the query (A2V), 0 the visual ones (V2A).
    """
    t, length = dist.shape[0], len(seg)
    cand = np.arange(t - length + 1)[:, None] + np.arange(length)[None, :]  # (W, l) candidate segments
    query = np.broadcast_to(seg[None, :], cand.shape)
    scores = dist[cand, query].sum(axis=1) if query_axis == 1 else dist[query, cand].sum(axis=1)
    return int(np.argmin(scores))  # earliest start on ties


def cross_modal_localization(
    audio_segments: object,
    visual_segments: object,
    event_mask: object,
    *,
    source: str = "input",
    ref_source: str | None = None,
) -> CMLResult:
    """AVE cross-modal localization of every video (see the module docstring).

    Args:
        audio_segments, visual_segments: ``(N, T, D)`` real segment embeddings in one space.
        event_mask: ``(N, T)`` bool (or 0/1): segment ``t`` of video ``n`` is an event segment.
        source: names the embeddings' file in error messages, ``ref_source`` the mask's.

    Raises:
        InputError: NaN/inf, shapes that do not match, a non-boolean mask, or no video with
            between 1 and ``T - 1`` event segments (nothing to localize).
    """
    ref_source = source if ref_source is None else ref_source
    a = check_array(audio_segments, source, "audio_segments", ndim=3, kind="float")
    v = check_array(visual_segments, source, "visual_segments", ndim=3, kind="float")
    mask = check_bool_mask(event_mask, ref_source, "event_mask", ndim=2)
    if a.shape != v.shape:
        raise InputError(source, "audio_segments/visual_segments",
                         f"shape mismatch (audio {a.shape}, visual {v.shape}: expected the same (N, T, D))")
    if a.shape[:2] != mask.shape:
        raise InputError(source, "audio_segments/event_mask",
                         f"shape mismatch (segments {a.shape}, event_mask {mask.shape}: expected (N, T, D) and (N, T))")
    n, t = mask.shape
    counts = mask.sum(axis=1)
    evaluated = (counts > 0) & (counts < t)
    if not evaluated.any():
        raise InputError(ref_source, "event_mask", f"no video has between 1 and {t - 1} event segments: "
                         "cross-modal localization has nothing to localize")
    start_a2v = np.full(n, -1, dtype=np.int64)
    start_v2a = np.full(n, -1, dtype=np.int64)
    first = np.argmax(mask, axis=1)
    # the embeddings are used as given (float64, no normalisation), as the official script
    # uses its net's outputs: the 1e-7 floor makes the distance scale-dependent
    for i in np.flatnonzero(evaluated):
        diff = v[i][:, None, :] - a[i][None, :, :]  # (T_v, T_a, D)
        with np.errstate(over="ignore"):
            dist = np.sqrt(np.maximum(np.einsum("ijk,ijk->ij", diff, diff), CML_EPSILON))
        if not np.all(np.isfinite(dist)):
            raise InputError(source, "audio_segments/visual_segments",
                             f"video {int(i)}: segment distances overflow float64 (embeddings of magnitude ~1e154 or more)")
        seg = np.flatnonzero(mask[i])
        start_a2v[i] = _window_starts(dist, seg, query_axis=1)
        start_v2a[i] = _window_starts(dist, seg, query_axis=0)
    return CMLResult(evaluated=evaluated, start_a2v=start_a2v, start_v2a=start_v2a,
                     correct_a2v=evaluated & (start_a2v == first), correct_v2a=evaluated & (start_v2a == first),
                     skipped_all_event=int(np.sum(counts == t)), skipped_no_event=int(np.sum(counts == 0)))


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
