"""extract_features: windows, teacher/student columns, labels, cache, parallel, bad input."""

from __future__ import annotations

from functools import partial

import numpy as np
import pandas as pd
import pytest

from fearkd import labels
from fearkd.errors import UnknownChannelError
from fearkd.features.extract import extract_features
from fearkd.features.featureset import FeatureSet
from fearkd.features.presets import DEAP_EEG, DEAP_PERIPHERAL, Recipe
from fearkd.features.spectral import sliding_band_power
from fearkd.recordings import Recordings, Signal, Subject, Trial

DEAP_MODALITY = {"hEOG": "eog", "vEOG": "eog", "zEMG": "emg", "tEMG": "emg", "GSR": "gsr",
                 "Resp": "resp", "PPG": "ppg", "Temp": "temp"}
# (valence, arousal, dominance, liking): no fear, high fear, unlabelled.
RATINGS = [(8.0, 2.0, 8.0, 5.0), (2.0, 8.0, 2.0, 5.0), (5.5, 1.0, 5.0, 5.0)]
CALLS: list[str] = []


def _deap_subject(subject, report, *, seconds, nan_trial=None):
    CALLS.append(subject)
    rng = np.random.default_rng(int(subject[1:]))
    n = int(seconds * 128)
    trials = []
    for t, (v, a, d, lk) in enumerate(RATINGS, start=1):
        data = rng.standard_normal((40, n))
        data[36] = 5e5 + 100 * data[36]
        if nan_trial == t:
            data[5, 10] = np.nan
        signals = {"eeg": Signal(data[:32], 128.0, DEAP_EEG, "eeg")}
        for m in dict.fromkeys(DEAP_MODALITY.values()):
            names = [c for c in DEAP_PERIPHERAL if DEAP_MODALITY[c] == m]
            signals[m] = Signal(data[[32 + DEAP_PERIPHERAL.index(c) for c in names]], 128.0,
                                names, m)
        ratings = {"valence": v, "arousal": a, "dominance": d, "liking": lk}
        trials.append(Trial("deap", subject, t, signals, ratings, onset=3.0))
    return Subject("deap", subject, tuple(trials))


def deap_like(seconds=12.0, subjects=("s01", "s02"), nan_trial=None, description=None):
    return Recordings("deap", subjects,
                      partial(_deap_subject, seconds=seconds, nan_trial=nan_trial),
                      description)


def _ascertain_subject(subject, report, *, seconds):
    rng = np.random.default_rng(7)

    def sig(names, sfreq, modality):
        return Signal(rng.standard_normal((len(names), int(seconds * sfreq))), sfreq, names,
                      modality)

    trials = [Trial("ascertain", subject, c, {
        "eeg": sig([f"EEG{i}" for i in range(1, 9)], 32.0, "eeg"),
        "ecg": sig(["ECG_R", "ECG_L"], 256.0, "ecg"),
        "gsr": sig(["GSR"], 128.0, "gsr"),
        "acc": sig(["accX", "accY", "accZ"], 128.0, "acc"),
    }, {"arousal": 5.0, "valence": -3.0, "engagement": 5.0, "liking": 0.0, "familiarity": 0.0})
        for c in (1, 2)]
    return Subject("ascertain", subject, tuple(trials))


def _stage_subject(subject, report):
    rng = np.random.default_rng(3)
    trials = [Trial("stages", subject, i, {
        "gsr": Signal(2 + rng.random((1, 160)), 8.0, ["EDA"], "gsr"),
        "hr": Signal(70 + rng.standard_normal((1, 20)), 1.0, ["hr"], "hr"),
    }, info={"y_fear": i, "y_source": 10 + i}) for i in (0, 2)]
    return Subject("stages", subject, tuple(trials))


def test_deap_teacher_windows_and_labels():
    fs = extract_features(deap_like(), "deap-teacher", window="seed-legacy", progress=False)
    assert fs.X.shape == (2 * 3 * 57, 176) and fs.X.dtype == np.float32
    meta = fs.metadata
    first = meta[(meta.subject == "s01") & (meta.trial == 1)]
    assert first["t_start"].iloc[0] == 3.0 and first["t_stop"].iloc[-1] == 12.0
    assert list(first["window"]) == list(range(57))
    # Labels: the built-in DEAP table and source task, applied to each trial's ratings.
    per_trial = meta.drop_duplicates(["subject", "trial"])
    expected = labels.assign_fear(per_trial, "deap")
    np.testing.assert_array_equal(per_trial["y_fear"], expected)
    np.testing.assert_array_equal(per_trial["y_fear"], [0, 3, -1] * 2)
    np.testing.assert_array_equal(per_trial["y_source"], [8, 2, 5] * 2)
    assert fs.info["recipe"]["name"] == "deap-teacher"
    assert fs.info["windowing"] == {"name": "seed-legacy", "length": 2.0, "step": 0.125}


def test_features_match_direct_computation():
    rec = deap_like(subjects=("s01",))
    fs = extract_features(rec, "deap-teacher", window=2.0, step=0.5, progress=False)
    trial = rec.load("s01").trials[1]
    starts = np.arange(384, 12 * 128 - 256 + 1, 64)
    power = sliding_band_power(trial.signals["eeg"].data, 128.0, starts, 256)
    rows = fs.select_rows((fs.metadata.trial == 2).to_numpy())
    np.testing.assert_allclose(rows.select_columns(["eeg:Cz:alpha"]).X[:, 0],
                               power[:, DEAP_EEG.index("Cz"), 1], rtol=1e-6)
    gsr = trial.channel("GSR")[0]
    windows = np.stack([gsr[s:s + 256] for s in starts])
    np.testing.assert_allclose(rows.select_columns(["gsr:GSR:mean", "gsr:GSR:var"]).X,
                               np.stack([windows.mean(1), windows.var(1)], 1), rtol=1e-6)


def test_student_columns_equal_teacher_columns_bitwise():
    rec = deap_like()
    teacher = extract_features(rec, "deap-teacher", window="seed-legacy", progress=False)
    student = extract_features(rec, "deap-student", window="seed-legacy", progress=False)
    assert student.n_features == 86
    same = teacher.select_columns(student.feature_names)
    assert np.array_equal(student.X, same.X)
    pd.testing.assert_frame_equal(student.metadata, teacher.metadata)


def test_multirate_ascertain_windows_align():
    rec = Recordings("ascertain", ["P01"], partial(_ascertain_subject, seconds=10.0))
    fs = extract_features(rec, "ascertain-teacher", window=2.0, step=0.5, progress=False)
    assert fs.n_features == 29 and len(fs) == 2 * 17
    trial = rec.load("P01").trials[0]
    rows = fs.select_rows((fs.metadata.trial == 1).to_numpy())
    t0 = rows.metadata["t_start"].to_numpy()
    for name, sfreq in (("ECG_L", 256.0), ("GSR", 128.0), ("accY", 128.0)):
        x = trial.channel(name)[0]
        start, n = np.rint(t0 * sfreq).astype(int), int(2.0 * sfreq)
        windows = np.stack([x[s:s + n] for s in start])
        modality = trial.channel_modality(name)
        np.testing.assert_allclose(rows.select_columns([f"{modality}:{name}:var"]).X[:, 0],
                                   windows.var(axis=1), rtol=1e-5)
    eeg = sliding_band_power(trial.signals["eeg"].data[:1], 32.0, np.rint(t0 * 32).astype(int),
                             64, {"theta": (4, 8), "alpha": (8, 12), "low_beta": (12, 16)})
    np.testing.assert_allclose(rows.X[:, :3], eeg.reshape(len(t0), 3), rtol=1e-6)
    # Every trial's ratings match the built-in ASCERTAIN "high" row.
    assert set(fs.metadata["y_fear"]) == {3}
    assert set(fs.metadata["y_source"]) == {5}


def test_reader_given_labels_are_used():
    rec = Recordings("stages", ["A"], _stage_subject)
    fs = extract_features(rec, "peripheral", window=4.0, step=4.0, progress=False)
    per_trial = fs.metadata.drop_duplicates("trial")
    np.testing.assert_array_equal(per_trial["y_fear"], [0, 2])
    np.testing.assert_array_equal(per_trial["y_source"], [10, 12])
    assert "gsr:EDA:scr_per_min" in fs.feature_names and "hr:hr:slope" in fs.feature_names


def test_baseline_subtract_and_divide():
    rec = deap_like(subjects=("s01",))
    kw = dict(window=2.0, step=1.0, progress=False)
    drop = extract_features(rec, "deap-student", **kw)
    sub = extract_features(rec, "deap-student", baseline="subtract", **kw)
    div = extract_features(rec, "deap-student", baseline="subtract", baseline_mode="divide", **kw)
    trial = rec.load("s01").trials[0]
    base = sliding_band_power(trial.signals["eeg"].pick(["AF3"]).data, 128.0,
                              np.array([0]), 384)[0, 0]
    mask = (drop.metadata.trial == 1).to_numpy()
    cols = [f"eeg:AF3:{b}" for b in ("theta", "alpha", "low_beta", "high_beta", "gamma")]
    d = drop.select_rows(mask).select_columns(cols).X.astype(np.float64)
    np.testing.assert_allclose(sub.select_rows(mask).select_columns(cols).X, d - base,
                               rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(div.select_rows(mask).select_columns(cols).X, d / base,
                               rtol=1e-4)
    # Peripheral features are not baseline-corrected.
    np.testing.assert_array_equal(sub.select_columns(["gsr:GSR:mean"]).X,
                                  drop.select_columns(["gsr:GSR:mean"]).X)


def test_cache_second_call_does_not_load(tmp_path):
    rec = deap_like()
    CALLS.clear()
    first = extract_features(rec, "deap-student", cache_dir=tmp_path, progress=False)
    assert CALLS == ["s01", "s02"]
    files = sorted(p.name for p in tmp_path.iterdir())
    assert len(files) == 2 and all(f.endswith(".npz") for f in files)
    CALLS.clear()
    second = extract_features(rec, "deap-student", cache_dir=tmp_path, progress=False)
    assert CALLS == []
    np.testing.assert_array_equal(first.X, second.X)
    pd.testing.assert_frame_equal(first.metadata, second.metadata, check_dtype=False)
    # A different recipe (or windowing) is a different key: computed again.
    extract_features(rec, "deap-student", method="welch", cache_dir=tmp_path, progress=False)
    assert CALLS == ["s01", "s02"]
    assert len(list(tmp_path.iterdir())) == 4
    extract_features(rec, "deap-student", window=2.0, cache_dir=tmp_path, progress=False)
    assert len(list(tmp_path.iterdir())) == 6
    assert not list(tmp_path.glob("*.tmp"))


def test_cache_key_follows_input_files(tmp_path):
    data = tmp_path / "s01.bin"
    data.write_bytes(b"x")
    rec = deap_like(subjects=("s01",), description={"files": [str(data)]})
    cache_dir = tmp_path / "cache"
    extract_features(rec, "deap-student", cache_dir=cache_dir, progress=False)
    data.write_bytes(b"xy")  # size changes -> new key
    CALLS.clear()
    extract_features(rec, "deap-student", cache_dir=cache_dir, progress=False)
    assert CALLS == ["s01"]
    assert len(list(cache_dir.iterdir())) == 2


def test_synthetic_deap_through_reader_in_parallel(tmp_path):
    from fearkd.datasets.deap import load_deap
    from fearkd.datasets.synthetic import write_deap

    root = write_deap(tmp_path / "deap", n_subjects=2, n_trials=3, seconds=10.0, seed=1)
    rec = load_deap(root)
    serial = extract_features(rec, "deap-teacher", window=2.0, step=1.0, progress=False)
    parallel = extract_features(rec, "deap-teacher", window=2.0, step=1.0, n_jobs=2,
                                progress=False, cache_dir=tmp_path / "cache")
    assert serial.X.shape == (2 * 3 * 6, 176)
    np.testing.assert_array_equal(serial.X, parallel.X)
    pd.testing.assert_frame_equal(serial.metadata, parallel.metadata, check_dtype=False)
    per_trial = serial.metadata.drop_duplicates(["subject", "trial"])
    np.testing.assert_array_equal(per_trial["y_fear"], labels.assign_fear(per_trial, "deap"))
    student = extract_features(rec, "deap-student", window=2.0, step=1.0, progress=False)
    assert np.array_equal(student.X, serial.select_columns(student.feature_names).X)


def test_synthetic_ascertain_through_reader(tmp_path):
    from fearkd.datasets.ascertain import load_ascertain
    from fearkd.datasets.synthetic import write_ascertain

    root = write_ascertain(tmp_path / "asc", n_subjects=1, n_clips=2, seconds=8.0, seed=2)
    rec = load_ascertain(root)
    fs = extract_features(rec, "ascertain-teacher", window=2.0, step=1.0, progress=False,
                          nan_policy="unlabelled")
    assert fs.n_features == 29 and len(fs) > 0
    assert fs.select_columns(["eeg:EEG1:low_beta", "ecg:ECG_L:var"]).n_features == 2
    with pytest.raises(ValueError, match="Band 'high_beta' .16-25 Hz. lies above the Nyquist"):
        extract_features(rec, Recipe("all-eeg", eeg=None), progress=False, window=2.0)


def test_synthetic_ascertain_held_rows_give_window_mean_and_logmean(tmp_path):
    """Rows 2-8 of the NeuroSky file hold a value for a second (the synthetic writer holds
    them like the headset): the presets take their window mean and log(1 + mean), and band
    power only from the raw row 1."""
    from fearkd.datasets.ascertain import load_ascertain
    from fearkd.datasets.synthetic import write_ascertain

    root = write_ascertain(tmp_path / "asc", n_subjects=1, n_clips=1, seconds=8.0, seed=4)
    rec = load_ascertain(root)
    fs = extract_features(rec, "ascertain-teacher", window=2.0, step=1.0, progress=False,
                          nan_policy="unlabelled")
    trial = rec.load(rec.subjects[0]).trials[0]
    rows = (fs.metadata["trial"] == trial.trial).to_numpy()
    starts = np.rint(fs.metadata["t_start"].to_numpy()[rows] * 32.0).astype(int)
    assert rows.sum() >= 4
    for i in range(2, 9):
        x = trial.channel(f"EEG{i}")[0]
        assert np.count_nonzero(np.diff(x)) <= len(x) / 32 + 1  # held for a second
        means = np.stack([x[s:s + 64] for s in starts]).mean(axis=1)
        got = fs.select_columns([f"eeg:EEG{i}:mean", f"eeg:EEG{i}:logmean"]).X[rows]
        np.testing.assert_allclose(got[:, 0], means, rtol=1e-5)
        np.testing.assert_allclose(got[:, 1], np.log1p(means), rtol=1e-5)
    assert [n for n in fs.feature_names if n.endswith(("theta", "alpha", "low_beta"))] == [
        "eeg:EEG1:theta", "eeg:EEG1:alpha", "eeg:EEG1:low_beta"]


def test_saved_features_reload(tmp_path):
    fs = extract_features(deap_like(subjects=("s01",)), "deap-student", progress=False)
    back = FeatureSet.load(fs.save(tmp_path / "f.npz"))
    np.testing.assert_array_equal(back.X, fs.X)
    assert back.info["recipe"]["name"] == "deap-student"


def test_bad_input():
    rec = deap_like(subjects=("s01",))
    with pytest.raises(ValueError, match=r"Unknown feature preset 'nope': expected one of"):
        extract_features(rec, "nope", progress=False)
    with pytest.raises(UnknownChannelError, match=r"names channel\(s\) \['EEG1'"):
        extract_features(rec, "ascertain-teacher", progress=False)
    with pytest.raises(ValueError, match=r"Window 'length' 20.0 s is longer than the trial"):
        extract_features(rec, "deap-student", window=20.0, progress=False)
    with pytest.raises(ValueError, match=r"Window 'step' must be a positive number"):
        extract_features(rec, "deap-student", window=2.0, step=0.0, progress=False)
    with pytest.raises(ValueError, match=r"Invalid value for 'baseline': expected one of"):
        extract_features(rec, "deap-student", baseline="ignore", progress=False)
    with pytest.raises(ValueError, match=r"Invalid value for 'baseline_mode'"):
        extract_features(rec, "deap-student", baseline_mode="ratio", progress=False)
    with pytest.raises(ValueError, match=r"'n_jobs' must be a non-zero integer"):
        extract_features(rec, "deap-student", n_jobs=0, progress=False)
    with pytest.raises(TypeError, match=r"'recordings' must be a fearkd Recordings"):
        extract_features([], "deap-student", progress=False)
    with pytest.raises(ValueError, match=r"'recordings' holds no subject"):
        extract_features(deap_like(subjects=()), "deap-student", progress=False)


def test_non_finite_input_names_trial_and_channel():
    rec = deap_like(subjects=("s01",), nan_trial=2)
    with pytest.raises(ValueError, match=r"Non-finite values \(NaN or inf\) in deap subject s01 "
                                         r"trial 2, channel\(s\) \['FC1'\]"):
        extract_features(rec, "deap-teacher", progress=False)


def test_baseline_subtract_needs_a_baseline():
    rec = Recordings("ascertain", ["P01"], partial(_ascertain_subject, seconds=10.0))
    with pytest.raises(ValueError, match=r"baseline='subtract' needs a pre-stimulus segment"):
        extract_features(rec, "ascertain-student", baseline="subtract", progress=False)


def _empty_subject(subject, report):
    return Subject("deap", subject, ())


def _changing_subject(subject, report):
    rng = np.random.default_rng(0)
    trials = [Trial("x", subject, i, {"gsr": Signal(rng.random((len(names), 64)), 8.0, names,
                                                      "gsr")})
              for i, names in ((1, ["EDA"]), (2, ["EDA", "EDA2"]))]
    return Subject("x", subject, tuple(trials))


def test_empty_and_inconsistent_subjects():
    with pytest.raises(ValueError, match=r"No trial in Recordings\(dataset='deap', n_subjects=1\)"):
        extract_features(Recordings("deap", ["s01"], _empty_subject), "deap-student",
                         progress=False)
    with pytest.raises(ValueError, match=r"x subject A trial 2 gives 4 features that differ from "
                                         r"the subject's first trial's 2"):
        extract_features(Recordings("x", ["A"], _changing_subject), Recipe("p", peripheral=None),
                         window=2.0, progress=False)


def test_log_transform_per_feature_family(tmp_path):
    """log=True: band power and variance logged with the stated floor, means untouched; the
    recipe records it and the cache keeps logged and raw features apart."""
    from fearkd.features.presets import VAR_LOG_FLOOR
    from fearkd.features.spectral import LOG_FLOOR

    rec = deap_like(subjects=("s01",))
    raw = extract_features(rec, "deap-student", log=False, cache_dir=tmp_path, progress=False)
    logged = extract_features(rec, "deap-student", log=True, cache_dir=tmp_path, progress=False)
    assert len(list(tmp_path.iterdir())) == 2  # two cache entries, not one
    assert raw.feature_names == logged.feature_names
    names = np.array(raw.feature_names)
    power = np.array([n.startswith("eeg:") for n in names])
    var, mean = np.char.endswith(names, ":var"), np.char.endswith(names, ":mean")
    assert power.sum() == 70 and var.sum() == 8 and mean.sum() == 8
    np.testing.assert_allclose(logged.X[:, power], np.log(raw.X[:, power]), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(logged.X[:, var], np.log(raw.X[:, var]), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(logged.X[:, mean], raw.X[:, mean])
    assert logged.info["recipe"]["log"] and logged.info["recipe"]["log_variance"]
    assert not raw.info["recipe"]["log_variance"]
    # the floor: a flat channel's zero variance and power give log(1e-12), not -inf
    flat = Recordings("deap", ("s01",), partial(_flat_subject))
    fs = extract_features(flat, "deap-student", log=True, progress=False)
    col = fs.feature_names.index("gsr:GSR:var")
    np.testing.assert_allclose(fs.X[:, col], np.log(VAR_LOG_FLOOR), rtol=1e-6)
    col = fs.feature_names.index("eeg:AF3:alpha")
    np.testing.assert_allclose(fs.X[:, col], np.log(LOG_FLOOR), rtol=1e-6)
    # differential entropy is already a log: only the variance is logged
    de = extract_features(rec, "deap-student", method="de", log=True, progress=False)
    assert not de.info["recipe"]["log"] and de.info["recipe"]["log_variance"]


def _flat_subject(subject, report):
    sub = _deap_subject(subject, report, seconds=12.0)
    trials = []
    for tr in sub.trials:
        signals = dict(tr.signals)
        eeg = signals["eeg"]
        data = eeg.data.copy()
        data[EEG_AF3] = 0.0
        signals["eeg"] = Signal(data, eeg.sfreq, eeg.ch_names, "eeg")
        gsr = signals["gsr"]
        signals["gsr"] = Signal(np.full_like(gsr.data, 4.0), gsr.sfreq, gsr.ch_names, "gsr")
        trials.append(Trial("deap", subject, tr.trial, signals, tr.ratings, onset=tr.onset))
    return Subject("deap", subject, tuple(trials))


EEG_AF3 = DEAP_EEG.index("AF3")


def test_baseline_keep_windows_the_pre_stimulus_segment_too():
    rec = deap_like(subjects=("s01",), seconds=12.0)
    kw = dict(window=2.0, step=0.125, progress=False)
    drop = extract_features(rec, "deap-student", **kw)
    keep = extract_features(rec, "deap-student", baseline="keep", **kw)
    t_keep = keep.metadata.loc[keep.metadata.trial == 1, "t_start"].to_numpy()
    t_drop = drop.metadata.loc[drop.metadata.trial == 1, "t_start"].to_numpy()
    # 12 s trial, onset 3 s: drop starts at 3.0 (73 windows), keep at 0.0 (97 windows)
    assert t_drop[0] == 3.0 and len(t_drop) == int((12 - 3 - 2) / 0.125) + 1
    assert t_keep[0] == 0.0 and len(t_keep) == int((12 - 2) / 0.125) + 1
    same = np.isin(t_keep, t_drop)  # windows after the onset are the same numbers
    np.testing.assert_allclose(keep.X[keep.metadata.trial.to_numpy() == 1][same],
                               drop.X[drop.metadata.trial.to_numpy() == 1], rtol=1e-5)
    with pytest.raises(ValueError, match="baseline"):
        extract_features(rec, "deap-student", baseline="kept", **kw)


def test_shipped_seed_legacy_config_runs_the_notebooks_pipeline():
    from pathlib import Path

    from fearkd.config import load_config

    cfg = load_config(Path(__file__).parents[1] / "configs" / "seed-legacy.toml")
    f = cfg.features
    assert (f.window, f.step, f.baseline, f.normalize) == (2.0, 0.125, "keep", "l2-rows")
    assert cfg.evaluation.protocol == "seed-legacy" and cfg.labels.source == "deap-arousal"
