"""Tests of fearkd.evaluation.metrics against hand computations."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fearkd.evaluation.metrics import (
    METRICS,
    binomial_chance_threshold,
    brier_score,
    chance_level,
    chance_of_labels,
    expected_calibration_error,
    fold_metrics,
    macro_f1_from_confusion,
    majority_baseline,
    majority_class,
    prior_log_loss,
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
    # Class 3 is neither true nor predicted: it does not count.
    assert m["macro_f1"] == pytest.approx((2 / 3 + 1 / 2 + 2 / 3) / 3)
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
    assert m["accuracy"] == 1.0 and m["macro_f1"] == 1.0  # only class 1 present


def test_chance_and_majority():
    assert chance_level(4) == 0.25
    assert chance_level(np.int64(10)) == 0.1
    assert majority_class([2, 2, 1, 1, 0]) == 1  # tie 1/2: smallest code
    assert majority_baseline([0, 3, 3, 3], [3, 0, 3, 1]) == 0.5


def test_chance_over_the_classes_that_occur():
    # DEAP source task: floor of a 1-9 rating -> codes 1..9 occur, code 0 never does.
    y = np.array([-1, *range(1, 10), 9, 5])
    assert chance_of_labels(y, 10) == pytest.approx(1 / 9)
    assert chance_of_labels([0, 1, 2, 3, -1], 4) == 0.25
    assert chance_of_labels([2, 2, -1], 4) == 0.25  # one class only: fall back to 1/K


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


def test_macro_f1_perfect_fold_with_two_of_four_classes_is_one():
    m = fold_metrics([0, 0, 2, 2], [0, 0, 2, 2], labels=range(4))
    assert m["accuracy"] == 1.0
    assert m["macro_f1"] == 1.0


def test_macro_f1_counts_a_predicted_but_absent_class():
    # class 1 predicted once but never true: F1 0 counts; class 0: P 1, R 2/3 -> F1 0.8
    m = fold_metrics([0, 0, 0], [0, 0, 1], labels=range(4))
    assert m["macro_f1"] == pytest.approx((0.8 + 0.0) / 2)


def test_pooled_macro_f1_from_summed_confusions_matches_sklearn():
    from sklearn.metrics import f1_score

    folds = [([0, 0, 1], [0, 1, 1]), ([2, 2, 3, 0], [2, 3, 3, 0])]
    cm = sum(np.array(fold_metrics(t, p, labels=range(4))["confusion_matrix"])
             for t, p in folds)
    yt = [v for t, _ in folds for v in t]
    yp = [v for _, p in folds for v in p]
    assert macro_f1_from_confusion(cm) == pytest.approx(f1_score(yt, yp, average="macro"))
    with pytest.raises(ValueError, match="square"):
        macro_f1_from_confusion([[1, 2, 3]])


def test_prior_log_loss_is_the_entropy_of_the_training_frequencies():
    y = np.array([0, 0, 0, 1, 1, 2, 3, 3])
    freq = np.bincount(y) / len(y)
    assert prior_log_loss(y, y, 4) == pytest.approx(-(freq * np.log(freq)).sum())
    assert prior_log_loss([0, 1, 2, 3], [0, 1, 2, 3], 4) == pytest.approx(math.log(4))


def test_ece_and_brier_by_hand():
    proba = np.array([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7]])
    y = np.array([0, 1, 1])
    # bins: 0.9 (correct), 0.6 (wrong), 0.7 (correct) -> |1-.9| + |0-.6| + |1-.7| over 3
    assert expected_calibration_error(y, proba) == pytest.approx((0.1 + 0.6 + 0.3) / 3)
    assert brier_score(y, proba) == pytest.approx((0.02 + 0.72 + 0.18) / 3)
    m = fold_metrics(y, proba.argmax(1), proba)
    assert m["brier"] == pytest.approx((0.02 + 0.72 + 0.18) / 3)
    with pytest.raises(ValueError, match="column indices"):
        brier_score([0, 5, 1], proba)


def test_binomial_chance_threshold_against_scipy():
    from scipy import stats

    n, p = 20, 0.25
    t = binomial_chance_threshold(n, p)
    k = round(t * n)
    assert stats.binom.sf(k - 1, n, p) < 0.05 <= stats.binom.sf(k - 2, n, p)
    assert t == pytest.approx(9 / 20)
    with pytest.raises(ValueError, match="'n_test' must be a positive integer"):
        binomial_chance_threshold(0, 0.25)
