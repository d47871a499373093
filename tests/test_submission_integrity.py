"""Issue 13: a submission is all-or-nothing, and resubmitting under one's own name replaces one's own
earlier submission (``--replace``), never another model's."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from avcl_bench.benchmark import store as store_mod
from avcl_bench.benchmark.cli import main
from avcl_bench.benchmark.errors import InputError

TINY = ["--option", "n_train=30", "--option", "n_val=10", "--option", "n_test=20"]

pytestmark = pytest.mark.usefixtures("fresh_cache")

#: a fast trainable model whose fit() fails for seed 1 while FAIL_SEED is 1 (the "bug" to fix)
MODEL = '''
import numpy as np
import torch

FAIL_SEED = {fail_seed}

class Flaky:
    capabilities = frozenset()
    def __init__(self, spec, dim=8):
        self.dim = dim
        g = torch.Generator().manual_seed(0)
        self.pa = torch.randn(spec.audio_shape[-1], dim, generator=g)
        self.pv = torch.randn(spec.visual_shape[1], dim, generator=g)
    def config(self):
        return {{"dim": self.dim}}
    def fit(self, train, val, ctx):
        if ctx.seed == FAIL_SEED:
            raise RuntimeError("diverged")
    def embed_audio(self, audio):
        return audio.mean(1) @ self.pa
    def embed_visual(self, visual):
        return visual.mean(dim=(1, 3, 4)) @ self.pv
'''


def _records(board: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in board.rglob("*.json")] if board.exists() else []


def _preds(folder: Path, *, nan: bool, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    folder.mkdir(exist_ok=True)
    np.savez(folder / "classification.npz", labels=rng.integers(0, 4, 20))
    audio = rng.normal(size=(20, 8))
    if nan:
        audio[3, 1] = np.nan
    np.savez(folder / "retrieval.npz", audio=audio, visual=rng.normal(size=(20, 8)))
    return folder


def _submit_pred(pred: Path, board: Path, *extra: str) -> int:
    return main(["submit", "--pred", str(pred), "--name", "partial", "--out", str(board), "--quick", *TINY, *extra])


def test_pred_write_failure_leaves_nothing(tmp_path, monkeypatch):
    """A failure while the records are written (disk full on the second) leaves no record at all."""
    pred, board = _preds(tmp_path / "pred", nan=False), tmp_path / "board"
    real_put, calls = store_mod.ResultStore.put, []

    def failing_put(self, record):  # noqa: ANN001, ANN202
        calls.append(record.task)
        if len(calls) == 2:
            raise InputError(self.root, None, "cannot write the result record (disk full)")
        return real_put(self, record)

    monkeypatch.setattr(store_mod.ResultStore, "put", failing_put)
    assert _submit_pred(pred, board) == 2
    assert _records(board) == []
    monkeypatch.setattr(store_mod.ResultStore, "put", real_put)
    assert _submit_pred(pred, board) == 0  # the same command then succeeds: the name was not locked
    assert {r["task"] for r in _records(board)} == {"classification", "retrieval"}


def test_pred_fixed_and_resubmitted_under_the_same_name(tmp_path, capsys):
    pred, board = _preds(tmp_path / "pred", nan=True), tmp_path / "board"
    assert _submit_pred(pred, board) == 2
    assert "retrieval.npz" in capsys.readouterr().err
    assert _records(board) == []
    _preds(pred, nan=False)  # fixed
    assert _submit_pred(pred, board) == 0
    first = _records(board)
    assert {r["task"] for r in first} == {"classification", "retrieval"}
    # a changed submission under the same name: refused without --replace (pointing at it) ...
    _preds(pred, nan=False, seed=1)
    assert _submit_pred(pred, board) == 2
    err = capsys.readouterr().err
    assert "--replace" in err and len(err.strip().splitlines()) == 1
    assert _records(board) == first
    # ... and with --replace it replaces the earlier submission: no record of the old one is left
    assert _submit_pred(pred, board, "--replace") == 0
    second = _records(board)
    assert len(second) == 2 and {r["submission"]["source_hash"] for r in second} != \
        {r["submission"]["source_hash"] for r in first}
    assert len({r["submission"]["source_hash"] for r in second}) == 1


def test_replace_never_takes_another_models_name(tmp_path, capsys):
    """``--replace`` replaces a submission only: records of ``run --models file.py:Class`` are not a submission."""
    model = tmp_path / "flaky.py"
    model.write_text(MODEL.format(fail_seed=-1))
    board = tmp_path / "board"
    assert main(["run", "--models", f"{model}:Flaky", "--tasks", "retrieval", "--out", str(board), "--quick",
                 "--no-progress", *TINY]) == 0
    n = len(_records(board))
    pred = _preds(tmp_path / "pred", nan=False)
    capsys.readouterr()
    assert main(["submit", "--pred", str(pred), "--name", "Flaky", "--out", str(board), "--quick", "--replace",
                 *TINY]) == 2
    assert "not a submission" in capsys.readouterr().err
    assert len(_records(board)) == n


def test_model_submission_failing_seed_writes_nothing_then_fixed(tmp_path, capsys):
    """``submit --model`` whose seed 1 fails writes nothing (seed 0 finished first); the fixed model then
    submits under the same name (its code changed, so its source hash did)."""
    model = tmp_path / "flaky.py"
    model.write_text(MODEL.format(fail_seed=1))
    board = tmp_path / "board"
    args = ["submit", "--model", f"{model}:Flaky", "--name", "flaky", "--out", str(board), "--quick",
            "--no-progress", "--seeds", "0,1", *TINY]
    assert main(args) == 2
    assert "diverged" in capsys.readouterr().err
    assert _records(board) == []
    assert not [p for p in board.parent.iterdir() if ".staging" in p.name]  # no staging folder left behind
    model.write_text(MODEL.format(fail_seed=-1))  # fixed
    assert main(args) == 0
    mine = [r for r in _records(board) if r["model"] == "flaky"]
    assert {r["seed"] for r in mine} == {0, 1} and mine
    assert len({json.dumps(r["submission"]["source_hash"]) for r in mine}) == 1
