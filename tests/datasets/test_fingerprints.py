"""Dataset fingerprints cover every value of every input file; the content-hash memo; NaN/inf in HDF5 rows."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from avcl_bench.benchmark.datasets import filehash
from avcl_bench.benchmark.datasets._io import H5Rows
from avcl_bench.benchmark.datasets.ave import load_ave
from avcl_bench.benchmark.datasets.esc50 import load_esc50
from avcl_bench.benchmark.datasets.features import load_features
from avcl_bench.benchmark.datasets.music import load_music
from avcl_bench.benchmark.datasets.vggss import load_vggss
from avcl_bench.benchmark.errors import InputError

from .test_ave import ave_root  # noqa: F401 - fixtures
from .test_localization_datasets import vggss_root  # noqa: F401
from .test_music_features_esc50 import esc_root, music_root  # noqa: F401

REPO = Path(__file__).resolve().parents[2]
N = 400  # 240 train, 40 val, 120 test (rows 280..399)


def _features_file(path: Path, n: int = N) -> Path:
    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as f:
        f.create_dataset("audio", data=rng.standard_normal((n, 8)).astype(np.float32))
        f.create_dataset("visual", data=rng.standard_normal((n, 6)).astype(np.float32))
        f.create_dataset("labels", data=np.arange(n) % 4)
        f.create_dataset("split", data=np.array([b"train"] * 240 + [b"val"] * 40 + [b"test"] * (n - 280)))
    return path


def _poke(path: Path, key: str, index: tuple[int, ...], value: float) -> None:
    """Change one value of an HDF5 dataset in place (same size, same inode)."""
    time.sleep(0.05)  # file times tick in jiffies: let the edit get new ones
    size, ino = path.stat().st_size, path.stat().st_ino
    with h5py.File(path, "r+") as f:
        f[key][index] = value
    assert path.stat().st_size == size and path.stat().st_ino == ino


def _load(path: Path, quick: bool = False):  # noqa: ANN202
    return load_features(data_root=None, options={"path": str(path)}, quick=quick, seed=0)


@pytest.mark.parametrize(("key", "index"), [("visual", (250, 3)), ("visual", (298, 0)), ("audio", (340, 5))])
def test_features_hdf5_fingerprint_sees_one_value_in_the_middle(tmp_path: Path, key: str, index: tuple) -> None:
    path = _features_file(tmp_path / "f.h5")
    before = _load(path).fingerprint()
    assert _load(path).fingerprint() == before
    _poke(path, key, index, 0.123)
    assert _load(path).fingerprint() != before


def test_edit_is_seen_with_mtime_set_back(tmp_path: Path) -> None:
    path = _features_file(tmp_path / "f.h5")
    before = _load(path).fingerprint()
    st = path.stat()
    _poke(path, "visual", (260, 1), 7.0)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert path.stat().st_mtime_ns == st.st_mtime_ns and path.stat().st_size == st.st_size
    assert _load(path).fingerprint() != before  # the memo keys on ctime too, which utime cannot set back


def test_fingerprint_is_content_not_place_or_time(tmp_path: Path) -> None:
    a = _features_file(tmp_path / "a.h5")
    time.sleep(0.05)
    (tmp_path / "elsewhere").mkdir()
    b = _features_file(tmp_path / "elsewhere" / "b.h5")
    assert _load(a).fingerprint() == _load(b).fingerprint()
    assert _load(a, quick=True).fingerprint() != _load(a).fingerprint()


def test_features_npz_fingerprint_sees_one_value_in_the_middle(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    arrays = {"audio": rng.standard_normal((N, 8)).astype(np.float32),
              "visual": rng.standard_normal((N, 6)).astype(np.float32), "labels": np.arange(N) % 4,
              "split": np.array(["train"] * 240 + ["val"] * 40 + ["test"] * 120)}
    np.savez(tmp_path / "f.npz", **arrays)
    before = _load(tmp_path / "f.npz").fingerprint()
    arrays["visual"][250, 2] += 1.0
    np.savez(tmp_path / "f.npz", **arrays)
    assert _load(tmp_path / "f.npz").fingerprint() != before
    # same bytes, other shape: a different dataset
    np.savez(tmp_path / "g.npz", **dict(arrays, visual=arrays["visual"].reshape(N, 1, 6)))
    assert _load(tmp_path / "g.npz").fingerprint() != _load(tmp_path / "f.npz").fingerprint()


def test_memo_hashes_each_file_state_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Path] = []
    real = filehash._hash_h5
    monkeypatch.setattr(filehash, "_hash_h5", lambda p: calls.append(p) or real(p))
    path = _features_file(tmp_path / "f.h5")
    fp = _load(path).fingerprint()
    assert len(calls) == 1
    assert _load(path).fingerprint() == fp and len(calls) == 1
    filehash.clear_memo()  # another process: the memo file under the cache folder answers
    assert _load(path).fingerprint() == fp and len(calls) == 1
    memo = json.loads((Path(os.environ["AVCL_CACHE"]) / filehash.MEMO_NAME).read_text())
    assert [k for k in memo["files"] if k.startswith("h5:")] == [f"h5:{path.resolve()}"]
    _poke(path, "visual", (250, 0), 1.5)
    assert _load(path).fingerprint() != fp and len(calls) == 2
    assert len(memo["files"]) == 1  # one entry per path: a new state replaces the old one


def test_corrupt_or_unwritable_memo_is_not_an_error(tmp_path: Path) -> None:
    path = _features_file(tmp_path / "f.h5")
    fp = _load(path).fingerprint()
    (Path(os.environ["AVCL_CACHE"]) / filehash.MEMO_NAME).write_text("{not json")
    filehash.clear_memo()
    assert _load(path).fingerprint() == fp


def test_bytes_digest_memo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Path] = []
    real = filehash._hash_bytes
    monkeypatch.setattr(filehash, "_hash_bytes", lambda p: calls.append(p) or real(p))
    a, b = tmp_path / "a.bin", tmp_path / "b.bin"
    a.write_bytes(b"x" * 1000)
    b.write_bytes(b"y" * 1000)
    d = filehash.files_digest([a, b])
    assert filehash.files_digest([a, b]) == d and len(calls) == 2
    assert filehash.files_digest([b, a]) != d  # names are part of it: swapped contents differ
    time.sleep(0.05)
    with a.open("r+b") as f:
        f.seek(500)
        f.write(b"z")
    assert filehash.files_digest([a, b]) != d and len(calls) == 3


# --------------------------------------------------------------------------- NaN / inf
def test_nan_in_the_middle_is_refused_at_load_naming_file_dataset_and_row(tmp_path: Path) -> None:
    path = _features_file(tmp_path / "f.h5")
    _poke(path, "visual", (250, 3), np.nan)
    with pytest.raises(InputError, match=r"f\.h5: /visual row 250: contains NaN or inf$"):
        _load(path)
    _poke(path, "visual", (250, 3), 0.0)
    _poke(path, "audio", (300, 1), np.inf)
    _poke(path, "audio", (310, 1), -np.inf)
    with pytest.raises(InputError, match=r"f\.h5: /audio row 300: contains NaN or inf \(and 1 more rows\)"):
        _load(path)


def test_nan_written_after_load_is_caught_when_read(tmp_path: Path) -> None:
    path = _features_file(tmp_path / "f.h5")
    ds = _load(path)
    test = ds.split("test")
    _poke(path, "audio", (330, 2), np.nan)  # row 330 = test item 50
    assert np.isfinite(test.audio[np.arange(10)]).all()
    with pytest.raises(InputError, match=r"f\.h5: /audio row 330: contains NaN or inf"):
        test.audio[np.arange(40, 60)]
    big = tmp_path / "big.h5"
    with h5py.File(big, "w") as f:
        f.create_dataset("x", data=np.full((5, 2), 1e300))
    with pytest.raises(InputError, match="/x row 0: contains NaN or inf"):  # overflows float32
        H5Rows(big, "x", np.arange(5), row_shape=(2,))[np.arange(5)]
    images = H5Rows(big, "x", np.arange(5), row_shape=(2,), dtype=np.uint8)  # integers are never checked
    assert images.dtype == np.uint8


# --------------------------------------------------------------------------- other loaders
def test_ave_fingerprint_covers_audio_and_visual_rows(ave_root: Path) -> None:  # noqa: F811
    fp = load_ave(data_root=ave_root, options={}, quick=False, seed=0).fingerprint()
    _poke(ave_root / "audio_feature.h5", "avadataset", (31, 4, 77), 9.0)
    fp2 = load_ave(data_root=ave_root, options={}, quick=False, seed=0).fingerprint()
    assert fp2 != fp
    _poke(ave_root / "visual_feature.h5", "avadataset", (29, 5, 3, 3, 100), 9.0)
    assert load_ave(data_root=ave_root, options={}, quick=False, seed=0).fingerprint() not in (fp, fp2)
    _poke(ave_root / "visual_feature.h5", "avadataset", (29, 5, 3, 3, 100), np.nan)
    with pytest.raises(InputError, match=r"visual_feature\.h5: /avadataset row 29: contains NaN or inf"):
        load_ave(data_root=ave_root, options={}, quick=False, seed=0)


def test_esc50_fingerprint_covers_labels_and_audio(esc_root: Path) -> None:  # noqa: F811
    fp = load_esc50(data_root=esc_root, options={}, quick=False, seed=0).fingerprint()
    meta = esc_root / "meta" / "esc50.csv"
    lines = meta.read_text().splitlines()
    # relabel one clip: the arrays (audio, split) are unchanged, the labels are not
    fn, fold, target, cat, *rest = lines[5].split(",")
    other = ("0", "dog") if target != "0" else ("1", "rain")
    lines[5] = ",".join([fn, fold, *other, *rest])
    meta.write_text("\n".join(lines) + "\n")
    fp2 = load_esc50(data_root=esc_root, options={}, quick=False, seed=0).fingerprint()
    assert fp2 != fp
    wav = esc_root / "audio" / lines[9].split(",")[0]
    data = bytearray(wav.read_bytes())
    data[len(data) // 2] ^= 0x01
    time.sleep(0.05)
    wav.write_bytes(bytes(data))
    assert load_esc50(data_root=esc_root, options={}, quick=False, seed=0).fingerprint() not in (fp, fp2)


def test_vggss_fingerprint_covers_boxes(vggss_root: Path) -> None:  # noqa: F811
    fp = load_vggss(data_root=vggss_root, options={}, quick=False, seed=0).fingerprint()
    ann = next(vggss_root.rglob("vggss.json"))
    entries = json.loads(ann.read_text())
    entries[2]["bbox"][0][2] = 0.7  # one box corner: masks change, frames and audio do not
    ann.write_text(json.dumps(entries))
    assert load_vggss(data_root=vggss_root, options={}, quick=False, seed=0).fingerprint() != fp


def test_music_fingerprint_covers_the_frames_a_clip_shows(music_root: Path) -> None:  # noqa: F811
    fp = load_music(data_root=music_root, options={}, quick=False, seed=0).fingerprint()
    # a 3 s track, 6 s clip: start 0, segment centres at 1, 3, 5 s and the middle at 3 s (8 fps, clamped)
    frame = music_root / "frames" / "flute" / "fl2.mp4" / "000009.jpg"
    time.sleep(0.05)
    shutil.copyfile(music_root / "frames" / "flute" / "fl2.mp4" / "000001.jpg", frame)
    assert load_music(data_root=music_root, options={}, quick=False, seed=0).fingerprint() != fp


# --------------------------------------------------------------------------- end to end
def _run(features: Path, out: Path) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(REPO / "run_benchmark.py"), "run", "--dataset", "features", "--option",
           f"path={features}", "--models", "random", "--tasks", "retrieval", "--out", str(out), "--quick",
           "--no-progress"]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=dict(os.environ))


def _records(out: Path) -> list[Path]:
    return sorted(out.rglob("*.json"))


def test_cli_reruns_after_one_visual_value_changes_and_refuses_nan(tmp_path: Path) -> None:
    path, out = _features_file(tmp_path / "f.h5"), tmp_path / "out"
    first = _run(path, out)
    assert first.returncode == 0, first.stderr
    records = _records(out)
    assert records and "[reuse]" not in first.stderr + first.stdout
    _poke(path, "visual", (250, 3), 4.0)
    second = _run(path, out)
    assert second.returncode == 0, second.stderr
    assert "[reuse]" not in second.stderr + second.stdout
    assert len(_records(out)) == len(records) + 1  # a new record next to the old one
    _poke(path, "visual", (270, 1), np.nan)
    third = _run(path, out)
    assert third.returncode == 2 and third.stdout == ""
    lines = third.stderr.strip().splitlines()
    assert len(lines) == 1 and str(path) in lines[0] and "/visual row 270: contains NaN or inf" in lines[0], lines
    assert len(_records(out)) == len(records) + 1
