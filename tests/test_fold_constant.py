"""Features constant over a fold's training windows are dropped in that fold and reported."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from fearkd.errors import ConfigError
from fearkd.features.featureset import FeatureSet
from fearkd.methods import PipelineSettings, run_pipeline
from fearkd.reporting.rundata import dropped_features
from fearkd.stages import Fold, constant_features
from fearkd.training import FitSettings

N = 20  # windows per subject
NAMES = ["gsr:EDA:scr_count", "gsr:EDA:tonic", "temp:TEMP:slope"]


def _features(per_subject_offset: bool = False) -> FeatureSet:
    """Subjects A, B, C. ``scr_count`` is 0 in every window of A and B (no SCR in training) but
    varies in C; ``tonic`` and ``slope`` vary everywhere. With ``per_subject_offset`` the
    SCR column is a different constant in A and B instead."""
    rng = np.random.default_rng(0)
    rows, X = [], []
    for k, sid in enumerate("ABC"):
        for w in range(N):
            scr = float(rng.integers(1, 5)) if sid == "C" else (
                float(k + 1) if per_subject_offset else 0.0)
            X.append([scr, rng.normal(3 + k, 1), rng.normal(0, 1)])
            rows.append({"dataset": "t", "subject": sid, "trial": w // 5 + 1, "window": w % 5,
                         "t_start": 4.0 * (w % 5), "t_stop": 4.0 * (w % 5) + 4,
                         "y_fear": w % 4, "y_source": w % 2})
    return FeatureSet(np.asarray(X, dtype=np.float32), NAMES, pd.DataFrame(rows))


def _rows(fs, subjects):
    return np.flatnonzero(fs.metadata["subject"].isin(subjects).to_numpy())


def test_feature_constant_on_training_subjects_is_dropped_in_that_fold(caplog):
    fs = _features()
    train, test = _rows(fs, ["A", "B"]), _rows(fs, ["C"])
    with caplog.at_level(logging.WARNING):
        fold = Fold(fs, NAMES[:2], train, test, None)
    assert fold.dropped == ("gsr:EDA:scr_count",)
    assert fold.names == {"teacher": tuple(NAMES[1:]), "student": ("gsr:EDA:tonic",)}
    np.testing.assert_array_equal(fold.X["teacher"], fs.X[:, 1:])
    np.testing.assert_array_equal(fold.X["student"], fs.X[:, 1:2])
    assert "gsr:EDA:scr_count" in caplog.text and "40 training windows" in caplog.text
    # the test subject does vary: the column was not constant over all windows
    assert constant_features(fs.X, NAMES) == ()


def test_same_feature_kept_when_a_training_subject_varies():
    fs = _features()
    fold = Fold(fs, NAMES[:2], _rows(fs, ["A", "C"]), _rows(fs, ["B"]), None)
    assert fold.dropped == ()
    assert fold.names["teacher"] == tuple(NAMES)


def test_constant_after_per_subject_normalisation_is_dropped():
    """Different constants in A and B vary over the raw training windows, but each subject's
    z-score makes them all 0: dropped with normalize = "subject", kept with "global"."""
    fs = _features(per_subject_offset=True)
    train, test = _rows(fs, ["A", "B"]), _rows(fs, ["C"])
    assert Fold(fs, NAMES, train, test, None, normalize="global").dropped == ()
    assert Fold(fs, NAMES, train, test, None, normalize="subject").dropped == (
        "gsr:EDA:scr_count",)


def test_drop_constant_false_keeps_every_column():
    fs = _features()
    fold = Fold(fs, NAMES, _rows(fs, ["A", "B"]), _rows(fs, ["C"]), None, drop_constant=False)
    assert fold.dropped == () and fold.X["teacher"].shape[1] == 3


def test_student_of_only_constant_features_is_one_line_error():
    fs = _features()
    with pytest.raises(ConfigError, match=r"Every student feature is constant over this "
                                          r"fold's training windows .*\[features\] student"):
        Fold(fs, NAMES[:1], _rows(fs, ["A", "B"]), _rows(fs, ["C"]), None)


def test_pipeline_trains_without_the_column_and_the_report_lists_it():
    fs = _features()
    settings = PipelineSettings(fit=FitSettings(epochs=1, batch_size=16, patience=0),
                                baselines=())
    out = run_pipeline(fs, NAMES[:2], _rows(fs, ["A", "B"]), _rows(fs, ["C"]),
                       backbone="dnn150", settings=settings, seed=0, n_source_classes=2)
    assert out["dropped_features"] == ["gsr:EDA:scr_count"]
    unit = {"unit": {"dataset": "t", "protocol": "subject", "fold": 2, "seed": 0},
            **out}
    table = dropped_features([unit, {**unit, "dropped_features": []}], "t")
    assert list(table.index) == ["subject"]
    assert table.iloc[0].to_dict() == {"Fold": 2.0, "Seed": 0.0, "Dropped": 1.0,
                                       "Features": "gsr:EDA:scr_count"}
    assert dropped_features([unit], "other").empty
