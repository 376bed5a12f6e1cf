"""Domain adaptation (DANN, CORAL): known answers on a planted subject shift, and bad input.

The data: 5 subjects, 2 classes carried by feature 0; the last subject (the unlabelled target)
is shifted by ``shift`` on features 0-3. Unadapted, a model trained on the first 4 subjects
puts most of the target on one side; DANN and CORAL, seeing the target's features only, must
win back accuracy (paired 95 % interval over seeds above 0) and must not hurt when nothing
is shifted (interval contains 0).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats
from sklearn.preprocessing import StandardScaler

from fearkd.models import make_model
from fearkd.training import trainer
from fearkd.training.adaptation import (
    ADAPTATIONS,
    AdaptedLoss,
    coral_distance,
    dann_lambda,
    reverse_gradient,
)
from fearkd.training.settings import FitSettings

SEEDS = range(8)
#: Penalty weights: CORAL's distance is divided by 4 d^2, so it needs a larger weight.
WEIGHTS = {"dann": 1.0, "coral": 500.0}


def _shifted(seed: int, shift: float):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 600)
    X = rng.normal(size=(600, 8)).astype(np.float32)
    X[:, 0] += 1.5 * (2 * y - 1)
    d = np.repeat(np.arange(5), 120)
    X[d == 4, :4] += shift
    return X, y, d


def _target_accuracy(seed: int, shift: float, method: str) -> float:
    X, y, d = _shifted(seed, shift)
    tr, te = d < 4, d == 4
    scaler = StandardScaler().fit(X[tr])
    model = make_model("ann", 8, 2, random_state=seed)
    settings = FitSettings(epochs=15, batch_size=64, val_fraction=0.0, patience=None,
                           num_threads=1)
    if method == "none":
        trainer.fit(model, X[tr], y[tr], settings, scaler=scaler, random_state=seed)
    else:
        loss = AdaptedLoss(method, model, None, scaler.transform(X[te]), d[te], 5,
                           weight=WEIGHTS[method], total_steps=15 * 8, batch_size=64,
                           random_state=seed)
        with loss:
            trainer.fit(model, X[tr], y[tr], settings, targets=d[tr, None].astype(np.float32),
                        loss=loss, scaler=scaler, random_state=seed)
        assert not hasattr(model, "adaptation_penalty")  # the plain model comes back
    pred = trainer.predict_logits(model, X[te], scaler=scaler).argmax(1)
    return float((pred == y[te]).mean())


def _interval(diffs) -> tuple[float, float]:
    diffs = np.asarray(diffs)
    half = stats.t.ppf(0.975, len(diffs) - 1) * diffs.std(ddof=1) / np.sqrt(len(diffs))
    return diffs.mean() - half, diffs.mean() + half


@pytest.mark.parametrize("method", ["dann", "coral"])
def test_adaptation_beats_unadapted_on_a_planted_shift_and_is_harmless_without(method):
    # Shown to fail: with the penalty left out of AdaptedLoss.__call__ (return value only)
    # the shifted interval is [0, 0] and the first assertion fails.
    shifted = [_target_accuracy(s, 3.0, method) - _target_accuracy(s, 3.0, "none")
               for s in SEEDS]
    low, _ = _interval(shifted)
    assert low > 0, (method, shifted)
    control = [_target_accuracy(s, 0.0, method) - _target_accuracy(s, 0.0, "none")
               for s in SEEDS]
    low, high = _interval(control)
    assert low <= 0 <= high or np.ptp(control) == 0 and abs(np.mean(control)) < 0.02, control


def test_gradient_reversal_and_schedule():
    x = torch.ones(3, requires_grad=True)
    out = reverse_gradient(x, 0.5)
    out.sum().backward()
    assert torch.equal(out.detach(), torch.ones(3))
    assert torch.allclose(x.grad, torch.full((3,), -0.5))
    assert dann_lambda(0.0) == 0.0
    assert dann_lambda(1.0) == pytest.approx(2 / (1 + np.exp(-10)) - 1)


def test_coral_distance_against_hand_computation():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(50, 3)), 2 * rng.normal(size=(40, 3))
    expected = ((np.cov(a, rowvar=False) - np.cov(b, rowvar=False)) ** 2).sum() / 36
    got = coral_distance(torch.as_tensor(a), torch.as_tensor(b))
    assert float(got) == pytest.approx(expected)


def test_registry_names():
    assert {"none", "dann", "coral"} <= set(ADAPTATIONS.names())


@pytest.mark.parametrize(("changes", "match"), [
    ({"adaptation": "mmd"}, r"'\[training\] adaptation': expected one of 'none', 'dann'"),
    ({"adaptation_weight": -1}, r"'\[training\] adaptation_weight': expected a non-negative"),
    ({"adaptation_domain": "trial"}, r"'\[training\] adaptation_domain': expected one of"),
])
def test_bad_settings_are_one_line_errors(changes, match):
    with pytest.raises(ValueError, match=match):
        FitSettings(**changes)


def test_too_few_target_rows_is_an_error():
    model = make_model("ann", 4, 2)
    with pytest.raises(ValueError, match="needs at least 2 unlabelled target"):
        AdaptedLoss("coral", model, None, np.zeros((1, 4)), np.zeros(1), 2, weight=1.0,
                    total_steps=1, batch_size=8)


@pytest.mark.parametrize("method", ["dann", "coral"])
def test_adaptation_runs_in_every_stage_of_an_experiment(method, deap_root, tmp_path,
                                                         write_experiment):
    import pandas as pd

    from fearkd.config import load_config
    from fearkd.experiment import run_experiment

    path = write_experiment(tmp_path, methods=("method1",), kd_targets=("soft",),
                            backbones=("ann",))
    text = path.read_text()
    assert "[training]\n" in text
    path.write_text(text.replace("[training]\n", f'[training]\nadaptation = "{method}"\n'))
    cfg = load_config(path)
    assert cfg.training.adaptation == method
    run_experiment(cfg, tmp_path / "run", data_path=deap_root, progress=False)
    results = pd.read_csv(tmp_path / "run" / "results.csv")
    stages = set(zip(results["method"], results["stage"], strict=True))
    assert {("backbone", "backbone"), ("method1", "student")} <= stages


def test_unknown_adaptation_in_an_experiment_file(tmp_path, write_experiment):
    from fearkd.config import load_config

    path = write_experiment(tmp_path)
    path.write_text(path.read_text().replace("[training]\n", '[training]\nadaptation = "mmd"\n'))
    with pytest.raises(ValueError, match=r"\[training\] adaptation.*'mmd'"):
        load_config(path)


# --- per-subject re-centring of EEG covariances (fearkd.features.riemann) -----------------

ALPHA = (("alpha", 8.0, 12.0),)


def _eeg(seed: int, gain_sd: float, n_subjects: int = 5, n_per: int = 40):
    """Class 0: alpha on channel 0, class 1: on channel 1; each subject's channels get a
    fixed random gain (log-normal, ``gain_sd``): the planted subject shift."""
    rng = np.random.default_rng(seed)
    t = np.arange(256) / 128.0
    xs, ys, subjects = [], [], []
    for s in range(n_subjects):
        gains = np.exp(rng.normal(0.0, gain_sd, 4))
        y = np.tile([0, 1], n_per // 2)
        x = rng.normal(size=(n_per, 4, 256))
        alpha = np.sin(2 * np.pi * 10 * t + rng.uniform(0, 2 * np.pi, (n_per, 1)))
        x[np.arange(n_per), y] += 0.6 * alpha
        xs.append(x * gains[None, :, None])
        ys.append(y)
        subjects.append(np.full(n_per, s))
    return np.concatenate(xs), np.concatenate(ys), np.concatenate(subjects)


def _riemann_accuracy(seed: int, gain_sd: float, recentred: bool) -> float:
    from pyriemann.geometry.tangentspace import tangent_space
    from sklearn.linear_model import LogisticRegression

    from fearkd.features.riemann import band_covariances, riemann_features

    x, y, subjects = _eeg(seed, gain_sd)
    if recentred:
        feats = riemann_features(x, 128.0, ALPHA, subjects)
    else:
        feats = tangent_space(band_covariances(x, 128.0, ALPHA)[0], np.eye(4))
    tr, te = subjects < 4, subjects == 4
    clf = LogisticRegression(max_iter=1000).fit(feats[tr], y[tr])
    return float(clf.score(feats[te], y[te]))


def test_recentring_helps_on_a_planted_channel_gain_shift_and_not_without():
    # Shown to fail: with recenter() returning its input unchanged the shifted interval
    # contains 0.
    shifted = [_riemann_accuracy(s, 1.0, True) - _riemann_accuracy(s, 1.0, False)
               for s in range(5)]
    assert _interval(shifted)[0] > 0, shifted
    control = [_riemann_accuracy(s, 0.0, True) - _riemann_accuracy(s, 0.0, False)
               for s in range(5)]
    low, high = _interval(control)
    assert low <= 0 <= high or np.ptp(control) == 0 and abs(np.mean(control)) < 0.02, control


def test_recentred_subject_means_are_the_identity():
    from pyriemann.geometry.mean import mean_riemann

    from fearkd.features.riemann import band_covariances, recenter, riemann_feature_names

    x, _, subjects = _eeg(0, 1.0, n_subjects=2, n_per=10)
    covs = recenter(band_covariances(x, 128.0, ALPHA)[0], subjects)
    for s in (0, 1):
        assert np.allclose(mean_riemann(covs[subjects == s]), np.eye(4), atol=1e-6)
    names = riemann_feature_names(["a", "b", "c", "d"], ALPHA)
    assert len(names) == 10 and names[1] == "eeg:a-b:riemann-alpha"


def test_riemann_bad_input():
    from fearkd.features.riemann import band_covariances, recenter

    with pytest.raises(ValueError, match=r"'x' must have shape \(n_windows, n_chans >= 2"):
        band_covariances(np.zeros((3, 1, 64)), 128.0, ALPHA)
    with pytest.raises(ValueError, match="'subjects' has 2 entries but there are 3"):
        recenter(np.stack([np.eye(2)] * 3), [0, 1])


def _riemann_experiment(tmp_path, write_experiment, teacher="deap-student-eeg"):
    from fearkd.config import load_config

    path = write_experiment(tmp_path, methods=("method1",), kd_targets=("soft",),
                            backbones=("ann",))
    text = (path.read_text().replace('teacher = "deap-teacher"', f'teacher = "{teacher}"')
            .replace('student = "deap-student"', 'student = "deap-student-eeg"')
            .replace("[features]\n", "[features]\nriemann = true\n"))
    path.write_text(text)
    return load_config(path)


def test_riemann_option_adds_recentred_covariances_through_run_experiment(
        deap_root, tmp_path, write_experiment):
    from fearkd.experiment import run_experiment
    from fearkd.features.presets import get_preset

    cfg = _riemann_experiment(tmp_path, write_experiment)
    assert cfg.features.riemann is True
    res = run_experiment(cfg, tmp_path / "run", data_path=deap_root, progress=False)
    fs = res.data.featureset
    cols = [j for j, n in enumerate(fs.feature_names) if ":riemann-" in n]
    n_eeg, n_bands = 14, len(get_preset("deap-student-eeg").bands)
    assert len(cols) == n_bands * n_eeg * (n_eeg + 1) // 2
    assert not set(np.asarray(fs.feature_names)[cols]) & set(res.data.student_names)
    # known answer: re-centred on its own Riemannian mean, each subject's tangent vectors
    # average to zero (the mean's defining property); pooled re-centring would not
    R = fs.X[:, cols].astype(np.float64)
    subjects = fs.metadata["subject"].to_numpy()
    spread = R.std(axis=0).mean()
    for s in np.unique(subjects):
        assert np.abs(R[subjects == s].mean(axis=0)).max() < 0.02 * spread, s
    r = res.results
    assert {("method1", "student"), ("method1", "teacher")} <= set(
        zip(r["method"], r["stage"], strict=True))


def test_riemann_option_needs_eeg_and_one_dataset(deap_root, tmp_path, write_experiment):
    from fearkd.config import load_config
    from fearkd.errors import ConfigError
    from fearkd.experiment import prepare_data

    cfg = _riemann_experiment(tmp_path, write_experiment, teacher="peripheral")
    with pytest.raises(ConfigError, match=r"\[features\] riemann = true re-centres EEG "
                                          r"covariances, but the teacher preset 'peripheral' "
                                          r"has no EEG channel on this data; set riemann = "
                                          r"false"):
        prepare_data(cfg, data_path=deap_root, progress=False)
    path = tmp_path / "multi.toml"
    path.write_text('[[datasets]]\nkind = "deap"\npath = "a"\n[[datasets]]\nkind = "ascertain"'
                    '\npath = "b"\n[features]\nriemann = true\n')
    with pytest.raises(ConfigError, match=r"\[features\] riemann = true with \[\[datasets\]\]"):
        load_config(path)
