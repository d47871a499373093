"""Errors that reach the user as one line.

Every problem caused by the user's input (a file, a name, an option) is raised as an
:class:`AVCLError` subclass. The CLI prints ``str(err)`` on stderr and exits non-zero;
it never shows a traceback for these. Messages name the file and the field.
:class:`UserCodeError` wraps an exception raised inside a submitted model's own code: the CLI
shows its one-line summary followed by the traceback frames that lie in the user's files.
"""
from __future__ import annotations

import importlib.util
import site
import sysconfig
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class AVCLError(Exception):
    """Base class: an error whose message is fit to show to a user as is."""

    exit_code = 2


class InputError(AVCLError):
    """A bad input file or array: ``InputError(source, field, problem)``.

    ``source`` is a file path (or a description such as ``"model output"``),
    ``field`` the array / key / line / HDF5 path inside it (may be ``None``).
    """

    def __init__(self, source: object, field: str | None, problem: str):
        self.source = str(source)
        self.field = field
        self.problem = problem
        where = self.source if field is None else f"{self.source}: {field}"
        super().__init__(f"{where}: {problem}")


class UnknownNameError(AVCLError):
    """An unknown model / task / dataset / metric name."""


class ConfigError(AVCLError):
    """An invalid option or option combination."""


class ModelError(AVCLError):
    """A model broke the model interface (wrong shape, NaN, missing method)."""


class UserCodeError(AVCLError):
    """An exception raised inside a model's own code (import, constructor, fit, embed_*).

    ``str(err)`` is the one-line summary (``model 'X' raised in fit: ValueError: ...``);
    :meth:`render` adds the traceback frames that lie in the user's files (file, line, code), so
    the user sees where their code failed without the suite's and the libraries' frames.
    ``internal=True`` marks an exception of one of the suite's built-in models: a bug of the
    suite, exit status 1, still naming the model and the phase.
    """

    def __init__(self, summary: str, exc: BaseException, *, internal: bool = False):
        self.summary = summary
        self.exc = exc
        self.internal = internal
        self.exit_code = 1 if internal else 2
        super().__init__(summary)

    def frames(self) -> list[traceback.FrameSummary]:
        """The traceback frames of the user's code (all frames if none is the user's)."""
        if isinstance(self.exc, SyntaxError) and self.exc.filename and self.exc.lineno:
            return [traceback.FrameSummary(self.exc.filename, self.exc.lineno, "<module>",
                                           line=(self.exc.text or "").strip() or None)]
        frames = list(traceback.extract_tb(self.exc.__traceback__))
        mine = [f for f in frames if is_user_file(f.filename)]
        return mine or frames[-1:]

    def render(self) -> str:
        lines = [self.summary, "user code traceback (most recent call last):"]
        for f in self.frames():
            lines.append(f'  File "{f.filename}", line {f.lineno}, in {f.name}')
            if f.line:
                lines.append(f"    {f.line.strip()}")
        return "\n".join(lines)


class CellTimeout(TimeoutError):
    """Raised by the runner's watchdog inside a model call when ``--cell-timeout`` expires."""


class CellTimeoutAbort(BaseException):
    """Raised by the watchdog when the cell still runs after :class:`CellTimeout` (a model that
    swallowed it with ``except Exception``): not an ``Exception``, so it is not swallowed again."""


class CellTimeoutError(AVCLError):
    """A (model, seed) cell ran past ``--cell-timeout``: names the model and the phase that hung."""


def _suite_dirs() -> tuple[Path, ...]:
    """Folders of the suite's own packages (benchmark/, tasks/, baselines/, avcl_bench/)."""
    global _SUITE_DIRS
    if _SUITE_DIRS is None:
        dirs = {Path(__file__).resolve().parent}
        for name in ("avcl_bench", "avcl_bench.benchmark", "avcl_bench.tasks", "avcl_bench.baselines"):
            try:
                spec = importlib.util.find_spec(name)
            except (ImportError, ValueError):
                spec = None
            for p in (spec.submodule_search_locations or []) if spec is not None else []:
                dirs.add(Path(p).resolve())
        _SUITE_DIRS = tuple(dirs)
    return _SUITE_DIRS


def _library_dirs() -> tuple[Path, ...]:
    """The standard library and site-packages folders."""
    global _LIB_DIRS
    if _LIB_DIRS is None:
        paths = sysconfig.get_paths()
        dirs = {paths[k] for k in ("stdlib", "platstdlib", "purelib", "platlib") if k in paths}
        try:
            dirs |= set(site.getsitepackages()) | {site.getusersitepackages()}
        except AttributeError:  # a virtualenv's site module without these
            pass
        _LIB_DIRS = tuple(Path(d).resolve() for d in dirs if d)
    return _LIB_DIRS


_SUITE_DIRS: tuple[Path, ...] | None = None
_LIB_DIRS: tuple[Path, ...] | None = None


def is_user_file(filename: str) -> bool:
    """Whether a traceback frame's file is the user's: not the suite's, the stdlib's or a library's."""
    if not filename or filename.startswith("<"):
        return False
    p = Path(filename).resolve()
    if {"site-packages", "dist-packages"} & set(p.parts):
        return False
    return not any(p.is_relative_to(d) for d in (*_suite_dirs(), *_library_dirs()))


def is_user_exception(exc: BaseException) -> bool:
    """Whether ``exc`` was raised in (or below) the user's code, judged by its traceback frames."""
    if isinstance(exc, SyntaxError) and exc.filename and is_user_file(exc.filename):
        return True
    return any(is_user_file(f.filename) for f in traceback.extract_tb(exc.__traceback__))


@contextmanager
def user_code(model: str, phase: str | None = None, *, builtin: bool = False) -> Iterator[None]:
    """Run a call into a model's code: its exceptions become :class:`UserCodeError`.

    Errors of the suite's own validation (:class:`AVCLError`), ``KeyboardInterrupt`` and the
    watchdog's :class:`CellTimeout` pass through unchanged. ``SystemExit`` (a model calling
    ``sys.exit``) is a user-code error like any exception. An exception with no frame in the
    user's files is reported as the model's too (``builtin=True``, one of the suite's own
    models: an internal error, exit status 1). ``phase`` names the call (``fit``); ``None``
    takes the name of the outermost user function in the traceback (``embed_audio`` when a
    task's evaluation called it), else ``model code``.
    """
    try:
        yield
    except (AVCLError, CellTimeout):  # CellTimeoutAbort and KeyboardInterrupt are no Exception: not caught
        raise
    except (Exception, SystemExit) as e:
        where = phase
        if where is None:
            mine = [f for f in traceback.extract_tb(e.__traceback__) if is_user_file(f.filename)]
            where = mine[0].name if mine else "model code"
        what = f"SystemExit({e.code!r}) (a model must not exit the process)" if isinstance(e, SystemExit) \
            else f"{e.__class__.__name__}: {e}"
        raise UserCodeError(f"model '{model}' raised in {where}: {what}", e,
                            internal=builtin and not is_user_exception(e)) from e
