"""Readers, protocols and baselines registered from outside the package are accepted by the
experiment file, by open_dataset, make_splitter and make_baseline, like built-in ones."""

import numpy as np
import pandas as pd
import pytest

from fearkd.config import load_config
from fearkd.datasets.loaders import READERS, builtin_labels, open_dataset, register_reader
from fearkd.errors import ConfigError, DatasetNotFoundError, LeakageError
from fearkd.evaluation.splitters import (
    PROTOCOLS,
    SubjectSplitter,
    check_split,
    make_splitter,
    register_protocol,
)
from fearkd.models.baselines import BASELINES, make_baseline, register_baseline
from fearkd.recordings import Recordings, Signal, Subject, Trial


def _tiny_recordings(path, n_trials: int = 2) -> Recordings:
    def load_subject(subject, report):
        rng = np.random.default_rng(int(subject[1:]))
        trials = tuple(
            Trial("tiny", subject, t, {"eeg": Signal(rng.standard_normal((2, 64)), 32.0,
                                                     ("C3", "C4"), "eeg")},
                  ratings={"valence": 5.0})
            for t in range(1, n_trials + 1)
        )
        return Subject("tiny", subject, trials)

    return Recordings("tiny", ["s1", "s2"], load_subject, {"root": str(path)})


@pytest.fixture
def tiny_reader():
    register_reader("tiny", load=_tiny_recordings,
                    detect=lambda p: p.is_dir() and (p / "tiny.marker").exists(),
                    layout="tiny.marker", description="two subjects of noise")
    yield "tiny"
    READERS.unregister("tiny")


@pytest.fixture
def halves_protocol():
    # Subject folds under another name: the leakage guard must check subjects for it too.
    register_protocol("halves", lambda n, rs, target: SubjectSplitter(2, rs, target),
                      group="subject", description="two subject folds")
    yield "halves"
    PROTOCOLS.unregister("halves")


@pytest.fixture
def nearest_baseline():
    from sklearn.neighbors import KNeighborsClassifier

    register_baseline("nearest", lambda random_state, **p: KNeighborsClassifier(1, **p),
                      display="1-NN")
    yield "nearest"
    BASELINES.unregister("nearest")


def _write(tmp_path, text):
    p = tmp_path / "exp.toml"
    p.write_text(text)
    return p


def _metadata(n_subjects=4, n_trials=2, n_windows=3):
    rows = [dict(subject=f"s{s}", trial=t, window=w, t_start=2.0 * w, t_stop=2.0 * w + 2.0,
                 y_fear=(s + t) % 2)
            for s in range(n_subjects) for t in range(n_trials) for w in range(n_windows)]
    return pd.DataFrame(rows)


def test_outside_registrations_pass_config(tmp_path, tiny_reader, halves_protocol,
                                           nearest_baseline):
    cfg = load_config(_write(tmp_path, """
[dataset]
kind = "tiny"
path = "data"
n_trials = 3
[methods]
baselines = ["nearest", "majority"]
[evaluation]
protocol = "halves"
"""))
    assert cfg.dataset.kind == "tiny"
    assert dict(cfg.dataset.options) == {"n_trials": 3}
    assert cfg.evaluation.protocol == "halves"
    assert cfg.methods.baselines == ("nearest", "majority")


def test_outside_reader_opens_by_kind_and_by_detection(tmp_path, tiny_reader):
    rec = open_dataset(tmp_path, kind="tiny", n_trials=3)
    assert rec.subjects == ("s1", "s2")
    assert [t.trial for t in rec.load("s2").trials] == [1, 2, 3]
    (tmp_path / "tiny.marker").write_text("")
    assert open_dataset(tmp_path).dataset == "tiny"
    assert builtin_labels("tiny") == (None, None)
    assert builtin_labels("deap") == ("deap", "deap")


def test_reader_options_are_checked_against_its_signature(tmp_path, tiny_reader):
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['n_trails'\] in \[dataset\] "
                                          r"for kind 'tiny'; known keys: \['kind', 'path', 'flat', "
                                          r"'subjects', 'n_trials'\]"):
        load_config(_write(tmp_path, "[dataset]\nkind = 'tiny'\nn_trails = 3\n"))


def test_outside_protocol_splits_and_guards(halves_protocol):
    meta = _metadata()
    folds = list(make_splitter("halves", random_state=0).split(meta))
    assert len(folds) == 2
    for train, test in folds:
        assert not set(meta["subject"].iloc[train]) & set(meta["subject"].iloc[test])
    mixed_train, mixed_test = np.arange(0, len(meta), 2), np.arange(1, len(meta), 2)
    with pytest.raises(LeakageError, match="violates the 'halves' protocol"):
        check_split(meta, mixed_train, mixed_test, "halves")


def test_outside_baseline_builds_and_fits(nearest_baseline):
    clf = make_baseline("nearest")
    X = np.array([[0.0], [1.0], [10.0], [11.0]])
    clf.fit(X, [0, 0, 1, 1])
    assert clf.predict([[0.2], [10.6]]).tolist() == [0, 1]
    assert BASELINES.label("nearest") == "1-NN"


def test_unregistered_names_are_gone(tmp_path):
    with pytest.raises(ConfigError, match=r"exp\.toml: Invalid value for '\[dataset\] kind': "
                                          r"expected one of 'deap', 'ascertain', 'wesad', "
                                          r"'generic', got 'tiny'\."):
        load_config(_write(tmp_path, "[dataset]\nkind = 'tiny'\n"))
    with pytest.raises(ConfigError, match=r"Invalid value for '\[evaluation\] protocol': "
                                          r"expected one of .*got 'halves'"):
        load_config(_write(tmp_path, "[evaluation]\nprotocol = 'halves'\n"))


@pytest.mark.parametrize("call,match", [
    (lambda: make_splitter("subjects"),
     r"Invalid value for 'protocol': expected one of 'subject', 'trial', 'window', "
     r"'seed-legacy', 'train-on-one', 'leave-one-dataset-out', got 'subjects'\."),
    (lambda: make_baseline("tree"),
     r"Invalid value for 'baseline': expected one of 'svm', 'knn', 'rf', 'lda', 'logreg', "
     r"'majority', 'stratified', got 'tree'\."),
    (lambda: open_dataset(".", kind="swell"),
     r"Invalid value for 'kind': expected one of 'deap', 'ascertain', 'wesad', 'generic', "
     r"got 'swell'\."),
    (lambda: register_protocol("x", lambda *a: None, group="session"),
     r"register_protocol\('x'\): invalid value for 'group': expected one of 'subject', "
     r"'trial', 'dataset', 'none', got 'session'"),
])
def test_unknown_names_name_the_key(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_registering_twice_needs_overwrite(tiny_reader):
    with pytest.raises(ValueError, match=r"A dataset kind named 'tiny' is already registered"):
        register_reader("tiny", load=_tiny_recordings)
    with pytest.raises(TypeError, match=r"register_reader\('other'\): 'load' must be callable"):
        register_reader("other", load=None)


def test_missing_path_names_the_layout(tmp_path):
    with pytest.raises(DatasetNotFoundError, match=r"Dataset path .*nope' does not exist; "
                                                   r"expected data_preprocessed_python/s01\.dat"):
        open_dataset(tmp_path / "nope", kind="deap")


def test_undetected_path_lists_the_layouts(tmp_path):
    with pytest.raises(DatasetNotFoundError, match=r"No dataset found in the folder .*expected "
                                                   r"one of deap: data_preprocessed_python"):
        open_dataset(tmp_path)
