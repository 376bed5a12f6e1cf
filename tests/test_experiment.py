"""run_experiment and the run / cv / compare commands, end to end on synthetic data."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import re

import numpy as np
import pandas as pd
import pytest

import fearkd.evaluation.splitters as splitters
from fearkd.cli import main
from fearkd.config import load_config
from fearkd.errors import LeakageError
from fearkd.evaluation.metrics import METRICS
from fearkd.evaluation.results import RESULT_COLUMNS
from fearkd.experiment import run_experiment


@pytest.fixture(scope="module")
def cli_run(deap_root, tmp_path_factory, write_experiment):
    """`fearkd run` on the full pipeline (Method 1 and 2, three KD targets), 2 folds."""
    tmp = tmp_path_factory.mktemp("cli_run")
    config = write_experiment(tmp)
    out = tmp / "run"
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main(["run", str(config), "--data", str(deap_root), "--out", str(out), "--quiet"])
    return config, out, code, stdout.getvalue(), stderr.getvalue()


# ----------------------------------------------------------------------------------- CLI
def test_run_prints_the_reference_tables(cli_run):
    _, out, code, stdout, stderr = cli_run
    assert code == 0, stderr
    for title in ("Backbone (deap, protocol subject)", "Fine-tuned (deap, protocol subject)",
                  "Knowledge distillation for CNN (Method 1, student) (deap, protocol subject)",
                  "Knowledge distillation for CNN (Method 2, student-source)",
                  "Knowledge distillation for CNN (Method 2, student)",
                  "Method 1 vs Method 2 (deap, protocol subject)"):
        assert title in stdout, title
    # 2 folds x 16 stages (12 trained + 4 baselines) x 2 splits x each metric
    assert f"Results: {out / 'results.csv'} ({2 * 16 * 2 * len(METRICS)} rows)" in stdout


def test_run_writes_the_rundir_contract(cli_run):
    _, out, code, _, _ = cli_run
    assert code == 0
    header = (out / "results.csv").read_text().splitlines()[0]
    assert header.split(",") == list(RESULT_COLUMNS)
    df = pd.read_csv(out / "results.csv")
    # 2 folds x 16 stages (12 trained + 4 baselines) x 2 splits x 5 metrics
    assert len(df) == 2 * 16 * 2 * len(METRICS)
    assert set(df.dataset) == {"deap"} and set(df.protocol) == {"subject"}
    assert set(df.fold) == {0, 1} and set(df.seed) == {0}
    assert set(df.split) == {"train", "test"} and set(df.metric) == set(METRICS)
    assert set(df.method) == {"backbone", "method1", "method2", "scratch", "baseline"}
    assert set(df.stage) == {"backbone", "teacher", "student-source", "student", "baseline"}
    assert set(df.target) == {"-", "hard", "soft", "combined"}
    assert df.value.notna().sum() > 0.9 * len(df)
    for name in ("config.json", "environment.json", "timing.csv", "datasets/deap/label_report.json",
                 "datasets/deap/summary.json"):
        assert (out / name).is_file(), name
    env = json.loads((out / "environment.json").read_text())
    assert set(env) >= {"python", "platform", "cpu_count", "torch_threads", "versions", "started",
                        "finished", "wall_seconds", "seeds"}
    assert env["seeds"] == [0] and env["torch_threads"] == 1  # every unit: one thread
    config = json.loads((out / "config.json").read_text())
    assert config["name"] == "experiment-test" and config["training"]["epochs"] == 1
    timing = pd.read_csv(out / "timing.csv")
    assert {"protocol", "model", "workers", "seconds", "hours"} <= set(timing.columns)
    units = sorted((out / "units").glob("*.json"))
    assert [p.stem for p in units] == [f"deap__subject__cnn__fold{f}__seed0" for f in (0, 1)]
    unit = json.loads(units[0].read_text())
    assert unit["unit"] == {"dataset": "deap", "protocol": "subject", "model": "cnn", "fold": 0,
                            "seed": 0, "methods": ["method1", "method2"]}
    conf = unit["confusion"]["method1/teacher/-"]
    assert conf["labels"] == [0, 1, 2, 3] and conf["split"] == "test"
    assert conf["class_names"] == ["none", "low", "medium", "high"]
    teacher_test = [r for r in unit["rows"] if r["stage"] == "teacher" and r["split"] == "test"]
    assert np.sum(conf["matrix"]) == teacher_test[0]["n_test"] > 0
    assert set(unit["histories"]["method1/student/soft"]) == {"train_loss", "train_accuracy",
                                                               "val_loss", "val_accuracy"}


def test_same_seed_same_result_other_seed_differs(cli_run, deap_root, tmp_path):
    config, out, code, _, _ = cli_run
    assert code == 0
    cfg = load_config(config)
    again = run_experiment(cfg, tmp_path / "again", data_path=deap_root, progress=False)
    assert (again.rundir.path / "results.csv").read_bytes() == (out / "results.csv").read_bytes()
    other = run_experiment(cfg.replace(evaluation={"seeds": [1]}), tmp_path / "seed1",
                           data_path=deap_root, methods=(), progress=False)
    a = again.results[again.results.method == "backbone"].reset_index(drop=True)
    b = other.results[other.results.method == "backbone"].reset_index(drop=True)
    assert set(b.seed) == {1} and len(a) == len(b)
    assert not np.array_equal(a["value"].to_numpy(), b["value"].to_numpy(), equal_nan=True)


def test_cv_prints_timing_and_statistics_and_compare_json(deap_root, tmp_path, capsys,
                                                         write_experiment):
    config = write_experiment(tmp_path)
    out = tmp_path / "cv"
    code = main(["cv", str(config), "--data", str(deap_root), "--out", str(out), "--models",
                 "cnn,gru", "--methods", "backbone", "--folds", "2", "--quiet"])
    stdout = capsys.readouterr().out
    assert code == 0
    assert "Cross-validation time" in stdout
    # The timing table: a dataset column, and the run's wall time beside the summed unit time
    # (environment.json's wall_seconds, the number the report shows too).
    timing = stdout[stdout.index("Cross-validation time"):]
    assert re.search(r"^Model\s+Dataset\s+Workers\s+Time \(s\)", timing, re.M)
    assert re.search(r"^\s+CNN\s+DEAP\s", timing, re.M)
    wall = json.loads((out / "environment.json").read_text())["wall_seconds"]
    summed = pd.read_csv(out / "timing.csv")["seconds"].sum()
    assert re.search(rf"^\* Run wall time\s+.*\s{wall:.1f}\s", timing, re.M)
    assert re.search(rf"^\* All units \(summed\)\s+.*\s{summed:.1f}\s", timing, re.M)
    assert f"its wall time was {wall:,.0f} s" in timing
    assert "* run totals, not a model" in timing
    assert re.search(r"performances are (not )?significantly different\.", stdout)
    df = pd.read_csv(out / "results.csv")
    assert set(df.method) == {"backbone", "baseline"} and set(df.task) == {"source"}
    assert set(df.model) == {"cnn", "gru", "majority", "stratified"}

    assert main(["compare", str(out), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert set(data) == {"subject"}
    assert data["subject"]["metric"] == "accuracy"
    assert any("significantly different" in s for s in data["subject"]["sentences"])


def test_bad_config_key_is_one_line_exit_2(deap_root, tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text("[training]\nepoch = 1\n")
    code = main(["run", str(bad), "--data", str(deap_root), "--out", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1
    assert re.match(r"fearkd run: error: .*bad.toml: unknown key\(s\) \['epoch'\] in "
                    r"\[training\]; known keys: ", err)
    assert main(["compare", str(tmp_path / "nothing"), "--json"]) == 2
    assert "results.csv is missing" in capsys.readouterr().err


# ------------------------------------------------------------------------------ leakage
class _LeakySplitter:
    """Puts subject s01 on both sides and checks nothing itself."""

    def split_with_validation(self, meta):
        subjects = meta["subject"].to_numpy()
        train = np.flatnonzero(subjects != "s03")
        test = np.flatnonzero(subjects != "s02")
        yield train, np.empty(0, dtype=np.int64), test


def test_a_leaky_split_stops_the_run_before_training(deap_root, tmp_path, monkeypatch,
                                                     write_experiment):
    cfg = load_config(write_experiment(tmp_path))
    monkeypatch.setattr(splitters, "make_splitter", lambda *a, **k: _LeakySplitter())
    with pytest.raises(LeakageError, match=r"Split violates the 'subject' protocol: 1 "
                                           r"subject\(s\) \(e.g. \['s01'\]\)"):
        run_experiment(cfg, tmp_path / "leaky", data_path=deap_root, progress=False)
    assert not list((tmp_path / "leaky").glob("units/*.json"))
    assert not (tmp_path / "leaky" / "checkpoints").exists()


def test_the_splitters_own_guard_also_stops_the_run(deap_root, tmp_path, monkeypatch,
                                                    write_experiment):
    cfg = load_config(write_experiment(tmp_path))

    def leaky_iter(self, meta):
        yield from _LeakySplitter().split_with_validation(meta)

    monkeypatch.setattr(splitters.SubjectSplitter, "_iter", leaky_iter)
    with pytest.raises(LeakageError, match=r"Split violates the 'subject' protocol"):
        run_experiment(cfg, tmp_path / "leaky", data_path=deap_root, progress=False)
    assert not (tmp_path / "leaky" / "checkpoints").exists()


def test_window_protocol_runs_with_a_warning(deap_root, tmp_path, caplog, write_experiment):
    cfg = load_config(write_experiment(tmp_path))
    with caplog.at_level(logging.WARNING):
        res = run_experiment(cfg, tmp_path / "window", data_path=deap_root,
                             protocols=["window"], methods=(), progress=False)
    assert "leaky" in caplog.text
    assert set(res.results.protocol) == {"window"} and set(res.results.fold) == {0, 1}


# ---------------------------------------------------------------------------- ASCERTAIN
def test_ascertain_end_to_end(ascertain_root, tmp_path, write_experiment):
    config = write_experiment(tmp_path, kind="ascertain", nan_policy="unlabelled",
                              methods=["method1"], kd_targets=["soft"])
    res = run_experiment(load_config(config), tmp_path / "asc", data_path=ascertain_root,
                         progress=False)
    df = res.results
    assert set(df.dataset) == {"ascertain"}
    fear = df[(df.task == "fear") & (df.method != "baseline")]
    assert set(zip(fear.method, fear.stage, fear.target, strict=True)) == {
        ("method1", "teacher", "-"), ("method1", "student", "soft"), ("scratch", "student", "-"),
        ("scratch", "teacher", "-")}
    assert (fear.n_train > 0).all() and (fear.n_test > 0).all()
    assert set(df.loc[df.task == "source", "chance"]) == {1 / 7}  # ASCERTAIN arousal: 7 classes
    assert res.data.summary["windows"]["n_fear_labelled"] > 0


def test_a_run_that_failed_on_its_data_path_can_be_rerun_with_the_right_one(
        deap_root, tmp_path, capsys, write_experiment):
    config = write_experiment(tmp_path, methods=[], kd_targets=["hard"])
    out = tmp_path / "run"
    assert main(["run", str(config), "--data", str(tmp_path / "nope"), "--out", str(out),
                 "--quiet"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not (out / "config.json").exists()
    assert main(["run", str(config), "--data", str(deap_root), "--out", str(out), "--quiet"]) == 0
    assert (out / "results.csv").is_file()


def test_labels_of_a_generic_description_use_its_class_names(capsys):
    from pathlib import Path

    config = Path(__file__).resolve().parents[1] / "configs" / "physionet-noneeg.toml"
    shared = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "physionet-noneeg"
    if not shared.is_dir():
        pytest.skip(f"PhysioNet Non-EEG data not found at {shared}")
    assert main(["labels", str(config), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["classes"] == ["Relax", "PhysicalStress", "CognitiveStress", "EmotionalStress"]
    assert report["totals"] == {"Relax": 80, "PhysicalStress": 20, "CognitiveStress": 20,
                                "EmotionalStress": 40}
