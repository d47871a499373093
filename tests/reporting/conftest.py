from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from avcl_bench.benchmark.reporting.records import load_records
from avcl_bench.benchmark.surveyed import load_table1_long

from ._builders import SURVEYED_CSV, write_results


@pytest.fixture(scope="module")
def results_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A results folder with hand-written records (see ``_builders.py``) and a manifest."""
    return write_results(tmp_path_factory.mktemp("results"))


@pytest.fixture(scope="module")
def records(results_dir: Path) -> list[dict[str, Any]]:
    return load_records(results_dir)


@pytest.fixture(scope="module")
def surveyed() -> pd.DataFrame:
    return load_table1_long(SURVEYED_CSV)
