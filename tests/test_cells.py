"""Cells: checkpoints and embeddings cached per (model, dataset, seed), reused by tasks and reruns."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from avcl_bench.benchmark import cells
from avcl_bench.benchmark.embedding import embed_split
from avcl_bench.benchmark.runner import RunConfig, run
from avcl_bench.benchmark.schema import record_from_json

TINY = {"n_train": "30", "n_val": "10", "n_test": "20"}
TINY_ARGS = [a for k, v in TINY.items() for a in ("--option", f"{k}={v}")]
INFONCE_ARGS = {"epochs": 2, "quick_epochs": 2}
REPO = Path(__file__).resolve().parents[1]


pytestmark = pytest.mark.usefixtures("fresh_cache")


def _cfg(out, **kw):
    base = dict(models=["infonce"], tasks=["retrieval", "classification"], dataset_options=TINY, seeds=[0],
                out=out, quick=True, device="cpu", progress=False, model_args=INFONCE_ARGS)
    base.update(kw)
    return RunConfig(**base)


def _metrics(records):
    return {(r.model, r.task, r.seed): r.metrics for r in records}


def test_cold_warm_and_uncached_runs_give_identical_numbers(tmp_path, capsys):
    cold = _metrics(run(_cfg(tmp_path / "cold")))
    err = capsys.readouterr().err
    assert "[train] infonce" in err
    # classification reads the test embeddings retrieval computed in the same cell
    assert "[cache] embeddings infonce test/audio" in err
    ckpts = list((tmp_path / "cache" / "checkpoints").glob("*.pt"))
    assert len(ckpts) == 1
    emb = list((tmp_path / "cache" / "embeddings").rglob("*.npy"))
    assert {p.name for p in emb} >= {"test-audio-b128-float64.npy", "train-visual-b128-float64.npy"}

    warm = _metrics(run(_cfg(tmp_path / "warm")))
    err = capsys.readouterr().err
    assert "[train]" not in err and "[cache] loaded checkpoint infonce" in err
    assert "[cache] embeddings infonce train/audio" in err

    off = _metrics(run(_cfg(tmp_path / "off", cache=False)))
    err = capsys.readouterr().err
    assert "[train] infonce" in err and "[cache]" not in err
    assert cold == warm == off
    # the uncached run wrote nothing new to the cell cache
    assert list((tmp_path / "cache" / "checkpoints").glob("*.pt")) == ckpts


def test_second_task_on_a_finished_cell_neither_retrains_nor_reembeds(tmp_path, capsys):
    run(_cfg(tmp_path / "o", tasks=["retrieval"], models=["infonce", "dcca"]))
    capsys.readouterr()
    calls = []
    orig = cells.EmbeddingCache.store

    def spy(self, split_name, which, arr):
        calls.append((self.label, split_name, which))
        return orig(self, split_name, which, arr)

    mp = pytest.MonkeyPatch()
    mp.setattr(cells.EmbeddingCache, "store", spy)
    try:
        recs = run(_cfg(tmp_path / "o", tasks=["retrieval", "classification"], models=["infonce", "dcca"]))
    finally:
        mp.undo()
    err = capsys.readouterr().err
    assert "[reuse] infonce / retrieval" in err and "[train]" not in err
    assert "[cache] loaded checkpoint infonce" in err
    # only the splits retrieval never embedded (train, val) are embedded; test comes from the cache
    assert calls and all(split != "test" for _, split, _ in calls)
    assert {r.task for r in recs} == {"retrieval", "classification"}


def test_localization_reads_the_retrieval_audio_embeddings_from_the_cache(tmp_path, capsys):
    run(_cfg(tmp_path / "o", tasks=["retrieval"], models=["random"], model_args={}))
    capsys.readouterr()
    run(_cfg(tmp_path / "o", tasks=["retrieval", "localization"], models=["random"], model_args={}))
    assert "[cache] embeddings random test/audio" in capsys.readouterr().err


def test_other_task_options_reuse_the_cell(tmp_path, capsys):
    a = run(_cfg(tmp_path / "o", tasks=["classification"]))
    capsys.readouterr()
    b = run(_cfg(tmp_path / "o", tasks=["classification"], task_options={"probe": "mlp"}))
    err = capsys.readouterr().err
    assert "[train]" not in err and "[cache] loaded checkpoint" in err
    assert "[cache] embeddings infonce train/audio" in err
    assert a[0].key != b[0].key


def test_warm_cells_need_a_finished_run_and_their_checkpoint(tmp_path):
    key = "k" * 64
    assert not cells.is_warm(key)
    cells.mark_cell(key, needs_fit=True)  # trainable but not checkpointable: a rerun trains again
    assert not cells.is_warm(key)
    cells.mark_cell(key, needs_fit=False)  # no fit needed (e.g. an untrained reference model)
    assert cells.is_warm(key)
    cells.checkpoint_path(key).parent.mkdir(parents=True, exist_ok=True)
    cells.checkpoint_path(key).write_bytes(b"x")
    cells.mark_cell(key, needs_fit=False)
    assert cells.is_warm(key)
    cells.checkpoint_path(key).unlink()  # its checkpoint was removed from the cache: cold again
    assert not cells.is_warm(key)
    (cells.cache_dir() / "cells" / f"{key}.json").write_text("{torn")
    assert not cells.is_warm(key)


def test_cell_key_changes_with_model_data_seed_runtime_not_task():
    base = dict(model_id={"name": "m", "args": {}, "source_hash": "x"}, dataset={"fingerprint": "f", "quick": True},
                seed=0, runtime={"threads": 1, "device": "cpu"})
    k = cells.cell_key(**base)
    assert k == cells.cell_key(**base)
    for part, value in (("model_id", {"name": "m", "args": {"dim": 2}, "source_hash": "x"}),
                        ("dataset", {"fingerprint": "g", "quick": True}), ("seed", 1),
                        ("runtime", {"threads": 2, "device": "cpu"})):
        assert cells.cell_key(**{**base, part: value}) != k


def test_unreadable_checkpoint_is_retrained(tmp_path, capsys):
    first = _metrics(run(_cfg(tmp_path / "a", tasks=["retrieval"])))
    (ckpt,) = (tmp_path / "cache" / "checkpoints").glob("*.pt")
    ckpt.write_bytes(b"torn")
    capsys.readouterr()
    again = _metrics(run(_cfg(tmp_path / "b", tasks=["retrieval"])))
    err = capsys.readouterr().err
    assert "ignoring unreadable checkpoint" in err and "[train] infonce" in err
    assert first == again
    torch.load(ckpt, weights_only=True)  # rewritten whole


def test_models_may_opt_out_of_checkpoints(tmp_path):
    class M(torch.nn.Module):
        checkpointable = False

    assert not cells.can_checkpoint(M())
    assert cells.can_checkpoint(torch.nn.Linear(2, 2))
    assert not cells.can_checkpoint(object())


def test_cache_serves_only_its_model_and_named_splits(tmp_path):
    class Model:
        calls = 0

        def embed_audio(self, x):
            Model.calls += 1
            return x.reshape(len(x), -1)[:, :3].double()

    from avcl_bench.benchmark.datasets import load_dataset
    ds = load_dataset("avsynth", options=TINY, quick=True)
    m, other = Model(), Model()
    cache = cells.EmbeddingCache(tmp_path / "e", m, {"test": ds.split("test")})
    a = embed_split(m, ds.split("test"), "audio", cache=cache)
    n = Model.calls
    b = embed_split(m, ds.split("test"), "audio", cache=cache)
    assert Model.calls == n and cache.hits == 1
    assert a.dtype == b.dtype and a.tobytes() == b.tobytes()
    b[0, 0] = 123.0  # copy-on-write: the file keeps its bytes
    assert embed_split(m, ds.split("test"), "audio", cache=cache)[0, 0] == a[0, 0]
    embed_split(other, ds.split("test"), "audio", cache=cache)
    embed_split(m, ds.split("test").subset(np.arange(3)), "audio", cache=cache)
    assert cache.hits == 2 and Model.calls > n


def _wait_for(pred, proc, timeout=240.0):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if pred():
            return True
        if proc.poll() is not None:
            return pred()
        time.sleep(0.05)
    return False


def test_sigkill_mid_run_loses_no_finished_cell_checkpoint_or_embedding(tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "AVCL_CACHE": str(tmp_path / "cache")}
    args = [sys.executable, str(REPO / "run_benchmark.py"), "run", "--models", "infonce,dcca",
            "--tasks", "retrieval,classification", "--quick", "--no-progress", "--device", "cpu", "--out", str(out),
            "--model-args", "epochs=2,quick_epochs=2", *TINY_ARGS]
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        done = _wait_for(lambda: len(list(out.glob("*/*/infonce/*.json"))) >= 2, proc)
        assert done, "the first cell never finished"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    killed_err = proc.stderr.read()
    proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    ckpts = {p: p.stat().st_mtime_ns for p in (tmp_path / "cache" / "checkpoints").glob("*.pt")}
    embs = {p: p.stat().st_mtime_ns for p in (tmp_path / "cache" / "embeddings").rglob("*.npy")}
    assert ckpts and embs
    before = {p: p.read_bytes() for p in out.rglob("*.json")}

    res = subprocess.run(args, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "[reuse] infonce / retrieval / seed 0" in res.stderr
    assert "[reuse] infonce / classification / seed 0" in res.stderr
    assert "[train] infonce" not in res.stderr
    # what the killed run finished is untouched: records, checkpoints, embeddings
    for p, data in before.items():
        assert p.read_bytes() == data
    for p, mtime in {**ckpts, **embs}.items():
        assert p.stat().st_mtime_ns == mtime
    # one valid record per (model, task), no duplicates, no temporary files
    recs = [record_from_json(json.loads(p.read_text()), str(p)) for p in out.rglob("*.json")]
    pairs = [(r.model, r.task) for r in recs if r.model in ("infonce", "dcca")]
    assert sorted(pairs) == sorted({(m, t) for m in ("infonce", "dcca") for t in ("retrieval", "classification")})
    assert not [p for p in tmp_path.rglob("*.tmp")]
    assert "[train] infonce" in killed_err
