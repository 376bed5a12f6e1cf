"""Ensembles: soft voting, stacking on out-of-fold probabilities, an ensemble as a teacher."""

from __future__ import annotations

import numpy as np
import pytest

from fearkd.models import make_model
from fearkd.training import fit, make_kd_loss, predict_logits
from fearkd.training.ensemble import Stacking, fit_ensemble
from fearkd.training.settings import FitSettings

SETTINGS = FitSettings(epochs=10, batch_size=32, val_fraction=0.0, patience=None,
                       num_threads=1)
MEMBERS = ("ann", "attention")


def _planted(seed: int, n: int = 400):
    """3 classes in features 0-1, 6 noise features; groups of 10 rows (trials)."""
    rng = np.random.default_rng(seed)
    y = np.repeat(rng.integers(0, 3, n // 10), 10)
    X = rng.normal(size=(n, 8)).astype(np.float32)
    X[:, 0] += 1.2 * (y - 1)
    X[:, 1] += 1.2 * (y == 1)
    return X, y, np.repeat(np.arange(n // 10), 10)


def test_stacking_is_never_below_its_best_member_by_more_than_the_noise_floor():
    # Shown to fail: with the meta-model fitted on permuted labels (y[::-1]) the stacked
    # accuracy falls to about chance and the mean gap is far below minus the noise floor.
    gaps, floor = [], 0.0
    for seed in range(3):
        X, y, g = _planted(seed)
        tr, te = np.arange(300), np.arange(300, 400)
        ens = fit_ensemble(MEMBERS, X[tr], y[tr], 3, kind="stacking", settings=SETTINGS,
                           groups=g[tr], random_state=seed)
        members = [float((p.argmax(1) == y[te]).mean()) for p in ens.member_proba(X[te])]
        best = max(members)
        gaps.append(float((ens.predict(X[te]) == y[te]).mean()) - best)
        floor = max(floor, 1.96 * np.sqrt(best * (1 - best) / len(te)))  # binomial SE
    assert np.mean(gaps) > -floor, (gaps, floor)


def test_the_meta_model_never_sees_a_prediction_on_its_own_training_rows():
    X, y, g = _planted(0, 200)
    ens = fit_ensemble(MEMBERS, X, y, 3, kind="stacking", settings=SETTINGS.replace(epochs=2),
                       groups=g, n_inner=4)
    assert isinstance(ens, Stacking)
    for row, trained_on in enumerate(ens.oof_train_rows_):
        assert len(trained_on) > 0 and row not in set(trained_on.tolist())
        # nor any window of its trial (the inner split keeps groups together)
        assert g[row] not in set(g[trained_on].tolist())
    # the classic leak, meta inputs predicted by members that trained on every row, is absent
    assert not np.allclose(ens.oof_proba_, np.hstack(ens.member_proba(X)), atol=1e-3)
    # the meta-model was fitted on exactly those out-of-fold probabilities
    refit = type(ens.meta)(max_iter=1000).fit(ens.oof_proba_, y)
    assert np.allclose(refit.coef_, ens.meta.coef_)


def test_soft_voting_is_the_mean_of_member_probabilities():
    X, y, g = _planted(1, 200)
    ens = fit_ensemble(MEMBERS, X, y, 3, kind="soft", settings=SETTINGS.replace(epochs=2),
                       groups=g)
    expected = np.mean(ens.member_proba(X), axis=0)
    assert np.allclose(ens.predict_proba(X), expected)
    assert np.allclose(np.exp(ens.logits(X)).sum(1), 1.0, atol=1e-5)


def test_an_ensemble_of_teachers_teaches_a_student():
    # The student sees only the noise columns plus feature 0; it learns from the ensemble's
    # soft targets and must beat the majority class on held-out rows.
    X, y, g = _planted(2)
    tr, te = np.arange(300), np.arange(300, 400)
    teacher = fit_ensemble(MEMBERS, X[tr], y[tr], 3, kind="soft", settings=SETTINGS,
                           groups=g[tr])
    cols = [0, 2, 3, 4]
    student = make_model("ann", len(cols), 3, random_state=0)
    res = fit(student, X[tr][:, cols], y[tr], SETTINGS, targets=teacher.logits(X[tr]),
              loss=make_kd_loss("soft", temperature=2.0))
    pred = predict_logits(student, X[te][:, cols], scaler=res.scaler).argmax(1)
    majority = (y[te] == np.bincount(y[tr]).argmax()).mean()
    assert (pred == y[te]).mean() > majority + 0.1


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"names": []}, r"'members' of an ensemble: expected at least one model name"),
    ({"names": ["nope"]}, r"Invalid value for 'ensemble members': expected one of"),
    ({"kind": "hard"}, r"'kind' of an ensemble: expected one of 'soft', 'stacking', got 'hard'"),
    ({"kind": "stacking", "n_inner": 50}, r"'n_inner' of a stacking ensemble: expected at most"),
])
def test_bad_ensemble_input(kwargs, match):
    X, y, g = _planted(0, 40)
    args = {"names": ["ann"], **kwargs}
    with pytest.raises(ValueError, match=match):
        fit_ensemble(args.pop("names"), X, y, 3, settings=SETTINGS, groups=g, **args)
