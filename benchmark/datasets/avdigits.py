"""``avdigits``: spoken digits (FSDD) paired with handwritten digit images (MNIST), AV-MNIST style.

A clip is one Free Spoken Digit Dataset recording of digit ``a`` paired with an MNIST image of
digit ``b``; the pairing is by class only (the two modalities were recorded independently), so
the tasks are class-level cross-modal retrieval and classification. Two pairings
(option ``pairing``):

``cycle`` (default)
    ``b`` is ``a`` or ``a + 1 (mod 10)``, half of each spoken digit's clips each (a fixed
    seeded assignment); the 20 classes are the (spoken, written) pairs, class ``2a`` =
    (``a``, ``a``) and class ``2a + 1`` = (``a``, ``a + 1``). Every spoken digit and every
    written digit belongs to two classes, so neither modality alone names the class (each
    alone is at most 50 % right): classification measures whether both are recognised.
``class``
    ``b = a``; 10 classes, the digit (each modality alone suffices).

Each image is translated by its own random offset of at most ``shift`` pixels (option; default
4 for MNIST, 1 for the 8x8 sklearn digits, 0 = as released), so that a linear read-out of the
pixels cannot stand in for recognising the digit.

Layout of ``--data-root DIR`` (the layout of the suite's shared data folder)::

    DIR/fsdd/recordings/{digit}_{speaker}_{take}.wav   8 kHz mono PCM (3,000 files)
    DIR/mnist/t10k-images-idx3-ubyte.gz                MNIST test images, IDX format
    DIR/mnist/t10k-labels-idx1-ubyte.gz                their labels

Splits
    Audio follows the official FSDD split: takes 0-4 are test; of takes 5-49 (official
    train), takes 5-9 form our validation split and takes 10-49 train. Every speaker and
    digit appears in every split (2,400 / 300 / 300 clips).
    Images: the 10,000 MNIST t10k images are split per class into disjoint pools (80 % train,
    10 % val, 10 % test, fixed permutation), so no test image is ever seen in training.
    Each clip draws an image of its digit from its split's pool without replacement
    (restarting a fresh permutation when a pool is exhausted), seeded by ``pair_seed``.
    With ``images=sklearn`` the 1,797 8x8 images bundled with scikit-learn
    (``load_digits``, rescaled from 0..16 to 0..255, kept at 8x8) are used instead, so only
    FSDD is needed; their pools are smaller than the audio splits and are cycled.

Features
    audio ``(T=4, 160)``: each recording is cut/zero-padded to 1 s, its log-mel spectrogram
    (32 mel bands, 32 ms window, 8 ms hop) is average-pooled to 4 segments x 5 frames and each
    segment's 5 x 32 values are flattened; features are standardised with train statistics.
    visual ``(T=4, 1, S, S)`` uint8 grey-scale (S = 28 for MNIST, 8 for sklearn): the same
    image as each of the T frames, so a clip's frames are aligned with its audio segments.

``quick=True`` keeps a class-balanced subset of 600 train / 120 val / 300 test clips.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ..interface import DataSpec
from ._io import (
    cache_key,
    cached_arrays,
    load_wave,
    parse_option,
    read_idx,
    resolve_root,
    segment_log_mel,
    standardise,
)
from .base import AVSplit, InMemoryDataset
from .filehash import combine, files_digest
from .registry import register_dataset

VERSION = "3"
SAMPLE_RATE = 8000
SEGMENTS = 4
FRAMES_PER_SEGMENT = 5
N_MELS = 32
N_FFT = 256
CLIP_SAMPLES = SAMPLE_RATE  # 1 s
CLASS_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
PAIRINGS = ("cycle", "class")
QUICK_SIZES = {"train": 600, "val": 120, "test": 300}
IMAGE_POOLS = {"train": 0.8, "val": 0.1, "test": 0.1}
_NAME = re.compile(r"^(\d)_([A-Za-z]+)_(\d+)\.wav$")
LAYOUT = ("DIR/fsdd/recordings/{digit}_{speaker}_{take}.wav (FSDD) + DIR/mnist/t10k-images-idx3-ubyte.gz and "
          "DIR/mnist/t10k-labels-idx1-ubyte.gz (MNIST, IDX format); images=sklearn needs FSDD only")


@dataclass(frozen=True)
class Recording:
    path: Path
    digit: int
    speaker: str
    take: int

    @property
    def split(self) -> str:
        """Official FSDD test = takes 0-4; our validation = takes 5-9; train = takes 10-49."""
        return "test" if self.take < 5 else "val" if self.take < 10 else "train"


def fsdd_recordings(folder: Path) -> list[Recording]:
    """All ``{digit}_{speaker}_{take}.wav`` files of an FSDD ``recordings`` folder, sorted by name."""
    if not folder.is_dir():
        raise InputError(folder, None, "FSDD recordings folder not found (expected DIR/fsdd/recordings/*.wav)")
    out = []
    for p in sorted(folder.glob("*.wav")):
        m = _NAME.match(p.name)
        if m is None:
            raise InputError(p, None, "file name does not follow FSDD's {digit}_{speaker}_{take}.wav")
        out.append(Recording(p, int(m.group(1)), m.group(2), int(m.group(3))))
    if not out:
        raise InputError(folder, None, "no .wav recordings found")
    return out


def mnist_t10k(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """MNIST test images ``(10000, 28, 28)`` uint8 and labels ``(10000,)`` from the IDX files."""
    img_path = folder / "t10k-images-idx3-ubyte.gz"
    lab_path = folder / "t10k-labels-idx1-ubyte.gz"
    images, labels = read_idx(img_path), read_idx(lab_path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise InputError(img_path, "data", f"expected (N, 28, 28) uint8 images, got {images.shape} {images.dtype}")
    if labels.ndim != 1 or len(labels) != len(images):
        raise InputError(lab_path, "data", f"expected {len(images)} labels, got shape {labels.shape}")
    if labels.min() < 0 or labels.max() > 9:
        raise InputError(lab_path, "data", f"labels must be digits 0-9, got range {labels.min()}..{labels.max()}")
    return images, labels.astype(np.int64)


def sklearn_digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled 8x8 digits ``(1797, 8, 8)`` rescaled to uint8 0..255, and labels."""
    from sklearn.datasets import load_digits

    d = load_digits()
    images = np.round(d.images * (255.0 / 16.0)).astype(np.uint8)
    return images, d.target.astype(np.int64)


def image_pools(labels: np.ndarray, seed: int) -> dict[str, dict[int, np.ndarray]]:
    """Disjoint per-class pools of image indices for train / val / test (80/10/10 %)."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 7]))
    pools: dict[str, dict[int, np.ndarray]] = {s: {} for s in IMAGE_POOLS}
    for d in range(10):
        idx = rng.permutation(np.flatnonzero(labels == d))
        n_val = max(1, int(round(IMAGE_POOLS["val"] * len(idx))))
        n_test = max(1, int(round(IMAGE_POOLS["test"] * len(idx))))
        if len(idx) < 3:
            raise InputError("images", f"digit {d}", f"needs at least 3 images, got {len(idx)}")
        pools["test"][d] = idx[:n_test]
        pools["val"][d] = idx[n_test : n_test + n_val]
        pools["train"][d] = idx[n_test + n_val :]
    return pools


def pair_images(digits: np.ndarray, pool: dict[int, np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """For each clip's digit, an image index from ``pool`` (without replacement until exhausted)."""
    out = np.empty(len(digits), dtype=np.int64)
    for d in range(10):
        where = np.flatnonzero(digits == d)
        if len(where) == 0:
            continue
        reps = -(-len(where) // len(pool[d]))
        draws = np.concatenate([rng.permutation(pool[d]) for _ in range(reps)])
        out[where] = draws[: len(where)]
    return out


def _balanced_subset(recs: list[Recording], n: int, rng: np.random.Generator) -> list[Recording]:
    by_digit = [[r for r in recs if r.digit == d] for d in range(10)]
    per = [n // 10 + (1 if d < n % 10 else 0) for d in range(10)]
    keep = []
    for d in range(10):
        pick = rng.permutation(len(by_digit[d]))[: per[d]]
        keep += [by_digit[d][i] for i in sorted(pick)]
    return sorted(keep, key=lambda r: r.path.name)


@dataclass(frozen=True)
class AVDigitsConfig:
    images: str = "mnist"
    pair_seed: int = 0
    quick: bool = False
    pairing: str = "cycle"
    shift: int = -1  # -1: the default for the image set (DEFAULT_SHIFT)


#: default largest translation (pixels) of a clip's image per image set: about a seventh of the side
DEFAULT_SHIFT = {"mnist": 4, "sklearn": 1}


def shift_images(images: np.ndarray, max_shift: int, rng: np.random.Generator) -> np.ndarray:
    """Each image translated by its own random ``(dy, dx)`` in ``[-max_shift, max_shift]``, zero-filled.

    A digit anywhere in its frame: a convolutional encoder with pooling reads it wherever it is,
    a linear read-out of the pixels (the untrained ``random`` reference's probe) much less well.
    """
    if max_shift <= 0:
        return images.copy()
    n, h, w = images.shape
    s = int(max_shift)
    padded = np.pad(images, ((0, 0), (s, s), (s, s)))
    offsets = rng.integers(0, 2 * s + 1, size=(n, 2))
    return np.stack([padded[i, dy : dy + h, dx : dx + w] for i, (dy, dx) in enumerate(offsets)])


def num_classes(pairing: str) -> int:
    """20 (spoken, written) pairs for ``cycle``, 10 digits for ``class``."""
    return 20 if pairing == "cycle" else 10


def class_names(pairing: str) -> tuple[str, ...]:
    if pairing == "class":
        return CLASS_NAMES
    return tuple(f"{CLASS_NAMES[k // 2]}/{CLASS_NAMES[(k // 2 + k % 2) % 10]}" for k in range(20))


def written_digits(spoken: np.ndarray, split: np.ndarray, pairing: str, rng: np.random.Generator) -> np.ndarray:
    """The digit each clip's image shows: ``spoken`` (``class``), or for ``cycle`` the spoken digit
    for one half of each (split, spoken digit) group and the next digit (mod 10) for the other
    half (a seeded permutation; an odd group gives its extra clip to the next digit)."""
    if pairing == "class":
        return spoken.copy()
    out = spoken.copy()
    for code in np.unique(split):
        for d in range(10):
            where = rng.permutation(np.flatnonzero((split == code) & (spoken == d)))
            out[where[len(where) // 2 :]] = (d + 1) % 10
    return out


def build_arrays(root: Path, cfg: AVDigitsConfig) -> dict[str, np.ndarray]:
    """Read, pair and featurise; returns flat arrays with a ``split`` code per clip (0/1/2)."""
    recs = fsdd_recordings(root / "fsdd" / "recordings")
    if cfg.images == "mnist":
        images, img_labels = mnist_t10k(root / "mnist")
    else:
        images, img_labels = sklearn_digits()
    rng = np.random.default_rng(np.random.SeedSequence([cfg.pair_seed, 11]))
    pools = image_pools(img_labels, cfg.pair_seed)
    chosen: list[Recording] = []
    split_code: list[int] = []
    for code, name in enumerate(("train", "val", "test")):
        part = [r for r in recs if r.split == name]
        if not part:
            raise InputError(root / "fsdd" / "recordings", None, f"no recordings for the {name} split")
        if cfg.quick:
            part = _balanced_subset(part, QUICK_SIZES[name], rng)
        chosen += part
        split_code += [code] * len(part)
    split = np.asarray(split_code, dtype=np.int64)
    digits = np.asarray([r.digit for r in chosen], dtype=np.int64)
    written = written_digits(digits, split, cfg.pairing, rng)
    labels = digits if cfg.pairing == "class" else 2 * digits + (written != digits)
    image_idx = np.empty(len(chosen), dtype=np.int64)
    for code, name in enumerate(("train", "val", "test")):
        sel = split == code
        image_idx[sel] = pair_images(written[sel], pools[name], rng)
    waves = np.stack([load_wave(r.path, SAMPLE_RATE, CLIP_SAMPLES) for r in chosen])
    feats = segment_log_mel(waves, SAMPLE_RATE, segments=SEGMENTS, frames_per_segment=FRAMES_PER_SEGMENT,
                            n_mels=N_MELS, n_fft=N_FFT, fmin=50.0)
    audio = standardise(feats, np.flatnonzero(split == 0))
    shift = DEFAULT_SHIFT[cfg.images] if cfg.shift < 0 else cfg.shift
    shown = shift_images(images[image_idx], shift, np.random.default_rng(np.random.SeedSequence([cfg.pair_seed, 13])))
    return {
        "audio": audio, "images": shown, "labels": labels, "split": split,
        "image_index": image_idx, "ids": np.asarray([r.path.stem for r in chosen]),
    }


_OPTIONS = {
    "images": "mnist (default: MNIST t10k IDX files under DIR/mnist) or sklearn (scikit-learn's 8x8 digits; FSDD only)",
    "pair_seed": "seed of the image pools and of the audio-image pairing (default 0)",
    "pairing": ("cycle (default: the image shows the spoken digit or the next one; 20 (spoken, written) classes, "
                "neither modality alone names the class) or class (the image shows the spoken digit; 10 classes)"),
    "shift": ("largest random translation of each image in pixels, zero-filled (default 4 for mnist, 1 for sklearn; "
              "0: none, the images as released)"),
}


@register_dataset(
    "avdigits",
    tasks=("retrieval", "classification", "robustness"),
    layout=LAYOUT,
    licence="FSDD: CC BY-SA 4.0; MNIST: CC BY-SA 3.0 (Y. LeCun, C. Cortes); scikit-learn digits: BSD-3-Clause (UCI)",
    citation=("Z. Jackson et al., Free Spoken Digit Dataset (FSDD), 2018, doi:10.5281/zenodo.1342401; "
              "Y. LeCun, C. Cortes, C. J. C. Burges, The MNIST database of handwritten digits, 1998"),
    needs_data_root=False,
    description="AV-MNIST style: FSDD spoken digits paired by class with MNIST images (retrieval, classification)",
    homepage="https://github.com/Jakobovski/free-spoken-digit-dataset ; http://yann.lecun.com/exdb/mnist/",
    options=_OPTIONS,
)
def load_avdigits(*, data_root: Path | None, options: dict[str, Any], quick: bool, seed: int) -> InMemoryDataset:
    """Build ``avdigits`` (``seed`` is the model seed and does not change the data; see ``pair_seed``)."""
    root = resolve_root(data_root, "avdigits", LAYOUT)
    cfg = AVDigitsConfig(
        images=parse_option(options, "avdigits", "images", str, "mnist", choices=("mnist", "sklearn")),
        pair_seed=parse_option(options, "avdigits", "pair_seed", int, 0),
        quick=bool(quick),
        pairing=parse_option(options, "avdigits", "pairing", str, "cycle", choices=PAIRINGS),
        shift=parse_option(options, "avdigits", "shift", int, -1, minimum=0),
    )
    inputs = [root / "fsdd" / "recordings"]
    if cfg.images == "mnist":
        inputs += [root / "mnist" / "t10k-images-idx3-ubyte.gz", root / "mnist" / "t10k-labels-idx1-ubyte.gz"]
    for p in inputs:
        if not p.exists():
            raise InputError(p, None, f"not found (expected layout: {LAYOUT})")
    wavs = sorted((root / "fsdd" / "recordings").glob("*.wav"))
    # content of every input file (memoised per file state): the cache key and the fingerprint
    files = files_digest([*wavs, *inputs[1:]])
    key = cache_key("avdigits", {"version": VERSION, **asdict(cfg), "root": str(root.resolve()), "files": files})
    arrays, digest = cached_arrays(key, lambda: build_arrays(root, cfg))
    return _assemble(arrays, combine(digest, files), cfg)


def _assemble(arrays: dict[str, np.ndarray], digest: str, cfg: AVDigitsConfig) -> InMemoryDataset:
    size = int(arrays["images"].shape[-1])
    splits = {}
    for code, name in enumerate(("train", "val", "test")):
        sel = np.flatnonzero(arrays["split"] == code)
        img = arrays["images"][sel]
        # the same image as each of the T frames: a read-only broadcast view, no copies
        visual = np.broadcast_to(img[:, None, None], (len(sel), SEGMENTS, 1, size, size))
        splits[name] = AVSplit(audio=arrays["audio"][sel], visual=visual, labels=arrays["labels"][sel],
                               ids=[str(i) for i in arrays["ids"][sel]],
                               meta={"image_index": arrays["image_index"][sel]})
    spec = DataSpec(
        name="avdigits", audio_shape=(SEGMENTS, FRAMES_PER_SEGMENT * N_MELS), visual_shape=(SEGMENTS, 1, size, size),
        num_classes=num_classes(cfg.pairing), class_names=class_names(cfg.pairing), sample_rate=SAMPLE_RATE,
        visual_is_image=True, instance_pairs=False,  # images are drawn per class, not recorded with the sound
        extra={"config": asdict(cfg), "pairing": f"by class ({cfg.pairing})", "audio_front_end": {
            "clip_seconds": CLIP_SAMPLES / SAMPLE_RATE, "n_fft": N_FFT, "hop": N_FFT // 4, "n_mels": N_MELS,
            "frames_per_segment": FRAMES_PER_SEGMENT}},
    )
    return InMemoryDataset(spec=spec, splits=splits, content_hash=digest)
