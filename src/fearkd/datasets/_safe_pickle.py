"""Loading Python-2 NumPy pickles (DEAP ``.dat`` files) without running code from the file.

A pickle is a small program: its ``GLOBAL`` and ``REDUCE`` opcodes import and call any callable
the file names, so ``pickle.load`` on an untrusted file runs whatever it asks for. The DEAP
``.dat`` files need only NumPy's array reconstruction, so :class:`RestrictedUnpickler` admits
exactly these globals and refuses everything else **before** it is called:

- ``numpy.core.multiarray._reconstruct`` (the name Python-2 era NumPy wrote) and its NumPy 2
  location ``numpy._core.multiarray._reconstruct``, both mapped to the installed function;
- ``numpy.ndarray``;
- ``numpy.dtype``, wrapped so that object dtypes (whose unpickling could rebuild arbitrary
  Python objects) are refused too.

A refused global raises :class:`fearkd.errors.UnsafeFileError` naming the file and the global.
A stream that is truncated or corrupt raises :class:`fearkd.errors.FormatError` naming the file.
"""

from __future__ import annotations

import io
import os
import pickle
import struct

import numpy as np

from ..errors import FormatError, UnsafeFileError

try:  # NumPy >= 2
    from numpy._core.multiarray import _reconstruct
except ImportError:  # NumPy 1.x
    from numpy.core.multiarray import _reconstruct

__all__ = ["RestrictedUnpickler", "safe_load", "safe_loads"]

# Errors a corrupt or truncated stream can raise inside the unpickler or NumPy's __setstate__.
_CORRUPT = (
    pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError,
    KeyError, struct.error, OverflowError, RecursionError,
)


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that builds NumPy arrays and plain containers, and nothing else.

    Parameters
    ----------
    file : binary file object
        The open pickle stream.
    filename : str
        Name used in error messages.
    encoding : str
        How Python-2 ``str`` objects are decoded; ``"latin1"`` is required for NumPy array
        buffers written by Python 2.
    """

    def __init__(self, file, *, filename: str = "<pickle>", encoding: str = "latin1") -> None:
        super().__init__(file, encoding=encoding)
        self.filename = filename

    def find_class(self, module: str, name: str):
        """Return an admitted NumPy callable; refuse any other global."""
        target = _ALLOWED.get((module, name))
        if target is None:
            raise UnsafeFileError(
                f"{self.filename}: refused to load: the pickle asks for the global "
                f"{module}.{name!s}, which is not part of a NumPy array. A DEAP file holds only "
                f"NumPy arrays; this file is not one (it may be malicious). Do not load it; "
                f"download the dataset again from its official source."
            )
        return target

    def persistent_load(self, pid):
        """Refuse persistent ids: they would hand control to application code."""
        raise UnsafeFileError(
            f"{self.filename}: refused to load: the pickle uses a persistent id ({pid!r}), "
            f"which a DEAP file never does."
        )


def _safe_dtype(*args) -> np.dtype:
    """``numpy.dtype`` for the unpickler, refusing dtypes that hold Python objects."""
    dtype = np.dtype(*args)
    if dtype.hasobject:
        raise UnsafeFileError(
            f"refused to load: the pickle asks for the object dtype {dtype!r}; a DEAP file "
            f"holds only numeric arrays."
        )
    return dtype


_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): _safe_dtype,
}


def _load(file, filename: str, encoding: str):
    try:
        return RestrictedUnpickler(file, filename=filename, encoding=encoding).load()
    except UnsafeFileError as exc:
        if not str(exc).startswith(filename):
            raise UnsafeFileError(f"{filename}: {exc}") from None
        raise
    except _CORRUPT as exc:
        raise FormatError(
            f"{filename}: not a readable pickle ({type(exc).__name__}: {exc}); the file is "
            f"truncated or corrupt. Download it again."
        ) from exc


def safe_load(path: str | os.PathLike, *, encoding: str = "latin1"):
    """Load a pickle file, admitting only NumPy array reconstruction.

    Parameters
    ----------
    path : str or path-like
        The pickle file.
    encoding : str
        Decoding of Python-2 strings (``"latin1"`` for NumPy buffers).

    Returns
    -------
    obj : object
        The unpickled object (for a DEAP file, a dict of arrays).

    Raises
    ------
    UnsafeFileError
        The stream names a global other than the admitted NumPy ones; nothing it names is run.
    FormatError
        The stream is truncated or corrupt.
    """
    name = os.path.basename(os.fspath(path))
    with open(path, "rb") as f:
        return _load(f, name, encoding)


def safe_loads(data: bytes, *, filename: str = "<bytes>", encoding: str = "latin1"):
    """Like :func:`safe_load`, for a pickle held in memory."""
    return _load(io.BytesIO(data), filename, encoding)
