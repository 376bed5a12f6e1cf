"""Fixed-length windows defined in seconds, so that multi-rate modalities stay aligned.

A window is a time span ``[t_start, t_stop)`` in seconds from the trial's first sample. On a
signal sampled at ``sfreq`` Hz it covers the samples ``start = round(t_start * sfreq)`` to
``start + round(length * sfreq)`` (exclusive), rounding half to even like Python's ``round``.
Every modality of a trial is cut with the **same** ``t_start``/``t_stop``; only the sample
indices differ. With the reference windowing (2 s every 0.125 s) the boundaries are whole
samples at 32, 128 and 256 Hz, so no rounding happens at the rates of DEAP and ASCERTAIN.

Windowing presets (:data:`WINDOWINGS`):

``default``
    4 s windows every 2 s (50 % overlap). Four seconds hold 16 cycles of the slowest default
    band (theta, 4 Hz) and give 0.25 Hz resolution to a per-window spectrum; the 50 % step
    keeps consecutive windows from being near copies of each other (DEAP: 29 windows per 60 s
    trial, about 37,000 over the dataset).
``seed-legacy``
    2 s windows every 0.125 s, the reference's windowing (16-fold overlap, about 488 windows
    per DEAP trial). Neighbouring windows share 15/16 of their samples: evaluate it with
    trial- or subject-grouped splits only.

Sums over every window of a trial, whatever the overlap, at a cost that does not grow with it:
:func:`window_sums` in the time domain (block sums, then float64 moving sums). Band power from
each band's FFT bins (a Dirichlet kernel per window) lives in :mod:`fearkd.features._dirichlet`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = [
    "window_sums",
    "Windowing",
    "WINDOWINGS",
    "get_windowing",
    "make_windows",
    "window_samples",
]

# Slack for floating-point window counts: 60 s / 0.125 s must give 480, not 479.
_EPS = 1e-9


def _positive_seconds(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(
            f"Window {name!r} must be a number of seconds, got {type(value).__name__} {value!r}."
        )
    value = float(value)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(
            f"Window {name!r} must be a positive number of seconds, got {value!r}; "
            f"use e.g. {name}=2.0."
        )
    return value


@dataclass(frozen=True)
class Windowing:
    """Window length and step, in seconds.

    Parameters
    ----------
    length : float
        Window length in seconds (> 0).
    step : float
        Distance between consecutive window starts in seconds (> 0).
    name : str
        Name shown in reports (``"custom"`` unless it comes from :data:`WINDOWINGS`).
    """

    length: float
    step: float
    name: str = "custom"

    def __post_init__(self) -> None:
        length = _positive_seconds(self.length, "length")
        step = _positive_seconds(self.step, "step")
        object.__setattr__(self, "length", length)
        object.__setattr__(self, "step", step)

    def to_dict(self) -> dict:
        return {"name": self.name, "length": self.length, "step": self.step}


#: Windowing presets by name.
WINDOWINGS: dict[str, Windowing] = {
    "default": Windowing(4.0, 2.0, "default"),
    "seed-legacy": Windowing(2.0, 0.125, "seed-legacy"),
}


def get_windowing(
    window: Windowing | str | float | None = None, step: float | None = None
) -> Windowing:
    """Resolve a windowing from a preset name, a length in seconds, or a :class:`Windowing`.

    Parameters
    ----------
    window : Windowing, str, float or None
        A :class:`Windowing`; a name in :data:`WINDOWINGS`; a window length in seconds; or
        None for ``"default"``.
    step : float or None
        Step in seconds. Overrides the preset's step; with a bare length and no step, the step
        is half the length (50 % overlap, as in the ``default`` preset).

    Returns
    -------
    Windowing
    """
    if isinstance(window, Windowing):
        base = window
    elif window is None:
        base = WINDOWINGS["default"]
    elif isinstance(window, str):
        if window not in WINDOWINGS:
            raise ValueError(
                f"Unknown windowing {window!r}: expected one of {sorted(WINDOWINGS)!r} or a "
                f"window length in seconds."
            )
        base = WINDOWINGS[window]
    else:
        length = _positive_seconds(window, "length")
        return Windowing(length, length / 2.0 if step is None else step)
    if step is None:
        return base
    return Windowing(base.length, step)


def make_windows(
    duration: float,
    length: float,
    step: float,
    *,
    tmin: float = 0.0,
    n_times: dict[float, int] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Start and stop times of every window that fits in ``[tmin, duration]``.

    Parameters
    ----------
    duration : float
        Length of the trial in seconds.
    length, step : float
        Window length and step in seconds.
    tmin : float
        Time of the first window's start (DEAP: 3.0, the stimulus onset, to drop the baseline).
    n_times : dict of float to int, optional
        ``{sfreq: n_times}`` of every signal the windows will cut; windows whose rounded
        sample span would run past the end of any of them are dropped.

    Returns
    -------
    t_start, t_stop : ndarray, shape (n_windows,)
        Seconds from the trial's first sample.
    """
    length = _positive_seconds(length, "length")
    step = _positive_seconds(step, "step")
    span = float(duration) - float(tmin)
    if span + _EPS < length:
        raise ValueError(
            f"Window 'length' {length!r} s is longer than the trial: only {span:.6g} s from "
            f"t={tmin:g} s to the end ({duration:.6g} s). Use a shorter window."
        )
    n_windows = int(math.floor((span - length) / step + _EPS)) + 1
    # tmin + k * step, not a running sum, so that no rounding error accumulates.
    t_start = float(tmin) + step * np.arange(n_windows, dtype=np.float64)
    if n_times:
        keep = np.ones(n_windows, dtype=bool)
        for sfreq, n in n_times.items():
            start, n_samples = window_samples(t_start, length, sfreq)
            keep &= start + n_samples <= n
        t_start = t_start[keep]
        if t_start.size == 0:
            raise ValueError(
                f"Window 'length' {length!r} s does not fit in the trial's samples "
                f"({dict(n_times)!r} samples at each rate). Use a shorter window."
            )
    return t_start, t_start + length


def window_samples(t_start: np.ndarray, length: float, sfreq: float) -> tuple[np.ndarray, int]:
    """Sample indices of windows on a signal sampled at ``sfreq``.

    Parameters
    ----------
    t_start : ndarray, shape (n_windows,)
        Window starts in seconds.
    length : float
        Window length in seconds.
    sfreq : float
        Sampling rate in Hz.

    Returns
    -------
    start : ndarray of int64, shape (n_windows,)
        ``round(t_start * sfreq)``.
    n_samples : int
        ``round(length * sfreq)``, the same for every window.
    """
    start = np.rint(np.asarray(t_start, dtype=np.float64) * sfreq).astype(np.int64)
    n_samples = int(round(float(length) * sfreq))
    if n_samples < 1:
        raise ValueError(
            f"Window 'length' {length!r} s holds no sample at {sfreq:g} Hz; use a window of at "
            f"least {1.0 / sfreq:g} s."
        )
    return start, n_samples


def window_sums(y: np.ndarray, starts: np.ndarray, n_samples: int, *, square: bool) -> np.ndarray:
    """Sums of ``y`` (or of ``y ** 2``) over windows, through a float64 cumulative sum.

    The windows' starts usually lie on a grid (every 16 samples for 0.125 s steps at 128 Hz):
    the samples are first summed in blocks of the grid's spacing (at most 32 samples, in the
    input's precision); the block sums are then combined in float64, by a moving sum built by
    doubling when the windows are evenly spaced, otherwise as differences of a float64
    cumulative sum. One pass over ``y`` gives every window at any overlap.

    Parameters
    ----------
    y : ndarray, shape (..., n_times)
        Samples (float32 or float64).
    starts : ndarray of int, shape (n_windows,)
        First sample of each window.
    n_samples : int
        Samples per window.
    square : bool
        Sum ``y ** 2`` instead of ``y``.

    Returns
    -------
    sums : ndarray of float64, shape (..., n_windows)
    """
    starts = np.asarray(starts, dtype=np.int64)
    n_samples = int(n_samples)
    s0 = int(starts.min())
    offsets = starts - s0
    span = int(offsets.max()) + n_samples
    if s0 < 0 or s0 + span > y.shape[-1]:
        raise ValueError(
            f"Windows run from sample {s0} to {s0 + span} but the signal has {y.shape[-1]} "
            f"samples."
        )
    grid = int(np.gcd.reduce(np.append(offsets, n_samples)))
    # Short blocks keep the in-block sums accurate in float32.
    block = max(d for d in range(1, min(grid, 32) + 1) if grid % d == 0)
    seg = y[..., s0 : s0 + span]
    blocks = seg.reshape(seg.shape[:-1] + (span // block, block))
    # einsum reduces the short last axis about 4x faster than ndarray.sum.
    if square:
        partial = np.einsum("...i,...i->...", blocks, blocks)
    else:
        partial = np.einsum("...i->...", blocks)
    first = offsets // block
    width = n_samples // block
    stride = int(first[1] - first[0]) if first.size > 1 else 1
    if stride > 0 and np.array_equal(first, np.arange(first.size) * stride):
        # Evenly spaced windows (the usual case): a moving sum of `width` blocks, by doubling.
        return _moving_sum(partial.astype(np.float64), width)[..., ::stride][..., :first.size]
    acc = np.zeros(partial.shape[:-1] + (partial.shape[-1] + 1,), dtype=np.float64)
    np.cumsum(partial, axis=-1, dtype=np.float64, out=acc[..., 1:])
    return acc[..., first + width] - acc[..., first]


def _moving_sum(a: np.ndarray, width: int) -> np.ndarray:
    """``out[..., i] = a[..., i:i + width].sum(-1)`` for every full window, in O(n log width).

    Sums of 1, 2, 4, ... consecutive values are built by doubling and combined along the binary
    digits of ``width``: every step is a vectorised add over the whole array (NumPy's cumsum is
    sequential and several times slower), and no large running total is ever differenced.
    """
    n_out = a.shape[-1] - width + 1
    result = None
    offset, span, power = 0, 1, a
    while True:
        if width & 1:
            term = power[..., offset:offset + n_out]
            result = term.copy() if result is None else np.add(result, term, out=result)
            offset += span
        width >>= 1
        if not width:
            return result
        power = power[..., :-span] + power[..., span:]
        span *= 2
