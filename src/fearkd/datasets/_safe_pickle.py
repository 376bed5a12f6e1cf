"""Loading NumPy pickles (DEAP ``.dat`` files) without running code from the file.

A pickle is a small program: its ``GLOBAL`` and ``REDUCE`` opcodes import and call any callable
the file names, and ``BUILD`` calls ``__setstate__`` on whatever object is on the stack, so
``pickle.load`` on an untrusted file runs whatever it asks for. A dict of numeric NumPy arrays,
pickled at any protocol 0-5 by Python 2 or 3, needs only these globals, each admitted through a
wrapper that checks its arguments **before** anything is called:

- ``numpy.core.multiarray._reconstruct`` / ``numpy._core.multiarray._reconstruct``, only as
  ``_reconstruct(numpy.ndarray, (0,), 'b')``, the empty array NumPy then fills by ``BUILD``;
- ``numpy.ndarray``, only as that argument (calling it is refused);
- ``numpy.dtype``, only for the numeric type strings in :data:`NUMERIC_TYPES` (bool, signed and
  unsigned integers of 1-8 bytes, float16/32/64, complex64/128);
- ``_codecs.encode(text, 'latin1')``, which Python 3 writes for ``bytes`` at protocols 0-2;
- ``builtins.bytes()`` with no argument, which Python 3 writes for ``b''`` at protocols 0-2;
- ``numpy._core.numeric._frombuffer`` / ``numpy.core.numeric._frombuffer``, which NumPy writes at
  protocol 5, with a numeric dtype and an in-band ``bytes`` or ``bytearray`` buffer of the right
  size (out-of-band buffers cannot come from a file and are refused).

``BUILD`` is admitted only on a NumPy array with a numeric dtype and a buffer of the size its shape
needs, and on a dtype only with exactly the state NumPy writes for that dtype; ``NEWOBJ``,
``NEWOBJ_EX``, ``OBJ`` and ``INST`` (which call a class directly) are refused.

A refused global or call raises :class:`fearkd.errors.UnsafeFileError` naming the file and the
global. A stream that is truncated or corrupt raises :class:`fearkd.errors.FormatError` naming the
file.
"""

from __future__ import annotations

import io
import math
import os
import pickle
import struct

import numpy as np

from ..errors import FormatError, UnsafeFileError

try:  # NumPy >= 2
    from numpy._core.multiarray import _reconstruct
except ImportError:  # NumPy 1.x
    from numpy.core.multiarray import _reconstruct

__all__ = ["NUMERIC_TYPES", "RestrictedUnpickler", "safe_load", "safe_loads"]

#: Type strings ``numpy.dtype`` is admitted with: what NumPy writes for numeric arrays.
NUMERIC_TYPES = frozenset(
    ["b1", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "f2", "f4", "f8", "c8", "c16"]
)

_FIX = (
    "Do not load it; re-save the arrays with numpy.save, or pickle a dict holding only numeric "
    "NumPy arrays (protocol 0-5)."
)

# Errors a corrupt or truncated stream can raise inside the unpickler or NumPy's __setstate__.
_CORRUPT = (
    pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError,
    KeyError, struct.error, OverflowError, RecursionError, SystemError,
)


class _Refused(Exception):
    """Raised by the argument checks; turned into UnsafeFileError naming the file."""


def _refuse(what: str):
    raise _Refused(what)


def _is_int(v) -> bool:
    return type(v) is int or type(v) is bool


def _numeric_dtype(dtype, what: str) -> np.dtype:
    if not isinstance(dtype, np.dtype):
        _refuse(f"{what} with {type(dtype).__name__} {dtype!r} instead of a numeric dtype")
    if dtype.hasobject or dtype.kind not in "biufc" or dtype.str[1:] not in NUMERIC_TYPES:
        _refuse(f"{what} with the dtype {dtype!r}, which is not a plain numeric type")
    return dtype


def _shape(shape, what: str) -> tuple[int, ...]:
    if type(shape) is not tuple or not all(_is_int(d) and d >= 0 for d in shape):
        _refuse(f"{what} with the shape {shape!r} instead of a tuple of non-negative ints")
    return shape


def _dtype(*args) -> np.dtype:
    """``numpy.dtype(type_string, align=False, copy=True)`` for numeric type strings only."""
    what = f"numpy.dtype{args!r}"
    if not 1 <= len(args) <= 3 or not all(_is_int(a) for a in args[1:]):
        _refuse(f"{what}: expected (type string, align, copy)")
    typestr = args[0].decode("latin-1") if isinstance(args[0], bytes) else args[0]
    if type(typestr) is not str or typestr not in NUMERIC_TYPES:
        kind = "the object dtype" if typestr in ("O", "O4", "O8") else "a non-numeric dtype"
        _refuse(f"{what}: {kind} (admitted: {', '.join(sorted(NUMERIC_TYPES))})")
    if len(args) > 1 and args[1]:
        _refuse(f"{what}: aligned (structured) dtypes are not admitted")
    return np.dtype(typestr, False, True)


def _dtype_states(dtype: np.dtype) -> list[tuple]:
    """The ``BUILD`` states NumPy writes for ``dtype`` (either byte order for multi-byte types)."""
    orders = ("|",) if dtype.itemsize == 1 else ("<", ">")
    return [(3, o, None, None, None, -1, -1, 0) for o in orders]


def _is_dtype_state(dtype: np.dtype, state) -> bool:
    # Types compared too: 3.0 == 3 and False == 0, but NumPy's C parser would see other objects.
    if type(state) is not tuple:
        return False
    return any(
        len(state) == len(s)
        and all(type(a) is type(b) and a == b for a, b in zip(state, s, strict=True))
        for s in _dtype_states(dtype)
    )


def _reconstruct_empty(subtype, shape, typecode):
    """``_reconstruct(numpy.ndarray, (0,), 'b')``: the empty array NumPy's ``BUILD`` fills."""
    if subtype is not np.ndarray or shape != (0,) or typecode not in ("b", b"b"):
        _refuse(
            f"numpy _reconstruct{(subtype, shape, typecode)!r}; NumPy writes only "
            f"_reconstruct(numpy.ndarray, (0,), 'b')"
        )
    return _reconstruct(np.ndarray, (0,), "b")


def _encode(*args):
    """``_codecs.encode(text, 'latin1')``: how Python 3 pickles ``bytes`` at protocols 0-2."""
    if (
        len(args) != 2 or type(args[0]) is not str or type(args[1]) is not str
        or args[1].lower() not in ("latin1", "latin-1")
    ):
        _refuse(f"_codecs.encode{_short(args)}; only (str, 'latin1') is admitted")
    return args[0].encode("latin-1")


def _empty_bytes(*args) -> bytes:
    """``bytes()``: how Python 3 pickles ``b''`` at protocols 0-2."""
    if args:
        _refuse(f"builtins.bytes{_short(args)}; only bytes() with no argument is admitted")
    return b""


def _frombuffer(buf, dtype, shape, order):
    """NumPy's protocol-5 array constructor, for numeric dtypes and in-band buffers."""
    what = "numpy _frombuffer"
    if type(buf) not in (bytes, bytearray):
        _refuse(f"{what} with a {type(buf).__name__} buffer instead of bytes or bytearray")
    dtype = _numeric_dtype(dtype, what)
    shape = _shape(shape, what)
    if order not in ("C", "F"):
        _refuse(f"{what} with the order {order!r} instead of 'C' or 'F'")
    if len(buf) != math.prod(shape) * dtype.itemsize:
        raise ValueError(
            f"_frombuffer: a buffer of {len(buf)} bytes for shape {shape} of {dtype} "
            f"({math.prod(shape) * dtype.itemsize} bytes)"
        )
    return np.frombuffer(buf, dtype=dtype).reshape(shape, order=order)


def _short(args) -> str:
    text = repr(args)
    return text if len(text) <= 80 else text[:77] + "..."


_NDARRAY = np.ndarray  # an argument of _reconstruct only; never called

_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct_empty,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct_empty,
    ("numpy", "ndarray"): _NDARRAY,
    ("numpy", "dtype"): _dtype,
    ("_codecs", "encode"): _encode,
    ("__builtin__", "bytes"): _empty_bytes,
    ("builtins", "bytes"): _empty_bytes,
    ("numpy.core.numeric", "_frombuffer"): _frombuffer,
    ("numpy._core.numeric", "_frombuffer"): _frombuffer,
}
_CALLABLE = frozenset(id(f) for f in _ALLOWED.values() if f is not _NDARRAY)


def _check_array_state(inst: np.ndarray, state) -> None:
    """Admit ``ndarray.__setstate__`` only with a numeric dtype and a buffer of the right size."""
    what = "a NumPy array BUILD state"
    if type(state) is not tuple or len(state) not in (4, 5):
        _refuse(f"{what} with the state {_short(state)}")
    if len(state) == 5:
        if state[0] != 1 or not _is_int(state[0]):
            _refuse(f"{what} with the state version {state[0]!r}")
        state = state[1:]
    shape, dtype, fortran, data = state
    _shape(shape, what)
    dtype = _numeric_dtype(dtype, what)
    if not _is_int(fortran):
        _refuse(f"{what} with the Fortran flag {fortran!r}")
    if type(data) not in (bytes, bytearray, str):
        _refuse(f"{what} with {type(data).__name__} data instead of a byte string")
    if len(data) != math.prod(shape) * dtype.itemsize:
        raise ValueError(
            f"array data of {len(data)} bytes for shape {shape} of {dtype} "
            f"({math.prod(shape) * dtype.itemsize} bytes)"
        )


class RestrictedUnpickler(pickle._Unpickler):
    """An unpickler that builds numeric NumPy arrays and plain containers, and nothing else.

    The pure-Python unpickler is used because ``BUILD`` and ``REDUCE`` must be checked before
    they call anything; NumPy pickles hold few opcodes (the array data is one string), so it is
    as fast as the C one on DEAP files.

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

    dispatch = dict(pickle._Unpickler.dispatch)

    def __init__(self, file, *, filename: str = "<pickle>", encoding: str = "latin1") -> None:
        super().__init__(file, encoding=encoding)
        self.filename = filename

    def _unsafe(self, what: str) -> UnsafeFileError:
        return UnsafeFileError(f"{self.filename}: refused to load: {what}; nothing was run. {_FIX}")

    def find_class(self, module: str, name: str):
        """Return an admitted NumPy callable; refuse any other global."""
        target = _ALLOWED.get((module, name))
        if target is None:
            raise self._unsafe(
                f"the pickle asks for the global {module}.{name!s}, which is not part of a "
                f"numeric NumPy array and could run code"
            )
        return target

    def persistent_load(self, pid):
        """Refuse persistent ids: they would hand control to application code."""
        raise self._unsafe(f"the pickle uses a persistent id ({pid!r}), which a NumPy pickle "
                           f"never does")

    def _checked(self, step, *args):
        try:
            return step(*args)
        except _Refused as exc:
            raise self._unsafe(f"the pickle calls {exc}") from None

    def load_reduce(self):
        args = self.stack.pop()
        func = self.stack[-1]
        if id(func) not in _CALLABLE:
            name = getattr(func, "__name__", type(func).__name__)
            raise self._unsafe(f"the pickle calls {name!s}, which is not an admitted constructor")
        if type(args) is not tuple:
            raise pickle.UnpicklingError(f"REDUCE arguments are a {type(args).__name__}")
        self.stack[-1] = self._checked(func, *args)

    def load_build(self):
        state = self.stack.pop()
        inst = self.stack[-1]
        if isinstance(inst, np.dtype):
            if not _is_dtype_state(inst, state):
                raise self._unsafe(
                    f"the pickle sets a dtype BUILD state {_short(state)}; NumPy writes "
                    f"{_dtype_states(inst)[0]!r} for {inst}"
                )
            inst.__setstate__(state)
        elif type(inst) is np.ndarray:
            self._checked(_check_array_state, inst, state)
            inst.__setstate__(state)
        else:
            raise self._unsafe(f"the pickle sets a BUILD state on a {type(inst).__name__}")

    def _refuse_opcode(self):
        raise self._unsafe("the pickle calls a class directly (NEWOBJ/OBJ/INST opcode)")

    def load_next_buffer(self):
        raise FormatError(
            f"{self.filename}: the pickle refers to out-of-band buffers (protocol 5 with a "
            f"buffer_callback), which a file does not hold. Pickle the arrays in-band: "
            f"pickle.dump(obj, f, protocol=5) without buffer_callback, or numpy.save."
        )

    dispatch[pickle.REDUCE[0]] = load_reduce
    dispatch[pickle.BUILD[0]] = load_build
    dispatch[pickle.NEXT_BUFFER[0]] = load_next_buffer
    for _op in (pickle.NEWOBJ, pickle.NEWOBJ_EX, pickle.OBJ, pickle.INST):
        dispatch[_op[0]] = _refuse_opcode
    del _op


class _BoundedReader:
    """A file whose reads never ask for more bytes than it has left.

    A length field of a damaged pickle (``BINUNICODE8``, ``BINBYTES8``, a frame) can claim
    exabytes; read as is, that is a ``MemoryError`` before any byte is checked. Capped at what
    is left, the unpickler sees a short read and reports a truncated file, like any other.
    """

    def __init__(self, file) -> None:
        self._file = file
        here = file.tell()
        self._end = file.seek(0, io.SEEK_END)
        file.seek(here)

    def read(self, n: int = -1) -> bytes:
        if n is not None and n > 0:
            n = min(n, max(self._end - self._file.tell(), 0))
        return self._file.read(n)

    def readline(self) -> bytes:
        return self._file.readline()


def _load(file, filename: str, encoding: str):
    try:
        return RestrictedUnpickler(_BoundedReader(file), filename=filename,
                                   encoding=encoding).load()
    except (UnsafeFileError, FormatError):
        raise
    except _CORRUPT as exc:
        raise FormatError(
            f"{filename}: not a readable pickle ({type(exc).__name__}: {exc}); the file is "
            f"truncated or corrupt. Download it again."
        ) from exc


def safe_load(path: str | os.PathLike, *, encoding: str = "latin1"):
    """Load a pickle file, admitting only numeric NumPy array reconstruction.

    Parameters
    ----------
    path : str or path-like
        The pickle file (any protocol 0-5, written by Python 2 or 3).
    encoding : str
        Decoding of Python-2 strings (``"latin1"`` for NumPy buffers).

    Returns
    -------
    obj : object
        The unpickled object (for a DEAP file, a dict of arrays).

    Raises
    ------
    UnsafeFileError
        The stream names a global, a call or a state outside numeric NumPy arrays; nothing it
        names is run.
    FormatError
        The stream is truncated or corrupt, or refers to out-of-band buffers.
    """
    name = os.path.basename(os.fspath(path))
    with open(path, "rb") as f:
        return _load(f, name, encoding)


def safe_loads(data: bytes, *, filename: str = "<bytes>", encoding: str = "latin1"):
    """Like :func:`safe_load`, for a pickle held in memory."""
    return _load(io.BytesIO(data), filename, encoding)
