"""Label events of a subject of :mod:`fearkd.datasets.generic`: annotations, an events CSV, tags or
a label column, as :class:`~fearkd.datasets._generic_formats.Event` on the labels timeline.

The labels timeline starts at the labels record's first sample (for an E4 session, its earliest
signal); absolute times (tags, ``time_format = "unix" | "iso"``) are moved onto it with the
labels record's start time. The rules are documented in :mod:`fearkd.datasets.generic`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from ..errors import ConfigError, DatasetNotFoundError, FormatError
from ._generic_description import Description, fill
from ._generic_formats import Event, OpenRecord, read_annotations, read_events_csv
from .e4 import read_e4_tags

__all__ = ["Opened", "labels_ref", "read_events"]


@dataclass
class Opened:
    """A subject's open records; an E4 session gives one record per signal file."""

    records: list[OpenRecord]
    owners: list[int]  # index into desc.records of each open record
    beats: dict[int, np.ndarray] = field(default_factory=dict)  # POSIX s, per E4 record spec
    tags: dict[int, np.ndarray] = field(default_factory=dict)

    def of(self, spec: int) -> list[int]:
        return [i for i, o in enumerate(self.owners) if o == spec]


def labels_ref(desc: Description, opened: Opened) -> int:
    """Open record whose first sample is t = 0 of the labels: an E4 session's earliest signal."""
    idx = opened.of(desc.record_names.index(desc.labels.record))
    return min(idx, key=lambda i: opened.records[i].start or 0.0)


def _absolute_start(ref: OpenRecord, where, what: str) -> float:
    """Start of ``ref`` in POSIX seconds, for label times given as absolute times."""
    if ref.clock != "datetime" or ref.start is None:
        raise FormatError(
            f"{where}: {what} are absolute times, but record {ref.name!r} ({ref.path}) has no "
            f"absolute start time; give a CSV record 'start = \"2020-01-02T10:00:00Z\"' (or a "
            f"unix time), use EDF/BDF with a measurement date or WFDB with a base date and "
            f"time, or write seconds from the first sample (time_format = \"seconds\")."
        )
    return ref.start


def _tag_events(desc: Description, token: str, opened: Opened, ref_i: int,
                session: str | None = None):
    """Stages between consecutive tags (or lasting ``durations``), on the labels timeline."""
    lab = desc.labels
    ref = opened.records[ref_i]
    spec = opened.owners[ref_i]
    if lab.tags is not None:
        where = desc.root / fill(lab.tags, token, session)
        if not where.is_file():
            raise DatasetNotFoundError(f"{where}: tags file not found; check 'labels.tags'.")
        tags = read_e4_tags(where)
    elif spec in opened.tags:
        where, tags = ref.path.parent / "tags.csv", opened.tags[spec]
    else:
        raise ConfigError(
            f"{desc.source}: labels.from = \"tags\" needs 'dataset.labels.tags' (a tags file "
            f"pattern with {{subject}}) when the labels record is not an E4 session folder."
        )
    shift = _absolute_start(ref, where, "tags")
    session = [opened.records[i] for i in opened.of(spec)]
    first = min(r.start for r in session) - shift
    last = max(r.start + r.duration for r in session) - shift
    for line, tag in enumerate(tags, 1):
        if not first <= tag - shift <= last:
            raise FormatError(
                f"{where}: line {line}: tag {tag:.3f} is {tag - shift:.1f} s from the session "
                f"start, outside the session ({first:.1f} to {last:.1f} s); remove the tag or "
                f"fix the clock that wrote it."
            )
    stages, n = lab.stages, len(tags)
    need = (f"{n} stage name(s), one per tag" if lab.durations is not None else
            f"{max(n - 1, 1)} stage name(s) (stage i runs from tag i to tag i+1; {n} to let the "
            f"last one run to the end of the records)")
    fits = len(stages) == n if lab.durations is not None else n - 1 <= len(stages) <= n
    if n == 0 or not fits:
        raise FormatError(
            f"{where}: {n} tag(s) need {need}, but [dataset.labels] stages has {len(stages)}: "
            f"{list(stages)!r}; fix 'stages' (or 'durations') or the tags."
        )
    events = []
    for i, name in enumerate(stages):
        onset = tags[i] - shift
        if lab.durations is not None:
            duration = lab.durations[i]
        else:
            duration = tags[i + 1] - tags[i] if i + 1 < n else None
        events.append(Event(name, float(onset), duration))
    return events, where


def _column_events(desc: Description, ref: OpenRecord) -> list[Event]:
    """Runs of equal values in the labels record's label column; NaN runs are no stage."""
    column = desc.labels.column
    if column not in ref.ch_names:
        raise FormatError(
            f"{ref.path}: no label column {column!r}; columns are {list(ref.ch_names)!r}. Fix "
            f"'dataset.labels.column' or 'dataset.labels.record'."
        )
    values = ref.read([column])[0]
    change = np.flatnonzero(~((values[1:] == values[:-1])
                              | (np.isnan(values[1:]) & np.isnan(values[:-1])))) + 1
    bounds = np.concatenate([[0], change, [len(values)]])
    events = []
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        v = values[a]
        if np.isnan(v):
            continue
        name = str(int(v)) if float(v).is_integer() else repr(float(v))
        events.append(Event(name, a / ref.sfreq, (b - a) / ref.sfreq))
    return events


def read_events(desc: Description, token: str, opened: Opened, ref_i: int,
                session: str | None = None) -> list[Event]:
    """Label events of one subject (one session), sorted by onset, on the labels timeline."""
    lab = desc.labels
    ref = opened.records[ref_i]
    if lab.kind == "annotations":
        if ref.fmt == "e4":
            raise ConfigError(
                f"{desc.source}: labels record {lab.record!r} is an E4 session, which has no "
                f"annotations; set labels.from = \"tags\" (tags.csv) or \"events\"."
            )
        events, where = read_annotations(ref, lab.extension, lab.field), ref.path
    elif lab.kind == "events":
        where = desc.root / fill(lab.events, token, session)
        if not where.is_file():
            raise DatasetNotFoundError(f"{where}: events file not found; check 'labels.events'.")
        events = read_events_csv(where, lab.time_format)
        if lab.time_format != "seconds":
            shift = _absolute_start(ref, where, f"events (time_format = {lab.time_format!r})")
            events = [replace(ev, onset=ev.onset - shift) for ev in events]
    elif lab.kind == "tags":
        events, where = _tag_events(desc, token, opened, ref_i, session)
    else:
        events, where = _column_events(desc, ref), ref.path
    tol = 1.0 / ref.sfreq
    for ev in events:
        end = ev.onset + (ev.duration or 0.0)
        if ev.onset < 0 or ev.onset >= ref.duration or end > ref.duration + tol:
            raise FormatError(
                f"{where}: annotation {ev.label!r} at {ev.onset:.3f} s"
                + (f" lasting {ev.duration:.3f} s" if ev.duration else "")
                + f" lies outside record {ref.name!r}, which lasts {ref.duration:.3f} s; fix "
                f"the annotation or the record."
            )
    found = sorted({ev.label for ev in events})
    unknown = [n for n in found if n not in lab.classes and n not in lab.exclude]
    if unknown:
        raise ConfigError(
            f"{desc.source}: {where} has label(s) {unknown!r} that are neither in "
            f"[dataset.labels.classes] (keys {list(lab.classes)!r}) nor in 'exclude'; names "
            f"found: {found!r}. Add them to one of the two."
        )
    return sorted(events, key=lambda e: e.onset)
