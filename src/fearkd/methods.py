"""The reference's Method 1 and Method 2, the from-scratch student and the baselines, per fold.

A method is a list of stage descriptions (:class:`fearkd.stages.Stage`); :func:`run_pipeline`
builds the unit's list and runs each stage in order with :func:`fearkd.stages.run_stage`, on the
training side only. For the KD targets ``t`` of ``[methods] kd_targets``:

- :func:`backbone` (always): ``backbone/backbone/-``, the backbone (``cnn``, ``lstm``,
  ``gru``, any registry model) pretrained on the source task (DEAP valence, ASCERTAIN arousal)
  with the teacher's features on *every* training window, labelled for fear or not;
- :func:`method1` (TL then KD): ``method1/teacher/-``, a copy of the backbone with a new
  4-class head fine-tuned on the fear-labelled training windows on the backbone's scale = the
  fear **teacher**; then ``method1/student/<t>``, a **student** on the student's columns of
  the same windows, distilled from the teacher. ``hard`` (labels only, no KD) is the scratch
  student: with ``scratch`` on it is trained once, as ``scratch/student/-``, and reported as
  "hard labels (= scratch student, no KD)";
- :func:`method2` (KD then TL): ``method2/student-source/<t>``, the backbone distilled into a
  student on the *source* task, then ``method2/student/<t>``, its copy with a new head
  fine-tuned on fear on its scale;
- :func:`scratch` (whenever a method runs and ``scratch`` is on): ``scratch/student/-``, the
  student trained from scratch on fear (the reference's "without KD"), and, whenever
  ``method1`` runs, ``scratch/teacher/-``: the backbone's architecture on the teacher's columns,
  randomly initialised and trained on fear directly (the control of the TL effect on the
  teacher at the same input width);
- with ``[features] normalize = "calibration:..."`` and ``scratch`` on,
  ``scratch-subject-norm/student/-`` (:func:`subject_side`): the scratch student again, on the
  same fold normalised with ``"subject"``, so both normalisations are scored side by side;
- controls: :func:`mispaired` (``mispaired/student/<t>``, Method 1's KD with the teacher's
  outputs shuffled across rows) and :func:`method1_permuted` (``method1-permuted/backbone/-``
  pretrained on permuted source labels, then ``method1-permuted/teacher/-`` fine-tuned on fear);
- **baselines** (``[methods] baselines``, :func:`fearkd.models.baselines.make_baseline`),
  fitted on the training rows of the fear and the source task.

Methods are looked up in :data:`METHODS`; :func:`register_method` adds one (a function
``settings -> list[Stage]``) from outside the package. Every stage is scored on the training
rows and on the test rows of its task; scalers, early stopping and model selection see
training rows only (the inner validation split is grouped by trial, or the protocol's own
validation rows for ``seed-legacy``). Each stage is seeded from the unit's seed and its key
alone, and its model and results are checkpointed, so an interrupted unit resumes with
identical results.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ._registry import Registry
from .evaluation.metrics import chance_of_labels
from .labels import FEAR_CLASSES
from .stages import Fold, Stage, StageContext, _StageStore, metric_rows, run_stage, stage_seed
from .training.settings import FitSettings

if TYPE_CHECKING:
    from .config import ExperimentConfig

__all__ = ["METHODS", "PipelineSettings", "STAGES", "SUBJECT_SIDE", "Stage", "backbone",
           "method1", "method1_permuted", "method2", "mispaired", "register_method",
           "run_pipeline", "scratch", "stage_list", "subject_side"]

#: Values of the results' ``stage`` column, in report order.
STAGES = ("backbone", "teacher", "student-source", "student", "baseline")
BACKBONE = "backbone/backbone/-"

#: Methods by the name ``[methods] run`` takes, in report order.
METHODS: Registry[Callable[[PipelineSettings], list[Stage]]] = Registry("method",
                                                                         "[methods] run")


@dataclass(frozen=True)
class PipelineSettings:
    """What a unit trains; :meth:`from_config` builds it from an experiment file.

    Defaults are those of the experiment file's ``[methods]`` table; ``fit`` is its
    ``[training]`` table.
    """

    methods: tuple[str, ...] = ("method1", "method2")
    kd_targets: tuple[str, ...] = ("hard", "soft", "combined")
    alpha: float = 0.5
    temperature: float = 3.0
    soft_temperature: float = 1.0
    freeze: str = "none"
    baselines: tuple[str, ...] = ("majority", "stratified")
    scratch: bool = True
    student_model: str = ""
    model_params: Mapping[str, Mapping[str, object]] = field(default_factory=dict)
    fit: FitSettings = field(default_factory=FitSettings)
    #: ``[features] normalize``, fitted per fold (:class:`fearkd.stages.Fold`).
    normalize: str = "subject"
    #: What inner validation keeps apart: ``"subject"`` under the subject protocol.
    inner_groups: str = "trial"

    @classmethod
    def from_config(cls, cfg: ExperimentConfig, **overrides) -> PipelineSettings:
        """Settings of an experiment; ``overrides`` by field name, or by a field of
        :class:`~fearkd.training.FitSettings` (``progress=True``)."""
        m = cfg.methods
        fit_names = {f.name for f in dataclasses.fields(FitSettings)}
        fit_changes = {k: overrides.pop(k) for k in list(overrides) if k in fit_names}
        unknown = sorted(set(overrides) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise TypeError(f"Unknown pipeline setting(s) {unknown!r}; known: the fields of "
                            f"PipelineSettings and of FitSettings.")
        values = dict(
            methods=m.run, kd_targets=m.kd_targets, alpha=m.alpha, temperature=m.temperature,
            soft_temperature=m.soft_temperature,
            freeze=m.freeze, baselines=m.baselines, student_model=cfg.models.student,
            model_params=_model_params(cfg),
            fit=cfg.training.replace(**fit_changes), normalize=cfg.features.normalize,
        )
        values.update(overrides)
        return cls(**values)


def _model_params(cfg: ExperimentConfig) -> dict:
    """``[models.params.*]``, plus the ``ensemble`` model's members, kind and their params."""
    params = {k: dict(v) for k, v in cfg.models.params.items()}
    if cfg.models.ensemble:
        members = list(cfg.models.backbones)
        params["ensemble"] = {**params.get("ensemble", {}), "members": members,
                              "kind": cfg.models.ensemble,
                              "member_params": {m: params[m] for m in members if m in params}}
    return params


def register_method(name: str, stages: Callable[[PipelineSettings], list[Stage]], *,
                    description: str = "", overwrite: bool = False):
    """Make ``name`` a value of ``[methods] run``.

    Parameters
    ----------
    name : str
    stages : callable
        ``stages(settings) -> list[Stage]``, run after the backbone (whose key is
        ``"backbone/backbone/-"``) in order; a stage may start from, be taught by or reuse the
        scaler of the backbone or of an earlier stage of its own list.
    description : str
    overwrite : bool

    Returns
    -------
    callable
        ``stages``.
    """
    if not callable(stages):
        raise TypeError(f"Method {name!r}: 'stages' must be callable, got "
                        f"{type(stages).__name__}.")
    return METHODS.register(name, stages, description=description, overwrite=overwrite)


def _kd(target: str, teacher: str) -> dict:
    # "hard" is the trainer's own cross-entropy (class weights from the inner training rows)
    return {"loss": None, "teacher": None} if target == "hard" else \
        {"loss": target, "teacher": teacher}


def backbone(settings: PipelineSettings) -> list[Stage]:
    """The backbone pretrained on the source task with the teacher's columns (always runs)."""
    return [Stage("backbone", "backbone", task="source", inputs="teacher",
                  init_seed="init/backbone", epochs="pretrain")]


def method1(settings: PipelineSettings) -> list[Stage]:
    """TL then KD: the fine-tuned backbone is the fear teacher of one student per KD target."""
    teacher = Stage("method1", "teacher", task="fear", inputs="teacher", init_from=BACKBONE,
                    init_seed="init/teacher-head", freeze=settings.freeze,
                    scaler=f"from:{BACKBONE}")
    # "hard" = labels only = the scratch student: trained once, under scratch/student/-
    targets = [t for t in settings.kd_targets if not (t == "hard" and settings.scratch)]
    students = [Stage("method1", "student", target, task="fear", inputs="student",
                      model=settings.student_model, init_seed="init/student",
                      **_kd(target, teacher.key))
                for target in targets]
    return [teacher, *students]


def method2(settings: PipelineSettings) -> list[Stage]:
    """KD then TL: per KD target, the backbone distilled into a student on the source task,
    whose head is then replaced and fine-tuned on fear."""
    stages = []
    for target in settings.kd_targets:
        source = Stage("method2", "student-source", target, task="source", inputs="student",
                       model=settings.student_model, init_seed="init/student",
                       epochs="pretrain", **_kd(target, BACKBONE))
        stages += [source, Stage("method2", "student", target, task="fear", inputs="student",
                                 init_from=source.key, init_seed="init/student-head",
                                 freeze=settings.freeze, scaler=f"from:{source.key}")]
    return stages


def ensemble(settings: PipelineSettings) -> list[Stage]:
    """KD from an ensemble of teachers: the ``ensemble`` model (``[models] ensemble``: soft
    voting or stacking over the backbones, each member trained on fear with the teacher's
    columns) teaches one student per KD target. Run by the runner in a unit of its own."""
    teacher = Stage("ensemble", "teacher", task="fear", inputs="teacher", model="ensemble",
                    init_seed="init/ensemble-teacher")
    return [teacher, *[Stage("ensemble", "student", target, task="fear", inputs="student",
                             model=settings.student_model, init_seed="init/student",
                             **_kd(target, teacher.key))
                       for target in settings.kd_targets]]


def scratch(settings: PipelineSettings) -> list[Stage]:
    """The controls: the teacher from scratch (when ``method1`` runs: the backbone's
    architecture on the teacher's columns, random init, fear only) and the student from scratch
    (no KD; also the "hard labels" student). The teacher from scratch also runs with
    ``method1-permuted``, whose control it is."""
    stages = []
    if {"method1", "method1-permuted"} & set(settings.methods):
        stages.append(Stage("scratch", "teacher", task="fear", inputs="teacher",
                            init_seed="init/scratch-teacher"))
    return [*stages, Stage("scratch", "student", task="fear", inputs="student",
                           model=settings.student_model, init_seed="init/student")]


#: Method name of the scratch student trained again with ``normalize = "subject"`` when a run
#: normalises on a calibration part (``[features] normalize = "calibration:..."``).
SUBJECT_SIDE = "scratch-subject-norm"


def subject_side(settings: PipelineSettings) -> list[Stage]:
    """The normalisation control of a calibration run: ``scratch-subject-norm/student/-``, the
    scratch student on the same fold with each subject standardised on all of its own windows
    (``normalize = "subject"``), so that the report shows ``subject`` and ``calibration`` side
    by side. :func:`run_pipeline` adds it itself (it is not a value of ``[methods] run``)."""
    return [Stage(SUBJECT_SIDE, "student", task="fear", inputs="student",
                  model=settings.student_model, init_seed="init/student")]


def mispaired(settings: PipelineSettings) -> list[Stage]:
    """The KD control: per KD target but ``hard``, ``mispaired/student/<t>``, a student taught
    by Method 1's teacher with the teacher's outputs permuted across the training rows (each
    window gets another window's soft labels). Needs ``method1`` in the same run."""
    teacher = "method1/teacher/-"
    return [Stage("mispaired", "student", target, task="fear", inputs="student",
                  model=settings.student_model, init_seed="init/student", shuffle="teacher",
                  **_kd(target, teacher))
            for target in settings.kd_targets if target != "hard"]


def method1_permuted(settings: PipelineSettings) -> list[Stage]:
    """The TL control: ``method1-permuted/backbone/-``, the backbone pretrained on the source
    task with its labels permuted across the training rows, then ``method1-permuted/teacher/-``,
    its copy with a new head fine-tuned on fear exactly as Method 1's teacher. Its difference
    to the scratch teacher is what pretraining gives without the source labels (≈ 0 expected)."""
    pre = Stage("method1-permuted", "backbone", task="source", inputs="teacher",
                init_seed="init/backbone", epochs="pretrain", shuffle="labels")
    return [pre, Stage("method1-permuted", "teacher", task="fear", inputs="teacher",
                       init_from=pre.key, init_seed="init/teacher-head", freeze=settings.freeze,
                       scaler=f"from:{pre.key}")]


register_method("method1", method1, description="TL then KD: fine-tuned backbone teaches students")
register_method("method2", method2,
                description="KD then TL: backbone distilled on the source task, then fine-tuned")
register_method("mispaired", mispaired,
                description="control: Method 1's KD with the teacher's outputs shuffled across "
                            "rows (needs method1)")
register_method("method1-permuted", method1_permuted,
                description="control: Method 1's teacher from a backbone pretrained on permuted "
                            "source labels")
register_method("ensemble", ensemble,
                description="KD from an ensemble of teachers ([models] ensemble adds its unit; "
                            "not a value of [methods] run)")


def stage_list(settings: PipelineSettings) -> list[Stage]:
    """Every stage of a unit, in the order they run (the backbone first, then the methods of
    ``settings.methods`` in :data:`METHODS` order, then the scratch student)."""
    for name in settings.methods:
        METHODS.entry(name)
    if "mispaired" in settings.methods and "method1" not in settings.methods:
        raise ValueError("Method 'mispaired' is taught by Method 1's teacher: add \"method1\" "
                         "to [methods] run.")
    stages = backbone(settings)
    for name in METHODS:
        if name in settings.methods:
            stages += METHODS.get(name)(settings)
    if settings.scratch and settings.methods:
        stages += scratch(settings)
    keys = [st.key for st in stages]
    dup = sorted({k for k in keys if keys.count(k) > 1})
    if dup:
        raise ValueError(f"Stage key(s) {dup!r} appear twice in one unit; give each stage of a "
                         f"method its own (method, name, target).")
    return stages


def run_pipeline(fs, student_names: Sequence[str], train_idx, test_idx, *, val_idx=None,
                 backbone: str = "cnn", settings: PipelineSettings | None = None, seed: int = 0,
                 n_source_classes: int | None = None,
                 class_names: Sequence[str] = FEAR_CLASSES,
                 checkpoint_dir: str | Path | None = None) -> dict:
    """Train and score every stage of one fold on its training side only.

    Parameters
    ----------
    fs : FeatureSet
        Teacher features of every window (``y_fear``/``y_source`` in its metadata; -1 = none).
    student_names : sequence of str
        The student's columns, a subset of ``fs.feature_names`` (same windows, by name).
    train_idx, test_idx : array of int
        Row positions of the fold's training and test windows.
    val_idx : array of int, optional
        The protocol's own validation rows (``seed-legacy``); otherwise early stopping uses an
        inner split of the training rows grouped by ``settings.inner_groups``.
    backbone : str
        Registry name of the backbone (and of the student unless ``settings.student_model``).
    settings : PipelineSettings
    seed : int
    n_source_classes : int, optional
        Classes of the source task; default ``max(y_source) + 1`` over the training rows.
    class_names : sequence of str
        Fear class names (their count is the number of fear classes).
    checkpoint_dir : path, optional
        Stage checkpoints; finished stages found there are loaded instead of retrained.

    Returns
    -------
    dict
        ``rows`` (tidy results, see ``docs/RUNDIR.md``), ``histories`` and ``confusion`` keyed
        ``"<method>/<stage>/<target>"``, ``fit_seconds``, ``n_train``, ``n_test``,
        ``dropped_features`` (constant over the fold's training windows, see
        :class:`~fearkd.stages.Fold`).
    """
    s = settings or PipelineSettings()
    unknown = [n for n in student_names if n not in set(fs.feature_names)]
    if unknown:
        raise ValueError(f"Student feature(s) {unknown[:5]!r} are not teacher columns; the "
                         f"student must see a subset of the teacher's columns of the same windows.")
    stages = stage_list(s)
    fold = Fold(fs, student_names, train_idx, test_idx, val_idx, normalize=s.normalize,
                inner_groups=s.inner_groups)
    n_classes = {"fear": len(class_names),
                 "source": int(n_source_classes or (fold.y["source"][fold.train].max() + 1))}
    ctx = StageContext(
        fold=fold, settings=s, backbone=backbone, n_classes=n_classes,
        class_names=tuple(class_names), seed=seed,
        store=_StageStore(None if checkpoint_dir is None else Path(checkpoint_dir)),
        out={"rows": [], "histories": {}, "confusion": {}, "fit_seconds": 0.0,
             "n_train": int(len(fold.train)), "n_test": int(len(fold.test)),
             "dropped_features": list(fold.dropped)})
    for stage in stages:
        run_stage(stage, ctx)
    if s.scratch and s.methods and s.normalize.startswith("calibration:"):
        # the same student on the same fold, each subject standardised on all its windows
        side = Fold(fs, student_names, train_idx, test_idx, val_idx, normalize="subject",
                    inner_groups=s.inner_groups)
        run_stage(subject_side(s)[0], dataclasses.replace(ctx, fold=side, models={}, _logits={}))
    tasks = ("fear", "source") if s.methods else ("source",)
    ctx.out["rows"].extend(_baseline_rows(fold, s.baselines, n_classes, seed, tasks))
    return ctx.out


#: Baselines that learn nothing from the windows; their probabilities are the class priors.
_CHANCE_BASELINES = ("majority", "stratified")


def _baseline_rows(fold: Fold, names: Sequence[str], n_classes: dict[str, int], seed: int,
                   tasks: Sequence[str]) -> list[dict]:
    """Rows of the baselines, each fitted on the training rows of each task.

    Every baseline sees the teacher's columns of the same windows as the networks (the chance
    baselines, ``majority`` and ``stratified``, ignore them: they score what a model gets
    without learning anything from the windows, and their probabilities are the training class
    frequencies, so their log loss is the prior log loss (``ln 4`` for 4 balanced classes), not
    that of one-hot guesses; ``svm``, ``knn``, ``rf`` and ``lda`` are the
    classic models on the same features).
    """
    from .models.baselines import make_baseline

    rows = []
    X = fold.X["teacher"]
    for task in tasks:
        n = n_classes[task]
        tr, te = fold.rows(task, "train"), fold.rows(task, "test")
        if len(tr) == 0 or len(te) == 0:
            continue
        y = fold.y[task]
        for name in names:
            clf = make_baseline(name, random_state=stage_seed(seed, f"baseline/{name}/{task}"))
            clf.fit(X[tr], y[tr])
            y_true, pred, proba = {}, {}, {}
            priors = np.bincount(y[tr], minlength=n)[:n] / len(tr)
            for split, idx in (("train", tr), ("test", te)):
                p = np.zeros((len(idx), n))
                if name in _CHANCE_BASELINES:  # prior probabilities: log loss = their entropy
                    p[:] = priors
                else:
                    p[:, clf.classes_] = clf.predict_proba(X[idx])
                y_true[split], proba[split] = y[idx], p
                pred[split] = clf.predict(X[idx])
            info = {"method": "baseline", "stage": "baseline", "model": name, "target": "-",
                    "task": task, "n_params": 0, "n_train": int(len(tr)), "n_test": int(len(te)),
                    "chance": chance_of_labels(y, n)}
            rows.extend(metric_rows(info, y_true, pred, proba, n)[0])
    return rows
