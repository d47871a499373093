"""Where the suite reads and writes, in one place, independent of where it is installed.

* results: ``./results/runs`` under the current directory (``--out`` replaces it);
* cache (datasets, feature nets, checkpoints, embeddings): ``$AVCL_CACHE``, else the
  platform's user cache folder (``~/.cache/avcl-bench`` on Linux);
* the suite's own checkout, only when the code runs from a git clone of avcl-bench (never
  the user's repository when the suite is installed from a wheel into site-packages).
"""
from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

import platformdirs

#: root of the installed packages: the repository root in a checkout, ``site-packages/avcl_bench``
#: in a wheel install (``benchmark/`` lives directly below it in both cases)
PACKAGE_PARENT = Path(__file__).resolve().parents[1]


def default_out() -> Path:
    """The default results folder: ``results/runs`` below the current working directory."""
    return Path.cwd() / "results" / "runs"


def cache_dir() -> Path:
    """``$AVCL_CACHE``, else the platform's user cache folder for avcl-bench."""
    env = os.environ.get("AVCL_CACHE")
    return Path(env) if env else Path(platformdirs.user_cache_dir("avcl-bench", appauthor=False))


@lru_cache(maxsize=1)
def suite_checkout() -> Path | None:
    """The avcl-bench git checkout the code runs from, or ``None`` (a wheel install).

    The code runs from a checkout when the folder above ``benchmark/`` holds our
    ``pyproject.toml`` (distribution ``avcl-bench``) and a ``.git``.
    """
    root = PACKAGE_PARENT
    pyproject = root / "pyproject.toml"
    if not (root / ".git").exists() or not pyproject.is_file():
        return None
    try:
        text = pyproject.read_text(encoding="utf-8")
    except OSError:
        return None
    return root if 'name = "avcl-bench"' in text else None
