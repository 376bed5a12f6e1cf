"""Bundles: train on all subjects, ONNX parity with the Python path, bad bundles and inputs."""

import json
import os
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

import fearkd
from fearkd.cli import main
from fearkd.config import load_config
from fearkd.datasets.loaders import open_dataset
from fearkd.deploy.bundle import BundleError, _content_hash
from fearkd.deploy.train import train_final

PHYSIONET = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "physionet-noneeg"


@pytest.fixture(scope="module")
def trained(deap_root, tmp_path_factory, write_experiment):
    folder = tmp_path_factory.mktemp("bundle")
    exp = write_experiment(folder, name="deploy-test", backbones=("ann",), methods=("method1",),
                           kd_targets=("soft",), epochs=2, filename="exp.toml")
    bundle = train_final(load_config(exp), data_path=deap_root)
    path = bundle.save(folder / "model.fkd")
    return folder, path


def _windows(recordings, bundle, n_max=1000, step_s=0.25):
    """Windows of raw samples (every channel the bundle needs) cut every ``step_s``."""
    chans, n = bundle.spec.channels, bundle.spec.n_samples
    step = int(round(step_s * bundle.spec.sfreq))
    out = []
    for subject in recordings:
        for trial in subject:
            x = np.stack([trial.channel(c)[0] for c in chans])
            out += [x[:, s:s + n] for s in range(0, x.shape[1] - n + 1, step)]
            if len(out) >= n_max:
                return np.stack(out[:n_max])
    return np.stack(out)


def test_bundle_is_one_zip_without_pickle_and_loads(trained):
    _, path = trained
    with zipfile.ZipFile(path) as zf:
        assert set(zf.namelist()) == {"manifest.json", "model.safetensors", "model.onnx"}
        manifest = json.loads(zf.read("manifest.json"))
    assert manifest["input_kind"] == "samples"
    assert manifest["recipe"]["method"] == "periodogram"
    assert [c["name"] for c in manifest["channels"]][:2] == ["AF3", "F7"]
    assert len(manifest["normaliser"]["mean"]) == 86
    b = fearkd.load_bundle(path)
    assert b.class_names == ("none", "low", "medium", "high")


def test_onnx_matches_python_on_1000_synthetic_windows(trained, deap_root):
    b = fearkd.load_bundle(trained[1])
    x = _windows(open_dataset(deap_root), b)
    assert x.shape == (1000, 22, 512)
    p_py, p_onnx = b.predict_proba(x), b.predict_proba_onnx(x)
    assert p_py.shape == (1000, 4)
    assert np.abs(p_py - p_onnx).max() <= 1e-4


def test_python_window_features_equal_extract_features(trained, deap_root):
    """predict() (extract_features, periodogram) and predict_proba(windows) agree."""
    b = fearkd.load_bundle(trained[1])
    rec = open_dataset(deap_root)
    pred = b.predict(rec.select(["s01"]))
    trial = rec.load("s01").trials[0]
    rows = pred[pred["trial"] == trial.trial]
    n = b.spec.n_samples
    x = np.stack([np.stack([trial.channel(c)[0][int(round(t * 128)):int(round(t * 128)) + n]
                            for c in b.spec.channels]) for t in rows["t_start"]])
    proba = b.predict_proba(x)
    cols = [f"p_{c}" for c in b.class_names]
    assert np.abs(rows[cols].to_numpy() - proba).max() < 1e-6


def test_onnx_runs_with_only_onnxruntime_and_numpy(trained, deap_root, tmp_path):
    b = fearkd.load_bundle(trained[1])
    x = _windows(open_dataset(deap_root), b, n_max=20).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    assert main(["export", str(trained[1]), "--onnx", str(tmp_path / "m.onnx")]) == 0
    script = (
        "import sys, numpy as np, onnxruntime as ort\n"
        f"s = ort.InferenceSession({str(tmp_path / 'm.onnx')!r})\n"
        f"p = s.run(None, {{'samples': np.load({str(tmp_path / 'x.npy')!r})}})[0]\n"
        f"np.save({str(tmp_path / 'p.npy')!r}, p)\n"
        "assert 'torch' not in sys.modules and 'fearkd' not in sys.modules\n"
        "print('ok')\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         env=env, timeout=60)
    assert res.returncode == 0, res.stderr
    assert np.abs(np.load(tmp_path / "p.npy") - b.predict_proba(x)).max() <= 1e-4
    import onnx

    g = onnx.load(str(tmp_path / "m.onnx"))
    names = {i.name for i in g.graph.initializer}
    assert {"norm_mean", "norm_scale"} <= names
    assert {n.domain for n in g.graph.node} <= {"", "ai.onnx"}


@pytest.mark.skipif(not PHYSIONET.is_dir(), reason=f"PhysioNet data absent at {PHYSIONET}")
def test_onnx_matches_python_on_1000_physionet_windows(tmp_path):
    from fearkd.deploy.bundle import build_bundle
    from fearkd.deploy.graph import WindowSpec, window_features
    from fearkd.models.registry import make_model

    cfg = Path(__file__).resolve().parents[1] / "configs" / "physionet-noneeg.toml"
    rec = open_dataset(cfg).select(["Subject1", "Subject2"])
    chans = ("ax", "ay", "az", "temp", "EDA")
    spec = WindowSpec(chans, 0, 8.0, 80, (("x", 1.0, 2.0),))
    x = []
    for subject in rec:
        for trial in subject:
            data = np.stack([trial.channel(c)[0] for c in chans])
            x += [data[:, s:s + 80] for s in range(0, data.shape[1] - 79, 4)]
    x = np.stack(x[:1000])
    assert len(x) == 1000
    f = window_features(x, spec).astype(np.float64)
    model = make_model("ann", spec.n_features, 4, random_state=0, hidden=[16])
    b = build_bundle(model, feature_names=[f"f{i}" for i in range(spec.n_features)],
                     class_names=["a", "b", "c", "d"], mean=f.mean(0), scale=f.std(0) + 1e-9,
                     spec=spec)
    assert np.abs(b.predict_proba(x) - b.predict_proba_onnx(x)).max() <= 1e-4


def _rewrite(src, dst, change):
    with zipfile.ZipFile(src) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    change(members)
    with zipfile.ZipFile(dst, "w") as zf:
        for n, data in members.items():
            zf.writestr(n, data)
    return dst


def test_tampered_bundle_is_refused_without_unpickling(trained, tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    def swap(m):
        m["model.safetensors"] = pickle.dumps(Evil())

    bad = _rewrite(trained[1], tmp_path / "bad.fkd", swap)
    with pytest.raises(BundleError, match="does not match its content hash"):
        fearkd.load_bundle(bad)
    assert not marker.exists()
    truncated = tmp_path / "cut.fkd"
    truncated.write_bytes(trained[1].read_bytes()[:500])
    with pytest.raises(BundleError, match="not a readable fearkd bundle"):
        fearkd.load_bundle(truncated)


def test_bundle_needing_a_newer_fearkd_is_refused(trained, tmp_path):
    def newer(m):
        man = json.loads(m["manifest.json"])
        man["requires_fearkd"] = "99.0"
        man["content_hash"] = _content_hash(man, m)
        m["manifest.json"] = json.dumps(man).encode()

    path = _rewrite(trained[1], tmp_path / "new.fkd", newer)
    with pytest.raises(BundleError, match=r"needs fearkd >= 99.0 .* upgrade fearkd"):
        fearkd.load_bundle(path)


def test_predict_cli_writes_csv_and_scores(trained, deap_root, tmp_path, capsys):
    out = tmp_path / "p.csv"
    assert main(["predict", str(trained[1]), str(deap_root), "--out", str(out), "--score"]) == 0
    import pandas as pd

    df = pd.read_csv(out)
    assert list(df.columns[:5]) == ["subject", "trial", "t_start", "t_stop", "predicted"]
    assert {"p_none", "p_high"} <= set(df.columns)
    assert "balanced_accuracy" in capsys.readouterr().out


def test_missing_channel_names_needed_and_present(trained, deap_root, tmp_path, capsys):
    code = main(["predict", str(trained[1]), str(deap_root), "--out", str(tmp_path / "p.csv"),
                 "--channel-map", "AF3=XX"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "lacks channel(s) ['AF3']" in err and "it needs ['AF3'" in err and "'XX'" in err


def _rate_changed(recordings, factor):
    from fearkd.recordings import Recordings, Signal, Subject, Trial

    def load(sid, report):
        s = recordings.load(sid)
        trials = []
        for t in s.trials[:2]:
            sigs = {m: Signal(np.repeat(sig.data, factor, axis=1), sig.sfreq * factor,
                              sig.ch_names, m) for m, sig in t.signals.items()}
            trials.append(Trial(t.dataset, t.subject, t.trial, sigs, t.ratings, t.onset))
        return Subject(s.dataset, s.subject, trials)

    return Recordings(recordings.dataset, recordings.subjects[:1], load)


def test_sampling_rate_far_off_refused_near_resampled(trained, deap_root, caplog):
    b = fearkd.load_bundle(trained[1])
    rec = open_dataset(deap_root)
    with pytest.raises(BundleError, match=r"384 Hz but the bundle needs 128 Hz, more than 2x "
                                          r"off; resample the recording"):
        b.predict(_rate_changed(rec, 3))
    with pytest.raises(BundleError, match="drop --strict-rate"):
        b.predict(_rate_changed(rec, 2), strict_rate=True)
    pred = b.predict(_rate_changed(rec, 2))
    assert len(pred) > 0
    assert any("Resampling" in r.message for r in caplog.records)


def test_output_path_under_a_file_is_one_line(trained, tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    code = main(["export", str(trained[1]), "--onnx", str(tmp_path / "file" / "m.onnx")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "is a file, not a folder" in err


def test_output_in_read_only_folder_is_one_line(trained, tmp_path, obeying_modes):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    try:
        res = subprocess.run([*obeying_modes, sys.executable, "-m", "fearkd.cli", "export",
                              str(trained[1]), "--onnx", str(ro / "m.onnx")],
                             capture_output=True, text=True, env=env, timeout=120)
    finally:
        ro.chmod(0o700)
    assert res.returncode == 2, res.stderr[-2000:]
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "is not writable" in lines[0] and str(ro) in lines[0], lines
    assert not (ro / "m.onnx").exists()


def test_estimator_saves_and_loads_a_features_bundle(tmp_path):
    from fearkd.training.estimator import FearkdClassifier

    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 6)).astype(np.float32)
    y = (X[:, 0] > 0).astype(int)
    clf = FearkdClassifier("ann", epochs=3, model_params={"hidden": [8]}).fit(X, y)
    path = clf.save_bundle(tmp_path / "c.fkd", feature_names=list("abcdef"))
    back = FearkdClassifier.load_bundle(path)
    assert np.abs(back.predict_proba(X) - clf.predict_proba(X)).max() < 1e-5
    b = fearkd.load_bundle(path)
    assert b.manifest["input_kind"] == "features"
    assert np.abs(b.predict_proba_onnx(X) - clf.predict_proba(X)).max() <= 1e-4


@pytest.mark.parametrize("bands", [
    (("theta", 4.0, 8.0), ("alpha", 8.0, 13.0), ("beta", 13.0, 30.0)),
    (("low", 0.0, 4.0), ("alpha", 8.0, 13.0)),
])
def test_onnx_band_power_keeps_parity_under_a_large_offset(bands):
    """Raw EEG often sits on a large offset. Without a 0 Hz band the graph removes each
    window's mean and runs the DFT in float32 (with 0 Hz, float64): either way it agrees with
    the NumPy float64 path within 1e-4 on windows whose weak bands are 1e-5 of the offset.
    Shown to fail (8.7e-3 with the first bands) when the float32 DFT skips the mean removal."""
    from fearkd.deploy.bundle import build_bundle
    from fearkd.deploy.graph import WindowSpec, window_features
    from fearkd.models.registry import make_model

    rng = np.random.default_rng(0)
    t = np.arange(256) / 128.0
    spec = WindowSpec(("C3", "C4", "GSR"), 2, 128.0, 256, bands, log=True, log_variance=True)
    x = rng.normal(0.0, 0.05, size=(300, 3, 256))
    x[:, :2] += 5000.0 + rng.normal(0, 50, size=(300, 2, 1))  # large, varying offsets
    x[:, :2] += rng.uniform(0.2, 2.0, size=(300, 2, 1)) * np.sin(2 * np.pi * 10 * t)
    x[:, 2] += 3.0
    x = x.astype(np.float32)
    f = window_features(x, spec).astype(np.float64)
    model = make_model("ann", spec.n_features, 3, random_state=0, hidden=[16])
    b = build_bundle(model, feature_names=[f"f{i}" for i in range(spec.n_features)],
                     class_names=["a", "b", "c"], mean=f.mean(0), scale=f.std(0) + 1e-9,
                     spec=spec)
    assert np.abs(b.predict_proba(x) - b.predict_proba_onnx(x)).max() <= 1e-4
