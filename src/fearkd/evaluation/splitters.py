"""Train/test splitters over a FeatureSet's metadata table, registered as protocols.

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

Each split is checked by :func:`~fearkd.evaluation.protocols.check_split` (the protocol
registry and the leakage guard live in :mod:`fearkd.evaluation.protocols`; both are
re-exported here): a subject (``subject``) or a trial (``trial``) on both
sides raises :class:`~fearkd.errors.LeakageError`; for every protocol the report counts the test
windows that share samples with a training window of the same trial.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator

import numpy as np
import pandas as pd
from sklearn.model_selection import GroupKFold, KFold, LeaveOneGroupOut, StratifiedGroupKFold

from .protocols import (
    PROTOCOLS,
    LeakageReport,
    _require,
    _trial_codes,
    check_split,
    register_protocol,
)

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
