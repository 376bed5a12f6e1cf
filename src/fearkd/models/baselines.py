"""Classic baselines through scikit-learn: logistic regression, SVM, k-NN, random forest, LDA
and chance levels.

Every baseline is one entry of :data:`BASELINES`, built by :func:`make_baseline` and usable from an
experiment file (``[methods] baselines``); :func:`register_baseline` adds more. ``svm``, ``knn``
and ``logreg`` are wrapped in a pipeline with a ``StandardScaler`` (fitted on the training rows
only, inside ``fit``), because they depend on feature scales. The chance baselines are
``sklearn.dummy.DummyClassifier``: ``majority`` always predicts the most frequent training class,
``stratified`` draws labels at the training class frequencies.

They are also reachable through :class:`fearkd.training.FearkdClassifier` by name.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sklearn.calibration import CalibratedClassifierCV
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.dummy import DummyClassifier
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from .._registry import Registry

__all__ = ["BASELINES", "register_baseline", "make_baseline"]

_CALIBRATION_FOLDS = 3
_LOGREG_MAX_ITER = 1000

#: Baseline classifiers by name; each entry's ``obj`` is ``factory(random_state, **params)``
#: returning an unfitted scikit-learn classifier. Registration order is the report's order.
BASELINES: Registry[Callable[..., Any]] = Registry("baseline", "[methods] baselines")


def register_baseline(name: str, factory: Callable[..., Any], *, description: str = "",
                      display: str = "", overwrite: bool = False) -> Callable[..., Any]:
    """Register a baseline classifier under ``name``.

    Parameters
    ----------
    name : str
        What a user writes in ``[methods] baselines``.
    factory : callable
        ``factory(random_state, **params)`` returning an unfitted scikit-learn classifier with
        ``fit``, ``predict`` and ``predict_proba``.
    description : str
        One line for ``--help`` and the docs.
    display : str
        Row name in report tables (default ``name``).
    overwrite : bool
        Replace an existing baseline of the same name.

    Returns
    -------
    callable
        ``factory``, unchanged.
    """
    if not callable(factory):
        raise TypeError(f"register_baseline({name!r}): 'factory' must be callable, "
                        f"got {factory!r}.")
    return BASELINES.register(name, factory, description=description, display=display,
                              overwrite=overwrite)


def make_baseline(name: str, *, random_state: int | None = None, **params: Any):
    """Build an unfitted scikit-learn baseline classifier.

    Parameters
    ----------
    name : str
        A name of :data:`BASELINES`: built in ``"svm"``, ``"knn"``, ``"rf"``, ``"lda"``,
        ``"majority"``, ``"stratified"``.
    random_state : int or None
        Seed of the randomised ones (SVM probability calibration, forest, stratified dummy).
    **params
        Passed to the scikit-learn estimator (``SVC``, ``KNeighborsClassifier``,
        ``RandomForestClassifier``, ``LinearDiscriminantAnalysis``); defaults: RBF SVM with
        Platt-calibrated probabilities (3-fold), 5 neighbours, 100 trees, SVD solver.

    Returns
    -------
    sklearn estimator
        With ``fit``, ``predict`` and ``predict_proba``.

    Raises
    ------
    ValueError
        ``name`` is not registered.
    """
    return BASELINES.get(name, "baseline")(random_state, **params)


def _svm(random_state, **params):
    # Platt-calibrated probabilities (SVC(probability=True) is deprecated in sklearn 1.9).
    svc = SVC(**{"random_state": random_state, **params})
    return make_pipeline(StandardScaler(),
                         CalibratedClassifierCV(svc, ensemble=False, cv=_CALIBRATION_FOLDS))


def _logreg(random_state, **params):
    # The default 100 lbfgs iterations stop short on a few hundred correlated features.
    params = {"max_iter": _LOGREG_MAX_ITER, "random_state": random_state, **params}
    return make_pipeline(StandardScaler(), LogisticRegression(**params))


def _knn(random_state, **params):
    return make_pipeline(StandardScaler(), KNeighborsClassifier(**params))


def _rf(random_state, **params):
    return RandomForestClassifier(**{"random_state": random_state, **params})


def _lda(random_state, **params):
    return LinearDiscriminantAnalysis(**params)


def _majority(random_state, **params):
    return DummyClassifier(strategy="most_frequent", **params)


def _stratified(random_state, **params):
    return DummyClassifier(strategy="stratified", random_state=random_state, **params)


register_baseline("svm", _svm, description="RBF SVM on standardised features, calibrated")
register_baseline("knn", _knn, description="5-nearest neighbours on standardised features")
register_baseline("rf", _rf, description="random forest, 100 trees")
register_baseline("lda", _lda, description="linear discriminant analysis")
register_baseline("logreg", _logreg, display="Logistic regression",
                  description="L2 logistic regression on standardised features")
register_baseline("majority", _majority, display="Majority baseline",
                  description="always the most frequent training class")
register_baseline("stratified", _stratified, display="Stratified baseline",
                  description="labels drawn at the training class frequencies")
