"""Physiology features from NeuroKit2, chosen by modality and computed once per trial.

Each supported modality of a trial is processed **once** over the whole trial (cleaning, phasic
decomposition, peak detection); every window then only aggregates what falls inside it (sums
over a cumulative array, events found with ``searchsorted``), so overlapping windows never
re-run NeuroKit2. Feature names are ``"<modality>:<channel>:<feature>"``, one block per
channel, in the order of :data:`NK_FEATURES`.

``gsr`` (EDA, skin conductance)
    Resampled to 32 Hz (:data:`EDA_RATE`) first, up from an Empatica E4's 4 Hz (linear
    interpolation: a polyphase filter's ringing makes false SCRs) or down from a RespiBAN's
    700 Hz (polyphase, anti-aliased): NeuroKit2's EDA cleaning is a 3 Hz low-pass, which
    cannot be designed at
    4 Hz (Nyquist 2 Hz). Then ``eda_clean`` (neurokit), ``eda_phasic`` (highpass 0.05 Hz) and
    ``eda_peaks`` (neurokit). ``tonic`` and ``tonic_slope``: mean and least-squares slope
    (per second) of the tonic component; ``scr_count``: SCR peaks in the window;
    ``scr_amplitude`` and ``scr_risetime``: their mean amplitude and rise time (s), **0 in a
    window without SCR** (no phasic activity).
``ppg`` (BVP) and ``ecg``
    Beats from ``ppg_clean`` + ``ppg_findpeaks`` (needs >= 20 Hz) or ``ecg_clean`` +
    ``ecg_peaks`` (needs >= 100 Hz); intervals outside 0.3-2.0 s (200-30 bpm) are dropped as
    artefacts. ``hr`` (bpm, 60 / mean interval), ``rmssd``, ``sdnn`` (ms), ``pnn50`` (%) from
    the intervals whose two beats lie in the window; ``lf_hf``: LF (0.04-0.15 Hz) over HF
    (0.15-0.4 Hz) power of the interval series interpolated at 4 Hz, **only when the window is
    at least 60 s** (two cycles of the lowest LF frequency need 50 s); shorter windows leave it
    out, named in one warning. A trial whose ``info["beats"]`` holds beat times (seconds from
    the trial start, e.g. an E4's ``IBI.csv``) adds the same block as channel ``IBI``.
``resp``
    Resampled to 50 Hz, ``rsp_clean`` + ``rsp_peaks``; ``rate`` (breaths per minute, from the
    breath intervals in the window) and ``amp_cv`` (coefficient of variation of the breath
    amplitudes, peak minus preceding trough). Needs windows of at least 10 s (two breaths at
    12 per minute); shorter windows leave them out, named in one warning.
``temp``
    ``slope``: least-squares slope in degrees per second.
``acc``
    ``mean`` and ``var`` of the magnitude over the axes (as in :mod:`~fearkd.features.physio`).
``hr`` (a sampled heart-rate channel in bpm, e.g. PhysioNet's or an E4's 1 Hz ``HR``)
    ``mean``, ``std`` (ddof=0) and ``slope`` (least squares, bpm per second) of the samples in
    the window. ``std`` and ``slope`` need at least 2 samples per window; shorter windows leave
    them out, named in one warning.
``spo2`` (oxygen saturation in %)
    ``mean`` and ``min`` of the samples in the window (a desaturation shows in the minimum).

NaN policy. A window too short for a feature (fewer than 2 beat intervals for ``hr``, fewer
than 3 for ``rmssd``/``sdnn``/``pnn50``, fewer than 2 breaths for ``resp``) gives NaN from
:func:`physio_windows`; :func:`trial_physio` then fills each NaN with the median of the trial's
finite windows of that feature (0 if none), and logs one warning per trial counting them, since
a :class:`~fearkd.features.featureset.FeatureSet` holds only finite values.
"""

from __future__ import annotations

import logging
from fractions import Fraction

import numpy as np
import scipy.signal

from ..recordings import Trial
from .physio import sliding_descriptors, sliding_slope, sliding_stats
from .windows import window_samples

__all__ = [
    "NK_FEATURES",
    "NK_MODALITIES",
    "EDA_RATE",
    "LF_HF_MIN_WINDOW",
    "RESP_MIN_WINDOW",
    "supported_features",
    "physio_names",
    "beat_features",
    "physio_windows",
    "trial_physio",
]

logger = logging.getLogger(__name__)

_HRV = ("hr", "rmssd", "sdnn", "pnn50", "lf_hf")
#: Features per modality, in column order (see the module docstring).
NK_FEATURES: dict[str, tuple[str, ...]] = {
    "gsr": ("tonic", "tonic_slope", "scr_count", "scr_amplitude", "scr_risetime"),
    "ppg": _HRV,
    "ecg": _HRV,
    "resp": ("rate", "amp_cv"),
    "temp": ("slope",),
    "acc": ("mean", "var"),
    "hr": ("mean", "std", "slope"),
    "spo2": ("mean", "min"),
}
NK_MODALITIES = tuple(NK_FEATURES)
#: EDA is processed at this rate whatever its recorded rate.
EDA_RATE = 32.0
RESP_RATE = 50.0
#: Shortest window (s) for LF/HF: two cycles of 0.04 Hz need 50 s.
LF_HF_MIN_WINDOW = 60.0
#: Shortest window (s) for respiration features: two breaths at 12 per minute.
RESP_MIN_WINDOW = 10.0
_MIN_RATE = {"ppg": 20.0, "ecg": 100.0, "resp": 5.0, "gsr": 1.0}
_IBI_RANGE = (0.3, 2.0)
_HRV_RATE = 4.0
_warned: set = set()


def _warn_once(key, message: str, *args) -> None:
    if key not in _warned:
        _warned.add(key)
        logger.warning(message, *args)


def supported_features(modality: str, sfreq: float, window: float | None) -> tuple[str, ...]:
    """Features of ``modality`` that a signal at ``sfreq`` and windows of ``window`` s support.

    Left-out features are named in one warning (per modality, rate and window length).
    """
    feats = NK_FEATURES.get(modality, ())
    if not feats:
        return ()
    if sfreq < _MIN_RATE.get(modality, 0.0):
        _warn_once((modality, sfreq), "Physiology features of modality %r need >= %g Hz; the "
                   "signal has %g Hz: none computed (%s).", modality, _MIN_RATE[modality],
                   sfreq, ", ".join(feats))
        return ()
    if window is None:
        return feats
    left = []
    if "lf_hf" in feats and window < LF_HF_MIN_WINDOW:
        left = ["lf_hf"]
    if modality == "resp" and window < RESP_MIN_WINDOW:
        left = list(feats)
    if modality == "hr" and round(window * sfreq) < 2:
        left = ["std", "slope"]
    if left:
        _warn_once((modality, window), "Physiology feature(s) %s of modality %r not computed: "
                   "windows of %g s are too short (LF/HF needs >= %g s, respiration >= %g s, "
                   "heart-rate std and slope 2 samples); set [features] window longer to get "
                   "them.", left, modality, window, LF_HF_MIN_WINDOW, RESP_MIN_WINDOW)
    return tuple(f for f in feats if f not in left)


def _has_beats(trial: Trial) -> bool:
    return trial.info.get("beats") is not None


def physio_names(trial: Trial, modalities: tuple[str, ...], window: float | None) -> list[str]:
    """Feature names of :func:`trial_physio` for ``trial`` (modalities it lacks give none)."""
    names = []
    for m in modalities:
        sig = trial.signals.get(m)
        if sig is None:
            continue
        feats = supported_features(m, sig.sfreq, window)
        if m == "acc":
            names += [f"acc:magnitude:{f}" for f in feats]
        else:
            names += [f"{m}:{ch}:{f}" for ch in sig.ch_names for f in feats]
        if m == "ppg" and _has_beats(trial):
            names += [f"ppg:IBI:{f}" for f in supported_features("ppg", np.inf, window)]
    return names


def _resample(x: np.ndarray, sfreq: float, target: float) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if sfreq == target:
        return x
    if sfreq < target:  # up: linear interpolation (a polyphase filter rings into false SCRs)
        n = int(round(x.size / sfreq * target))  # the same duration (last value held)
        return np.interp(np.arange(n) / target, np.arange(x.size) / sfreq, x)
    ratio = Fraction(target / sfreq).limit_denominator(1000)
    return scipy.signal.resample_poly(np.asarray(x, dtype=np.float64), ratio.numerator,
                                      ratio.denominator)


def _window_mean(x: np.ndarray, starts: np.ndarray, n: int) -> np.ndarray:
    c = np.concatenate([[0.0], np.cumsum(x)])
    stops = np.minimum(starts + n, x.size)
    return (c[stops] - c[starts]) / np.maximum(stops - starts, 1)


def _event_means(times, values, t0, t1) -> tuple[np.ndarray, np.ndarray]:
    """Count and mean (0 where none) of event values with t0 <= time < t1."""
    lo, hi = np.searchsorted(times, t0), np.searchsorted(times, t1)
    c = np.concatenate([[0.0], np.cumsum(values)])
    count = hi - lo
    return count.astype(np.float64), np.where(count > 0, (c[hi] - c[lo]) / np.maximum(count, 1),
                                               0.0)


def _eda(x, sfreq, t0, length, feats):
    import neurokit2 as nk

    y = _resample(x, sfreq, EDA_RATE)
    clean = nk.eda_clean(y, sampling_rate=int(EDA_RATE), method="neurokit")
    comp = nk.eda_phasic(clean, sampling_rate=int(EDA_RATE), method="highpass")
    tonic = comp["EDA_Tonic"].to_numpy()
    try:
        _, info = nk.eda_peaks(comp["EDA_Phasic"].to_numpy(), sampling_rate=int(EDA_RATE),
                               method="neurokit", amplitude_min=0.1)
        peaks = np.asarray(info["SCR_Peaks"], dtype=np.float64) / EDA_RATE
        amp = np.nan_to_num(np.asarray(info["SCR_Amplitude"], dtype=np.float64))
        rise = np.nan_to_num(np.asarray(info["SCR_RiseTime"], dtype=np.float64))
    except (ValueError, IndexError):  # NeuroKit2 raises on a trial without any response
        peaks = amp = rise = np.empty(0)
    starts, n = window_samples(t0, length, EDA_RATE)
    starts = np.minimum(starts, max(tonic.size - n, 0))
    count, mean_amp = _event_means(peaks, amp, t0, t0 + length)
    _, mean_rise = _event_means(peaks, rise, t0, t0 + length)
    cols = {"tonic": _window_mean(tonic, starts, n),
            "tonic_slope": sliding_slope(tonic[None], EDA_RATE, starts, n)[:, 0],
            "scr_count": count, "scr_amplitude": mean_amp, "scr_risetime": mean_rise}
    return np.stack([cols[f] for f in feats], axis=1)


def _beats(x, sfreq, modality) -> np.ndarray:
    import neurokit2 as nk

    if modality == "ppg":
        peaks = nk.ppg_findpeaks(nk.ppg_clean(x, sampling_rate=sfreq),
                                 sampling_rate=sfreq)["PPG_Peaks"]
    else:
        _, info = nk.ecg_peaks(nk.ecg_clean(x, sampling_rate=int(round(sfreq))),
                               sampling_rate=int(round(sfreq)))
        peaks = info["ECG_R_Peaks"]
    return np.asarray(peaks, dtype=np.float64) / sfreq


def beat_features(beats: np.ndarray, t0: np.ndarray, length: float,
                  feats: tuple[str, ...] = _HRV) -> np.ndarray:
    """Heart rate and HRV of every window from beat times.

    Parameters
    ----------
    beats : ndarray, shape (n_beats,)
        Beat times in seconds from the trial start, increasing.
    t0 : ndarray, shape (n_windows,)
        Window starts (s).
    length : float
        Window length (s).
    feats : tuple of str
        A subset of ``("hr", "rmssd", "sdnn", "pnn50", "lf_hf")``.

    Returns
    -------
    ndarray of float64, shape (n_windows, len(feats))
        NaN where the window holds too few valid intervals (see the module docstring).
    """
    beats = np.sort(np.asarray(beats, dtype=np.float64))
    ibi = np.diff(beats)
    valid = (ibi >= _IBI_RANGE[0]) & (ibi <= _IBI_RANGE[1])
    out = np.full((len(t0), len(feats)), np.nan)
    lo = np.searchsorted(beats, t0)
    hi = np.searchsorted(beats, np.asarray(t0) + length)
    grid = series = None
    if "lf_hf" in feats and valid.sum() >= 4:
        grid = np.arange(beats[0], beats[-1], 1.0 / _HRV_RATE)
        series = np.interp(grid, beats[1:][valid], ibi[valid])
    for w in range(len(t0)):
        seg_ok = valid[lo[w]:max(hi[w] - 1, lo[w])]
        seg = ibi[lo[w]:max(hi[w] - 1, lo[w])]
        good = seg[seg_ok]
        # successive differences only between two adjacent valid intervals
        succ = np.diff(seg)[seg_ok[1:] & seg_ok[:-1]] if seg.size > 1 else np.empty(0)
        for j, f in enumerate(feats):
            if f == "hr" and good.size >= 2:
                out[w, j] = 60.0 / good.mean()
            elif f == "rmssd" and good.size >= 3 and succ.size:
                out[w, j] = 1000.0 * np.sqrt(np.mean(succ ** 2))
            elif f == "sdnn" and good.size >= 3:
                out[w, j] = 1000.0 * np.std(good, ddof=1)
            elif f == "pnn50" and good.size >= 3 and succ.size:
                out[w, j] = 100.0 * np.mean(np.abs(succ) > 0.05)
            elif f == "lf_hf" and series is not None:
                m = (grid >= t0[w]) & (grid < t0[w] + length)
                if m.sum() >= 16:
                    freq, p = scipy.signal.welch(series[m] - series[m].mean(), fs=_HRV_RATE,
                                                 nperseg=min(int(m.sum()), 256))
                    lf = p[(freq >= 0.04) & (freq < 0.15)].sum()
                    hf = p[(freq >= 0.15) & (freq < 0.4)].sum()
                    out[w, j] = lf / hf if hf > 0 else np.nan
    return out


def _resp(x, sfreq, t0, length, feats):
    import neurokit2 as nk

    y = _resample(x, sfreq, RESP_RATE)
    clean = np.asarray(nk.rsp_clean(y, sampling_rate=int(RESP_RATE)), dtype=np.float64)
    _, info = nk.rsp_peaks(clean, sampling_rate=int(RESP_RATE))
    peaks = np.asarray(info["RSP_Peaks"], dtype=np.int64)
    troughs = np.asarray(info["RSP_Troughs"], dtype=np.int64)
    times = peaks / RESP_RATE
    prev = np.searchsorted(troughs, peaks) - 1
    amp = np.where(prev >= 0, clean[peaks] - clean[troughs[np.maximum(prev, 0)]], np.nan)
    out = np.full((len(t0), len(feats)), np.nan)
    lo, hi = np.searchsorted(times, t0), np.searchsorted(times, np.asarray(t0) + length)
    for w in range(len(t0)):
        t, a = times[lo[w]:hi[w]], amp[lo[w]:hi[w]]
        a = a[np.isfinite(a)]
        for j, f in enumerate(feats):
            if f == "rate" and t.size >= 2:
                out[w, j] = 60.0 / np.mean(np.diff(t))
            elif f == "amp_cv" and a.size >= 2 and a.mean() > 0:
                out[w, j] = a.std() / a.mean()
    return out


def _sampled(x, sfreq, starts, n, feats) -> np.ndarray:
    """Window statistics of a sampled rate or level (heart rate in bpm, SpO2 in %)."""
    row = np.asarray(x, dtype=np.float64)[None]
    stats = sliding_stats(row, starts, n)[:, 0]
    values = {"mean": lambda: stats[:, 0], "std": lambda: np.sqrt(stats[:, 1]),
              "slope": lambda: sliding_slope(row, sfreq, starts, n)[:, 0],
              "min": lambda: np.lib.stride_tricks.sliding_window_view(row[0], n)[starts]
              .min(axis=-1)}
    return np.column_stack([values[f]() for f in feats])


def physio_windows(trial: Trial, modalities: tuple[str, ...], t_start: np.ndarray,
                   length: float) -> np.ndarray:
    """Features of every window, NaN where a window is too short (no filling).

    Parameters
    ----------
    trial : Trial
    modalities : tuple of str
        Among :data:`NK_MODALITIES`; those the trial lacks are skipped.
    t_start : ndarray, shape (n_windows,)
        Window starts in seconds from the trial's first sample.
    length : float
        Window length in seconds.

    Returns
    -------
    ndarray of float64, shape (n_windows, n_features)
        Columns in the order of :func:`physio_names`.
    """
    t0 = np.asarray(t_start, dtype=np.float64)
    blocks = [np.empty((t0.size, 0))]
    for m in modalities:
        sig = trial.signals.get(m)
        if sig is None:
            continue
        feats = supported_features(m, sig.sfreq, length)
        if feats:
            for row in (sig.data if m != "acc" else sig.data[:1]):
                if m == "gsr":
                    blocks.append(_eda(row, sig.sfreq, t0, length, feats))
                elif m in ("ppg", "ecg"):
                    blocks.append(beat_features(_beats(row, sig.sfreq, m), t0, length, feats))
                elif m == "resp":
                    blocks.append(_resp(row, sig.sfreq, t0, length, feats))
                else:
                    starts, n = window_samples(t0, length, sig.sfreq)
                    if m == "temp":
                        blocks.append(sliding_slope(row[None], sig.sfreq, starts, n))
                    elif m in ("hr", "spo2"):
                        blocks.append(_sampled(row, sig.sfreq, starts, n, feats))
                    else:
                        blocks.append(sliding_descriptors(sig.data, sig.sfreq, "acc", starts, n))
        if m == "ppg" and _has_beats(trial):
            feats = supported_features("ppg", np.inf, length)
            blocks.append(beat_features(np.asarray(trial.info["beats"]), t0, length, feats))
    return np.concatenate(blocks, axis=1)


def trial_physio(trial: Trial, modalities: tuple[str, ...], t_start: np.ndarray,
                 length: float, names: list[str] | tuple[str, ...]) -> np.ndarray:
    """:func:`physio_windows` with NaN filled by the trial's median (see the module docstring).

    ``names`` (from :func:`physio_names`) label the columns in the warning.
    """
    X = physio_windows(trial, modalities, t_start, length)
    bad = ~np.isfinite(X)
    if bad.any():
        counts = {names[j]: int(bad[:, j].sum()) for j in np.flatnonzero(bad.any(axis=0))}
        for j in np.flatnonzero(bad.any(axis=0)):
            finite = X[~bad[:, j], j]
            X[bad[:, j], j] = np.median(finite) if finite.size else 0.0
        logger.warning(
            "%s subject %s trial %s: window(s) too short for physiology feature(s) (too few "
            "beats or breaths), filled with the trial's median: %s", trial.dataset,
            trial.subject, trial.trial, counts)
    return X
