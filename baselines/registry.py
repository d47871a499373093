"""The model registry: name -> factory ``(spec, **args) -> AVModel`` with taxonomy metadata.

Metadata (shown by ``list models --json`` and stamped on results): ``encoder`` (encoder ids),
``objective`` (objective ids), ``learning`` (``supervised`` | ``semi-supervised`` |
``unsupervised`` as Table 1's "Learning" column), ``papers`` (Table 1 papers it follows),
``description`` and ``reference`` (a chance / oracle reference rather than a method).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from avcl_bench.benchmark.interface import AVModel, DataSpec
from avcl_bench.benchmark.registry import Registry

LEARNING = ("supervised", "semi-supervised", "unsupervised")

ModelFactory = Callable[..., AVModel]
MODELS: Registry[ModelFactory] = Registry("model")


def register_model(name: str, *, encoder: list[str], objective: list[str], learning: str, papers: list[str],
                   description: str, reference: bool = False) -> Callable[[ModelFactory], ModelFactory]:
    if learning not in LEARNING:
        raise ValueError(f"learning must be one of {LEARNING}, got {learning!r}")
    return MODELS.register(name, encoder=list(encoder), objective=list(objective), learning=learning,
                           papers=list(papers), description=description, reference=reference)


def model_info(name: str) -> dict[str, Any]:
    """Metadata of a registered model, as stored in results (``model_info``)."""
    meta = MODELS.meta(name)
    return {"name": name, **meta}


def build_model(name: str, spec: DataSpec, **args: Any) -> AVModel:
    return MODELS.get(name)(spec, **args)
