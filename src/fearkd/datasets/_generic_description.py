"""The description of :mod:`fearkd.datasets.generic`: its ``[dataset]`` table, validated.

:func:`read_description` and :func:`parse_description` turn the ``[dataset]`` table of a
description (documented in :mod:`fearkd.datasets.generic`) into a validated, picklable
:class:`Description`; every unknown key or wrong type is a :class:`~fearkd.errors.ConfigError`
naming the key and the file.
"""

from __future__ import annotations

import datetime as _dt
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError
from ..recordings import MODALITIES
from ._generic_formats import FORMATS, TIME_FORMATS, parse_time

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = ["FLAT_POLICIES", "Description", "fill", "parse_description", "read_description"]

#: What a subject with a dead or flat-lined channel gets: a warning, skipped, or an error.
FLAT_POLICIES = ("warn", "drop-subject", "error")


def fill(pattern: str, subject: str, session: str | None = None) -> str:
    """A file pattern with its ``{subject}`` (and ``{session}``) placeholders filled in."""
    out = pattern.replace("{subject}", subject)
    return out if session is None else out.replace("{session}", session)


_DATASET_KEYS = ("name", "root", "subjects", "subject_id", "format", "align", "records",
                 "channels", "labels", "kind", "description", "sessions", "strict", "flat")
_RECORD_KEYS = ("file", "format", "sfreq", "time_column", "sep", "start", "channels")
_CHANNEL_KEYS = ("modality", "name", "scale")
_LABEL_KEYS = ("from", "record", "extension", "field", "events", "classes", "source_classes",
               "exclude", "min_duration", "ratings", "time_format", "tags", "stages",
               "durations", "column", "ratings_file", "rules")
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
    ratings_file: str | None = None
    rules: str | None = None  # a rule-table TOML, resolved against the description's folder


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
    sessions: str | tuple[str, ...] = "auto"
    strict: bool = False
    flat: str = "warn"

    @property
    def record_names(self) -> list[str]:
        return [r.pattern for r in self.records]

    @property
    def session_record(self) -> _Record | None:
        """The first record whose pattern holds ``{session}`` (sessions are found by it)."""
        return next((r for r in self.records if "{session}" in r.pattern), None)


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
    from ..label_report import FEAR_CLASSES

    classes = {str(k): _typed(v, "int", f"{key}.{k}", source)
               for k, v in _typed(table, "table", key, source).items()}
    # A model has one output per id up to the largest: id 7 would make 8 classes of a 4-level
    # study. Ids may skip fear levels (Relax = 0, Fear = 3 is none/high), never go past them.
    n = max(len(FEAR_CLASSES), len(set(classes.values())))
    for name, value in classes.items():
        if not 0 <= value < n:
            raise ConfigError(
                f"{source}: [{key}] {name} = {value!r}: expected a class id in 0..{n - 1} "
                f"(the {len(FEAR_CLASSES)} fear levels {'/'.join(FEAR_CLASSES)}, or 0..n-1 for "
                f"n distinct classes); set {name} to one of those ids in [{key}]."
            )
    return classes


def _labels(table, records: tuple[_Record, ...], source: str, base: Path) -> _Labels:
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
        None if (rf := table.get("ratings_file")) is None else
        _typed(rf, "str", "dataset.labels.ratings_file", source),
        None if (rt := table.get("rules")) is None else
        str(base / _typed(rt, "str", "dataset.labels.rules", source)),
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
            raise ConfigError(f"{source}: no root in [dataset]; set it (relative "
                              f"to the description file) or pass --data DIR.")
        root = base / _typed(table["root"], "str", "dataset.root", source)
    elif not isinstance(root, (str, Path)):
        raise TypeError(f"'root' must be a path, got {type(root).__name__}.")
    subject_id = _typed(table.get("subject_id", "{subject}"), "str", "dataset.subject_id", source)
    if "{subject}" not in subject_id:
        raise ConfigError(f"{source}: key 'dataset.subject_id' {subject_id!r} lacks {{subject}}.")
    sessions = table.get("sessions", "auto")
    if sessions != "auto":
        if (not isinstance(sessions, list) or not sessions
                or not all(isinstance(v, (str, int)) and not isinstance(v, bool)
                           for v in sessions)):
            raise ConfigError(f"{source}: key 'dataset.sessions' must be \"auto\" or a "
                              f"non-empty list of session names, got {sessions!r}.")
        sessions = tuple(str(v) for v in sessions)
    if not any("{session}" in r.pattern for r in records) and "sessions" in table:
        raise ConfigError(f"{source}: key 'dataset.sessions' is set but no 'records' pattern "
                          f"holds {{session}}; add it, e.g. \"S{{subject}}/{{session}}\".")
    strict = table.get("strict", False)
    if not isinstance(strict, bool):
        raise ConfigError(f"{source}: key 'dataset.strict' must be true or false, got "
                          f"{strict!r}.")
    flat = table.get("flat", "warn")
    if flat not in FLAT_POLICIES:
        raise ConfigError(f"{source}: key 'dataset.flat' must be one of {list(FLAT_POLICIES)!r}, "
                          f"got {flat!r}.")
    return Description(
        name, source, Path(root).resolve(), _subjects(table.get("subjects", "auto"), source),
        subject_id, _choice(table.get("align", "auto"), ("auto", "start"), "dataset.align", source),
        records, channels, _labels(table["labels"], records, source, base), sessions, strict, flat,
    )
