"""The installed package's version, in a module of its own so that any module can read it
without importing the package's ``__init__`` (which exports modules that need the version)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("fearkd")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

__all__ = ["__version__"]
