"""Content hashes of input files, streamed once and remembered per file state.

A dataset fingerprint lands in every result key, so it must change whenever any value a
loader reads changes. Hashing a multi-GB feature file on every run is too slow, so the
digest of each file is memoised in ``<cache>/filehash.json`` under its resolved path,
together with the file's state when it was hashed: size, ``mtime_ns``, ``ctime_ns`` and
inode. Any write to the file changes its ``ctime`` (which ``os.utime`` cannot set back), so a
memo entry is trusted only for the exact file it was computed from; anything else is rehashed.

Two kinds of digest:

* :func:`file_sha256`: SHA-256 of the raw bytes (WAV, JPEG, CSV, JSON, XML, IDX ...);
* :func:`h5_content`: SHA-256 over every HDF5 dataset (sorted path, dtype, shape, values read
  in row blocks), independent of chunking, compression and HDF5 bookkeeping bytes. The same
  pass finds the first row of each float dataset holding NaN or inf (kept in the memo), so
  :func:`refuse_nonfinite` can stop a run at load time naming the file, dataset and row.

Digests hash content only (never paths or times), so they are equal across machines.
The memo is written atomically (temp file + rename, merged with what other runs wrote
meanwhile); a lost update only costs a rehash, a read-only or corrupt memo is ignored.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ..paths import cache_dir
from ..store import atomic_write_bytes
from ._io import need_file, open_h5

MEMO_NAME = "filehash.json"
MEMO_VERSION = 1
#: bytes read per step when streaming a file (raw bytes or one block of HDF5 rows)
BLOCK_BYTES = 16 << 20

_memos: dict[Path, dict[str, Any]] = {}


@dataclass(frozen=True)
class H5Content:
    """Digest of an HDF5 file's datasets and, per float dataset, its non-finite rows."""

    sha256: str
    #: ``"/path"`` -> ``[first row holding NaN/inf, number of such rows]`` (row 0 for a scalar)
    nonfinite: dict[str, list[int]] = field(default_factory=dict)


# --------------------------------------------------------------------------- memo
def _memo_path() -> Path:
    return cache_dir() / MEMO_NAME


def _read_memo_file(path: Path) -> dict[str, Any]:
    try:
        with path.open(encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("version") != MEMO_VERSION or not isinstance(data.get("files"), dict):
        return {}
    return data["files"]


def _memo() -> dict[str, Any]:
    path = _memo_path()
    if path not in _memos:
        _memos[path] = _read_memo_file(path)
    return _memos[path]


def _write_memo(new: dict[str, Any]) -> None:
    """Merge ``new`` entries into the memo file (atomic replace); failures are ignored."""
    if not new:
        return
    path = _memo_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        files = _read_memo_file(path)  # keep what concurrent runs added meanwhile
        files.update(new)
        atomic_write_bytes(path, json.dumps({"version": MEMO_VERSION, "files": files}, sort_keys=True).encode())
    except OSError:
        return
    _memos[path] = files


def clear_memo() -> None:
    """Forget the in-process copy of the memo (the file stays; used by tests)."""
    _memos.clear()


def _state(path: Path) -> tuple[str, list[int]]:
    st = need_file(path).stat()
    return str(path.resolve()), [int(st.st_size), int(st.st_mtime_ns), int(st.st_ctime_ns), int(st.st_ino)]


def _lookup(kind: str, path: Path) -> tuple[str, list[int], dict[str, Any] | None]:
    resolved, state = _state(path)
    key = f"{kind}:{resolved}"
    entry = _memo().get(key)
    if isinstance(entry, dict) and entry.get("state") == state and isinstance(entry.get("sha256"), str):
        return key, state, entry
    return key, state, None


# --------------------------------------------------------------------------- raw bytes
def _hash_bytes(path: Path) -> str:
    h = hashlib.sha256()
    try:
        with path.open("rb") as f:
            while chunk := f.read(BLOCK_BYTES):
                h.update(chunk)
    except OSError as e:
        raise InputError(path, None, f"cannot read file ({e})") from None
    return h.hexdigest()


def file_sha256(path: Path) -> str:
    """SHA-256 of the bytes of ``path`` (memoised per file state)."""
    return files_sha256([path])[0]


def files_sha256(paths: Iterable[Path]) -> list[str]:
    """:func:`file_sha256` of each path, writing the memo once for all of them."""
    out, new = [], {}
    for p in paths:
        p = Path(p)
        key, state, entry = _lookup("bytes", p)
        if entry is None:
            entry = {"state": state, "sha256": _hash_bytes(p)}
            _memo()[key] = new[key] = entry
        out.append(str(entry["sha256"]))
    _write_memo(new)
    return out


def files_digest(paths: Iterable[Path]) -> str:
    """One SHA-256 over the names (not folders) and content digests of ``paths``, in order.

    Names are included so that swapping two files' contents changes the digest; folders are
    not, so the same data in another place gives the same digest.
    """
    paths = [Path(p) for p in paths]
    h = hashlib.sha256()
    for p, d in zip(paths, files_sha256(paths)):
        h.update(f"{p.name}\0{d}\n".encode())
    return h.hexdigest()


# --------------------------------------------------------------------------- HDF5
def _update_values(h: Any, block: np.ndarray) -> None:
    if block.dtype.kind == "O":  # variable-length strings / references: hash the values, not pointers
        for v in block.reshape(-1).tolist():
            b = v if isinstance(v, bytes) else str(v).encode("utf-8", "surrogatepass")
            h.update(len(b).to_bytes(8, "little") + b)
    else:
        h.update(np.ascontiguousarray(block).tobytes())


def _hash_h5(path: Path) -> H5Content:
    import h5py

    h = hashlib.sha256()
    nonfinite: dict[str, list[int]] = {}
    with open_h5(path) as f:
        names: list[str] = []
        f.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None)
        for name in sorted(names):
            d = f[name]
            shape = None if d.shape is None else tuple(d.shape)  # None: an empty dataspace
            h.update(f"{name}\0{d.dtype.str}\0{shape}\n".encode())
            if shape is None:
                continue
            floating = d.dtype.kind in "fc"
            if d.ndim == 0:
                block = np.asarray(d[()])
                _update_values(h, block)
                if floating and not np.isfinite(block).all():
                    nonfinite[f"/{name}"] = [0, 1]
                continue
            row_bytes = max(1, int(np.prod(d.shape[1:], dtype=np.int64)) * max(1, d.dtype.itemsize))
            step = max(1, BLOCK_BYTES // row_bytes)
            for s in range(0, d.shape[0], step):
                try:
                    block = np.asarray(d[s : s + step])
                except (OSError, ValueError, TypeError) as e:
                    raise InputError(path, f"/{name} row {s}", f"cannot read HDF5 data ({e})") from None
                _update_values(h, block)
                if floating:
                    ok = np.isfinite(block.reshape(len(block), -1)).all(axis=1)
                    if not ok.all():
                        bad = np.flatnonzero(~ok)
                        first, count = nonfinite.get(f"/{name}", [s + int(bad[0]), 0])
                        nonfinite[f"/{name}"] = [first, count + len(bad)]
    return H5Content(h.hexdigest(), nonfinite)


def h5_content(path: Path) -> H5Content:
    """:class:`H5Content` of an HDF5 file (memoised per file state)."""
    path = Path(path)
    key, state, entry = _lookup("h5", path)
    if entry is not None:
        try:
            return H5Content(str(entry["sha256"]), {str(k): [int(a), int(b)] for k, (a, b) in entry["nonfinite"].items()})
        except (KeyError, TypeError, ValueError, AttributeError):  # a malformed entry is recomputed
            pass
    content = _hash_h5(path)
    entry = {"state": state, "sha256": content.sha256, "nonfinite": content.nonfinite}
    _memo()[key] = entry
    _write_memo({key: entry})
    return content


def refuse_nonfinite(path: Path, content: H5Content, keys: Iterable[str]) -> None:
    """A one-line :class:`InputError` when one of the datasets ``keys`` holds NaN or inf."""
    for key in keys:
        hit = content.nonfinite.get("/" + key.lstrip("/"))
        if hit:
            first, count = hit
            more = f" (and {count - 1} more rows)" if count > 1 else ""
            raise InputError(path, f"/{key.lstrip('/')} row {first}", f"contains NaN or inf{more}")


def checked_h5(path: Path, keys: Iterable[str]) -> str:
    """Digest of an HDF5 file whose datasets ``keys`` must be finite (refused at load time otherwise)."""
    content = h5_content(path)
    refuse_nonfinite(path, content, keys)
    return content.sha256


def combine(*parts: str) -> str:
    """One SHA-256 over several digests (or short labels), in order."""
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()
