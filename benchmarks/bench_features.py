"""Benchmark: feature extraction at full DEAP size against references timed in the same run.

Builds DEAP-shaped arrays in memory (N subjects x 40 trials x 40 channels x 8,064 samples at
128 Hz, float64 as the readers return them), one subject at a time from a seeded generator
(AR(1) "pink-ish" noise; nothing is read from disk, so file reading is not part of any figure),
and times on the same arrays, subject by subject:

(a) ``rfft``: the floor of an FFT method, one NumPy ``rfft`` per trial of the 32 EEG
    channels and the band sums of ``|X|^2`` for the 5 bands (whole trials, no windows);
(b) ``ours``: ``fearkd.features.extract.subject_features`` with the ``deap-teacher`` preset
    (176 features) at the reference windowing (2 s windows every 0.125 s, baseline dropped),
    metadata table included. Band power is the ``filter`` method (brick-wall FFT filter, mean
    of squares per window), computed from each band's FFT bins without filtering the trial
    (:func:`fearkd.features._dirichlet.band_window_sums`);
(c) ``welch``: ``scipy.signal.welch`` on each window of the 32 EEG channels plus band sums,
    timed on the first ``--welch-trials`` trials of the first subject and extrapolated
    linearly to every window of every subject (printed as such).

Prints the ratio ours / rfft (target <= 4, aim 2), the speed-up over per-window Welch (target
>= 10), the peak resident memory of the process (target <= 2 GB), the largest relative error of
our band power against a float64 filter-then-square computation (one trial, every window, not
timed), the load average, and ends with one JSON line. Everything runs on one thread: the
reference is NumPy's single-threaded FFT and ours uses ``scipy.fft`` with its default of one
worker (printed as ``fft_workers``).

Physiology section (``--physio-hours``, 0 to skip; ``--physio-only`` skips the DEAP part): one
trial of synthetic 4-channel Empatica E4 data (EDA 4 Hz, BVP 64 Hz, TEMP 4 Hz, ACC 32 Hz x 3)
per hour, timed through ``subject_features`` with the ``wrist`` preset (NeuroKit2 features,
4 s windows every 2 s), against running NeuroKit2's processing once on the whole record
(``nk.eda_process`` on the EDA interpolated to 32 Hz, ``nk.ppg_process`` on the BVP). Prints
seconds per hour of data for both and their ratio (target <= 1.5), also in the JSON line.

Usage::

    .venv/bin/python benchmarks/bench_features.py --subjects 2 --repeats 3
    .venv/bin/python benchmarks/bench_features.py --physio-only --physio-hours 1
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import time

import numpy as np
import scipy.fft
import scipy.signal

from fearkd.features.extract import subject_features
from fearkd.features.presets import DEAP_EEG, DEAP_PERIPHERAL, get_preset
from fearkd.features.spectral import DEFAULT_BANDS, sliding_band_power
from fearkd.features.windows import get_windowing, make_windows, window_samples
from fearkd.recordings import Signal, Subject, Trial

SFREQ = 128.0
N_TRIALS, N_CHANS, N_TIMES = 40, 40, 8064
ONSET = 3.0
_MODALITY = {"hEOG": "eog", "vEOG": "eog", "zEMG": "emg", "tEMG": "emg", "GSR": "gsr",
             "Resp": "resp", "PPG": "ppg", "Temp": "temp"}


def make_subject(index: int, seed: int) -> np.ndarray:
    """(40, 40, 8064) float64: AR(1) noise (a 1/f-like spectrum), scaled like DEAP."""
    rng = np.random.default_rng([seed, index])
    white = rng.standard_normal((N_TRIALS, N_CHANS, N_TIMES))
    data = scipy.signal.lfilter([1.0], [1.0, -0.9], white, axis=-1)
    data[:, :32] *= 10.0  # EEG in tens of microvolts
    data[:, 36] = 5e5 + 1e3 * data[:, 36]  # GSR: large offset in Ohm
    return data


def as_subject(sid: str, data: np.ndarray) -> Subject:
    trials = []
    for t in range(N_TRIALS):
        signals = {"eeg": Signal(data[t, :32], SFREQ, DEAP_EEG, "eeg")}
        for m in dict.fromkeys(_MODALITY.values()):
            names = [n for n in DEAP_PERIPHERAL if _MODALITY[n] == m]
            rows = [32 + DEAP_PERIPHERAL.index(n) for n in names]
            signals[m] = Signal(data[t, rows], SFREQ, names, m)
        trials.append(Trial("deap", sid, t + 1, signals,
                            {"valence": 5.0, "arousal": 5.0, "dominance": 5.0, "liking": 5.0},
                            onset=ONSET))
    return Subject("deap", sid, tuple(trials))


def rfft_reference(data: np.ndarray) -> np.ndarray:
    """Band power of whole trials: one rfft per trial, band sums of |X|^2."""
    freqs = np.fft.rfftfreq(N_TIMES, 1.0 / SFREQ)
    slices = [slice(np.searchsorted(freqs, lo), np.searchsorted(freqs, hi))
              for lo, hi in DEFAULT_BANDS.values()]
    out = np.empty((N_TRIALS, 32, len(slices)))
    for t in range(N_TRIALS):
        spec = np.fft.rfft(data[t, :32])
        power = spec.real**2 + spec.imag**2
        for b, sl in enumerate(slices):
            out[t, :, b] = power[:, sl].sum(axis=-1)
    return out


def welch_per_window(data: np.ndarray, n_trials: int, starts: np.ndarray, n: int) -> int:
    """Per-window scipy.signal.welch + band sums on the first n_trials; returns windows done."""
    slices = None
    for t in range(n_trials):
        for s in starts:
            f, psd = scipy.signal.welch(data[t, :32, s:s + n], fs=SFREQ, nperseg=n, axis=-1)
            if slices is None:
                slices = [slice(np.searchsorted(f, lo), np.searchsorted(f, hi))
                          for lo, hi in DEFAULT_BANDS.values()]
            np.stack([psd[:, sl].sum(axis=-1) for sl in slices], axis=-1)
    return n_trials * len(starts)


def max_relative_error(data: np.ndarray, starts: np.ndarray, n: int) -> float:
    """Ours against float64 NumPy: filter trial 0's EEG per band, mean of squares per window."""
    x = data[0, :32]
    ours = sliding_band_power(x, SFREQ, starts, n)  # (n_windows, 32, 5)
    spec = np.fft.rfft(x)
    freqs = np.fft.rfftfreq(N_TIMES, 1.0 / SFREQ)
    worst = 0.0
    for b, (lo, hi) in enumerate(DEFAULT_BANDS.values()):
        y2 = np.fft.irfft(spec * ((freqs >= lo) & (freqs < hi)), n=N_TIMES) ** 2
        cum = np.concatenate([np.zeros((32, 1)), np.cumsum(y2, axis=-1)], axis=-1)
        exact = (cum[:, starts + n] - cum[:, starts]).T / n
        worst = max(worst, float(np.max(np.abs(ours[..., b] / exact - 1.0))))
    return worst


def peak_rss_mb() -> float:
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 1024.0 if sys.platform != "darwin" else kb / 2**20


def make_e4(hours: float, seed: int) -> Subject:
    """One trial of synthetic E4 wrist data (pulses, SCRs, drifts), ``hours`` long."""
    rng = np.random.default_rng(seed)
    secs = hours * 3600.0

    def t(rate):
        return np.arange(int(secs * rate)) / rate

    tb, te = t(64.0), t(4.0)
    hr = 70 + 5 * np.sin(2 * np.pi * tb / 300)
    bvp = np.exp(-0.5 * ((np.cumsum(hr / 60 / 64.0) % 1 - 0.5) / 0.12) ** 2) * 50
    k = np.arange(0, 15, 0.25)
    scr = np.convolve((rng.random(te.size) < 0.02) * 0.5, np.exp(-k / 4) - np.exp(-k / 0.75))
    sig = {
        "gsr": Signal((2 + scr[: te.size] + 0.001 * te)[None], 4.0, ("EDA",), "gsr"),
        "ppg": Signal((bvp + rng.normal(0, 1, tb.size))[None], 64.0, ("BVP",), "ppg"),
        "temp": Signal((32 + 0.0001 * te)[None] + rng.normal(0, 0.01, te.size), 4.0, ("TEMP",),
                       "temp"),
        "acc": Signal(rng.normal([[1.0], [0], [0]], 0.05, (3, int(secs * 32))), 32.0,
                      ("ACC_x", "ACC_y", "ACC_z"), "acc"),
    }
    return Subject("e4", "e1", (Trial("e4", "e1", 1, sig),))


def physio_section(hours: float, repeats: int, seed: int) -> dict:
    """Seconds per hour of E4 data: ours (wrist preset) and NeuroKit2 once on the record."""
    import logging

    import neurokit2 as nk

    logging.getLogger("fearkd").setLevel(logging.ERROR)
    subject = make_e4(hours, seed)
    trial = subject.trials[0]
    eda, bvp = trial.signals["gsr"].data[0], trial.signals["ppg"].data[0]
    windowing = get_windowing(4.0, 2.0)
    ours, ref = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fs = subject_features(subject, get_preset("wrist"), windowing)
        ours.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        up = np.interp(np.arange(eda.size * 8) / 32.0, np.arange(eda.size) / 4.0, eda)
        nk.eda_process(up, sampling_rate=32)
        nk.ppg_process(bvp, sampling_rate=64)
        ref.append(time.perf_counter() - t0)
    o, r = statistics.median(ours) / hours, statistics.median(ref) / hours
    out = {"physio_hours": hours, "physio_windows": len(fs), "physio_features": fs.n_features,
           "physio_ours_s_per_hour": round(o, 3), "physio_nk_once_s_per_hour": round(r, 3),
           "physio_ratio_to_nk_once": round(o / r, 2)}
    print(f"physiology (wrist preset, {fs.n_features} features, {len(fs)} windows of 4 s every "
          f"2 s): {o:.3f} s per hour of E4 data; NeuroKit2 once on the record: {r:.3f} s per "
          f"hour; ratio {o / r:.2f} (target <= 1.5)")
    return out


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--welch-trials", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--physio-hours", type=float, default=1.0)
    parser.add_argument("--physio-only", action="store_true")
    args = parser.parse_args(argv)
    if args.physio_only:
        result = physio_section(args.physio_hours, args.repeats, args.seed)
        print(json.dumps(result))
        return result
    if args.subjects < 1 or args.repeats < 1 or args.welch_trials < 1:
        parser.error("--subjects, --repeats and --welch-trials must be >= 1")

    recipe = get_preset("deap-teacher")
    windowing = get_windowing("seed-legacy")
    t_start, _ = make_windows(N_TIMES / SFREQ, windowing.length, windowing.step, tmin=ONSET)
    starts, n = window_samples(t_start, windowing.length, SFREQ)
    n_windows_total = args.subjects * N_TRIALS * len(starts)

    rfft_t = np.zeros((args.subjects, args.repeats))
    ours_t = np.zeros((args.subjects, args.repeats))
    n_features = None
    for i in range(args.subjects):
        data = make_subject(i, args.seed)
        subject = as_subject(f"s{i + 1:02d}", data)
        for r in range(args.repeats):
            t0 = time.perf_counter()
            rfft_reference(data)
            rfft_t[i, r] = time.perf_counter() - t0
            t0 = time.perf_counter()
            fs = subject_features(subject, recipe, windowing)
            ours_t[i, r] = time.perf_counter() - t0
            n_features = fs.n_features
            del fs
        if i == 0:
            max_rel_err = max_relative_error(data, starts, n)
            t0 = time.perf_counter()
            done = welch_per_window(data, min(args.welch_trials, N_TRIALS), starts, n)
            welch_per_window_s = (time.perf_counter() - t0) / done
        del data, subject
        print(f"subject {i + 1}/{args.subjects}: rfft {np.median(rfft_t[i]):.3f} s, "
              f"ours {np.median(ours_t[i]):.3f} s", flush=True)

    rfft_tot, ours_tot = rfft_t.sum(axis=0), ours_t.sum(axis=0)
    rfft_s, ours_s = statistics.median(rfft_tot), statistics.median(ours_tot)
    welch_s = welch_per_window_s * n_windows_total
    result = {
        "bench": "features",
        "subjects": args.subjects,
        "repeats": args.repeats,
        "n_windows": n_windows_total,
        "n_features": n_features,
        "ours_s": round(ours_s, 4),
        "ours_spread_s": [round(float(ours_tot.min()), 4), round(float(ours_tot.max()), 4)],
        "rfft_s": round(rfft_s, 4),
        "rfft_spread_s": [round(float(rfft_tot.min()), 4), round(float(rfft_tot.max()), 4)],
        "ratio_to_rfft": round(ours_s / rfft_s, 3),
        "welch_s_extrapolated": round(welch_s, 2),
        "welch_windows_timed": int(min(args.welch_trials, N_TRIALS) * len(starts)),
        "speedup_vs_welch": round(welch_s / ours_s, 1),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "max_rel_err_vs_float64": float(f"{max_rel_err:.3g}"),
        "fft_workers": scipy.fft.get_workers(),
        "numpy_reference_threads": 1,
        "load_average_1min": round(os.getloadavg()[0], 2),
        "python": platform.python_version(),
        "numpy": np.__version__,
    }
    if args.physio_hours > 0:
        result.update(physio_section(args.physio_hours, args.repeats, args.seed))
    print(f"windows: {n_windows_total} ({len(starts)} per trial), features: {n_features}")
    print(f"rfft reference (whole trials): {rfft_s:.3f} s "
          f"[{rfft_tot.min():.3f}, {rfft_tot.max():.3f}] over {args.repeats} repeats")
    print(f"ours (176 features, 2 s / 0.125 s windows): {ours_s:.3f} s "
          f"[{ours_tot.min():.3f}, {ours_tot.max():.3f}]")
    print(f"ours / rfft = {result['ratio_to_rfft']:.2f} (target <= 4, aim 2)")
    print(f"scipy.signal.welch per window: {welch_s:.1f} s, EXTRAPOLATED linearly from "
          f"{result['welch_windows_timed']} windows of subject 1; speed-up "
          f"{result['speedup_vs_welch']:.1f}x (target >= 10)")
    print(f"peak RSS: {result['peak_rss_mb']:.0f} MB (target <= 2048)")
    print(f"band power vs float64 filter-then-square (subject 1, trial 1, every window): "
          f"max relative error {max_rel_err:.2g}")
    print(f"threads: ours {result['fft_workers']} scipy.fft worker, reference NumPy FFT "
          f"single-threaded; load average (1 min) {result['load_average_1min']:.2f} on "
          f"{os.cpu_count()} CPUs")
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
