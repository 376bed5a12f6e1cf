"""Pseudo-online evaluation (`fearkd online`), the feature-path check of the model card, and
the deployed features matching the features the bundle was trained on."""

import json

import numpy as np
import pandas as pd
import pytest

from fearkd.cli import main
from fearkd.config import load_config
from fearkd.datasets.loaders import open_dataset
from fearkd.deploy.card import feature_path_facts, model_card
from fearkd.deploy.online import feature_path_differences
from fearkd.deploy.predict import bundle_featureset
from fearkd.deploy.train import deploy_config, train_final
from fearkd.experiment import prepare_data, run_experiment


@pytest.fixture(scope="module")
def cv_run(tmp_path_factory, write_experiment, deap_root):
    """A finished 2-fold subject-wise CV of a small DEAP student (filter band power,
    per-subject normalisation: the defaults)."""
    root = tmp_path_factory.mktemp("online")
    exp = write_experiment(root, name="online-test", backbones=("ann",), methods=("method1",),
                           kd_targets=("soft",), epochs=2, patience=1, filename="exp.toml")
    run = root / "run"
    run_experiment(load_config(exp), run, data_path=deap_root, progress=False)
    return exp, run


def test_online_replays_each_fold_through_the_stream_end_to_end(cv_run, deap_root, capsys):
    exp, run = cv_run
    code = main(["online", str(run), "--data", str(deap_root), "--quiet"])
    assert code == 0
    s = json.loads((run / "online" / "summary.json").read_text())
    assert len(s["folds"]) == 2
    tested = sorted(t for f in s["folds"] for t in f["test_subjects"])
    assert tested == ["s01", "s02", "s03"]  # every subject replayed once, as a test subject
    for f in s["folds"]:
        assert not set(f["train_subjects"]) & set(f["test_subjects"])
        w = f["windows"]
        # every window predict gives was streamed and matched; stream == predict per window
        assert w["matched"] == w["predict"] == w["stream"] > 0 and w["missing"] == 0
        assert w["matched_cv"] == w["matched"]
        assert f["agreement_predict"] == 1.0 and f["max_abs_diff_predict"] < 1e-4
        assert f["latency_ms"]["p50"] > 0 and set(f["cv"]) == {"accuracy", "balanced_accuracy",
                                                                "macro_f1"}
    assert 0.0 <= s["agreement_cv"] <= 1.0
    table = pd.read_csv(run / "online" / "windows.csv")
    assert len(table) == s["windows"]
    # the online scores are those of the streamed levels against the labels
    lab = table[table["y_true"].notna()]
    assert s["online"]["accuracy"] == pytest.approx((lab["level"] == lab["y_true"]).mean())
    budget = pd.read_csv(run / "online" / "budget.csv")
    assert budget["minutes"].min() == 0 and budget["minutes"].nunique() >= 2
    assert set(budget["subject"]) == {"s01", "s02", "s03"}
    # no resting stage named: the warning says so; the CV's features differ from the graph's
    assert any("not a resting/baseline stage" in w for w in s["warnings"])
    assert any("'filter'" in d for d in s["differences"])
    assert any("normalize = 'subject'" in d for d in s["differences"])
    out = capsys.readouterr().out
    assert "stream vs predict (same bundle): 100.0 %" in out
    # the report gets the section
    assert main(["report", str(run), "--formats", "md"]) == 0
    md = (run / "report.md").read_text()
    assert "## Pseudo-online evaluation" in md and "Enrolment budget" in md
    # the model card quotes the measured agreement and says the paths differ
    facts = {"protocol": "subject", "n_folds": 2, "chance": 0.25, "majority": 0.25,
             "metrics": {"accuracy": (0.3, 0.2, 0.4)}}
    manifest = train_final(load_config(exp), data_path=deap_root, subjects=["s01", "s02"])\
        .manifest
    facts["feature_path"] = feature_path_facts(run, manifest)
    card = model_card(manifest, facts)
    assert "different feature path than this bundle's graph" in card
    assert f"{100 * s['agreement_cv']:.1f} %" in card


def test_bundle_computes_the_features_it_was_trained_on(cv_run, deap_root):
    """With [features] log = true (the default) the training features are logged; the graph
    and `predict` must log them too (they once computed linear band power and variance)."""
    exp, _ = cv_run
    cfg = load_config(exp)
    assert cfg.features.log
    bundle = train_final(cfg, data_path=deap_root)
    trained = prepare_data(deploy_config(cfg), data_path=deap_root, progress=False)
    X_train = trained.featureset.select_columns(bundle.feature_names).X
    X_deployed = bundle_featureset(bundle, open_dataset(deap_root)).X
    np.testing.assert_allclose(X_deployed, X_train, rtol=1e-5, atol=1e-5)
    # and the graph's own features of the first window equal the extracted ones
    trial = open_dataset(deap_root).load("s01").trials[0]
    first = int(round(trial.onset * bundle.spec.sfreq))
    x = np.stack([trial.channel(c)[0][first:first + bundle.spec.n_samples]
                  for c in bundle.spec.channels])[None]
    np.testing.assert_allclose(bundle.features(x)[0], X_train[0], rtol=1e-5, atol=1e-5)
    assert bundle.manifest["recipe"]["log_variance"] is True


def test_feature_path_differences_name_each_difference():
    manifest = {"recipe": {"method": "periodogram", "log": True},
                "windowing": {"window_s": 4.0, "step_s": 2.0, "baseline": "drop"},
                "channels": [{"features": "band_power"}, {"features": "mean_var"}]}
    same = {"features": {"method": "periodogram", "normalize": "global", "window": 4.0,
                         "step": 2.0, "baseline": "drop", "log": True}}
    assert feature_path_differences(same, manifest) == []
    other = {"features": {**same["features"], "method": "filter", "normalize": "subject",
                          "step": 1.0}}
    diffs = feature_path_differences(other, manifest)
    assert len(diffs) == 3
    assert "'filter'" in diffs[0] and "normalize = 'subject'" in diffs[1] and "step" in diffs[2]
    # a bundle without EEG has no band power to differ in
    no_eeg = {**manifest, "channels": [{"features": "mean_var"}]}
    assert feature_path_differences({"features": {**same["features"], "method": "filter"}},
                                    no_eeg) == []


def test_card_says_when_cv_and_graph_compute_the_same(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps(
        {"features": {"method": "periodogram", "normalize": "global", "window": 4.0,
                      "step": 2.0, "baseline": "drop", "log": True}}))
    manifest = {"recipe": {"method": "periodogram", "log": True}, "stage": "m/s/t",
                "windowing": {"window_s": 4.0, "step_s": 2.0, "baseline": "drop"},
                "channels": [{"features": "band_power"}], "training_data": {"dataset": "deap"},
                "model": {"name": "ann", "n_params": 10}, "input_kind": "samples",
                "feature_names": ["a"], "classes": {"names": ["low", "high"]}}
    facts = {"protocol": "subject", "n_folds": 2, "chance": 0.5, "majority": 0.5,
             "metrics": {"accuracy": (0.6, 0.5, 0.7)},
             "feature_path": feature_path_facts(run, manifest)}
    card = model_card(manifest, facts)
    assert "The CV computed the same features as this bundle's graph" in card
    assert f"not measured (run `fearkd online {run}`)" in card
    # a demo's folder holds one config per dataset: the card reads the bundle's and names it
    (run / "config.json").write_text(json.dumps(
        {"deap": {"features": {"method": "filter", "normalize": "global", "log": True}},
         "ascertain": {"features": {"method": "periodogram"}}}))
    path = feature_path_facts(run, manifest)
    assert len(path["differences"]) == 1 and "'filter'" in path["differences"][0]
    assert path["command"] == f"fearkd online {run} --dataset deap"


def _one_line_error(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def test_online_bad_input_is_one_line(cv_run, tmp_path, capsys):
    _, run = cv_run
    line = _one_line_error(capsys, ["online", str(tmp_path)])
    assert "not a run directory" in line and "fearkd cv" in line
    line = _one_line_error(capsys, ["online", str(run), "--rest", "60s"])
    assert "--rest '60s'" in line and "--rest baseline" in line
    line = _one_line_error(capsys, ["online", str(run), "--student", "method9/student/x"])
    assert "--student 'method9/student/x'" in line and "method1/student/soft" in line
    # a demo's folder (one config per dataset) needs --dataset
    demo = tmp_path / "demo"
    (demo / "units").mkdir(parents=True)
    (demo / "config.json").write_text(json.dumps({"deap": {}, "ascertain": {}}))
    line = _one_line_error(capsys, ["online", str(demo)])
    assert "--dataset NAME" in line and "ascertain" in line
    # units of a protocol that mixes subjects cannot be replayed as unseen subjects
    mixed = tmp_path / "mixed"
    (mixed / "units").mkdir(parents=True)
    (mixed / "config.json").write_text((run / "config.json").read_text())
    unit = json.loads(next((run / "units").glob("*.json")).read_text())
    unit["unit"]["protocol"] = "trial"
    (mixed / "units" / "u.json").write_text(json.dumps(unit))
    line = _one_line_error(capsys, ["online", str(mixed), "--quiet"])
    assert "mix subjects" in line and "protocol = \"subject\"" in line


def test_online_refuses_a_features_bundle_and_an_unmatched_replay(cv_run, deap_root,
                                                                  monkeypatch, capsys):
    import fearkd.deploy.online as online
    import fearkd.deploy.train as train

    _, run = cv_run
    real = train.train_final

    def features_only(*args, **kwargs):
        b = real(*args, **kwargs)
        b.spec = None
        b.manifest["features_input_reason"] = "its physiological descriptors cannot be graph nodes"
        return b

    monkeypatch.setattr(train, "train_final", features_only)
    line = _one_line_error(capsys, ["online", str(run), "--data", str(deap_root), "--quiet"])
    assert "takes features, not samples" in line and "physiological descriptors" in line
    monkeypatch.setattr(train, "train_final", real)
    # a replay whose windows start elsewhere than predict's: nothing to compare, one line
    monkeypatch.setattr(online, "replay_windows", lambda bundle, rec: pd.DataFrame(
        {"subject": ["s01"], "trial": [1], "t_start": [0.123], "status": ["ok"],
         "level": ["none"], "latency_ms": [0.1]}))
    line = _one_line_error(capsys, ["online", str(run), "--data", str(deap_root), "--quiet"])
    assert "no streamed window of fold" in line and "windowing disagree" in line
