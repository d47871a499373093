"""Table 1 of the AVCL survey as data: the results our runs are compared against.

The survey's Table 1 ("Overview of representative works for audio-visual correlation
learning") is kept in two hand-curated CSV files under ``results/surveyed/``:

``table1.csv``
    One row per surveyed paper, every cell exactly as printed (columns
    :data:`WIDE_COLUMNS`).
``table1_long.csv``
    One row per reported number (paper x dataset x metric), with the task family of the
    suite it belongs to, the suite's metric name when one of ours measures the same thing
    (``metric_key``), a canonical ``dataset_id`` and the value on the suite's scale
    (``value_normalized``; percentages become fractions). Columns: :data:`LONG_COLUMNS`.

Reporting code filters the rows of one task / metric and labels them with
:func:`comparability`: a surveyed number is a ``"direct"`` comparison only when it was
measured on the dataset of the run and the run's records verify that their data is that dataset
and split (:mod:`benchmark.datasets.manifests`); otherwise it is a ``"reference"``, and
:func:`comparability_reason` says why.

The folder can be replaced with the environment variable ``AVCL_SURVEYED_DIR``. Every
problem with the files is raised as :class:`~benchmark.errors.InputError` naming the file
and the column.
"""
from __future__ import annotations

import math
import os
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import pandas as pd

from .errors import ConfigError, InputError
from .schema import TASK_FAMILIES

__all__ = [
    "DATASET_ALIASES",
    "ENV_VAR",
    "LONG_COLUMNS",
    "TASKS",
    "UNITS",
    "WIDE_COLUMNS",
    "comparability",
    "comparability_reason",
    "load_table1",
    "load_table1_long",
    "resolve_dataset_id",
    "surveyed_dir",
]

ENV_VAR = "AVCL_SURVEYED_DIR"
#: package holding the CSVs as package data (``results/surveyed/`` in the repository)
SURVEYED_PACKAGE = "avcl_bench.surveyed_data"
WIDE_FILE = "table1.csv"
LONG_FILE = "table1_long.csv"

#: Columns of ``table1.csv``, in file order (the survey's Table 1 columns).
WIDE_COLUMNS: tuple[str, ...] = (
    "paper", "objective", "learning", "application", "metric", "performance", "datasets",
)

#: Columns of ``table1_long.csv``, in file order.
LONG_COLUMNS: tuple[str, ...] = (
    "paper", "objective", "learning", "application", "task", "metric", "metric_key",
    "dataset", "dataset_id", "value", "value_text", "truncated", "unit", "value_normalized",
    "notes", "variant", "higher_is_better", "table_row",
)

#: Task families a surveyed number can belong to (the suite's families plus ``other``).
TASKS: tuple[str, ...] = (*TASK_FAMILIES, "other")

#: Units of the printed values. ``percent`` values are divided by 100 in
#: ``value_normalized``; every other unit is kept as printed.
UNITS: tuple[str, ...] = ("percent", "fraction", "dB", "count", "other")

#: Dataset registry names of the suite -> ``dataset_id`` used in ``table1_long.csv``.
DATASET_ALIASES: dict[str, str] = {
    "ave": "ave",
    "vegas": "vegas",
    "music": "music",
    "flickr": "flickr-soundnet",
    "vggss": "vgg-ss",
    "esc50": "esc-50",
}

# Columns that may be empty in the long table (no suite metric, no note, no A/V variant,
# direction of an undefined metric unknown).
_LONG_OPTIONAL = frozenset({"metric_key", "notes", "variant", "higher_is_better"})
_BOOL_TEXT = {"true": True, "false": False}


def surveyed_dir() -> Path:
    """Folder holding the Table 1 CSVs: ``$AVCL_SURVEYED_DIR``, else the package data
    ``avcl_bench.surveyed_data`` (``results/surveyed/`` of the repository, shipped in the wheel)."""
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env)
    return Path(str(resources.files(SURVEYED_PACKAGE)))


def _resolve_path(path: str | os.PathLike[str] | None, filename: str) -> Path:
    """``path`` may name the CSV itself or a folder holding ``filename``; ``None`` means the default."""
    if path is None:
        return surveyed_dir() / filename
    p = Path(path)
    return p / filename if p.is_dir() else p


def _read_csv(path: Path, columns: tuple[str, ...]) -> pd.DataFrame:
    """Read a CSV as text cells (no NA guessing) and check the required columns are present."""
    if not path.exists():
        raise InputError(path, None, "file not found")
    if not path.is_file():
        raise InputError(path, None, "not a file")
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False)
    except pd.errors.EmptyDataError:
        raise InputError(path, None, "empty file (no header)") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as e:
        raise InputError(path, None, f"not a readable CSV file ({e.__class__.__name__}: {e})") from None
    have = [str(c) for c in df.columns]
    for col in columns:
        if col not in have:
            raise InputError(path, col, f"missing column (columns present: {', '.join(have) or 'none'})")
    dupes = sorted({c for c in have if have.count(c) > 1})
    if dupes:
        raise InputError(path, dupes[0], "column appears more than once")
    if df.empty:
        raise InputError(path, None, "no data rows")
    return df[list(columns)].copy()


def _require_cells(df: pd.DataFrame, path: Path, columns: tuple[str, ...] | list[str]) -> None:
    """Every cell of ``columns`` must hold non-blank text."""
    for col in columns:
        blank = df[col].str.strip() == ""
        if blank.any():
            row = int(blank.to_numpy().argmax()) + 1
            raise InputError(path, col, f"row {row}: empty cell")


def _parse_float(df: pd.DataFrame, path: Path, col: str) -> pd.Series:
    out = []
    for i, text in enumerate(df[col], start=1):
        try:
            x = float(text)
        except ValueError:
            raise InputError(path, col, f"row {i}: not a number: {text!r}") from None
        if not math.isfinite(x):
            raise InputError(path, col, f"row {i}: not a finite number: {text!r}")
        out.append(x)
    return pd.Series(out, index=df.index, dtype="float64", name=col)


def _parse_bool(df: pd.DataFrame, path: Path, col: str, *, allow_empty: bool) -> pd.Series:
    out: list[object] = []
    for i, text in enumerate(df[col], start=1):
        t = text.strip().lower()
        if t in _BOOL_TEXT:
            out.append(_BOOL_TEXT[t])
        elif allow_empty and t == "":
            out.append(pd.NA)
        else:
            want = "'true', 'false' or empty" if allow_empty else "'true' or 'false'"
            raise InputError(path, col, f"row {i}: expected {want}, got {text!r}")
    return pd.Series(out, index=df.index, dtype="boolean" if allow_empty else "bool", name=col)


def _check_choice(df: pd.DataFrame, path: Path, col: str, allowed: tuple[str, ...]) -> None:
    bad = ~df[col].isin(allowed)
    if bad.any():
        row = int(bad.to_numpy().argmax()) + 1
        raise InputError(path, col, f"row {row}: {df[col].iloc[row - 1]!r} is not one of {', '.join(allowed)}")


def load_table1(path: str | os.PathLike[str] | None = None) -> pd.DataFrame:
    """Table 1 as printed: one row per paper, all cells as text (columns :data:`WIDE_COLUMNS`).

    ``path`` is the CSV or a folder containing ``table1.csv``; by default the repo's
    ``results/surveyed/`` (or ``$AVCL_SURVEYED_DIR``).
    """
    p = _resolve_path(path, WIDE_FILE)
    df = _read_csv(p, WIDE_COLUMNS)
    _require_cells(df, p, WIDE_COLUMNS)
    dup = df["paper"].duplicated()
    if dup.any():
        row = int(dup.to_numpy().argmax()) + 1
        raise InputError(p, "paper", f"row {row}: paper {df['paper'].iloc[row - 1]!r} appears twice")
    return df.reset_index(drop=True)


def load_table1_long(path: str | os.PathLike[str] | None = None) -> pd.DataFrame:
    """Table 1 with one row per reported number, typed (columns :data:`LONG_COLUMNS`).

    ``value`` and ``value_normalized`` are floats, ``truncated`` bool, ``higher_is_better``
    nullable boolean (unknown for metrics the survey does not define), ``table_row`` int
    (1-based row of the wide table). ``metric_key``, ``notes`` and ``variant`` are text and
    empty when not applicable. The normalisation (``percent`` / 100, other units unchanged)
    is checked so that a hand edit cannot leave the two value columns disagreeing.
    """
    p = _resolve_path(path, LONG_FILE)
    df = _read_csv(p, LONG_COLUMNS)
    _require_cells(df, p, [c for c in LONG_COLUMNS if c not in _LONG_OPTIONAL])
    _check_choice(df, p, "task", TASKS)
    _check_choice(df, p, "unit", UNITS)

    value = _parse_float(df, p, "value")
    normalized = _parse_float(df, p, "value_normalized")
    expected = value.where(df["unit"] != "percent", value / 100.0)
    off = (normalized - expected).abs() > 1e-9 * expected.abs().clip(lower=1.0)
    if off.any():
        i = int(off.to_numpy().argmax())
        raise InputError(
            p, "value_normalized",
            f"row {i + 1}: {normalized.iloc[i]!r} does not match value {value.iloc[i]!r} in unit "
            f"{df['unit'].iloc[i]!r} (expected {expected.iloc[i]!r})",
        )

    rows = []
    for i, text in enumerate(df["table_row"], start=1):
        if not text.isdigit() or int(text) < 1:
            raise InputError(p, "table_row", f"row {i}: expected a positive integer, got {text!r}")
        rows.append(int(text))

    df["value"] = value
    df["value_normalized"] = normalized
    df["truncated"] = _parse_bool(df, p, "truncated", allow_empty=False)
    df["higher_is_better"] = _parse_bool(df, p, "higher_is_better", allow_empty=True)
    df["table_row"] = pd.Series(rows, index=df.index, dtype="int64")
    return df.reset_index(drop=True)


def resolve_dataset_id(name: str) -> str:
    """Map a dataset registry name (``"vggss"``) or a Table 1 ``dataset_id`` to the ``dataset_id``."""
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"dataset must be a non-empty name, got {name!r}")
    key = name.strip().lower()
    return DATASET_ALIASES.get(key, key)


def _identity_verified(identity: Mapping[str, Any] | None, target: str) -> bool:
    """Whether ``identity`` (a record's ``config.dataset.identity``) verifies the data as ``target``."""
    if not isinstance(identity, Mapping):
        return False
    return identity.get("verified") is True and identity.get("dataset_id") == target


def _check_rows(rows: pd.DataFrame) -> None:
    if not isinstance(rows, pd.DataFrame):
        raise ConfigError(f"rows must be a pandas DataFrame, got {type(rows).__name__}")
    if "dataset_id" not in rows.columns:
        raise InputError("surveyed rows", "dataset_id", "missing column")


def comparability(rows: pd.DataFrame, dataset_id: str, identity: Mapping[str, Any] | None = None) -> pd.Series:
    """Label each surveyed row ``"direct"`` or ``"reference"``.

    A row is ``direct`` only when it was measured on the run's dataset (its ``dataset_id`` is
    ``dataset_id``'s, a registry name or a Table 1 id) **and** ``identity`` (the verdict of
    :func:`benchmark.datasets.manifests.dataset_identity` that the run's records carry) verifies
    the data as that dataset and split. The name alone never makes a row direct: without a
    verdict, or with an unverified one, every row is a ``reference``. The result is aligned with
    ``rows.index`` and named ``"comparability"``; :func:`comparability_reason` says why.
    """
    _check_rows(rows)
    target = resolve_dataset_id(dataset_id)
    ok = _identity_verified(identity, target)
    direct = (rows["dataset_id"] == target) & ok
    return pd.Series(["direct" if d else "reference" for d in direct], index=rows.index, dtype=object,
                     name="comparability")


def comparability_reason(rows: pd.DataFrame, dataset_id: str, identity: Mapping[str, Any] | None = None) -> pd.Series:
    """Why each row is not ``direct`` (``""`` for a direct row), aligned with ``rows.index``.

    ``"different dataset"`` for a row of another dataset; for a row of the run's dataset name
    whose data is not verified, ``"not verified as <title>: <the verdict's reason>"``.
    """
    _check_rows(rows)
    target = resolve_dataset_id(dataset_id)
    if _identity_verified(identity, target):
        same = ""
    elif isinstance(identity, Mapping) and identity.get("dataset_id") == target:
        same = f"not verified as {identity.get('title') or target}: {identity.get('reason') or 'no reason recorded'}"
    else:
        same = (f"not verified as {target}: the records carry no dataset verification (written before the suite "
                "checked dataset identity, or for another dataset); re-run them")
    return pd.Series([same if d == target else "different dataset" for d in rows["dataset_id"]], index=rows.index,
                     dtype=object, name="comparability_reason")
