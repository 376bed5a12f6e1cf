"""configs/physionet-noneeg.toml read by fearkd.datasets.generic on the REAL PhysioNet files.

The data (PhysioNet noneeg 1.0.0, 20 subjects, ~4 MB) sit in the project's shared data folder;
the tests skip when it is absent. Reading all 20 subjects takes well under a second.
"""

from __future__ import annotations

import collections
from pathlib import Path

import numpy as np
import pytest
import wfdb

from fearkd.datasets.generic import load_generic

REPO = Path(__file__).resolve().parents[1]
DATA = (Path(__file__).parents[1] / ".." / "shared" / "data" / "physionet-noneeg").resolve()
CONFIG = REPO / "configs" / "physionet-noneeg.toml"

pytestmark = pytest.mark.skipif(
    not DATA.is_dir(), reason=f"PhysioNet noneeg data not found at {DATA} (real-data tests)"
)

ORDER = ["Relax", "PhysicalStress", "Relax", "EmotionalStress", "CognitiveStress", "Relax",
         "EmotionalStress", "Relax"]
CLASSES = {"Relax": 0, "PhysicalStress": 1, "CognitiveStress": 2, "EmotionalStress": 3}
#: Totals over 20 subjects given by the dataset's README (seconds, rounded).
README_TOTALS = {"Relax": 23995, "PhysicalStress": 6528, "EmotionalStress": 8488,
                 "CognitiveStress": 7094}


@pytest.fixture(scope="module")
def subjects():
    rec = load_generic(CONFIG, root=DATA)
    return rec, list(rec)


def test_subjects_and_stage_order(subjects):
    rec, subs = subjects
    assert rec.dataset == "physionet-noneeg"
    assert rec.subjects == tuple(f"Subject{i}" for i in range(1, 21))
    assert not rec.report.skipped
    for subj in subs:
        assert [t.trial for t in subj] == list(range(1, 9))
        assert [t.info["stage"] for t in subj] == ORDER, subj.subject
        assert [t.info["y_fear"] for t in subj] == [CLASSES[s] for s in ORDER]
        assert [t.info["y_source"] for t in subj] == [int(s != "Relax") for s in ORDER]
        onsets = [t.info["onset_s"] for t in subj]
        assert onsets == sorted(onsets) and onsets[0] == pytest.approx(0.125)  # sample 1 at 8 Hz


def test_totals_match_readme(subjects):
    _, subs = subjects
    spans, fast, slow = (collections.Counter() for _ in range(3))
    for subj in subs:
        for t in subj:
            spans[t.info["stage"]] += t.info["duration_s"]
            fast[t.info["stage"]] += t.signals["gsr"].duration
            slow[t.info["stage"]] += t.signals["hr"].duration
    # measured: Relax 23995.0, PhysicalStress 6527.5, EmotionalStress 8488.0,
    # CognitiveStress 7093.5 (the README rounds to whole seconds)
    for stage, total in README_TOTALS.items():
        assert spans[stage] == pytest.approx(total, abs=1.0), stage
        assert fast[stage] == pytest.approx(spans[stage], abs=1e-9), stage  # 8 Hz grid holds it
        # 1 Hz signals: each of the 160 stage spans is off by less than one sample
        assert slow[stage] == pytest.approx(total, abs=20.0 * ORDER.count(stage)), stage


def test_rates_channels_and_alignment(subjects):
    _, subs = subjects
    for subj in subs[:3]:
        for t in subj:
            rates = {m: s.sfreq for m, s in t.signals.items()}
            assert rates == {"gsr": 8.0, "temp": 8.0, "acc": 8.0, "hr": 1.0, "spo2": 1.0}
            assert t.signals["acc"].ch_names == ("ax", "ay", "az")
            assert set(t.ch_names) == {"EDA", "temp", "ax", "ay", "az", "hr", "SpO2"}
            durations = [s.duration for s in t.signals.values()]
            assert max(durations) - min(durations) <= 1.0
            assert abs(t.signals["hr"].duration - t.info["duration_s"]) < 1.0


def test_values_match_wfdb(subjects):
    """Stage crops equal the samples wfdb reads between the .atr sample indices."""
    _, subs = subjects
    subj = subs[1]
    fast = wfdb.rdrecord(str(DATA / "Subject2_AccTempEDA")).p_signal
    slow = wfdb.rdrecord(str(DATA / "Subject2_SpO2HR")).p_signal
    ann = wfdb.rdann(str(DATA / "Subject2_AccTempEDA"), "atr")
    bounds = list(ann.sample) + [len(fast)]
    for k, t in enumerate(subj):
        a, b = bounds[k], bounds[k + 1]
        np.testing.assert_array_equal(t.channel("EDA")[0], fast[a:b, 4])
        np.testing.assert_array_equal(t.signals["acc"].data, fast[a:b, :3].T)
        # 1 Hz: nearest second to each boundary, halves up (a/8 s -> floor(a/8 + 0.5))
        i0, i1 = int(np.floor(a / 8 + 0.5)), int(np.floor(b / 8 + 0.5))
        np.testing.assert_array_equal(t.channel("hr")[0], slow[i0:i1, 1])


def test_physical_units_plausible(subjects):
    _, subs = subjects
    for subj in subs:
        cat = {name: np.concatenate([t.channel(name)[0] for t in subj])
               for name in ("EDA", "temp", "hr", "SpO2", "az")}
        assert 28.0 <= np.median(cat["temp"]) <= 37.0, subj.subject  # skin, degC
        assert 20.0 <= cat["temp"].min() and cat["temp"].max() <= 40.0, subj.subject
        assert 0.0 <= cat["EDA"].min() and cat["EDA"].max() <= 30.0, subj.subject  # uS
        assert 40.0 <= cat["hr"].min() and cat["hr"].max() <= 200.0, subj.subject  # bpm
        assert 80.0 <= cat["SpO2"].min() and cat["SpO2"].max() <= 100.0, subj.subject  # %
        acc = np.concatenate([t.signals["acc"].data for t in subj], axis=1)
        assert 0.7 <= np.median(np.linalg.norm(acc, axis=0)) <= 1.3, subj.subject  # g at rest
