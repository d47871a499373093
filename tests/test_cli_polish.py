"""Command-line polish: --version, unknown commands and devices, empty lists are one-line errors."""
from __future__ import annotations

import pytest

from avcl_bench import __version__
from avcl_bench.benchmark.cli import main


def _one_line(capsys: pytest.CaptureFixture[str]) -> str:
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"avcl-bench {__version__}"


def test_unknown_command_suggests_the_closest(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lst", "models"]) == 2
    assert _one_line(capsys).startswith("error: unknown command 'lst'; did you mean 'list'?")


@pytest.mark.parametrize(("flag", "value"), [("--models", ",,"), ("--tasks", " , ")])
def test_empty_lists_are_errors_not_defaults(flag: str, value: str, tmp_path, capsys) -> None:
    assert main(["run", flag, value, "--quick", "--out", str(tmp_path)]) == 2
    assert _one_line(capsys).startswith(f"error: {flag}: no ")
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(("device", "why"), [("tpu", "unknown device 'tpu'"), ("cuda:x", "unknown device")])
def test_unknown_device(device: str, why: str, tmp_path, capsys) -> None:
    assert main(["run", "--device", device, "--models", "random", "--tasks", "retrieval", "--quick",
                 "--out", str(tmp_path)]) == 2
    assert why in _one_line(capsys)


def test_unavailable_cuda_is_named(tmp_path, capsys) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert main(["run", "--device", "cuda", "--models", "random", "--tasks", "retrieval", "--quick",
                 "--out", str(tmp_path)]) == 2
    assert "CUDA is not available" in _one_line(capsys)


@pytest.mark.parametrize("what", ["models", "tasks", "datasets", "surveyed"])
def test_list_output_fits_100_columns(what: str, capsys) -> None:
    assert main(["list", what]) == 0
    out = capsys.readouterr().out
    assert out.strip() and max(len(line) for line in out.splitlines()) <= 100


def test_list_tasks_prints_every_protocol_in_full(capsys) -> None:
    from avcl_bench.tasks.registry import TASKS

    assert main(["list", "tasks"]) == 0
    out = " ".join(capsys.readouterr().out.split())  # undo the wrapping
    for name in TASKS:
        meta = TASKS.get(name).metadata
        assert " ".join(meta.protocol.split()) in out, name
        assert all(m in out for m in meta.metrics), name


def test_score_help_lists_the_tasks_and_their_arrays(capsys) -> None:
    from avcl_bench.tasks.registry import TASKS

    with pytest.raises(SystemExit):
        main(["score", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    for name in TASKS:
        meta = TASKS.get(name).metadata
        assert f"{name}:" in out and (not meta.pred_format or " ".join(meta.pred_format.split()) in out)


@pytest.mark.parametrize("command", ["run", "score", "list", "leaderboard", "report", "validate-model", "submit",
                                     "export"])
def test_help_texts_have_no_literal_percent_escapes(command: str, capsys) -> None:
    with pytest.raises(SystemExit):
        main([command, "--help"])
    assert "%%" not in capsys.readouterr().out


def test_a_closed_pipe_is_not_an_internal_error(tmp_path) -> None:
    import subprocess
    import sys

    proc = subprocess.run(f"{sys.executable} -m avcl_bench list surveyed | head -n 1", shell=True,
                          capture_output=True, text=True, check=False)
    assert proc.stdout.startswith("row") and "internal error" not in proc.stderr
