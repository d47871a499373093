"""Hashes of source code: the one place that computes the code part of a result's key.

A result's key includes the code that computes its number, so an edit to a task's metric,
a shared training loop, a dataset loader or a submitted model's helper module recomputes
the result, and unchanged code reuses it byte for byte.

* :func:`hash_files` hashes files by their path *relative to a root* plus their content
  (line endings normalised), so a hash is the same on every machine and install location.
* Suite code (tasks, dataset loaders, built-in baselines) is hashed as the static import
  closure of its module inside the suite's own packages (``avcl_bench.*``), plus the task's
  package folder and the shared engine modules named in :data:`SHARED_ENGINE`. Each suite
  hash is computed once per process.
* External code (a submitted model) is hashed by :func:`hash_tree`: every ``.py`` file of
  its folder or package, bounded by :data:`MAX_FILES` / :data:`MAX_BYTES`.
"""
from __future__ import annotations

import ast
import functools
import hashlib
import importlib.util
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from .errors import ConfigError

#: suite packages whose code can be hashed (label -> imported as)
SUITE_PACKAGES = ("avcl_bench.benchmark", "avcl_bench.tasks", "avcl_bench.baselines", "avcl_bench")
#: engine modules the numbers of every task depend on (hashed whenever they exist)
SHARED_ENGINE = ("avcl_bench.tasks.base", "avcl_bench.tasks.heads", "avcl_bench.benchmark.training",
                 "avcl_bench.benchmark.embedding", "avcl_bench.benchmark.features", "avcl_bench.benchmark.arrays")
#: modules that cannot change a number (messages, paths, a name -> object map): left out of suite hashes
NUMBER_NEUTRAL = ("avcl_bench.benchmark.errors", "avcl_bench.benchmark.paths", "avcl_bench.benchmark.registry",
                  "avcl_bench.benchmark.codehash", "avcl_bench._version")
#: the most files / bytes an external model's folder may hold before hashing is refused
MAX_FILES = 2000
MAX_BYTES = 32 * 1024 * 1024
#: folders never descended into when hashing a tree
SKIP_DIRS = {"__pycache__", "site-packages", "dist-packages", "node_modules", "build", "dist"}
DIGEST_LEN = 16


# ------------------------------------------------------------------------------ primitives
def hash_files(files: Iterable[Path], root: Path, label: str = "") -> str:
    """Hash of ``files`` by (path relative to ``root``, content); order and location independent."""
    return _digest(_entries(files, Path(root), label))


def _entries(files: Iterable[Path], root: Path, label: str) -> list[tuple[str, bytes]]:
    root = root.resolve()
    out = []
    for f in {Path(p).resolve() for p in files}:
        if not f.is_file():
            continue
        try:
            rel = f.relative_to(root).as_posix()
        except ValueError:
            rel = f.name
        out.append((f"{label}/{rel}" if label else rel, f.read_bytes().replace(b"\r\n", b"\n")))
    return out


def _digest(entries: Iterable[tuple[str, bytes]]) -> str:
    h = hashlib.sha256()
    for rel, content in sorted(entries):
        h.update(rel.encode())
        h.update(b"\0")
        h.update(hashlib.sha256(content).digest())
    return h.hexdigest()[:DIGEST_LEN]


def tree_files(root: Path, pattern: str = "*.py", *, max_files: int = MAX_FILES,
               max_bytes: int = MAX_BYTES) -> list[Path]:
    """The ``pattern`` files below ``root`` (hidden, cache and virtual-env folders skipped).

    A tree over ``max_files`` files or ``max_bytes`` bytes is a one-line :class:`ConfigError`
    suggesting a ``version`` attribute instead.
    """
    root = Path(root)
    files: list[Path] = []
    total = 0
    stack = [root]
    while stack:
        d = stack.pop()
        try:
            children = sorted(d.iterdir())
        except OSError:
            continue
        for c in children:
            if c.is_dir():
                if not (c.name.startswith(".") or c.name in SKIP_DIRS or (c / "pyvenv.cfg").exists()):
                    stack.append(c)
            elif c.match(pattern) and c.is_file():
                files.append(c)
                total += c.stat().st_size
                if len(files) > max_files or total > max_bytes:
                    raise ConfigError(
                        f"{root}: too much code to hash for the result key (over {max_files} .py files or "
                        f"{max_bytes // (1024 * 1024)} MiB); move the model into its own folder or give its class "
                        "a `version` attribute (bumped whenever its code changes)")
    return files


def hash_tree(root: Path, pattern: str = "*.py", **bounds: int) -> str:
    """Hash of every ``pattern`` file below ``root`` (see :func:`tree_files` for the bounds)."""
    return hash_files(tree_files(root, pattern, **bounds), root)


# ------------------------------------------------------------------------------ suite code
def _package_dirs(name: str) -> list[Path]:
    """The folders of package ``name``, found without importing it (only its parents are)."""
    spec = importlib.util.find_spec(name)
    return [Path(p).resolve() for p in (spec.submodule_search_locations or [])] if spec is not None else []


@functools.cache
def _suite_roots() -> tuple[tuple[str, Path], ...]:
    """(package name, folder) of the suite's packages, longest name first."""
    roots = [(name, d) for name in SUITE_PACKAGES for d in _package_dirs(name)]
    return tuple(sorted(roots, key=lambda r: -len(r[0])))


def module_file(name: str) -> Path | None:
    """The source file of suite module ``name`` (``None`` if it is not one, or does not exist).

    Memoised per process and set of suite roots, as :func:`suite_hash` (the suite's files do not
    change while it runs)."""
    return _module_file(name, _suite_roots())


@functools.cache
def _module_file(name: str, roots: tuple[tuple[str, Path], ...]) -> Path | None:
    for pkg, folder in roots:
        if name == pkg or name.startswith(pkg + "."):
            parts = name[len(pkg):].lstrip(".").split(".") if name != pkg else []
            base = folder.joinpath(*parts) if parts else folder
            for cand in (base.with_suffix(".py") if parts else None, base / "__init__.py"):
                if cand is not None and cand.is_file():
                    return cand
            return None
    return None


def _module_name(path: Path) -> str | None:
    path = path.resolve()
    for pkg, folder in _suite_roots():
        try:
            rel = path.relative_to(folder)
        except ValueError:
            continue
        parts = list(rel.with_suffix("").parts)
        if parts and parts[-1] == "__init__":
            parts = parts[:-1]
        return ".".join([pkg, *parts])
    return None


def _imports(path: Path, name: str) -> frozenset[str]:
    """Module names ``path`` (module ``name``) imports statically, anywhere in the file.

    Memoised per file version (path, size, modification time): every task's, dataset's and
    model's hash walks the same engine files, and parsing them again for each took most of a
    warm rerun's non-import time."""
    st = path.stat()
    return _parsed_imports(path, name, st.st_size, st.st_mtime_ns)


@functools.cache
def _parsed_imports(path: Path, name: str, size: int, mtime_ns: int) -> frozenset[str]:
    try:
        tree = ast.parse(path.read_bytes(), filename=str(path))
    except SyntaxError:
        return frozenset()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                base = ".".join(p for p in [*base_parts, node.module or ""] if p)
            else:
                base = node.module or ""
            out.add(base)
            out.update(f"{base}.{a.name}" for a in node.names)  # `from pkg import submodule`
    return frozenset(out)


def import_closure(modules: Iterable[str]) -> set[Path]:
    """Files of ``modules`` and of every suite module they import, transitively."""
    neutral = {module_file(n) for n in NUMBER_NEUTRAL}
    seen: set[Path] = set()
    todo = [(f, n) for n in modules if (f := module_file(n)) is not None]
    while todo:
        f, name = todo.pop()
        if f in seen or f in neutral:
            continue
        seen.add(f)
        for imp in _imports(f, name):
            g = module_file(imp)
            if g is not None and g not in seen:
                todo.append((g, _module_name(g) or imp))
    return seen


def suite_files(modules: Iterable[str], folders: Iterable[Path] = ()) -> set[Path]:
    """The files a suite hash covers: the import closure of ``modules`` plus ``folders``' ``.py`` files."""
    files = import_closure(modules)
    for d in folders:
        files |= import_closure(n for p in Path(d).rglob("*.py") if (n := _module_name(p)))
    return files


def _suite_digest(files: Iterable[Path]) -> str:
    entries = []
    for f in files:
        name = _module_name(f) or f.name
        entries.append((f"{name}{'/__init__' if f.name == '__init__.py' else ''}.py",
                        f.read_bytes().replace(b"\r\n", b"\n")))
    return _digest(entries)


def compute_suite_hash(modules: Iterable[str], folders: Iterable[str | Path] = ()) -> str:
    """Hash of suite ``modules`` (with their import closure) and ``folders`` (not cached)."""
    return _suite_digest(suite_files(modules, [Path(d) for d in folders]))


@functools.cache
def suite_hash(modules: tuple[str, ...], folders: tuple[str, ...] = ()) -> str:
    """:func:`compute_suite_hash`, once per process (the suite's code does not change while it runs)."""
    return compute_suite_hash(modules, folders)


def task_code_hash(task: Any) -> str:
    """Hash of the code behind a task adapter's numbers: its package folder, the shared task
    layer and engine modules, and everything they import from the suite."""
    module = type(task).__module__
    mod_file = module_file(module)
    folder = (str(mod_file.parent),) if mod_file is not None else ()
    return suite_hash((module, *SHARED_ENGINE), folder)


def dataset_code_hash(loader: Callable[..., Any]) -> str:
    """Hash of the code of a dataset loader (``DATASETS.get(name)``): its module, the datasets
    base and I/O helpers, and what they import."""
    return suite_hash((loader.__module__, "avcl_bench.benchmark.datasets.base", "avcl_bench.benchmark.datasets._io"))


def builtin_model_hash(obj: Any) -> str:
    """Hash of a built-in baseline: the baselines package plus the engine modules it uses."""
    modules = [getattr(obj, "__module__", None) or "avcl_bench.baselines"]
    return suite_hash(tuple(modules), tuple(str(p) for p in _package_dirs("avcl_bench.baselines")))
