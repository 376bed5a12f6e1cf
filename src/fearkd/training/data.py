"""Data preparation of the training loop: checked arrays, the inner validation split, tensors.

:func:`fearkd.training.fit` calls :func:`prepare_data` once: it validates ``X``, ``y`` and the
per-row ``targets``, takes the validation rows (an explicit set, or an inner split of the
training rows grouped by trial and stratified when the class counts allow; never test rows),
fits or reuses the scaler on the rows that train, and returns device tensors.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from sklearn.model_selection import (
    GroupShuffleSplit,
    ShuffleSplit,
    StratifiedGroupKFold,
    StratifiedShuffleSplit,
)
from sklearn.preprocessing import StandardScaler

from fearkd.errors import LabelError

__all__ = ["FitData", "inner_split", "prepare_data", "validate_inputs"]


def validate_inputs(X, y, n_outputs: int | None = None, *, name: str = "X"):
    """Check a feature matrix and its labels; return them as float32 and int64 arrays.

    Parameters
    ----------
    X : array-like, shape (n_samples, n_features)
    y : array-like of int, shape (n_samples,)
    n_outputs : int or None
        When given, labels must lie in ``0 .. n_outputs - 1``.
    name : str
        Name of ``X`` in error messages.

    Returns
    -------
    X : ndarray of float32, shape (n_samples, n_features)
    y : ndarray of int64, shape (n_samples,)
    """
    X = np.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"'{name}' must be 2-D (n_samples, n_features), got shape {X.shape}.")
    if not np.issubdtype(X.dtype, np.number):
        raise TypeError(f"'{name}' must be numeric, got dtype {X.dtype}.")
    X = X.astype(np.float32, copy=False)
    bad = ~np.isfinite(X)
    if bad.any():
        rows = np.unique(np.nonzero(bad)[0])
        raise ValueError(f"'{name}' contains NaN or Inf in {rows.size} row(s) (first: "
                         f"{rows[:5].tolist()}); drop or impute them before training.")
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"'y' must be 1-D, got shape {y.shape}.")
    if len(y) != len(X):
        raise ValueError(f"'{name}' has {len(X)} rows but 'y' has {len(y)}; they must match.")
    if y.size and not np.issubdtype(y.dtype, np.integer):
        if np.issubdtype(y.dtype, np.floating) and np.all(np.mod(y, 1) == 0):
            y = y.astype(np.int64)
        else:
            raise TypeError(f"'y' must hold integer class indices, got dtype {y.dtype}.")
    y = y.astype(np.int64, copy=False)
    if n_outputs is not None and y.size:
        outside = np.unique(y[(y < 0) | (y >= n_outputs)])
        if outside.size:
            raise LabelError(f"'y' holds labels {outside[:10].tolist()} outside 0..{n_outputs - 1}"
                             f" (the model has {n_outputs} outputs); map classes to "
                             f"0..{n_outputs - 1} or build the model with more outputs.")
    return X, y


def inner_split(y: np.ndarray, groups=None, val_fraction: float = 0.2,
                random_state: int | None = 0) -> tuple[np.ndarray, np.ndarray]:
    """Inner train/validation split of training rows (for early stopping and model selection).

    Grouped when ``groups`` is given (no group on both sides), stratified by ``y`` when every
    class has enough members (``StratifiedGroupKFold`` / ``StratifiedShuffleSplit``), else a
    plain ``GroupShuffleSplit`` / ``ShuffleSplit``.

    Parameters
    ----------
    y : ndarray of int, shape (n_samples,)
    groups : array-like, shape (n_samples,), optional
    val_fraction : float in (0, 1)
    random_state : int or None

    Returns
    -------
    train_index, val_index : ndarray of int
    """
    n = len(y)
    dummy = np.zeros((n, 1))
    counts = np.bincount(y - y.min()) if n else np.array([])
    counts = counts[counts > 0]
    if groups is not None:
        groups = np.asarray(groups)
        if len(groups) != n:
            raise ValueError(f"'groups' has {len(groups)} entries but there are {n} rows.")
        n_groups = np.unique(groups).size
        if n_groups < 2:
            raise ValueError(f"Cannot take a grouped validation split from {n_groups} group: "
                             f"pass 'validation=(X_val, y_val)' or 'val_fraction=0'.")
        n_splits = max(2, int(round(1 / val_fraction)))
        if n_groups >= n_splits and counts.min() >= n_splits:
            splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True,
                                            random_state=random_state)
            train, val = next(splitter.split(dummy, y, groups))
        else:
            splitter = GroupShuffleSplit(n_splits=1, test_size=val_fraction,
                                         random_state=random_state)
            train, val = next(splitter.split(dummy, y, groups))
    else:
        n_val = int(np.ceil(val_fraction * n))
        if counts.size >= 2 and counts.min() >= 2 and n_val >= counts.size \
                and n - n_val >= counts.size:
            splitter = StratifiedShuffleSplit(n_splits=1, test_size=val_fraction,
                                              random_state=random_state)
        else:
            splitter = ShuffleSplit(n_splits=1, test_size=val_fraction,
                                    random_state=random_state)
        train, val = next(splitter.split(dummy, y))
    return np.sort(train), np.sort(val)


def _aligned(name: str, arr, n: int) -> np.ndarray | None:
    if arr is None:
        return None
    arr = np.asarray(arr, dtype=np.float32)
    if len(arr) != n:
        raise ValueError(f"'{name}' has {len(arr)} rows but X has {n}; they must be aligned "
                         f"row by row.")
    return arr


@dataclass
class FitData:
    """Tensors of one :func:`fit` call, scaled and on the device."""

    X: torch.Tensor
    y: torch.Tensor
    targets: torch.Tensor | None
    X_val: torch.Tensor | None
    y_val: torch.Tensor | None
    targets_val: torch.Tensor | None
    y_train: np.ndarray
    scaler: StandardScaler | None
    train_index: np.ndarray
    val_index: np.ndarray


def prepare_data(X, y, n_outputs: int, *, targets, groups, validation, scaler,
                  val_fraction: float, random_state: int, device: torch.device) -> FitData:
    """Validate ``X``/``y``/``targets``, take the validation rows, fit or reuse the scaler.

    Parameters are those of :func:`fearkd.training.fit` of the same names; ``n_outputs`` is the
    model's number of outputs and ``device`` where the tensors go.

    Returns
    -------
    FitData
    """
    X, y = validate_inputs(X, y, n_outputs)
    targets = _aligned("targets", targets, len(X))
    empty = np.array([], dtype=np.int64)
    if validation is not None:
        if not isinstance(validation, tuple | list) or len(validation) not in (2, 3):
            raise TypeError("'validation' must be None or a tuple (X_val, y_val[, targets_val]).")
        X_val, y_val = validate_inputs(validation[0], validation[1], n_outputs, name="X_val")
        if X_val.shape[1] != X.shape[1]:
            raise ValueError(f"'X_val' has {X_val.shape[1]} features but 'X' has {X.shape[1]}.")
        t_val = _aligned("targets_val", validation[2], len(X_val)) if len(validation) == 3 \
            else None
        train_idx, val_idx = np.arange(len(X)), empty
    elif val_fraction > 0:
        train_idx, val_idx = inner_split(y, groups, val_fraction, random_state)
        X_val, y_val = X[val_idx], y[val_idx]
        t_val = None if targets is None else targets[val_idx]
    else:
        train_idx, val_idx = np.arange(len(X)), empty
        X_val = y_val = t_val = None
    X_tr, y_tr = X[train_idx], y[train_idx]
    t_tr = None if targets is None else targets[train_idx]
    present = np.unique(y_tr)
    if present.size < 2:
        raise LabelError(f"The training data holds a single class ({present.tolist()}); a "
                         f"classifier needs at least two. Check the labels and the split.")
    if isinstance(scaler, str):
        if scaler != "standard":
            raise ValueError(f"Invalid value for 'scaler': expected 'standard', None or a fitted "
                             f"StandardScaler, got {scaler!r}.")
        scaler = StandardScaler().fit(X_tr)
    elif scaler is not None and not hasattr(scaler, "mean_"):
        raise TypeError(f"'scaler' must be 'standard', None or a fitted StandardScaler, got "
                        f"{scaler!r}.")

    def tensor(a, dtype=torch.float32, scale=False):
        if a is None:
            return None
        if scale and scaler is not None:
            a = scaler.transform(a).astype(np.float32)
        return torch.as_tensor(a, dtype=dtype, device=device)

    has_val = X_val is not None and len(X_val) > 0
    return FitData(
        X=tensor(X_tr, scale=True), y=tensor(y_tr, torch.int64), targets=tensor(t_tr),
        X_val=tensor(X_val, scale=True) if has_val else None,
        y_val=tensor(y_val, torch.int64) if has_val else None,
        targets_val=tensor(t_val) if has_val else None,
        y_train=y_tr, scaler=scaler, train_index=train_idx, val_index=val_idx)
