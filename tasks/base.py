"""Shared types of task adapters: metric descriptions and the task protocol.

A task's metrics, main score, headline metrics, units, protocol text and score formats are
declared once, in its :class:`~benchmark.schema.TaskMetadata` (``Task.metadata``); the
runner writes it into every record and reporting reads it from there.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from avcl_bench.benchmark.schema import MetricMeta, TaskMetadata

#: what a metric is, its direction and unit (the engine's :class:`~benchmark.schema.MetricMeta`)
MetricSpec = MetricMeta

__all__ = ["EvalContext", "MetricSpec", "Task", "TaskMetadata", "TaskResult"]


@dataclass
class EvalContext:
    """What the runner hands a task: seed, device, size, task options, the cell's embedding cache and a
    way to refit the model on another dataset (cross-validation folds).

    ``embeddings`` (a :class:`~benchmark.cells.EmbeddingCache`, or ``None``) is the cache that
    :func:`~benchmark.embedding.embed_split` uses by default while the runner runs the task.
    """

    seed: int = 0
    device: str = "cpu"
    quick: bool = False
    progress: bool = False
    options: dict = field(default_factory=dict)
    embeddings: Any = None
    #: ``--precision`` of the run: the generation task's frame decoder trains under the same autocast
    #: as the models (:func:`~benchmark.training.autocast_dtype`); the separation mask head (which
    #: measured less under bf16), the small probes and the feature network stay fp32
    precision: str = "fp32"
    #: ``fit_model_on(dataset)``: the evaluated model built and trained anew on another dataset
    #: (each fold of a cross-validation; set by the runner, ``None`` elsewhere)
    fit_model_on: Callable[[Any], Any] | None = None


@dataclass
class TaskResult:
    """Metrics of one evaluation plus how they were produced."""

    metrics: dict[str, float]
    protocol: str
    config: dict = field(default_factory=dict)
    item_metrics: dict[str, list[float]] = field(default_factory=dict)


class Task(ABC):
    """A task adapter: evaluates a model on a dataset and scores stored outputs.

    ``name`` is the family (``retrieval``, ...), ``version`` changes whenever numbers could
    change. ``metadata`` describes the task once: metrics (direction, unit), main score,
    headline metrics, protocol text, the ``score`` npz formats, the
    :class:`~benchmark.datasets.base.AVSplit` fields it needs and its reference rows.
    """

    name: str = ""
    version: str = "1"
    metadata: TaskMetadata

    @property
    def metrics(self) -> dict[str, MetricMeta]:
        """The task's metrics (``metadata.metrics``)."""
        return self.metadata.metrics

    def supports(self, model: Any, spec: Any, split: Any) -> str | None:
        """``None`` when the task can evaluate ``model`` on this data, else the reason it cannot."""
        for f in self.metadata.needs:
            if not split.has(f):
                return f"dataset '{spec.name}' has no {f}"
        return None

    @abstractmethod
    def evaluate(self, model: Any, dataset: Any, ctx: EvalContext) -> TaskResult:
        """Train the suite's head (if any) on the train split and score the test split."""

    @abstractmethod
    def score(self, pred: dict[str, np.ndarray], ref: dict[str, np.ndarray], *, pred_source: str = "pred",
              ref_source: str = "ref") -> dict[str, float]:
        """Metrics of stored outputs (the ``score`` command)."""

    def references(self, dataset: Any, ctx: EvalContext) -> dict[str, dict[str, float]]:
        """Reference rows (e.g. oracle upper bound, unprocessed lower bound), name -> metrics."""
        return {}

    def export_reference(self, dataset: Any, split: str = "test") -> dict[str, np.ndarray]:
        """REF arrays of ``score`` for a dataset split (used by ``export`` / ``submit --pred``)."""
        raise NotImplementedError(f"task '{self.name}' cannot export references")

    def higher_is_better(self) -> dict[str, bool]:
        return self.metadata.higher_is_better()
