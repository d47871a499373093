"""The one namespace: pyproject lists every package folder, the public API resolves, examples use only it,
and the built wheel holds nothing but ``avcl_bench`` (with the surveyed CSVs as package data)."""
from __future__ import annotations

import ast
import importlib
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import tomllib

import avcl_bench

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))


def _expected_packages() -> set[str]:
    mapping = PYPROJECT["tool"]["setuptools"]["package-dir"]
    out = set()
    for name, folder in mapping.items():
        root = REPO / folder
        for init in root.rglob("__init__.py"):
            rel = init.parent.relative_to(root).parts
            out.add(".".join([name, *rel]))
    return out


def test_pyproject_lists_every_package_folder() -> None:
    assert set(PYPROJECT["tool"]["setuptools"]["packages"]) == _expected_packages()


def test_console_script_and_version_have_one_source() -> None:
    assert PYPROJECT["project"]["scripts"]["avcl-bench"] == "avcl_bench.benchmark.cli:main"
    assert PYPROJECT["tool"]["setuptools"]["dynamic"]["version"]["attr"] == "avcl_bench._version.__version__"


@pytest.mark.parametrize("name", sorted(set(avcl_bench.__all__) - {"__version__"}))
def test_public_api_resolves(name: str) -> None:
    assert getattr(avcl_bench, name) is not None
    assert name in dir(avcl_bench)


def test_unknown_public_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no_such_thing"):
        avcl_bench.no_such_thing  # noqa: B018


def test_public_score_is_the_task_score() -> None:
    import numpy as np

    rng = np.random.default_rng(0)
    pred = {"audio": rng.normal(size=(12, 4)), "visual": rng.normal(size=(12, 4))}
    ref = {"audio_labels": np.arange(12) % 3, "visual_labels": np.arange(12) % 3}
    assert avcl_bench.score("retrieval", pred, ref) == avcl_bench.get_task("retrieval").score(pred, ref)


@pytest.mark.parametrize("path", sorted((REPO / "examples").glob("*.py")), ids=lambda p: p.name)
def test_examples_import_only_the_public_api(path: Path) -> None:
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("avcl_bench"):
            assert node.module == "avcl_bench", f"{path.name}: imports {node.module}"
            for alias in node.names:
                assert alias.name in avcl_bench.__all__, f"{path.name}: {alias.name} is not public"
        if isinstance(node, ast.Import):
            assert not any(a.name.startswith("avcl_bench.") for a in node.names), path.name


def test_python_dash_m_avcl_bench_runs() -> None:
    out = subprocess.run([sys.executable, "-m", "avcl_bench", "list", "datasets", "--json"], capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "avsynth" in out.stdout


def test_surveyed_csvs_are_package_data() -> None:
    from importlib import resources

    files = {p.name for p in resources.files("avcl_bench.surveyed_data").iterdir()}
    assert {"table1.csv", "table1_long.csv"} <= files


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                           "--wheel-dir", str(out), str(REPO)], capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        pytest.skip(f"cannot build a wheel here: {proc.stderr.strip().splitlines()[-1:]}")
    return next(out.glob("avcl_bench-*.whl"))


def test_wheel_holds_only_the_namespace(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"avcl_bench"}
    assert "avcl_bench/surveyed_data/table1_long.csv" in names
    assert "avcl_bench/benchmark/cli.py" in names and "avcl_bench/tasks/retrieval/metrics.py" in names


def test_wheel_is_used_beside_shadowing_folders(wheel: Path, tmp_path: Path) -> None:
    """Installed from the wheel into a folder, run from a cwd holding a user's own tasks/ benchmark/ baselines/."""
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
                   check=True, capture_output=True, timeout=300)
    cwd = tmp_path / "user_repo"
    for shadow in ("tasks", "benchmark", "baselines"):
        (cwd / shadow).mkdir(parents=True)
        (cwd / shadow / "__init__.py").write_text(f"raise ImportError('user {shadow} imported')\n")
    code = ("import avcl_bench, sys; from avcl_bench.tasks.registry import TASKS; "
            "from avcl_bench.benchmark.surveyed import load_table1_long; "
            "assert avcl_bench.__file__.startswith(sys.argv[1]), avcl_bench.__file__; "
            "assert not any(m.split('.')[0] in ('tasks', 'benchmark', 'baselines') for m in sys.modules); "
            "from avcl_bench.benchmark.provenance import checkout_stamp; assert checkout_stamp() == {}; "
            "print(len(TASKS), len(load_table1_long()))")
    proc = subprocess.run([sys.executable, "-c", code, str(target)], cwd=cwd, capture_output=True, text=True,
                          env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"}, timeout=300)
    assert proc.returncode == 0, proc.stderr
    n_tasks, n_rows = map(int, proc.stdout.split())
    assert n_tasks == 7 and n_rows > 0


def test_checkout_stamp_in_our_checkout() -> None:
    from avcl_bench.benchmark.provenance import checkout_stamp

    stamp = checkout_stamp()
    if not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    assert len(str(stamp["git_commit"])) == 40 and isinstance(stamp["git_dirty"], bool)


def test_default_out_follows_the_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from avcl_bench.benchmark.paths import cache_dir, default_out

    monkeypatch.chdir(tmp_path)
    assert default_out() == tmp_path / "results" / "runs"
    monkeypatch.setenv("AVCL_CACHE", str(tmp_path / "c"))
    assert cache_dir() == tmp_path / "c"
    monkeypatch.delenv("AVCL_CACHE")
    assert "avcl-bench" in str(cache_dir())


def test_importing_the_package_is_cheap() -> None:
    code = "import sys, avcl_bench; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "False"


def test_bare_names_are_not_ours_after_import() -> None:
    importlib.import_module("avcl_bench.benchmark.cli")
    assert not any(m.split(".")[0] in ("benchmark", "tasks", "baselines") for m in sys.modules)
