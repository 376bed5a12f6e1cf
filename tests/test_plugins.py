"""Pieces registered from outside the package run through an experiment file and the CLI.

The plug-in below lives in the test's temporary folder, not in fearkd: it registers a model, a
protocol, a KD loss and a dataset reader, and an experiment file names each of them. Nothing in
fearkd is edited; the experiment runs with ``jobs = 2``, so the loky workers must import the
plug-in themselves.
"""

from __future__ import annotations

import json
import os
import textwrap

import pandas as pd
import pytest

from fearkd.cli import main
from fearkd.config import load_config
from fearkd.datasets.loaders import READERS
from fearkd.errors import ConfigError
from fearkd.evaluation.splitters import PROTOCOLS
from fearkd.models.registry import MODELS
from fearkd.training.distill import KD_LOSSES

PLUGIN = '''
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from fearkd.datasets.deap import load_deap
from fearkd.datasets.loaders import register_reader
from fearkd.evaluation.splitters import MetadataSplitter, register_protocol
from fearkd.models import register_model
from fearkd.training.distill import register_kd_loss


class Tiny(nn.Module):
    """One hidden layer: the smallest network with a Linear head."""

    def __init__(self, n_features, n_outputs, *, hidden=8):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(n_features, hidden), nn.ReLU())
        self.head = nn.Linear(hidden, n_outputs)

    def forward(self, x):
        return self.head(self.body(x))


class Halves(MetadataSplitter):
    """Two folds: the first half of the subjects (sorted), then the second half."""

    protocol = "halves"

    def _iter(self, metadata):
        subjects = metadata["subject"].astype(str).to_numpy()
        names = sorted(set(subjects))
        first = np.isin(subjects, names[: len(names) // 2])
        rows = np.arange(len(metadata))
        empty = np.array([], dtype=np.int64)
        yield rows[~first], empty, rows[first]
        yield rows[first], empty, rows[~first]


class LogitMatch(nn.Module):
    """Cross-entropy on the labels plus the squared distance to the teacher's logits."""

    def __init__(self, class_weight=None, **_):
        super().__init__()
        self.class_weight = class_weight

    def forward(self, logits, y, teacher=None, X=None):
        return F.cross_entropy(logits, y, weight=self.class_weight) + F.mse_loss(logits, teacher)


register_model("tiny-plugin", Tiny, description="one hidden layer, from a plug-in")
register_protocol("halves", lambda n_splits, random_state, target: Halves(), group="subject",
                  description="two folds of half the subjects")
register_kd_loss("logit-match", LogitMatch, description="CE + MSE to the teacher's logits")
register_reader("deap-copy", load=load_deap, rules="deap", source="deap",
                description="DEAP files read by a plug-in's reader")
'''

EXPERIMENT = """\
name = "plugin-test"
plugins = ["parts/my_parts.py"]

[dataset]
kind = "deap-copy"
path = {path}

[features]
teacher = "deap-teacher"
student = "deap-student"

[models]
backbones = ["tiny-plugin"]

[methods]
run = ["method1"]
kd_targets = ["logit-match"]

[training]
epochs = 2
batch_size = 64
patience = 1

[evaluation]
protocol = "halves"
folds = 2
seeds = [0]
jobs = 2
"""


@pytest.fixture
def plugin_experiment(tmp_path, deap_root):
    (tmp_path / "parts").mkdir()
    (tmp_path / "parts" / "my_parts.py").write_text(textwrap.dedent(PLUGIN))
    path = tmp_path / "experiment.toml"
    path.write_text(EXPERIMENT.format(path=json.dumps(str(deap_root))))
    yield path
    # the registries are process-wide: leave them as the other tests expect
    MODELS.unregister("tiny-plugin")
    PROTOCOLS.unregister("halves")
    KD_LOSSES.unregister("logit-match")
    READERS.unregister("deap-copy")


@pytest.mark.slow
def test_outside_model_protocol_kd_loss_and_reader_run_through_the_cli(plugin_experiment,
                                                                        tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", str(plugin_experiment), "--out", str(out), "--quiet"]) == 0, \
        capsys.readouterr().err
    results = pd.read_csv(out / "results.csv")
    assert set(results["protocol"]) == {"halves"}
    assert set(results["fold"]) == {0, 1}
    assert "tiny-plugin" in set(results["model"])
    students = results[(results["method"] == "method1") & (results["stage"] == "student")]
    assert set(students["target"]) == {"logit-match"}
    assert set(students["model"]) == {"tiny-plugin"}
    # the resolved config records the plug-in by its absolute path
    config = json.loads((out / "config.json").read_text())
    plugins = config.get("plugins") or config.get("experiment", {}).get("plugins")
    assert plugins == [str((plugin_experiment.parent / "parts" / "my_parts.py").resolve())]


def test_cli_choices_list_the_plugins_names(plugin_experiment, capsys):
    # `cv --models` and `--protocol` validate against the registries after the file's plug-ins
    # are imported: a plug-in name is accepted, an unknown name still refused.
    with pytest.raises(SystemExit):
        main(["cv", str(plugin_experiment), "--help"])
    text = capsys.readouterr().out
    assert "tiny-plugin" in text and "halves" in text
    with pytest.raises(SystemExit) as exit_info:
        main(["cv", str(plugin_experiment), "--models", "nope", "--out", "x"])
    assert exit_info.value.code == 2
    assert "'tiny-plugin'" in capsys.readouterr().err


def test_loading_a_plugin_twice_registers_once(plugin_experiment):
    first = load_config(plugin_experiment)
    second = load_config(plugin_experiment)  # would raise "already registered" if re-imported
    assert first.plugins == second.plugins
    assert "logit-match" in KD_LOSSES and "logit-match" in first.methods.kd_targets


def test_env_var_plugins_reach_every_command(plugin_experiment, monkeypatch, capsys):
    monkeypatch.setenv("FEARKD_PLUGINS", str(plugin_experiment.parent / "parts" / "my_parts.py"))
    with pytest.raises(SystemExit):
        main(["cv", "--help"])
    assert "halves" in capsys.readouterr().out


def test_a_missing_plugin_is_one_line_naming_the_file(tmp_path, capsys):
    path = tmp_path / "bad.toml"
    path.write_text('plugins = ["no_such_fearkd_plugin"]\n')
    with pytest.raises(ConfigError, match=r"bad\.toml: plug-in 'no_such_fearkd_plugin' cannot "
                                          r"be imported .*PYTHONPATH"):
        load_config(path)
    assert main(["run", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no_such_fearkd_plugin" in err
    missing = tmp_path / "missing.toml"
    missing.write_text('plugins = ["nowhere.py"]\n')
    with pytest.raises(ConfigError, match=r"plug-in file '.*nowhere\.py' does not exist"):
        load_config(missing)


def test_a_plugin_that_fails_on_import_names_itself(tmp_path):
    (tmp_path / "broken.py").write_text("raise RuntimeError('boom')\n")
    path = tmp_path / "exp.toml"
    path.write_text('plugins = ["broken.py"]\n')
    with pytest.raises(ConfigError, match=r"plug-in '.*broken\.py' failed while importing: "
                                          r"RuntimeError: boom"):
        load_config(path)
    assert "FEARKD_PLUGINS" not in os.environ
