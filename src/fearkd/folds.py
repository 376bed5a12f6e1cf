"""One fold of a unit: its rows, its per-fold normalisation, its constant-feature drop and the
groups of its inner validation split (:class:`Fold`, used by every stage of the fold).

Kept apart from :mod:`fearkd.stages` (what a stage is and how it runs); re-exported there.
"""

from __future__ import annotations

import logging

import numpy as np

from .errors import ConfigError

__all__ = ["Fold", "constant_features", "INNER_GROUPS", "MIN_SUBJECT_GROUPS"]

logger = logging.getLogger("fearkd.stages")

INNER_GROUPS = ("trial", "subject")
#: Fewest training subjects for a subject-grouped inner validation split.
MIN_SUBJECT_GROUPS = 3


class Fold:
    """The arrays of one fold, with per-task row selections.

    Parameters
    ----------
    fs : FeatureSet
        Teacher features of every window.
    student_names : sequence of str
    train_idx, test_idx, val_idx : array of int
    normalize : str
        ``[features] normalize`` (:mod:`fearkd.features.normalize`): the per-subject step is
        fitted here, on this fold's rows only (train, validation and test rows of each subject,
        features only, never labels), before any model's own scaler.
    inner_groups : {"trial", "subject"}
        What the inner validation split (early stopping, model selection) keeps apart;
        ``"subject"`` falls back to trials when a task's training rows hold fewer than
        :data:`MIN_SUBJECT_GROUPS` subjects (logged once per task).
    drop_constant : bool
        Drop the features that are constant over the fold's training windows (train and
        validation rows, after the per-subject step: :func:`constant_features`) from every
        model's inputs, named in one warning and in :attr:`dropped`: such a column carries
        nothing to learn from, and a scaler fitted on it would send every test value far out
        of range. False keeps every column (the final training of ``fearkd train``, whose
        bundle computes every column; extraction has already dropped the physiology features
        constant over all windows).

    Attributes
    ----------
    dropped : tuple of str
        Teacher feature names dropped as constant in this fold (student ones among them).
    """

    def __init__(self, fs, student_names, train_idx, test_idx, val_idx, *,
                 normalize: str = "global", inner_groups: str = "trial",
                 drop_constant: bool = True) -> None:
        if inner_groups not in INNER_GROUPS:
            raise ValueError(f"Invalid value for 'inner_groups': expected one of "
                             f"{', '.join(map(repr, INNER_GROUPS))}, got {inner_groups!r}.")
        meta = fs.metadata
        self.train = np.asarray(train_idx, dtype=np.int64)
        self.test = np.asarray(test_idx, dtype=np.int64)
        self.val = (np.asarray(val_idx, dtype=np.int64) if val_idx is not None
                    else np.array([], dtype=np.int64))
        X = _normalized(fs, normalize, np.concatenate([self.train, self.val, self.test]))
        names = list(fs.feature_names)
        self.dropped: tuple[str, ...] = ()
        if drop_constant:
            self.dropped = constant_features(X[np.concatenate([self.train, self.val])], names)
        if self.dropped:
            logger.warning("%d feature(s) constant over this fold's %d training windows "
                           "(after [features] normalize = %r), dropped from its models: %s",
                           len(self.dropped), len(self.train) + len(self.val), normalize,
                           list(self.dropped))
            student_names = [n for n in student_names if n not in self.dropped]
            if not student_names:
                raise ConfigError(
                    f"Every student feature is constant over this fold's training windows "
                    f"({list(self.dropped)!r}); choose another [features] student preset, or "
                    f"a longer [features] window.")
        keep = [i for i, n in enumerate(names) if n not in self.dropped]
        names = [names[i] for i in keep]
        cols = [names.index(n) for n in student_names]
        X = X[:, keep]
        self.X = {"teacher": np.ascontiguousarray(X),
                  "student": np.ascontiguousarray(X[:, cols])}
        self.y = {"fear": meta["y_fear"].to_numpy(np.int64),
                  "source": meta["y_source"].to_numpy(np.int64)}
        self.subjects = meta["subject"].astype(str).to_numpy()
        self.datasets = (meta["dataset"].astype(str).to_numpy() if "dataset" in meta
                         else None)
        self.names = {"teacher": tuple(names), "student": tuple(student_names)}
        self.groups = (meta["subject"].astype(str) + ":" + meta["trial"].astype(str)).to_numpy()
        self.normalize = normalize
        self.inner_groups = inner_groups
        self._told: set[str] = set()

    def rows(self, task: str, split: str) -> np.ndarray:
        """Rows of ``split`` ('train', 'val', 'test') labelled for ``task``."""
        idx = getattr(self, split)
        return idx[self.y[task][idx] >= 0]

    def domains(self, what: str) -> np.ndarray:
        """Domain of every row for ``[training] adaptation_domain`` (subject or dataset)."""
        if what == "dataset":
            if self.datasets is None:
                raise ValueError("Invalid value for '[training] adaptation_domain': 'dataset' "
                                 "needs a 'dataset' metadata column, and this feature set has "
                                 "none; set adaptation_domain = 'subject'.")
            return self.datasets
        return self.subjects

    def groups_for(self, task: str, rows: np.ndarray) -> np.ndarray:
        """Inner-validation groups of training ``rows`` of ``task`` (subject or subject:trial)."""
        if self.inner_groups == "subject":
            n = np.unique(self.subjects[rows]).size
            if n >= MIN_SUBJECT_GROUPS:
                return self.subjects[rows]
            if task not in self._told:
                self._told.add(task)
                logger.info("Inner validation of the %s task grouped by trial, not subject: "
                            "its training rows hold %d subject(s) (fewer than %d).", task, n,
                            MIN_SUBJECT_GROUPS)
        return self.groups[rows]


#: Relative spread (of the largest absolute value, at least 1) below which a feature is constant:
#: a few float32 rounding steps, what centring a constant column leaves.
CONSTANT_RTOL = 1e-6


def constant_features(X: np.ndarray, names) -> tuple[str, ...]:
    """Names of the columns of ``X`` (n_rows, n_features) whose values do not vary over its
    rows: peak-to-peak at most :data:`CONSTANT_RTOL` x max(1, max |x|). None for no rows."""
    if len(X) == 0:
        return ()
    X = np.asarray(X, dtype=np.float64)
    spread = X.max(axis=0) - X.min(axis=0)
    scale = np.maximum(1.0, np.abs(X).max(axis=0))
    return tuple(n for n, c in zip(names, spread <= CONSTANT_RTOL * scale, strict=True) if c)


def _normalized(fs, normalize: str, rows: np.ndarray) -> np.ndarray:
    """``fs.X`` with the per-subject step of ``normalize`` fitted on ``rows`` and applied to
    them (other rows are left as they are: no stage reads them)."""
    from .features.normalize import (
        calibration_mask,
        l2_rows,
        parse_normalize,
        subject_standardize,
    )

    mode, calibration = parse_normalize(normalize)
    if mode in ("none", "global") or len(rows) == 0:
        return fs.X
    if mode == "l2-rows":  # per window over the teacher's columns, as the notebooks did
        X = fs.X.copy()
        X[rows] = l2_rows(fs.X[rows])
        return X
    meta = fs.metadata.iloc[rows]
    fit_mask = None
    if mode == "calibration":
        window = fs.info.get("windowing", {}).get("length")
        fit_mask = calibration_mask(meta, calibration, window, value=normalize)
    X = fs.X.copy()
    X[rows] = subject_standardize(fs.X[rows], meta["subject"].astype(str).to_numpy(), fit_mask,
                                  fs.feature_names)
    return X
