"""Output folders the command line writes into, and operating-system faults as one line.

:func:`prepare_synthetic_folder` keeps ``fearkd synth`` from mixing a new synthetic dataset
with whatever a folder already holds: a non-empty folder is refused unless ``--force``, which
removes only the files a synthetic writer itself makes (``sNN.dat``, ``participant_ratings.csv``,
ASCERTAIN's ``.mat`` files, ...) and refuses when anything else is there.

:func:`os_error_line` turns an :class:`OSError` raised while writing (disk full, a file-size
limit, a read-only or unwritable folder, a path under a file) into the one line the command
line prints: the path, what went wrong and what to do, ending with the promise that a re-run
resumes (every file is written atomically, so nothing half-written is left to trust).

:func:`write_synthetic_marker` leaves ``fearkd-synthetic.json`` at a synthetic dataset's root
(the writer and its arguments); :func:`read_synthetic_marker` finds it again, so that
:func:`fearkd.datasets.open_dataset` can tell synthetic data from real data and every summary,
page and figure built on it can say so.
"""

from __future__ import annotations

import errno
import json
import re
from pathlib import Path

from ._atomic import atomic_open
from .errors import FearkdError

__all__ = ["SYNTH_FILES", "SYNTH_MARKER", "prepare_synthetic_folder", "os_error_line",
           "read_synthetic_marker", "write_synthetic_marker"]

#: The file a synthetic writer leaves at its dataset's root (real releases have none).
SYNTH_MARKER = "fearkd-synthetic.json"

#: Files (relative paths, as regular expressions) each synthetic writer creates.
SYNTH_FILES = {
    "deap": (re.escape(SYNTH_MARKER), r"data_preprocessed_python/s\d{2}\.dat",
             r"data_preprocessed_matlab/s\d{2}\.mat",
             r"metadata_csv/participant_ratings\.csv"),
    "ascertain": (re.escape(SYNTH_MARKER),
                  r"ASCERTAIN_Raw/(EEG|ECG|GSR)Data/Movie_P\d{2}/(EEG|ECG|GSR)_Clip\d+\.mat",
                  r"ASCERTAIN_Features/Dt_(SelfReports|Order_Movie)\.mat"),
    "e4": (re.escape(SYNTH_MARKER), r"description\.toml",
           r"S\d+/(EDA|TEMP|BVP|ACC|HR|IBI|tags)\.csv"),
}

_TEMP = r"(.*/)?\..+\.tmp"  # an atomic write's temporary file left by a kill


def prepare_synthetic_folder(root: str | Path, dataset: str, force: bool) -> None:
    """Refuse a non-empty ``root`` unless ``force``; with it, remove the writer's own files.

    Raises
    ------
    FearkdError
        ``root`` is a file, holds files and ``force`` is false, or holds files the writer
        does not make (they are listed and nothing is removed).
    """
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise FearkdError(f"{str(root)!r} is a file, not a folder; give a new folder as the "
                          f"synth output path.")
    if not root.is_dir():
        return
    files = sorted(p for p in root.rglob("*") if not p.is_dir())
    if not files and not any(root.iterdir()):
        return
    if not force:
        raise FearkdError(
            f"{str(root)!r} is not empty ({len(files)} file(s)); writing a synthetic "
            f"{dataset.upper()} there would mix it with what is there. Give an empty or new "
            f"folder, or add --force to first remove the synthetic files it holds."
        )
    patterns = [re.compile(p) for p in (*SYNTH_FILES[dataset], _TEMP)]
    rel = [p.relative_to(root).as_posix() for p in files]
    foreign = [r for r in rel if not any(p.fullmatch(r) for p in patterns)]
    if foreign:
        raise FearkdError(
            f"--force removes only files a synthetic {dataset.upper()} writer makes, but "
            f"{str(root)!r} also holds {foreign[:5]!r}" + (" ..." if len(foreign) > 5 else "")
            + "; nothing was removed. Give an empty or new folder."
        )
    for p in files:
        p.unlink()
    for d in sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
        if not any(d.iterdir()):
            d.rmdir()


def write_synthetic_marker(root: str | Path, writer: str, **params) -> Path:
    """Mark ``root`` as written by the synthetic ``writer`` with ``params`` (JSON values)."""
    path = Path(root) / SYNTH_MARKER
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(path) as f:
        f.write(json.dumps({"synthetic": True, "writer": writer, "params": params},
                           indent=2, sort_keys=True).encode("utf-8") + b"\n")
    return path


def read_synthetic_marker(path: str | Path) -> dict | None:
    """The marker of the synthetic dataset holding ``path`` (its root or a folder or file in
    it, up to two levels down), or None for real data.

    Raises
    ------
    FearkdError
        A marker exists but is not a JSON object: the dataset's origin cannot be told.
    """
    path = Path(path)
    for folder in (path, *list(path.parents)[:2]):
        marker = folder / SYNTH_MARKER
        if marker.is_file():
            try:
                data = json.loads(marker.read_text(encoding="utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                data = exc
            if not isinstance(data, dict):
                raise FearkdError(
                    f"{str(marker)!r} is not a JSON object ({data}); it marks a synthetic "
                    f"dataset: rewrite the data with `fearkd synth` or delete the file if the "
                    f"data are real.")
            return data
    return None


def _blocking_file(path: Path) -> Path | None:
    """The first existing non-folder among ``path``'s parents (what makes mkdir fail)."""
    for parent in reversed(path.parents):
        if parent.exists() and not parent.is_dir():
            return parent
    return None


_RESUME = "then re-run the same command: finished work is kept and it resumes."


def os_error_line(exc: OSError) -> str:
    """One line for an OS fault: the path (when known), the cause and the fix."""
    where = exc.filename if exc.filename is not None else "a file"
    path = Path(str(where))
    code = exc.errno
    if code in (errno.ENOSPC, errno.EFBIG, getattr(errno, "EDQUOT", -1)):
        what = "no space left on the device" if code != errno.EFBIG else "file size limit reached"
        return (f"cannot write {str(where)!r}: {what}; free space there (or give an output "
                f"folder on another disk with --out), {_RESUME}")
    if code == errno.EROFS:
        return (f"cannot write {str(where)!r}: the file system is read-only; give a writable "
                f"output folder with --out (or remount it read-write), {_RESUME}")
    if code in (errno.EACCES, errno.EPERM):
        return (f"cannot write {str(where)!r}: permission denied; give a folder you can write "
                f"with --out (or make it writable: chmod u+w), {_RESUME}")
    if code in (errno.ENOTDIR, errno.EEXIST):
        blocker = _blocking_file(path) or (path if path.exists() and not path.is_dir() else None)
        if blocker is not None:
            return (f"cannot create {str(where)!r}: {str(blocker)!r} is a file, not a folder; "
                    f"choose an output path that is not under a file (--out).")
    reason = exc.strerror or str(exc)
    return f"cannot use {str(where)!r}: {reason}; check the path given on the command line."
