"""Executors: Ray and SLURM (submitit) runs give the local executor's numbers and share its store."""
from __future__ import annotations

import importlib.util
import sys
import types

import pytest

from avcl_bench.benchmark.cli import build_parser, run_config_from_args
from avcl_bench.benchmark.errors import ConfigError
from avcl_bench.benchmark.executors import EXECUTORS, ExecutorOptions, run_cells
from avcl_bench.benchmark.runner import run
from tests.tiny_runs import tiny_config

pytestmark = pytest.mark.usefixtures("fresh_cache")


def _metrics(records):
    return {(r.model, r.task, r.seed): r.metrics for r in records}


def _square(x):
    return [{"x": x * x}]


def test_registry_and_local_executor():
    assert set(EXECUTORS) == {"local", "ray", "slurm"}
    got = []
    run_cells(_square, [1, 2, 3], lambda s, r: got.append((s, r)), ExecutorOptions(), threads=1)
    assert got == [(1, [{"x": 1}]), (2, [{"x": 4}]), (3, [{"x": 9}])]
    with pytest.raises(ConfigError, match="cpus-per-cell"):
        run_cells(_square, [1], lambda s, r: None, ExecutorOptions(cpus_per_cell=1), threads=2)


@pytest.mark.skipif(importlib.util.find_spec("ray") is not None, reason="ray is installed")
def test_ray_missing_is_a_one_line_error(tmp_path):
    with pytest.raises(ConfigError, match="avcl-bench\\[ray\\]"):
        run(tiny_config(tmp_path / "o", executor=ExecutorOptions("ray")))


@pytest.mark.parametrize("name,executor", [("ray", "ray"), ("submitit", "slurm")])
def test_a_folder_shadowing_the_backend_is_a_one_line_error(tmp_path, monkeypatch, name, executor):
    """A run started where a folder is named like the backend (Ray's session folder /tmp/ray) imports
    that folder as a namespace package: say so instead of an AttributeError deep in the executor."""
    folder = tmp_path / "cwd" / name
    folder.mkdir(parents=True)
    # what 'import ray' gives where ray is not installed and ./ray is a folder: a namespace package
    # (an installed package wins over a namespace portion, so it is put in place here)
    shadow = types.ModuleType(name)
    shadow.__path__ = [str(folder)]
    monkeypatch.setitem(sys.modules, name, shadow)
    with pytest.raises(ConfigError, match=f"'import {name}' found .*cwd/{name}.*which is not it"):
        run_cells(_square, [1], lambda s, r: None, ExecutorOptions(executor, slurm_cluster="debug"), threads=1)


def test_a_file_shadowing_the_backend_is_named_whole(tmp_path, monkeypatch):
    shadow = types.ModuleType("ray")
    shadow.__file__ = str(tmp_path / "ray.py")
    monkeypatch.setitem(sys.modules, "ray", shadow)
    with pytest.raises(ConfigError, match=r"found \['.*ray\.py'\], which is not it"):
        run_cells(_square, [1], lambda s, r: None, ExecutorOptions("ray"), threads=1)


@pytest.fixture(scope="module")
def ray_2cpu():
    if importlib.util.find_spec("ray") is None:
        pytest.skip("ray is not installed (pip install 'avcl-bench[ray]')")
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def test_ray_matches_local_and_shares_the_store(tmp_path, ray_2cpu, capsys):
    # the local run writes no cell cache: the Ray workers train and embed themselves
    local = _metrics(run(tiny_config(tmp_path / "local", cache=False)))
    assert not (tmp_path / "cache" / "checkpoints").exists()
    remote = run(tiny_config(tmp_path / "ray", executor=ExecutorOptions("ray", cpus_per_cell=1)))
    assert len(list((tmp_path / "cache" / "checkpoints").glob("*.pt"))) == 2  # written by the workers
    assert "[executor] 2 cell(s) on ray" in capsys.readouterr().err
    assert _metrics(remote) == local
    # a local rerun into the Ray run's folder reuses everything, and the reverse
    again = run(tiny_config(tmp_path / "ray"))
    err = capsys.readouterr().err
    assert "[train]" not in err and err.count("[reuse]") == 4
    assert _metrics(again) == local
    run(tiny_config(tmp_path / "local", executor=ExecutorOptions("ray", cpus_per_cell=1)))
    err = capsys.readouterr().err
    assert "[executor]" not in err and err.count("[reuse]") == 4
    # a warm rerun into a new folder: nothing to train, so the cells run in the driver, not on Ray
    warm = run(tiny_config(tmp_path / "warm", executor=ExecutorOptions("ray", cpus_per_cell=1)))
    err = capsys.readouterr().err
    assert "[executor]" not in err and "[train]" not in err and err.count("[cache] loaded checkpoint") == 2
    assert _metrics(warm) == local


def test_slurm_debug_executor_matches_local(tmp_path, capsys):
    if importlib.util.find_spec("submitit") is None:
        pytest.skip("submitit is not installed (pip install 'avcl-bench[slurm]')")
    local = _metrics(run(tiny_config(tmp_path / "local", models=["random"], cache=False)))
    opts = ExecutorOptions("slurm", slurm_cluster="debug", slurm_folder=tmp_path / "slurm")
    remote = run(tiny_config(tmp_path / "slurm-out", models=["random"], executor=opts))
    assert "[executor] 1 cell(s) on slurm" in capsys.readouterr().err
    assert _metrics(remote) == local


def test_cli_executor_options():
    args = build_parser().parse_args(["run", "--models", "random", "--tasks", "retrieval", "--executor", "ray",
                                      "--cpus-per-cell", "2", "--gpus-per-cell", "0.5", "--ray-address", "auto"])
    opts = run_config_from_args(args).executor
    assert (opts.name, opts.cpus_per_cell, opts.gpus_per_cell, opts.ray_address) == ("ray", 2, 0.5, "auto")
    args = build_parser().parse_args(["run", "--models", "random", "--executor", "slurm", "--slurm-partition", "gpu",
                                      "--slurm-time", "30"])
    opts = run_config_from_args(args).executor
    assert (opts.slurm_partition, opts.slurm_time, opts.slurm_folder.name) == ("gpu", 30, "slurm")
