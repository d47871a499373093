"""``avsynth``: the embedded procedural audio-visual dataset (the suite's offline default).

K sound sources (classes). Each has a visual appearance (shape, colour, texture) and a
sound (pitch band, harmonic structure, envelope/rhythm). A clip has T segments (10, as AVE);
the source is seen and heard in a contiguous run of "event" segments and absent elsewhere
(background: noise, clutter, and possibly a silent distractor object of another class).
A ``difficulty`` knob in [0, 1] scales every nuisance factor: object position/scale range,
visual clutter and pixel noise, colour and pitch jitter, audio SNR, and the probability of
the silent distractor.

Per clip it provides everything each task family needs: log-mel audio features per
segment, RGB frames per segment, per-segment labels (background = K), the ground-truth
mask of the sounding object, the waveform as heard and the clean source waveform
(mix-and-separate), and the target frame of sound-to-image generation.

Generation is deterministic from (config, seed) and cached on disk, keyed by a hash of the
config and the generator version; the file stores a content hash of its arrays.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.signal import lfilter

from ..errors import ConfigError, InputError
from ..features import log_mel
from ..interface import DataSpec
from ._io import cached_arrays
from .base import AVSplit, InMemoryDataset
from .registry import register_dataset

GENERATOR_VERSION = "2"
SHAPES = ("circle", "square", "triangle", "cross", "diamond")
TEXTURES = ("solid", "striped")
#: 10 well separated hues (RGB in [0, 1])
PALETTE = np.array([
    [0.90, 0.10, 0.10], [0.10, 0.65, 0.15], [0.15, 0.30, 0.95], [0.95, 0.80, 0.10], [0.70, 0.15, 0.80],
    [0.05, 0.80, 0.85], [0.95, 0.50, 0.05], [0.55, 0.35, 0.15], [0.95, 0.45, 0.70], [0.45, 0.75, 0.35],
])
ENVELOPES = ("steady", "pulse5", "pulse10", "decay")
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
def class_sound(k: int) -> dict[str, Any]:
    """The sound of class k: fundamental (Hz), harmonic amplitudes and envelope type."""
    f0 = 160.0 * 2.0 ** (0.27 * k)  # 0.27-octave spacing: 160 .. ~860 Hz for 10 classes
    n_harm = (1, 3, 5)[k % 3]
    decay = (1.0, 0.6, 0.35)[(k // 3) % 3]
    amps = decay ** np.arange(n_harm)
    return {"f0": f0, "amps": amps / np.sqrt((amps**2).sum()), "envelope": ENVELOPES[k % len(ENVELOPES)]}


def class_look(k: int) -> dict[str, Any]:
    return {"shape": SHAPES[k % len(SHAPES)], "texture": TEXTURES[(k // len(SHAPES)) % 2], "colour": PALETTE[k]}


def class_names(num_classes: int) -> tuple[str, ...]:
    out = []
    for k in range(num_classes):
        look, snd = class_look(k), class_sound(k)
        out.append(f"{look['texture']}-{look['shape']}@{snd['f0']:.0f}Hz")
    return tuple(out)


# ----------------------------------------------------------------------------- rendering
def shape_mask(shape: str, size: int, cx: float, cy: float, r: float) -> np.ndarray:
    """Boolean (size, size) mask of a shape centred at (cx, cy) with radius r (pixels)."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64) + 0.5
    dx, dy = xx - cx, yy - cy
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
    if texture == "solid":
        return np.ones((size, size))
    yy, xx = np.mgrid[0:size, 0:size]
    return np.where(((xx + yy + phase) // 3) % 2 == 0, 1.0, 0.45)


# ----------------------------------------------------------------------------- generation
def _envelope(kind: str, n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(n) / sr
    if kind == "steady":
        return np.ones(n)
    if kind.startswith("pulse"):
        rate = float(kind[5:]) * 2.0 ** rng.normal(0, 0.05)
        return 0.15 + 0.85 * (np.sin(2 * np.pi * rate * t + rng.uniform(0, 2 * np.pi)) > 0)
    # "decay": a struck sound re-triggered every 0.2 s
    period = int(0.2 * sr)
    return np.exp(-(np.arange(n) % period) / (0.05 * sr))


def _ramp(mask: np.ndarray, width: int) -> np.ndarray:
    """Smooth 0/1 on-off sample mask with linear ramps (no clicks at event boundaries)."""
    kernel = np.ones(width) / width
    return np.convolve(mask.astype(np.float64), kernel, mode="same")


def _coloured_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """Unit-variance noise between white and brownish (a random one-pole low-pass)."""
    alpha = rng.uniform(0.0, 0.9)
    out = lfilter([1.0 - alpha], [1.0, -alpha], rng.standard_normal(n))
    return out / (out.std() + 1e-12)


def _clip(cfg: AVSynthConfig, label: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    d, S, T, sr = cfg.difficulty, cfg.image_size, cfg.segments, cfg.sample_rate
    seg_n = cfg.segment_samples
    # --- temporal layout: one contiguous event of >= 3 segments
    length = int(rng.integers(3, T + 1))
    start = int(rng.integers(0, T - length + 1))
    event = np.zeros(T, dtype=bool)
    event[start : start + length] = True

    # --- visual
    look = class_look(label)
    r = S * rng.uniform(0.30 - 0.06 * d, 0.36 + 0.02 * d)  # under half the frame: LVS median threshold
    margin = r + 1
    cx, cy = rng.uniform(margin, S - margin, size=2) if d > 0 else (S / 2, S / 2)
    colour = np.clip(look["colour"] + rng.normal(0, 0.35 * d, 3), 0, 1)
    obj = shape_mask(look["shape"], S, cx, cy, r)
    tex = texture_map(look["texture"], S, int(rng.integers(0, 6)))

    background = np.full((3, S, S), rng.uniform(0.2, 0.5)) + rng.normal(0, 0.03, (3, 1, 1))
    for _ in range(int(round(8 * d * rng.uniform(0.5, 1.5)))):  # clutter: small random rectangles
        x0, y0 = rng.integers(0, S - 3, size=2)
        w, h = rng.integers(2, 7, size=2)
        background[:, y0 : y0 + h, x0 : x0 + w] = rng.uniform(0, 1, (3, 1, 1))
    if rng.uniform() < 0.8 * d:  # a silent distractor object of another class, visible throughout
        other = int((label + rng.integers(1, cfg.num_classes)) % cfg.num_classes)
        olook = class_look(other)
        rr = S * rng.uniform(0.15, 0.25)
        ox, oy = rng.uniform(rr + 1, S - rr - 1, size=2)
        dist = shape_mask(olook["shape"], S, ox, oy, rr) & ~obj
        ocol = np.clip(olook["colour"] + rng.normal(0, 0.25 * d, 3), 0, 1)
        background = np.where(dist[None], ocol[:, None, None] * texture_map(olook["texture"], S, 0)[None], background)
    noise_sigma = 0.02 + 0.12 * d
    frames = np.repeat(background[None], T, axis=0)
    painted = np.where(obj[None], colour[:, None, None] * tex[None], background)
    frames[event] = painted
    frames = frames + rng.normal(0, noise_sigma, frames.shape)
    frames = np.clip(np.round(frames * 255), 0, 255).astype(np.uint8)

    # --- audio
    snd = class_sound(label)
    n = T * seg_n
    t = np.arange(n) / sr
    f0 = snd["f0"] * 2.0 ** rng.normal(0, 0.02 + 0.12 * d)
    tone = np.zeros(n)
    for h, a in enumerate(snd["amps"], start=1):
        if h * f0 < sr / 2 - 50:
            tone += a * np.sin(2 * np.pi * h * f0 * t + rng.uniform(0, 2 * np.pi))
    gate = _ramp(np.repeat(event, seg_n), int(0.01 * sr) | 1)
    source = tone * _envelope(snd["envelope"], n, sr, rng) * gate
    source /= np.sqrt(np.mean(source[np.repeat(event, seg_n)] ** 2)) + 1e-12
    snr_db = 18.0 - 26.0 * d + rng.uniform(-3, 3)
    noise = _coloured_noise(n, rng) * 10 ** (-snr_db / 20)
    wave = source + noise
    return {
        "frames": frames, "mask": obj.astype(np.float32), "event": event,
        "source": (0.1 * source).astype(np.float32), "wave": (0.1 * wave).astype(np.float32),
        "target": frames[start],
    }


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
    feats = log_mel(stack["wave"], cfg.sample_rate, n_fft=cfg.n_fft, hop=cfg.hop, n_mels=cfg.n_mels,
                    fmin=50.0).numpy()
    per_seg = cfg.segment_samples // cfg.hop
    audio = feats.reshape(n_total, cfg.segments, per_seg * cfg.n_mels)
    mu = audio[: cfg.n_train].mean(axis=(0, 1))
    sd = audio[: cfg.n_train].std(axis=(0, 1)) + 1e-6  # standardise with train statistics
    audio = ((audio - mu) / sd).astype(np.float32)
    return {
        "audio": audio, "visual": stack["frames"], "labels": labels, "segment_labels": seg_labels,
        "masks": stack["mask"], "sources": stack["source"], "waveforms": stack["wave"], "frames": stack["target"],
    }


def load_or_generate(cfg: AVSynthConfig, *, use_cache: bool = True) -> tuple[dict[str, np.ndarray], str]:
    """Arrays and their content hash, from the on-disk cache when present."""
    return cached_arrays(f"avsynth-{cfg.key()}", lambda: generate(cfg), use_cache=use_cache)


def build(cfg: AVSynthConfig, *, use_cache: bool = True) -> InMemoryDataset:
    arrays, digest = load_or_generate(cfg, use_cache=use_cache)
    bounds = np.cumsum([0, cfg.n_train, cfg.n_val, cfg.n_test])
    splits = {}
    for name, lo, hi in zip(("train", "val", "test"), bounds[:-1], bounds[1:]):
        sl = slice(int(lo), int(hi))
        splits[name] = AVSplit(
            audio=arrays["audio"][sl], visual=arrays["visual"][sl], labels=arrays["labels"][sl],
            segment_labels=arrays["segment_labels"][sl], masks=arrays["masks"][sl], sources=arrays["sources"][sl],
            waveforms=arrays["waveforms"][sl], frames=arrays["frames"][sl],
            ids=[f"avsynth-{cfg.seed}-{i}" for i in range(int(lo), int(hi))],
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
