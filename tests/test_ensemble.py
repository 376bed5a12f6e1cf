"""Ensembles: soft voting, stacking on out-of-fold probabilities, an ensemble as a teacher."""

from __future__ import annotations

import numpy as np
import pytest

from fearkd.models import make_model
from fearkd.training import fit, make_kd_loss, predict_logits
from fearkd.training.ensemble import Stacking, fit_ensemble
from fearkd.training.settings import FitSettings

SETTINGS = FitSettings(epochs=10, batch_size=32, val_fraction=0.0, patience=None,
                       num_threads=1)
MEMBERS = ("ann", "attention")


def _planted(seed: int, n: int = 400):
    """3 classes in features 0-1, 6 noise features; groups of 10 rows (trials)."""
    rng = np.random.default_rng(seed)
    y = np.repeat(rng.integers(0, 3, n // 10), 10)
    X = rng.normal(size=(n, 8)).astype(np.float32)
    X[:, 0] += 1.2 * (y - 1)
    X[:, 1] += 1.2 * (y == 1)
    return X, y, np.repeat(np.arange(n // 10), 10)


def test_stacking_is_never_below_its_best_member_by_more_than_the_noise_floor():
    # Shown to fail: with the meta-model fitted on permuted labels (y[::-1]) the stacked
    # accuracy falls to about chance and the mean gap is far below minus the noise floor.
    gaps, floor = [], 0.0
    for seed in range(3):
        X, y, g = _planted(seed)
        tr, te = np.arange(300), np.arange(300, 400)
        ens = fit_ensemble(MEMBERS, X[tr], y[tr], 3, kind="stacking", settings=SETTINGS,
                           groups=g[tr], random_state=seed)
        members = [float((p.argmax(1) == y[te]).mean()) for p in ens.member_proba(X[te])]
        best = max(members)
        gaps.append(float((ens.predict(X[te]) == y[te]).mean()) - best)
        floor = max(floor, 1.96 * np.sqrt(best * (1 - best) / len(te)))  # binomial SE
    assert np.mean(gaps) > -floor, (gaps, floor)


def test_the_meta_model_never_sees_a_prediction_on_its_own_training_rows():
    X, y, g = _planted(0, 200)
    ens = fit_ensemble(MEMBERS, X, y, 3, kind="stacking", settings=SETTINGS.replace(epochs=2),
                       groups=g, n_inner=4)
    assert isinstance(ens, Stacking)
    for row, trained_on in enumerate(ens.oof_train_rows_):
        assert len(trained_on) > 0 and row not in set(trained_on.tolist())
        # nor any window of its trial (the inner split keeps groups together)
        assert g[row] not in set(g[trained_on].tolist())
    # the classic leak, meta inputs predicted by members that trained on every row, is absent
    assert not np.allclose(ens.oof_proba_, np.hstack(ens.member_proba(X)), atol=1e-3)
    # the meta-model was fitted on exactly those out-of-fold probabilities
    refit = type(ens.meta)(max_iter=1000).fit(ens.oof_proba_, y)
    assert np.allclose(refit.coef_, ens.meta.coef_)


def test_soft_voting_is_the_mean_of_member_probabilities():
    X, y, g = _planted(1, 200)
    ens = fit_ensemble(MEMBERS, X, y, 3, kind="soft", settings=SETTINGS.replace(epochs=2),
                       groups=g)
    expected = np.mean(ens.member_proba(X), axis=0)
    assert np.allclose(ens.predict_proba(X), expected)
    assert np.allclose(np.exp(ens.logits(X)).sum(1), 1.0, atol=1e-5)


def test_an_ensemble_of_teachers_teaches_a_student():
    # The student sees only the noise columns plus feature 0; it learns from the ensemble's
    # soft targets and must beat the majority class on held-out rows.
    X, y, g = _planted(2)
    tr, te = np.arange(300), np.arange(300, 400)
    teacher = fit_ensemble(MEMBERS, X[tr], y[tr], 3, kind="soft", settings=SETTINGS,
                           groups=g[tr])
    cols = [0, 2, 3, 4]
    student = make_model("ann", len(cols), 3, random_state=0)
    res = fit(student, X[tr][:, cols], y[tr], SETTINGS, targets=teacher.logits(X[tr]),
              loss=make_kd_loss("soft", temperature=2.0))
    pred = predict_logits(student, X[te][:, cols], scaler=res.scaler).argmax(1)
    majority = (y[te] == np.bincount(y[tr]).argmax()).mean()
    assert (pred == y[te]).mean() > majority + 0.1


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"names": []}, r"'members' of an ensemble: expected at least one model name"),
    ({"names": ["nope"]}, r"Invalid value for 'ensemble members': expected one of"),
    ({"kind": "hard"}, r"'kind' of an ensemble: expected one of 'soft', 'stacking', got 'hard'"),
    ({"kind": "stacking", "n_inner": 50}, r"'n_inner' of a stacking ensemble: expected at most"),
])
def test_bad_ensemble_input(kwargs, match):
    X, y, g = _planted(0, 40)
    args = {"names": ["ann"], **kwargs}
    with pytest.raises(ValueError, match=match):
        fit_ensemble(args.pop("names"), X, y, 3, settings=SETTINGS, groups=g, **args)


# --------------------------------------------------- the ``ensemble`` model of experiment files
def test_vote_model_is_the_log_mean_of_member_probabilities():
    import torch

    model = make_model("ensemble", 8, 3, random_state=0, members=["ann", "attention"])
    x = torch.randn(6, 8)
    model.set_scale(1, np.full(8, 0.5), np.full(8, 2.0))
    model.eval()  # the members' dropout off
    with torch.no_grad():
        p0 = torch.softmax(model.members[0](x), 1)
        p1 = torch.softmax(model.members[1]((x - 0.5) / 2.0), 1)
        assert torch.allclose(model(x), torch.log((p0 + p1) / 2), atol=1e-6)


def test_stacked_model_never_below_its_best_member_by_more_than_the_noise_floor():
    # The experiment-file path (fit_ensemble_model). Shown to fail: with the head fitted on
    # reversed labels (y[::-1]) the gap falls far below minus the noise floor.
    import torch

    from fearkd.training.ensemble import fit_ensemble_model

    gaps, floor = [], 0.0
    for seed in range(3):
        X, y, g = _planted(seed)
        tr, te = np.arange(300), np.arange(300, 400)
        model = make_model("ensemble", 8, 3, random_state=seed, members=list(MEMBERS),
                           kind="stack")
        fit_ensemble_model(model, X[tr], y[tr], SETTINGS, groups=g[tr], random_state=seed)
        with torch.no_grad():
            proba = model.member_proba(torch.as_tensor(X[te])).numpy()
        members = [float((proba[:, 3 * k:3 * k + 3].argmax(1) == y[te]).mean())
                   for k in range(2)]
        best = max(members)
        stacked = float((predict_logits(model, X[te]).argmax(1) == y[te]).mean())
        gaps.append(stacked - best)
        floor = max(floor, 1.96 * np.sqrt(best * (1 - best) / len(te)))  # binomial SE
        # the meta-model never saw a prediction made on its own training rows' groups
        for row, trained_on in enumerate(model.oof_train_rows_):
            assert len(trained_on) > 0 and g[tr][row] not in set(g[tr][trained_on].tolist())
    assert np.mean(gaps) > -floor, (gaps, floor)


def _ensemble_experiment(tmp_path, write_experiment, extra: str, **kw):
    from fearkd.config import load_config

    path = write_experiment(tmp_path, backbones=kw.pop("backbones", ("ann", "attention")),
                            methods=("method1",), kd_targets=("combined",), **kw)
    text = path.read_text().replace('backbones = ', extra + '\nbackbones = ', 1)
    path.write_text(text)
    return load_config(path)


def test_ensemble_teacher_through_run_experiment(tmp_path, deap_root, write_experiment):
    """[models] ensemble = "stack": its own unit; the ensemble teaches students; resumable."""
    from fearkd.experiment import run_experiment

    cfg = _ensemble_experiment(tmp_path, write_experiment, 'ensemble = "stack"')
    res = run_experiment(cfg, tmp_path / "run", data_path=deap_root, progress=False)
    r = res.results
    test_acc = r[(r["split"] == "test") & (r["metric"] == "accuracy")]
    teacher = test_acc[(test_acc["method"] == "ensemble") & (test_acc["stage"] == "teacher")]
    assert set(teacher["model"]) == {"ensemble"} and len(teacher) == 2  # one per fold
    students = test_acc[(test_acc["method"] == "ensemble") & (test_acc["stage"] == "student")]
    assert set(students["target"]) == {"combined"} and set(students["model"]) == {"ann"}
    # the ensemble holds both backbones, each with its own parameters
    units = [u for u in res.rundir.unit_ids() if "__ensemble__" in u]
    assert len(units) == 2
    assert int(teacher["n_params"].iloc[0]) == sum(
        int(test_acc[(test_acc["method"] == "method1") & (test_acc["stage"] == "teacher")
                     & (test_acc["model"] == m)]["n_params"].iloc[0])
        for m in ("ann", "attention")) + 2 * 4 * 4 + 4  # + the head over 2 x 4 probabilities
    # a re-run reloads every stage (the ensemble from its checkpoint) with the same results
    again = run_experiment(cfg, tmp_path / "run", data_path=deap_root, progress=False)
    pd_cols = ["dataset", "method", "stage", "model", "target", "fold", "split", "metric"]
    a = r.sort_values(pd_cols).reset_index(drop=True)
    b = again.results.sort_values(pd_cols).reset_index(drop=True)
    assert np.allclose(a["value"].to_numpy(float), b["value"].to_numpy(float))


@pytest.mark.parametrize(("extra", "kw", "match"), [
    ('ensemble = "bag"', {}, r"\[models\] ensemble: expected one of \['vote', 'stack'\] \(or "
                             r"\"\" for none\), got 'bag'; write ensemble = \"vote\""),
    ('ensemble = "vote"', {"backbones": ("ann", "ensemble")},
     r"\[models\] backbones names 'ensemble'; .* set \[models\] ensemble = \"vote\" or"),
])
def test_bad_ensemble_keys_are_one_line_errors(tmp_path, write_experiment, extra, kw, match):
    from fearkd.errors import ConfigError

    with pytest.raises(ConfigError, match=match):
        _ensemble_experiment(tmp_path, write_experiment, extra, **kw)


def test_ensemble_with_adaptation_or_in_methods_run_is_refused(tmp_path, write_experiment):
    from fearkd.config import load_config
    from fearkd.errors import ConfigError

    path = write_experiment(tmp_path, backbones=("ann",), methods=("method1",))
    base = path.read_text()
    path.write_text(base.replace("backbones = ", 'ensemble = "vote"\nbackbones = ', 1)
                    .replace("[training]\n", '[training]\nadaptation = "coral"\n'))
    with pytest.raises(ConfigError, match=r"\[models\] ensemble = 'vote' with \[training\] "
                                          r"adaptation = 'coral'.* set adaptation = \"none\""):
        load_config(path)
    path.write_text(base.replace('run = ["method1"]', 'run = ["method1", "ensemble"]'))
    with pytest.raises(ConfigError, match=r"\[methods\] run names 'ensemble'.* remove it from "
                                          r"run and set \[models\] ensemble"):
        load_config(path)


def test_stacked_teacher_on_the_demo_data_is_not_below_its_best_member(tmp_path):
    """Issue check: on the demo's synthetic DEAP (``DEMO_KNOBS``, small), the stacked ensemble
    teacher, paired on (fold, seed) with each member trained as Method 1's teacher in the same
    run, is never below the better member by more than the noise floor (1.96 binomial standard
    errors on the test windows). Shown to fail: with the stacking head fitted on reversed
    labels (``y[::-1]`` in ``fit_ensemble_model``) the mean gap falls to -48 pp (floor 14 pp)."""
    from fearkd.config import ExperimentConfig
    from fearkd.datasets.synthetic import write_deap
    from fearkd.demo import DEMO_KNOBS
    from fearkd.experiment import run_experiment

    root = write_deap(tmp_path / "data", n_subjects=6, n_trials=16, seconds=11.0, seed=0,
                      **DEMO_KNOBS)
    cfg = ExperimentConfig(name="ensemble-demo-data").replace(
        dataset={"kind": "deap", "path": str(root)},
        features={"window": 4.0, "step": 2.0},
        models={"backbones": ["ann", "attention"], "ensemble": "stack"},
        methods={"run": ["method1"], "kd_targets": ["soft"], "baselines": []},
        training={"epochs": 20, "pretrain_epochs": 3, "batch_size": 32, "patience": 5},
        evaluation={"protocol": "subject", "folds": 3, "seeds": [0], "jobs": 1})
    r = run_experiment(cfg, tmp_path / "run", progress=False).results
    acc = r[(r["split"] == "test") & (r["metric"] == "accuracy") & (r["stage"] == "teacher")]
    keys = ["fold", "seed"]
    stacked = acc[acc["method"] == "ensemble"].set_index(keys)["value"].astype(float)
    members = acc[acc["method"] == "method1"].pivot_table(index=keys, columns="model",
                                                           values="value", aggfunc="first")
    assert set(members.columns) == {"ann", "attention"} and len(stacked) == 3
    best = members.astype(float).max(axis=1).loc[stacked.index]
    n_test = int(acc["n_test"].astype(float).min())  # test windows of the smallest fold
    floor = float(1.96 * np.sqrt(best.mean() * (1 - best.mean()) / n_test))
    gap = float((stacked - best).mean())
    assert best.mean() > 0.5, best  # the members learn the demo's data
    assert gap > -floor, (gap, floor, stacked.to_dict(), best.to_dict())
