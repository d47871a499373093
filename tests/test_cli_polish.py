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
