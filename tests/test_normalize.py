"""[features] normalize: per-subject z-scoring inside each fold, calibration parts, bad input,
the subject-grouped inner validation split, and a known answer (a planted subject shift)."""

from __future__ import annotations

import logging
import types

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from fearkd.config import ExperimentConfig, load_config
from fearkd.errors import ConfigError
from fearkd.evaluation import crossval
from fearkd.evaluation.splitters import make_splitter
from fearkd.features.featureset import FeatureSet
from fearkd.features.normalize import (
    SubjectNormalizer,
    calibration_mask,
    check_normalize,
    normalize_sentence,
    parse_normalize,
)
from fearkd.methods import PipelineSettings
from fearkd.stages import Fold


def shifted(seed: int, shift: float, n_subjects: int = 6, n_trials: int = 12,
            n_windows: int = 4, n_features: int = 6) -> FeatureSet:
    """4 classes (one per trial, cycling) given by two features each; each subject adds an
    offset (sd ``3 * shift``) and a gain (log sd ``0.5 * shift``) to every feature."""
    rng = np.random.default_rng(seed)
    rows, X = [], []
    for s in range(n_subjects):
        offset = shift * 3.0 * rng.standard_normal(n_features)
        gain = np.exp(shift * 0.5 * rng.standard_normal(n_features))
        for t in range(n_trials):
            y = t % 4
            centre = np.zeros(n_features)
            centre[y % 2] += 1.0
            centre[2 + y // 2] += 1.0
            for w in range(n_windows):
                X.append(gain * (centre + 0.7 * rng.standard_normal(n_features)) + offset)
                rows.append({"dataset": "toy", "subject": f"s{s}", "trial": t, "window": w,
                             "t_start": 2.0 * w, "t_stop": 2.0 * w + 4.0, "y_fear": y,
                             "y_source": y})
    return FeatureSet(np.array(X, np.float32), [f"f{i}" for i in range(n_features)],
                      pd.DataFrame(rows), {"windowing": {"length": 4.0}})


def subject_wise_accuracy(fs: FeatureSet, normalize: str, seed: int) -> float:
    """Logistic regression on each subject fold's normalised features (the pipeline's Fold)."""
    scores = []
    for train, test in make_splitter("subject", n_splits=3, random_state=seed).split(
            fs.metadata):
        fold = Fold(fs, fs.feature_names, train, test, None, normalize=normalize)
        X, y = fold.X["teacher"], fold.y["fear"]
        clf = LogisticRegression(max_iter=1000).fit(X[train], y[train])
        scores.append(clf.score(X[test], y[test]))
    return float(np.mean(scores))


def test_subject_normalisation_removes_a_planted_subject_shift():
    # measured (5 seeds): shift 1 -> subject minus global +0.35..+0.42; shift 0 -> -0.014..+0.014
    gains = []
    for seed in range(5):
        fs = shifted(seed, shift=1.0)
        gains.append(subject_wise_accuracy(fs, "subject", seed)
                     - subject_wise_accuracy(fs, "global", seed))
    assert min(gains) > 0.2 and np.mean(gains) > 0.3, gains
    # negative control: no shift, nothing to remove
    for seed in range(3):
        fs = shifted(seed, shift=0.0)
        diff = (subject_wise_accuracy(fs, "subject", seed)
                - subject_wise_accuracy(fs, "global", seed))
        assert abs(diff) < 0.05, (seed, diff)


def test_each_subject_has_mean_0_std_1_and_global_is_untouched():
    fs = shifted(0, shift=1.0)
    rows = np.arange(len(fs))
    fold = Fold(fs, ["f3", "f1"], rows[:150], rows[150:], None, normalize="subject")
    X = pd.DataFrame(fold.X["teacher"].astype(np.float64))
    by = X.groupby(fs.metadata["subject"].to_numpy())
    np.testing.assert_allclose(by.mean().to_numpy(), 0.0, atol=1e-5)
    np.testing.assert_allclose(by.std(ddof=0).to_numpy(), 1.0, atol=1e-5)
    # the student's columns are the same normalised columns, by name
    np.testing.assert_array_equal(fold.X["student"], fold.X["teacher"][:, [3, 1]])
    for mode in ("global", "none"):
        np.testing.assert_array_equal(Fold(fs, ["f0"], rows[:150], rows[150:], None,
                                           normalize=mode).X["teacher"], fs.X)


def test_calibration_uses_only_the_calibration_windows():
    fs = shifted(1, shift=1.0)
    meta = fs.metadata
    # trials are 10 s spans (4 windows of 4 s every 2 s): the first 20 s = trials 0 and 1
    mask = calibration_mask(meta, 20.0, 4.0)
    np.testing.assert_array_equal(mask, meta["trial"].isin([0, 1]).to_numpy())
    rows = np.arange(len(fs))
    a = Fold(fs, ["f0"], rows, rows[:0], None, normalize="calibration:20s").X["teacher"]
    X = fs.X.copy()
    X[~mask] = 1e3 * np.random.default_rng(0).standard_normal(X[~mask].shape)
    b = Fold(FeatureSet(X, fs.feature_names, meta, fs.info), ["f0"], rows, rows[:0], None,
             normalize="calibration:20s").X["teacher"]
    np.testing.assert_array_equal(a[mask], b[mask])  # same statistics: same calibration rows
    calib = pd.DataFrame(a[mask].astype(np.float64)).groupby(meta["subject"][mask].to_numpy())
    np.testing.assert_allclose(calib.mean().to_numpy(), 0.0, atol=1e-5)
    # the sklearn transformer with a calibration mask gives the same numbers
    groups = meta["subject"].to_numpy()
    norm = SubjectNormalizer(calibration=mask).fit(fs.X, groups=groups)
    np.testing.assert_allclose(norm.transform(fs.X, groups=groups), a, atol=1e-5)


def test_calibration_by_stage_name():
    fs = shifted(2, shift=1.0, n_subjects=3)
    meta = fs.metadata.copy()
    meta["stage"] = np.where(meta["trial"] == 3, "rest", "film")
    mask = calibration_mask(meta, "rest")
    np.testing.assert_array_equal(mask, (meta["trial"] == 3).to_numpy())
    meta.loc[(meta["subject"] == "s1") & (meta["trial"] == 3), "stage"] = "film"
    with pytest.raises(ConfigError, match=r"\[features\] normalize = 'calibration:rest': "
                                          r"subject\(s\) \['s1'\] have no window in stage 'rest'"):
        check_normalize("calibration:rest", meta, 4.0)
    with pytest.raises(ConfigError, match=r"carry no stage names.*calibration:<N>s"):
        check_normalize("calibration:rest", fs.metadata, 4.0)


def test_zero_variance_is_named_and_centred(caplog):
    X = np.random.default_rng(0).standard_normal((20, 3))
    X[:10, 1] = 5.0  # subject a: flat f1
    groups = np.repeat(["a", "b"], 10)
    with caplog.at_level(logging.WARNING, logger="fearkd.features.normalize"):
        Z = SubjectNormalizer(feature_names=["f0", "f1", "f2"]).fit_transform(X, groups=groups)
    assert "Subject a has zero variance in feature(s) ['f1']" in caplog.text
    assert np.isfinite(Z).all() and np.all(Z[:10, 1] == 0.0)


@pytest.mark.parametrize("value", ["subjects", "calibration:", "calibration:0s", "Global", 3])
def test_bad_normalize_values(value):
    with pytest.raises(ConfigError, match=r"\[features\] normalize: expected 'none', 'subject', "
                                          r"'global', 'l2-rows', 'calibration:<stage>'"):
        parse_normalize(value)


def test_bad_normalize_in_a_config_file(tmp_path):
    path = tmp_path / "x.toml"
    path.write_text('[features]\nnormalize = "per-subject"\n')
    with pytest.raises(ConfigError, match=r"x\.toml: \[features\] normalize: expected .* got "
                                          r"'per-subject'"):
        load_config(path)
    path.write_text('[features]\nnormalize = "calibration:60s"\nlog = false\n')
    cfg = load_config(path)
    assert cfg.features.normalize == "calibration:60s" and cfg.features.log is False
    assert ExperimentConfig().features.normalize == "subject" and ExperimentConfig().features.log
    assert PipelineSettings.from_config(cfg).normalize == "calibration:60s"


def test_calibration_shorter_than_a_window():
    fs = shifted(0, shift=1.0, n_subjects=2)
    with pytest.raises(ConfigError, match=r"calibration:2s'.*\(2 s\) is shorter than one window "
                                          r"\(4 s\).*normalize = \"calibration:4s\""):
        check_normalize("calibration:2s", fs.metadata, 4.0)


def test_transformer_needs_groups_it_has_seen():
    X = np.zeros((4, 2))
    norm = SubjectNormalizer().fit(X + np.arange(4)[:, None], groups=["a", "a", "b", "b"])
    with pytest.raises(ValueError, match=r"subject\(s\) \['c'\] were not seen by fit"):
        norm.transform(X, groups=["a", "b", "c", "c"])
    with pytest.raises(TypeError, match="needs 'groups'"):
        norm.transform(X)


def test_report_sentence_says_transductive():
    assert "transductive" in normalize_sentence("subject")
    assert "first 60 s" in normalize_sentence("calibration:60s")


def test_inner_validation_grouped_by_subject(caplog):
    fs = shifted(0, shift=0.0, n_subjects=5)
    subjects = fs.metadata["subject"].to_numpy()
    rows = np.arange(len(fs))
    fold = Fold(fs, ["f0"], rows, rows[:0], None, inner_groups="subject")
    np.testing.assert_array_equal(fold.groups_for("fear", rows), subjects)
    two = rows[np.isin(subjects, ["s0", "s1"])]
    with caplog.at_level(logging.INFO, logger="fearkd.stages"):
        g = fold.groups_for("fear", two)
        fold.groups_for("fear", two)
    assert g[0] == "s0:0"  # subject:trial
    assert caplog.text.count("grouped by trial, not subject") == 1
    trial = Fold(fs, ["f0"], rows, rows[:0], None, inner_groups="trial")
    assert trial.groups_for("fear", rows)[0] == "s0:0"


@pytest.mark.parametrize("protocol, expected", [("subject", "subject"), ("trial", "trial"),
                                                 ("window", "trial")])
def test_crossval_passes_the_protocols_grouping(protocol, expected):
    seen = {}

    def run_pipeline(*args, settings, **kw):
        seen["inner"] = settings.inner_groups
        return {"rows": []}

    data = crossval.CVData(None, (), {(protocol, 0): [(None, None, None)]}, PipelineSettings(),
                           10)
    unit = crossval.Unit("toy", protocol, "ann", 0, 0)
    crossval._run_unit(unit, data, None, types.SimpleNamespace(run_pipeline=run_pipeline))
    assert seen["inner"] == expected


def test_l2_rows_matches_sklearn_normalize_and_parses():
    from sklearn.preprocessing import normalize

    from fearkd.features.normalize import l2_rows, normalize_sentence, parse_normalize

    X = np.array([[3.0, 4.0, 0.0], [0.0, 0.0, 0.0], [1.0, -2.0, 2.0]], dtype=np.float32)
    np.testing.assert_allclose(l2_rows(X), normalize(X), rtol=1e-6)
    assert l2_rows(X).dtype == np.float32
    assert parse_normalize("l2-rows") == ("l2-rows", None)
    assert "unit L2 norm" in normalize_sentence("l2-rows")
    with pytest.raises(ValueError, match=r"'X' must be 2-D \(n_windows, n_features\), got shape"):
        l2_rows(np.ones(3))
