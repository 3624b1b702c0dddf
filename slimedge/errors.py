"""The errors slimedge raises for a user's mistake: one base class, :class:`SlimedgeError`.

Everything a user can cause (a bad file, option, frame or data set) raises a subclass of
:class:`SlimedgeError` whose message names the problem (the file or tensor, what was expected and
what came); the command line prints it as one line and exits non-zero. Any other exception is a
bug in slimedge and keeps its traceback. Each class also derives from the built-in type that
callers caught before there was a base class (``ValueError``, ``ImportError``), so existing
``except ValueError`` code keeps working.
"""
from __future__ import annotations


class SlimedgeError(Exception):
    """Base class of every error a user of slimedge can cause."""


class UsageError(SlimedgeError, ValueError):
    """A bad argument or option: unknown name, value out of range, conflicting settings."""


class DataError(SlimedgeError, ValueError):
    """A data file or data set that cannot be used: unreadable, malformed, or not the one recorded."""


class ModelFileError(SlimedgeError, ValueError):
    """A model file that is missing, truncated, foreign or not a step graph; the message names it."""


class MissingDependency(SlimedgeError, ImportError):
    """An optional package that this operation needs is not installed; the message says which."""


__all__ = ["SlimedgeError", "UsageError", "DataError", "ModelFileError", "MissingDependency"]
