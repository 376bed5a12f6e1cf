"""Per-fold classification metrics, chance level and the majority-class baseline.

:func:`fold_metrics` scores one test fold with a **fixed label set**, so that a fold lacking a
class still gives comparable numbers: macro-F1 averages over every class (a class absent from
neither truth nor prediction holds does not count), the confusion matrix has one row and
column per class, and log loss knows every class. Macro-F1 averages over the classes present in
``y_true`` or ``y_pred``: a fold holding 2 of 4 classes, predicted perfectly, scores 1.0 (not
0.5); :func:`macro_f1_from_confusion` gives the pooled macro-F1 over every fold's predictions
(summed confusion matrices). Balanced accuracy is the mean recall over the classes present in
``y_true`` (scikit-learn's definition). Probability quality: :func:`expected_calibration_error`
and :func:`brier_score` next to log loss.

Every figure goes next to :func:`chance_level` (over the classes that can occur),
:func:`majority_baseline`, :func:`prior_log_loss` (the log loss of predicting the training class
frequencies: their entropy when the test frequencies match) and
:func:`binomial_chance_threshold`, the accuracy a guesser at chance reaches with probability
below 5 % on that many test windows.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
from scipy import stats
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    cohen_kappa_score,
    confusion_matrix,
    f1_score,
    log_loss,
)

__all__ = [
    "METRICS",
    "fold_metrics",
    "macro_f1_from_confusion",
    "expected_calibration_error",
    "brier_score",
    "prior_log_loss",
    "binomial_chance_threshold",
    "chance_level",
    "chance_of_labels",
    "majority_class",
    "majority_baseline",
]

#: Scalar metrics :func:`fold_metrics` returns (plus ``confusion_matrix``, ``labels``, ``n``).
METRICS = ("accuracy", "balanced_accuracy", "macro_f1", "kappa", "log_loss", "ece", "brier")
#: Bins of the expected calibration error (equal-width on the top-class probability).
ECE_BINS = 10
#: Probabilities are clipped to [PROBA_EPS, 1] before log loss, so that one confident mistake
#: gives a large finite loss instead of infinity.
PROBA_EPS = 1e-15


def _labels_1d(y, name: str) -> np.ndarray:
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise ValueError(f"'{name}' must be 1-D, got shape {arr.shape}.")
    if arr.size == 0:
        raise ValueError(f"'{name}' is empty; a fold needs at least one test window.")
    return arr


def fold_metrics(
    y_true,
    y_pred,
    proba=None,
    labels: Sequence[int] | None = None,
) -> dict:
    """Score one test fold.

    Parameters
    ----------
    y_true, y_pred : array-like of int, shape (n_windows,)
        True and predicted class codes.
    proba : array-like of float, shape (n_windows, n_classes), optional
        Predicted class probabilities, column ``j`` for ``labels[j]``; needed for log loss.
    labels : sequence of int, optional
        Every class of the task, e.g. ``range(n_classes)``. Default: ``range(proba.shape[1])``
        when ``proba`` is given, else the classes seen in ``y_true`` or ``y_pred``.

    Returns
    -------
    dict
        ``accuracy``, ``balanced_accuracy``, ``macro_f1`` (over the classes in ``y_true`` or
        ``y_pred``), ``kappa`` (NaN when undefined: a single class in truth and prediction),
        ``log_loss``, ``ece`` and ``brier`` (NaN without ``proba``),
        ``confusion_matrix`` (nested list, shape (n_labels, n_labels), rows true, columns
        predicted), ``labels`` (list) and ``n`` (windows).
    """
    y_true = _labels_1d(y_true, "y_true")
    y_pred = _labels_1d(y_pred, "y_pred")
    if len(y_true) != len(y_pred):
        raise ValueError(
            f"'y_true' and 'y_pred' must have the same length, got {len(y_true)} and "
            f"{len(y_pred)}."
        )
    if proba is not None:
        proba = np.asarray(proba, dtype=float)
        if proba.ndim != 2 or proba.shape[0] != len(y_true):
            raise ValueError(
                f"'proba' must have shape (n_windows, n_classes) = ({len(y_true)}, n_classes), "
                f"got {proba.shape}."
            )
    if labels is None:
        labels = range(proba.shape[1]) if proba is not None else np.union1d(y_true, y_pred)
    labels = np.asarray(list(labels))
    if len(np.unique(labels)) != len(labels) or len(labels) < 2:
        raise ValueError(f"'labels' must hold at least 2 distinct classes, got {labels.tolist()}.")
    unknown = np.setdiff1d(np.union1d(y_true, y_pred), labels)
    if unknown.size:
        raise ValueError(
            f"'y_true'/'y_pred' hold class(es) {unknown.tolist()} that are not in 'labels' "
            f"{labels.tolist()}."
        )
    if proba is not None and proba.shape[1] != len(labels):
        raise ValueError(
            f"'proba' has {proba.shape[1]} columns but 'labels' has {len(labels)} classes."
        )
    with warnings.catch_warnings():
        # A fold lacking a class is expected; the values below are defined for it.
        warnings.simplefilter("ignore", UserWarning)
        kappa = cohen_kappa_score(y_true, y_pred, labels=labels)
        balanced = balanced_accuracy_score(y_true, y_pred)
    loss = ece = brier = float("nan")
    if proba is not None:
        clipped = np.clip(proba, PROBA_EPS, 1.0)
        clipped /= clipped.sum(axis=1, keepdims=True)
        loss = float(log_loss(y_true, clipped, labels=labels))
        codes = np.searchsorted(labels, y_true) if np.all(np.diff(labels) > 0) else \
            np.array([int(np.flatnonzero(labels == v)[0]) for v in y_true])
        ece = expected_calibration_error(codes, proba)
        brier = brier_score(codes, proba)
    present = np.union1d(y_true, y_pred)
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "balanced_accuracy": float(balanced),
        "macro_f1": float(
            f1_score(y_true, y_pred, labels=present, average="macro", zero_division=0)
        ),
        "kappa": float(kappa),
        "log_loss": loss,
        "ece": ece,
        "brier": brier,
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
        "labels": labels.tolist(),
        "n": len(y_true),
    }


def macro_f1_from_confusion(confusion) -> float:
    """Macro-F1 of a confusion matrix (rows true, columns predicted), e.g. the sum of every
    fold's test matrix (the pooled macro-F1); classes with no true and no predicted window do
    not count.

    Parameters
    ----------
    confusion : array-like of int, shape (n_classes, n_classes)
    """
    cm = np.asarray(confusion, dtype=float)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1] or cm.shape[0] < 1:
        raise ValueError(f"'confusion' must be a square matrix, got shape {cm.shape}.")
    tp = np.diag(cm)
    true, pred = cm.sum(axis=1), cm.sum(axis=0)
    present = (true + pred) > 0
    if not present.any():
        raise ValueError("'confusion' is all zeros: no windows to score.")
    f1 = 2 * tp[present] / (true[present] + pred[present])
    return float(f1.mean())


def _proba_codes(y, proba) -> tuple[np.ndarray, np.ndarray]:
    proba = np.asarray(proba, dtype=float)
    y = np.asarray(y, dtype=np.int64)
    if proba.ndim != 2 or proba.shape[0] != len(y):
        raise ValueError(f"'proba' must have shape (n_windows, n_classes) = ({len(y)}, "
                         f"n_classes), got {proba.shape}.")
    if len(y) == 0 or y.min() < 0 or y.max() >= proba.shape[1]:
        raise ValueError(f"'y' must hold column indices of 'proba' in [0, {proba.shape[1]}), "
                         f"got {np.unique(y).tolist()}.")
    return y, proba


def expected_calibration_error(y, proba, n_bins: int = ECE_BINS) -> float:
    """Expected calibration error: the window-weighted mean of ``|accuracy - confidence|``
    over equal-width bins of the top-class probability.

    Parameters
    ----------
    y : array-like of int, shape (n_windows,)
        True classes as column indices of ``proba``.
    proba : array-like of float, shape (n_windows, n_classes)
    n_bins : int
    """
    y, proba = _proba_codes(y, proba)
    conf = proba.max(axis=1)
    correct = (proba.argmax(axis=1) == y).astype(float)
    bins = np.minimum((conf * n_bins).astype(int), n_bins - 1)
    total = 0.0
    for b in np.unique(bins):
        sel = bins == b
        total += sel.sum() * abs(correct[sel].mean() - conf[sel].mean())
    return float(total / len(y))


def brier_score(y, proba) -> float:
    """Multi-class Brier score: mean over windows of ``sum_k (p_k - [y = k])^2`` (0 is
    perfect, 2 the worst).

    Parameters
    ----------
    y : array-like of int, shape (n_windows,)
        True classes as column indices of ``proba``.
    proba : array-like of float, shape (n_windows, n_classes)
    """
    y, proba = _proba_codes(y, proba)
    onehot = np.zeros_like(proba)
    onehot[np.arange(len(y)), y] = 1.0
    return float(((proba - onehot) ** 2).sum(axis=1).mean())


def prior_log_loss(y_train, y_test, n_classes: int) -> float:
    """Log loss on ``y_test`` of predicting the training class frequencies for every window.

    A class absent from training gets :data:`PROBA_EPS`. When the test frequencies equal the
    training ones this is their entropy (``ln 4 = 1.386`` for 4 balanced classes): the log loss
    a model must beat to have learned anything.

    Parameters
    ----------
    y_train, y_test : array-like of int
        Class codes in ``[0, n_classes)``.
    n_classes : int
    """
    y_train = _labels_1d(y_train, "y_train")
    y_test = _labels_1d(y_test, "y_test")
    freq = np.bincount(y_train, minlength=n_classes)[:n_classes] / len(y_train)
    freq = np.clip(freq, PROBA_EPS, 1.0)
    freq /= freq.sum()
    return float(-np.mean(np.log(freq[y_test])))


def binomial_chance_threshold(n_test: int, chance: float, alpha: float = 0.05) -> float:
    """Smallest accuracy ``k / n_test`` that a guesser at ``chance`` reaches (or beats) with
    probability below ``alpha`` (binomial upper tail; windows treated as independent, which
    overlapping windows of one trial are not: a lower bound on the real threshold).

    Parameters
    ----------
    n_test : int
        Test windows (or trials).
    chance : float
        Accuracy of guessing, in (0, 1).
    alpha : float
    """
    if isinstance(n_test, bool) or not isinstance(n_test, (int, np.integer)) or n_test < 1:
        raise ValueError(f"'n_test' must be a positive integer, got {n_test!r}.")
    if not 0.0 < chance < 1.0:
        raise ValueError(f"'chance' must lie in (0, 1), got {chance!r}.")
    # sf(k - 1) = P(X >= k); the smallest k with P(X >= k) < alpha
    k = int(stats.binom.isf(alpha, n_test, chance)) + 1
    while k > 0 and stats.binom.sf(k - 2, n_test, chance) < alpha:
        k -= 1
    return min(k, n_test) / n_test


def chance_level(n_classes: int) -> float:
    """Accuracy of a uniform random guess among ``n_classes`` classes: ``1 / n_classes``.

    Pass the classes that can occur: the DEAP source task's class 0 is empty by construction
    (ratings run 1-9), so its chance is 1/9, not 1/10.
    """
    if isinstance(n_classes, bool) or not isinstance(n_classes, (int, np.integer)):
        raise TypeError(f"'n_classes' must be an integer, got {type(n_classes).__name__}.")
    if n_classes < 2:
        raise ValueError(f"'n_classes' must be >= 2, got {n_classes}.")
    return 1.0 / n_classes


def chance_of_labels(y, n_classes: int) -> float:
    """Chance level over the classes that occur in ``y`` (codes ``< 0`` are unlabelled).

    The classes a task can produce are those its labelling gives to some window; a class code
    that no window carries (the DEAP source task's class 0: ratings run 1-9) cannot be guessed
    right, so it does not count. Falls back to ``1 / n_classes`` when fewer than two classes
    occur.

    Parameters
    ----------
    y : array-like of int, shape (n_windows,)
        Labels of every window of the data set (all folds), ``-1`` for unlabelled.
    n_classes : int
        Output classes of the task.
    """
    y = _labels_1d(y, "y")
    present = np.unique(y[(y >= 0) & (y < n_classes)])
    return chance_level(int(present.size)) if present.size >= 2 else chance_level(n_classes)


def majority_class(y_train) -> int:
    """Most frequent class of the training labels (the smallest code on a tie)."""
    y_train = _labels_1d(y_train, "y_train")
    values, counts = np.unique(y_train, return_counts=True)
    return values[np.argmax(counts)].item()


def majority_baseline(y_train, y_test) -> float:
    """Test accuracy of always predicting the training fold's majority class.

    Parameters
    ----------
    y_train : array-like of int, shape (n_train,)
    y_test : array-like of int, shape (n_test,)
    """
    y_test = _labels_1d(y_test, "y_test")
    return float(np.mean(y_test == majority_class(y_train)))
