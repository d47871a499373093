"""Issue item 5: result keys include the code that computes the number (tasks, datasets, models)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from avcl_bench.benchmark import codehash
from avcl_bench.benchmark.cli import main
from avcl_bench.benchmark.datasets import DATASETS
from avcl_bench.benchmark.errors import ConfigError
from avcl_bench.benchmark.submission import load_model_spec
from avcl_bench.tasks.registry import get_task

TINY = ["--option", "n_train=30", "--option", "n_val=10", "--option", "n_test=20"]

MODEL = '''
import torch
from helper import project

class HelperModel:
    trainable = False
    capabilities = frozenset()
    def __init__(self, spec, dim=8):
        self.dim = dim
        self.spec = spec
    def config(self):
        return {"dim": self.dim}
    def fit(self, train, val, ctx):
        pass
    def embed_audio(self, audio):
        return project(torch.as_tensor(audio).float().mean(1), self.dim)
    def embed_visual(self, visual):
        v = torch.as_tensor(visual).float()
        return project(v.mean(dim=tuple(i for i in range(1, v.ndim) if i != 2)), self.dim)
'''

HELPER = '''
import torch

def project(x, dim):
    g = torch.Generator().manual_seed(SEED)
    return x @ torch.randn(x.shape[-1], dim, generator=g)

SEED = 0
'''


pytestmark = pytest.mark.usefixtures("fresh_cache")


def test_hash_is_relative_to_its_root_and_content_sensitive(tmp_path):
    for where in ("a", "b"):
        (tmp_path / where / "pkg").mkdir(parents=True)
        (tmp_path / where / "m.py").write_text("x = 1\n")
        (tmp_path / where / "pkg" / "h.py").write_text("y = 2\n")
    assert codehash.hash_tree(tmp_path / "a") == codehash.hash_tree(tmp_path / "b")  # location independent
    (tmp_path / "b" / "pkg" / "h.py").write_text("y = 3\n")
    assert codehash.hash_tree(tmp_path / "a") != codehash.hash_tree(tmp_path / "b")
    (tmp_path / "b" / "pkg" / "h.py").write_text("y = 2\r\n")  # a CRLF checkout hashes the same
    assert codehash.hash_tree(tmp_path / "a") == codehash.hash_tree(tmp_path / "b")
    (tmp_path / "b" / "pkg" / "__pycache__").mkdir()
    (tmp_path / "b" / "pkg" / "__pycache__" / "junk.py").write_text("z")
    assert codehash.hash_tree(tmp_path / "a") == codehash.hash_tree(tmp_path / "b")


def test_too_large_tree_is_a_one_line_error_suggesting_version(tmp_path):
    for i in range(5):
        (tmp_path / f"m{i}.py").write_text("x = 1\n")
    with pytest.raises(ConfigError, match="version") as e:
        codehash.tree_files(tmp_path, max_files=3)
    assert "\n" not in str(e.value)


def test_task_hash_covers_package_shared_engine_and_imports():
    task = get_task("retrieval")
    files = {codehash._module_name(f) for f in codehash.suite_files(
        (type(task).__module__, *codehash.SHARED_ENGINE), [codehash.module_file(type(task).__module__).parent])}
    assert {"avcl_bench.tasks.retrieval.task", "avcl_bench.tasks.retrieval.metrics", "avcl_bench.tasks.base",
            "avcl_bench.tasks.heads", "avcl_bench.benchmark.arrays"} <= files
    assert "avcl_bench.benchmark.errors" not in files  # messages cannot change a number
    assert not any(f.startswith("avcl_bench.tasks.separation") for f in files)
    assert codehash.task_code_hash(task) == codehash.task_code_hash(task)  # cached, stable
    assert codehash.task_code_hash(task) != codehash.task_code_hash(get_task("separation"))
    ds = {codehash._module_name(f) for f in codehash.import_closure(["avcl_bench.benchmark.datasets.avsynth"])}
    assert {"avcl_bench.benchmark.datasets.avsynth", "avcl_bench.benchmark.datasets.base",
            "avcl_bench.benchmark.datasets._io"} <= ds


def test_editing_a_copied_task_package_changes_its_hash(tmp_path, monkeypatch):
    """The hash of a copy of the suite: one line of a task's metric (or the shared head) moves it."""
    roots = []
    for pkg in ("avcl_bench.benchmark", "avcl_bench.tasks"):
        src = codehash.module_file(pkg).parent
        shutil.copytree(src, tmp_path / src.name, ignore=shutil.ignore_patterns("__pycache__"))
        roots.append((pkg, (tmp_path / src.name).resolve()))
    monkeypatch.setattr(codehash, "_suite_roots", lambda: tuple(sorted(roots, key=lambda r: -len(r[0]))))
    mods = ("avcl_bench.tasks.retrieval.task", *codehash.SHARED_ENGINE)
    folder = [tmp_path / "tasks" / "retrieval"]
    before = codehash.compute_suite_hash(mods, folder)
    assert codehash.compute_suite_hash(mods, folder) == before
    metrics = tmp_path / "tasks" / "retrieval" / "metrics.py"
    metrics.write_text(metrics.read_text() + "\n# one more line\n")
    after = codehash.compute_suite_hash(mods, folder)
    assert after != before
    heads = tmp_path / "tasks" / "heads.py"
    heads.write_text(heads.read_text().replace("def ", "def  ", 1))
    assert codehash.compute_suite_hash(mods, folder) != after
    other = tmp_path / "tasks" / "separation" / "metrics.py"  # another family's code: no effect
    now = codehash.compute_suite_hash(mods, folder)
    other.write_text(other.read_text() + "\n# x\n")
    assert codehash.compute_suite_hash(mods, folder) == now


def test_task_code_is_in_the_key(tmp_path, monkeypatch):
    from avcl_bench.benchmark.runner import RunConfig, run

    cfg = dict(models=["random"], tasks=["retrieval"], dataset_options={"n_train": "30", "n_val": "10",
               "n_test": "20"}, out=tmp_path / "runs", quick=True, device="cpu", progress=False)
    first = run(RunConfig(**cfg))
    rec = first[0] if isinstance(first[0], dict) else first[0].to_json()
    assert rec["config"]["task"]["code"] == codehash.task_code_hash(get_task("retrieval"))
    assert rec["config"]["dataset"]["code"] == codehash.dataset_code_hash(DATASETS.get("avsynth"))
    assert "version" not in rec["config"]["task"]
    monkeypatch.setattr(codehash, "task_code_hash", lambda task: "edited-task-code")
    run(RunConfig(**cfg))
    assert len(list((tmp_path / "runs").rglob("*.json"))) == 2  # a task-code change recomputes


def _write_model(folder: Path, extra: str = "") -> str:
    folder.mkdir(exist_ok=True)
    (folder / "model.py").write_text(MODEL + extra)
    (folder / "helper.py").write_text(HELPER)
    return f"{folder / 'model.py'}:HelperModel"


def test_external_model_helper_edit_recomputes_unchanged_reuses(tmp_path):
    spec = _write_model(tmp_path / "sub")
    out = tmp_path / "out"
    args = ["run", "--models", spec, "--tasks", "retrieval", "--quick", "--no-progress", "--device", "cpu",
            "--out", str(out), *TINY]
    assert main(args) == 0
    files = sorted(out.rglob("*.json"))
    mine = [f for f in files if "HelperModel" in str(f)]
    assert len(mine) == 1
    first = mine[0].read_bytes()
    assert main(args) == 0  # unchanged code: reused, byte for byte
    assert sorted(out.rglob("*.json")) == files and mine[0].read_bytes() == first
    helper = tmp_path / "sub" / "helper.py"
    helper.write_text(HELPER.replace("SEED = 0", "SEED = 1"))
    assert main(args) == 0
    now = [f for f in out.rglob("*.json") if "HelperModel" in str(f)]
    assert len(now) == 2  # a new key: recomputed with the edited helper
    recs = {json.loads(f.read_text())["config"]["model"]["source_hash"]: json.loads(f.read_text()) for f in now}
    assert len(recs) == 2
    maps = [r["metrics"]["mAP"] for r in recs.values()]
    assert maps[0] != maps[1]  # the edited helper really ran


def test_declared_version_is_used_and_recorded(tmp_path):
    spec = _write_model(tmp_path / "v", extra="\nHelperModel.version = '1.2'\n")
    _, info = load_model_spec(spec)
    assert info["source_hash"] == {"version": "1.2"}
    (tmp_path / "v" / "helper.py").write_text(HELPER + "\n# edited\n")
    assert load_model_spec(spec)[1]["source_hash"] == {"version": "1.2"}  # the author's word, not a hash
    spec2 = _write_model(tmp_path / "nv")
    h1 = load_model_spec(spec2)[1]["source_hash"]
    (tmp_path / "nv" / "helper.py").write_text(HELPER + "\n# edited\n")
    h2 = load_model_spec(spec2)[1]["source_hash"]
    assert isinstance(h1, str) and len(h1) == 16 and h1 != h2
