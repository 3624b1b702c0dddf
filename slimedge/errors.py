"""The errors slimedge raises for a user's mistake: one base class, :class:`SlimedgeError`.

Everything a user can cause (a bad file, option, frame or data set) raises a subclass of
:class:`SlimedgeError` whose message names the problem (the file or tensor, what was expected and
what came); the command line prints it as one line and exits non-zero. Any other exception is a
bug in slimedge and keeps its traceback. Each class also derives from the built-in type that
callers caught before there was a base class (``ValueError``, ``ImportError``, ``KeyError``,
``RuntimeError``), so existing ``except ValueError`` code keeps working.

Every error class is declared here, grouped under its kind; the modules that raise one import
it from here (and the ones that first defined it still offer it under the old name, e.g.
``slimedge.checkpoint.CheckpointError``). This module imports nothing.

    SlimedgeError
      UsageError            a bad argument or option (ValueError)
        InputError            a frame, sequence or state the model cannot take
          ProtocolError         ... a ``slimedge serve`` client's message the protocol refuses
        UnknownVariantError   a variant name nobody defined (also KeyError)
        IncompatibleTarget    an export its target interpreter cannot run
        Locked                another process writes the same output
        CacheError            a library cache folder that is not private to the user
      DataError             a data file or data set that cannot be used (ValueError)
      ModelFileError        a model file missing, truncated, foreign, not a step graph (ValueError)
        CheckpointError       ... a .safetensors checkpoint
        IntegrityError        ... whose bytes are not the ones written (a digest mismatch)
          UnsealedError         ... that records no digest to check it against
      MissingDependency     an optional package is not installed (ImportError)
        DataPackageMissing    the package a data set ships in
        ToolchainNotFound     a cross-compiler or emulator (also RuntimeError)
        CompilerNotFound      a host C compiler (also ValueError)
      ExportValidationError an exported file that does not reproduce its model (ValueError)
      QuantizationError     a quantised export that fails its task check (ValueError)
      CompileError          the C compiler refused a source (ValueError)
      DeviceError           a device build or run failed (RuntimeError)
      ProfileError          a configuration that cannot be profiled (ValueError)
      TrainingDiverged      the training loss became NaN or infinite (ValueError)
"""
from __future__ import annotations


class SlimedgeError(Exception):
    """Base class of every error a user of slimedge can cause."""


# ---- the kinds ---------------------------------------------------------------------------------
class UsageError(SlimedgeError, ValueError):
    """A bad argument or option: unknown name, value out of range, conflicting settings."""


class DataError(SlimedgeError, ValueError):
    """A data file or data set that cannot be used: unreadable, malformed, or not the one recorded."""


class ModelFileError(SlimedgeError, ValueError):
    """A model file that is missing, truncated, foreign or not a step graph; the message names it."""


class MissingDependency(SlimedgeError, ImportError):
    """An optional package that this operation needs is not installed; the message says which."""


# ---- usage -------------------------------------------------------------------------------------
class InputError(UsageError):
    """A frame, sequence or state the model cannot take; the message says expected vs got."""


class ProtocolError(InputError):
    """A ``slimedge serve`` client's message the protocol refuses: ``name`` names the problem
    (``frame_size``, ``not_finite``, ...; :data:`slimedge.serve.protocol.CLOSE_CODES` gives each
    its WebSocket close code), the message says expected vs got."""

    def __init__(self, name: str, message: str):
        super().__init__(message)
        self.name, self.message = name, message


class UnknownVariantError(UsageError, KeyError):
    """Raised for a variant name that is neither canonical nor an alias nor registered."""

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0])


class IncompatibleTarget(UsageError):
    """An export its target interpreter (``compat``) cannot run, refused before writing."""


class Locked(UsageError):
    """Another slimedge process writes to the same output now."""


class CacheError(UsageError):
    """The C library cache folder is not a private folder of this user (another owner, or open to
    others): a library in it would run in this process, so it is not used."""


# ---- model files -------------------------------------------------------------------------------
class CheckpointError(ModelFileError):
    """A file that is missing, truncated, foreign or inconsistent; the message names it."""


class IntegrityError(ModelFileError):
    """A model file whose bytes are not the ones written (a digest mismatch): corrupted."""


class UnsealedError(IntegrityError):
    """A model file that records no integrity digest (older, written by a format's writer directly,
    or with its digest entry damaged): loaded only when the user turns verification off."""


# ---- missing software --------------------------------------------------------------------------
class DataPackageMissing(MissingDependency):
    """A data set's source package is not installed; the message says what to install."""


class ToolchainNotFound(MissingDependency, RuntimeError):
    """A cross-compiler or emulator that a device measurement needs is not installed."""


class CompilerNotFound(MissingDependency, ValueError):
    """No C compiler on this machine (or ``$CC`` names none)."""


# ---- work that failed on the user's model, data or machine -------------------------------------
class ExportValidationError(SlimedgeError, ValueError):
    """The exported file does not reproduce the source model within atol (no file was kept).

    ``report`` is the :class:`~slimedge.exporters.validate.ValidationReport` (its ``failures()``
    and ``describe()`` make the message), ``path`` the file that was to be written."""

    def __init__(self, report, path=None) -> None:
        self.report, self.path = report, path
        where = f"{path}: " if path is not None else ""
        super().__init__(f"{where}validation failed: {'; '.join(report.failures())} "
                         f"({report.describe()}); no file written")


class AudioValidationError(SlimedgeError, ValueError):
    """An export's audio front-end does not reproduce the model's (no file was kept)."""


class QuantizationError(SlimedgeError, ValueError):
    """A quantised export that fails its task-level check (no file is kept)."""


class _ToolOutput:
    """An error that carries a tool's output: ``message`` (one line) and ``output`` (the tool's
    lines); ``str()`` is both, the command line prints the output as an indented block."""

    def __init__(self, message: str, output: str = "") -> None:
        super().__init__(f"{message}:\n{output}" if output else message)
        self.message, self.output = message, output


class CompileError(_ToolOutput, SlimedgeError, ValueError):
    """The compiler refused the source (or ``$SLIMEDGE_CFLAGS``); ``output`` holds its output."""


class DeviceError(_ToolOutput, SlimedgeError, RuntimeError):
    """A device build or run failed: the compiler refused the source, the emulated CPU faulted,
    or the outputs differ from the host build's. The message says which and where."""


class ProfileError(SlimedgeError, ValueError):
    """A configuration that cannot be profiled (bad file, backend error); the message says which."""


class TrainingDiverged(SlimedgeError, ValueError):
    """The training loss became NaN or infinite before any epoch could be kept."""


__all__ = ["SlimedgeError", "UsageError", "DataError", "ModelFileError", "MissingDependency",
           "InputError", "ProtocolError", "UnknownVariantError", "IncompatibleTarget", "Locked",
           "CacheError", "CheckpointError", "IntegrityError", "UnsealedError", "DataPackageMissing",
           "ToolchainNotFound", "CompilerNotFound",
           "ExportValidationError", "QuantizationError", "CompileError", "DeviceError",
           "ProfileError", "TrainingDiverged"]
