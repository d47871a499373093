"""benchmark/staging.py: a submission's records reach --out together, even across a kill mid-commit."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from avcl_bench.benchmark import staging as staging_mod
from avcl_bench.benchmark.errors import InputError
from avcl_bench.benchmark.staging import JOURNAL_GLOB, Staging, commit, recover


def _stage(out: Path, names: list[str]) -> Staging:
    st = Staging(out)
    for n in names:
        p = st.root / "avsynth" / "retrieval" / "me" / n
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(n)
    return st


def test_staging_is_outside_out_and_discarded(tmp_path):
    out = tmp_path / "board"
    with _stage(out, ["a.json"]) as st:
        assert st.root.parent == tmp_path and not st.root.is_relative_to(out)
    assert not st.root.exists() and not out.exists()


def test_commit_replaces_and_a_killed_commit_is_rolled_forward(tmp_path, monkeypatch):
    out = tmp_path / "board"
    old = out / "avsynth" / "retrieval" / "me" / "old.json"
    old.parent.mkdir(parents=True)
    old.write_text("old")
    st = _stage(out, ["a.json", "b.json"])
    real_replace, calls = os.replace, []

    def killed(src, dst):  # noqa: ANN001, ANN202 - after the journal's write and the first move, the process dies
        calls.append(src)
        if len(calls) == 3:
            raise KeyboardInterrupt
        real_replace(src, dst)

    monkeypatch.setattr(staging_mod.os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        commit(st, remove=[old])
    monkeypatch.setattr(staging_mod.os, "replace", real_replace)
    assert list(out.glob(JOURNAL_GLOB))  # half done: the journal says what is left
    assert (out / "avsynth" / "retrieval" / "me" / "a.json").exists() and not old.exists()
    assert recover(out) == 1
    mine = sorted(p.name for p in (out / "avsynth" / "retrieval" / "me").iterdir())
    assert mine == ["a.json", "b.json"]  # the old submission gone, the new one complete
    assert not list(out.glob(JOURNAL_GLOB)) and not st.root.exists()
    assert recover(out) == 0


def test_unreadable_journal_is_an_input_error(tmp_path):
    out = tmp_path / "board"
    out.mkdir()
    (out / ".avcl-commit-x.journal").write_text("{not json")
    with pytest.raises(InputError, match="journal"):
        recover(out)
