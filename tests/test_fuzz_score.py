"""Property-based fuzz of the ``score`` command and the ``features`` loader.

Every task's pred/ref npz pair gets exactly one corruption (a missing key, a wrong ndim,
NaN/inf, a wrong dtype, a count mismatch, a header declaring a huge shape, empty arrays,
huge labels or values, a renamed ``.npy``, a text file, ...). The command must then exit 2
with nothing on stdout and exactly one stderr line that names the corrupted file and field,
and write no file. The CLI runs in-process (``cli.main``), so many examples stay fast.
"""
from __future__ import annotations

import json
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from avcl_bench.benchmark import cli
from avcl_bench.benchmark.arrays import MAX_METRIC_BYTES_ENV
from avcl_bench.benchmark.datasets import load_dataset
from avcl_bench.benchmark.errors import InputError
from avcl_bench.tasks.registry import get_task

SETTINGS = settings(max_examples=25, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

Arrays = dict[str, np.ndarray]


# ----------------------------------------------------------------------------- valid pairs
def _classification(rng: np.random.Generator) -> tuple[Arrays, Arrays]:
    n, c = 6, 5
    labels = rng.integers(0, c, n)
    pred = {"scores": rng.standard_normal((n, c)).astype(np.float32)} if rng.random() < 0.5 \
        else {"labels": rng.integers(0, c, n)}
    return pred, {"labels": labels}


def _event_localization(rng: np.random.Generator) -> tuple[Arrays, Arrays]:
    n, t, c = 4, 3, 5
    pred = {"segment_scores": rng.standard_normal((n, t, c))} if rng.random() < 0.5 \
        else {"segment_labels": rng.integers(0, c, (n, t))}
    return pred, {"segment_labels": rng.integers(0, c, (n, t))}


def _retrieval(rng: np.random.Generator) -> tuple[Arrays, Arrays]:
    n, d = 6, 4
    labels = np.array([0, 1, 2, 0, 1, 2])
    return ({"audio": rng.standard_normal((n, d)), "visual": rng.standard_normal((n, d)).astype(np.float32)},
            {"audio_labels": labels, "visual_labels": labels.copy()})


def _generation(rng: np.random.Generator) -> tuple[Arrays, Arrays]:
    n, d = 8, 3
    return {"features": rng.standard_normal((n, d))}, {"features": rng.standard_normal((n, d)).astype(np.float32)}


def _localization(rng: np.random.Generator) -> tuple[Arrays, Arrays]:
    n = 3
    masks = np.zeros((n, 8, 8))
    masks[:, 2:6, 1:5] = 1.0
    return {"heatmaps": rng.standard_normal((n, 4, 4))}, {"masks": masks}


def _separation(rng: np.random.Generator) -> tuple[Arrays, Arrays]:
    n, s, length = 1, 2, 600
    src = rng.standard_normal((n, s, length))
    return ({"estimates": src + 0.5 * rng.standard_normal(src.shape)},
            {"sources": src.astype(np.float32), "mixtures": src.sum(axis=1)})


MAKERS = {"classification": _classification, "event_localization": _event_localization, "retrieval": _retrieval,
          "generation": _generation, "localization": _localization, "separation": _separation}

#: fields holding integer labels (others hold real numbers)
LABEL_FIELDS = {"labels", "segment_labels", "audio_labels", "visual_labels"}
#: (task, side, field) whose last row dropped is an error blamed on that very file and field
COUNT_FIELDS = {("classification", "pred", "scores"), ("classification", "pred", "labels"),
                ("event_localization", "pred", "segment_scores"), ("event_localization", "pred", "segment_labels"),
                ("retrieval", "pred", "audio"), ("retrieval", "pred", "visual"),
                ("localization", "pred", "heatmaps"),
                ("separation", "pred", "estimates"), ("separation", "ref", "mixtures")}
#: prediction keys that stand in for each other (a missing one may be reported under the other)
ALTERNATIVES = {"scores": ("labels",), "labels": ("scores",), "segment_scores": ("segment_labels",),
                "segment_labels": ("segment_scores",)}
#: fields where a huge finite value is an error (generation features overflow, masks lie in [0, 1])
HUGE_VALUE_FIELDS = {("generation", "features"), ("localization", "masks")}
#: fields where an all-zero item is an error (cosine similarity / BSS eval undefined)
ZERO_ROW_FIELDS = {("retrieval", "audio"), ("retrieval", "visual"), ("generation", "features"),
                   ("separation", "estimates"), ("separation", "sources"), ("separation", "mixtures"),
                   ("localization", "masks")}


def _corruptions(task: str, side: str, field: str) -> list[str]:
    out = ["missing", "ndim", "nan", "inf", "complex", "bool", "timedelta", "str", "huge_header", "empty",
           "npy", "text"]
    if field not in LABEL_FIELDS:
        out.append("int8")
    else:
        out += ["huge_label", "fraction"]
        if not (task == "retrieval"):  # retrieval labels only need equality: negative ones are valid
            out.append("negative")
    if (task, side, field) in COUNT_FIELDS:
        out.append("count")
    if (task, field) in HUGE_VALUE_FIELDS:
        out.append("huge_value")
    if (task, field) in ZERO_ROW_FIELDS:
        out.append("zero_row")
    if task == "generation" and side == "pred":
        out.append("dim")
    if task == "localization" and field == "masks":
        out.remove("int8")  # 0/1 masks as int8 are refused too, but keep the list to real corruptions
    return out


def _write_npz_with_huge_header(path: Path, arrays: Arrays, key: str) -> None:
    """An npz whose member ``key`` declares a (10^7, 10^7) float64 array and holds no data."""
    with zipfile.ZipFile(path, "w") as z:
        for k, v in arrays.items():
            with z.open(f"{k}.npy", "w") as f:
                if k == key:
                    np.lib.format.write_array_header_1_0(
                        f, {"descr": "<f8", "fortran_order": False, "shape": (10**7, 10**7)})
                else:
                    np.lib.format.write_array(f, np.asarray(v), allow_pickle=False)


def _corrupt(arrays: Arrays, field: str, kind: str, rng: np.random.Generator) -> tuple[Arrays, bool]:
    """``arrays`` with ``field`` corrupted; the flag says whether the error names the field."""
    a = np.asarray(arrays[field])
    out = dict(arrays)
    idx = tuple(int(rng.integers(0, d)) for d in a.shape)
    if kind == "missing":
        del out[field]
    elif kind == "ndim":
        out[field] = a[..., None] if rng.random() < 0.5 else a.reshape(-1)[:1].reshape(()) if a.ndim == 1 else a[0]
    elif kind in ("nan", "inf"):
        b = a.astype(np.float64)
        b[idx] = np.nan if kind == "nan" else -np.inf
        out[field] = b
    elif kind == "complex":
        out[field] = a.astype(np.complex128) + 1j
    elif kind == "bool":
        out[field] = a != 0
    elif kind == "timedelta":
        out[field] = np.round(a).astype(np.int64).astype("m8[s]")
    elif kind == "str":
        out[field] = a.astype(str)
    elif kind == "int8":
        out[field] = np.round(a).astype(np.int8)
    elif kind == "empty":
        out[field] = a[:0]
    elif kind == "huge_label":
        b = a.astype(np.int64)
        b[idx] = np.iinfo(np.int64).max
        out[field] = b
    elif kind == "fraction":
        b = a.astype(np.float64)
        b[idx] = 0.5 if rng.random() < 0.5 else 1e300
        out[field] = b
    elif kind == "negative":
        b = a.astype(np.int64)
        b[idx] = -int(rng.integers(1, 10**9))
        out[field] = b
    elif kind == "count":
        out[field] = a[:-1]
    elif kind == "huge_value":
        b = a.astype(np.float64)
        b[idx] = 1e200 if field == "features" else 2.0
        out[field] = b
    elif kind == "zero_row":
        b = a.astype(np.float64)
        b[idx[:-1] if a.ndim == 3 and field != "masks" else idx[:1]] = 0.0
        out[field] = b
    elif kind == "dim":
        out[field] = a[:, :-1]
    else:  # npy / text / huge_header are written by _write
        pass
    return out, kind not in ("npy", "text")


def _write(path: Path, arrays: Arrays, kind: str | None, field: str | None) -> None:
    if kind == "npy":
        with path.open("wb") as f:
            np.save(f, next(iter(arrays.values())))
    elif kind == "text":
        path.write_text("audio,visual\n1,2\n")
    elif kind == "huge_header":
        _write_npz_with_huge_header(path, arrays, field)
    else:
        with path.open("wb") as f:
            np.savez(f, **arrays)


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = cli.main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


@st.composite
def _cases(draw: st.DrawFn, task: str) -> tuple[int, str, str, str]:
    seed = draw(st.integers(0, 2**32 - 1))
    pred, ref = MAKERS[task](np.random.default_rng(seed))
    side = draw(st.sampled_from(["pred", "ref"]))
    field = draw(st.sampled_from(sorted(pred if side == "pred" else ref)))
    kind = draw(st.sampled_from(_corruptions(task, side, field)))
    return seed, side, field, kind


# ----------------------------------------------------------------------------- the properties
@pytest.mark.parametrize("task", sorted(MAKERS))
def test_valid_pairs_score(task: str, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    pred, ref = MAKERS[task](np.random.default_rng(0))
    _write(tmp_path / "pred.npz", pred, None, None)
    _write(tmp_path / "ref.npz", ref, None, None)
    rc, out, err = _run(capsys, "score", task, "--pred", str(tmp_path / "pred.npz"), "--ref",
                        str(tmp_path / "ref.npz"), "--json")
    assert (rc, err) == (0, "")
    metrics = json.loads(out)["metrics"]
    assert metrics and all(np.isfinite(v) for v in metrics.values())


@pytest.mark.parametrize("task", sorted(MAKERS))
def test_every_corruption_is_one_line_naming_file_and_field(task: str, capsys: pytest.CaptureFixture[str]) -> None:
    @SETTINGS
    @given(case=_cases(task))
    def check(case: tuple[int, str, str, str]) -> None:
        seed, side, field, kind = case
        rng = np.random.default_rng(seed)
        pred, ref = MAKERS[task](rng)
        with tempfile.TemporaryDirectory() as tmp:
            paths = {"pred": Path(tmp) / "pred.npz", "ref": Path(tmp) / "ref.npz"}
            arrays = {"pred": pred, "ref": ref}
            arrays[side], names_field = _corrupt(arrays[side], field, kind, rng)
            for s in ("pred", "ref"):
                _write(paths[s], arrays[s], kind if s == side else None, field)
            before = sorted(Path(tmp).rglob("*"))
            rc, out, err = _run(capsys, "score", task, "--pred", str(paths["pred"]), "--ref", str(paths["ref"]),
                                "--json")
            after = sorted(Path(tmp).rglob("*"))
        what = f"{task} {side}.{field} {kind}"
        assert rc == 2, f"{what}: exit {rc}, stdout {out!r}, stderr {err!r}"
        assert out == "", f"{what}: stdout {out!r}"
        lines = err.splitlines()
        assert len(lines) == 1, f"{what}: stderr has {len(lines)} lines: {err!r}"
        assert lines[0].startswith(f"error: {paths[side]}: "), f"{what}: blames the wrong file: {lines[0]!r}"
        if names_field:
            named = lines[0].split(": ")[2]
            ok = field in named or (kind == "missing" and any(alt in named for alt in ALTERNATIVES.get(field, ())))
            assert ok, f"{what}: does not name the field: {lines[0]!r}"
        assert before == after, f"{what}: wrote {set(after) - set(before)}"

    check()


# ----------------------------------------------------------------------------- the bombs of the issue
def _score(capsys: pytest.CaptureFixture[str], tmp_path: Path, task: str, pred: Arrays,
           ref: Arrays) -> tuple[int, str, str]:
    _write(tmp_path / "pred.npz", pred, None, None)
    _write(tmp_path / "ref.npz", ref, None, None)
    return _run(capsys, "score", task, "--pred", str(tmp_path / "pred.npz"), "--ref", str(tmp_path / "ref.npz"),
                "--json")


def test_classification_huge_label_ids_need_no_huge_allocation(capsys: pytest.CaptureFixture[str],
                                                               tmp_path: Path) -> None:
    rc, out, err = _score(capsys, tmp_path, "classification", {"labels": np.array([0, 1, 400_000_000])},
                          {"labels": np.array([0, 1, 400_000_000])})
    assert (rc, err) == (0, "")
    assert json.loads(out)["metrics"] == {"ACC": 1.0, "macro_F1": 1.0}


@pytest.mark.parametrize("task, pred, ref, blamed, field", [
    ("generation", {"features": np.ones((3, 40_000)) + np.eye(3, 40_000)}, {"features": np.eye(3, 40_000)},
     "pred", "features"),
    ("separation", {"estimates": np.ones((1, 40, 40 * 512))}, {"sources": np.ones((1, 40, 40 * 512))},
     "ref", "sources"),
])
def test_metric_memory_is_checked_before_allocating(task: str, pred: Arrays, ref: Arrays, blamed: str, field: str,
                                                    capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    rc, out, err = _score(capsys, tmp_path, task, pred, ref)
    assert (rc, out) == (2, "")
    assert err.startswith(f"error: {tmp_path / f'{blamed}.npz'}: {field}: ") and err.count("\n") == 1
    assert MAX_METRIC_BYTES_ENV in err and "GiB" in err


def test_localization_memory_limit_names_masks(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    pred, ref = _localization(np.random.default_rng(0))
    monkeypatch.setenv(MAX_METRIC_BYTES_ENV, "1000")
    rc, out, err = _score(capsys, tmp_path, "localization", pred, ref)
    assert (rc, out) == (2, "")
    assert err.startswith(f"error: {tmp_path / 'ref.npz'}: masks: ") and MAX_METRIC_BYTES_ENV in err


@pytest.mark.parametrize("scale", [1e160, 1e-300])
def test_separation_scaled_input_gives_the_unscaled_values(scale: float, capsys: pytest.CaptureFixture[str],
                                                          tmp_path: Path) -> None:
    pred, ref = _separation(np.random.default_rng(1))
    rc, out, err = _score(capsys, tmp_path, "separation", pred, ref)
    assert (rc, err) == (0, "")
    base = json.loads(out)["metrics"]
    scaled = ({k: v * scale for k, v in pred.items()},
              {k: v.astype(np.float64) * scale for k, v in ref.items()})
    rc, out, err = _score(capsys, tmp_path, "separation", *scaled)
    if scale < 1:  # Sound of Pixels' rule skips signals of sum|x| <= 1e-5: score_silent scores them
        assert rc == 2 and out == "" and "score_silent=true" in err
        got = get_task("separation").score(*scaled, score_silent=True)
        for k in base:
            assert got[k] == pytest.approx(base[k], abs=1e-6)
        return
    assert (rc, err) == (0, "")
    assert "NaN" not in out and "Infinity" not in out
    got = json.loads(out)["metrics"]
    assert got.keys() == base.keys()
    for k in base:
        assert got[k] == pytest.approx(base[k], abs=1e-6)


# ----------------------------------------------------------------------------- the features loader
def _features_arrays(rng: np.random.Generator) -> Arrays:
    n = 12
    return {"audio": rng.standard_normal((n, 4)).astype(np.float32), "visual": rng.standard_normal((n, 5)),
            "labels": np.arange(n) % 3, "split": np.array([0, 0, 0, 0, 0, 0, 1, 1, 2, 2, 2, 2])}


FEATURE_CORRUPTIONS = {
    "audio": ["missing", "nan", "inf", "complex", "str", "huge_header", "empty", "count"],
    "visual": ["missing", "nan", "inf", "complex", "str", "huge_header", "count"],
    "labels": ["missing", "nan", "complex", "str", "huge_header", "negative", "fraction", "count"],
    "split": ["missing", "huge_header", "count", "bad_split"],
}


@st.composite
def _feature_cases(draw: st.DrawFn) -> tuple[int, str, str]:
    field = draw(st.sampled_from(sorted(FEATURE_CORRUPTIONS)))
    kinds = FEATURE_CORRUPTIONS[field] + ["npy", "text"]
    return draw(st.integers(0, 2**32 - 1)), field, draw(st.sampled_from(kinds))


def test_features_loader_valid_file_loads(tmp_path: Path) -> None:
    path = tmp_path / "feats.npz"
    _write(path, _features_arrays(np.random.default_rng(0)), None, None)
    ds = load_dataset("features", options={"path": str(path)})
    assert ds.spec.num_classes == 3


@SETTINGS
@given(case=_feature_cases())
def test_features_loader_corruption_is_one_input_error(case: tuple[int, str, str]) -> None:
    seed, field, kind = case
    rng = np.random.default_rng(seed)
    arrays = _features_arrays(rng)
    if kind == "bad_split":
        arrays["split"] = arrays["split"].copy()
        arrays["split"][int(rng.integers(0, len(arrays["split"])))] = 7
        names_field = True
    else:
        arrays, names_field = _corrupt(arrays, field, kind, rng)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "feats.npz"
        _write(path, arrays, kind, field)
        with pytest.raises(InputError) as info:
            load_dataset("features", options={"path": str(path)})
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith(f"{path}"), msg
    if names_field and kind != "count":  # a count mismatch may name the other field of the pair
        assert field in msg, msg
