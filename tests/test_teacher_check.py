"""The demo's teacher check (:func:`fearkd.reporting.effects.teacher_check`): Method 1's teacher
against the classical baselines, computed from tidy results, with hand-computed answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from fearkd.reporting.effects import teacher_check, teacher_check_sentence

#: (fold, seed) -> test accuracy of each side; means: teacher 0.80, rf 0.83, logreg 0.70.
SCORES = {
    ("method1", "teacher", "multi-input"): [0.78, 0.82, 0.79, 0.81],
    ("baseline", "baseline", "rf"): [0.84, 0.83, 0.80, 0.85],
    ("baseline", "baseline", "logreg"): [0.70, 0.71, 0.69, 0.70],
    ("baseline", "baseline", "majority"): [0.25, 0.25, 0.25, 0.25],
}
PAIRS = [(0, 0), (1, 0), (0, 1), (1, 1)]


def _results(scores=SCORES, protocol="subject") -> pd.DataFrame:
    rows = []
    for (method, stage, model), values in scores.items():
        for (fold, seed), value in zip(PAIRS, values, strict=True):
            for split, v in (("test", value), ("train", 1.0)):
                rows.append({"dataset": "deap", "protocol": protocol, "method": method,
                             "stage": stage, "model": model, "target": "-", "task": "fear",
                             "fold": fold, "seed": seed, "split": split,
                             "metric": "accuracy", "value": v})
    return pd.DataFrame(rows)


def test_gap_best_baseline_and_interval_match_a_hand_computation():
    row = teacher_check(_results()).iloc[0]
    teacher, rf = np.mean(SCORES[("method1", "teacher", "multi-input")]), 0.83
    assert row["best"] == "rf" and row["model"] == "multi-input" and row["n_pairs"] == 4
    assert row["teacher"] == pytest.approx(teacher)
    assert row["gap"] == pytest.approx(rf - teacher)
    assert row["above_majority"] == pytest.approx(teacher - 0.25)
    d = np.subtract(SCORES[("baseline", "baseline", "rf")],
                    SCORES[("method1", "teacher", "multi-input")])
    half = stats.t.ppf(0.975, 3) * d.std(ddof=1) / 2.0
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((d.mean() - half, d.mean() + half))
    assert row["met"]
    text = teacher_check_sentence(row)
    assert "gap 3.0 pp" in text and "best classical baseline rf 83.0 %" in text
    assert text.endswith(": met")


@pytest.mark.parametrize("side, shift, met", [
    (("baseline", "baseline", "rf"), 0.021, False),       # gap 5.1 pp: more than 5
    (("baseline", "baseline", "rf"), 0.019, True),        # gap 4.9 pp
    (("baseline", "baseline", "logreg"), 0.20, False),    # logreg 0.90 becomes the best
    (("baseline", "baseline", "majority"), 0.26, False),  # 0.51: teacher only 29 pp above
])
def test_met_follows_both_margins(side, shift, met):
    scores = dict(SCORES)
    scores[side] = [v + shift for v in SCORES[side]]
    row = teacher_check(_results(scores)).iloc[0]
    assert bool(row["met"]) is met, row.to_dict()
    if side[2] == "logreg":
        assert row["best"] == "logreg"


def test_nothing_to_check_without_baselines_or_under_another_protocol():
    no_rf = {k: v for k, v in SCORES.items() if k[2] not in ("rf", "logreg")}
    assert teacher_check(_results(no_rf)).empty
    assert teacher_check(_results(protocol="seed-legacy")).empty
