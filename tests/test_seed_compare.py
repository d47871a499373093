"""seed_compare: before/after distributions over seeds of each model's main score."""
from __future__ import annotations

import json
import math

import pytest
from scipy import stats

from avcl_bench.benchmark.perf import seed_compare
from avcl_bench.benchmark.reporting.records import load_records
from tests.reporting._builders import all_records, write_results


def _write_after(root, shift: dict[str, float]):
    """The builders' records with each named model's retrieval mAP shifted."""
    for rec in all_records():
        if rec["task"] == "retrieval" and rec["model"] in shift:
            rec["metrics"]["mAP"] += shift[rec["model"]]
        folder = root / rec["task"] / rec["dataset"] / rec["model"]
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"seed{rec['seed']}.json").write_text(json.dumps(rec), encoding="utf-8")
    return root


def _rows(before, after):
    return {(r.task, r.model): r for r in seed_compare.compare(before, after)}


def test_a_shift_the_seeds_do_not_explain_is_marked_and_noise_is_not(tmp_path, capsys):
    before = load_records(write_results(tmp_path / "before"))
    after = load_records(_write_after(tmp_path / "after", {"infonce": 0.2, "triplet": 0.002, "random": 0.01}))
    rows = _rows(before, after)
    inf = rows[("retrieval", "infonce")]
    assert inf.before == pytest.approx((0.60, 0.62, 0.64)) and inf.diff == pytest.approx(0.2)
    assert inf.p_value == pytest.approx(stats.ttest_ind([0.80, 0.82, 0.84], [0.60, 0.62, 0.64], equal_var=False).pvalue)
    assert inf.moved
    assert not rows[("retrieval", "triplet")].moved  # 0.002 against a spread of 0.01
    rnd = rows[("retrieval", "random")]
    assert math.isnan(rnd.p_value) and rnd.moved  # a deterministic score that changed
    assert not rows[("retrieval", "cca")].moved and rows[("retrieval", "cca")].diff == 0
    single = rows[("retrieval", "single_seed")]
    assert math.isnan(single.p_value) and not single.moved  # one seed, unchanged
    assert ("classification", "infonce") in rows and rows[("classification", "infonce")].metric == "ACC"

    assert seed_compare.main(["--before", str(tmp_path / "before"), "--after", str(tmp_path / "after"),
                              "--tasks", "retrieval"]) == 0
    out = capsys.readouterr().out
    assert "2 of 5 rows moved" in out and "classification" not in out
    line = next(ln for ln in out.splitlines() if " infonce " in ln)
    assert line.split()[-1] == "MOVED" and "+0.200" in line


def test_empty_selection_is_exit_2(tmp_path, capsys):
    root = write_results(tmp_path / "r")
    assert seed_compare.main(["--before", str(root), "--after", str(root), "--models", "nobody"]) == 2
    assert "no result records" in capsys.readouterr().err
