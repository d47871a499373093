"""Readers shared by the real-data loaders: data roots, WAV/JPEG/IDX/HDF5 input, caching.

Everything here turns a malformed or missing input into one
:class:`~benchmark.errors.InputError` line naming the file (and the field, line or HDF5
path inside it), so loaders never leak a traceback from deep inside a decoder.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import ConfigError, InputError
from ..features import log_mel
from ..paths import cache_dir
from ..progress import log
from ..store import atomic_write_bytes, clean_stale_temps

#: Environment variable consulted when a loader gets ``data_root=None``.
DATA_ROOT_ENV = "AVCL_DATA_ROOT"


# --------------------------------------------------------------------------- locations
def resolve_root(data_root: Path | str | None, dataset: str, layout: str) -> Path:
    """``data_root``, else ``$AVCL_DATA_ROOT``, else a :class:`ConfigError` saying what to pass."""
    if data_root is None:
        env = os.environ.get(DATA_ROOT_ENV)
        if not env:
            raise ConfigError(f"dataset '{dataset}' needs --data-root DIR (or ${DATA_ROOT_ENV}); expected layout: {layout}")
        data_root = env
    root = Path(data_root).expanduser()
    if not root.exists():
        raise InputError(root, None, f"data root of dataset '{dataset}' does not exist")
    if not root.is_dir():
        raise InputError(root, None, f"data root of dataset '{dataset}' is not a directory")
    return root


def locate(root: Path, marker: str, subdirs: Sequence[str]) -> Path:
    """The folder holding ``marker``: ``root`` itself or the first of ``root/<subdir>`` that has it.

    Lets one ``--data-root`` hold several datasets (``DIR/ave/...``, ``DIR/annotations/ave/...``)
    while a folder that *is* the dataset works as well.
    """
    for cand in (root, *(root / s for s in subdirs)):
        if (cand / marker).exists():
            return cand
    tried = ", ".join(str(root / s / marker) for s in ("", *subdirs))
    raise InputError(root / marker, None, f"file not found (also looked for {tried})")


def need_file(path: Path) -> Path:
    """``path`` if it is an existing file, else a one-line :class:`InputError`."""
    if not path.exists():
        raise InputError(path, None, "file not found")
    if not path.is_file():
        raise InputError(path, None, "not a file")
    return path


def parse_option(options: dict[str, Any], dataset: str, key: str, cast: Callable[[Any], Any], default: Any,
                 *, choices: Sequence[Any] | None = None, minimum: float | None = None) -> Any:
    """Read ``options[key]`` converted by ``cast`` (default when absent), validated."""
    if key not in options:
        return default
    raw = options[key]
    try:
        value = cast(raw)
    except (TypeError, ValueError):
        raise ConfigError(f"dataset '{dataset}': option {key}={raw!r} is not a valid {cast.__name__}") from None
    if choices is not None and value not in choices:
        raise ConfigError(f"dataset '{dataset}': option {key}={raw!r} must be one of {', '.join(map(str, choices))}")
    if minimum is not None and value < minimum:
        raise ConfigError(f"dataset '{dataset}': option {key}={raw!r} must be >= {minimum}")
    return value


# --------------------------------------------------------------------------- audio
def read_wav(path: Path) -> tuple[np.ndarray, int]:
    """Mono float32 samples in [-1, 1] and the sample rate of a PCM or float WAV file."""
    from scipy.io import wavfile

    need_file(path)
    try:
        sr, data = wavfile.read(path)
    except (ValueError, OSError, EOFError) as e:
        raise InputError(path, None, f"not a readable WAV file ({e})") from None
    if data.size == 0:
        raise InputError(path, None, "WAV file has no samples")
    if data.dtype == np.uint8:
        x = (data.astype(np.float32) - 128.0) / 128.0
    elif np.issubdtype(data.dtype, np.integer):
        x = data.astype(np.float32) / float(np.iinfo(data.dtype).max + 1)
    else:
        x = data.astype(np.float32)
    if x.ndim == 2:
        x = x.mean(axis=1)
    if not np.isfinite(x).all():
        raise InputError(path, None, "WAV file contains NaN or inf samples")
    return np.clip(x, -1.0, 1.0), int(sr)


def resample(x: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Polyphase resampling (anti-aliased) from ``sr_in`` to ``sr_out``."""
    if sr_in == sr_out:
        return x
    from math import gcd

    from scipy.signal import resample_poly

    g = gcd(sr_in, sr_out)
    return resample_poly(x, sr_out // g, sr_in // g).astype(np.float32)


def fit_length(x: np.ndarray, length: int, *, centre: bool = False) -> np.ndarray:
    """Crop (from the start, or around the centre) or right-pad with zeros to ``length`` samples."""
    if len(x) >= length:
        start = (len(x) - length) // 2 if centre else 0
        return x[start : start + length]
    return np.pad(x, (0, length - len(x)))


def load_wave(path: Path, sample_rate: int, length: int, *, centre: bool = False) -> np.ndarray:
    """A WAV file as mono float32 at ``sample_rate``, cropped/padded to ``length`` samples."""
    x, sr = read_wav(path)
    return fit_length(resample(x, sr, sample_rate), length, centre=centre)


def segment_log_mel(waves: np.ndarray, sample_rate: int, *, segments: int, frames_per_segment: int,
                    n_mels: int, n_fft: int, fmin: float = 0.0) -> np.ndarray:
    """``(N, L)`` waveforms -> ``(N, segments, frames_per_segment * n_mels)`` log-mel features.

    The log-mel spectrogram (:func:`benchmark.features.log_mel`, hop ``n_fft // 4``) is
    average-pooled over time to ``segments * frames_per_segment`` frames, so each segment
    of the clip is described by a few frames of ``n_mels`` bands, flattened.
    """
    out = []
    for s in range(0, len(waves), 256):  # bounded memory on long clips
        spec = log_mel(waves[s : s + 256], sample_rate, n_fft=n_fft, hop=n_fft // 4, n_mels=n_mels, fmin=fmin)
        pooled = torch.nn.functional.adaptive_avg_pool1d(spec.transpose(1, 2), segments * frames_per_segment)
        out.append(pooled.transpose(1, 2).reshape(len(spec), segments, frames_per_segment * n_mels).numpy())
    return np.concatenate(out).astype(np.float32)


def standardise(features: np.ndarray, train_rows: np.ndarray) -> np.ndarray:
    """Per-dimension standardisation with the mean/std of ``train_rows`` only (no test leakage)."""
    ref = features[train_rows]
    axes = tuple(range(ref.ndim - 1))
    mu = ref.mean(axis=axes)
    sd = ref.std(axis=axes) + 1e-6
    return ((features - mu) / sd).astype(np.float32)


# --------------------------------------------------------------------------- images
def read_image(path: Path, size: int) -> np.ndarray:
    """An image file as ``(3, size, size)`` uint8 RGB (bicubic resize of the shorter side, centre crop)."""
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError:  # pragma: no cover - Pillow is a declared dependency
        raise ConfigError("reading JPEG frames needs Pillow: pip install pillow") from None
    need_file(path)
    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            w, h = im.size
            scale = size / min(w, h)
            nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
            im = im.resize((nw, nh), Image.Resampling.BICUBIC)
            left, top = (nw - size) // 2, (nh - size) // 2
            im = im.crop((left, top, left + size, top + size))
            arr = np.asarray(im, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise InputError(path, None, f"not a readable image ({e.__class__.__name__}: {e})") from None
    return np.ascontiguousarray(arr.transpose(2, 0, 1))


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (the MNIST format; gzip-compressed when the name ends in ``.gz``)."""
    need_file(path)
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise InputError(path, None, f"not a readable gzip file ({e})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise InputError(path, "header", "not an IDX file (the magic number must start with two zero bytes)")
    dtypes = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
    if raw[2] not in dtypes:
        raise InputError(path, "header", f"unknown IDX element type 0x{raw[2]:02x}")
    ndim = raw[3]
    if len(raw) < 4 + 4 * ndim:
        raise InputError(path, "header", "file is truncated inside the header")
    shape = tuple(int(v) for v in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    dtype = np.dtype(dtypes[raw[2]])
    expected = int(np.prod(shape)) * dtype.itemsize
    body = len(raw) - 4 - 4 * ndim
    if body != expected:
        raise InputError(path, "data", f"header says shape {shape} ({expected} bytes) but the file has {body} bytes")
    return np.frombuffer(raw, dtype, offset=4 + 4 * ndim).reshape(shape).astype(dtype.newbyteorder("="))


# --------------------------------------------------------------------------- HDF5
def open_h5(path: Path):  # noqa: ANN201 - h5py.File
    import h5py

    need_file(path)
    try:
        return h5py.File(path, "r")
    except OSError as e:
        raise InputError(path, None, f"not a readable HDF5 file ({e})") from None


def h5_shape(path: Path, key: str) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of dataset ``key`` of an HDF5 file (nothing is read)."""
    import h5py

    with open_h5(path) as f:
        if key not in f:
            have = ", ".join(sorted(f.keys())) or "none"
            raise InputError(path, f"/{key}", f"HDF5 dataset not found (datasets present: {have})")
        d = f[key]
        if not isinstance(d, h5py.Dataset):
            raise InputError(path, f"/{key}", "is an HDF5 group, expected a dataset")
        return tuple(int(s) for s in d.shape), d.dtype


def h5_read(path: Path, key: str) -> np.ndarray:
    """All of dataset ``key`` (only for small arrays: orders, labels)."""
    h5_shape(path, key)
    with open_h5(path) as f:
        return np.asarray(f[key][()])


def check_rows_finite(block: np.ndarray, rows: np.ndarray, path: Path, key: str) -> None:
    """A one-line :class:`InputError` naming the file, dataset and row of the first NaN/inf in ``block``.

    ``block[j]`` is row ``rows[j]`` of ``/key``; integer blocks are never checked.
    """
    if block.dtype.kind not in "fc" or len(block) == 0:
        return
    ok = np.isfinite(block.reshape(len(block), -1)).all(axis=1)
    if not ok.all():
        row = int(rows[int(np.flatnonzero(~ok)[0])])
        raise InputError(path, f"/{key} row {row}", "contains NaN or inf (found while reading; a value too large "
                                                     "for float32 reads as inf)")


class H5Rows:
    """A lazy, numpy-like view of selected rows of one HDF5 dataset.

    ``view[idx]`` reads only rows ``rows[idx]`` of ``/key`` (h5py needs sorted unique
    indices: they are sorted, de-duplicated and put back in order here), converts them to
    ``dtype``, checks that float rows are finite (an :class:`InputError` naming the file,
    dataset and row: loaders check whole files at load time, this catches files changed
    since) and applies ``transform`` (e.g. a transpose of each row). The file is opened
    per read, so views are cheap, picklable and safe to use from worker processes.
    """

    def __init__(self, path: Path, key: str, rows: np.ndarray, *, row_shape: tuple[int, ...],
                 dtype: np.dtype | type = np.float32, transform: Callable[[np.ndarray], np.ndarray] | None = None):
        self.path, self.key = Path(path), key
        self.rows = np.asarray(rows, dtype=np.int64)
        self.row_shape = tuple(row_shape)
        self.dtype = np.dtype(dtype)
        self.transform = transform

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.rows), *self.row_shape)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __len__(self) -> int:
        return len(self.rows)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = self[np.arange(len(self))]
        return out if dtype is None else out.astype(dtype)

    def __getitem__(self, idx: Any) -> np.ndarray:
        scalar = isinstance(idx, (int, np.integer))
        sel = self.rows[np.atleast_1d(np.arange(len(self))[idx])] if not scalar else self.rows[[int(idx)]]
        uniq, inverse = np.unique(sel, return_inverse=True)
        if len(uniq) == 0:
            return np.zeros((0, *self.row_shape), dtype=self.dtype)
        with open_h5(self.path) as f, np.errstate(over="ignore"):  # an overflow to inf is refused below
            block = np.asarray(f[self.key][uniq], dtype=self.dtype)
        check_rows_finite(block, uniq, self.path, self.key)
        if self.transform is not None:
            block = self.transform(block)
        out = block[inverse]
        return out[0] if scalar else out

    def __repr__(self) -> str:
        return f"H5Rows({self.path.name}:/{self.key}, shape={self.shape}, dtype={self.dtype})"


# --------------------------------------------------------------------------- caching
def content_hash(arrays: dict[str, np.ndarray]) -> str:
    """SHA-256 over the names, dtypes, shapes and bytes of ``arrays`` (sorted by name)."""
    h = hashlib.sha256()
    for k in sorted(arrays):
        a = np.ascontiguousarray(arrays[k])
        h.update(k.encode())
        h.update(str(a.dtype).encode())
        h.update(str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()


def cache_key(name: str, config: dict[str, Any]) -> str:
    blob = json.dumps(config, sort_keys=True, default=str)
    return f"{name}-{hashlib.sha256(blob.encode()).hexdigest()[:16]}"


def cached_arrays(key: str, build: Callable[[], dict[str, np.ndarray]], *,
                  use_cache: bool = True) -> tuple[dict[str, np.ndarray], str]:
    """Arrays built by ``build`` and their content hash, via ``$AVCL_CACHE/<key>.npz``.

    A cache file is trusted only when its stored content hash matches its arrays; it is
    written atomically (temp file + rename), and a read-only cache is not an error.
    """
    path = cache_dir() / f"{key}.npz"
    if use_cache and path.exists():
        try:
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
            stored = str(arrays.pop("content_hash"))
            if content_hash(arrays) == stored:
                return arrays, stored
        except Exception:  # noqa: BLE001 - a corrupt cache file is rebuilt, never trusted
            pass
    name = key.split("-")[0]
    log(f"[data] building {name} ({key}): not in the cache yet, this can take minutes at full size"
        + (f"; cached as {path} for later runs" if use_cache else ""))
    t0 = time.perf_counter()
    arrays = build()
    digest = content_hash(arrays)
    if use_cache:
        try:
            _clean_cache_temps_once()
            buf = io.BytesIO()
            np.savez(buf, **arrays, content_hash=np.array(digest))
            atomic_write_bytes(path, buf.getvalue())
        except OSError:  # a read-only or full cache only costs a rebuild next time
            pass
    size = sum(a.nbytes for a in arrays.values()) / 2**20
    log(f"[data] built {name} in {time.perf_counter() - t0:.1f} s ({size:.0f} MiB)")
    return arrays, digest


_CLEANED: set[Path] = set()


def _clean_cache_temps_once() -> None:
    """Remove temporary files a killed run left in the cache folder (once per process and folder)."""
    folder = cache_dir()
    if folder not in _CLEANED:
        _CLEANED.add(folder)
        clean_stale_temps(folder, recursive=False)


def stable_fraction(key: str) -> float:
    """A deterministic number in [0, 1) from a string (split assignment that does not depend on order)."""
    return int(hashlib.sha256(key.encode()).hexdigest()[:12], 16) / float(16**12)
