"""Every registered model learns a separable toy task with its default settings.

The capacity probe: 86 standard-normal features (the size of the ``deap-student`` preset), four
classes given by the signs of the first two features, ``y = 2 * (x0 > 0) + (x1 > 0)``; the other
84 features are noise. 2,000 training rows (the trainer holds 20 % of them out for early
stopping) and 1,000 test rows drawn the same way. Each model is built by ``make_model`` and
trained by ``fit`` with ``FitSettings()`` untouched: it must reach at least 90 % accuracy on
its training rows and at least 80 % on the test rows (chance: 25 %). A model that cannot is a
bug: fix it or remove it from the registry.

A negative control shows the criterion can fail: the same training with the labels shuffled
stays near chance on the test rows.
"""

from __future__ import annotations

import numpy as np
import pytest

from fearkd.models import MODELS, make_model
from fearkd.training import FitSettings, fit, predict_logits

N_FEATURES = 86
N_TRAIN = 2_000
N_TEST = 1_000
MIN_TRAIN_ACCURACY = 0.90
MIN_TEST_ACCURACY = 0.80


def capacity_probe(n_train: int = N_TRAIN, n_test: int = N_TEST, *, random_state: int = 0):
    """The probe's rows: X float32 (n, 86), y = 2 * (x0 > 0) + (x1 > 0)."""
    rng = np.random.default_rng(random_state)
    X = rng.standard_normal((n_train + n_test, N_FEATURES)).astype(np.float32)
    y = (2 * (X[:, 0] > 0) + (X[:, 1] > 0)).astype(np.int64)
    return X[:n_train], y[:n_train], X[n_train:], y[n_train:]


def _train_and_score(name: str, X_train, y_train, X_test, y_test) -> tuple[float, float, int]:
    model = make_model(name, N_FEATURES, 4, random_state=0)
    result = fit(model, X_train, y_train, FitSettings(), random_state=0)
    acc_train = float(np.mean(predict_logits(model, X_train, scaler=result.scaler).argmax(1)
                              == y_train))
    acc_test = float(np.mean(predict_logits(model, X_test, scaler=result.scaler).argmax(1)
                             == y_test))
    return acc_train, acc_test, len(result.history)


def test_probe_classes_are_balanced_and_given_by_two_features():
    X_train, y_train, X_test, y_test = capacity_probe()
    assert X_train.shape == (N_TRAIN, N_FEATURES) and X_test.shape == (N_TEST, N_FEATURES)
    counts = np.bincount(y_train, minlength=4)
    assert counts.min() > 0.2 * N_TRAIN
    # a rule on the two features is exact: the task is separable
    assert np.array_equal(2 * (X_test[:, 0] > 0) + (X_test[:, 1] > 0), y_test)


@pytest.mark.slow
@pytest.mark.parametrize("name", MODELS.names())
def test_every_model_learns_the_capacity_probe_with_default_settings(name):
    acc_train, acc_test, epochs = _train_and_score(name, *capacity_probe())
    assert acc_train >= MIN_TRAIN_ACCURACY and acc_test >= MIN_TEST_ACCURACY, (
        f"{name!r} with default settings: train {acc_train:.1%}, test {acc_test:.1%} after "
        f"{epochs} epochs; needs >= {MIN_TRAIN_ACCURACY:.0%} / {MIN_TEST_ACCURACY:.0%}")


@pytest.mark.slow
def test_shuffled_labels_fail_the_criterion():
    """Negative control: no structure, no test accuracy above chance (the test can fail)."""
    X_train, y_train, X_test, y_test = capacity_probe()
    shuffled = np.random.default_rng(1).permutation(y_train)
    acc_train, acc_test, _ = _train_and_score("ann", X_train, shuffled, X_test, y_test)
    assert acc_test < 0.35
    assert not (acc_train >= MIN_TRAIN_ACCURACY and acc_test >= MIN_TEST_ACCURACY)
