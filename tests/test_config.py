from pathlib import Path

import pytest

from fearkd.config import ExperimentConfig, config_to_dict, load_config
from fearkd.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


def _write(tmp_path, text):
    p = tmp_path / "exp.toml"
    p.write_text(text)
    return p


def test_defaults_and_overrides(tmp_path):
    cfg = load_config(_write(tmp_path, """
name = "x"
[dataset]
kind = "ascertain"
path = "data"
subjects = [1, "P02"]
[evaluation]
protocol = "trial"
folds = 3
seeds = [0, 1]
"""))
    assert cfg.name == "x"
    assert cfg.dataset.kind == "ascertain"
    assert cfg.dataset.path == str((tmp_path / "data").resolve())
    assert cfg.dataset.subjects == ("1", "P02")
    assert cfg.evaluation.seeds == (0, 1)
    assert cfg.training == ExperimentConfig().training


def test_replace_validates():
    cfg = ExperimentConfig()
    assert cfg.replace(evaluation={"folds": 3}).evaluation.folds == 3
    with pytest.raises(ConfigError, match="expected one of"):
        cfg.replace(evaluation={"protocol": "subjects"})


def test_round_trip_dict():
    d = config_to_dict(ExperimentConfig())
    assert d["methods"]["kd_targets"] == ["hard", "soft", "combined"]


@pytest.mark.parametrize(
    "text,match",
    [
        ("[dataset]\nknd = 'deap'\n", r"unknown key\(s\) \['knd'\] in \[dataset\]"),
        ("[training]\nepochs = 'ten'\n", r"\[training\] epochs: expected an integer, got 'ten'"),
        ("[evaluation]\nprotocol = 'subjects'\n",
         r"Invalid value for '\[evaluation\] protocol': expected one of 'subject', 'trial', "
         r"'window', 'seed-legacy', 'train-on-one', 'leave-one-dataset-out', got 'subjects'\."),
        ("[methods]\nkd_targets = ['hard', 'warm']\n",
         r"Invalid value for '\[methods\] kd_targets': expected one of 'hard', 'soft', "
         r"'combined', got 'warm'"),
        ("[methods]\nbaselines = ['tree']\n",
         r"Invalid value for '\[methods\] baselines': expected one of 'svm', 'knn', 'rf', "
         r"'lda', 'logreg', 'majority', 'stratified', got 'tree'"),
        ("[methods]\nrun = ['method3']\n",
         r"Invalid value for '\[methods\] run': expected one of .*'method1'.*got 'method3'"),
        ("[methods]\nfreeze = 'head'\n",
         r"Invalid value for '\[methods\] freeze': expected one of 'none', .*got 'head'"),
        ("[dataset]\nkind = 'swell'\n",
         r"Invalid value for '\[dataset\] kind': expected one of 'deap', 'ascertain', "
         r"'wesad', 'generic', got 'swell'"),
        ("[dataset]\nkind = 'deap'\nformat = 'mat'\n",
         r"unknown key\(s\) \['format'\] in \[dataset\] for kind 'deap'; known keys: "
         r"\['kind', 'path', 'flat', 'subjects', 'channels', 'fmt', 'nan_policy'\]"),
        ("[models]\nbackbones = ['cnn', 'transformer']\n",
         r"Invalid value for '\[models\] backbones': expected one of .*got 'transformer'"),
        ("[models]\nstudent = 'tiny'\n",
         r"Invalid value for '\[models\] student': expected one of .*got 'tiny'"),
        ("[labels]\nambiguous = 'keep'\n",
         r"Invalid value for '\[labels\] ambiguous': expected one of 'drop', 'first', "
         r"'error', got 'keep'"),
        ("[labels]\nnan_policy = 'drop'\n",
         r"Invalid value for '\[labels\] nan_policy': expected one of 'raise', 'unlabelled', "
         r"got 'drop'"),
        ("[features]\nmethod = 'fft'\n",
         r"Invalid value for '\[features\] method': expected one of 'filter', 'welch', 'de', "
         r"'periodogram', got 'fft'"),
        ("[methods]\nalpha = 2.0\n", r"alpha: expected a number in \[0, 1\]"),
        ("[training]\nlr = -1.0\n", "expected a positive value"),
        ("[evaluation]\nfolds = 1\n", "expected at least 2"),
        ("bogus = 1\n", r"unknown top-level key\(s\) \['bogus'\]"),
        ("[dataset\n", "not valid TOML"),
        ("dataset = 3\n", r"\[dataset\] must be a table"),
    ],
)
def test_bad_files_name_key_and_file(tmp_path, text, match):
    p = _write(tmp_path, text)
    with pytest.raises(ConfigError, match=match) as info:
        load_config(p)
    assert str(p) in str(info.value)


def test_reader_options_pass_through(tmp_path):
    cfg = load_config(_write(tmp_path, """
[dataset]
kind = "deap"
path = "data"
fmt = "mat"
channels = ["Fp1", "GSR"]
[methods]
baselines = ["svm", "lda", "majority"]
"""))
    assert dict(cfg.dataset.options) == {"fmt": "mat", "channels": ["Fp1", "GSR"]}
    assert cfg.dataset.subjects == ()
    assert cfg.methods.baselines == ("svm", "lda", "majority")


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml")


@pytest.mark.parametrize("path", sorted((REPO / "configs").glob("*.toml")), ids=lambda p: p.name)
def test_shipped_configs_load(path):
    if path.name == "physionet-noneeg.toml" and "[experiment]" in path.read_text():
        pytest.skip("description-only file")
    assert isinstance(load_config(path), ExperimentConfig)
