"""All-or-nothing submissions: records are written to a staging folder, then moved in together.

``submit`` (a Python model or a folder of predictions) computes every record into a staging
folder next to the results folder (``.<out>.staging-<random>``, a sibling, so that readers of
``out``, which read every ``*.json`` below it, never see a half-finished submission) and only
when every file was validated and every task of every seed ran, :func:`commit` moves them into
``out``. A failed submission therefore leaves no record and does not lock its name; the trained
weights and embeddings stay in the cell cache, so the fixed resubmission is quick.

:func:`commit` first writes a journal (``out/.avcl-commit-<id>.journal``, no ``.json`` suffix so
no reader takes it for a record) listing the records it removes (an earlier submission that
``--replace`` replaces) and the moves; then it removes, moves (``os.replace``, atomic per file on
one file system) and deletes the journal. A process killed between the journal and its deletion
leaves a journal that :func:`recover` (called before every submission into that folder) rolls
forward, so the folder never keeps a mix of the old and the new submission.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

from .errors import InputError
from .store import atomic_write_text

__all__ = ["JOURNAL_GLOB", "Staging", "commit", "recover"]

JOURNAL_GLOB = ".avcl-commit-*.journal"
#: the records and the per-cell logs the runner writes below its results folder
_MOVED_SUFFIXES = (".json",)


class Staging:
    """A private staging folder next to ``out``, removed on exit unless committed."""

    def __init__(self, out: Path):
        self.out = Path(out)
        resolved = self.out.resolve()  # "--out ." has no name of its own
        parent = resolved.parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
            self.root = Path(tempfile.mkdtemp(prefix=f".{resolved.name}.staging-", dir=parent))
        except OSError as e:
            raise InputError(parent, None, f"cannot create the staging folder of a submission ({e.strerror or e}); "
                             "the parent folder of --out must be writable") from None

    def __enter__(self) -> Staging:
        return self

    def __exit__(self, *exc: object) -> None:
        self.discard()

    def keep_logs(self) -> None:
        """Move the per-cell logs of a failed submission into ``out`` (they help find the failure)."""
        for p in sorted(self.root.rglob("*")):
            if p.is_file() and p.suffix not in _MOVED_SUFFIXES:
                dst = self.out / p.relative_to(self.root)
                dst.parent.mkdir(parents=True, exist_ok=True)
                os.replace(p, dst)

    def discard(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def _journal_path(out: Path, staging: Path) -> Path:
    return out / f".avcl-commit-{staging.name.rpartition('-')[2]}.journal"


def _apply(plan: dict[str, list]) -> None:
    """Remove and move as ``plan`` says; idempotent, so a rolled-forward journal can run it again."""
    for old in plan["remove"]:
        Path(old).unlink(missing_ok=True)
    for src, dst in plan["move"]:
        s, d = Path(src), Path(dst)
        if s.exists():
            d.parent.mkdir(parents=True, exist_ok=True)
            os.replace(s, d)


def commit(staging: Staging, remove: Iterable[Path] = ()) -> list[Path]:
    """Move every file of ``staging`` into its results folder (same relative path), after removing
    ``remove`` (the records of the earlier submission being replaced); returns the new paths."""
    out = staging.out
    out.mkdir(parents=True, exist_ok=True)
    moves = [(str(p), str(out / p.relative_to(staging.root))) for p in sorted(staging.root.rglob("*")) if p.is_file()]
    new = {dst for _, dst in moves}
    plan = {"remove": [str(p) for p in remove if str(p) not in new], "move": moves}
    journal = _journal_path(out, staging.root)
    try:
        atomic_write_text(journal, json.dumps(plan))
        _apply(plan)
        journal.unlink()
    except OSError as e:
        raise InputError(out, None, f"cannot move the submission's records in ({e.strerror or e}); the next "
                         f"submit into this folder completes the move (journal {journal.name})") from None
    staging.discard()
    return [Path(d) for _, d in moves]


def recover(out: Path) -> int:
    """Roll forward the commits a killed ``submit`` left half-done in ``out``; returns how many."""
    out = Path(out)
    if not out.is_dir():
        return 0
    done = 0
    for journal in sorted(out.glob(JOURNAL_GLOB)):
        try:
            plan = json.loads(journal.read_text(encoding="utf-8"))
            _apply(plan)
            for src, _ in plan["move"]:  # the emptied staging folder
                root = Path(src).parent
                while root.name and ".staging-" not in root.name:
                    root = root.parent
                if root.name:
                    shutil.rmtree(root, ignore_errors=True)
                break
            journal.unlink()
            done += 1
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise InputError(journal, None, f"unreadable commit journal of an interrupted submission ({e})") from None
    return done
