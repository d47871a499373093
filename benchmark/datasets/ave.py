"""``ave``: the Audio-Visual Event dataset (Tian et al., ECCV 2018) in its official feature release.

4,143 ten-second YouTube videos of 28 event categories, each cut into T = 10 one-second
segments labelled with the event category or background. The official release
(github.com/YapengTian/AVE-ECCV18, "AVE features") ships precomputed features, read here::

    DIR/Annotations.txt        Category&VideoID&Quality&StartTime&EndTime, one line per video
                               (an optional header line of these names is skipped)
    DIR/{train,val,test}_order.h5   /order      int indices into the 4,143 videos (3,339/402/402)
    DIR/labels.h5              /avadataset  (4143, 10, 29) one-hot per segment, 28 = background
    DIR/audio_feature.h5       /avadataset  (4143, 10, 128) VGGish embeddings per segment
    DIR/visual_feature.h5      /avadataset  (4143, 10, 7, 7, 512) VGG-19 pool5 maps per segment
    with subset=noisy also:
    DIR/labels_noisy.h5, DIR/audio_feature_noisy.h5, DIR/visual_feature_noisy.h5
                               (M, 29), (M, 10, 128), (M, 10, 7, 7, 512): background-only videos

``DIR`` may also be a folder holding ``ave/``, ``AVE/`` or ``annotations/ave/`` with these files.

The class index of a category is its order of first appearance in ``Annotations.txt``
(the order of the release's label files; the tests check it against ``mil_labels.h5``).
A video's clip label (retrieval, classification) is the category of its annotated event;
its segment labels (event localization) come from ``labels.h5``.

Features are never loaded whole (``visual_feature.h5`` is ~7 GB): splits hold lazy
:class:`~benchmark.datasets._io.H5Rows` views that read only the requested rows of a batch
and return visual features as ``(T, 512, 7, 7)`` float32 maps, audio as ``(T, 128)``. The
fingerprint still covers every value: each feature file is streamed once for its content hash
(memoised per file state, :mod:`benchmark.datasets.filehash`), and the same pass refuses a
file holding NaN or inf, naming the row.

``subset=noisy`` adds a fourth split ``"noisy"`` with the 178 background-only videos of the
weakly-supervised setting (clip and segment labels = 28, the background class); the train,
val and test splits are the official ones in either case.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ..interface import DataSpec
from ._io import H5Rows, h5_read, h5_shape, locate, need_file, parse_option, resolve_root
from .base import AVSplit, InMemoryDataset
from .filehash import checked_h5
from .registry import register_dataset

SEGMENTS = 10
AUDIO_DIM = 128
VISUAL_MAP = (7, 7, 512)
NUM_CLASSES = 28
KEY = "avadataset"
HEADER = ("Category", "VideoID", "Quality", "StartTime", "EndTime")
QUICK_SIZES = {"train": 400, "val": 80, "test": 80}
SUBDIRS = ("ave", "AVE", "AVE_Dataset", "annotations/ave")
LAYOUT = ("DIR/Annotations.txt, DIR/{train,val,test}_order.h5 (/order), DIR/labels.h5, DIR/audio_feature.h5, "
          "DIR/visual_feature.h5 (/avadataset; official AVE feature release)")


@dataclass(frozen=True)
class AVEEvent:
    """One line of ``Annotations.txt``."""

    category: str
    video_id: str
    quality: str
    start: int
    end: int


def read_annotations(path: Path) -> list[AVEEvent]:
    """Parse ``Annotations.txt`` (``&``-separated; categories may contain commas, never ``&``)."""
    need_file(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise InputError(path, None, f"not UTF-8 text ({e})") from None
    events = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        parts = [p.strip() for p in line.split("&")]
        if len(parts) != 5:
            raise InputError(path, f"line {lineno}", f"expected 5 '&'-separated fields "
                             f"(Category&VideoID&Quality&StartTime&EndTime), got {len(parts)}")
        if tuple(parts) == HEADER:
            continue
        cat, vid, quality, s, e = parts
        try:
            start, end = int(s), int(e)
        except ValueError:
            raise InputError(path, f"line {lineno}", f"StartTime/EndTime must be integers, got {s!r}, {e!r}") from None
        if not (0 <= start <= end <= SEGMENTS):
            raise InputError(path, f"line {lineno}", f"expected 0 <= StartTime <= EndTime <= {SEGMENTS}, got {start}, {end}")
        if not cat or not vid:
            raise InputError(path, f"line {lineno}", "empty Category or VideoID")
        events.append(AVEEvent(cat, vid, quality, start, end))
    if not events:
        raise InputError(path, None, "no annotation lines")
    return events


def categories(events: list[AVEEvent]) -> tuple[str, ...]:
    """Category names in order of first appearance (= class index of the release's label files)."""
    return tuple(dict.fromkeys(e.category for e in events))


def read_order(path: Path, n_videos: int) -> np.ndarray:
    """An official ``*_order.h5`` file: 1-D integer indices into the annotations, validated."""
    shape, dtype = h5_shape(path, "order")
    if len(shape) != 1:
        raise InputError(path, "/order", f"expected a 1-D array of video indices, got shape {shape}")
    if not np.issubdtype(dtype, np.integer):
        raise InputError(path, "/order", f"expected integer indices, got dtype {dtype}")
    order = h5_read(path, "order").astype(np.int64)
    bad = (order < 0) | (order >= n_videos)
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise InputError(path, "/order", f"index {order[k]} at position {k} is out of range for {n_videos} annotated videos")
    if len(np.unique(order)) != len(order):
        raise InputError(path, "/order", "contains duplicate video indices")
    return order


def check_layout(path: Path, want: tuple[int | None, ...], what: str) -> tuple[int, ...]:
    """Shape of ``/avadataset`` in ``path``; ``None`` in ``want`` matches any size."""
    shape, dtype = h5_shape(path, KEY)
    if not np.issubdtype(dtype, np.number):
        raise InputError(path, f"/{KEY}", f"expected numbers, got dtype {dtype}")
    if len(shape) != len(want) or any(w is not None and s != w for s, w in zip(shape, want)):
        layout = "(" + ", ".join("N" if w is None else str(w) for w in want) + ")"
        raise InputError(path, f"/{KEY}", f"expected {what} of shape {layout}, got {shape}")
    return shape


def segment_labels_from_onehot(path: Path, onehot: np.ndarray) -> np.ndarray:
    """``(N, T, 29)`` one-hot -> ``(N, T)`` class indices (28 = background), validated."""
    if not np.isfinite(onehot).all():
        raise InputError(path, f"/{KEY}", "contains NaN or inf")
    sums = onehot.sum(axis=-1)
    if not (np.all((onehot == 0) | (onehot == 1)) and np.all(sums == 1)):
        bad = tuple(int(i) for i in np.argwhere(sums != 1)[0]) if np.any(sums != 1) else "?"
        raise InputError(path, f"/{KEY}", f"rows must be one-hot over {NUM_CLASSES + 1} classes (first bad row {bad})")
    return onehot.argmax(axis=-1).astype(np.int64)


def _visual_to_chw(block: np.ndarray) -> np.ndarray:
    """``(n, T, 7, 7, 512)`` -> ``(n, T, 512, 7, 7)``."""
    return np.ascontiguousarray(block.transpose(0, 1, 4, 2, 3))


def _fingerprint(parts: list[bytes]) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(hashlib.sha256(p).digest())
    return h.hexdigest()


def _file_content(path: Path) -> bytes:
    """Digest of every value of one release file (streamed once, memoised per file state).

    Feature files holding NaN or inf in ``/avadataset`` are refused here, naming the first row.
    """
    return checked_h5(path, (KEY,)).encode()


#: ``test_order`` option -> the file of the test split's video indices
TEST_ORDERS = {"test": "test_order.h5", "match": "test_order_match.h5"}


@register_dataset(
    "ave",
    tasks=("event_localization", "retrieval", "classification"),
    layout=LAYOUT,
    licence="research use, as released with the AVE dataset (videos from YouTube; AudioSet ontology)",
    citation="Y. Tian, J. Shi, B. Li, Z. Duan, C. Xu, Audio-Visual Event Localization in Unconstrained Videos, ECCV 2018",
    needs_data_root=True,
    description="AVE: 4,143 videos, 28 events, 10 one-second segments; official VGGish + VGG-19 features, read lazily",
    homepage="https://github.com/YapengTian/AVE-ECCV18 (AVE dataset and features: links in its README)",
    options={"subset": "clean (default: the official train/val/test) or noisy (adds a 'noisy' split of the "
                       "178 background-only videos from the *_noisy.h5 files)",
             "test_order": "test (default: DIR/test_order.h5) or match (DIR/test_order_match.h5, the test list of "
                           "the release's cross-modal localization script cmm_test.py, for CML_A2V / CML_V2A)"},
)
def load_ave(*, data_root: Path | None, options: dict[str, Any], quick: bool, seed: int) -> InMemoryDataset:
    root = locate(resolve_root(data_root, "ave", LAYOUT), "Annotations.txt", SUBDIRS)
    subset = parse_option(options, "ave", "subset", str, "clean", choices=("clean", "noisy"))
    events = read_annotations(root / "Annotations.txt")
    names = categories(events)
    n = len(events)
    if len(names) != NUM_CLASSES:
        raise InputError(root / "Annotations.txt", None, f"expected {NUM_CLASSES} categories, found {len(names)}")
    test_order = parse_option(options, "ave", "test_order", str, "test", choices=TEST_ORDERS)
    order_files = {"train": "train_order.h5", "val": "val_order.h5", "test": TEST_ORDERS[test_order]}
    orders = {s: read_order(root / f, n) for s, f in order_files.items()}
    for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
        common = np.intersect1d(orders[a], orders[b])
        if len(common):
            raise InputError(root / order_files[b], "/order", f"video {common[0]} is also in the {a} split")

    labels_path, audio_path, visual_path = root / "labels.h5", root / "audio_feature.h5", root / "visual_feature.h5"
    check_layout(labels_path, (n, SEGMENTS, NUM_CLASSES + 1), "one-hot segment labels")
    check_layout(audio_path, (n, SEGMENTS, AUDIO_DIM), "VGGish audio features")
    check_layout(visual_path, (n, SEGMENTS, *VISUAL_MAP), "VGG-19 visual feature maps")
    seg = segment_labels_from_onehot(labels_path, h5_read(labels_path, KEY))
    clip = np.asarray([names.index(e.category) for e in events], dtype=np.int64)

    fp_parts = [(root / "Annotations.txt").read_bytes(), *(o.tobytes() for o in orders.values()), seg.tobytes(),
                _file_content(audio_path), _file_content(visual_path), subset.encode(), str(quick).encode(),
                test_order.encode()]
    rng = np.random.default_rng(np.random.SeedSequence([0, 5]))
    splits = {}
    for name, order in orders.items():
        if quick:
            order = order[np.sort(rng.permutation(len(order))[: QUICK_SIZES[name]])]
        splits[name] = _split(order, audio_path, visual_path, clip[order], seg[order],
                              [f"{events[i].video_id}#{i}" for i in order])

    if subset == "noisy":
        nl, na, nv = root / "labels_noisy.h5", root / "audio_feature_noisy.h5", root / "visual_feature_noisy.h5"
        m = check_layout(nl, (None, NUM_CLASSES + 1), "one-hot video labels")[0]
        check_layout(na, (m, SEGMENTS, AUDIO_DIM), "VGGish audio features")
        check_layout(nv, (m, SEGMENTS, *VISUAL_MAP), "VGG-19 visual feature maps")
        noisy_clip = segment_labels_from_onehot(nl, h5_read(nl, KEY)[:, None, :])[:, 0]
        rows = np.arange(m)
        splits["noisy"] = _split(rows, na, nv, noisy_clip, np.repeat(noisy_clip[:, None], SEGMENTS, axis=1),
                                 [f"noisy#{i}" for i in rows])
        fp_parts += [noisy_clip.tobytes(), _file_content(na), _file_content(nv)]

    spec = DataSpec(
        name="ave", audio_shape=(SEGMENTS, AUDIO_DIM), visual_shape=(SEGMENTS, VISUAL_MAP[2], *VISUAL_MAP[:2]),
        num_classes=NUM_CLASSES, class_names=names, sample_rate=None, visual_is_image=False,
        extra={"subset": subset, "test_order": order_files["test"], "features": {"audio": "VGGish (128-d per 1 s segment)",
                                               "visual": "VGG-19 pool5 (512 x 7 x 7 per segment)"},
               "background_class": NUM_CLASSES, "root": str(root)},
    )
    return InMemoryDataset(spec=spec, splits=splits, content_hash=_fingerprint(fp_parts))


def _split(rows: np.ndarray, audio_path: Path, visual_path: Path, clip: np.ndarray, seg: np.ndarray,
           ids: list[str]) -> AVSplit:
    return AVSplit(
        audio=H5Rows(audio_path, KEY, rows, row_shape=(SEGMENTS, AUDIO_DIM)),
        visual=H5Rows(visual_path, KEY, rows, row_shape=(SEGMENTS, VISUAL_MAP[2], *VISUAL_MAP[:2]),
                      transform=_visual_to_chw),
        labels=clip, segment_labels=seg, ids=ids, meta={"rows": rows},
    )
