"""The task registry: family name -> task adapter instance."""
from __future__ import annotations

from importlib import import_module

from avcl_bench.benchmark.registry import Registry

from .base import Task

TASK_ORDER = ("retrieval", "classification", "separation", "localization", "event_localization", "generation")
TASKS: Registry[Task] = Registry("task")

_ADAPTERS = {
    "retrieval": ("avcl_bench.tasks.retrieval.task", "RetrievalTask"),
    "classification": ("avcl_bench.tasks.classification.task", "ClassificationTask"),
    "separation": ("avcl_bench.tasks.separation.task", "SeparationTask"),
    "localization": ("avcl_bench.tasks.localization.task", "LocalizationTask"),
    "event_localization": ("avcl_bench.tasks.event_localization.task", "EventLocalizationTask"),
    "generation": ("avcl_bench.tasks.generation.task", "GenerationTask"),
}

for _name in TASK_ORDER:
    _mod, _cls = _ADAPTERS[_name]
    _task = getattr(import_module(_mod), _cls)()
    TASKS.register(_name, _task, version=_task.version, metrics=list(_task.metrics), needs=list(_task.needs))

def get_task(name: str) -> Task:
    return TASKS.get(name)
