"""``avsynth``: the embedded procedural audio-visual dataset (the suite's offline default).

Generator version 3 (kept by 4 and 5) is designed so that every task family measures audio-visual correlation
rather than a unimodal shortcut (issue 12): K classes are the edges of a look-sound cycle over
m = ceil(K / 2) looks (object colours) and m sounds (pitch registers), so each modality alone
names two classes; the sounding object sits anywhere on a wrapped frame over a background of
a non-look colour, so a linear read-out of the pixels (the untrained ``random`` reference)
cannot pick its colour while a convolutional encoder can; it is visible in every segment of a
clip of T segments (10, as AVE) and heard only in one contiguous run of "event" segments,
outside which an off-screen sound that matches none of the visible looks may play, so an
event segment is one where the sound matches the visible object. A ``difficulty`` knob in
[0, 1] scales every nuisance: position range, clutter, pixel noise, colour and pitch jitter,
SNR, level jitter and the probabilities of the silent distractor, of the off-screen sound and
of a drowned clip whose sound cannot be told (docs/datasets.md has the table per family).

Per clip it provides everything each task family needs: log-mel audio features per
segment, RGB frames per segment, per-segment labels (background = K), the ground-truth
mask of the sounding object, the waveform as heard and the clean source waveform
(mix-and-separate), the key frame (the event's first; localization's image) and the target
frame of sound-to-image generation: the key frame rolled (the frame is a torus) so that the
sounding object is centred (version 4: the object's position is a nuisance that no sound
carries, and a decoder asked to draw the object at an unknown place learns to draw none).

Version 5 paints every object two-tone (its look colour on two of every three diagonal lines,
the canvas showing through the third), so that localizing it needs a pixel's neighbourhood:
a per-pixel colour read-out marks only part of it. To keep the looks as recognisable as in
version 4, the colour jitter is N(0, 0.1 d) (was 0.25 d) and the radius a little larger.

Generation is deterministic from (config, seed) and cached on disk, keyed by a hash of the
config and the generator version; the file stores a content hash of its arrays.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from scipy.signal import lfilter

from ..errors import ConfigError, InputError
from ..features import log_mel
from ..interface import DataSpec
from ._io import cached_arrays
from .base import AVSplit, InMemoryDataset
from .frontend import FRONTEND_KEY, StandardisedFrontend, rms_level
from .registry import register_dataset

GENERATOR_VERSION = "5"
SHAPES = ("circle", "square", "triangle", "cross", "diamond")
#: the two-tone patterns of an object: its look colour on the "on" cells, what lies beneath on the others
TEXTURES = ("stripes", "antistripes")
#: 10 well separated hues (RGB in [0, 1]); the first ``num_looks`` are the looks of the classes
PALETTE = np.array([
    [0.90, 0.10, 0.10], [0.15, 0.30, 0.95], [0.95, 0.80, 0.10], [0.10, 0.65, 0.15], [0.70, 0.15, 0.80],
    [0.05, 0.80, 0.85], [0.95, 0.50, 0.05], [0.55, 0.35, 0.15], [0.95, 0.45, 0.70], [0.45, 0.75, 0.35],
])
#: the sounds: pitch registers 0.45 octave apart (two or three harmonics)
SOUND_F0 = tuple(160.0 * 2.0 ** (0.45 * i) for i in range(5))
#: how much louder the noise of a drowned clip is (dB)
DROWN_DB = 30.0
_SOURCE_HASH = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16]


@dataclass(frozen=True)
class AVSynthConfig:
    """Size and difficulty of a generated avsynth instance."""

    num_classes: int = 10
    segments: int = 10
    sample_rate: int = 4000
    segment_seconds: float = 0.2
    image_size: int = 32
    n_train: int = 1000
    n_val: int = 200
    n_test: int = 400
    difficulty: float = 0.5
    n_mels: int = 32
    n_fft: int = 256
    hop: int = 200
    seed: int = 0

    @classmethod
    def quick(cls, **kw: Any) -> AVSynthConfig:
        return cls(**{"n_train": 300, "n_val": 60, "n_test": 120, **kw})

    def validate(self) -> None:
        if not 2 <= self.num_classes <= len(PALETTE):
            raise ConfigError(f"avsynth: num_classes must be in [2, {len(PALETTE)}], got {self.num_classes}")
        if not 0.0 <= self.difficulty <= 1.0:
            raise ConfigError(f"avsynth: difficulty must be in [0, 1], got {self.difficulty}")
        if self.segments < 3:
            raise ConfigError(f"avsynth: segments must be >= 3, got {self.segments}")
        seg = self.sample_rate * self.segment_seconds
        if abs(seg - round(seg)) > 1e-9 or round(seg) % self.hop:
            raise ConfigError("avsynth: a segment must be a whole number of hops")
        if min(self.n_train, self.n_val, self.n_test) < self.num_classes:
            raise ConfigError("avsynth: every split needs at least num_classes clips")

    @property
    def segment_samples(self) -> int:
        return int(round(self.sample_rate * self.segment_seconds))

    def key(self) -> str:
        # the generator's own source is part of the key: editing it can never serve a stale cache
        blob = json.dumps({"version": GENERATOR_VERSION, "source": _SOURCE_HASH, **asdict(self)}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


# ----------------------------------------------------------------------------- classes
def num_looks(num_classes: int) -> int:
    """How many looks (and sounds) K classes share: ceil(K / 2), at least 2."""
    return max(2, -(-num_classes // 2))


def class_pair(k: int, num_classes: int) -> tuple[int, int]:
    """(look, sound) of class k: classes are the edges of a look-sound cycle.

    Class ``2i`` is look ``i`` with sound ``i`` and class ``2i + 1`` look ``i`` with sound
    ``i + 1 (mod m)``: every look is shared by two classes and so is every sound, so
    neither modality alone names the class; the pair does.
    """
    m = num_looks(num_classes)
    return k // 2, (k // 2 + k % 2) % m


def class_look(k: int, num_classes: int = 10) -> dict[str, Any]:
    """The look of class k: its colour (shape, texture and position vary per clip)."""
    return {"colour": PALETTE[class_pair(k, num_classes)[0]]}


def class_sound(k: int, num_classes: int = 10) -> dict[str, Any]:
    """The sound of class k: its fundamental (Hz) and harmonic amplitudes."""
    i = class_pair(k, num_classes)[1]
    amps = np.array([1.0, 0.5, 0.25])[: 2 + i % 2]
    return {"f0": SOUND_F0[i], "amps": amps / np.sqrt((amps**2).sum())}


_COLOUR_NAMES = ("red", "blue", "yellow", "green", "magenta")


def class_names(num_classes: int) -> tuple[str, ...]:
    return tuple(f"{_COLOUR_NAMES[class_pair(k, num_classes)[0]]}@{class_sound(k, num_classes)['f0']:.0f}Hz"
                 for k in range(num_classes))


def _pairs(num_classes: int) -> set[tuple[int, int]]:
    return {class_pair(k, num_classes) for k in range(num_classes)}


# ----------------------------------------------------------------------------- rendering
def shape_mask(shape: str, size: int, cx: float, cy: float, r: float, *, wrap: bool = False) -> np.ndarray:
    """Boolean (size, size) mask of a shape centred at (cx, cy) with radius r (pixels).

    ``wrap``: the frame is a torus (what leaves one side enters the opposite one), so a shape
    keeps its whole area wherever its centre is.
    """
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64) + 0.5
    dx, dy = xx - cx, yy - cy
    if wrap:
        dx, dy = (dx + size / 2) % size - size / 2, (dy + size / 2) % size - size / 2
    if shape == "circle":
        m = dx**2 + dy**2 <= r**2
    elif shape == "square":
        m = np.maximum(np.abs(dx), np.abs(dy)) <= 0.8 * r
    elif shape == "triangle":
        h = (dy + r) / (1.8 * r)  # 0 at apex, 1 at base
        m = (dy >= -r) & (dy <= 0.8 * r) & (np.abs(dx) <= h * r)
    elif shape == "cross":
        w = r / 3.0
        m = ((np.abs(dx) <= w) & (np.abs(dy) <= r)) | ((np.abs(dy) <= w) & (np.abs(dx) <= r))
    elif shape == "diamond":
        m = np.abs(dx) + np.abs(dy) <= r
    else:  # pragma: no cover - SHAPES is closed
        raise ValueError(shape)
    return m


def texture_map(texture: str, size: int, phase: int) -> np.ndarray:
    """Boolean (size, size) map of the pixels a two-tone object paints in its look colour.

    ``stripes`` / ``antistripes``: diagonal / anti-diagonal lines of period 3 pixels, two on and
    one off; ``phase`` shifts the pattern. Two thirds of the pixels are on, and every 3x3 patch
    holds both tones.
    """
    yy, xx = np.mgrid[0:size, 0:size]
    if texture == "stripes":
        return (xx + yy + phase) % 3 != 0
    if texture == "antistripes":
        return (xx - yy + phase) % 3 != 0
    raise ValueError(texture)  # pragma: no cover - TEXTURES is closed


# ----------------------------------------------------------------------------- generation
def harmonic_tone(f0: float, amps: np.ndarray, n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """A harmonic tone at ``f0`` (harmonics at or above Nyquist - 50 Hz left out), random phases."""
    t = np.arange(n) / sr
    out = np.zeros(n)
    for h, a in enumerate(amps, start=1):
        if h * f0 < sr / 2 - 50:
            out += a * np.sin(2 * np.pi * h * f0 * t + rng.uniform(0, 2 * np.pi))
    return out


def _ramp(mask: np.ndarray, width: int) -> np.ndarray:
    """Smooth 0/1 on-off sample mask with linear ramps (no clicks at event boundaries)."""
    kernel = np.ones(width) / width
    return np.convolve(mask.astype(np.float64), kernel, mode="same")


def _coloured_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """Unit-variance noise between white and brownish (a random one-pole low-pass)."""
    alpha = rng.uniform(0.0, 0.9)
    out = lfilter([1.0 - alpha], [1.0, -alpha], rng.standard_normal(n))
    return out / (out.std() + 1e-12)


def _paint(mask: np.ndarray, canvas: np.ndarray, colour: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``canvas`` with the object ``mask`` painted two-tone: ``colour`` on the on-pixels of a random
    :func:`texture_map`, the canvas (background, clutter) showing through the off-lines.

    Version 5: a per-pixel read-out of colour (the untrained ``random`` reference's spatial map)
    can mark only the look-coloured two thirds of an object, which under LVS's median threshold
    stays below cIoU 0.5 for an object under about 0.45 of the frame, while an encoder that sees a
    pixel's neighbourhood can mark all of it (``tests/test_avsynth.py`` measures both).
    """
    tone = texture_map(TEXTURES[rng.integers(0, len(TEXTURES))], canvas.shape[-1], int(rng.integers(0, 6)))
    return np.where((mask & tone)[None], colour[:, None, None], canvas)


def _clip(cfg: AVSynthConfig, label: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    d, S, T, sr, K = cfg.difficulty, cfg.image_size, cfg.segments, cfg.sample_rate, cfg.num_classes
    seg_n = cfg.segment_samples
    m = num_looks(K)
    pairs = _pairs(K)
    look, sound = class_pair(label, K)
    # --- temporal layout: one contiguous event of >= 3 segments. The sounding object is
    # visible in EVERY segment; the event is where it is also heard, so its boundaries are
    # only in the audio, and (with an off-screen sound) only in whether the sound matches it.
    length = int(rng.integers(3, T + 1))
    start = int(rng.integers(0, T - length + 1))
    event = np.zeros(T, dtype=bool)
    event[start : start + length] = True

    # --- visual: the sounding object (its colour is the look) anywhere in the frame, maybe a
    # silent distractor whose look never forms a class with the clip's sound, clutter, noise
    # the background takes a palette colour that is no look, as bright as the object, so the
    # frame's mean colour mixes the look with a nuisance colour of larger weight
    bg_colour = PALETTE[rng.integers(m, len(PALETTE))] if m < len(PALETTE) else np.full(3, 0.5)
    background = np.broadcast_to(bg_colour[:, None, None] * rng.uniform(0.8, 1.0), (3, S, S)).copy()
    for _ in range(int(round(6 * d * rng.uniform(0.5, 1.5)))):  # clutter: small rectangles of non-look colours
        x0, y0 = rng.integers(0, S - 3, size=2)
        w, h = rng.integers(2, 7, size=2)
        background[:, y0 : y0 + h, x0 : x0 + w] = PALETTE[rng.integers(min(m, len(PALETTE) - 1), len(PALETTE))][
            :, None, None]
    r = S * rng.uniform(0.33 - 0.06 * d, 0.36 + 0.02 * d)  # under half the frame: LVS median threshold
    # anywhere on the (wrapped) frame: no pixel is more often the object's than another, so a
    # linear read-out of pixels cannot pick its colour out of the background's
    lo, hi = S / 2 - min(1.0, 2 * d) * S / 2, S / 2 + min(1.0, 2 * d) * S / 2
    shape = SHAPES[rng.integers(0, len(SHAPES))]
    cx, cy = rng.uniform(lo, hi), rng.uniform(lo, hi)
    obj = shape_mask(shape, S, cx, cy, r, wrap=True)
    visible = [look]
    if rng.uniform() < 0.6 * d:
        cands = [lk for lk in range(m) if (lk, sound) not in pairs] or [lk for lk in range(m) if lk != look]
        other = int(cands[rng.integers(0, len(cands))])
        visible.append(other)
        rr = S * rng.uniform(0.2, 0.3)
        ox, oy = rng.uniform(0, S, size=2)
        dist = shape_mask(SHAPES[rng.integers(0, len(SHAPES))], S, ox, oy, rr, wrap=True) & ~obj
        background = _paint(dist, background, np.clip(PALETTE[other] + rng.normal(0, 0.1 * d, 3), 0, 1), rng)
    colour = np.clip(PALETTE[look] + rng.normal(0, 0.1 * d, 3), 0, 1)
    painted = _paint(obj, background, colour, rng)
    noise_sigma = 0.02 + 0.12 * d
    frames = np.repeat(painted[None], T, axis=0) + rng.normal(0, noise_sigma, (T, 3, S, S))
    frames = np.clip(np.round(frames * 255), 0, 255).astype(np.uint8)

    # --- audio: the class's sound during the event; outside it, maybe an off-screen sound
    # that forms a class with none of the visible looks (as loud as the source)
    n = T * seg_n
    ramp = int(0.01 * sr) | 1
    on = np.repeat(event, seg_n)
    snd = class_sound(label, K)
    f0 = snd["f0"] * 2.0 ** rng.normal(0, 0.02 + 0.06 * d)
    source = harmonic_tone(f0, snd["amps"], n, sr, rng) * _ramp(on, ramp)
    source /= np.sqrt(np.mean(source[on] ** 2)) + 1e-12
    wave = source.copy()
    off_cands = [s for s in range(m) if all((lk, s) not in pairs for lk in visible)]
    if off_cands and not event.all() and rng.uniform() < 0.6 * d:
        i = int(off_cands[rng.integers(0, len(off_cands))])
        amps = np.array([1.0, 0.5, 0.25])[: 2 + i % 2]
        off = harmonic_tone(SOUND_F0[i] * 2.0 ** rng.normal(0, 0.02 + 0.06 * d), amps / np.sqrt((amps**2).sum()),
                            n, sr, rng) * _ramp(~on, ramp)
        off /= np.sqrt(np.mean(off[~on] ** 2)) + 1e-12
        wave = wave + off * 10 ** (rng.uniform(-3, 3) / 20)
    snr_db = 18.0 - 26.0 * d + rng.uniform(-3, 3)
    noise = _coloured_noise(n, rng)
    gain = 0.1 * 10 ** (rng.uniform(-4, 4) * d / 20)  # the level says nothing about the sound
    # a drowned clip (probability 0.4 d): the noise is DROWN_DB louder, so no stream tells which of the
    # look's two classes it is: an irreducible error that keeps classification off its ceiling
    # (drawn last, so that every other draw of the clip is the same as without it)
    if rng.uniform() < 0.4 * d:
        snr_db -= DROWN_DB
    wave = wave + noise * 10 ** (-snr_db / 20)
    return {
        "frames": frames, "mask": obj.astype(np.float32), "event": event,
        "source": (gain * source).astype(np.float32), "wave": (gain * wave).astype(np.float32),
        "target": frames[start],
        # generation's target: the key frame rolled (the frame is a torus) so that the sounding object
        # sits at the centre: what the source looks like, without the position that no sound tells
        "gen_target": np.roll(frames[start], (int(round(S / 2 - cy)), int(round(S / 2 - cx))), axis=(1, 2)),
    }


def audio_features(waves: np.ndarray, cfg: AVSynthConfig) -> np.ndarray:
    """Log-mel features ``(N, segments, frames_per_segment * n_mels)`` of ``(N, L)`` waveforms, before
    standardisation: the one feature function of avsynth (generation and its audio front end)."""
    feats = log_mel(waves, cfg.sample_rate, n_fft=cfg.n_fft, hop=cfg.hop, n_mels=cfg.n_mels, fmin=50.0).numpy()
    per_seg = cfg.segment_samples // cfg.hop
    return feats.reshape(len(feats), cfg.segments, per_seg * cfg.n_mels)


def generate(cfg: AVSynthConfig) -> dict[str, np.ndarray]:
    """All arrays of an avsynth instance (before feature extraction), deterministic from cfg."""
    cfg.validate()
    n_total = cfg.n_train + cfg.n_val + cfg.n_test
    root = np.random.default_rng(np.random.SeedSequence([cfg.seed, 20261126]))
    labels = np.concatenate([root.permutation(np.arange(n) % cfg.num_classes)
                             for n in (cfg.n_train, cfg.n_val, cfg.n_test)]).astype(np.int64)
    clip_seeds = root.integers(0, 2**63 - 1, size=n_total)
    clips = [_clip(cfg, int(y), np.random.default_rng(int(s))) for y, s in zip(labels, clip_seeds)]
    stack = {k: np.stack([c[k] for c in clips]) for k in clips[0]}
    seg_labels = np.where(stack["event"], labels[:, None], cfg.num_classes).astype(np.int64)
    audio = audio_features(stack["wave"], cfg)
    mu = audio[: cfg.n_train].mean(axis=(0, 1))
    sd = audio[: cfg.n_train].std(axis=(0, 1)) + 1e-6  # standardise with train statistics
    audio = ((audio - mu) / sd).astype(np.float32)
    return {
        "audio": audio, "visual": stack["frames"], "labels": labels, "segment_labels": seg_labels,
        "masks": stack["mask"], "sources": stack["source"], "waveforms": stack["wave"], "frames": stack["target"],
        "gen_frames": stack["gen_target"],
        "audio_mean": mu, "audio_std": sd,  # the standardisation, for the audio front end
    }


def load_or_generate(cfg: AVSynthConfig, *, use_cache: bool = True) -> tuple[dict[str, np.ndarray], str]:
    """Arrays and their content hash, from the on-disk cache when present."""
    return cached_arrays(f"avsynth-{cfg.key()}", lambda: generate(cfg), use_cache=use_cache)


def build(cfg: AVSynthConfig, *, use_cache: bool = True) -> InMemoryDataset:
    arrays, digest = load_or_generate(cfg, use_cache=use_cache)
    bounds = np.cumsum([0, cfg.n_train, cfg.n_val, cfg.n_test])
    splits = {}
    test_waves = arrays["waveforms"][int(bounds[2]) :]
    frontend = StandardisedFrontend(partial(audio_features, cfg=cfg), arrays["audio_mean"], arrays["audio_std"],
                                    samples=int(test_waves.shape[1]), level=rms_level(test_waves))
    for name, lo, hi in zip(("train", "val", "test"), bounds[:-1], bounds[1:]):
        sl = slice(int(lo), int(hi))
        splits[name] = AVSplit(
            audio=arrays["audio"][sl], visual=arrays["visual"][sl], labels=arrays["labels"][sl],
            segment_labels=arrays["segment_labels"][sl], masks=arrays["masks"][sl], sources=arrays["sources"][sl],
            waveforms=arrays["waveforms"][sl], frames=arrays["frames"][sl],
            gen_frames=arrays["gen_frames"][sl],
            ids=[f"avsynth-{cfg.seed}-{i}" for i in range(int(lo), int(hi))], meta={FRONTEND_KEY: frontend},
        )
    per_seg = cfg.segment_samples // cfg.hop
    spec = DataSpec(
        name="avsynth", audio_shape=(cfg.segments, per_seg * cfg.n_mels),
        visual_shape=(cfg.segments, 3, cfg.image_size, cfg.image_size), num_classes=cfg.num_classes,
        class_names=class_names(cfg.num_classes), sample_rate=cfg.sample_rate, visual_is_image=True,
        extra={"config": asdict(cfg), "segment_samples": cfg.segment_samples},
    )
    return InMemoryDataset(spec=spec, splits=splits, content_hash=digest)


_OPTIONS = {
    "difficulty": "nuisance level in [0, 1] (default 0.5)",
    "num_classes": "number of sound sources K (2..10, default 10)",
    "segments": "segments per clip T (default 10)",
    "n_train": "train clips", "n_val": "validation clips", "n_test": "test clips",
    "data_seed": "seed of the generated world (default 0; independent of the model seeds)",
}


@register_dataset(
    "avsynth",
    tasks=("retrieval", "classification", "separation", "localization", "event_localization", "generation",
           "robustness"),
    layout="none: generated procedurally and cached under $AVCL_CACHE (default ~/.cache/avcl-bench)",
    licence="CC0 (generated by this suite)", citation="avcl-bench embedded dataset", needs_data_root=False,
    description="procedural audio-visual clips: K sources with a look and a sound, T segments, nuisances",
    options=_OPTIONS,
)
def load_avsynth(*, data_root: Path | None, options: dict[str, Any], quick: bool, seed: int) -> InMemoryDataset:
    kw: dict[str, Any] = {}
    for key, value in options.items():
        try:
            if key == "difficulty":
                kw[key] = float(value)
            elif key == "data_seed":
                kw["seed"] = int(value)
            else:
                kw[key] = int(value)
        except (TypeError, ValueError):
            raise InputError("--option", key, f"expected a number, got {value!r}") from None
    cfg = AVSynthConfig.quick(**kw) if quick else AVSynthConfig(**kw)
    return build(cfg)
