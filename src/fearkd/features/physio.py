"""Features of peripheral signals: per-channel statistics and physiological descriptors.

Statistics (every peripheral channel, as in the reference): ``mean`` (``np.mean``) and
``var`` (``np.var``, ddof=0) over each window.

Physiological descriptors (the ``peripheral`` preset), chosen by the **modality** of a
channel, never by its name:

``gsr`` (EDA / skin conductance)
    ``slope``: least-squares slope of the signal over the window, in units per second.
    ``scr_per_min``: skin-conductance responses per minute, counted as the peaks of
    :func:`scipy.signal.find_peaks` with ``prominence=scr_prominence`` (default 0.05, in the
    signal's units: microsiemens for conductance; 0.01-0.05 uS are the usual SCR amplitude
    thresholds, and 0.05 stays above the quantisation and motion noise of wrist sensors).
    Peaks are found on the whole trial, then counted in the window that holds their apex, so a
    response straddling a window edge keeps its true prominence. The signal is taken as a
    conductance (responses are upward); a resistance signal (DEAP's GSR in Ohm) would need
    its sign flipped.
``hr`` (heart rate)
    ``delta``: last minus first sample of the window (bpm); ``slope``: least-squares slope
    (bpm per second).
``temp`` (skin temperature)
    ``slope``: least-squares slope (degrees per second).
``acc`` (accelerometer axes)
    ``magnitude`` ``mean`` and ``var``: of the Euclidean norm over the modality's axes,
    ``sqrt(ax**2 + ay**2 + az**2)``, which does not depend on how the sensor is worn.
"""

from __future__ import annotations

import numpy as np
import scipy.signal

from .windows import window_sums

__all__ = [
    "STATS",
    "DESCRIPTORS",
    "DEFAULT_SCR_PROMINENCE",
    "peripheral_stats",
    "sliding_stats",
    "sliding_slope",
    "sliding_delta",
    "scr_rate",
    "sliding_descriptors",
    "descriptor_names",
]

#: Per-channel statistics of the reference, in feature order.
STATS = ("mean", "var")
#: Descriptors per modality, in feature order (see the module docstring).
DESCRIPTORS: dict[str, tuple[str, ...]] = {
    "gsr": ("slope", "scr_per_min"),
    "hr": ("delta", "slope"),
    "temp": ("slope",),
    "acc": ("mean", "var"),
}
DEFAULT_SCR_PROMINENCE = 0.05
_SECONDS_PER_MINUTE = 60.0


def peripheral_stats(x: np.ndarray) -> np.ndarray:
    """Mean and variance (ddof=0) over the last axis.

    Parameters
    ----------
    x : ndarray, shape (..., n_times)

    Returns
    -------
    ndarray, shape (..., 2)
        ``np.mean`` and ``np.var`` of each segment.
    """
    return np.stack([np.mean(x, axis=-1), np.var(x, axis=-1)], axis=-1)


def sliding_stats(x: np.ndarray, starts: np.ndarray, n_samples: int) -> np.ndarray:
    """Mean and variance of every window of a trial, from float64 cumulative sums.

    The channel's trial mean is subtracted before the sums (and added back), so that a large
    offset (DEAP's GSR is about 1e5-1e6 Ohm) does not cost the variance its precision.

    Parameters
    ----------
    x : ndarray, shape (n_chans, n_times)
    starts : ndarray of int, shape (n_windows,)
    n_samples : int

    Returns
    -------
    ndarray of float64, shape (n_windows, n_chans, 2)
        Mean and variance (ddof=0), equal to ``np.mean``/``np.var`` of each window to about
        1e-12 relative.
    """
    x = np.asarray(x, dtype=np.float64)
    centre = x.mean(axis=-1, keepdims=True)
    d = x - centre
    s1 = window_sums(d, starts, n_samples, square=False) / n_samples
    s2 = window_sums(d, starts, n_samples, square=True) / n_samples
    mean = centre + s1
    var = np.maximum(s2 - s1 * s1, 0.0)
    return np.stack([mean.T, var.T], axis=-1)


def _windows(x: np.ndarray, starts: np.ndarray, n_samples: int) -> np.ndarray:
    """(n_chans, n_times) -> (n_chans, n_windows, n_samples), a copy of each window."""
    return np.lib.stride_tricks.sliding_window_view(x, n_samples, axis=-1)[:, starts]


def sliding_slope(
    x: np.ndarray, sfreq: float, starts: np.ndarray, n_samples: int
) -> np.ndarray:
    """Least-squares slope per second over every window.

    Parameters
    ----------
    x : ndarray, shape (n_chans, n_times)
    sfreq : float
    starts : ndarray of int, shape (n_windows,)
    n_samples : int
        At least 2.

    Returns
    -------
    ndarray of float64, shape (n_windows, n_chans)
    """
    if n_samples < 2:
        raise ValueError(
            f"A slope needs windows of at least 2 samples; a window has {n_samples} sample(s) at "
            f"{sfreq:g} Hz. Use a longer window."
        )
    # Centred time axis: sum(t) = 0, so the slope is sum(t * x) / sum(t ** 2).
    t = (np.arange(n_samples, dtype=np.float64) - (n_samples - 1) / 2.0) / sfreq
    w = _windows(np.asarray(x, dtype=np.float64), starts, n_samples)
    return (w @ t).T / float(t @ t)


def sliding_delta(x: np.ndarray, starts: np.ndarray, n_samples: int) -> np.ndarray:
    """Last minus first sample of every window, shape (n_windows, n_chans)."""
    x = np.asarray(x, dtype=np.float64)
    return (x[:, starts + n_samples - 1] - x[:, starts]).T


def scr_rate(
    x: np.ndarray,
    sfreq: float,
    starts: np.ndarray,
    n_samples: int,
    *,
    prominence: float = DEFAULT_SCR_PROMINENCE,
) -> np.ndarray:
    """Skin-conductance responses per minute in every window.

    Parameters
    ----------
    x : ndarray, shape (n_chans, n_times)
        Skin conductance of one trial.
    sfreq : float
    starts : ndarray of int, shape (n_windows,)
    n_samples : int
    prominence : float
        Minimum peak prominence, in the signal's units (see the module docstring).

    Returns
    -------
    ndarray of float64, shape (n_windows, n_chans)
    """
    if not prominence > 0:
        raise ValueError(f"'scr_prominence' must be > 0, got {prominence!r}.")
    starts = np.asarray(starts, dtype=np.int64)
    minutes = n_samples / sfreq / _SECONDS_PER_MINUTE
    out = np.empty((starts.size, x.shape[0]), dtype=np.float64)
    for c in range(x.shape[0]):
        peaks, _ = scipy.signal.find_peaks(np.asarray(x[c], dtype=np.float64),
                                           prominence=prominence)
        counts = np.searchsorted(peaks, starts + n_samples) - np.searchsorted(peaks, starts)
        out[:, c] = counts / minutes
    return out


def descriptor_names(modality: str, ch_names: tuple[str, ...]) -> list[str]:
    """Feature names of the descriptors of one signal (empty for other modalities)."""
    if modality == "acc":
        return [f"acc:magnitude:{d}" for d in DESCRIPTORS["acc"]]
    return [f"{modality}:{ch}:{d}" for ch in ch_names for d in DESCRIPTORS.get(modality, ())]


def sliding_descriptors(
    x: np.ndarray,
    sfreq: float,
    modality: str,
    starts: np.ndarray,
    n_samples: int,
    *,
    scr_prominence: float = DEFAULT_SCR_PROMINENCE,
) -> np.ndarray:
    """Physiological descriptors of one signal over every window.

    Parameters
    ----------
    x : ndarray, shape (n_chans, n_times)
        Every channel of one modality.
    sfreq : float
    modality : str
        Selects the descriptors (:data:`DESCRIPTORS`); other modalities give none.
    starts : ndarray of int, shape (n_windows,)
    n_samples : int
    scr_prominence : float

    Returns
    -------
    ndarray of float64, shape (n_windows, n_descriptors)
        Channel-major, in the order of :func:`descriptor_names`.
    """
    n_windows = len(starts)
    if modality == "acc":
        magnitude = np.sqrt(np.sum(np.asarray(x, dtype=np.float64) ** 2, axis=0))[None]
        return sliding_stats(magnitude, starts, n_samples).reshape(n_windows, 2)
    if modality not in DESCRIPTORS:
        return np.empty((n_windows, 0))
    parts = []
    for name in DESCRIPTORS[modality]:
        if name == "slope":
            parts.append(sliding_slope(x, sfreq, starts, n_samples))
        elif name == "delta":
            parts.append(sliding_delta(x, starts, n_samples))
        else:
            parts.append(scr_rate(x, sfreq, starts, n_samples, prominence=scr_prominence))
    # (n_windows, n_chans, n_descriptors) -> channel-major columns.
    return np.stack(parts, axis=-1).reshape(n_windows, -1)
