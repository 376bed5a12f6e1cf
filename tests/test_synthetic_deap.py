"""Synthetic DEAP writer and the shared generative model: format, determinism, labels, structure."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from scipy import signal, stats

from fearkd.datasets.deap import EEG_CHANNELS, load_deap
from fearkd.datasets.synthetic import _physio as phy
from fearkd.datasets.synthetic.deap import FEAR_BOXES, write_deap

SF = 128.0


def _files(root):
    return {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_layout_and_sizes(tmp_path):
    root = write_deap(tmp_path / "d", n_subjects=2, n_trials=3, seconds=4.0, fmt="both")
    assert root == tmp_path / "d"
    names = {str(p) for p in _files(root)}
    assert names == {
        "data_preprocessed_python/s01.dat", "data_preprocessed_python/s02.dat",
        "data_preprocessed_matlab/s01.mat", "data_preprocessed_matlab/s02.mat",
        "metadata_csv/participant_ratings.csv",
        "fearkd-synthetic.json",  # the marker that makes reports say "synthetic data"
    }
    size = (root / "data_preprocessed_python" / "s01.dat").stat().st_size
    assert 3 * 40 * 512 * 8 + 3 * 4 * 8 < size < 3 * 40 * 512 * 8 + 3 * 4 * 8 + 600
    with open(root / "metadata_csv" / "participant_ratings.csv") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["Participant_id", "Trial", "Experiment_id", "Start_time", "Valence",
                             "Arousal", "Dominance", "Liking", "Familiarity"]
    assert len(rows) == 6 and {r["Familiarity"] for r in rows if r["Participant_id"] == "2"} == {""}
    assert sorted(int(r["Trial"]) for r in rows if r["Participant_id"] == "1") == [1, 2, 3]


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    kw = dict(n_subjects=2, n_trials=2, seconds=3.5, fmt="both")
    a = _files(write_deap(tmp_path / "a", seed=5, **kw))
    b = _files(write_deap(tmp_path / "b", seed=5, **kw))
    c = _files(write_deap(tmp_path / "c", seed=6, **kw))
    assert a == b
    assert all(a[k] != c[k] for k in a)
    # a subject's files do not depend on how many subjects are written
    one = _files(write_deap(tmp_path / "one", seed=5, n_subjects=1, n_trials=2, seconds=3.5))
    key = next(k for k in one if k.suffix == ".dat")
    assert one[key] == a[key]


def test_full_length_trial_has_the_real_shape(tmp_path):
    root = write_deap(tmp_path, n_subjects=1, n_trials=1, seconds=63.0, ratings_csv=False)
    trial = load_deap(root).load("s01").trials[0]
    assert trial.signals["eeg"].data.shape == (32, 8064)


def _in(r, box):
    return all(lo <= x < hi or (hi == 9.0 and x == 9.0) for x, (lo, hi) in zip(r, box, strict=True))


def test_ratings_fill_every_fear_box_and_the_rest(tmp_path):
    root = write_deap(tmp_path, n_subjects=4, n_trials=12, seconds=3.5, fear_share=0.5)
    counts = dict.fromkeys(FEAR_BOXES, 0)
    outside = []
    for subject in load_deap(root):
        per_subject = 0
        for t in subject:
            r = [t.ratings[k] for k in ("valence", "arousal", "dominance")]
            assert all(1.0 <= x <= 9.0 for x in r) and 1.0 <= t.ratings["liking"] <= 9.0
            hit = [name for name, box in FEAR_BOXES.items() if _in(r, box)]
            per_subject += bool(hit)
            for name in hit:
                counts[name] += 1
            if not hit:
                outside.append(r)
        assert per_subject == 6
    assert all(c >= 5 for c in counts.values()), counts
    outside = np.array(outside)
    assert outside.min(axis=0).max() < 3.0 and outside.max(axis=0).min() > 7.0
    none = write_deap(tmp_path / "z", n_subjects=1, n_trials=10, seconds=3.5, fear_share=0.0)
    for t in load_deap(none).load("s01"):
        r = [t.ratings[k] for k in ("valence", "arousal", "dominance")]
        assert not any(_in(r, box) for box in FEAR_BOXES.values())


@pytest.mark.parametrize(
    ("kw", "exc", "match"),
    [
        ({"n_subjects": 33}, ValueError, r"'n_subjects': expected 1\.\.32 .*got 33"),
        ({"n_subjects": 2.0}, TypeError, r"'n_subjects' must be an int, got float"),
        ({"n_trials": 41}, ValueError, r"'n_trials': expected 1\.\.40"),
        ({"n_trials": True}, TypeError, r"'n_trials' must be an int, got bool"),
        ({"seconds": 64.0}, ValueError, r"'seconds': expected more than 3 .* at most 63.*64\.0"),
        ({"seconds": 3.0}, ValueError, r"'seconds': expected more than 3"),
        ({"seconds": "5"}, TypeError, r"'seconds' must be a number, got str"),
        ({"seed": -1}, ValueError, r"'seed': expected 0\.\."),
        ({"fmt": "hdf5"}, ValueError, r"'fmt': expected 'dat', 'mat' or 'both', got 'hdf5'"),
        ({"fear_share": 1.5}, ValueError,
         r"'fear_share' \(--fear-share\): expected 0\.\.1 \(.*\), got 1\.5\.$"),
        ({"fear_share": "half"}, TypeError,
         r"'fear_share' \(--fear-share\) must be a number, got str"),
        ({"ratings_csv": 1}, TypeError, r"'ratings_csv' must be True or False, got 1"),
    ],
)
def test_writer_validation(tmp_path, kw, exc, match):
    with pytest.raises(exc, match=match):
        write_deap(tmp_path, **kw)
    with pytest.raises(TypeError, match=r"'root' must be a path, got NoneType"):
        write_deap(None)


def _band_power(x, lo, hi):
    f, p = signal.welch(x, fs=SF, nperseg=256, axis=-1)
    return p[..., (f >= lo) & (f < hi)].sum(axis=-1)


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    root = write_deap(tmp_path_factory.mktemp("learn"), n_subjects=3, n_trials=24, seconds=13.0,
                      seed=11, ratings_csv=False)
    return list(load_deap(root))


def test_structure_is_learnable_within_subject(small):
    """Alpha asymmetry tracks valence; GSR resistance falls with arousal; beta and pulse rise."""
    onset = int(3 * SF)
    f3, f4 = EEG_CHANNELS.index("F3"), EEG_CHANNELS.index("F4")
    for subject in small:
        val = np.array([t.ratings["valence"] for t in subject])
        aro = np.array([t.ratings["arousal"] for t in subject])
        eeg = np.stack([t.signals["eeg"].data[:, onset:] for t in subject])
        alpha = _band_power(eeg[:, [f3, f4]], 8, 13)
        asym = np.log(alpha[:, 1]) - np.log(alpha[:, 0])
        assert stats.pearsonr(asym, val)[0] > 0.3
        beta = np.log(_band_power(eeg, 13, 30).mean(axis=1))
        assert stats.pearsonr(beta, aro)[0] > 0.5
        gsr = np.array([t.channel("GSR")[0][onset:].mean() for t in subject])
        assert stats.pearsonr(gsr, aro)[0] < -0.5
        ppg = np.stack([t.channel("PPG")[0][onset:] for t in subject])
        f, p = signal.periodogram(ppg - ppg.mean(axis=1, keepdims=True), fs=SF, axis=-1)
        band = (f > 0.7) & (f < 2.5)
        pulse_hz = f[band][np.argmax(p[:, band], axis=1)]
        assert stats.spearmanr(pulse_hz, aro)[0] > 0.4


def test_subjects_differ(small):
    """Per-subject offsets: peripheral means separate subjects far more than trials do."""
    temp = [np.array([t.channel("Temp")[0].mean() for t in s]) for s in small]
    assert stats.f_oneway(*temp).statistic > 20
    gsr = [np.log([t.channel("GSR")[0].mean() for t in s]) for s in small]
    assert stats.f_oneway(*gsr).statistic > 5


def test_baseline_carries_no_stimulus_effect():
    rng = np.random.default_rng(0)
    prof = phy.subject_profile(rng)
    env = phy.onset_ramp(1280, SF, 3.0)
    assert env[: 3 * 128 + 1].max() == 0.0 and 0.99 < env[-1] < 1.0
    g_hi = phy.skin_conductance(np.random.default_rng(1), np.array([1.0]), prof, 1280, SF,
                                onset=3.0)
    g_lo = phy.skin_conductance(np.random.default_rng(1), np.array([-1.0]), prof, 1280, SF,
                                onset=3.0)
    np.testing.assert_allclose(g_hi[0, :300], g_lo[0, :300])
    assert g_hi[0, -200:].mean() > g_lo[0, -200:].mean()


def test_noise_generators_match_their_spectra():
    rng = np.random.default_rng(2)
    x = phy.pink_noise(rng, 4, 8192, SF, n_epochs=20, band=(2.0, 50.0))
    assert x.shape == (20, 4, 8192) and abs(x.std() - 1.0) < 0.02
    f, p = signal.welch(x, fs=SF, nperseg=1024, axis=-1)
    keep = (f >= 4) & (f <= 40)
    slope = np.polyfit(np.log(f[keep]), np.log(p.mean(axis=(0, 1))[keep]), 1)[0]
    assert -1.15 < slope < -0.85
    y = phy.band_oscillation(rng, 2, 4096, SF, (8.0, 12.0), n_epochs=10)
    f, p = signal.welch(y, fs=SF, nperseg=512, axis=-1)
    share = p[..., (f >= 7.5) & (f <= 12.5)].sum() / p.sum()
    assert share > 0.95 and abs(y.std() - 1.0) < 0.05
    assert phy.pink_noise(rng, 3, 100, SF).shape == (3, 100)
    d = phy.slow_drift(rng, 300, SF, n_epochs=2)
    assert d.shape == (2, 300) and np.isfinite(d).all()


def test_periodic_generators_run_at_their_rate():
    rng = np.random.default_rng(3)
    for fn, rate, kw in [(phy.pulse_wave, 72.0, {}), (phy.pulse_wave, 90.0, {"kind": "ecg"}),
                         (phy.respiration_wave, 15.0, {})]:
        sf = 256.0
        x = fn(rng, 256 * 120, sf, rate, **kw)
        f, p = signal.periodogram(x - x.mean(), fs=sf)
        assert abs(f[np.argmax(p)] - rate / 60.0) < 0.03, (fn.__name__, kw)
    assert phy.pulse_wave(rng, 512, 128.0, 60.0, kind="ecg").max() == pytest.approx(1.0, abs=0.1)


def test_event_generators():
    rng = np.random.default_rng(4)
    scr = phy.scr_train(rng, 128 * 60, SF, 6.0, 0.2, n_epochs=50)
    assert scr.min() >= 0.0 and scr.shape == (50, 7680)
    assert not phy.scr_train(rng, 1000, SF, 0.0, 0.2).any()
    blinks = phy.blink_train(rng, 128 * 60, SF, 20.0, n_epochs=50)
    # about 20 blinks a minute: count the rising crossings of half the peak
    crossings = np.diff((blinks > 0.5).astype(int), axis=1).clip(0).sum(axis=1)
    assert 14 < crossings.mean() < 24
    steps = phy.saccade_steps(rng, 1000, SF, 60.0, 100.0, n_epochs=3)
    assert steps.shape == (3, 1000) and 30 < steps.std() < 300


def test_latent_state_inverts_the_rating_habit():
    rng = np.random.default_rng(5)
    prof = phy.subject_profile(rng)
    z = np.array([[0.5, -0.2, 0.0], [-1.0, 1.0, 0.3]])
    unit = prof.rating_bias + prof.rating_scale * z
    ratings = 5.0 + 4.0 * unit
    np.testing.assert_allclose(phy.latent_state(rng, ratings, prof, noise=0.0), z, atol=1e-12)
    asc = 3.0 + 3.0 * unit  # ASCERTAIN-like 0..6 scales
    np.testing.assert_allclose(phy.latent_state(rng, asc, prof, low=0, high=6, noise=0.0), z,
                               atol=1e-12)


def test_physio_errors():
    rng = np.random.default_rng(6)
    with pytest.raises(ValueError, match=r"Invalid value for 'band'.*got \(12\.0, 8\.0\)"):
        phy.band_oscillation(rng, 1, 256, SF, (12.0, 8.0))
    with pytest.raises(ValueError, match=r"No frequency bin of a 64-sample signal"):
        phy.band_oscillation(rng, 1, 64, SF, (10.0, 10.5))
    with pytest.raises(ValueError, match=r"Invalid value for 'kind': expected 'ppg' or 'ecg'"):
        phy.pulse_wave(rng, 256, SF, 60.0, kind="eeg")
    with pytest.raises(ValueError, match=r"Expected 3 per-epoch values, got shape \(2,\)"):
        phy.pulse_wave(rng, 256, SF, np.array([60.0, 70.0]), n_epochs=3)
    with pytest.raises(ValueError, match=r"Expected shape \(2, 256\) for a time-varying"):
        phy.scr_train(rng, 256, SF, np.ones((2, 10)), 0.1, n_epochs=2)
    with pytest.raises(ValueError, match=r"'ratings' must have shape \(n_trials, 3\), got \(4,\)"):
        phy.latent_state(rng, np.ones(4), phy.subject_profile(rng))
