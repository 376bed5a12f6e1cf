"""Label times in the generic reader: unix and ISO events, and intervals from a label column.

The records encode their own sample index (``eda = i``), so a stage's samples are checked by
value; expected ranges follow the documented convention (a stage ``[t0, t1)`` at 4 Hz takes
samples ``4 t0 <= i < 4 t1``).
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
import wfdb

from fearkd.datasets.generic import load_generic
from fearkd.errors import ConfigError, FormatError

START = 1577959200  # 2020-01-02 10:00:00 UTC
LABELS = [0] * 8 + [1] * 32 + [2] * 24 + [0] * 16  # 4 Hz: 0-2 s, 2-10 s, 10-16 s, 16-20 s


def _csv_record(root, start=START, **record):
    rows = "\n".join(f"{i},{lab}" for i, lab in enumerate(LABELS))
    (root / "p1.csv").write_text("eda,label\n" + rows + "\n")
    rec = {"file": "p{subject}.csv", "sfreq": 4.0}
    if start is not None:
        rec["start"] = start
    rec.update(record)
    return rec


def _desc(root, record, **labels):
    lab = {"from": "events", "events": "p{subject}_events.csv", "classes": {"Relax": 0, "Fear": 3}}
    lab.update(labels)
    return {"name": "times", "root": str(root), "subjects": ["1"], "records": [record],
            "channels": {"eda": "gsr"}, "labels": lab, "strict": True}


def _events(root, *onsets, name="p1_events.csv"):
    lines = [f"{o},{lab}" for o, lab in zip(onsets, ["Relax", "Fear"], strict=False)]
    (root / name).write_text("onset,label\n" + "\n".join(lines) + "\n")


def _check_two_stages(subject):
    relax, fear = subject.trials
    assert [relax.info["stage"], fear.info["stage"]] == ["Relax", "Fear"]
    assert (relax.info["onset_s"], relax.info["duration_s"]) == pytest.approx((2.0, 8.0))
    assert (fear.info["onset_s"], fear.info["duration_s"]) == pytest.approx((10.0, 10.0))
    # WFDB stores 16-bit samples: 1e-3 covers its quantisation, not a one-sample shift
    np.testing.assert_allclose(relax.signals["gsr"].data[0], np.arange(8, 40), atol=1e-3)
    np.testing.assert_allclose(fear.signals["gsr"].data[0], np.arange(40, 80), atol=1e-3)


@pytest.mark.parametrize("start", [START, "2020-01-02T10:00:00Z", "2020-01-02 11:00:00+01:00"])
def test_unix_events_on_a_csv_record_with_start(tmp_path, start):
    _events(tmp_path, START + 2, START + 10)
    desc = _desc(tmp_path, _csv_record(tmp_path, start), time_format="unix")
    _check_two_stages(load_generic(desc).load("1"))


def test_toml_datetime_start(tmp_path):
    _events(tmp_path, START + 2, START + 10)
    start = dt.datetime(2020, 1, 2, 10, 0, tzinfo=dt.timezone.utc)  # what tomllib gives
    desc = _desc(tmp_path, _csv_record(tmp_path, start), time_format="unix")
    _check_two_stages(load_generic(desc).load("1"))


def test_iso_events(tmp_path):
    # one with a zone, one without (read as UTC)
    _events(tmp_path, "2020-01-02T10:00:02Z", "2020-01-02 10:00:10")
    desc = _desc(tmp_path, _csv_record(tmp_path), time_format="iso")
    _check_two_stages(load_generic(desc).load("1"))


def test_unix_events_on_a_wfdb_record(tmp_path):
    wfdb.wrsamp("w1", fs=4, units=["uS"], sig_name=["eda"],
                p_signal=np.arange(80.0)[:, None], fmt=["16"], base_time=dt.time(10, 0, 0),
                base_date=dt.date(2020, 1, 2), write_dir=str(tmp_path))
    _events(tmp_path, START + 2, START + 10)
    _check_two_stages(load_generic(_desc(tmp_path, "w{subject}", time_format="unix")).load("1"))


def test_seconds_stay_the_default(tmp_path):
    _events(tmp_path, 2, 10)
    _check_two_stages(load_generic(_desc(tmp_path, _csv_record(tmp_path, None))).load("1"))


def test_interval_labels_from_a_column(tmp_path):
    desc = _desc(tmp_path, _csv_record(tmp_path, None), **{
        "from": "column", "column": "label", "classes": {"1": 0, "2": 3}, "exclude": ["0"]})
    del desc["labels"]["events"]
    low, high = load_generic(desc).load("1").trials
    assert [low.info["stage"], high.info["stage"]] == ["1", "2"]
    assert [low.info["y_fear"], high.info["y_fear"]] == [0, 3]
    assert (low.info["onset_s"], low.info["duration_s"]) == pytest.approx((2.0, 8.0))
    assert (high.info["onset_s"], high.info["duration_s"]) == pytest.approx((10.0, 6.0))
    np.testing.assert_array_equal(low.signals["gsr"].data[0], np.arange(8, 40))
    np.testing.assert_array_equal(high.signals["gsr"].data[0], np.arange(40, 64))
    assert "label" not in low.ch_names  # the label column is not a channel


def test_column_label_errors(tmp_path):
    desc = _desc(tmp_path, _csv_record(tmp_path, None), **{
        "from": "column", "column": "stage", "classes": {"1": 0, "2": 3}, "exclude": ["0"]})
    with pytest.raises(FormatError, match=r"p1\.csv: no label column 'stage'; columns are "
                                          r"\['eda', 'label'\]"):
        load_generic(desc).load("1")
    desc["labels"]["column"] = "label"
    desc["labels"]["exclude"] = []
    with pytest.raises(ConfigError, match=r"label\(s\) \['0'\] that are neither in"):
        load_generic(desc).load("1")
    del desc["labels"]["column"]
    with pytest.raises(ConfigError, match=r"labels\.from = \"column\" needs "
                                          r"'dataset\.labels\.column'"):
        load_generic(desc)


def test_absolute_events_need_a_start(tmp_path):
    _events(tmp_path, START + 2, START + 10)
    desc = _desc(tmp_path, _csv_record(tmp_path, None), time_format="unix")
    with pytest.raises(FormatError, match=r"p1_events\.csv: events \(time_format = 'unix'\) "
                                          r"are absolute times, but record 'p1\.csv' .* has no "
                                          r"absolute start time; give a CSV record 'start"):
        load_generic(desc).load("1")


def test_bad_absolute_times(tmp_path):
    _events(tmp_path, "2020-01-02T10:00:02Z", "later")
    desc = _desc(tmp_path, _csv_record(tmp_path), time_format="iso")
    with pytest.raises(FormatError, match=r"p1_events\.csv: row 2 has onset 'later'; expected an "
                                          r"ISO time .*line 3"):
        load_generic(desc).load("1")
    _events(tmp_path, START - 100, START + 10)
    desc = _desc(tmp_path, _csv_record(tmp_path), time_format="unix")
    with pytest.raises(FormatError, match=r"annotation 'Relax' at -100\.000 s lies outside "
                                          r"record 'p1\.csv'"):
        load_generic(desc).load("1")
    with pytest.raises(ConfigError, match=r"\[dataset\.labels\] time_format must be one of "
                                          r"\['seconds', 'unix', 'iso'\], got 'epoch'"):
        load_generic(_desc(tmp_path, _csv_record(tmp_path), time_format="epoch"))


def test_bad_record_start(tmp_path):
    with pytest.raises(ConfigError, match=r"'dataset\.records\[0\]\.start' must be a unix time "
                                          r"\(number\) or an ISO time"):
        load_generic(_desc(tmp_path, _csv_record(tmp_path, "yesterday")))
    with pytest.raises(ConfigError, match=r"'dataset\.records\[0\]\.start' is for CSV records"):
        load_generic(_desc(tmp_path, {"file": "w{subject}", "start": START}))


def test_tags_file_on_a_csv_record(tmp_path):
    (tmp_path / "p1_tags.csv").write_text(f"{START + 2}\n2020-01-02 10:00:10\n{START + 20}\n")
    desc = _desc(tmp_path, _csv_record(tmp_path), **{
        "from": "tags", "tags": "p{subject}_tags.csv", "stages": ["Relax", "Fear"]})
    del desc["labels"]["events"]
    _check_two_stages(load_generic(desc).load("1"))
    del desc["labels"]["tags"]
    with pytest.raises(ConfigError, match=r"labels\.from = \"tags\" needs 'dataset\.labels\.tags'"
                                          r" .* not an E4 session folder"):
        load_generic(desc).load("1")
    desc["labels"]["time_format"] = "unix"
    with pytest.raises(ConfigError, match=r"\[dataset\.labels\] time_format applies to "
                                          r"labels\.from = \"events\" only"):
        load_generic(desc)
