"""Issue item 7: errors in a submitted model's own code keep their traceback (file and line)."""
from __future__ import annotations

from pathlib import Path

import pytest

from avcl_bench.benchmark.cli import main

TINY = ["--option", "n_train=30", "--option", "n_val=10", "--option", "n_test=20"]

MODELS = '''import torch


def check_positive(x):
    if x <= 0:
        raise ValueError(f"dim must be positive, got {x}")  # line 6


class Base:
    trainable = True
    capabilities = frozenset()
    def __init__(self, spec, dim=4):
        self.dim = dim
    def config(self):
        return {"dim": self.dim}
    def fit(self, train, val, ctx):
        pass
    def embed_audio(self, audio):
        return torch.zeros(audio.shape[0], self.dim)
    def embed_visual(self, visual):
        return torch.zeros(visual.shape[0], self.dim)


class RaiseInit(Base):
    def __init__(self, spec, dim=4):
        check_positive(-dim)  # line 26


class RaiseFit(Base):
    def fit(self, train, val, ctx):
        raise RuntimeError("fit exploded")  # line 31


class RaiseEmbed(Base):
    trainable = False
    def embed_audio(self, audio):
        return {}["missing"]  # line 37
'''

LINES = {"RaiseInit": [6, 26], "RaiseFit": [31], "RaiseEmbed": [37]}
PHASE = {"RaiseInit": "the constructor", "RaiseFit": "fit", "RaiseEmbed": "embed_audio"}
EXC = {"RaiseInit": "ValueError: dim must be positive, got -4", "RaiseFit": "RuntimeError: fit exploded",
       "RaiseEmbed": "KeyError: 'missing'"}


pytestmark = pytest.mark.usefixtures("fresh_cache")


@pytest.fixture
def models(tmp_path) -> Path:
    p = tmp_path / "user_models.py"
    p.write_text(MODELS)
    return p


def _run(spec: str, tmp_path: Path, *extra: str) -> list[str]:
    return ["run", "--models", spec, "--tasks", "retrieval", "--quick", "--no-progress", "--device", "cpu",
            "--out", str(tmp_path / "out"), *TINY, *extra]


def _error_block(err: str) -> list[str]:
    """The error report: stderr from its summary line on (progress lines may come before it)."""
    lines = err.rstrip("\n").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("error: "))
    return lines[start:]


@pytest.mark.parametrize("cls", ["RaiseInit", "RaiseFit", "RaiseEmbed"])
def test_user_exception_shows_summary_then_user_frames(models, tmp_path, capsys, cls):
    assert main(_run(f"{models}:{cls}", tmp_path)) == 2
    out, err = capsys.readouterr()
    assert out == ""
    block = _error_block(err)
    assert block[0] == f"error: model '{cls}' raised in {PHASE[cls]}: {EXC[cls]}"
    frames = "\n".join(block[1:])
    for line in LINES[cls]:
        assert f'File "{models}", line {line}' in frames
    assert "benchmark/runner.py" not in frames and "site-packages" not in frames  # only the user's frames
    assert not list((tmp_path / "out").rglob("*.json")) or cls != "RaiseInit"


def test_import_and_syntax_errors_of_a_model_file(tmp_path, capsys):
    bad = tmp_path / "bad_import.py"
    bad.write_text("import os\n\nimport no_such_module_xyz  # line 3\n")
    assert main(_run(f"{bad}:X", tmp_path)) == 2
    out, err = capsys.readouterr()
    assert out == ""
    block = _error_block(err)
    assert block[0].startswith(f"error: {bad}: import failed: ModuleNotFoundError")
    assert f'File "{bad}", line 3' in "\n".join(block[1:])
    syn = tmp_path / "bad_syntax.py"
    syn.write_text("x = 1\ndef f(:\n    pass\n")
    assert main(_run(f"{syn}:X", tmp_path)) == 2
    block = _error_block(capsys.readouterr().err)
    assert block[0].startswith(f"error: {syn}: import failed: SyntaxError")
    assert f'File "{syn}", line 2' in "\n".join(block[1:])


def test_model_args_mismatch_is_one_line(models, tmp_path, capsys):
    assert main(_run(f"{models}:RaiseFit", tmp_path, "--model-args", "dimm=3")) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.strip().splitlines() == [
        "error: model 'RaiseFit': --model-args: unexpected argument 'dimm' (accepted: dim)"]
    assert main(["validate-model", f"{models}:RaiseFit", "--model-args", "dimm=3"]) == 2
    assert "unexpected argument 'dimm'" in capsys.readouterr().err


def test_our_validation_errors_stay_one_line(tmp_path, capsys):
    assert main(_run("no_such_model", tmp_path)) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("where", ["before", "after", "env"])
def test_debug_shows_the_full_traceback(models, tmp_path, capsys, monkeypatch, where):
    args = _run(f"{models}:RaiseInit", tmp_path)
    if where == "before":
        args = ["--debug", *args]
    elif where == "after":
        args = [*args, "--debug"]
    else:
        monkeypatch.setenv("AVCL_DEBUG", "1")
    assert main(args) == 2
    block = _error_block(capsys.readouterr().err)
    assert block[0].startswith("error: model 'RaiseInit' raised in the constructor")
    text = "\n".join(block)
    assert "Traceback (most recent call last)" in text and "runner.py" in text  # the suite's frames too
    assert f'File "{models}", line 26' in text


def test_debug_on_a_one_line_error_adds_the_traceback(tmp_path, capsys):
    assert main(["--debug", *_run("no_such_model", tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback (most recent call last)" in err


def test_validate_model_shows_user_frames(models, capsys):
    assert main(["validate-model", f"{models}:RaiseFit"]) == 1
    err = capsys.readouterr().err
    assert "fit() failed: RuntimeError: fit exploded" in err and f'File "{models}", line 31' in err


@pytest.mark.parametrize("where", ["/proc/avcl-export-test", "FILE/sub"])
def test_export_to_an_unwritable_folder_is_a_one_line_error(where, tmp_path, capsys):
    target = where.replace("FILE", str(tmp_path / "a-file"))
    (tmp_path / "a-file").write_text("x")
    assert main(["export", "--dataset", "avsynth", "--quick", "--out", target]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and "export folder" in err and "internal error" not in err
