"""Issue 13: a surveyed row is ``direct`` only when the data is verifiably the surveyed dataset and split
(the official split lists of benchmark/datasets/manifests.py), never because of the name typed."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from avcl_bench.benchmark.cli import main
from avcl_bench.benchmark.datasets import load_dataset
from avcl_bench.benchmark.datasets.ave import categories, read_annotations, read_order
from avcl_bench.benchmark.datasets.manifests import MANIFESTS, dataset_identity, derive_manifests, list_digest
from avcl_bench.benchmark.surveyed import comparability, comparability_reason, load_table1_long

pytestmark = pytest.mark.usefixtures("fresh_cache")


def _gaussian_features(path: Path, n: int = 120, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    split = np.array(["train"] * (n // 2) + ["val"] * (n // 6) + ["test"] * (n - n // 2 - n // 6))
    np.savez(path, audio=rng.normal(size=(n, 16)).astype(np.float32), visual=rng.normal(size=(n, 24)).astype(np.float32),
             labels=rng.integers(0, 4, n), split=split)
    return path


def test_made_up_features_named_vegas_are_reference(tmp_path, capsys):
    feats, board = _gaussian_features(tmp_path / "made_up.npz"), tmp_path / "board"
    assert main(["run", "--dataset", "features", "--data-root", str(feats), "--option", "name=vegas",
                 "--models", "random", "--tasks", "retrieval", "--out", str(board), "--no-progress"]) == 0
    out = capsys.readouterr().out
    vegas = [ln for ln in out.splitlines() if "VEGAS" in ln]
    assert len(vegas) >= 3  # the three VEGAS retrieval papers of Table 1 are listed ...
    for line in vegas:  # ... and none of them is a direct comparison, each says why
        assert not line.rstrip().endswith("direct")
        assert "reference (not verified as VEGAS: no official VEGAS split list is available offline" in line
    (rec,) = [json.loads(p.read_text()) for p in board.rglob("*.json") if "random" in p.parts]
    ident = rec["config"]["dataset"]["identity"]
    assert ident["dataset_id"] == "vegas" and ident["verified"] is False
    assert main(["report", "--results", str(board), "--format", "md", "--out", str(tmp_path / "r.md")]) == 0
    text = (tmp_path / "r.md").read_text()
    assert "not verified as VEGAS" in text and not re.search(r"\|\s*direct\s*\|", text)


def test_manifest_digests_are_those_of_the_official_files(shared_data):
    derived = derive_manifests(shared_data / "annotations")
    for dataset_id, splits in derived.items():
        assert MANIFESTS.get(dataset_id).splits == splits, dataset_id
    assert {s: v.n for s, v in derived["ave"].items()} == {"train": 3339, "val": 402, "test": 402}


def _ave_features(tmp_path: Path, shared: Path, *, edit=None) -> Path:  # noqa: ANN001
    """A features file with AVE's official ids, splits and categories and made-up (Gaussian) features."""
    ann = shared / "annotations" / "ave"
    events = read_annotations(ann / "Annotations.txt")
    names = categories(events)
    split = np.full(len(events), "", dtype="<U5")
    for s in ("train", "val", "test"):
        split[read_order(ann / f"{s}_order.h5", len(events))] = s
    keep = split != ""
    ids = np.array([f"{e.video_id}#{i}" for i, e in enumerate(events)])
    labels = np.array([names.index(e.category) for e in events])
    arrays = {"ids": ids[keep], "split": split[keep], "labels": labels[keep], "class_names": np.array(names)}
    if edit is not None:
        edit(arrays)
    n = len(arrays["ids"])
    rng = np.random.default_rng(0)
    path = tmp_path / "ave_like.npz"
    np.savez(path, audio=rng.normal(size=(n, 8)).astype(np.float32), visual=rng.normal(size=(n, 8)).astype(np.float32),
             **arrays)
    return path


def _identity(path: Path, quick: bool = False) -> dict:
    return dataset_identity(load_dataset("features", data_root=path, options={"name": "ave"}, quick=quick))


def test_ave_identity_checks_ids_splits_and_labels(tmp_path, shared_data):
    ok = _identity(_ave_features(tmp_path, shared_data))
    assert ok["verified"] is True and ok["dataset_id"] == "ave", ok
    assert "ids and labels of train (3339), val (402), test (402)" in ok["reason"]
    assert _identity(_ave_features(tmp_path, shared_data), quick=True)["reason"].startswith(
        "the train split has 600 items")  # --quick: a subset is not the surveyed split

    def drop_one_test(a: dict) -> None:
        k = int(np.flatnonzero(a["split"] == "test")[0])
        for key in ("ids", "split", "labels"):
            a[key] = np.delete(a[key], k)

    def swap_train_test(a: dict) -> None:  # same counts, one item moved each way
        i, j = int(np.flatnonzero(a["split"] == "train")[0]), int(np.flatnonzero(a["split"] == "test")[0])
        a["split"][[i, j]] = a["split"][[j, i]]

    def wrong_label(a: dict) -> None:
        k = int(np.flatnonzero(a["split"] == "test")[5])
        a["labels"][k] = (a["labels"][k] + 1) % len(a["class_names"])

    def renamed_ids(a: dict) -> None:
        a["ids"] = np.array([f"clip{i}" for i in range(len(a["ids"]))])

    for edit, why in ((drop_one_test, "the test split has 401 items"),
                      (swap_train_test, "the train split's ids are not the official AVE train list"),
                      (wrong_label, "the test split's labels are not the official AVE categories"),
                      (renamed_ids, "the train split's ids are not the official AVE train list")):
        got = _identity(_ave_features(tmp_path, shared_data, edit=edit))
        assert got["verified"] is False and got["reason"].startswith(why), (edit.__name__, got)


def test_datasets_without_an_official_list_are_never_verified(tmp_path):
    feats = _gaussian_features(tmp_path / "f.npz")
    for name, why in (("vegas", "no official VEGAS split list"), ("music", "MUSIC publishes video lists but no"),
                      ("esc50", "the official ESC-50 clip list"), ("features", "no official split list of 'features'"),
                      ("mydata", "no official split list of 'mydata'")):
        got = dataset_identity(load_dataset("features", data_root=feats, options={"name": name}))
        assert got["verified"] is False and got["reason"].startswith(why), got
    assert dataset_identity(load_dataset("avsynth", quick=True, options={"n_train": "30", "n_val": "10",
                                                                         "n_test": "20"}))["verified"] is False


def test_comparability_needs_a_verified_identity_of_the_rows_dataset():
    rows = load_table1_long()
    rows = rows[rows["metric_key"] == "mAP"].reset_index(drop=True)
    is_ave = (rows["dataset_id"] == "ave").tolist()
    assert any(is_ave)
    assert (comparability(rows, "ave") == "reference").all()  # no verdict: never direct
    verified = {"dataset_id": "ave", "verified": True, "reason": "ids match"}
    assert (comparability(rows, "ave", verified) == "direct").tolist() == is_ave
    unverified = {"dataset_id": "ave", "title": "AVE", "verified": False, "reason": "the test split has 80 items"}
    assert (comparability(rows, "ave", unverified) == "reference").all()
    reasons = comparability_reason(rows, "ave", unverified)
    assert set(reasons[rows["dataset_id"] == "ave"]) == {"not verified as AVE: the test split has 80 items"}
    assert set(reasons[rows["dataset_id"] != "ave"]) == {"different dataset"}
    assert set(comparability_reason(rows, "ave", verified)[rows["dataset_id"] == "ave"]) == {""}
    # a verdict for another dataset does not make these rows direct
    other = {"dataset_id": "vgg-ss", "verified": True, "reason": "ids match"}
    assert (comparability(rows, "ave", other) == "reference").all()
    assert list_digest(["b", "a"]) == list_digest(["a", "b"])
    pd.testing.assert_index_equal(comparability(rows, "ave").index, rows.index)
