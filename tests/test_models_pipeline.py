"""Every registry model trains end to end, under its registry name, through the experiment runner.

One tiny run per model: the conftest's synthetic DEAP, one subject-wise fold pair, one epoch,
Method 1 with a soft-target student (the model is both backbone and student), so the backbone,
transfer, distillation and scratch stages all build, train and score that model. Models added
to the registry later are picked up here without editing this file.
"""

from __future__ import annotations

import pandas as pd
import pytest

from fearkd.config import load_config
from fearkd.experiment import prepare_data, run_experiment
from fearkd.models.registry import MODELS


@pytest.fixture(scope="module")
def prepared(deap_root, tmp_path_factory, write_experiment):
    path = write_experiment(tmp_path_factory.mktemp("models-pipeline"), methods=("method1",),
                            kd_targets=("soft",))
    cfg = load_config(path)
    return cfg, prepare_data(cfg, data_path=deap_root, progress=False)


@pytest.mark.parametrize("name", MODELS.names())
def test_registry_model_trains_in_every_stage(name, prepared, tmp_path):
    cfg, data = prepared
    run_experiment(cfg, tmp_path / name, models=[name], prepared=data, progress=False)
    results = pd.read_csv(tmp_path / name / "results.csv")
    trained = results[results["method"] != "baseline"]
    stages = set(zip(trained["method"], trained["stage"], strict=True))
    expected = {("backbone", "backbone"), ("method1", "teacher"), ("method1", "student"),
                ("scratch", "student")}
    models = {name}
    if name == "ensemble":  # its unit leaves the scratch controls to the members' own units,
        expected.discard(("scratch", "student"))  # and its students are its first member
        models.add("ann")
    assert expected <= stages
    assert set(trained["model"]) == models
    assert set(trained[trained["stage"] != "student"]["model"]) == {name}
    assert set(trained["fold"]) == {0, 1}
    scores = trained[(trained["metric"] == "accuracy")]["value"]
    assert scores.between(0.0, 1.0).all() and len(scores) > 0
