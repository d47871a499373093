from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from avcl_bench.benchmark.datasets._io import read_idx
from avcl_bench.benchmark.datasets.avdigits import fsdd_recordings, load_avdigits
from avcl_bench.benchmark.errors import ConfigError, InputError

from .conftest import tone, write_wav


def _idx_gz(path: Path, arr: np.ndarray, code: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    header = bytes([0, 0, code, arr.ndim]) + np.asarray(arr.shape, ">u4").tobytes()
    path.write_bytes(gzip.compress(header + arr.astype(arr.dtype.newbyteorder(">")).tobytes()))


@pytest.fixture
def tiny_root(tmp_path: Path) -> Path:
    """FSDD + MNIST in the shared-data layout: 10 digits x 2 speakers x takes {0, 5, 12}."""
    for d in range(10):
        for spk in ("ann", "bob"):
            for take in (0, 5, 12):
                write_wav(tmp_path / "fsdd" / "recordings" / f"{d}_{spk}_{take}.wav",
                          tone(200 + 60 * d, 0.4, 8000, seed=take), 8000)
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(10), 12).astype(np.uint8)
    images = (rng.uniform(0, 255, (120, 28, 28)) * (labels[:, None, None] + 1) / 10).astype(np.uint8)
    _idx_gz(tmp_path / "mnist" / "t10k-images-idx3-ubyte.gz", images, 0x08)
    _idx_gz(tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz", labels, 0x08)
    return tmp_path


def test_fixture_splits_follow_fsdd_takes_and_images_match_digits(tiny_root: Path) -> None:
    ds = load_avdigits(data_root=tiny_root, options={"pairing": "class", "shift": "0"}, quick=False, seed=0)
    images = read_idx(tiny_root / "mnist" / "t10k-images-idx3-ubyte.gz")
    img_labels = read_idx(tiny_root / "mnist" / "t10k-labels-idx1-ubyte.gz")
    takes = {"train": "12", "val": "5", "test": "0"}
    used = {}
    for name, take in takes.items():
        s = ds.split(name)
        assert len(s) == 20 and all(i.split("_")[2] == take for i in s.ids)
        assert [int(i[0]) for i in s.ids] == s.labels.tolist()
        idx = s.meta["image_index"]
        assert np.array_equal(img_labels[idx], s.labels)  # paired by class
        assert np.array_equal(np.asarray(s.visual)[:, 2, 0], images[idx])  # every frame is the image
        used[name] = set(idx.tolist())
    assert not (used["test"] & used["train"]) and not (used["val"] & used["train"]) and not (used["val"] & used["test"])
    assert ds.spec.audio_shape == (4, 160) and ds.spec.visual_shape == (4, 1, 28, 28)
    a = np.asarray(ds.split("train").audio)
    assert np.allclose(a.mean(axis=(0, 1)), 0, atol=1e-4)  # train-standardised


def test_cycle_pairing_is_the_default_and_needs_both_modalities(tiny_root: Path) -> None:
    """Default pairing: the image shows the spoken digit or the next one, half of each; 20 pair classes."""
    ds = load_avdigits(data_root=tiny_root, options={}, quick=False, seed=0)
    img_labels = read_idx(tiny_root / "mnist" / "t10k-labels-idx1-ubyte.gz").astype(np.int64)
    assert ds.spec.num_classes == 20 and len(set(ds.spec.class_names)) == 20
    assert ds.spec.class_names[:3] == ("zero/zero", "zero/one", "one/one") and ds.spec.class_names[19] == "nine/zero"
    for name in ("train", "val", "test"):
        s = ds.split(name)
        spoken = np.asarray([int(i[0]) for i in s.ids])
        written = img_labels[s.meta["image_index"]]
        assert np.array_equal(s.labels, 2 * spoken + (written != spoken))
        assert np.all((written == spoken) | (written == (spoken + 1) % 10))
        # every spoken digit is split evenly between its two classes (2 clips each here)
        assert np.bincount(s.labels, minlength=20).tolist() == [1] * 20
    # each written digit belongs to two classes and each spoken digit too: neither names the class alone
    names = ds.spec.class_names
    assert sum(n.endswith("/three") for n in names) == 2 and sum(n.startswith("three/") for n in names) == 2
    assert load_avdigits(data_root=tiny_root, options={"pairing": "class"}, quick=False, seed=0).spec.num_classes == 10
    with pytest.raises(ConfigError, match="pairing"):
        load_avdigits(data_root=tiny_root, options={"pairing": "zip"}, quick=False, seed=0)


def test_default_images_are_shifted_copies_within_the_shift(tiny_root: Path) -> None:
    images = read_idx(tiny_root / "mnist" / "t10k-images-idx3-ubyte.gz")
    plain = load_avdigits(data_root=tiny_root, options={"shift": "0"}, quick=False, seed=0)
    ds = load_avdigits(data_root=tiny_root, options={}, quick=False, seed=0)
    moved = 0
    for name in ("train", "val", "test"):
        s, p = ds.split(name), plain.split(name)
        assert np.array_equal(s.meta["image_index"], p.meta["image_index"]) and np.array_equal(s.labels, p.labels)
        for img, idx in zip(np.asarray(s.visual)[:, 0, 0], s.meta["image_index"]):
            src = images[idx]
            pad = np.pad(src, 4)
            hits = [(dy, dx) for dy in range(9) for dx in range(9) if np.array_equal(pad[dy : dy + 28, dx : dx + 28], img)]
            assert hits, "every shown image is its source translated by at most 4 pixels, zero-filled"
            moved += (4, 4) not in hits
    assert moved > 40  # most of the 60 images moved
    with pytest.raises(ConfigError, match="shift"):
        load_avdigits(data_root=tiny_root, options={"shift": "-2"}, quick=False, seed=0)


def test_fixture_cache_round_trip_and_sklearn_images(tiny_root: Path) -> None:
    one = load_avdigits(data_root=tiny_root, options={}, quick=False, seed=0)
    two = load_avdigits(data_root=tiny_root, options={}, quick=False, seed=3)
    assert one.fingerprint() == two.fingerprint()
    assert np.array_equal(one.split("test").audio, two.split("test").audio)
    other = load_avdigits(data_root=tiny_root, options={"pair_seed": "1"}, quick=False, seed=0)
    assert other.fingerprint() != one.fingerprint()
    (tiny_root / "mnist" / "t10k-images-idx3-ubyte.gz").unlink()
    sk = load_avdigits(data_root=tiny_root, options={"images": "sklearn"}, quick=False, seed=0)
    assert sk.spec.visual_shape == (4, 1, 8, 8) and np.asarray(sk.split("train").visual).dtype == np.uint8


def test_errors_name_the_problem(tiny_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="--data-root"):
        load_avdigits(data_root=None, options={}, quick=True, seed=0)
    monkeypatch.setenv("AVCL_DATA_ROOT", str(tiny_root))
    assert len(load_avdigits(data_root=None, options={}, quick=True, seed=0).split("test")) == 20
    with pytest.raises(ConfigError, match="images"):
        load_avdigits(data_root=tiny_root, options={"images": "cifar"}, quick=True, seed=0)
    (tiny_root / "mnist" / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(InputError, match="t10k-labels-idx1-ubyte.gz: not found"):
        load_avdigits(data_root=tiny_root, options={}, quick=True, seed=0)
    write_wav(tiny_root / "fsdd" / "recordings" / "x_bad.wav", tone(100, 0.1, 8000), 8000)
    with pytest.raises(InputError, match="x_bad.wav.*digit"):
        fsdd_recordings(tiny_root / "fsdd" / "recordings")


def test_truncated_idx_and_bad_wav(tmp_path: Path) -> None:
    p = tmp_path / "x-idx3-ubyte.gz"
    _idx_gz(p, np.zeros((2, 3, 3), np.uint8), 0x08)
    raw = gzip.decompress(p.read_bytes())
    p.write_bytes(gzip.compress(raw[:-1]))
    with pytest.raises(InputError, match="18 bytes.*17"):
        read_idx(p)
    from avcl_bench.benchmark.datasets._io import read_wav

    (tmp_path / "a.wav").write_bytes(b"RIFFnotawave")
    with pytest.raises(InputError, match="a.wav: not a readable WAV"):
        read_wav(tmp_path / "a.wav")


def test_real_data_quick_is_sane(shared_data: Path) -> None:
    """Real FSDD + MNIST: official takes, disjoint image pools, and linearly separable digits."""
    ds = load_avdigits(data_root=shared_data, options={"pairing": "class", "shift": "0"}, quick=True, seed=0)
    sizes = {k: len(ds.split(k)) for k in ("train", "val", "test")}
    assert sizes == {"train": 600, "val": 120, "test": 300}
    tr, te = ds.split("train"), ds.split("test")
    assert all(int(i.split("_")[2]) < 5 for i in te.ids) and all(int(i.split("_")[2]) >= 10 for i in tr.ids)
    assert np.bincount(te.labels, minlength=10).tolist() == [30] * 10
    assert not set(tr.meta["image_index"]) & set(te.meta["image_index"])
    xa = lambda s: np.asarray(s.audio).reshape(len(s), -1)  # noqa: E731
    xv = lambda s: np.asarray(s.visual)[:, 0].reshape(len(s), -1) / 255.0  # noqa: E731
    acc_a = _ridge_accuracy(xa(tr), tr.labels, xa(te), te.labels)
    acc_v = _ridge_accuracy(xv(tr), tr.labels, xv(te), te.labels)
    assert acc_a > 0.6 and acc_v > 0.6  # chance is 0.1


def _ridge_accuracy(x: np.ndarray, y: np.ndarray, xt: np.ndarray, yt: np.ndarray, lam: float = 10.0) -> float:
    """Test accuracy of a one-vs-rest ridge regression classifier (closed form, fast on 2 cores)."""
    x, xt = np.c_[x, np.ones(len(x))], np.c_[xt, np.ones(len(xt))]
    w = np.linalg.solve(x.T @ x + lam * np.eye(x.shape[1]), x.T @ np.eye(10)[y])
    return float(((xt @ w).argmax(axis=1) == yt).mean())
