"""Loading and validating result records and the surveyed table."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from avcl_bench.benchmark.errors import InputError
from avcl_bench.benchmark.reporting.records import (
    FRAME_COLUMNS,
    is_record_like,
    load_records,
    metric_matches_key,
    records_frame,
)
from avcl_bench.benchmark.schema import ResultRecord, record_from_json
from avcl_bench.benchmark.surveyed import load_table1_long, resolve_dataset_id

from ._builders import SURVEYED_CSV, all_records, make_record


def _write(root: Path, name: str, obj: Any) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    path = root / name
    path.write_text(obj if isinstance(obj, str) else json.dumps(obj), encoding="utf-8")
    return path


#: top-level keys a record must have (``item_metrics`` and ``submission`` are optional)
RECORD_KEYS = tuple(k for k, f in ResultRecord.model_fields.items() if f.is_required()) + ("schema_version",)


def test_load_records_finds_all_and_skips_manifest(records: list[ResultRecord]) -> None:
    assert len(records) == len(all_records()) == 19
    assert all(r.source and not r.source.endswith("manifest.json") for r in records)
    keys = [(r["task"], r["dataset"], r["model"], r["seed"]) for r in records]
    assert keys == sorted(keys)


@pytest.mark.parametrize("key", RECORD_KEYS)
def test_missing_key_names_file_and_key(tmp_path: Path, key: str) -> None:
    rec = make_record("infonce", "retrieval", "avsynth", 0, {"mAP": 0.5})
    del rec[key]  # still record-like: "metrics" or "model" + "task" remain
    path = _write(tmp_path / "r", "bad.json", rec)
    with pytest.raises(InputError) as err:
        load_records(tmp_path / "r")
    assert str(path) in str(err.value) and key in str(err.value)


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda r: r["model_info"].pop("reference"), "model_info.reference"),
        (lambda r: r["model_info"].pop("encoder"), "model_info.encoder"),
        (lambda r: r["task_meta"]["metrics"]["mAP"].pop("higher_is_better"), "task_meta.metrics.mAP.higher_is_better"),
        (lambda r: r["task_meta"]["metrics"]["mAP"].update(higher_is_better="yes"),
         "task_meta.metrics.mAP.higher_is_better"),
        (lambda r: r["task_meta"]["metrics"]["mAP"].update(unit="percent"), "task_meta.metrics.mAP.unit"),
        (lambda r: r["task_meta"]["metrics"].pop("mAP"), "task_meta"),
        (lambda r: r["metrics"].update(R_at_1=0.5), "metrics.R_at_1"),
        (lambda r: r.update(schema_version=1), "schema_version"),
        (lambda r: r.update(extra_field=1), "extra_field"),
        (lambda r: r["metrics"].update(mAP=float("nan")), "metrics.mAP"),
        (lambda r: r["metrics"].update(mAP="0.5"), "metrics.mAP"),
        (lambda r: r.update(seed="0"), "seed"),
        (lambda r: r.update(seed=True), "seed"),
        (lambda r: r.update(model=""), "model"),
        (lambda r: r.update(metrics={}), "metrics"),
        (lambda r: r.update(item_metrics={"mAP": [0.9, 0.9]}), "item_metrics.mAP"),
        (lambda r: r.update(item_metrics={"R@1": [0.5]}), "item_metrics.R@1"),
        (lambda r: r.update(item_metrics={"mAP": [0.5, float("nan")]}), "item_metrics.mAP"),
    ],
)
def test_bad_fields_raise(tmp_path: Path, mutate, field: str) -> None:
    rec = make_record("infonce", "retrieval", "avsynth", 0, {"mAP": 0.5})
    mutate(rec)
    path = _write(tmp_path, "bad.json", json.dumps(rec))  # json.dumps writes NaN as NaN
    with pytest.raises(InputError, match=f"{path}: {field}".replace(".", r"\.").replace("@", "@")):
        load_records(tmp_path)


def test_median_item_metrics_accepted() -> None:
    rec = make_record("infonce", "retrieval", "avsynth", 0, {"mAP": 0.5})
    rec["item_metrics"] = {"mAP": [0.1, 0.5, 0.6]}  # median 0.5, mean 0.4
    record_from_json(rec)
    frame = records_frame([rec])
    assert frame.loc[0, "item_statistic"] == "median"


def test_broken_json_names_file(tmp_path: Path) -> None:
    path = _write(tmp_path / "a" / "b", "broken.json", '{"model": "x", ')
    with pytest.raises(InputError, match="broken JSON") as err:
        load_records(tmp_path)
    assert str(path) in str(err.value)


def test_non_record_json_is_ignored(tmp_path: Path) -> None:
    _write(tmp_path, "manifest.json", {"runs": 3, "task": "retrieval"})
    _write(tmp_path, "list.json", [1, 2, 3])
    assert load_records(tmp_path) == []
    assert not is_record_like({"task": "retrieval"})
    assert is_record_like({"metrics": {}})
    assert is_record_like({"model": "m", "task": "t"})


def test_duplicate_records_rejected(tmp_path: Path) -> None:
    rec = make_record("infonce", "retrieval", "avsynth", 0, {"mAP": 0.5})
    _write(tmp_path / "a", "r.json", rec)
    _write(tmp_path / "b", "r.json", rec)
    with pytest.raises(InputError, match="duplicate record"):
        load_records(tmp_path)


def test_missing_results_folder(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="results folder not found"):
        load_records(tmp_path / "nope")


def test_records_frame_is_tidy(records: list[ResultRecord]) -> None:
    frame = records_frame(records)
    assert tuple(frame.columns) == FRAME_COLUMNS
    # retrieval: 4 models x 3 seeds x 2 metrics + 1 single-seed metric; classification: 2 x 3 x 2
    assert len(frame) == 4 * 3 * 2 + 1 + 2 * 3 * 2
    row = frame[(frame.model == "cca") & (frame.metric == "mAP") & (frame.seed == 1)].iloc[0]
    assert row["value"] == 0.50 and row["higher_is_better"] and not row["reference"]
    assert (row["encoder"], row["objective"], row["learning"]) == ("linear", "dcca", "unsupervised")
    assert frame[frame.model == "random"]["reference"].all()
    assert not frame[(frame.model == "infonce") & (frame.metric == "MedR_a2v")]["higher_is_better"].any()
    single = frame[frame.model == "single_seed"].iloc[0]
    assert single["item_values"] == (0.1, 0.2, 0.3, 0.4, 0.5) and single["item_statistic"] == "mean"


def test_records_frame_validates_in_memory_records() -> None:
    rec = make_record("infonce", "retrieval", "avsynth", 0, {"mAP": 0.5})
    del rec["protocol"]
    with pytest.raises(InputError, match="record #0: protocol: missing key"):
        records_frame([rec])


def test_surveyed_fixture_reads_with_the_one_table1_loader() -> None:
    frame = load_table1_long(SURVEYED_CSV)
    assert len(frame) == 9
    assert frame["value_normalized"].dtype == float
    truncated = frame[frame.paper == "Recasens et al., 2021"].iloc[0]
    assert truncated["value_text"] == "93." and bool(truncated["truncated"])
    assert (frame["metric_key"] == "").sum() == 1  # the mAP@50 row has no counterpart
    assert len(load_table1_long(SURVEYED_CSV.parent)) == 9  # a folder holding table1_long.csv


def test_dataset_aliases_and_metric_prefixes() -> None:
    assert resolve_dataset_id("flickr") == "flickr-soundnet"
    assert resolve_dataset_id("vggss") == "vgg-ss"
    assert resolve_dataset_id("ESC50") == "esc-50"
    assert resolve_dataset_id("avsynth") == "avsynth"
    assert metric_matches_key("R@10_a2v", "R@10") and metric_matches_key("R@10_v2a", "R@10")
    assert metric_matches_key("mAP", "mAP") and metric_matches_key("mAP_v2a", "mAP")
    assert not metric_matches_key("R@1_a2v", "R@10")
    assert not metric_matches_key("R@10_a2v", "R@1")
    assert not metric_matches_key("mAP", "")
    assert not metric_matches_key("macro_F1", "F1")
