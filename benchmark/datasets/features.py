"""``features``: any dataset as precomputed features in one HDF5 or npz file (VEGAS, AVE, your own).

File format (HDF5 datasets at the root, or arrays of an ``.npz`` saved without pickle)::

    audio           (N, Da) or (N, T, Da)                   float
    visual          (N, Dv) or (N, T, Dv) or (N, T, C, H, W) float (uint8 5-D arrays are images)
    labels          (N,)   int >= 0                          clip classes
    split           (N,)   "train" / "val" / "test" (str or bytes) or 0 / 1 / 2
    segment_labels  (N, T) int in [0, K], K = background     optional: enables event_localization
    class_names     (K,)   str                               optional
    ids             (N,)   str                               optional

A vector is one segment (T = 1); vectors become visual maps ``(T, Dv, 1, 1)``. Audio and visual
must have the same T. Strings in npz files must be fixed-width unicode or bytes arrays
(``np.array(["train", ...])``), never object arrays: files are read without pickle.
Files without a validation item get one carved from train (every 10th train item, in file
order; ``spec.extra["val_from_train"]`` is then True).

HDF5 files are read lazily (only the rows of each batch); npz files are loaded whole. The
fingerprint covers every value of the file (HDF5: streamed once and memoised, see
:mod:`benchmark.datasets.filehash`); NaN/inf in ``audio``/``visual`` stops the load with the row.
Options: ``path=FILE`` (or ``--data-root FILE``), ``name=ID`` the dataset id results are
reported under (e.g. ``vegas`` or ``ave``, default ``features``) so they stay comparable.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from ..arrays import check_array, load_npz
from ..errors import ConfigError, InputError
from ..interface import DataSpec
from ._io import H5Rows, content_hash, h5_read, h5_shape, parse_option
from .base import AVSplit, InMemoryDataset
from .filehash import checked_h5
from .registry import register_dataset

SPLIT_NAMES = ("train", "val", "test")
QUICK_SIZES = {"train": 600, "val": 120, "test": 300}
LAYOUT = ("one .h5/.hdf5 or .npz file (--data-root FILE or --option path=FILE) with audio (N,[T,]Da), visual "
          "(N,[T,]Dv) or (N,T,C,H,W), labels (N,), split (N,) train/val/test or 0/1/2, optional segment_labels (N,T)")


def _decode_split(raw: np.ndarray, source: Path) -> np.ndarray:
    """Split codes 0/1/2 from strings, bytes or integers."""
    if raw.ndim != 1:
        raise InputError(source, "split", f"expected a 1-D array, got shape {raw.shape}")
    if raw.dtype.kind in "SU":
        names = [v.decode() if isinstance(v, bytes) else str(v) for v in raw.tolist()]
        alias = {"train": 0, "training": 0, "val": 1, "valid": 1, "validation": 1, "test": 2, "testing": 2}
        codes = np.empty(len(names), dtype=np.int64)
        for i, name in enumerate(names):
            key = name.strip().lower()
            if key not in alias:
                raise InputError(source, "split", f"item {i}: unknown split {name!r} (use train, val or test)")
            codes[i] = alias[key]
        return codes
    codes = check_array(raw, source, "split", ndim=1, kind="int")
    bad = (codes < 0) | (codes > 2)
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise InputError(source, "split", f"item {k}: split code {codes[k]} is not 0 (train), 1 (val) or 2 (test)")
    return codes


def _strings(raw: np.ndarray, source: Path, field: str, n: int) -> list[str]:
    if raw.ndim != 1 or len(raw) != n or raw.dtype.kind not in "SU":
        raise InputError(source, field, f"expected {n} strings, got {raw.dtype} array of shape {raw.shape}")
    return [v.decode() if isinstance(v, bytes) else str(v) for v in raw.tolist()]


def _shapes(audio_shape: tuple[int, ...], visual_shape: tuple[int, ...], source: Path) -> tuple[tuple, tuple]:
    """Per-item model shapes ``(T, Da)`` and ``(T, C, H, W)`` from stored shapes."""
    if len(audio_shape) == 2:
        a = (1, audio_shape[1])
    elif len(audio_shape) == 3:
        a = audio_shape[1:]
    else:
        raise InputError(source, "audio", f"expected (N, Da) or (N, T, Da), got shape {audio_shape}")
    if len(visual_shape) == 2:
        v = (1, visual_shape[1], 1, 1)
    elif len(visual_shape) == 3:
        v = (visual_shape[1], visual_shape[2], 1, 1)
    elif len(visual_shape) == 5:
        v = visual_shape[1:]
    else:
        raise InputError(source, "visual", f"expected (N, Dv), (N, T, Dv) or (N, T, C, H, W), got shape {visual_shape}")
    if a[0] != v[0]:
        raise InputError(source, "audio/visual", f"segment counts differ: audio T={a[0]}, visual T={v[0]}")
    if audio_shape[0] != visual_shape[0]:
        raise InputError(source, "audio/visual", f"count mismatch (audio={audio_shape[0]}, visual={visual_shape[0]})")
    return tuple(int(x) for x in a), tuple(int(x) for x in v)


def _reshaper(shape: tuple[int, ...]):  # noqa: ANN202
    return lambda block: block.reshape(len(block), *shape)


@register_dataset(
    "features",
    tasks=("retrieval", "classification", "event_localization"),
    layout=LAYOUT,
    licence="that of the data you bring",
    citation="cite the dataset and feature extractor the file was made from (e.g. VEGAS: Zhou et al., CVPR 2018)",
    needs_data_root=False,
    description="generic precomputed audio/visual features from one HDF5 or npz file (event_localization needs "
                "segment_labels)",
    homepage="",
    options={"path": "the .h5/.hdf5/.npz file (alternative to --data-root FILE)",
             "name": "dataset id the results are reported under (default: features)"},
)
def load_features(*, data_root: Path | None, options: dict[str, Any], quick: bool, seed: int) -> InMemoryDataset:
    path_opt = parse_option(options, "features", "path", str, None)
    if path_opt is None and data_root is None:
        raise ConfigError(f"dataset 'features' needs --data-root FILE or --option path=FILE ({LAYOUT})")
    path = Path(path_opt if path_opt is not None else data_root).expanduser()
    name = parse_option(options, "features", "name", str, "features")
    if not name.replace("-", "").replace("_", "").isalnum():
        raise ConfigError(f"dataset 'features': option name={name!r} must be letters, digits, '-' or '_'")
    if not path.is_file():
        raise InputError(path, None, "features file not found" if not path.exists() else "not a file")
    suffix = path.suffix.lower()
    if suffix == ".npz":
        return _from_arrays(load_npz(path), path, name, quick)
    if suffix in (".h5", ".hdf5", ".hdf"):
        return _from_hdf5(path, name, quick)
    raise InputError(path, None, "expected a .npz, .h5 or .hdf5 file")


#: without class_names, class ids above both this and the item count are refused as sparse ids
MAX_SPARSE_CLASSES = 10_000


def _labels_and_split(labels: np.ndarray, split_raw: np.ndarray, seg: np.ndarray | None, names: list[str] | None,
                      t: int, n: int, path: Path) -> tuple[np.ndarray, np.ndarray, int]:
    labels = check_array(labels, path, "labels", ndim=1, kind="int")
    if len(labels) != n:
        raise InputError(path, "labels", f"expected {n} labels (one per item), got {len(labels)}")
    if labels.min() < 0:
        raise InputError(path, "labels", f"labels must be >= 0, got {labels.min()}")
    k = len(names) if names is not None else int(labels.max()) + 1
    if names is None and k > max(MAX_SPARSE_CLASSES, n):
        raise InputError(path, "labels", f"class id {labels.max()} implies {k} classes for {n} items; class ids must "
                         "be dense, 0..K-1 (remap them, or give class_names)")
    if labels.max() >= k:
        raise InputError(path, "labels", f"label {labels.max()} is out of range for {k} class_names")
    split = _decode_split(split_raw, path)
    if len(split) != n:
        raise InputError(path, "split", f"expected {n} entries, got {len(split)}")
    for code, s in ((0, "train"), (2, "test")):
        if not (split == code).any():
            raise InputError(path, "split", f"no {s} items")
    if seg is not None:
        seg = check_array(seg, path, "segment_labels", ndim=2, kind="int")
        if seg.shape != (n, t):
            raise InputError(path, "segment_labels", f"expected shape {(n, t)}, got {seg.shape}")
        if seg.min() < 0 or seg.max() > k:
            raise InputError(path, "segment_labels", f"values must be in [0, {k}] ({k} = background), "
                                                     f"got {seg.min()}..{seg.max()}")
    return labels, split, k


def _plan(split: np.ndarray, quick: bool) -> tuple[dict[str, np.ndarray], bool]:
    rows = {s: np.flatnonzero(split == c) for c, s in enumerate(SPLIT_NAMES)}
    carved = len(rows["val"]) == 0
    if carved:
        train = rows["train"]
        rows["val"], rows["train"] = train[::10], np.setdiff1d(train, train[::10])
    if quick:
        rows = {s: r[: QUICK_SIZES[s]] for s, r in rows.items()}
    return rows, carved


def _spec(name: str, a: tuple, v: tuple, k: int, names: list[str] | None, image: bool, carved: bool,
          has_seg: bool, path: Path) -> DataSpec:
    tasks = ["retrieval", "classification"] + (["event_localization"] if has_seg else [])
    return DataSpec(name=name, audio_shape=a, visual_shape=v, num_classes=k,
                    class_names=tuple(names) if names else tuple(str(i) for i in range(k)), visual_is_image=image,
                    extra={"source": str(path), "tasks": tasks, "val_from_train": carved})


def _from_arrays(arrays: dict[str, np.ndarray], path: Path, name: str, quick: bool) -> InMemoryDataset:
    for key in ("audio", "visual", "labels", "split"):
        if key not in arrays:
            raise InputError(path, key, f"missing array (arrays present: {', '.join(sorted(arrays)) or 'none'})")
    a_shape, v_shape = _shapes(arrays["audio"].shape, arrays["visual"].shape, path)
    n = arrays["audio"].shape[0]
    audio = check_array(arrays["audio"], path, "audio", kind="float").astype(np.float32).reshape(n, *a_shape)
    raw_v = arrays["visual"]
    image = raw_v.ndim == 5 and raw_v.dtype == np.uint8
    visual = raw_v if image else check_array(raw_v, path, "visual", kind="float").astype(np.float32)
    visual = visual.reshape(n, *v_shape)
    names = _strings(arrays["class_names"], path, "class_names", len(arrays["class_names"])) \
        if "class_names" in arrays else None
    seg = arrays.get("segment_labels")
    labels, split, k = _labels_and_split(arrays["labels"], arrays["split"], seg, names, a_shape[0], n, path)
    ids = _strings(arrays["ids"], path, "ids", n) if "ids" in arrays else [f"{name}-{i}" for i in range(n)]
    rows, carved = _plan(split, quick)
    seg_arr = None if seg is None else check_array(seg, path, "segment_labels", kind="int")
    splits = {s: AVSplit(audio=audio[r], visual=visual[r], labels=labels[r],
                         segment_labels=None if seg_arr is None else seg_arr[r], ids=[ids[i] for i in r])
              for s, r in rows.items()}
    # every array of the file, whole (names, dtypes, shapes, values): the npz is loaded whole anyway
    digest = _fingerprint("npz", content_hash(arrays), quick)
    return InMemoryDataset(_spec(name, a_shape, v_shape, k, names, image, carved, seg is not None, path), splits,
                           digest)


def _from_hdf5(path: Path, name: str, quick: bool) -> InMemoryDataset:
    (a_raw, a_dtype), (v_raw, v_dtype) = h5_shape(path, "audio"), h5_shape(path, "visual")
    for field, dt in (("audio", a_dtype), ("visual", v_dtype)):
        if not np.issubdtype(dt, np.number):
            raise InputError(path, f"/{field}", f"expected numbers, got dtype {dt}")
    a_shape, v_shape = _shapes(a_raw, v_raw, path)
    n = a_raw[0]
    import h5py

    with h5py.File(path, "r") as f:
        present = set(f.keys())
    names = _strings(h5_read(path, "class_names"), path, "class_names", h5_shape(path, "class_names")[0][0]) \
        if "class_names" in present else None
    seg = h5_read(path, "segment_labels") if "segment_labels" in present else None
    labels, split, k = _labels_and_split(h5_read(path, "labels"), h5_read(path, "split"), seg, names, a_shape[0], n,
                                         path)
    ids = _strings(h5_read(path, "ids"), path, "ids", n) if "ids" in present else [f"{name}-{i}" for i in range(n)]
    image = len(v_raw) == 5 and v_dtype == np.uint8
    rows, carved = _plan(split, quick)
    splits = {}
    for s, r in rows.items():
        splits[s] = AVSplit(
            audio=H5Rows(path, "audio", r, row_shape=a_shape, transform=_reshaper(a_shape)),
            visual=H5Rows(path, "visual", r, row_shape=v_shape, dtype=np.uint8 if image else np.float32,
                          transform=_reshaper(v_shape)),
            labels=labels[r], segment_labels=None if seg is None else np.asarray(seg, dtype=np.int64)[r],
            ids=[ids[i] for i in r])
    # every dataset of the file, whole, streamed once and memoised per file state; the same pass
    # refuses NaN/inf in audio or visual (naming the row) before anything is run
    digest = _fingerprint("h5", checked_h5(path, ("audio", "visual")), quick)
    return InMemoryDataset(_spec(name, a_shape, v_shape, k, names, image, carved, seg is not None, path), splits,
                           digest)


def _fingerprint(kind: str, content: str, quick: bool) -> str:
    return hashlib.sha256(f"features|{kind}|{content}|quick={quick}".encode()).hexdigest()
