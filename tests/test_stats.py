"""Tests of fearkd.evaluation.stats against SciPy and hand computations."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from fearkd.evaluation.stats import (
    cohens_dz,
    compare_models,
    holm,
    mean_difference_ci,
    nadeau_bengio_ttest,
)

CNN = np.array([0.62, 0.58, 0.66, 0.61, 0.64, 0.59, 0.63, 0.60, 0.65, 0.62])
LSTM = np.array([0.55, 0.54, 0.58, 0.52, 0.57, 0.53, 0.56, 0.55, 0.54, 0.56])
GRU = CNN - np.array([0.01, -0.02, 0.03, 0.0, -0.01, 0.02, -0.03, 0.01, 0.0, -0.01])


def tidy(scores: dict, metric="accuracy", **extra) -> pd.DataFrame:
    rows = [
        {"model": m, "fold": f, "metric": metric, "value": v, **extra}
        for m, vals in scores.items()
        for f, v in enumerate(vals)
    ]
    return pd.DataFrame(rows)


def test_holm_hand_example():
    # Sorted: 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 = 0.04 -> max so far 0.06.
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.4]) == pytest.approx([0.8, 0.8])  # 0.4*2 = 0.8, max(0.5, 0.8)
    assert holm([0.9, 0.6, 0.7]) == pytest.approx([1.0, 1.0, 1.0])  # capped at 1
    out = holm([0.02, np.nan, 0.01])
    assert out[[0, 2]] == pytest.approx([0.02, 0.02]) and math.isnan(out[1])


def test_nadeau_bengio_by_hand():
    d = CNN - LSTM
    k, ratio = len(d), 0.25
    mean = sum(d) / k
    var = sum((x - mean) ** 2 for x in d) / (k - 1)
    t = mean / math.sqrt((1 / k + ratio) * var)
    p = 2 * stats.t.sf(abs(t), k - 1)
    assert nadeau_bengio_ttest(d, ratio) == pytest.approx((t, p, k - 1))
    # The correction only widens: |t_NB| < |t_paired|.
    assert abs(t) < abs(stats.ttest_rel(CNN, LSTM).statistic)


def test_ci_and_effect_size_by_hand():
    d = GRU - LSTM
    k = len(d)
    sd = np.std(d, ddof=1)
    half = stats.t.ppf(0.975, k - 1) * sd / math.sqrt(k)
    assert mean_difference_ci(d) == pytest.approx((d.mean(), d.mean() - half, d.mean() + half))
    half90 = stats.t.ppf(0.95, k - 1) * sd / math.sqrt(k)
    assert mean_difference_ci(d, 0.9)[2] == pytest.approx(d.mean() + half90)
    assert cohens_dz(d) == pytest.approx(d.mean() / sd)


def test_compare_models_matches_scipy():
    res = compare_models(
        tidy({"cnn": CNN, "lstm": LSTM, "gru": GRU}), test="ttest", test_train_ratio=1 / 9
    )
    t = res.table.set_index(["model_a", "model_b"])
    assert list(t.index) == [("cnn", "lstm"), ("cnn", "gru"), ("lstm", "gru")]
    for a, b, x, y in [("cnn", "lstm", CNN, LSTM), ("cnn", "gru", CNN, GRU),
                       ("lstm", "gru", LSTM, GRU)]:
        row = t.loc[(a, b)]
        ref = stats.ttest_rel(x, y)
        assert row["t_stat"] == ref.statistic and row["t_p"] == ref.pvalue  # exactly
        assert row["statistic"] == ref.statistic and row["p_value"] == ref.pvalue
        w = stats.wilcoxon(x - y)
        assert row["wilcoxon_stat"] == w.statistic and row["wilcoxon_p"] == pytest.approx(w.pvalue)
        assert row["nb_t"] == pytest.approx(nadeau_bengio_ttest(x - y, 1 / 9)[0])
        assert row["mean_diff"] == pytest.approx(np.mean(x - y))
        assert row["n_folds"] == 10 and row["df"] == 9
    p_adj = holm(res.table["t_p"].to_numpy())
    assert res.table["p_adjusted"].to_numpy() == pytest.approx(p_adj)
    assert res.sentences == (
        "CNN and LSTM performances are significantly different.",
        "CNN and GRU performances are not significantly different.",
        "LSTM and GRU performances are significantly different.",
    )
    text = res.to_text()
    assert "dependent (paired) t-test" in text and "alpha = 0.05" in text


def test_nadeau_bengio_default_and_ratio_columns():
    df = tidy({"cnn": CNN, "lstm": LSTM})
    res = compare_models(df, test_train_ratio=0.25)
    row = res.table.iloc[0]
    assert row["test"] == "nadeau-bengio"
    assert row["p_value"] == pytest.approx(nadeau_bengio_ttest(CNN - LSTM, 0.25)[1])
    assert row["p_adjusted"] == row["p_value"]  # one pair: Holm changes nothing
    # n_train/n_test columns give the same ratio.
    sized = df.assign(n_train=800, n_test=200)
    assert compare_models(sized).table.iloc[0]["nb_t"] == pytest.approx(row["nb_t"])


def test_wilcoxon_zero_differences_and_baselines():
    df = pd.concat(
        [
            tidy({"cnn": CNN, "teacher": CNN, "lstm": LSTM}),
            tidy({"chance": [0.25] * 10, "majority": np.full(10, 0.4)}),
        ]
    )
    res = compare_models(df, test="wilcoxon")
    row = res.table.set_index(["model_a", "model_b"]).loc[("cnn", "teacher")]
    assert math.isnan(row["wilcoxon_p"]) and math.isnan(row["p_adjusted"])
    assert "all differences are zero" in row["note"]
    assert (
        "CNN and TEACHER performances cannot be compared (all differences are equal: t undefined "
        "or infinite; Wilcoxon undefined: all differences are zero)." in res.sentences
    )
    assert set(res.table["model_a"]) | set(res.table["model_b"]) == {"cnn", "teacher", "lstm"}
    scores = res.scores.set_index("model")
    assert scores.loc["cnn", "mean"] == pytest.approx(CNN.mean())
    assert scores.loc["cnn", "sd"] == pytest.approx(np.std(CNN, ddof=1))
    assert scores.loc["lstm", "chance"] == 0.25 and scores.loc["lstm", "majority"] == 0.4


def test_nearly_equal_differences_are_a_note_not_a_stray_warning():
    # Differences equal to the last bit or a bit apart made SciPy's t-test warn of precision
    # loss; each case is a note instead.
    equal = CNN - 0.1 + np.where(np.arange(len(CNN)) % 2, 1e-17, 0.0)
    one_ulp = np.where(np.arange(len(CNN)) % 2, np.nextafter(0.3, 1.0), 0.3)
    cases = [(CNN, equal, "all differences are equal"),
             (one_ulp, np.zeros(len(CNN)), "differences nearly equal: t unreliable")]
    for a, b, note in cases:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            res = compare_models(tidy({"a": a, "b": b}), test="ttest")
        assert note in res.table.iloc[0]["note"]


def test_several_metrics_contexts_and_seeds():
    acc = tidy({"cnn": CNN, "lstm": LSTM}, dataset="deap")
    loss = tidy({"cnn": 1 - CNN, "lstm": 1 - LSTM}, metric="log_loss", dataset="deap")
    other = tidy({"cnn": CNN, "lstm": CNN[::-1]}, dataset="ascertain")
    df = pd.concat([acc, loss, other])
    res = compare_models(df, metric=["accuracy", "log_loss"], test="ttest")
    assert len(res.table) == 3
    assert set(res.table["dataset"]) == {"deap", "ascertain"}
    assert res.sentences[0] == (
        "[dataset=deap, metric=accuracy] CNN and LSTM performances are significantly different."
    )
    loss_row = res.table[res.table.metric == "log_loss"].iloc[0]
    assert loss_row["t_stat"] == pytest.approx(-stats.ttest_rel(CNN, LSTM).statistic)
    # Seeds: pairs match on (fold, seed).
    seeded = pd.concat([acc.assign(seed=0), acc.assign(seed=1, value=acc.value + 0.01)])
    row = compare_models(seeded, test="ttest").table.iloc[0]
    assert row["n_folds"] == 20


def test_bad_input():
    df = tidy({"cnn": CNN, "lstm": LSTM})
    with pytest.raises(ValueError, match=r"Unknown metric\(s\) \['f1'\]: the results hold"):
        compare_models(df, metric="f1", test="ttest")
    with pytest.raises(ValueError, match="Invalid value for 'test': expected one of"):
        compare_models(df, test="anova")
    with pytest.raises(ValueError, match="test='nadeau-bengio' needs the folds' n_test / n_train"):
        compare_models(df)
    with pytest.raises(ValueError, match="at least 2 folds per model, got 1"):
        compare_models(df[df.fold == 0], test="ttest")
    with pytest.raises(ValueError, match=r"folds do not match between models: 'lstm' lacks \[3\]"):
        compare_models(df[~((df.model == "lstm") & (df.fold == 3))], test="ttest")
    with pytest.raises(ValueError, match="several rows for model 'cnn'"):
        compare_models(pd.concat([df, df]), test="ttest")
    with pytest.raises(ValueError, match="model 'cnn' has NaN scores"):
        compare_models(df.assign(value=df.value.where(df.index != 0)), test="ttest")
    with pytest.raises(ValueError, match="needs at least 2 non-baseline models"):
        compare_models(df[df.model == "cnn"], test="ttest")
    with pytest.raises(ValueError, match=r"'results' lacks column\(s\) \['fold'\]"):
        compare_models(df.drop(columns="fold"))
    with pytest.raises(TypeError, match="'results' must be a pandas DataFrame"):
        compare_models(df.to_dict())
    with pytest.raises(ValueError, match="'alpha' must be a number in \\(0, 1\\), got 5"):
        compare_models(df, alpha=5, test="ttest")
    with pytest.raises(ValueError, match="Invalid value for 'correction'"):
        compare_models(df, test="ttest", correction="bonferroni")
    with pytest.raises(ValueError, match="'test_train_ratio' must be > 0, got -1"):
        compare_models(df, test_train_ratio=-1)
    with pytest.raises(TypeError, match="'test_train_ratio' must be a number, got str"):
        compare_models(df, test_train_ratio="0.25")
    with pytest.raises(ValueError, match=r"'p_values' must lie in \[0, 1\]"):
        holm([0.5, 1.5])
    with pytest.raises(ValueError, match=r"'p_values' must be 1-D, got shape \(1, 2\)"):
        holm([[0.5, 0.1]])


def test_runner_layout_default_call():
    """The runner's tidy layout (split/task/chance/n_train/n_test columns) works as is."""
    ctx = {"dataset": "deap", "protocol": "subject", "method": "method1", "stage": "teacher",
           "task": "fear", "seed": 0, "n_train": 900, "n_test": 100, "chance": 0.25}
    df = pd.concat(
        [
            tidy({"cnn": CNN, "lstm": LSTM}, split="test", **ctx),
            tidy({"cnn": CNN + 0.1, "lstm": LSTM + 0.1}, split="val", **ctx),
        ]
    )
    res = compare_models(df)  # the corrected test takes n_test / n_train from the columns
    assert list(res.table["split"]) == ["test", "val"]
    assert res.table["test_train_ratio"].tolist() == pytest.approx([1 / 9, 1 / 9])
    expected = nadeau_bengio_ttest(CNN - LSTM, 1 / 9)[1]
    assert res.table["p_value"].tolist() == pytest.approx([expected, expected])
    assert res.sentences[0].startswith("[split=test] CNN and LSTM performances are")
    assert res.scores["chance"].tolist() == [0.25] * 4
    missing = compare_models(df.assign(n_train=np.nan, n_test=np.nan), test="ttest")
    assert "corrected test undefined" in missing.table["note"].iloc[0]
    assert missing.table["nb_p"].isna().all()
