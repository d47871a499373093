from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test builds into its own cache folder (no cross-test or user-cache effects)."""
    path = tmp_path_factory.mktemp("avcl-cache")
    monkeypatch.setenv("AVCL_CACHE", str(path))
    monkeypatch.delenv("AVCL_DATA_ROOT", raising=False)
    return path


def write_wav(path: Path, samples: np.ndarray, sample_rate: int, channels: int = 1) -> Path:
    """A 16-bit PCM WAV written with the standard library (the format of FSDD/ESC-50/VGG-SS audio)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pcm = np.clip(np.round(np.asarray(samples) * 32767), -32768, 32767).astype("<i2")
    if channels > 1:
        pcm = np.repeat(pcm[:, None], channels, axis=1)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(pcm.tobytes())
    return path


def tone(freq: float, seconds: float, sample_rate: int, seed: int = 0) -> np.ndarray:
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    rng = np.random.default_rng(seed)
    return 0.5 * np.sin(2 * np.pi * freq * t) + 0.01 * rng.standard_normal(len(t))


def write_jpeg(path: Path, rgb: tuple[int, int, int], size: tuple[int, int] = (40, 30)) -> Path:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, rgb).save(path, format="JPEG", quality=95)
    return path
