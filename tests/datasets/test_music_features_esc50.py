from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from avcl_bench.benchmark.datasets.esc50 import esc50_folds, load_esc50, read_meta
from avcl_bench.benchmark.datasets.features import load_features
from avcl_bench.benchmark.datasets.music import load_music, read_video_list
from avcl_bench.benchmark.errors import ConfigError, InputError

from .conftest import tone, write_jpeg, write_wav


# --------------------------------------------------------------------------- music
@pytest.fixture
def music_root(tmp_path: Path) -> Path:
    videos = {"flute": [f"fl{k}" for k in range(7)], "violin": [f"vi{k}" for k in range(7)] + ["gone"]}
    (tmp_path / "MUSIC_solo_videos.json").write_text(json.dumps({"version": 1.0, "videos": videos}))
    for inst, ids in videos.items():
        for k, vid in enumerate(ids):
            if vid == "gone":
                continue
            write_wav(tmp_path / "audio" / inst / f"{vid}.wav", tone(440 if inst == "flute" else 660, 3.0, 22050, k),
                      22050)
            for f in range(1, 25):  # 3 s at 8 fps
                write_jpeg(tmp_path / "frames" / inst / f"{vid}.mp4" / f"{f:06d}.jpg", (10 * f, 0, 0), size=(20, 16))
    return tmp_path


def test_music_end_to_end(music_root: Path) -> None:
    ds = load_music(data_root=music_root, options={"clip_seconds": "2", "image_size": "16"}, quick=False, seed=0)
    assert ds.spec.class_names == ("flute", "violin") and ds.spec.extra["missing_videos"] == 1
    total = sum(len(ds.split(s)) for s in ("train", "val", "test"))
    assert total == 14
    s = ds.split("train")
    assert s.sources.shape[1] == 2 * 11025 and np.array_equal(s.sources, s.waveforms)
    assert s.visual.shape[1:] == (3, 3, 16, 16) and s.frames.shape[1:] == (3, 16, 16)
    # frames at segment centres: the clip is seconds 0.5..2.5 of a 3 s video, centres 0.83, 1.5, 2.17 s
    reds = s.visual[0, :, 0, 8, 8].astype(int)
    assert np.all(np.abs(reds - 10 * np.array([8, 13, 18])) <= 6)
    assert all(i.split("/")[0] == ds.spec.class_names[y] for i, y in zip(s.ids, s.labels))


def test_music_mp3_only_and_bad_list(music_root: Path) -> None:
    wav = music_root / "audio" / "flute" / "fl0.wav"
    wav.rename(wav.with_suffix(".mp3"))
    with pytest.raises(InputError, match="fl0.mp3: mp3 audio is not decoded"):
        load_music(data_root=music_root, options={}, quick=True, seed=0)
    p = music_root / "MUSIC_solo_videos.json"
    p.write_text(json.dumps({"videos": {"flute": ["a", "a"]}}))
    with pytest.raises(InputError, match="videos.flute: duplicate id 'a'"):
        read_video_list(p)


def test_music_real_lists(shared_data: Path) -> None:
    root = shared_data / "annotations" / "music"
    solo = read_video_list(root / "MUSIC_solo_videos.json")
    assert len(solo) == 11 and sum(map(len, solo.values())) == 536
    assert len(read_video_list(root / "MUSIC21_solo_videos.json")) == 21
    assert all(" " in k for k in read_video_list(root / "MUSIC_duet_videos.json"))
    with pytest.raises(InputError, match="none of the 536 listed videos"):
        load_music(data_root=root, options={}, quick=True, seed=0)


# --------------------------------------------------------------------------- features
def _feature_arrays(n: int = 30, t: int = 4) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    labels = np.arange(n) % 3
    return {"audio": rng.standard_normal((n, t, 8)), "visual": rng.standard_normal((n, 12)).repeat(1, 0)[:, None]
            .repeat(t, 1), "labels": labels, "split": np.array(["train", "test", "val"] * (n // 3)),
            "segment_labels": np.where(rng.uniform(size=(n, t)) < 0.5, labels[:, None], 3)}


def test_features_npz_and_hdf5_agree(tmp_path: Path) -> None:
    arrays = _feature_arrays()
    np.savez(tmp_path / "f.npz", **arrays)
    with h5py.File(tmp_path / "f.h5", "w") as f:
        for k, v in arrays.items():
            f.create_dataset(k, data=v.astype("S") if v.dtype.kind == "U" else v)
    a = load_features(data_root=tmp_path / "f.npz", options={"name": "vegas"}, quick=False, seed=0)
    b = load_features(data_root=None, options={"path": str(tmp_path / "f.h5")}, quick=False, seed=0)
    assert a.spec.name == "vegas" and a.spec.audio_shape == (4, 8) and a.spec.visual_shape == (4, 12, 1, 1)
    assert "event_localization" in a.spec.extra["tasks"]
    for s in ("train", "val", "test"):
        sa, sb = a.split(s), b.split(s)
        assert len(sa) == 10 and np.array_equal(sa.labels, sb.labels)
        idx = np.array([4, 1, 1])
        assert np.allclose(sa.audio[idx], sb.audio[idx]) and np.allclose(sa.visual[idx], sb.visual[idx])
        assert np.array_equal(sa.segment_labels, sb.segment_labels)


def test_features_errors(tmp_path: Path) -> None:
    arrays = _feature_arrays()
    with pytest.raises(ConfigError, match="--data-root FILE or --option path=FILE"):
        load_features(data_root=None, options={}, quick=False, seed=0)
    bad = dict(arrays, split=np.array(["train", "tst", "val"] * 10))
    np.savez(tmp_path / "a.npz", **bad)
    with pytest.raises(InputError, match="a.npz: split: item 1: unknown split 'tst'"):
        load_features(data_root=tmp_path / "a.npz", options={}, quick=False, seed=0)
    bad = dict(arrays, segment_labels=arrays["segment_labels"] + 5)
    np.savez(tmp_path / "b.npz", **bad)
    with pytest.raises(InputError, match=r"b.npz: segment_labels: values must be in \[0, 3\]"):
        load_features(data_root=tmp_path / "b.npz", options={}, quick=False, seed=0)
    bad = dict(arrays, visual=np.zeros((30, 3, 12)))
    np.savez(tmp_path / "c.npz", **bad)
    with pytest.raises(InputError, match="segment counts differ: audio T=4, visual T=3"):
        load_features(data_root=tmp_path / "c.npz", options={}, quick=False, seed=0)
    bad = dict(arrays, audio=np.where(np.arange(30)[:, None, None] == 7, np.nan, arrays["audio"]))
    np.savez(tmp_path / "d.npz", **bad)
    with pytest.raises(InputError, match=r"d.npz: audio: contains NaN or inf \(first at index \(7, 0, 0\)\)"):
        load_features(data_root=tmp_path / "d.npz", options={}, quick=False, seed=0)
    sparse = arrays["labels"].copy()
    sparse[5] = 400_000_000  # one absurd class id: ~4e8 classes would be allocated by every probe
    np.savez(tmp_path / "f.npz", **dict(arrays, labels=sparse))
    with pytest.raises(InputError, match=r"f.npz: labels: class id 400000000 implies 400000001 classes for 30 items"):
        load_features(data_root=tmp_path / "f.npz", options={}, quick=False, seed=0)
    np.savez(tmp_path / "e.npz", **dict(arrays, split=np.array([0, 2] * 15)))
    ds = load_features(data_root=tmp_path / "e.npz", options={}, quick=False, seed=0)
    assert ds.spec.extra["val_from_train"] and len(ds.split("val")) == 2 and len(ds.split("train")) == 13


# --------------------------------------------------------------------------- esc50
@pytest.fixture
def esc_root(tmp_path: Path) -> Path:
    rows = ["filename,fold,target,category,esc10,src_file,take"]
    for fold in esc50_folds():
        for target, cat in ((0, "dog"), (1, "rain"), (2, "crow")):
            for take in "AB":
                src = f"{fold}{target}{take}"
                fn = f"{fold}-{src}-{take}-{target}.wav"
                rows.append(f"{fn},{fold},{target},{cat},{target < 2},{src},{take}")
                write_wav(tmp_path / "audio" / fn, tone(300 * (target + 1), 5.0, 44100, seed=fold), 44100)
    (tmp_path / "meta").mkdir()
    (tmp_path / "meta" / "esc50.csv").write_text("\n".join(rows) + "\n")
    return tmp_path


def test_esc50_folds_and_audio_only(esc_root: Path) -> None:
    for fold in (1, 4):
        ds = load_esc50(data_root=esc_root, options={"fold": str(fold)}, quick=False, seed=0)
        assert set(ds.split("test").meta["fold"]) == {fold}
        assert fold not in set(ds.split("train").meta["fold"]) | set(ds.split("val").meta["fold"])
        assert len(ds.split("test")) == 6 and sum(len(ds.split(s)) for s in ("train", "val")) == 24
    assert ds.spec.extra["audio_only"] and ds.spec.visual_shape == (5, 1, 1, 1) and ds.spec.audio_shape == (5, 160)
    assert np.asarray(ds.split("train").visual).shape == (len(ds.split("train")), 5, 1, 1, 1)
    assert ds.spec.class_names == ("dog", "rain", "crow")
    esc10 = load_esc50(data_root=esc_root, options={"subset": "esc10"}, quick=False, seed=0)
    assert esc10.spec.num_classes == 2 and esc10.spec.name == "esc10"
    with pytest.raises(ConfigError, match="fold"):
        load_esc50(data_root=esc_root, options={"fold": "6"}, quick=False, seed=0)


def test_esc50_meta_errors(esc_root: Path) -> None:
    p = esc_root / "meta" / "esc50.csv"
    lines = p.read_text().splitlines()
    p.write_text("\n".join(lines[:3] + [lines[3].replace(",1,", ",9,", 1)]) + "\n")
    with pytest.raises(InputError, match="esc50.csv: line 4: fold must be 1..5, got 9"):
        read_meta(p)
    p.write_text("\n".join(lines) + "\n")
    (esc_root / "audio" / lines[1].split(",")[0]).unlink()
    with pytest.raises(InputError, match=lines[1].split(",")[0] + ": file not found"):
        load_esc50(data_root=esc_root, options={}, quick=False, seed=0)


def test_esc50_fold_all_holds_every_fold_as_fold_k_builds_it(esc_root: Path) -> None:
    cv = load_esc50(data_root=esc_root, options={"fold": "all"}, quick=False, seed=0)
    assert cv.spec.extra["cv_folds"] == list(esc50_folds()) and cv.spec.extra["config"]["fold"] == "all"
    fingerprints = set()
    for k in esc50_folds():
        one = load_esc50(data_root=esc_root, options={"fold": str(k)}, quick=False, seed=0)
        got = cv.fold(k)
        assert got.fingerprint() == one.fingerprint()
        fingerprints.add(got.fingerprint())
        for name in ("train", "val", "test"):
            np.testing.assert_array_equal(np.asarray(got.split(name).audio), np.asarray(one.split(name).audio))
            assert got.split(name).ids == one.split(name).ids
        assert set(got.split("test").meta["fold"]) == {k}
    assert len(fingerprints) == 5 and cv.fingerprint() not in fingerprints
    # the run fits a model on the dataset's own splits: fold 1's
    assert cv.split("train").ids == cv.fold(1).split("train").ids
    for text in ("ALL", " all "):
        assert load_esc50(data_root=esc_root, options={"fold": text}, quick=False, seed=0).spec.extra["cv_folds"]
    with pytest.raises(ConfigError, match="has no fold 6"):
        cv.fold(6)
    with pytest.raises(ConfigError, match="fold"):
        load_esc50(data_root=esc_root, options={"fold": "every"}, quick=False, seed=0)
