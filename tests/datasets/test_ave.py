from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from avcl_bench.benchmark.datasets._io import H5Rows
from avcl_bench.benchmark.datasets.ave import NUM_CLASSES, categories, load_ave, read_annotations, read_order
from avcl_bench.benchmark.datasets.base import _take
from avcl_bench.benchmark.errors import InputError

CATS = [f"Cat {k}, kind" if k % 3 == 0 else f"Cat {k}" for k in range(NUM_CLASSES)]


def _h5(path: Path, key: str, arr: np.ndarray) -> None:
    with h5py.File(path, "w") as f:
        f.create_dataset(key, data=arr)


@pytest.fixture
def ave_root(tmp_path: Path) -> Path:
    """A 60-video AVE release in the official layout (tiny features, all 28 categories)."""
    rng = np.random.default_rng(0)
    n = 60
    lines = ["Category&VideoID&Quality&StartTime&EndTime"]
    onehot = np.zeros((n, 10, 29), np.float32)
    for i in range(n):
        k = i % NUM_CLASSES
        s, e = int(rng.integers(0, 5)), int(rng.integers(5, 11))
        lines.append(f"{CATS[k]}&vid{i:03d}&good&{s}&{e}")
        onehot[i, :, 28] = 1
        onehot[i, s:e, 28] = 0
        onehot[i, s:e, k] = 1
    (tmp_path / "Annotations.txt").write_text("\n".join(lines) + "\n")
    perm = rng.permutation(n)
    for name, rows in (("train", perm[:40]), ("val", perm[40:50]), ("test", perm[50:])):
        _h5(tmp_path / f"{name}_order.h5", "order", rows.astype(np.int64))
    _h5(tmp_path / "labels.h5", "avadataset", onehot)
    _h5(tmp_path / "audio_feature.h5", "avadataset", rng.standard_normal((n, 10, 128)))
    _h5(tmp_path / "visual_feature.h5", "avadataset", rng.standard_normal((n, 10, 7, 7, 512)).astype(np.float32))
    m = 5
    noisy = np.zeros((m, 29), np.float32)
    noisy[:, 28] = 1
    _h5(tmp_path / "labels_noisy.h5", "avadataset", noisy)
    _h5(tmp_path / "audio_feature_noisy.h5", "avadataset", rng.standard_normal((m, 10, 128)))
    _h5(tmp_path / "visual_feature_noisy.h5", "avadataset", rng.standard_normal((m, 10, 7, 7, 512)).astype(np.float32))
    return tmp_path


def test_end_to_end_lazy_views_match_the_files(ave_root: Path) -> None:
    ds = load_ave(data_root=ave_root, options={}, quick=False, seed=0)
    assert ds.spec.audio_shape == (10, 128) and ds.spec.visual_shape == (10, 512, 7, 7)
    assert ds.spec.num_classes == 28 and ds.spec.class_names[3] == "Cat 3, kind" and not ds.spec.visual_is_image
    with h5py.File(ave_root / "visual_feature.h5") as f:
        vis = f["avadataset"][()]
    with h5py.File(ave_root / "audio_feature.h5") as f:
        aud = f["avadataset"][()]
    with h5py.File(ave_root / "test_order.h5") as f:
        order = f["order"][()]
    test = ds.split("test")
    assert isinstance(test.visual, H5Rows) and test.visual.shape == (10, 10, 512, 7, 7)
    idx = np.array([7, 2, 2, 5])  # unsorted with duplicates, as a shuffled batch could be
    got = _take(test.visual, idx)
    assert np.array_equal(got, vis[order[idx]].transpose(0, 1, 4, 2, 3))
    assert np.allclose(test.audio[idx], aud[order[idx]])
    assert test.labels.tolist() == [int(i) % NUM_CLASSES for i in order]
    lines = (ave_root / "Annotations.txt").read_text().splitlines()[1:]
    for row, seg in zip(order, test.segment_labels):
        s, e = int(lines[row].split("&")[3]), int(lines[row].split("&")[4])
        want = np.full(10, 28)
        want[s:e] = row % NUM_CLASSES
        assert seg.tolist() == want.tolist()
    sub = test.subset(np.array([3, 0]))  # materialises rows, in the asked order
    assert np.array_equal(sub.visual, vis[order[[3, 0]]].transpose(0, 1, 4, 2, 3))


def test_noisy_subset_and_quick(ave_root: Path) -> None:
    ds = load_ave(data_root=ave_root, options={"subset": "noisy"}, quick=False, seed=0)
    noisy = ds.split("noisy")
    assert len(noisy) == 5 and set(noisy.labels) == {28} and (noisy.segment_labels == 28).all()
    assert ds.fingerprint() != load_ave(data_root=ave_root, options={}, quick=False, seed=0).fingerprint()
    quick = load_ave(data_root=ave_root, options={}, quick=True, seed=0)
    assert len(quick.split("train")) == 40  # smaller than the quick cap


def test_validation_errors(ave_root: Path) -> None:
    with h5py.File(ave_root / "val_order.h5") as f:
        val = f["order"][()]
    _h5(ave_root / "val_order.h5", "order", np.array([1, 2, 99]))
    with pytest.raises(InputError, match=r"val_order.h5: /order: index 99 at position 2 is out of range"):
        load_ave(data_root=ave_root, options={}, quick=False, seed=0)
    _h5(ave_root / "val_order.h5", "wrong", np.array([1]))
    with pytest.raises(InputError, match=r"val_order.h5: /order: HDF5 dataset not found \(datasets present: wrong\)"):
        load_ave(data_root=ave_root, options={}, quick=False, seed=0)
    with h5py.File(ave_root / "train_order.h5") as f:
        train = f["order"][()]
    _h5(ave_root / "val_order.h5", "order", np.array([train[3]]))
    with pytest.raises(InputError, match=rf"val_order.h5: /order: video {train[3]} is also in the train split"):
        load_ave(data_root=ave_root, options={}, quick=False, seed=0)
    _h5(ave_root / "val_order.h5", "order", val)
    _h5(ave_root / "visual_feature.h5", "avadataset", np.zeros((60, 10, 512, 7, 7), np.float32))
    with pytest.raises(InputError, match=r"visual_feature.h5: /avadataset: expected VGG-19 visual feature maps of "
                                         r"shape \(60, 10, 7, 7, 512\), got \(60, 10, 512, 7, 7\)"):
        load_ave(data_root=ave_root, options={}, quick=False, seed=0)
    (ave_root / "visual_feature.h5").unlink()
    with pytest.raises(InputError, match="visual_feature.h5: file not found"):
        load_ave(data_root=ave_root, options={}, quick=False, seed=0)


def test_annotation_line_errors(tmp_path: Path) -> None:
    p = tmp_path / "Annotations.txt"
    p.write_text("Bark&a&good&0&10\nBark&b&good&7&3\n")
    with pytest.raises(InputError, match="line 2: expected 0 <= StartTime <= EndTime <= 10, got 7, 3"):
        read_annotations(p)
    p.write_text("Bark&a&good&0\n")
    with pytest.raises(InputError, match="line 1: expected 5 '&'-separated fields"):
        read_annotations(p)


def test_real_annotations_orders_and_labels(shared_data: Path, tmp_path: Path) -> None:
    """The shipped AVE files: parser, class order vs mil_labels.h5, segments vs labels_closs.h5."""
    root = shared_data / "annotations" / "ave"
    events = read_annotations(root / "Annotations.txt")
    names = categories(events)
    assert len(events) == 4143 and len(names) == 28 and "Male speech, man speaking" in names
    with h5py.File(root / "mil_labels.h5") as f:
        mil = f["avadataset"][()]
    assert [names[k] for k in mil.argmax(axis=1)] == [e.category for e in events]
    with h5py.File(root / "labels_closs.h5") as f:
        closs = f["avadataset"][()]
    for e, row in zip(events, closs):
        assert row.tolist() == [1.0 if e.start <= t < e.end else 0.0 for t in range(10)]
    orders = [read_order(root / f"{s}_order.h5", len(events)) for s in ("train", "val", "test")]
    assert [len(o) for o in orders] == [3339, 402, 402]
    assert len(np.unique(np.concatenate(orders))) == 4143
    noisy = H5Rows(root / "audio_feature_noisy.h5", "avadataset", np.arange(178), row_shape=(10, 128))
    with h5py.File(root / "audio_feature_noisy.h5") as f:
        assert np.allclose(noisy[np.array([177, 0])], f["avadataset"][[0, 177]][::-1])
    # the shared folder lacks the big feature files: the loader says which one
    data = tmp_path / "data"
    (data / "annotations").mkdir(parents=True)
    shutil.copytree(root, data / "annotations" / "ave")
    with pytest.raises(InputError, match=r"labels.h5: file not found"):
        load_ave(data_root=data, options={}, quick=True, seed=0)


def test_test_order_match_reads_the_cml_test_list(ave_root: Path) -> None:
    """``test_order=match`` takes the test split from test_order_match.h5 (cmm_test.py's list)."""
    with h5py.File(ave_root / "test_order.h5") as f:
        order = f["order"][()]
    _h5(ave_root / "test_order_match.h5", "order", order[::-1].copy())
    default = load_ave(data_root=ave_root, options={}, quick=False, seed=0)
    match = load_ave(data_root=ave_root, options={"test_order": "match"}, quick=False, seed=0)
    assert match.split("test").ids == default.split("test").ids[::-1]
    assert match.fingerprint() != default.fingerprint() and match.spec.extra["test_order"] == "test_order_match.h5"
    (ave_root / "test_order_match.h5").unlink()
    with pytest.raises(InputError, match="test_order_match.h5"):
        load_ave(data_root=ave_root, options={"test_order": "match"}, quick=False, seed=0)
    with pytest.raises(Exception, match="test_order"):
        load_ave(data_root=ave_root, options={"test_order": "other"}, quick=False, seed=0)
