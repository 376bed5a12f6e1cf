"""Tests of the synthetic ASCERTAIN writer: format, determinism, ratings, learnable structure."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.io
from scipy.signal import find_peaks

from fearkd.datasets.ascertain import load_ascertain
from fearkd.datasets.synthetic.ascertain import draw_ratings, write_ascertain

# The ASCERTAIN fear table of DESIGN.md, written out independently of the writer's copy:
# closed ranges of arousal, valence, engagement, liking, familiarity.
TABLE = [
    ((0, 2), (1, 3), (0, 2), (5, 6), (2, 4)),  # none
    ((3, 4), (-2, -1), (3, 4), (3, 4), (1, 2)),  # low
    ((4, 5), (-3, -2), (4, 5), (1, 2), (0, 1)),  # medium
    ((5, 6), (-3, -3), (5, 6), (0, 1), (0, 0)),  # high
]


def _rows_hit(rating) -> list[int]:
    return [i for i, row in enumerate(TABLE)
            if all(lo <= r <= hi for r, (lo, hi) in zip(rating, row, strict=True))]


def _read_all(root) -> dict[str, np.ndarray]:
    out = {}
    for path in sorted(root.rglob("*.mat")):
        content = scipy.io.loadmat(path)
        (name,) = [k for k in content if not k.startswith("__")]
        out[str(path.relative_to(root))] = content[name]
    return out


@pytest.fixture(scope="module")
def nine(tmp_path_factory):
    """Nine subjects (3-column ECG for P01-P08, 6-column for P09), two 6-s clips each."""
    return write_ascertain(tmp_path_factory.mktemp("asc9"), n_subjects=9, n_clips=2,
                           seconds=6.0, seed=3)


def test_layout_variables_shapes_and_columns(nine):
    files = _read_all(nine)
    assert len(files) == 9 * 2 * 3 + 2
    for s in range(1, 10):
        for c in (1, 2):
            eeg = files[f"ASCERTAIN_Raw/EEGData/Movie_P{s:02d}/EEG_Clip{c}.mat"]
            ecg = files[f"ASCERTAIN_Raw/ECGData/Movie_P{s:02d}/ECG_Clip{c}.mat"]
            gsr = files[f"ASCERTAIN_Raw/GSRData/Movie_P{s:02d}/GSR_Clip{c}.mat"]
            assert eeg.shape[0] in (8, 9) and ecg.shape[1] == (3 if s <= 8 else 6)
            assert gsr.shape[1] == 5 and eeg.dtype == ecg.dtype == gsr.dtype == np.float64
            # Rates: 32, 256, 128 Hz over the same clip, up to 3 s of different lead time.
            dur = eeg.shape[1] / 32
            assert abs(ecg.shape[0] / 256 - dur) < 3.0 and abs(gsr.shape[0] / 128 - dur) < 3.0
            t_e, t_g = ecg[:, 0][np.isfinite(ecg[:, 0])], gsr[:, 0][np.isfinite(gsr[:, 0])]
            assert np.median(np.diff(t_e)) == pytest.approx(1000 / 256)
            assert np.median(np.diff(t_g)) == pytest.approx(1000 / 128)
    raw = [scipy.io.loadmat(p)["Data_ECG"] for p in nine.rglob("ECG_Clip*.mat")]
    assert {e.shape[1] for e in raw} == {3, 6}


def test_sensors_start_apart_and_end_together(nine):
    files = _read_all(nine)
    starts, lengths = [], []
    for s in range(1, 10):
        ecg = files[f"ASCERTAIN_Raw/ECGData/Movie_P{s:02d}/ECG_Clip1.mat"]
        gsr = files[f"ASCERTAIN_Raw/GSRData/Movie_P{s:02d}/GSR_Clip1.mat"]
        if not (np.isfinite(ecg[[0, -1], 0]).all() and np.isfinite(gsr[[0, -1], 0]).all()):
            continue  # a NaN first/last row hides the true start or end
        end_e, end_g = ecg[-1, 0] + 1000 / 256, gsr[-1, 0] + 1000 / 128
        assert end_e == pytest.approx(end_g, abs=1e-3)
        assert ecg[0, 0] > 1.4e12  # epoch milliseconds
        starts.append(ecg[0, 0] - gsr[0, 0])
        lengths.append(ecg.shape[0] - 2 * gsr.shape[0])
    assert len(starts) >= 5 and np.count_nonzero(starts) == len(starts)
    assert np.count_nonzero(lengths) >= len(lengths) - 1


def test_self_reports_and_viewing_order(nine):
    ratings = scipy.io.loadmat(nine / "ASCERTAIN_Features" / "Dt_SelfReports.mat")["Ratings"]
    perm = scipy.io.loadmat(nine / "ASCERTAIN_Features" / "Dt_Order_Movie.mat")["PermutationList"]
    assert ratings.shape == (5, 9, 2) and perm.shape == (9, 2)
    finite = ratings[np.isfinite(ratings)]
    assert np.array_equal(finite, np.round(finite))
    assert np.nanmin(ratings[1]) >= -3 and np.nanmax(ratings[1]) <= 3
    assert np.nanmin(ratings[[0, 2, 3, 4]]) >= 0 and np.nanmax(ratings[[0, 2, 3, 4]]) <= 6
    assert all(sorted(row) == [1.0, 2.0] for row in perm)


def test_same_seed_same_files_other_seed_other_files(tmp_path):
    kw = {"n_subjects": 2, "n_clips": 2, "seconds": 5.0}
    a = _read_all(write_ascertain(tmp_path / "a", seed=11, **kw))
    b = _read_all(write_ascertain(tmp_path / "b", seed=11, **kw))
    c = _read_all(write_ascertain(tmp_path / "c", seed=12, **kw))
    assert a.keys() == b.keys()
    assert all(np.array_equal(a[k], b[k], equal_nan=True) for k in a)
    assert not np.array_equal(a["ASCERTAIN_Raw/GSRData/Movie_P01/GSR_Clip1.mat"][:, 4],
                              c["ASCERTAIN_Raw/GSRData/Movie_P01/GSR_Clip1.mat"][:, 4])


def test_subject_does_not_depend_on_how_many_follow(tmp_path):
    small = write_ascertain(tmp_path / "a", n_subjects=1, n_clips=2, seconds=5.0)
    large = write_ascertain(tmp_path / "b", n_subjects=2, n_clips=2, seconds=5.0)
    name = "ASCERTAIN_Raw/ECGData/Movie_P01/ECG_Clip2.mat"
    assert np.array_equal(_read_all(small)[name], _read_all(large)[name], equal_nan=True)


def test_writing_quirks_occur(nine):
    rec = load_ascertain(nine)
    for _ in rec:
        pass
    whats = {r["what"] for r in rec.report.repaired}
    assert "kept the first 8 of 9 EEG rows" in whats
    assert whats & {"dropped Data_ECG rows with NaN/inf", "dropped Data_GSR rows with NaN/inf"}
    assert not rec.report.skipped


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_draw_ratings_fill_every_fear_row_unambiguously(seed):
    rng = np.random.default_rng(seed)
    ratings, rows = draw_ratings(rng, 36, 0.5)
    hits = [_rows_hit(r) for r in ratings]
    assert sum(len(h) == 1 for h in hits) == 18  # the fear_share of 36 clips
    assert all(len(h) <= 1 for h in hits)  # never ambiguous
    assert sorted(np.bincount([h[0] for h in hits if h], minlength=4)) == [4, 4, 5, 5]
    assert all((h == [r]) if r >= 0 else (h == []) for h, r in zip(hits, rows, strict=True))
    ratings, _ = draw_ratings(rng, 12, 0.0)
    assert not any(_rows_hit(r) for r in ratings)
    # The rest of the space is covered: every arousal and valence value occurs somewhere.
    many, _ = draw_ratings(rng, 400, 0.0)
    assert set(many[:, 0]) == set(range(7)) and set(many[:, 1]) == set(range(-3, 4))


def test_ratings_file_follows_fear_share(tmp_path):
    root = write_ascertain(tmp_path, n_subjects=1, n_clips=8, seconds=5.0, fear_share=1.0)
    ratings = scipy.io.loadmat(root / "ASCERTAIN_Features" / "Dt_SelfReports.mat")["Ratings"]
    hits = [_rows_hit(r) for r in ratings[:, 0].T if np.isfinite(r).all()]
    assert len(hits) >= 7 and all(len(h) == 1 for h in hits)  # at most one NaN-rated clip
    assert sorted({h[0] for h in hits}) == [0, 1, 2, 3]


def _heart_rate(ecg: np.ndarray, sfreq: float) -> float:
    x = ecg - np.median(ecg)
    peaks, _ = find_peaks(x, height=0.5 * np.percentile(x, 99.5), distance=int(0.33 * sfreq))
    return 60.0 / np.median(np.diff(peaks) / sfreq)


def test_structure_is_learnable_within_subject_and_weaker_across(tmp_path):
    root = write_ascertain(tmp_path, n_subjects=3, n_clips=16, seconds=12.0, seed=5)
    table = []
    for subject in load_ascertain(root, channels=["ECG_R", "GSR"]):
        for trial in subject:
            hr = _heart_rate(*trial.channel("ECG_R"))
            table.append((int(subject.subject[1:]), trial.ratings["arousal"], hr,
                          trial.channel("GSR")[0].mean()))
    t = np.array(table)
    t = t[np.isfinite(t).all(axis=1)]
    within_hr, within_gsr = [], []
    for s in np.unique(t[:, 0]):
        sub = t[t[:, 0] == s]
        within_hr.append(np.corrcoef(sub[:, 1], sub[:, 2])[0, 1])
        within_gsr.append(np.corrcoef(sub[:, 1], sub[:, 3])[0, 1])
    # Heart rate rises and skin resistance falls with arousal inside every subject.
    assert min(within_hr) > 0.4 and max(within_gsr) < -0.3
    # Subject offsets blur the pooled relation of the GSR level.
    pooled_gsr = np.corrcoef(t[:, 1], t[:, 3])[0, 1]
    assert abs(pooled_gsr) < abs(np.mean(within_gsr)) - 0.1
    # Within-subject z-scored GSR level: calm clips (arousal <= 2) sit clearly above aroused
    # ones (arousal >= 4), by more than one within-subject standard deviation.
    z = np.concatenate([(t[t[:, 0] == s, 3] - t[t[:, 0] == s, 3].mean())
                        / t[t[:, 0] == s, 3].std() for s in np.unique(t[:, 0])])
    a = np.concatenate([t[t[:, 0] == s, 1] for s in np.unique(t[:, 0])])
    assert z[a <= 2].mean() - z[a >= 4].mean() > 1.0


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"n_subjects": 0}, ValueError, r"Invalid value for 'n_subjects': expected 1\.\.58"),
        ({"n_subjects": 2.0}, TypeError, "'n_subjects' must be an int, got float"),
        ({"n_clips": 37}, ValueError, r"Invalid value for 'n_clips': expected 1\.\.36"),
        ({"seconds": 1.0}, ValueError, r"Invalid value for 'seconds': expected 5\.\.600"),
        ({"seconds": "60"}, TypeError, "'seconds' must be a number, got str"),
        ({"seed": -1}, TypeError, "'seed' must be a non-negative int, got -1"),
        ({"fear_share": 1.5}, ValueError, r"Invalid value for 'fear_share': expected 0\.\.1"),
        ({"fear_share": None}, TypeError, "'fear_share' must be a number, got NoneType"),
    ],
)
def test_bad_arguments(tmp_path, kwargs, error, match):
    with pytest.raises(error, match=match):
        write_ascertain(tmp_path, **kwargs)


def test_bad_root(tmp_path):
    with pytest.raises(TypeError, match="'root' must be a path"):
        write_ascertain(None)
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="is a file; expected a folder"):
        write_ascertain(tmp_path / "file", n_subjects=1, n_clips=1, seconds=5.0)
