"""Tests of fearkd.evaluation.splitters: protocols, their guarantees and the leakage guard."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fearkd.errors import LeakageError
from fearkd.evaluation.splitters import (
    LegacySplitter,
    SubjectSplitter,
    TrialSplitter,
    WindowSplitter,
    check_split,
    make_splitter,
)


def make_metadata(windows_per_trial, length=2.0, step=1.0, seed=0, n_classes=4):
    """One row per window; ``windows_per_trial[s][t]`` windows in trial t of subject s."""
    rng = np.random.default_rng(seed)
    rows = []
    for s, trials in enumerate(windows_per_trial):
        for t, n_win in enumerate(trials, start=1):
            y = int(rng.integers(n_classes))
            for w in range(n_win):
                rows.append(
                    {
                        "dataset": "synthetic",
                        "subject": f"s{s:02d}",
                        "trial": t,
                        "window": w,
                        "t_start": w * step,
                        "t_stop": w * step + length,
                        "y_fear": y,
                        "y_source": -1,
                    }
                )
    meta = pd.DataFrame(rows)
    # Shuffle rows so that no splitter can rely on the table's order.
    return meta.sample(frac=1.0, random_state=seed).reset_index(drop=True)


def brute_overlap(meta, train, test):
    """Number of test windows sharing samples with a training window (quadratic oracle)."""
    count = 0
    for i in test:
        a = meta.iloc[i]
        for j in train:
            b = meta.iloc[j]
            same = a.subject == b.subject and a.trial == b.trial
            if same and a.t_start < b.t_stop and b.t_start < a.t_stop:
                count += 1
                break
    return count


metadata_st = st.builds(
    make_metadata,
    st.lists(st.lists(st.integers(1, 6), min_size=1, max_size=4), min_size=2, max_size=6),
    length=st.sampled_from([1.0, 2.0, 3.5]),
    step=st.sampled_from([0.5, 1.0, 2.0]),
    seed=st.integers(0, 1000),
)


def assert_partition(meta, folds):
    tests = np.concatenate([test for _train, test in folds])
    assert np.array_equal(np.sort(tests), np.arange(len(meta)))  # each row tested exactly once
    for train, test in folds:
        assert np.intersect1d(train, test).size == 0
        assert len(train) + len(test) == len(meta)


# --------------------------------------------------------------------------- guarantees


@settings(max_examples=40, deadline=None)
@given(meta=metadata_st, n_splits=st.integers(2, 4), seed=st.integers(0, 50))
def test_subject_splitter_keeps_subjects_apart(meta, n_splits, seed):
    splitter = make_splitter("subject", n_splits=n_splits, random_state=seed)
    folds = list(splitter.split(meta))
    n_subjects = meta.subject.nunique()
    assert len(folds) == min(n_splits, n_subjects) == splitter.get_n_splits(meta)
    assert_partition(meta, folds)
    for train, test in folds:
        assert not set(meta.subject.iloc[train]) & set(meta.subject.iloc[test])
        assert check_split(meta, train, test, "subject").n_overlapping == 0


@settings(max_examples=40, deadline=None)
@given(meta=metadata_st, seed=st.integers(0, 50))
def test_trial_splitter_keeps_trials_apart(meta, seed):
    n_keys = len(meta.groupby(["subject", "trial"]))
    n_splits = min(3, n_keys)
    if n_splits < 2:
        return
    folds = list(make_splitter("trial", n_splits=n_splits, random_state=seed).split(meta))
    assert len(folds) == n_splits
    assert_partition(meta, folds)
    keys = list(zip(meta.subject, meta.trial, strict=True))
    for train, test in folds:
        assert not {keys[i] for i in train} & {keys[i] for i in test}
        assert check_split(meta, train, test, "trial").n_overlapping == 0


@settings(max_examples=25, deadline=None)
@given(meta=metadata_st, seed=st.integers(0, 50))
def test_window_splitter_partitions_and_reports_overlap(meta, seed):
    n_splits = min(3, len(meta))
    folds = list(make_splitter("window", n_splits=n_splits, random_state=seed).split(meta))
    assert_partition(meta, folds)
    for train, test in folds:
        assert check_split(meta, train, test, "window").n_overlapping == brute_overlap(
            meta, train, test
        )


@settings(max_examples=25, deadline=None)
@given(meta=metadata_st)
def test_legacy_splitter_positional_variant_every_fifth_window(meta):
    splitter = LegacySplitter(variant="positional")
    ((train, val, test),) = list(splitter.split_with_validation(meta))
    assert splitter.get_n_splits(meta) == 1
    every = np.sort(np.concatenate([train, val, test]))
    assert np.array_equal(every, np.arange(len(meta)))
    held = set(val) | set(test)
    for _subject, rows in meta.sort_values(["trial", "t_start"]).groupby("subject"):
        idx = rows.index.to_numpy()  # time order within the subject
        expected = set(idx[4::5])
        assert expected == held & set(idx)
        assert set(idx[4::10]) <= set(test) and set(idx[9::10]) <= set(val)
    (train2, test2), = list(splitter.split(meta))
    assert np.array_equal(train2, train) and np.array_equal(test2, test)
    assert check_split(meta, train, test, "seed-legacy").n_overlapping == brute_overlap(
        meta, train, test
    )


# --------------------------------------------------------------------------- specifics


def test_loso_and_stratification_fallback(caplog):
    meta = make_metadata([[3, 3], [2, 2], [4, 1]])
    folds = list(make_splitter("subject", n_splits="loso").split(meta))
    assert [sorted(set(meta.subject.iloc[t])) for _, t in folds] == [["s00"], ["s01"], ["s02"]]
    assert make_splitter("subject", n_splits=10).get_n_splits(meta) == 3
    assert SubjectSplitter("loso").get_n_splits(meta) == 3
    # A constant target cannot be stratified: GroupKFold with a logged note.
    meta["y_fear"] = 0
    with caplog.at_level(logging.INFO, logger="fearkd.evaluation.splitters"):
        folds = list(TrialSplitter(2, random_state=0).split(meta))
    assert len(folds) == 2
    assert "using GroupKFold" in caplog.text


def test_same_seed_same_folds_and_missing_class_kept():
    meta = make_metadata([[2] * 4] * 6, seed=3, n_classes=4)
    a = [t.tolist() for _, t in make_splitter("subject", 3, random_state=7).split(meta)]
    b = [t.tolist() for _, t in make_splitter("subject", 3, random_state=7).split(meta)]
    assert a == b
    # Class 3 lives in one trial only: some folds lack it and are kept anyway.
    meta["y_fear"] = np.where((meta.subject == "s00") & (meta.trial == 1), 3, meta.y_fear % 3)
    folds = list(make_splitter("trial", 4, random_state=0).split(meta))
    assert len(folds) == 4
    assert sum(3 not in set(meta.y_fear.iloc[t]) for _, t in folds) == 3


def test_window_protocol_warns(caplog):
    meta = make_metadata([[4, 4], [4]])
    with caplog.at_level(logging.WARNING, logger="fearkd.evaluation.splitters"):
        list(WindowSplitter(2, random_state=0).split(meta))
    assert "leaky" in caplog.text


def test_check_split_vectorised_overlap_by_hand():
    # One trial, windows [0,2) [1,3) [2,4) [3,5); train = first and last.
    meta = make_metadata([[4]], length=2.0, step=1.0).sort_values("window")
    meta = meta.reset_index(drop=True)
    rep = check_split(meta, [0, 3], [1, 2], "window")
    assert rep.n_overlapping == 2 and rep.ok
    assert rep.overlapping_examples == (("s00", 1, 1), ("s00", 1, 2))
    # Touching windows [0,2) and [2,4) share no sample.
    assert check_split(meta, [0], [2], "window").n_overlapping == 0
    assert check_split(meta, [0], [1], "window").n_overlapping == 1
    assert check_split(meta, [], [1], "window").n_overlapping == 0
    assert check_split(meta, [0, 1], [2, 3], "seed-legacy").to_dict()["n_overlapping"] == 1


def test_leakage_error_on_crossing():
    meta = make_metadata([[2, 2], [2]]).sort_values(["subject", "trial", "window"])
    meta = meta.reset_index(drop=True)  # rows: s00 t1 (0,1), s00 t2 (2,3), s01 t1 (4,5)
    with pytest.raises(LeakageError, match=r"'subject' protocol: 1 subject\(s\) \(e.g. \['s00'\]"):
        check_split(meta, [0, 1], [2, 4], "subject")
    message = r"'trial' protocol: .*1 trial\(s\) \(e.g. \[\('s00', 1\)"
    with pytest.raises(LeakageError, match=message):
        check_split(meta, [0, 2], [1, 4], "trial")
    with pytest.raises(LeakageError, match=r"and 1 row\(s\) are on both sides"):
        check_split(meta, [0, 2], [0, 4], "trial")
    assert check_split(meta, [0, 2], [4, 5], "subject").ok
    assert check_split(meta, [0, 1], [2, 3], "trial").ok


def test_bad_input():
    meta = make_metadata([[2], [2]])
    with pytest.raises(ValueError, match="Invalid value for 'protocol': expected one of 'subject'"):
        make_splitter("subjects")
    with pytest.raises(ValueError, match="'n_splits' must be an integer >= 2 or 'loso', got 1"):
        make_splitter("subject", n_splits=1)
    with pytest.raises(ValueError, match="'n_splits' must be an integer >= 2, got 'loso'"):
        make_splitter("trial", n_splits="loso")
    with pytest.raises(ValueError, match=r"'n_splits' = 5 is more than the 2 trial group\(s\)"):
        list(make_splitter("trial", n_splits=5).split(meta))
    with pytest.raises(ValueError, match="'n_splits' = 9 is more than the 4 windows"):
        list(make_splitter("window", n_splits=9).split(meta))
    with pytest.raises(ValueError, match="needs at least 2 subject groups"):
        list(make_splitter("subject").split(meta[meta.subject == "s00"]))
    with pytest.raises(ValueError, match=r"'metadata' lacks column\(s\) \['t_stop'\]"):
        list(make_splitter("subject").split(meta.drop(columns="t_stop")))
    with pytest.raises(TypeError, match="'metadata' must be a pandas DataFrame, got ndarray"):
        check_split(meta.to_numpy(), [0], [1])
    with pytest.raises(TypeError, match="'train_idx' must be a 1-D array of integer row positions"):
        check_split(meta, [0.5], [1])
    with pytest.raises(ValueError, match=r"'test_idx' holds positions outside 0..3"):
        check_split(meta, [0], [4])
    bad = meta.assign(t_stop=meta.t_start)
    with pytest.raises(ValueError, match="windows with t_stop <= t_start"):
        check_split(bad, [0], [1])
    with pytest.raises(ValueError, match="'every' must be an integer >= 2, got 1"):
        list(LegacySplitter(every=1).split(meta))
    with pytest.raises(ValueError, match="get_n_splits needs 'metadata'"):
        SubjectSplitter("loso").get_n_splits()


def test_seed_legacy_folds_rotate_the_held_out_offset():
    import numpy as np
    import pandas as pd

    from fearkd.evaluation.splitters import make_splitter

    meta = pd.DataFrame({
        "subject": np.repeat(["s01", "s02"], 20), "trial": np.tile(np.repeat([1, 2], 10), 2),
        "window": np.tile(np.arange(10), 4), "t_start": np.tile(np.arange(10) * 0.125, 4),
    })
    meta["t_stop"] = meta["t_start"] + 2.0
    meta["y_fear"] = 0
    folds = list(make_splitter("seed-legacy", n_splits=5).split_with_validation(meta))
    assert len(folds) == 5
    held = [np.sort(np.r_[v, t]) for _, v, t in folds]
    # fold 0 is the notebooks' split: window i of the stacked windows with i % 5 == 0
    np.testing.assert_array_equal(held[0], [0, 5, 10, 15, 20, 25, 30, 35])
    np.testing.assert_array_equal(held[2], [2, 7, 12, 17, 22, 27, 32, 37])
    # the folds' held-out sets partition the windows
    np.testing.assert_array_equal(np.sort(np.concatenate(held)), np.arange(40))
    assert len(list(make_splitter("seed-legacy", n_splits=9).split(meta))) == 5
    with pytest.raises(ValueError, match="'n_splits' must be an integer >= 1"):
        make_splitter("seed-legacy", n_splits=0)


@settings(max_examples=25, deadline=None)
@given(meta=metadata_st)
def test_seed_legacy_is_the_notebooks_split(meta):
    from sklearn.model_selection import train_test_split

    ((train, val, test),) = list(make_splitter("seed-legacy", n_splits=1)
                                 .split_with_validation(meta))
    # oracle: the notebooks' stacked order, X[i] held out for i % 5 == 0, halved by sklearn
    order = meta.assign(_s=meta["subject"].astype(str)).sort_values(
        ["_s", "trial", "t_start"], kind="stable").index.to_numpy()
    held = order[np.arange(len(order)) % 5 == 0]
    assert np.array_equal(np.sort(train), np.sort(order[np.arange(len(order)) % 5 != 0]))
    if len(held) >= 2:
        v, t = train_test_split(held, test_size=0.5, random_state=42)
        assert np.array_equal(val, np.sort(v)) and np.array_equal(test, np.sort(t))
    else:
        assert list(test) == list(held) and len(val) == 0


def test_seed_legacy_rejects_an_unknown_variant():

    meta = pd.DataFrame({"subject": ["a"] * 6, "trial": [1] * 6, "window": range(6),
                         "t_start": np.arange(6.0), "t_stop": np.arange(6.0) + 2,
                         "y_fear": [0] * 6})
    with pytest.raises(ValueError, match="'variant' of the seed-legacy split: expected one of "
                                         r"\('notebooks', 'positional'\), got 'notebook'"):
        list(LegacySplitter(variant="notebook").split(meta))
