"""Empatica E4 exports: one headerless CSV per signal, read file by file.

An E4 session folder (as exported by E4 connect) holds:

============  =======  ==========================================================
file          rate     content
============  =======  ==========================================================
``EDA.csv``   4 Hz     skin conductance (µS)
``TEMP.csv``  4 Hz     skin temperature (°C)
``BVP.csv``   64 Hz    blood volume pulse (photoplethysmograph, arbitrary units)
``ACC.csv``   32 Hz    3 columns x, y, z in 1/64 g (read here in g)
``HR.csv``    1 Hz     heart rate (bpm); starts 10 s after the session start
``IBI.csv``   --       beats: row 1 ``start, IBI``, then ``offset s, interval s``
``tags.csv``  --       button presses, one absolute time per line (may be empty)
============  =======  ==========================================================

A signal file has **no header row**: row 1 is the signal's start time, row 2 its sampling rate
(both repeated once per column in ``ACC.csv``), then one sample per row. The start time is a
unix time (``1644227574.000000``) in current exports and a UTC date string
(``2013-02-24 12:23:49``) in older ones; both are read as POSIX seconds (UTC). Each signal
carries its own start, so signals are aligned on that clock, not by sample index.

Channel names: ``EDA``, ``TEMP``, ``BVP``, ``HR`` and ``ACC_x``, ``ACC_y``, ``ACC_z``
(:data:`E4_CHANNELS`). ``IBI.csv`` is not a sampled signal; :func:`read_e4_ibi` returns its
beat times. :func:`read_e4_zip` reads the same files from the export's zip without extracting
it. Every malformed file raises :class:`~fearkd.errors.FormatError` naming the file and
line.
"""

from __future__ import annotations

import datetime as _dt
import math
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import DatasetNotFoundError, FormatError

__all__ = ["E4_CHANNELS", "E4_SIGNALS", "E4Session", "parse_e4_time", "read_e4_ibi",
           "read_e4_session", "read_e4_signal", "read_e4_tags", "read_e4_zip"]

#: Sampled signal files of a session, in the order they are read.
E4_SIGNALS = ("EDA", "TEMP", "BVP", "ACC", "HR")

#: Channel names each signal file gives.
E4_CHANNELS = {"EDA": ("EDA",), "TEMP": ("TEMP",), "BVP": ("BVP",),
               "ACC": ("ACC_x", "ACC_y", "ACC_z"), "HR": ("HR",)}

#: ACC.csv counts per g.
ACC_COUNTS_PER_G = 64.0

_HINT = ("an E4 file has no header row: row 1 is the start time (a unix time such as "
         "1644227574.000000 or a UTC date such as 2013-02-24 12:23:49), row 2 the sampling rate "
         "in Hz")


def parse_e4_time(text: str) -> float:
    """POSIX seconds of an E4 time: a unix number or a UTC ``YYYY-MM-DD HH:MM:SS[.f]`` string.

    Raises ``ValueError`` for anything else.
    """
    text = str(text).strip()
    try:
        value = float(text)
    except ValueError:
        moment = _dt.datetime.fromisoformat(text)  # ValueError when not a date either
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=_dt.timezone.utc)
        return moment.timestamp()
    if not math.isfinite(value):
        raise ValueError(f"not a finite time: {text!r}")
    return value


def _lines(path: Path, text: str | None = None) -> list[str]:
    """Non-blank lines of ``path``, or of ``text`` (a zip member) named ``path`` in errors."""
    if text is not None:
        return [ln for ln in text.splitlines() if ln.strip()]
    path = Path(path)
    if not path.is_file():
        raise DatasetNotFoundError(f"{path}: E4 file not found.")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise FormatError(f"{path}: cannot read the E4 file ({exc}).") from exc
    return [ln for ln in text.splitlines() if ln.strip()]


def _fields(line: str) -> list[str]:
    return [f.strip() for f in line.split(",")]


def read_e4_signal(path: str | Path, *, text: str | None = None
                   ) -> tuple[float, float, np.ndarray]:
    """Read one sampled E4 file (EDA, TEMP, BVP, ACC, HR).

    Parameters
    ----------
    path : str or Path
        The CSV file (with ``text``: only the name errors give).
    text : str, optional
        The file's content, when it does not come from disk (a zip member).

    Returns
    -------
    start_unix : float
        Time of the first sample, POSIX seconds (UTC).
    sfreq : float
        Sampling rate in Hz.
    data : ndarray, shape (n_samples, n_cols)
        Samples as written (ACC in counts of 1/64 g; :func:`read_e4_session` scales it to g).
    """
    path = Path(path)
    lines = _lines(path, text)
    if len(lines) < 2:
        raise FormatError(f"{path}: has {len(lines)} line(s); {_HINT}, then samples.")
    heads = _fields(lines[0])
    try:
        starts = [parse_e4_time(f) for f in heads]
    except ValueError:
        raise FormatError(f"{path}: line 1 is {lines[0]!r}, not a start time; {_HINT}.") from None
    try:
        rates = [float(f) for f in _fields(lines[1])]
    except ValueError:
        rates = []
    if not rates or not all(math.isfinite(r) and r > 0 for r in rates):
        raise FormatError(f"{path}: line 2 is {lines[1]!r}, not a sampling rate in Hz; {_HINT}.")
    n_cols = len(heads)
    if len(set(starts)) != 1 or len(rates) != n_cols or len(set(rates)) != 1:
        raise FormatError(
            f"{path}: lines 1-2 give {n_cols} start time(s) {heads!r} and {len(rates)} rate(s) "
            f"{_fields(lines[1])!r}; an E4 file repeats one start and one rate per column."
        )
    data = np.empty((len(lines) - 2, n_cols))
    for i, line in enumerate(lines[2:]):
        row = _fields(line)
        try:
            if len(row) != n_cols:
                raise ValueError
            data[i] = [float(v) for v in row]
        except ValueError:
            raise FormatError(
                f"{path}: line {i + 3} is {line!r}; expected {n_cols} number(s) per sample row."
            ) from None
    if not len(data):
        raise FormatError(f"{path}: has a start time and a rate but no samples.")
    return starts[0], rates[0], data


def read_e4_ibi(path: str | Path, *, text: str | None = None
                ) -> tuple[float, np.ndarray, np.ndarray]:
    """Read ``IBI.csv``: beat times and inter-beat intervals (``text``: as in
    :func:`read_e4_signal`).

    Returns
    -------
    start_unix : float
        The file's start time (POSIX seconds).
    offsets : ndarray, shape (n_beats,)
        Seconds from ``start_unix`` to each beat (the beat that ends the interval).
    intervals : ndarray, shape (n_beats,)
        Inter-beat interval ending at that beat, seconds.

    Raises
    ------
    FormatError
        An empty file (no beats: E4 found no clean beat), or a malformed line.
    """
    path = Path(path)
    lines = _lines(path, text)
    if len(lines) < 2:
        raise FormatError(
            f"{path}: IBI file has no beats ({len(lines)} line(s)); expected line 1 'start, IBI' "
            f"then 'offset, interval' rows. Delete it: a session without IBI.csv is read "
            f"without beats."
        )
    head = _fields(lines[0])
    try:
        if len(head) != 2 or head[1] != "IBI":
            raise ValueError
        start = parse_e4_time(head[0])
    except ValueError:
        raise FormatError(
            f"{path}: line 1 is {lines[0]!r}; an E4 IBI file starts with 'start, IBI' (start "
            f"as a unix time or UTC date)."
        ) from None
    rows = np.empty((len(lines) - 1, 2))
    for i, line in enumerate(lines[1:]):
        try:
            values = [float(v) for v in _fields(line)]
            if len(values) != 2 or not all(math.isfinite(v) for v in values) or values[1] <= 0:
                raise ValueError
        except ValueError:
            raise FormatError(
                f"{path}: line {i + 2} is {line!r}; expected 'offset, interval' in seconds "
                f"(interval > 0)."
            ) from None
        rows[i] = values
    return start, rows[:, 0].copy(), rows[:, 1].copy()


def read_e4_tags(path: str | Path, *, text: str | None = None) -> np.ndarray:
    """Read ``tags.csv``: button presses as POSIX seconds, shape (n_tags,), possibly empty."""
    path = Path(path)
    tags = []
    for i, line in enumerate(_lines(path, text)):
        try:
            tags.append(parse_e4_time(line.split(",")[0]))
        except ValueError:
            raise FormatError(
                f"{path}: line {i + 1} is {line!r}; a tags file holds one absolute time per "
                f"line (unix time or UTC date)."
            ) from None
    return np.asarray(tags, dtype=float)


@dataclass
class E4Session:
    """One E4 session folder, read.

    Attributes
    ----------
    folder : Path
    signals : dict of str to (start_unix, sfreq, data)
        Per signal file stem (:data:`E4_SIGNALS` that exist); ``data`` shape
        (n_samples, n_cols), ACC scaled to g.
    ibi : (start_unix, offsets, intervals) or None
        From :func:`read_e4_ibi`; None when there is no ``IBI.csv``.
    tags : ndarray, shape (n_tags,)
        POSIX seconds; empty when there is no ``tags.csv`` or it is empty.
    """

    folder: Path
    signals: dict = field(default_factory=dict)
    ibi: tuple | None = None
    tags: np.ndarray = field(default_factory=lambda: np.empty(0))

    @property
    def start(self) -> float:
        """Session start: the earliest signal start (POSIX seconds)."""
        return min(s[0] for s in self.signals.values())

    @property
    def beats(self) -> np.ndarray:
        """Beat times in POSIX seconds, shape (n_beats,) (empty without IBI)."""
        if self.ibi is None:
            return np.empty(0)
        return self.ibi[0] + self.ibi[1]


def read_e4_session(folder: str | Path, *, ibi: bool = True) -> E4Session:
    """Read every E4 file of a session folder.

    Parameters
    ----------
    folder : str or Path
        The unzipped export (``EDA.csv``, ``ACC.csv``, ...).
    ibi : bool
        Read ``IBI.csv`` when present (an empty one is then an error); False ignores it.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetNotFoundError(f"{folder}: E4 session folder not found.")
    files = {p.name: p for p in folder.iterdir() if p.is_file()}
    return _read_session(folder, files, lambda name: None, ibi=ibi)


def read_e4_zip(path: str | Path, *, ibi: bool = True,
                required: tuple[str, ...] = ()) -> E4Session:
    """Read an E4 export as downloaded: a zip holding ``EDA.csv``, ``ACC.csv``, ...

    Members are read from the archive in memory (nothing is extracted); a member may sit in a
    folder inside the zip (its file name is what counts). Errors name ``zip:member``.

    Parameters
    ----------
    path : str or Path
        The ``.zip`` file.
    ibi : bool
        As in :func:`read_e4_session`.
    required : tuple of str
        Signal stems (:data:`E4_SIGNALS`) the archive must hold.

    Raises
    ------
    FormatError
        Not a readable zip archive, or a required member missing (or any malformed member).
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetNotFoundError(f"{path}: E4 zip not found.")
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise FormatError(f"{path}: not a readable zip archive ({exc}); download the E4 "
                          f"export again.") from exc
    with archive:
        members = {}
        for info in archive.infolist():
            name = info.filename.rsplit("/", 1)[-1]
            if not info.is_dir() and name and name not in members:
                members[name] = info
        missing = [f"{s}.csv" for s in required if f"{s}.csv" not in members]
        if missing:
            raise FormatError(
                f"{path}: the E4 zip has no {', '.join(missing)} (it holds "
                f"{sorted(members)!r}); an E4 export holds ACC.csv, BVP.csv, EDA.csv, "
                f"TEMP.csv, HR.csv, IBI.csv, tags.csv: download it again.")

        def read(name: str) -> str:
            try:
                return archive.read(members[name]).decode("utf-8-sig")
            except (OSError, UnicodeDecodeError, zipfile.BadZipFile, zlib.error) as exc:
                raise FormatError(f"{path}:{name}: cannot read the zip member ({exc}); "
                                  f"download the zip again.") from exc

        return _read_session(path, {n: f"{path}:{n}" for n in members}, read, ibi=ibi)


def _read_session(where: Path, files: dict, read, *, ibi: bool) -> E4Session:
    """An :class:`E4Session` from ``files`` (file name -> path or error label); ``read(name)``
    gives a file's text, or None to read it from disk."""
    session = E4Session(Path(where))

    def get(reader, name):
        return reader(files[name], text=read(name))

    for stem in E4_SIGNALS:
        name = f"{stem}.csv"
        if name in files:
            start, sfreq, data = get(read_e4_signal, name)
            if stem == "ACC":
                data = data / ACC_COUNTS_PER_G
            if data.shape[1] != len(E4_CHANNELS[stem]):
                raise FormatError(
                    f"{files[name]}: has {data.shape[1]} column(s); an E4 {stem} file has "
                    f"{len(E4_CHANNELS[stem])}."
                )
            session.signals[stem] = (start, sfreq, data)
    if not session.signals:
        raise DatasetNotFoundError(
            f"{where}: no E4 signal file; expected one of "
            f"{[s + '.csv' for s in E4_SIGNALS]!r}."
        )
    if ibi and "IBI.csv" in files:
        session.ibi = get(read_e4_ibi, "IBI.csv")
    if "tags.csv" in files:
        session.tags = get(read_e4_tags, "tags.csv")
    return session
