"""Known answers of the synthetic DEAP knobs (``write_deap(privileged=, shared=, fear_share=,
subject_shift=)``): each knob's effect measured with a logistic-regression probe on the real
features (``extract_features``), subject-grouped CV, and a negative control where it vanishes."""

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import GroupKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from fearkd.cli import main
from fearkd.datasets.deap import load_deap
from fearkd.datasets.synthetic import write_deap
from fearkd.datasets.synthetic.deap import STUDENT_EEG
from fearkd.features import extract_features
from fearkd.features.presets import get_preset

SECONDS = 7.0  # 3 s baseline + one 4 s window per trial
SEED = 0


def _features(path, preset="deap-teacher", **knobs):
    """Trial features (one 4 s window per trial), log-transformed, and their metadata."""
    kw = dict(n_subjects=6, n_trials=16, seconds=SECONDS, seed=SEED)
    kw.update(knobs)
    root = write_deap(path, **kw)
    fs = extract_features(load_deap(root), preset, progress=False)
    x = np.log(np.maximum(np.asarray(fs.X, dtype=float), 1e-12))
    return x, list(fs.feature_names), fs.metadata


def _columns(x, names, preset):
    keep = get_preset("deap-student-eeg").eeg if preset == "student" else None
    if keep is None:
        return x
    idx = [i for i, n in enumerate(names) if n.split(":")[1] in keep and n.startswith("eeg:")]
    return x[:, idx]


def _zscore_by(x, groups):
    out = np.empty_like(x)
    for g in np.unique(groups):
        m = groups == g
        out[m] = (x[m] - x[m].mean(0)) / (x[m].std(0) + 1e-9)
    return out


def _cv_accuracy(x, y, groups, c=0.1):
    """Subject-grouped 3-fold accuracy of a standardised logistic regression."""
    pred = np.empty_like(y)
    for tr, te in GroupKFold(n_splits=3).split(x, y, groups):
        model = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=2000))
        pred[te] = model.fit(x[tr], y[tr]).predict(x[te])
    return float(np.mean(pred == y))


def _fear(x, meta):
    lab = (meta["y_fear"] >= 0).to_numpy()
    return x[lab], meta["y_fear"].to_numpy()[lab], meta["subject"].to_numpy()[lab]


def privileged_gap(path, privileged):
    x, names, meta = _features(path, fear_share=1.0, privileged=privileged)
    x = _zscore_by(x, meta["subject"].to_numpy())
    xt, y, g = _fear(x, meta)
    xs = _fear(_columns(x, names, "student"), meta)[0]
    return _cv_accuracy(xt, y, g), _cv_accuracy(xs, y, g)


def test_student_preset_is_the_epoc_eeg_subset_of_the_teacher():
    student, teacher = get_preset("deap-student-eeg"), get_preset("deap-teacher")
    assert student.eeg == STUDENT_EEG and student.peripheral == ()
    assert set(student.eeg) < set(teacher.eeg)


def test_privileged_channels_separate_teacher_from_student(tmp_path):
    teacher1, student1 = privileged_gap(tmp_path / "p1", 1.0)
    teacher0, student0 = privileged_gap(tmp_path / "p0", 0.0)
    assert teacher1 - student1 > 0.25
    assert student1 < 0.45  # chance is 0.25
    assert (teacher0 - student0) < (teacher1 - student1) - 0.15


def source_transfer(path, shared):
    """Spearman correlation of a valence model (trained on the non-fear trials) with fear."""
    from scipy.stats import spearmanr

    x, _, meta = _features(path, n_subjects=8, n_trials=24, fear_share=0.5, shared=shared)
    x = _zscore_by(x, meta["subject"].to_numpy())
    lab = (meta["y_fear"] >= 0).to_numpy()
    model = make_pipeline(StandardScaler(), Ridge(alpha=300.0))
    model.fit(x[~lab], meta["valence"].to_numpy()[~lab])
    return float(spearmanr(model.predict(x[lab]), meta["y_fear"].to_numpy()[lab])[0])


def test_shared_latent_lets_a_source_model_transfer(tmp_path):
    # high fear = low valence: a valence model's output falls with the fear level
    # measured (seeds 0, 1, 2): -0.87, -0.84, -0.83 at shared=1; -0.25, -0.06, -0.34 at 0
    assert source_transfer(tmp_path / "s1", 1.0) < -0.7
    assert source_transfer(tmp_path / "s0", 0.0) > -0.45


def fear_fraction(path, fear_share, n_trials):
    root = write_deap(path, n_subjects=3, n_trials=n_trials, seconds=3.5, fear_share=fear_share)
    from fearkd.labels import label_recordings

    y = label_recordings(load_deap(root))[0]["y_fear"].to_numpy()
    return float(np.mean(y >= 0)), y


@pytest.mark.parametrize("share", [0.1, 0.25, 0.5])
def test_fear_share_sets_the_share_of_fear_labelled_trials(tmp_path, share):
    frac, y = fear_fraction(tmp_path, share, 40)
    assert frac == pytest.approx(share, abs=0.5 / 40)
    if share == 0.1:  # the low-fear-data regime: 1 trial per fear level per subject
        assert np.bincount(y[y >= 0], minlength=4).tolist() == [3, 3, 3, 3]


def normalisation_gain(path, subject_shift):
    x, _, meta = _features(path, fear_share=1.0, subject_shift=subject_shift)
    xs, y, g = _fear(_zscore_by(x, meta["subject"].to_numpy()), meta)
    xg = _fear(x, meta)[0]
    return _cv_accuracy(xs, y, g) - _cv_accuracy(xg, y, g)


def test_subject_shift_is_removed_by_per_subject_normalisation(tmp_path):
    assert normalisation_gain(tmp_path / "h", 5.0) > 0.2
    assert normalisation_gain(tmp_path / "z", 0.0) < 0.12


def asymmetry_by_level(path, **knobs):
    x, names, meta = _features(path, fear_share=1.0, **knobs)
    asym = x[:, names.index("eeg:F4:alpha")] - x[:, names.index("eeg:F3:alpha")]
    lab = (meta["y_fear"] >= 0).to_numpy()
    y = meta["y_fear"].to_numpy()
    return np.array([asym[lab & (y == k)].mean() for k in range(4)])


def test_frontal_alpha_asymmetry_falls_with_fear(tmp_path):
    # withdrawal: relatively less right-frontal alpha (F4 vs F3) as fear rises
    per_level = asymmetry_by_level(tmp_path)
    assert np.all(np.diff(per_level) < 0)
    assert per_level[0] - per_level[3] > 0.4


@pytest.mark.parametrize(
    ("kw", "exc", "match"),
    [
        ({"privileged": 1.5}, ValueError,
         r"^Invalid value for 'privileged' \(--privileged\): expected 0\.\.1 \(.*\), got 1\.5\.$"),
        ({"shared": -0.1}, ValueError, r"'shared' \(--shared\): expected 0\.\.1 .*got -0\.1\.$"),
        ({"subject_shift": 6}, ValueError,
         r"'subject_shift' \(--subject-shift\): expected 0\.\.5 .*got 6\.0\.$"),
        ({"privileged": "all"}, TypeError,
         r"'privileged' \(--privileged\) must be a number, got str 'all'\.$"),
        ({"shared": True}, TypeError, r"'shared' \(--shared\) must be a number, got bool"),
    ],
)
def test_knob_validation(tmp_path, kw, exc, match):
    with pytest.raises(exc, match=match):
        write_deap(tmp_path, n_subjects=1, n_trials=2, seconds=3.5, **kw)


def test_cli_knobs(tmp_path, capsys):
    assert main(["synth", "deap", str(tmp_path / "d"), "--subjects", "1", "--trials", "8",
                 "--seconds", "3.5", "--fear-share", "0.25", "--privileged", "1",
                 "--shared", "0", "--subject-shift", "0"]) == 0
    frac, _ = fear_fraction(tmp_path / "e", 0.25, 8)
    assert frac == 0.25
    assert main(["synth", "deap", str(tmp_path / "d2"), "--privileged", "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "'privileged' (--privileged): expected 0..1" in err
    assert main(["synth", "ascertain", str(tmp_path / "a"), "--shared", "0"]) == 2
    assert "--shared applies to DEAP only" in capsys.readouterr().err
