"""Sessions, skip-and-list, per-subject self-reports and flat channels of the generic reader."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fearkd.cli import main
from fearkd.datasets.generic import load_generic
from fearkd.errors import DatasetNotFoundError, FormatError
from fearkd.evaluation.splitters import iter_splits, make_splitter
from fearkd.labels import label_recordings


def _session(root, subject, session, *, flat=False, events="0,Relax\n10,Fear\n"):
    folder = root / f"p{subject}"
    folder.mkdir(parents=True, exist_ok=True)
    eda = np.zeros(80) if flat else np.sin(np.arange(80) / 3.0) + int(subject)
    (folder / f"rec_{session}.csv").write_text("eda\n" + "".join(f"{v}\n" for v in eda))
    (folder / f"ev_{session}.csv").write_text("onset,label\n" + events)


def _desc(root, **extra):
    desc = {"name": "sess", "root": str(root), "subject_id": "P{subject}",
            "records": [{"file": "p{subject}/rec_{session}.csv", "sfreq": 4.0}],
            "channels": {"eda": "gsr"},
            "labels": {"from": "events", "events": "p{subject}/ev_{session}.csv",
                       "classes": {"Relax": 0, "Fear": 3}}}
    desc.update(extra)
    return desc


@pytest.fixture
def two_by_two(tmp_path):
    for subject in ("1", "2"):
        for session in ("day1", "day2"):
            _session(tmp_path, subject, session)
    return tmp_path


def test_sessions_keep_their_own_clock_and_unique_trial_ids(two_by_two):
    rec = load_generic(_desc(two_by_two))
    assert rec.subjects == ("P1", "P2")
    assert rec.description["sessions"] == {"P1": ["day1", "day2"], "P2": ["day1", "day2"]}
    trials = list(rec.load("P1"))
    assert [t.trial for t in trials] == [1, 2, 3, 4]
    assert [t.info["session"] for t in trials] == ["day1", "day1", "day2", "day2"]
    # each session starts its own timeline at 0 s: never laid end to end
    assert [t.info["onset_s"] for t in trials] == [0.0, 10.0, 0.0, 10.0]


def test_subject_stays_the_group_across_sessions(two_by_two):
    rec = load_generic(_desc(two_by_two))
    rows = [{"subject": t.subject, "session": t.info["session"], "trial": t.trial,
             "t_start": 0.0, "t_stop": 1.0} for s in rec for t in s]
    meta = pd.DataFrame(rows)
    for train, _val, test in iter_splits(make_splitter("subject", n_splits=2, random_state=0),
                                         meta):
        assert not set(meta["subject"].iloc[train]) & set(meta["subject"].iloc[test])


def test_broken_session_is_skipped_and_listed_unless_strict(two_by_two, capsys):
    (two_by_two / "p2" / "ev_day2.csv").write_text("onset,label\n0,Relax\n900,Fear\n")
    rec = load_generic(_desc(two_by_two))
    assert [t.info["session"] for t in rec.load("P2")] == ["day1", "day1"]
    (entry,) = rec.report.skipped
    assert entry["subject"] == "P2" and "ev_day2.csv" in entry["reason"]
    assert "session 'day2' of the subject is skipped (strict = true" in entry["reason"]
    with pytest.raises(FormatError, match=r"ev_day2\.csv: annotation 'Fear' at 900"):
        load_generic(_desc(two_by_two, strict=True)).load("P2")
    path = two_by_two / "d.toml"
    path.write_text(f'[dataset]\nname = "sess"\nroot = "{two_by_two}"\n'
                    'subject_id = "P{subject}"\n'
                    'records = [{ file = "p{subject}/rec_{session}.csv", sfreq = 4.0 }]\n'
                    '[dataset.channels]\neda = "gsr"\n[dataset.labels]\nfrom = "events"\n'
                    'events = "p{subject}/ev_{session}.csv"\n'
                    '[dataset.labels.classes]\nRelax = 0\nFear = 3\n')
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "sessions: {'P1': ['day1', 'day2']" in out
    assert "skipped subject P2 (whole subject or session)" in out
    assert main(["labels", str(path)]) == 0
    assert "ev_day2.csv" in capsys.readouterr().out


def test_missing_and_unreadable_files_skip_the_subject(tmp_path):
    _session(tmp_path, "1", "day1")
    _session(tmp_path, "2", "day1")
    (tmp_path / "p2" / "rec_day1.csv").write_text("eda\nx\ny\n")
    desc = _desc(tmp_path, sessions=["day1"], subjects=["1", "2"])
    rec = load_generic(desc)
    assert len(rec.load("P2")) == 0
    assert "p2/rec_day1.csv" in rec.report.skipped[0]["reason"]
    (tmp_path / "p2" / "rec_day1.csv").unlink()
    rec = load_generic(desc)
    assert len(rec.load("P2")) == 0 and "not found" in rec.report.skipped[0]["reason"]
    with pytest.raises(DatasetNotFoundError, match=r"1 record file\(s\) missing .*p2/rec_day1\.csv"
                                                   r".*strict = true"):
        load_generic({**desc, "strict": True})


def _ratings(root, text):
    (root / "ratings.csv").write_text(text)
    (root / "stress.toml").write_text(
        'name = "stress"\n[[levels]]\nname = "none"\nranges = { stress = "[0, 4)" }\n'
        '[[levels]]\nname = "high"\nranges = { stress = "[4, 10]" }\n')


def test_ratings_file_gives_each_person_their_own_levels(two_by_two):
    _ratings(two_by_two, "subject,stage,stress\n1,Relax,1\n1,Fear,8\nP2,Relax,5\nP2,Fear,2\n")
    desc = _desc(two_by_two, sessions=["day1"])
    desc["labels"].update(ratings_file="ratings.csv", rules=str(two_by_two / "stress.toml"))
    rec = load_generic(desc)
    trials, report = label_recordings(rec)
    assert trials["stress"].tolist() == [1.0, 8.0, 5.0, 2.0]
    # the same stage gives different levels to different people: from their own reports
    assert trials["y_fear"].tolist() == [0, 1, 1, 0]


@pytest.mark.parametrize("text, match", [
    ("subject,stage,stress\n1,Relax,1\n9,Fear,8\n",
     r"ratings\.csv: line 3: subject '9' is not a subject .*fix the row or 'subjects'"),
    ("subject,stage,stress\n1,Rlax,1\n",
     r"ratings\.csv: line 2: stage 'Rlax' is not a stage of \[dataset\.labels\.classes\]"),
    ("subject,stress\n1,1\n", r"ratings\.csv: line 1 is \['subject', 'stress'\]; a ratings"),
    ("subject,stage,stress\n1,Relax,high\n", r"line 2: stress is 'high', not a number"),
])
def test_bad_ratings_file_is_one_line(two_by_two, text, match, capsys):
    _ratings(two_by_two, text)
    desc = _desc(two_by_two)
    desc["labels"]["ratings_file"] = "ratings.csv"
    with pytest.raises(FormatError, match=match):
        load_generic(desc)


def test_flat_channels_are_flagged_dropped_or_refused(tmp_path):
    _session(tmp_path, "1", "day1")
    _session(tmp_path, "2", "day1", flat=True)
    rec = load_generic(_desc(tmp_path))
    assert len(rec.load("P2")) == 2
    assert rec.report.flagged == [{"subject": "P2", "channel": "eda", "why": "all zero"}]
    rec = load_generic(_desc(tmp_path, flat="drop-subject"))
    assert len(rec.load("P2")) == 0 and "eda (all zero)" in rec.report.skipped[0]["reason"]
    with pytest.raises(FormatError, match=r"subject P2 has dead or flat-lined channel\(s\) eda "
                                          r"\(all zero\); set flat = \"drop-subject\""):
        load_generic(_desc(tmp_path, flat="error")).load("P2")
