"""The embedded avsynth dataset: shapes, determinism, cache, labels and masks."""
from __future__ import annotations

import numpy as np
import pytest

from avcl_bench.benchmark.datasets import load_dataset
from avcl_bench.benchmark.datasets.avsynth import AVSynthConfig, build, class_names, generate, load_or_generate
from avcl_bench.benchmark.errors import ConfigError, InputError

TINY = AVSynthConfig(n_train=20, n_val=10, n_test=10)


pytestmark = pytest.mark.usefixtures("fresh_cache")


def test_shapes_and_fields():
    ds = build(TINY)
    spec = ds.spec
    assert spec.audio_shape == (10, 128) and spec.visual_shape == (10, 3, 32, 32)
    for name, n in (("train", 20), ("val", 10), ("test", 10)):
        s = ds.split(name)
        assert len(s) == n
        assert s.audio.shape == (n, 10, 128) and s.audio.dtype == np.float32
        assert s.visual.shape == (n, 10, 3, 32, 32) and s.visual.dtype == np.uint8
        assert s.segment_labels.shape == (n, 10)
        assert s.masks.shape == (n, 32, 32) and set(np.unique(s.masks)) <= {0.0, 1.0}
        assert s.sources.shape == s.waveforms.shape == (n, 8000)
        assert s.frames.shape == (n, 3, 32, 32)
        assert np.isfinite(s.audio).all() and np.isfinite(s.sources).all()
    assert len(spec.class_names) == 10 == len(set(class_names(10)))


def test_segment_labels_are_one_contiguous_event_of_the_clip_class():
    arrays = generate(TINY)
    k = TINY.num_classes
    for y, seg in zip(arrays["labels"], arrays["segment_labels"]):
        ev = np.flatnonzero(seg != k)
        assert len(ev) >= 3 and np.all(np.diff(ev) == 1)
        assert np.all(seg[ev] == y)


def test_source_is_silent_outside_the_event_and_mask_marks_the_object():
    arrays = generate(TINY)
    seg_n = TINY.segment_samples
    for i in range(5):
        seg = arrays["segment_labels"][i]
        src = arrays["sources"][i].reshape(TINY.segments, seg_n)
        bg = np.flatnonzero(seg == TINY.num_classes)
        inner_bg = [t for t in bg if t - 1 in bg and t + 1 in bg]  # away from the on/off ramps
        for t in inner_bg:
            assert np.abs(src[t]).max() < 1e-6
        assert arrays["masks"][i].sum() > 20  # the sounding object covers a real area


def test_deterministic_and_seed_dependent():
    a, b = generate(TINY), generate(TINY)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    c = generate(AVSynthConfig(n_train=20, n_val=10, n_test=10, seed=1))
    assert not np.array_equal(a["visual"], c["visual"])


def test_cache_roundtrip_and_corrupt_cache_regenerates(tmp_path):
    arrays, digest = load_or_generate(TINY)
    path = next((tmp_path / "cache").glob("avsynth-*.npz"))
    again, digest2 = load_or_generate(TINY)
    assert digest == digest2
    np.testing.assert_array_equal(arrays["audio"], again["audio"])
    path.write_bytes(b"garbage")
    third, digest3 = load_or_generate(TINY)
    assert digest3 == digest


def test_difficulty_knob_changes_snr():
    easy = generate(AVSynthConfig(n_train=20, n_val=10, n_test=10, difficulty=0.0))
    hard = generate(AVSynthConfig(n_train=20, n_val=10, n_test=10, difficulty=1.0))

    def snr(arr):
        noise = arr["waveforms"] - arr["sources"]
        return 10 * np.log10((arr["sources"] ** 2).sum() / (noise**2).sum())

    assert snr(easy) > snr(hard) + 10


def test_registry_options_and_errors():
    ds = load_dataset("avsynth", options={"n_train": "20", "n_val": "10", "n_test": "10", "num_classes": "4"})
    assert ds.spec.num_classes == 4
    with pytest.raises(ConfigError, match="no option 'bogus'"):
        load_dataset("avsynth", options={"bogus": "1"})
    with pytest.raises(InputError, match="difficulty"):
        load_dataset("avsynth", options={"difficulty": "hard"})
    with pytest.raises(ConfigError, match="difficulty"):
        load_dataset("avsynth", options={"difficulty": "2"})
