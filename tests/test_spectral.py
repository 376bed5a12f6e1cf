"""Band power against independent references (sinusoids, SciPy, Gaussian entropy)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from fearkd.features._dirichlet import band_window_sums, window_grid, window_kernel
from fearkd.features.spectral import (
    DEFAULT_BANDS,
    BandPower,
    band_power,
    check_bands,
    filter_bank,
    sliding_band_power,
)
from fearkd.features.windows import make_windows, window_samples

FS = 128.0
NAMES = list(DEFAULT_BANDS)
# A frequency near the middle of each default band.
CENTRES = {"theta": 6.0, "alpha": 10.0, "low_beta": 14.0, "high_beta": 20.5, "gamma": 35.0}


def sinusoid(freq, amp, seconds, fs=FS, phase=0.3):
    t = np.arange(int(seconds * fs)) / fs
    return amp * np.sin(2 * np.pi * freq * t + phase)


def reference_windows(seconds=63.0, length=2.0, step=0.125, tmin=3.0, fs=FS):
    t0, _ = make_windows(seconds, length, step, tmin=tmin)
    return window_samples(t0, length, fs)


@pytest.mark.parametrize("band", NAMES)
@pytest.mark.parametrize("method", ["filter", "welch"])
def test_sinusoid_power_is_half_amplitude_squared(band, method):
    amp = 3.0
    x = sinusoid(CENTRES[band], amp, 63.0)[None]
    starts, n = reference_windows()
    p = sliding_band_power(x, FS, starts, n, method=method)  # (n_windows, 1, 5)
    k = NAMES.index(band)
    np.testing.assert_allclose(p[:, 0, k], amp**2 / 2, rtol=0.02)
    others = np.delete(p[:, 0], k, axis=1)
    assert others.max() < 0.01 * amp**2 / 2


@pytest.mark.parametrize("method", ["filter", "welch"])
def test_sinusoid_power_per_segment(method):
    amp = 2.0
    x = np.stack([sinusoid(10.0, amp, 4.0), sinusoid(30.0, amp, 4.0)])
    p = band_power(x, FS, method=method)
    np.testing.assert_allclose(p[0, 1], amp**2 / 2, rtol=0.02)
    np.testing.assert_allclose(p[1, 4], amp**2 / 2, rtol=0.02)
    assert p[0, [0, 2, 3, 4]].max() < 0.01 and p[1, :4].max() < 0.01


def test_butter_design_sinusoid():
    x = sinusoid(10.0, 1.0, 63.0)[None]
    starts, n = reference_windows()
    p = sliding_band_power(x, FS, starts, n, filter_design="butter")
    # Mid-trial windows: gain 1 at the centre of the pass band.
    np.testing.assert_allclose(p[20:-20, 0, 1], 0.5, rtol=0.02)
    assert p[20:-20, 0, 3:].max() < 0.01


def test_filter_and_welch_agree_on_white_noise():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, int(63 * FS)))
    starts, n = reference_windows()
    pf = sliding_band_power(x, FS, starts, n, method="filter").mean(axis=(0, 1))
    pw = sliding_band_power(x, FS, starts, n, method="welch").mean(axis=(0, 1))
    np.testing.assert_allclose(pf, pw, rtol=0.10)
    # White noise of variance 1: power = width / (fs / 2).
    widths = np.array([hi - lo for lo, hi in DEFAULT_BANDS.values()])
    np.testing.assert_allclose(pf, widths / 64.0, rtol=0.05)


def test_welch_matches_scipy_band_integration():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 512))
    p = band_power(x, FS, method="welch", nperseg=128)
    f, psd = scipy.signal.welch(x, fs=FS, nperseg=128)
    df = f[1] - f[0]
    for k, (lo, hi) in enumerate(DEFAULT_BANDS.values()):
        sel = (f >= lo) & (f < hi)
        np.testing.assert_allclose(p[:, k], psd[:, sel].sum(axis=1) * df, rtol=1e-12)


def test_filter_matches_scipy_periodogram_band_sum():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 256))
    p = band_power(x, FS)
    f, psd = scipy.signal.periodogram(x, fs=FS, window="boxcar", detrend=False)
    df = f[1] - f[0]
    for k, (lo, hi) in enumerate(DEFAULT_BANDS.values()):
        sel = (f >= lo) & (f < hi)
        np.testing.assert_allclose(p[:, k], psd[:, sel].sum(axis=1) * df, rtol=1e-10)


def test_filter_equals_mean_square_of_filtered_signal():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 300))
    bands = check_bands(None, FS)
    y = filter_bank(x, FS, bands).astype(np.float64)
    np.testing.assert_allclose(band_power(x, FS), np.mean(y**2, axis=-1).T, rtol=1e-4)


def test_sliding_one_window_equals_segment_power():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((5, 1024))
    whole = sliding_band_power(x, FS, np.array([0]), 1024)[0]
    np.testing.assert_allclose(whole, band_power(x, FS), rtol=1e-4)


def test_differential_entropy_of_gaussian_noise():
    rng = np.random.default_rng(5)
    sigma2 = 4.0
    x = rng.normal(0.0, np.sqrt(sigma2), (8, int(300 * FS)))
    de = band_power(x, FS, method="de")
    widths = np.array([hi - lo for lo, hi in DEFAULT_BANDS.values()])
    var = sigma2 * widths / (FS / 2)  # white noise: variance spread evenly up to Nyquist
    expected = 0.5 * np.log(2 * np.pi * np.e * var)
    np.testing.assert_allclose(de.mean(axis=0), expected, atol=0.02)
    np.testing.assert_allclose(de, np.broadcast_to(expected, de.shape), atol=0.06)


def test_sliding_de_matches_variance_of_filtered_trial():
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2, 1280))
    bands = check_bands(None, FS)
    y = filter_bank(x, FS, bands).astype(np.float64)  # (5, 2, 1280)
    starts = np.arange(0, 1280 - 256 + 1, 64)
    de = sliding_band_power(x, FS, starts, 256, method="de")
    var = np.stack([y[..., s:s + 256].var(axis=-1) for s in starts])  # (n_win, 5, 2)
    np.testing.assert_allclose(de, 0.5 * np.log(2 * np.pi * np.e * var.transpose(0, 2, 1)),
                               atol=1e-4)


def test_relative_and_log():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((3, 512))
    p = band_power(x, FS)
    rel = band_power(x, FS, relative=True)
    np.testing.assert_allclose(rel.sum(axis=-1), 1.0)
    np.testing.assert_allclose(rel, p / p.sum(axis=-1, keepdims=True))
    np.testing.assert_allclose(band_power(x, FS, log=True), np.log(p))


def test_band_up_to_nyquist_is_allowed_and_keeps_the_nyquist_bin():
    fs = 32.0
    bands = check_bands({k: v for k, v in DEFAULT_BANDS.items() if v[1] <= 16}, fs)
    assert [b[0] for b in bands] == ["theta", "alpha", "low_beta"]
    # A cosine at exactly 16 Hz sampled at 32 Hz alternates +-A: its power is A**2.
    x = 2.0 * np.cos(np.pi * np.arange(640))[None]
    p = band_power(x, fs, bands)
    np.testing.assert_allclose(p[0], [0.0, 0.0, 4.0], atol=1e-9)
    starts = np.arange(0, 640 - 64 + 1, 4)
    ps = sliding_band_power(x, fs, starts, 64, bands)
    np.testing.assert_allclose(ps[:, 0, 2], 4.0, rtol=1e-5)


def test_band_above_nyquist_raises_naming_band_edges_rate_and_fix():
    x = np.zeros((1, 640))
    msg = (r"Band 'high_beta' \(16-25 Hz\) lies above the Nyquist frequency of the signal: "
           r"sampled at 32 Hz, Nyquist 16 Hz\. .*drop 'high_beta' from 'bands'")
    with pytest.raises(ValueError, match=msg):
        band_power(x + 1.0, 32.0)
    with pytest.raises(ValueError, match="Band 'gamma' .25-45 Hz. lies above the Nyquist"):
        check_bands({"gamma": (25, 45)}, 32.0)


def test_bad_band_specs():
    with pytest.raises(ValueError, match=r"Band 'x' has edges \(8, 4\) Hz; expected 0 <= low"):
        check_bands({"x": (8, 4)})
    with pytest.raises(ValueError, match="Duplicate band names"):
        check_bands([("a", 1, 2), ("a", 2, 3)])
    with pytest.raises(TypeError, match=r"Each band must be \(name, low_hz, high_hz\)"):
        check_bands([("a", 1)])
    with pytest.raises(TypeError, match="Band 'a' must have two numeric edges"):
        check_bands({"a": ("x", 2)})
    with pytest.raises(ValueError, match="'bands' is empty"):
        check_bands({})


def test_band_with_no_bin_raises():
    with pytest.raises(ValueError, match=r"Band 'narrow' \(5-5.5 Hz\) holds no frequency bin"):
        band_power(np.ones((1, 64)), FS, {"narrow": (5.0, 5.5)})


def test_invalid_method_and_options():
    x = np.ones((1, 256))
    with pytest.raises(ValueError, match=r"Invalid value for 'method': expected one of"):
        band_power(x, FS, method="multitaper")
    with pytest.raises(ValueError, match=r"Invalid value for 'filter_design'"):
        band_power(x, FS, filter_design="cheby")
    with pytest.raises(ValueError, match=r"method='de'\) is already a logarithm"):
        band_power(x, FS, method="de", log=True)
    with pytest.raises(ValueError, match="'nperseg' must be >= 2"):
        band_power(x, FS, method="welch", nperseg=1)
    with pytest.raises(ValueError, match="Invalid value for 'baseline_mode'"):
        sliding_band_power(x, FS, np.array([0]), 128, baseline_mode="ratio")


def test_non_finite_and_bad_types():
    x = np.zeros((1, 256))
    x[0, 3] = np.nan
    with pytest.raises(ValueError, match=r"'x' holds 1 non-finite value"):
        band_power(x, FS)
    with pytest.raises(ValueError, match="holds 1 non-finite"):
        sliding_band_power(x, FS, np.array([0]), 128)
    with pytest.raises(TypeError, match="'x' must be floating point"):
        band_power(np.zeros((1, 256), dtype=int), FS)
    with pytest.raises(TypeError, match="'x' must be a NumPy array"):
        band_power([0.0, 1.0], FS)
    with pytest.raises(ValueError, match="'sfreq' must be a positive number"):
        band_power(np.ones((1, 256)), -1.0)
    with pytest.raises(ValueError, match=r"run past the trial's 256 samples"):
        sliding_band_power(np.ones((1, 256)), FS, np.array([200]), 128)


def test_baseline_subtract_and_divide():
    rng = np.random.default_rng(8)
    x = rng.standard_normal((2, 1024))
    x[:, :256] *= 2.0  # baseline has 4x the power
    starts = np.arange(256, 1024 - 128 + 1, 64)
    raw = sliding_band_power(x, FS, starts, 128, log=True)
    base = sliding_band_power(x, FS, np.array([0]), 256, log=True)[0]
    sub = sliding_band_power(x, FS, starts, 128, log=True, baseline_samples=256)
    np.testing.assert_allclose(sub, raw - base[None], rtol=1e-10)
    rawp = sliding_band_power(x, FS, starts, 128)
    basep = sliding_band_power(x, FS, np.array([0]), 256)[0]
    div = sliding_band_power(x, FS, starts, 128, baseline_samples=256, baseline_mode="divide")
    np.testing.assert_allclose(div, rawp / basep[None], rtol=1e-10)


def test_edge_effects_are_as_documented():
    # Documented: about 9-10 % RMS at the trial's ends, under 2 % mid-trial (theta..low beta).
    rng = np.random.default_rng(9)
    n_times, n = 8064, 256
    starts = np.arange(0, n_times - n + 1, 16)
    long = rng.standard_normal((24, 3 * n_times))
    inner = sliding_band_power(long[:, n_times:2 * n_times], FS, starts, n)
    truth = sliding_band_power(long, FS, starts + n_times, n)
    rms = np.sqrt(np.mean(((inner - truth) / truth) ** 2, axis=1))  # (n_windows, bands)
    assert rms[[0, -1], :3].max() < 0.16
    assert rms[230:270, :3].max() < 0.04
    assert rms[230:270, 4].max() < 0.015


def test_bandpower_transformer_in_pipeline():
    rng = np.random.default_rng(10)
    X = rng.standard_normal((6, 3, 256))
    bp = BandPower(sfreq=FS, log=True, ch_names=["a", "b", "c"])
    out = bp.fit_transform(X)
    assert out.shape == (6, 15)
    np.testing.assert_allclose(out.reshape(6, 3, 5), band_power(X, FS, log=True))
    assert list(bp.get_feature_names_out()[:2]) == ["a:theta", "a:alpha"]
    pipe = make_pipeline(BandPower(sfreq=FS), StandardScaler())
    assert pipe.fit_transform(X).shape == (6, 15)


def test_bandpower_transformer_errors():
    with pytest.raises(ValueError, match=r"expects X of shape \(n_windows, n_chans, n_times\)"):
        BandPower().fit(np.zeros((3, 256)))
    bp = BandPower(sfreq=FS).fit(np.ones((2, 3, 256)))
    with pytest.raises(ValueError, match="X has 2 channels but BandPower was fitted on 3"):
        bp.transform(np.ones((2, 2, 256)))
    with pytest.raises(ValueError, match="'ch_names' has 1 name"):
        BandPower(ch_names=["a"]).fit(np.ones((2, 3, 256)))
    with pytest.raises(ValueError, match="lies above the Nyquist"):
        BandPower(sfreq=32.0).fit(np.ones((2, 3, 64)))


def test_more_input_checks():
    with pytest.raises(TypeError, match="Band names must be non-empty strings, got 3"):
        check_bands([(3, 1, 2)])
    with pytest.raises(TypeError, match="'sfreq' must be a number of Hz, got str"):
        band_power(np.ones((1, 256)), "128")
    with pytest.raises(ValueError, match=r"at least 2 samples on its last axis, got \(3, 1\)"):
        band_power(np.ones((3, 1)), FS)
    with pytest.raises(ValueError, match=r"'x' must have shape \(n_chans, n_times\)"):
        sliding_band_power(np.ones(256), FS, np.array([0]), 128)
    with pytest.raises(ValueError, match=r"'starts' must be a non-empty 1-D array"):
        sliding_band_power(np.ones((1, 256)), FS, np.array([], dtype=int), 128)


def _brick_wall_window_power(x, fs, starts, n, bands):
    """Float64 oracle: NumPy FFT filter of the whole trial, then mean of squares per window."""
    n_times = x.shape[-1]
    spec = np.fft.rfft(x)
    freqs = np.fft.rfftfreq(n_times, 1 / fs)
    out = []
    for lo, hi in bands:
        keep = (freqs >= lo - 1e-9) & ((freqs < hi - 1e-9) | (hi >= fs / 2 - 1e-9))
        y = np.fft.irfft(spec * keep, n=n_times)
        out.append([np.mean(y[:, s:s + n] ** 2, axis=-1) for s in starts])
    return np.moveaxis(np.array(out), 0, -1)  # (n_windows, n_chans, n_bands)


@pytest.mark.parametrize(
    "fs, n_times, starts, n, bands",
    [
        (128.0, 1280, np.arange(0, 1280 - 256 + 1, 16), 256, list(DEFAULT_BANDS.values())),
        # Odd length, a band from DC, a band up to Nyquist.
        (128.0, 1001, np.arange(3, 1001 - 128 + 1, 16), 128, [(0, 4), (4, 8), (30, 64)]),
        # Even length at 32 Hz with the Nyquist bin; a step that does not divide the length.
        (32.0, 1000, np.arange(0, 1000 - 64 + 1, 4), 64, [(4, 8), (12, 16)]),
        (32.0, 1234, np.arange(0, 1234 - 64 + 1, 4), 64, [(4, 8), (8, 12), (12, 16)]),
        # Irregular starts; one window; one-bin bands.
        (128.0, 600, np.array([0, 3, 7, 100, 101, 344]), 256, [(4, 8), (25, 45)]),
        (128.0, 1024, np.array([5]), 100, [(4, 8), (25, 45), (0, 64)]),
        (128.0, 640, np.arange(0, 640 - 64, 8), 64, [(5.0, 5.3), (0, 0.2)]),
    ],
)
def test_sliding_filter_power_equals_float64_filter_then_square(fs, n_times, starts, n, bands):
    rng = np.random.default_rng(11)
    # Random walk plus white noise: a steep spectrum and a DC offset, like raw EEG.
    x = np.cumsum(rng.standard_normal((3, n_times)), axis=-1) * 0.1
    x += rng.standard_normal((3, n_times))
    named = [(f"b{i}", lo, hi) for i, (lo, hi) in enumerate(bands)]
    got = sliding_band_power(x, fs, starts, n, named)
    expected = _brick_wall_window_power(x, fs, starts, n, bands)
    np.testing.assert_allclose(got, expected, rtol=2e-5)


def test_sliding_filter_baseline_equals_oracle_and_workspace_is_reused_safely():
    rng = np.random.default_rng(12)
    starts = np.arange(384, 1280 - 256 + 1, 16)
    bands = list(DEFAULT_BANDS.values())
    workspace: dict = {}
    for n_times in (1280, 1280, 1152):  # a new plan when the shape changes
        x = rng.standard_normal((4, n_times))
        starts = starts[starts + 256 <= n_times]
        got = sliding_band_power(x, FS, starts, 256, baseline_samples=384,
                                 workspace=workspace)
        raw = _brick_wall_window_power(x, FS, starts, 256, bands)
        base = _brick_wall_window_power(x, FS, [0], 384, bands)[0]
        np.testing.assert_allclose(got, raw - base, rtol=1e-4, atol=1e-6)
        np.testing.assert_array_equal(
            got, sliding_band_power(x, FS, starts, 256, baseline_samples=384))


def test_sliding_filter_power_of_a_channel_does_not_depend_on_the_others():
    # Teacher and student recipes compute the same EEG channel within different channel sets.
    rng = np.random.default_rng(13)
    x = rng.standard_normal((32, 2048))
    starts = np.arange(0, 2048 - 256 + 1, 16)
    full = sliding_band_power(x, FS, starts, 256)
    for rows in ([3], [0, 5, 7], list(range(5, 19)), list(range(31, -1, -2))):
        part = sliding_band_power(np.ascontiguousarray(x[rows]), FS, starts, 256)
        assert np.array_equal(part, full[:, rows])


def test_window_kernel_and_grid_match_direct_sums():
    n_times, first, n = 96, 5, 20
    freqs = np.array([0, 1, 7, 47, 48, 95, 96, 200, -3])
    t = np.arange(first, first + n)
    direct = np.exp(2j * np.pi * np.outer(freqs, t) / n_times).sum(axis=1)
    np.testing.assert_allclose(window_kernel(freqs, first, n, n_times), direct, atol=1e-9)
    assert window_grid(np.array([5, 21, 37]), 96)[:2] == (5, 6)
    np.testing.assert_array_equal(window_grid(np.array([5, 21, 37]), 96)[2], [0, 1, 2])
    first, period, index = window_grid(np.array([9, 3, 12]), 96)
    assert (first, period) == (3, 32) and list(index) == [2, 0, 3]
    assert window_grid(np.array([7]), 96)[1] == 1


def test_band_window_sums_bad_input():
    x = np.zeros((2, 64))
    with pytest.raises(ValueError, match=r"'x' must be an array of shape \(n_chans, n_times\)"):
        band_window_sums(np.zeros(64), [(1, 3)], [(np.array([0]), 8)])
    with pytest.raises(ValueError, match=r"bins \(3, 40\) are not a non-empty range of the 33"):
        band_window_sums(x, [(3, 40)], [(np.array([0]), 8)])
    with pytest.raises(ValueError, match=r"each window set must be \(1-D non-empty starts"):
        band_window_sums(x, [(1, 3)], [(np.array([], dtype=int), 8)])
    with pytest.raises(ValueError, match=r"Windows run from sample 0 to 68 but the signal has 64"):
        band_window_sums(x, [(1, 3)], [(np.array([0, 60]), 8)])
