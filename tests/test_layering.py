"""The import layering of docs/ARCHITECTURE.md, checked on the source (no import is executed).

* the engine core (``benchmark/`` except the orchestration modules and the perf scripts) never
  imports ``tasks`` or ``baselines``, except the pure metric modules ``tasks/<family>/metrics.py``,
  a leaf layer that imports nothing of ours but the engine core (and ``tasks/base.py``'s metric
  descriptions);
* ``tasks`` never imports ``baselines`` and ``baselines`` never imports ``tasks``;
* no module of ours imports another module of ours inside a function: a function-local import
  only hides an import cycle (third-party imports may be lazy, e.g. an optional backend).
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
#: top of the layering: these engine modules run models on tasks, so they import both
ORCHESTRATION = {"benchmark/runner.py", "benchmark/cli.py", "benchmark/submit_commands.py"}
PERF = "benchmark/perf/"


def _is_metrics(name: str) -> bool:
    parts = name.split(".")
    return len(parts) == 4 and parts[:2] == ["avcl_bench", "tasks"] and parts[3] == "metrics"
PACKAGES = {"benchmark": "avcl_bench.benchmark", "tasks": "avcl_bench.tasks", "baselines": "avcl_bench.baselines"}


def _modules() -> list[Path]:
    return sorted(p for folder in PACKAGES for p in (REPO / folder).rglob("*.py"))


def _absolute(path: Path, node: ast.ImportFrom | ast.Import) -> list[str]:
    """The absolute ``avcl_bench...`` names an import statement refers to."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if node.level == 0:
        return [node.module or ""]
    rel = path.relative_to(REPO).with_suffix("")
    parts = list(rel.parts[:-1]) if rel.name != "__init__" else list(rel.parts[:-1])
    base = parts[: len(parts) - (node.level - 1)] if node.level > 1 else parts
    dotted = ".".join([PACKAGES[base[0]].split(".")[0], *([PACKAGES[base[0]].split(".")[1]] + base[1:])]) if base else ""
    return [f"{dotted}.{node.module}" if node.module else dotted]


def _imports(path: Path) -> list[tuple[str, bool]]:
    """(module, inside a function) for every import of ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out: list[tuple[str, bool]] = []

    def visit(node: ast.AST, in_func: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                out.extend((name, in_func) for name in _absolute(path, child))
            visit(child, in_func or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)))

    visit(tree, False)
    return out


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(REPO)))
def test_layering(path: Path) -> None:
    rel = str(path.relative_to(REPO))
    layer = rel.split("/")[0]
    is_metrics = layer == "tasks" and path.name == "metrics.py"
    for name, in_func in _imports(path):
        tasks_proper = name.startswith("avcl_bench.tasks") and not _is_metrics(name)
        if layer == "benchmark" and rel not in ORCHESTRATION and not rel.startswith(PERF):
            assert not (tasks_proper or name.startswith("avcl_bench.baselines")), f"{rel}: engine core imports {name}"
        if is_metrics:  # MetricSpec of tasks/base.py is the one exception
            assert not (tasks_proper and name != "avcl_bench.tasks.base"), f"{rel}: a metric module imports {name}"
        if layer == "tasks":
            assert not name.startswith("avcl_bench.baselines"), f"{rel}: tasks import {name}"
        if layer == "baselines":
            assert not tasks_proper, f"{rel}: baselines import {name}"
        assert not (in_func and name.startswith("avcl_bench")), f"{rel}: function-local import of {name}"
