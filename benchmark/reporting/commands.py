"""Argparse wiring of the ``leaderboard`` and ``report`` sub-commands.

The CLI owner calls :func:`add_leaderboard_parser` / :func:`add_report_parser` with its
sub-parsers object; each sub-command sets ``func=callable(args) -> int``. Problems with
the user's input are raised as :mod:`benchmark.errors` exceptions, which the CLI prints
as one line on stderr.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import InputError
from ..schema import ResultRecord
from ..surveyed import LONG_FILE, load_table1_long, surveyed_dir
from .leaderboard import format_leaderboard, leaderboard, leaderboard_json
from .records import load_records
from .report import FORMATS, write_report

__all__ = ["add_leaderboard_parser", "add_report_parser", "run_leaderboard", "run_report"]



def _load_nonempty(results: str) -> list[ResultRecord]:
    records = load_records(results)
    if not records:
        raise InputError(results, None, "no result records found (JSON files with model/task/metrics)")
    return records


def run_leaderboard(args: argparse.Namespace) -> int:
    """``leaderboard``: print the ranked table (or JSON with ``--json``) on stdout."""
    board = leaderboard(_load_nonempty(args.results), task=args.task, latest=args.latest)
    sys.stdout.write(leaderboard_json(board) if args.json else format_leaderboard(board))
    return 0


def run_report(args: argparse.Namespace) -> int:
    """``report``: write the report file and print its path on stdout."""
    records = _load_nonempty(args.results)
    # resolved per call, so $AVCL_SURVEYED_DIR set after import is honoured
    folder = Path(args.surveyed_dir) if args.surveyed_dir is not None else surveyed_dir()
    if not (folder / LONG_FILE).is_file():
        raise InputError(folder / LONG_FILE, None, "surveyed Table 1 not found (pass --surveyed-dir DIR holding it)")
    surveyed = load_table1_long(folder)
    out = write_report(records, surveyed, args.format, args.out, latest=args.latest)
    sys.stdout.write(f"{out}\n")
    return 0


def _add_latest(p: argparse.ArgumentParser) -> None:
    p.add_argument("--latest", action="store_true",
                   help="keep only the newest config of each model (default: one row per config, model@id)")


def add_leaderboard_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``leaderboard --results DIR [--task T] [--json]``."""
    p = subparsers.add_parser(
        "leaderboard",
        help="rank stored results per task, dataset and metric",
        description="Rank models per (task, dataset, metric) with mean and 95% CI; a rank range such as "
        "2-4 means overlapping intervals.",
    )
    p.add_argument("--results", required=True, metavar="DIR", help="folder searched recursively for result records")
    p.add_argument("--task", default=None, metavar="T", help="only this task family (e.g. retrieval)")
    p.add_argument("--json", action="store_true", help="print JSON rows instead of text tables")
    _add_latest(p)
    p.set_defaults(func=run_leaderboard)
    return p


def add_report_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``report --results DIR --format md|latex|csv|html --out FILE [--surveyed-dir DIR]``."""
    p = subparsers.add_parser(
        "report",
        help="write a report (md, latex, csv or html) beside the surveyed Table 1",
        description="Write stored results grouped by task family, side by side with the surveyed Table 1 rows.",
    )
    p.add_argument("--results", required=True, metavar="DIR", help="folder searched recursively for result records")
    p.add_argument("--format", required=True, choices=FORMATS, help="report format")
    p.add_argument("--out", required=True, metavar="FILE", help="file to write")
    p.add_argument("--surveyed-dir", default=None, metavar="DIR",
                   help=f"folder with {LONG_FILE} (default: $AVCL_SURVEYED_DIR, else the suite's own Table 1)")
    _add_latest(p)
    p.set_defaults(func=run_report)
    return p
