"""FearkdClassifier follows the scikit-learn estimator contract."""

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GroupKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from fearkd.errors import LabelError
from fearkd.models import BASELINES
from fearkd.training import FearkdClassifier


def _data(n=120, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 10)).astype(np.float32)
    y = np.arange(n) % 3
    X[:, 0] += 2 * y
    return X, y


def _clf(**kw):
    return FearkdClassifier(**{"model": "ann", "epochs": 2, "batch_size": 16, **kw})


def test_params_are_stored_unchanged_and_clone():
    params = {"hidden": (8,)}
    clf = _clf(model_params=params, lr=0.01)
    assert clf.get_params()["model_params"] is params
    assert clf.get_params()["lr"] == 0.01
    copy = clone(clf)
    assert copy.get_params()["model_params"] == params
    clf.set_params(epochs=5)
    assert clf.epochs == 5


def test_fit_predict_with_string_labels():
    X, y = _data()
    labels = np.array(["high", "low", "none"])[y]
    clf = _clf(model_params={"hidden": (16,)}, epochs=30, lr=0.01).fit(X, labels)
    assert list(clf.classes_) == ["high", "low", "none"]
    proba = clf.predict_proba(X)
    assert proba.shape == (120, 3)
    np.testing.assert_allclose(proba.sum(1), 1.0)
    assert set(clf.predict(X)) <= set(clf.classes_)
    assert clf.score(X, labels) > 0.6  # chance is 1/3
    assert len(clf.history_) >= 1 and clf.scaler_ is not None
    assert clf.n_features_in_ == 10


def test_cross_val_score_and_pipeline():
    X, y = _data()
    scores = cross_val_score(_clf(), X, y, cv=GroupKFold(3), groups=np.arange(120) // 10)
    assert scores.shape == (3,) and np.all((scores >= 0) & (scores <= 1))
    pipe = make_pipeline(StandardScaler(), _clf(model="cnn", epochs=1))
    pipe.fit(X, y)
    assert pipe.predict(X).shape == (120,)


@pytest.mark.parametrize("name", BASELINES)
def test_baselines_through_the_estimator(name):
    X, y = _data()
    clf = FearkdClassifier(model=name, random_state=0).fit(X, y)
    assert clf.predict_proba(X).shape == (120, 3)
    assert clf.scaler_ is None and clf.history_.empty
    if name == "majority":
        assert clf.score(X, y) == pytest.approx(1 / 3)


def test_n_classes_keeps_missing_classes():
    X, y = _data()
    clf = FearkdClassifier(model="lda", n_classes=4).fit(X, y)
    assert clf.predict_proba(X).shape == (120, 4)
    assert np.all(clf.predict_proba(X)[:, 3] == 0)
    net = _clf(n_classes=4).fit(X, y)
    assert net.predict_proba(X).shape == (120, 4)


def test_explicit_validation_labels_are_mapped():
    X, y = _data()
    labels = np.array(["a", "b", "c"])[y]
    clf = _clf().fit(X[:90], labels[:90], validation=(X[90:], labels[90:]))
    assert clf.history_["val_accuracy"].notna().all()
    with pytest.raises(LabelError, match=r"'validation' labels \['z'\] are not among"):
        _clf().fit(X[:90], labels[:90], validation=(X[90:92], np.array(["a", "z"])))


def test_errors():
    X, y = _data()
    with pytest.raises(ValueError, match=r"Unknown model 'cnm': expected one of .*svm"):
        FearkdClassifier(model="cnm").fit(X, y)
    with pytest.raises(LabelError, match=r"single class \(\[1\]\)"):
        _clf().fit(X, np.ones(120, dtype=int))
    with pytest.raises(LabelError, match=r"labels \[3\] outside 0..2"):
        _clf(n_classes=3).fit(X, np.where(y == 0, 3, y))
    with pytest.raises(NotFittedError):
        _clf().predict(X)
    clf = _clf().fit(X, y)
    with pytest.raises(ValueError, match=r"'X' must have shape \(n_samples, 10\), got \(120, 9\)"):
        clf.predict(X[:, :9])
    bad = X.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match=r"'X' contains NaN or Inf"):
        clf.predict(bad)
    with pytest.raises(ValueError, match=r"'X' contains NaN or Inf"):
        _clf().fit(bad, y)
    with pytest.raises(ValueError, match=r"'X' has 120 rows but 'y' has 100"):
        _clf().fit(X, y[:100])


def test_training_parameters_become_one_fit_settings():
    clf = FearkdClassifier("ann", epochs=3, batch_size=16, class_weight=None, patience=None)
    s = clf.fit_settings()
    assert (s.epochs, s.batch_size, s.class_weight, s.patience) == (3, 16, "none", None)
    X, y = _data()
    with pytest.raises(ValueError, match=r"\[training\] epochs must be a positive int, got 0"):
        FearkdClassifier("ann", epochs=0).fit(X, y)
