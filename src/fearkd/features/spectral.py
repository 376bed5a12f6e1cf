"""Band power of EEG channels: a pure function per use, and a thin scikit-learn transformer.

Methods (``method=``):

``filter`` (default, what the reference describes)
    Zero-phase band-pass filtering, then the mean of squares of the filtered signal over each
    window. With ``filter_design="fft"`` (default) the filter is an **ideal (brick-wall)
    zero-phase FFT filter**: one real FFT of the segment, every bin outside ``[lo, hi)`` set
    to zero (a band whose top edge equals the Nyquist frequency keeps the Nyquist bin), inverse
    FFT. It has unit gain inside the band, zero gain outside, no phase shift, and bands that
    touch partition the spectrum (no bin is counted twice). ``filter_design="butter"`` uses a
    4th-order Butterworth band-pass run forward and backward (``scipy.signal.sosfiltfilt``).
``welch``
    ``scipy.signal.welch`` per window (Hann segments of ``nperseg`` samples, default 2 s or the
    window if shorter, 50 % overlap, each segment's mean removed), the density summed over the
    bins in ``[lo, hi)`` times the bin width.
``periodogram``
    Each window on its own: the mean of squares of the window after an ideal (brick-wall)
    band-pass, computed by Parseval from the window's real DFT (bins in ``[lo, hi)``, doubled
    except DC and Nyquist, over ``n ** 2``), with no detrending or taper. Unlike ``filter`` it
    needs no samples outside the window, so a single-window ONNX graph (:mod:`fearkd.deploy`)
    computes the same value: the deployable recipes use it.
``de``
    Differential entropy of the band-filtered signal, assumed Gaussian:
    ``0.5 * log(2 * pi * e * var)`` with ``var`` the variance (ddof=0) over the window.

:func:`band_power` treats each segment it gets on its own (the filter sees only that segment).
:func:`sliding_band_power`, which feature extraction uses, filters **whole trials**: band power
over a sliding window is the moving average of the squared band-filtered signal, so the cost
does not grow with the overlap. The FFT filter is circular over the trial (its two ends meet)
and, like any ideal filter, has an impulse response that decays only like ``1/t``. Measured on
white noise at 128 Hz (2 s windows of a 63 s trial, against the same filter applied to the
trial embedded in a 3x longer recording; relative RMS difference of window power):
theta/alpha/low beta 9-10 % for the windows touching either end of the trial, 4.5-5 % one second
in, 3-3.5 % three seconds in, 1.6-1.8 % in the middle; high beta about 45 % and gamma about 20 %
of those figures. The mid-trial figure is the ``1/t`` tail, not the wrap, and all of them are
far below the sampling spread of a 2 s theta window's power itself (about 35 %). DEAP windows
start after the 3 s baseline, so only the last second of each trial sees the largest effect.

How ``filter`` with the FFT design is computed over a trial (``method="filter"``,
:func:`~fearkd.features._dirichlet.band_window_sums`): the value is exactly the mean over each
window of ``x_b ** 2``, ``x_b`` the brick-wall-filtered trial, but ``x_b`` is never formed.
With ``a`` the band's analytic signal (its bins only, doubled except at DC and Nyquist),
``x_b = Re(a)`` and ``x_b ** 2 = |a| ** 2 / 2 + Re(a ** 2) / 2``. Shifted to baseband, ``a`` at
``2W - 1`` points (``W`` the band's bins: 4 Hz of a 63 s trial is 252 bins, against the
trial's 8,064 samples) holds both terms without aliasing, so one inverse and two forward FFTs
of that size give the exact Fourier coefficients of ``x_b ** 2``. A window's sum is those
coefficients times the window's Dirichlet kernel; folded onto the grid of window starts (every
16 samples for 0.125 s steps), one inverse FFT per band gives every window at once. Per trial:
one real FFT of the trial, three FFTs of about twice each band's width in bins, one inverse FFT
of ``n_times / step`` points per band. For DEAP's five bands the per-band transforms have
5,166 complex points per channel together, where filtering needs five inverse real FFTs of
8,064 points each and a pass over five filtered copies of the trial. ``method="de"`` and the
Butterworth design filter the trial (:func:`filter_bank`) and sum the windows with float64
cumulative sums (:func:`~fearkd.features.windows.window_sums`).

The FFT paths compute in single precision: relative error about 1e-6 (at most 1.9e-6 against a
float64 filter-then-square computation, measured on every window and band of 40 DEAP-sized
trials of AR(1) noise, a 1/f-like spectrum). Outputs are float64, stored as float32 in a
FeatureSet.

Post-processing: ``relative=True`` divides each band's power by the sum over the given bands;
``log=True`` takes the natural logarithm of ``max(power, LOG_FLOOR)`` (after ``relative``;
``LOG_FLOOR = 1e-12``, in the signal's unit squared, so a flat channel gives a finite
value). Neither applies to ``de``, which
is already a logarithm.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import scipy.fft
import scipy.signal
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from ._dirichlet import band_window_sums
from .windows import window_sums

__all__ = [
    "DEFAULT_BANDS",
    "BAND_POWER_METHODS",
    "FILTER_DESIGNS",
    "check_bands",
    "band_power",
    "sliding_band_power",
    "filter_bank",
    "BandPower",
]

#: Default bands, name -> (low edge, high edge) in Hz (the reference's five bands).
DEFAULT_BANDS: dict[str, tuple[float, float]] = {
    "theta": (4.0, 8.0),
    "alpha": (8.0, 12.0),
    "low_beta": (12.0, 16.0),
    "high_beta": (16.0, 25.0),
    "gamma": (25.0, 45.0),
}
BAND_POWER_METHODS = ("filter", "welch", "de", "periodogram")
FILTER_DESIGNS = ("fft", "butter")
BUTTER_ORDER = 4
_TOL = 1e-9
#: Floor under band power before ``log=True`` (a flat channel's zero power stays finite).
LOG_FLOOR = 1e-12
# NumPy >= 2 transforms float32 natively and writes into a given output array.
_NUMPY_FFT_OUT = int(np.__version__.split(".")[0]) >= 2
Bands = tuple[tuple[str, float, float], ...]


def check_bands(
    bands: Mapping[str, Sequence[float]] | Sequence[Sequence] | None = None,
    sfreq: float | None = None,
    *,
    where: str = "the signal",
) -> Bands:
    """Validate bands and, given ``sfreq``, refuse any band above the Nyquist frequency.

    Parameters
    ----------
    bands : mapping of str to (float, float), sequence of (str, float, float), or None
        Named bands with edges in Hz; None for :data:`DEFAULT_BANDS`.
    sfreq : float, optional
        Sampling rate of the channels the bands will be computed on.
    where : str
        What the channels are, for the error message (``"EEG channels ['Fp1', ...]"``).

    Returns
    -------
    tuple of (name, low, high)
    """
    if bands is None:
        bands = DEFAULT_BANDS
    items = list(bands.items()) if isinstance(bands, Mapping) else list(bands)
    if not items:
        raise ValueError("Parameter 'bands' is empty; give at least one (name, low, high) band.")
    out = []
    for item in items:
        if isinstance(bands, Mapping):
            name, edges = item
        else:
            if isinstance(item, str) or len(item) != 3:
                raise TypeError(
                    f"Each band must be (name, low_hz, high_hz); got {item!r}. Or pass a dict "
                    f"{{'alpha': (8, 12)}}."
                )
            name, edges = item[0], item[1:]
        if not isinstance(name, str) or not name:
            raise TypeError(f"Band names must be non-empty strings, got {name!r}.")
        try:
            lo, hi = (float(e) for e in edges)
        except (TypeError, ValueError):
            raise TypeError(
                f"Band {name!r} must have two numeric edges in Hz, got {edges!r}."
            ) from None
        if not (math.isfinite(lo) and math.isfinite(hi)) or lo < 0 or hi <= lo:
            raise ValueError(
                f"Band {name!r} has edges ({lo:g}, {hi:g}) Hz; expected 0 <= low < high."
            )
        if sfreq is not None:
            nyquist = float(sfreq) / 2.0
            if hi > nyquist + _TOL:
                raise ValueError(
                    f"Band {name!r} ({lo:g}-{hi:g} Hz) lies above the Nyquist frequency of "
                    f"{where}: sampled at {float(sfreq):g} Hz, Nyquist {nyquist:g} Hz. Bands "
                    f"must end at or below {nyquist:g} Hz; drop {name!r} from 'bands' or pass "
                    f"bands with edges up to {nyquist:g} Hz."
                )
        out.append((name, lo, hi))
    names = [b[0] for b in out]
    if len(set(names)) != len(names):
        raise ValueError(f"Duplicate band names in {names!r}.")
    return tuple(out)


def _check_method(method: str, filter_design: str, log: bool, relative: bool) -> None:
    if method not in BAND_POWER_METHODS:
        raise ValueError(
            f"Invalid value for 'method': expected one of "
            f"{', '.join(map(repr, BAND_POWER_METHODS))}, got {method!r}."
        )
    if filter_design not in FILTER_DESIGNS:
        raise ValueError(
            f"Invalid value for 'filter_design': expected one of "
            f"{', '.join(map(repr, FILTER_DESIGNS))}, got {filter_design!r}."
        )
    if method == "de" and (log or relative):
        raise ValueError(
            "Differential entropy (method='de') is already a logarithm: use log=False and "
            "relative=False with it."
        )


def _band_bins(lo: float, hi: float, n: int, sfreq: float) -> slice:
    """rfft bins k with lo <= k * sfreq / n < hi (the Nyquist bin joins a band ending there)."""
    k0 = math.ceil(lo * n / sfreq - _TOL)
    if hi >= sfreq / 2.0 - _TOL:
        k1 = n // 2 + 1
    else:
        k1 = math.ceil(hi * n / sfreq - _TOL)
    return slice(k0, min(k1, n // 2 + 1))


def _bins_or_raise(bands: Bands, n: int, sfreq: float, what: str) -> list[slice]:
    slices = [_band_bins(lo, hi, n, sfreq) for _, lo, hi in bands]
    for (name, lo, hi), sl in zip(bands, slices, strict=True):
        if sl.stop <= sl.start:
            raise ValueError(
                f"Band {name!r} ({lo:g}-{hi:g} Hz) holds no frequency bin of a {what} of {n} "
                f"samples at {sfreq:g} Hz (bin width {sfreq / n:g} Hz); use longer windows or a "
                f"wider band."
            )
    return slices


def _finish(raw: np.ndarray, method: str, log: bool, relative: bool) -> np.ndarray:
    """Power (or variance for 'de') per band, last axis -> the feature values."""
    if method == "de":
        with np.errstate(divide="ignore", invalid="ignore"):
            return 0.5 * np.log(2.0 * np.pi * np.e * raw)
    out = raw
    with np.errstate(divide="ignore", invalid="ignore"):
        if relative:
            out = out / out.sum(axis=-1, keepdims=True)
        if log:
            out = np.log(np.maximum(out, LOG_FLOOR))
    return out


def _butter_sos(lo: float, hi: float, sfreq: float) -> np.ndarray | None:
    nyquist = sfreq / 2.0
    if lo <= 0 and hi >= nyquist - _TOL:
        return None
    if lo <= 0:
        return scipy.signal.butter(BUTTER_ORDER, hi, btype="lowpass", fs=sfreq, output="sos")
    if hi >= nyquist - _TOL:
        return scipy.signal.butter(BUTTER_ORDER, lo, btype="highpass", fs=sfreq, output="sos")
    return scipy.signal.butter(BUTTER_ORDER, [lo, hi], btype="bandpass", fs=sfreq, output="sos")


def filter_bank(
    x: np.ndarray,
    sfreq: float,
    bands: Bands,
    *,
    filter_design: str = "fft",
    workspace: dict | None = None,
) -> np.ndarray:
    """Zero-phase band-pass filter ``x`` once per band.

    Parameters
    ----------
    x : ndarray, shape (..., n_times)
    sfreq : float
    bands : tuple of (name, low, high)
        As returned by :func:`check_bands`.
    filter_design : {"fft", "butter"}
        Brick-wall FFT filter (float32 output) or Butterworth order 4 forward-backward
        (float64 output).
    workspace : dict, optional
        Keeps the FFT filter's buffers between calls with the same shapes and bands (pass the
        same dict for every trial of a subject): the masked spectrum is zeroed once (only the
        bins inside the bands are ever written), and the output is written into a kept array.
        With a workspace, the returned array **is** that buffer: the next call overwrites it.

    Returns
    -------
    y : ndarray, shape (n_bands, ..., n_times)
    """
    n = x.shape[-1]
    if filter_design == "butter":
        out = np.empty((len(bands),) + x.shape, dtype=np.float64)
        for i, (_, lo, hi) in enumerate(bands):
            sos = _butter_sos(lo, hi, sfreq)
            out[i] = x if sos is None else scipy.signal.sosfiltfilt(sos, x, axis=-1)
        return out
    slices = _bins_or_raise(bands, n, sfreq, "segment")
    spec = scipy.fft.rfft(np.asarray(x, dtype=np.float32), axis=-1)
    shape = (len(bands),) + spec.shape
    key = ("fft-bank", shape, n, tuple((sl.start, sl.stop) for sl in slices))
    buffers = None if workspace is None else workspace.get(key)
    if buffers is None:
        buffers = (np.zeros(shape, dtype=spec.dtype), np.empty(shape[:-1] + (n,), spec.real.dtype))
        if workspace is not None:
            workspace.clear()  # one set of buffers at a time: shapes change between datasets
            workspace[key] = buffers
    masked, out = buffers
    for i, sl in enumerate(slices):
        masked[i, ..., sl] = spec[..., sl]
    if workspace is not None and _NUMPY_FFT_OUT:
        # Writing into a kept buffer spares allocating (and page-faulting) n_bands x the
        # trial's size on every call: a third of the inverse FFT's cost at DEAP sizes.
        return np.fft.irfft(masked, n=n, axis=-1, out=out)
    return scipy.fft.irfft(masked, n=n, axis=-1)


def band_power(
    x: np.ndarray,
    sfreq: float,
    bands: Mapping[str, Sequence[float]] | Sequence[Sequence] | None = None,
    *,
    method: str = "filter",
    filter_design: str = "fft",
    log: bool = False,
    relative: bool = False,
    nperseg: int | None = None,
) -> np.ndarray:
    """Band power (or differential entropy) of each segment, each filtered on its own.

    Parameters
    ----------
    x : ndarray, shape (..., n_times)
        Segments, e.g. (n_windows, n_chans, n_times).
    sfreq : float
        Sampling rate in Hz.
    bands : mapping or sequence, optional
        Named bands (see :func:`check_bands`); default :data:`DEFAULT_BANDS`.
    method : {"filter", "welch", "de", "periodogram"}
    filter_design : {"fft", "butter"}
        Filter of the ``filter`` and ``de`` methods (``periodogram`` is always the FFT one).
    log, relative : bool
        Natural log of the power; power relative to the sum over the bands.
    nperseg : int, optional
        Welch segment length in samples (default 2 s, at most the segment).

    Returns
    -------
    ndarray of float64, shape (..., n_bands)
        Power in the signal's units squared (``de``: nats).
    """
    x, sfreq = _check_signal(x, sfreq)
    _check_method(method, filter_design, log, relative)
    bands = check_bands(bands, sfreq)
    if method == "welch":
        raw = _welch_power(x, sfreq, bands, nperseg)
    elif method == "periodogram" or (method == "filter" and filter_design == "fft"):
        raw = _parseval_power(x, sfreq, bands)
    else:
        y = filter_bank(np.asarray(x, dtype=np.float64), sfreq, bands,
                        filter_design=filter_design).astype(np.float64)
        stat = np.var if method == "de" else _mean_square
        raw = np.moveaxis(stat(y, axis=-1), 0, -1)
    return _finish(raw, method, log, relative)


def _parseval_power(x: np.ndarray, sfreq: float, bands: Bands) -> np.ndarray:
    """Mean of squares of each brick-wall-filtered segment, by Parseval: no inverse FFT."""
    n = x.shape[-1]
    spec = np.fft.rfft(np.asarray(x, dtype=np.float64), axis=-1)
    power = spec.real**2 + spec.imag**2
    weight = np.full(power.shape[-1], 2.0)
    weight[0] = 1.0
    if n % 2 == 0:
        weight[-1] = 1.0
    power *= weight / float(n) ** 2
    slices = _bins_or_raise(bands, n, sfreq, "segment")
    return np.stack([power[..., sl].sum(axis=-1) for sl in slices], axis=-1)


def _mean_square(y: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(y * y, axis=axis)


def _welch_power(x: np.ndarray, sfreq: float, bands: Bands, nperseg: int | None) -> np.ndarray:
    n = x.shape[-1]
    nps = min(n, int(round(2.0 * sfreq)) if nperseg is None else int(nperseg))
    if nps < 2:
        raise ValueError(f"Parameter 'nperseg' must be >= 2 samples, got {nperseg!r}.")
    freqs, psd = scipy.signal.welch(x, fs=sfreq, nperseg=nps, axis=-1)
    df = freqs[1] - freqs[0]
    slices = _bins_or_raise(bands, nps, sfreq, "Welch segment")
    return np.stack([psd[..., sl].sum(axis=-1) * df for sl in slices], axis=-1)


def _check_signal(
    x: np.ndarray, sfreq: float, check_finite: bool = True
) -> tuple[np.ndarray, float]:
    if not isinstance(x, np.ndarray):
        raise TypeError(f"'x' must be a NumPy array, got {type(x).__name__}.")
    if not np.issubdtype(x.dtype, np.floating):
        raise TypeError(f"'x' must be floating point, got dtype {x.dtype}.")
    if x.ndim < 1 or x.shape[-1] < 2:
        raise ValueError(f"'x' must have at least 2 samples on its last axis, got {x.shape}.")
    if isinstance(sfreq, bool) or not isinstance(sfreq, (int, float, np.integer, np.floating)):
        raise TypeError(f"'sfreq' must be a number of Hz, got {type(sfreq).__name__}.")
    sfreq = float(sfreq)
    if not math.isfinite(sfreq) or sfreq <= 0:
        raise ValueError(f"'sfreq' must be a positive number of Hz, got {sfreq!r}.")
    if check_finite and not np.isfinite(x).all():
        raise ValueError(
            f"'x' holds {int(np.count_nonzero(~np.isfinite(x)))} non-finite value(s) (NaN or "
            f"inf); clean or interpolate them before computing band power."
        )
    return x, sfreq


def sliding_band_power(
    x: np.ndarray,
    sfreq: float,
    starts: np.ndarray,
    n_samples: int,
    bands: Mapping[str, Sequence[float]] | Sequence[Sequence] | None = None,
    *,
    method: str = "filter",
    filter_design: str = "fft",
    log: bool = False,
    relative: bool = False,
    nperseg: int | None = None,
    baseline_samples: int = 0,
    baseline_mode: str = "subtract",
    workspace: dict | None = None,
    check_finite: bool = True,
) -> np.ndarray:
    """Band power of every window of one trial, the filter applied to the whole trial.

    Parameters
    ----------
    x : ndarray, shape (n_chans, n_times)
        One trial's channels.
    sfreq : float
        Sampling rate in Hz.
    starts : ndarray of int, shape (n_windows,)
        First sample of each window.
    n_samples : int
        Samples per window.
    bands, method, filter_design, log, relative, nperseg
        As in :func:`band_power`; ``filter`` and ``de`` filter the whole trial before windowing,
        ``welch`` and ``periodogram`` work on each window.
    baseline_samples : int
        If > 0, the features of the segment ``[0, baseline_samples)`` are computed the same way
        and removed from every window's (``baseline_mode``).
    baseline_mode : {"subtract", "divide"}
        ``window - baseline`` or ``window / baseline``, applied to the final values (after
        ``log``/``relative``/``de``: with ``log=True`` subtracting gives a log ratio).
    workspace : dict, optional
        Kernels and buffers reused between calls with the same shapes (pass one dict for all
        trials of a subject; see :func:`~fearkd.features._dirichlet.band_window_sums`).
    check_finite : bool
        Refuse NaN/inf samples up front. A caller that checks its outputs instead (a NaN or inf
        sample makes every band of its channel non-finite) may skip this pass over the data.

    Returns
    -------
    ndarray of float64, shape (n_windows, n_chans, n_bands)
    """
    x, sfreq = _check_signal(x, sfreq, check_finite)
    if x.ndim != 2:
        raise ValueError(f"'x' must have shape (n_chans, n_times), got {x.shape}.")
    _check_method(method, filter_design, log, relative)
    if baseline_mode not in ("subtract", "divide"):
        raise ValueError(
            f"Invalid value for 'baseline_mode': expected 'subtract' or 'divide', got "
            f"{baseline_mode!r}."
        )
    bands = check_bands(bands, sfreq)
    starts = np.asarray(starts, dtype=np.int64)
    n_samples = int(n_samples)
    if starts.ndim != 1 or starts.size == 0:
        raise ValueError(f"'starts' must be a non-empty 1-D array, got shape {starts.shape}.")
    if starts.min() < 0 or starts.max() + n_samples > x.shape[-1]:
        raise ValueError(
            f"Windows of {n_samples} samples starting at {int(starts.min())}..."
            f"{int(starts.max())} run past the trial's {x.shape[-1]} samples."
        )
    base = None
    if method == "periodogram":
        win = np.lib.stride_tricks.sliding_window_view(x, n_samples, axis=-1)[:, starts]
        raw = np.moveaxis(_parseval_power(win, sfreq, bands), 0, 1)
        if baseline_samples:
            base = _parseval_power(x[:, :baseline_samples], sfreq, bands)
    elif method == "welch":
        win = np.lib.stride_tricks.sliding_window_view(x, n_samples, axis=-1)[:, starts]
        raw = np.moveaxis(_welch_power(win, sfreq, bands, nperseg), 0, 1)
        if baseline_samples:
            base = _welch_power(x[:, :baseline_samples], sfreq, bands, nperseg)
    elif method == "filter" and filter_design == "fft":
        windows = [(starts, n_samples)]
        if baseline_samples:
            windows.append((np.zeros(1, dtype=np.int64), int(baseline_samples)))
        bins = [(sl.start, sl.stop) for sl in _bins_or_raise(bands, x.shape[-1], sfreq, "trial")]
        # (n_bands, n_chans, n_windows) sums -> (n_windows, n_chans, n_bands) means, C-ordered
        # so that callers reshape them to windows x features without another copy.
        sums = band_window_sums(x, bins, windows, workspace=workspace)
        raw = np.ascontiguousarray(sums[0].T)
        raw *= 1.0 / n_samples
        if baseline_samples:
            base = sums[1][..., 0].T / baseline_samples
    else:
        if filter_design == "fft":
            _bins_or_raise(bands, x.shape[-1], sfreq, "trial")
        y = filter_bank(x, sfreq, bands, filter_design=filter_design, workspace=workspace)
        raw = _moments(y, starts, n_samples, method)
        if baseline_samples:
            base = _moments(y, np.zeros(1, dtype=np.int64), baseline_samples, method)[0]
    out = _finish(raw, method, log, relative)
    if base is not None:
        base = _finish(base, method, log, relative)
        with np.errstate(divide="ignore", invalid="ignore"):
            out = out - base if baseline_mode == "subtract" else out / base
    return out


def _moments(y: np.ndarray, starts: np.ndarray, n: int, method: str) -> np.ndarray:
    """(n_bands, n_chans, n_times) filtered signals -> (n_windows, n_chans, n_bands) power/var."""
    mean_sq = window_sums(y, starts, n, square=True) / n
    if method == "de":
        mean = window_sums(y, starts, n, square=False) / n
        mean_sq = np.maximum(mean_sq - mean * mean, 0.0)
    return np.transpose(mean_sq, (2, 1, 0))


class BandPower(TransformerMixin, BaseEstimator):
    """Band power of windows, as a scikit-learn transformer (wraps :func:`band_power`).

    Parameters
    ----------
    sfreq : float
        Sampling rate in Hz.
    bands : mapping or sequence, optional
        Named bands; default :data:`DEFAULT_BANDS`.
    method, filter_design, log, relative, nperseg
        See :func:`band_power`.
    ch_names : sequence of str, optional
        Channel names for :meth:`get_feature_names_out`.

    Notes
    -----
    ``transform`` takes ``X`` of shape (n_windows, n_chans, n_times) and returns
    (n_windows, n_chans * n_bands), channel-major (all bands of the first channel first).
    """

    def __init__(self, sfreq=128.0, bands=None, method="filter", filter_design="fft",
                 log=False, relative=False, nperseg=None, ch_names=None):
        self.sfreq = sfreq
        self.bands = bands
        self.method = method
        self.filter_design = filter_design
        self.log = log
        self.relative = relative
        self.nperseg = nperseg
        self.ch_names = ch_names

    def _check_X(self, X) -> np.ndarray:
        if not isinstance(X, np.ndarray) or X.ndim != 3:
            shape = getattr(X, "shape", None)
            raise ValueError(
                f"BandPower expects X of shape (n_windows, n_chans, n_times), got "
                f"{type(X).__name__} with shape {shape}."
            )
        return X

    def fit(self, X, y=None):
        X = self._check_X(X)
        _check_method(self.method, self.filter_design, self.log, self.relative)
        self.bands_ = check_bands(self.bands, self.sfreq)
        self.n_chans_in_ = X.shape[1]
        if self.ch_names is not None and len(self.ch_names) != X.shape[1]:
            raise ValueError(
                f"'ch_names' has {len(self.ch_names)} name(s) but X has {X.shape[1]} channels."
            )
        return self

    def transform(self, X):
        check_is_fitted(self, "bands_")
        X = self._check_X(X)
        if X.shape[1] != self.n_chans_in_:
            raise ValueError(
                f"X has {X.shape[1]} channels but BandPower was fitted on {self.n_chans_in_}."
            )
        out = band_power(X, self.sfreq, self.bands_, method=self.method,
                         filter_design=self.filter_design, log=self.log,
                         relative=self.relative, nperseg=self.nperseg)
        return out.reshape(X.shape[0], -1)

    def get_feature_names_out(self, input_features=None):
        names = input_features if input_features is not None else self.ch_names
        if names is None:
            names = [f"ch{i}" for i in range(self.n_chans_in_)]
        return np.asarray([f"{c}:{b[0]}" for c in names for b in self.bands_], dtype=object)
