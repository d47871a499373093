"""A quick run on a tiny avsynth, the configuration the runner-level tests share."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from avcl_bench.benchmark.runner import RunConfig

#: 30 / 10 / 20 clips: enough for every family, seconds to generate
TINY = {"n_train": "30", "n_val": "10", "n_test": "20"}
#: the learned baselines train two epochs (the untrained ``random`` takes no such arguments)
FAST_ARGS = {"epochs": 2, "quick_epochs": 2}


def tiny_config(out: Path, models: Sequence[str] = ("infonce", "dcca"), **kw: Any) -> RunConfig:
    """``RunConfig`` of a quick retrieval + classification run of ``models`` into ``out``; ``kw`` overrides."""
    base: dict[str, Any] = dict(models=list(models), tasks=["retrieval", "classification"], dataset_options=TINY,
                                seeds=[0], out=out, quick=True, device="cpu", progress=False,
                                model_args={} if "random" in models else FAST_ARGS)
    base.update(kw)
    return RunConfig(**base)
