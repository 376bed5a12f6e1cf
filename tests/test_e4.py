"""Empatica E4 exports: fearkd.datasets.e4 and ``format = "e4"`` in the generic reader.

Two independent checks: sessions written by hand here, line by line, in each header variant
(unix start row, UTC date start row) with every expected value worked out from the text; and a
round trip through :func:`fearkd.datasets.synthetic.write_e4`.
"""

from __future__ import annotations

import numpy as np
import pytest

from fearkd.datasets.e4 import read_e4_ibi, read_e4_session, read_e4_signal, read_e4_tags
from fearkd.datasets.generic import load_generic
from fearkd.datasets.synthetic import write_e4
from fearkd.datasets.synthetic.e4 import E4_START, HR_DELAY
from fearkd.errors import ConfigError, FormatError

# 2013-02-24 12:23:49 UTC and a unix start of one real export
DATE_START, DATE_TEXT = 1361708629, "2013-02-24 12:23:49"
UNIX_START, UNIX_TEXT = 1644227574, "1644227574.000000"


def _hand_session(folder, start_text, start, tags_text=None):
    """A 40 s session written line by line: EDA = i / 2 (4 Hz), HR = 100 + i (1 Hz, 10 s
    late), ACC = (i, -i, 64) counts (32 Hz), 3 beats, tags at 12, 20, 28 s."""
    folder.mkdir(parents=True, exist_ok=True)
    eda = [start_text, "4.000000"] + [f"{i / 2:.6f}" for i in range(160)]
    (folder / "EDA.csv").write_text("\n".join(eda) + "\n")
    hr_start = f"{start + 10:.6f}" if start_text == UNIX_TEXT else "2013-02-24 12:23:59"
    hr = [hr_start, "1.000000"] + [f"{100 + i:.2f}" for i in range(30)]
    (folder / "HR.csv").write_text("\n".join(hr) + "\n")
    acc = [", ".join([start_text] * 3), ", ".join(["32.000000"] * 3)]
    acc += [f"{i},{-i},64" for i in range(1280)]
    (folder / "ACC.csv").write_text("\n".join(acc) + "\n")
    (folder / "IBI.csv").write_text(f"{start_text}, IBI\n13.500000,0.750000\n"
                                    f"14.250000,0.750000\n21.000000,0.800000\n")
    if tags_text is None:
        tags_text = "".join(f"{start + s:.2f}\n" for s in (12, 20, 28))
    (folder / "tags.csv").write_text(tags_text)
    return folder


def _hand_desc(root, **labels):
    lab = {"from": "tags", "stages": ["rest", "stress"], "classes": {"rest": 0, "stress": 3}}
    lab.update(labels)
    return {"name": "hand-e4", "root": str(root), "subjects": ["1"], "subject_id": "P{subject}",
            "strict": True, "records": [{"file": "P{subject}", "format": "e4"}],
            "channels": {"EDA": "gsr", "HR": "hr", "ACC_x": "acc", "ACC_y": "acc",
                         "ACC_z": "acc"},
            "labels": lab}


def _check_hand_trials(subject):
    rest, stress = subject.trials
    assert [t.info["stage"] for t in subject] == ["rest", "stress"]
    assert [t.info["y_fear"] for t in subject] == [0, 3]
    assert rest.info["onset_s"] == pytest.approx(12.0)
    assert rest.info["duration_s"] == pytest.approx(8.0)
    assert stress.info["onset_s"] == pytest.approx(20.0)
    # EDA sample i (t = i / 4) holds i / 2: [12, 20) s is samples 48..79
    np.testing.assert_array_equal(rest.signals["gsr"].data[0], np.arange(48, 80) / 2)
    np.testing.assert_array_equal(stress.signals["gsr"].data[0], np.arange(80, 112) / 2)
    # HR starts at 10 s: [12, 20) s is its samples 2..9 -> 102..109
    np.testing.assert_array_equal(rest.signals["hr"].data[0], 100.0 + np.arange(2, 10))
    # ACC in g: sample 384 (t = 12 s) holds (384, -384, 64) counts
    acc = rest.signals["acc"]
    assert acc.sfreq == 32.0 and acc.ch_names == ("ACC_x", "ACC_y", "ACC_z")
    np.testing.assert_array_equal(acc.data[:, 0], [6.0, -6.0, 1.0])
    assert acc.data.shape == (3, 256)
    # beats at 13.5, 14.25 s (rest) and 21.0 s (stress), from each stage's start
    np.testing.assert_allclose(rest.info["beats"], [1.5, 2.25])
    np.testing.assert_allclose(stress.info["beats"], [1.0])


def test_hand_written_unix_variant(tmp_path):
    folder = _hand_session(tmp_path / "P1", UNIX_TEXT, UNIX_START)
    start, sfreq, data = read_e4_signal(folder / "ACC.csv")
    assert (start, sfreq, data.shape) == (UNIX_START, 32.0, (1280, 3))
    np.testing.assert_array_equal(data[5], [5, -5, 64])  # read_e4_signal keeps counts
    start, sfreq, data = read_e4_signal(folder / "HR.csv")
    assert (start, sfreq) == (UNIX_START + 10, 1.0)
    np.testing.assert_array_equal(data[:3, 0], [100, 101, 102])
    ibi_start, offsets, intervals = read_e4_ibi(folder / "IBI.csv")
    assert ibi_start == UNIX_START
    np.testing.assert_array_equal(offsets, [13.5, 14.25, 21.0])
    np.testing.assert_array_equal(intervals, [0.75, 0.75, 0.8])
    np.testing.assert_array_equal(read_e4_tags(folder / "tags.csv"),
                                  UNIX_START + np.array([12.0, 20.0, 28.0]))
    session = read_e4_session(folder)
    assert set(session.signals) == {"EDA", "ACC", "HR"} and session.start == UNIX_START
    np.testing.assert_array_equal(session.signals["ACC"][2][5], [5 / 64, -5 / 64, 1.0])
    _check_hand_trials(load_generic(_hand_desc(tmp_path)).load("P1"))


def test_hand_written_date_variant(tmp_path):
    tags = "2013-02-24 12:24:01\n2013-02-24 12:24:09\n2013-02-24 12:24:17\n"
    folder = _hand_session(tmp_path / "P1", DATE_TEXT, DATE_START, tags)
    start, sfreq, data = read_e4_signal(folder / "EDA.csv")
    assert (start, sfreq, data.shape) == (DATE_START, 4.0, (160, 1))
    assert data[3, 0] == 1.5
    assert read_e4_signal(folder / "HR.csv")[0] == DATE_START + 10
    assert read_e4_ibi(folder / "IBI.csv")[0] == DATE_START
    np.testing.assert_array_equal(read_e4_tags(folder / "tags.csv"),
                                  DATE_START + np.array([12.0, 20.0, 28.0]))
    _check_hand_trials(load_generic(_hand_desc(tmp_path)).load("P1"))


def test_one_e4_file_as_a_record(tmp_path):
    _hand_session(tmp_path / "P1", UNIX_TEXT, UNIX_START)
    (tmp_path / "P1" / "ev.csv").write_text("onset,label\n1644227586,rest\n1644227594,stress\n")
    desc = _hand_desc(tmp_path, **{"from": "events", "events": "P{subject}/ev.csv",
                                   "time_format": "unix"})
    desc["records"] = [{"file": "P{subject}/EDA.csv", "format": "e4"},
                       {"file": "P{subject}/HR.csv", "format": "e4"}]
    desc["channels"] = {"EDA": "gsr", "HR": "hr"}
    desc["labels"]["record"] = "P{subject}/EDA.csv"
    rest, stress = load_generic(desc).load("P1").trials
    np.testing.assert_array_equal(rest.signals["gsr"].data[0], np.arange(48, 80) / 2)
    np.testing.assert_array_equal(rest.signals["hr"].data[0], 100.0 + np.arange(2, 10))
    assert stress.info["onset_s"] == pytest.approx(20.0) and "beats" not in rest.info


@pytest.mark.parametrize("variant", ["unix", "datetime"])
def test_round_trip_through_writer(tmp_path, variant):
    path = write_e4(tmp_path, n_subjects=2, seconds=150.0, variant=variant, random_state=3)
    for sub in (1, 2):
        session = read_e4_session(tmp_path / f"S{sub}")
        start = E4_START + (sub - 1) * 86400
        rates = {k: v[1] for k, v in session.signals.items()}
        assert rates == {"EDA": 4.0, "TEMP": 4.0, "BVP": 64.0, "ACC": 32.0, "HR": 1.0}
        starts = {k: v[0] for k, v in session.signals.items()}
        assert starts == {"EDA": start, "TEMP": start, "BVP": start, "ACC": start,
                          "HR": start + HR_DELAY}
        assert session.signals["ACC"][2][:, 2].mean() == pytest.approx(1.0, abs=0.05)  # g
    recordings = load_generic(path)
    assert recordings.subjects == ("S1", "S2")
    subject = recordings.load("S1")
    session = read_e4_session(tmp_path / "S1")
    stages = [t.info["stage"] for t in subject]
    assert stages == ["baseline", "stress", "recovery"]
    assert [t.info["y_fear"] for t in subject] == [0, 3, 0]
    bounds = session.tags - E4_START
    np.testing.assert_allclose([t.info["onset_s"] for t in subject], bounds[:-1])
    np.testing.assert_allclose([t.info["duration_s"] for t in subject], np.diff(bounds))
    eda = [t.signals["gsr"].data.mean() for t in subject]
    hr = [t.signals["hr"].data.mean() for t in subject]
    assert eda[1] > 1.2 * max(eda[0], eda[2]) and hr[1] > max(hr[0], hr[2]) + 8
    beats = session.beats - E4_START
    for t in subject:
        t0, t1 = t.info["onset_s"], t.info["onset_s"] + t.info["duration_s"]
        np.testing.assert_allclose(t.info["beats"], beats[(beats >= t0) & (beats < t1)] - t0)
        # about one beat per heart period
        assert len(t.info["beats"]) == pytest.approx(
            t.duration * t.signals["hr"].data.mean() / 60, rel=0.25)


# ----------------------------------------------------------------------------- bad input


def test_malformed_e4_signal_file(tmp_path):
    path = tmp_path / "EDA.csv"
    path.write_text("EDA\n4.0\n0.1\n")
    with pytest.raises(FormatError, match=r"EDA\.csv: line 1 is 'EDA', not a start time; an E4 "
                                          r"file has no header row"):
        read_e4_signal(path)
    path.write_text("1644227574.000000\nfour\n0.1\n")
    with pytest.raises(FormatError, match=r"EDA\.csv: line 2 is 'four', not a sampling rate"):
        read_e4_signal(path)
    path.write_text("1644227574.000000\n4.000000\n0.1\nx\n")
    with pytest.raises(FormatError, match=r"EDA\.csv: line 4 is 'x'; expected 1 number"):
        read_e4_signal(path)
    path.write_text("1644227574.000000, 1644227575.000000\n4.0, 4.0\n0.1,0.2\n")
    with pytest.raises(FormatError, match=r"EDA\.csv: lines 1-2 give 2 start time\(s\)"):
        read_e4_signal(path)
    path.write_text("1644227574.000000\n4.000000\n")
    with pytest.raises(FormatError, match=r"EDA\.csv: has a start time and a rate but no sampl"):
        read_e4_signal(path)


def test_malformed_file_in_a_session_names_it(tmp_path):
    folder = _hand_session(tmp_path / "P1", UNIX_TEXT, UNIX_START)
    (folder / "HR.csv").write_text("HR\n1.0\n70\n")
    with pytest.raises(FormatError, match=r"P1/HR\.csv: line 1 is 'HR', not a start time"):
        load_generic(_hand_desc(tmp_path)).load("P1")


@pytest.mark.parametrize("text", ["", "1644227574.000000, IBI\n"])
def test_empty_ibi_file(tmp_path, text):
    folder = _hand_session(tmp_path / "P1", UNIX_TEXT, UNIX_START)
    (folder / "IBI.csv").write_text(text)
    with pytest.raises(FormatError, match=r"IBI\.csv: IBI file has no beats .* Delete it"):
        load_generic(_hand_desc(tmp_path)).load("P1")


def test_malformed_ibi_lines(tmp_path):
    path = tmp_path / "IBI.csv"
    path.write_text("1644227574.000000, HR\n1.0,0.8\n")
    with pytest.raises(FormatError, match=r"IBI\.csv: line 1 is .*starts with 'start, IBI'"):
        read_e4_ibi(path)
    path.write_text("1644227574.000000, IBI\n1.0,0.8\n2.0\n")
    with pytest.raises(FormatError, match=r"IBI\.csv: line 3 is '2\.0'; expected 'offset, inte"):
        read_e4_ibi(path)


def test_tag_outside_session(tmp_path):
    tags = f"{UNIX_START + 12}\n{UNIX_START + 12 * 3600}\n{UNIX_START + 28}\n"
    _hand_session(tmp_path / "P1", UNIX_TEXT, UNIX_START, tags)
    with pytest.raises(FormatError, match=r"tags\.csv: line 2: tag 1644270774\.000 is 43200\.0 "
                                          r"s from the session start, outside the session"):
        load_generic(_hand_desc(tmp_path)).load("P1")
    (tmp_path / "P1" / "tags.csv").write_text("soon\n")
    with pytest.raises(FormatError, match=r"tags\.csv: line 1 is 'soon'; a tags file holds one"):
        load_generic(_hand_desc(tmp_path)).load("P1")


def test_stage_list_shorter_than_tags(tmp_path):
    tags = "".join(f"{UNIX_START + s}\n" for s in (5, 12, 20, 28))
    _hand_session(tmp_path / "P1", UNIX_TEXT, UNIX_START, tags)
    with pytest.raises(FormatError, match=r"tags\.csv: 4 tag\(s\) need 3 stage name\(s\) .*but "
                                          r"\[dataset\.labels\] stages has 2"):
        load_generic(_hand_desc(tmp_path)).load("P1")
    with pytest.raises(FormatError, match=r"4 tag\(s\) need 4 stage name\(s\), one per tag"):
        load_generic(_hand_desc(tmp_path, durations=[1.0, 2.0])).load("P1")
    (tmp_path / "P1" / "tags.csv").write_text("")
    with pytest.raises(FormatError, match=r"tags\.csv: 0 tag\(s\) need"):
        load_generic(_hand_desc(tmp_path)).load("P1")


def test_tags_with_durations(tmp_path):
    _hand_session(tmp_path / "P1", UNIX_TEXT, UNIX_START)
    stages = ["rest", "stress", "recovery"]
    desc = _hand_desc(tmp_path, stages=stages, durations=[4.0, 4.0, 2.0],
                      classes={"rest": 0, "stress": 3, "recovery": 0})
    trials = load_generic(desc).load("P1").trials
    assert [t.info["stage"] for t in trials] == stages
    np.testing.assert_allclose([t.info["onset_s"] for t in trials], [12, 20, 28])
    np.testing.assert_allclose([t.info["duration_s"] for t in trials], [4, 4, 2])
    # three tags and three stages without durations: the last runs to the end (40 s)
    desc = _hand_desc(tmp_path, stages=stages, classes={"rest": 0, "stress": 3, "recovery": 0})
    assert load_generic(desc).load("P1").trials[-1].info["duration_s"] == pytest.approx(12.0)


def test_e4_description_errors(tmp_path):
    _hand_session(tmp_path / "P1", UNIX_TEXT, UNIX_START)
    with pytest.raises(ConfigError, match=r"\[dataset\.labels\] time_format must be one of "
                                          r"\['seconds', 'unix', 'iso'\], got 'utc'"):
        load_generic(_hand_desc(tmp_path, time_format="utc"))
    with pytest.raises(ConfigError, match=r"labels\.from = \"tags\" needs "
                                          r"'dataset\.labels\.stages'"):
        load_generic(_hand_desc(tmp_path, stages=[]))
    with pytest.raises(ConfigError, match=r"'dataset\.labels\.durations' must be a list of 2"):
        load_generic(_hand_desc(tmp_path, durations=[3.0]))
    with pytest.raises(ConfigError, match=r"is an E4 session, which has no annotations"):
        load_generic(_hand_desc(tmp_path, **{"from": "annotations"})).load("P1")
