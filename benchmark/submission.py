"""Loading user-submitted models: ``path/to/file.py:ClassName`` or ``package.module:ClassName``.

A model's code identity (``source_hash``, part of its results' key) is the hash of every
``.py`` file of its folder (a file spec) or of its top-level package (a module spec), so an
edit to any helper module it imports recomputes its results. A class that declares a
``version`` attribute is identified by that instead, recorded as ``{"version": ...}``: then
the author bumps it whenever the code changes (for models too large to hash).
"""
from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import codehash
from .errors import ConfigError, InputError, UserCodeError, is_user_exception, is_user_file

#: user modules that loading a model file imported (``helper`` next to ``model.py``)
_MODEL_MODULES: set[str] = set()


def _forget_user_modules(folder: Path) -> None:
    """Drop the user's modules imported earlier from ``folder`` or by an earlier model file, so a
    (re-)load imports the current files, and a ``helper.py`` of another model's folder is not reused."""
    folder = folder.resolve()
    for name, mod in list(sys.modules.items()):
        f = getattr(mod, "__file__", None)
        if not f or name.startswith("avcl_bench") or not is_user_file(f):
            continue
        if name in _MODEL_MODULES or Path(f).resolve().is_relative_to(folder):
            del sys.modules[name]
    _MODEL_MODULES.clear()


def _code_root(path: Path) -> Path:
    """The folder whose code a model file stands for: its top package, or its own folder."""
    folder = path.resolve().parent
    while (folder / "__init__.py").is_file() and (folder.parent / "__init__.py").is_file():
        folder = folder.parent
    return folder


def _module_code(module: Any, target: str) -> str:
    """Hash of a module spec's code: its top-level package (or the module file alone)."""
    top = target.split(".")[0]
    if top == "avcl_bench":  # one of the suite's own modules: the suite's code hash
        return codehash.suite_hash((target,), ())
    top_mod = sys.modules.get(top) or importlib.import_module(top)
    paths = list(getattr(top_mod, "__path__", []))
    if not paths:
        src = inspect.getsourcefile(module)
        return codehash.hash_files([Path(src)], Path(src).parent) if src else "unknown"
    files: list[Path] = []
    for p in paths:
        files += codehash.tree_files(Path(p))
    return codehash.hash_files(files, Path(paths[0]).parent)


def check_model_args(name: str, factory: Callable[..., Any], spec: Any, args: dict[str, Any]) -> None:
    """``factory(spec, **args)`` must fit the constructor's signature: else a one-line error."""
    try:
        sig = inspect.signature(factory)
    except (TypeError, ValueError):  # no signature to check (a builtin): the call itself will tell
        return
    try:
        sig.bind(spec, **args)
    except TypeError as e:
        params = [p for p in list(sig.parameters.values())[1:]
                  if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
        accepted = ", ".join(p.name for p in params) or "none"
        unknown = [k for k in args if k not in sig.parameters]
        if unknown and not any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values()):
            problem = f"unexpected argument{'s' if len(unknown) > 1 else ''} {', '.join(repr(k) for k in unknown)}"
        else:
            problem = str(e)
        raise ConfigError(f"model '{name}': --model-args: {problem} (accepted: {accepted})") from None


def load_model_spec(spec: str, name: str | None = None) -> tuple[Callable[..., Any], dict[str, Any]]:
    """The class a spec names and the model info stamped on its results (incl. its code identity).

    The class is called as ``Class(data_spec, **model_args)`` and must follow
    :class:`benchmark.interface.AVModel`.
    """
    target, _, attr = spec.rpartition(":")
    if not target or not attr:
        raise ConfigError(f"model spec '{spec}' must look like path/to/file.py:ClassName or package.module:ClassName")
    if target.endswith(".py") or "/" in target:
        path = Path(target)
        if not path.is_file():
            raise InputError(path, None, "model file not found")
        root = _code_root(path)
        mod_name = f"avcl_submission_{hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]}"
        mspec = importlib.util.spec_from_file_location(mod_name, path)
        if mspec is None or mspec.loader is None:
            raise InputError(path, None, "cannot be imported as a Python module")
        _forget_user_modules(root)
        # the model's folder comes first on sys.path, so `import helper` of a module next to it works
        for folder in dict.fromkeys([str(root), str(path.resolve().parent)]):
            if folder in sys.path:
                sys.path.remove(folder)
            sys.path.insert(0, folder)
        module = importlib.util.module_from_spec(mspec)
        before = set(sys.modules)
        sys.modules[mod_name] = module
        try:
            mspec.loader.exec_module(module)
        except (Exception, SystemExit) as e:  # the user's module failed at import: the summary plus their traceback
            sys.modules.pop(mod_name, None)
            raise UserCodeError(f"{path}: import failed: {e.__class__.__name__}: {e}", e) from e
        finally:
            _MODEL_MODULES.update(set(sys.modules) - before - {mod_name})
        source_file = path
        code = lambda: codehash.hash_tree(root)  # noqa: E731
    else:
        try:
            module = importlib.import_module(target)
        except (Exception, SystemExit) as e:
            if isinstance(e, ImportError) and not is_user_exception(e):
                raise ConfigError(f"model spec '{spec}': cannot import module '{target}' ({e})") from None
            raise UserCodeError(f"model spec '{spec}': import of '{target}' failed: {e.__class__.__name__}: {e}",
                                e) from e
        source_file = Path(inspect.getsourcefile(module) or "")
        code = lambda: _module_code(module, target)  # noqa: E731
    factory = getattr(module, attr, None)
    if factory is None or not callable(factory):
        raise InputError(source_file, attr, "no such class or factory in the module")
    version = getattr(factory, "version", None)
    if version is not None:
        if not isinstance(version, (str, int)) or isinstance(version, bool) or str(version) == "":
            raise InputError(source_file, f"{attr}.version", f"must be a non-empty string or int, got {version!r}")
        identity: str | dict[str, Any] = {"version": version}
    else:
        identity = code()
    info = {
        "name": name or attr,
        "spec": spec,
        "source_hash": identity,
        "encoder": list(getattr(factory, "encoder", [])),
        "objective": list(getattr(factory, "objective", [])),
        "learning": getattr(factory, "learning", "unknown"),
        "papers": list(getattr(factory, "papers", [])),
        "description": (inspect.getdoc(factory) or "").split("\n")[0],
        "reference": False,
        "external": True,
    }
    return factory, info
