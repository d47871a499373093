"""Functional metrics of the classification family (audio, visual or audio-visual).

:func:`classification_metrics` turns ground-truth labels plus either per-class scores or
hard predicted labels into plain Python floats keyed by the metric names of
:data:`METRICS`. Conventions, chosen so results are reproducible and never depend on
sort stability:

* ``ACC`` (top-1 accuracy): with scores the prediction is ``np.argmax`` over classes, so on
  ties the **lowest class index wins** (an all-equal row predicts class 0).
* ``top5_ACC``: only reported when scores are given and there are at least 5 classes. Ties
  are counted **pessimistically**: the true label is a hit when the number of classes whose
  score is ``>=`` the true class's score (the true class included) is at most 5. A model
  therefore cannot gain from emitting tied (e.g. constant) scores; on tie-free scores this
  equals ``sklearn.metrics.top_k_accuracy_score(k=5)``.
* ``macro_F1``: unweighted mean of per-class F1 over the **union of the classes present in
  the true and in the predicted labels** (the default label set of
  ``sklearn.metrics.f1_score(average="macro")``). Every such class has
  ``2*TP + FP + FN > 0``, so F1 = ``2*TP / (2*TP + FP + FN)`` is always defined; this equals
  sklearn with ``zero_division=0``. Classes that appear in neither (e.g. the unused part of
  ``range(num_classes)``) do not count.
"""
from __future__ import annotations

import numpy as np

from avcl_bench.benchmark.arrays import check_array, check_labels, check_same_len
from avcl_bench.benchmark.errors import InputError
from avcl_bench.tasks.base import MetricSpec

__all__ = ["METRICS", "classification_metrics"]

TOP_K = 5

METRICS: dict[str, MetricSpec] = {
    "ACC": MetricSpec("ACC", True, "top-1 accuracy (argmax of the scores; lowest index wins ties)", unit="fraction", lower=0.0, upper=1.0),
    "top5_ACC": MetricSpec(
        "top5_ACC",
        True,
        "top-5 accuracy, ties counted pessimistically (at most 5 classes score >= the true one); "
        "only with scores and >= 5 classes",
        unit="fraction", lower=0.0, upper=1.0,
    ),
    "macro_F1": MetricSpec(
        "macro_F1", True, "unweighted mean F1 over the classes present in the true or predicted labels",
        unit="fraction", lower=0.0, upper=1.0,
    ),
}


def _check_labels(arr: object, source: str, field: str, num_classes: int | None) -> np.ndarray:
    """1-D non-negative integer labels, below ``num_classes`` when that is known."""
    labels = check_labels(arr, source, field, ndim=1)
    if (labels < 0).any():
        i = int(np.flatnonzero(labels < 0)[0])
        raise InputError(source, field, f"negative label {int(labels[i])} at index {i}")
    if num_classes is not None and (labels >= num_classes).any():
        i = int(np.flatnonzero(labels >= num_classes)[0])
        raise InputError(
            source, field, f"label {int(labels[i])} at index {i} is out of range [0, {num_classes})"
        )
    return labels


def _macro_f1(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Macro F1 over the union of classes present in ``y_true`` and ``y_pred``."""
    # Class ids only need equality: map them to a dense range first, so that a label such as
    # 400000000 costs no 400000000-bin histogram.
    classes, dense = np.unique(np.concatenate([y_true, y_pred]), return_inverse=True)
    y_true, y_pred = dense[: len(y_true)], dense[len(y_true):]
    n_bins = len(classes)
    true_count = np.bincount(y_true, minlength=n_bins)
    pred_count = np.bincount(y_pred, minlength=n_bins)
    tp = np.bincount(y_true[y_true == y_pred], minlength=n_bins)
    present = (true_count > 0) | (pred_count > 0)
    # FP + FN = (pred_count - tp) + (true_count - tp); the denominator is > 0 for present classes.
    f1 = 2.0 * tp[present] / (true_count[present] + pred_count[present])
    return float(f1.mean())


def classification_metrics(
    labels_true: object,
    scores: object | None = None,
    labels_pred: object | None = None,
    *,
    num_classes: int | None = None,
    source: str = "input",
    ref_source: str | None = None,
) -> dict[str, float]:
    """Accuracy, top-5 accuracy and macro F1 of single-label classification.

    Args:
        labels_true: ``(N,)`` integer ground-truth class indices.
        scores: ``(N, C)`` real scores (logits, probabilities, similarities); higher means
            more likely. Give exactly one of ``scores`` and ``labels_pred``.
        labels_pred: ``(N,)`` integer predicted class indices.
        num_classes: optional number of classes ``C``; with ``scores`` it must equal
            ``scores.shape[1]``, with ``labels_pred`` it bounds both label arrays.
        source: name of the file / producer, used in error messages.
        ref_source: name of the file of ``labels_true`` (default ``source``).

    Returns:
        ``{"ACC", "macro_F1"}`` plus ``"top5_ACC"`` when scores with ``C >= 5`` are given;
        values are Python floats in ``[0, 1]``.

    Raises:
        InputError: NaN/inf scores, wrong dimensionality, count or class-count mismatch,
            negative or out-of-range labels, or not exactly one of ``scores``/``labels_pred``.
    """
    ref_source = source if ref_source is None else ref_source
    if (scores is None) == (labels_pred is None):
        raise InputError(source, "scores/labels_pred", "give exactly one of scores and labels_pred")
    if num_classes is not None:
        if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
            raise InputError(source, "num_classes", f"must be a positive integer, got {num_classes!r}")
        num_classes = int(num_classes)

    if scores is not None:
        s = check_array(scores, source, "scores", ndim=2, kind="float")
        n_cls = s.shape[1]
        if n_cls < 1:
            raise InputError(source, "scores", f"needs at least 1 class column, got shape {s.shape}")
        if num_classes is not None and num_classes != n_cls:
            raise InputError(
                source, "scores", f"has {n_cls} class columns but num_classes={num_classes}"
            )
        y_true = _check_labels(labels_true, ref_source, "labels_true", n_cls)
        check_same_len(source, labels_true=y_true, scores=s)
        y_pred = np.argmax(s, axis=1)  # first maximal index wins ties
    else:
        y_true = _check_labels(labels_true, ref_source, "labels_true", num_classes)
        y_pred = _check_labels(labels_pred, source, "labels_pred", num_classes)
        check_same_len(source, labels_true=y_true, labels_pred=y_pred)
        s = None

    out: dict[str, float] = {"ACC": float(np.mean(y_pred == y_true))}
    if s is not None and s.shape[1] >= TOP_K:
        true_score = s[np.arange(len(y_true)), y_true]
        at_least_as_high = (s >= true_score[:, None]).sum(axis=1)  # includes the true class
        out["top5_ACC"] = float(np.mean(at_least_as_high <= TOP_K))
    out["macro_F1"] = _macro_f1(y_true, y_pred)
    return out
