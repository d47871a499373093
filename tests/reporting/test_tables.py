"""Aggregation, console table and leaderboard on hand-written records."""
from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from avcl_bench.benchmark.errors import InputError, UnknownNameError
from avcl_bench.benchmark.reporting.leaderboard import (
    LEADERBOARD_COLUMNS,
    format_leaderboard,
    leaderboard,
    leaderboard_json,
)
from avcl_bench.benchmark.reporting.records import records_frame
from avcl_bench.benchmark.reporting.tables import (
    AGGREGATE_COLUMNS,
    COMPARABILITY_DIRECT,
    COMPARABILITY_REFERENCE,
    LEGEND,
    NOT_COMPARABLE_NOTE,
    aggregate,
    build_blocks,
    console_table,
    format_mean_std,
    infinite_db_sign,
    metric_bounds,
    surveyed_for,
)

from ._builders import make_record, sep_record, verified_dataset

T_975_2 = 4.302652729749464  # Student t quantile, 2 degrees of freedom


@pytest.fixture(scope="module")
def agg(records: list[dict]) -> pd.DataFrame:
    return aggregate(records_frame(records))


def _row(agg: pd.DataFrame, model: str, metric: str, task: str = "retrieval") -> pd.Series:
    hit = agg[(agg.model == model) & (agg.metric == metric) & (agg.task == task)]
    assert len(hit) == 1
    return hit.iloc[0]


def test_aggregate_hand_numbers(agg: pd.DataFrame) -> None:
    assert tuple(agg.columns) == AGGREGATE_COLUMNS
    r = _row(agg, "infonce", "mAP")
    assert (r["mean"], r["std"], r["n"]) == pytest.approx((0.62, 0.02, 3))
    half = T_975_2 * 0.02 / math.sqrt(3)
    assert (r["ci_low"], r["ci_high"]) == pytest.approx((0.62 - half, 0.62 + half))
    r = _row(agg, "cca", "mAP")  # [0.47, 0.50, 0.50]
    assert r["mean"] == pytest.approx(0.49)
    assert r["std"] == pytest.approx(math.sqrt((0.02**2 + 0.01**2 + 0.01**2) / 2))
    r = _row(agg, "infonce", "MedR_a2v")  # [3, 2, 1]
    assert (r["mean"], r["std"]) == pytest.approx((2.0, 1.0))
    assert not r["higher_is_better"]
    r = _row(agg, "triplet", "ACC", task="classification")
    assert (r["mean"], r["std"], r["dataset"]) == (pytest.approx(0.71), pytest.approx(0.01), "esc50")


def test_aggregate_single_seed_uses_bootstrap(agg: pd.DataFrame) -> None:
    r = _row(agg, "single_seed", "mAP")
    assert r["n"] == 1 and r["std"] == 0.0 and r["ci_method"] == "bootstrap over test items"
    assert 0.1 <= r["ci_low"] < 0.3 < r["ci_high"] <= 0.5


def test_aggregate_ranks_with_ties(agg: pd.DataFrame) -> None:
    ranks = {m: _row(agg, m, "mAP")["rank"] for m in ("infonce", "triplet", "cca", "single_seed", "random")}
    # infonce [0.570, 0.670] alone; triplet [0.485, 0.535] and cca [0.447, 0.533] overlap;
    # single_seed's bootstrap interval lies below cca's; random is a reference row.
    assert ranks == {"infonce": "1", "triplet": "2-3", "cca": "2-3", "single_seed": "4", "random": "ref"}
    r = _row(agg, "triplet", "mAP")
    assert (r["rank_best"], r["rank_worst"]) == (2, 3)
    assert math.isnan(_row(agg, "random", "mAP")["rank_best"])
    # MedR (lower is better): 2 +- 2.48 (clipped at 0), 4 (deterministic: a point), 6 +- 2.48 all overlap
    assert {m: _row(agg, m, "MedR_a2v")["rank"] for m in ("infonce", "triplet", "cca")} == dict.fromkeys(
        ("infonce", "triplet", "cca"), "1-3"
    )
    assert _row(agg, "infonce", "ACC", "classification")["rank"] == "1"
    assert _row(agg, "triplet", "ACC", "classification")["rank"] == "2"


def test_aggregate_order_follows_family_order(agg: pd.DataFrame) -> None:
    assert list(dict.fromkeys(agg["task"])) == ["retrieval", "classification"]


def test_aggregate_rejects_conflicting_direction() -> None:
    a = make_record("infonce", "retrieval", "avsynth", 0, {"mAP": 0.5})
    b = make_record("triplet", "retrieval", "avsynth", 0, {"mAP": 0.4})
    b["task_meta"]["metrics"]["mAP"]["higher_is_better"] = False
    with pytest.raises(InputError, match="higher_is_better: metric direction disagrees"):
        aggregate(records_frame([a, b]))


def test_surveyed_comparability_and_prefix_match(surveyed: pd.DataFrame) -> None:
    part = surveyed_for(surveyed, "retrieval", ["mAP", "R@10_a2v", "R@10_v2a"], "avsynth",
                        verified_dataset("avsynth")["identity"])
    by_paper = dict(zip(part["paper"], part["comparability"]))
    assert by_paper["Test et al., 2020"] == COMPARABILITY_DIRECT  # dataset_id avsynth
    assert by_paper["Zeng et al., 2020"] == COMPARABILITY_REFERENCE
    assert part.iloc[0]["paper"] == "Test et al., 2020"  # direct rows first
    assert dict(zip(part["paper"], part["our_metrics"]))["Rouditchenko et al., 2020"] == "R@10_a2v, R@10_v2a"
    assert "Afouras et al., 2021" not in by_paper  # mAP@50 has no metric_key
    esc = surveyed_for(surveyed, "classification", ["ACC"], "esc50",  # alias esc50 -> esc-50
                       verified_dataset("esc50")["identity"])
    assert set(esc.loc[esc.dataset_id == "esc-50", "comparability"]) == {COMPARABILITY_DIRECT}
    assert set(esc.loc[esc.dataset_id == "ucf101", "comparability"]) == {COMPARABILITY_REFERENCE}
    assert surveyed_for(surveyed, "separation", ["ACC"], "music").empty


def test_block_model_order_and_best(agg: pd.DataFrame) -> None:
    blocks = build_blocks(agg, metrics_per_task={"retrieval": ["mAP", "MedR_a2v"]}, sort_by_rank=False)
    ret = blocks[0]
    # encoder, then objective; reference rows last
    assert ret.models == ["cca", "single_seed", "infonce", "triplet", "random"]
    # default: by rank (best rank, worst rank, then mean), reference rows last
    assert build_blocks(agg)[0].models == ["infonce", "triplet", "cca", "single_seed", "random"]
    assert ret.best("mAP") == {"infonce"}
    assert ret.best("MedR_a2v") == {"infonce"}  # lowest is best; random (50) is a reference
    assert ret.other_metrics == []


def _lines_with(text: str, word: str) -> list[str]:
    return [line for line in text.splitlines() if word in line]


def test_console_table(records: list[dict], surveyed: pd.DataFrame) -> None:
    text = console_table(records, surveyed)
    assert text.index("== retrieval | dataset: avsynth ==") < text.index("== classification | dataset: esc50 ==")
    assert "mAP ↑ [0-1]" in text and "ACC ↑ [0-1]" in text and "macro_F1 ↑ [0-1]" in text
    assert "MedR_a2v" not in text.split("== classification")[0].split("Surveyed")[0]  # not a headline metric
    order = [line.split()[1] for line in text.splitlines()
             if line.split()[:1] and line.split()[0] in ("1", "2-3", "4", "ref") and "[0-1]" not in line][:5]
    assert order == ["infonce", "triplet", "cca", "single_seed", "random"]  # sorted by rank
    (infonce,) = [ln for ln in _lines_with(text, " infonce ") if "0.620" in ln]
    assert infonce.split()[:6] == ["1", "infonce", "mlp", "infonce", "semi-supervised", "3"]
    assert "0.620 ± 0.020" in infonce
    assert "random [ref]" in text
    (patrick_esc,) = [ln for ln in _lines_with(text, "Patrick") if "ESC-50" in ln]
    assert patrick_esc.rstrip().endswith(COMPARABILITY_DIRECT) and "88.5" in patrick_esc and "0.885" in patrick_esc
    (zeng,) = _lines_with(text, "Zeng et al., 2020")
    assert zeng.rstrip().endswith(COMPARABILITY_REFERENCE)
    assert " ".join(text.split()).count(NOT_COMPARABLE_NOTE) == 2  # wrapped to the terminal
    assert "Afouras" not in text and "Smith" not in text


def test_console_legend_once_and_wrapped(records: list[dict], surveyed: pd.DataFrame) -> None:
    text = console_table(records, surveyed, width=72)
    flat = " ".join(text.split())
    assert flat.count(" ".join(LEGEND.split())) == 1  # once per run, not once per table
    assert text.count("95% CI: Student-t") == 1
    legend_lines = text.split("\n\n")[0].splitlines()
    assert len(legend_lines) > 3 and max(map(len, legend_lines)) <= 72
    assert "Rank is by mAP." in text and "Rank is by ACC." in text  # the short per-table line
    assert "95% CI: Student-t" not in console_table(records, surveyed, legend=False)
    wide = console_table(records, surveyed, width=200).split("\n\n")[0].splitlines()
    assert len(wide) < len(legend_lines) and max(map(len, wide)) <= 200


def test_console_legend_follows_the_terminal_width(records: list[dict], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "60")
    head = console_table(records).split("\n\n")[0].splitlines()
    assert max(map(len, head)) <= 60 and len(head) > 5


def test_console_table_options(records: list[dict], surveyed: pd.DataFrame) -> None:
    text = console_table(records, surveyed, tasks=["classification"])
    assert "retrieval" not in text.split("Surveyed")[0]
    text = console_table(records, None, metrics_per_task={"retrieval": ["MedR_a2v"]})
    assert "MedR_a2v ↓ [rank]" in text and "rank (MedR_a2v)" in text and "Surveyed" not in text
    with pytest.raises(UnknownNameError, match="generation"):
        console_table(records, tasks=["generation"])
    with pytest.raises(UnknownNameError, match="R@5"):
        console_table(records, metrics_per_task={"retrieval": ["R@5"]})


def test_leaderboard(records: list[dict]) -> None:
    board = leaderboard(records)
    assert tuple(board.columns) == LEADERBOARD_COLUMNS
    m = board[(board.task == "retrieval") & (board.metric == "mAP")]
    assert m["model"].tolist() == ["infonce", "triplet", "cca", "single_seed", "random"]
    assert m["rank"].tolist() == ["1", "2-3", "2-3", "4", "ref"]
    assert set(m["direction"]) == {"higher is better"}
    medr = board[board.metric == "MedR_a2v"]
    assert medr["model"].tolist() == ["infonce", "triplet", "cca", "random"]
    assert set(medr["direction"]) == {"lower is better"}
    assert list(dict.fromkeys(board["task"])) == ["retrieval", "classification"]
    text = format_leaderboard(board)
    assert "== retrieval | avsynth | mAP (higher is better) ==" in text
    half = T_975_2 * 0.02 / math.sqrt(3)
    assert f"[{0.62 - half:.3f}, {0.62 + half:.3f}]" in text
    assert "a range such as 2-4" in text and "'='" not in text


def test_leaderboard_task_filter_and_json(records: list[dict]) -> None:
    board = leaderboard(records, task="classification")
    assert set(board["task"]) == {"classification"} and len(board) == 4
    rows = json.loads(leaderboard_json(leaderboard(records)))
    assert len(rows) == len(leaderboard(records))
    single = [r for r in rows if r["model"] == "single_seed"][0]
    assert single["ci_method"] == "bootstrap over test items" and single["n"] == 1
    with pytest.raises(UnknownNameError, match="separation"):
        leaderboard(records, task="separation")


def test_leaderboard_json_null_interval() -> None:
    rec = make_record("infonce", "retrieval", "avsynth", 0, {"mAP": 0.5})
    (row,) = json.loads(leaderboard_json(leaderboard([rec])))
    assert row["ci_low"] is None and row["ci_method"] == "none" and row["rank"] == "1"


def test_infinite_db_rule() -> None:
    assert infinite_db_sign([241.3, 240.9], "dB") == 1.0
    assert infinite_db_sign([-250.0], "dB") == -1.0
    assert math.isnan(infinite_db_sign([250.0, -250.0], "dB"))
    assert infinite_db_sign([199.0, 35.0], "dB") == 0.0
    assert infinite_db_sign([241.3], "score") == 0.0  # only dB values are ratios
    assert format_mean_std(math.inf, math.nan, 3) == "inf" and format_mean_std(-math.inf, 0.0, 1) == "-inf"
    assert format_mean_std(math.nan, math.nan, 3) == "n/d"
    assert format_mean_std(31.292, 0.0, 3, deterministic=True) == "31.292 (det.)"


def test_one_infinite_item_makes_the_mean_infinite() -> None:
    # mean 120.5 dB is below the limit, but one item is +inf up to rounding: the mean is +inf
    items = {"SAR": [241.0, 0.0], "SDR": [1.0, 3.0]}
    agg = aggregate(records_frame([sep_record("m", 0, {"SAR": 120.5, "SDR": 2.0, "cIoU": 0.5}, items=items)]))
    sar = agg[agg.metric == "SAR"].iloc[0]
    assert sar["undefined"] and sar["mean"] == math.inf and sar["rank"] == "n/d" and sar["ci_method"] == "none"
    sdr = agg[agg.metric == "SDR"].iloc[0]
    assert not sdr["undefined"] and sdr["rank"] == "1"


def test_metric_bounds() -> None:
    assert metric_bounds("fraction") == (0.0, 1.0)  # derived until tasks declare bounds
    assert metric_bounds("fraction", 0.0, math.nan) == (0.0, 1.0)
    assert metric_bounds("dB") == (None, None)
    assert metric_bounds("rank") == (0.0, None) and metric_bounds("count") == (0.0, None)
    assert metric_bounds("score", -1.0, 1.0) == (-1.0, 1.0)  # declared in MetricMeta.lower / upper


def test_declared_bounds_clip_the_interval() -> None:
    recs = [sep_record("m", s, {"SDR": v, "SAR": 1.0 + s, "cIoU": 0.5 + s / 10}) for s, v in enumerate([5.0, 9.0])]
    for r in recs:
        r["task_meta"]["metrics"]["SDR"]["upper"] = 10.0  # MetricMeta.upper
    frame = records_frame(recs)
    assert frame.loc[frame.metric == "SDR", "upper"].tolist() == [10.0, 10.0]
    sdr = aggregate(frame).query("metric == 'SDR'").iloc[0]
    assert sdr["ci_high"] == 10.0 and sdr["clipped"] and sdr["ci_low"] < 0  # no lower bound declared for dB
