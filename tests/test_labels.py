"""Tests of fearkd.labels: rule tables, fear assignment, source tasks, label reports."""

from __future__ import annotations

import dataclasses
import json
import logging

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fearkd.errors import ConfigError, LabelError
from fearkd.labels import (
    FEAR_CLASSES,
    FearAssignment,
    Interval,
    RuleTable,
    SourceTask,
    assign_fear,
    label_report,
    label_trials,
    load_rules,
    load_source_task,
    parse_interval,
)

DEAP = ("valence", "arousal", "dominance")
ASC = ("arousal", "valence", "engagement", "liking", "familiarity")


def frame(rows, columns):
    return pd.DataFrame(np.asarray(rows, dtype=float), columns=list(columns))


# --------------------------------------------------------------------------- built-in tables


def test_builtin_tables_load():
    deap = load_rules("deap")
    assert deap.class_names == FEAR_CLASSES
    assert deap.ratings == DEAP
    assert str(deap.levels[0].ranges["arousal"]) == "[1, 3)"
    assert str(deap.levels[3].ranges["arousal"]) == "[7, 9]"
    assert str(deap.scales["valence"]) == "[1, 9]"
    asc = load_rules("ascertain")
    assert asc.class_names == FEAR_CLASSES
    assert set(asc.ratings) == set(ASC)
    assert str(asc.scales["valence"]) == "[-3, 3]"
    # The reference's swapped headers: the negative ranges belong to valence.
    assert str(asc.levels[3].ranges["valence"]) == "[-3, -3]"
    assert str(asc.levels[3].ranges["arousal"]) == "[5, 6]"
    assert load_rules(deap) is deap
    assert load_rules(deap.to_dict()) == deap


def test_ascertain_notebooks_table_labels_322_of_the_rating_grid():
    """The seed notebooks' ASCERTAIN rule: on the integer grid of the five ratings (7**5
    combinations) it labels 322 (46 combinations of arousal, valence, liking, familiarity x 7
    engagement values, engagement unused), the slide's table 232."""
    import itertools

    grid = pd.DataFrame(list(itertools.product(range(7), range(-3, 4), range(7), range(7),
                                               range(7))), columns=list(ASC))
    notebooks = assign_fear(grid, "ascertain-notebooks")
    slide = assign_fear(grid, "ascertain")
    assert (notebooks >= 0).sum() == 322 and (slide >= 0).sum() == 232
    # per level: none 3 x 3 x 2 x 2, low 1 x 3 x 2 x 1, medium 1 x 1 x 2 x 1, high 2 x 1 x 1 x 1
    assert np.bincount(notebooks[notebooks >= 0]).tolist() == [36 * 7, 6 * 7, 2 * 7, 2 * 7]
    table = load_rules("ascertain-notebooks")
    assert table.ratings == ("arousal", "valence", "liking", "familiarity")
    assert table.class_names == FEAR_CLASSES
    # the notebook's strict inequalities: familiarity 2 is not "none" (> 2), 4 is
    row = {"arousal": 1, "valence": 2, "engagement": 0, "liking": 5}
    assert assign_fear(pd.DataFrame([{**row, "familiarity": f} for f in (2, 3, 4)]),
                       table).tolist() == [-1, 0, 0]


@pytest.mark.parametrize(
    ("v", "a", "d", "expected"),
    [
        (9, 1, 9, 0),  # scale corners: top closed, bottom closed
        (7, 1, 7, 0),
        (7, 2.999, 7, 0),
        (7, 3, 7, -1),  # arousal 3 leaves "none" (half-open) but valence 7 is not "low"
        (6.999, 3, 5, 1),
        (5, 3, 5, 1),
        (5, 4.999, 6.999, 1),
        (4.999, 5, 3, 2),
        (3, 5, 3, 2),
        (3, 6.999, 4.999, 2),
        (2.999, 7, 1, 3),
        (1, 9, 1, 3),
        (1, 7, 2.999, 3),
        (3, 7, 1, -1),  # valence 3 is "medium", arousal 7 is "high": no box
        (9, 9, 9, -1),
        (5, 5, 5, -1),
    ],
)
def test_deap_edges(v, a, d, expected):
    labels = assign_fear(frame([[v, a, d]], DEAP), "deap")
    assert labels.dtype == np.int64
    assert labels.tolist() == [expected]


def test_ascertain_touching_edges_and_ambiguity():
    rows = [
        [4, -1, 3, 3, 2],  # arousal 4 with the rest of "low": low
        [4, -2, 4, 2, 1],  # arousal 4 with the rest of "medium": medium
        [5, -3, 5, 1, 0],  # on every touching edge of "medium" and "high": both
        [2, 3, 0, 6, 4],  # none
        [6, -3, 6, 0, 0],  # high
        [3, 0, 3, 3, 1],  # valence 0 is in no row
    ]
    df = frame(rows, ASC)
    res = assign_fear(df, "ascertain", return_counts=True)
    assert isinstance(res, FearAssignment)
    assert res.labels.tolist() == [1, 2, -1, 0, 3, -1]
    assert res.ambiguous.tolist() == [False, False, True, False, False, False]
    assert (res.n_ambiguous, res.n_unlabelled, res.n_nan) == (1, 2, 0)
    first = assign_fear(df, "ascertain", ambiguous="first")
    assert first.tolist() == [1, 2, 2, 0, 3, -1]
    message = r"1 trial\(s\) match several levels.*\['medium', 'high'\]"
    with pytest.raises(LabelError, match=message):
        assign_fear(df, "ascertain", ambiguous="error")


def _oracle(values: dict, table: RuleTable) -> list[int]:
    """Indices of the levels a trial matches, by scalar comparisons."""
    out = []
    for k, level in enumerate(table.levels):
        ok = True
        for name, iv in level.ranges.items():
            x = values[name]
            ok &= (x >= iv.lo if iv.lo_closed else x > iv.lo) and (
                x <= iv.hi if iv.hi_closed else x < iv.hi
            )
        if ok:
            out.append(k)
    return out


@st.composite
def rating_rows(draw, which):
    table = load_rules(which)
    n = draw(st.integers(1, 30))
    cols = {}
    for name in table.ratings:
        scale = table.scales[name]
        grid = np.arange(scale.lo, scale.hi + 0.5, 0.5).tolist()  # hits every edge
        value = st.one_of(st.sampled_from(grid), st.floats(scale.lo, scale.hi))
        cols[name] = draw(st.lists(value, min_size=n, max_size=n))
    return table, pd.DataFrame(cols)


@settings(max_examples=60, deadline=None)
@given(data=st.one_of(rating_rows("deap"), rating_rows("ascertain")))
def test_labelled_trials_satisfy_exactly_their_row(data):
    table, df = data
    labels = assign_fear(df, table, ambiguous="drop")
    for i, row in enumerate(df.to_dict("records")):
        matched = _oracle(row, table)
        if labels[i] >= 0:
            assert matched == [labels[i]]
        else:
            assert len(matched) != 1


def test_nan_policy():
    df = frame([[8, 2, 8], [np.nan, 2, 8]], DEAP)
    with pytest.raises(LabelError, match=r"1 trial\(s\) have a NaN rating \(rows \[1\]\)"):
        assign_fear(df, "deap")
    res = assign_fear(df, "deap", nan_policy="unlabelled", return_counts=True)
    assert res.labels.tolist() == [0, -1]
    assert res.n_nan == 1


def test_out_of_scale_rating_is_label_error():
    with pytest.raises(LabelError, match=r"rating 'arousal' lie outside its scale \[1, 9\]"):
        assign_fear(frame([[8, 0.5, 8]], DEAP), "deap")
    with pytest.raises(LabelError, match=r"'valence' lie outside its scale \[-3, 3\]"):
        assign_fear(frame([[1, 4, 1, 1, 1]], ASC), "ascertain")


def test_bad_policies_and_types():
    df = frame([[8, 2, 8]], DEAP)
    with pytest.raises(ValueError, match="Invalid value for 'ambiguous'.*got 'keep'"):
        assign_fear(df, "deap", ambiguous="keep")
    with pytest.raises(ValueError, match="Invalid value for 'nan_policy'.*got 'zero'"):
        assign_fear(df, "deap", nan_policy="zero")
    with pytest.raises(TypeError, match="'ratings' must be a pandas DataFrame, got ndarray"):
        assign_fear(df.to_numpy(), "deap")
    with pytest.raises(TypeError, match="Rating column 'valence' must be numeric"):
        assign_fear(pd.DataFrame({"valence": ["x"], "arousal": [2], "dominance": [8]}), "deap")
    with pytest.raises(TypeError, match="'rules' must be 'deap', 'ascertain'.*got int 3"):
        load_rules(3)


# --------------------------------------------------------------------------- user tables


def user_table(n_levels: int) -> dict:
    edges = np.linspace(0, 10, n_levels + 1)
    levels = []
    for k in range(n_levels):
        right = "]" if k == n_levels - 1 else ")"
        levels.append(
            {
                "name": f"level{k}",
                "ranges": {"stress": f"[{edges[k]:g}, {edges[k + 1]:g}{right}", "calm": "(0, 5]"},
            }
        )
    return {"name": f"user{n_levels}", "scales": {"stress": "[0, 10]"}, "levels": levels}


@pytest.mark.parametrize("n_levels", [2, 5])
def test_toml_round_trip(tmp_path, n_levels):
    table = RuleTable.from_dict(user_table(n_levels))
    path = table.save(tmp_path / "rules.toml")
    loaded = load_rules(path)
    assert loaded == table
    assert loaded.n_classes == n_levels
    assert loaded.source == str(path)
    df = pd.DataFrame({"stress": [0.0, 10.0, 4.0], "calm": [1.0, 5.0, 0.0]})
    expected = [0, n_levels - 1, -1]  # calm 0 is excluded by the open lower bound
    assert assign_fear(df, loaded).tolist() == expected
    assert load_rules(str(path)).to_toml() == table.to_toml()


def test_unknown_rating_names_rating_and_file(tmp_path):
    path = RuleTable.from_dict(user_table(2)).save(tmp_path / "mine.toml")
    df = pd.DataFrame({"stress": [1.0]})
    with pytest.raises(ConfigError, match=r"mine\.toml: rating\(s\) \['calm'\] named in the table"):
        assign_fear(df, path)


@pytest.mark.parametrize(
    ("interval", "message"),
    [
        ("[7, 3]", r"inverted interval \[7, 3\] \(min 7 > max 3\)"),
        ("[3, 3)", r"interval \[3, 3\) is empty"),
        ("7..9", r"invalid interval '7\.\.9'; expected a string like"),
        (7, r"expected an interval string like '\[5, 7\)', got int 7"),
    ],
)
def test_bad_interval_is_config_error(tmp_path, interval, message):
    data = user_table(2)
    data["levels"][1]["ranges"]["calm"] = interval
    with pytest.raises(ConfigError, match=r"levels\[1\]\.ranges\.calm: " + message):
        RuleTable.from_dict(data)


def test_parse_interval_forms():
    assert parse_interval("(0, 1]") == Interval(0.0, 1.0, False, True)
    assert parse_interval(" [-inf, 2.5) ") == Interval(-np.inf, 2.5, True, False)
    assert parse_interval("[1e1, 2E1]") == Interval(10.0, 20.0)
    iv = Interval(1.0, 3.0, True, False)
    assert iv.contains(np.array([1.0, 2.0, 3.0, np.nan])).tolist() == [True, True, False, False]


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.update(colour="red"), r"unknown key\(s\) \['colour'\]"),
        (lambda d: d.update(levels=d["levels"][:1]), r"at least two \[\[levels\]\] entries"),
        (lambda d: d["levels"][1].update(name="level0"), "level names must be unique"),
        (lambda d: d["levels"][1].pop("ranges"), r"levels\[1\]: expected a table with keys"),
        (lambda d: d["levels"][0].update(ranges={}), r"'ranges' must be a non-empty table"),
        (lambda d: d.update(scales="0-10"), "'scales' must be a table"),
        (
            lambda d: d["levels"][0]["ranges"].update(stress="[-1, 5)"),
            r"interval \[-1, 5\) lies outside the declared scale \[0, 10\] of 'stress'",
        ),
    ],
)
def test_malformed_tables(mutate, message):
    data = user_table(2)
    mutate(data)
    with pytest.raises(ConfigError, match=message):
        RuleTable.from_dict(data, source="t.toml")


def test_table_file_errors(tmp_path):
    with pytest.raises(ConfigError, match=r"Invalid rule table 'nope': expected one of"):
        load_rules("nope")
    bad = tmp_path / "bad.toml"
    bad.write_text("name = [", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"bad\.toml: not a valid TOML file"):
        load_rules(bad)


# --------------------------------------------------------------------------- source tasks


def test_builtin_source_tasks():
    deap = load_source_task("deap")
    assert (deap.rating, deap.n_classes) == ("valence", 10)
    df = pd.DataFrame({"valence": [1.0, 1.99, 5.5, 8.999, 9.0]})
    assert deap.assign(df).tolist() == [1, 1, 5, 8, 9]
    with pytest.raises(LabelError, match=r"'valence' lie outside its scale \[1, 9\]"):
        deap.assign(pd.DataFrame({"valence": [0.5]}))
    asc = load_source_task("ascertain")
    assert (asc.rating, asc.n_classes) == ("arousal", 7)
    assert asc.assign(pd.DataFrame({"arousal": np.arange(7.0)})).tolist() == list(range(7))


def test_deap_arousal_source_task_is_registered_beside_valence():
    from fearkd.datasets.deap import RATINGS

    arousal = load_source_task("deap-arousal")
    assert arousal.rating == "arousal" == RATINGS[1]  # the notebooks' label column 1
    assert load_source_task("deap-valence") == dataclasses.replace(
        load_source_task("deap"), source="built-in 'deap-valence'")
    df = pd.DataFrame({"valence": [9.0, 1.0, 5.0], "arousal": [1.0, 7.5, 9.0]})
    assert arousal.assign(df).tolist() == [1, 7, 9]  # read from arousal, not valence
    with pytest.raises(LabelError, match=r"'arousal' lie outside its scale \[1, 9\]"):
        arousal.assign(pd.DataFrame({"arousal": [0.0]}))


def test_source_task_nan_policy():
    task = load_source_task("deap")
    df = pd.DataFrame({"valence": [2.0, np.nan]})
    with pytest.raises(LabelError, match=r"1 trial\(s\) have a NaN 'valence' rating"):
        task.assign(df)
    assert task.assign(df, nan_policy="unlabelled").tolist() == [2, -1]
    with pytest.raises(ValueError, match="Invalid value for 'nan_policy'"):
        task.assign(df, nan_policy="drop")


def test_source_task_configurable(tmp_path):
    # ASCERTAIN valence -3..3 as 7 classes through the offset.
    task = load_source_task({"rating": "valence", "n_classes": 7, "offset": 3})
    assert task.assign(pd.DataFrame({"valence": [-3.0, 0.0, 3.0]})).tolist() == [0, 3, 6]
    # Edges: [1, 5) -> 0, [5, 9] -> 1; outside -> -1.
    path = tmp_path / "task.toml"
    path.write_text('[source_task]\nrating = "arousal"\nedges = [1, 5, 9]\n', encoding="utf-8")
    task = load_source_task(path)
    assert isinstance(task, SourceTask) and task.n_classes == 2
    df = pd.DataFrame({"arousal": [1.0, 4.99, 5.0, 9.0, 0.5, 9.5]})
    assert task.assign(df).tolist() == [0, 0, 1, 1, -1, -1]
    assert load_source_task(task) is task


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"n_classes": 3}, "a source task needs 'rating'"),
        ({"rating": "v", "binning": "round", "n_classes": 3}, "'binning' must be 'floor' or"),
        ({"rating": "v", "edges": [3, 1, 2]}, "'edges' must be at least 3 strictly increasing"),
        ({"rating": "v", "edges": [1, 2, 3], "n_classes": 5}, r"'n_classes' = 5 but 3 edges"),
        ({"rating": "v"}, "'n_classes' must be an integer >= 2"),
    ],
)
def test_bad_source_tasks(data, message):
    with pytest.raises(ConfigError, match=message):
        load_source_task(data)


def test_source_task_spec_type():
    with pytest.raises(TypeError, match="'source' must be 'deap'.*got float 1.5"):
        load_source_task(1.5)
    with pytest.raises(ConfigError, match="Invalid source task 'nope'"):
        load_source_task("nope")


# --------------------------------------------------------------------------- label report


def test_label_report_counts_and_warnings(caplog):
    trials = pd.DataFrame(
        {
            "subject": ["s01", "s01", "s02", "s03", "s03", "s07", "s04"],
            "y_fear": [0, 3, 0, 0, 3, 1, -1],
        }
    )
    with caplog.at_level(logging.WARNING, logger="fearkd.label_report"):
        rep = label_report(trials, ambiguous=[False] * 6 + [True])
    assert rep.counts.loc["s01"].tolist() == [1, 0, 0, 1]
    assert rep.counts.loc["s04"].tolist() == [0, 0, 0, 0]
    assert rep.totals.tolist() == [3, 1, 0, 2]
    assert (rep.n_unlabelled, rep.n_ambiguous) == (1, 1)
    expected = (
        "class 'low' comes from 1 subject(s) (s07): a model can learn the subject instead of "
        "the fear",
        "class 'medium' has no trial: no model can learn it",
        "class 'high' comes from 2 subject(s) (s01, s03): a model can learn the subject "
        "instead of the fear",
    )
    assert rep.warnings == expected
    assert [r.getMessage() for r in caplog.records] == list(expected)
    d = json.loads(json.dumps(rep.to_dict()))
    assert d["totals"] == {"none": 3, "low": 1, "medium": 0, "high": 2}
    assert d["n_labelled"] == 6 and d["counts"]["s03"]["high"] == 1
    text = rep.to_text()
    assert "total" in text and "unlabelled: 1" in text and "WARNING: class 'medium'" in text


def test_label_report_windows_reduced_to_trials():
    meta = pd.DataFrame(
        {
            "subject": ["a"] * 4 + ["b"] * 2,
            "trial": [1, 1, 2, 2, 1, 1],
            "y_fear": [1, 1, 0, 0, 1, 1],
        }
    )
    rep = label_report(meta, class_names=("x", "y"), min_subjects=2)
    assert rep.totals.tolist() == [1, 2]
    assert rep.warnings == (
        "class 'x' comes from 1 subject(s) (a): a model can learn the subject instead of the fear",
    )


def test_label_report_bad_input():
    ok = pd.DataFrame({"subject": ["a"], "y_fear": [0]})
    with pytest.raises(ValueError, match=r"'trials' lacks column\(s\) \['y_fear'\]"):
        label_report(pd.DataFrame({"subject": ["a"]}))
    with pytest.raises(ValueError, match=r"'y_fear' holds \[4\]; expected -1 or a class code 0..3"):
        label_report(pd.DataFrame({"subject": ["a"], "y_fear": [4]}))
    with pytest.raises(ValueError, match=r"'ambiguous' must have shape \(1,\)"):
        label_report(ok, ambiguous=[True, False])
    with pytest.raises(ValueError, match="'min_subjects' must be an integer >= 1"):
        label_report(ok, min_subjects=0)
    with pytest.raises(TypeError, match="'trials' must be a pandas DataFrame"):
        label_report([("a", 0)])


# ------------------------------------------------------------------- label_trials (once)
def _trials():
    # subject a: trial 0 -> high fear box, trial 1 -> no box; subject b: trial 0 given by a reader
    return pd.DataFrame({
        "subject": ["a", "a", "b"], "trial": [0, 1, 0],
        "valence": [2.0, 5.0, np.nan], "arousal": [8.0, 1.0, np.nan],
        "dominance": [2.0, 5.0, np.nan],
        "y_fear": [-1, -1, 1], "y_source": [-1, -1, 7],
    })


def test_label_trials_applies_rules_to_rated_trials_and_keeps_given_ones():
    labeled = label_trials(_trials(), "deap", "deap", given=[False, False, True])
    assert labeled.labels["y_fear"].tolist() == [3, -1, 1]
    assert labeled.labels["y_source"].tolist() == [2, 5, 7]  # DEAP valence: floor of the rating
    assert labeled.class_names == FEAR_CLASSES and labeled.n_source_classes == 10
    assert labeled.report.n_unlabelled == 1
    assert labeled.report.counts.loc["a", "high"] == 1
    assert labeled.report.counts.loc["b", "low"] == 1


def test_label_trials_join_gives_every_window_its_trials_labels():
    labeled = label_trials(_trials(), "deap", "deap", given=[False, False, True])
    windows = pd.DataFrame({"subject": ["b", "a", "a", "a", "c"], "trial": [0, 1, 0, 0, 0],
                            "window": [0, 0, 0, 1, 0], "y_fear": 9, "y_source": 9})
    joined = labeled.join(windows)
    assert joined["y_fear"].tolist() == [1, -1, 3, 3, -1]  # c/0 has no label: -1
    assert joined["y_source"].tolist() == [7, 5, 2, 2, -1]
    assert joined["window"].tolist() == [0, 0, 0, 1, 0] and windows["y_fear"].eq(9).all()


def test_label_trials_without_rules_names_given_classes():
    trials = pd.DataFrame({"subject": ["a", "b"], "trial": [0, 0], "y_fear": [0, 1]})
    labeled = label_trials(trials, given=[True, True], classes={"Relax": 0, "Stress": 1})
    assert labeled.class_names == ("Relax", "Stress")
    assert labeled.labels["y_fear"].tolist() == [0, 1]
    assert labeled.n_source_classes == 0


def test_label_trials_bad_input():
    with pytest.raises(TypeError, match=r"'trials' must be a pandas DataFrame, got list"):
        label_trials([("a", 0)])
    with pytest.raises(ValueError, match=r"'trials' lacks column\(s\) \['trial'\]"):
        label_trials(pd.DataFrame({"subject": ["a"]}))
    twice = pd.DataFrame({"subject": ["a", "a"], "trial": [0, 0]})
    with pytest.raises(ValueError, match=r"holds a \(subject, trial\) twice"):
        label_trials(twice)
    with pytest.raises(ValueError, match=r"'given' must have shape \(3,\) like 'trials', got "
                                         r"\(2,\)"):
        label_trials(_trials(), "deap", given=[True, False])
