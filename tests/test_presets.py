"""Feature presets: counts, names, subsets, and the errors of a recipe on the wrong data."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fearkd.errors import UnknownChannelError
from fearkd.features.presets import (
    DEAP_EEG,
    DEAP_PERIPHERAL,
    EPOC_CHANNELS,
    PRESETS,
    Recipe,
    get_preset,
    list_presets,
    register_preset,
)
from fearkd.features.spectral import DEFAULT_BANDS
from fearkd.recordings import Signal, Trial

DEAP_MODALITY = {"hEOG": "eog", "vEOG": "eog", "zEMG": "emg", "tEMG": "emg", "GSR": "gsr",
                 "Resp": "resp", "PPG": "ppg", "Temp": "temp"}


def deap_trial(seconds=8.0):
    n = int(seconds * 128)
    rng = np.random.default_rng(0)
    signals = {"eeg": Signal(rng.standard_normal((32, n)), 128.0, DEAP_EEG, "eeg")}
    for m in dict.fromkeys(DEAP_MODALITY.values()):
        names = [c for c in DEAP_PERIPHERAL if DEAP_MODALITY[c] == m]
        signals[m] = Signal(rng.standard_normal((len(names), n)), 128.0, names, m)
    return Trial("deap", "s01", 1, signals, {"valence": 5.0}, onset=3.0)


def ascertain_trial(seconds=8.0):
    rng = np.random.default_rng(1)

    def sig(names, sfreq, modality):
        return Signal(rng.standard_normal((len(names), int(seconds * sfreq))), sfreq, names,
                      modality)

    return Trial("ascertain", "P01", 1, {
        "eeg": sig([f"EEG{i}" for i in range(1, 9)], 32.0, "eeg"),
        "ecg": sig(["ECG_R", "ECG_L"], 256.0, "ecg"),
        "gsr": sig(["GSR"], 128.0, "gsr"),
        "acc": sig(["accX", "accY", "accZ"], 128.0, "acc"),
    })


def physionet_trial(seconds=60.0):
    rng = np.random.default_rng(2)
    n8, n1 = int(seconds * 8), int(seconds)
    return Trial("noneeg", "Subject1", 1, {
        "acc": Signal(rng.standard_normal((3, n8)), 8.0, ["ax", "ay", "az"], "acc"),
        "temp": Signal(30 + rng.standard_normal((1, n8)), 8.0, ["temp"], "temp"),
        "gsr": Signal(2 + rng.random((1, n8)), 8.0, ["EDA"], "gsr"),
        "hr": Signal(70 + rng.standard_normal((1, n1)), 1.0, ["hr"], "hr"),
        "spo2": Signal(97 + rng.standard_normal((1, n1)), 1.0, ["SpO2"], "spo2"),
    })


def test_registry_lists_the_presets():
    assert {"deap-teacher", "deap-student", "ascertain-teacher", "ascertain-student",
            "peripheral"} <= set(list_presets())


def test_deap_teacher_176_names():
    names = get_preset("deap-teacher").plan(deap_trial()).feature_names
    assert len(names) == 176
    assert names[:6] == ("eeg:Fp1:theta", "eeg:Fp1:alpha", "eeg:Fp1:low_beta",
                         "eeg:Fp1:high_beta", "eeg:Fp1:gamma", "eeg:AF3:theta")
    assert names[160:] == tuple(f"{DEAP_MODALITY[c]}:{c}:{s}" for c in DEAP_PERIPHERAL
                                for s in ("mean", "var"))
    assert "gsr:GSR:mean" in names and "gsr:GSR:var" in names


def test_deap_student_86_names_subset_of_teacher():
    trial = deap_trial()
    teacher = get_preset("deap-teacher").plan(trial).feature_names
    student = get_preset("deap-student").plan(trial).feature_names
    assert len(student) == 86
    assert set(student) <= set(teacher)
    assert [n.split(":")[1] for n in student[:70:5]] == list(EPOC_CHANNELS)


def test_ascertain_presets_band_power_from_the_raw_row_only():
    """NeuroSky rows 2-8 are held values (eSense, band values): mean and logmean, no bands."""
    trial = ascertain_trial()
    teacher = get_preset("ascertain-teacher").plan(trial).feature_names
    student = get_preset("ascertain-student").plan(trial).feature_names
    assert len(teacher) == 29 and len(student) == 15
    assert teacher[:3] == ("eeg:EEG1:theta", "eeg:EEG1:alpha", "eeg:EEG1:low_beta")
    assert teacher[3:17] == tuple(f"eeg:EEG{i}:{s}" for i in range(2, 9)
                                  for s in ("mean", "logmean"))
    assert teacher[17:] == tuple(f"{m}:{c}:{s}" for m, c in (
        ("acc", "accX"), ("acc", "accY"), ("acc", "accZ"), ("gsr", "GSR"), ("ecg", "ECG_L"),
        ("ecg", "ECG_R")) for s in ("mean", "var"))
    assert not any(n.split(":")[1] != "EEG1" and n.split(":")[2] in ("theta", "alpha",
                                                                    "low_beta")
                   for n in teacher)
    assert set(student) <= set(teacher)


def test_held_value_channel_in_two_lists_is_refused():
    recipe = Recipe("both", eeg=("EEG1", "EEG2"), levels=("EEG2",),
                    bands=get_preset("ascertain-teacher").bands)
    with pytest.raises(ValueError, match=r"Feature recipe 'both' lists \['EEG2'\] under "
                                         r"'levels' and under 'eeg' or 'peripheral'"):
        recipe.plan(ascertain_trial())
    with pytest.raises(TypeError, match=r"'levels' must be a sequence of channel names"):
        Recipe("none-levels", levels=None)


def test_legacy_ascertain_presets_36_and_20():
    trial = ascertain_trial()
    teacher = get_preset("ascertain-8eeg-teacher").plan(trial).feature_names
    student = get_preset("ascertain-8eeg-student").plan(trial).feature_names
    assert len(teacher) == 36 and len(student) == 20
    assert teacher[:3] == ("eeg:EEG1:theta", "eeg:EEG1:alpha", "eeg:EEG1:low_beta")
    assert teacher[24:] == tuple(f"{m}:{c}:{s}" for m, c in (
        ("acc", "accX"), ("acc", "accY"), ("acc", "accZ"), ("gsr", "GSR"), ("ecg", "ECG_L"),
        ("ecg", "ECG_R")) for s in ("mean", "var"))
    assert not any("high_beta" in n or "gamma" in n for n in teacher)
    assert set(student) <= set(teacher)


def test_ascertain_with_the_five_bands_is_refused():
    recipe = get_preset("ascertain-8eeg-teacher", bands=DEFAULT_BANDS)
    msg = (r"Band 'high_beta' \(16-25 Hz\) lies above the Nyquist frequency of the EEG of "
           r"ascertain \(8 channel\(s\)\): sampled at 32 Hz, Nyquist 16 Hz")
    with pytest.raises(ValueError, match=msg):
        recipe.plan(ascertain_trial())


def test_peripheral_preset_chooses_channels_by_modality():
    names = get_preset("peripheral").plan(physionet_trial()).feature_names
    stats = [f"{m}:{c}:{s}" for m, c in (("gsr", "EDA"), ("temp", "temp"), ("acc", "ax"),
                                          ("acc", "ay"), ("acc", "az"), ("hr", "hr"),
                                          ("spo2", "SpO2")) for s in ("mean", "var")]
    descriptors = ["gsr:EDA:slope", "gsr:EDA:scr_per_min", "temp:temp:slope",
                   "acc:magnitude:mean", "acc:magnitude:var", "hr:hr:delta", "hr:hr:slope"]
    assert names == tuple(stats + descriptors)


def test_unknown_preset_lists_known():
    with pytest.raises(ValueError, match=r"Unknown feature preset 'deap'.*'deap-teacher'"):
        get_preset("deap")
    with pytest.raises(TypeError, match="'preset' must be a preset name or a Recipe"):
        get_preset(3)


def test_preset_naming_missing_channel():
    msg = (r"Feature recipe 'deap-teacher' \(it is written for dataset 'deap'\) names "
           r"channel\(s\) \['Fp1', .*that ascertain subject P01 trial 1 lacks")
    with pytest.raises(UnknownChannelError, match=msg):
        get_preset("deap-teacher").plan(ascertain_trial())


def test_band_power_on_non_eeg_channel_refused():
    recipe = Recipe("x", eeg=("GSR",))
    with pytest.raises(ValueError, match=r"asks band power of \['GSR'\], which are not EEG"):
        recipe.plan(deap_trial())


def test_recipe_validation_and_registry():
    with pytest.raises(TypeError, match="Recipe 'eeg' must be a sequence of channel names"):
        Recipe("x", eeg="Fp1")
    with pytest.raises(ValueError, match="Invalid value for 'method'"):
        Recipe("x", method="fft")
    with pytest.raises(ValueError, match="A preset named 'deap-teacher' exists already"):
        register_preset(Recipe("deap-teacher"))
    with pytest.raises(TypeError, match="register_preset expects a Recipe"):
        register_preset("deap-teacher")
    custom = register_preset(Recipe("test-custom", eeg=("Fp1",), peripheral=("GSR",)))
    try:
        assert get_preset("test-custom").plan(deap_trial()).feature_names == (
            "eeg:Fp1:theta", "eeg:Fp1:alpha", "eeg:Fp1:low_beta", "eeg:Fp1:high_beta",
            "eeg:Fp1:gamma", "gsr:GSR:mean", "gsr:GSR:var")
        assert custom.replace(method="welch").method == "welch"
    finally:
        PRESETS.pop("test-custom")


def test_recipe_to_dict_is_json():
    d = get_preset("ascertain-teacher").to_dict()
    assert json.loads(json.dumps(d))["bands"] == [["theta", 4.0, 8.0], ["alpha", 8.0, 12.0],
                                                  ["low_beta", 12.0, 16.0]]
    assert get_preset("deap-teacher").to_dict() != get_preset("deap-student").to_dict()
