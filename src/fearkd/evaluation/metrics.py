"""Per-fold classification metrics, chance level and the majority-class baseline.

:func:`fold_metrics` scores one test fold with a **fixed label set**, so that a fold lacking a
class still gives comparable numbers: macro-F1 averages over every class (a class absent from
both truth and prediction scores 0), the confusion matrix has one row and column per class, and
log loss knows every class. Balanced accuracy is the mean recall over the classes present in
``y_true`` (scikit-learn's definition). Every figure goes next to :func:`chance_level` and
:func:`majority_baseline`, which a model must beat to have learned anything.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
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
    "chance_level",
    "majority_class",
    "majority_baseline",
]

#: Scalar metrics :func:`fold_metrics` returns (plus ``confusion_matrix``, ``labels``, ``n``).
METRICS = ("accuracy", "balanced_accuracy", "macro_f1", "kappa", "log_loss")
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
        ``accuracy``, ``balanced_accuracy``, ``macro_f1``, ``kappa`` (NaN when undefined: a single
        class in truth and prediction), ``log_loss`` (NaN without ``proba``),
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
    if proba is None:
        loss = float("nan")
    else:
        clipped = np.clip(proba, PROBA_EPS, 1.0)
        clipped /= clipped.sum(axis=1, keepdims=True)
        loss = float(log_loss(y_true, clipped, labels=labels))
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "balanced_accuracy": float(balanced),
        "macro_f1": float(
            f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)
        ),
        "kappa": float(kappa),
        "log_loss": loss,
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
        "labels": labels.tolist(),
        "n": len(y_true),
    }


def chance_level(n_classes: int) -> float:
    """Accuracy of a uniform random guess among ``n_classes`` classes: ``1 / n_classes``."""
    if isinstance(n_classes, bool) or not isinstance(n_classes, (int, np.integer)):
        raise TypeError(f"'n_classes' must be an integer, got {type(n_classes).__name__}.")
    if n_classes < 2:
        raise ValueError(f"'n_classes' must be >= 2, got {n_classes}.")
    return 1.0 / n_classes


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
