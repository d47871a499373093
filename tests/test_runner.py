"""Runner and results store: reproducibility, resume after a crash, atomic records, keys."""
from __future__ import annotations

import json

import pytest

from avcl_bench.benchmark.errors import ConfigError, ModelError
from avcl_bench.benchmark.runner import RunConfig, run
from avcl_bench.benchmark.store import ResultStore, atomic_write_text, config_key

TINY = {"n_train": "30", "n_val": "10", "n_test": "20"}


pytestmark = pytest.mark.usefixtures("fresh_cache")


def _cfg(out, **kw):
    base = dict(models=["random"], tasks=["retrieval"], dataset_options=TINY, seeds=[0], out=out,
                quick=True, device="cpu", progress=False, model_args={})
    if kw.get("models") == ["infonce"]:
        base["model_args"] = {"epochs": 2, "quick_epochs": 2}
    base.update(kw)
    return RunConfig(**base)


def _metrics(records):
    return {(r["model"], r["task"], r["seed"]): r["metrics"] for r in records}


def test_same_seed_same_numbers_other_seed_other_numbers(tmp_path):
    a = _metrics(run(_cfg(tmp_path / "a", models=["infonce"])))
    b = _metrics(run(_cfg(tmp_path / "b", models=["infonce"])))
    assert a == b
    c = _metrics(run(_cfg(tmp_path / "c", models=["infonce"], seeds=[1])))
    assert a[("infonce", "retrieval", 0)] != c[("infonce", "retrieval", 1)]


def test_resume_recomputes_only_missing_and_torn_records(tmp_path):
    out = tmp_path / "runs"
    first = run(_cfg(out, models=["random"], seeds=[0, 1]))
    files = sorted(out.rglob("*.json"))
    assert len(files) == 2 and len(first) == 2
    # a crash left one record torn and another missing: both are recomputed, identically
    original = {f: json.loads(f.read_text())["metrics"] for f in files}
    files[0].write_text('{"model": "random", "metr')
    files[1].unlink()
    again = run(_cfg(out, models=["random"], seeds=[0, 1]))
    assert len(again) == 2 and sorted(out.rglob("*.json")) == files
    assert {f: json.loads(f.read_text())["metrics"] for f in files} == original
    assert not list(out.rglob("*.tmp"))


def test_key_covers_model_args_and_options(tmp_path):
    out = tmp_path / "runs"
    run(_cfg(out, models=["random"]))
    run(_cfg(out, models=["random"], model_args={"dim": 32}))
    assert len(list(out.rglob("*.json"))) == 2  # different model args never reuse each other
    recs = ResultStore(out).records()
    assert len({r["key"] for r in recs}) == 2
    assert {r["config"]["model"]["args"].get("dim") for r in recs} == {None, 32}


def test_config_key_is_order_independent():
    assert config_key({"a": 1, "b": [1, 2]}) == config_key({"b": [1, 2], "a": 1})
    assert config_key({"a": 1}) != config_key({"a": 2})


def test_atomic_write_leaves_no_partial_file(tmp_path, monkeypatch):
    target = tmp_path / "x.json"
    atomic_write_text(target, "old")

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr("os.replace", boom)
    with pytest.raises(OSError):
        atomic_write_text(target, "new")
    assert target.read_text() == "old" and list(tmp_path.iterdir()) == [target]


def test_bad_model_args_and_broken_model_are_one_line_errors(tmp_path):
    with pytest.raises(ConfigError, match="model-args"):
        run(_cfg(tmp_path, models=["random"], model_args={"nonsense": 1}))
    model_file = tmp_path / "broken.py"
    model_file.write_text("class Broken:\n    def __init__(self, spec):\n        self.dim = 4\n")
    with pytest.raises(ModelError, match="embed_audio"):
        run(_cfg(tmp_path / "o", models=[f"{model_file}:Broken"]))


def test_random_reference_follows_the_run_seed(tmp_path):
    recs = _metrics(run(_cfg(tmp_path / "r", models=["random"], seeds=[0, 1, 0])))
    assert recs[("random", "retrieval", 0)] != recs[("random", "retrieval", 1)]
    again = _metrics(run(_cfg(tmp_path / "r2", models=["random"], seeds=[0])))
    assert again[("random", "retrieval", 0)] == recs[("random", "retrieval", 0)]
