"""Description parsing and per-format record access for :mod:`fearkd.datasets.generic`.

:func:`read_description` and :func:`parse_description` turn the ``[dataset]`` table of a
description (documented in :mod:`fearkd.datasets.generic`) into a validated, picklable
:class:`Description`; every unknown key or wrong type is a :class:`~fearkd.errors.ConfigError`
naming the key and the file.

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
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ConfigError, FormatError
from ..recordings import MODALITIES

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = ["FORMATS", "TIME_FORMATS", "Description", "Event", "OpenRecord", "open_e4",
           "open_record", "parse_description", "parse_time", "read_annotations",
           "read_description", "read_events_csv", "record_file"]

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


_DATASET_KEYS = ("name", "root", "subjects", "subject_id", "format", "align", "records",
                 "channels", "labels", "kind", "description")
_RECORD_KEYS = ("file", "format", "sfreq", "time_column", "sep", "start", "channels")
_CHANNEL_KEYS = ("modality", "name", "scale")
_LABEL_KEYS = ("from", "record", "extension", "field", "events", "classes", "source_classes",
               "exclude", "min_duration", "ratings", "time_format", "tags", "stages",
               "durations", "column")
_SUFFIX_FORMATS = {".edf": "edf", ".bdf": "bdf", ".csv": "csv", ".hea": "wfdb", "": "wfdb"}


@dataclass(frozen=True)
class _Channel:
    modality: str
    name: str | None = None
    scale: float = 1.0


@dataclass(frozen=True)
class _Record:
    pattern: str
    fmt: str
    sfreq: float | None = None
    time_column: str | None = None
    sep: str = ","
    channels: Mapping[str, _Channel] | None = None
    start: float | None = None


@dataclass(frozen=True)
class _Labels:
    kind: str
    record: str
    extension: str
    field: str
    events: str | None
    classes: Mapping[str, int]
    source_classes: Mapping[str, int] | None
    exclude: tuple[str, ...]
    min_duration: float
    ratings: Mapping[str, Mapping[str, float]]
    time_format: str = "seconds"
    tags: str | None = None
    stages: tuple[str, ...] = ()
    durations: tuple[float, ...] | None = None
    column: str | None = None


@dataclass(frozen=True)
class Description:
    """A validated description (picklable, so ``load_subject`` can go to worker processes)."""

    name: str
    source: str
    root: Path
    subjects: str | tuple[str, ...]
    subject_id: str
    align: str
    records: tuple[_Record, ...]
    channels: Mapping[str, _Channel]
    labels: _Labels

    @property
    def record_names(self) -> list[str]:
        return [r.pattern for r in self.records]


def read_description(description) -> tuple[Mapping, str, Path]:
    """``([dataset] table, source name for messages, folder relative paths start from)``."""
    if isinstance(description, (str, Path)):
        path = Path(description)
        if not path.is_file():
            raise ConfigError(
                f"Description file {str(path)!r} does not exist; expected a TOML file with a "
                f"[dataset] table (see fearkd.datasets.generic)."
            )
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: not valid TOML ({exc}).") from None
        if not isinstance(data.get("dataset"), dict):
            raise ConfigError(f"{path}: no [dataset] table; the description goes there.")
        return data["dataset"], str(path), path.resolve().parent
    if isinstance(description, Mapping):
        return _typed(description.get("dataset", description), "table", "dataset", "<dict>"), \
            "<dict>", Path.cwd()
    raise TypeError(
        f"'description' must be a path to a TOML file or a dict, got "
        f"{type(description).__name__}."
    )


def _keys(table, allowed, where: str, source: str) -> None:
    unknown = [k for k in table if k not in allowed]
    if unknown:
        raise ConfigError(
            f"{source}: unknown key(s) {unknown!r} in {where}; known keys: {list(allowed)!r}."
        )


def _typed(value, kind: str, key: str, source: str):
    """Check a value's type: str, number, int, table, strings (list of str)."""
    ok = {
        "str": isinstance(value, str),
        "number": isinstance(value, (int, float)) and not isinstance(value, bool),
        "int": isinstance(value, int) and not isinstance(value, bool),
        "table": isinstance(value, Mapping),
        "strings": isinstance(value, list) and all(isinstance(v, str) for v in value),
    }[kind]
    if not ok:
        expected = {"str": "a string", "number": "a number", "int": "an integer",
                    "table": "a table", "strings": "a list of strings"}[kind]
        raise ConfigError(f"{source}: key {key!r} must be {expected}, got {value!r}.")
    return float(value) if kind == "number" else value


def _choice(value, choices, key: str, source: str) -> str:
    if value not in choices:
        raise ConfigError(f"{source}: key {key!r} must be one of {list(choices)!r}, got {value!r}.")
    return value


def _channels(table, key: str, source: str) -> dict[str, _Channel]:
    out = {}
    for ch, spec in _typed(table, "table", key, source).items():
        where = f"{key}.{ch}"
        if isinstance(spec, str):
            spec = {"modality": spec}
        _keys(_typed(spec, "table", where, source), _CHANNEL_KEYS, where, source)
        modality = _choice(spec.get("modality"), MODALITIES, f"{where}.modality", source)
        name = spec.get("name")
        out[str(ch)] = _Channel(modality, None if name is None else
                                _typed(name, "str", f"{where}.name", source),
                                _typed(spec.get("scale", 1.0), "number", f"{where}.scale", source))
    return out


def _record(entry, default_fmt: str | None, i: int, source: str) -> _Record:
    where = f"dataset.records[{i}]"
    if isinstance(entry, str):
        entry = {"file": entry}
    _keys(_typed(entry, "table", where, source), _RECORD_KEYS, where, source)
    if "file" not in entry:
        raise ConfigError(f"{source}: {where} needs a 'file' pattern with {{subject}}.")
    pattern = _typed(entry["file"], "str", f"{where}.file", source)
    if "{subject}" not in pattern:
        raise ConfigError(
            f"{source}: {where}.file {pattern!r} lacks the {{subject}} placeholder, e.g. "
            f"\"Subject{{subject}}_AccTempEDA\"."
        )
    fmt = entry.get("format", default_fmt)
    if fmt is None:
        suffix = Path(pattern).suffix.lower()
        if suffix not in _SUFFIX_FORMATS:
            raise ConfigError(
                f"{source}: cannot tell the format of {where}.file {pattern!r} from its suffix; "
                f"set format to one of {list(FORMATS)!r}."
            )
        fmt = _SUFFIX_FORMATS[suffix]
    fmt = _choice(fmt, FORMATS, f"{where}.format", source)
    sfreq = entry.get("sfreq")
    if sfreq is not None and _typed(sfreq, "number", f"{where}.sfreq", source) <= 0:
        raise ConfigError(f"{source}: key '{where}.sfreq' must be > 0 Hz, got {sfreq!r}.")
    if (time_column := entry.get("time_column")) is not None:
        _typed(time_column, "str", f"{where}.time_column", source)
    if fmt == "csv" and sfreq is None and time_column is None:
        raise ConfigError(
            f"{source}: CSV record {where} ({pattern!r}) needs 'sfreq' (Hz) or 'time_column'."
        )
    channels = entry.get("channels")
    start = entry.get("start")
    if start is not None:
        if fmt != "csv":
            raise ConfigError(f"{source}: key '{where}.start' is for CSV records; a {fmt!r} "
                              f"record has its start time in its header.")
        if isinstance(start, _dt.datetime):  # a bare TOML datetime
            start = start.isoformat()
        try:
            start = parse_time(start, "iso" if isinstance(start, str) else "unix")
        except (ValueError, TypeError):
            raise ConfigError(
                f"{source}: key '{where}.start' must be a unix time (number) or an ISO time "
                f"such as \"2020-01-02T10:00:00Z\", got {start!r}."
            ) from None
    return _Record(pattern, fmt, None if sfreq is None else float(sfreq), time_column,
                   _typed(entry.get("sep", ","), "str", f"{where}.sep", source),
                   None if channels is None else _channels(channels, f"{where}.channels", source),
                   start)


def _class_map(table, key: str, source: str) -> dict[str, int]:
    return {str(k): _typed(v, "int", f"{key}.{k}", source)
            for k, v in _typed(table, "table", key, source).items()}


def _labels(table, records: tuple[_Record, ...], source: str) -> _Labels:
    _keys(_typed(table, "table", "dataset.labels", source), _LABEL_KEYS, "[dataset.labels]", source)
    kind = _choice(table.get("from", "annotations"), ("annotations", "events", "tags", "column"),
                   "dataset.labels.from", source)
    time_format = table.get("time_format", "seconds")
    if time_format not in TIME_FORMATS:
        raise ConfigError(
            f"{source}: [dataset.labels] time_format must be one of {list(TIME_FORMATS)!r}, got "
            f"{time_format!r}; \"seconds\" counts from the labels record's first sample, "
            f"\"unix\" and \"iso\" are absolute times."
        )
    names = [r.pattern for r in records]
    record = _typed(table.get("record", names[0]), "str", "dataset.labels.record", source)
    if record not in names:
        raise ConfigError(
            f"{source}: key 'dataset.labels.record' is {record!r}, not one of the records "
            f"{names!r}."
        )
    events = table.get("events")
    if kind == "events" and events is None:
        raise ConfigError(
            f"{source}: labels.from = \"events\" needs 'dataset.labels.events', a CSV file "
            f"pattern with {{subject}} (columns onset, label, optional duration)."
        )
    if "classes" not in table:
        raise ConfigError(f"{source}: [dataset.labels] needs a 'classes' table (name = int).")
    classes = _class_map(table["classes"], "dataset.labels.classes", source)
    source_classes = table.get("source_classes")
    if source_classes is not None:
        source_classes = _class_map(source_classes, "dataset.labels.source_classes", source)
    exclude = tuple(_typed(table.get("exclude", []), "strings", "dataset.labels.exclude", source))
    ratings = {}
    for lab, values in _typed(table.get("ratings", {}), "table", "dataset.labels.ratings",
                              source).items():
        key = f"dataset.labels.ratings.{lab}"
        ratings[str(lab)] = {str(k): _typed(v, "number", f"{key}.{k}", source)
                             for k, v in _typed(values, "table", key, source).items()}
    for key, extra in (("source_classes", source_classes or {}), ("ratings", ratings),
                       ("exclude", {n: 0 for n in exclude if n in classes})):
        bad = [n for n in extra if (n in classes) == (key == "exclude")]
        if bad:
            raise ConfigError(
                f"{source}: 'dataset.labels.{key}' names {bad!r}, which "
                + ("are also classes" if key == "exclude" else "are not in 'classes'")
                + f"; classes are {list(classes)!r}."
            )
    min_duration = _typed(table.get("min_duration", 0.0), "number", "dataset.labels.min_duration",
                          source)
    if min_duration < 0:
        raise ConfigError(
            f"{source}: key 'dataset.labels.min_duration' must be >= 0 s, got {min_duration!r}."
        )
    stages = tuple(_typed(table.get("stages", []), "strings", "dataset.labels.stages", source))
    durations = table.get("durations")
    if durations is not None:
        if not isinstance(durations, list) or len(durations) != len(stages):
            raise ConfigError(
                f"{source}: key 'dataset.labels.durations' must be a list of {len(stages)} "
                f"number(s) of seconds, one per stage of 'stages', got {durations!r}."
            )
        durations = tuple(_typed(d, "number", "dataset.labels.durations", source)
                          for d in durations)
    if kind == "tags" and not stages:
        raise ConfigError(
            f"{source}: labels.from = \"tags\" needs 'dataset.labels.stages', the stage names "
            f"in tag order, e.g. [\"baseline\", \"stress\", \"recovery\"]."
        )
    if time_format != "seconds" and kind != "events":
        raise ConfigError(
            f"{source}: [dataset.labels] time_format applies to labels.from = \"events\" only "
            f"(tags are absolute times, annotations and label columns count samples); remove "
            f"it or read an events CSV."
        )
    column = table.get("column")
    if kind == "column" and column is None:
        raise ConfigError(
            f"{source}: labels.from = \"column\" needs 'dataset.labels.column', the label "
            f"column of the labels record (e.g. \"label\")."
        )
    for key, value in (("tags", table.get("tags")), ("column", column)):
        if value is not None:
            _typed(value, "str", f"dataset.labels.{key}", source)
    return _Labels(
        kind, record, _typed(table.get("extension", "atr"), "str", "dataset.labels.extension",
                             source),
        _choice(table.get("field", "aux_note"), ("aux_note", "symbol"), "dataset.labels.field",
                source),
        None if events is None else _typed(events, "str", "dataset.labels.events", source),
        classes, source_classes, exclude, min_duration, ratings, time_format,
        table.get("tags"), stages, durations, column,
    )


def _subjects(value, source: str) -> str | tuple[str, ...]:
    if isinstance(value, list):
        bad = [v for v in value if isinstance(v, bool) or not isinstance(v, (str, int))]
        if bad or not value:
            raise ConfigError(
                f"{source}: key 'dataset.subjects' must be a non-empty list of ids, a range "
                f"\"1-20\" or \"auto\", got {value!r}."
            )
        return tuple(str(v) for v in value)
    if value == "auto":
        return "auto"
    match = re.fullmatch(r"\s*(\d+)\s*-\s*(\d+)\s*", value) if isinstance(value, str) else None
    if match is None or int(match[1]) > int(match[2]):
        raise ConfigError(
            f"{source}: key 'dataset.subjects' must be a range \"1-20\", a list of ids or "
            f"\"auto\", got {value!r}."
        )
    width = len(match[1]) if match[1].startswith("0") else 0
    return tuple(str(i).zfill(width) for i in range(int(match[1]), int(match[2]) + 1))


def parse_description(table: Mapping, source: str, base: Path, root) -> Description:
    """Validate a ``[dataset]`` table; ``root`` (argument) overrides its ``root`` key."""
    _keys(table, _DATASET_KEYS, "[dataset]", source)
    if table.get("kind", "generic") != "generic":
        raise ConfigError(f"{source}: key 'dataset.kind' must be \"generic\" for a description, "
                          f"got {table['kind']!r}.")
    for key in ("name", "records", "labels"):
        if key not in table:
            raise ConfigError(
                f"{source}: [dataset] needs key {key!r} (see fearkd.datasets.generic)."
            )
    name = _typed(table["name"], "str", "dataset.name", source)
    if (fmt := table.get("format")) is not None:
        _choice(fmt, FORMATS, "dataset.format", source)
    entries = table["records"]
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"{source}: key 'dataset.records' must be a non-empty list, "
                          f"got {entries!r}.")
    records = tuple(_record(e, fmt, i, source) for i, e in enumerate(entries))
    channels = _channels(table.get("channels", {}), "dataset.channels", source)
    if not channels and any(r.channels is None for r in records):
        raise ConfigError(f"{source}: [dataset.channels] is missing or empty; map channel names "
                          f"to modalities, e.g. EDA = \"gsr\".")
    if root is None:
        if "root" not in table:
            raise ConfigError(f"{source}: no 'root' in [dataset]; set it or pass "
                              f"load_generic(..., root=...).")
        root = base / _typed(table["root"], "str", "dataset.root", source)
    elif not isinstance(root, (str, Path)):
        raise TypeError(f"'root' must be a path, got {type(root).__name__}.")
    subject_id = _typed(table.get("subject_id", "{subject}"), "str", "dataset.subject_id", source)
    if "{subject}" not in subject_id:
        raise ConfigError(f"{source}: key 'dataset.subject_id' {subject_id!r} lacks {{subject}}.")
    return Description(
        name, source, Path(root).resolve(), _subjects(table.get("subjects", "auto"), source),
        subject_id, _choice(table.get("align", "auto"), ("auto", "start"), "dataset.align", source),
        records, channels, _labels(table["labels"], records, source),
    )
