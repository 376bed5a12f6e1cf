"""The multi-input model: branches from feature names, modality dropout, bad input."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from scipy import stats

from fearkd.models import make_model
from fearkd.models.multi_input import modality_branches
from fearkd.stages import Stage, _build
from fearkd.training import trainer
from fearkd.training.settings import FitSettings

CHANNELS = ("Fp1", "AF3", "F3", "Fp2")
BANDS = ("theta", "alpha", "beta")
NAMES = [f"eeg:{c}:{b}" for c in CHANNELS for b in BANDS] + ["gsr:GSR:mean", "gsr:GSR:var"]


def _planted(seed: int, n: int = 600):
    """Both modalities carry the class (EEG alpha of every channel, GSR mean)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    X = rng.normal(size=(n, len(NAMES))).astype(np.float32)
    signal = (y - 1).astype(np.float32) * 1.5
    X[:, [NAMES.index(f"eeg:{c}:alpha") for c in CHANNELS]] += signal[:, None] * 0.7
    X[:, NAMES.index("gsr:GSR:mean")] += signal
    return X, y


def test_branches_follow_the_feature_names():
    branches = modality_branches(NAMES)
    assert [(m, grid) for m, _, grid in branches] == [("eeg", (4, 3)), ("gsr", None)]
    model = make_model("multi-input", len(NAMES), 4, feature_names=NAMES)
    assert model.branch_columns() == {"eeg": list(range(12)), "gsr": [12, 13]}
    flat = make_model("multi-input", 14, 4)  # no names: one flat branch
    assert flat.modalities == ("all",)
    assert flat(torch.zeros(2, 14)).shape == (2, 4)


def test_eeg_columns_are_reordered_channel_major():
    shuffled = [f"eeg:{c}:{b}" for b in BANDS for c in CHANNELS] + NAMES[12:]  # band-major
    (_, cols, grid), _ = modality_branches(shuffled)
    assert [shuffled[j] for j in cols] == NAMES[:12] and grid == (4, 3)


@pytest.mark.parametrize(("names", "match"), [
    (NAMES[:-1], r"expected 14 names \(one per input column\), got 13"),
    (NAMES[1:] + ["gsr:GSR:min"],
     r"must fill a channels x bands grid .* missing \[.eeg:Fp1:theta."),
    (NAMES[:-1] + ["GSRmean"], r"expected '<modality>:<channel>:<feature>' names, got 'GSRmean'"),
])
def test_bad_feature_names_are_one_line_errors(names, match):
    with pytest.raises(ValueError, match=match):
        make_model("multi-input", 14, 4, feature_names=names)


def test_bad_modality_dropout():
    with pytest.raises(ValueError, match=r"'modality_dropout': expected a number in \[0, 1\)"):
        make_model("multi-input", 14, 4, modality_dropout=1.0)


def _zeroed_accuracy(seed: int, dropout: float, zero: str) -> tuple[float, float]:
    X, y = _planted(seed)
    tr, te = np.arange(400), np.arange(400, 600)
    model = make_model("multi-input", len(NAMES), 3, feature_names=NAMES,
                       modality_dropout=dropout, random_state=seed)
    res = trainer.fit(model, X[tr], y[tr], FitSettings(epochs=25, batch_size=32,
                                                       val_fraction=0.0, patience=None,
                                                       num_threads=1), random_state=seed)
    Xs = res.scaler.transform(X[te]).astype(np.float32)
    Xs[:, model.branch_columns()[zero]] = 0.0  # the sensor fell off: the training mean
    pred = trainer.predict_logits(model, Xs).argmax(1)
    majority = np.bincount(y[tr]).argmax()
    return float((pred == y[te]).mean()), float((y[te] == majority).mean())


@pytest.mark.parametrize("zero", ["eeg", "gsr"])
def test_one_modality_zeroed_stays_above_the_majority_baseline(zero):
    # Shown to fail: with every feature zeroed (zero both branches' columns) the margin's
    # interval straddles 0 and the assertion fails.
    margins = []
    for seed in range(3):
        acc, majority = _zeroed_accuracy(seed, 0.3, zero)
        margins.append(acc - majority)
    margins = np.asarray(margins)
    half = stats.t.ppf(0.975, 2) * margins.std(ddof=1) / np.sqrt(3)
    assert margins.mean() - half > 0, margins


def test_the_runner_passes_the_stage_columns_names():
    student = NAMES[:3] + NAMES[12:]
    fold = SimpleNamespace(names={"teacher": tuple(NAMES), "student": tuple(student)},
                           X={"teacher": np.zeros((2, 14)), "student": np.zeros((2, 5))})
    ctx = SimpleNamespace(fold=fold, n_classes={"fear": 4}, seed=0,
                          settings=SimpleNamespace(model_params={}),
                          model_name=lambda stage: "multi-input")
    model = _build(Stage("m", "s", inputs="student"), ctx)
    assert model.spec.params["feature_names"] == student
    assert model.modalities == ("eeg", "gsr")


def test_declared_branches_must_cover_the_modalities():
    from fearkd.errors import ConfigError
    from fearkd.models.multi_input import check_branches

    check_branches(["eeg", "gsr"], NAMES)
    check_branches(["eeg", "gsr", "ppg"], NAMES)  # a sensor the student lacks is allowed
    check_branches(None, NAMES)
    with pytest.raises(ConfigError, match=r"\[models.params.multi-input\] branches = \['eeg'\] "
                                          r"does not cover modality \['gsr'\] of the model's "
                                          r"input columns .* add \['gsr'\] to branches"):
        make_model("multi-input", len(NAMES), 4, feature_names=NAMES, branches=["eeg"])
    with pytest.raises(ConfigError, match=r"branches: expected a non-empty list of modality "
                                          r"names, e\.g\. \[\"eeg\", \"gsr\"\], got 'eeg'"):
        make_model("multi-input", len(NAMES), 4, branches="eeg")


def test_branches_not_covering_the_preset_are_refused_before_training(tmp_path, deap_root,
                                                                      write_experiment,
                                                                      capsys):
    from fearkd.cli import main
    from fearkd.config import load_config
    from fearkd.errors import ConfigError
    from fearkd.experiment import run_experiment

    path = write_experiment(tmp_path, backbones=("multi-input",), methods=("method1",),
                            kd_targets=("hard",))
    path.write_text(path.read_text() + '[models.params.multi-input]\nbranches = ["eeg"]\n')
    with pytest.raises(ConfigError, match=r"experiment.toml: \[models.params.multi-input\] "
                                          r"branches = \['eeg'\] does not cover modality "
                                          r"\[.*'gsr'.*\] of the teacher preset 'deap-teacher'"):
        run_experiment(load_config(path), tmp_path / "run", data_path=deap_root, progress=False)
    assert not list((tmp_path / "run").glob("units/*.json"))
    assert main(["run", str(path), "--data", str(deap_root), "--out", str(tmp_path / "run2"),
                 "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "add [" in err[0] and "to branches" in err[0]


def test_exported_graph_takes_any_batch_size():
    """Traced at batch 2 (as :func:`fearkd.deploy.graph.export_onnx` does), the ONNX graph runs
    one window at a time, as the streaming path feeds it, and agrees with torch. Failed with
    the EEG branch reshaping to ``len(x)``, which the trace froze at 2."""
    import io
    import warnings

    import onnxruntime as ort

    model = make_model("multi-input", len(NAMES), 4, feature_names=NAMES).eval()
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.zeros(2, len(NAMES)),), buf, input_names=["x"],
                          output_names=["y"], dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}},
                          dynamo=False)
    session = ort.InferenceSession(buf.getvalue())
    X, _ = _planted(0, n=3)
    for rows in (X[:1], X):
        with torch.no_grad():
            expected = model(torch.as_tensor(rows)).numpy()
        got = session.run(None, {"x": rows})[0]
        np.testing.assert_allclose(got, expected, atol=1e-5)


def test_eeg_columns_that_are_not_band_powers_get_a_dense_branch():
    """ASCERTAIN's presets take NeuroSky rows 2-8 as held values (``mean``, ``logmean``) next
    to band power of the raw row: the band powers form the conv grid, the held values a dense
    ``eeg-levels`` branch (the build failed with "must fill a channels x bands grid")."""
    from fearkd.features.presets import get_preset
    from fearkd.models.multi_input import EEG_LEVELS, modality_branches

    names = ["eeg:EEG1:theta", "eeg:EEG1:alpha", "eeg:EEG2:mean", "eeg:EEG2:logmean",
             "eeg:EEG3:mean", "eeg:EEG3:logmean", "eeg:Fp1-Fp2:riemann-alpha", "gsr:GSR:mean"]
    got = {m: (cols, grid) for m, cols, grid in modality_branches(names)}
    assert got["eeg"] == ([0, 1], (1, 2))
    assert got[EEG_LEVELS] == ([2, 3, 4, 5, 6], None)
    assert got["gsr"] == ([7], None)
    assert get_preset("ascertain-teacher").levels  # the shipped preset has held-value rows
    X, _ = _planted(0, n=4)
    model = make_model("multi-input", 4, 3, feature_names=["eeg:EEG1:alpha", "eeg:EEG2:mean",
                                                           "eeg:EEG2:logmean", "gsr:GSR:var"])
    assert model.modalities == ("eeg", EEG_LEVELS, "gsr")
    with torch.no_grad():
        assert model(torch.as_tensor(X[:, :4])).shape == (4, 3)
