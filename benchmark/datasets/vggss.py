"""``vggss``: VGG-Sound Source (Chen et al., CVPR 2021), visual sound-source localization.

5,158 VGGSound clips with boxes around the sounding objects of their middle frame. Layout of
``--data-root DIR`` (the LVS release: ``metadata/vggss.json`` plus extracted media)::

    DIR/vggss.json            [{"file": ID, "class": NAME, "bbox": [[x1, y1, x2, y2], ...]}, ...]
                              coordinates relative to the image, in [0, 1]
    DIR/frames/<ID>.jpg       the annotated (middle) frame
    DIR/audio/<ID>.wav        the clip's audio
    DIR/vggss_test.csv        optional: one ID per line; with list=test only these are tested

``vggss.json`` may also sit in ``DIR/metadata/``, ``DIR/annotations/vggss/`` or ``DIR/vggss/``.

Protocol: the test split is the annotated list, ground truth is the union of the boxes
(:func:`tasks.localization.metrics.box_mask`, the LVS evaluation rule) at ``mask_size``.
Training is self-supervised on other VGGSound clips: every ``frames/<ID>.jpg`` with an
``audio/<ID>.wav`` that is not in the test list forms the train pool (label -1: unknown
class, no mask), 10 % of it (stable hash of the ID) is validation. With ``train=annotated``
the annotated clips themselves are split 60/10/30 into train/val/test by a stable hash of
their ID (for quick experiments without VGGSound; not the published protocol).

Inputs: each frame is resized (shorter side) and centre-cropped to ``image_size`` (default 64;
the papers use 224) as uint8 RGB, visual ``(1, 3, S, S)``; audio is the centred
``audio_seconds`` (default 3 s) of the wav at 16 kHz, log-mel with 40 bands pooled to 8
frames, audio ``(1, 320)``, standardised with train statistics. Masks are computed lazily
per batch from the boxes, so ``mask_size=224`` costs no memory.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from avcl_bench.tasks.localization.metrics import box_mask

from ..errors import InputError
from ..interface import DataSpec
from ._io import (
    cache_key,
    cached_arrays,
    load_wave,
    locate,
    need_file,
    parse_option,
    read_image,
    resolve_root,
    segment_log_mel,
    stable_fraction,
    standardise,
)
from .base import AVSplit, InMemoryDataset
from .filehash import combine, files_digest
from .registry import register_dataset

VERSION = "1"
SAMPLE_RATE = 16000
N_MELS = 40
FRAMES = 8
N_FFT = 512
LAYOUT = "DIR/vggss.json + DIR/frames/<file>.jpg + DIR/audio/<file>.wav (LVS release layout)"


# --------------------------------------------------------------------------- annotations
@dataclass(frozen=True)
class LocalizationItem:
    """One annotated clip: its media id, class name and ground-truth boxes."""

    file: str
    label: str
    boxes: tuple[tuple[tuple[float, float, float, float], ...], ...]  # per annotator


def read_vggss_json(path: Path) -> list[LocalizationItem]:
    """Parse ``vggss.json``: a list of ``{"file", "class", "bbox": [[x1, y1, x2, y2], ...]}``.

    Coordinates are clipped to [0, 1]; boxes without area after clipping (12 in the public
    file, from corrupt values such as -2.88e16) are dropped, which is what the LVS evaluation's
    integer slicing does with them. Their number is kept in :data:`LAST_DEGENERATE`.
    """
    need_file(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError(path, None, f"not valid JSON ({e})") from None
    if not isinstance(data, list):
        raise InputError(path, None, f"expected a JSON list of entries, got {type(data).__name__}")
    items, seen, degenerate = [], set(), 0
    for i, entry in enumerate(data):
        where = f"[{i}]"
        if not isinstance(entry, dict):
            raise InputError(path, where, "expected an object with keys file, class, bbox")
        for key in ("file", "class", "bbox"):
            if key not in entry:
                raise InputError(path, f"{where}.{key}", "missing key")
        file, label, bbox = entry["file"], entry["class"], entry["bbox"]
        if not isinstance(file, str) or not file or "/" in file:
            raise InputError(path, f"{where}.file", f"expected a clip id, got {file!r}")
        if file in seen:
            raise InputError(path, f"{where}.file", f"duplicate clip id {file!r}")
        seen.add(file)
        if not isinstance(label, str) or not label:
            raise InputError(path, f"{where}.class", f"expected a class name, got {label!r}")
        boxes = []
        if not isinstance(bbox, list):
            raise InputError(path, f"{where}.bbox", "expected a list of [x1, y1, x2, y2] boxes")
        for k, b in enumerate(bbox):
            ok = isinstance(b, list) and len(b) == 4 and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v) for v in b)
            if not ok:
                raise InputError(path, f"{where}.bbox[{k}]", f"expected 4 finite numbers [x1, y1, x2, y2], got {b!r}")
            # The public file has corrupt coordinates (e.g. -2.88e16). As the LVS evaluation does,
            # coordinates are clipped to the image and a box left with no area covers nothing.
            x1, y1, x2, y2 = (min(max(float(v), 0.0), 1.0) for v in b)
            if x2 <= x1 or y2 <= y1:
                degenerate += 1
                continue
            boxes.append((x1, y1, x2, y2))
        items.append(LocalizationItem(file, label, (tuple(boxes),)))
    if not items:
        raise InputError(path, None, "no entries")
    LAST_DEGENERATE[str(path)] = degenerate
    return items


#: number of boxes dropped as degenerate by the last :func:`read_vggss_json` of each file
LAST_DEGENERATE: dict[str, int] = {}


def read_id_list(path: Path) -> list[str]:
    """First column of a csv list of clip ids (``vggss_test.csv``)."""
    need_file(path)
    ids = [line.split(",")[0].strip() for line in path.read_text(encoding="utf-8").splitlines()]
    ids = [i for i in ids if i]
    if not ids:
        raise InputError(path, None, "no clip ids")
    return ids


# --------------------------------------------------------------------------- masks
class LazyMasks:
    """``(N, H, W)`` ground-truth masks computed per requested row from boxes (numpy-like view)."""

    def __init__(self, boxes: Sequence[Any], size: int, render: Callable[[Any, tuple[int, int]], np.ndarray]):
        self.boxes = list(boxes)
        self.size = int(size)
        self.render = render
        self.dtype = np.dtype(np.float32)

    @property
    def shape(self) -> tuple[int, int, int]:
        return (len(self.boxes), self.size, self.size)

    @property
    def ndim(self) -> int:
        return 3

    def __len__(self) -> int:
        return len(self.boxes)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = self[np.arange(len(self))]
        return out if dtype is None else out.astype(dtype)

    def __getitem__(self, idx: Any) -> np.ndarray:
        if isinstance(idx, (int, np.integer)):
            return self.render(self.boxes[int(idx)], (self.size, self.size)).astype(np.float32)
        rows = np.arange(len(self))[idx]
        out = np.zeros((len(rows), self.size, self.size), dtype=np.float32)
        for j, r in enumerate(np.atleast_1d(rows)):
            out[j] = self.render(self.boxes[int(r)], (self.size, self.size))
        return out


def render_box_mask(boxes: Any, size: tuple[int, int]) -> np.ndarray:
    """VGG-SS ground truth: union of the (single annotator's) normalised boxes."""

    pooled = [b for annotator in boxes for b in annotator]
    return box_mask(np.asarray(pooled, dtype=np.float64).reshape(-1, 4), size, source="vggss.json")


# --------------------------------------------------------------------------- building
@dataclass(frozen=True)
class LocalizationConfig:
    image_size: int = 64
    mask_size: int = 224
    audio_seconds: float = 3.0
    train: str = "extra"
    missing: str = "error"
    quick: bool = False


def parse_config(options: dict[str, Any], name: str, quick: bool) -> LocalizationConfig:
    return LocalizationConfig(
        image_size=parse_option(options, name, "image_size", int, 64, minimum=8),
        mask_size=parse_option(options, name, "mask_size", int, 224, minimum=8),
        audio_seconds=parse_option(options, name, "audio_seconds", float, 3.0, minimum=0.1),
        train=parse_option(options, name, "train", str, "extra", choices=("extra", "annotated")),
        missing=parse_option(options, name, "missing", str, "error", choices=("error", "skip")),
        quick=bool(quick),
    )


LOCALIZATION_OPTIONS = {
    "image_size": "side of the square RGB frames fed to models (default 64; papers use 224)",
    "mask_size": "side of the ground-truth masks heatmaps are scored at (default 224, the LVS protocol)",
    "audio_seconds": "seconds of audio around the clip centre (default 3)",
    "train": "extra (default: train on non-test clips in frames/+audio/) or annotated (60/10/30 split of the "
             "annotated clips)",
    "missing": "error (default) or skip annotated clips whose frame or wav is missing",
}


def media_ids(folder: Path) -> set[str]:
    """Ids with both ``frames/<id>.jpg`` and ``audio/<id>.wav``."""
    frames = {p.stem for p in (folder / "frames").glob("*.jpg")}
    audio = {p.stem for p in (folder / "audio").glob("*.wav")}
    return frames & audio


def plan_splits(items: list[LocalizationItem], folder: Path, cfg: LocalizationConfig, name: str,
                quick_sizes: dict[str, int]) -> tuple[dict[str, list[LocalizationItem]], int]:
    """Which clips go to train / val / test (unannotated training clips get label '' and no boxes)."""
    available = media_ids(folder)
    missing = [it for it in items if it.file not in available]
    if missing and cfg.missing == "error":
        it = missing[0]
        gone = folder / "frames" / f"{it.file}.jpg"
        if gone.exists():
            gone = folder / "audio" / f"{it.file}.wav"
        raise InputError(gone, None, f"not found ({len(missing)} of {len(items)} annotated clips lack a frame or "
                                     "a wav; pass --option missing=skip to leave them out)")
    items = [it for it in items if it.file in available]
    if not items:
        raise InputError(folder, None, f"none of the annotated clips has frames/<id>.jpg and audio/<id>.wav ({LAYOUT})")
    plan: dict[str, list[LocalizationItem]] = {}
    if cfg.train == "extra":
        test_ids = {it.file for it in items} | {it.file for it in missing}
        extra = sorted(available - test_ids)
        if len(extra) < 2:
            raise InputError(folder / "frames", None, f"no training clips: every clip in frames/ is in the {name} test "
                             "list; add training clips in the same layout or pass --option train=annotated")
        pool = [LocalizationItem(f, "", ()) for f in extra]
        plan["val"] = [it for it in pool if stable_fraction(it.file) < 0.1] or pool[:1]
        val_ids = {it.file for it in plan["val"]}
        plan["train"] = [it for it in pool if it.file not in val_ids]
        plan["test"] = items
    else:
        frac = {it.file: stable_fraction(it.file) for it in items}
        plan["train"] = [it for it in items if frac[it.file] < 0.6]
        plan["val"] = [it for it in items if 0.6 <= frac[it.file] < 0.7]
        plan["test"] = [it for it in items if frac[it.file] >= 0.7]
        for s, part in plan.items():
            if not part:
                raise InputError(folder, None, f"too few annotated clips ({len(items)}) for a {s} split")
    if cfg.quick:
        plan = {s: part[: quick_sizes[s]] for s, part in plan.items()}
    return plan, len(missing)


def build_localization(name: str, folder: Path, items: list[LocalizationItem], classes: tuple[str, ...],
                       render: Callable[[Any, tuple[int, int]], np.ndarray], cfg: LocalizationConfig,
                       quick_sizes: dict[str, int], extra: dict[str, Any],
                       annotations: list[Path]) -> InMemoryDataset:
    """Read frames and audio of the planned splits (cached) and assemble the dataset.

    ``annotations`` are the files the items (labels, boxes) were read from: with the frames and
    audio read here, their content is the dataset's fingerprint.
    """
    plan, n_missing = plan_splits(items, folder, cfg, name, quick_sizes)
    order = [(s, it) for s in ("train", "val", "test") for it in plan[s]]
    paths = [folder / "frames" / f"{it.file}.jpg" for _, it in order] + [
        folder / "audio" / f"{it.file}.wav" for _, it in order]
    clip_len = int(round(cfg.audio_seconds * SAMPLE_RATE))

    def build() -> dict[str, np.ndarray]:
        images = np.stack([read_image(folder / "frames" / f"{it.file}.jpg", cfg.image_size) for _, it in order])
        waves = np.stack([load_wave(folder / "audio" / f"{it.file}.wav", SAMPLE_RATE, clip_len, centre=True)
                          for _, it in order])
        feats = segment_log_mel(waves, SAMPLE_RATE, segments=1, frames_per_segment=FRAMES, n_mels=N_MELS,
                                n_fft=N_FFT, fmin=50.0)
        split = np.asarray([("train", "val", "test").index(s) for s, _ in order])
        return {"images": images, "audio": standardise(feats, np.flatnonzero(split == 0)), "split": split}

    media = files_digest(paths)  # content of every frame and wav (memoised per file state)
    key = cache_key(name, {"version": VERSION, **asdict(cfg), "ids": [it.file for _, it in order], "files": media})
    arrays, digest = cached_arrays(key, build)
    index = {c: k for k, c in enumerate(classes)}
    splits = {}
    for code, s in enumerate(("train", "val", "test")):
        sel = np.flatnonzero(arrays["split"] == code)
        part = plan[s]
        annotated = all(it.boxes for it in part)
        splits[s] = AVSplit(
            audio=arrays["audio"][sel], visual=arrays["images"][sel][:, None],
            labels=np.asarray([index.get(it.label, -1) for it in part], dtype=np.int64),
            masks=LazyMasks([it.boxes for it in part], cfg.mask_size, render) if annotated else None,
            ids=[it.file for it in part],
        )
    spec = DataSpec(
        name=name, audio_shape=(1, FRAMES * N_MELS), visual_shape=(1, 3, cfg.image_size, cfg.image_size),
        num_classes=len(classes), class_names=classes, sample_rate=SAMPLE_RATE, visual_is_image=True,
        extra={"config": asdict(cfg), "missing_clips": n_missing, "mask_size": cfg.mask_size,
               "unlabelled_train": cfg.train == "extra", **extra},
    )
    return InMemoryDataset(spec=spec, splits=splits, content_hash=combine(digest, media, files_digest(annotations)))


@register_dataset(
    "vggss",
    tasks=("localization",),
    layout=LAYOUT,
    licence="annotations: Apache-2.0 (LVS release); VGGSound clips: CC BY 4.0 (videos from YouTube)",
    citation=("H. Chen, W. Xie, T. Afouras, A. Nagrani, A. Vedaldi, A. Zisserman, Localizing Visual Sounds the "
              "Hard Way, CVPR 2021; H. Chen et al., VGGSound: A Large-scale Audio-Visual Dataset, ICASSP 2020"),
    needs_data_root=True,
    description="VGG-Sound Source: 5,158 annotated VGGSound frames (boxes), LVS cIoU/AUC protocol",
    homepage="https://www.robots.ox.ac.uk/~vgg/research/lvs/ (annotations: github.com/hche11/Localizing-Visual-"
             "Sounds-the-Hard-Way; clips: https://www.robots.ox.ac.uk/~vgg/data/vggsound/)",
    options={**LOCALIZATION_OPTIONS, "list": "all (default: every vggss.json entry) or test (only ids in vggss_test.csv)"},
)
def load_vggss(*, data_root: Path | None, options: dict[str, Any], quick: bool, seed: int) -> InMemoryDataset:
    root = resolve_root(data_root, "vggss", LAYOUT)
    ann = locate(root, "vggss.json", ("metadata", "vggss", "annotations/vggss"))
    folder = root if (root / "frames").is_dir() else ann
    cfg = parse_config(options, "vggss", quick)
    which = parse_option(options, "vggss", "list", str, "all", choices=("all", "test"))
    items = read_vggss_json(ann / "vggss.json")
    if which == "test":
        keep = set(read_id_list(ann / "vggss_test.csv"))
        items = [it for it in items if it.file in keep]
    classes = tuple(sorted({it.label for it in items}))
    return build_localization("vggss", folder, items, classes, render_box_mask, cfg,
                              {"train": 300, "val": 40, "test": 200},
                              {"list": which, "degenerate_boxes": LAST_DEGENERATE.get(str(ann / "vggss.json"), 0),
                               "empty_masks": sum(not it.boxes[0] for it in items)},
                              [ann / "vggss.json", *([ann / "vggss_test.csv"] if which == "test" else [])])
