"""configs/physionet-noneeg.toml as an experiment, on the REAL PhysioNet Non-EEG files.

The shipped file both describes the data (``[dataset]``, read by
:func:`fearkd.datasets.generic.load_generic`) and sets up the experiment: four stages
leave-one-subject-out, a dense (``dnn150``) teacher on every wrist signal (21 features), a small
MLP student on EDA alone (4 features) distilled from it by Method 1. Here it runs on 4 of the 20
subjects, 2 folds and 1 epoch: the point is the plumbing (features, columns, stages, splits),
not the scores.

The data sit in the project's shared data folder (``../shared/data/physionet-noneeg`` next to
the repository); the module skips when that folder is absent.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import wfdb

from fearkd.config import MethodsConfig, load_config
from fearkd.datasets.generic import load_generic
from fearkd.evaluation.splitters import make_splitter
from fearkd.experiment import run_experiment
from fearkd.features.extract import extract_features

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "physionet-noneeg"
CONFIG = REPO / "configs" / "physionet-noneeg.toml"

pytestmark = pytest.mark.skipif(
    not DATA.is_dir(),
    reason=f"PhysioNet Non-EEG data not found at {DATA}: these tests read the real files "
           f"(PhysioNet noneeg 1.0.0, see ../shared/data/physionet-noneeg/README.md)",
)

SUBJECTS = "1-4"
FOLDS = 2
EDA_COLUMNS = {"gsr:EDA:mean", "gsr:EDA:var", "gsr:EDA:slope", "gsr:EDA:scr_per_min"}
#: Stage name -> class code, as in the shipped description.
CLASSES = {"Relax": 0, "PhysicalStress": 1, "CognitiveStress": 2, "EmotionalStress": 3}


def small_config():
    """The shipped config on subjects 1-4, 2 folds, 1 epoch, 1 process."""
    cfg = load_config(CONFIG)
    # ExperimentConfig.replace re-reads the dataset table as a description, so the sections are
    # swapped as dataclasses (the values are the same kinds load_config validated).
    options = {**cfg.dataset.options, "subjects": SUBJECTS}
    return dataclasses.replace(
        cfg,
        dataset=dataclasses.replace(cfg.dataset, options=options),
        features=dataclasses.replace(cfg.features, n_jobs=1),
        training=dataclasses.replace(cfg.training, epochs=1, pretrain_epochs=1),
        evaluation=dataclasses.replace(cfg.evaluation, folds=FOLDS, jobs=1),
    )


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    cfg = small_config()
    out = tmp_path_factory.mktemp("pn-run")
    return cfg, run_experiment(cfg, out, progress=False)


def test_shipped_config_validates_and_reads_the_shared_data():
    cfg = load_config(CONFIG)
    assert cfg.name == "physionet-noneeg"
    assert cfg.dataset.kind == "generic"
    assert Path(cfg.dataset.options["root"]) == DATA.resolve()
    assert cfg.labels.rules == "auto" and cfg.labels.source == "auto"
    assert (cfg.features.teacher, cfg.features.student) == ("peripheral", "peripheral-eda")
    assert cfg.features.step <= cfg.features.window
    assert cfg.models.backbones == ("dnn150",)
    assert cfg.models.student == "ann"
    assert cfg.methods.run == ("method1",)
    assert cfg.methods.kd_targets == MethodsConfig().kd_targets
    assert cfg.evaluation.protocol == "subject"
    # one fold per subject: leave-one-subject-out
    recordings = load_generic({"dataset": dict(cfg.dataset.options)})
    assert len(recordings.subjects) == 20
    assert cfg.evaluation.folds == len(recordings.subjects)


def test_teacher_and_student_columns(run):
    cfg, res = run
    fs, student = res.data.featureset, res.data.student_names
    assert fs.n_features == 21
    assert len(student) == 4 and set(student) == EDA_COLUMNS
    assert all(name.startswith("gsr:EDA:") for name in student)
    assert set(student) <= set(fs.feature_names)
    # the student preset extracted on its own gives the teacher's same-named columns
    recordings = load_generic({"dataset": dict(cfg.dataset.options)})
    alone = extract_features(recordings, cfg.features.student, window=cfg.features.window,
                             step=cfg.features.step, log=cfg.features.log, progress=False)
    assert alone.feature_names == student
    cols = ["subject", "trial", "window", "t_start", "t_stop"]
    assert alone.metadata[cols].equals(fs.metadata[cols])
    np.testing.assert_array_equal(alone.X, fs.select_columns(student).X)


def test_eda_window_matches_the_wfdb_record(run):
    """Subject1, stage 1, window 0 against wfdb's own samples (mean, log var, least-squares
    slope: ``[features] log`` is on by default and logs variances, not means)."""
    cfg, res = run
    fs = res.data.featureset
    meta = fs.metadata
    row = np.flatnonzero((meta["subject"] == "Subject1") & (meta["trial"] == 1)
                         & (meta["window"] == 0))
    assert len(row) == 1
    record = wfdb.rdrecord(str(DATA / "Subject1_AccTempEDA"))
    ann = wfdb.rdann(str(DATA / "Subject1_AccTempEDA"), "atr")
    assert ann.aux_note[0].strip("\x00 ") == "Relax"
    n = int(cfg.features.window * record.fs)
    eda = record.p_signal[ann.sample[0]:ann.sample[0] + n, record.sig_name.index("EDA")]
    t = np.arange(n) / record.fs
    got = fs.select_columns(["gsr:EDA:mean", "gsr:EDA:var", "gsr:EDA:slope"]).X[row[0]]
    assert cfg.features.log
    want = [eda.mean(), np.log(max(eda.var(), 1e-12)), np.polyfit(t, eda, 1)[0]]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-7)


def test_labels_come_from_the_stage_annotations(run):
    _, res = run
    meta = res.data.featureset.metadata
    assert sorted(meta["subject"].unique()) == [f"Subject{i}" for i in range(1, 5)]
    assert set(meta["y_fear"]) == set(CLASSES.values())
    # relax vs stress: the source task is "any stress stage"
    np.testing.assert_array_equal(meta["y_source"], (meta["y_fear"] > 0).astype(int))
    assert res.data.n_source_classes == 2
    assert len(res.data.class_names) == 4
    counts = res.data.label_report.counts
    # every subject has 4 Relax, 1 physical, 1 cognitive and 2 emotional stages
    assert counts.to_numpy().tolist() == [[4, 1, 1, 2]] * 4


def test_every_stage_has_rows(run):
    cfg, res = run
    r = res.results
    assert set(r["fold"]) == set(range(FOLDS))
    assert set(r["protocol"]) == {"subject"}

    def rows(**where):
        mask = np.ones(len(r), dtype=bool)
        for key, value in where.items():
            mask &= (r[key] == value).to_numpy()
        return r[mask]

    backbone = rows(method="backbone", stage="backbone")
    assert set(backbone["model"]) == {"dnn150"} and set(backbone["task"]) == {"source"}
    assert np.allclose(backbone["chance"], 0.5)
    teacher = rows(method="method1", stage="teacher")
    assert set(teacher["model"]) == {"dnn150"} and set(teacher["task"]) == {"fear"}
    assert np.allclose(teacher["chance"], 0.25)
    students = rows(method="method1", stage="student")
    # "hard" labels are the scratch student, trained once (not a Method 1 student)
    assert set(students["target"]) == set(MethodsConfig().kd_targets) - {"hard"}
    scratch = rows(method="scratch", stage="student")
    assert len(scratch) and set(scratch["target"]) == {"-"}
    for part in (students, scratch):
        assert set(part["model"]) == {"ann"} and set(part["task"]) == {"fear"}
        # 4 inputs -> 32 -> 16 -> 4 classes
        assert set(part["n_params"]) == {(4 + 1) * 32 + (32 + 1) * 16 + (16 + 1) * 4}
    for name in cfg.methods.baselines:
        base = rows(method="baseline", model=name)
        assert set(base["task"]) == {"fear", "source"}
    for part in (backbone, teacher, students, scratch):
        assert set(part["split"]) == {"train", "test"}
        assert part.groupby(["fold", "target", "split", "metric"]).size().eq(1).all()
        scores = part[part["metric"] != "log_loss"]["value"]
        assert len(scores) and scores.between(-1, 1).all()  # kappa may be negative


def test_no_test_subject_is_trained_on(run):
    cfg, res = run
    meta = res.data.featureset.metadata
    splitter = make_splitter("subject", n_splits=FOLDS, random_state=cfg.evaluation.seeds[0])
    splits = list(splitter.split_with_validation(meta))
    assert len(splits) == FOLDS
    units = {}
    for path in sorted((res.rundir.path / "units").glob("*.json")):
        unit = json.loads(path.read_text())
        units[unit["unit"]["fold"]] = unit
    assert sorted(units) == list(range(FOLDS))
    seen = set()
    for fold, (train, val, test) in enumerate(splits):
        test_subjects = set(meta["subject"].iloc[test])
        train_subjects = set(meta["subject"].iloc[np.concatenate([train, val])])
        assert test_subjects and not test_subjects & train_subjects
        seen |= test_subjects
        # the run used these very splits: its window counts are theirs
        assert (units[fold]["n_train"], units[fold]["n_test"]) == (len(train), len(test))
        fold_rows = res.results[res.results["fold"] == fold]
        assert set(fold_rows["n_test"].loc[fold_rows["task"] == "fear"]) == {len(test)}
    assert seen == set(meta["subject"])
