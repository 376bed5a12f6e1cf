"""Per-format record access for :mod:`fearkd.datasets.generic` (the description is parsed in
:mod:`fearkd.datasets._generic_description`).

Each format is opened in two steps: :func:`open_record` reads what is known without the samples
(channel names, sampling rate, length, start time) so that a description can be checked before
any data is read, then :meth:`OpenRecord.read` returns the samples of the channels asked for.
:func:`read_annotations` and :func:`read_events_csv` return the label events of a record.

Times are seconds. A record's ``start`` is its first sample on a clock named by ``clock``:
``"datetime"`` (POSIX seconds: WFDB base date and time, EDF/BDF ``meas_date``, an E4 file's
first row, a CSV record's ``start`` key), ``"time-of-day"``
(WFDB base time without a date) or ``"csv"`` (the first value of a CSV time column); ``None``
when the file does not say.
"""

from __future__ import annotations

import datetime as _dt
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import FormatError

__all__ = ["FORMATS", "TIME_FORMATS", "Event", "OpenRecord", "open_e4", "open_record",
           "parse_time", "read_annotations", "read_events_csv", "record_file"]

logger = logging.getLogger(__name__)

FORMATS = ("wfdb", "edf", "bdf", "csv", "e4")

#: How label times are written: seconds from the labels record's first sample, or absolute.
TIME_FORMATS = ("seconds", "unix", "iso")

#: What the libraries raise on a file they cannot parse; wrapped into FormatError naming it.
_READ_ERRORS = (OSError, ValueError, KeyError, IndexError, TypeError, RuntimeError, EOFError,
                UnicodeDecodeError, AttributeError)

#: Relative spread of CSV time steps accepted as uniform sampling (timestamps rounded to ms).
_TIME_JITTER = 0.01


@dataclass(frozen=True)
class Event:
    """One label event: ``label`` starting ``onset`` seconds after its record's first sample."""

    label: str
    onset: float
    duration: float | None = None


@dataclass
class OpenRecord:
    """A record whose header is read; ``read`` returns samples.

    Attributes
    ----------
    name : str
        Record name as written in the description (placeholder filled in).
    path : Path
        The file named in messages (the ``.hea`` header for WFDB).
    fmt : str
        One of :data:`FORMATS`.
    sfreq : float
        Sampling rate in Hz.
    n_times : int
        Samples per channel.
    ch_names : tuple of str
        Channels in file order.
    start, clock : float or None, str or None
        First sample's time and the clock it is on (see the module docstring).
    """

    name: str
    path: Path
    fmt: str
    sfreq: float
    n_times: int
    ch_names: tuple[str, ...]
    start: float | None = None
    clock: str | None = None
    _handle: object = field(default=None, repr=False)

    @property
    def duration(self) -> float:
        return self.n_times / self.sfreq

    def read(self, channels: list[str]) -> np.ndarray:
        """Samples of ``channels`` as float64, shape (n_chans, n_times), in physical units."""
        if not channels:
            return np.empty((0, self.n_times))
        try:
            if self.fmt == "wfdb":
                import wfdb

                rows = [self.ch_names.index(c) for c in channels]
                rec = wfdb.rdrecord(str(self.path.with_suffix("")), channels=rows, physical=True)
                data = np.asarray(rec.p_signal, dtype=np.float64).T
            elif self.fmt in ("edf", "bdf"):
                data = self._handle.get_data(picks=channels).astype(np.float64)
            elif self.fmt == "e4":
                data = self._handle[[self.ch_names.index(c) for c in channels]]
            else:
                data = self._handle[channels].to_numpy(dtype=np.float64).T
        except _READ_ERRORS as exc:
            raise FormatError(
                f"{self.path}: cannot read channels {channels!r} ({type(exc).__name__}: {exc}); "
                f"check that the file is complete and of format {self.fmt!r}."
            ) from exc
        return np.ascontiguousarray(data)


def record_file(root: Path, name: str, fmt: str) -> Path:
    """The file that must exist for record ``name``: the ``.hea`` header for WFDB."""
    path = root / name
    if fmt == "wfdb" and path.suffix.lower() != ".hea":
        return path.with_name(path.name + ".hea")
    return path


def _wfdb_start(header) -> tuple[float | None, str | None]:
    if header.base_time is None:
        return None, None
    if header.base_date is not None:
        moment = _dt.datetime.combine(header.base_date, header.base_time, tzinfo=_dt.timezone.utc)
        return moment.timestamp(), "datetime"
    t = header.base_time
    return t.hour * 3600.0 + t.minute * 60.0 + t.second + t.microsecond / 1e6, "time-of-day"


def _open_wfdb(name: str, path: Path) -> OpenRecord:
    import wfdb

    header = wfdb.rdheader(str(path.with_suffix("")))
    if getattr(header, "n_seg", None) is not None:
        raise FormatError(
            f"{path}: multi-segment WFDB records are not supported; convert it to a single "
            f"segment (wfdb.rdrecord(...).wrsamp())."
        )
    if not header.fs or header.sig_len is None:
        raise FormatError(f"{path}: the header gives no sampling rate or no signal length.")
    start, clock = _wfdb_start(header)
    return OpenRecord(name, path, "wfdb", float(header.fs), int(header.sig_len),
                      tuple(header.sig_name or ()), start, clock)


def _open_edf(name: str, path: Path, fmt: str) -> OpenRecord:
    import mne

    reader = mne.io.read_raw_bdf if fmt == "bdf" else mne.io.read_raw_edf
    raw = reader(path, preload=False, verbose="error")
    meas = raw.info["meas_date"]
    start = None if meas is None else meas.timestamp() + raw.first_time
    return OpenRecord(name, path, fmt, float(raw.info["sfreq"]), int(raw.n_times),
                      tuple(raw.ch_names), start, None if meas is None else "datetime", raw)


def _open_csv(name: str, path: Path, opts: dict) -> OpenRecord:
    import pandas as pd

    frame = pd.read_csv(path, sep=opts.get("sep", ","))
    time_column = opts.get("time_column")
    sfreq = opts.get("sfreq")
    start = clock = None
    if time_column is not None:
        if time_column not in frame.columns:
            raise FormatError(
                f"{path}: no time column {time_column!r}; columns are {list(frame.columns)!r}. "
                f"Fix 'time_column' in the description."
            )
        times = pd.to_numeric(frame.pop(time_column), errors="coerce").to_numpy(float)
        if len(times) < 2 or not np.all(np.isfinite(times)):
            raise FormatError(
                f"{path}: time column {time_column!r} needs at least 2 finite numbers (seconds)."
            )
        steps = np.diff(times)
        step = float(np.median(steps))
        if step <= 0 or np.max(np.abs(steps - step)) > _TIME_JITTER * step + 1e-3:
            raise FormatError(
                f"{path}: time column {time_column!r} is not uniformly increasing (steps from "
                f"{steps.min()!r} to {steps.max()!r} s); resample the record to a fixed rate."
            )
        start, clock = float(times[0]), "csv"
        if sfreq is None:
            sfreq = 1.0 / step
    if opts.get("start") is not None:
        start, clock = float(opts["start"]), "datetime"
    bad = [c for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c])]
    if bad:
        raise FormatError(
            f"{path}: column(s) {bad!r} are not numeric; a CSV record holds one numeric column "
            f"per channel (name the time column with 'time_column')."
        )
    frame.columns = [str(c) for c in frame.columns]
    return OpenRecord(name, path, "csv", float(sfreq), len(frame), tuple(frame.columns),
                      start, clock, frame)


def parse_time(value, time_format: str) -> float:
    """Seconds of a label time: as is (``seconds``, ``unix``) or POSIX seconds of an ISO string.

    An ISO time without a zone is UTC. Raises ``ValueError`` when ``value`` is not one.
    """
    if time_format == "iso":
        if not isinstance(value, str):
            raise ValueError(f"not an ISO time: {value!r}")
        moment = _dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=_dt.timezone.utc)
        return moment.timestamp()
    number = float(value)
    if not np.isfinite(number):
        raise ValueError(f"not a finite number: {value!r}")
    return number


def open_e4(name: str, path: Path
            ) -> tuple[list[OpenRecord], np.ndarray | None, np.ndarray | None]:
    """Open an E4 record: a session folder or one E4 signal file.

    Returns one :class:`OpenRecord` per signal file (name ``<record>/<EDA>``, clock
    ``"datetime"``, its own start and rate, ACC in g), the session's beat times (POSIX seconds)
    or None without ``IBI.csv``, and its tags (POSIX seconds, possibly empty; None for a single
    file, which belongs to no session folder).
    """
    from .e4 import ACC_COUNTS_PER_G, E4_CHANNELS, read_e4_session, read_e4_signal

    channels = dict(E4_CHANNELS)
    if path.is_dir():
        session = read_e4_session(path)
        signals, beats, tags = session.signals, session.beats if session.ibi else None, \
            session.tags
    else:
        stem = path.stem.upper()
        start, sfreq, data = read_e4_signal(path)
        if stem == "ACC":
            data = data / ACC_COUNTS_PER_G
        names = E4_CHANNELS.get(stem)
        if names is None or len(names) != data.shape[1]:
            names = (path.stem,) if data.shape[1] == 1 else tuple(
                f"{path.stem}_{i}" for i in range(data.shape[1]))
        signals, beats, tags = {stem: (start, sfreq, data)}, None, None
        channels[stem] = names
    records = []
    for stem, (start, sfreq, data) in signals.items():
        sub = path / f"{stem}.csv" if path.is_dir() else path
        rec_name = f"{name}/{stem}" if path.is_dir() else name
        records.append(OpenRecord(rec_name, sub, "e4", sfreq, data.shape[0], channels[stem],
                                  start, "datetime", np.ascontiguousarray(data.T)))
    return records, beats, tags


def open_record(name: str, path: Path, fmt: str, opts: dict | None = None) -> OpenRecord:
    """Read a record's header (and, for CSV, its table).

    Parameters
    ----------
    name : str
        Record name for messages.
    path : Path
        The file (for WFDB the ``.hea`` header; the ``.dat`` beside it is read by ``read``).
    fmt : str
        One of :data:`FORMATS`.
    opts : dict, optional
        CSV options: ``sfreq``, ``time_column``, ``sep``, ``start`` (POSIX seconds).
        (E4 records open through :func:`open_e4`.)
    """
    opts = opts or {}
    try:
        if fmt == "wfdb":
            return _open_wfdb(name, path)
        if fmt in ("edf", "bdf"):
            return _open_edf(name, path, fmt)
        return _open_csv(name, path, opts)
    except FormatError:
        raise
    except _READ_ERRORS as exc:
        raise FormatError(
            f"{path}: cannot read record {name!r} as {fmt!r} ({type(exc).__name__}: {exc}); "
            f"check the file and the record's 'format' in the description."
        ) from exc


def read_annotations(record: OpenRecord, extension: str, label_field: str) -> list[Event]:
    """Label events stored with a record.

    WFDB: the annotation file ``<record>.<extension>``; the label is ``label_field``
    (``"aux_note"`` or ``"symbol"``), the onset ``sample / fs``. EDF/BDF: the record's EDF+
    annotations (``raw.annotations``), with their durations (0 means none).
    """
    if record.fmt == "wfdb":
        import wfdb

        base = record.path.with_suffix("")
        ann_path = base.with_name(f"{base.name}.{extension}")
        if not ann_path.is_file():
            raise FormatError(
                f"{ann_path}: annotation file not found for record {record.name!r}; check "
                f"'labels.extension' ({extension!r}) in the description."
            )
        try:
            ann = wfdb.rdann(str(base), extension,
                             return_label_elements=["symbol", "label_store"])
        except _READ_ERRORS as exc:
            raise FormatError(f"{ann_path}: cannot read annotations ({exc}).") from exc
        fs = float(ann.fs) if ann.fs else record.sfreq
        values = ann.aux_note if label_field == "aux_note" else ann.symbol
        values = values if values is not None else [""] * len(ann.sample)
        return [Event(str(v or "").strip("\x00").strip(), float(s) / fs)
                for s, v in zip(ann.sample, values, strict=True)]
    if record.fmt in ("edf", "bdf"):
        raw = record._handle
        ann = raw.annotations
        # MNE annotation onsets count from meas_date; the record's first sample is first_time.
        shift = raw.first_time if ann.orig_time is not None else 0.0
        return [Event(str(d), float(o) - shift, float(t) if t > 0 else None)
                for o, t, d in zip(ann.onset, ann.duration, ann.description, strict=True)]
    raise FormatError(
        f"{record.path}: a CSV record carries no annotations; set labels.from = \"events\" and "
        f"name a CSV events file (columns onset, label, optional duration)."
    )


def read_events_csv(path: Path, time_format: str = "seconds") -> list[Event]:
    """Events from a CSV file with columns ``onset``, ``label`` and optional ``duration`` (s).

    ``onset`` is read by ``time_format`` (:func:`parse_time`): seconds, or absolute POSIX
    seconds (``unix``, ``iso``) that the caller shifts to the record's timeline.
    """
    import pandas as pd

    try:
        frame = pd.read_csv(path, dtype={"label": str, "onset": str}, keep_default_na=False)
    except _READ_ERRORS as exc:
        raise FormatError(f"{path}: cannot read the events file ({exc}).") from exc
    missing = [c for c in ("onset", "label") if c not in frame.columns]
    if missing:
        raise FormatError(
            f"{path}: events file lacks column(s) {missing!r}; it has {list(frame.columns)!r} "
            f"and needs onset (seconds from the labels record's first sample), label and "
            f"optionally duration."
        )
    onsets = np.full(len(frame), np.nan)
    for row, value in enumerate(frame["onset"]):
        try:
            onsets[row] = parse_time(value, time_format)
        except ValueError:
            expected = {"seconds": "seconds from the labels record's first sample",
                        "unix": "a unix time (POSIX seconds)",
                        "iso": "an ISO time such as 2020-01-02T10:00:00Z"}[time_format]
            raise FormatError(
                f"{path}: row {row + 1} has onset {value!r}; expected {expected} (line "
                f"{row + 2}; [dataset.labels] time_format = {time_format!r})."
            ) from None
    if "duration" in frame.columns:
        durations = pd.to_numeric(frame["duration"].replace("", np.nan), errors="coerce")
        durations = durations.to_numpy(float)
    else:
        durations = np.full(len(frame), np.nan)
    return [Event(str(lab).strip(), float(o), float(d) if np.isfinite(d) and d > 0 else None)
            for lab, o, d in zip(frame["label"], onsets, durations, strict=True)]
