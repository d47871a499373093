"""Shared types of task adapters: metric descriptions and the task protocol."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MetricSpec:
    """What a metric is and which direction is better (as HEAR's score objects say)."""

    name: str
    higher_is_better: bool
    description: str = ""
