"""Several datasets in one experiment: [[datasets]], [common], cross-dataset protocols."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fearkd.config import load_config
from fearkd.errors import ConfigError, LeakageError
from fearkd.evaluation.splitters import check_split, make_splitter
from fearkd.experiment import prepare_multi, run_experiment


def _write(tmp_path, body: str, deap_subjects=3, asc_subjects=3):
    from fearkd.datasets.synthetic import write_ascertain, write_deap

    if not (tmp_path / "deap").is_dir():
        write_deap(tmp_path / "deap", n_subjects=deap_subjects, n_trials=8, seconds=10.0, seed=0)
        write_ascertain(tmp_path / "asc", n_subjects=asc_subjects, n_clips=8, seconds=12.0,
                        seed=1)
    path = tmp_path / "exp.toml"
    path.write_text(f"""
name = "multi"
[[datasets]]
kind = "deap"
path = "deap"
[[datasets]]
kind = "ascertain"
path = "asc"
nan_policy = "unlabelled"
[features]
window = 4.0
step = 2.0
[models]
backbones = ["cnn"]
[methods]
run = ["method1"]
kd_targets = ["combined"]
[training]
epochs = 2
{body}
""")
    return path


def _meta(datasets=("a", "a", "b", "b"), subjects=("1", "2", "3", "4")):
    n = len(datasets)
    return pd.DataFrame({"dataset": list(datasets), "subject": list(subjects),
                         "trial": [0] * n, "window": [0] * n, "t_start": [0.0] * n,
                         "t_stop": [1.0] * n, "y_fear": [0, 1, 0, 1], "y_source": [0] * n})


def test_train_on_one_two_folds_and_guard():
    meta = _meta()
    folds = list(make_splitter("train-on-one").split(meta))
    assert [(list(tr), list(te)) for tr, te in folds] == [([0, 1], [2, 3]), ([2, 3], [0, 1])]
    lodo = list(make_splitter("leave-one-dataset-out").split(meta))
    assert len(lodo) == 2
    with pytest.raises(LeakageError, match=r"dataset\(s\) \['a', 'b'\]"):
        check_split(meta, np.array([0, 2]), np.array([1, 3]), "train-on-one")


def test_cross_dataset_protocol_with_one_dataset_is_refused(tmp_path):
    path = tmp_path / "one.toml"
    path.write_text('[[datasets]]\nkind = "deap"\npath = "x"\n'
                    '[evaluation]\nprotocol = "train-on-one"\n')
    with pytest.raises(ConfigError, match=r"protocol = 'train-on-one' compares datasets: "
                                          r"expected at least 2 \[\[datasets\]\] entries, got 1"):
        load_config(path)
    with pytest.raises(ConfigError, match="at least 2 datasets"):
        list(make_splitter("leave-one-dataset-out").split(_meta(("a",) * 4)))


def test_space_naming_a_missing_channel(tmp_path):
    from fearkd.features.common import COMMON_SPACES, CommonSpace, register_space

    register_space(CommonSpace("test-missing", eeg={"Fp1": {"deap": "Fp1", "ascertain": "EEG9"}}),
                   overwrite=True)
    try:
        cfg = load_config(_write(tmp_path, '[common]\nspace = "test-missing"'))
        with pytest.raises(ConfigError, match=r"\[common\] space 'test-missing' takes channel\(s\)"
                                              r" \['EEG9'\] from \[\[datasets\]\] 'ascertain'"):
            prepare_multi(cfg, progress=False)
    finally:
        COMMON_SPACES.pop("test-missing")


def test_clashing_subject_ids_without_prefix(tmp_path):
    _write(tmp_path, "")
    path = tmp_path / "twice.toml"
    path.write_text('[[datasets]]\nkind = "deap"\nname = "a"\npath = "deap"\n'
                    '[[datasets]]\nkind = "deap"\nname = "b"\npath = "deap"\n'
                    '[common]\nprefix_subjects = false\n')
    with pytest.raises(ConfigError, match=r"prefix_subjects = false but \[\[datasets\]\] "
                                          r"\['a', 'b'\] share subject id"):
        prepare_multi(load_config(path), progress=False)
    prefixed = prepare_multi(load_config(str(path).replace("twice", "twice")).replace(
        common={"prefix_subjects": True}), progress=False)
    assert prefixed.featureset.metadata["subject"].str.startswith(("a:", "b:")).all()


def test_combined_student_scored_per_dataset(tmp_path):
    cfg = load_config(_write(tmp_path, "[evaluation]\nfolds = 2"))
    res = run_experiment(cfg, tmp_path / "run", progress=False)
    r = res.results
    meta = res.data.featureset.metadata
    assert set(meta["dataset"]) == {"deap", "ascertain"}
    assert meta.groupby("subject")["dataset"].nunique().max() == 1
    combined = r[r["trained_on"] == "deap+ascertain"]
    assert {"ascertain", "deap+ascertain"} <= set(combined["dataset"])
    student = combined[(combined["stage"] == "student") & (combined["split"] == "test")
                       & (combined["metric"] == "accuracy")]
    # per-dataset test windows add up to the union's
    for _key, g in student.groupby(["fold", "method", "target"]):
        n = g.set_index("dataset")["n_test"]
        assert n.drop("deap+ascertain").sum() == n["deap+ascertain"]
    own = r[(r["trained_on"] == r["dataset"]) & (r["dataset"] != "deap+ascertain")]
    assert set(own["dataset"]) == {"deap", "ascertain"}
