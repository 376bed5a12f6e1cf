"""Train/test splitters over a FeatureSet's metadata table, and the leakage guard.

Every splitter reads the metadata DataFrame (one row per window; columns ``dataset``, ``subject``,
``trial``, ``window``, ``t_start``, ``t_stop``, ``y_fear``, ``y_source``) and yields **positional**
row indices (``metadata.iloc[idx]``). Protocols, by name (:func:`make_splitter`):

- ``subject`` (default): folds over subjects (StratifiedGroupKFold on the target, GroupKFold when
  stratification cannot fill every fold), or leave-one-subject-out with ``n_splits="loso"`` or
  ``n_splits >= n_subjects``. Subject-independent.
- ``trial``: folds over (subject, trial) keys. Subject-dependent, trial-disjoint.
- ``window``: random k-fold over windows. Overlapping windows of one trial land on both sides, so
  it leaks; it logs a warning and exists to show the gap.
- ``seed-legacy``: the reference notebooks' split. Windows stacked in (subject, trial,
  ``t_start``) order; window ``i`` with ``i % 5 == 0`` goes to the held-out part, which
  ``train_test_split(random_state=42)`` halves into validation and test (see
  :class:`LegacySplitter` for what is and is not reproduced). Leaky by design.

Each split is checked by :func:`check_split`: a subject (``subject``) or a trial (``trial``) on both
sides raises :class:`~fearkd.errors.LeakageError`; for every protocol the report counts the test
windows that share samples with a training window of the same trial.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.model_selection import GroupKFold, KFold, LeaveOneGroupOut, StratifiedGroupKFold

from .._registry import Registry
from ..errors import LeakageError

__all__ = [
    "PROTOCOLS",
    "register_protocol",
    "LeakageReport",
    "check_split",
    "SubjectSplitter",
    "TrialSplitter",
    "WindowSplitter",
    "LegacySplitter",
    "make_splitter",
    "iter_splits",
    "MetadataSplitter",
]

logger = logging.getLogger(__name__)

#: Evaluation protocols by name; each entry's ``obj`` is ``factory(n_splits, random_state,
#: target) -> splitter`` and its ``info`` holds ``group`` and ``leaky`` (see
#: :func:`register_protocol`). Registration order is the report's order.
PROTOCOLS: Registry[Callable] = Registry("protocol", "[evaluation] protocol")
#: What a protocol keeps apart: the leakage guard checks that no such group crosses a split.
GROUPS = ("subject", "trial", "dataset", "none")
#: Examples an error or report lists.
_N_EXAMPLES = 5


def _require(metadata: pd.DataFrame, columns: tuple[str, ...]) -> None:
    if not isinstance(metadata, pd.DataFrame):
        raise TypeError(f"'metadata' must be a pandas DataFrame, got {type(metadata).__name__}.")
    missing = [c for c in columns if c not in metadata.columns]
    if missing:
        raise ValueError(
            f"'metadata' lacks column(s) {missing!r} (has {list(metadata.columns)!r}); pass the "
            "FeatureSet's metadata table."
        )


def _trial_codes(metadata: pd.DataFrame) -> np.ndarray:
    """One integer per (subject, trial) key, shape (n_windows,)."""
    keys = pd.MultiIndex.from_arrays([metadata["subject"].astype(str), metadata["trial"]])
    return pd.factorize(keys)[0]


def _overlapping_tests(
    group: np.ndarray, start: np.ndarray, stop: np.ndarray, train: np.ndarray, test: np.ndarray
) -> np.ndarray:
    """Mask over ``test``: shares samples with a training window of the same group.

    Windows cover ``[t_start, t_stop)``. Times are replaced by their ranks so that a group code and
    a time combine into one exact int64 key and one ``searchsorted`` handles every group at once.
    """
    if len(train) == 0 or len(test) == 0:
        return np.zeros(len(test), dtype=bool)
    times, ranks = np.unique(np.concatenate([start, stop]), return_inverse=True)
    width = len(times) + 1
    r_start, r_stop = ranks[: len(start)], ranks[len(start):]
    g = group.astype(np.int64) * width
    order = train[np.lexsort((r_start[train], g[train]))]
    train_key = g[order] + r_start[order]
    # Within a group (and because group offsets grow), the running maximum of the stop keys is
    # the latest end among training windows starting no later than each position.
    stop_max = np.maximum.accumulate(g[order] + r_stop[order])
    q_start = g[test] + r_start[test]
    q_stop = g[test] + r_stop[test]
    # A training window starting inside [test start, test stop) ...
    starts_inside = np.searchsorted(train_key, q_stop, "left") > np.searchsorted(
        train_key, q_start, "left"
    )
    # ... or one starting before the test window and ending after its start.
    before = np.searchsorted(train_key, q_start, "left") - 1
    ends_after = (before >= 0) & (stop_max[np.maximum(before, 0)] > q_start)
    return starts_inside | ends_after


@dataclass(frozen=True)
class LeakageReport:
    """What crosses a train/test split (see :func:`check_split`)."""

    protocol: str
    n_train: int
    n_test: int
    #: Rows listed on both sides.
    n_shared_rows: int
    #: Subjects with windows on both sides, and a few of them.
    n_subjects_crossing: int
    subjects_crossing: tuple[str, ...]
    #: (subject, trial) keys with windows on both sides, and a few of them.
    n_trials_crossing: int
    trials_crossing: tuple[tuple[str, int], ...]
    #: Test windows sharing samples with a training window of the same subject and trial.
    n_overlapping: int
    overlapping_examples: tuple[tuple[str, int, int], ...]
    #: Datasets with windows on both sides (counted when ``metadata`` has a dataset column).
    datasets_crossing: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """Whether the protocol's guarantee holds (always true for the leaky protocols)."""
        group = PROTOCOLS.entry(self.protocol).info["group"]
        if group == "subject":
            return self.n_subjects_crossing == 0 and self.n_shared_rows == 0
        if group == "trial":
            return self.n_trials_crossing == 0 and self.n_shared_rows == 0
        if group == "dataset":
            return (not self.datasets_crossing and self.n_subjects_crossing == 0
                    and self.n_shared_rows == 0)
        return True

    def to_dict(self) -> dict:
        """JSON-ready copy."""
        return {
            "protocol": self.protocol,
            "n_train": self.n_train,
            "n_test": self.n_test,
            "n_shared_rows": self.n_shared_rows,
            "n_subjects_crossing": self.n_subjects_crossing,
            "subjects_crossing": list(self.subjects_crossing),
            "n_trials_crossing": self.n_trials_crossing,
            "trials_crossing": [list(t) for t in self.trials_crossing],
            "n_overlapping": self.n_overlapping,
            "overlapping_examples": [list(t) for t in self.overlapping_examples],
            "datasets_crossing": list(self.datasets_crossing),
            "ok": self.ok,
        }


def _as_index(idx, n: int, name: str) -> np.ndarray:
    arr = np.asarray(idx)
    if arr.ndim != 1 or (arr.size and not np.issubdtype(arr.dtype, np.integer)):
        raise TypeError(
            f"'{name}' must be a 1-D array of integer row positions, got dtype {arr.dtype} and "
            f"shape {arr.shape}."
        )
    if arr.size and (arr.min() < 0 or arr.max() >= n):
        raise ValueError(
            f"'{name}' holds positions outside 0..{n - 1} (min {arr.min()}, max {arr.max()})."
        )
    return arr.astype(np.int64)


def check_split(
    metadata: pd.DataFrame, train_idx, test_idx, protocol: str = "subject"
) -> LeakageReport:
    """Check a train/test split against the guarantee of its protocol.

    Parameters
    ----------
    metadata : DataFrame, shape (n_windows, ...)
        Columns ``subject``, ``trial``, ``t_start``, ``t_stop``.
    train_idx, test_idx : ndarray of int
        Positional row indices.
    protocol : str
        A name of :data:`PROTOCOLS`; its ``group`` says what must not cross the split.

    Returns
    -------
    LeakageReport

    Raises
    ------
    LeakageError
        Under a protocol grouped by subject a subject, by trial a (subject, trial) key, or under
        either a row, on both sides.
    ValueError
        ``protocol`` is not registered.
    """
    PROTOCOLS.entry(protocol, "protocol")
    _require(metadata, ("subject", "trial", "t_start", "t_stop"))
    n = len(metadata)
    train = _as_index(train_idx, n, "train_idx")
    test = _as_index(test_idx, n, "test_idx")
    start = metadata["t_start"].to_numpy(dtype=float)
    stop = metadata["t_stop"].to_numpy(dtype=float)
    if np.any(~(stop > start)):
        raise ValueError("'metadata' has windows with t_stop <= t_start (or NaN times).")
    subjects = metadata["subject"].astype(str).to_numpy()
    trials = metadata["trial"].to_numpy()
    codes = _trial_codes(metadata)
    shared = np.intersect1d(train, test)
    subj_cross = np.intersect1d(subjects[train], subjects[test])
    trial_cross = np.intersect1d(codes[train], codes[test])
    _, first_row = np.unique(codes, return_index=True)  # codes are 0..n_keys-1
    trial_examples = tuple(
        (str(subjects[first_row[c]]), int(trials[first_row[c]])) for c in trial_cross[:_N_EXAMPLES]
    )
    overlap = _overlapping_tests(codes, start, stop, train, test)
    rows = test[overlap][:_N_EXAMPLES]
    window = metadata["window"].to_numpy() if "window" in metadata.columns else rows
    group = PROTOCOLS.entry(protocol).info.get("group")
    if group == "dataset":
        _require(metadata, ("dataset",))
    ds_cross = ()
    if "dataset" in metadata.columns:
        ds = metadata["dataset"].astype(str).to_numpy()
        ds_cross = tuple(str(d) for d in np.intersect1d(ds[train], ds[test]))
    report = LeakageReport(
        protocol=protocol,
        n_train=len(train),
        n_test=len(test),
        n_shared_rows=len(shared),
        n_subjects_crossing=len(subj_cross),
        subjects_crossing=tuple(str(s) for s in subj_cross[:_N_EXAMPLES]),
        n_trials_crossing=len(trial_cross),
        trials_crossing=trial_examples,
        n_overlapping=int(overlap.sum()),
        overlapping_examples=tuple(
            (str(subjects[r]), int(trials[r]), int(window[r])) for r in rows
        ),
        datasets_crossing=ds_cross,
    )
    if not report.ok:
        crossing = (f"dataset(s) {list(report.datasets_crossing)} and "
                    if group == "dataset" else "")
        raise LeakageError(
            f"Split violates the {protocol!r} protocol: {crossing}"
            f"{report.n_subjects_crossing} subject(s) "
            f"(e.g. {list(report.subjects_crossing)}), {report.n_trials_crossing} trial(s) "
            f"(e.g. {list(report.trials_crossing)}) and {report.n_shared_rows} row(s) are on both "
            f"sides; {report.n_overlapping} test window(s) share samples with training windows."
        )
    if report.n_overlapping:
        logger.info(
            "%s split: %d of %d test windows share samples with a training window.",
            protocol, report.n_overlapping, report.n_test,
        )
    return report


def _check_n_splits(n_splits, allow_loso: bool = False) -> None:
    if allow_loso and n_splits == "loso":
        return
    if isinstance(n_splits, bool) or not isinstance(n_splits, (int, np.integer)) or n_splits < 2:
        extra = " or 'loso'" if allow_loso else ""
        raise ValueError(f"'n_splits' must be an integer >= 2{extra}, got {n_splits!r}.")


class MetadataSplitter:
    """Base of the splitters: ``split(metadata)``, ``split_with_validation(metadata)``.

    A protocol registered from outside (:func:`register_protocol`) may subclass it and define
    ``_iter(metadata)`` yielding positional ``(train, val, test)`` arrays (``val`` empty unless
    the protocol has its own validation rows) and a ``protocol`` name: every split then passes
    :func:`check_split`. Any object with a scikit-learn style ``split(metadata)`` works too
    (see :func:`iter_splits`).
    """

    protocol = ""
    _columns: tuple[str, ...] = ("subject", "trial", "t_start", "t_stop")

    def split(self, metadata: pd.DataFrame, y=None, groups=None) -> Iterator[tuple]:
        """Yield ``(train_idx, test_idx)`` positional index arrays, checked for leakage."""
        for train, _val, test in self.split_with_validation(metadata):
            yield train, test

    def split_with_validation(self, metadata: pd.DataFrame) -> Iterator[tuple]:
        """Yield ``(train_idx, val_idx, test_idx)``; ``val_idx`` is empty except for legacy."""
        _require(metadata, self._columns)
        for train, val, test in self._iter(metadata):
            check_split(metadata, train, test, self.protocol)
            yield np.sort(train), np.sort(val), np.sort(test)

    def _iter(self, metadata: pd.DataFrame) -> Iterator[tuple]:
        raise TypeError(f"{type(self).__name__} is abstract; use make_splitter().")

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


class _GroupSplitter(MetadataSplitter):
    """k folds over groups, stratified on the target when that fills every fold."""

    def __init__(self, n_splits=5, random_state=None, target: str = "y_fear"):
        self.n_splits = n_splits
        self.random_state = random_state
        self.target = target

    def _groups(self, metadata: pd.DataFrame) -> np.ndarray:
        raise TypeError(f"{type(self).__name__} is abstract; use make_splitter().")

    def _check_groups(self, n_groups: int) -> None:
        _check_n_splits(self.n_splits)
        if self.n_splits > n_groups:
            raise ValueError(
                f"'n_splits' = {self.n_splits} is more than the {n_groups} {self.protocol} "
                f"group(s) in 'metadata'; pass n_splits <= {n_groups}."
            )

    def _folds(self, metadata: pd.DataFrame, groups: np.ndarray, n_splits: int) -> list:
        dummy = np.zeros(len(metadata))
        y = metadata[self.target].to_numpy() if self.target in metadata.columns else None
        if y is not None and len(np.unique(y)) > 1:
            cv = StratifiedGroupKFold(n_splits, shuffle=True, random_state=self.random_state)
            try:
                with warnings.catch_warnings():
                    # A class rarer than n_splits is expected with fear labels; folds may lack it.
                    warnings.simplefilter("ignore", UserWarning)
                    folds = list(cv.split(dummy, y, groups))
            except ValueError as exc:  # every class has fewer rows than n_splits
                folds, reason = [], str(exc)
            else:
                reason = "it left a fold empty"
            if folds and all(len(test) for _train, test in folds):
                return folds
            logger.info(
                "StratifiedGroupKFold cannot split %d %s groups (%s); using GroupKFold.",
                len(np.unique(groups)), self.protocol, reason,
            )
        else:
            logger.info(
                "No target column %r with two or more classes; using GroupKFold.", self.target
            )
        cv = GroupKFold(n_splits, shuffle=True, random_state=self.random_state)
        return list(cv.split(dummy, groups=groups))

    def get_n_splits(self, metadata: pd.DataFrame | None = None, y=None, groups=None) -> int:
        if isinstance(self.n_splits, int) and not isinstance(self.n_splits, bool):
            return self.n_splits
        if metadata is None:
            raise ValueError("get_n_splits needs 'metadata' when n_splits='loso'.")
        return int(metadata["subject"].nunique())

    def _iter(self, metadata: pd.DataFrame) -> Iterator[tuple]:
        groups = self._groups(metadata)
        n_groups = len(np.unique(groups))
        if n_groups < 2:
            raise ValueError(
                f"The {self.protocol!r} protocol needs at least 2 {self.protocol} groups in "
                f"'metadata', got {n_groups}."
            )
        empty = np.empty(0, dtype=np.int64)
        if self._loso(n_groups):
            folds = LeaveOneGroupOut().split(np.zeros(len(metadata)), groups=groups)
        else:
            self._check_groups(n_groups)
            folds = self._folds(metadata, groups, self.n_splits)
        for train, test in folds:
            yield train, empty, test

    def _loso(self, n_groups: int) -> bool:
        return False


class SubjectSplitter(_GroupSplitter):
    """Folds over subjects (see the module docstring); ``n_splits`` int or ``"loso"``."""

    protocol = "subject"

    def _groups(self, metadata: pd.DataFrame) -> np.ndarray:
        return pd.factorize(metadata["subject"].astype(str))[0]

    def _loso(self, n_groups: int) -> bool:
        _check_n_splits(self.n_splits, allow_loso=True)
        return self.n_splits == "loso" or self.n_splits >= n_groups

    def get_n_splits(self, metadata: pd.DataFrame | None = None, y=None, groups=None) -> int:
        if self.n_splits != "loso" and metadata is not None:
            return min(int(self.n_splits), int(metadata["subject"].nunique()))
        return super().get_n_splits(metadata)


class TrialSplitter(_GroupSplitter):
    """Folds over (subject, trial) keys: subject-dependent, trial-disjoint."""

    protocol = "trial"

    def _groups(self, metadata: pd.DataFrame) -> np.ndarray:
        return _trial_codes(metadata)


class WindowSplitter(MetadataSplitter):
    """Random k-fold over windows. Leaks between overlapping windows; logs a warning."""

    protocol = "window"

    def __init__(self, n_splits=5, random_state=None, target: str = "y_fear"):
        self.n_splits = n_splits
        self.random_state = random_state
        self.target = target

    def get_n_splits(self, metadata: pd.DataFrame | None = None, y=None, groups=None) -> int:
        return self.n_splits

    def _iter(self, metadata: pd.DataFrame) -> Iterator[tuple]:
        _check_n_splits(self.n_splits)
        if self.n_splits > len(metadata):
            raise ValueError(
                f"'n_splits' = {self.n_splits} is more than the {len(metadata)} windows."
            )
        logger.warning(
            "protocol 'window' splits windows at random: overlapping windows of one trial land "
            "in train and test, so its scores are optimistic (leaky). Use 'subject' or 'trial'."
        )
        cv = KFold(self.n_splits, shuffle=True, random_state=self.random_state)
        empty = np.empty(0, dtype=np.int64)
        for train, test in cv.split(np.zeros(len(metadata))):
            yield train, empty, test


class LegacySplitter(MetadataSplitter):
    """The reference notebooks' every-``every``-th-window split, with validation indices.

    ``variant="notebooks"`` (the ``seed-legacy`` protocol) follows the notebooks: windows are
    stacked in (subject, trial, ``t_start``) order, as their feature arrays were, and window
    ``i`` (0-based, over the whole stack) is held out when ``i % every == 0``; the held-out
    windows are halved by ``sklearn.model_selection.train_test_split(held, test_size=0.5,
    random_state=42)``, first part validation, second part test. Fold ``k`` (``n_splits`` > 1,
    at most ``every``) holds out ``i % every == k``, so that the leaky protocol also gets fold
    scores for paired statistics; fold 0 is the notebooks' split.

    Reproduced: which windows are held out and how they are halved, given the same windows in
    the same order. Not reproduced: the notebooks fitted their scaler on all windows before the
    split (fearkd fits it on the training rows), and their feature arrays came from their own
    windowing code, so the same ``i`` is the same window only when the windows match (2 s every
    0.125 s with the baseline kept, ``configs/seed-legacy.toml``); which half the notebooks
    named validation is not recorded in the reference. Their row-wise L2 normalisation is
    ``[features] normalize = "l2-rows"``, a separate option.

    ``variant="positional"``: fearkd's earlier reading, per subject, windows in time order, the
    5th, 10th, ... held out and halved by alternation (test 1st, 3rd, ...; validation 2nd, ...).
    """

    protocol = "seed-legacy"

    def __init__(self, every: int = 5, target: str = "y_fear", n_splits: int = 1,
                 variant: str = "notebooks", random_state: int = 42):
        self.every = every
        self.target = target
        self.n_splits = n_splits
        self.variant = variant
        self.random_state = random_state

    def get_n_splits(self, metadata: pd.DataFrame | None = None, y=None, groups=None) -> int:
        return self.n_splits

    def _iter(self, metadata: pd.DataFrame) -> Iterator[tuple]:
        if isinstance(self.every, bool) or not isinstance(self.every, int) or self.every < 2:
            raise ValueError(f"'every' must be an integer >= 2, got {self.every!r}.")
        if (isinstance(self.n_splits, bool) or not isinstance(self.n_splits, int)
                or not 1 <= self.n_splits <= self.every):
            raise ValueError(f"'n_splits' of the seed-legacy protocol must be an integer in "
                             f"1..{self.every} (one fold per held-out offset), got "
                             f"{self.n_splits!r}.")
        if self.variant not in LEGACY_VARIANTS:
            raise ValueError(f"Invalid value for 'variant' of the seed-legacy split: expected "
                             f"one of {LEGACY_VARIANTS!r}, got {self.variant!r}.")
        logger.warning(
            "protocol 'seed-legacy' reproduces the reference's split: held-out windows overlap "
            "training windows of the same trial, so its scores are optimistic (leaky)."
        )
        subjects = metadata["subject"].astype(str).to_numpy()
        order = np.lexsort(
            (metadata["t_start"].to_numpy(dtype=float), metadata["trial"].to_numpy(), subjects)
        )
        if self.variant == "notebooks":
            from sklearn.model_selection import train_test_split

            i = np.arange(len(order))
            for k in range(self.n_splits):
                held = order[i % self.every == k]
                if len(held) < 2:
                    yield order[i % self.every != k], held[:0], held
                    continue
                val, test = train_test_split(held, test_size=0.5,
                                             random_state=self.random_state)
                yield order[i % self.every != k], np.sort(val), np.sort(test)
            return
        # Position of each window within its subject, in time order.
        subj_sorted = subjects[order]
        first = np.r_[True, subj_sorted[1:] != subj_sorted[:-1]]
        starts = np.flatnonzero(first)
        pos = np.arange(len(order)) - np.repeat(starts, np.diff(np.r_[starts, len(order)]))
        for k in range(self.n_splits):
            held = (pos % self.every) == self.every - 1 - k
            held_rows = order[held]
            # Alternate held-out windows between test and validation, per subject.
            held_subj = subj_sorted[held]
            h_first = (np.r_[True, held_subj[1:] != held_subj[:-1]] if len(held_subj)
                       else held_subj)
            h_starts = np.flatnonzero(h_first)
            h_pos = np.arange(len(held_rows)) - np.repeat(
                h_starts, np.diff(np.r_[h_starts, len(held_rows)])
            )
            yield order[~held], held_rows[h_pos % 2 == 1], held_rows[h_pos % 2 == 0]


#: Readings of the reference's split (:class:`LegacySplitter`).
LEGACY_VARIANTS = ("notebooks", "positional")


def register_protocol(name: str, factory: Callable, *, description: str = "",
                      group: str = "subject", leaky: bool = False,
                      overwrite: bool = False) -> Callable:
    """Register an evaluation protocol under ``name``.

    Parameters
    ----------
    name : str
        What a user writes in ``[evaluation] protocol``.
    factory : callable
        ``factory(n_splits, random_state, target) -> splitter``; the splitter has
        ``split(metadata)`` yielding positional ``(train_idx, test_idx)`` (subclass
        ``MetadataSplitter`` to get the leakage guard and ``split_with_validation``).
    description : str
        One line for ``--help`` and the docs.
    group : {"subject", "trial", "dataset", "none"}
        What the protocol keeps apart (``"dataset"``: no dataset, subject or row on both
        sides); :func:`check_split` raises :class:`LeakageError` when such
        a group (or a row) is on both sides. ``"none"``: only rows are counted.
    leaky : bool
        Whether its scores are optimistic by design (said in reports).
    overwrite : bool
        Replace an existing protocol of the same name.

    Returns
    -------
    callable
        ``factory``, unchanged.
    """
    if not callable(factory):
        raise TypeError(f"register_protocol({name!r}): 'factory' must be callable, "
                        f"got {factory!r}.")
    if group not in GROUPS:
        raise ValueError(f"register_protocol({name!r}): invalid value for 'group': expected "
                         f"one of {', '.join(map(repr, GROUPS))}, got {group!r}.")
    return PROTOCOLS.register(name, factory, description=description, overwrite=overwrite,
                              group=group, leaky=bool(leaky))


def iter_splits(splitter, metadata: pd.DataFrame) -> Iterator[tuple]:
    """``(train, val, test)`` positional arrays of any splitter ``make_splitter`` returns.

    Splitters without ``split_with_validation`` (a plain scikit-learn style ``split``) get an
    empty validation part; the caller checks the splits with :func:`check_split`.
    """
    if hasattr(splitter, "split_with_validation"):
        yield from splitter.split_with_validation(metadata)
        return
    empty = np.array([], dtype=np.int64)
    for train, test in splitter.split(metadata):
        yield np.sort(np.asarray(train)), empty, np.sort(np.asarray(test))


def make_splitter(
    protocol: str = "subject",
    n_splits: int | str = 5,
    random_state=None,
    target: str = "y_fear",
) -> MetadataSplitter:
    """Build the splitter of an evaluation protocol.

    Parameters
    ----------
    protocol : str
        A name of :data:`PROTOCOLS`: built in ``"subject"``, ``"trial"``, ``"window"``,
        ``"seed-legacy"``.
    n_splits : int or "loso"
        Folds; ``"loso"`` (subject only) for leave-one-subject-out. ``seed-legacy``: folds
        over the held-out offset, at most 5 (more are capped at 5, with a log line).
    random_state : int or None
        Shuffles the assignment of groups (or windows) to folds.
    target : str
        Metadata column to stratify on where the groups allow.

    Raises
    ------
    ValueError
        Unknown ``protocol``, or ``n_splits`` the protocol cannot take.
    """
    return PROTOCOLS.get(protocol, "protocol")(n_splits, random_state, target)


def _subject_splitter(n_splits, random_state, target) -> SubjectSplitter:
    _check_n_splits(n_splits, allow_loso=True)
    return SubjectSplitter(n_splits, random_state, target)


def _trial_splitter(n_splits, random_state, target) -> TrialSplitter:
    _check_n_splits(n_splits)
    return TrialSplitter(n_splits, random_state, target)


def _window_splitter(n_splits, random_state, target) -> WindowSplitter:
    _check_n_splits(n_splits)
    return WindowSplitter(n_splits, random_state, target)


def _legacy_splitter(n_splits, random_state, target) -> LegacySplitter:
    # random_state is not used: the reference's split is deterministic.
    if n_splits == "loso":
        n_splits = 1
    if isinstance(n_splits, bool) or not isinstance(n_splits, (int, np.integer)) or n_splits < 1:
        raise ValueError(f"'n_splits' must be an integer >= 1, got {n_splits!r}.")
    if n_splits > 5:
        logger.info("seed-legacy has at most 5 folds (one per held-out offset); using 5.")
    return LegacySplitter(target=target, n_splits=min(int(n_splits), 5))


register_protocol("subject", _subject_splitter, group="subject",
                  description="folds over subjects (subject-independent)")
register_protocol("trial", _trial_splitter, group="trial",
                  description="folds over trials (subject-dependent, trial-disjoint)")
register_protocol("window", _window_splitter, group="none", leaky=True,
                  description="random folds over windows (leaky; shows the gap)")
register_protocol("seed-legacy", _legacy_splitter, group="none", leaky=True,
                  description="the reference's every-5th-window split (leaky)")
