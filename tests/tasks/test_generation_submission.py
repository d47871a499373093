"""Issue 13: generation is submitted as images (an npz or a folder of PNGs), the suite computes the
features itself, and FD / KID are never negative in a record."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from avcl_bench.benchmark.cli import main
from avcl_bench.benchmark.datasets import load_dataset
from avcl_bench.tasks.generation.feature_net import target_frames
from avcl_bench.tasks.generation.metrics import frechet_distance_from_stats, generation_metrics

TINY = ["--option", "n_train=30", "--option", "n_val=10", "--option", "n_test=20"]
OPTS = {"n_train": "30", "n_val": "10", "n_test": "20"}

pytestmark = pytest.mark.usefixtures("fresh_cache")


def _raw_fd(x: np.ndarray, y: np.ndarray) -> float:
    """FD from its definition with scipy's sqrtm (pytorch-fid's formula, no clipping)."""
    from scipy import linalg

    mu1, mu2 = x.mean(0), y.mean(0)
    s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    covmean = linalg.sqrtm(s1 @ s2).real
    return float((mu1 - mu2) @ (mu1 - mu2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def _raw_kid_full(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased cubic-kernel MMD^2 of the whole sets by explicit loops (Binkowski et al., 2018)."""
    d, m = x.shape[1], len(x)

    def k(a: np.ndarray, b: np.ndarray) -> float:
        return float((a @ b / d + 1.0) ** 3)

    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    return xx + yy - 2 * xy


def test_fd_and_kid_are_never_negative_and_clip_only_below_zero():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 5))
    # identical sets: the raw formula rounds to +-1e-13; the record's FD is exactly max(0, raw)
    assert frechet_distance_from_stats(x.mean(0), np.cov(x, rowvar=False), x.mean(0), np.cov(x, rowvar=False)) >= 0.0
    found_negative = False
    for seed in range(40):  # two samples of one distribution: the unbiased KID is negative for some seeds
        r = np.random.default_rng(seed)
        a, b = r.normal(size=(12, 3)), r.normal(size=(12, 3))
        raw = _raw_kid_full(a, b)
        got = generation_metrics(a, b, kid_subsets=3, kid_subset_size=12, seed=seed)  # subsets = whole sets
        assert got["KID"] == pytest.approx(max(0.0, raw), abs=1e-12)
        assert got["FD"] == pytest.approx(max(0.0, _raw_fd(a, b)), rel=1e-7, abs=1e-10)
        assert got["FD"] >= 0.0 and got["KID"] >= 0.0
        found_negative |= raw < 0
    assert found_negative  # the clipping was exercised
    # far apart: nothing is clipped (the clip never changes a positive value)
    far = generation_metrics(x, x + 3.0, kid_subsets=2, kid_subset_size=40, seed=0)
    assert far["KID"] == pytest.approx(_raw_kid_full(x, x + 3.0), rel=1e-9) and far["FD"] == pytest.approx(45.0)


def _submit(pred: Path, board: Path, name: str) -> int:
    return main(["submit", "--pred", str(pred), "--name", name, "--out", str(board), "--quick", *TINY])


def _record(board: Path, name: str) -> dict:
    (rec,) = [json.loads(p.read_text()) for p in board.rglob("*.json") if name in p.parts]
    return rec


def test_generation_is_submitted_as_images(tmp_path, capsys):
    exp = tmp_path / "exp"
    assert main(["export", "--out", str(exp), "--quick", *TINY]) == 0
    manifest = json.loads((exp / "manifest.json").read_text())
    assert "images" in manifest["expected_predictions"]["generation.npz"]["keys"]
    ds = load_dataset("avsynth", options=OPTS, quick=True)
    test = ds.split("test")
    n, frames = len(test), np.asarray(target_frames(test))  # what generation draws (avsynth: gen_frames)
    rng = np.random.default_rng(0)
    board = tmp_path / "board"

    # 1. features are refused: the suite computes them itself
    feats = tmp_path / "feats"
    feats.mkdir()
    np.savez(feats / "generation.npz", features=rng.normal(size=(n, 128)))
    assert _submit(feats, board, "feats") == 2
    err = capsys.readouterr().err
    assert "generation.npz: images: missing array" in err and "features are not accepted" in err

    # 2. channels-last uint8 npz and the same images as PNGs (named by index) give the same record
    gen = rng.integers(0, 256, size=(n, 20, 24, 3), dtype=np.uint8)
    npz_dir, png_dir = tmp_path / "npz", tmp_path / "png"
    npz_dir.mkdir()
    np.savez(npz_dir / "generation.npz", images=gen)
    (png_dir / "generation").mkdir(parents=True)
    for i in range(n):
        Image.fromarray(gen[i]).save(png_dir / "generation" / f"{i:05d}.png")
    by_id = tmp_path / "by_id"
    (by_id / "generation").mkdir(parents=True)
    for i in range(n):  # named by test clip id (the ids of inputs.npz), in any order on disk
        Image.fromarray(gen[i]).save(by_id / "generation" / f"{test.ids[i]}.png")
    assert _submit(npz_dir, board, "npz") == 0 and _submit(png_dir, board, "png") == 0
    assert _submit(by_id, board, "by_id") == 0
    a, b = _record(board, "npz"), _record(board, "png")
    assert a["metrics"] == b["metrics"] == _record(board, "by_id")["metrics"] and a["metrics"]["FD"] > 0
    assert a["protocol"] == "submitted predictions"
    # channels-first floats in [0, 1] of the same images: the same numbers again
    chw = tmp_path / "chw"
    chw.mkdir()
    np.savez(chw / "generation.npz", images=gen.transpose(0, 3, 1, 2).astype(np.float32) / 255.0)
    assert _submit(chw, board, "chw") == 0
    assert _record(board, "chw")["metrics"] == pytest.approx(a["metrics"], rel=1e-5)

    # 3. the real test targets themselves: FD and KID are 0 or more, never -0.000
    real = tmp_path / "real"
    real.mkdir()
    np.savez(real / "generation.npz", images=frames)
    assert _submit(real, board, "real") == 0
    m = _record(board, "real")["metrics"]
    assert 0.0 <= m["FD"] < 1e-6 and m["KID"] >= 0.0 and m["MRR"] == 1.0

    # 4. bad submissions: one line each, nothing written
    before = len(list(board.rglob("*.json")))
    cases = {
        "count": lambda d: np.savez(d / "generation.npz", images=gen[:-1]),
        "dtype": lambda d: np.savez(d / "generation.npz", images=gen.astype(np.int64)),
        "range": lambda d: np.savez(d / "generation.npz", images=gen.astype(np.float32)),
        "shape": lambda d: np.savez(d / "generation.npz", images=gen[..., :2]),
    }
    for name, write in cases.items():
        d = tmp_path / f"bad_{name}"
        d.mkdir()
        write(d)
        assert _submit(d, board, f"bad_{name}") == 2, name
        assert len(capsys.readouterr().err.strip().splitlines()) == 1
    missing = tmp_path / "bad_png"
    (missing / "generation").mkdir(parents=True)
    for i in range(n - 1):
        Image.fromarray(gen[i]).save(missing / "generation" / f"{i}.png")
    assert _submit(missing, board, "bad_png") == 2
    assert "1 of 20 test clips have no image (first: index 19)" in capsys.readouterr().err
    Image.fromarray(gen[0]).convert("L").save(missing / "generation" / f"{n - 1}.png")
    assert _submit(missing, board, "bad_png") == 2
    assert "expected an 8-bit RGB PNG" in capsys.readouterr().err
    assert len(list(board.rglob("*.json"))) == before
