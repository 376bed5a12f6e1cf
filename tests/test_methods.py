"""run_pipeline: every stage sees the training side only (issue 5), composition, checkpoints.

The data are the conftest's synthetic DEAP (3 subjects x 12 trials x 13 s: 144 windows of 4 s,
176 teacher and 86 student features, half the windows unlabelled for fear). One fold of the
subject protocol: two subjects train, one tests.
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import pandas as pd
import pytest
import torch

import fearkd.training.trainer as trainer_mod
from fearkd.config import ExperimentConfig
from fearkd.evaluation.metrics import METRICS
from fearkd.evaluation.splitters import make_splitter
from fearkd.experiment import prepare_data
from fearkd.features.featureset import FeatureSet
from fearkd.methods import (
    METHODS,
    PipelineSettings,
    Stage,
    method1,
    method2,
    register_method,
    run_pipeline,
    stage_list,
)
from fearkd.models import make_model
from fearkd.training import KD_LOSSES, FitSettings, make_kd_loss, register_kd_loss
from fearkd.training.checkpoint import load_checkpoint

SETTINGS = PipelineSettings(fit=FitSettings(epochs=2, batch_size=32, patience=0))
N_SOURCE = 10  # DEAP valence: 10 classes
KEYS = ["method", "stage", "model", "target", "task", "split", "metric"]
REAL_FIT = trainer_mod.fit


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    # Results depend on torch's thread count (summation order), so every run of this module
    # uses the same one, set before the module-scoped runs below; one thread is also the
    # fastest for tiny models on a shared machine.
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="module")
def data(deap_root):
    prep = prepare_data(ExperimentConfig(), data_path=deap_root, progress=False)
    meta = prep.featureset.metadata
    train, test = next(make_splitter("subject", n_splits=3, random_state=0).split(meta))
    return prep, train, test


def _run(fs, student_names, train, test, ckpt=None, settings=SETTINGS, **kw):
    return run_pipeline(fs, student_names, train, test, settings=settings, seed=0,
                        n_source_classes=N_SOURCE, checkpoint_dir=ckpt, **kw)


def _frame(rows) -> pd.DataFrame:
    return pd.DataFrame(rows).sort_values(KEYS).reset_index(drop=True)


def _poisoned(fs: FeatureSet, rows: np.ndarray, seed: int, labels: bool) -> FeatureSet:
    """A copy with huge random features at ``rows`` (and, optionally, shuffled labels)."""
    rng = np.random.default_rng(seed)
    X = fs.X.copy()
    X[rows] = (1e6 * rng.standard_normal((len(rows), X.shape[1]))).astype(np.float32)
    meta = fs.metadata.copy()
    if labels:
        # labels drawn from the classes the data hold, so the set of classes that occur (what
        # the `chance` column counts) is the same as without poisoning
        for col in ("y_fear", "y_source"):
            present = np.unique(meta[col][meta[col] >= 0])
            meta.loc[rows, col] = rng.choice(present, len(rows))
    return FeatureSet(X, fs.feature_names, meta)


def _states(directory) -> dict:
    """Every stage checkpoint of a unit: {file name: (state_dict, scaler mean, scaler scale)}."""
    out = {}
    for path in sorted(directory.glob("*.pt")):
        ck = load_checkpoint(path)
        out[path.name] = (ck.model.state_dict(), ck.scaler.mean_, ck.scaler.scale_)
    return out


@pytest.fixture(scope="module")
def base(data, tmp_path_factory):
    """The reference run, with stage checkpoints; records what every fit call received."""
    prep, train, test = data
    ckpt = tmp_path_factory.mktemp("base_ckpt")
    calls = []

    def recording_fit(model, X, y, **kw):
        calls.append({"X": np.array(X), "y": np.array(y), "n_out": model.head.out_features,
                      "validation": kw.get("validation")})
        return REAL_FIT(model, X, y, **kw)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(trainer_mod, "fit", recording_fit)
        out = _run(prep.featureset, prep.student_names, train, test, ckpt)
    return out, ckpt, calls


# ------------------------------------------------------------------------- issue 5: fold-aware
def test_poisoned_test_windows_change_nothing_trained(data, base, tmp_path):
    prep, train, test = data
    out_a, ckpt_a, _ = base
    fs_b = _poisoned(prep.featureset, test, seed=1, labels=True)
    ckpt_b = tmp_path / "b"
    out_b = _run(fs_b, prep.student_names, train, test, ckpt_b)
    a, b = _frame(out_a["rows"]), _frame(out_b["rows"])
    # every training-split score (and the training counts) of every stage is identical; only
    # n_test may change (poisoned labels turn unlabelled test windows into labelled ones)
    train_a, train_b = (df[df.split == "train"].drop(columns="n_test") for df in (a, b))
    pd.testing.assert_frame_equal(train_a, train_b, check_exact=True)
    # so are the learning curves (inner validation rows come from the training side)
    assert out_a["histories"].keys() == out_b["histories"].keys()
    for key, hist in out_a["histories"].items():
        np.testing.assert_array_equal(hist["train_loss"], out_b["histories"][key]["train_loss"])
        np.testing.assert_array_equal(hist["val_loss"], out_b["histories"][key]["val_loss"])
    # and every saved model and scaler, weight by weight
    states_a, states_b = _states(ckpt_a), _states(ckpt_b)
    assert len(states_a) == 12 and states_a.keys() == states_b.keys()
    for name, (sd_a, mean_a, scale_a) in states_a.items():
        sd_b, mean_b, scale_b = states_b[name]
        assert sd_a.keys() == sd_b.keys()
        for k in sd_a:
            assert torch.equal(sd_a[k], sd_b[k]), f"{name}: {k} differs"
        np.testing.assert_array_equal(mean_a, mean_b)
        np.testing.assert_array_equal(scale_a, scale_b)
    # the poison did reach the test side (the comparison above could have failed)
    test_a, test_b = a[a.split == "test"], b[b.split == "test"]
    assert not np.array_equal(test_a["value"].to_numpy(), test_b["value"].to_numpy())
    fear_test = int((fs_b.metadata["y_fear"].to_numpy()[test] >= 0).sum())
    assert set(test_b.loc[test_b.task == "fear", "n_test"]) == {fear_test}


def test_every_fit_sees_training_rows_of_its_task_only(data, base):
    prep, train, test = data
    _, _, calls = base
    fs = prep.featureset
    meta = fs.metadata
    y_fear, y_src = meta["y_fear"].to_numpy(), meta["y_source"].to_numpy()
    fear_rows, src_rows = train[y_fear[train] >= 0], train[y_src[train] >= 0]
    # the default normalize = "subject": each subject z-scored on its own windows of the fold
    # (an independent computation: pandas, float64)
    frame = pd.DataFrame(fs.X.astype(np.float64))
    zs = frame.groupby(meta["subject"].to_numpy()).transform(
        lambda c: (c - c.mean()) / c.std(ddof=0)).to_numpy()
    fs = FeatureSet(zs.astype(np.float32), fs.feature_names, meta)
    Xs = fs.select_columns(prep.student_names).X
    expected = {
        (fs.n_features, N_SOURCE): (fs.X[src_rows], y_src[src_rows]),  # backbone
        (fs.n_features, 4): (fs.X[fear_rows], y_fear[fear_rows]),  # teacher
        (Xs.shape[1], N_SOURCE): (Xs[src_rows], y_src[src_rows]),  # method2 student-source
        (Xs.shape[1], 4): (Xs[fear_rows], y_fear[fear_rows]),  # fear students
    }
    # backbone, teacher, 3 method-1 students, 3 x 2 method-2 stages, scratch
    assert len(calls) == 12
    for call in calls:
        X_exp, y_exp = expected[(call["X"].shape[1], call["n_out"])]
        np.testing.assert_allclose(call["X"], X_exp, rtol=1e-4, atol=1e-4)
        np.testing.assert_array_equal(call["y"], y_exp)
        assert call["validation"] is None  # no test row for early stopping
        assert (call["y"] >= 0).all()
    assert len(fear_rows) < len(src_rows)  # unlabelled windows exist in training


def test_unlabelled_windows_pretrain_only(data, base):
    """Poisoning the fear-unlabelled training windows changes the backbone, its teacher and the
    distilled students, but not the students that never see them or the teacher.

    Under ``normalize = "global"``: a per-subject normalisation uses every window of a subject,
    labelled or not, by design."""
    prep, train, test = data
    fs = prep.featureset
    y_fear = fs.metadata["y_fear"].to_numpy()
    unlabelled = train[y_fear[train] < 0]
    assert len(unlabelled) > 0
    settings = dataclasses.replace(SETTINGS, normalize="global")
    out_a = _run(fs, prep.student_names, train, test, settings=settings)
    out_c = _run(_poisoned(fs, unlabelled, seed=2, labels=False), prep.student_names, train,
                 test, settings=settings)
    a, c = _frame(out_a["rows"]), _frame(out_c["rows"])

    def part(df, method, stage, target):
        sel = df[(df.method == method) & (df.stage == stage) & (df.target == target)]
        return sel.reset_index(drop=True)

    for method, stage, target in [("scratch", "student", "-")]:
        pd.testing.assert_frame_equal(part(a, method, stage, target),
                                      part(c, method, stage, target), check_exact=True)
    fear_base = (a.method == "baseline") & (a.task == "fear")
    pd.testing.assert_frame_equal(a[fear_base], c[fear_base], check_exact=True)
    for method, stage, target in [("backbone", "backbone", "-"), ("method1", "teacher", "-"),
                                  ("method1", "student", "soft"),
                                  ("method1", "student", "combined"),
                                  ("method2", "student-source", "hard")]:
        va = part(a, method, stage, target).query("split == 'train'")["value"].to_numpy()
        vc = part(c, method, stage, target).query("split == 'train'")["value"].to_numpy()
        assert not np.array_equal(va, vc, equal_nan=True), (method, stage, target)
    # the counts in the rows: pretraining on every source-labelled training window
    meta = fs.metadata
    n_src = int((meta["y_source"].to_numpy()[train] >= 0).sum())
    n_fear = int((y_fear[train] >= 0).sum())
    assert set(a.loc[a.task == "source", "n_train"]) == {n_src}
    assert set(a.loc[a.task == "fear", "n_train"]) == {n_fear}
    assert n_fear < n_src


# ---------------------------------------------------------------------------- composition
def test_rows_hold_every_stage_of_both_methods(data, base):
    prep, _, _ = data
    df = _frame(base[0]["rows"])
    stages = set(map(tuple, df[["method", "stage", "model", "target", "task"]].to_numpy()))
    # "hard" under method1 is the scratch student, trained once
    kd = [("method1", "student", "cnn", t, "fear") for t in ("soft", "combined")]
    kd += [("method2", st, "cnn", t, task) for t in ("hard", "soft", "combined")
           for st, task in (("student-source", "source"), ("student", "fear"))]
    expected = {("backbone", "backbone", "cnn", "-", "source"),
                ("method1", "teacher", "cnn", "-", "fear"),
                ("scratch", "student", "cnn", "-", "fear"),
                ("scratch", "teacher", "cnn", "-", "fear"), *kd}
    expected |= {("baseline", "baseline", b, "-", task) for b in ("majority", "stratified")
                 for task in ("fear", "source")}
    assert stages == expected
    # every stage scored with every metric on both splits
    counts = df.groupby(["method", "stage", "model", "target", "task", "split"]).size()
    assert (counts == len(METRICS)).all() and len(counts) == 2 * len(expected)
    assert set(df.metric) == set(METRICS)
    chance = df.drop_duplicates("task").set_index("task")["chance"]
    # chance over the classes that occur (the DEAP source task's class 0 never does)
    y_src = data[0].featureset.metadata["y_source"].to_numpy()
    n_occur = len(np.unique(y_src[y_src >= 0]))
    assert n_occur < N_SOURCE
    assert chance["fear"] == 1 / 4 and chance["source"] == 1 / n_occur
    acc = df[df.metric.isin(["accuracy", "balanced_accuracy"])]["value"]
    assert ((acc >= 0) & (acc <= 1)).all()


def test_n_params_are_those_of_the_built_models(data, base):
    prep, _, _ = data
    df = _frame(base[0]["rows"])
    n_t, n_s = prep.featureset.n_features, len(prep.student_names)
    assert (n_t, n_s) == (176, 86)

    def count(n_features, n_outputs):
        return sum(p.numel() for p in make_model("cnn", n_features, n_outputs).parameters())

    params = df.drop_duplicates(["method", "stage", "target"]).set_index(
        ["method", "stage", "target"])["n_params"]
    assert params["backbone", "backbone", "-"] == count(n_t, N_SOURCE)
    assert params["method1", "teacher", "-"] == count(n_t, 4) == 166_228
    for target in ("hard", "soft", "combined"):
        if target != "hard":
            assert params["method1", "student", target] == count(n_s, 4) == 117_076
        assert params["method2", "student-source", target] == count(n_s, N_SOURCE)
        assert params["method2", "student", target] == count(n_s, 4)
    assert params["scratch", "student", "-"] == count(n_s, 4)
    assert params["scratch", "teacher", "-"] == count(n_t, 4)
    assert params["baseline", "baseline", "-"] == 0


def test_baselines_match_a_hand_count(data, base):
    prep, train, test = data
    df = _frame(base[0]["rows"])
    for task, col in (("fear", "y_fear"), ("source", "y_source")):
        y = prep.featureset.metadata[col].to_numpy()
        ytr, yte = y[train][y[train] >= 0], y[test][y[test] >= 0]
        counts = np.bincount(ytr)
        majority = int(np.argmax(counts))  # ties: the lowest class, like DummyClassifier
        sel = df[(df.model == "majority") & (df.task == task) & (df.metric == "accuracy")]
        value = sel.set_index("split")["value"]
        assert value["train"] == pytest.approx(counts[majority] / len(ytr))
        assert value["test"] == pytest.approx(np.mean(yte == majority))
        assert set(sel["n_test"]) == {len(yte)}
        # log loss of the prior probabilities (not of one-hot guesses): hand computation
        n = 4 if task == "fear" else N_SOURCE
        freq = np.bincount(ytr, minlength=n) / len(ytr)
        loss = df[(df.model == "majority") & (df.task == task) & (df.metric == "log_loss")]
        assert loss.set_index("split")["value"]["train"] == pytest.approx(
            -np.sum(freq[freq > 0] * np.log(freq[freq > 0])), rel=1e-6)


# ------------------------------------------------------------------------------ checkpoints
def test_finished_stages_are_loaded_not_retrained(data, base, tmp_path, monkeypatch):
    prep, train, test = data
    out_a, ckpt_a, _ = base
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    for path in ckpt_a.iterdir():
        (ckpt / path.name).write_bytes(path.read_bytes())

    def no_fit(*args, **kwargs):
        raise AssertionError("a finished stage was retrained")

    monkeypatch.setattr(trainer_mod, "fit", no_fit)
    again = _run(prep.featureset, prep.student_names, train, test, ckpt)
    pd.testing.assert_frame_equal(_frame(again["rows"]), _frame(out_a["rows"]), check_exact=True)
    assert again["histories"] == out_a["histories"]

    # one stage lost, one damaged: exactly those two retrain, with the same results
    (ckpt / "method1__student__soft.json").unlink()
    (ckpt / "method2__student__hard.pt").write_bytes(b"not a checkpoint")
    calls = []

    def counting_fit(model, X, y, **kw):
        calls.append(X.shape)
        return REAL_FIT(model, X, y, **kw)

    monkeypatch.setattr(trainer_mod, "fit", counting_fit)
    again = _run(prep.featureset, prep.student_names, train, test, ckpt)
    assert len(calls) == 2
    pd.testing.assert_frame_equal(_frame(again["rows"]), _frame(out_a["rows"]), check_exact=True)


# -------------------------------------------------------------------------- other backbones
def test_gru_backbone_with_method1_soft(data):
    prep, train, test = data
    settings = dataclasses.replace(SETTINGS, methods=("method1",), kd_targets=("soft",),
                                   fit=SETTINGS.fit.replace(epochs=1),
                                   model_params={"gru": {"hidden_size": 8}})
    out = _run(prep.featureset, prep.student_names, train, test, backbone="gru",
               settings=settings)
    df = _frame(out["rows"])
    assert set(df.model) == {"gru", "majority", "stratified"}
    assert set(df.method) == {"backbone", "method1", "scratch", "baseline"}
    n_t, n_s = prep.featureset.n_features, len(prep.student_names)
    teacher = make_model("gru", n_t, 4, hidden_size=8)
    student = make_model("gru", n_s, 4, hidden_size=8)
    params = df.drop_duplicates(["stage"]).set_index("stage")["n_params"]
    assert params["teacher"] == sum(p.numel() for p in teacher.parameters())
    assert params["student"] == sum(p.numel() for p in student.parameters())
    assert all(len(h["train_loss"]) == 1 for h in out["histories"].values())


def test_methods_empty_trains_the_backbone_only(data):
    prep, train, test = data
    settings = dataclasses.replace(SETTINGS, methods=(), fit=SETTINGS.fit.replace(epochs=1))
    df = _frame(_run(prep.featureset, prep.student_names, train, test, settings=settings)["rows"])
    assert set(zip(df.method, df.task, strict=True)) == {("backbone", "source"),
                                                        ("baseline", "source")}


def test_settings_from_config():
    cfg = ExperimentConfig().replace(methods={"run": ["method2"], "kd_targets": ["soft"],
                                              "alpha": 0.25, "temperature": 5.0},
                                     training={"epochs": 3, "pretrain_epochs": 7,
                                               "class_weight": "none"},
                                     models={"student": "gru",
                                             "params": {"gru": {"hidden_size": 8}}})
    s = PipelineSettings.from_config(cfg, progress=True)
    assert (s.methods, s.kd_targets, s.alpha, s.temperature) == (("method2",), ("soft",), 0.25,
                                                                 5.0)
    assert (s.fit.epochs, s.fit.pretrain_epochs, s.fit.class_weight, s.student_model) == \
        (3, 7, "none", "gru")
    assert s.model_params == {"gru": {"hidden_size": 8}} and s.fit.progress is True
    assert s.fit == cfg.training.replace(progress=True)


def test_student_columns_must_be_teacher_columns(data):
    prep, train, test = data
    with pytest.raises(ValueError, match=r"Student feature\(s\) \['eeg:XX:alpha'\] are not "
                                         r"teacher columns"):
        _run(prep.featureset, ["eeg:XX:alpha"], train, test)


def test_damaged_checkpoint_is_logged(data, base, tmp_path, caplog):
    prep, train, test = data
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / "backbone__backbone__-.json").write_text("{}")
    (ckpt / "backbone__backbone__-.pt").write_bytes(b"garbage")
    settings = dataclasses.replace(SETTINGS, methods=())
    with caplog.at_level(logging.WARNING, logger="fearkd.methods"):
        out = _run(prep.featureset, prep.student_names, train, test, ckpt, settings=settings)
    assert "Ignoring unreadable checkpoint" in caplog.text
    a = _frame(base[0]["rows"])
    b = _frame(out["rows"])
    pd.testing.assert_frame_equal(b[b.method == "backbone"].reset_index(drop=True),
                                  a[a.method == "backbone"].reset_index(drop=True),
                                  check_exact=True)


# --------------------------------------------------------------------------- stages as data
def test_stage_lists_of_the_methods():
    s = dataclasses.replace(SETTINGS, kd_targets=("hard", "soft"), scratch=False)
    assert [st.key for st in method1(s)] == ["method1/teacher/-", "method1/student/hard",
                                             "method1/student/soft"]
    # with the scratch control on, "hard" is the scratch student: trained once
    on = dataclasses.replace(s, scratch=True, methods=("method1",))
    assert [st.key for st in method1(on)] == ["method1/teacher/-", "method1/student/soft"]
    assert [st.key for st in stage_list(on)] == [
        "backbone/backbone/-", "method1/teacher/-", "method1/student/soft",
        "scratch/teacher/-", "scratch/student/-"]
    scratch_teacher = stage_list(on)[3]
    assert (scratch_teacher.inputs, scratch_teacher.init_from, scratch_teacher.model) == (
        "teacher", None, "")
    assert [st.key for st in stage_list(dataclasses.replace(on, methods=("method2",)))][-1:] \
        == ["scratch/student/-"]
    assert [st.key for st in method2(s)] == ["method2/student-source/hard",
                                             "method2/student/hard",
                                             "method2/student-source/soft",
                                             "method2/student/soft"]
    teacher, hard, soft = method1(s)
    assert (teacher.init_from, teacher.scaler, teacher.inputs) == (
        "backbone/backbone/-", "from:backbone/backbone/-", "teacher")
    assert (hard.loss, hard.teacher) == (None, None)
    assert (soft.loss, soft.teacher, soft.inputs) == ("soft", "method1/teacher/-", "student")
    source, fine = method2(s)[2:]
    assert (source.teacher, source.task, source.epochs) == ("backbone/backbone/-", "source",
                                                            "pretrain")
    assert (fine.init_from, fine.scaler) == (source.key, "from:" + source.key)
    both = dataclasses.replace(s, methods=("method2", "method1"), scratch=True)
    assert [st.key for st in stage_list(both)] \
        == ["backbone/backbone/-", *(st.key for st in method1(both)),
            *(st.key for st in method2(both)), "scratch/teacher/-", "scratch/student/-"]
    assert [st.key for st in stage_list(dataclasses.replace(s, methods=()))] == [
        "backbone/backbone/-"]


@pytest.mark.parametrize("name", METHODS.names())
def test_each_registered_method_runs(data, name):
    prep, train, test = data
    # the mis-paired KD control is taught by Method 1's teacher, so it runs beside Method 1
    methods = ("method1", name) if name == "mispaired" else (name,)
    settings = dataclasses.replace(SETTINGS, methods=methods, kd_targets=("soft",),
                                   scratch=False, fit=SETTINGS.fit.replace(epochs=1))
    out = _run(prep.featureset, prep.student_names, train, test, settings=settings)
    keys = {st.key for m in methods for st in METHODS.get(m)(settings)}
    assert set(out["histories"]) == keys | {"backbone/backbone/-"}
    df = _frame(out["rows"])
    assert set(df.method) == {"backbone", *methods, "baseline"}


@pytest.fixture
def mse_loss():
    """A KD loss registered the way a user outside the package would."""
    calls = []

    class LogitMatching(torch.nn.Module):
        def __init__(self, alpha, temperature, class_weight):
            super().__init__()
            self.class_weight = class_weight

        def forward(self, logits, y, teacher, X=None):
            calls.append((tuple(logits.shape), tuple(teacher.shape), tuple(X.shape)))
            return torch.nn.functional.mse_loss(logits, teacher)

    register_kd_loss("logit-mse", LogitMatching, description="MSE between logits")
    yield calls
    KD_LOSSES.unregister("logit-mse")


def test_a_kd_loss_registered_outside_runs_through_the_pipeline(data, base, mse_loss):
    prep, train, test = data
    settings = dataclasses.replace(SETTINGS, methods=("method1",),
                                   kd_targets=("soft", "logit-mse"))
    out = _run(prep.featureset, prep.student_names, train, test, settings=settings)
    df = _frame(out["rows"])
    assert set(df.loc[df.stage == "student", "target"]) == {"soft", "logit-mse", "-"}
    # the teacher's logits and the student's batch inputs reached the loss, batch by batch
    n_s = len(prep.student_names)
    assert mse_loss and all(s == t and x[1] == n_s for s, t, x in mse_loss)
    # the stages it shares with the reference run are unchanged by its presence
    a = _frame(base[0]["rows"])
    for key in (("method1", "teacher", "-"), ("method1", "student", "soft")):
        sel = [(d.method == key[0]) & (d.stage == key[1]) & (d.target == key[2]) for d in (a, df)]
        pd.testing.assert_frame_equal(a[sel[0]].reset_index(drop=True),
                                      df[sel[1]].reset_index(drop=True), check_exact=True)


def test_a_method_registered_outside_runs_through_the_pipeline(data):
    prep, train, test = data

    def probe(settings):
        """The backbone with a new fear head, its trunk frozen: a linear probe."""
        return [Stage("probe", "teacher", task="fear", inputs="teacher",
                      init_from="backbone/backbone/-", init_seed="init/teacher-head",
                      freeze="trunk", scaler="from:backbone/backbone/-")]

    register_method("probe", probe, description="linear probe of the backbone")
    try:
        settings = dataclasses.replace(SETTINGS, methods=("probe",), scratch=False)
        out = _run(prep.featureset, prep.student_names, train, test, settings=settings)
    finally:
        METHODS.unregister("probe")
    df = _frame(out["rows"])
    probe_rows = df[df.method == "probe"]
    assert set(probe_rows.task) == {"fear"} and set(probe_rows.split) == {"train", "test"}
    assert probe_rows["n_params"].iloc[0] == sum(
        p.numel() for p in make_model("cnn", prep.featureset.n_features, 4).parameters())
    assert "probe/teacher/-" in out["confusion"]


def test_unknown_method_and_kd_loss_name_the_key(data):
    prep, train, test = data
    with pytest.raises(ValueError, match=r"Invalid value for '\[methods\] run': expected one of "
                                         r"'method1', 'method2'.*got 'method3'"):
        _run(prep.featureset, prep.student_names, train, test,
             settings=dataclasses.replace(SETTINGS, methods=("method3",)))
    with pytest.raises(ValueError, match=r"Invalid value for '\[methods\] kd_targets': expected "
                                         r"one of 'hard', 'soft', 'combined'.*got 'sof'"):
        make_kd_loss("sof")


def test_bad_stage_lists_are_refused(data):
    prep, train, test = data
    with pytest.raises(ValueError, match=r"Stage 'm/s/-': invalid value for 'task': expected "
                                         r"one of 'fear', 'source', got 'valence'"):
        Stage("m", "s", task="valence")
    with pytest.raises(ValueError, match=r"invalid value for 'scaler': expected 'standard' or "
                                         r"'from:<stage key>', got 'minmax'"):
        Stage("m", "s", scaler="minmax")
    bad = {
        "orphan": ([Stage("orphan", "s", init_from="nowhere/s/-")],
                   r"Stage 'orphan/s/-': its init_from stage 'nowhere/s/-' has not run before "
                   r"it; list that stage earlier"),
        "twice": ([Stage("twice", "s"), Stage("twice", "s")],
                  r"Stage key\(s\) \['twice/s/-'\] appear twice in one unit"),
        "untaught": ([Stage("untaught", "s", loss="soft")],
                     r"Stage 'untaught/s/-': KD loss 'soft' needs a teacher stage; set "
                     r"'teacher'"),
    }
    for name, (stages, match) in bad.items():
        register_method(name, lambda settings, stages=stages: list(stages))
        try:
            settings = dataclasses.replace(SETTINGS, methods=(name,), scratch=False,
                                           fit=SETTINGS.fit.replace(epochs=1))
            with pytest.raises(ValueError, match=match):
                _run(prep.featureset, prep.student_names, train, test, settings=settings)
        finally:
            METHODS.unregister(name)


def test_from_config_overrides():
    cfg = ExperimentConfig()
    s = PipelineSettings.from_config(cfg, epochs=4, scratch=False)
    assert (s.fit.epochs, s.scratch, s.fit.batch_size) == (4, False, cfg.training.batch_size)
    with pytest.raises(TypeError, match=r"Unknown pipeline setting\(s\) \['epoch'\]"):
        PipelineSettings.from_config(cfg, epoch=1)


def test_feature_baselines_learn_from_the_teacher_columns(data):
    """``[methods] baselines`` takes every registered baseline; the classic ones see features.

    On the synthetic data the peripheral channels carry the fear signal, so a random forest on
    the teacher's columns must beat the majority class on the training rows; fitted on a column
    of zeros (the bug this guards against) it would equal it.
    """
    prep, train, test = data
    s = dataclasses.replace(SETTINGS, methods=(), baselines=("majority", "rf"))
    out = _run(prep.featureset, prep.student_names, train, test, settings=s)
    df = _frame(out["rows"])
    acc = df[(df.metric == "accuracy") & (df.split == "train") & (df.task == "source")]
    score = acc.set_index("model")["value"]
    assert score["rf"] > score["majority"] + 0.3
