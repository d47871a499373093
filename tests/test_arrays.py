"""Safe loading of user npz files: wrong formats, allocation bombs and ambiguous dtypes are one-line errors."""
from __future__ import annotations

import io
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest

from avcl_bench.benchmark.arrays import (
    DEFAULT_MAX_METRIC_BYTES,
    MAX_METRIC_BYTES_ENV,
    check_array,
    check_finite_metrics,
    check_labels,
    check_work_bytes,
    load_npz,
    max_metric_bytes,
)
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


# ----------------------------------------------------------------------------- metric memory, labels, results
def test_empty_npz_is_an_archive_without_arrays(tmp_path: Path) -> None:
    p = tmp_path / "pred.npz"
    np.savez(p)
    assert load_npz(p) == {}


def test_work_bytes_limit_names_file_field_and_option(monkeypatch: pytest.MonkeyPatch) -> None:
    check_work_bytes("ref.npz", "sources", 1024, "BSS eval")
    monkeypatch.setenv(MAX_METRIC_BYTES_ENV, "1000")
    assert max_metric_bytes() == 1000
    with pytest.raises(InputError, match=r"^ref.npz: sources: BSS eval would need .* GiB .*\$AVCL_MAX_METRIC_BYTES="):
        check_work_bytes("ref.npz", "sources", 1024, "BSS eval")
    monkeypatch.setenv(MAX_METRIC_BYTES_ENV, "lots")
    with pytest.raises(InputError, match=r"AVCL_MAX_METRIC_BYTES: expected a number of bytes"):
        max_metric_bytes()
    monkeypatch.delenv(MAX_METRIC_BYTES_ENV)
    assert max_metric_bytes() == DEFAULT_MAX_METRIC_BYTES


@pytest.mark.parametrize("arr", [np.array([True, False]), np.array([1, 2], dtype="m8[s]"), np.array([1 + 0j]),
                                 np.array([0.5]), np.array([1e300]), np.array([np.nan]), np.array(["1"]),
                                 np.array([2**63], dtype=np.uint64), np.array([2**62], dtype=np.int64)])
def test_check_labels_refuses_what_is_not_a_label(arr: np.ndarray) -> None:
    with pytest.raises(InputError, match=r"^ref.npz: labels: "):
        check_labels(arr, "ref.npz", "labels", ndim=1)


@pytest.mark.parametrize("arr", [np.array([True]), np.array([1], dtype="m8[s]"), np.array([1e300]),
                                 np.array([2**63], dtype=np.uint64)])
def test_check_array_int_refuses_inexact_conversions(arr: np.ndarray) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(InputError, match=r"^f.npz: labels: expected an integer array"):
            check_array(arr, "f.npz", "labels", kind="int")


def test_check_labels_accepts_integers_of_any_width() -> None:
    for arr in (np.array([0, 3], np.int8), np.array([0, 3], np.uint64), np.array([0.0, 3.0]), np.array([-1, 2])):
        assert check_labels(arr, "ref.npz", "labels", ndim=1).tolist() == arr.astype(np.int64).tolist()


def test_check_finite_metrics() -> None:
    assert check_finite_metrics({"a": np.float64(1.5)}, "t") == {"a": 1.5}
    with pytest.raises(FloatingPointError, match="t: metric b is nan"):
        check_finite_metrics({"a": 1.0, "b": float("nan")}, "t")
