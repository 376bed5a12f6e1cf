"""Temperature scaling (``[training] calibrate = "temperature"``): the fit, the stages, the report
and the bundle (``predict``, ``stream`` and the ONNX graph apply ``T``)."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import onnx
import pandas as pd
import pytest
import torch
from onnx import numpy_helper
from scipy.special import softmax

import fearkd
from fearkd.cli import main
from fearkd.config import load_config
from fearkd.datasets.loaders import open_dataset
from fearkd.deploy.predict import bundle_featureset
from fearkd.deploy.stream import trial_samples
from fearkd.deploy.train import train_final
from fearkd.errors import ConfigError
from fearkd.evaluation.metrics import expected_calibration_error
from fearkd.features.featureset import FeatureSet
from fearkd.methods import PipelineSettings
from fearkd.models import make_model
from fearkd.reporting.quality import quality_table
from fearkd.stages import Fold, Stage, StageContext, run_stage
from fearkd.training import FitSettings, fit, predict_logits
from fearkd.training.temperature import fit_temperature, scaled_nll


@pytest.fixture(autouse=True)
def _one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def _noisy_gaussians(n=1000, d=20, k=4, noise=0.3, seed=0):
    """Class means in ``d`` dimensions plus unit noise; a share ``noise`` of labels redrawn."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    X = (rng.standard_normal((k, d))[y] * 0.7 + rng.standard_normal((n, d))).astype(np.float32)
    return X, np.where(rng.random(n) < noise, rng.integers(0, k, n), y)


# ------------------------------------------------------------------------------ the fit
def test_fit_temperature_recovers_the_temperature_that_sharpened_the_logits():
    """Labels drawn from softmax(z); the model reports 3 z: the fitted T is 3 (oracle)."""
    rng = np.random.default_rng(0)
    z = rng.standard_normal((20000, 4)) * 1.5
    p = softmax(z, axis=1)
    y = (p.cumsum(1) > rng.random((len(z), 1))).argmax(1)
    assert fit_temperature(3.0 * z, y) == pytest.approx(3.0, rel=0.05)
    assert fit_temperature(z, y) == pytest.approx(1.0, rel=0.05)
    # the fitted T minimises the NLL: both neighbours are worse
    t = fit_temperature(3.0 * z, y)
    assert scaled_nll(3.0 * z, y, t) < min(scaled_nll(3.0 * z, y, 0.9 * t),
                                           scaled_nll(3.0 * z, y, 1.1 * t))


def test_fit_temperature_bad_input_is_one_clear_line():
    with pytest.raises(ValueError, match=r"needs at least one validation window, got 0; raise "
                                         r"\[training\] val_fraction"):
        fit_temperature(np.zeros((0, 3)), np.zeros(0, int))
    with pytest.raises(ValueError, match=r"'y' holds classes outside 0\.\.2: \[5\]"):
        fit_temperature(np.zeros((2, 3)), np.array([0, 5]))
    with pytest.raises(ValueError, match=r"'logits' must have shape \(n_windows, n_classes >= 2"):
        fit_temperature(np.zeros(3), np.zeros(3, int))
    with pytest.raises(ValueError, match=r"'temperature' must be a positive number, got 0"):
        scaled_nll(np.zeros((2, 3)), np.array([0, 1]), 0)


def test_temperature_scaling_repairs_an_over_confident_model():
    """Known answer: a network trained 60 epochs on 30 % noisy labels, keeping the last weights,
    is over-confident; T fitted on validation windows lowers the test NLL and ECE."""
    X, y = _noisy_gaussians()
    tr, va, te = np.arange(400), np.arange(400, 700), np.arange(700, 1000)
    model = make_model("ann", X.shape[1], 4, random_state=0)
    res = fit(model, X[tr], y[tr], FitSettings(epochs=60, batch_size=32, lr=3e-3,
                                               val_fraction=0.0, patience=None,
                                               class_weight="none"), random_state=0)
    z_va = predict_logits(model, X[va], scaler=res.scaler)
    z_te = predict_logits(model, X[te], scaler=res.scaler)
    t = fit_temperature(z_va, y[va])
    assert t > 1.5  # over-confident: the probabilities must be softened
    assert scaled_nll(z_va, y[va], t) < scaled_nll(z_va, y[va], 1.0) - 0.2
    assert scaled_nll(z_te, y[te], t) < scaled_nll(z_te, y[te], 1.0) - 0.2
    ece_before = expected_calibration_error(y[te], softmax(z_te, axis=1))
    ece_after = expected_calibration_error(y[te], softmax(z_te / t, axis=1))
    assert ece_after < ece_before - 0.05


# ------------------------------------------------------------------------------ the stages
def _toy_fold():
    X, y = _noisy_gaussians(n=600, d=12)
    meta = pd.DataFrame({"dataset": "toy", "subject": [f"s{i % 6}" for i in range(len(y))],
                         "trial": np.arange(len(y)) // 4, "window": 0, "t_start": 0.0,
                         "t_stop": 1.0, "y_fear": y, "y_source": y})
    fs = FeatureSet(X, [f"f{i}" for i in range(X.shape[1])], meta)
    return fs, np.arange(300), np.arange(450, 600), np.arange(300, 450)


def _run_scratch(calibrate: str):
    fs, tr, te, va = _toy_fold()
    fold = Fold(fs, fs.feature_names, tr, te, va, normalize="none")
    settings = PipelineSettings(fit=FitSettings(epochs=5, batch_size=32, patience=None,
                                                calibrate=calibrate))
    ctx = StageContext(fold=fold, settings=settings, backbone="ann",
                       n_classes={"fear": 4, "source": 4}, class_names=tuple("abcd"),
                       out={"rows": [], "histories": {}, "confusion": {}, "fit_seconds": 0.0})
    run_stage(Stage("scratch", "student", model="ann"), ctx)
    rows = pd.DataFrame(ctx.out["rows"])
    return ctx, fold, va, te, rows[rows["split"] == "test"].set_index("metric")["value"]


def test_stage_fits_t_on_its_validation_rows_and_records_before_and_after():
    ctx_none, *_, plain = _run_scratch("none")
    ctx, fold, va, te, scaled = _run_scratch("temperature")
    assert "temperature" not in plain.index
    model, scaler, _ = ctx.models["scratch/student/-"]
    y = fold.y["fear"]
    # T is the one fitted on the validation rows, never the test rows
    t = fit_temperature(predict_logits(model, fold.X["student"][va], scaler=scaler), y[va])
    assert scaled["temperature"] == pytest.approx(t)
    assert ctx.temperatures["scratch/student/-"] == pytest.approx(t)
    # the same network (the seed depends on the stage alone): unscaled figures equal the
    # uncalibrated run's, the scaled ones are those of softmax(logits / T)
    z_te = predict_logits(model, fold.X["student"][te], scaler=scaler)
    for metric in ("log_loss", "ece", "brier"):
        assert scaled[f"{metric}_uncalibrated"] == pytest.approx(plain[metric])
    assert scaled["log_loss"] == pytest.approx(scaled_nll(z_te, y[te], t), rel=1e-6)
    assert scaled["ece"] == pytest.approx(
        expected_calibration_error(y[te], softmax(z_te / t, axis=1)))
    assert scaled["accuracy"] == plain["accuracy"]  # T keeps the order of the logits

    results = pd.DataFrame(ctx.out["rows"]).assign(dataset="toy", protocol="subject", fold=0,
                                                   seed=0)
    table = quality_table(results, dataset="toy", protocol="subject")
    assert len(table) == 1 and table.index[0].endswith("Scratch student")
    row = table.iloc[0]
    assert row["T"] == pytest.approx(t)
    assert row["Test Loss before T"] == pytest.approx(plain["log_loss"])
    assert row["Test Loss"] == pytest.approx(scaled["log_loss"])
    assert row["ECE before T (%)"] == pytest.approx(100 * plain["ece"])
    assert "before T" in table.attrs["note"]
    plain_results = pd.DataFrame(ctx_none.out["rows"]).assign(
        dataset="toy", protocol="subject", fold=0, seed=0)
    assert "T" not in quality_table(plain_results, dataset="toy", protocol="subject").columns


def test_stage_without_validation_windows_names_the_keys():
    fs, tr, te, _ = _toy_fold()
    fold = Fold(fs, fs.feature_names, tr, te, None, normalize="none")
    settings = PipelineSettings(fit=FitSettings(epochs=1, batch_size=32, val_fraction=0.0,
                                                calibrate="temperature"))
    ctx = StageContext(fold=fold, settings=settings, backbone="ann",
                       n_classes={"fear": 4, "source": 4}, class_names=tuple("abcd"),
                       out={"rows": [], "histories": {}, "confusion": {}, "fit_seconds": 0.0})
    with pytest.raises(ValueError, match=r"Stage 'scratch/student/-': \[training\] calibrate = "
                                         r"\"temperature\" needs inner validation windows and "
                                         r"this stage has none \(300 training windows\); raise "
                                         r"\[training\] val_fraction"):
        run_stage(Stage("scratch", "student", model="ann"), ctx)


def test_bad_calibrate_value_is_one_line_exit_2(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text('[training]\ncalibrate = "platt"\n')
    with pytest.raises(ConfigError, match=r"bad\.toml: Invalid value for '\[training\] "
                                          r"calibrate': expected one of 'none', 'temperature', "
                                          r"got 'platt'; set calibrate = \"temperature\""):
        load_config(bad)
    assert main(["run", str(bad), "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "[training] calibrate" in err


# ------------------------------------------------------------------------------ the bundle
@pytest.fixture(scope="module")
def calibrated(deap_root, tmp_path_factory, write_experiment):
    folder = tmp_path_factory.mktemp("tbundle")
    exp = write_experiment(folder, name="t-test", backbones=("ann",), methods=("method1",),
                           kd_targets=("soft",), epochs=3, filename="exp.toml")
    text = exp.read_text()
    assert "[training]\n" in text
    exp.write_text(text.replace("[training]\n", '[training]\ncalibrate = "temperature"\n', 1))
    bundle = train_final(load_config(exp), data_path=deap_root)
    return bundle.save(folder / "model.fkd")


def test_bundle_carries_t_into_python_and_onnx(calibrated, deap_root):
    with zipfile.ZipFile(calibrated) as zf:
        manifest = json.loads(zf.read("manifest.json"))
        proto = onnx.load_from_string(zf.read("model.onnx"))
    t = manifest["temperature_scaling"]["temperature"]
    assert t > 0 and t != 1.0
    assert manifest["temperature_scaling"]["onnx_initialiser"] == "temperature"
    inits = {i.name: numpy_helper.to_array(i) for i in proto.graph.initializer}
    assert float(inits["temperature"]) == pytest.approx(t, rel=1e-6)
    div = [n for n in proto.graph.node if n.op_type == "Div" and "temperature" in n.input]
    soft = [n for n in proto.graph.node if n.op_type == "Softmax"]
    assert len(div) == 1 and soft[-1].input[0] == div[0].output[0]

    b = fearkd.load_bundle(calibrated)
    assert b.temperature == pytest.approx(t)
    rec = open_dataset(deap_root)
    x = trial_samples(rec.load(rec.subjects[0]).trials[0], b.spec.channels)
    n = b.spec.n_samples
    x = np.stack([x[s:s + n].T for s in range(0, len(x) - n + 1, 64)])
    with torch.no_grad():
        z = ((b.features(x) - b.mean) / b.scale).astype(np.float32)
        logits = b.model(torch.as_tensor(z)).double().numpy()
    p_py, p_onnx = b.predict_proba(x), b.predict_proba_onnx(x)
    assert np.allclose(p_py, softmax(logits / t, axis=1), atol=1e-9)
    assert np.abs(p_py - p_onnx).max() <= 1e-4


def _hand_proba(b, X_features, temperature=None):
    """softmax(network(normalised features) / T), computed here from the bundle's parts."""
    if temperature is None:
        temperature = b.manifest["temperature_scaling"]["temperature"]
    z = ((np.asarray(X_features, np.float32) - b.mean) / b.scale).astype(np.float32)
    with torch.no_grad():
        logits = b.model(torch.as_tensor(z)).double().numpy()
    return softmax(logits / temperature, axis=1)


def test_onnx_graph_divides_by_t_like_the_python_path():
    """A features bundle with T = 2.5: ONNX and Python agree (<= 1e-4) and both differ from
    the same network without T."""
    from fearkd.deploy.bundle import build_bundle

    model = make_model("ann", 6, 3, random_state=0)
    rng = np.random.default_rng(1)
    X = (3.0 * rng.standard_normal((500, 6))).astype(np.float32)
    names = [f"f{i}" for i in range(6)]
    b = build_bundle(model, feature_names=names, class_names=["a", "b", "c"],
                     temperature={"temperature": 2.5})
    plain = build_bundle(model, feature_names=names, class_names=["a", "b", "c"])
    assert b.manifest["temperature_scaling"]["temperature"] == 2.5
    assert "temperature_scaling" not in plain.manifest and plain.temperature == 1.0
    p_py, p_onnx = b.predict_proba(X), b.predict_proba_onnx(X)
    assert np.abs(p_py - p_onnx).max() <= 1e-4
    with torch.no_grad():
        logits = model(torch.as_tensor(X)).double().numpy()
    assert np.allclose(p_py, softmax(logits / 2.5, axis=1), atol=1e-9)
    assert np.abs(plain.predict_proba_onnx(X) - p_onnx).max() > 0.05


def test_predict_and_stream_cli_apply_t(calibrated, deap_root, tmp_path, capsys):
    b = fearkd.load_bundle(calibrated)
    cols = [f"p_{c}" for c in b.class_names]
    out = tmp_path / "pred.csv"
    assert main(["predict", str(calibrated), str(deap_root), "--out", str(out)]) == 0
    pred = pd.read_csv(out)
    fs = bundle_featureset(b, open_dataset(deap_root))
    hand = _hand_proba(b, fs.X)
    assert np.abs(pred[cols].to_numpy() - hand).max() <= 1e-6
    # and on windows where T matters (features near the training mean) predict's path,
    # predict_proba_features, divides by it
    rng = np.random.default_rng(0)
    near = b.mean + b.scale * rng.standard_normal((200, len(b.mean)))
    assert np.abs(b.predict_proba_features(near) - _hand_proba(b, near)).max() <= 1e-6
    assert np.abs(_hand_proba(b, near, temperature=1.0) - _hand_proba(b, near)).max() > 0.05

    capsys.readouterr()
    assert main(["stream", str(calibrated), "--replay", str(deap_root), "--subject", "s02",
                 "--trial", "3", "--speed", "max"]) == 0
    recs = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    trial = next(t for t in open_dataset(deap_root).load("s02").trials if t.trial == 3)
    x = trial_samples(trial, b.spec.channels)
    windows = np.stack([x[r["start"]:r["stop"]].T for r in recs])
    got = np.array([[r[c] for c in cols] for r in recs])
    assert np.abs(got - _hand_proba(b, b.features(windows))).max() <= 1e-4
