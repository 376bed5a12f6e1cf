"""Temperature scaling: one positive number ``T`` that divides a trained model's logits.

A network trained to low training loss is often over-confident: its top-class probability
exceeds how often the top class is right. Temperature scaling (Guo et al., 2017, "On
calibration of modern neural networks") fits one ``T > 0`` on held-out windows by minimising the
negative log-likelihood of ``softmax(logits / T)``; ``T > 1`` softens the probabilities, ``T < 1``
sharpens them. Dividing every logit by the same positive number keeps their order, so the
predicted class, accuracy, macro-F1 and the confusion matrix do not change: only the
probabilities do (log loss, Brier score, expected calibration error).

With ``[training] calibrate = "temperature"`` each stage fits its ``T`` on its inner validation
split, never on test windows (:mod:`fearkd.stages`), and ``fearkd train`` writes the bundled
model's ``T`` into the bundle, where ``predict``, ``stream`` and the ONNX graph apply it.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax

__all__ = ["CALIBRATIONS", "fit_temperature", "scaled_nll", "LOG_T_BOUNDS"]

#: Values of ``[training] calibrate``.
CALIBRATIONS = ("none", "temperature")
#: Search interval of ``log T``: T in [0.01, 100] (beyond it the probabilities are one-hot or
#: uniform to float precision).
LOG_T_BOUNDS = (math.log(1e-2), math.log(1e2))


def _check(logits, y) -> tuple[np.ndarray, np.ndarray]:
    z = np.asarray(logits, dtype=np.float64)
    t = np.asarray(y)
    if z.ndim != 2 or z.shape[1] < 2:
        raise ValueError(f"'logits' must have shape (n_windows, n_classes >= 2), got {z.shape}.")
    if t.ndim != 1 or len(t) != len(z):
        raise ValueError(f"'y' must have shape ({len(z)},) like the rows of 'logits', got "
                         f"{t.shape}.")
    if len(z) == 0:
        raise ValueError("Temperature scaling needs at least one validation window, got 0; "
                         "raise [training] val_fraction or set calibrate = \"none\".")
    if not np.all(np.isfinite(z)):
        raise ValueError("'logits' hold NaN or infinite values; the model diverged.")
    t = t.astype(np.int64)
    if t.min() < 0 or t.max() >= z.shape[1]:
        raise ValueError(f"'y' holds classes outside 0..{z.shape[1] - 1}: "
                         f"{sorted(set(t.tolist()) - set(range(z.shape[1])))}.")
    return z, t


def scaled_nll(logits, y, temperature: float) -> float:
    """Mean negative log-likelihood of ``softmax(logits / temperature)`` (natural log).

    Parameters
    ----------
    logits : array-like, shape (n_windows, n_classes)
    y : array-like of int, shape (n_windows,)
        Class codes ``0 .. n_classes - 1``.
    temperature : float
        ``T > 0``.
    """
    if not (isinstance(temperature, (int, float, np.floating)) and temperature > 0
            and math.isfinite(temperature)):
        raise ValueError(f"'temperature' must be a positive number, got {temperature!r}.")
    z, t = _check(logits, y)
    return float(-log_softmax(z / float(temperature), axis=1)[np.arange(len(t)), t].mean())


def fit_temperature(logits, y) -> float:
    """The ``T > 0`` that minimises the validation NLL of ``softmax(logits / T)``.

    The NLL is convex in ``1 / T``, so a bounded scalar search on ``log T`` (SciPy's Brent
    method) finds the minimum of the interval :data:`LOG_T_BOUNDS`.

    Parameters
    ----------
    logits : array-like, shape (n_windows, n_classes)
        Validation logits of the trained model.
    y : array-like of int, shape (n_windows,)
        Their class codes.

    Returns
    -------
    float
        ``T``; near 1 for a model whose validation probabilities already fit.
    """
    z, t = _check(logits, y)
    rows = np.arange(len(t))

    def nll(log_t: float) -> float:
        return float(-log_softmax(z / math.exp(log_t), axis=1)[rows, t].mean())

    res = minimize_scalar(nll, bounds=LOG_T_BOUNDS, method="bounded",
                          options={"xatol": 1e-6})
    best = float(res.x)
    # the bounded search does not test T = 1 itself: never return a T worse than no scaling
    return math.exp(best) if nll(best) <= nll(0.0) else 1.0
