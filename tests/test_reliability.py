"""The reliability issue: thread-independent numbers, model names, unwritable --out, temp files,
errors in model code, the cell time limit and all-or-nothing records per (model, seed) cell."""
from __future__ import annotations

import errno
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from avcl_bench.baselines.random_projection import RandomProjection
from avcl_bench.benchmark import runner, store
from avcl_bench.benchmark.cli import main
from avcl_bench.benchmark.errors import ConfigError, InputError
from avcl_bench.benchmark.runner import RunConfig, run
from avcl_bench.benchmark.schema import record_from_json
from avcl_bench.benchmark.store import ResultStore, atomic_write_text, clean_stale_temps
from avcl_bench.tasks.registry import get_task

REPO = Path(__file__).resolve().parents[1]
TINY = ["--option", "n_train=30", "--option", "n_val=10", "--option", "n_test=20"]
TINY_OPTS = {"n_train": "30", "n_val": "10", "n_test": "20"}

MODELS = '''import sys
import time

import numpy as np
import torch


class Base:
    trainable = False
    capabilities = frozenset()
    def __init__(self, spec, dim=4):
        self.dim = dim
    def config(self):
        return {"dim": self.dim}
    def fit(self, train, val, ctx):
        pass
    def embed_audio(self, audio):
        return audio.mean(1)[:, :self.dim].float()
    def embed_visual(self, visual):
        return visual.mean(dim=(1, 3, 4))[:, :1].repeat(1, self.dim).float() + 0.01 * torch.arange(self.dim)


class ExitInFit(Base):
    trainable = True
    def fit(self, train, val, ctx):
        sys.exit(0)


class ExitInInit(Base):
    def __init__(self, spec, dim=4):
        raise SystemExit(3)


class NumpyEmbed(Base):
    def embed_audio(self, audio):
        return np.zeros((audio.shape[0], self.dim), dtype=np.float32)


# a model whose code has no frame in a user file (as in a notebook or generated code)
exec(compile("""
class Exploding(Base):
    trainable = True
    def fit(self, train, val, ctx):
        raise ValueError("model exploded")
""", "<generated>", "exec"))


class Sleepy(Base):
    trainable = True
    def fit(self, train, val, ctx):
        while True:
            time.sleep(0.05)


class Swallower(Base):
    trainable = True
    def fit(self, train, val, ctx):
        while True:
            try:
                time.sleep(0.05)
            except Exception:
                pass


class Other(Base):
    def config(self):
        return {"dim": self.dim, "other": True}


class random(Base):  # a built-in model's name
    pass
'''


pytestmark = pytest.mark.usefixtures("fresh_cache")


@pytest.fixture
def models(tmp_path) -> Path:
    p = tmp_path / "rel_models.py"
    p.write_text(MODELS)
    return p


def _run_args(out: Path, models: str = "random", tasks: str = "retrieval", *extra: str) -> list[str]:
    return ["run", "--models", models, "--tasks", tasks, "--quick", "--no-progress", "--device", "cpu",
            "--out", str(out), *TINY, *extra]


def _records(out: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(out.rglob("*.json"))]


def _error_line(err: str) -> str:
    return next(line for line in err.splitlines() if line.startswith(("error: ", "internal error: ")))


# ------------------------------------------------------------------------------ A: threads
def test_os_thread_count_does_not_change_numbers_or_keys(tmp_path):
    """OMP/MKL/OpenBLAS thread counts of 1 and 2 with the same --threads: identical numbers and keys."""
    results = []
    for n in ("1", "2"):
        env = {**os.environ, "OMP_NUM_THREADS": n, "MKL_NUM_THREADS": n, "OPENBLAS_NUM_THREADS": n,
               "AVCL_CACHE": str(tmp_path / "cache")}
        proc = subprocess.run(
            [sys.executable, str(REPO / "run_benchmark.py"), "run", "--quick", "--models", "infonce", "--tasks",
             "retrieval,localization", "--device", "cpu", "--no-progress", "--json", "--threads", "2",
             "--out", str(tmp_path / f"out{n}"), "--model-args", "epochs=2,quick_epochs=2", *TINY],
            env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        results.append({(r["model"], r["task"]): (r["key"], r["metrics"]) for r in json.loads(proc.stdout)})
    assert set(results[0]) == {("infonce", "retrieval"), ("infonce", "localization")}
    assert results[0] == results[1]


def test_threads_and_device_kind_are_in_the_key(tmp_path):
    out = tmp_path / "out"
    cfg = dict(models=["random"], tasks=["retrieval"], dataset_options=TINY_OPTS, out=out, quick=True,
               device="cpu", progress=False)
    one = run(RunConfig(**cfg, threads=1))
    two = run(RunConfig(**cfg, threads=2))
    assert one[0].key != two[0].key and len(_records(out)) == 2
    assert one[0].config["runtime"] == {"threads": 1, "device": runner.device_kind("cpu")}
    assert two[0].config["runtime"]["threads"] == 2
    host = runner.device_kind("cpu")
    assert runner.device_kind("mps") == f"mps, {host}"  # the host CPU computes probes and metrics there too


def _kind_in_child(**env: str) -> str:
    code = "from avcl_bench.benchmark.runner import device_kind; print(device_kind('cpu'))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True,
                          env={**os.environ, **env})
    return done.stdout.strip()


def test_the_cpu_kind_names_the_kernels_the_cpu_runs():
    """Another vector capability, a capped oneDNN ISA or another OpenBLAS kernel family give other
    numbers (another key); the same machine and environment give the same kind in every process."""
    here = runner.device_kind("cpu")
    assert here.startswith("cpu (") and f"torch {torch.backends.cpu.get_cpu_capability()}" in here
    assert _kind_in_child() == here  # what a Ray or SLURM worker on this machine computes
    capped = _kind_in_child(ONEDNN_MAX_CPU_ISA="AVX2", ATEN_CPU_CAPABILITY="default")
    assert capped != here and "ONEDNN_MAX_CPU_ISA=AVX2" in capped and "torch DEFAULT" in capped


def test_a_worker_of_another_device_kind_refuses_the_cell(tmp_path):
    cfg = RunConfig(models=["random"], tasks=["retrieval"], dataset_options=TINY_OPTS, out=tmp_path / "o", quick=True,
                    device="cpu", progress=False)
    spec = runner.CellSpec(cfg, "random", 0, ("retrieval",), {}, "cell", "cpu", str(tmp_path / "cache"),
                           device_kind="cpu (another CPU)")
    with pytest.raises(ConfigError, match="driver keyed the run for 'cpu \\(another CPU\\)'"):
        runner.run_cell(spec)
    assert not (tmp_path / "o").exists()  # refused before anything ran


def test_threads_option_is_validated_and_documented(capsys):
    with pytest.raises(SystemExit) as e:
        main(["run", "--threads", "0"])
    assert e.value.code == 2
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "--threads" in help_text and "default 1" in help_text and "--cell-timeout" in help_text


# ------------------------------------------------------------------------------ B: names
@pytest.mark.parametrize("name", ["", " ", "a/b", "../x", ".hidden", "x" * 65, "na me"])
def test_submit_refuses_invalid_names_before_compute(tmp_path, capsys, monkeypatch, name):
    monkeypatch.setattr(runner, "load_dataset", _no_compute)
    out = tmp_path / "board"
    assert main(["submit", "--model", "avcl_bench.baselines.random_projection:RandomProjection", "--name", name,
                 "--out", str(out), "--quick", *TINY]) == 2
    err = capsys.readouterr().err
    assert "invalid model name" in _error_line(err)
    assert not list(out.rglob("*.json"))


def test_submit_refuses_builtin_and_reference_names(tmp_path, capsys):
    for name in ("infonce", "random"):
        assert main(["submit", "--model", "avcl_bench.baselines.random_projection:RandomProjection", "--name", name,
                     "--out", str(tmp_path / "b"), "--quick", *TINY]) == 2
        assert "built-in model" in _error_line(capsys.readouterr().err)
    pred = tmp_path / "pred"
    pred.mkdir()
    (pred / "retrieval.npz").write_bytes(b"")
    assert main(["submit", "--pred", str(pred), "--name", "infonce", "--out", str(tmp_path / "b"), "--quick"]) == 2
    assert "built-in model" in _error_line(capsys.readouterr().err)
    assert not list((tmp_path / "b").rglob("*.json"))


def _no_compute(*a, **k):
    raise AssertionError("compute started")


def test_builtin_run_refuses_a_name_holding_a_submission(tmp_path, capsys, monkeypatch):
    """A results folder where a (legacy) submission took a built-in's name: `run` adds no second model."""
    out = tmp_path / "out"
    assert main(_run_args(out)) == 0
    rec = ResultStore(out).records()[0]
    legacy = record_from_json({**rec.to_json(), "model": "infonce",
                               "submission": {"name": "infonce", "source_hash": "abc"},
                               "model_info": {**rec.model_info.model_dump(mode="json"), "external": True}})
    ResultStore(out).put(legacy)
    capsys.readouterr()
    monkeypatch.setattr(runner, "load_dataset", _no_compute)
    assert main(_run_args(out, "infonce")) == 2
    assert "already has results" in _error_line(capsys.readouterr().err)
    assert [r["model"] for r in _records(out)].count("infonce") == 1


def test_external_model_cannot_take_a_builtin_name(models, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(runner, "load_dataset", _no_compute)
    assert main(_run_args(tmp_path / "out", f"{models}:random")) == 2
    assert "built-in model" in _error_line(capsys.readouterr().err)


def test_submission_name_never_reused_by_another_model_either_order(models, tmp_path, capsys):
    out = tmp_path / "out"
    # a model run under its class name first, then a submission of another model under that name
    assert main(_run_args(out, f"{models}:Base")) == 0
    other = tmp_path / "other"
    other.mkdir()
    (other / "m.py").write_text(MODELS.replace("class Other(Base):", "class Other2(Base):"))
    capsys.readouterr()
    assert main(["submit", "--model", f"{other / 'm.py'}:Other2", "--name", "Base", "--out", str(out),
                 "--quick", "--no-progress", *TINY]) == 2
    line = _error_line(capsys.readouterr().err)
    assert "already has results" in line and "which is not a submission" in line
    assert {r["model"] for r in _records(out)} == {"Base"} and len(_records(out)) == 1


# ------------------------------------------------------------------------------ C: unwritable --out
def test_out_that_is_a_file_fails_before_compute(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(runner, "load_dataset", _no_compute)
    f = tmp_path / "file"
    f.write_text("x")
    for out in (f, f / "below"):
        assert main(_run_args(out)) == 2
        out_, err = capsys.readouterr()
        assert out_ == "" and str(out) in _error_line(err) and "is a file" in _error_line(err)


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS, errno.EACCES])
def test_unwritable_or_full_out_fails_before_compute(tmp_path, capsys, monkeypatch, code):
    def refuse(folder):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(store, "_probe", refuse)
    monkeypatch.setattr(runner, "load_dataset", _no_compute)
    out = tmp_path / "out"
    assert main(_run_args(out)) == 2
    line = _error_line(capsys.readouterr().err)
    assert str(out) in line and "not writable" in line


def test_disk_full_mid_run_exits_2_naming_the_file_and_keeps_finished_records(tmp_path, capsys, monkeypatch):
    out = tmp_path / "out"
    real = store.atomic_write_text
    calls = []

    def fill_up(path, text):
        calls.append(path)
        if len(calls) > 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(path, text)

    monkeypatch.setattr(store, "atomic_write_text", fill_up)
    assert main(_run_args(out, "random", "retrieval", "--seeds", "0,1")) == 2
    line = _error_line(capsys.readouterr().err)
    assert "disk full" in line and str(calls[1]) in line
    recs = _records(out)
    assert [(r["model"], r["seed"]) for r in recs] == [("random", 0)]


# ------------------------------------------------------------------------------ D: temp files, permissions
def test_stale_temp_files_are_removed_and_records_get_umask_permissions(tmp_path):
    out = tmp_path / "out"
    folder = out / "avsynth" / "retrieval" / "random"
    folder.mkdir(parents=True)
    stale, fresh = folder / ".seed0-abc.json.x1.tmp", folder / ".seed0-abc.json.x2.tmp"
    stale.write_text("{")
    fresh.write_text("{")
    old = time.time() - 3600
    os.utime(stale, (old, old))
    future = time.time() + 3600  # younger than this process: a concurrent writer's, left alone
    os.utime(fresh, (future, future))
    mask = os.umask(0o027)
    try:
        main(_run_args(out))
    finally:
        os.umask(mask)
    assert not stale.exists() and fresh.exists()
    recs = list(out.rglob("*.json"))
    assert recs and all((p.stat().st_mode & 0o777) == 0o640 for p in recs)


def test_shared_temp_helpers_for_the_cache(tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    leftover = cache / "tmpab12cd.tmp.npz"
    leftover.write_bytes(b"x")
    keep = cache / "data.npz"
    keep.write_bytes(b"x")
    old = time.time() - 3600
    os.utime(leftover, (old, old))
    os.utime(keep, (old, old))
    assert clean_stale_temps(cache) == [leftover] and keep.exists()
    mask = os.umask(0o002)
    try:
        store.atomic_write_bytes(cache / "blob.npz", b"data")
        atomic_write_text(cache / "t.json", "{}")
    finally:
        os.umask(mask)
    assert (cache / "blob.npz").read_bytes() == b"data"
    assert ((cache / "blob.npz").stat().st_mode & 0o777) == 0o664 == ((cache / "t.json").stat().st_mode & 0o777)
    assert sorted(p.name for p in cache.iterdir()) == ["blob.npz", "data.npz", "t.json"]


# ------------------------------------------------------------------------------ E: errors in model code
@pytest.mark.parametrize(("cls", "line"), [
    ("ExitInFit", "error: model 'ExitInFit' raised in fit: SystemExit(0) (a model must not exit the process)"),
    ("ExitInInit", "error: model 'ExitInInit' raised in the constructor: SystemExit(3)"),
    ("NumpyEmbed", "error: model 'NumpyEmbed': embed_audio() must return a torch.Tensor, got numpy.ndarray"),
    ("Exploding", "error: model 'Exploding' raised in fit: ValueError: model exploded"),
])
def test_model_errors_name_the_model_and_phase(models, tmp_path, capsys, cls, line):
    out = tmp_path / "out"
    assert main(_run_args(out, f"{models}:{cls}")) == 2
    stdout, err = capsys.readouterr()
    assert stdout == "" and _error_line(err).startswith(line)
    assert not list(out.rglob("*.json"))


def test_builtin_model_error_is_internal_but_names_model_and_phase(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(RandomProjection, "embed_audio", math.sqrt)  # raises TypeError, no user frame
    assert main(_run_args(tmp_path / "out")) == 1
    line = _error_line(capsys.readouterr().err)
    assert line.startswith("internal error: model 'random' raised in embed_audio: ")


# ------------------------------------------------------------------------------ F: cell time limit
@pytest.mark.parametrize(("cls", "limit"), [("Sleepy", "2"), ("Swallower", "1")])
def test_cell_timeout_stops_a_hanging_fit(models, tmp_path, capsys, cls, limit):
    out = tmp_path / "out"
    t0 = time.perf_counter()
    assert main(_run_args(out, f"{models}:{cls}", "retrieval", "--cell-timeout", limit)) == 2
    assert time.perf_counter() - t0 < 60
    line = _error_line(capsys.readouterr().err)
    assert line.startswith(f"error: model '{cls}' (seed 0) exceeded --cell-timeout {limit} s in fit")
    assert not list(out.rglob("*.json"))
    logged = [json.loads(x) for x in (out / runner.TIMEOUT_LOG).read_text().splitlines()]
    assert logged[-1]["model"] == cls and logged[-1]["phase"] == "fit" and logged[-1]["cell_timeout_s"] == float(limit)


def test_cell_timeout_off_by_default_and_validated(tmp_path):
    assert runner.Watchdog(None).limit is None
    with pytest.raises(SystemExit):
        main(_run_args(tmp_path / "out", "random", "retrieval", "--cell-timeout", "0"))


# ------------------------------------------------------------------------------ G: all-or-nothing cells
def test_input_error_in_a_later_task_writes_nothing_for_that_cell(tmp_path, capsys, monkeypatch):
    out = tmp_path / "out"
    task = get_task("classification")
    real = type(task).evaluate

    def lazily_bad(self, model, dataset, ctx):
        if ctx.seed == 1:
            raise InputError("clips.h5", "audio[7]", "contains NaN")
        return real(self, model, dataset, ctx)

    monkeypatch.setattr(type(task), "evaluate", lazily_bad)
    assert main(_run_args(out, "random", "retrieval,classification", "--seeds", "0,1")) == 2
    assert "clips.h5: audio[7]: contains NaN" in _error_line(capsys.readouterr().err)
    # seed 0's cell is complete and kept; seed 1's retrieval record (computed before the failure) is not written
    assert sorted((r["seed"], r["task"]) for r in _records(out)) == [(0, "classification"), (0, "retrieval")]
    monkeypatch.setattr(type(task), "evaluate", real)
    assert main(_run_args(out, "random", "retrieval,classification", "--seeds", "0,1")) == 0
    assert len(_records(out)) == 4
