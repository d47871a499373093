"""The task registry: family name -> task adapter instance, in the suite's one task order."""
from __future__ import annotations

from collections.abc import Mapping
from importlib import import_module
from typing import Any

import numpy as np

from avcl_bench.benchmark.registry import Registry
from avcl_bench.benchmark.schema import TASK_FAMILIES

from .base import Task

#: the order in which families run and are reported (the one copy of it)
TASK_ORDER = TASK_FAMILIES
TASKS: Registry[Task] = Registry("task")

#: family -> (module below this package, adapter class)
_ADAPTERS = {
    "retrieval": ("retrieval.task", "RetrievalTask"),
    "classification": ("classification.task", "ClassificationTask"),
    "separation": ("separation.task", "SeparationTask"),
    "localization": ("localization.task", "LocalizationTask"),
    "event_localization": ("event_localization.task", "EventLocalizationTask"),
    "generation": ("generation.task", "GenerationTask"),
    "robustness": ("robustness.task", "RobustnessTask"),
}

for _name in TASK_ORDER:
    _mod, _cls = _ADAPTERS[_name]
    _task = getattr(import_module(f"{__package__}.{_mod}"), _cls)()
    TASKS.register(_name, _task, version=_task.version, metrics=list(_task.metrics), needs=list(_task.metadata.needs))


def get_task(name: str) -> Task:
    """The adapter of task family ``name`` (an unknown name is a one-line error)."""
    return TASKS.get(name)


def score(task: str, pred: Mapping[str, np.ndarray], ref: Mapping[str, np.ndarray], *,
          pred_source: str = "pred", ref_source: str = "ref", **options: Any) -> dict[str, float]:
    """Metrics of stored outputs of one task family: the ``score`` command as a function.

    ``pred`` / ``ref`` hold the arrays of the task's score format (``list tasks`` shows it);
    ``options`` are the task's scoring options (``score --task-option``, e.g. localization's
    ``empty_mask="zero"`` or ``ties="official"``).
    """
    return get_task(task).score(dict(pred), dict(ref), pred_source=pred_source, ref_source=ref_source, **options)
