"""fearkd.datasets.generic on small WFDB, EDF+, BDF+ and CSV records written in tmp_path.

Expected sample ranges are worked out by hand from the documented convention (a stage
``[t0, t1)`` takes samples ``round(t0 * sfreq) <= i < round(t1 * sfreq)``, halves up), and the
written signals encode their own time (EDA = t, hr = 60 + i, ...), so a crop is checked by value.
"""

from __future__ import annotations

import datetime as dt
import os
import pickle

import numpy as np
import pytest
import wfdb

from fearkd.datasets.generic import load_generic
from fearkd.errors import ConfigError, DatasetNotFoundError, FormatError, UnknownChannelError
from fearkd.recordings import LoadReport

# ---------------------------------------------------------------- writers

FAST_EVENTS = ([4, 300, 321, 700], ["Relax", "Fear", "Relax", "Fear"])  # 8 Hz sample indices


def _write_wfdb(folder, name, fs, names, units, data, base_time=None, base_date=None):
    wfdb.wrsamp(name, fs=fs, units=units, sig_name=names, p_signal=np.asarray(data, float).T,
                fmt=["16"] * len(names), base_time=base_time, base_date=base_date,
                write_dir=str(folder))


def _wfdb_subject(folder, sub, *, slow_start=None, events=FAST_EVENTS, slow_len=103):
    """S<sub>_fast: 8 Hz EDA = t, temp; S<sub>_slow: 1 Hz hr = 60 + i; both 100+ s."""
    t = np.arange(800) / 8.0
    date = dt.date(2020, 1, 2) if slow_start is not None else None
    _write_wfdb(folder, f"S{sub}_fast", 8, ["EDA", "temp"], ["uS", "degC"],
                [t + sub, 30 + np.sin(t)], dt.time(10, 0, 0) if date else None, date)
    _write_wfdb(folder, f"S{sub}_slow", 1, ["hr"], ["bpm"], [60.0 + np.arange(slow_len)],
                slow_start, date)
    samples, labels = events
    wfdb.wrann(f"S{sub}_fast", "atr", np.asarray(samples), symbol=['"'] * len(samples),
               aux_note=list(labels), write_dir=str(folder))


def _wfdb_desc(root, **labels):
    lab = {"extension": "atr", "classes": {"Relax": 0, "Fear": 3},
           "source_classes": {"Relax": 0, "Fear": 1}, "ratings": {"Fear": {"arousal": 7.0}}}
    lab.update(labels)
    # strict: a bad file is an error (the default skips the subject; see test_generic_sessions)
    return {"name": "toy", "root": str(root), "subjects": "1-2", "subject_id": "S{subject}",
            "strict": True, "records": ["S{subject}_fast", "S{subject}_slow"],
            "channels": {"EDA": "gsr", "temp": "temp", "hr": "hr"}, "labels": lab}


@pytest.fixture
def wfdb_root(tmp_path):
    for sub in (1, 2):
        _wfdb_subject(tmp_path, sub)
    return tmp_path


def _write_edf(path, channels, sfreq, annotations=(), *, bdf=False,
               start=dt.datetime(2020, 1, 2, 10, 30, 0)):
    """Minimal EDF+/BDF+ writer (1 s data records): channels = [(label, data, unit)]."""
    nbytes, (dmin, dmax) = (3, (-(2 ** 23), 2 ** 23 - 1)) if bdf else (2, (-32768, 32767))
    spr = int(sfreq)
    n_rec = len(channels[0][1]) // spr
    tals = [[f"+{r}\x14\x14\x00".encode()] for r in range(n_rec)]
    for onset, dur, text in annotations:
        extra = "" if dur is None else f"\x15{dur}"
        tals[min(int(onset), n_rec - 1)].append(f"+{onset}{extra}\x14{text}\x14\x00".encode())
    ann_spr = max(len(b"".join(t)) for t in tals) // nbytes + 1
    labels = [c[0] for c in channels] + [("BDF" if bdf else "EDF") + " Annotations"]
    pmin = [float(np.min(c[1])) for c in channels] + [-1.0]
    pmax = [float(np.max(c[1])) + 1.0 for c in channels] + [1.0]
    digital = [np.round((c[1] - lo) / (hi - lo) * (dmax - dmin) + dmin).astype(np.int64)
               for c, lo, hi in zip(channels, pmin, pmax, strict=False)]

    def f(v, w):
        s = str(v).encode("ascii")[:w]
        return s + b" " * (w - len(s))

    ns = len(labels)
    h = (b"\xffBIOSEMI" if bdf else f(0, 8)) + f("X X X X", 80)
    h += f(f"Startdate {start:%d-%b-%Y}".upper() + " X X X", 80)
    h += f(start.strftime("%d.%m.%y"), 8) + f(start.strftime("%H.%M.%S"), 8)
    h += f(256 * (ns + 1), 8) + f("BDF+C" if bdf else "EDF+C", 44) + f(n_rec, 8) + f(1, 8)
    h += f(ns, 4) + b"".join(f(x, 16) for x in labels) + f("", 80) * ns
    h += b"".join(f(c[2], 8) for c in channels) + f("", 8)
    h += b"".join(f(f"{v:.8g}", 8) for v in pmin) + b"".join(f(f"{v:.8g}", 8) for v in pmax)
    h += f(dmin, 8) * ns + f(dmax, 8) * ns + f("", 80) * ns
    h += f(spr, 8) * len(channels) + f(ann_spr, 8) + f("", 32) * ns
    body = bytearray()
    for r in range(n_rec):
        for q in digital:
            block = q[r * spr:(r + 1) * spr]
            if bdf:
                u24 = (block & 0xFFFFFF).astype("<u4").view(np.uint8).reshape(-1, 4)[:, :3]
                body += u24.tobytes()
            else:
                body += block.astype("<i2").tobytes()
        tal = b"".join(tals[r])
        body += tal + b"\x00" * (ann_spr * nbytes - len(tal))
    path.write_bytes(h + bytes(body))


# ---------------------------------------------------------------- WFDB


def test_wfdb_multirate_stages(wfdb_root):
    rec = load_generic(_wfdb_desc(wfdb_root))
    assert rec.dataset == "toy" and rec.subjects == ("S1", "S2")
    subj = rec.load("S2")
    assert [t.trial for t in subj] == [1, 2, 3, 4]
    assert [t.info["stage"] for t in subj] == ["Relax", "Fear", "Relax", "Fear"]
    assert [t.info["y_fear"] for t in subj] == [0, 3, 0, 3]
    assert [t.info["y_source"] for t in subj] == [0, 1, 0, 1]
    assert [t.info["onset_s"] for t in subj] == [0.5, 37.5, 40.125, 87.5]
    # the last stage runs to the end of the shorter (8 Hz, 100 s) record
    assert [t.info["duration_s"] for t in subj] == [37.0, 2.625, 47.375, 12.5]
    assert dict(subj.trials[1].ratings) == {"arousal": 7.0} and not subj.trials[0].ratings
    fast = [(4, 300), (300, 321), (321, 700), (700, 800)]
    slow = [(1, 38), (38, 40), (40, 88), (88, 100)]  # round-half-up of 0.5, 37.5, 40.125, ...
    for trial, (a, b), (c, d) in zip(subj, fast, slow, strict=True):
        assert set(trial.signals) == {"gsr", "temp", "hr"}
        eda, sf = trial.channel("EDA")
        assert sf == 8.0
        np.testing.assert_allclose(eda, np.arange(a, b) / 8.0 + 2, atol=2e-3)
        hr, sf = trial.channel("hr")
        assert sf == 1.0
        np.testing.assert_allclose(hr, 60.0 + np.arange(c, d), atol=2e-3)
        durations = [s.duration for s in trial.signals.values()]
        assert max(durations) - min(durations) <= 1.0  # one sample of the slowest rate


def test_wfdb_base_time_aligns_and_clips(tmp_path):
    _wfdb_subject(tmp_path, 1, slow_start=dt.time(10, 0, 10))
    desc = _wfdb_desc(tmp_path)
    desc["subjects"] = [1]
    first = load_generic(desc).load("S1").trials[0]
    assert first.info["onset_s"] == 10.0 and first.info["duration_s"] == 27.5
    np.testing.assert_allclose(first.channel("EDA")[0][:2], [11.0, 11.125], atol=2e-3)
    assert first.channel("hr")[0][0] == pytest.approx(60.0, abs=1e-3)  # slow sample 0 = 10 s
    desc["align"] = "start"
    first = load_generic(desc).load("S1").trials[0]
    assert first.info["onset_s"] == 0.5
    assert first.channel("hr")[0][0] == pytest.approx(61.0, abs=2e-3)


def test_toml_file_root_and_pickle(wfdb_root, tmp_path):
    cfg = tmp_path / "cfg" / "toy.toml"
    cfg.parent.mkdir()
    cfg.write_text(
        '[experiment]\nanything = 1\n\n[dataset]\nname = "toy"\nroot = ".."\n'
        'subjects = "auto"\nsubject_id = "S{subject}"\nformat = "wfdb"\n'
        'records = ["S{subject}_fast", {file = "S{subject}_slow.hea", channels = {hr = "hr"}}]\n'
        '[dataset.channels]\nEDA = {modality = "gsr", name = "GSR", scale = 2.0}\n'
        '[dataset.labels]\nexclude = ["Fear"]\n[dataset.labels.classes]\nRelax = 1\n'
    )
    rec = load_generic(cfg)
    assert rec.subjects == ("S1", "S2") and rec.description["kind"] == "generic"
    load = pickle.loads(pickle.dumps(rec._load_subject))
    subj = load("S1", LoadReport())
    assert [t.info["event"] for t in subj] == [1, 3] and [t.trial for t in subj] == [1, 2]
    assert "y_source" not in subj.trials[0].info
    assert set(subj.trials[0].signals) == {"gsr", "hr"}
    np.testing.assert_allclose(subj.trials[0].channel("GSR")[0][0], 2 * (0.5 + 1), atol=4e-3)
    other = tmp_path / "elsewhere"
    other.mkdir()
    with pytest.raises(DatasetNotFoundError, match="no file matches"):
        load_generic(cfg, root=other)


def test_min_duration_and_zero_padded_subjects(tmp_path):
    (tmp_path / "data").mkdir()
    for sub in ("01", "02"):
        for name in ("fast", "slow"):
            wfdb.wrsamp(f"S{sub}_{name}", fs=8 if name == "fast" else 1, units=["u"],
                        sig_name=[name], p_signal=np.linspace(0, 1, 800)[:, None],
                        fmt=["16"], write_dir=str(tmp_path / "data"))
        wfdb.wrann(f"S{sub}_fast", "atr", np.array(FAST_EVENTS[0]), symbol=['"'] * 4,
                   aux_note=FAST_EVENTS[1], write_dir=str(tmp_path / "data"))
    desc = {"dataset": {"name": "pad", "root": str(tmp_path / "data"), "subjects": "01-02",
                        "subject_id": "S{subject}",
                        "records": ["S{subject}_fast", "S{subject}_slow"],
                        "channels": {"fast": "gsr", "slow": "hr"},
                        "labels": {"classes": {"Relax": 0, "Fear": 1}, "min_duration": 3.0}}}
    rec = load_generic(desc)
    assert rec.subjects == ("S01", "S02")
    subj = rec.load("S01")
    assert [t.info["stage"] for t in subj] == ["Relax", "Relax", "Fear"]
    assert [t.trial for t in subj] == [1, 2, 3]
    assert len(rec.report.skipped) == 1 and "'Fear'" in rec.report.skipped[0]["reason"]


# ---------------------------------------------------------------- EDF+ / BDF+


@pytest.mark.parametrize("bdf", [False, True], ids=["edf", "bdf"])
def test_edf_bdf_annotations_meas_date(tmp_path, bdf):
    ext = "bdf" if bdf else "edf"
    rng = np.random.default_rng(0)
    fz = rng.normal(0, 20, 400)
    t0 = dt.datetime(2020, 1, 2, 10, 30, 0)
    for sub in ("01", "02"):
        _write_edf(tmp_path / f"sub-{sub}_a.{ext}", [("Fz", fz, "uV"), ("GSR", fz / 20 + 5, "uS")],
                   16, [(2.5, None, "Relax"), (10.0, 5.0, "Fear"), (20.0, None, "Relax")],
                   bdf=bdf, start=t0)
        # 4 Hz respiration starting 2 s later, encoding its own time: [2, 22) s
        resp = 2 + np.arange(80) / 4.0
        _write_edf(tmp_path / f"sub-{sub}_b.{ext}", [("Resp", resp, "")], 4, bdf=bdf,
                   start=t0 + dt.timedelta(seconds=2))
    desc = {"name": ext, "root": str(tmp_path),
            "records": [f"sub-{{subject}}_a.{ext}", f"sub-{{subject}}_b.{ext}"],
            "channels": {"Fz": {"modality": "eeg", "scale": 1e6}, "GSR": "gsr", "Resp": "resp"},
            "labels": {"classes": {"Relax": 0, "Fear": 2}}}
    rec = load_generic(desc)
    assert rec.subjects == ("01", "02")
    subj = rec.load("02")
    assert [(t.info["stage"], t.info["onset_s"], t.info["duration_s"]) for t in subj] == [
        ("Relax", 2.5, 7.5), ("Fear", 10.0, 5.0), ("Relax", 20.0, 2.0)]
    for trial, (a, b) in zip(subj, [(40, 160), (160, 240), (320, 352)], strict=True):
        step = 42 * 20 / (2 ** 23 if bdf else 2 ** 15)
        np.testing.assert_allclose(trial.channel("Fz")[0], fz[a:b], atol=step)
        resp, sf = trial.channel("Resp")
        assert sf == 4.0
        np.testing.assert_allclose(resp, np.arange(a, b, 4) / 16.0, atol=0.01)


def test_edf_unreadable_and_unknown_channel(tmp_path):
    _write_edf(tmp_path / "r1.edf", [("Fz", np.zeros(32), "uV")], 16, [(0.0, None, "A")])
    (tmp_path / "r2.edf").write_bytes(b"not an edf file" * 4)
    desc = {"name": "e", "root": str(tmp_path), "subjects": ["1", "2"], "strict": True,
            "records": ["r{subject}.edf"], "channels": {"Cz": "eeg"},
            "labels": {"classes": {"A": 0}}}
    rec = load_generic(desc)
    with pytest.raises(UnknownChannelError, match=r"\['Cz'\].*'r1.edf': \['Fz'\]"):
        rec.load("1")
    with pytest.raises(FormatError, match=r"r2\.edf: cannot read record 'r2.edf' as 'edf'"):
        rec.load("2")


# ---------------------------------------------------------------- CSV


def _csv_subject(folder, sub):
    t = 100.0 + np.arange(80) / 4.0
    (folder / f"p{sub}_eda.csv").write_text(
        "time,eda\n" + "".join(f"{a},{a}\n" for a in t.tolist()))
    (folder / f"p{sub}_hr.csv").write_text(
        "time;hr\n" + "".join(f"{102.0 + i!r};{60.0 + i!r}\n" for i in range(16)))
    (folder / f"p{sub}_events.csv").write_text(
        "onset,duration,label\n1.0,,Relax\n5.0,3.0,Fear\n12.0,,Baseline\n")


def _csv_desc(root):
    return {"name": "csv", "root": str(root), "subjects": ["1"], "strict": True,
            "records": [{"file": "p{subject}_eda.csv", "time_column": "time"},
                        {"file": "p{subject}_hr.csv", "time_column": "time", "sep": ";"}],
            "channels": {"eda": "gsr", "hr": "hr"},
            "labels": {"from": "events", "events": "p{subject}_events.csv",
                       "classes": {"Relax": 0, "Fear": 1}, "exclude": ["Baseline"]}}


def test_csv_time_columns_and_events(tmp_path):
    _csv_subject(tmp_path, 1)
    subj = load_generic(_csv_desc(tmp_path)).load("1")
    # hr starts 2 s after eda: the common span is [2, 18) s on the eda timeline
    assert [(t.info["stage"], t.info["onset_s"], t.info["duration_s"]) for t in subj] == [
        ("Relax", 2.0, 3.0), ("Fear", 5.0, 3.0)]
    np.testing.assert_allclose(subj.trials[0].channel("eda")[0], 102.0 + np.arange(12) / 4)
    np.testing.assert_allclose(subj.trials[0].channel("hr")[0], [60.0, 61.0, 62.0])
    np.testing.assert_allclose(subj.trials[1].channel("hr")[0], [63.0, 64.0, 65.0])


def test_csv_sampling_rate_key(tmp_path):
    (tmp_path / "q1.csv").write_text("gsr,temp\n" + "".join(f"{i},{30 + i}\n" for i in range(20)))
    (tmp_path / "q1_ev.csv").write_text("onset,label\n0.0,Calm\n4.0,Fear\n")
    desc = {"name": "q", "root": str(tmp_path), "subjects": ["1"],
            "records": [{"file": "q{subject}.csv", "sfreq": 2.0}],
            "channels": {"gsr": "gsr", "temp": "temp"},
            "labels": {"from": "events", "events": "q{subject}_ev.csv",
                       "classes": {"Calm": 0, "Fear": 3}}}
    fear = load_generic(desc).load("1").trials[1]
    assert fear.info["y_fear"] == 3 and fear.info["duration_s"] == 6.0
    np.testing.assert_array_equal(fear.channel("temp")[0], 30.0 + np.arange(8, 20))


# ---------------------------------------------------------------- errors in the data


def test_annotation_outside_record(tmp_path):
    _wfdb_subject(tmp_path, 1, events=([4, 900], ["Relax", "Fear"]))
    desc = _wfdb_desc(tmp_path)
    desc["subjects"] = [1]
    with pytest.raises(FormatError, match=r"annotation 'Fear' at 112\.500 s .*lasts 100\.000 s"):
        load_generic(desc).load("S1")


def test_records_do_not_overlap(tmp_path):
    _wfdb_subject(tmp_path, 1, slow_start=dt.time(11, 0, 0))
    desc = _wfdb_desc(tmp_path)
    desc["subjects"] = [1]
    with pytest.raises(FormatError, match=r"'S1_fast' .*0\.000-100\.000 s\) and 'S1_slow' "
                                          r".*3600\.000-3703\.000 s\) do not overlap"):
        load_generic(desc).load("S1")


def test_unknown_label(wfdb_root):
    desc = _wfdb_desc(wfdb_root, classes={"Relax": 0}, source_classes={}, ratings={})
    with pytest.raises(ConfigError, match=r"label\(s\) \['Fear'\].*keys \['Relax'\].*"
                                          r"found: \['Fear', 'Relax'\]"):
        load_generic(desc).load("S1")


def test_unreadable_and_truncated_wfdb(wfdb_root):
    (wfdb_root / "S1_slow.hea").write_text("garbage here\n")
    with pytest.raises(FormatError, match=r"S1_slow\.hea: cannot read record 'S1_slow'"):
        load_generic(_wfdb_desc(wfdb_root)).load("S1")
    os.truncate(wfdb_root / "S2_fast.dat", 1000)
    with pytest.raises(FormatError, match=r"S2_fast\.hea: cannot read channels \['EDA', 'temp'\]"):
        load_generic(_wfdb_desc(wfdb_root)).load("S2")


def test_missing_annotation_file_and_channel(wfdb_root):
    (wfdb_root / "S1_fast.atr").unlink()
    with pytest.raises(FormatError, match=r"S1_fast\.atr: annotation file not found"):
        load_generic(_wfdb_desc(wfdb_root)).load("S1")
    desc = _wfdb_desc(wfdb_root)
    desc["channels"]["SpO2"] = "spo2"
    with pytest.raises(UnknownChannelError, match=r"\['SpO2'\].*'S2_fast': \['EDA', 'temp'\], "
                                                  r"'S2_slow': \['hr'\]"):
        load_generic(desc).load("S2")
    desc = _wfdb_desc(wfdb_root)
    desc["records"] = ["S{subject}_fast", {"file": "S{subject}_slow", "channels": {"HR": "hr"}}]
    with pytest.raises(UnknownChannelError, match=r"'HR' of record 'S1_slow' .* has \['hr'\]"):
        load_generic(desc).load("S1")


def test_channel_conflicts(wfdb_root):
    desc = _wfdb_desc(wfdb_root)
    desc["channels"]["hr"] = "gsr"
    with pytest.raises(ConfigError, match=r"'gsr' mixes sampling rates \[1\.0, 8\.0\]"):
        load_generic(desc).load("S1")
    desc = _wfdb_desc(wfdb_root)
    desc["channels"]["temp"] = {"modality": "temp", "name": "EDA"}
    with pytest.raises(ConfigError, match=r"\['EDA'\] used twice"):
        load_generic(desc).load("S1")
    desc = _wfdb_desc(wfdb_root)
    desc["records"] = ["S{subject}_fast", "S{subject}_fast"]
    with pytest.raises(ConfigError, match=r"'EDA' is in records 'S1_fast' and 'S1_fast'"):
        load_generic(desc).load("S1")


def test_csv_format_errors(tmp_path):
    _csv_subject(tmp_path, 1)
    desc = _csv_desc(tmp_path)
    desc["records"][0]["time_column"] = "t"
    with pytest.raises(FormatError, match=r"p1_eda\.csv: no time column 't'; columns are "
                                          r"\['time', 'eda'\]"):
        load_generic(desc).load("1")
    (tmp_path / "p1_eda.csv").write_text("time,eda\n0,1\n1,2\n3,3\n")
    with pytest.raises(FormatError, match=r"p1_eda\.csv: time column 'time' is not uniformly"):
        load_generic(_csv_desc(tmp_path)).load("1")
    (tmp_path / "p1_eda.csv").write_text("time,eda\n0,a\n1,b\n")
    with pytest.raises(FormatError, match=r"p1_eda\.csv: column\(s\) \['eda'\] are not numeric"):
        load_generic(_csv_desc(tmp_path)).load("1")
    (tmp_path / "p1_eda.csv").write_text("time,eda\n0,1\n")
    with pytest.raises(FormatError, match=r"time column 'time' needs at least 2 finite"):
        load_generic(_csv_desc(tmp_path)).load("1")
    _csv_subject(tmp_path, 1)
    desc = _csv_desc(tmp_path)
    desc["labels"] = {"classes": {"Relax": 0}}
    with pytest.raises(FormatError, match=r"p1_eda\.csv: a CSV record carries no annotations"):
        load_generic(desc).load("1")
    (tmp_path / "p1_events.csv").write_text("start,label\n1.0,Relax\n")
    with pytest.raises(FormatError, match=r"p1_events\.csv: events file lacks column\(s\) "
                                          r"\['onset'\]"):
        load_generic(_csv_desc(tmp_path)).load("1")
    (tmp_path / "p1_events.csv").write_text("onset,label\nsoon,Relax\n")
    with pytest.raises(FormatError, match=r"row 1 has onset 'soon'; expected seconds"):
        load_generic(_csv_desc(tmp_path)).load("1")
    (tmp_path / "p1_events.csv").unlink()
    with pytest.raises(DatasetNotFoundError, match=r"p1_events\.csv: events file not found"):
        load_generic(_csv_desc(tmp_path)).load("1")


# ---------------------------------------------------------------- errors in the description


def test_missing_root_and_records(wfdb_root, tmp_path):
    with pytest.raises(DatasetNotFoundError, match=r"dataset root .*nowhere' is not a folder"):
        load_generic(_wfdb_desc(wfdb_root), root=tmp_path / "nowhere")
    desc = _wfdb_desc(wfdb_root)
    desc["subjects"] = "1-3"
    with pytest.raises(DatasetNotFoundError, match=r"2 record file\(s\) missing .*S3_fast\.hea"):
        load_generic(desc)
    desc = _wfdb_desc(wfdb_root)
    del desc["root"]
    with pytest.raises(ConfigError,
                       match=r"<dict>: no root in \[dataset\]; set it .* or pass --data DIR"):
        load_generic(desc)


def _set(path, value):
    def change(desc):
        *head, last = path
        target = desc
        for key in head:
            target = target[key]
        if value is KeyError:
            del target[last]
        else:
            target[last] = value
    return change


@pytest.mark.parametrize(("change", "match"), [
    (_set(["colour"], "red"), r"<dict>: unknown key\(s\) \['colour'\] in \[dataset\]"),
    (_set(["labels", "clases"], {}), r"unknown key\(s\) \['clases'\] in \[dataset\.labels\]"),
    (_set(["name"], 3), r"<dict>: key 'dataset\.name' must be a string, got 3"),
    (_set(["name"], KeyError), r"\[dataset\] needs key 'name'"),
    (_set(["kind"], "deap"), r"'dataset\.kind' must be \"generic\""),
    (_set(["subjects"], "1..3"), r"'dataset\.subjects' must be a range \"1-20\""),
    (_set(["subjects"], "5-1"), r"'dataset\.subjects' must be a range"),
    (_set(["subjects"], [1.5]), r"'dataset\.subjects' must be a non-empty list"),
    (_set(["subject_id"], "S"), r"'dataset\.subject_id' 'S' lacks \{subject\}"),
    (_set(["align"], "clock"), r"'dataset\.align' must be one of \['auto', 'start'\]"),
    (_set(["format"], "mat"),
     r"'dataset\.format' must be one of \['wfdb', 'edf', 'bdf', 'csv', 'e4'\]"),
    (_set(["records"], []), r"'dataset\.records' must be a non-empty list"),
    (_set(["records"], ["S_fast"]), r"records\[0\]\.file 'S_fast' lacks the \{subject\}"),
    (_set(["records"], ["S{subject}.mat"]), r"cannot tell the format of .*'S\{subject\}\.mat'"),
    (_set(["records"], [{"format": "csv"}]), r"records\[0\] needs a 'file' pattern"),
    (_set(["records"], [{"file": "{subject}.csv"}]), r"CSV record .* needs 'sfreq' \(Hz\)"),
    (_set(["records"], [{"file": "{subject}.csv", "sfreq": 0}]), r"'.*sfreq' must be > 0 Hz"),
    (_set(["records"], [{"file": "{subject}.csv", "rate": 1}]), r"\['rate'\] in dataset\.rec"),
    (_set(["records"], [{"file": "{subject}.csv", "time_column": 0}]), r"must be a string, got 0"),
    (_set(["channels"], {}), r"\[dataset\.channels\] is missing or empty"),
    (_set(["channels", "EDA"], "skin"), r"'dataset\.channels\.EDA\.modality' must be one of"),
    (_set(["channels", "EDA"], {"modality": "gsr", "gain": 2}), r"\['gain'\] in dataset\.chan"),
    (_set(["channels", "EDA"], {"modality": "gsr", "scale": "x"}), r"\.scale' must be a number"),
    (_set(["labels"], "atr"), r"key 'dataset\.labels' must be a table, got 'atr'"),
    (_set(["labels", "from"], "file"), r"'dataset\.labels\.from' must be one of"),
    (_set(["labels", "from"], "events"), r"needs 'dataset\.labels\.events'"),
    (_set(["labels", "record"], "S{subject}"), r"'dataset\.labels\.record' is 'S\{subject\}', "
                                               r"not one of the records"),
    (_set(["labels", "field"], "note"), r"'dataset\.labels\.field' must be one of"),
    (_set(["labels", "classes"], KeyError), r"needs a 'classes' table"),
    (_set(["labels", "classes", "Fear"], "high"), r"'dataset\.labels\.classes\.Fear' must be an "
                                                  r"integer, got 'high'"),
    (_set(["labels", "source_classes", "Calm"], 0), r"'dataset\.labels\.source_classes' names "
                                                    r"\['Calm'\], which are not in 'classes'"),
    (_set(["labels", "ratings", "Calm"], {"a": 1.0}), r"'dataset\.labels\.ratings' names"),
    (_set(["labels", "ratings", "Fear"], {"a": "hi"}), r"ratings\.Fear\.a' must be a number"),
    (_set(["labels", "exclude"], ["Fear"]), r"'dataset\.labels\.exclude' names \['Fear'\], "
                                            r"which are also classes"),
    (_set(["labels", "exclude"], "Fear"), r"'dataset\.labels\.exclude' must be a list of str"),
    (_set(["labels", "min_duration"], -1), r"'dataset\.labels\.min_duration' must be >= 0 s"),
])
def test_bad_description(wfdb_root, change, match):
    desc = _wfdb_desc(wfdb_root)
    change(desc)
    with pytest.raises(ConfigError, match=match):
        load_generic(desc)


def test_bad_description_files(tmp_path):
    with pytest.raises(ConfigError, match=r"Description file .*missing\.toml' does not exist"):
        load_generic(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[dataset\nname = 1\n")
    with pytest.raises(ConfigError, match=r"bad\.toml: not valid TOML"):
        load_generic(bad)
    bad.write_text("[experiment]\nname = 'x'\n")
    with pytest.raises(ConfigError, match=r"bad\.toml: no \[dataset\] table"):
        load_generic(bad)
    bad.write_text('[dataset]\nname = "x"\nrecords = ["{subject}"]\nlabels = {classes = {}}\n'
                   "channels = {x = 'gsr'}\nmin_len = 1\n")
    with pytest.raises(ConfigError, match=r"bad\.toml: unknown key\(s\) \['min_len'\]"):
        load_generic(bad)
    with pytest.raises(ConfigError, match=r"<dict>: key 'dataset' must be a table, got 3"):
        load_generic({"dataset": 3})
    with pytest.raises(TypeError, match="'description' must be a path to a TOML file or a dict"):
        load_generic(42)
    with pytest.raises(TypeError, match="'root' must be a path, got int"):
        load_generic({"name": "x", "records": ["{subject}"], "channels": {"x": "gsr"},
                      "labels": {"classes": {}}}, root=3)


def test_wfdb_header_limits_and_bad_annotations(wfdb_root):
    (wfdb_root / "S1_slow.hea").write_text("S1_slow/2 1 100\nseg1 50\nseg2 50\n")
    with pytest.raises(FormatError, match=r"S1_slow\.hea: multi-segment WFDB records"):
        load_generic(_wfdb_desc(wfdb_root)).load("S1")
    (wfdb_root / "S1_slow.hea").write_text("S1_slow 1 1\nS1_slow.dat 16 200/bpm 16 0 0 0 0 hr\n")
    with pytest.raises(FormatError, match=r"S1_slow\.hea: the header gives no sampling rate or "
                                          r"no signal length"):
        load_generic(_wfdb_desc(wfdb_root)).load("S1")
    (wfdb_root / "S2_fast.atr").write_bytes(b"\x00\x01garbage")
    with pytest.raises(FormatError, match=r"S2_fast\.atr: cannot read annotations"):
        load_generic(_wfdb_desc(wfdb_root)).load("S2")


def test_record_removed_after_opening(wfdb_root):
    rec = load_generic(_wfdb_desc(wfdb_root))
    (wfdb_root / "S2_slow.hea").unlink()
    with pytest.raises(DatasetNotFoundError, match=r"S2_slow\.hea: record 'S2_slow' not found"):
        rec.load("S2")


def test_empty_events_file_and_stage_below_one_sample(tmp_path):
    (tmp_path / "q1.csv").write_text("gsr\n" + "".join(f"{i}\n" for i in range(10)))
    (tmp_path / "q1_ev.csv").write_text("onset,label\n0.0,Calm\n4.2,Fear\n4.4,Calm\n")
    desc = {"name": "q", "root": str(tmp_path), "subjects": ["1"],
            "records": [{"file": "q{subject}.csv", "sfreq": 1.0}], "channels": {"gsr": "gsr"},
            "strict": True, "labels": {"from": "events", "events": "q{subject}_ev.csv",
                       "classes": {"Calm": 0, "Fear": 3}}}
    rec = load_generic(desc)
    # Fear spans [4.2, 4.4) s: round(4.2) = round(4.4) = 4, no 1 Hz sample
    assert [t.info["stage"] for t in rec.load("1")] == ["Calm", "Calm"]
    assert "shorter than one sample" in rec.report.skipped[0]["reason"]
    (tmp_path / "q1_ev.csv").write_text("")
    with pytest.raises(FormatError, match=r"q1_ev\.csv: cannot read the events file"):
        rec.load("1")


def test_auto_subjects_in_folders(tmp_path):
    for sub in ("b", "a", "10", "9"):
        (tmp_path / f"sub-{sub}").mkdir()
        (tmp_path / f"sub-{sub}" / f"sub-{sub}_gsr.csv").write_text("gsr\n1\n2\n3\n4\n")
        (tmp_path / f"sub-{sub}" / "ev.csv").write_text("onset,label\n0,A\n")
    (tmp_path / "sub-x").mkdir()  # folder and file name disagree: not a subject
    (tmp_path / "sub-x" / "sub-y_gsr.csv").write_text("gsr\n1\n")
    desc = {"name": "f", "root": str(tmp_path), "subject_id": "P{subject}",
            "records": [{"file": "sub-{subject}/sub-{subject}_gsr.csv", "sfreq": 2}],
            "channels": {"gsr": "gsr"},
            "labels": {"from": "events", "events": "sub-{subject}/ev.csv", "classes": {"A": 1}}}
    rec = load_generic(desc)
    assert rec.subjects == ("P9", "P10", "Pa", "Pb")
    (trial,) = rec.load("P10").trials
    assert trial.info["duration_s"] == 2.0 and trial.signals["gsr"].n_times == 4
