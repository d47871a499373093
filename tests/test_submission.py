"""Issue 6: external model specs, validate-model, submit (model and predictions), export."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from avcl_bench.benchmark.cli import main
from avcl_bench.benchmark.errors import ConfigError, InputError
from avcl_bench.benchmark.submission import load_model_spec

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = f"{REPO / 'examples' / 'mean_pool_model.py'}:MeanPoolPCA"
TINY = ["--option", "n_train=30", "--option", "n_val=10", "--option", "n_test=20"]

BROKEN = '''
import torch

class _Base:
    trainable = False
    capabilities = frozenset()
    def __init__(self, spec, dim=8):
        self.dim = dim
    def config(self):
        return {"dim": self.dim}
    def fit(self, train, val, ctx):
        pass
    def embed_visual(self, visual):
        return torch.randn(visual.shape[0], self.dim, generator=torch.Generator().manual_seed(0))

class NaNModel(_Base):
    def embed_audio(self, audio):
        return torch.full((audio.shape[0], self.dim), float("nan"))
    def embed_visual(self, visual):
        return torch.randn(visual.shape[0], self.dim + 1)

class NoMethods:
    def __init__(self, spec):
        self.dim = 4

class BigBatchNaN(_Base):
    """fine on a small batch, NaN once a batch is as large as the tasks' (128)"""
    def embed_audio(self, audio):
        out = audio.reshape(audio.shape[0], -1)[:, : self.dim].float()
        return out / 0 if audio.shape[0] >= 128 else out

class Constant(_Base):
    def embed_audio(self, audio):
        return torch.ones(audio.shape[0], self.dim)

class Zeros(_Base):
    def embed_audio(self, audio):
        return torch.zeros(audio.shape[0], self.dim)

class SecondBatchFails(_Base):
    calls = 0
    def embed_audio(self, audio):
        type(self).calls += 1
        if type(self).calls > 2:  # the first batch (twice, for determinism) passes
            raise RuntimeError("boom on the second batch")
        return audio.reshape(audio.shape[0], -1)[:, : self.dim].float()
'''


pytestmark = pytest.mark.usefixtures("fresh_cache")


@pytest.fixture
def broken(tmp_path) -> Path:
    p = tmp_path / "broken_models.py"
    p.write_text(BROKEN)
    return p


def test_load_model_spec_file_and_module(tmp_path):
    factory, info = load_model_spec(EXAMPLE, name="pca")
    assert info["name"] == "pca" and len(info["source_hash"]) == 16 and info["learning"] == "semi-supervised"
    factory2, _ = load_model_spec("avcl_bench.baselines.random_projection:RandomProjection")
    assert factory2.__name__ == "RandomProjection"
    with pytest.raises(ConfigError):
        load_model_spec("no_colon_here")
    with pytest.raises(InputError, match="not found"):
        load_model_spec(f"{tmp_path / 'missing.py'}:X")
    with pytest.raises(InputError, match="Nope"):
        load_model_spec(f"{REPO / 'examples' / 'mean_pool_model.py'}:Nope")


def test_validate_model_ok(capsys):
    assert main(["validate-model", EXAMPLE]) == 0
    out = capsys.readouterr().out
    assert "avsynth: supports" in out and "retrieval" in out and "model OK" in out


def test_validate_model_reports_each_problem(broken, capsys):
    assert main(["validate-model", f"{broken}:NaNModel"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert any("embed_audio() returned NaN" in line for line in err)
    assert any("embed_visual() returned shape" in line for line in err)
    assert main(["validate-model", f"{broken}:NoMethods"]) == 1
    err = capsys.readouterr().err
    assert "missing method fit()" in err and "missing method embed_audio()" in err


@pytest.mark.parametrize(("cls", "problem"), [
    ("BigBatchNaN", "embed_audio() returned NaN or inf on a batch of 128"),
    ("Constant", "embed_audio() returned the same embedding for all 128 items of a batch (constant)"),
    ("Zeros", "embed_audio() returned all-zero embeddings on a batch of 128"),
    ("SecondBatchFails", "embed_audio() failed on a batch of 128"),
])
def test_validate_model_checks_two_task_size_batches(broken, cls, problem, capsys):
    assert main(["validate-model", f"{broken}:{cls}"]) == 1
    out, err = capsys.readouterr()
    assert problem in err
    assert out == ""  # nothing about supported tasks when the model is not valid


def test_submit_model_and_name_guard(tmp_path, capsys):
    out = tmp_path / "board"
    args = ["submit", "--model", EXAMPLE, "--name", "pca", "--out", str(out), "--quick", "--no-progress", *TINY]
    assert main(args) == 0
    recs = [json.loads(p.read_text()) for p in out.rglob("*.json")]
    mine = [r for r in recs if r["model"] == "pca"]
    assert {"retrieval", "classification", "separation", "generation"} <= {r["task"] for r in mine}
    for r in mine:
        assert r["submission"]["name"] == "pca" and r["submission"]["source_hash"]
        assert r["provenance"]["suite_version"]
    # same name, same source: resumes; same name, other model: refused, nothing written
    n_files = len(list(out.rglob("*.json")))
    assert main(args) == 0 and len(list(out.rglob("*.json"))) == n_files
    other = ["submit", "--model", "avcl_bench.baselines.random_projection:RandomProjection", "--name", "pca", "--out", str(out),
             "--quick", *TINY]
    assert main(other) == 2
    assert "already has results" in capsys.readouterr().err
    assert len(list(out.rglob("*.json"))) == n_files


def test_export_then_submit_predictions(tmp_path):
    exp = tmp_path / "exp"
    assert main(["export", "--out", str(exp), "--quick", *TINY]) == 0
    manifest = json.loads((exp / "manifest.json").read_text())
    assert "retrieval.npz" in manifest["expected_predictions"]
    with np.load(exp / "inputs.npz", allow_pickle=False) as z:
        audio, visual = z["audio"], z["visual"]
    assert audio.shape[0] == visual.shape[0] == 20
    # a trivial external "model": mean-pooled inputs projected to 8 dims
    rng = np.random.default_rng(0)
    pa = rng.normal(size=(audio.shape[-1], 8))
    pv = rng.normal(size=(visual.shape[2], 8))
    pred = tmp_path / "pred"
    pred.mkdir()
    np.savez(pred / "retrieval.npz", audio=audio.mean(1) @ pa, visual=visual.mean(axis=(1, 3, 4)) @ pv)
    board = tmp_path / "board"
    assert main(["submit", "--pred", str(pred), "--name", "ext", "--out", str(board), "--quick", *TINY]) == 0
    recs = [json.loads(p.read_text()) for p in board.rglob("*.json")]
    assert len(recs) == 1 and recs[0]["task"] == "retrieval" and recs[0]["protocol"] == "submitted predictions"
    assert 0 <= recs[0]["metrics"]["mAP"] <= 1


def test_submit_predictions_errors(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["submit", "--pred", str(empty), "--name", "x", "--out", str(tmp_path / "b"), "--quick", *TINY]) == 2
    assert "no <task>.npz" in capsys.readouterr().err
    bad = tmp_path / "bad"
    bad.mkdir()
    np.savez(bad / "retrieval.npz", audio=np.ones((3, 2)), visual=np.ones((3, 2)))
    assert main(["submit", "--pred", str(bad), "--name", "x", "--out", str(tmp_path / "b"), "--quick", *TINY]) == 2
    err = capsys.readouterr().err
    assert "retrieval.npz" in err and len(err.strip().splitlines()) == 1
    assert not list((tmp_path / "b").rglob("*.json"))
