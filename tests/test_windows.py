"""Windows in seconds: counts, sample boundaries at several rates, window sums."""

from __future__ import annotations

import numpy as np
import pytest

from fearkd.features.windows import (
    WINDOWINGS,
    Windowing,
    get_windowing,
    make_windows,
    window_samples,
    window_sums,
)


def test_deap_reference_windowing_count():
    # 63 s trial, windows from the 3 s onset: (60 - 2) / 0.125 + 1 = 465 windows.
    t0, t1 = make_windows(63.0, 2.0, 0.125, tmin=3.0)
    assert len(t0) == 465
    assert t0[0] == 3.0 and t1[-1] == 63.0
    np.testing.assert_array_equal(t1 - t0, 2.0)
    np.testing.assert_allclose(np.diff(t0), 0.125)


def test_default_windowing_count():
    w = get_windowing()
    assert (w.length, w.step, w.name) == (4.0, 2.0, "default")
    t0, _ = make_windows(63.0, w.length, w.step, tmin=3.0)
    assert len(t0) == 29


@pytest.mark.parametrize("sfreq", [128.0, 256.0, 32.0])
@pytest.mark.parametrize("length,step", [(2.0, 0.125), (4.0, 2.0), (1.5, 0.3)])
def test_sample_boundaries_at_each_rate(sfreq, length, step):
    t0, t1 = make_windows(60.0, length, step, tmin=0.0)
    start, n = window_samples(t0, length, sfreq)
    assert n == round(length * sfreq)
    expected = [round(t * sfreq) for t in t0]
    np.testing.assert_array_equal(start, expected)
    # Every rate sees the same time spans: start / sfreq is t_start up to rounding.
    assert np.all(np.abs(start / sfreq - t0) <= 0.5 / sfreq + 1e-12)


def test_reference_windowing_is_sample_exact_at_dataset_rates():
    t0, _ = make_windows(60.0, 2.0, 0.125)
    for sfreq in (32.0, 128.0, 256.0):
        start, n = window_samples(t0, 2.0, sfreq)
        np.testing.assert_array_equal(start, t0 * sfreq)  # no rounding at all
        assert n == 2 * sfreq


def test_n_times_drops_windows_that_do_not_fit():
    # 10 s at 128 Hz but one signal is a sample short: the last window must go.
    t0, _ = make_windows(10.0, 2.0, 1.0)
    assert len(t0) == 9
    t0b, _ = make_windows(10.0, 2.0, 1.0, n_times={128.0: 1279, 32.0: 320})
    assert len(t0b) == 8


def test_window_longer_than_trial_raises():
    with pytest.raises(ValueError, match=r"Window 'length' 5.0 s is longer than the trial"):
        make_windows(4.0, 5.0, 1.0)
    with pytest.raises(ValueError, match="longer than the trial: only 1 s"):
        make_windows(63.0, 2.0, 0.125, tmin=62.0)


@pytest.mark.parametrize("step", [0.0, -1.0, float("nan")])
def test_step_must_be_positive(step):
    with pytest.raises(ValueError, match=r"Window 'step' must be a positive number of seconds"):
        make_windows(10.0, 2.0, step)
    with pytest.raises(ValueError, match=r"Window 'step' must be a positive"):
        Windowing(2.0, step)


def test_length_must_be_positive_number():
    with pytest.raises(ValueError, match=r"Window 'length' must be a positive"):
        make_windows(10.0, 0.0, 1.0)
    with pytest.raises(TypeError, match=r"Window 'length' must be a number of seconds, got str"):
        Windowing("2", 1.0)


def test_window_without_samples_raises():
    with pytest.raises(ValueError, match=r"holds no sample at 1 Hz"):
        window_samples(np.array([0.0]), 0.2, 1.0)


def test_windows_that_never_fit_raise():
    with pytest.raises(ValueError, match="does not fit in the trial's samples"):
        make_windows(2.0, 2.0, 1.0, n_times={128.0: 255})


def test_get_windowing_variants():
    assert get_windowing("seed-legacy") == WINDOWINGS["seed-legacy"]
    assert get_windowing("seed-legacy").step == 0.125
    assert get_windowing("seed-legacy", 0.25) == Windowing(2.0, 0.25)
    assert get_windowing(3.0) == Windowing(3.0, 1.5)
    assert get_windowing(3.0, 1.0) == Windowing(3.0, 1.0)
    w = Windowing(1.0, 0.5)
    assert get_windowing(w) is w
    with pytest.raises(ValueError, match=r"Unknown windowing 'legacy': expected one of"):
        get_windowing("legacy")


@pytest.mark.parametrize("starts", [np.arange(5, 600, 16), np.array([0, 3, 7, 100, 101])])
@pytest.mark.parametrize("square", [True, False])
def test_window_sums_match_direct_sums(starts, square):
    rng = np.random.default_rng(0)
    y = rng.standard_normal((3, 2, 1000)).astype(np.float32)
    n = 64
    got = window_sums(y, starts, n, square=square)
    yy = y.astype(np.float64) ** 2 if square else y.astype(np.float64)
    expected = np.stack([yy[..., s:s + n].sum(axis=-1) for s in starts], axis=-1)
    assert got.shape == (3, 2, len(starts)) and got.dtype == np.float64
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-4)


def test_window_sums_float64_precision():
    rng = np.random.default_rng(1)
    y = rng.standard_normal(100_000)
    starts = np.arange(0, 100_000 - 256, 16)
    got = window_sums(y, starts, 256, square=True)
    expected = np.array([np.sum(y[s:s + 256] ** 2) for s in starts])
    np.testing.assert_allclose(got, expected, rtol=1e-10)


def test_window_sums_out_of_range():
    with pytest.raises(ValueError, match=r"Windows run from sample 0 to 20 but the signal has 10"):
        window_sums(np.zeros(10), np.array([0]), 20, square=True)
