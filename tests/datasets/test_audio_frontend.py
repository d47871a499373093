"""The datasets' audio front end object (waveforms -> standardised features) and the RMS level."""
from __future__ import annotations

import pickle
from functools import partial

import numpy as np
import pytest

from avcl_bench.benchmark.datasets.avsynth import AVSynthConfig, build
from avcl_bench.benchmark.datasets.frontend import StandardisedFrontend, rms_level
from avcl_bench.benchmark.errors import InputError
from avcl_bench.tasks.localization.task import AudioFrontend


def _power(waves: np.ndarray, *, t: int) -> np.ndarray:
    return (np.asarray(waves, dtype=np.float64).reshape(len(waves), t, -1) ** 2)


def test_standardised_frontend_matches_a_by_hand_standardisation() -> None:
    rng = np.random.default_rng(0)
    waves = rng.normal(size=(5, 12)).astype(np.float32)
    feats = partial(_power, t=3)
    raw = feats(waves)
    mean, std = raw.mean(axis=(0, 1)), raw.std(axis=(0, 1)) + 1e-6
    fe = StandardisedFrontend(feats, mean, std, samples=12, level=rms_level(waves))
    assert isinstance(fe, AudioFrontend)
    out = fe(waves)
    assert out.dtype == np.float32 and out.shape == (5, 3, 4)
    np.testing.assert_allclose(out, (raw - mean) / std, rtol=1e-6, atol=1e-6)
    assert fe.level == pytest.approx(np.sqrt(np.mean(waves.astype(np.float64) ** 2)))
    assert pickle.loads(pickle.dumps(fe))(waves).tobytes() == out.tobytes()  # executors may ship datasets
    with pytest.raises(InputError, match="^audio front end: waves: expected shape \\(B, 12\\)"):
        fe(np.zeros((2, 11)))


def test_rms_level_is_batched_and_empty_safe() -> None:
    rng = np.random.default_rng(1)
    waves = rng.normal(size=(7, 9)) * 3
    assert rms_level(waves, batch=2) == pytest.approx(np.sqrt(np.mean(waves**2)), rel=1e-12)
    assert rms_level(np.zeros((0, 4))) == 0.0


def test_avsynth_front_end_reproduces_its_audio_features() -> None:
    ds = build(AVSynthConfig(n_train=20, n_val=10, n_test=10), use_cache=False)
    fe = ds.split("test").meta["audio_frontend"]
    assert isinstance(fe, AudioFrontend)
    for name in ("train", "test"):
        split = ds.split(name)
        assert split.meta["audio_frontend"] is fe
        np.testing.assert_allclose(fe(np.asarray(split.waveforms)), np.asarray(split.audio), rtol=0, atol=2e-5)
    test_waves = np.asarray(ds.split("test").waveforms, dtype=np.float64)
    assert fe.samples == test_waves.shape[1] and fe.level == pytest.approx(np.sqrt(np.mean(test_waves**2)))
    silence = fe(np.zeros((1, fe.samples)))
    assert np.isfinite(silence).all() and silence.shape == (1, *ds.spec.audio_shape)
    assert silence.mean() < np.asarray(ds.split("train").audio).min()  # far below any clip heard in training
