"""Safe loading and validation of user-supplied arrays.

Everything a user hands us (npz predictions, references, feature files) passes through
these checks so that bad input becomes one :class:`~benchmark.errors.InputError` line
naming the file and the field, never a traceback from deep inside a metric.
"""
from __future__ import annotations

import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

from .errors import InputError


def load_npz(path: str | Path) -> dict[str, np.ndarray]:
    """Load every array of an ``.npz`` file without pickle (object arrays are refused)."""
    p = Path(path)
    if not p.exists():
        raise InputError(p, None, "file not found")
    if not p.is_file():
        raise InputError(p, None, "not a file")
    try:
        with np.load(p, allow_pickle=False) as z:
            if not isinstance(z, np.lib.npyio.NpzFile):
                raise InputError(p, None, "not an npz archive (a single .npy array?)")
            out = {}
            for key in z.files:
                try:
                    out[key] = z[key]
                except ValueError as e:  # object arrays need pickle
                    raise InputError(p, key, f"cannot load without pickle (object array?): {e}") from None
            return out
    except InputError:
        raise
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
        raise InputError(p, None, f"not a readable npz file ({e.__class__.__name__}: {e})") from None


def require(arrays: Mapping[str, np.ndarray], source: object, keys: Iterable[str]) -> None:
    """Raise if any of ``keys`` is missing from ``arrays``."""
    for k in keys:
        if k not in arrays:
            have = ", ".join(sorted(arrays)) or "none"
            raise InputError(source, k, f"missing array (arrays present: {have})")


def check_array(
    arr: object,
    source: object,
    field: str,
    *,
    ndim: int | tuple[int, ...] | None = None,
    kind: str | None = None,
    finite: bool = True,
    min_len: int = 1,
) -> np.ndarray:
    """Validate one array and return it as ``np.ndarray``.

    ``kind``: ``"float"`` (any real number dtype, returned as float64), ``"int"`` (integer
    dtype, or floats that are all integral; returned as int64), ``"bool"``, or ``None``.
    """
    a = np.asarray(arr)
    if a.dtype == object:
        raise InputError(source, field, "object arrays are not accepted")
    if ndim is not None:
        dims = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if a.ndim not in dims:
            want = " or ".join(str(d) for d in dims)
            raise InputError(source, field, f"expected {want}-D array, got shape {a.shape}")
    if kind == "float":
        if not (np.issubdtype(a.dtype, np.number) or a.dtype == bool) or np.iscomplexobj(a):
            raise InputError(source, field, f"expected a real number array, got dtype {a.dtype}")
        a = a.astype(np.float64, copy=False)
    elif kind == "int":
        if np.issubdtype(a.dtype, np.integer):
            a = a.astype(np.int64, copy=False)
        elif np.issubdtype(a.dtype, np.floating) and np.all(np.isfinite(a)) and np.all(a == np.round(a)):
            a = a.astype(np.int64)
        else:
            raise InputError(source, field, f"expected an integer array, got dtype {a.dtype}")
    elif kind == "bool":
        a = a.astype(bool, copy=False)
    if finite and np.issubdtype(a.dtype, np.floating):
        bad = ~np.isfinite(a)
        if bad.any():
            idx = tuple(int(i) for i in np.argwhere(bad)[0])
            raise InputError(source, field, f"contains NaN or inf (first at index {idx})")
    if a.ndim >= 1 and a.shape[0] < min_len:
        raise InputError(source, field, f"needs at least {min_len} item(s), got {a.shape[0]}")
    return a


def check_same_len(source: object, **arrays: np.ndarray) -> int:
    """All arrays must have the same first dimension; returns it."""
    lens = {k: int(np.asarray(v).shape[0]) for k, v in arrays.items()}
    if len(set(lens.values())) > 1:
        desc = ", ".join(f"{k}={n}" for k, n in lens.items())
        raise InputError(source, "/".join(lens), f"count mismatch ({desc})")
    return next(iter(lens.values()))
