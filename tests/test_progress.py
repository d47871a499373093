"""The overall "cell k of n, ETA" line and the per-cell log files of a run."""
from __future__ import annotations

from pathlib import Path

import pytest

from avcl_bench.benchmark import progress
from avcl_bench.benchmark.cli import main


def test_cell_progress_counts_and_estimates(capsys: pytest.CaptureFixture[str],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    clock = iter([0.0, 0.0, 10.0])
    monkeypatch.setattr(progress.time, "perf_counter", lambda: next(clock))
    p = progress.CellProgress(4)  # start at t=0
    p.reused()
    p.starting("a / seed 0")  # t=0: no estimate before a cell was computed
    p.finished(30.0)
    p.starting("b / seed 0")  # t=10: 2 cells left at 30 s each
    err = capsys.readouterr().err.splitlines()
    assert err == ["[cell 2/4] a / seed 0 (elapsed 0s)", "[cell 3/4] b / seed 0 (elapsed 10s, ETA 1m00s)"]


def test_cell_log_collects_the_lines_of_its_cell(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = progress.cell_log_path(tmp_path, "avsynth", "my/model", 1, "abcdef0123456789")
    assert path == tmp_path / "logs" / "avsynth" / "my_model-seed1-abcdef012345.log"
    progress.log("before")
    with progress.cell_log(path):
        progress.log("inside")
    progress.log("after")
    assert [line.split(" ", 2)[2] for line in path.read_text().splitlines()] == ["inside"]
    assert capsys.readouterr().err.splitlines() == ["before", "inside", "after"]


def test_a_run_reports_each_cell_and_leaves_its_logs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    args = ["run", "--quick", "--models", "random", "--tasks", "retrieval", "--seeds", "0,1", "--out", str(out),
            "--no-progress", "--json"]
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "[cell 1/2] random / seed 0: retrieval" in err and "[cell 2/2] random / seed 1: retrieval" in err
    logs = sorted((out / "logs" / "avsynth").glob("random-seed*.log"))
    assert [p.name.split("-")[1] for p in logs] == ["seed0", "seed1"]
    assert "[done] random / retrieval / seed 1" in logs[1].read_text()
    # a rerun reuses both cells: nothing is computed, no cell line
    assert main(args) == 0
    assert "[cell " not in capsys.readouterr().err
