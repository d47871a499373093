"""--precision: bf16 autocast of model training and the frame decoder, in the key; fp32 keys unchanged."""
from __future__ import annotations

import importlib

import numpy as np
import pytest
import torch
from torch import nn

from avcl_bench.baselines.random_projection import RandomProjection
from avcl_bench.benchmark.cli import build_parser, run_config_from_args
from avcl_bench.benchmark.datasets.avsynth import AVSynthConfig, build
from avcl_bench.benchmark.runner import RunConfig, run
from avcl_bench.benchmark.training import autocast_dtype, train_early_stopping
from avcl_bench.tasks.base import EvalContext
from avcl_bench.tasks.generation import task as generation
from avcl_bench.tasks.registry import get_task

TINY = {"n_train": "30", "n_val": "10", "n_test": "20"}

pytestmark = pytest.mark.usefixtures("fresh_cache")


@pytest.mark.parametrize("dtype", [None, torch.bfloat16])
def test_loss_runs_under_autocast_only_when_asked(dtype):
    net = nn.Linear(4, 2)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    seen = []

    def loss(batch):
        seen.append(torch.is_autocast_enabled("cpu"))
        out = net(batch)
        seen.append(out.dtype)
        return out.float().pow(2).mean()

    train_early_stopping(net, opt, lambda _: [torch.randn(8, 4)], loss, epochs=2, autocast=dtype)
    assert seen == [dtype is not None, dtype or torch.float32] * 2
    assert net.weight.dtype == torch.float32  # weights stay float32 (mixed precision)


def test_unknown_precision_and_cli_choices():
    with pytest.raises(ValueError, match="unknown precision"):
        autocast_dtype("fp8")
    args = build_parser().parse_args(["run", "--models", "random", "--precision", "bf16"])
    assert run_config_from_args(args).precision == "bf16"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", "--precision", "fp16"])


def test_bf16_is_part_of_the_key_and_fp32_keys_are_unchanged(tmp_path):
    def cfg(**kw):
        return RunConfig(models=["infonce"], tasks=["retrieval"], dataset_options=TINY, seeds=[0], out=tmp_path / "o",
                         quick=True, device="cpu", progress=False, model_args={"epochs": 2, "quick_epochs": 2}, **kw)

    fp32 = [r for r in run(cfg()) if r.model == "infonce"][0]
    bf16 = [r for r in run(cfg(precision="bf16")) if r.model == "infonce"][0]
    assert "precision" not in fp32.config["runtime"] and bf16.config["runtime"]["precision"] == "bf16"
    assert fp32.key != bf16.key  # a bf16 run never reuses (or overwrites) an fp32 record
    assert [r.key for r in run(cfg()) if r.model == "infonce"] == [fp32.key]


@pytest.mark.parametrize("task_name", ["generation", "separation"])
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_the_frame_decoder_follows_the_runs_precision_and_the_mask_head_stays_fp32(task_name, precision, monkeypatch):
    """The frame decoder trains under ``--precision`` (via ``EvalContext.precision``); the separation
    mask head always in float32 (it measured less under bf16)."""
    module = importlib.import_module(f"avcl_bench.tasks.{task_name}.task")
    seen: list = []
    original = module.train_early_stopping

    def recording(*args, **kwargs):
        seen.append(kwargs.get("autocast"))
        return original(*args, **kwargs)

    monkeypatch.setattr(module, "train_early_stopping", recording)
    d = build(AVSynthConfig.quick(n_train=40, n_val=10, n_test=20, difficulty=0.0), use_cache=False)
    res = get_task(task_name).evaluate(RandomProjection(d.spec, seed=0), d,
                                       EvalContext(seed=0, quick=True, precision=precision))
    assert seen == [autocast_dtype(precision) if task_name == "generation" else None]
    if task_name == "generation":
        assert res.config["decoder"]["precision"] == precision  # the record says what the decoder trained under
    assert all(np.isfinite(v) for v in res.metrics.values())


def test_the_runner_hands_its_precision_to_the_tasks(tmp_path, monkeypatch):
    seen: list = []
    original = generation.GenerationTask._decoder

    def recording(self, model, dataset, size, adv, train_on, ctx):
        seen.append(ctx.precision)
        return original(self, model, dataset, size, adv, train_on, ctx)

    monkeypatch.setattr(generation.GenerationTask, "_decoder", recording)
    run(RunConfig(models=["random"], tasks=["generation"], dataset_options=TINY, seeds=[0], out=tmp_path / "o",
                  quick=True, device="cpu", progress=False, precision="bf16"))
    assert seen == ["bf16"]
