"""The headroom script reads a results folder and can select the records it summarises."""
from __future__ import annotations

from avcl_bench.benchmark.perf import headroom
from tests.reporting._builders import write_results


def _retrieval_line(out: str) -> list[str]:
    return next(line for line in out.splitlines() if line.startswith("retrieval")).split()


def test_headroom_reads_a_folder_and_selects_models_tasks_and_seeds(tmp_path, capsys):
    root = write_results(tmp_path / "results")
    assert headroom.main(["--out", str(root)]) == 0
    line = _retrieval_line(capsys.readouterr().out)
    assert line[4:7] == ["infonce", "0.620", "0.100"]  # best learned of all (mean of 0.60, 0.62, 0.64), random
    assert headroom.main(["--out", str(root), "--models", "triplet,cca,random"]) == 0
    out = capsys.readouterr().out
    line = _retrieval_line(out)
    assert line[4:7] == ["triplet", "0.510", "0.100"] and "+0.410" in line
    classification = next(line for line in out.splitlines() if line.startswith("classification")).split()
    assert classification[4:6] == ["triplet", "0.710"]  # infonce's better esc50 records are left out
    assert headroom.main(["--out", str(root), "--seeds", "0", "--tasks", "retrieval"]) == 0
    out = capsys.readouterr().out
    assert _retrieval_line(out)[3:6] == ["1", "infonce", "0.600"]
    assert "classification" not in out
    assert headroom.main(["--out", str(root), "--models", "nobody"]) == 2
    assert "no result records" in capsys.readouterr().err
