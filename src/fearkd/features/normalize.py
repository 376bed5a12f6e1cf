"""Per-subject normalisation of features, fitted inside each fold (``[features] normalize``).

Subjects differ in skin conductance level, skull thickness and electrode contact far more than
one subject's fear levels differ from each other, so a model trained on some subjects and tested
on another mostly meets a shifted input. Standardising each subject on its own windows removes
that shift. The modes, by the value of ``[features] normalize``:

``"none"``
    Features as extracted (the model's own ``StandardScaler`` still runs).
``"global"``
    No per-subject step: one ``StandardScaler`` fitted on the training rows, inside each model
    (the behaviour before per-subject normalisation existed).
``"subject"`` (default)
    Each subject is z-scored on all of its own windows of the fold, labels unused. For a test
    subject this uses its test windows' features (never their labels): the evaluation is
    *transductive*, and the report says so.
``"calibration:<N>s"``
    Each subject is z-scored on the first ``N`` seconds of its own recording only (trials in id
    order, each trial's windowed span after the other): what a deployed monitor can do after a
    short calibration.
``"l2-rows"``
    Each window's feature row scaled to unit L2 norm (the reference notebooks' row-wise
    ``sklearn.preprocessing.normalize``), over the teacher's columns; no per-subject step. Per
    window, so nothing crosses the split; the student then sees its subset of the scaled row
    (the notebooks normalised the student's own columns).
``"calibration:<stage>"``
    Each subject is z-scored on the windows of the trials whose stage name (the metadata column
    ``stage``, from a reader that names stages, e.g. ``generic``) is ``<stage>``, e.g. a
    resting stage.
``"calibration:baseline"``
    Each subject is z-scored on the windows over the pre-stimulus baseline of its trials (DEAP:
    the first 3 s of every trial, which ``[features] baseline = "drop"`` otherwise drops). The
    experiment cuts those windows for this alone (:func:`fearkd.features.extract.
    extract_features` with ``calibration_baseline=True``: stage ``"baseline"``, unlabelled for
    every task, so no model trains or is scored on them); the window must fit in the baseline
    (DEAP: ``[features] window = 3`` or less), or the run stops with one line naming that key.

:class:`SubjectNormalizer` is the scikit-learn transformer behind all per-subject modes; it can
be used with :class:`~fearkd.models.FearkdClassifier` directly (``groups`` are passed in)::

    norm = SubjectNormalizer().fit(X_train, groups=subjects_train)
    clf = FearkdClassifier("ann").fit(norm.transform(X_train, groups=subjects_train), y_train)
    # a new subject: fit on its calibration windows, then transform all of its windows
    norm_new = SubjectNormalizer().fit(X_calib, groups=["new"] * len(X_calib))
    y_pred = clf.predict(norm_new.transform(X_new, groups=["new"] * len(X_new)))

A feature constant within a subject (a flat channel) is centred but not divided, and named in a
warning (subject and feature).
"""

from __future__ import annotations

import logging
import re

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin

from ..errors import ConfigError

__all__ = ["NORMALIZE_MODES", "SubjectNormalizer", "l2_rows", "calibration_mask",
           "check_normalize",
           "normalize_sentence", "parse_normalize", "subject_standardize"]

logger = logging.getLogger(__name__)

#: The fixed values of ``[features] normalize`` (plus ``calibration:<stage or N s>``).
NORMALIZE_MODES = ("none", "subject", "calibration", "global", "l2-rows")
#: A standard deviation at or below this (relative to the feature's scale) counts as zero.
_ZERO_STD = 1e-12
_SECONDS = re.compile(r"^(\d+(?:\.\d*)?|\.\d+)s$")
_KEY = "[features] normalize"
_EXPECTED = ("'none', 'subject', 'global', 'l2-rows', 'calibration:<stage>' (a stage name) or "
             "'calibration:<N>s' (the first N seconds)")


def parse_normalize(value) -> tuple[str, str | float | None]:
    """Split a ``[features] normalize`` value into its mode and calibration part.

    Parameters
    ----------
    value : str

    Returns
    -------
    mode : {"none", "subject", "calibration", "global", "l2-rows"}
    calibration : str, float or None
        The stage name, or the seconds (float), for ``"calibration"``; None otherwise.

    Raises
    ------
    ConfigError
        For any other value, naming the key, what is expected and the value.
    """
    if not isinstance(value, str):
        raise ConfigError(f"{_KEY}: expected {_EXPECTED}, got {value!r}.")
    if value in ("none", "subject", "global", "l2-rows"):
        return value, None
    if value.startswith("calibration:"):
        part = value[len("calibration:"):].strip()
        match = _SECONDS.match(part)
        if match:
            seconds = float(match.group(1))
            if seconds > 0:
                return "calibration", seconds
        elif part:
            return "calibration", part
    raise ConfigError(f"{_KEY}: expected {_EXPECTED}, got {value!r}; set for example "
                      f"normalize = \"subject\" in the experiment file.")


def calibration_mask(metadata: pd.DataFrame, calibration: str | float,
                     window: float | None = None, *, value: str | None = None) -> np.ndarray:
    """Rows that belong to each subject's calibration part.

    Parameters
    ----------
    metadata : DataFrame, n_windows rows
        A FeatureSet's metadata (``subject``, ``trial``, ``t_start``, ``t_stop``, and ``stage``
        when the reader named stages).
    calibration : str or float
        A stage name, or seconds from the start of each subject's recording: a window is in it
        when it ends within the first ``calibration`` seconds, counting the subject's trials in
        id order, each trial's windowed span (first window start to last window end) after the
        previous one.
    window : float, optional
        Window length in seconds; a calibration part shorter than one window is an error.
    value : str, optional
        The ``[features] normalize`` value, for messages.

    Returns
    -------
    ndarray of bool, shape (n_windows,)

    Raises
    ------
    ConfigError
        When a subject has no window in its calibration part (it lacks the stage, or the part
        is shorter than one window).
    """
    value = value or f"calibration:{calibration}"
    subjects = metadata["subject"].astype(str).to_numpy()
    if isinstance(calibration, float):
        if window is not None and calibration < window:
            raise ConfigError(
                f"{_KEY} = {value!r}: the calibration part ({calibration:g} s) is shorter than "
                f"one window ({window:g} s); expected at least {window:g} s: set "
                f"normalize = \"calibration:{window:g}s\" or more.")
        frame = pd.DataFrame({"subject": subjects, "trial": metadata["trial"].to_numpy(),
                              "t0": metadata["t_start"].to_numpy(float),
                              "t1": metadata["t_stop"].to_numpy(float)})
        span = frame.groupby(["subject", "trial"], sort=True).agg(t0=("t0", "min"),
                                                                   t1=("t1", "max"))
        span["offset"] = (span["t1"] - span["t0"]).groupby(level=0).cumsum() \
            - (span["t1"] - span["t0"])
        span = span.rename(columns={"t0": "t0_trial"})[["t0_trial", "offset"]]
        joined = frame.join(span, on=["subject", "trial"])
        end = joined["offset"] + joined["t1"] - joined["t0_trial"]
        mask = (end <= calibration + 1e-9).to_numpy()
        what = f"the first {calibration:g} s of"
    else:
        if "stage" not in metadata.columns:
            raise ConfigError(
                f"{_KEY} = {value!r}: these windows carry no stage names (the reader names no "
                f"stages); expected a dataset whose trials are named stages (e.g. kind = "
                f"\"generic\"), or use normalize = \"calibration:<N>s\" or \"subject\".")
        mask = (metadata["stage"].astype(str) == calibration).to_numpy()
        what = f"stage {calibration!r} in"
    lacking = sorted(set(subjects) - set(subjects[mask]))
    if lacking:
        stages = ""
        if "stage" in metadata.columns and not isinstance(calibration, float):
            stages = f" (stages: {sorted(metadata['stage'].astype(str).unique())!r})"
        raise ConfigError(
            f"{_KEY} = {value!r}: subject(s) {lacking[:10]!r} have no window in {what} their "
            f"recording{stages}; expected every subject to have one: choose a stage every "
            f"subject has, a longer part, or normalize = \"subject\".")
    return mask


def normalize_sentence(value: str) -> str:
    """One sentence for reports: which normalisation ran, and whether it is transductive."""
    mode, calibration = parse_normalize(value)
    if mode == "subject":
        return ("Features were standardised per subject on each subject's own windows "
                "(normalize = \"subject\", labels unused); for test subjects this is "
                "transductive: their unlabelled test windows set their own scaling.")
    if mode == "calibration":
        part = (f"the first {calibration:g} s" if isinstance(calibration, float)
                else "the pre-stimulus baseline of every trial (stage 'baseline')"
                if calibration == "baseline" else f"the stage {calibration!r}")
        return (f"Features were standardised per subject on {part} of each subject's own "
                f"recording only (normalize = \"{value}\"), as a deployed monitor can.")
    if mode == "l2-rows":
        return ("Each window's feature row was scaled to unit L2 norm before the fold's scaler "
                "(normalize = \"l2-rows\", the reference notebooks' sklearn normalize(X); "
                "per window, so no window's scaling depends on another's).")
    if mode == "global":
        return ("Features were standardised by one scaler fitted on each fold's training rows "
                "(normalize = \"global\").")
    return "Features were not normalised per subject (normalize = \"none\")."


def check_normalize(value: str, metadata: pd.DataFrame, window: float | None) -> None:
    """Validate ``[features] normalize`` against the data once, before any unit trains."""
    mode, calibration = parse_normalize(value)
    if mode == "calibration":
        calibration_mask(metadata, calibration, window, value=value)


def l2_rows(X: np.ndarray) -> np.ndarray:
    """Each row scaled to unit Euclidean norm (``sklearn.preprocessing.normalize(X)``).

    A row of zeros stays zero.

    Parameters
    ----------
    X : ndarray, shape (n_windows, n_features)
    """
    X = np.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"'X' must be 2-D (n_windows, n_features), got shape {X.shape}.")
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    return (X / np.where(norms > 0, norms, 1.0)).astype(X.dtype, copy=False)


def subject_standardize(X: np.ndarray, groups, fit_mask=None, feature_names=None
                        ) -> np.ndarray:
    """Z-score each group's rows with the mean and std of its rows in ``fit_mask``.

    Parameters
    ----------
    X : ndarray, shape (n_windows, n_features)
    groups : array-like, shape (n_windows,)
        Subject of each row.
    fit_mask : ndarray of bool, shape (n_windows,), optional
        Rows the statistics come from (calibration rows); default all rows.
    feature_names : sequence of str, optional
        For the zero-variance warning.

    Returns
    -------
    ndarray of float32, shape (n_windows, n_features)
    """
    groups = np.asarray(groups)
    norm = SubjectNormalizer(feature_names=feature_names)
    fit_rows = np.ones(len(X), dtype=bool) if fit_mask is None else np.asarray(fit_mask)
    norm.fit(X[fit_rows], groups=groups[fit_rows])
    return norm.transform(X, groups=groups)


class SubjectNormalizer(TransformerMixin, BaseEstimator):
    """Standardise each subject's features on that subject's own rows.

    Parameters
    ----------
    calibration : array-like of bool, shape (n_samples,), optional
        Rows of the ``X`` given to :meth:`fit` that are calibration rows (the statistics come
        from them only); None: every row given to :meth:`fit`.
    feature_names : sequence of str, optional
        Names used in the zero-variance warning (default ``"feature <i>"``).

    Attributes
    ----------
    groups_ : ndarray, shape (n_groups,)
    mean_, scale_ : ndarray, shape (n_groups, n_features)
        Per-subject mean and standard deviation (1 where a feature is constant in a subject).
    """

    def __init__(self, calibration=None, feature_names=None) -> None:
        self.calibration = calibration
        self.feature_names = feature_names

    def _check(self, X, groups, where: str):
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2:
            raise ValueError(f"SubjectNormalizer.{where}: 'X' must be 2-D (n_samples, "
                             f"n_features), got shape {X.shape}.")
        if groups is None:
            raise TypeError(f"SubjectNormalizer.{where} needs 'groups' (the subject of each "
                            f"row): call {where}(X, groups=subjects).")
        groups = np.asarray(groups)
        if groups.shape != (len(X),):
            raise ValueError(f"SubjectNormalizer.{where}: 'groups' has shape {groups.shape}; "
                             f"expected ({len(X)},), one subject per row of X.")
        return X, groups

    def fit(self, X, y=None, groups=None):
        """Learn each subject's mean and standard deviation (``y`` is ignored).

        Parameters
        ----------
        X : array-like, shape (n_samples, n_features)
        y : ignored
        groups : array-like, shape (n_samples,)
            Subject of each row.
        """
        X, groups = self._check(X, groups, "fit")
        if self.calibration is not None:
            mask = np.asarray(self.calibration, dtype=bool)
            if mask.shape != (len(X),):
                raise ValueError(f"SubjectNormalizer: 'calibration' has shape {mask.shape}; "
                                 f"expected ({len(X)},), one flag per row given to fit.")
            X, groups = X[mask], groups[mask]
        names = (list(self.feature_names) if self.feature_names is not None
                 else [f"feature {i}" for i in range(X.shape[1])])
        self.groups_ = np.unique(groups)
        self.mean_ = np.zeros((len(self.groups_), X.shape[1]))
        self.scale_ = np.ones((len(self.groups_), X.shape[1]))
        for k, g in enumerate(self.groups_):
            rows = X[groups == g]
            mean = rows.mean(axis=0)
            std = rows.std(axis=0)
            flat = std <= _ZERO_STD * np.maximum(1.0, np.abs(mean))
            if flat.any():
                shown = [names[i] for i in np.flatnonzero(flat)[:10]]
                more = f" and {int(flat.sum()) - 10} more" if flat.sum() > 10 else ""
                logger.warning("Subject %s has zero variance in feature(s) %s%s over its %d "
                               "normalisation window(s); they are centred, not scaled.",
                               g, shown, more, len(rows))
            self.mean_[k] = mean
            self.scale_[k] = np.where(flat, 1.0, std)
        self.n_features_in_ = X.shape[1]
        return self

    def transform(self, X, groups=None):
        """Z-score each row with its subject's statistics.

        Parameters
        ----------
        X : array-like, shape (n_samples, n_features)
        groups : array-like, shape (n_samples,)
            Subject of each row; every subject must have been seen by :meth:`fit`.

        Returns
        -------
        ndarray of float32, shape (n_samples, n_features)
        """
        if not hasattr(self, "mean_"):
            raise ValueError("This SubjectNormalizer is not fitted yet; call fit(X, "
                             "groups=...) first.")
        X, groups = self._check(X, groups, "transform")
        if X.shape[1] != self.n_features_in_:
            raise ValueError(f"SubjectNormalizer.transform: 'X' has {X.shape[1]} features; "
                             f"fit saw {self.n_features_in_}.")
        index = {g: k for k, g in enumerate(self.groups_.tolist())}
        unseen = sorted({g for g in groups.tolist() if g not in index})
        if unseen:
            raise ValueError(f"SubjectNormalizer.transform: subject(s) {unseen[:10]!r} were not "
                             f"seen by fit; fit on (a calibration part of) their windows first.")
        k = np.array([index[g] for g in groups.tolist()], dtype=np.int64)
        return ((X - self.mean_[k]) / self.scale_[k]).astype(np.float32)

    def fit_transform(self, X, y=None, groups=None):
        """:meth:`fit` then :meth:`transform` of the same rows."""
        return self.fit(X, y, groups=groups).transform(X, groups=groups)
