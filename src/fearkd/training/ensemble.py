"""Ensembles of registered models: soft voting and stacking; either can teach a student.

:func:`fit_ensemble` trains every member through the one training loop
(:func:`fearkd.training.fit`) and returns

``"soft"`` -> :class:`SoftVoting`
    The mean of the members' class probabilities.
``"stacking"`` -> :class:`Stacking`
    A multinomial logistic regression (the meta-model) over the members' class probabilities.
    Its training inputs are **inner-cross-validation out-of-fold** probabilities: the training
    rows are split into ``n_inner`` groups (``GroupKFold`` over ``groups``, e.g. trials, so no
    window of a trial is predicted by a member trained on its neighbours), each group is
    predicted by members trained on the other groups, and the meta-model never sees a
    prediction made on the rows its member trained on (``oof_train_rows_`` records which rows
    trained the member behind each prediction, for a test). The members are then refitted on
    every training row to predict new rows.

Both give :meth:`~SoftVoting.logits` (log-probabilities, which a softmax maps back to the
ensemble's probabilities), so an ensemble of teachers teaches a student through any KD loss:
``fit(student, X_s, y, targets=ensemble.logits(X_t), loss=make_kd_loss("soft", ...))``.

:func:`fit_ensemble_model` trains the registered ``ensemble`` model
(:class:`fearkd.models.ensemble.Ensemble`, one ``nn.Module``) the same way; the stage runner
calls it for a stage whose model is an ensemble (``[models] ensemble``), so the trained
ensemble is checkpointed, scored and used as a teacher like any model.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold

from fearkd.models.registry import MODELS, make_model
from fearkd.training.settings import FitSettings
from fearkd.training.trainer import fit, predict_logits

__all__ = ["ENSEMBLE_KINDS", "SoftVoting", "Stacking", "fit_ensemble", "fit_ensemble_model"]

ENSEMBLE_KINDS = ("soft", "stacking")


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _train(name, X, y, n_classes, settings, groups, seed):
    model = make_model(name, X.shape[1], n_classes, random_state=seed)
    res = fit(model, X, y, settings, groups=groups, random_state=seed)
    return model, res.scaler


class SoftVoting:
    """Mean of the members' probabilities.

    Parameters
    ----------
    members : list of (nn.Module, StandardScaler or None)
        Trained models with the scaler each was trained with.
    """

    def __init__(self, members) -> None:
        self.members = list(members)

    def member_proba(self, X) -> list[np.ndarray]:
        """Each member's probabilities, shape (n_samples, n_classes) each."""
        return [_softmax(predict_logits(m, X, scaler=s)) for m, s in self.members]

    def predict_proba(self, X) -> np.ndarray:
        """Ensemble probabilities, shape (n_samples, n_classes)."""
        return np.mean(self.member_proba(X), axis=0)

    def logits(self, X) -> np.ndarray:
        """``log(predict_proba)``: teacher logits for a KD loss."""
        return np.log(np.clip(self.predict_proba(X), 1e-12, None)).astype(np.float32)

    def predict(self, X) -> np.ndarray:
        """Class index of each row."""
        return self.predict_proba(X).argmax(1)


class Stacking(SoftVoting):
    """Logistic regression over the members' probabilities (trained on out-of-fold ones).

    Parameters
    ----------
    members : list of (nn.Module, StandardScaler or None)
        Members refitted on every training row.
    meta : LogisticRegression
        Fitted on the out-of-fold probabilities.
    n_classes : int

    Attributes
    ----------
    oof_proba_ : ndarray, shape (n_train, n_members * n_classes)
        The meta-model's training inputs.
    oof_train_rows_ : list of ndarray of int
        For each training row, the rows that trained the members whose predictions it got.
    """

    def __init__(self, members, meta: LogisticRegression, n_classes: int) -> None:
        super().__init__(members)
        self.meta = meta
        self.n_classes = n_classes
        self.oof_proba_: np.ndarray | None = None
        self.oof_train_rows_: list[np.ndarray] = []

    def predict_proba(self, X) -> np.ndarray:
        """Meta-model probabilities, shape (n_samples, n_classes)."""
        proba = np.zeros((len(X), self.n_classes))
        proba[:, self.meta.classes_] = self.meta.predict_proba(
            np.hstack(self.member_proba(X)))
        return proba


def fit_ensemble(names, X, y, n_classes: int, *, kind: str = "soft",
                 settings: FitSettings | None = None, groups=None, n_inner: int = 3,
                 random_state: int = 0) -> SoftVoting:
    """Train an ensemble of registered models.

    Parameters
    ----------
    names : sequence of str
        Registry names of the members (the same name twice is two seeds).
    X : ndarray, shape (n_samples, n_features)
    y : ndarray of int, shape (n_samples,)
    n_classes : int
    kind : {"soft", "stacking"}
    settings : FitSettings, optional
    groups : ndarray, shape (n_samples,), optional
        Groups (trials, subjects) kept together by the inner cross-validation of
        stacking and by each member's early-stopping split; ``None``: each row its own.
    n_inner : int
        Inner folds of stacking.
    random_state : int

    Returns
    -------
    SoftVoting or Stacking
    """
    names = list(names)
    if not names:
        raise ValueError("Invalid value for 'members' of an ensemble: expected at least one "
                         "model name, got []; list registry names, e.g. ['ann', 'attention'].")
    for name in names:
        MODELS.entry(name, "ensemble members")
    if kind not in ENSEMBLE_KINDS:
        raise ValueError(f"Invalid value for 'kind' of an ensemble: expected one of "
                         f"{', '.join(map(repr, ENSEMBLE_KINDS))}, got {kind!r}.")
    settings = settings or FitSettings()
    X = np.asarray(X, dtype=np.float32)
    y = np.asarray(y, dtype=np.int64)
    groups = np.arange(len(y)) if groups is None else np.asarray(groups)
    if kind == "stacking" and np.unique(groups).size < n_inner:
        raise ValueError(f"Invalid value for 'n_inner' of a stacking ensemble: expected at "
                         f"most the number of groups ({np.unique(groups).size}), got "
                         f"{n_inner}; lower n_inner or give finer groups.")
    members = [_train(name, X, y, n_classes, settings, groups, random_state + k)
               for k, name in enumerate(names)]
    if kind == "soft":
        return SoftVoting(members)
    oof = np.zeros((len(y), len(names) * n_classes))
    trained_on: list[np.ndarray] = [np.array([], dtype=np.int64)] * len(y)
    for fold, (inner_tr, inner_te) in enumerate(GroupKFold(n_inner).split(X, y, groups)):
        for k, name in enumerate(names):
            model, scaler = _train(name, X[inner_tr], y[inner_tr], n_classes, settings,
                                   groups[inner_tr], random_state + 1000 * (fold + 1) + k)
            oof[inner_te, k * n_classes:(k + 1) * n_classes] = _softmax(
                predict_logits(model, X[inner_te], scaler=scaler))
        for row in inner_te:
            trained_on[row] = inner_tr
    meta = LogisticRegression(max_iter=1000).fit(oof, y)
    ensemble = Stacking(members, meta, n_classes)
    ensemble.oof_proba_ = oof
    ensemble.oof_train_rows_ = trained_on
    return ensemble


def fit_ensemble_model(model, X, y, settings: FitSettings, *, groups=None, validation=None,
                       random_state: int = 0, epochs: int | None = None):
    """Train an :class:`~fearkd.models.ensemble.Ensemble` in place.

    Each member trains through :func:`fearkd.training.fit` on its own (its own seed, early
    stopping and scaler, kept as the member's input scale). For ``kind = "stack"`` the head
    becomes a multinomial logistic regression on inner-cross-validation out-of-fold
    probabilities (``GroupKFold`` over ``groups``; each row predicted by members trained
    without its group) and the out-of-fold rows' trainers are kept as ``model.oof_train_rows_``.

    Parameters
    ----------
    model : Ensemble
    X : ndarray, shape (n_samples, n_features)
    y : ndarray of int, shape (n_samples,)
    settings : FitSettings
    groups : ndarray, shape (n_samples,), optional
        Trials or subjects kept together by the inner splits.
    validation : tuple, optional
        ``(X_val, y_val)`` for the members' early stopping (else an inner split).
    random_state : int
    epochs : int, optional
        Overrides ``settings.epochs``.

    Returns
    -------
    SimpleNamespace
        ``scaler`` (None: the scales are inside the model), ``history`` (the first member's)
        and ``best_epoch`` (the first member's), as the stage runner reads from a fit.
    """
    X = np.asarray(X, dtype=np.float32)
    y = np.asarray(y, dtype=np.int64)
    groups = np.arange(len(y)) if groups is None else np.asarray(groups)
    extra = {} if epochs is None else {"epochs": int(epochs)}
    histories, best = [], []
    for k, member in enumerate(model.members):
        res = fit(member, X, y, settings, groups=groups, validation=validation,
                  random_state=random_state + k, **extra)
        if res.scaler is not None:
            model.set_scale(k, res.scaler.mean_, res.scaler.scale_)
        histories.append(res.history)
        best.append(res.best_epoch)
    model.set_vote_head()
    if model.kind == "stack":
        n_inner = min(model.n_inner, np.unique(groups).size)
        if n_inner < 2:
            raise ValueError(f"Invalid value for 'groups' of a stacking ensemble: expected at "
                             f"least 2 groups for its inner folds, got {np.unique(groups).size};"
                             f" use [models] ensemble = \"vote\" on so little data.")
        n_classes = model.n_outputs
        oof = np.zeros((len(y), len(model.members) * n_classes), dtype=np.float32)
        trained_on: list[np.ndarray] = [np.array([], dtype=np.int64)] * len(y)
        for fold, (inner_tr, inner_te) in enumerate(GroupKFold(n_inner).split(X, y, groups)):
            for k, member in enumerate(model.members):
                spec = member.spec
                fresh = make_model(spec.name, spec.n_features, spec.n_outputs,
                                   random_state=random_state + 1000 * (fold + 1) + k,
                                   **spec.params)
                res = fit(fresh, X[inner_tr], y[inner_tr], settings, groups=groups[inner_tr],
                          random_state=random_state + 1000 * (fold + 1) + k, **extra)
                oof[inner_te, k * n_classes:(k + 1) * n_classes] = _softmax(
                    predict_logits(fresh, X[inner_te], scaler=res.scaler))
            for row in inner_te:
                trained_on[row] = inner_tr
        meta = LogisticRegression(max_iter=1000).fit(oof, y)
        weight = np.zeros((n_classes, oof.shape[1]), dtype=np.float32)
        bias = np.full(n_classes, -30.0, dtype=np.float32)  # a class the rows never had
        coef, icpt = meta.coef_, meta.intercept_
        if len(meta.classes_) == 2:  # binary: one row of coefficients, for classes_[1]
            coef, icpt = np.vstack([np.zeros_like(coef), coef]), np.r_[0.0, icpt]
        weight[meta.classes_], bias[meta.classes_] = coef, icpt
        with torch.no_grad():
            model.head.weight.copy_(torch.as_tensor(weight))
            model.head.bias.copy_(torch.as_tensor(bias))
        model.oof_train_rows_ = trained_on
    history = histories[0] if histories else pd.DataFrame()
    return SimpleNamespace(scaler=None, history=history, best_epoch=best[0] if best else 0)
