"""NeuroKit2 physiology features: known answers, 4 Hz EDA, window policies, presets."""

from __future__ import annotations

import logging

import neurokit2 as nk
import numpy as np
import pytest

from fearkd.features.extract import drop_constant, subject_features
from fearkd.features.featureset import FeatureSet
from fearkd.features.physio_nk import beat_features, physio_names, physio_windows
from fearkd.features.presets import Recipe, get_preset
from fearkd.features.windows import get_windowing
from fearkd.recordings import Signal, Subject, Trial


def _trial(**signals) -> Trial:
    sigs = {m: Signal(np.atleast_2d(np.asarray(x, dtype=np.float64)), sf, (name,), m)
            for m, (name, sf, x) in signals.items()}
    return Trial("t", "s1", 1, sigs)


def test_ppg_72_bpm_gives_hr_72():
    ppg = nk.ppg_simulate(duration=120, sampling_rate=64, heart_rate=72, random_state=0)
    trial = _trial(ppg=("BVP", 64.0, ppg))
    X = physio_windows(trial, ("ppg",), np.arange(0.0, 100.0, 20.0), 20.0)
    names = physio_names(trial, ("ppg",), 20.0)
    hr = X[:, names.index("ppg:BVP:hr")]
    assert np.all(np.abs(hr - 72.0) <= 1.0), hr


def test_rmssd_sdnn_pnn50_of_known_intervals():
    ibi = np.array([0.8, 0.9, 0.8, 1.0, 0.7])  # seconds
    beats = np.concatenate([[0.5], 0.5 + np.cumsum(ibi)])
    got = beat_features(beats, np.array([0.0]), 10.0, ("hr", "rmssd", "sdnn", "pnn50"))[0]
    d = np.diff(ibi)  # 0.1, -0.1, 0.2, -0.3
    assert got[0] == pytest.approx(60.0 / ibi.mean())
    assert got[1] == pytest.approx(1000 * np.sqrt((0.01 + 0.01 + 0.04 + 0.09) / 4))
    assert got[2] == pytest.approx(1000 * np.std(ibi, ddof=1))
    assert got[3] == pytest.approx(100.0 * np.mean(np.abs(d) > 0.05))  # = 100 %


def test_too_few_beats_give_nan():
    got = beat_features(np.array([1.0, 1.8]), np.array([0.0]), 4.0, ("hr", "rmssd"))[0]
    assert np.isnan(got).all()


@pytest.mark.parametrize("sfreq", [4.0, 32.0])
def test_scr_count_of_three_responses(sfreq):
    eda = nk.eda_simulate(duration=60, sampling_rate=int(sfreq) if sfreq >= 32 else 32,
                          scr_number=3, drift=0.0, noise=0.0, random_state=1)
    if sfreq < 32:  # the E4 rate: keep every 8th sample of a 32 Hz simulation
        eda = eda[::8]
    trial = _trial(gsr=("EDA", sfreq, eda))
    X = physio_windows(trial, ("gsr",), np.array([0.0]), 60.0)
    names = physio_names(trial, ("gsr",), 60.0)
    assert X[0, names.index("gsr:EDA:scr_count")] == 3
    assert X[0, names.index("gsr:EDA:scr_amplitude")] > 0


def test_lf_hf_left_out_of_short_windows_with_one_warning(caplog, monkeypatch):
    from fearkd.features import physio_nk

    # the warning is once per process: start from a fresh record (another test file in the
    # same worker may have warned for the same (modality, window) already)
    monkeypatch.setattr(physio_nk, "_warned", set())
    trial = _trial(ppg=("BVP7", 64.0, np.zeros(64 * 10)))
    with caplog.at_level(logging.WARNING):
        short = physio_names(trial, ("ppg",), 30.0)
        physio_names(trial, ("ppg",), 30.0)
    assert "ppg:BVP7:lf_hf" not in short
    assert "ppg:BVP7:lf_hf" in physio_names(trial, ("ppg",), 60.0)
    assert sum("lf_hf" in r.getMessage() for r in caplog.records) == 1


def test_low_rate_ppg_not_computed():
    trial = _trial(ppg=("BVP", 8.0, np.zeros(80)))
    assert physio_names(trial, ("ppg",), 5.0) == []


def test_presets_nest_and_extraction_runs_once_per_trial():
    rng = np.random.default_rng(0)
    eda = nk.eda_simulate(duration=120, sampling_rate=32, scr_number=6, random_state=2)[::8]
    ppg = nk.ppg_simulate(duration=120, sampling_rate=64, heart_rate=70, random_state=3)
    temp = 33 + np.cumsum(rng.normal(0, 0.001, 480))
    trial = _trial(gsr=("EDA", 4.0, eda), ppg=("BVP", 64.0, ppg), temp=("TEMP", 4.0, temp))
    win = get_windowing(20.0, 10.0)
    sets = {}
    for name in ("physio", "wrist", "eda-bvp", "eda", "bvp"):
        fs = subject_features(Subject("t", "s1", (trial,)), get_preset(name), win)
        assert np.isfinite(fs.X).all()
        sets[name] = fs
    for student in ("wrist", "eda-bvp", "eda", "bvp"):
        assert set(sets[student].feature_names) <= set(sets["physio"].feature_names)
        np.testing.assert_array_equal(
            sets[student].X, sets["physio"].select_columns(sets[student].feature_names).X)
    assert "temp:TEMP:slope" in sets["physio"].feature_names


def test_constant_feature_is_dropped_and_named(caplog):
    meta = {"dataset": "t", "subject": "s1", "trial": [1, 1, 1], "window": [0, 1, 2],
            "t_start": [0.0, 1, 2], "t_stop": [1.0, 2, 3], "y_fear": -1, "y_source": -1}
    import pandas as pd

    fs = FeatureSet(np.array([[1, 0], [2, 0], [3, 0]], dtype=np.float32), ["a", "gsr:E:scr"],
                    pd.DataFrame(meta))
    with caplog.at_level(logging.WARNING):
        out = drop_constant(fs, "eda")
    assert out.feature_names == ("a",) or list(out.feature_names) == ["a"]
    assert "gsr:E:scr" in caplog.text


def test_recipe_rejects_unknown_physio_modality():
    with pytest.raises(ValueError, match="no physiology features for modality"):
        Recipe("x", physio=("eeg",))


def test_sampled_heart_rate_and_spo2_window_values():
    """A 1 Hz heart rate rising 0.5 bpm/s and an SpO2 with one desaturation sample: mean, std,
    slope and min against hand values."""
    t = np.arange(120.0)
    spo2 = np.full(120, 97.0)
    spo2[50] = 90.0
    trial = _trial(hr=("hr", 1.0, 70.0 + 0.5 * t), spo2=("SpO2", 1.0, spo2))
    names = physio_names(trial, ("hr", "spo2"), 30.0)
    assert names == ["hr:hr:mean", "hr:hr:std", "hr:hr:slope", "spo2:SpO2:mean",
                     "spo2:SpO2:min"]
    X = physio_windows(trial, ("hr", "spo2"), np.array([0.0, 40.0]), 30.0)
    steps = 0.5 * np.arange(30)
    np.testing.assert_allclose(X[:, 0], [70 + steps.mean(), 90 + steps.mean()])
    np.testing.assert_allclose(X[:, 1], steps.std())
    np.testing.assert_allclose(X[:, 2], 0.5)
    np.testing.assert_allclose(X[:, 3], [97.0, 97.0 - 7.0 / 30])
    np.testing.assert_allclose(X[:, 4], [97.0, 90.0])


def test_heart_rate_std_and_slope_left_out_of_one_sample_windows():
    trial = _trial(hr=("HR", 1.0, np.full(20, 70.0)))
    assert physio_names(trial, ("hr",), 1.0) == ["hr:HR:mean"]


def test_physio_preset_covers_heart_rate_and_spo2_by_modality():
    """The physio preset finds the sampled rate channels by modality, whatever their names."""
    rng = np.random.default_rng(1)
    trial = _trial(hr=("pulse", 1.0, 70 + rng.normal(0, 2, 60)),
                   spo2=("sat", 1.0, 97 + rng.normal(0, 0.5, 60)))
    fs = subject_features(Subject("t", "s1", (trial,)), get_preset("physio"),
                          get_windowing(20.0, 10.0))
    assert list(fs.feature_names) == ["hr:pulse:mean", "hr:pulse:std", "hr:pulse:slope",
                                      "spo2:sat:mean", "spo2:sat:min"]
    assert np.isfinite(fs.X).all()
