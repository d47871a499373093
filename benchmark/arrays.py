"""Safe loading and validation of user-supplied arrays.

Everything a user hands us (npz predictions, references, feature files) passes through
these checks so that bad input becomes one :class:`~benchmark.errors.InputError` line
naming the file and the field, never a traceback from deep inside a metric.
"""
from __future__ import annotations

import os
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

from .errors import InputError

#: largest array a user file may declare (bytes), unless ``$AVCL_MAX_ARRAY_BYTES`` says otherwise
DEFAULT_MAX_ARRAY_BYTES = 4 * 1024**3
MAX_ARRAY_BYTES_ENV = "AVCL_MAX_ARRAY_BYTES"
_ZIP_MAGIC = b"PK\x03\x04"
_NPY_MAGIC = b"\x93NUMPY"
_EMPTY_ZIP_MAGIC = b"PK\x05\x06"  # numpy.savez() without arrays: a zip with no member


def max_array_bytes() -> int:
    """The per-array size limit for user files (``$AVCL_MAX_ARRAY_BYTES``, default 4 GiB)."""
    raw = os.environ.get(MAX_ARRAY_BYTES_ENV)
    if raw is None:
        return DEFAULT_MAX_ARRAY_BYTES
    try:
        value = int(float(raw))
    except ValueError:
        raise InputError(f"${MAX_ARRAY_BYTES_ENV}", None, f"expected a number of bytes, got '{raw}'") from None
    if value <= 0:
        raise InputError(f"${MAX_ARRAY_BYTES_ENV}", None, f"must be positive, got {value}")
    return value


def check_size(source: object, field: str, shape: tuple[int, ...], itemsize: int) -> None:
    """Refuse an array that would need more than :func:`max_array_bytes` before it is allocated."""
    n = itemsize
    for d in shape:
        n *= int(d)
    limit = max_array_bytes()
    if n > limit:
        raise InputError(source, field, f"declares shape {tuple(shape)} ({n / 1024**3:.3g} GiB), over the "
                         f"{limit / 1024**3:.3g} GiB limit per array (raise it with ${MAX_ARRAY_BYTES_ENV}=BYTES)")


def _member_header(z: zipfile.ZipFile, member: str) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype an npz member declares, read from its .npy header without loading data."""
    with z.open(member) as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(f)
        else:
            shape, _, dtype = np.lib.format.read_array_header_2_0(f)
    return tuple(int(d) for d in shape), dtype


def load_npz(path: str | Path) -> dict[str, np.ndarray]:
    """Load every array of an ``.npz`` file without pickle.

    The file must be a zip archive of ``.npy`` members (a bare ``.npy`` or a text file is
    refused by its magic bytes); each member's declared size is checked against
    :func:`max_array_bytes` before anything is allocated (a header claiming 10^7 x 10^7, or a
    zip bomb, is one line); object arrays (which need pickle) are refused.
    """
    p = Path(path)
    if not p.exists():
        raise InputError(p, None, "file not found")
    if not p.is_file():
        raise InputError(p, None, "not a file")
    try:
        with p.open("rb") as f:
            magic = f.read(6)
    except OSError as e:
        raise InputError(p, None, f"cannot be read ({e.strerror or e})") from None
    if magic.startswith(_NPY_MAGIC):
        raise InputError(p, None, "a single .npy array, not an npz archive (save with numpy.savez)")
    if not magic.startswith((_ZIP_MAGIC, _EMPTY_ZIP_MAGIC)):
        raise InputError(p, None, "not an npz archive (no zip signature; save with numpy.savez)")
    try:
        with zipfile.ZipFile(p) as z:
            members = [m for m in z.namelist() if m.endswith(".npy")]
            if len(members) != len(z.namelist()):
                other = next(m for m in z.namelist() if not m.endswith(".npy"))
                raise InputError(p, other, "not an .npy member (an npz archive holds only .npy arrays)")
            out = {}
            for member in members:
                key = member[: -len(".npy")]
                try:
                    shape, dtype = _member_header(z, member)
                except ValueError as e:
                    raise InputError(p, key, f"not a readable .npy header ({e})") from None
                if dtype.hasobject:
                    raise InputError(p, key, "object arrays need pickle and are not accepted")
                check_size(p, key, shape, dtype.itemsize)
                with z.open(member) as f:
                    out[key] = np.lib.format.read_array(f, allow_pickle=False)
            return out
    except InputError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as e:
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
    allow_bool: bool = False,
) -> np.ndarray:
    """Validate one array and return it as ``np.ndarray``.

    ``kind``: ``"float"`` (any real number dtype, returned as float64), ``"int"`` (integer
    dtype, or floats that are all integral; returned as int64), ``"bool"``, or ``None``.
    ``allow_bool`` lets a ``"float"`` field take a boolean array (binary masks).
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
        if not (_is_real_number(a.dtype) or (allow_bool and a.dtype == bool)):
            raise InputError(source, field, f"expected a real number array (float, or int of 16+ bits), got dtype "
                             f"{a.dtype}")
        a = a.astype(np.float64, copy=False)
    elif kind == "int":
        if np.issubdtype(a.dtype, np.integer) and _fits_int64(a):
            a = a.astype(np.int64, copy=False)
        elif np.issubdtype(a.dtype, np.floating) and _fits_int64(a):
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


def check_bool_mask(arr: object, source: object, field: str, *, ndim: int) -> np.ndarray:
    """A boolean array of ``ndim`` dimensions; integer 0/1 values are accepted and converted,
    anything else is an :class:`InputError` naming ``source`` and ``field``."""
    mask = np.asarray(arr)
    if mask.dtype != bool:
        mask = check_array(mask, source, field, ndim=ndim, kind="int")
        if np.any((mask != 0) & (mask != 1)):
            raise InputError(source, field, "expected booleans or 0/1 values")
        mask = mask.astype(bool)
    return check_array(mask, source, field, ndim=ndim, kind="bool")


def _fits_int64(a: np.ndarray) -> bool:
    """Whether an integer or float array converts to int64 exactly: no timedelta (a duration is
    not a count), no unsigned value above 2^63 - 1, floats finite, integral and within +-2^62."""
    if np.issubdtype(a.dtype, np.timedelta64):
        return False
    if np.issubdtype(a.dtype, np.unsignedinteger):
        return a.itemsize < 8 or not a.size or int(a.max()) <= np.iinfo(np.int64).max
    if np.issubdtype(a.dtype, np.integer):
        return True
    with np.errstate(invalid="ignore"):
        return bool(np.all(np.isfinite(a)) and np.all(np.abs(a) < 2.0**62) and np.all(a == np.round(a)))


def _is_real_number(dtype: np.dtype) -> bool:
    """Floats, and integers of at least 16 bits or unsigned 8-bit (image pixels); never bool,
    complex (its imaginary part would be dropped), int8, timedelta or datetime."""
    if np.issubdtype(dtype, np.floating):
        return True
    if np.issubdtype(dtype, np.integer) and not np.issubdtype(dtype, np.timedelta64):
        return dtype == np.uint8 or dtype.itemsize >= 2
    return False


def check_same_len(source: object, **arrays: np.ndarray) -> int:
    """All arrays must have the same first dimension; returns it."""
    lens = {k: int(np.asarray(v).shape[0]) for k, v in arrays.items()}
    if len(set(lens.values())) > 1:
        desc = ", ".join(f"{k}={n}" for k, n in lens.items())
        raise InputError(source, "/".join(lens), f"count mismatch ({desc})")
    return next(iter(lens.values()))


# ---------------------------------------------------------------------------------- metric memory
#: working memory a metric may allocate for one input (bytes), unless ``$AVCL_MAX_METRIC_BYTES`` says otherwise
DEFAULT_MAX_METRIC_BYTES = 4 * 1024**3
MAX_METRIC_BYTES_ENV = "AVCL_MAX_METRIC_BYTES"


def max_metric_bytes() -> int:
    """The limit on a metric's working memory (``$AVCL_MAX_METRIC_BYTES``, default 4 GiB)."""
    raw = os.environ.get(MAX_METRIC_BYTES_ENV)
    if raw is None:
        return DEFAULT_MAX_METRIC_BYTES
    try:
        value = int(float(raw))
    except (ValueError, OverflowError):
        raise InputError(f"${MAX_METRIC_BYTES_ENV}", None, f"expected a number of bytes, got '{raw}'") from None
    if value <= 0:
        raise InputError(f"${MAX_METRIC_BYTES_ENV}", None, f"must be positive, got {value}")
    return value


def check_work_bytes(source: object, field: str, nbytes: float, what: str) -> None:
    """Refuse an input whose metric would need more than :func:`max_metric_bytes` of working memory.

    Metrics call this with an estimate computed from the input shapes *before* allocating
    (``what`` says what needs the memory: ``"the (D, D) covariances of the Fréchet distance"``).
    """
    limit = max_metric_bytes()
    if nbytes > limit:
        raise InputError(source, field, f"{what} would need {float(nbytes) / 1024**3:.3g} GiB of working memory, "
                         f"over the {limit / 1024**3:.3g} GiB limit (raise it with ${MAX_METRIC_BYTES_ENV}=BYTES)")


# ---------------------------------------------------------------------------------- labels and results
#: integer labels must lie below this (they index arrays; int64 arithmetic must not overflow)
MAX_LABEL = 2**62


def check_labels(
    arr: object, source: object, field: str, *, ndim: int | tuple[int, ...] | None = None, min_len: int = 1,
) -> np.ndarray:
    """Non-negative integer labels as int64: :func:`check_array` ``kind="int"`` plus the dtype rules
    of labels (no bool, timedelta, datetime or complex; float labels must be integral and in range,
    unsigned ones must fit int64) and ``label < MAX_LABEL``. Callers check the lower bound (``>= 0``)
    with their own message."""
    a = np.asarray(arr)
    if a.dtype.kind in "bmMcSUV":
        raise InputError(source, field, f"expected an integer array of labels, got dtype {a.dtype}")
    if a.dtype.kind == "f" and a.size:
        with np.errstate(invalid="ignore"):
            ok = np.isfinite(a) & (np.abs(a) < MAX_LABEL) & (a == np.round(a))
        if not ok.all():
            idx = tuple(int(i) for i in np.argwhere(~ok)[0])
            raise InputError(source, field, f"expected an integer array of labels, got {float(a[idx])!r} at index {idx} "
                             f"(dtype {a.dtype})")
    if a.dtype.kind == "u" and a.size and int(a.max()) >= MAX_LABEL:
        idx = tuple(int(i) for i in np.argwhere(a >= MAX_LABEL)[0])
        raise InputError(source, field, f"label {int(a[idx])} at index {idx} is too large (limit {MAX_LABEL})")
    out = check_array(a, source, field, ndim=ndim, kind="int", min_len=min_len)
    big = out >= MAX_LABEL
    if big.any():
        idx = tuple(int(i) for i in np.argwhere(big)[0])
        raise InputError(source, field, f"label {int(out[idx])} at index {idx} is too large (limit 2^62)")
    return out


def check_finite_metrics(metrics: Mapping[str, float], task: str) -> dict[str, float]:
    """Metrics as plain floats; a NaN or infinite value is a bug of the metric (finite input was
    validated), raised as ``FloatingPointError`` so that no such value is ever printed or stored."""
    out = {k: float(v) for k, v in metrics.items()}
    bad = [k for k, v in out.items() if not np.isfinite(v)]
    if bad:
        raise FloatingPointError(f"{task}: metric {bad[0]} is {out[bad[0]]} on validated finite input")
    return out
