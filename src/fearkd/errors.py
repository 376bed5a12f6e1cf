"""Exceptions raised by fearkd.

Every domain failure is a subclass of :class:`FearkdError`, so the command line can print one
clear line for it. Wrong types raise :class:`TypeError` and wrong values :class:`ValueError`
(some of the classes below are both, so that callers can catch either).
"""

from __future__ import annotations

__all__ = [
    "FearkdError",
    "DatasetNotFoundError",
    "FormatError",
    "UnsafeFileError",
    "ConfigError",
    "LeakageError",
    "UnknownChannelError",
    "LabelError",
    "CheckpointError",
    "BundleError",
]


class FearkdError(Exception):
    """Base class of every error fearkd raises on purpose."""


class DatasetNotFoundError(FearkdError, FileNotFoundError):
    """No dataset files where the caller said they would be."""


class FormatError(FearkdError, ValueError):
    """A file exists but does not hold what its format promises (shape, keys, values)."""


class UnsafeFileError(FearkdError):
    """A file asked to run code (a pickle naming a non-NumPy callable) and was refused."""


class ConfigError(FearkdError, ValueError):
    """An experiment file, rule table or description file is invalid."""


class LeakageError(FearkdError):
    """A train/test split lets information from test windows reach training."""


class UnknownChannelError(FearkdError, KeyError):
    """A channel name was asked for that the recording does not have."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class LabelError(FearkdError, ValueError):
    """Ratings or labels cannot be turned into classes (NaN, out of scale, ambiguous)."""


class CheckpointError(FearkdError):
    """A checkpoint does not fit the model or feature list it is loaded into."""


class BundleError(FearkdError, ValueError):
    """A bundle that cannot be read, was altered, or needs a newer fearkd."""
