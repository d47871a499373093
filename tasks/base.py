"""Shared types of task adapters: metric descriptions and the task protocol."""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class MetricSpec:
    """What a metric is and which direction is better (as HEAR's score objects say)."""

    name: str
    higher_is_better: bool
    description: str = ""


@dataclass
class EvalContext:
    """What the runner hands a task: seed, device, size and task options."""

    seed: int = 0
    device: str = "cpu"
    quick: bool = False
    progress: bool = False
    options: dict = field(default_factory=dict)


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
    change. ``needs`` lists the :class:`~benchmark.datasets.base.AVSplit` fields the task
    reads; ``pred_keys``/``ref_keys`` document the ``score`` npz formats.
    """

    name: str = ""
    version: str = "1"
    metrics: dict[str, MetricSpec] = {}
    headline: tuple[str, ...] = ()
    needs: tuple[str, ...] = ()
    pred_keys: str = ""
    ref_keys: str = ""
    #: names of the reference rows :meth:`references` produces (e.g. oracle / lower bound)
    reference_names: tuple[str, ...] = ()

    def supports(self, model: Any, spec: Any, split: Any) -> str | None:
        """``None`` when the task can evaluate ``model`` on this data, else the reason it cannot."""
        for f in self.needs:
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
        return {k: m.higher_is_better for k, m in self.metrics.items()}
