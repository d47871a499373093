"""Loading user-submitted models: ``path/to/file.py:ClassName`` or ``package.module:ClassName``."""
from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import sys
from pathlib import Path
from typing import Any, Callable

from .errors import ConfigError, InputError


def load_model_spec(spec: str, name: str | None = None) -> tuple[Callable[..., Any], dict[str, Any]]:
    """The class a spec names and the model info stamped on its results (incl. a source hash).

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
        mod_name = f"avcl_submission_{hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]}"
        mspec = importlib.util.spec_from_file_location(mod_name, path)
        if mspec is None or mspec.loader is None:
            raise InputError(path, None, "cannot be imported as a Python module")
        module = importlib.util.module_from_spec(mspec)
        sys.modules[mod_name] = module
        try:
            mspec.loader.exec_module(module)
        except Exception as e:  # the user's module failed at import: show what and where, in one line
            raise InputError(path, None, f"import failed: {e.__class__.__name__}: {e}") from None
        source_file = path
    else:
        try:
            module = importlib.import_module(target)
        except ImportError as e:
            raise ConfigError(f"model spec '{spec}': cannot import module '{target}' ({e})") from None
        source_file = Path(inspect.getsourcefile(module) or "")
    factory = getattr(module, attr, None)
    if factory is None or not callable(factory):
        raise InputError(source_file, attr, "no such class or factory in the module")
    digest = hashlib.sha256(source_file.read_bytes()).hexdigest()[:16] if source_file.is_file() else "unknown"
    info = {
        "name": name or attr,
        "spec": spec,
        "source_hash": digest,
        "encoder": list(getattr(factory, "encoder", [])),
        "objective": list(getattr(factory, "objective", [])),
        "learning": getattr(factory, "learning", "unknown"),
        "papers": list(getattr(factory, "papers", [])),
        "description": (inspect.getdoc(factory) or "").split("\n")[0],
        "reference": False,
        "external": True,
    }
    return factory, info
