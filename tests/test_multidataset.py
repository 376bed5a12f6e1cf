"""Several datasets in one experiment: [[datasets]], [common], cross-dataset protocols."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fearkd.config import load_config
from fearkd.errors import ConfigError, LeakageError
from fearkd.evaluation.splitters import check_split, make_splitter
from fearkd.experiment import prepare_multi, run_experiment


def _write(tmp_path, body: str, deap_subjects=3, asc_subjects=3):
    from fearkd.datasets.synthetic import write_ascertain, write_deap

    if not (tmp_path / "deap").is_dir():
        write_deap(tmp_path / "deap", n_subjects=deap_subjects, n_trials=8, seconds=10.0, seed=0)
        write_ascertain(tmp_path / "asc", n_subjects=asc_subjects, n_clips=8, seconds=12.0,
                        seed=1)
    path = tmp_path / "exp.toml"
    path.write_text(f"""
name = "multi"
[[datasets]]
kind = "deap"
path = "deap"
[[datasets]]
kind = "ascertain"
path = "asc"
nan_policy = "unlabelled"
[features]
window = 4.0
step = 2.0
[models]
backbones = ["cnn"]
[methods]
run = ["method1"]
kd_targets = ["combined"]
[training]
epochs = 2
{body}
""")
    return path


def _meta(datasets=("a", "a", "b", "b"), subjects=("1", "2", "3", "4")):
    n = len(datasets)
    return pd.DataFrame({"dataset": list(datasets), "subject": list(subjects),
                         "trial": [0] * n, "window": [0] * n, "t_start": [0.0] * n,
                         "t_stop": [1.0] * n, "y_fear": [0, 1, 0, 1], "y_source": [0] * n})


def test_train_on_one_two_folds_and_guard():
    meta = _meta()
    folds = list(make_splitter("train-on-one").split(meta))
    assert [(list(tr), list(te)) for tr, te in folds] == [([0, 1], [2, 3]), ([2, 3], [0, 1])]
    lodo = list(make_splitter("leave-one-dataset-out").split(meta))
    assert len(lodo) == 2
    with pytest.raises(LeakageError, match=r"dataset\(s\) \['a', 'b'\]"):
        check_split(meta, np.array([0, 2]), np.array([1, 3]), "train-on-one")


def test_cross_dataset_protocol_with_one_dataset_is_refused(tmp_path):
    path = tmp_path / "one.toml"
    path.write_text('[[datasets]]\nkind = "deap"\npath = "x"\n'
                    '[evaluation]\nprotocol = "train-on-one"\n')
    with pytest.raises(ConfigError, match=r"protocol = 'train-on-one' compares datasets: "
                                          r"expected at least 2 \[\[datasets\]\] entries, got 1"):
        load_config(path)
    with pytest.raises(ConfigError, match="at least 2 datasets"):
        list(make_splitter("leave-one-dataset-out").split(_meta(("a",) * 4)))


def test_space_naming_a_missing_channel(tmp_path):
    from fearkd.features.common import COMMON_SPACES, CommonSpace, register_space

    register_space(CommonSpace("test-missing", eeg={"Fp1": {"deap": "Fp1", "ascertain": "EEG9"}}),
                   overwrite=True)
    try:
        cfg = load_config(_write(tmp_path, '[common]\nspace = "test-missing"'))
        with pytest.raises(ConfigError, match=r"\[common\] space 'test-missing' takes channel\(s\)"
                                              r" \['EEG9'\] from \[\[datasets\]\] 'ascertain'"):
            prepare_multi(cfg, progress=False)
    finally:
        COMMON_SPACES.pop("test-missing")


def test_clashing_subject_ids_without_prefix(tmp_path):
    _write(tmp_path, "")
    path = tmp_path / "twice.toml"
    path.write_text('[[datasets]]\nkind = "deap"\nname = "a"\npath = "deap"\n'
                    '[[datasets]]\nkind = "deap"\nname = "b"\npath = "deap"\n'
                    '[common]\nprefix_subjects = false\n')
    with pytest.raises(ConfigError, match=r"prefix_subjects = false but \[\[datasets\]\] "
                                          r"\['a', 'b'\] share subject id"):
        prepare_multi(load_config(path), progress=False)
    prefixed = prepare_multi(load_config(str(path).replace("twice", "twice")).replace(
        common={"prefix_subjects": True}), progress=False)
    assert prefixed.featureset.metadata["subject"].str.startswith(("a:", "b:")).all()


@pytest.fixture(scope="module")
def combined_run(tmp_path_factory):
    """One small combined DEAP+ASCERTAIN run (3 + 3 subjects, 2 folds), shared by the tests."""
    folder = tmp_path_factory.mktemp("combined")
    cfg = load_config(_write(folder, "[evaluation]\nfolds = 2"))
    return folder, run_experiment(cfg, folder / "run", progress=False)


def test_combined_student_scored_per_dataset(combined_run):
    # Regression: folds over the pooled subjects once tested all DEAP subjects in one fold
    # with none on its training side, so the combined student had no DEAP rows.
    _folder, res = combined_run
    r = res.results
    meta = res.data.featureset.metadata
    assert set(meta["dataset"]) == {"deap", "ascertain"}
    assert meta.groupby("subject")["dataset"].nunique().max() == 1
    combined = r[r["trained_on"] == "deap+ascertain"]
    assert set(combined["dataset"]) == {"deap", "ascertain", "deap+ascertain"}
    assert set(r.loc[r["dataset"] == "deap+ascertain", "trained_on"]) == {"deap+ascertain"}
    student = combined[(combined["stage"] == "student") & (combined["split"] == "test")
                       & (combined["metric"] == "accuracy")]
    assert set(student["fold"]) == {0, 1}
    own = r[(r["trained_on"] == r["dataset"]) & (r["dataset"] != "deap+ascertain")]
    assert set(own["dataset"]) == {"deap", "ascertain"}
    own_student = own[(own["stage"] == "student") & (own["split"] == "test")
                      & (own["metric"] == "accuracy")]
    for (fold, method, target), g in student.groupby(["fold", "method", "target"]):
        n = g.set_index("dataset")["n_test"]
        # every fold tests both datasets, and their windows add up to the union's
        assert set(n.index) == {"deap", "ascertain", "deap+ascertain"}
        assert n.drop("deap+ascertain").sum() == n["deap+ascertain"]
        # the union's fold k is each dataset's own fold k: the same test windows
        mine = own_student[(own_student["fold"] == fold) & (own_student["method"] == method)
                           & (own_student["target"] == target)].set_index("dataset")["n_test"]
        assert mine["deap"] == n["deap"] and mine["ascertain"] == n["ascertain"]


def test_combined_folds_are_the_datasets_own_folds():
    from fearkd.experiment import _scoped_splits

    # 2 large subjects in "a", 4 small ones in "b": folds over the pooled subjects would put
    # both of a's subjects on one side of some fold
    n = [40, 40, 5, 5, 5, 5]
    meta = pd.DataFrame({
        "dataset": np.repeat(["a", "a", "b", "b", "b", "b"], n),
        "subject": np.repeat(["a1", "a2", "b1", "b2", "b3", "b4"], n),
        "trial": 0, "window": np.concatenate([np.arange(k) for k in n]),
        "y_fear": np.tile([0, 1], sum(n) // 2), "y_source": 0})
    meta["t_start"], meta["t_stop"] = meta["window"] * 1.0, meta["window"] * 1.0 + 1.0
    union = _scoped_splits(meta, "subject", 2, 0, None, ("a", "b"))
    for k, (train, _val, test) in enumerate(union):
        for name in ("a", "b"):
            assert set(meta["dataset"].iloc[train]) == {"a", "b"}
            own_test = _scoped_splits(meta, "subject", 2, 0, name)[k][2]
            here = test[meta["dataset"].to_numpy()[test] == name]
            assert here.tolist() == own_test.tolist()


def test_combined_table_in_cli_and_report(combined_run, capsys):
    from fearkd.cli import main
    from fearkd.reporting.combined import COMBINED, DIFF, OWN, combined_table

    folder, res = combined_run
    table = combined_table(res.results)
    assert [i.split(" · ")[1] for i in table.index[:3]] == ["DEAP", "ASCERTAIN", "all"]
    assert np.isfinite(table[[COMBINED, OWN, DIFF, COMBINED + " ±"]].iloc[:2].to_numpy()).all()
    # the command line resumes the finished run and prints the table
    assert main(["run", str(folder / "exp.toml"), "--out", str(folder / "run"), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "Combined student per dataset (protocol subject)" in out
    line = next(ln for ln in out.splitlines() if "Combined loss · DEAP" in ln)
    assert f"{table[COMBINED].iloc[0]:.1f} ± {table[COMBINED + ' ±'].iloc[0]:.1f}" in line
    # a dataset's own tables no longer mix in the combined model's scores on it
    deap_kd = out[out.index("Knowledge distillation for CNN (Method 1, student) (deap, "):]
    own_row = next(ln for ln in deap_kd.splitlines() if ln.strip().startswith("Combined loss"))
    assert f"{table[OWN].iloc[0]:.1f} ±" in own_row
    assert main(["report", str(folder / "run"), "--formats", "md"]) == 0
    md = (folder / "run" / "report.md").read_text()
    assert "## The combined student per dataset" in md
    assert "| CNN, Method 1, Combined loss · DEAP |" in md


def _rows(values, dataset, trained_on, method="method1", target="combined"):
    return [{"dataset": dataset, "trained_on": trained_on, "protocol": "subject",
             "method": method, "stage": "student", "model": "cnn", "target": target,
             "task": "fear", "fold": f, "seed": s, "split": "test", "metric": "accuracy",
             "value": v, "n_params": 1, "n_train": 10, "n_test": 5, "chance": 0.25}
            for f, per_seed in enumerate(values) for s, v in enumerate(per_seed)]


def test_combined_table_known_answer():
    from scipy import stats

    from fearkd.reporting.combined import COMBINED, DIFF, OWN, combined_table

    # 3 folds x 2 seeds; seeds are averaged within a fold, then paired on the fold
    comb = [(0.5, 0.7), (0.6, 0.6), (0.9, 0.7)]      # fold means 0.6, 0.6, 0.8
    own = [(0.4, 0.4), (0.6, 0.4), (0.5, 0.5)]       # fold means 0.4, 0.5, 0.5
    rows = (_rows(comb, "deap", "deap+asc") + _rows(own, "deap", "deap")
            + _rows([(0.5, 0.5)] * 3, "deap+asc", "deap+asc"))
    table = combined_table(pd.DataFrame(rows))
    deap = table.loc["CNN, Method 1, Combined loss · DEAP"]
    diff = np.array([0.2, 0.1, 0.3]) * 100
    half = stats.t.ppf(0.975, 2) * diff.std(ddof=1) / np.sqrt(3)
    assert deap[COMBINED] == pytest.approx(200 / 3)
    assert deap[OWN] == pytest.approx(140 / 3)
    assert deap[DIFF] == pytest.approx(20.0)
    assert deap[DIFF + " ±"] == pytest.approx(half)
    assert deap["n"] == 3
    assert np.isnan(table.loc["CNN, Method 1, Combined loss · all", OWN])


def _beat_rate(x: np.ndarray, sfreq: float) -> float:
    """Heart rate (bpm) of a cardiac waveform from its autocorrelation peak (0.4-1.5 s)."""
    x = (x - x.mean()) / x.std()
    ac = np.correlate(x, x, "full")[len(x) - 1:]
    lo, hi = int(0.4 * sfreq), int(1.5 * sfreq)
    return 60.0 * sfreq / (lo + int(np.argmax(ac[lo:hi])))


def test_frontal_gsr_hr_space_end_to_end(tmp_path):
    """Heart rate from DEAP's PPG and ASCERTAIN's ECG_L in one column, through a whole run."""
    from fearkd.datasets.loaders import open_dataset

    cfg = load_config(_write(tmp_path, '[common]\nspace = "frontal-gsr-hr"\n'
                                       '[evaluation]\nfolds = 2'))
    res = run_experiment(cfg, tmp_path / "run", methods=(), progress=False)
    fs = res.data.featureset
    assert fs.n_features == 21 and fs.feature_names[-1] == "hr:HR:hr"
    assert set(res.results["dataset"]) == {"deap", "ascertain", "deap+ascertain"}
    meta, hr = fs.metadata, fs.X[:, -1]
    # known answer: each trial's mean heart-rate feature against the beat period of the raw
    # waveform (NumPy autocorrelation), on the same channel the space names
    checked = 0
    for kind, folder, modality, channel in (("deap", "deap", "ppg", "PPG"),
                                            ("ascertain", "asc", "ecg", "ECG_L")):
        for subject in open_dataset(tmp_path / folder, kind=kind):
            for trial in subject.trials[:3]:
                sig = trial.signals[modality]
                truth = _beat_rate(np.asarray(sig.data[list(sig.ch_names).index(channel)]),
                                   sig.sfreq)
                rows = ((meta["dataset"] == kind) & (meta["trial"] == trial.trial)
                        & meta["subject"].str.endswith(str(subject.subject))).to_numpy()
                assert rows.any()
                assert abs(float(hr[rows].mean()) - truth) < 4.0, (kind, subject.subject)
                checked += 1
    assert checked == 18


def test_run_help_names_the_combined_table(capsys):
    from fearkd.cli import main

    with pytest.raises(SystemExit):
        main(["run", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "combined student's test accuracy per dataset" in text


def test_folds_are_checked_against_each_dataset(tmp_path):
    # the union's folds are each dataset's own folds, so 4 folds need 4 subjects in each
    # dataset even when the datasets' own models are not trained (per_dataset = false)
    cfg = load_config(_write(tmp_path, "[common]\nper_dataset = false\n"
                                       "[evaluation]\nfolds = 4"))
    with pytest.raises(ConfigError, match=r"\[evaluation\] folds = 4 but protocol 'subject' "
                                          r"has only 3 subjects; set folds = 3 or fewer"):
        run_experiment(cfg, tmp_path / "run", progress=False)
