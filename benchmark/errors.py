"""Errors that reach the user as one line.

Every problem caused by the user's input (a file, a name, an option) is raised as an
:class:`AVCLError` subclass. The CLI prints ``str(err)`` on stderr and exits non-zero;
it never shows a traceback for these. Messages name the file and the field.
"""
from __future__ import annotations


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
