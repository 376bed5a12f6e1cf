"""scikit-learn estimator over the registry's networks and the classic baselines."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted

from fearkd.errors import LabelError
from fearkd.models.baselines import BASELINES, make_baseline
from fearkd.models.registry import available_models, make_model
from fearkd.training.settings import FitSettings
from fearkd.training.trainer import fit, predict_logits, validate_inputs

__all__ = ["FearkdClassifier"]


class FearkdClassifier(ClassifierMixin, BaseEstimator):
    """Classifier over a registered network (trained by :func:`fearkd.training.fit`) or a
    scikit-learn baseline, chosen by name.

    Parameters
    ----------
    model : str
        A name of :func:`fearkd.models.available_models` (``cnn``, ``lstm``, ``gru``, ``ann``,
        ``dnn150``, ``dnn300``, ``cnn-lstm``...) or of
        :data:`fearkd.models.BASELINES` (``svm``, ``knn``, ``rf``, ``lda``, ``majority``,
        ``stratified``).
    epochs, batch_size, lr, weight_decay, class_weight, patience, val_fraction :
        Training settings (networks only), gathered into one
        :class:`~fearkd.training.FitSettings` by ``fit`` (see :meth:`fit_settings`);
        ``class_weight=None`` means no weighting.
    model_params : dict or None
        Architecture parameters for ``make_model`` or estimator parameters for the baseline.
    n_classes : int or None
        Number of classes; labels must then be ``0 .. n_classes - 1`` and ``classes_`` is
        ``arange(n_classes)`` even when a training fold lacks a class. ``None``: the classes
        seen in ``fit``.
    random_state : int
    device : str or None
    progress : bool
    num_threads : int or None

    Attributes
    ----------
    classes_ : ndarray, shape (n_classes,)
    model_ : nn.Module or sklearn estimator
    scaler_ : StandardScaler or None
        ``None`` for baselines (their pipelines scale internally where needed).
    history_ : pandas.DataFrame
        Per-epoch history (empty for baselines).
    n_features_in_ : int
    """

    def __init__(self, model: str = "cnn", *, epochs: int = 100, batch_size: int = 32,
                 lr: float = 1e-3, weight_decay: float = 0.0, class_weight=None,
                 patience: int | None = 10, val_fraction: float = 0.2,
                 model_params: dict[str, Any] | None = None, n_classes: int | None = None,
                 random_state: int = 0, device: str | None = None, progress: bool = False,
                 num_threads: int | None = None) -> None:
        self.model = model
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.class_weight = class_weight
        self.patience = patience
        self.val_fraction = val_fraction
        self.model_params = model_params
        self.n_classes = n_classes
        self.random_state = random_state
        self.device = device
        self.progress = progress
        self.num_threads = num_threads

    def _is_baseline(self) -> bool:
        if self.model in BASELINES:
            return True
        if self.model in available_models():
            return False
        raise ValueError(f"Unknown model {self.model!r}: expected one of "
                         f"{', '.join(available_models() + BASELINES.names())}.")

    def fit(self, X, y, groups=None, validation=None):
        """Fit on ``X`` (n_samples, n_features) and labels ``y`` (n_samples,).

        ``groups`` (e.g. trial keys) groups the inner validation split; ``validation`` is an
        explicit ``(X_val, y_val)`` (networks only).
        """
        baseline = self._is_baseline()
        y = np.asarray(y)
        if self.n_classes is not None:
            X, y_idx = validate_inputs(X, y, self.n_classes)
            classes = np.arange(self.n_classes)
        else:
            if y.ndim != 1:
                raise ValueError(f"'y' must be 1-D, got shape {y.shape}.")
            classes, y_idx = np.unique(y, return_inverse=True)
            X, y_idx = validate_inputs(X, y_idx)
        if np.unique(y_idx).size < 2:
            raise LabelError(f"The training data holds a single class "
                             f"({np.unique(y).tolist()}); a classifier needs at least two.")
        self.classes_ = classes
        self.n_features_in_ = X.shape[1]
        params = dict(self.model_params or {})
        if baseline:
            self.model_ = make_baseline(self.model, random_state=self.random_state, **params)
            self.model_.fit(X, y_idx)
            self.scaler_ = None
            self.history_ = pd.DataFrame(columns=["epoch", "train_loss", "train_accuracy",
                                                  "val_loss", "val_accuracy", "seconds"])
            return self
        net = make_model(self.model, X.shape[1], len(classes), random_state=self.random_state,
                         **params)
        if validation is not None:
            X_val, y_val = validation[0], np.asarray(validation[1])
            if self.n_classes is None:
                pos = np.searchsorted(classes, y_val)
                if np.any(pos >= len(classes)) or np.any(classes[np.minimum(pos, len(classes)
                                                                            - 1)] != y_val):
                    raise LabelError(f"'validation' labels {np.setdiff1d(y_val, classes)} "
                                     f"are not among the training classes {classes.tolist()}.")
                y_val = pos
            validation = (X_val, y_val)
        result = fit(net, X, y_idx, self.fit_settings(), groups=groups, validation=validation,
                     random_state=self.random_state)
        self.model_ = result.model
        self.scaler_ = result.scaler
        self.history_ = result.history
        return self

    def fit_settings(self) -> FitSettings:
        """The constructor's training parameters as one :class:`FitSettings` (validated)."""
        return FitSettings(epochs=self.epochs, batch_size=self.batch_size, lr=self.lr,
                           weight_decay=self.weight_decay, class_weight=self.class_weight,
                           patience=self.patience, val_fraction=self.val_fraction,
                           device=self.device, num_threads=self.num_threads,
                           progress=self.progress)

    def _check_X(self, X) -> np.ndarray:
        check_is_fitted(self, "model_")
        X = np.asarray(X, dtype=np.float32)
        if X.ndim != 2 or X.shape[1] != self.n_features_in_:
            raise ValueError(f"'X' must have shape (n_samples, {self.n_features_in_}), got "
                             f"{X.shape}.")
        if not np.isfinite(X).all():
            raise ValueError("'X' contains NaN or Inf; drop or impute them before predicting.")
        return X

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities, shape (n_samples, n_classes), columns in ``classes_`` order."""
        X = self._check_X(X)
        if isinstance(self.model_, torch.nn.Module):
            logits = predict_logits(self.model_, X, scaler=self.scaler_, device=self.device)
            return torch.softmax(torch.as_tensor(logits, dtype=torch.float64), 1).numpy()
        proba = np.zeros((len(X), len(self.classes_)))
        # A baseline only knows the classes it saw; place its columns among classes_.
        proba[:, self.model_.classes_] = self.model_.predict_proba(X)
        return proba

    def predict(self, X) -> np.ndarray:
        """Predicted labels, shape (n_samples,)."""
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]

    def save_bundle(self, path, *, feature_names=None, class_names=None):
        """Write the fitted network as a bundle whose input is features (``input_kind =
        "features"``; see ``docs/BUNDLE.md``).

        Parameters
        ----------
        path : str or Path
        feature_names : sequence of str, optional
            Names of the ``n_features_in_`` columns (default ``x0, x1, ...``).
        class_names : sequence of str, optional
            Default the ``classes_`` as strings.

        Returns
        -------
        Path
        """
        from fearkd.deploy.bundle import build_bundle

        check_is_fitted(self, "model_")
        if not isinstance(self.model_, torch.nn.Module):
            raise TypeError(f"Only networks can be bundled; {self.model!r} is a scikit-learn "
                            f"baseline.")
        names = [f"x{i}" for i in range(self.n_features_in_)] if feature_names is None \
            else [str(n) for n in feature_names]
        if len(names) != self.n_features_in_:
            raise ValueError(f"'feature_names' has {len(names)} names for "
                             f"{self.n_features_in_} features.")
        scaler = self.scaler_
        bundle = build_bundle(
            self.model_, feature_names=names,
            class_names=[str(c) for c in (self.classes_ if class_names is None
                                          else class_names)],
            mean=None if scaler is None else scaler.mean_,
            scale=None if scaler is None else scaler.scale_,
            extra={"estimator": {"model": self.model, "classes": self.classes_.tolist()}})
        return bundle.save(path)

    @classmethod
    def load_bundle(cls, path) -> FearkdClassifier:
        """A fitted classifier from a bundle (its scaler and network; features in)."""
        from sklearn.preprocessing import StandardScaler

        from fearkd.deploy.bundle import load_bundle

        b = load_bundle(path)
        m = b.manifest
        est = cls(m["model"]["name"], model_params=dict(m["model"]["params"]))
        est.classes_ = np.asarray(m.get("estimator", {}).get("classes",
                                                             list(range(len(b.class_names)))))
        est.n_features_in_ = len(b.feature_names)
        est.model_ = b.model
        scaler = StandardScaler()
        scaler.mean_, scaler.scale_ = b.mean.copy(), b.scale.copy()
        scaler.var_ = b.scale ** 2
        scaler.n_features_in_ = est.n_features_in_
        scaler.n_samples_seen_ = 0
        est.scaler_ = scaler
        est.history_ = pd.DataFrame()
        return est
