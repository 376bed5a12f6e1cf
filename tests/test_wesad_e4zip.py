"""WESAD wrist signals read from each subject's raw E4 export (``wrist_source = "e4zip"``)."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest

from fearkd.datasets.e4 import read_e4_zip
from fearkd.datasets.synthetic import write_wesad
from fearkd.datasets.synthetic.wesad import E4_LEAD
from fearkd.datasets.wesad import load_wesad
from fearkd.errors import FormatError
from fearkd.features.extract import extract_features


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return write_wesad(tmp_path_factory.mktemp("wesad-zip"), n_subjects=2,
                       seconds_per_condition=30.0)


def _rewrite_zip(path, drop=(), replace=None):
    with zipfile.ZipFile(path) as z:
        members = {n: z.read(n) for n in z.namelist() if n not in drop}
    members.update(replace or {})
    with zipfile.ZipFile(path, "w") as z:
        for n, data in members.items():
            z.writestr(n, data)


def test_zip_wrist_equals_pickle_wrist_and_adds_hr_and_beats(root):
    pkl = load_wesad(root, device="wrist").load("S3")
    rec = load_wesad(root, device="wrist", wrist_source="e4zip")
    zipped = rec.load("S3")
    assert len(zipped) == len(pkl) == 5
    for a, b in zip(pkl, zipped, strict=True):
        for m in ("gsr", "ppg", "temp", "acc"):
            np.testing.assert_array_equal(a.signals[m].data, b.signals[m].data)
        assert b.signals["hr"].sfreq == 1.0 and b.signals["hr"].ch_names == ("HR",)
        beats = b.info["beats"]
        assert beats.min() >= 0 and beats.max() < b.duration
    assert not rec.report.skipped and not rec.report.repaired
    # the writer's stress condition beats at 90 bpm, baseline at 65 (+ the subject's shift)
    base, stress = zipped.trials[0], zipped.trials[1]
    assert stress.signals["hr"].data.mean() - base.signals["hr"].data.mean() == \
        pytest.approx(25.0, abs=2.0)
    rate = 60.0 / np.diff(stress.info["beats"]).mean()
    assert rate == pytest.approx(stress.signals["hr"].data.mean(), abs=2.0)


def test_explicit_offset_gives_the_matched_alignment(root):
    matched = load_wesad(root, device="wrist", wrist_source="e4zip").load("S2")
    given = load_wesad(root, device="wrist", wrist_source="e4zip", e4_offset=E4_LEAD).load("S2")
    for a, b in zip(matched, given, strict=True):
        np.testing.assert_array_equal(a.signals["ppg"].data, b.signals["ppg"].data)
        np.testing.assert_array_equal(a.info["beats"], b.info["beats"])
    shifted = load_wesad(root, device="wrist", wrist_source="e4zip", e4_offset=E4_LEAD - 1.0)
    assert not np.array_equal(shifted.load("S2").trials[0].signals["gsr"].data,
                              matched.trials[0].signals["gsr"].data)


def test_physio_features_of_the_zip_include_heart_rate_and_ibi(root):
    rec = load_wesad(root, device="wrist", wrist_source="e4zip", subjects=["S2"])
    fs = extract_features(rec, "physio", window=10.0, step=10.0, progress=False)
    names = set(fs.feature_names)
    assert {"hr:HR:mean", "hr:HR:slope", "ppg:IBI:hr", "ppg:IBI:rmssd"} <= names
    assert np.isfinite(fs.X).all()


def test_hand_written_zip_in_a_folder(tmp_path):
    path = tmp_path / "S9_E4_Data.zip"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("S9_E4_Data/EDA.csv", "1495437000.000000\n4.000000\n0.5\n0.75\n1.0\n")
        z.writestr("S9_E4_Data/ACC.csv", "1495437000.0, 1495437000.0, 1495437000.0\n"
                                         "32.0, 32.0, 32.0\n64,0,-32\n")
        z.writestr("S9_E4_Data/IBI.csv", "1495437000.000000, IBI\n1.5,0.8\n2.25,0.75\n")
        z.writestr("S9_E4_Data/tags.csv", "")
    session = read_e4_zip(path)
    start, rate, eda = session.signals["EDA"]
    assert (start, rate) == (1495437000.0, 4.0)
    np.testing.assert_array_equal(eda[:, 0], [0.5, 0.75, 1.0])
    np.testing.assert_array_equal(session.signals["ACC"][2], [[1.0, 0.0, -0.5]])
    np.testing.assert_array_equal(session.beats, [1495437001.5, 1495437002.25])
    assert session.tags.size == 0


def test_corrupt_zip_is_skipped_and_listed_or_strict_error(tmp_path):
    root = write_wesad(tmp_path / "w", n_subjects=2, seconds_per_condition=10.0)
    (root / "S3" / "S3_E4_Data.zip").write_bytes(b"PK\x03\x04 not really a zip")
    rec = load_wesad(root, device="wrist", wrist_source="e4zip")
    assert len(rec.load("S3")) == 0 and len(rec.load("S2")) == 5
    skip = rec.report.skipped[0]
    assert skip["file"].endswith("S3_E4_Data.zip")
    assert "not a readable zip archive" in skip["reason"]
    with pytest.raises(FormatError, match=r"S3_E4_Data.zip: not a readable zip archive .*; "
                                          r"download the E4 export again"):
        load_wesad(root, device="wrist", wrist_source="e4zip", strict=True).load("S3")


def test_zip_without_eda_is_one_line_error(tmp_path):
    root = write_wesad(tmp_path / "w", n_subjects=1, seconds_per_condition=10.0)
    _rewrite_zip(root / "S2" / "S2_E4_Data.zip", drop=("EDA.csv",))
    with pytest.raises(FormatError, match=r"S2_E4_Data.zip: the E4 zip has no EDA.csv \(it "
                                          r"holds \['ACC.csv'.*download it again"):
        load_wesad(root, wrist_source="e4zip", strict=True).load("S2")


def test_malformed_member_names_zip_and_member(tmp_path):
    root = write_wesad(tmp_path / "w", n_subjects=1, seconds_per_condition=10.0)
    _rewrite_zip(root / "S2" / "S2_E4_Data.zip", replace={"TEMP.csv": "TEMP\n4.0\n32.1\n"})
    with pytest.raises(FormatError, match=r"S2_E4_Data.zip:TEMP.csv: line 1 is 'TEMP', not a "
                                          r"start time"):
        load_wesad(root, wrist_source="e4zip", strict=True).load("S2")


def test_zip_eda_unlike_the_pickle_asks_for_e4_offset(tmp_path):
    root = write_wesad(tmp_path / "w", n_subjects=1, seconds_per_condition=10.0)
    with zipfile.ZipFile(root / "S2" / "S2_E4_Data.zip") as z:
        text = z.read("EDA.csv").decode()
    head = text.splitlines()[:2]
    n = len(text.splitlines()) - 2
    noise = np.random.default_rng(0).uniform(5, 9, n)
    _rewrite_zip(root / "S2" / "S2_E4_Data.zip",
                 replace={"EDA.csv": "\n".join(head + [f"{v:.6f}" for v in noise]) + "\n"})
    with pytest.raises(FormatError, match=r"EDA.csv does not contain the pickle's wrist EDA .*"
                                          r"set \[dataset\] e4_offset"):
        load_wesad(root, device="wrist", wrist_source="e4zip", strict=True).load("S2")
    # an explicit offset reads it (the user vouches for the alignment)
    got = load_wesad(root, device="wrist", wrist_source="e4zip", e4_offset=E4_LEAD).load("S2")
    assert len(got) == 5


def test_missing_zip_is_listed_with_the_fix(tmp_path):
    root = write_wesad(tmp_path / "w", n_subjects=1, seconds_per_condition=10.0, e4_zip=False)
    rec = load_wesad(root, wrist_source="e4zip")
    assert len(rec.load("S2")) == 0
    assert 'wrist_source = "pkl"' in rec.report.skipped[0]["reason"]
    assert len(load_wesad(root).load("S2")) == 5  # the pickle alone still reads


def test_invalid_wrist_source_and_offset():
    with pytest.raises(ValueError, match=r"Invalid WESAD wrist_source 'zip': set \[dataset\] "
                                         r"wrist_source to one of \('pkl', 'e4zip'\)"):
        load_wesad(".", wrist_source="zip")
    with pytest.raises(ValueError, match=r"Invalid WESAD e4_offset 'x': set \[dataset\] "
                                         r"e4_offset to a number"):
        load_wesad(".", wrist_source="e4zip", e4_offset="x")
