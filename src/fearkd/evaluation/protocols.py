"""The protocol registry and the leakage guard every split passes.

A protocol is a splitter factory and what it keeps apart (its ``group``: subject, trial,
dataset, or none for the leaky protocols). :func:`check_split` enforces that guarantee on each
train/test split: a subject (``subject``), a (subject, trial) key (``trial``) or a dataset
(``dataset``) on both sides raises :class:`~fearkd.errors.LeakageError`; for every protocol the
report counts the test windows that share samples with a training window of the same trial.
The built-in protocols are registered in :mod:`fearkd.evaluation.splitters` and
:mod:`fearkd.evaluation.crossdataset`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .._registry import Registry
from ..errors import LeakageError

__all__ = ["PROTOCOLS", "GROUPS", "register_protocol", "LeakageReport", "check_split"]

logger = logging.getLogger(__name__)

#: Evaluation protocols by name; each entry's ``obj`` is ``factory(n_splits, random_state,
#: target) -> splitter`` and its ``info`` holds ``group`` and ``leaky`` (see
#: :func:`register_protocol`). Registration order is the report's order.
PROTOCOLS: Registry[Callable] = Registry("protocol", "[evaluation] protocol")
#: What a protocol keeps apart: the leakage guard checks that no such group crosses a split.
GROUPS = ("subject", "trial", "dataset", "none")
#: Examples an error or report lists.
_N_EXAMPLES = 5


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
