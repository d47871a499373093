"""Safe loading of user npz files: wrong formats, allocation bombs and ambiguous dtypes are one-line errors."""
from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest

from avcl_bench.benchmark.arrays import check_array, load_npz
from avcl_bench.benchmark.errors import InputError


def test_npy_renamed_npz_is_named(tmp_path: Path) -> None:
    p = tmp_path / "pred.npz"
    with p.open("wb") as f:
        np.save(f, np.zeros(3))
    with pytest.raises(InputError, match=r"pred\.npz: a single \.npy array"):
        load_npz(p)


def test_text_file_is_not_an_npz(tmp_path: Path) -> None:
    p = tmp_path / "pred.npz"
    p.write_text("audio,visual\n1,2\n")
    with pytest.raises(InputError, match="no zip signature"):
        load_npz(p)


def _npz_with_header(path: Path, key: str, shape: tuple[int, ...], dtype: str = "<f8") -> None:
    """An npz whose member declares ``shape`` but holds (almost) no data: a header bomb."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": dtype, "fortran_order": False, "shape": shape})
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(f"{key}.npy", buf.getvalue())


def test_header_bomb_is_refused_before_allocation(tmp_path: Path) -> None:
    p = tmp_path / "ref.npz"
    _npz_with_header(p, "audio", (10**7, 10**7))
    with pytest.raises(InputError, match=r"ref\.npz: audio: declares shape \(10000000, 10000000\).*AVCL_MAX_ARRAY_BYTES"):
        load_npz(p)


def test_zip_bomb_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = tmp_path / "pred.npz"
    np.savez_compressed(p, visual=np.zeros((2000, 2000)))  # 32 MB of zeros, a few KB on disk
    monkeypatch.setenv("AVCL_MAX_ARRAY_BYTES", str(1024**2))
    with pytest.raises(InputError, match="visual: declares shape"):
        load_npz(p)
    monkeypatch.setenv("AVCL_MAX_ARRAY_BYTES", str(64 * 1024**2))
    assert load_npz(p)["visual"].shape == (2000, 2000)


def test_bad_limit_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = tmp_path / "pred.npz"
    np.savez(p, a=np.zeros(2))
    monkeypatch.setenv("AVCL_MAX_ARRAY_BYTES", "lots")
    with pytest.raises(InputError, match=r"\$AVCL_MAX_ARRAY_BYTES"):
        load_npz(p)


def test_object_member_is_refused(tmp_path: Path) -> None:
    p = tmp_path / "pred.npz"
    np.savez(p, a=np.array([{"x": 1}], dtype=object))
    with pytest.raises(InputError, match="pred.npz: a: object arrays"):
        load_npz(p)


def test_round_trip(tmp_path: Path) -> None:
    p = tmp_path / "ok.npz"
    np.savez(p, a=np.arange(6).reshape(2, 3), b=np.ones(4, dtype=np.float32))
    out = load_npz(p)
    assert out["a"].tolist() == [[0, 1, 2], [3, 4, 5]] and out["b"].dtype == np.float32


@pytest.mark.parametrize("dtype", ["complex64", "bool", "timedelta64[s]", "int8", "datetime64[s]", "U3"])
def test_ambiguous_dtypes_are_not_floats(dtype: str) -> None:
    with pytest.raises(InputError, match="visual: expected a real number array"):
        check_array(np.zeros((2, 3), dtype=dtype), "pred.npz", "visual", kind="float")


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64", "int16", "int64", "uint8"])
def test_real_dtypes_are_floats(dtype: str) -> None:
    assert check_array(np.ones((2, 3), dtype=dtype), "pred.npz", "visual", kind="float").dtype == np.float64


def test_masks_may_be_boolean() -> None:
    assert check_array(np.ones((1, 2, 2), bool), "ref.npz", "masks", kind="float", allow_bool=True).sum() == 4
