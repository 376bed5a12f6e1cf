import json
import re

import pytest

from fearkd.cli import build_parser, main


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for command in ("synth", "info", "labels"):
        assert command in out


def test_synth_info_labels_deap(tmp_path, capsys):
    root = tmp_path / "deap"
    assert main(["synth", "deap", str(root), "--subjects", "2", "--trials", "8",
                 "--seconds", "13", "--seed", "3"]) == 0
    assert (root / "data_preprocessed_python" / "s02.dat").is_file()
    capsys.readouterr()
    assert main(["info", str(root), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["dataset"] == "deap"
    assert info["n_subjects"] == 2 and info["n_trials"] == 16
    assert info["modalities"]["eeg"]["sfreq"] == 128.0
    assert len(info["modalities"]["eeg"]["channels"]) == 32
    assert info["onset_seconds"] == [3.0]
    assert main(["info", str(root)]) == 0
    text = capsys.readouterr().out
    assert "eeg   128 Hz, 32 channel(s)" in text
    assert main(["labels", str(root), "--json"]) == 0
    labels = json.loads(capsys.readouterr().out)
    assert labels["n_trials"] == 16
    assert labels["n_labelled"] + labels["n_unlabelled"] == 16
    assert set(labels["totals"]) == {"none", "low", "medium", "high"}


def test_synth_mat_format(tmp_path, capsys):
    root = tmp_path / "deapmat"
    assert main(["synth", "deap", str(root), "--subjects", "1", "--trials", "4",
                 "--seconds", "13", "--format", "mat"]) == 0
    assert (root / "data_preprocessed_matlab" / "s01.mat").is_file()
    capsys.readouterr()
    assert main(["info", str(root / "data_preprocessed_matlab"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["n_trials"] == 4


def test_info_and_labels_ascertain(ascertain_root, capsys):
    assert main(["info", str(ascertain_root), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["modalities"]["eeg"]["sfreq"] == 32.0
    assert info["modalities"]["ecg"]["sfreq"] == 256.0
    assert info["load_report"]["repaired"]  # NaN rows and 9-row EEG files are reported
    assert main(["labels", str(ascertain_root), "--nan-policy", "unlabelled"]) == 0
    assert "none" in capsys.readouterr().out


def test_errors_are_one_line(tmp_path, capsys):
    assert main(["info", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("fearkd info: error: Dataset path")
    assert "Traceback" not in err
    (tmp_path / "empty").mkdir()
    assert main(["info", str(tmp_path / "empty")]) == 2
    assert "data_preprocessed_python/s01.dat" in capsys.readouterr().err
    assert main(["synth", "deap", str(tmp_path / "x"), "--subjects", "40"]) == 2
    assert "subjects" in capsys.readouterr().err
    with pytest.raises(FileNotFoundError):
        main(["--debug", "info", str(tmp_path / "missing")])


def test_ascertain_rejects_format_flag(tmp_path, capsys):
    assert main(["synth", "ascertain", str(tmp_path / "a"), "--format", "mat"]) == 2
    assert "--format applies to DEAP only" in capsys.readouterr().err


def test_parser_builds():
    assert build_parser().prog == "fearkd"


def test_features_npz_is_readable_by_numpy_alone(deap_root, tmp_path, capsys):
    import numpy as np

    out = tmp_path / "teacher.npz"
    assert main(["features", str(deap_root), "--preset", "deap-student", "--window", "4",
                 "--step", "2", "--out", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["n_features"] == 86
    with np.load(out, allow_pickle=False) as data:
        X, names = data["X"], data["feature_names"]
        assert X.dtype == np.float32 and X.shape == (summary["n_windows"], 86)
        assert names[0] == "eeg:AF3:theta"
        assert len(data["meta_subject"]) == len(X)
        assert set(np.unique(data["meta_y_fear"])) <= {-1, 0, 1, 2, 3}
        # 3 subjects x 12 trials x 10 s after the 3 s baseline, 4 s windows every 2 s
        assert len(X) == 3 * 12 * 4


def test_features_rejects_an_output_that_is_not_npz(deap_root, tmp_path, capsys):
    assert main(["features", str(deap_root), "--preset", "deap-teacher",
                 "--out", str(tmp_path / "x.csv")]) == 2
    assert "--out must name a .npz file" in capsys.readouterr().err


# ------------------------------------------------------------------- thin CLI contract
def test_a_bug_keeps_its_traceback(monkeypatch, tmp_path):
    """Only user errors become one line; a TypeError or KeyError is a bug and propagates."""
    import fearkd.cli_data as cli_data

    for exc in (TypeError("bug"), KeyError("bug")):
        def broken(args, exc=exc):
            raise exc

        monkeypatch.setattr(cli_data, "_cmd_info", broken)
        with pytest.raises(type(exc), match="bug"):
            main(["info", str(tmp_path)])


def test_cv_flags_take_registered_names(capsys):
    from fearkd.evaluation.splitters import PROTOCOLS

    with pytest.raises(SystemExit) as info:
        main(["cv", "demo", "--out", "x", "--models", "cnn,nope"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert re.search(r"argument --models: expected a comma-separated list of .*'cnn', .*'lstm'"
                     r".* for --models, got 'cnn,nope'", err)
    with pytest.raises(SystemExit):
        main(["cv", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert all(name in out for name in tuple(PROTOCOLS))


def test_run_demo_reads_the_shipped_experiment_and_asks_for_data(tmp_path, capsys):
    assert main(["run", "demo", "--out", str(tmp_path / "run"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert re.fullmatch(r"fearkd run: error: .*demo\.toml: no dataset path: set \[dataset\] path "
                        r"or pass --data PATH\.", err), err


def test_synth_e4_writes_sessions_and_refuses_trials(tmp_path, capsys):
    root = tmp_path / "e4"
    assert main(["synth", "e4", str(root), "--subjects", "2", "--seconds", "60"]) == 0
    assert sorted(p.name for p in root.iterdir()) == [
        "S1", "S2", "description.toml", "fearkd-synthetic.json"]
    assert (root / "S2" / "IBI.csv").is_file()
    assert main(["info", str(root / "description.toml")]) == 0
    assert "synthetic data" in capsys.readouterr().out
    # --force rewrites a synthetic E4 folder (its files are the writer's own)
    assert main(["synth", "e4", str(root), "--subjects", "1", "--seconds", "60", "--force"]) == 0
    assert not (root / "S2").exists()
    assert main(["synth", "e4", str(tmp_path / "x"), "--trials", "3"]) == 2
    assert "--trials and --format do not apply to E4" in capsys.readouterr().err
