"""Tests of the ASCERTAIN reader on hand-made files and on files from the synthetic writer."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import scipy.io

from fearkd.datasets.ascertain import (
    DEFAULT_EEG_NAMES,
    RATING_NAMES,
    align_clip,
    load_ascertain,
    read_mat_variable,
)
from fearkd.datasets.synthetic.ascertain import write_ascertain
from fearkd.errors import DatasetNotFoundError, FormatError, UnknownChannelError

RATES = {"eeg": 32.0, "ecg": 256.0, "gsr": 128.0}


# ---------------------------------------------------------------- hand-made fixture files
def _ecg_table(n: int, t0: float, columns: int = 3) -> np.ndarray:
    """ECG table whose ECG_R column is the row index and ECG_L minus the row index."""
    t = t0 + np.arange(n) * 1000.0 / 256.0
    idx = np.arange(n, dtype=float)
    if columns == 3:
        return np.column_stack([t, idx, -idx])
    acc = np.zeros((n, 3))
    return np.column_stack([t, acc, idx, -idx])


def _gsr_table(n: int, t0: float) -> np.ndarray:
    t = t0 + np.arange(n) * 1000.0 / 128.0
    idx = np.arange(n, dtype=float)
    return np.column_stack([t, idx + 1, idx + 2, idx + 3, 100.0 + idx])


def _eeg_array(n: int, rows: int = 8) -> np.ndarray:
    return np.arange(n, dtype=float)[None, :] + 1000.0 * np.arange(rows)[:, None]


def _write_clip(root, subject: int, clip: int, eeg=None, ecg=None, gsr=None) -> None:
    """Write the three files of one clip (10 s, overlapping t_ms) unless given explicitly."""
    eeg = _eeg_array(320) if eeg is None else eeg
    ecg = _ecg_table(2560, 0.0) if ecg is None else ecg
    gsr = _gsr_table(1280, 0.0) if gsr is None else gsr
    for prefix, var, value in (("EEG", "ThisEEG", eeg), ("ECG", "Data_ECG", ecg),
                               ("GSR", "Data_GSR", gsr)):
        folder = root / "ASCERTAIN_Raw" / f"{prefix}Data" / f"Movie_P{subject:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        scipy.io.savemat(folder / f"{prefix}_Clip{clip}.mat", {var: value})


def _write_ratings(root, ratings: np.ndarray, perm: np.ndarray | None = None) -> None:
    folder = root / "ASCERTAIN_Features"
    folder.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(folder / "Dt_SelfReports.mat", {"Ratings": ratings})
    if perm is not None:
        scipy.io.savemat(folder / "Dt_Order_Movie.mat", {"PermutationList": perm})


def _hand_dataset(root, n_subjects: int = 1, n_clips: int = 2) -> np.ndarray:
    """Clips with default files; ratings[r, s, c] = distinct in-scale numbers."""
    for s in range(1, n_subjects + 1):
        for c in range(1, n_clips + 1):
            _write_clip(root, s, c)
    ratings = np.zeros((5, n_subjects, n_clips))
    ratings[0] = np.arange(n_subjects * n_clips).reshape(n_subjects, n_clips) % 7
    ratings[1] = -3.0 + ratings[0] % 7
    ratings[2:] = 4.0
    _write_ratings(root, ratings)
    return ratings


# ---------------------------------------------------------------- alignment (hand computed)
def test_align_clip_crops_to_common_timestamp_span_then_from_the_end():
    # ECG starts at 1000 ms (10 s), GSR at 1500 ms (10 s), EEG 12 s without timestamps.
    ecg = _ecg_table(2560, 1000.0)
    gsr = _gsr_table(1280, 1500.0)
    eeg = _eeg_array(384)
    eeg_a, ecg_a, gsr_a, how = align_clip(eeg, ecg, gsr, RATES)
    assert how == "t_ms"
    # Shared span [1500, 11000) ms: ECG rows 128.. (t = 1500 ms) to its end; GSR rows whose
    # 7.8125 ms interval has its middle before 11000 ms.
    assert ecg_a[0, 0] == pytest.approx(1500.0)
    assert ecg_a[:, 1].tolist() == list(range(128, 2560))  # 2432 rows = 9.5 s
    dt = 1000.0 / 128.0
    n_gsr = int(np.ceil((11000.0 - dt / 2 - 1500.0) / dt))  # rows i with 1500 + i dt + dt/2 < 11000
    assert gsr_a.shape[0] == n_gsr == 1216
    assert gsr_a[0, 0] == pytest.approx(1500.0)
    # EEG keeps its last 9.5 s.
    assert eeg_a.shape == (8, 304)
    assert eeg_a[0, 0] == 384 - 304 and eeg_a[0, -1] == 383


def test_align_clip_without_overlap_falls_back_to_the_end():
    ecg = _ecg_table(2560, 0.0)
    gsr = _gsr_table(640, 1e9)  # another clock: 5 s, no overlap
    eeg, ecg_a, gsr_a, how = align_clip(_eeg_array(320), ecg, gsr, RATES)
    assert how == "end"
    assert (eeg.shape[1], ecg_a.shape[0], gsr_a.shape[0]) == (160, 1280, 640)
    assert ecg_a[0, 1] == 2560 - 1280


def test_hand_dataset_round_trip_values_and_invariant(tmp_path):
    ratings = _hand_dataset(tmp_path, n_subjects=2, n_clips=2)
    _write_clip(tmp_path, 2, 2, ecg=_ecg_table(2560, 0.0, columns=6),
                gsr=_gsr_table(1300, -100.0))
    rec = load_ascertain(tmp_path)
    assert rec.subjects == ("P01", "P02")
    subj = rec.load("P02")
    assert [t.trial for t in subj] == [1, 2]
    trial = subj.trials[1]
    assert trial.info["ecg_columns"] == 6 and trial.info["alignment"] == "t_ms"
    assert trial.ratings == dict(zip(RATING_NAMES, ratings[:, 1, 1], strict=True))
    ecg, fs = trial.channel("ECG_R")
    assert fs == 256.0 and ecg[0] == 0.0  # GSR started earlier: ECG kept from its first row
    assert np.array_equal(trial.channel("ECG_L")[0], -ecg)
    gsr, fs_gsr = trial.channel("GSR")
    assert fs_gsr == 128.0
    # GSR t = -100 + i * 7.8125 >= 0 first at i = 13: its first kept row.
    assert gsr[0] == 100.0 + 13
    assert trial.channel("accY")[0][0] == 13 + 2
    durations = [s.duration for s in trial.signals.values()]
    assert max(durations) - min(durations) < 1 / 32
    assert trial.onset == 0.0


def test_clip_and_presentation_rating_order(tmp_path):
    for c in (1, 2, 3):
        _write_clip(tmp_path, 1, c)
    ratings = np.zeros((5, 1, 3))
    ratings[0, 0] = [1.0, 2.0, 3.0]  # by viewing position
    perm = np.array([[3.0, 1.0, 2.0]])  # shown first: clip 3, then clip 1, then clip 2
    _write_ratings(tmp_path, ratings, perm)
    by_clip = {t.trial: t.ratings["arousal"] for t in load_ascertain(tmp_path).load("P01")}
    assert by_clip == {1: 1.0, 2: 2.0, 3: 3.0}
    trials = load_ascertain(tmp_path, rating_order="presentation").load("P01").trials
    assert {t.trial: t.ratings["arousal"] for t in trials} == {3: 1.0, 1: 2.0, 2: 3.0}
    assert {t.trial: t.info["presentation_position"] for t in trials} == {3: 1, 1: 2, 2: 3}


def test_nan_ratings_are_kept(tmp_path):
    ratings = _hand_dataset(tmp_path, n_clips=1)
    ratings[3, 0, 0] = np.nan
    _write_ratings(tmp_path, ratings)
    trial = load_ascertain(tmp_path).load("P01").trials[0]
    assert np.isnan(trial.ratings["liking"]) and trial.ratings["engagement"] == 4.0


def test_subjects_channels_eeg_names_and_pickle(tmp_path):
    _hand_dataset(tmp_path, n_subjects=3, n_clips=1)
    rec = load_ascertain(tmp_path, subjects=[3, "P1"], channels=["GSR", "A2"],
                         eeg_names=[f"A{i}" for i in range(8)])
    assert rec.subjects == ("P03", "P01")
    trial = pickle.loads(pickle.dumps(rec)).load("P03").trials[0]
    assert trial.modalities == ("eeg", "gsr") and trial.ch_names == ("A2", "GSR")
    assert np.array_equal(trial.channel("A2")[0], _eeg_array(320)[2])


def test_stray_files_and_emo_folder_are_ignored(tmp_path):
    _hand_dataset(tmp_path, n_clips=1)
    (tmp_path / "ASCERTAIN_Raw" / "EEGData" / ".DS_Store").write_bytes(b"\0\1")
    (tmp_path / "ASCERTAIN_Raw" / "EEGData" / "Movie_P01" / ".DS_Store").write_bytes(b"\0")
    emo = tmp_path / "ASCERTAIN_Raw" / "EMOData" / "Movie_P01"
    emo.mkdir(parents=True)
    (emo / "EMO_Clip1.mat").write_bytes(b"junk")
    rec = load_ascertain(tmp_path)
    assert [len(s) for s in rec] == [1] and not rec.report


# ---------------------------------------------------------------- repairs and skips
def test_nine_row_eeg_and_nan_rows_are_repaired_and_reported(tmp_path):
    _hand_dataset(tmp_path, n_clips=1)
    eeg = _eeg_array(320, rows=9)
    eeg[3, 5] = np.nan
    gsr = _gsr_table(1280, 0.0)
    gsr[[10, 20, 30], 4] = np.nan
    _write_clip(tmp_path, 1, 1, eeg=eeg, gsr=gsr)
    rec = load_ascertain(tmp_path)
    trial = rec.load("P01").trials[0]
    assert trial.signals["eeg"].n_chans == 8
    whats = {(r["what"], r["count"]) for r in rec.report.repaired}
    assert whats == {("kept the first 8 of 9 EEG rows", 1),
                     ("dropped EEG samples with NaN/inf", 1),
                     ("dropped Data_GSR rows with NaN/inf", 3)}
    assert np.isfinite(trial.signals["gsr"].data).all()
    assert all(r["subject"] == "P01" and r["trial"] == 1 for r in rec.report.repaired)


def test_missing_file_skips_clip_or_raises_when_strict(tmp_path):
    _hand_dataset(tmp_path, n_clips=2)
    (tmp_path / "ASCERTAIN_Raw" / "GSRData" / "Movie_P01" / "GSR_Clip2.mat").unlink()
    rec = load_ascertain(tmp_path)
    assert [t.trial for t in rec.load("P01")] == [1]
    (skip,) = rec.report.skipped
    assert skip["trial"] == 2 and "GSR_Clip2.mat" in skip["reason"]
    with pytest.raises(DatasetNotFoundError, match=r"clip 2: missing file.*GSR_Clip2\.mat"):
        load_ascertain(tmp_path, strict=True).load("P01")


def test_subject_without_any_clip_is_reported(tmp_path):
    _hand_dataset(tmp_path, n_subjects=2, n_clips=1)
    (tmp_path / "ASCERTAIN_Raw" / "ECGData" / "Movie_P02" / "ECG_Clip1.mat").unlink()
    rec = load_ascertain(tmp_path)
    assert len(rec.load("P02")) == 0
    assert [(s["subject"], s["trial"]) for s in rec.report.skipped] == [("P02", 1), ("P02", None)]


def test_corrupt_and_four_column_files_are_skipped_or_raise(tmp_path):
    _hand_dataset(tmp_path, n_clips=3)
    ecg_dir = tmp_path / "ASCERTAIN_Raw" / "ECGData" / "Movie_P01"
    (ecg_dir / "ECG_Clip2.mat").write_bytes(b"MATLAB 5.0 but not really" * 8)
    _write_clip(tmp_path, 1, 3, ecg=np.zeros((2560, 4)))
    rec = load_ascertain(tmp_path)
    assert [t.trial for t in rec.load("P01")] == [1]
    reasons = [s["reason"] for s in rec.report.skipped]
    assert "not a readable MATLAB v5 file" in reasons[0]
    assert "(L, 6) or (L, 3)" in reasons[1]
    strict = load_ascertain(tmp_path, strict=True)
    with pytest.raises(FormatError, match=r"ECG_Clip2\.mat: not a readable MATLAB v5 file"):
        strict.load("P01")
    (ecg_dir / "ECG_Clip2.mat").unlink()
    (tmp_path / "ASCERTAIN_Raw" / "EEGData" / "Movie_P01" / "EEG_Clip2.mat").unlink()
    (tmp_path / "ASCERTAIN_Raw" / "GSRData" / "Movie_P01" / "GSR_Clip2.mat").unlink()
    with pytest.raises(
        FormatError, match=r"ECG_Clip3\.mat: 'Data_ECG' has shape \(2560, 4\); expected"
    ):
        load_ascertain(tmp_path, strict=True).load("P01")


def test_damaged_compressed_file_is_a_format_error(tmp_path):
    path = tmp_path / "x.mat"
    scipy.io.savemat(path, {"ThisEEG": np.random.default_rng(0).random((8, 500))},
                     do_compression=True)
    data = bytearray(path.read_bytes())
    data[300:350] = b"\xff" * 50
    path.write_bytes(bytes(data))
    with pytest.raises(FormatError, match=r"x\.mat: not a readable MATLAB v5 file \(error"):
        read_mat_variable(path, "ThisEEG")
    path.write_bytes(b"MATLAB 7.3 MAT-file".ljust(124) + b"\x00\x02IM" + bytes(400))
    with pytest.raises(FormatError, match=r"x\.mat: MATLAB v7\.3 \(HDF5\) file; ASCERTAIN"):
        read_mat_variable(path, "ThisEEG")
    with pytest.raises(DatasetNotFoundError, match=r"Missing file .*y\.mat"):
        read_mat_variable(tmp_path / "y.mat", "ThisEEG")


def test_bad_eeg_shape_and_missing_variable(tmp_path):
    _hand_dataset(tmp_path, n_clips=1)
    _write_clip(tmp_path, 1, 1, eeg=np.zeros((7, 320)))
    with pytest.raises(FormatError, match=r"'ThisEEG' has shape \(7, 320\); expected \(8, L\)"):
        load_ascertain(tmp_path, strict=True).load("P01")
    path = tmp_path / "ASCERTAIN_Raw" / "EEGData" / "Movie_P01" / "EEG_Clip1.mat"
    scipy.io.savemat(path, {"Other": np.zeros(3)})
    with pytest.raises(FormatError, match=r"variable 'ThisEEG' not found \(found \['Other'\]\)"):
        read_mat_variable(path, "ThisEEG")
    scipy.io.savemat(path, {"ThisEEG": "text"})
    with pytest.raises(FormatError, match="must be a numeric array"):
        read_mat_variable(path, "ThisEEG")


# ---------------------------------------------------------------- errors at open time
def test_missing_root_and_empty_root(tmp_path):
    with pytest.raises(DatasetNotFoundError, match=r"No ASCERTAIN folder at .*EEG_Clip1\.mat"):
        load_ascertain(tmp_path / "nope")
    with pytest.raises(DatasetNotFoundError, match=r"No ASCERTAIN files under .*Movie_P01"):
        load_ascertain(tmp_path)
    _hand_dataset(tmp_path, n_clips=1)
    with pytest.raises(DatasetNotFoundError, match="looks like ASCERTAIN_Raw: pass its parent"):
        load_ascertain(tmp_path / "ASCERTAIN_Raw")


def test_missing_self_reports_and_order_file(tmp_path):
    _hand_dataset(tmp_path, n_clips=1)
    with pytest.raises(DatasetNotFoundError, match=r"Missing clip order .*Dt_Order_Movie\.mat"):
        load_ascertain(tmp_path, rating_order="presentation")
    (tmp_path / "ASCERTAIN_Features" / "Dt_SelfReports.mat").unlink()
    with pytest.raises(DatasetNotFoundError, match=r"Missing self-reports .*Dt_SelfReports\.mat"):
        load_ascertain(tmp_path)


@pytest.mark.parametrize(
    "shape", [(4, 2, 3), (5, 1, 3), (5, 2, 2), (5, 6)], ids=["ratings", "subjects", "clips", "2d"]
)
def test_ratings_of_wrong_shape(tmp_path, shape):
    _hand_dataset(tmp_path, n_subjects=2, n_clips=3)
    _write_ratings(tmp_path, np.zeros(shape))
    with pytest.raises(
        FormatError, match=r"Dt_SelfReports\.mat: 'Ratings' has shape .*S >= 2 and C >= 3"
    ):
        load_ascertain(tmp_path)


def test_corrupt_self_reports(tmp_path):
    _hand_dataset(tmp_path, n_clips=1)
    (tmp_path / "ASCERTAIN_Features" / "Dt_SelfReports.mat").write_bytes(b"\x00" * 300)
    with pytest.raises(FormatError, match=r"Dt_SelfReports\.mat: not a readable MATLAB v5"):
        load_ascertain(tmp_path)


@pytest.mark.parametrize(("row", "value"), [(0, 7.0), (1, -4.0), (4, -1.0)])
def test_rating_out_of_scale(tmp_path, row, value):
    ratings = _hand_dataset(tmp_path, n_subjects=2, n_clips=2)
    ratings[row, 1, 0] = value
    _write_ratings(tmp_path, ratings)
    name = RATING_NAMES[row]
    with pytest.raises(
        FormatError,
        match=rf"Dt_SelfReports\.mat: {name} rating of subject P02, clip axis position 1 is "
        rf"{value!r}, outside the {name} scale",
    ):
        load_ascertain(tmp_path)


def test_bad_permutation_list(tmp_path):
    _hand_dataset(tmp_path, n_clips=2)
    ratings = np.zeros((5, 1, 2))
    _write_ratings(tmp_path, ratings, np.array([[1.0, 1.0]]))
    with pytest.raises(FormatError, match=r"row 1 \(subject P01\) of 'PermutationList'"):
        load_ascertain(tmp_path, rating_order="presentation")
    _write_ratings(tmp_path, ratings, np.array([[1.0, 2.0, 3.0]]))
    with pytest.raises(FormatError, match=r"'PermutationList' has shape \(1, 3\); expected"):
        load_ascertain(tmp_path, rating_order="presentation")


def test_bad_arguments(tmp_path):
    _hand_dataset(tmp_path, n_clips=1)
    with pytest.raises(UnknownChannelError, match=r"Unknown ASCERTAIN channel\(s\) \['Fp1'\]"):
        load_ascertain(tmp_path, channels=["GSR", "Fp1"])
    with pytest.raises(ValueError, match="Invalid value for 'rating_order'"):
        load_ascertain(tmp_path, rating_order="viewing")
    with pytest.raises(ValueError, match=r"'P09' has no files under"):
        load_ascertain(tmp_path, subjects=["P09"])
    with pytest.raises(ValueError, match=r"Invalid subject id 'S1'"):
        load_ascertain(tmp_path, subjects=["S1"])
    with pytest.raises(ValueError, match="'subjects' is empty"):
        load_ascertain(tmp_path, subjects=[])
    with pytest.raises(ValueError, match="Invalid value for 'eeg_names'"):
        load_ascertain(tmp_path, eeg_names=["GSR"] + list(DEFAULT_EEG_NAMES[1:]))
    with pytest.raises(TypeError, match="'eeg_names' must be a sequence of 8 str"):
        load_ascertain(tmp_path, eeg_names="EEG")
    with pytest.raises(ValueError, match=r"'channels' must name at least one channel"):
        load_ascertain(tmp_path, channels=[])
    with pytest.raises(TypeError, match="'channels' must be channel names"):
        load_ascertain(tmp_path, channels=[1])
    with pytest.raises(TypeError, match="'root' must be a path"):
        load_ascertain(3)
    with pytest.raises(TypeError, match="'strict' must be True or False"):
        load_ascertain(tmp_path, strict=1)
    with pytest.raises(TypeError, match="'sfreq' must be a mapping"):
        load_ascertain(tmp_path, sfreq=32)
    with pytest.raises(ValueError, match=r"Invalid entry in 'sfreq': 'eeg': 0"):
        load_ascertain(tmp_path, sfreq={"eeg": 0})
    rec = load_ascertain(tmp_path, sfreq={"eeg": 64})
    trial = rec.load("P01").trials[0]
    assert trial.signals["eeg"].sfreq == 64.0 and rec.description["sfreq"]["eeg"] == 64.0


# ---------------------------------------------------------------- round trip on synthetic files
@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """Nine subjects (3-column ECG for P01-P08, 6-column for P09), two short clips each."""
    return write_ascertain(tmp_path_factory.mktemp("asc"), n_subjects=9, n_clips=2,
                           seconds=6.0, seed=1)


def _clean(table: np.ndarray) -> np.ndarray:
    return table[np.isfinite(table).all(axis=1)]


def test_synthetic_round_trip(synthetic):
    ratings = scipy.io.loadmat(synthetic / "ASCERTAIN_Features" / "Dt_SelfReports.mat")["Ratings"]
    rec = load_ascertain(synthetic)
    assert rec.dataset == "ascertain" and rec.subjects == tuple(f"P{i:02d}" for i in range(1, 10))
    raw = synthetic / "ASCERTAIN_Raw"
    for subject in rec:
        s = int(subject.subject[1:])
        assert [t.trial for t in subject] == [1, 2]
        for trial in subject:
            sig = trial.signals
            assert {m: (x.sfreq, x.ch_names) for m, x in sig.items()} == {
                "eeg": (32.0, DEFAULT_EEG_NAMES), "ecg": (256.0, ("ECG_R", "ECG_L")),
                "gsr": (128.0, ("GSR",)), "acc": (128.0, ("accX", "accY", "accZ"))}
            durations = [x.duration for x in sig.values()]
            assert max(durations) - min(durations) < 1 / 32 and trial.onset == 0.0
            expected = ratings[:, s - 1, trial.trial - 1]
            got = np.array([trial.ratings[n] for n in RATING_NAMES])
            assert np.array_equal(got, expected, equal_nan=True)
            # Sensors stop with the clip, so the reader keeps each file's last rows.
            ecg = _clean(scipy.io.loadmat(raw / f"ECGData/Movie_P{s:02d}/ECG_Clip{trial.trial}.mat")
                         ["Data_ECG"])
            gsr = _clean(scipy.io.loadmat(raw / f"GSRData/Movie_P{s:02d}/GSR_Clip{trial.trial}.mat")
                         ["Data_GSR"])
            assert trial.info["ecg_columns"] == ecg.shape[1] == (3 if s <= 8 else 6)
            right, left = (1, 2) if s <= 8 else (4, 5)
            n_ecg, n_gsr = sig["ecg"].n_times, sig["gsr"].n_times
            assert np.array_equal(sig["ecg"].data, ecg[-n_ecg:, [right, left]].T)
            assert np.array_equal(sig["gsr"].data[0], gsr[-n_gsr:, 4])
            assert np.array_equal(sig["acc"].data, gsr[-n_gsr:, 1:4].T)
            assert trial.info["alignment"] == "t_ms"
            # The kept span lies inside both sensors' recordings.
            assert n_ecg <= ecg.shape[0] and n_gsr <= gsr.shape[0]


def test_synthetic_repairs_match_the_files(synthetic):
    expected = set()
    for path in sorted((synthetic / "ASCERTAIN_Raw").rglob("*.mat")):
        prefix = path.name.split("_")[0]
        var = {"EEG": "ThisEEG", "ECG": "Data_ECG", "GSR": "Data_GSR"}[prefix]
        data = scipy.io.loadmat(path)[var]
        if prefix == "EEG":
            if data.shape[0] == 9:
                expected.add((str(path), "kept the first 8 of 9 EEG rows", 1))
            n_bad = int((~np.isfinite(data[:8]).all(axis=0)).sum())
            what = "dropped EEG samples with NaN/inf"
        else:
            n_bad = int((~np.isfinite(data).all(axis=1)).sum())
            what = f"dropped {var} rows with NaN/inf"
        if n_bad:
            expected.add((str(path), what, n_bad))
    rec = load_ascertain(synthetic)
    for _ in rec:
        pass
    got = {(r["file"], r["what"], r["count"]) for r in rec.report.repaired}
    assert got == expected
    assert any("9 EEG rows" in e[1] for e in expected) and any("Data_" in e[1] for e in expected)
    assert not rec.report.skipped


def test_synthetic_presentation_order(synthetic):
    ratings = scipy.io.loadmat(synthetic / "ASCERTAIN_Features" / "Dt_SelfReports.mat")["Ratings"]
    perm = scipy.io.loadmat(synthetic / "ASCERTAIN_Features" / "Dt_Order_Movie.mat")[
        "PermutationList"]
    rec = load_ascertain(synthetic, rating_order="presentation", subjects=["P04"],
                         channels=["GSR"])
    for trial in rec.load("P04"):
        k = int(np.flatnonzero(perm[3] == trial.trial)[0])
        got = np.array([trial.ratings[n] for n in RATING_NAMES])
        assert np.array_equal(got, ratings[:, 3, k], equal_nan=True)
        assert trial.info["presentation_position"] == k + 1
        assert trial.ch_names == ("GSR",)


def test_synthetic_missing_file_skip_strict_and_lazy(tmp_path):
    root = write_ascertain(tmp_path, n_subjects=2, n_clips=2, seconds=5.0, seed=2)
    (root / "ASCERTAIN_Raw" / "EEGData" / "Movie_P01" / "EEG_Clip1.mat").unlink()
    rec = load_ascertain(root)
    strict = load_ascertain(root, strict=True)
    # Nothing is read before a subject is loaded: a file removed now is noticed later.
    (root / "ASCERTAIN_Raw" / "ECGData" / "Movie_P02" / "ECG_Clip2.mat").unlink()
    assert [[t.trial for t in s] for s in rec] == [[2], [1]]
    assert [(s["subject"], s["trial"]) for s in rec.report.skipped] == [("P01", 1), ("P02", 2)]
    assert "EEG_Clip1.mat" in rec.report.skipped[0]["reason"]
    with pytest.raises(DatasetNotFoundError, match=r"Subject P01 clip 1: missing file.*EEG_Clip1"):
        next(iter(strict))
