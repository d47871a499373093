"""The robustness family's one metric function: the normalized area under a degradation curve.

A degradation curve is a metric measured at increasing corruption severities, the clean
input (severity 0) included. :func:`normalized_auc` summarises it in one number on the
metric's own scale:

* the severity axis is rescaled to ``[0, 1]``: ``x = (s - min s) / (max s - min s)``;
* the points are sorted by severity (the input may come in any order);
* the area under the piecewise-linear curve through them (trapezoidal rule) is the AUC.

Because the axis has length 1, the AUC is the curve's mean value over the severity range:
a model that does not degrade at all scores its clean value, a constant curve scores that
constant, and a curve of two points (the clean one and a single level) scores their mean.
The AUC is linear in the values, so the mean of per-item AUCs (e.g. one per query's AP
curve) equals the AUC of the mean curve; the task uses that for per-item bootstrap intervals.

Which severity each corruption level has (noise amplitude, occluded area, ...) is the task's
protocol (``tasks/robustness/task.py``); this module only needs the numbers.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from avcl_bench.benchmark.arrays import check_array, check_same_len
from avcl_bench.benchmark.errors import InputError

__all__ = ["normalized_auc"]


def normalized_auc(severities: Sequence[float] | np.ndarray, values: Sequence[float] | np.ndarray, *,
                   source: str = "input") -> float:
    """Area under ``values`` over ``severities`` rescaled to ``[0, 1]`` (trapezoidal rule).

    ``severities`` and ``values`` are 1-D, finite, of the same length (at least 2: a curve
    needs the clean point and one corruption level) and the severities are distinct (two
    values at one severity are not a curve). Order does not matter: points are sorted by
    severity. Any scale of severities works (they are divided by their largest magnitude
    before the span is taken, so neither ``1e-300`` nor ``1e300`` over- or underflows).
    Problems raise :class:`~benchmark.errors.InputError` naming ``source`` and the field.
    """
    s = check_array(severities, source, "severities", ndim=1, kind="float")
    v = check_array(values, source, "values", ndim=1, kind="float")
    check_same_len(source, severities=s, values=v)
    if len(s) < 2:
        raise InputError(source, "severities", f"a curve needs at least 2 points (the clean one and a level), "
                         f"got {len(s)}")
    order = np.argsort(s, kind="stable")
    s, v = s[order], v[order]
    dup = np.flatnonzero(s[1:] == s[:-1])
    if dup.size:
        raise InputError(source, "severities", f"severity {s[dup[0]]!r} appears twice (one value per severity)")
    peak = float(np.max(np.abs(s)))
    scaled = s / peak  # in [-1, 1]: the span below cannot overflow
    x = (scaled - scaled[0]) / (scaled[-1] - scaled[0])
    x[-1] = 1.0  # exact end of the axis whatever the rounding
    return float(np.sum((x[1:] - x[:-1]) * (v[1:] + v[:-1]) / 2.0))

