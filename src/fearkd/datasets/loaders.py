"""Dataset readers by kind: the ``READERS`` registry, detection, opening and summaries.

Every format a user can name in ``[dataset] kind`` (or that :func:`open_dataset` detects) is one
entry of :data:`READERS`, added with :func:`register_reader`. The built-in kinds are ``deap``,
``ascertain`` and ``generic``; a reader registered from outside the package is accepted by the
experiment file and by :func:`open_dataset` like a built-in one.
"""

from __future__ import annotations

import functools
import math
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .._outputs import read_synthetic_marker
from .._registry import Registry
from ..errors import DatasetNotFoundError, FormatError
from ..recordings import MODALITIES, LoadReport, Recordings, Subject, flat_channels
from ._generic_description import FLAT_POLICIES
from .ascertain import load_ascertain
from .deap import load_deap
from .generic import load_generic
from .wesad import load_wesad

__all__ = [
    "READERS",
    "register_reader",
    "builtin_labels",
    "detect_dataset",
    "open_dataset",
    "summarize",
    "with_flat_policy",
]

#: Dataset readers by kind; each entry's ``obj`` is ``load(path, **options) -> Recordings`` and
#: its ``info`` holds ``detect``, ``layout``, ``rules`` and ``source`` (see
#: :func:`register_reader`).
READERS: Registry[Callable[..., Recordings]] = Registry("dataset kind", "[dataset] kind")


def register_reader(
    kind: str,
    *,
    load: Callable[..., Recordings],
    detect: Callable[[Path], bool] | None = None,
    layout: str = "",
    rules: str | None = None,
    source: str | None = None,
    description: str = "",
    overwrite: bool = False,
) -> Callable[..., Recordings]:
    """Register a dataset reader under ``kind``.

    Parameters
    ----------
    kind : str
        What a user writes in ``[dataset] kind``.
    load : callable
        ``load(path, **options) -> Recordings``; ``options`` are the other keys of the
        ``[dataset]`` table (``subjects``, or a reader's own keys).
    detect : callable, optional
        ``detect(path) -> bool``: whether ``path`` (an existing file or folder) holds this kind;
        used by :func:`open_dataset` when no kind is given. None: never detected, only named.
    layout : str
        What the kind looks like on disk, shown when no dataset is found.
    rules, source : str, optional
        Built-in rule table and source task (names known to :func:`fearkd.labels.load_rules`, or
        paths) used when ``[labels] rules`` / ``source`` is ``"auto"``; None: no built-in one.
    description : str
        One line for ``--help`` and the docs.
    overwrite : bool
        Replace an existing reader of the same kind.

    Returns
    -------
    callable
        ``load``, unchanged.

    Raises
    ------
    TypeError
        ``load`` or ``detect`` is not callable.
    ValueError
        ``kind`` is taken and ``overwrite`` is false.
    """
    if not callable(load):
        raise TypeError(f"register_reader({kind!r}): 'load' must be callable, got {load!r}.")
    if detect is not None and not callable(detect):
        raise TypeError(f"register_reader({kind!r}): 'detect' must be callable or None, "
                        f"got {detect!r}.")
    return READERS.register(kind, load, description=description, overwrite=overwrite,
                            detect=detect, layout=layout, rules=rules, source=source)


def builtin_labels(kind: str) -> tuple[str | None, str | None]:
    """The rule table and source task a reader brings, for ``[labels] rules = "auto"``.

    Parameters
    ----------
    kind : str
        A registered dataset kind, or the ``dataset`` name of a :class:`Recordings`.

    Returns
    -------
    rules, source : str or None
        None where the kind has no built-in table (or is not a registered kind).
    """
    if kind not in READERS:
        return None, None
    info = READERS.entry(kind).info
    return info.get("rules"), info.get("source")


def _layouts_text() -> str:
    return "; ".join(f"{e.name}: {e.info['layout']}" for e in READERS.entries()
                     if e.info.get("layout"))


def detect_dataset(path: str | Path) -> tuple[str, Path]:
    """Return ``(kind, path)``: the first registered reader whose ``detect`` accepts ``path``.

    Raises
    ------
    DatasetNotFoundError
        ``path`` does not exist, or no reader recognises it.
    """
    path = Path(path)
    if not path.exists():
        raise DatasetNotFoundError(
            f"Dataset path {str(path)!r} does not exist; expected a folder holding one of: "
            f"{_layouts_text()}."
        )
    for entry in READERS.entries():
        detect = entry.info.get("detect")
        if detect is not None and detect(path):
            return entry.name, path
    what = "file" if path.is_file() else "folder"
    raise DatasetNotFoundError(
        f"No dataset found in the {what} {str(path)!r}: expected one of {_layouts_text()}; "
        f"or name the reader with [dataset] kind (one of {READERS.expected()})."
    )


def open_dataset(path: str | Path, kind: str | None = None, **options: Any) -> Recordings:
    """Open a dataset with the reader of its kind (detected when ``kind`` is None).

    Parameters
    ----------
    path : str or Path
        The dataset's folder or file (what the reader expects).
    kind : str, optional
        A name of :data:`READERS`; None detects it from ``path``.
    **options
        Passed to the reader (``subjects``, ``channels``, ...).

    Raises
    ------
    ValueError
        ``kind`` is not a registered reader.
    DatasetNotFoundError
        ``path`` does not exist, or ``kind`` is None and no reader recognises ``path``.
    """
    if kind is None:
        kind, path = detect_dataset(path)
    entry = READERS.entry(kind, "kind")
    if path and not Path(path).exists():
        layout = entry.info.get("layout") or f"a {kind} dataset"
        raise DatasetNotFoundError(
            f"Dataset path {str(path)!r} does not exist; expected {layout} "
            f"(set [dataset] path or pass --data PATH)."
        )
    recordings = entry.obj(path, **options)
    # a synthetic writer's marker: every summary, page and figure built on it says so
    where = recordings.description.get("root") or path
    recordings.description["synthetic"] = bool(where) and read_synthetic_marker(where) is not None
    return recordings


# --- built-in readers ------------------------------------------------------------------------

_DEAP_DIRS = ("data_preprocessed_python", "data_preprocessed_matlab")
_ASCERTAIN_DIRS = ("ASCERTAIN_Raw", "ASCERTAIN_Features")


def _detect_deap(path: Path) -> bool:
    return path.is_dir() and (path.name in _DEAP_DIRS
                              or any((path / d).is_dir() for d in _DEAP_DIRS))


@functools.wraps(load_deap)  # its signature names the options config.py accepts
def _load_deap(path, **options) -> Recordings:
    path = Path(path)
    return load_deap(path.parent if path.name in _DEAP_DIRS else path, **options)


def _detect_ascertain(path: Path) -> bool:
    return path.is_dir() and (path.name in _ASCERTAIN_DIRS
                              or any((path / d).is_dir() for d in _ASCERTAIN_DIRS))


@functools.wraps(load_ascertain)
def _load_ascertain(path, **options) -> Recordings:
    path = Path(path)
    return load_ascertain(path.parent if path.name in _ASCERTAIN_DIRS else path, **options)


def _detect_generic(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() == ".toml"


def _load_generic(path, **options) -> Recordings:
    """A description file at ``path``, or the description given as ``options`` (the other keys
    of the ``[dataset]`` table), with ``path`` then the records' root."""
    if options:
        return load_generic({"dataset": options}, root=path or None)
    return load_generic(path)


register_reader(
    "deap", load=_load_deap, detect=_detect_deap,
    layout="data_preprocessed_python/s01.dat ... or data_preprocessed_matlab/s01.mat ...",
    rules="deap", source="deap", description="DEAP preprocessed release (.dat or .mat)",
)
register_reader(
    "ascertain", load=_load_ascertain, detect=_detect_ascertain,
    layout="ASCERTAIN_Raw/EEGData/Movie_P01/EEG_Clip1.mat ... and "
           "ASCERTAIN_Features/Dt_SelfReports.mat",
    rules="ascertain", source="ascertain", description="ASCERTAIN raw release",
)
register_reader(
    "wesad", load=load_wesad,
    detect=lambda p: p.is_dir() and any(p.glob("S*/S*_quest.csv")),
    layout="S2/S2.pkl and S2/S2_quest.csv ...", rules="wesad", source="wesad",
    description="WESAD (RespiBAN chest + E4 wrist pickles, quest self-reports)",
)
register_reader(
    "generic", load=_load_generic, detect=_detect_generic,
    layout="a description file (.toml) of your own recordings",
    description="your recordings (WFDB/EDF/BDF/CSV + events) described in a TOML file",
)


def summarize(recordings: Recordings, progress: bool = False) -> dict:
    """Subjects, trials, modalities (rates, channels), durations and ratings of a dataset.

    Reads every subject once (one at a time). The result is plain data, ready for JSON.
    """
    from tqdm.auto import tqdm

    trials_per_subject: dict[str, int] = {}
    modalities: dict[str, dict] = {}
    durations: list[float] = []
    ratings: dict[str, list[float]] = defaultdict(list)
    onsets: set[float] = set()
    for subject in tqdm(recordings, total=len(recordings), disable=not progress,
                        desc="reading subjects", unit="subject"):
        trials_per_subject[subject.subject] = len(subject)
        # a dead subject (all-zero channels) must not pass unseen, whatever the reader
        known = {(e["subject"], e["channel"]) for e in recordings.report.flagged}
        for ch, why in flat_channels(subject):
            if (subject.subject, ch) not in known:
                recordings.report.flag(subject.subject, ch, why)
        for trial in subject:
            durations.append(trial.duration)
            onsets.add(trial.onset)
            for name, value in trial.ratings.items():
                ratings[name].append(value)
            for m, sig in trial.signals.items():
                entry = modalities.setdefault(
                    m, {"sfreq": sig.sfreq, "channels": list(sig.ch_names), "n_trials": 0}
                )
                entry["n_trials"] += 1
    summary_ratings = {}
    for name, values in ratings.items():
        finite = [v for v in values if not math.isnan(v)]
        summary_ratings[name] = {
            "n": len(values),
            "n_nan": len(values) - len(finite),
            "min": min(finite) if finite else None,
            "mean": sum(finite) / len(finite) if finite else None,
            "max": max(finite) if finite else None,
        }
    ordered = {m: modalities[m] for m in MODALITIES if m in modalities}
    return {
        "dataset": recordings.dataset,
        "synthetic": bool(recordings.description.get("synthetic", False)),
        "description": {k: v for k, v in recordings.description.items() if k != "files"},
        "n_subjects": len(trials_per_subject),
        "n_trials": sum(trials_per_subject.values()),
        "trials_per_subject": trials_per_subject,
        "modalities": ordered,
        "trial_seconds": {
            "min": min(durations) if durations else None,
            "max": max(durations) if durations else None,
        },
        "onset_seconds": sorted(onsets),
        "ratings": summary_ratings,
        "load_report": recordings.report.to_dict(),
    }


class _FlatPolicy:
    """A reader's ``load_subject`` followed by the ``[dataset] flat`` policy (picklable, so
    that parallel jobs can load subjects through it)."""

    def __init__(self, load_subject: Callable[[str, LoadReport], Subject], policy: str,
                 source: str, where: str = "[dataset]") -> None:
        self.load_subject, self.policy, self.source = load_subject, policy, source
        self.where = where

    def __call__(self, subject: str, report: LoadReport) -> Subject:
        loaded = self.load_subject(subject, report)
        flat = flat_channels(loaded)
        if not flat:
            return loaded
        listed = ", ".join(f"{ch} ({why})" for ch, why in flat)
        if self.policy == "error":
            raise FormatError(
                f"{self.source}: subject {subject} has dead or flat-lined channel(s) {listed} "
                f"and {self.where} flat = \"error\"; set flat = \"drop-subject\" (or "
                f"\"warn\") in {self.where}, or fix the recording."
            )
        if self.policy == "drop-subject":
            report.skip(subject, None, self.source, f"dead or flat-lined channel(s) {listed} "
                        f"(flat = \"drop-subject\")")
            return Subject(loaded.dataset, subject, ())
        known = {(e["subject"], e["channel"]) for e in report.flagged}
        for ch, why in flat:
            if (subject, ch) not in known:
                report.flag(subject, ch, why)
        return loaded


def with_flat_policy(recordings: Recordings, policy: str, source: str,
                     where: str = "[dataset]") -> Recordings:
    """``recordings`` whose subjects pass the ``flat`` policy when loaded.

    Parameters
    ----------
    recordings : Recordings
        Opened by any reader.
    policy : {"warn", "drop-subject", "error"}
        A subject with a dead or flat-lined channel
        (:func:`~fearkd.recordings.flat_channels`) is listed in the load report, skipped
        (listed too), or refused.
    source : str
        The experiment file, named in the report and the error.
    where : str
        The table that set the policy (``[dataset]`` or a ``[[datasets]]`` entry), named in
        the error.
    """
    if policy not in FLAT_POLICIES:
        raise ValueError(f"Invalid value for 'flat': expected one of {FLAT_POLICIES!r}, "
                         f"got {policy!r}.")
    return Recordings(recordings.dataset, recordings.subjects,
                      _FlatPolicy(recordings._load_subject, policy, source, where),
                      recordings.description)
