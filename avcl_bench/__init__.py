"""avcl-bench: an open benchmark suite for deep audio-visual correlation learning (AVCL).

The public API that model authors and tool builders import is re-exported here; everything
else (``avcl_bench.benchmark.*``, ``avcl_bench.tasks.*``, ``avcl_bench.baselines.*``) is the
suite's internals and may change between releases::

    from avcl_bench import AVModel, DataSpec, FitContext, AVSplit, MODELS, TASKS, score

Names are resolved on first use (PEP 562), so ``import avcl_bench`` stays cheap and the
engine's modules can import this package without importing torch-heavy registries.
"""
from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from ._version import __version__

#: public name -> module that defines it
_PUBLIC = {
    # the model interface (what a submitted model implements and receives)
    "AVModel": "avcl_bench.benchmark.interface",
    "DataSpec": "avcl_bench.benchmark.interface",
    "FitContext": "avcl_bench.benchmark.interface",
    "CAPABILITIES": "avcl_bench.benchmark.interface",
    "AVSplit": "avcl_bench.benchmark.datasets.base",
    "to_float_tensor": "avcl_bench.benchmark.datasets.base",
    # registries
    "MODELS": "avcl_bench.baselines.registry",
    "register_model": "avcl_bench.baselines.registry",
    "TASKS": "avcl_bench.tasks.registry",
    "get_task": "avcl_bench.tasks.registry",
    "DATASETS": "avcl_bench.benchmark.datasets",
    "load_dataset": "avcl_bench.benchmark.datasets",
    # scoring stored outputs
    "score": "avcl_bench.tasks.registry",
    # errors a caller may catch
    "AVCLError": "avcl_bench.benchmark.errors",
    "InputError": "avcl_bench.benchmark.errors",
}

__all__ = ["__version__", *_PUBLIC]

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from .baselines.registry import MODELS, register_model  # noqa: F401
    from .benchmark.datasets import DATASETS, load_dataset  # noqa: F401
    from .benchmark.datasets.base import AVSplit, to_float_tensor  # noqa: F401
    from .benchmark.errors import AVCLError, InputError  # noqa: F401
    from .benchmark.interface import CAPABILITIES, AVModel, DataSpec, FitContext  # noqa: F401
    from .tasks.registry import TASKS, get_task, score  # noqa: F401


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        value = getattr(import_module(_PUBLIC[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'avcl_bench' has no attribute '{name}'")


def __dir__() -> list[str]:
    return sorted(__all__)
