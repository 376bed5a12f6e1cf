"""Atomic file writes: a temporary file in the target's folder, then ``os.replace``.

Every file fearkd writes for later reuse (run units, checkpoints, feature sets and caches,
synthetic datasets) goes through :func:`atomic_open`, so a crash or a kill never leaves a
half-written file that a later run would mistake for a finished one.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import numpy as np

__all__ = ["atomic_open", "dumps", "write_atomic"]

_UMASK_LOCK = threading.Lock()


def _umask() -> int:
    """The process umask, read without changing it where the OS allows.

    ``/proc/self/status`` (Linux >= 4.7) gives it race-free. Elsewhere the only way is to set
    and restore it: the lock keeps two of our own calls from interleaving, but a file another
    thread creates in that instant gets the temporary 022 mask -- hence /proc first.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


@contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO]:
    """Open a temporary file for writing that replaces ``path`` when the block ends cleanly.

    On an exception (or a kill) the temporary file is removed and ``path`` is untouched.

    Parameters
    ----------
    path : path
        Final file; its folder is created if missing.
    mode : {"wb", "w"}
        Binary or text.
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"Invalid value for 'mode': expected 'wb' or 'w', got {mode!r}.")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as fh:
            yield fh
            fh.flush()
            # mkstemp creates 0600; give the file the mode open() would have (0666 & ~umask)
            # so a group can read a shared run.
            mode_bits = 0o666 & ~_umask()
            if os.chmod in os.supports_fd:
                os.chmod(fh.fileno(), mode_bits)
            else:
                os.chmod(tmp, mode_bits)
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        if exc.filename is None:  # a failed write() names no file: name the one being written
            raise OSError(exc.errno, exc.strerror, str(path)) from exc
        raise
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_atomic(path: str | os.PathLike, data: str | bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file and a rename."""
    with atomic_open(path, "wb" if isinstance(data, bytes) else "w") as fh:
        fh.write(data)
    return Path(path)


def dumps(obj) -> str:
    """JSON with NumPy scalars and arrays converted."""

    def default(v):
        if isinstance(v, np.generic):
            return v.item()
        if isinstance(v, np.ndarray):
            return v.tolist()
        raise TypeError(f"not JSON serialisable: {type(v).__name__}")

    return json.dumps(obj, default=default, allow_nan=True)
