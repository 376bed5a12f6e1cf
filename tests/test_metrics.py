"""Tests of fearkd.evaluation.metrics against hand computations."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fearkd.evaluation.metrics import (
    METRICS,
    chance_level,
    fold_metrics,
    majority_baseline,
    majority_class,
)

# 8 test windows, 4 classes; class 3 absent from the fold (neither true nor predicted).
Y_TRUE = [0, 0, 0, 1, 1, 2, 2, 2]
Y_PRED = [0, 0, 1, 1, 2, 2, 2, 0]


def test_fold_metrics_by_hand():
    m = fold_metrics(Y_TRUE, Y_PRED, labels=range(4))
    assert set(METRICS) <= set(m)
    assert m["accuracy"] == pytest.approx(5 / 8)
    # Recall: class 0 2/3, class 1 1/2, class 2 2/3 (class 3 absent from y_true).
    assert m["balanced_accuracy"] == pytest.approx((2 / 3 + 1 / 2 + 2 / 3) / 3)
    # Precision 2/3, 1/2, 2/3 and recall equal -> F1 2/3, 1/2, 2/3; class 3 scores 0.
    assert m["macro_f1"] == pytest.approx((2 / 3 + 1 / 2 + 2 / 3 + 0) / 4)
    # Kappa: p_o = 5/8; marginals true (3,2,3,0)/8, predicted (3,2,3,0)/8.
    p_e = (3 * 3 + 2 * 2 + 3 * 3) / 64
    assert m["kappa"] == pytest.approx((5 / 8 - p_e) / (1 - p_e))
    assert m["confusion_matrix"] == [[2, 1, 0, 0], [0, 1, 1, 0], [1, 0, 2, 0], [0, 0, 0, 0]]
    assert m["labels"] == [0, 1, 2, 3] and m["n"] == 8
    assert math.isnan(m["log_loss"])


def test_log_loss_fold_lacking_a_class():
    proba = np.full((3, 4), 0.1)
    proba[np.arange(3), [0, 1, 1]] = 0.7
    m = fold_metrics([0, 1, 2], [0, 1, 1], proba=proba)
    assert m["labels"] == [0, 1, 2, 3]
    assert m["log_loss"] == pytest.approx(-(np.log(0.7) * 2 + np.log(0.1)) / 3)


def test_log_loss_clips_zero_probabilities():
    proba = np.array([[1.0, 0.0], [0.0, 1.0]])
    m = fold_metrics([0, 0], [0, 1], proba=proba)
    assert np.isfinite(m["log_loss"])
    assert m["log_loss"] == pytest.approx(-np.log(1e-15) / 2, rel=1e-6)


def test_kappa_undefined_is_nan():
    m = fold_metrics([1, 1], [1, 1], labels=[0, 1])
    assert math.isnan(m["kappa"])
    assert m["accuracy"] == 1.0 and m["macro_f1"] == pytest.approx(0.5)


def test_chance_and_majority():
    assert chance_level(4) == 0.25
    assert chance_level(np.int64(10)) == 0.1
    assert majority_class([2, 2, 1, 1, 0]) == 1  # tie 1/2: smallest code
    assert majority_baseline([0, 3, 3, 3], [3, 0, 3, 1]) == 0.5


def test_bad_input():
    with pytest.raises(ValueError, match="same length, got 3 and 2"):
        fold_metrics([0, 1, 1], [0, 1])
    with pytest.raises(ValueError, match=r"'y_true' must be 1-D, got shape \(1, 2\)"):
        fold_metrics([[0, 1]], [0, 1])
    with pytest.raises(ValueError, match="'y_pred' is empty"):
        fold_metrics([0], [])
    with pytest.raises(ValueError, match=r"'proba' must have shape \(n_windows, n_classes\)"):
        fold_metrics([0, 1], [0, 1], proba=[0.5, 0.5])
    with pytest.raises(ValueError, match=r"'proba' has 3 columns but 'labels' has 2 classes"):
        fold_metrics([0, 1], [0, 1], proba=np.full((2, 3), 1 / 3), labels=[0, 1])
    with pytest.raises(ValueError, match=r"hold class\(es\) \[5\] that are not in 'labels'"):
        fold_metrics([0, 5], [0, 1], labels=range(4))
    with pytest.raises(ValueError, match="'labels' must hold at least 2 distinct classes"):
        fold_metrics([0, 0], [0, 0], labels=[0, 0])
    with pytest.raises(ValueError, match="'n_classes' must be >= 2, got 1"):
        chance_level(1)
    with pytest.raises(TypeError, match="'n_classes' must be an integer, got float"):
        chance_level(4.0)
    with pytest.raises(ValueError, match="'y_train' is empty"):
        majority_baseline([], [1])
