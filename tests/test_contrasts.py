"""Named contrasts and comparisons along a dimension, against scipy and hand computations."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from fearkd.evaluation.contrasts import (
    central_contrasts,
    compare_by,
    contrast_specs,
    min_wilcoxon_p,
)
from fearkd.evaluation.stats import holm

FOLDS = 5
SEEDS = (0, 1)


def _results(stages: dict, folds: int = FOLDS, seeds=SEEDS) -> pd.DataFrame:
    """Test-accuracy rows: ``stages[(method, stage, target)] = per-pair values``."""
    rows = []
    for (method, stage, target), values in stages.items():
        pairs = [(f, s) for s in seeds for f in range(folds)]
        for (fold, seed), v in zip(pairs, values, strict=True):
            rows.append({"dataset": "deap", "protocol": "subject", "method": method,
                         "stage": stage, "model": "cnn", "target": target, "task": "fear",
                         "fold": fold, "seed": seed, "split": "test", "metric": "accuracy",
                         "value": float(v), "n_train": 80, "n_test": 20, "chance": 0.25})
    return pd.DataFrame(rows)


RNG = np.random.default_rng(0)
BASE = RNG.uniform(0.3, 0.5, FOLDS * len(SEEDS))
FULL = {
    ("method1", "teacher", "-"): BASE + 0.10 + RNG.normal(0, 0.01, BASE.size),
    ("scratch", "teacher", "-"): BASE,
    ("method1", "student", "soft"): BASE + RNG.normal(0, 0.02, BASE.size),
    ("method2", "student", "soft"): BASE + 0.01 + RNG.normal(0, 0.02, BASE.size),
    ("method2", "student", "hard"): BASE - 0.01 + RNG.normal(0, 0.02, BASE.size),
    ("scratch", "student", "-"): BASE + RNG.normal(0, 0.02, BASE.size),
}


def test_named_contrasts_pair_on_fold_and_seed_with_holm_by_hand():
    res = central_contrasts(_results(FULL))
    t = res.table.set_index("contrast")
    row = t.loc["TL teacher vs teacher from scratch"]
    d = FULL[("method1", "teacher", "-")] - FULL[("scratch", "teacher", "-")]
    assert row["n_pairs"] == FOLDS * len(SEEDS)
    assert row["mean_diff"] == pytest.approx(d.mean())
    half = stats.t.ppf(0.975, d.size - 1) * d.std(ddof=1) / np.sqrt(d.size)
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((d.mean() - half, d.mean() + half))
    # Nadeau-Bengio by hand: t = mean / sqrt((1/k + 20/80) var)
    t_nb = d.mean() / np.sqrt((1 / d.size + 0.25) * d.var(ddof=1))
    assert row["nb_p"] == pytest.approx(2 * stats.t.sf(abs(t_nb), d.size - 1))
    assert row["wilcoxon_p"] == pytest.approx(stats.wilcoxon(d).pvalue)
    # Holm across the family, by hand
    p = res.table["nb_p"].to_numpy()
    order = np.argsort(p)
    m = len(p)
    hand = np.empty(m)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, (m - rank) * p[i])
        hand[i] = min(1.0, running)
    assert res.table["nb_p_holm"].to_numpy() == pytest.approx(hand)
    assert bool(row["significant"])
    # hard labels shown once, as the scratch student
    assert "Method 1 vs Method 2 (hard)" in t.index
    assert t.loc["Method 1 vs Method 2 (hard)", "a"] == "hard labels (= scratch student, no KD)"
    assert not any("Method 1 KD (hard)" in c for c in t.index)
    assert any("mis-paired KD: not run" in s for s in res.sentences)
    assert "Named contrasts" in res.to_text()


def test_holm_matches_a_hand_computation():
    p = np.array([0.01, 0.04, 0.03, 0.20])
    # sorted 0.01, 0.03, 0.04, 0.20 -> 4*.01=.04, 3*.03=.09, 2*.04=.08->.09, 1*.2=.2
    assert holm(p) == pytest.approx([0.04, 0.09, 0.09, 0.20])


def test_only_method1_says_what_did_not_run():
    only1 = {k: v for k, v in FULL.items() if k[0] != "method2"}
    res = central_contrasts(_results(only1))
    text = " ".join(res.sentences)
    assert "Method 2 KD (soft) vs scratch student: not run" in text
    assert "method2" in text and "[methods] run" in text
    assert set(res.table["contrast"]) == {"TL teacher vs teacher from scratch",
                                          "Method 1 KD (soft) vs scratch student"}


def test_power_sentence_when_wilcoxon_cannot_reach_alpha():
    assert min_wilcoxon_p(4) == pytest.approx(0.125)
    four = {k: v[:4] for k, v in FULL.items()}
    res = central_contrasts(_results(four, folds=4, seeds=(0,)))
    assert any("with 4 pairs the Wilcoxon test cannot give p below 0.125" in s
               for s in res.sentences)
    many = central_contrasts(_results(FULL))
    assert not any("Power" in s for s in many.sentences)


def test_fewer_than_two_pairs_is_a_sentence():
    one = {k: v[:1] for k, v in FULL.items()}
    res = central_contrasts(_results(one, folds=1, seeds=(0,)))
    assert res.table.empty
    assert any("fewer than 2 (fold, seed) pairs" in s and "[evaluation] seeds" in s
               for s in res.sentences)


def test_no_methods_is_a_sentence_and_bad_metric_one_line():
    res = central_contrasts(_results({("backbone", "backbone", "-"): BASE}))
    assert res.sentences and "[methods] run" in res.sentences[0]
    with pytest.raises(ValueError, match=r"--metric: expected one of \['accuracy'\], got 'f1'"):
        central_contrasts(_results(FULL), "f1")


def test_compare_by_target_and_errors():
    res = compare_by(_results(FULL), "target")
    pairs = set(zip(res.table["model_a"], res.table["model_b"], strict=True))
    assert ("soft", "hard") in pairs or ("hard", "soft") in pairs
    a, b = FULL[("method2", "student", "soft")], FULL[("method2", "student", "hard")]
    row = res.table.iloc[0]
    sign = 1 if row["model_a"] == "soft" else -1
    assert row["mean_diff"] == pytest.approx(sign * (a - b).mean())
    with pytest.raises(ValueError, match=r"--by: expected one of 'stage', .*got 'stages'"):
        compare_by(_results(FULL), "stages")
    with pytest.raises(ValueError, match=r"--by normalize: the results have no 'normalize'"):
        compare_by(_results(FULL), "normalize")
    with pytest.raises(ValueError, match=r"--by model: no results hold two model values"):
        compare_by(_results(FULL), "model")


def test_compare_by_normalize_reads_the_column_when_present():
    df = _results({("method1", "teacher", "-"): BASE})
    other = df.assign(normalize="subject", value=df["value"] + 0.05)
    res = compare_by(pd.concat([df.assign(normalize="global"), other]), "normalize")
    assert res.table["mean_diff"].abs().iloc[0] == pytest.approx(0.05)


def test_contrast_specs_cover_each_target():
    names = [n for n, _, _ in contrast_specs(["soft", "combined"])]
    assert "Method 1 KD (combined) vs scratch student" in names
    assert "mis-paired KD vs KD (soft)" in names


def test_cli_compare_by_stage_and_bad_dimension(tmp_path, capsys):
    from fearkd.cli import main
    from fearkd.evaluation.results import RESULT_COLUMNS

    df = _results(FULL).assign(task="fear", chance=0.25, n_params=1)
    df[list(RESULT_COLUMNS)].to_csv(tmp_path / "results.csv", index=False)
    (tmp_path / "units").mkdir()
    rows = df[list(RESULT_COLUMNS)].to_dict(orient="records")
    (tmp_path / "units" / "u.json").write_text(json.dumps({"rows": rows}))
    assert main(["compare", str(tmp_path), "--by", "stage"]) == 0
    out = capsys.readouterr().out
    assert "TL teacher vs teacher from scratch" in out and "95 % CI" in out
    assert main(["compare", str(tmp_path), "--by", "normalize"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--by normalize" in err
