"""Ratings -> class labels: fear levels from rule tables, source-task classes, class reports.

A **rule table** defines each fear level by one interval per named rating; a trial gets the
level whose every interval contains its rating. Tables are TOML files, so users can write their
own with any ratings and any number of levels. The n-th ``[[levels]]`` entry is class ``n - 1``
(the built-in tables: 0 none, 1 low, 2 medium, 3 high)::

    name = "my-table"
    description = "two levels on a 1-9 scale"

    [scales]                      # optional: a rating outside its scale is a LabelError
    valence = "[1, 9]"
    arousal = "[1, 9]"

    [[levels]]
    name = "calm"
    ranges = { valence = "[5, 9]", arousal = "[1, 5)" }

    [[levels]]
    name = "afraid"
    ranges = { valence = "[1, 5)", arousal = "[5, 9]" }

    [source_task]                 # optional: see load_source_task
    rating = "valence"
    n_classes = 10
    binning = "floor"

Intervals are written as strings in mathematical notation: ``"[lo, hi]"`` is closed, ``"[lo, hi)"``
excludes ``hi``, ``"(lo, hi]"`` excludes ``lo``; ``"[-3, -3]"`` is the single value -3 and
``inf``/``-inf`` are allowed. A level that names no interval for a rating does not constrain it.
``load_rules("deap")`` and ``load_rules("ascertain")`` read the built-in tables in
``fearkd/configs/rules/``.

A trial matching no level is unlabelled (``-1``) and stays available for the source task; a trial
matching two levels is ambiguous (policy ``drop``, ``first`` or ``error``, always counted); a NaN
rating raises :class:`~fearkd.errors.LabelError` unless ``nan_policy="unlabelled"``, and never
becomes a label.
"""


from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from os import PathLike

import numpy as np
import pandas as pd

from ._rules import (
    BUILTIN_TABLES,
    Interval,
    Level,
    RuleTable,
    _read_toml,
    load_rules,
    parse_interval,
)
from .errors import ConfigError, LabelError
from .label_report import FEAR_CLASSES, LabelReport, label_report

__all__ = [
    "FEAR_CLASSES",
    "BUILTIN_TABLES",
    "BUILTIN_SOURCE_TASKS",
    "Interval",
    "Level",
    "RuleTable",
    "FearAssignment",
    "SourceTask",
    "LabelReport",
    "LabeledTrials",
    "parse_interval",
    "load_rules",
    "assign_fear",
    "load_source_task",
    "label_report",
    "label_trials",
    "label_recordings",
    "class_names_for",
]

logger = logging.getLogger(__name__)

AMBIGUOUS_POLICIES = ("drop", "first", "error")
NAN_POLICIES = ("raise", "unlabelled")
#: How many offending rows an error message lists.
_N_EXAMPLES = 5



def _rating_matrix(
    ratings: pd.DataFrame, names: Sequence[str], source: str, scales: Mapping[str, Interval]
) -> np.ndarray:
    """Columns ``names`` of ``ratings`` as float, shape (n_trials, n_ratings); scale-checked."""
    if not isinstance(ratings, pd.DataFrame):
        raise TypeError(f"'ratings' must be a pandas DataFrame, got {type(ratings).__name__}.")
    missing = [n for n in names if n not in ratings.columns]
    if missing:
        raise ConfigError(
            f"{source}: rating(s) {missing!r} named in the table are not columns of the ratings "
            f"table (columns: {list(ratings.columns)!r}); rename the column or fix the table."
        )
    columns = []
    for name in names:
        try:
            col = ratings[name].to_numpy(dtype=float, na_value=np.nan)
        except (TypeError, ValueError):
            raise TypeError(
                f"Rating column {name!r} must be numeric, got dtype {ratings[name].dtype}."
            ) from None
        scale = scales.get(name)
        if scale is not None:
            bad = ~np.isnan(col) & ~scale.contains(col)
            if bad.any():
                rows = np.flatnonzero(bad)[:_N_EXAMPLES]
                raise LabelError(
                    f"{int(bad.sum())} value(s) of rating {name!r} lie outside its scale {scale} "
                    f"declared in {source}, e.g. rows {rows.tolist()} = {col[rows].tolist()}; "
                    "check the rating scale of the dataset."
                )
        columns.append(col)
    return np.column_stack(columns) if columns else np.empty((len(ratings), 0))


@dataclass(frozen=True)
class FearAssignment:
    """Result of :func:`assign_fear` with ``return_counts=True``.

    ``labels`` has shape (n_trials,), ``-1`` for unlabelled; ``ambiguous`` and ``nan`` are boolean
    masks of the same shape.
    """

    labels: np.ndarray
    ambiguous: np.ndarray
    nan: np.ndarray
    class_names: tuple[str, ...]

    @property
    def n_unlabelled(self) -> int:
        return int((self.labels < 0).sum())

    @property
    def n_ambiguous(self) -> int:
        return int(self.ambiguous.sum())

    @property
    def n_nan(self) -> int:
        return int(self.nan.sum())


def assign_fear(
    ratings: pd.DataFrame,
    rules: str | PathLike | Mapping | RuleTable,
    *,
    ambiguous: str = "drop",
    nan_policy: str = "raise",
    return_counts: bool = False,
) -> np.ndarray | FearAssignment:
    """Fear level of every trial from its ratings.

    Parameters
    ----------
    ratings : DataFrame, shape (n_trials, ...)
        One row per trial, one column per rating the table names (other columns ignored).
    rules : str, path, mapping or RuleTable
        Anything :func:`load_rules` accepts.
    ambiguous : {"drop", "first", "error"}
        A trial matching several levels: ``-1``, the first matching level, or a LabelError.
    nan_policy : {"raise", "unlabelled"}
        A trial with a NaN rating: LabelError, or ``-1`` (counted in ``n_nan``).
    return_counts : bool
        Return a :class:`FearAssignment` (labels plus counts) instead of the labels.

    Returns
    -------
    labels : ndarray of int64, shape (n_trials,)
        Class codes ``0 .. n_levels - 1``, ``-1`` where unlabelled.
    """
    if ambiguous not in AMBIGUOUS_POLICIES:
        raise ValueError(
            f"Invalid value for 'ambiguous': expected one of {AMBIGUOUS_POLICIES!r}, "
            f"got {ambiguous!r}."
        )
    if nan_policy not in NAN_POLICIES:
        raise ValueError(
            f"Invalid value for 'nan_policy': expected one of {NAN_POLICIES!r}, "
            f"got {nan_policy!r}."
        )
    table = load_rules(rules)
    names = table.ratings
    values = _rating_matrix(ratings, names, table.source, table.scales)
    nan = np.isnan(values).any(axis=1)
    if nan.any() and nan_policy == "raise":
        rows = np.flatnonzero(nan)[:_N_EXAMPLES]
        raise LabelError(
            f"{int(nan.sum())} trial(s) have a NaN rating (rows {rows.tolist()}); a NaN never "
            "becomes a fear label: fix the ratings, or leave those trials unlabelled with "
            "--nan-policy unlabelled (fearkd labels) or [labels] nan_policy = \"unlabelled\" "
            "(experiment file)."
        )
    # matches[i, k]: trial i lies in every interval of level k.
    matches = np.ones((len(values), table.n_classes), dtype=bool)
    for k, level in enumerate(table.levels):
        for rating, interval in level.ranges.items():
            matches[:, k] &= interval.contains(values[:, names.index(rating)])
    matches[nan] = False
    n_match = matches.sum(axis=1)
    is_ambiguous = n_match > 1
    if is_ambiguous.any() and ambiguous == "error":
        rows = np.flatnonzero(is_ambiguous)[:_N_EXAMPLES]
        levels = [[table.class_names[k] for k in np.flatnonzero(matches[r])] for r in rows]
        raise LabelError(
            f"{int(is_ambiguous.sum())} trial(s) match several levels of {table.source}, e.g. "
            f"rows {rows.tolist()} match {levels!r}; make the ranges disjoint or pass "
            "ambiguous='drop' or 'first'."
        )
    labels = np.where(n_match > 0, matches.argmax(axis=1), -1).astype(np.int64)
    if ambiguous == "drop":
        labels[is_ambiguous] = -1
    if is_ambiguous.any():
        logger.info(
            "%d trial(s) match several fear levels (policy %r).", int(is_ambiguous.sum()), ambiguous
        )
    result = FearAssignment(labels, is_ambiguous, nan, table.class_names)
    return result if return_counts else labels


@dataclass(frozen=True)
class SourceTask:
    """Classes of the pretraining (source) task, binned from one rating.

    ``binning="floor"``: class = ``floor(rating) + offset``. ``binning="edges"``: class ``i`` is
    ``[edges[i], edges[i + 1])``, the last bin closed. A class outside ``0 .. n_classes - 1`` is
    ``-1`` (not assignable); a value outside ``scale`` is a LabelError.
    """

    rating: str
    n_classes: int
    binning: str = "floor"
    offset: int = 0
    edges: tuple[float, ...] = ()
    scale: Interval | None = None
    source: str = "<dict>"

    @classmethod
    def from_dict(cls, data: Mapping, source: str = "<dict>") -> SourceTask:
        """Validate ``{rating, n_classes, binning, offset | edges, scale}``."""
        if not isinstance(data, Mapping):
            raise TypeError(f"{source}: a source task must be a mapping, got {data!r}.")
        unknown = set(data) - {"rating", "n_classes", "binning", "offset", "edges", "scale"}
        if unknown or "rating" not in data:
            raise ConfigError(
                f"{source}: a source task needs 'rating' and takes 'n_classes', 'binning', "
                f"'offset', 'edges', 'scale'; got keys {sorted(data)!r}."
            )
        binning = data.get("binning", "edges" if "edges" in data else "floor")
        if binning not in ("floor", "edges"):
            raise ConfigError(
                f"{source}: 'binning' must be 'floor' or 'edges', got {binning!r}."
            )
        edges = tuple(float(e) for e in data.get("edges", ()))
        if binning == "edges":
            if len(edges) < 3 or np.any(np.diff(edges) <= 0):
                raise ConfigError(
                    f"{source}: 'edges' must be at least 3 strictly increasing numbers, got "
                    f"{list(edges)!r}."
                )
            n_classes = data.get("n_classes", len(edges) - 1)
            if n_classes != len(edges) - 1:
                raise ConfigError(
                    f"{source}: 'n_classes' = {n_classes!r} but {len(edges)} edges make "
                    f"{len(edges) - 1} classes."
                )
        else:
            n_classes = data.get("n_classes")
        offset = data.get("offset", 0)
        if not isinstance(n_classes, int) or n_classes < 2 or not isinstance(offset, int):
            raise ConfigError(
                f"{source}: 'n_classes' must be an integer >= 2 and 'offset' an integer, got "
                f"n_classes={n_classes!r}, offset={offset!r}."
            )
        scale = data.get("scale")
        scale = None if scale is None else parse_interval(scale, f"{source}: source_task.scale")
        return cls(str(data["rating"]), n_classes, binning, offset, edges, scale, source)

    def class_names(self) -> list[str]:
        """Each class with the rating range it holds: ``"2: valence [2, 3)"``.

        Ranges are cut to ``scale``; a class no rating on the scale reaches is named
        ``"0: no valence rating"`` (DEAP valence: class 0 of the 1-9 rating).
        """
        names = []
        for i in range(self.n_classes):
            if self.binning == "floor":
                lo, hi = float(i - self.offset), float(i - self.offset + 1)
                hi_closed = False
            else:
                lo, hi = self.edges[i], self.edges[i + 1]
                hi_closed = i == self.n_classes - 1
            lo_closed = True
            if self.scale is not None:
                if self.scale.lo > lo or (self.scale.lo == lo and not self.scale.lo_closed):
                    lo, lo_closed = self.scale.lo, self.scale.lo_closed
                if self.scale.hi < hi or (self.scale.hi == hi and hi_closed):
                    hi, hi_closed = self.scale.hi, self.scale.hi_closed
            empty = lo > hi or (lo == hi and not (lo_closed and hi_closed))
            if empty:
                names.append(f"{i}: no {self.rating} rating")
            elif lo == hi:
                names.append(f"{i}: {self.rating} {lo:g}")
            else:
                names.append(f"{i}: {self.rating} {Interval(lo, hi, lo_closed, hi_closed)}")
        return names

    def assign(self, ratings: pd.DataFrame, *, nan_policy: str = "raise") -> np.ndarray:
        """Source class of every trial, ndarray of int64, shape (n_trials,), ``-1`` if none.

        A NaN rating raises LabelError (``nan_policy="raise"``) or gives ``-1``.
        """
        if nan_policy not in NAN_POLICIES:
            raise ValueError(
                f"Invalid value for 'nan_policy': expected one of {NAN_POLICIES!r}, "
                f"got {nan_policy!r}."
            )
        scales = {self.rating: self.scale} if self.scale is not None else {}
        values = _rating_matrix(ratings, [self.rating], self.source, scales)[:, 0]
        nan = np.isnan(values)
        if nan.any() and nan_policy == "raise":
            raise LabelError(
                f"{int(nan.sum())} trial(s) have a NaN {self.rating!r} rating (rows "
                f"{np.flatnonzero(nan)[:_N_EXAMPLES].tolist()}); to leave them without a source "
                "class use --nan-policy unlabelled (fearkd labels) or [labels] nan_policy = "
                "\"unlabelled\" (experiment file)."
            )
        filled = np.where(nan, 0.0, values)
        if self.binning == "floor":
            classes = np.floor(filled).astype(np.int64) + self.offset
        else:
            edges = np.asarray(self.edges)
            classes = np.searchsorted(edges, filled, side="right").astype(np.int64) - 1
            classes[filled == edges[-1]] = len(edges) - 2  # the last bin is closed
            classes[(filled < edges[0]) | (filled > edges[-1])] = -1
        classes[(classes < 0) | (classes >= self.n_classes) | nan] = -1
        return classes


#: Source tasks shipped without a fear table (``configs/rules/<name>.toml``); the fear tables
#: of :data:`BUILTIN_TABLES` carry their own ``[source_task]``.
BUILTIN_SOURCE_TASKS = ("deap-valence", "deap-arousal")


def load_source_task(spec: str | PathLike | Mapping | SourceTask) -> SourceTask:
    """Load a source-task definition.

    Parameters
    ----------
    spec : {"deap", "ascertain", "deap-valence", "deap-arousal"}, path, mapping or SourceTask
        A built-in name (DEAP: valence, 10 classes = integer part of the 1-9 rating; ASCERTAIN:
        arousal, 7 classes 0..6; ``deap-arousal``: the reference notebooks' DEAP source task,
        arousal binned like valence; ``deap-valence``: the same as ``deap``'s), a TOML file
        with a ``[source_task]`` table (or the task's keys at top level), a mapping of those
        keys, or a task (returned).
    """
    if isinstance(spec, SourceTask):
        return spec
    if isinstance(spec, Mapping):
        return SourceTask.from_dict(spec)
    if isinstance(spec, str) and spec in BUILTIN_SOURCE_TASKS:
        from importlib import resources

        import tomllib

        text = (resources.files("fearkd") / "configs" / "rules" / f"{spec}.toml").read_text(
            encoding="utf-8")
        return SourceTask.from_dict(tomllib.loads(text)["source_task"], f"built-in {spec!r}")
    if not isinstance(spec, (str, PathLike)):
        raise TypeError(
            f"'source' must be 'deap', 'ascertain', a path, a mapping or a SourceTask, got "
            f"{type(spec).__name__} {spec!r}."
        )
    data, source = _read_toml(spec, "source task")
    return SourceTask.from_dict(data.get("source_task", data), source)


@dataclass(frozen=True, eq=False)
class LabeledTrials:
    """One fear and one source label per (subject, trial), and the label report.

    The result of :func:`label_trials`; features join it on (subject, trial) with :meth:`join`,
    so every window of a trial carries its trial's labels.

    Attributes
    ----------
    labels : DataFrame, shape (n_trials, 4)
        ``subject``, ``trial``, ``y_fear`` and ``y_source`` (``-1`` = unlabelled), int64 labels.
    report : LabelReport
        Trials per subject and fear class, unlabelled and ambiguous counts, warnings.
    class_names : tuple of str
        Name of fear class ``i`` at position ``i``.
    n_source_classes : int
        Classes of the source task (the task's own count when rules define it, else the
        largest given code + 1; 0 when no trial has one).
    """

    labels: pd.DataFrame
    report: LabelReport
    class_names: tuple[str, ...]
    n_source_classes: int

    def join(self, metadata: pd.DataFrame) -> pd.DataFrame:
        """``metadata`` with its ``y_fear``/``y_source`` columns set from the trial labels.

        Parameters
        ----------
        metadata : DataFrame, shape (n_windows, ...)
            Window-level metadata with ``subject`` and ``trial`` columns.

        Returns
        -------
        DataFrame, shape (n_windows, ...)
            A copy, same rows and order; a window of a trial without labels gets ``-1``.
        """
        keys = ["subject", "trial"]
        merged = metadata[keys].merge(self.labels, on=keys, how="left", validate="many_to_one")
        out = metadata.copy()
        for column in ("y_fear", "y_source"):
            out[column] = merged[column].fillna(-1).to_numpy(dtype=np.int64)
        return out


def _names_from_classes(classes: Mapping | None, n_classes: int) -> tuple[str, ...]:
    if isinstance(classes, Mapping) and classes:
        names: list[list[str]] = [[] for _ in range(n_classes)]
        for name, code in classes.items():
            if isinstance(code, int) and 0 <= code < n_classes:
                names[code].append(str(name))
        if all(names):
            return tuple("/".join(v) for v in names)
    if n_classes <= len(FEAR_CLASSES):
        return FEAR_CLASSES[:n_classes]
    return tuple(str(i) for i in range(n_classes))


def class_names_for(recordings, n_classes: int) -> tuple[str, ...]:
    """Names of classes ``0 .. n_classes - 1`` for trials whose readers gave class labels.

    A generic description's ``classes`` mapping (``{"Relax": 0, ...}``) names them (several
    names of one code joined with "/"); otherwise the fear level names, or the codes.
    """
    return _names_from_classes(recordings.description.get("classes"), n_classes)


def label_trials(
    trials: pd.DataFrame,
    rules=None,
    source=None,
    *,
    ambiguous: str = "drop",
    nan_policy: str = "raise",
    given: np.ndarray | None = None,
    classes: Mapping | None = None,
    min_subjects: int = 3,
) -> LabeledTrials:
    """Fear and source labels of every trial, and their report: the one place labels are made.

    Trials whose reader gave labels (``given``) keep them; the others get ``rules`` applied to
    their ratings (:func:`assign_fear`) and the ``source`` task (:meth:`SourceTask.assign`).

    Parameters
    ----------
    trials : DataFrame, shape (n_trials, ...)
        One row per (subject, trial): ``subject``, ``trial``, the ratings, and ``y_fear`` /
        ``y_source`` holding the reader-given labels of the rows ``given`` marks.
    rules : str, path, mapping or RuleTable, optional
        Fear rule table (:func:`load_rules`); None: only reader-given fear labels.
    source : str, path, mapping or SourceTask, optional
        Source task (:func:`load_source_task`); None: only reader-given source labels.
    ambiguous, nan_policy : str
        Passed to :func:`assign_fear`; ``nan_policy`` also to the source task.
    given : array-like of bool, shape (n_trials,), optional
        Rows whose labels the reader gave (default: none).
    classes : mapping, optional
        A generic description's ``{"class name": code}``, to name reader-given classes when
        there is no rule table (:func:`class_names_for`).
    min_subjects : int
        Passed to :func:`label_report`.

    Returns
    -------
    LabeledTrials
    """
    if not isinstance(trials, pd.DataFrame):
        raise TypeError(f"'trials' must be a pandas DataFrame, got {type(trials).__name__}.")
    missing = [c for c in ("subject", "trial") if c not in trials.columns]
    if missing:
        raise ValueError(f"'trials' lacks column(s) {missing!r}; expected one row per "
                         f"(subject, trial), got columns {list(trials.columns)!r}.")
    if trials.duplicated(["subject", "trial"]).any():
        raise ValueError("'trials' holds a (subject, trial) twice; expected one row per trial "
                         "(reduce window metadata with drop_duplicates(['subject', 'trial'])).")
    n = len(trials)
    given = np.zeros(n, bool) if given is None else np.asarray(given, bool)
    if given.shape != (n,):
        raise ValueError(f"'given' must have shape ({n},) like 'trials', got {given.shape}.")
    trials = trials.reset_index(drop=True)
    out = {}
    for column in ("y_fear", "y_source"):
        values = np.full(n, -1, dtype=np.int64)
        if column in trials.columns and given.any():
            values[given] = trials.loc[given, column].to_numpy(dtype=np.int64)
        out[column] = values
    rated = trials.loc[~given]
    ambiguous_mask = np.zeros(n, bool)
    n_source = int(out["y_source"].max()) + 1 if n else 0
    if rules is not None:
        table = load_rules(rules)
        class_names = table.class_names
        if len(rated):
            fa = assign_fear(rated, table, ambiguous=ambiguous, nan_policy=nan_policy,
                             return_counts=True)
            out["y_fear"][~given] = fa.labels
            ambiguous_mask[~given] = fa.ambiguous
    else:
        class_names = _names_from_classes(classes, int(max(out["y_fear"].max(), 0)) + 1)
    if source is not None:
        task = load_source_task(source)
        n_source = task.n_classes
        if len(rated):
            out["y_source"][~given] = np.asarray(task.assign(rated, nan_policy=nan_policy),
                                                 dtype=np.int64)
    labels = pd.DataFrame({"subject": trials["subject"].to_numpy(),
                           "trial": trials["trial"].to_numpy(), **out})
    report = label_report(labels, class_names=class_names, min_subjects=min_subjects,
                          ambiguous=ambiguous_mask)
    return LabeledTrials(labels, report, tuple(class_names), max(n_source, 0))


def label_recordings(recordings, rules=None, *, ambiguous: str = "drop",
                     nan_policy: str = "raise", source=None, min_subjects: int = 3):
    """Fear and source labels of every trial of a dataset, and their report (no features).

    Reads each subject once (one at a time) and calls :func:`label_trials`. Trials that carry
    ``info["y_fear"]`` (readers that take classes from annotations) keep those labels; the
    others get ``rules`` (default: the built-in table named like the dataset).

    Parameters
    ----------
    recordings : Recordings
    rules : str, path, mapping or RuleTable, optional
    ambiguous, nan_policy : str
        Passed to :func:`assign_fear`.
    source : str, path, mapping or SourceTask, optional
        Source task; default: the built-in one named like the dataset, if any.

    Returns
    -------
    trials : DataFrame, shape (n_trials, ...)
        ``subject``, ``trial``, every rating, ``y_fear`` and ``y_source`` (``-1`` = none).
    report : LabelReport
    """
    rows = []
    for subject in recordings:
        for trial in subject:
            rows.append({"subject": trial.subject, "trial": trial.trial, **trial.ratings,
                         "y_fear": trial.info.get("y_fear", -1),
                         "y_source": trial.info.get("y_source", -1),
                         "_given": "y_fear" in trial.info})
    trials = pd.DataFrame(rows)
    if trials.empty:
        raise ValueError(f"{recordings.dataset}: no trials to label (every trial was skipped; "
                         f"see the load report).")
    given = trials.pop("_given").to_numpy(bool)
    if rules is None:  # a description's own rule table ([dataset.labels] rules)
        rules = recordings.description.get("rules")
    builtin = recordings.dataset in BUILTIN_TABLES
    if rules is None and not given.all():
        if not builtin:
            raise ValueError(
                f"Dataset {recordings.dataset!r} has no built-in fear rule table and its "
                f"trials carry no class labels; pass rules= (a TOML rule table)."
            )
        rules = recordings.dataset
    if source is None and builtin and not given.all():
        source = recordings.dataset
    labeled = label_trials(trials, rules, source, ambiguous=ambiguous, nan_policy=nan_policy,
                           given=given, classes=recordings.description.get("classes"),
                           min_subjects=min_subjects)
    trials["y_fear"] = labeled.labels["y_fear"].to_numpy()
    trials["y_source"] = labeled.labels["y_source"].to_numpy()
    return trials, labeled.report
