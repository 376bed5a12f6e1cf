"""Peripheral statistics and physiological descriptors against NumPy/SciPy references."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal

from fearkd.features.physio import (
    descriptor_names,
    peripheral_stats,
    scr_rate,
    sliding_delta,
    sliding_descriptors,
    sliding_slope,
    sliding_stats,
)

FS = 8.0


def windows_of(x, starts, n):
    return np.stack([x[:, s:s + n] for s in starts], axis=1)  # (n_chans, n_windows, n)


def test_peripheral_stats_are_numpy_mean_and_var():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 5, 40))
    out = peripheral_stats(x)
    np.testing.assert_array_equal(out[..., 0], np.mean(x, axis=-1))
    np.testing.assert_array_equal(out[..., 1], np.var(x, axis=-1))


def test_sliding_stats_match_numpy_with_large_offset():
    rng = np.random.default_rng(1)
    # DEAP-like GSR: 5e5 Ohm with small fluctuations, and a slow temperature-like drift.
    x = np.stack([5e5 + 10.0 * rng.standard_normal(8064),
                  30.0 + np.linspace(0, 1, 8064) + 0.01 * rng.standard_normal(8064)])
    starts = np.arange(384, 8064 - 256 + 1, 16)
    out = sliding_stats(x, starts, 256)
    w = windows_of(x, starts, 256)
    np.testing.assert_allclose(out[..., 0], np.mean(w, axis=-1).T, rtol=1e-12)
    np.testing.assert_allclose(out[..., 1], np.var(w, axis=-1).T, rtol=1e-6)


def test_slope_matches_polyfit():
    rng = np.random.default_rng(2)
    x = np.cumsum(rng.standard_normal((2, 400)), axis=1)
    starts = np.arange(0, 400 - 32 + 1, 8)
    got = sliding_slope(x, FS, starts, 32)
    t = np.arange(32) / FS
    expected = np.array([[np.polyfit(t, x[c, s:s + 32], 1)[0] for c in range(2)]
                         for s in starts])
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12)


def test_slope_of_a_ramp():
    x = (0.25 * np.arange(100) / FS)[None]  # 0.25 units per second
    got = sliding_slope(x, FS, np.array([0, 10, 50]), 40)
    np.testing.assert_allclose(got, 0.25)


def test_delta_is_last_minus_first():
    x = np.arange(20.0)[None] ** 2
    np.testing.assert_array_equal(sliding_delta(x, np.array([0, 5]), 4), [[9.0], [64.0 - 25.0]])


def test_scr_rate_counts_peaks_per_minute():
    # 60 s at 8 Hz with 6 SCR-like bumps (prominence 0.5) and one tiny ripple (0.01).
    t = np.arange(480) / FS
    x = np.full(480, 2.0)
    for centre in (5, 12, 22, 31, 44, 53):
        x += 0.5 * np.exp(-0.5 * ((t - centre) / 0.8) ** 2)
    x += 0.005 * np.exp(-0.5 * ((t - 38) / 0.5) ** 2)
    starts = np.array([0, 240])  # two 30 s windows
    got = scr_rate(x[None], FS, starts, 240, prominence=0.05)
    np.testing.assert_array_equal(got[:, 0], [6.0, 6.0])  # 3 peaks in each half minute
    peaks, _ = scipy.signal.find_peaks(x, prominence=0.05)
    assert len(peaks) == 6
    low = scr_rate(x[None], FS, starts, 240, prominence=0.001)
    np.testing.assert_array_equal(low[:, 0], [6.0, 8.0])  # the ripple counts too


def test_descriptors_by_modality():
    rng = np.random.default_rng(3)
    acc = rng.standard_normal((3, 200))
    starts = np.array([0, 50, 100])
    got = sliding_descriptors(acc, FS, "acc", starts, 64)
    mag = np.sqrt((acc**2).sum(axis=0))
    w = np.stack([mag[s:s + 64] for s in starts])
    np.testing.assert_allclose(got, np.stack([w.mean(1), w.var(1)], axis=1), rtol=1e-9)
    assert descriptor_names("acc", ("ax", "ay", "az")) == ["acc:magnitude:mean",
                                                          "acc:magnitude:var"]
    hr = 60 + np.arange(200.0)[None] / 10
    got = sliding_descriptors(hr, 1.0, "hr", starts, 20)
    np.testing.assert_allclose(got, [[1.9, 0.1]] * 3)
    assert descriptor_names("hr", ("hr",)) == ["hr:hr:delta", "hr:hr:slope"]
    assert descriptor_names("gsr", ("EDA",)) == ["gsr:EDA:slope", "gsr:EDA:scr_per_min"]
    assert descriptor_names("temp", ("temp",)) == ["temp:temp:slope"]
    assert sliding_descriptors(hr, 1.0, "spo2", starts, 20).shape == (3, 0)
    assert descriptor_names("spo2", ("SpO2",)) == []


def test_descriptor_errors():
    with pytest.raises(ValueError, match=r"A slope needs windows of at least 2 samples"):
        sliding_slope(np.ones((1, 10)), 1.0, np.array([0]), 1)
    with pytest.raises(ValueError, match=r"'scr_prominence' must be > 0, got 0"):
        scr_rate(np.ones((1, 10)), 1.0, np.array([0]), 5, prominence=0)
