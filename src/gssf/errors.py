"""The errors gssf raises for problems a user can cause and fix.

Every class derives from :class:`GssfError` (itself a ``ValueError``, so code written
against the older plain ``ValueError`` keeps working). The command line prints any of
them as one line ``gssf <cmd>: error: <message>`` and exits with status 2; the message
names the file, key or value at fault.
"""
from __future__ import annotations

__all__ = [
    "GssfError",
    "CLIError",
    "RunDirError",
    "RunLockedError",
    "CheckpointDamagedError",
    "UnsafeInputError",
    "BadImageError",
    "CacheError",
    "TrainingDivergedError",
    "MissingExtraError",
    "UnreadableFileError",
    "DeviceUnavailableError",
    "BadTensorError",
    "TensorTypeError",
    "ScoreOverflowError",
    "StatisticsError",
    "SummaryError",
]


class GssfError(ValueError):
    """Base class: a problem with the user's input, files or environment."""


class CLIError(GssfError):
    """A wrong combination of command-line arguments."""


class RunDirError(GssfError):
    """A run folder that cannot be used (it holds foreign files, it is a file, ...)."""


class RunLockedError(RunDirError):
    """Another live process holds the lock of a run folder."""


class CheckpointDamagedError(GssfError):
    """A checkpoint file whose bytes do not match the checksum recorded when it was written."""


class UnsafeInputError(GssfError):
    """Untrusted data that tries to leave its root, fetch a URL or expand without bound."""


class BadImageError(GssfError):
    """An image that cannot be read, or is larger than the configured limits."""


class CacheError(GssfError):
    """A cache entry that cannot be read or written."""


class TrainingDivergedError(GssfError):
    """The loss became NaN or infinite during training."""


class MissingExtraError(GssfError, ImportError):
    """A feature needs an optional dependency that is not installed (``pip install 'gssf[extra]'``)."""

    def __init__(self, feature: str, extra: str, module: str) -> None:
        super().__init__(
            f"{feature} needs the optional dependency {module!r}, which is not installed: "
            f"pip install 'gssf[{extra}]'"
        )
        self.feature, self.extra, self.module = feature, extra, module


class UnreadableFileError(GssfError):
    """A file that exists but cannot be decoded as the format it should have (empty, truncated, corrupt)."""


class DeviceUnavailableError(GssfError):
    """A requested device (``--device cuda``, ``train.device: cuda``) that this machine does not have."""


class BadTensorError(GssfError):
    """A tensor argument of the wrong shape or with NaN/Inf values; the message names the argument."""


class TensorTypeError(BadTensorError, TypeError):
    """A non-tensor, or a tensor of a dtype that cannot be used (complex, integer, bool where reals are needed)."""


class ScoreOverflowError(GssfError, OverflowError):
    """Finite inputs whose scores overflow the compute dtype (raw inner products of huge features)."""


class StatisticsError(GssfError):
    """Inputs to a statistic that do not fit together: paired members of different shapes, no seeds, NaN."""


class SummaryError(GssfError):
    """A results summary (``summary.json``) whose rows or fields are missing, extra or not finite numbers."""
