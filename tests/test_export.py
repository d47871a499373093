"""Issue 13: ``export`` gives a model outside Python every split the protocol trains on, with the labels
and segment labels the suite's heads use, never the test answers, and a manifest of what each task reads."""
from __future__ import annotations

import json

import numpy as np
import pytest

from avcl_bench.benchmark.cli import main
from avcl_bench.benchmark.datasets import load_dataset

TINY = ["--option", "n_train=30", "--option", "n_val=10", "--option", "n_test=20"]
OPTS = {"n_train": "30", "n_val": "10", "n_test": "20"}

pytestmark = pytest.mark.usefixtures("fresh_cache")


def _load(path):  # noqa: ANN001, ANN202
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def test_export_writes_training_splits_with_labels(tmp_path):
    out = tmp_path / "exp"
    assert main(["export", "--out", str(out), "--quick", *TINY]) == 0
    ds = load_dataset("avsynth", options=OPTS, quick=True)
    manifest = json.loads((out / "manifest.json").read_text())
    for split in ("train", "val"):
        arrays, data = _load(out / f"{split}.npz"), ds.split(split)
        np.testing.assert_array_equal(arrays["labels"], data.labels)
        np.testing.assert_array_equal(arrays["segment_labels"], data.segment_labels)
        np.testing.assert_array_equal(arrays["audio"], np.asarray(data.audio))
        np.testing.assert_array_equal(arrays["frames"], np.asarray(data.frames))
        assert arrays["ids"].tolist() == list(data.ids)
        assert manifest["files"][f"{split}.npz"]["arrays"]["labels"] == [[len(data)], "int64"]
    test = _load(out / "inputs.npz")
    assert set(test) == {"audio", "visual", "ids"}  # the test answers are never exported
    assert test["ids"].tolist() == list(ds.split("test").ids)
    tasks = manifest["tasks"]
    assert tasks["event_localization"]["train_on"]["train.npz"] == ["audio", "visual", "labels", "segment_labels"]
    assert tasks["classification"]["train_on"]["val.npz"] == ["audio", "visual", "labels"]
    assert tasks["classification"]["predict_from"] == {"inputs.npz": ["audio", "visual", "ids"]}
    assert list(tasks["separation"]["predict_from"]) == ["separation_inputs.npz"]
    assert list(tasks["generation"]["submit"]) == ["generation.npz"]
    assert manifest["class_names"] == list(ds.spec.class_names)
    assert manifest["identity"]["verified"] is False  # avsynth is no surveyed dataset


def test_export_one_split(tmp_path, capsys):
    out = tmp_path / "exp"
    assert main(["export", "--split", "train", "--out", str(out), "--quick", *TINY]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "train.npz"]
    assert "expected prediction files" not in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:  # argparse refuses another split name
        main(["export", "--split", "everything", "--out", str(out), "--quick", *TINY])
    assert e.value.code == 2
