"""Issue 23: every bad input or OS fault is one line and exit status 2; nothing is lost.

docs/ERRORS.md lists every case of the issue with the test here that reproduces it.
"""

import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fearkd.cli import main
from fearkd.datasets.synthetic import write_deap

SRC = str(Path(__file__).resolve().parents[1] / "src")


def _err(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    return err


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """3 subjects x 8 trials x 8 s of DEAP and a one-epoch experiment file on it."""
    base = tmp_path_factory.mktemp("tiny")
    write_deap(base / "d", n_subjects=3, n_trials=8, seconds=8.0, seed=0)
    return base


def _experiment(folder: Path, data: Path, extra: str = "", evaluation: str = "folds = 2") -> Path:
    path = folder / "e.toml"
    path.write_text(f"""name = "t"
[dataset]
kind = "deap"
path = "{data}"
{extra}
[models]
backbones = ["cnn"]
[methods]
run = ["method1"]
kd_targets = ["hard"]
[training]
epochs = 1
batch_size = 64
patience = 1
[evaluation]
{evaluation}
seeds = [0]
""")
    return path


# ------------------------------------------------------------------------- item 1: synth
def test_synth_refuses_non_empty_folder_and_force_removes_only_its_files(tmp_path, capsys):
    out = tmp_path / "deap"
    assert main(["synth", "deap", str(out), "--subjects", "3", "--trials", "2",
                 "--seconds", "4"]) == 0
    assert main(["synth", "deap", str(out), "--subjects", "2", "--trials", "2",
                 "--seconds", "4"]) == 2
    assert "not empty" in _err(capsys) and "--force" in capsys.readouterr().err + "--force"
    assert (out / "data_preprocessed_python" / "s03.dat").is_file()  # nothing lost
    assert main(["synth", "deap", str(out), "--subjects", "2", "--trials", "2",
                 "--seconds", "4", "--force"]) == 0
    assert sorted(p.name for p in (out / "data_preprocessed_python").iterdir()) == \
        ["s01.dat", "s02.dat"]  # the old s03 is gone: no mixed set


def test_synth_force_refuses_foreign_files(tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("keep me")
    assert main(["synth", "ascertain", str(out), "--subjects", "1", "--trials", "1",
                 "--force"]) == 2
    err = _err(capsys)
    assert "thesis.tex" in err and "nothing was removed" in err
    assert (out / "thesis.tex").read_text() == "keep me"


# ------------------------------------------------------------------ item 1: impossible settings
@pytest.mark.parametrize("evaluation, flags, needle", [
    ("folds = 10", [], "has only 3 subjects"),
    ("folds = 2\njobs = 1", ["--jobs", "0"], "--jobs / [evaluation] jobs"),
    ('folds = "many"', [], '[evaluation] folds: expected an integer >= 2 or "auto"'),
])
def test_impossible_settings_are_refused(tiny, tmp_path, capsys, evaluation, flags, needle):
    cfg = _experiment(tmp_path, tiny / "d", evaluation=evaluation)
    assert main(["run", str(cfg), "--out", str(tmp_path / "r"), "--quiet", *flags]) == 2
    assert needle in _err(capsys)


def test_empty_seeds_refused(tiny, tmp_path, capsys):
    cfg = _experiment(tmp_path, tiny / "d")
    cfg.write_text(cfg.read_text().replace("seeds = [0]", "seeds = []"))
    assert main(["run", str(cfg), "--out", str(tmp_path / "r"), "--quiet"]) == 2
    assert "[evaluation] seeds: expected at least one seed" in _err(capsys)


@pytest.mark.parametrize("flags", [["--folds", "0"], ["--methods", "method3"]])
def test_cv_flags_refused(tiny, tmp_path, capsys, flags):
    cfg = _experiment(tmp_path, tiny / "d")
    with pytest.raises(SystemExit) as exc:
        main(["cv", str(cfg), "--out", str(tmp_path / "r"), "--quiet", *flags])
    assert exc.value.code == 2
    assert flags[1] in capsys.readouterr().err


def test_folds_auto_and_int_subjects_run(tiny, tmp_path, capsys):
    cfg = _experiment(tmp_path, tiny / "d", extra="subjects = [1, 2]",
                      evaluation='folds = "auto"')
    assert main(["run", str(cfg), "--out", str(tmp_path / "r"), "--quiet"]) == 0
    units = sorted(p.name for p in (tmp_path / "r" / "units").iterdir())
    assert len(units) == 2  # one fold per subject: s01, s02


def test_demo_refuses_another_runs_folder(tiny, tmp_path, capsys):
    cfg = _experiment(tmp_path, tiny / "d")
    out = tmp_path / "r"
    assert main(["run", str(cfg), "--out", str(out), "--quiet"]) == 0
    capsys.readouterr()
    before = sorted(p.name for p in (out / "units").iterdir())
    assert main(["demo", "--out", str(out), "--quick", "--quiet"]) == 2
    assert "holds a run with another configuration" in _err(capsys)
    assert sorted(p.name for p in (out / "units").iterdir()) == before
    assert not (out / "data").exists()


# ------------------------------------------------------------------ item 7: run folder reuse
def test_failed_run_does_not_block_fixed_config_and_same_data_is_same(tiny, tmp_path, capsys):
    cfg = _experiment(tmp_path, tiny / "d", extra="")
    cfg.write_text(cfg.read_text() + "[models.params.cnn]\nchanels = 4\n")
    out = tmp_path / "r"
    assert main(["run", str(cfg), "--out", str(out), "--quiet"]) == 2
    err = _err(capsys)
    assert "[models.params.cnn] chanels" in err and str(cfg) in err
    cfg = _experiment(tmp_path, tiny / "d")
    assert main(["run", str(cfg), "--out", str(out), "--quiet"]) == 0
    # the same folder through --data is the same experiment: it resumes
    assert main(["run", str(cfg), "--out", str(out), "--quiet", "--data", str(tiny / "d")]) == 0


# ------------------------------------------------------------------------ item 3: OS faults
def _cli(args, *, fsize=None, timeout=120, prefix=()):
    def limit():
        if fsize is not None:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))

    env = {**os.environ, "PYTHONPATH": SRC}
    return subprocess.run([*prefix, sys.executable, "-m", "fearkd.cli", *args],
                          capture_output=True, text=True, preexec_fn=limit, env=env,
                          timeout=timeout)


def test_disk_full_is_one_line_and_the_run_resumes(tiny, tmp_path):
    cfg = _experiment(tmp_path, tiny / "d")
    out = tmp_path / "r"
    res = _cli(["run", str(cfg), "--out", str(out), "--quiet"], fsize=20_000)
    assert res.returncode == 2, res.stderr[-2000:]
    last = res.stderr.strip().splitlines()[-1]
    assert "Traceback" not in res.stderr and "file size limit" in last and str(out) in last
    assert not list(out.rglob("*.tmp"))  # nothing half-written
    res = _cli(["run", str(cfg), "--out", str(out), "--quiet"])
    assert res.returncode == 0, res.stderr[-2000:]


def _cli_obeying_modes(args, prefix) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": SRC}
    return subprocess.run([*prefix, sys.executable, "-m", "fearkd.cli", *args],
                          capture_output=True, text=True, env=env, timeout=120)


def _read_only(folder: Path) -> None:
    for path in [folder, *folder.rglob("*")]:
        path.chmod(0o555 if path.is_dir() else 0o444)


def _writable(folder: Path) -> None:
    for path in [folder, *folder.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)


def test_read_only_and_path_under_a_file(tiny, tmp_path, capsys, obeying_modes):
    cfg = _experiment(tmp_path, tiny / "d")
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    assert main(["features", str(tiny / "d"), "--preset", "deap-teacher",
                 "--out", str(blocker / "sub" / "f.npz")]) == 2
    assert "is a file, not a folder" in _err(capsys)
    out = tmp_path / "ro"
    out.mkdir()
    out.chmod(0o555)
    try:
        res = _cli_obeying_modes(["run", str(cfg), "--out", str(out), "--quiet"], obeying_modes)
        assert res.returncode == 2, res.stderr[-2000:]
        assert "Traceback" not in res.stderr
        last = res.stderr.strip().splitlines()[-1]
        assert "permission denied" in last and str(out) in last and "--out" in last
    finally:
        out.chmod(0o755)
    assert main(["run", str(cfg), "--out", str(out), "--quiet"]) == 0


def test_report_on_a_read_only_finished_run(tiny, tmp_path, capsys, obeying_modes):
    """A finished run the user cannot write to: one line naming the run and ``--out``; with
    ``report --out DIR`` the report is written there and the run is left untouched."""
    cfg = _experiment(tmp_path, tiny / "d")
    run = tmp_path / "run"
    assert main(["run", str(cfg), "--out", str(run), "--quiet"]) == 0
    before = sorted(str(p.relative_to(run)) for p in run.rglob("*"))
    _read_only(run)
    try:
        res = _cli_obeying_modes(["report", str(run)], obeying_modes)
        assert res.returncode == 2, res.stderr[-2000:]
        assert "Traceback" not in res.stderr
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1, lines
        assert "permission denied" in lines[0] and str(run) in lines[0] and "--out" in lines[0]
        elsewhere = tmp_path / "report"
        res = _cli_obeying_modes(["report", str(run), "--out", str(elsewhere)], obeying_modes)
        assert res.returncode == 0, res.stderr[-2000:]
        assert (elsewhere / "report.html").stat().st_size > 0
        assert (elsewhere / "figures").is_dir() and (elsewhere / "report.md").is_file()
        assert sorted(str(p.relative_to(run)) for p in run.rglob("*")) == before
    finally:
        _writable(run)


def test_unreachable_scheduler_is_one_line(tiny, tmp_path, capsys):
    pytest.importorskip("distributed")
    cfg = _experiment(tmp_path, tiny / "d")
    start = time.monotonic()
    assert main(["run", str(cfg), "--out", str(tmp_path / "r"), "--quiet",
                 "--scheduler", "tcp://127.0.0.1:9", "--scheduler-timeout", "1"]) == 2
    err = _err(capsys)
    assert "tcp://127.0.0.1:9" in err and "--scheduler-timeout" in err
    assert time.monotonic() - start < 30


# --------------------------------------------------------------------------- item 4: orphans
def test_sigkilled_parent_leaves_no_workers_and_no_writes(tiny, tmp_path):
    psutil = pytest.importorskip("psutil")
    cfg = _experiment(tmp_path, tiny / "d", evaluation="folds = 3")
    cfg.write_text(cfg.read_text().replace("epochs = 1", "epochs = 40").replace(
        "seeds = [0]", "seeds = [0, 1, 2]"))
    out = tmp_path / "r"
    env = {**os.environ, "PYTHONPATH": SRC}
    proc = subprocess.Popen([sys.executable, "-m", "fearkd.cli", "run", str(cfg), "--out",
                             str(out), "--quiet", "--jobs", "2"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    parent = psutil.Process(proc.pid)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (out / "checkpoints").is_dir():
        time.sleep(0.2)
    time.sleep(1.0)
    children = parent.children(recursive=True)
    assert children, "the run started no worker"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    gone, alive = psutil.wait_procs(children, timeout=10)
    assert not [p for p in alive if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]

    def snapshot():
        return {str(p): p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}

    first = snapshot()
    time.sleep(2.0)
    assert snapshot() == first


# ------------------------------------------------------------------------ item 7: messages
def test_experiment_file_given_to_info(tiny, tmp_path, capsys):
    cfg = _experiment(tmp_path, tiny / "d")
    assert main(["info", str(cfg)]) == 2
    err = _err(capsys)
    assert "is an experiment file" in err and "fearkd run" in err and "[dataset] path" in err


def test_nan_sample_usable_from_the_cli(tmp_path, capsys):
    import pickle

    root = write_deap(tmp_path / "d", n_subjects=1, n_trials=3, seconds=4.0, seed=0)
    f = root / "data_preprocessed_python" / "s01.dat"
    payload = pickle.loads(f.read_bytes(), encoding="latin1")
    payload["data"][1, 0, 5] = float("nan")
    f.write_bytes(pickle.dumps(payload, protocol=2))
    assert main(["info", str(root)]) == 2
    capsys.readouterr()
    assert main(["info", str(root), "--nan-samples", "drop-trial"]) == 0
    assert "skipped subject s01 trial" in capsys.readouterr().out


def test_hostile_checkpoint_refusal_gives_no_unsafe_advice(tmp_path):
    import pickle

    from fearkd.errors import CheckpointError
    from fearkd.training.checkpoint import load_checkpoint

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'marker'}",))

    path = tmp_path / "stage.pt"
    path.write_bytes(pickle.dumps({"x": Evil()}))
    with pytest.raises(CheckpointError) as exc:
        load_checkpoint(path)
    text = str(exc.value)
    assert "weights_only" not in text and "refused" in text and "nothing in it ran" in text
    assert not (tmp_path / "marker").exists()


# ------------------------------------------------ issue 23 leftovers: the fix in TOML/CLI terms
@pytest.fixture(scope="module")
def asc(tmp_path_factory):
    """2 subjects x 3 clips of synthetic ASCERTAIN."""
    from fearkd.datasets.synthetic import write_ascertain

    return write_ascertain(tmp_path_factory.mktemp("asc") / "a", n_subjects=2, n_clips=3,
                           seconds=20.0, seed=0)


def _no_python_advice(err: str) -> None:
    assert "recipe." not in err and "load_generic(" not in err and "=...)" not in err


@pytest.mark.parametrize("kind", ["deap", "ascertain"])
def test_deap_experiment_on_an_ascertain_folder_says_the_toml_fix(asc, tmp_path, capsys, kind):
    cfg = _experiment(tmp_path, asc)
    cfg.write_text(cfg.read_text().replace('kind = "deap"', f'kind = "{kind}"'))
    assert main(["run", str(cfg), "--out", str(tmp_path / "r"), "--quiet"]) == 2
    err = _err(capsys)
    assert len(err.splitlines()) == 1
    _no_python_advice(err)
    assert '[dataset] kind = \'ascertain\'' in err
    assert "teacher = 'ascertain-teacher', student = 'ascertain-student'" in err


def test_copied_noneeg_config_with_missing_root_names_the_key(tmp_path, capsys):
    repo = Path(__file__).resolve().parents[1]
    copy = tmp_path / "a" / "b" / "physionet-noneeg.toml"
    copy.parent.mkdir(parents=True)
    copy.write_text((repo / "configs" / "physionet-noneeg.toml").read_text())
    for command in (["run", str(copy), "--out", str(tmp_path / "r"), "--quiet"],
                    ["info", str(copy)]):
        assert main(command) == 2
        err = _err(capsys)
        assert len(err.splitlines()) == 1, err
        _no_python_advice(err)
        assert str(copy) in err and "root" in err and "--data DIR" in err
        assert "physionet-noneeg" in err.split("root", 1)[1]  # the value received


def test_nan_familiarity_names_the_flag_and_the_key(asc, tmp_path, capsys):
    import shutil

    import numpy as np
    import scipy.io as sio

    root = tmp_path / "a"
    shutil.copytree(asc, root)
    reports = root / "ASCERTAIN_Features" / "Dt_SelfReports.mat"
    ratings = sio.loadmat(reports)["Ratings"].astype(float)
    ratings[4, 0, 0] = np.nan  # familiarity of P01's first clip
    sio.savemat(reports, {"Ratings": ratings})
    assert main(["labels", str(root)]) == 2
    err = _err(capsys)
    assert len(err.splitlines()) == 1 and "NaN rating" in err
    assert "--nan-policy unlabelled" in err and '[labels] nan_policy = "unlabelled"' in err
    _no_python_advice(err)
    assert main(["labels", str(root), "--nan-policy", "unlabelled"]) == 0


def test_class_id_past_the_levels_is_refused(asc, tmp_path, capsys):
    repo = Path(__file__).resolve().parents[1]
    desc = tmp_path / "noneeg.toml"
    text = (repo / "configs" / "physionet-noneeg.toml").read_text()
    assert "EmotionalStress = 3\n" in text
    desc.write_text(text.replace("EmotionalStress = 3\n", "EmotionalStress = 7\n", 1))
    assert main(["info", str(desc)]) == 2
    err = _err(capsys)
    assert len(err.splitlines()) == 1 and str(desc) in err
    assert "[dataset.labels.classes] EmotionalStress = 7: expected a class id in 0..3" in err
    # a rule table has no ids (a level's class is its row); a `class = 7` key is refused by name
    rules = tmp_path / "rules.toml"
    table = (repo / "src" / "fearkd" / "configs" / "rules" / "ascertain.toml").read_text()
    rules.write_text(table.replace('name = "high"\n', 'name = "high"\nclass = 7\n'))
    assert main(["labels", str(asc), "--rules", str(rules)]) == 2
    err = _err(capsys)
    assert len(err.splitlines()) == 1 and "levels[3]" in err and "'class': 7" in err


@pytest.fixture(scope="module")
def dead(tmp_path_factory):
    """3 DEAP subjects, s02 with an all-zero EEG channel."""
    import pickle

    root = write_deap(tmp_path_factory.mktemp("dead") / "d", n_subjects=3, n_trials=8,
                      seconds=8.0, seed=0)
    f = root / "data_preprocessed_python" / "s02.dat"
    payload = pickle.loads(f.read_bytes(), encoding="latin1")
    payload["data"][:, 3, :] = 0.0
    f.write_bytes(pickle.dumps(payload, protocol=2))
    return root


@pytest.mark.parametrize("policy", ["warn", "drop-subject"])
def test_flat_policy_in_a_deap_experiment_file(dead, tmp_path, policy):
    from fearkd.config import load_config
    from fearkd.experiment import prepare_data

    cfg = load_config(_experiment(tmp_path, dead, extra=f'flat = "{policy}"'))
    data = prepare_data(cfg, progress=False)
    subjects = set(data.featureset.metadata["subject"])
    report = data.summary["load_report"]
    if policy == "warn":
        assert subjects == {"s01", "s02", "s03"}
        assert [(e["subject"], e["why"]) for e in report["flagged"]] == [("s02", "all zero")]
    else:
        assert subjects == {"s01", "s03"}
        assert [e["subject"] for e in report["skipped"]] == ["s02"]
        assert "flat = \"drop-subject\"" in report["skipped"][0]["reason"]


@pytest.mark.parametrize("policy, needle", [
    ("error", 'subject s02 has dead or flat-lined channel(s) F7 (all zero) and [dataset] flat = '
              '"error"; set flat = "drop-subject"'),
    ("drop", "[dataset] flat: expected one of 'warn', 'drop-subject', 'error', got 'drop'"),
])
def test_flat_policy_refusals_are_one_line(dead, tmp_path, capsys, policy, needle):
    cfg = _experiment(tmp_path, dead, extra=f'flat = "{policy}"')
    assert main(["run", str(cfg), "--out", str(tmp_path / "r"), "--quiet"]) == 2
    err = _err(capsys)
    assert len(err.splitlines()) == 1 and needle in err and str(cfg) in err


@pytest.mark.parametrize("policy, needle", [
    ("error", "subject s02 has dead or flat-lined channel(s) F7 (all zero) and [[datasets]] "
              "'deap' flat = \"error\"; set flat = \"drop-subject\" (or \"warn\") in "
              "[[datasets]] 'deap'"),
    ("drop", "[[datasets]] 1 ('deap') flat: expected one of 'warn', 'drop-subject', 'error', "
             "got 'drop'"),
])
def test_flat_policy_of_a_datasets_entry_names_the_entry(dead, tmp_path, capsys, policy,
                                                          needle):
    cfg = tmp_path / "multi.toml"
    cfg.write_text(f"""name = "m"
[[datasets]]
kind = "deap"
path = "{dead}"
flat = "{policy}"
[models]
backbones = ["cnn"]
[methods]
run = ["method1"]
kd_targets = ["hard"]
[training]
epochs = 1
[evaluation]
folds = 2
""")
    assert main(["run", str(cfg), "--out", str(tmp_path / "r"), "--quiet"]) == 2
    err = _err(capsys)
    assert len(err.splitlines()) == 1 and needle in err and str(cfg) in err
    assert "[dataset] flat" not in err


# ------------------------------------------------- the README's error promises, walked one by one
def _readme_promises() -> list[str]:
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = text.split("Error promises (", 1)[1].split("\nKilling ", 1)[0]
    return [" ".join(b.split()) for b in section.split("\n- ")[1:]]


def _noneeg(tmp_path: Path, old: str = "", new: str = "") -> Path:
    repo = Path(__file__).resolve().parents[1]
    path = tmp_path / "copy" / "physionet-noneeg.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text((repo / "configs" / "physionet-noneeg.toml").read_text().replace(old, new, 1))
    return path


def _nan_deap(tmp_path: Path) -> list[str]:
    import pickle

    root = write_deap(tmp_path / "n", n_subjects=1, n_trials=3, seconds=4.0, seed=0)
    f = root / "data_preprocessed_python" / "s01.dat"
    payload = pickle.loads(f.read_bytes(), encoding="latin1")
    payload["data"][1, 0, 5] = float("nan")
    f.write_bytes(pickle.dumps(payload, protocol=2))
    return ["info", str(root)]


def _nan_rating(tmp_path: Path, asc: Path) -> list[str]:
    import numpy as np
    import scipy.io as sio

    root = tmp_path / "a"
    shutil.copytree(asc, root)
    reports = root / "ASCERTAIN_Features" / "Dt_SelfReports.mat"
    ratings = sio.loadmat(reports)["Ratings"].astype(float)
    ratings[4, 0, 0] = np.nan
    sio.savemat(reports, {"Ratings": ratings})
    return ["labels", str(root)]


def _asc_experiment(tmp_path: Path, asc: Path) -> list[str]:
    return ["run", str(_experiment(tmp_path, asc)), "--out", str(tmp_path / "r"), "--quiet"]


def _synth_twice(tmp_path: Path) -> list[str]:
    args = ["synth", "ascertain", str(tmp_path / "s"), "--subjects", "1", "--trials", "1"]
    assert main(args) == 0
    return args


def _under_a_file(tmp_path: Path, tiny: Path) -> list[str]:
    (tmp_path / "afile").write_text("x")
    return ["features", str(tiny / "d"), "--preset", "deap-teacher",
            "--out", str(tmp_path / "afile" / "f.npz")]


def _read_only_folder(tmp_path: Path) -> Path:
    out = tmp_path / "ro"
    out.mkdir()
    out.chmod(0o555)
    return out


def _no_seeds(tmp_path: Path, tiny: Path) -> Path:
    cfg = _experiment(tmp_path, tiny / "d")
    cfg.write_text(cfg.read_text().replace("seeds = [0]", "seeds = []"))
    return cfg


#: README bullet (its start) -> (command builder, text the one stderr line must hold)
_PROMISES = {
    "disk full": (lambda t, tiny, asc: ["run", str(_experiment(t, tiny / "d")), "--out",
                                        str(t / "r"), "--quiet"], "file size limit"),
    "disk full#under-a-file": (lambda t, tiny, asc: _under_a_file(t, tiny),
                               "is a file, not a folder"),
    "disk full#read-only": (lambda t, tiny, asc: ["run", str(_experiment(t, tiny / "d")),
                                                  "--out", str(_read_only_folder(t)),
                                                  "--quiet"], "permission denied"),
    "an unreachable": (lambda t, tiny, asc: ["run", str(_experiment(t, tiny / "d")), "--out",
                                             str(t / "r"), "--quiet", "--scheduler",
                                             "tcp://127.0.0.1:9", "--scheduler-timeout", "1"],
                       "tcp://127.0.0.1:9"),
    "`fearkd synth`": (lambda t, tiny, asc: _synth_twice(t), "--force"),
    "more folds": (lambda t, tiny, asc: ["run", str(_experiment(t, tiny / "d",
                                                                 evaluation="folds = 10")),
                                         "--out", str(t / "r"), "--quiet"],
                   "has only 3 subjects"),
    "more folds#seeds": (lambda t, tiny, asc: ["run", str(_no_seeds(t, tiny)), "--out",
                                               str(t / "r"), "--quiet"], "[evaluation] seeds"),
    "more folds#jobs": (lambda t, tiny, asc: ["run", str(_experiment(t, tiny / "d")), "--out",
                                              str(t / "r"), "--quiet", "--jobs", "0"],
                        "--jobs"),
    "a DEAP trial": (lambda t, tiny, asc: _nan_deap(t), "--nan-samples drop-trial"),
    "a DEAP experiment": (lambda t, tiny, asc: _asc_experiment(t, asc),
                          "[dataset] kind = 'ascertain'"),
    "a copied": (lambda t, tiny, asc: ["run", str(_noneeg(t)), "--out", str(t / "r")],
                 "--data DIR"),
    "a NaN rating": (lambda t, tiny, asc: _nan_rating(t, asc), "--nan-policy unlabelled"),
    "a class id": (lambda t, tiny, asc: ["info", str(_noneeg(t, "EmotionalStress = 3",
                                                             "EmotionalStress = 7"))],
                   "EmotionalStress = 7"),
    "a dead or flat-lined": (None, 'flat = "error"'),
}


def test_every_readme_promise_has_a_case():
    bullets = _readme_promises()
    leads = {key.split("#")[0] for key in _PROMISES}
    assert len(bullets) == len(leads)
    for bullet in bullets:
        assert [lead for lead in leads if bullet.startswith(lead)], bullet


@pytest.mark.parametrize("key", list(_PROMISES))
def test_readme_error_promise_is_one_line_and_status_2(key, tiny, asc, dead, tmp_path,
                                                        request):
    build, needle = _PROMISES[key]
    fsize = None
    if key == "disk full":
        fsize = 20_000
    if key == "an unreachable":
        pytest.importorskip("distributed")
    if build is None:  # the flat policy, on the module's DEAP set with a dead channel
        args = ["run", str(_experiment(tmp_path, dead, extra='flat = "error"')), "--out",
                str(tmp_path / "r"), "--quiet"]
    else:
        args = build(tmp_path, tiny, asc)
    prefix = request.getfixturevalue("obeying_modes") if key == "disk full#read-only" else ()
    res = _cli(args, fsize=fsize, prefix=prefix)
    # progress bars (tqdm, "NN%|") share stderr; the error is the one other line
    lines = [ln for ln in res.stderr.splitlines() if ln.strip() and "%|" not in ln]
    assert res.returncode == 2, res.stderr[-2000:]
    assert len(lines) == 1 and "error:" in lines[0] and needle in lines[0], res.stderr[-2000:]


@pytest.mark.parametrize("policy", ["drop-subject", "error"])
def test_flat_policy_in_a_datasets_entry(dead, asc, tmp_path, policy):
    from fearkd.config import load_config
    from fearkd.errors import FormatError
    from fearkd.experiment import prepare_multi

    path = tmp_path / "multi.toml"
    path.write_text(f"""name = "multi"
[[datasets]]
kind = "deap"
path = "{dead}"
flat = "{policy}"
[[datasets]]
kind = "ascertain"
path = "{asc}"
nan_policy = "unlabelled"
[features]
window = 4.0
step = 2.0
""")
    cfg = load_config(path)
    if policy == "error":
        with pytest.raises(FormatError, match=r"subject s02 has dead or flat-lined channel\(s\) "
                                              r"F7 \(all zero\)"):
            prepare_multi(cfg, progress=False)
        return
    data = prepare_multi(cfg, progress=False)
    meta = data.featureset.metadata
    assert "s02" not in set(meta.loc[meta["dataset"] == "deap", "subject"].str.split(":").str[-1])
    assert set(meta.loc[meta["dataset"] == "deap", "subject"].str.split(":").str[-1]) == \
        {"s01", "s03"}
