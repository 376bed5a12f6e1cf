"""Cross-validation runner (issue 6): units, resume after a kill, joblib and Dask, run dirs.

Each run here is small: the conftest's synthetic DEAP (3 subjects), CNN and GRU (hidden size 8)
backbones, Method 1 with the soft KD target, one epoch.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from fearkd._atomic import write_atomic
from fearkd.config import ExperimentConfig, load_config
from fearkd.errors import ConfigError, FearkdError
from fearkd.evaluation.crossval import (
    RESULT_COLUMNS,
    Unit,
    make_units,
    run_units,
    timing_table,
)
from fearkd.experiment import prepare_data, run_experiment
from fearkd.rundir import RunDir


def _config(write_experiment, folder: Path) -> Path:
    return write_experiment(folder, name="crossval-test", backbones=["cnn", "gru"],
                            methods=["method1"], kd_targets=["soft"])


@pytest.fixture(scope="module")
def cfg(tmp_path_factory, write_experiment) -> ExperimentConfig:
    return load_config(_config(write_experiment, tmp_path_factory.mktemp("cfg")))


@pytest.fixture(scope="module")
def prepared(cfg, deap_root):
    return prepare_data(cfg, data_path=deap_root, progress=False)


@pytest.fixture(scope="module")
def serial(cfg, prepared, deap_root, tmp_path_factory):
    return run_experiment(cfg, tmp_path_factory.mktemp("serial"), data_path=deap_root,
                          prepared=prepared, progress=False)


def _unit_rows(rundir: RunDir) -> dict:
    return {uid: rundir.read_unit(uid) for uid in rundir.unit_ids()}


def _assert_same_units(a: RunDir, b: RunDir) -> None:
    ua, ub = _unit_rows(a), _unit_rows(b)
    assert len(ua) == 4 and ua.keys() == ub.keys()
    for uid in ua:
        ra = pd.DataFrame(ua[uid]["rows"])
        rb = pd.DataFrame(ub[uid]["rows"])
        pd.testing.assert_frame_equal(ra, rb, check_exact=True, obj=uid)
        assert ua[uid]["histories"].keys() == ub[uid]["histories"].keys()
        for key, hist in ua[uid]["histories"].items():
            assert hist["train_loss"] == ub[uid]["histories"][key]["train_loss"], (uid, key)
        assert ua[uid]["confusion"] == ub[uid]["confusion"]


# ------------------------------------------------------------------------------ execution
def test_serial_run_writes_every_unit(serial):
    run = serial.rundir
    ids = run.unit_ids()
    assert ids == sorted(f"deap__subject__{m}__fold{f}__seed0" for m in ("cnn", "gru")
                         for f in (0, 1))
    assert list(serial.results.columns) == list(RESULT_COLUMNS)
    for uid in ids:
        unit = run.read_unit(uid)
        assert set(unit) >= {"unit", "rows", "histories", "confusion", "fit_seconds", "n_train",
                             "n_test"}
        assert unit["unit"]["fold"] == int(uid.split("fold")[1][0])
        assert {r["fold"] for r in unit["rows"]} == {unit["unit"]["fold"]}
        # stage checkpoints of the unit, one model + one result file per trained stage
        ckpt = run.checkpoints / uid
        # backbone, teacher, soft student, scratch teacher, scratch student
        assert len(list(ckpt.glob("*.pt"))) == len(list(ckpt.glob("*.json"))) == 5


@pytest.mark.slow
def test_joblib_equals_serial_unit_by_unit(cfg, prepared, deap_root, serial, tmp_path):
    res = run_experiment(cfg, tmp_path / "jobs", data_path=deap_root, prepared=prepared,
                         jobs=2, progress=False)
    _assert_same_units(serial.rundir, res.rundir)
    pd.testing.assert_frame_equal(res.results, serial.results, check_exact=True)
    assert set(res.timing["workers"]) == {2}


@pytest.mark.slow
def test_dask_cluster_equals_serial_unit_by_unit(cfg, prepared, deap_root, serial, tmp_path):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        res = run_experiment(cfg, tmp_path / "dask", data_path=deap_root, prepared=prepared,
                             scheduler=cluster.scheduler_address, progress=False)
    _assert_same_units(serial.rundir, res.rundir)
    pd.testing.assert_frame_equal(res.results, serial.results, check_exact=True)


def test_finished_units_are_skipped(cfg, serial):
    from fearkd.evaluation.crossval import CVData

    run = serial.rundir
    units = [Unit(**run.read_unit(uid)["unit"]) for uid in run.unit_ids()]
    seen = []
    # no data at all: any unit that ran would fail
    results = run_units(units, CVData(None, (), {}, None, 10), run, progress=False,
                        on_unit=seen.append)
    assert seen == []
    pd.testing.assert_frame_equal(results, serial.results, check_exact=True)


def test_timing_table_sums_fit_seconds(serial):
    run = serial.rundir
    table = timing_table(run, run.unit_ids(), workers=3)
    assert list(table.columns) == ["dataset", "protocol", "model", "workers", "seconds", "hours"]
    for model in ("cnn", "gru"):
        expected = sum(run.read_unit(uid)["fit_seconds"] for uid in run.unit_ids()
                       if f"__{model}__" in uid)
        row = table[table.model == model].iloc[0]
        assert row["seconds"] == pytest.approx(expected)
        assert row["hours"] == pytest.approx(expected / 3600)
        assert row["workers"] == 3
    assert timing_table(run, [], workers=1).empty


def test_jobs_must_be_a_positive_int(serial):
    from fearkd.evaluation.crossval import CVData

    for bad in (0, 1.5, True):
        with pytest.raises(ValueError, match=r"Invalid value for 'jobs': expected an integer "
                                             r">= 1, got"):
            run_units([], CVData(None, (), {}, None, 10), serial.rundir, jobs=bad)


def test_make_units_order_and_duplicates():
    plan = [("subject", "cnn", ("method1",)), ("trial", "gru", ())]
    units = make_units("deap", plan, {("subject", 0): 2, ("subject", 1): 2, ("trial", 0): 1,
                                      ("trial", 1): 1}, seeds=[0, 1])
    assert [u.id for u in units] == [
        "deap__subject__cnn__fold0__seed0", "deap__subject__cnn__fold1__seed0",
        "deap__subject__cnn__fold0__seed1", "deap__subject__cnn__fold1__seed1",
        "deap__trial__gru__fold0__seed0", "deap__trial__gru__fold0__seed1",
    ]
    assert units[0].methods == ("method1",) and units[-1].methods == ()
    with pytest.raises(ValueError, match=r"Each \(protocol, model\) may appear once in a plan; "
                                         r"repeated: \[\('subject', 'cnn'\)\]"):
        make_units("deap", plan + [("subject", "cnn", ())], {("subject", 0): 2}, seeds=[0])


# --------------------------------------------------------------------------- resume (issue 6)
def _cli(config: Path, data: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "fearkd.cli", "run", str(config), "--data", str(data),
            "--out", str(out), "--quiet"]


def _stage_files(ckpt: Path) -> dict:
    """Finished stages (result and model both written) -> (inode, mtime) of their files."""
    out = {}
    for meta in ckpt.glob("*.json"):
        model = meta.with_suffix(".pt")
        if model.is_file():
            out[meta.name] = [(p.stat().st_ino, p.stat().st_mtime_ns) for p in (meta, model)]
    return out


@pytest.mark.slow
def test_killed_run_resumes_to_the_uninterrupted_result(deap_root, serial, tmp_path,
                                                       write_experiment):
    """SIGKILL a `fearkd run` between units, run it again: same results.csv as a clean run
    (``serial``: the same configuration run in this process without interruption)."""
    config = _config(write_experiment, tmp_path)  # 2 models x 2 folds
    n_units = 4
    out = tmp_path / "killed"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with open(tmp_path / "first.log", "w") as log:
        proc = subprocess.Popen(_cli(config, deap_root, out), stdout=log, stderr=log, env=env)
        deadline = time.monotonic() + 150
        try:
            while True:
                done = {p.stem for p in (out / "units").glob("*.json")}
                partial = [d for d in (out / "checkpoints").glob("*")
                           if d.name not in done and _stage_files(d)]
                if done and partial and len(done) < n_units:
                    proc.send_signal(signal.SIGKILL)
                    break
                assert proc.poll() is None, "the run finished before it could be killed: " + \
                    (tmp_path / "first.log").read_text()[-2000:]
                assert time.monotonic() < deadline, "no unit finished in time"
                time.sleep(0.01)
        finally:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    done = {p.stem for p in (out / "units").glob("*.json")}
    assert 1 <= len(done) < n_units
    partial = {d.name: _stage_files(d) for d in (out / "checkpoints").glob("*")
               if d.name not in done and _stage_files(d)}
    assert partial, "the kill landed as a unit was written; no unfinished unit to resume"
    assert not (out / "results.csv").exists()

    second = subprocess.run(_cli(config, deap_root, out), capture_output=True, text=True,
                            env=env, timeout=300)
    assert second.returncode == 0, second.stderr[-3000:]
    assert len(list((out / "units").glob("*.json"))) == n_units
    # the unfinished unit's finished stages were loaded, not retrained (files untouched)
    for uid, stages in partial.items():
        after = _stage_files(out / "checkpoints" / uid)
        assert len(after) == 5
        for name, files in stages.items():
            assert after[name] == files, (uid, name)
    clean = serial
    assert json.loads((out / "config.json").read_text()) == json.loads(
        (clean.rundir.path / "config.json").read_text())

    keys = ["model", "fold", "method", "stage", "target", "task", "split", "metric"]
    resumed = pd.read_csv(out / "results.csv").sort_values(keys).reset_index(drop=True)
    expected = pd.read_csv(clean.rundir.path / "results.csv").sort_values(keys)
    pd.testing.assert_frame_equal(resumed, expected.reset_index(drop=True), check_exact=True)
    assert (out / "results.csv").read_bytes() == (clean.rundir.path / "results.csv").read_bytes()
    env_json = json.loads((out / "environment.json").read_text())
    assert env_json["wall_seconds"] > 0 and "finished" in env_json


def test_resuming_with_another_config_is_refused(cfg, deap_root, serial):
    other = cfg.replace(training={"epochs": 2})
    with pytest.raises(ConfigError, match=r"holds a run with another configuration \(sections "
                                          r"differing: \['training'\]\); use a new --out folder"):
        run_experiment(other, serial.rundir.path, data_path=deap_root, progress=False)
    with pytest.raises(ConfigError, match=r"sections differing: \['run'\]"):
        run_experiment(cfg, serial.rundir.path, data_path=deap_root, models=["cnn"],
                       progress=False)


# ------------------------------------------------------------------------------- run dir
def test_rundir_errors(tmp_path):
    file = tmp_path / "file"
    file.write_text("x")
    with pytest.raises(ConfigError, match=r"is a file; give a folder path with --out"):
        RunDir(file)
    run = RunDir(tmp_path / "run")
    with pytest.raises(FearkdError, match=r"config.json is missing; is .* a fearkd run dir"):
        run.read_json("config.json")
    (run.path / "config.json").write_text("{not json")
    with pytest.raises(FearkdError, match=r"config.json is not valid JSON .*; delete it and "
                                          r"re-run"):
        run.read_json("config.json")


def test_keyed_configs_share_one_rundir(tmp_path):
    run = RunDir(tmp_path / "run")
    run.check_config({"a": 1}, key="deap")
    run.check_config({"a": 2}, key="ascertain")
    run.check_config({"a": 1}, key="deap")  # same: accepted
    assert run.read_json("config.json") == {"deap": {"a": 1}, "ascertain": {"a": 2}}
    # no unit of "deap" started yet: a changed config is no other experiment, it replaces it
    run.check_config({"a": 3}, key="deap")
    assert run.read_json("config.json") == {"deap": {"a": 3}, "ascertain": {"a": 2}}
    run.units_dir.mkdir(parents=True, exist_ok=True)
    (run.units_dir / "deap__subject__cnn__fold0__seed0.json").write_text("{}")
    with pytest.raises(ConfigError, match=r"sections differing: \['a'\]"):
        run.check_config({"a": 1}, key="deap")
    run.check_config({"a": 5}, key="ascertain")  # the other key has no work: replaced


def test_write_atomic_leaves_no_partial_file(tmp_path):
    target = tmp_path / "sub" / "x.json"
    write_atomic(target, "first")
    with pytest.raises(TypeError):
        write_atomic(target, 12345)  # not str or bytes: fails while writing
    assert target.read_text() == "first"
    assert [p.name for p in target.parent.iterdir()] == ["x.json"]
    write_atomic(target, b"second")
    assert target.read_bytes() == b"second"


def test_environment_wall_time_adds_up_over_experiments(tmp_path):
    from fearkd.rundir import RunDir

    run = RunDir(tmp_path / "run")
    run.start_environment(seeds=[0])
    run.finish_environment(10.0)
    run.start_environment(seeds=[0])  # a second experiment (or a resume) in the same directory
    run.finish_environment(5.0)
    assert run.read_json("environment.json")["wall_seconds"] == 15.0
