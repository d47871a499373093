from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("AVCL_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture
def shared_data() -> Path:
    """Path of ../shared/data (real data); skips the test when it is absent."""
    if not (SHARED_DATA / "README.md").exists():
        pytest.skip(f"real data folder {SHARED_DATA} is absent (set AVCL_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture
def fresh_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty ``$AVCL_CACHE`` for the test and no ``AVCL_DEBUG`` from the caller's shell."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("AVCL_CACHE", str(cache))
    monkeypatch.delenv("AVCL_DEBUG", raising=False)
    return cache

