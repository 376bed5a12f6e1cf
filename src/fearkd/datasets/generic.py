"""Read your own continuous recordings (WFDB, EDF/BDF, CSV, Empatica E4) labelled by stages.

:func:`load_generic` reads a **description** (a TOML file or a dict) and returns the same lazy
:class:`~fearkd.recordings.Recordings` as the DEAP and ASCERTAIN readers. Each subject has one
or more records, possibly at different sampling rates (an 8 Hz EDA/temperature record and a
1 Hz heart-rate record of one session). Stages given as annotation events become trials.

Description file
----------------
The description lives in the ``[dataset]`` table (and its sub-tables), so an experiment file may
share the file; other top-level tables are ignored here. The PhysioNet "Non-EEG" dataset
(``configs/physionet-noneeg.toml``)::

    [dataset]
    name = "physionet-noneeg"          # dataset name in every trial (required)
    root = "../data/noneeg"            # relative to this file; load_generic(root=...) overrides
    subjects = "1-20"                  # "1-20" | "01-20" (zero-padded) | ["1", "7"] | "auto"
    subject_id = "Subject{subject}"    # fearkd subject id; default "{subject}"
    format = "wfdb"                    # wfdb | edf | bdf | csv | e4; default: from the suffix
    align = "auto"                     # auto | start (see "Time alignment")
    records = ["Subject{subject}_AccTempEDA", "Subject{subject}_SpO2HR"]

    [dataset.channels]                 # channel name in the file = modality
    ax = "acc"
    ay = "acc"
    az = "acc"
    temp = "temp"
    EDA = "gsr"
    SpO2 = "spo2"
    hr = "hr"

    [dataset.labels]
    from = "annotations"               # annotations | events | tags | column
    record = "Subject{subject}_AccTempEDA"   # record the events belong to (default: the first)
    extension = "atr"                  # WFDB annotation file <record>.atr
    field = "aux_note"                 # WFDB: aux_note (default) | symbol
    exclude = []                       # stage names that are not trials
    min_duration = 0.0                 # seconds; shorter stages are skipped (load report)

    [dataset.labels.classes]           # stage name = class, put in trial.info["y_fear"]
    Relax = 0
    PhysicalStress = 1
    CognitiveStress = 2
    EmotionalStress = 3

    [dataset.labels.source_classes]    # optional: trial.info["y_source"] (-1 for names not given)
    Relax = 0
    PhysicalStress = 1
    CognitiveStress = 1
    EmotionalStress = 1

Keys of ``[dataset]``: ``name`` (str, required); ``root`` (str); ``subjects`` (a range string
``"a-b"``, inclusive, zero-padded when ``a`` is, a list of ids, or ``"auto"``, the default:
every file matching the first record with ``*`` for ``{subject}``); ``subject_id`` (str with
``{subject}``); ``format``; ``align``; ``records`` (required); ``channels`` (required unless every
record has its own); ``labels`` (required); ``kind`` (optional, must be ``"generic"``) and
``description`` (free text) are accepted so that an experiment file can share the table.

``records`` entries are file patterns containing ``{subject}``: for WFDB the record name (with
or without ``.hea``), for EDF/BDF/CSV the file name (``.edf``/``.bdf``/``.csv`` give the format).
An entry may be a table ``{file = "...", format = "csv", sfreq = 4.0, time_column = "t",
sep = ",", start = "2020-01-02T10:00:00Z", channels = {...}}``: ``sfreq`` or ``time_column``
(seconds, uniformly spaced) is required for CSV, where every other column is a channel;
``start`` (CSV only: a unix time, an ISO string, or a TOML datetime; no zone means UTC) is the
absolute time of the CSV's first sample, needed for absolute label times; ``channels`` there
replaces the global map for that record.

``format = "e4"`` (see :mod:`fearkd.datasets.e4`): the pattern names an Empatica E4 **session
folder** (``"S{subject}"``, holding ``EDA.csv``, ``TEMP.csv``, ``BVP.csv``, ``ACC.csv``,
``HR.csv``, optional ``IBI.csv`` and ``tags.csv``) or one E4 signal file
(``"S{subject}/EDA.csv"``). Both start-row variants (unix time, UTC date string) are read. The
channels are ``EDA``, ``TEMP``, ``BVP``, ``HR`` and ``ACC_x``, ``ACC_y``, ``ACC_z`` (in g), each
signal placed on the session clock by its own start row (``HR`` starts 10 s late); a signal file
whose channels are not mapped does not shorten the subject's span. The labels timeline of a
session starts at its earliest signal. ``IBI.csv`` is not a channel: its beats go to
``trial.info["beats"]`` (see "Stages and trials"); an ``IBI.csv`` without beats is an error
(delete it to read the session without beats). Example (an E4 export per subject)::

    [dataset]
    name = "my-e4-study"
    root = "exports"
    subject_id = "S{subject}"
    records = [{ file = "S{subject}", format = "e4" }]

    [dataset.channels]
    EDA = "gsr"
    TEMP = "temp"
    BVP = "ppg"
    ACC_x = "acc"
    ACC_y = "acc"
    ACC_z = "acc"
    HR = "hr"

    [dataset.labels]
    from = "tags"                      # tags.csv of the session folder
    stages = ["baseline", "stress", "recovery"]

    [dataset.labels.classes]
    baseline = 0
    stress = 3
    recovery = 0

Sessions, bad subjects, flat channels: a record pattern may hold ``{session}``
(``"S{subject}/{session}"``, an E4 folder per day); sessions are found by the first such pattern
(``sessions = "auto"``) or listed (``sessions = ["day1", "day2"]``), and events/tags patterns may
use ``{session}`` too. Each session is read on its own clock (never laid end to end); trials are
numbered 1..n across the subject's sessions, ``trial.info["session"]`` names the session, and
the subject stays the group of every split. Keep other files out of the session pattern's
match (``rec_{session}.csv`` and ``ev_{session}.csv``, not ``{session}.csv`` and
``{session}_events.csv``). A missing or unreadable file, or an event outside its record, skips
the session (the subject, without sessions) and lists it in the load report; ``strict = true``
makes it an error. ``flat = "warn"`` (default) lists dead or flat-lined channels (all NaN, all
zero, constant) in the load report, ``"drop-subject"`` skips such a subject, ``"error"`` refuses
it. ``[dataset.labels] ratings_file`` (CSV: subject, stage or trial, optional session, one column
per scale; see :mod:`fearkd.datasets._generic_ratings`) adds each person's self-reports to
``trial.ratings``; with ``[dataset.labels] rules = "table.toml"`` (relative to the description)
the fear levels come from that rule table on those ratings instead of ``classes``.

``channels`` maps a channel name to a modality (one of :data:`~fearkd.recordings.MODALITIES`) or
to a table ``{modality = "eeg", name = "Fz", scale = 1e6}``: ``name`` renames the channel,
``scale`` multiplies its samples (MNE returns EDF/BDF voltages in volts; ``1e6`` gives µV).
Channels not in the map are not read. Every mapped channel must be in exactly one record of
each subject, and all channels of one modality must share one sampling rate.

``labels``: ``from = "annotations"`` reads the labels record's annotations (WFDB
``<record>.<extension>`` via ``wfdb.rdann``; EDF+/BDF+ annotations via MNE's
``raw.annotations``); ``from = "events"`` reads ``events = "Subject{subject}_events.csv"``, a CSV
with columns ``onset`` (seconds from the labels record's first sample), ``label`` and optional
``duration``. ``classes`` (required) maps names to ints; ``source_classes`` is optional;
``ratings`` maps a name to a table of named ratings (``[dataset.labels.ratings.Relax]`` with
``stress = 1.0``) copied into ``trial.ratings``. Every event name must be in ``classes`` or in
``exclude``. (Trigger codes on a BDF ``Status`` channel, as in DEAP's original files, are not
annotations; write them to an events CSV first.)

``time_format`` (``"seconds"``, the default, | ``"unix"`` | ``"iso"``; only with
``from = "events"``) says how the events CSV's ``onset`` is written: seconds from the labels
record's first sample, or absolute times (POSIX seconds; ISO 8601 strings such as
``2020-01-02T10:00:02Z``, no zone meaning UTC).
Absolute times are converted with the labels record's start: an E4 file's first row, EDF/BDF
``meas_date``, a WFDB header with base date *and* time, or a CSV record's ``start`` key. A
record without one (a CSV without ``start``, a WFDB header without a date) is a one-line
error; a CSV time column counts seconds on its own clock and does not give an absolute start.

``from = "tags"``: stages between button presses. ``stages`` (required) names them in order;
the tags are the session's ``tags.csv`` for an E4 labels record, or ``tags = "pattern"`` (one
absolute time per line, unix or UTC date). Stage ``i`` runs from tag ``i`` to tag ``i + 1``, so
``n`` tags need ``n - 1`` stage names (or ``n``: the last stage then runs to the end of the
records); with ``durations = [...]`` (seconds, one per stage) stage ``i`` starts at tag ``i``
and lasts ``durations[i]``, and ``n`` tags need ``n`` names. Any other count, no tags, or a tag
outside the session is an error naming the tags file (and line).

``from = "column"``: intervals from a label column of the labels record (a CSV record read at
its own rate: a per-sample or, as a 1 Hz record, a per-second label). ``column`` (required)
names it; it is numeric and is not a channel. Consecutive equal values make one stage named by
the value (``"1"``, ``"2"``; ``"2.5"`` for a non-integer), so ``classes`` and ``exclude`` use
those names (``exclude = ["0"]`` drops transient stretches); empty (NaN) stretches are no
stage.

Stages and trials
-----------------
Events are sorted by onset. A stage lasts ``duration`` seconds when the event gives one (> 0),
otherwise until the next event (excluded ones included), the last one until the records end.
Stage spans are then clipped to the subject's common span (the time every record covers).
Each kept stage is one :class:`~fearkd.recordings.Trial`, numbered 1..n in time order, with
``onset = 0``, ``ratings`` from ``labels.ratings`` and ``info``: ``y_fear`` (int), ``y_source``
(int, when ``source_classes`` is given), ``stage`` (the event name), ``onset_s`` and
``duration_s`` (the stage span in seconds from the labels record's first sample), ``event``
(the event's 1-based index in time order), and, when an E4 record has ``IBI.csv``, ``beats``
(ndarray, shape (n_beats,): the times of the beats in the stage, seconds from the stage start
``onset_s``; each beat ends the inter-beat interval ``IBI.csv`` gives for it). Beats are
irregular, so they are kept as times, not as a sampled :class:`~fearkd.recordings.Signal`.

Time alignment
--------------
A record's first sample is placed on the labels record's timeline by its start time (WFDB
``base_date``/``base_time``, EDF/BDF ``meas_date``, an E4 file's first row, a CSV ``start``
key, the first value of a CSV time column) when
``align = "auto"`` and every record of the subject has a start time on the same clock;
otherwise (or with ``align = "start"``) all records of a subject start together.

Sample convention: record sample ``i`` sits at ``start + i / sfreq``. A stage ``[t0, t1)`` takes
samples ``round(t0') <= i < round(t1')``, ``t' = (t - start) * sfreq``, halves rounded up: the
sample nearest each boundary opens the stage, consecutive stages share no sample and skip none,
each signal starts within half a sample of ``t0`` (a 1 Hz record: within 0.5 s) and covers
``t1 - t0`` within one sample of its own rate (exactly, for a record whose sample grid holds
the boundaries, such as the annotated record). A signal longer than the shortest one by more
than one sample of the slowest rate is cut back to that, so every signal of a trial covers the
same duration within one sample of the slowest rate (the invariant of
:mod:`fearkd.recordings`); a stage shorter than one sample of a record is skipped and reported.
"""

from __future__ import annotations

import functools
import logging
import math
import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ..errors import ConfigError, DatasetNotFoundError, FormatError, UnknownChannelError
from ..recordings import LoadReport, Recordings, Signal, Subject, Trial, flat_channels
from ._generic_description import Description, fill, parse_description, read_description
from ._generic_events import Opened, labels_ref, read_events
from ._generic_formats import (
    OpenRecord,
    open_e4,
    open_record,
    record_file,
)
from ._generic_ratings import read_ratings_file

__all__ = ["load_generic"]

logger = logging.getLogger(__name__)

#: Tolerance when turning seconds into sample positions, against float rounding.
_EPS = 1e-9


def load_generic(description: str | Path | Mapping, *, root: str | Path | None = None
                 ) -> Recordings:
    """Open recordings described by a TOML description (see the module docstring).

    Parameters
    ----------
    description : str, Path or mapping
        A TOML file whose ``[dataset]`` table describes the recordings, or that table as a dict
        (a dict with a ``"dataset"`` key is unwrapped).
    root : str or Path, optional
        Folder holding the records; overrides the description's ``root`` (which is relative to
        the TOML file's folder, or to the current folder for a dict).

    Returns
    -------
    Recordings
        Lazy: ``load_subject`` reads one subject's records when asked.

    Raises
    ------
    ConfigError
        Unknown keys or wrong types in the description (naming key and file).
    DatasetNotFoundError
        The root, or a subject's record, does not exist.
    """
    table, source, base = read_description(description)
    desc = parse_description(table, source, base, root)
    if not desc.root.is_dir():
        raise DatasetNotFoundError(
            f"{source}: dataset root {str(desc.root)!r} is not a folder; set root in [dataset] "
            f"(relative to the description file) or pass --data DIR."
        )
    tokens = _resolve_subjects(desc)
    missing = {sid: _missing(desc, tok) for sid, tok in tokens.items()}
    gaps = [f for files in missing.values() for f in files]
    if gaps and (desc.strict or all(missing.values())):
        raise DatasetNotFoundError(
            f"{source}: {len(gaps)} record file(s) missing under {str(desc.root)!r}, first "
            f"{gaps[:3]!r}; check 'records' and 'subjects' in [dataset]"
            + (" (strict = true: a subject with a missing file is an error)." if desc.strict
               else ".")
        )
    ratings = read_ratings_file(desc, tokens)
    info = {
        "kind": "generic", "source": source, "root": str(desc.root),
        "records": [s.pattern for s in desc.records],
        "formats": [s.fmt for s in desc.records],
        "channels": {n: c.modality for n, c in desc.channels.items()},
        "classes": dict(desc.labels.classes),
        "strict": desc.strict, "flat": desc.flat,
    }
    if desc.session_record is not None:
        info["sessions"] = {sid: [s for s in _sessions(desc, tok) if s is not None]
                            for sid, tok in tokens.items()}
    if desc.labels.rules is not None:
        info["rules"] = desc.labels.rules
    if desc.labels.ratings_file is not None:
        info["ratings_file"] = str(desc.root / desc.labels.ratings_file)
    loader = functools.partial(_load_subject, desc, dict(tokens), ratings)
    return Recordings(desc.name, list(tokens), loader, info)


def _natural_key(token: str):
    return (0, int(token), token) if token.isdigit() else (1, 0, token)


def _resolve_subjects(desc: Description) -> dict[str, str]:
    """Subject id -> the token put into ``{subject}``, in subject order."""
    if desc.subjects == "auto":
        spec = desc.records[0]
        # the pattern may hold {subject} more than once, also in folder names
        rel = record_file(Path(), spec.pattern, spec.fmt).as_posix()
        parts = [re.escape(p).replace(re.escape("{session}"), "[^/]+?")
                 for p in rel.split("{subject}")]
        regex = re.compile(parts[0] + "(?P<s>[^/]+?)" + "(?P=s)".join(parts[1:]) + r"\Z")
        pattern = rel.replace("{subject}", "*").replace("{session}", "*")
        found = sorted({m["s"] for p in desc.root.glob(pattern)
                        if (m := regex.match(p.relative_to(desc.root).as_posix()))},
                       key=_natural_key)
        if not found:
            raise DatasetNotFoundError(
                f"{desc.source}: no file matches {rel!r} under {str(desc.root)!r}; check "
                f"'records' and 'root'."
            )
        tokens = found
    else:
        tokens = list(desc.subjects)
    return {desc.subject_id.replace("{subject}", t): t for t in tokens}


def _sessions(desc: Description, token: str) -> list[str | None]:
    """Session names of a subject (``[None]`` when no record pattern holds ``{session}``)."""
    spec = desc.session_record
    if spec is None:
        return [None]
    if desc.sessions != "auto":
        return list(desc.sessions)
    rel = record_file(Path(), fill(spec.pattern, token), spec.fmt).as_posix()
    parts = [re.escape(p) for p in rel.split("{session}")]
    regex = re.compile(parts[0] + "(?P<s>[^/]+?)" + "(?P=s)".join(parts[1:]) + r"\Z")
    return sorted({m["s"] for p in desc.root.glob(rel.replace("{session}", "*"))
                   if (m := regex.match(p.relative_to(desc.root).as_posix()))},
                  key=_natural_key)


def _missing(desc: Description, token: str) -> list[str]:
    """Record files of a subject that do not exist (every session), or its session pattern."""
    sessions = _sessions(desc, token)
    if not sessions:
        return [str(desc.root / fill(desc.session_record.pattern, token, "*"))]
    return [str(path) for session in sessions for spec in desc.records
            if not (path := record_file(desc.root, fill(spec.pattern, token, session),
                                        spec.fmt)).exists()]


def _open_records(desc: Description, token: str, session: str | None = None) -> Opened:
    opened = Opened([], [])
    for k, spec in enumerate(desc.records):
        name = fill(spec.pattern, token, session)
        path = record_file(desc.root, name, spec.fmt)
        if not path.exists():
            raise DatasetNotFoundError(f"{path}: record {name!r} not found.")
        if spec.fmt == "e4":
            recs, beats, tags = open_e4(name, path)
            if beats is not None:
                opened.beats[k] = beats
            if tags is not None:
                opened.tags[k] = tags
        else:
            opts = {"sfreq": spec.sfreq, "time_column": spec.time_column, "sep": spec.sep,
                    "start": spec.start}
            recs = [open_record(name, path, spec.fmt, opts)]
        opened.records += recs
        opened.owners += [k] * len(recs)
    return opened


def _channel_plan(desc: Description, opened: Opened) -> dict[str, list]:
    """modality -> [(record index, file channel, output name, scale)], checked against files."""
    plan: dict[str, list] = {}
    where: dict[str, int] = {}
    records = opened.records
    specs = [desc.records[o] for o in opened.owners]
    for i, (spec, rec) in enumerate(zip(specs, records, strict=True)):
        own = spec.channels is not None
        chans = spec.channels if own else desc.channels
        for ch, cs in chans.items():
            if ch not in rec.ch_names:
                if own:
                    raise UnknownChannelError(
                        f"{desc.source}: channel {ch!r} of record {rec.name!r} is not in "
                        f"{rec.path}; it has {list(rec.ch_names)!r}."
                    )
                continue
            if not own and ch in where:
                raise ConfigError(
                    f"{desc.source}: channel {ch!r} is in records {records[where[ch]].name!r} "
                    f"and {rec.name!r}; give each record its own 'channels' table."
                )
            where[ch] = i
            plan.setdefault(cs.modality, []).append((i, ch, cs.name or ch, cs.scale))
    absent = [ch for ch in desc.channels if ch not in where
              and any(s.channels is None for s in desc.records)]
    if absent:
        have = {r.name: list(r.ch_names) for r, s in zip(records, specs, strict=True)
                if s.channels is None}
        raise UnknownChannelError(
            f"{desc.source}: channel(s) {absent!r} of [dataset.channels] are in no record; the "
            f"records have {have!r}. Fix the channel names in the description."
        )
    names = [out for entries in plan.values() for (_, _, out, _) in entries]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ConfigError(f"{desc.source}: channel name(s) {dup!r} used twice; rename them.")
    for modality, entries in plan.items():
        rates = {records[i].sfreq for (i, _, _, _) in entries}
        if len(rates) > 1:
            raise ConfigError(
                f"{desc.source}: modality {modality!r} mixes sampling rates {sorted(rates)!r} Hz "
                f"(channels {[e[1] for e in entries]!r}); give channels of different rates "
                f"different modalities."
            )
    return plan


def _offsets(desc: Description, records: list[OpenRecord], ref: int) -> list[float]:
    clocks = {r.clock for r in records}
    if desc.align == "auto" and len(clocks) == 1 and None not in clocks:
        return [r.start - records[ref].start for r in records]
    if desc.align == "auto" and len(records) > 1:
        logger.debug("%s: records %s lack a common clock; they are taken to start together.",
                     desc.source, [r.name for r in records])
    return [0.0] * len(records)


def _common_span(records: list[OpenRecord], offsets: list[float]) -> tuple[float, float]:
    spans = [(o, o + r.duration) for r, o in zip(records, offsets, strict=True)]
    late = max(range(len(spans)), key=lambda i: spans[i][0])
    early = min(range(len(spans)), key=lambda i: spans[i][1])
    start, end = spans[late][0], spans[early][1]
    if start >= end:
        raise FormatError(
            f"Records {records[early].name!r} ({records[early].path}, "
            f"{spans[early][0]:.3f}-{spans[early][1]:.3f} s) and {records[late].name!r} "
            f"({records[late].path}, {spans[late][0]:.3f}-{spans[late][1]:.3f} s) do not "
            f"overlap in time (seconds on the labels record's timeline); check their start "
            f"times or set align = \"start\"."
        )
    return start, end


def _index(t: float, offset: float, sfreq: float) -> int:
    """Sample nearest time ``t`` (halves rounded up)."""
    return math.floor((t - offset) * sfreq + 0.5 + _EPS)


def _load_subject(desc: Description, tokens: Mapping[str, str], ratings: Mapping,
                  subject: str, report: LoadReport) -> Subject:
    """Read one subject: each session on its own clock, trials numbered across sessions.

    A missing or unreadable file, or an event outside its record, skips the session (the
    subject when it has no sessions) and lists it in ``report``, unless ``strict``.
    """
    token = tokens[subject]
    sessions = _sessions(desc, token)
    if not sessions:
        _fail(desc, report, subject, None, DatasetNotFoundError(
            f"{desc.root / fill(desc.session_record.pattern, token, '*')}: no session matches "
            f"the pattern; check 'records' in [dataset]."))
    trials: list[Trial] = []
    for session in sessions:
        try:
            trials += _load_session(desc, token, session, subject, report, ratings,
                                    first=len(trials) + 1)
        except (DatasetNotFoundError, FormatError) as exc:
            _fail(desc, report, subject, session, exc)
    loaded = Subject(desc.name, subject, tuple(trials))
    flat = flat_channels(loaded)
    if flat and desc.flat == "error":
        raise FormatError(
            f"{desc.source}: subject {subject} has dead or flat-lined channel(s) "
            + ", ".join(f"{ch} ({why})" for ch, why in flat)
            + "; set flat = \"drop-subject\" (or \"warn\") in [dataset], or fix the recording."
        )
    if flat and desc.flat == "drop-subject":
        report.skip(subject, None, desc.source, "dead or flat-lined channel(s) "
                    + ", ".join(f"{ch} ({why})" for ch, why in flat) + " (flat = \"drop-subject\")")
        return Subject(desc.name, subject, ())
    for ch, why in flat:
        report.flag(subject, ch, why)
    return loaded


def _fail(desc: Description, report: LoadReport, subject: str, session: str | None,
          exc: Exception) -> None:
    """Raise ``exc`` under ``strict``; otherwise list the skip with its reason."""
    if desc.strict:
        raise exc
    file, _, reason = str(exc).partition(": ")
    what = "subject" if session is None else f"session {session!r} of the subject"
    report.skip(subject, None, file, f"{file}: {reason.rstrip('.')}; the {what} is skipped "
                f"(strict = true in [dataset] makes this an error)")


def _load_session(desc: Description, token: str, session: str | None, subject: str,
                  report: LoadReport, ratings: Mapping, first: int) -> list[Trial]:
    """Trials of one session (the whole subject without sessions), numbered from ``first``."""
    opened = _open_records(desc, token, session)
    records = opened.records
    ref = labels_ref(desc, opened)
    plan = _channel_plan(desc, opened)
    offsets = _offsets(desc, records, ref)
    used = sorted({i for entries in plan.values() for (i, *_) in entries})
    # an E4 signal file nobody asked for (HR starts 10 s late) does not shorten the span
    spanned = [i for i, r in enumerate(records) if r.fmt != "e4" or i in used or i == ref]
    start, end = _common_span([records[i] for i in spanned], [offsets[i] for i in spanned])
    events = read_events(desc, token, opened, ref, session)
    beats = _beats(opened, offsets)
    wanted = {i: [ch for entries in plan.values() for (j, ch, _, _) in entries if j == i]
              for i in used}
    data = {i: dict(zip(wanted[i], records[i].read(wanted[i]), strict=True)) for i in used}
    lab = desc.labels
    trials = []
    for k, ev in enumerate(events):
        if ev.label in lab.exclude:
            continue
        nxt = events[k + 1].onset if k + 1 < len(events) else math.inf
        t0 = max(ev.onset, start)
        t1 = min(ev.onset + ev.duration if ev.duration else nxt, end)
        if t1 - t0 < max(lab.min_duration, 0.0) or t1 <= t0:
            report.skip(subject, None, str(records[ref].path),
                        f"stage {ev.label!r} at {ev.onset:.3f} s spans {max(t1 - t0, 0):.3f} s "
                        f"within the common span of the records (min_duration "
                        f"{lab.min_duration} s)")
            continue
        signals = _crop_stage(plan, records, offsets, data, t0, t1)
        if signals is None:
            report.skip(subject, None, str(records[ref].path),
                        f"stage {ev.label!r} at {ev.onset:.3f} s is shorter than one sample of "
                        f"the slowest record")
            continue
        number = first + len(trials)
        info = {"stage": ev.label, "onset_s": t0, "duration_s": t1 - t0, "event": k + 1}
        if lab.rules is None:  # with a rule table, the levels come from the ratings
            info["y_fear"] = int(lab.classes[ev.label])
        if session is not None:
            info["session"] = session
        if lab.source_classes is not None:
            info["y_source"] = int(lab.source_classes.get(ev.label, -1))
        if beats is not None:
            info["beats"] = beats[(beats >= t0) & (beats < t1)] - t0
        # a row without a session holds for every session; a row for the session wins
        own = {**lab.ratings.get(ev.label, {})}
        for key in ((subject, None, ev.label), (subject, None, number),
                    (subject, session, ev.label), (subject, session, number)):
            own.update(ratings.get(key, {}))
        trials.append(Trial(desc.name, subject, number, signals, ratings=own, onset=0.0,
                            info=info))
    return trials


def _beats(opened: Opened, offsets: list[float]) -> np.ndarray | None:
    """Beat times of the (first) E4 record with IBI.csv, seconds on the labels timeline."""
    for spec, beats in opened.beats.items():
        i = opened.of(spec)[0]
        rec = opened.records[i]
        return beats - rec.start + offsets[i]
    return None


def _crop_stage(plan, records, offsets, data, t0: float, t1: float) -> dict[str, Signal] | None:
    """Signals of the stage ``[t0, t1)``, cut to a common duration (see module docstring)."""
    cut: dict[str, tuple[np.ndarray, float, list[str]]] = {}
    for modality, entries in plan.items():
        rows, names, lengths = [], [], []
        for (i, ch, out, scale) in entries:
            rec = records[i]
            a = max(_index(t0, offsets[i], rec.sfreq), 0)
            b = min(_index(t1, offsets[i], rec.sfreq), rec.n_times)
            rows.append((data[i][ch], a, b, scale))
            names.append(out)
            lengths.append(b - a)
        n = min(lengths)
        if n <= 0:
            return None
        block = np.stack([x[a:a + n] * s if s != 1.0 else x[a:a + n] for (x, a, _, s) in rows])
        cut[modality] = (block, records[entries[0][0]].sfreq, names)
    # Rounding at two boundaries can leave two signals more than one slow sample apart; cut
    # the longer ones back to the shortest duration plus one sample of the slowest rate.
    limit = (min(block.shape[1] / sf for (block, sf, _) in cut.values())
             + 1.0 / min(sf for (_, sf, _) in cut.values()))
    signals = {}
    for modality, (block, sf, names) in cut.items():
        n = min(block.shape[1], math.floor(limit * sf + _EPS))
        signals[modality] = Signal(np.ascontiguousarray(block[:, :n]), sf, tuple(names), modality)
    return signals

