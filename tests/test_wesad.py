"""WESAD reader: round trip through the synthetic writer, a hand-written quest file, bad input."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from fearkd.datasets.loaders import builtin_labels, detect_dataset, open_dataset
from fearkd.datasets.synthetic import write_wesad
from fearkd.datasets.wesad import load_wesad, read_quest, stai6
from fearkd.errors import FormatError
from fearkd.features.extract import extract_features


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return write_wesad(tmp_path_factory.mktemp("wesad"), n_subjects=2,
                       seconds_per_condition=30.0)


def test_round_trip_conditions_ratings_and_rates(root):
    assert detect_dataset(root)[0] == "wesad"
    rec = open_dataset(root)
    assert rec.subjects == ("S2", "S3")
    subj = rec.load("S2")
    assert [t.info["stage"] for t in subj] == ["Base", "TSST", "Medi 1", "Fun", "Medi 2"]
    assert [t.info["condition"] for t in subj] == [
        "baseline", "stress", "meditation", "amusement", "meditation"]
    stress = subj.trials[1]
    assert stress.duration == pytest.approx(30.0, abs=0.3)
    assert stress.signals["ppg"].sfreq == 64.0 and stress.signals["ecg"].sfreq == 700.0
    assert stress.signals["gsr"].ch_names == ("EDA_chest", "EDA_wrist")
    assert stress.ratings["stai"] > subj.trials[0].ratings["stai"]
    assert 1 <= stress.ratings["arousal"] <= 9
    assert not rec.report.repaired  # quest times agree with the label array
    assert builtin_labels("wesad") == ("wesad", "wesad")


def test_features_and_builtin_labels(root):
    rec = load_wesad(root, device="wrist")
    fs = extract_features(rec, "wrist", window=10.0, step=10.0, progress=False)
    assert fs.n_features > 5 and np.isfinite(fs.X).all()
    by_trial = fs.metadata.groupby("trial")["y_fear"].first()
    assert by_trial[2] > by_trial[1]  # stress more anxious than baseline
    assert set(fs.metadata["y_source"]) <= set(range(9))


def test_hand_written_quest_file(tmp_path):
    path = tmp_path / "S9_quest.csv"
    path.write_text(
        "# Subj;S9;;;\n# ORDER;Base;TSST;sRead;Fun\n# START;1.30;10.05;20;25.00\n"
        "# END;8.30;20.00;25;30.00\n;;;;\n"
        "# STAI;4;1;1;4;1;4\n# STAI;1;4;4;1;4;1\n# STAI;3;2;2;3;2;3\n"
        "# DIM;7;2\n# DIM;2;8\n# DIM;6;5\n", encoding="latin-1")
    q = read_quest(path)
    assert q["Base"]["start"] == 90.0 and q["TSST"]["start"] == 605.0
    assert q["Base"]["stai"] == 20.0 and q["TSST"]["stai"] == 80.0
    assert q["Fun"]["stai"] == pytest.approx(40.0)  # 2 x 6 items x 20/6
    assert q["TSST"]["arousal"] == 8.0 and np.isnan(q["sRead"]["stai"])
    assert stai6([1, 4, 4, 1, 4, 1]) == 80.0


def test_quest_without_order_is_one_line_error(tmp_path):
    path = tmp_path / "S9_quest.csv"
    path.write_text("# Subj;S9\n# STAI;1;2;3;4;1;2\n")
    with pytest.raises(FormatError, match=r"S9_quest.csv: no '# ORDER"):
        read_quest(path)


def test_pickle_without_signal_is_skipped_or_strict_error(tmp_path):
    root = write_wesad(tmp_path / "w", n_subjects=2, seconds_per_condition=10.0)
    with open(root / "S3" / "S3.pkl", "wb") as f:
        pickle.dump({"label": np.zeros(3)}, f, protocol=2)
    rec = load_wesad(root)
    assert len(rec.load("S3")) == 0
    assert "'signal' and 'label'" in rec.report.skipped[0]["reason"]
    assert len(rec.load("S2")) == 5
    with pytest.raises(FormatError, match="S3.pkl: a WESAD pickle holds"):
        load_wesad(root, strict=True).load("S3")


def test_missing_quest_file_skipped_and_listed(tmp_path):
    root = write_wesad(tmp_path / "w", n_subjects=1, seconds_per_condition=10.0)
    (root / "S2" / "S2_quest.csv").unlink()
    rec = load_wesad(root)
    assert len(rec.load("S2")) == 0 and "S2_quest.csv: missing" in rec.report.skipped[0]["reason"]


def test_quest_times_disagreeing_are_listed(tmp_path):
    root = write_wesad(tmp_path / "w", n_subjects=1, seconds_per_condition=10.0)
    q = root / "S2" / "S2_quest.csv"
    lines = q.read_text().splitlines()
    lines[2] = "# START;9.00;0.30;0.55;1.20;1.45"
    q.write_text("\n".join(lines) + "\n")
    rec = load_wesad(root, time_tolerance=5.0)
    rec.load("S2")
    assert any("'Base' START/END differ" in r["what"] for r in rec.report.repaired)
