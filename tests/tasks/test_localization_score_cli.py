"""``score localization`` on the command line: --task-option as in run, optional neg_heatmaps."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from avcl_bench.benchmark import cli
from avcl_bench.tasks.localization.task import LocalizationTask


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = cli.main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path, dict[str, np.ndarray], np.ndarray]:
    masks = np.zeros((3, 6, 6))
    masks[:, :4] = 1.0  # 24 of 36 pixels
    masks[2] = 0.0  # an empty mask: refused unless empty_mask=zero
    heat = np.repeat(masks[:1], 3, axis=0)  # binary maps: the mask's 24 pixels tie at the maximum
    arrays = {"heatmaps": heat, "neg_heatmaps": np.random.default_rng(0).normal(size=(4, 3, 3))}
    np.savez(tmp_path / "pred.npz", **arrays)
    np.savez(tmp_path / "ref.npz", masks=masks)
    return tmp_path / "pred.npz", tmp_path / "ref.npz", arrays, masks


def test_score_takes_task_options(capsys, files) -> None:
    pred, ref, arrays, masks = files
    rc, out, err = _run(capsys, "score", "localization", "--pred", str(pred), "--ref", str(ref), "--json")
    assert rc == 2 and out == "" and "sample 2 has an empty mask" in err and err.count("\n") == 1
    argv = ["score", "localization", "--pred", str(pred), "--ref", str(ref), "--task-option", "empty_mask=zero"]
    rc, out, err = _run(capsys, *argv, "--json")
    assert rc == 0, err
    strict = json.loads(out)["metrics"]
    rc, out, err = _run(capsys, *argv, "--task-option", "ties=official", "--json")
    assert rc == 0, err
    official = json.loads(out)["metrics"]
    task = LocalizationTask()
    assert strict == pytest.approx(task.score(arrays, {"masks": masks}, empty_mask="zero"))
    assert official == pytest.approx(task.score(arrays, {"masks": masks}, empty_mask="zero", ties="official"))
    assert set(official) == {"cIoU", "AUC", "mean_cIoU", "AP", "max_F1", "precision"}
    assert strict["mean_cIoU"] == 0.0 and official["mean_cIoU"] == pytest.approx(2 / 3)  # tied maxima kept
    # the table form too
    rc, out, _ = _run(capsys, *argv, "--task-option", "ties=official")
    assert rc == 0 and "max_F1" in out and "precision" in out


@pytest.mark.parametrize(("option", "needle"), [
    ("ties=loose", "option ties must be one of strict, official"),
    ("probe=mlp", "--task-option probe is not an option of this task's scoring (it accepts: empty_mask, ties)"),
    ("ties", "--task-option: expected key=value"),
])
def test_score_bad_task_options_are_one_line_errors(capsys, files, option: str, needle: str) -> None:
    pred, ref, _, _ = files
    rc, out, err = _run(capsys, "score", "localization", "--pred", str(pred), "--ref", str(ref),
                        "--task-option", option)
    assert rc == 2 and out == "" and needle in err and err.count("\n") == 1


def test_other_tasks_accept_no_score_option(capsys, tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    np.savez(tmp_path / "p.npz", audio=rng.normal(size=(6, 3)), visual=rng.normal(size=(6, 3)))
    np.savez(tmp_path / "r.npz", audio_labels=np.arange(6) % 2, visual_labels=np.arange(6) % 2)
    rc, out, err = _run(capsys, "score", "retrieval", "--pred", str(tmp_path / "p.npz"), "--ref",
                        str(tmp_path / "r.npz"), "--task-option", "ties=official")
    assert rc == 2 and out == "" and "(it accepts: none)" in err
