"""``[features] normalize = "calibration:baseline"`` on synthetic DEAP: each subject standardised
on the windows of its trials' 3 s pre-stimulus baseline, from an experiment file, end to end,
with the ``subject`` normalisation scored beside it; a baseline shorter than one window is one
line naming ``[features] window``."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fearkd.cli import main
from fearkd.config import load_config
from fearkd.experiment import prepare_data, run_experiment
from fearkd.features.extract import CALIBRATION_ONLY
from fearkd.features.featureset import FeatureSet
from fearkd.features.normalize import normalize_sentence
from fearkd.methods import SUBJECT_SIDE
from fearkd.reporting.document import _dataset_section
from fearkd.reporting.rundata import load_run
from fearkd.stages import Fold

_FILE = """\
name = "calibration-baseline"
[dataset]
kind = "deap"
path = "{path}"
[features]
window = {window}
step = 1.0
normalize = "calibration:baseline"
[models]
backbones = ["ann"]
[methods]
run = ["method1"]
kd_targets = ["hard"]
baselines = []
[training]
epochs = 1
patience = 1
batch_size = 64
[evaluation]
protocol = "subject"
folds = 3
seeds = [0]
jobs = 1
"""


def _experiment(tmp_path, deap_root, window: float = 2.0):
    path = tmp_path / "calibration.toml"
    path.write_text(_FILE.format(path=deap_root.as_posix(), window=window))
    return path


def test_baseline_windows_calibrate_each_subject_and_are_never_trained_on(tmp_path, deap_root):
    cfg = load_config(_experiment(tmp_path, deap_root))
    data = prepare_data(cfg, progress=False)
    fs = data.featureset
    meta = fs.metadata
    base = (meta["stage"] == "baseline").to_numpy()
    # 2 s windows every 1 s in the 3 s baseline: 2 per trial, 12 trials, 3 subjects
    assert base.sum() == 3 * 12 * 2
    assert (meta.loc[base, "t_stop"] <= 3.0).all() and meta.loc[base, CALIBRATION_ONLY].all()
    assert (meta.loc[base, ["y_fear", "y_source"]] == -1).all().all()
    # the stimulus windows are those of normalize = "subject" (baseline dropped): same
    # features up to float32 rounding (the band-power pass runs over more windows)
    plain = prepare_data(cfg.replace(features={"normalize": "subject"}), progress=False)
    np.testing.assert_allclose(fs.X[~base], plain.featureset.X, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(meta.loc[~base, "t_start"], plain.featureset.metadata["t_start"])
    np.testing.assert_array_equal(meta.loc[~base, "y_fear"], plain.featureset.metadata["y_fear"])

    rows = np.arange(len(fs))
    fold = Fold(fs, list(data.student_names), rows, rows[:0], None,
                normalize=cfg.features.normalize)
    Z = fold.X["teacher"].astype(np.float64)
    subjects = meta["subject"].astype(str).to_numpy()
    calib = pd.DataFrame(Z[base]).groupby(subjects[base])
    np.testing.assert_allclose(calib.mean().to_numpy(), 0.0, atol=1e-4)
    np.testing.assert_allclose(calib.std(ddof=0).to_numpy(), 1.0, atol=1e-3)
    # the stimulus windows are not what the statistics came from: their mean is off zero
    assert np.abs(pd.DataFrame(Z[~base]).groupby(subjects[~base]).mean().to_numpy()).max() > 0.3
    # ... and changing them changes nothing in the scaling of the baseline windows
    X = fs.X.copy()
    X[~base] = 1e3 * np.random.default_rng(0).standard_normal(X[~base].shape)
    other = Fold(FeatureSet(X, fs.feature_names, meta, fs.info), list(data.student_names), rows,
                 rows[:0], None, normalize=cfg.features.normalize).X["teacher"]
    np.testing.assert_array_equal(other[base], fold.X["teacher"][base])

    run = run_experiment(cfg, tmp_path / "run", progress=False)
    res = run.results
    teacher = res[(res["method"] == "method1") & (res["stage"] == "teacher")
                  & (res["split"] == "test") & (res["metric"] == "accuracy")]
    assert len(teacher) == 3 and teacher["value"].between(0, 1).all()
    # no unit trained or scored a baseline window: fear test windows per fold = stimulus ones
    fear = (meta["y_fear"] >= 0).groupby(subjects).sum()
    assert sorted(teacher["n_test"].tolist()) == sorted(fear.tolist())
    assert "pre-stimulus baseline" in normalize_sentence(cfg.features.normalize)

    # subject and calibration side by side: the scratch student again with normalize =
    # "subject", same folds; the report's dataset section pairs the two
    side = res[(res["method"] == SUBJECT_SIDE) & (res["split"] == "test")
               & (res["metric"] == "accuracy")]
    own = res[(res["method"] == "scratch") & (res["stage"] == "student")
              & (res["split"] == "test") & (res["metric"] == "accuracy")]
    assert len(side) == 3 and sorted(side["n_test"]) == sorted(own["n_test"])
    section = _dataset_section(load_run(run.rundir.path))
    table = next(b.table for b in section.blocks
                 if getattr(b, "id", "").startswith("normalize"))
    row = table.loc["subject"]
    assert row["normalize = calibration:baseline"] == pytest.approx(
        100 * own["value"].mean(), abs=0.05)
    assert row["normalize = subject"] == pytest.approx(100 * side["value"].mean(), abs=0.05)
    assert row["Pairs"] == 3


def test_a_baseline_shorter_than_one_window_is_one_line(tmp_path, deap_root, capsys):
    path = _experiment(tmp_path, deap_root, window=4.0)
    code = main(["run", str(path), "--out", str(tmp_path / "run"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert "[features] normalize = \"calibration:baseline\"" in err
    assert "baseline of deap subject" in err and "is 3 s, shorter than one window (4 s)" in err
    assert "set [features] window = 3 (or less)" in err
