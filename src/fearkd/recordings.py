"""The one in-memory data model for raw signals.

A dataset is a :class:`Recordings`: an ordered list of subject ids and a loader that reads
**one subject at a time**, so that iterating over full DEAP (3.3 GB as float64) never holds more
than one subject in memory. A :class:`Subject` holds :class:`Trial` objects; a trial holds one
:class:`Signal` per modality (``eeg``, ``eog``, ``emg``, ``gsr``, ``resp``, ``ppg``, ``temp``,
``ecg``, ``acc``, ``hr``, ``spo2``, ``misc``), each with its own sampling rate and channel names,
plus the trial's named ratings, its stimulus onset and its ids.

Invariants every reader guarantees:

- all signals of a trial start at the same instant (``t = 0`` is the first sample) and cover
  the same duration, to within one sample of the slowest rate;
- ``onset`` is the number of seconds of pre-stimulus baseline at the start of the trial
  (3.0 for DEAP, 0.0 where there is none);
- channels are found by name (:meth:`Trial.pick`), never by position.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType

import numpy as np

from .errors import UnknownChannelError

__all__ = [
    "MODALITIES",
    "Signal",
    "Trial",
    "Subject",
    "LoadReport",
    "Recordings",
    "flat_channels",
]

logger = logging.getLogger(__name__)

#: Modalities a signal may have, in the order reports list them.
MODALITIES = (
    "eeg", "eog", "emg", "gsr", "resp", "ppg", "temp", "ecg", "acc", "hr", "spo2", "misc",
)


@dataclass(frozen=True, eq=False)
class Signal:
    """One modality of one trial.

    Parameters
    ----------
    data : ndarray, shape (n_chans, n_times)
        Samples, floating point.
    sfreq : float
        Sampling rate in Hz.
    ch_names : sequence of str
        One unique name per row of ``data``.
    modality : str
        One of :data:`MODALITIES`.
    """

    data: np.ndarray
    sfreq: float
    ch_names: tuple[str, ...]
    modality: str

    def __post_init__(self) -> None:
        data = self.data
        if not isinstance(data, np.ndarray):
            raise TypeError(f"Signal 'data' must be a NumPy array, got {type(data).__name__}.")
        if data.ndim != 2:
            raise ValueError(
                f"Signal 'data' must have shape (n_chans, n_times); got {data.ndim} "
                f"dimension(s) with shape {data.shape}."
            )
        if not np.issubdtype(data.dtype, np.floating):
            raise TypeError(f"Signal 'data' must be floating point, got dtype {data.dtype}.")
        names = tuple(str(n) for n in self.ch_names)
        object.__setattr__(self, "ch_names", names)
        if len(names) != data.shape[0]:
            raise ValueError(
                f"Signal of modality {self.modality!r} has {data.shape[0]} channel row(s) but "
                f"{len(names)} channel name(s): {names!r}."
            )
        if len(set(names)) != len(names):
            dup = sorted({n for n in names if names.count(n) > 1})
            raise ValueError(f"Duplicate channel names in modality {self.modality!r}: {dup!r}.")
        if self.modality not in MODALITIES:
            raise ValueError(
                f"Invalid modality: expected one of {', '.join(MODALITIES)}, "
                f"got {self.modality!r}."
            )
        sfreq = float(self.sfreq)
        if not math.isfinite(sfreq) or sfreq <= 0:
            raise ValueError(f"Signal 'sfreq' must be a positive number of Hz, got {self.sfreq!r}.")
        object.__setattr__(self, "sfreq", sfreq)

    @property
    def n_chans(self) -> int:
        return self.data.shape[0]

    @property
    def n_times(self) -> int:
        return self.data.shape[1]

    @property
    def duration(self) -> float:
        """Length in seconds (``n_times / sfreq``)."""
        return self.n_times / self.sfreq

    def pick(self, names: Iterable[str]) -> Signal:
        """Return a signal with only the named channels, in the order given."""
        names = list(names)
        index = {n: i for i, n in enumerate(self.ch_names)}
        missing = [n for n in names if n not in index]
        if missing:
            raise UnknownChannelError(
                f"Unknown channel(s) {missing!r} in modality {self.modality!r}; "
                f"it has {list(self.ch_names)!r}."
            )
        rows = [index[n] for n in names]
        return replace(self, data=self.data[rows], ch_names=tuple(names))

    def crop(self, tmin: float = 0.0, tmax: float | None = None) -> Signal:
        """Return samples with ``tmin <= t < tmax`` (seconds from the first sample)."""
        start = int(round(tmin * self.sfreq))
        stop = self.n_times if tmax is None else int(round(tmax * self.sfreq))
        return replace(self, data=self.data[:, max(start, 0) : min(stop, self.n_times)])


@dataclass(frozen=True, eq=False)
class Trial:
    """One trial (one stimulus, one clip, one annotated stage) of one subject.

    Parameters
    ----------
    dataset : str
        Dataset name (``"deap"``, ``"ascertain"``, or a user's name).
    subject : str
        Subject id, unique within the dataset (``"s01"``, ``"P07"``, ``"Subject3"``).
    trial : int
        Trial id, unique within the subject (DEAP: experiment id 1-40; ASCERTAIN: clip 1-36).
    signals : mapping of str to Signal
        One signal per modality, keyed by modality.
    ratings : mapping of str to float
        Named self-reports (``valence``, ``arousal``, ...); NaN where missing.
    onset : float
        Seconds of pre-stimulus baseline at the start of every signal.
    info : mapping
        Free-form extras a reader wants to keep (an annotation's stage name, a class label).
    """

    dataset: str
    subject: str
    trial: int
    signals: Mapping[str, Signal]
    ratings: Mapping[str, float] = field(default_factory=dict)
    onset: float = 0.0
    info: Mapping[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        signals = dict(self.signals)
        for key, sig in signals.items():
            if not isinstance(sig, Signal):
                raise TypeError(f"Trial signals must be Signal objects; {key!r} is {type(sig)}.")
            if key != sig.modality:
                raise ValueError(f"Signal stored under {key!r} has modality {sig.modality!r}.")
        names = [n for sig in signals.values() for n in sig.ch_names]
        if len(set(names)) != len(names):
            dup = sorted({n for n in names if names.count(n) > 1})
            raise ValueError(
                f"Channel names must be unique across modalities of a trial; duplicated: {dup!r}."
            )
        object.__setattr__(self, "signals", MappingProxyType(signals))
        object.__setattr__(
            self, "ratings", MappingProxyType({str(k): float(v) for k, v in self.ratings.items()})
        )
        object.__setattr__(self, "info", MappingProxyType(dict(self.info)))
        onset = float(self.onset)
        if not math.isfinite(onset) or onset < 0:
            raise ValueError(f"Trial 'onset' must be >= 0 seconds, got {self.onset!r}.")
        object.__setattr__(self, "onset", onset)

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(m for m in MODALITIES if m in self.signals)

    @property
    def ch_names(self) -> tuple[str, ...]:
        """Every channel name, modality by modality."""
        return tuple(n for m in self.modalities for n in self.signals[m].ch_names)

    @property
    def duration(self) -> float:
        """Shortest signal duration in seconds."""
        return min((s.duration for s in self.signals.values()), default=0.0)

    def channel_modality(self, name: str) -> str:
        """Modality of the channel called ``name``."""
        for m in self.modalities:
            if name in self.signals[m].ch_names:
                return m
        raise UnknownChannelError(
            f"Unknown channel {name!r} in {self.dataset} subject {self.subject} trial "
            f"{self.trial}; known channels: {list(self.ch_names)!r}."
        )

    def pick(self, names: Iterable[str]) -> Trial:
        """Return the trial restricted to the named channels (modalities with none are dropped).

        Within a modality the channels keep the order in which they are named.
        """
        names = list(names)
        unknown = [n for n in names if n not in set(self.ch_names)]
        if unknown:
            raise UnknownChannelError(
                f"Unknown channel(s) {unknown!r} in {self.dataset} subject {self.subject} trial "
                f"{self.trial}; known channels: {list(self.ch_names)!r}."
            )
        by_mod: dict[str, list[str]] = {}
        for n in names:
            by_mod.setdefault(self.channel_modality(n), []).append(n)
        signals = {m: self.signals[m].pick(chs) for m, chs in by_mod.items()}
        return replace(self, signals=signals)

    def channel(self, name: str) -> tuple[np.ndarray, float]:
        """Samples ``(n_times,)`` and sampling rate of one channel."""
        sig = self.signals[self.channel_modality(name)]
        return sig.data[sig.ch_names.index(name)], sig.sfreq


@dataclass(frozen=True, eq=False)
class Subject:
    """All trials of one subject, in trial order."""

    dataset: str
    subject: str
    trials: tuple[Trial, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "trials", tuple(self.trials))

    def __iter__(self) -> Iterator[Trial]:
        return iter(self.trials)

    def __len__(self) -> int:
        return len(self.trials)


@dataclass
class LoadReport:
    """What a reader skipped or repaired while loading, so that nothing is dropped silently.

    ``skipped`` lists ``{"subject", "trial", "file", "reason"}`` records of trials (clips) left
    out; ``repaired`` lists ``{"subject", "trial", "file", "what", "count"}`` records of fixes
    applied (NaN rows dropped, extra rows cut); ``flagged`` lists ``{"subject", "channel",
    "why"}`` records of dead or flat-lined channels (:func:`flat_channels`) that were kept.
    """

    skipped: list[dict] = field(default_factory=list)
    repaired: list[dict] = field(default_factory=list)
    flagged: list[dict] = field(default_factory=list)

    def skip(self, subject: str, trial: int | None, file: str, reason: str) -> None:
        logger.warning("Skipped subject %s trial %s (%s): %s", subject, trial, file, reason)
        self.skipped.append(
            {"subject": subject, "trial": trial, "file": str(file), "reason": reason}
        )

    def repair(self, subject: str, trial: int | None, file: str, what: str, count: int) -> None:
        self.repaired.append(
            {"subject": subject, "trial": trial, "file": str(file), "what": what,
             "count": int(count)}
        )

    def flag(self, subject: str, channel: str, why: str) -> None:
        logger.warning("Subject %s channel %s is %s (a dead or flat-lined channel).",
                       subject, channel, why)
        self.flagged.append({"subject": subject, "channel": channel, "why": why})

    def to_dict(self) -> dict:
        return {"skipped": list(self.skipped), "repaired": list(self.repaired),
                "flagged": list(self.flagged)}

    def __bool__(self) -> bool:
        return bool(self.skipped or self.repaired or self.flagged)


def flat_channels(subject: Subject) -> list[tuple[str, str]]:
    """Dead or flat-lined channels of a subject over all its trials: ``[(channel, why)]``.

    ``why`` is ``"all NaN"``, ``"all zero"`` or ``"constant"`` (one value throughout, NaN
    aside). A channel that moves in any trial is not flat.
    """
    seen: dict[str, list[np.ndarray]] = {}
    for trial in subject:
        for sig in trial.signals.values():
            for name, row in zip(sig.ch_names, sig.data, strict=True):
                seen.setdefault(name, []).append(row)
    out = []
    for name, rows in seen.items():
        x = np.concatenate(rows)
        finite = x[np.isfinite(x)]
        if finite.size == 0:
            out.append((name, "all NaN"))
        elif finite.min() == finite.max():
            out.append((name, "all zero" if finite[0] == 0 else "constant"))
    return out


class Recordings:
    """A dataset iterated lazily, one subject at a time.

    Parameters
    ----------
    dataset : str
        Dataset name, copied into every trial.
    subjects : sequence of str
        Subject ids in iteration order.
    load_subject : callable
        ``load_subject(subject_id, report) -> Subject``; reads one subject from disk and records
        what it skipped or repaired in ``report`` (a :class:`LoadReport`).
    description : mapping, optional
        What the reader knows without loading data (root, format, sampling rates, ...), shown by
        ``fearkd info``.

    Iterating yields :class:`Subject` objects; nothing is cached, so at most one subject is held
    in memory by the iteration itself. ``report`` accumulates over every load.
    """

    def __init__(
        self,
        dataset: str,
        subjects: Sequence[str],
        load_subject: Callable[[str, LoadReport], Subject],
        description: Mapping[str, object] | None = None,
    ) -> None:
        self.dataset = str(dataset)
        self.subjects = tuple(str(s) for s in subjects)
        if len(set(self.subjects)) != len(self.subjects):
            raise ValueError(f"Duplicate subject ids in {self.subjects!r}.")
        self._load_subject = load_subject
        self.description = dict(description or {})
        self.report = LoadReport()

    def __len__(self) -> int:
        return len(self.subjects)

    def __iter__(self) -> Iterator[Subject]:
        for sid in self.subjects:
            yield self.load(sid)

    def __repr__(self) -> str:
        return f"Recordings(dataset={self.dataset!r}, n_subjects={len(self)})"

    def load(self, subject: str) -> Subject:
        """Read one subject from disk."""
        if subject not in self.subjects:
            raise KeyError(
                f"Unknown subject {subject!r} in {self.dataset}; known: {list(self.subjects)!r}."
            )
        return self._load_subject(subject, self.report)

    def select(self, subjects: Iterable[str]) -> Recordings:
        """A view on some subjects, in the order given (a load report of its own)."""
        subjects = [str(s) for s in subjects]
        unknown = [s for s in subjects if s not in self.subjects]
        if unknown:
            raise KeyError(
                f"Unknown subject(s) {unknown!r} in {self.dataset}; known: {list(self.subjects)!r}."
            )
        return Recordings(self.dataset, subjects, self._load_subject, self.description)
