"""``esc50``: ESC-50 environmental sound classification (Piczak, ACM MM 2015), audio only.

2,000 five-second clips (44.1 kHz mono) of 50 classes in 5 predefined folds. The survey
reports ESC-50 as 5-fold cross-validated accuracy of (frozen) audio embeddings. Layout of
``--data-root DIR`` (the official repository / archive)::

    DIR/meta/esc50.csv    filename,fold,target,category,esc10,src_file,take   (header line)
    DIR/audio/<filename>  the wav files

``fold=K`` (1..5, default 1) makes fold K the test split; the other four folds are trained
on, with 10 % of their source recordings (stable hash of ``src_file``, so excerpts of one
recording stay together, as the folds do) held out for validation. The full protocol
averages the test accuracy over the five folds: ``fold=all`` builds all five (a
:class:`CrossValDataset`: its own splits are fold 1's, :meth:`CrossValDataset.fold` gives
each fold's dataset, exactly as ``fold=K`` builds it, and ``spec.extra["cv_folds"]`` lists
them), and the classification task reports the mean test accuracy with the per-fold values.
``subset=esc10`` keeps the 10-class ESC-10 subset (targets renumbered).

Audio: each clip is resampled to 22,050 Hz, cut/padded to 5 s, and described by a log-mel
spectrogram (40 bands, 46 ms window) pooled to T = 5 one-second segments of 4 frames,
``(5, 160)``, standardised with train statistics. ESC-50 has no pictures: visual is a
constant ``(5, 1, 1, 1)`` zero map and ``spec.extra["audio_only"]`` is True.
"""
from __future__ import annotations

import csv
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, InputError
from ..interface import DataSpec
from ._io import (
    cache_key,
    cached_arrays,
    load_wave,
    locate,
    need_file,
    parse_option,
    resolve_root,
    segment_log_mel,
    stable_fraction,
    standardise,
)
from .base import AVSplit, InMemoryDataset
from .filehash import combine, files_digest
from .registry import register_dataset

VERSION = "1"
SAMPLE_RATE = 22050
CLIP_SECONDS = 5
SEGMENTS = 5
FRAMES_PER_SEGMENT = 4
N_MELS = 40
N_FFT = 1024
FOLDS = (1, 2, 3, 4, 5)
COLUMNS = ("filename", "fold", "target", "category", "esc10", "src_file", "take")
LAYOUT = "DIR/meta/esc50.csv + DIR/audio/*.wav (official ESC-50 repository layout)"


#: the ``fold`` option value that builds every fold (5-fold cross-validation)
ALL_FOLDS = "all"


def esc50_folds() -> tuple[int, ...]:
    """The five test folds; the ESC-50 protocol reports the mean test accuracy over them."""
    return FOLDS


@dataclass(frozen=True)
class ESCClip:
    filename: str
    fold: int
    target: int
    category: str
    esc10: bool
    src_file: str


def read_meta(path: Path) -> list[ESCClip]:
    """Parse ``meta/esc50.csv`` (validated: columns, folds 1-5, one category name per target)."""
    need_file(path)
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None or tuple(h.strip() for h in header) != COLUMNS:
            raise InputError(path, "line 1", f"expected header {','.join(COLUMNS)}, got {','.join(header or [])!r}")
        clips, names = [], {}
        for lineno, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) != len(COLUMNS):
                raise InputError(path, f"line {lineno}", f"expected {len(COLUMNS)} columns, got {len(row)}")
            fn, fold, target, cat, esc10, src, _take = (c.strip() for c in row)
            try:
                fold_i, target_i = int(fold), int(target)
            except ValueError:
                raise InputError(path, f"line {lineno}", f"fold and target must be integers, got {fold!r}, {target!r}") \
                    from None
            if fold_i not in FOLDS:
                raise InputError(path, f"line {lineno}", f"fold must be 1..5, got {fold_i}")
            if not 0 <= target_i < 50:
                raise InputError(path, f"line {lineno}", f"target must be 0..49, got {target_i}")
            if esc10 not in ("True", "False"):
                raise InputError(path, f"line {lineno}", f"esc10 must be True or False, got {esc10!r}")
            if names.setdefault(target_i, cat) != cat:
                raise InputError(path, f"line {lineno}", f"target {target_i} is {cat!r} here but {names[target_i]!r} before")
            if not fn.endswith(".wav") or "/" in fn:
                raise InputError(path, f"line {lineno}", f"filename must be a .wav file name, got {fn!r}")
            clips.append(ESCClip(fn, fold_i, target_i, cat, esc10 == "True", src))
    if not clips:
        raise InputError(path, None, "no clips listed")
    return clips


@dataclass(frozen=True)
class ESCConfig:
    fold: int | str = 1
    subset: str = "esc50"
    quick: bool = False


@dataclass
class CrossValDataset(InMemoryDataset):
    """All test folds of a cross-validated dataset (``fold=all``).

    Its own splits and spec are those of the first fold (what a run fits a model on), with
    ``spec.extra["cv_folds"]`` listing the folds; :meth:`fold` is the dataset of one fold,
    the same as loading with ``fold=K``. The fingerprint covers every fold.
    """

    folds: dict[int, InMemoryDataset] = field(default_factory=dict)

    def fold(self, k: int) -> InMemoryDataset:
        """The dataset whose test split is fold ``k``."""
        if k not in self.folds:
            raise ConfigError(f"dataset '{self.spec.name}' has no fold {k!r} (folds: {', '.join(map(str, self.folds))})")
        return self.folds[k]


def _parse_fold(options: dict[str, Any]) -> int | str:
    """``fold``: 1..5 or ``all`` (default 1)."""
    if str(options.get("fold", "")).strip().lower() == ALL_FOLDS:
        return ALL_FOLDS
    return parse_option(options, "esc50", "fold", int, 1, choices=FOLDS)


def assign_splits(clips: list[ESCClip], fold: int) -> np.ndarray:
    """0 train / 1 val / 2 test: test = ``fold``; val = 10 % of the training source recordings."""
    return np.asarray([2 if c.fold == fold else 1 if stable_fraction(c.src_file) < 0.1 else 0 for c in clips])


@register_dataset(
    "esc50",
    tasks=("classification",),
    layout=LAYOUT,
    licence="CC BY-NC 3.0 (clips from freesound.org; see the dataset's LICENSE and meta for per-clip attribution)",
    citation="K. J. Piczak, ESC: Dataset for Environmental Sound Classification, ACM Multimedia 2015",
    needs_data_root=True,
    description="ESC-50: 2,000 5-s environmental sounds, 50 classes, 5 folds (audio only; fold=K is the test fold)",
    homepage="https://github.com/karolpiczak/ESC-50",
    options={"fold": "test fold 1..5 (default 1), or all: the five folds, mean test accuracy with per-fold values",
             "subset": "esc50 (default) or esc10 (the 10-class subset)"},
)
def load_esc50(*, data_root: Path | None, options: dict[str, Any], quick: bool, seed: int) -> InMemoryDataset:
    root = locate(resolve_root(data_root, "esc50", LAYOUT), "meta/esc50.csv", ("ESC-50", "esc50", "ESC-50-master"))
    cfg = ESCConfig(fold=_parse_fold(options),
                    subset=parse_option(options, "esc50", "subset", str, "esc50", choices=("esc50", "esc10")),
                    quick=bool(quick))
    clips = read_meta(root / "meta" / "esc50.csv")
    if cfg.subset == "esc10":
        clips = [c for c in clips if c.esc10]
    if cfg.quick:  # about a third of the clips, by source recording, every class and fold kept
        clips = [c for c in clips if stable_fraction("q" + c.src_file) < 0.3]
    if cfg.fold != ALL_FOLDS:
        return _load_fold(root, clips, cfg)
    folds = {k: _load_fold(root, clips, replace(cfg, fold=k)) for k in FOLDS}
    first = folds[FOLDS[0]]
    spec = replace(first.spec, extra={**first.spec.extra, "config": asdict(cfg), "cv_folds": list(FOLDS)})
    return CrossValDataset(spec=spec, splits=first.splits,
                           content_hash=combine("cv", *(f.content_hash for f in folds.values())), folds=folds)


def _load_fold(root: Path, clips: list[ESCClip], cfg: ESCConfig) -> InMemoryDataset:
    """The dataset of one test fold (``cfg.fold``) of the listed clips."""
    targets = sorted({c.target for c in clips})
    names = {c.target: c.category for c in clips}
    split = assign_splits(clips, cfg.fold)
    for code, s in enumerate(("train", "val", "test")):
        if not (split == code).any():
            raise InputError(root / "meta" / "esc50.csv", None, f"no clips for the {s} split of fold {cfg.fold}")
    order = np.argsort(split, kind="stable")
    clips, split = [clips[i] for i in order], split[order]
    wavs = [root / "audio" / c.filename for c in clips]
    for p in wavs:
        need_file(p)

    def build() -> dict[str, np.ndarray]:
        waves = np.stack([load_wave(p, SAMPLE_RATE, SAMPLE_RATE * CLIP_SECONDS) for p in wavs])
        feats = segment_log_mel(waves, SAMPLE_RATE, segments=SEGMENTS, frames_per_segment=FRAMES_PER_SEGMENT,
                                n_mels=N_MELS, n_fft=N_FFT, fmin=20.0)
        return {"audio": standardise(feats, np.flatnonzero(split == 0)), "split": split}

    # content of the metadata (labels, folds) and of every clip (memoised per file state)
    files = files_digest([root / "meta" / "esc50.csv", *wavs])
    key = cache_key("esc50", {"version": VERSION, **asdict(cfg), "files": files,
                              "clips": [c.filename for c in clips]})
    arrays, digest = cached_arrays(key, build)
    labels = np.asarray([targets.index(c.target) for c in clips], dtype=np.int64)
    splits = {}
    for code, s in enumerate(("train", "val", "test")):
        sel = np.flatnonzero(arrays["split"] == code)
        splits[s] = AVSplit(audio=arrays["audio"][sel],
                            visual=np.broadcast_to(np.zeros((1, 1, 1, 1, 1), np.float32), (len(sel), SEGMENTS, 1, 1, 1)),
                            labels=labels[sel], ids=[clips[i].filename for i in sel],
                            meta={"fold": np.asarray([clips[i].fold for i in sel])})
    spec = DataSpec(
        name="esc50" if cfg.subset == "esc50" else "esc10", audio_shape=(SEGMENTS, FRAMES_PER_SEGMENT * N_MELS),
        visual_shape=(SEGMENTS, 1, 1, 1), num_classes=len(targets), class_names=tuple(names[t] for t in targets),
        sample_rate=SAMPLE_RATE, visual_is_image=False,
        extra={"audio_only": True, "config": asdict(cfg), "folds": list(FOLDS),
               "protocol": "5-fold cross-validation: mean test accuracy over fold=1..5"},
    )
    return InMemoryDataset(spec=spec, splits=splits, content_hash=combine(digest, files))
