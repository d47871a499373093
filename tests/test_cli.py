"""CLI contract of issue 2: score/list/run, one-line errors, nothing on stdout on failure."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
TINY = ["--option", "n_train=20", "--option", "n_val=10", "--option", "n_test=10"]


def cli(*args: str, env_cache: Path | None = None) -> subprocess.CompletedProcess:
    import os

    env = dict(os.environ)
    if env_cache is not None:
        env["AVCL_CACHE"] = str(env_cache)
    return subprocess.run([sys.executable, str(REPO / "run_benchmark.py"), *args], capture_output=True, text=True,
                          cwd=REPO, env=env, timeout=600)


@pytest.fixture
def npz(tmp_path):
    def make(name: str, **arrays) -> Path:
        p = tmp_path / name
        np.savez(p, **arrays)
        return p

    return make


def test_score_retrieval_json_prints_exactly_one_object(npz):
    rng = np.random.default_rng(0)
    labels = np.arange(12) % 3
    pred = npz("pred.npz", audio=rng.normal(size=(12, 8)), visual=rng.normal(size=(12, 8)))
    ref = npz("ref.npz", audio_labels=labels, visual_labels=labels)
    r = cli("score", "retrieval", "--pred", str(pred), "--ref", str(ref), "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert list(out) == ["metrics", "task"] or set(out) == {"task", "metrics"}
    assert out["task"] == "retrieval"
    assert {"mAP", "mAP_a2v", "mAP_v2a", "R@1_a2v", "R@5_v2a", "R@10_a2v", "MedR_a2v", "MedR_v2a"} <= set(out["metrics"])
    assert r.stdout.strip().count("\n") == 0


def test_score_unpaired_gallery_has_no_recall(npz):
    rng = np.random.default_rng(1)
    pred = npz("pred.npz", audio=rng.normal(size=(10, 4)), visual=rng.normal(size=(7, 4)))
    ref = npz("ref.npz", audio_labels=np.arange(10) % 2, visual_labels=np.arange(7) % 2)
    out = json.loads(cli("score", "retrieval", "--pred", str(pred), "--ref", str(ref), "--json").stdout)
    assert set(out["metrics"]) == {"mAP", "mAP_a2v", "mAP_v2a", "mAP_macro", "mAP_macro_a2v", "mAP_macro_v2a"}


BAD_CASES = {
    "missing_file": (lambda npz, tmp: (tmp / "nope.npz", None), "nope.npz"),
    "not_npz": (lambda npz, tmp: ((tmp / "x.npz").write_text("hello") and tmp / "x.npz", None), "x.npz"),
    "missing_key": (lambda npz, tmp: (npz("p.npz", audio=np.ones((3, 2))), None), "visual"),
    "nan": (lambda npz, tmp: (npz("p.npz", audio=np.array([[np.nan, 1.0], [1, 2], [3, 1]]), visual=np.ones((3, 2))), None), "audio"),
    "zero_norm": (lambda npz, tmp: (npz("p.npz", audio=np.array([[0.0, 0.0], [1, 2], [3, 1]]), visual=np.ones((3, 2))), None), "audio"),
    "count_mismatch": (lambda npz, tmp: (npz("p.npz", audio=np.ones((4, 2)), visual=np.ones((3, 2))), None), "audio"),
    "object_array": (lambda npz, tmp: (npz("p.npz", audio=np.array([object(), 1], dtype=object), visual=np.ones((3, 2))), None), "audio"),
}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_input_one_line_error_no_stdout(case, npz, tmp_path):
    make, needle = BAD_CASES[case]
    pred, _ = make(npz, tmp_path)
    ref = npz("ref.npz", audio_labels=np.array([0, 1, 0]), visual_labels=np.array([0, 1, 0]))
    r = cli("score", "retrieval", "--pred", str(pred), "--ref", str(ref), "--json")
    assert r.returncode != 0
    assert r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert needle in lines[0]


def test_unknown_names_are_one_line_errors():
    for args, needle in ((["score", "nosuchtask", "--pred", "a", "--ref", "b"], "nosuchtask"),
                         (["run", "--models", "nosuchmodel", "--quick"], "nosuchmodel"),
                         (["run", "--dataset", "nosuchdata"], "nosuchdata"),
                         (["run", "--tasks", "nosuchtask"], "nosuchtask")):
        r = cli(*args)
        assert r.returncode == 2 and r.stdout == "" and needle in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_list_json():
    for what, key in (("models", "name"), ("tasks", "name"), ("datasets", "name"), ("surveyed", "paper")):
        r = cli("list", what, "--json")
        assert r.returncode == 0, r.stderr
        rows = json.loads(r.stdout)
        assert rows and all(key in row for row in rows)
    models = {m["name"]: m for m in json.loads(cli("list", "models", "--json").stdout)}
    assert "random" in models
    for m in models.values():
        assert {"name", "encoder", "objective", "learning", "papers"} <= set(m)


def test_run_writes_records_and_resumes(tmp_path):
    out = tmp_path / "runs"
    r = cli("run", "--models", "random", "--tasks", "retrieval", "--seeds", "0,1", "--out", str(out), *TINY,
            "--no-progress", env_cache=tmp_path / "cache")
    assert r.returncode == 0, r.stderr
    assert "retrieval" in r.stdout and "Zeng et al., 2020" in r.stdout and "not directly comparable" in r.stdout
    files = sorted(out.rglob("*.json"))
    assert len(files) == 2
    rec = json.loads(files[0].read_text())
    assert {"model", "task", "dataset", "seed", "metrics", "config", "provenance"} <= set(rec)
    assert {"suite_version", "git_commit", "python", "torch", "numpy", "device", "created_at", "duration_s"} <= set(rec["provenance"])
    before = {f: f.read_text() for f in files}
    again = cli("run", "--models", "random", "--tasks", "retrieval", "--seeds", "0,1", "--out", str(out), *TINY,
                "--no-progress", env_cache=tmp_path / "cache")
    assert again.returncode == 0 and again.stderr.count("[reuse]") == 2
    assert {f: f.read_text() for f in sorted(out.rglob("*.json"))} == before
