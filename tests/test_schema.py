"""One record model: schema round trip, strict reading, metadata in every record, several configs."""
from __future__ import annotations

import json

import pytest

from avcl_bench.benchmark.cli import main
from avcl_bench.benchmark.errors import InputError
from avcl_bench.benchmark.reporting.leaderboard import format_leaderboard, leaderboard
from avcl_bench.benchmark.reporting.records import load_records
from avcl_bench.benchmark.reporting.report import render_report
from avcl_bench.benchmark.schema import SCHEMA_VERSION, ResultRecord, read_record, read_records
from avcl_bench.benchmark.store import ResultStore
from avcl_bench.tasks.registry import TASKS, get_task

TINY = ["--option", "n_train=30", "--option", "n_val=10"]


pytestmark = pytest.mark.usefixtures("fresh_cache")


def _run(out, *extra):
    assert main(["run", "--quick", "--models", "random", "--tasks", "retrieval", "--device", "cpu", "--no-progress",
                 "--out", str(out), *TINY, *extra]) == 0


@pytest.fixture
def two_configs(tmp_path, capsys):
    """A folder written by two runs of ``random`` that differ in one dataset option."""
    out = tmp_path / "runs"
    _run(out, "--option", "n_test=20")
    for path in out.rglob("*.json"):  # the first run is older (created_at has one-second resolution)
        d = json.loads(path.read_text())
        d["provenance"]["created_at"] = "2000-01-01T00:00:00Z"
        path.write_text(json.dumps(d))
    _run(out, "--option", "n_test=24")
    capsys.readouterr()
    return out


def _record(task: str = "retrieval") -> ResultRecord:
    meta = get_task(task).metadata
    return ResultRecord(model="m", task=task, dataset="avsynth", seed=0, metrics={meta.main_score: 0.25},
                        config={"model": {"name": "m"}}, provenance={"created_at": "2026-01-01T00:00:00Z"},
                        key="0" * 64, protocol="p", task_meta=meta,
                        model_info={"encoder": ["mlp"], "objective": [], "learning": "none", "reference": False})


def test_round_trip_write_then_read(tmp_path):
    rec = _record()
    path = ResultStore(tmp_path).put(rec)
    back = read_record(path)
    assert back.to_json() == rec.to_json() and back.schema_version == SCHEMA_VERSION
    assert back.task_meta == get_task("retrieval").metadata and back.higher_is_better == {"mAP": True}
    assert ResultStore(tmp_path).get("m", "retrieval", "avsynth", 0, "0" * 64).to_json() == rec.to_json()


@pytest.mark.parametrize(("mutate", "field"), [
    (lambda d: d.pop("task_meta"), "task_meta"),
    (lambda d: d["task_meta"].pop("main_score"), "task_meta.main_score"),
    (lambda d: d.update(metrics={"mAP": "high"}), "metrics.mAP"),
    (lambda d: d.update(schema_version=1), "schema_version"),
])
def test_reader_rejects_bad_record_naming_file_and_field(tmp_path, mutate, field):
    d = _record().to_json()
    mutate(d)
    path = tmp_path / "r.json"
    path.write_text(json.dumps(d))
    with pytest.raises(InputError) as err:
        read_records(tmp_path)
    assert str(err.value).startswith(f"{path}: {field}: ") and "\n" not in str(err.value)
    # the store treats a foreign file as missing (a resumed run recomputes it)
    store = ResultStore(tmp_path)
    target = store.path_for("m", "retrieval", "avsynth", 0, "0" * 64)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(d))
    assert store.get("m", "retrieval", "avsynth", 0, "0" * 64) is None


def test_nan_metric_refused_at_construction():
    with pytest.raises(ValueError):
        _record().model_copy(update={}).model_validate({**_record().to_json(), "metrics": {"mAP": float("nan")}})


def test_metadata_is_written_into_every_record(two_configs):
    recs = read_records(two_configs)
    assert len(recs) == 2
    for path in two_configs.rglob("*.json"):
        d = json.loads(path.read_text())
        assert d["schema_version"] == SCHEMA_VERSION
        assert d["task_meta"]["main_score"] == "mAP" and d["task_meta"]["metrics"]["mAP"]["unit"] == "fraction"


def test_two_configs_give_two_rows_with_a_legend_and_latest_one(two_configs, capsys):
    records = load_records(two_configs)
    board = leaderboard(records)
    models = sorted(set(board["model"]))
    assert len(models) == 2 and all(m.startswith("random@") for m in models)
    text = format_leaderboard(board)
    assert "dataset.options.n_test" in text and all(m in text for m in models)
    md = render_report(records, None, "md")
    assert all(m in md for m in models) and "dataset.options.n_test" in md
    latest = leaderboard(records, latest=True)
    assert set(latest["model"]) == {"random"}
    assert main(["leaderboard", "--results", str(two_configs), "--latest", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["model"] for r in rows} == {"random"}
    newest = max(records, key=lambda r: r.provenance["created_at"])
    assert newest.config["dataset"]["options"]["n_test"] == "24"
    n24 = [r for r in rows if r["metric"] == "mAP"][0]["mean"]
    assert n24 == pytest.approx(newest.metrics["mAP"])


def test_list_tasks_json_shows_metadata(capsys):
    assert main(["list", "tasks", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert set(rows) == set(TASKS)
    ret = rows["retrieval"]
    assert ret["main_score"] == "mAP" and ret["headline"][0] == "mAP"
    assert ret["units"]["mAP"] == "fraction" and ret["units"]["MedR_a2v"] == "rank"
    assert rows["separation"]["units"]["SDR"] == "dB" and ret["protocol"].startswith("Protocol")
