"""Classic baselines through scikit-learn: SVM, k-NN, random forest, LDA and chance levels.

Each is a scikit-learn classifier built by :func:`make_baseline`; ``svm`` and ``knn`` are
wrapped in a pipeline with a ``StandardScaler`` (fitted on the training rows only, inside
``fit``), because both depend on feature scales. The chance baselines are
``sklearn.dummy.DummyClassifier``: ``majority`` always predicts the most frequent training class,
``stratified`` draws labels at the training class frequencies.

They are also reachable through :class:`fearkd.training.FearkdClassifier` by name.
"""

from __future__ import annotations

from typing import Any

from sklearn.calibration import CalibratedClassifierCV
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.dummy import DummyClassifier
from sklearn.ensemble import RandomForestClassifier
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

__all__ = ["BASELINES", "make_baseline"]

_CALIBRATION_FOLDS = 3
BASELINES = ("svm", "knn", "rf", "lda", "majority", "stratified")


def make_baseline(name: str, *, random_state: int | None = None, **params: Any):
    """Build an unfitted scikit-learn baseline classifier.

    Parameters
    ----------
    name : {"svm", "knn", "rf", "lda", "majority", "stratified"}
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
    """
    if name == "svm":
        # Platt-calibrated probabilities (SVC(probability=True) is deprecated in sklearn 1.9).
        svc = SVC(**{"random_state": random_state, **params})
        return make_pipeline(StandardScaler(),
                             CalibratedClassifierCV(svc, ensemble=False, cv=_CALIBRATION_FOLDS))
    if name == "knn":
        return make_pipeline(StandardScaler(), KNeighborsClassifier(**params))
    if name == "rf":
        return RandomForestClassifier(**{"random_state": random_state, **params})
    if name == "lda":
        return LinearDiscriminantAnalysis(**params)
    if name == "majority":
        return DummyClassifier(strategy="most_frequent", **params)
    if name == "stratified":
        return DummyClassifier(strategy="stratified", random_state=random_state, **params)
    raise ValueError(f"Unknown baseline {name!r}: expected one of {', '.join(BASELINES)}.")
