"""DEAP reader: layout, ids, channels, laziness, formats and every malformed-file error."""

from __future__ import annotations

import math
import pickle
import shutil

import numpy as np
import pytest
import scipy.io

import fearkd.datasets.deap as deap
from fearkd.datasets.deap import CHANNELS, EEG_CHANNELS, load_deap
from fearkd.datasets.synthetic.deap import write_dat_file, write_deap
from fearkd.errors import DatasetNotFoundError, FormatError, UnknownChannelError, UnsafeFileError

N_SUBJECTS, N_TRIALS, SECONDS = 3, 5, 4.0
N_TIMES = int(SECONDS * 128)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return write_deap(
        tmp_path_factory.mktemp("deap"), n_subjects=N_SUBJECTS, n_trials=N_TRIALS,
        seconds=SECONDS, fmt="both", seed=1,
    )


@pytest.fixture
def one(tmp_path):
    """A folder with one subject's valid arrays, written on demand by the test."""
    folder = tmp_path / "data_preprocessed_python"
    folder.mkdir()
    rng = np.random.default_rng(0)
    data = rng.standard_normal((4, 40, 500))
    labels = rng.uniform(1, 9, (4, 4))
    return tmp_path, folder, data, labels


def test_layout_ids_and_metadata(root):
    rec = load_deap(root)
    assert rec.dataset == "deap" and rec.subjects == ("s01", "s02", "s03")
    assert rec.description["format"] == "dat" and rec.description["sfreq"] == 128.0
    subject = rec.load("s02")
    assert [t.trial for t in subject] == [1, 2, 3, 4, 5]
    trial = subject.trials[0]
    assert trial.onset == 3.0 and trial.subject == "s02"
    assert trial.signals["eeg"].ch_names == EEG_CHANNELS
    expected = {"eog": ("hEOG", "vEOG"), "emg": ("zEMG", "tEMG"), "gsr": ("GSR",),
                "resp": ("Resp",), "ppg": ("PPG",), "temp": ("Temp",)}
    for mod, names in expected.items():
        assert trial.signals[mod].ch_names == names
    assert all(s.sfreq == 128.0 and s.n_times == N_TIMES for s in trial.signals.values())
    assert set(trial.ratings) == {"valence", "arousal", "dominance", "liking", "familiarity"}
    assert 1 <= trial.info["presentation"] <= N_TRIALS


def test_signals_match_the_file_read_by_plain_pickle(root):
    with open(root / "data_preprocessed_python" / "s03.dat", "rb") as f:
        ref = pickle.load(f, encoding="latin1")
    subject = load_deap(root, subjects=[3]).load("s03")
    for i, trial in enumerate(subject):
        np.testing.assert_array_equal(trial.signals["eeg"].data, ref["data"][i, :32])
        np.testing.assert_array_equal(trial.channel("GSR")[0], ref["data"][i, 36])
        np.testing.assert_array_equal(trial.channel("Temp")[0], ref["data"][i, 39])
        assert [trial.ratings[k] for k in deap.RATINGS] == ref["labels"][i].tolist()
    # views into the subject's array, not copies
    assert subject.trials[0].signals["eeg"].data.base is not None


def test_mat_and_dat_give_the_same_trials(root):
    a = load_deap(root, subjects="s01", fmt="dat").load("s01")
    b = load_deap(root, subjects="s01", fmt="mat").load("s01")
    for ta, tb in zip(a, b, strict=True):
        np.testing.assert_array_equal(ta.signals["eeg"].data, tb.signals["eeg"].data)
        assert dict(ta.ratings) == dict(tb.ratings)
    assert b.trials[0].signals["eeg"].data.flags.c_contiguous


def test_auto_falls_back_to_mat(root, tmp_path):
    shutil.copytree(root / "data_preprocessed_matlab", tmp_path / "data_preprocessed_matlab")
    rec = load_deap(tmp_path)
    assert rec.description["format"] == "mat" and rec.subjects == ("s01", "s02", "s03")
    assert "familiarity" not in rec.load("s01").trials[0].ratings
    with pytest.raises(DatasetNotFoundError, match=r"expected data_preprocessed_python/s01\.dat"):
        load_deap(tmp_path, fmt="dat")


def test_familiarity_blank_for_participant_2_is_nan(root):
    trial = load_deap(root, subjects=[2]).load("s02").trials[0]
    assert math.isnan(trial.ratings["familiarity"])
    other = load_deap(root, subjects=[1]).load("s01").trials[0]
    assert other.ratings["familiarity"] in {1.0, 2.0, 3.0, 4.0, 5.0}


def test_subject_selection(root):
    assert load_deap(root, subjects=[3, "s01"]).subjects == ("s03", "s01")
    assert load_deap(root, subjects=2).subjects == ("s02",)
    with pytest.raises(ValueError, match=r"Invalid subject 33 in \[dataset\] subjects: "
                                         r"expected a subject number 1-32"):
        load_deap(root, subjects=[33])
    with pytest.raises(ValueError, match=r"Invalid subject 'S1'"):
        load_deap(root, subjects=["S1"])
    with pytest.raises(TypeError, match=r"Invalid subject True \(bool\)"):
        load_deap(root, subjects=[True])
    with pytest.raises(TypeError, match=r"'subjects' must be None"):
        load_deap(root, subjects=1.5)
    with pytest.raises(ValueError, match=r"Duplicate subjects"):
        load_deap(root, subjects=[1, "s01"])
    with pytest.raises(DatasetNotFoundError, match=r"No DEAP file for subject\(s\) \['s09'\]"):
        load_deap(root, subjects=[9])
    with pytest.raises(ValueError, match=r"'subjects' is empty; pass None"):
        load_deap(root, subjects=[])


def test_channel_selection(root):
    trial = load_deap(root, subjects=[1], channels=["F4", "GSR", "F3"]).load("s01").trials[0]
    assert trial.modalities == ("eeg", "gsr")
    assert trial.signals["eeg"].ch_names == ("F4", "F3")
    full = load_deap(root, subjects=[1]).load("s01").trials[0]
    np.testing.assert_array_equal(trial.channel("F3")[0], full.channel("F3")[0])
    with pytest.raises(UnknownChannelError, match=r"Unknown DEAP channel\(s\) \['Fpz'\].*'Fp1'"):
        load_deap(root, channels=["Fpz"])
    with pytest.raises(TypeError, match=r"'channels' must be a list of channel names, got str"):
        load_deap(root, channels="GSR")
    with pytest.raises(ValueError, match=r"Duplicate channel names"):
        load_deap(root, channels=["GSR", "GSR"])
    with pytest.raises(ValueError, match=r"'channels' is empty; pass None for all channels"):
        load_deap(root, channels=[])


def test_lazy_one_file_per_step_and_picklable_loader(root, monkeypatch):
    calls = []
    real = deap.read_deap_file
    monkeypatch.setattr(deap, "read_deap_file", lambda p: calls.append(p) or real(p))
    rec = load_deap(root)
    assert calls == []
    it = iter(rec)
    next(it)
    assert len(calls) == 1 and calls[0].endswith("s01.dat")
    next(it)
    assert len(calls) == 2
    monkeypatch.undo()
    clone = pickle.loads(pickle.dumps(rec._load_subject))
    assert clone("s01", rec.report).subject == "s01"


def test_missing_or_empty_root(tmp_path):
    with pytest.raises(
        DatasetNotFoundError,
        match=r"No DEAP files under '.*': expected data_preprocessed_python/s01\.dat \.\.\. "
        r"or data_preprocessed_matlab/s01\.mat \.\.\.",
    ):
        load_deap(tmp_path)
    with pytest.raises(DatasetNotFoundError, match=r"DEAP root '.*nope' is not a folder"):
        load_deap(tmp_path / "nope")
    with pytest.raises(TypeError, match=r"'root' must be a path, got int"):
        load_deap(3)


def test_invalid_options(root):
    with pytest.raises(ValueError, match=r"Invalid value for 'fmt': expected one of 'auto'"):
        load_deap(root, fmt="pickle")
    with pytest.raises(ValueError, match=r"Invalid value for 'nan_policy'.*got 'drop'"):
        load_deap(root, nan_policy="drop")


def _load_s01(root, **kw):
    return load_deap(root, **kw).load("s01")


@pytest.mark.parametrize(
    ("data_shape", "labels_shape", "match"),
    [
        ((4, 32, 500), (4, 4), r"s01\.dat: 'data' has shape \(4, 32, 500\); a DEAP file has "
                               r"\(40, 40, 8064\) \(trial, channel, time\)"),
        ((40, 500), (4, 4), r"'data' has shape \(40, 500\)"),
        ((41, 40, 500), (41, 4), r"'data' has shape \(41, 40, 500\)"),
        ((4, 40, 300), (4, 4), r"'data' has shape \(4, 40, 300\).*more than 384 samples"),
        ((4, 40, 500), (3, 4), r"s01\.dat: 'labels' has shape \(3, 4\); expected \(4, 4\)"),
        ((4, 40, 500), (4, 5), r"'labels' has shape \(4, 5\)"),
    ],
)
def test_wrong_shapes(one, data_shape, labels_shape, match):
    root, folder, _, _ = one
    write_dat_file(folder / "s01.dat", {"data": np.zeros(data_shape),
                                        "labels": np.full(labels_shape, 5.0)})
    with pytest.raises(FormatError, match=match):
        _load_s01(root)


def test_wrong_shape_in_mat(tmp_path):
    folder = tmp_path / "data_preprocessed_matlab"
    folder.mkdir()
    scipy.io.savemat(folder / "s07.mat", {"data": np.zeros((2, 32, 500)),
                                          "labels": np.full((2, 4), 5.0)})
    with pytest.raises(FormatError, match=r"s07\.mat: 'data' has shape \(2, 32, 500\)"):
        load_deap(tmp_path).load("s07")


def test_missing_key_and_not_a_dict(one):
    root, folder, data, _ = one
    write_dat_file(folder / "s01.dat", {"data": data})
    with pytest.raises(FormatError, match=r"s01\.dat: no 'labels' in the file; it holds"):
        _load_s01(root)
    (folder / "s01.dat").write_bytes(pickle.dumps([1, 2], protocol=2))
    with pytest.raises(FormatError, match=r"s01\.dat: expected a dict with 'data' and 'labels'"):
        _load_s01(root)


def test_non_array_value_and_integer_dtype(one):
    root, folder, data, labels = one
    (folder / "s01.dat").write_bytes(pickle.dumps({"data": data, "labels": [1, 2]}, protocol=4))
    with pytest.raises(FormatError, match=r"s01\.dat: 'labels' is a list; expected a NumPy array"):
        _load_s01(root)
    ints = {"data": data.astype(np.int64), "labels": labels}
    (folder / "s01.dat").write_bytes(pickle.dumps(ints, protocol=4))
    with pytest.raises(FormatError, match=r"s01\.dat: 'data' has dtype int64; expected float64"):
        _load_s01(root)


def test_matlab_v73_file_is_explained(tmp_path):
    folder = tmp_path / "data_preprocessed_matlab"
    folder.mkdir()
    header = b"MATLAB 7.3 MAT-file".ljust(116, b" ") + b"\0" * 8 + b"\x00\x02IM"
    (folder / "s01.mat").write_bytes(header + b"\0" * 512)
    with pytest.raises(FormatError, match=r"s01\.mat: MATLAB v7\.3 \(HDF5\) files are not read"):
        _load_s01(tmp_path)


def test_truncated_dat_and_corrupt_mat(one, tmp_path):
    root, folder, data, labels = one
    path = write_dat_file(folder / "s01.dat", {"labels": labels, "data": data})
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(FormatError, match=r"s01\.dat: not a readable pickle .*truncated"):
        _load_s01(root)
    mat_root = tmp_path / "m"
    (mat_root / "data_preprocessed_matlab").mkdir(parents=True)
    (mat_root / "data_preprocessed_matlab" / "s01.mat").write_bytes(b"MATLAB 5.0" + b"\0" * 50)
    with pytest.raises(FormatError, match=r"s01\.mat: not a readable MATLAB file"):
        _load_s01(mat_root)
    (mat_root / "data_preprocessed_matlab" / "s01.mat").write_bytes(b"")
    with pytest.raises(FormatError, match=r"s01\.mat: not a readable MATLAB file \(MatReadError"):
        _load_s01(mat_root)


def test_malicious_dat_is_refused_without_side_effect(one, tmp_path):
    root, folder, _, _ = one
    marker = tmp_path / "owned.txt"
    payload = f"\x80\x02}}(U\x04datac__builtin__\nopen\n(V{marker}\nVw\ntRu.".encode("latin1")
    (folder / "s01.dat").write_bytes(payload)
    rec = load_deap(root)  # opening is lazy: nothing is read yet
    with pytest.raises(UnsafeFileError, match=r"s01\.dat: refused to load.*__builtin__\.open"):
        rec.load("s01")
    assert not marker.exists()


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_policy(one, bad):
    root, folder, data, labels = one
    data = data.copy()
    data[1, 5, 10] = bad
    write_dat_file(folder / "s01.dat", {"labels": labels, "data": data})
    with pytest.raises(FormatError, match=r"s01\.dat: trial 2 has 1 NaN/Inf sample\(s\).*"
                                          r"--nan-samples drop-trial.*nan_policy = \"drop-trial\""):
        _load_s01(root)
    rec = load_deap(root, nan_policy="drop-trial")
    subject = rec.load("s01")
    assert [t.trial for t in subject] == [1, 3, 4]
    assert rec.report.skipped == [{"subject": "s01", "trial": 2, "file": "s01.dat",
                                   "reason": "1 NaN/Inf sample(s)"}]
    kept = _load_s01(root, nan_policy="keep")
    assert len(kept) == 4 and not np.isfinite(kept.trials[1].signals["eeg"].data).all()


def test_nan_rating_follows_the_policy(one):
    root, folder, data, labels = one
    labels = labels.copy()
    labels[0, 1] = np.nan
    write_dat_file(folder / "s01.dat", {"labels": labels, "data": data})
    with pytest.raises(FormatError, match=r"trial 1 has NaN rating\(s\) \['arousal'\]"):
        _load_s01(root)
    assert [t.trial for t in _load_s01(root, nan_policy="drop-trial")] == [2, 3, 4]


def test_rating_out_of_scale(one):
    root, folder, data, labels = one
    labels = labels.copy()
    labels[2, 1] = 9.5
    write_dat_file(folder / "s01.dat", {"labels": labels, "data": data})
    with pytest.raises(FormatError, match=r"s01\.dat: trial 3 rating 'arousal' = 9\.5 is outside "
                                          r"the DEAP scale 1\.\.9"):
        _load_s01(root, nan_policy="keep")


def _csv(root, text):
    (root / "metadata_csv").mkdir(exist_ok=True)
    (root / "metadata_csv" / "participant_ratings.csv").write_text(text)


HEADER = "Participant_id,Trial,Experiment_id,Start_time,Valence,Arousal,Dominance,Liking," \
         "Familiarity\n"


def test_ratings_csv_rows_and_errors(one):
    root, folder, data, labels = one
    write_dat_file(folder / "s01.dat", {"labels": labels, "data": data})
    _csv(root, HEADER + "1,4,1,0,5,5,5,5,3\n1,1,2,0,5,5,5,5,\n")
    rec = load_deap(root)
    subject = rec.load("s01")
    assert subject.trials[0].info["presentation"] == 4
    assert subject.trials[0].ratings["familiarity"] == 3.0
    assert math.isnan(subject.trials[1].ratings["familiarity"])
    # experiment ids 3 and 4 have no row: NaN, recorded as a repair
    assert math.isnan(subject.trials[2].ratings["familiarity"])
    assert [r["trial"] for r in rec.report.repaired] == [3, 4]
    _csv(root, "")
    with pytest.raises(FormatError, match=r"participant_ratings\.csv: not a readable CSV file"):
        load_deap(root)
    _csv(root, "Participant_id,Trial,Valence\n1,1,5\n")
    with pytest.raises(FormatError, match=r"participant_ratings\.csv: missing column\(s\) "
                                          r"\['Experiment_id', 'Familiarity'\]"):
        load_deap(root)
    _csv(root, HEADER + "1,1,1,0,5,5,5,5,7\n")
    with pytest.raises(FormatError, match=r"line 2: Familiarity = 7\.0 is outside 1\.\.5"):
        load_deap(root)
    _csv(root, HEADER + "1,1,1,0,5,5,5,5,3\n1,2,1,0,5,5,5,5,3\n")
    with pytest.raises(FormatError, match=r"line 3: a second row for Participant_id 1, "
                                          r"Experiment_id 1"):
        load_deap(root)
    _csv(root, HEADER + "1,1,41,0,5,5,5,5,3\n")
    with pytest.raises(FormatError, match=r"line 2: Trial 1 and Experiment_id 41 must be in"):
        load_deap(root)
    _csv(root, HEADER + "x,1,1,0,5,5,5,5,3\n")
    with pytest.raises(FormatError, match=r"line 2: Participant_id, Trial and Experiment_id must"):
        load_deap(root)


def test_channel_names_are_the_brief_s():
    assert len(CHANNELS) == 40 and CHANNELS[32:] == (
        "hEOG", "vEOG", "zEMG", "tEMG", "GSR", "Resp", "PPG", "Temp")
