"""Per-user calibration: a shifted held-out subject, thresholds in both paths, bad input."""

import shutil

import numpy as np
import pytest

from fearkd.cli import main
from fearkd.config import load_config
from fearkd.datasets.loaders import open_dataset
from fearkd.datasets.synthetic import write_deap
from fearkd.deploy.bundle import load_bundle
from fearkd.deploy.calibrate import budget_curve, calibrate_bundle, label_shift_warning
from fearkd.deploy.predict import predict_recordings, score
from fearkd.deploy.train import train_final

HELD = ("s06", "s07")


@pytest.fixture(scope="module")
def setup(tmp_path_factory, write_experiment):
    """A bundle trained on 5 shifted subjects; s06 and s07 held out in their own folder."""
    root = tmp_path_factory.mktemp("calib")
    write_deap(root / "all", n_subjects=7, n_trials=12, seconds=13.0, seed=0,
               subject_shift=3.0, fear_share=1.0)
    held = root / "held" / "data_preprocessed_python"
    held.mkdir(parents=True)
    for s in HELD:
        shutil.move(str(root / "all" / "data_preprocessed_python" / f"{s}.dat"), held)
    exp = write_experiment(root, name="calibrate-test", backbones=("ann",),
                           methods=("method1",), kd_targets=("soft",), epochs=5, patience=2,
                           filename="exp.toml")
    bundle = train_final(load_config(exp), data_path=root / "all")
    path = bundle.save(root / "model.fkd")
    return root, path


def _acc(bundle, rec, subject):
    from fearkd.recordings import Recordings

    one = Recordings(rec.dataset, [subject], lambda s, r: rec.load(s), rec.description)
    return score(predict_recordings(bundle, one), bundle.class_names)["accuracy"]


def test_calibrated_model_beats_uncalibrated_on_held_out_subjects(setup):
    root, path = setup
    bundle = load_bundle(path)
    rec = open_dataset(root / "held")
    gains, noop = [], []
    for subject in HELD:
        before = _acc(bundle, rec, subject)
        cal = calibrate_bundle(bundle, rec, subject=subject, rest=30.0)
        gains.append(_acc(cal, rec, subject) - before)
        # negative control: "calibration" that keeps the training normaliser changes nothing
        same = calibrate_bundle(bundle, rec, subject=subject, rest=30.0)
        same.manifest["normaliser"] = bundle.manifest["normaliser"]
        same.mean, same.scale = bundle.mean, bundle.scale
        noop.append(_acc(same, rec, subject) - before)
    assert np.mean(gains) > 0.05, gains
    assert np.allclose(noop, 0.0), noop


def test_calibrated_bundle_saves_loads_and_onnx_matches_with_thresholds(setup, tmp_path):
    root, path = setup
    bundle = load_bundle(path)
    rec = open_dataset(root / "held")
    cal = calibrate_bundle(bundle, rec, subject="s06", rest=30.0, labelled=True, epochs=10,
                           thresholds=True)
    out = cal.save(tmp_path / "user.fkd")
    loaded = load_bundle(out)  # the content hash was recomputed
    assert loaded.manifest["calibration"]["subject"] == "s06"
    assert loaded.manifest["content_hash"] != bundle.manifest["content_hash"]
    assert not np.allclose(loaded.mean, bundle.mean)
    loaded.logit_offsets = np.array([2.0, -1.0, 0.5, 0.0])  # make offsets matter for parity
    from fearkd.deploy.calibrate import set_logit_offsets

    loaded.onnx_bytes = set_logit_offsets(loaded.onnx_bytes, loaded.logit_offsets)
    trial = rec.load("s06").trials[0]
    x = np.stack([trial.channel(c)[0] for c in loaded.spec.channels])
    n = loaded.spec.n_samples
    w = np.stack([x[:, s:s + n] for s in range(0, x.shape[1] - n + 1, 32)])
    assert np.abs(loaded.predict_proba(w) - loaded.predict_proba_onnx(w)).max() < 1e-4
    plain = load_bundle(out)
    assert np.abs(plain.predict_proba(w) - loaded.predict_proba(w)).max() > 1e-3


def test_budget_curve_rows_and_label_shift_warning(setup, caplog):
    root, path = setup
    curve = budget_curve(load_bundle(path), open_dataset(root / "held"), minutes=[0, 0.5, 1])
    assert set(curve["subject"]) == set(HELD)
    assert sorted(curve["minutes"].unique()) == [0.0, 0.5, 1.0]
    assert (curve.loc[curve["minutes"] == 0, "n_calibration"] == 0).all()
    assert curve["n_test"].nunique() <= len(HELD)
    assert "not a resting/baseline part" in label_shift_warning(np.array([0, 2]), "nlmh")
    assert label_shift_warning(np.array([0, 0]), "nlmh") is None


def test_budget_curve_refuses_training_subjects(setup):
    root, path = setup
    with pytest.raises(ValueError, match=r"were in the bundle's training data"):
        budget_curve(load_bundle(path), open_dataset(root / "all"))


@pytest.mark.parametrize("extra, match", [
    (["--thresholds"], "--thresholds needs labelled windows.*add --labelled"),
    (["--labelled", "--epochs", "0"], "--epochs: expected 1 to 200, got 0"),
    (["--epochs", "5"], "--epochs sets head fine-tuning: add --labelled"),
    (["--subject", "s99"], "--subject 's99': not in the recording; expected one of"),
    ([], "holds 2 subjects.*pick one with --subject ID"),
    (["--subject", "s06", "--trials", "99"], "--trials \\['99'\\]: no window of subject"),
    (["--subject", "s06", "--rest", "baseline"], "carry no stage names"),
])
def test_cli_bad_input_is_one_line_exit_2(setup, tmp_path, capsys, extra, match):
    import re

    root, path = setup
    rc = main(["calibrate", str(path), str(root / "held"), "--out", str(tmp_path / "u.fkd"),
               *extra])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and re.search(match, err), err


def test_cli_writes_a_calibrated_bundle_and_a_budget_curve(setup, tmp_path, capsys):
    root, path = setup
    rc = main(["calibrate", str(path), str(root / "held"), "--subject", "s07", "--rest", "30s",
               "--out", str(tmp_path / "u.fkd")])
    assert rc == 0 and load_bundle(tmp_path / "u.fkd").manifest["calibration"]["subject"] == "s07"
    rc = main(["calibrate", str(path), str(root / "held"), "--budget-curve", "--minutes",
               "0,1", "--out", str(tmp_path / "b.csv")])
    assert rc == 0 and "mean accuracy by minutes" in capsys.readouterr().out
