"""The ``leaderboard`` and ``report`` sub-commands as the CLI wires them."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from avcl_bench.benchmark.errors import InputError, UnknownNameError
from avcl_bench.benchmark.reporting.commands import add_leaderboard_parser, add_report_parser

from ._builders import FIXTURES


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="avcl-bench")
    sub = parser.add_subparsers(dest="command", required=True)
    add_leaderboard_parser(sub)
    add_report_parser(sub)
    return parser


def _run(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    return args.func(args)


def test_leaderboard_text_and_json(results_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(["leaderboard", "--results", str(results_dir)]) == 0
    text = capsys.readouterr().out
    assert "== retrieval | avsynth | mAP (higher is better) ==" in text
    assert _run(["leaderboard", "--results", str(results_dir), "--task", "classification", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["task"] for r in rows} == {"classification"} and rows[0]["model"] == "infonce"


def test_leaderboard_errors(results_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(UnknownNameError, match="generation"):
        _run(["leaderboard", "--results", str(results_dir), "--task", "generation"])
    with pytest.raises(InputError, match="results folder not found"):
        _run(["leaderboard", "--results", str(tmp_path / "missing")])
    with pytest.raises(InputError, match="no result records found"):
        _run(["leaderboard", "--results", str(tmp_path)])


@pytest.mark.parametrize("fmt", ["md", "latex", "csv", "html"])
def test_report_writes_file(results_dir: Path, tmp_path: Path, fmt: str, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "sub" / f"report.{fmt}"
    argv = ["report", "--results", str(results_dir), "--format", fmt, "--out", str(out), "--surveyed-dir", str(FIXTURES)]
    assert _run(argv) == 0
    assert capsys.readouterr().out.strip() == str(out)
    assert "Patrick et al., 2020" in out.read_text(encoding="utf-8")


def test_report_errors(results_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="surveyed Table 1 not found"):
        _run(["report", "--results", str(results_dir), "--format", "md", "--out", str(tmp_path / "r.md"),
              "--surveyed-dir", str(tmp_path)])
    with pytest.raises(SystemExit):
        _parser().parse_args(["report", "--results", str(results_dir), "--format", "pdf", "--out", "x"])


def test_report_default_surveyed_dir(results_dir: Path, tmp_path: Path) -> None:
    from avcl_bench.benchmark.surveyed import surveyed_dir

    if not (surveyed_dir() / "table1_long.csv").is_file():
        pytest.skip(f"{surveyed_dir()}/table1_long.csv is absent")
    out = tmp_path / "r.md"
    assert _run(["report", "--results", str(results_dir), "--format", "md", "--out", str(out)]) == 0
    assert "Surveyed Table 1 rows (retrieval; mAP)" in out.read_text(encoding="utf-8")
