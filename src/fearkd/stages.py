"""One stage of a unit as data (:class:`Stage`), and the one function that runs it.

A stage says what to train, not how: its task (fear or the source task), whose columns it sees
(the teacher's or the student's), how its model is built (a registry model, or a copy of an
earlier stage's model with a new head), its loss (cross-entropy, or a KD loss of
:data:`fearkd.training.distill.KD_LOSSES` taught by an earlier stage), its freeze policy, its
scaler (a new one, or an earlier stage's) and whether it pretrains or fine-tunes.
:func:`run_stage` trains it (or reloads its checkpoint) and scores it on the training and test
rows of its task; the methods of :mod:`fearkd.methods` are lists of stages.

Each stage is seeded from the unit's seed and the stage's key alone (:func:`stage_seed`), so a
stage's result does not depend on which other stages run, and an interrupted unit resumes with
identical results. A unit's fold (its rows, per-fold normalisation and inner validation groups)
is :class:`~fearkd.folds.Fold`, re-exported here.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ._atomic import dumps, write_atomic
from .evaluation.metrics import METRICS, chance_of_labels, fold_metrics
from .folds import Fold, constant_features

if TYPE_CHECKING:
    from .methods import PipelineSettings

__all__ = ["Stage", "StageContext", "run_stage", "stage_seed", "Fold", "constant_features"]

logger = logging.getLogger(__name__)

TASKS = ("fear", "source")
INPUTS = ("teacher", "student")
EPOCHS = ("pretrain", "finetune")
#: What a control stage shuffles across its training (and validation) rows: nothing, its
#: labels (a backbone that learns no source task) or its teacher's outputs (mis-paired KD).
SHUFFLES = ("none", "labels", "teacher")


def stage_seed(seed: int, key: str) -> int:
    """A seed for one stage that depends on the unit's seed and the stage's key only."""
    return (int(seed) * 1_000_003 + zlib.crc32(key.encode())) % (2**31 - 1)


@dataclass(frozen=True)
class Stage:
    """What one stage trains.

    Parameters
    ----------
    method, name, target : str
        The stage's place in the results (``method``, ``stage`` and ``target`` columns);
        ``key`` is ``"<method>/<name>/<target>"``.
    task : {"fear", "source"}
        The labels it learns and is scored on (training rows labelled for that task only).
    inputs : {"teacher", "student"}
        The feature columns it sees.
    model : str
        Registry model name; ``""``: the unit's backbone for teacher inputs, the student model
        for student inputs. Ignored with ``init_from``.
    init_seed : str
        Key seeding the new model (or the new head with ``init_from``), e.g. ``"init/student"``.
    init_from : str or None
        Key of an earlier stage whose model is copied and given a new head for ``task``.
    loss : str or None
        None: the trainer's cross-entropy; else a name of ``KD_LOSSES``.
    teacher : str or None
        Key of the earlier stage whose logits (on its own inputs, same rows) teach this one;
        required by a KD loss that needs a teacher.
    freeze : str
        Freeze policy applied before training (see :func:`fearkd.models.freeze`).
    scaler : str
        ``"standard"``: a new scaler on the training rows; ``"from:<key>"``: that stage's.
    epochs : {"pretrain", "finetune"}
        ``pretrain_epochs`` or ``epochs`` of the training settings.
    shuffle : {"none", "labels", "teacher"}
        Controls: ``"labels"`` trains on its task's labels permuted across the training rows
        (and, apart, the validation rows), so nothing it learns comes from the labels;
        ``"teacher"`` permutes the teacher's outputs across those rows, so each window is taught
        by the teacher's output for another window (mis-paired KD). Scoring uses the true labels.
    """

    method: str
    name: str
    target: str = "-"
    task: str = "fear"
    inputs: str = "student"
    model: str = ""
    init_seed: str = ""
    init_from: str | None = None
    loss: str | None = None
    teacher: str | None = None
    freeze: str = "none"
    scaler: str = "standard"
    epochs: str = "finetune"
    shuffle: str = "none"

    def __post_init__(self) -> None:
        for attr, allowed in (("task", TASKS), ("inputs", INPUTS), ("epochs", EPOCHS),
                              ("shuffle", SHUFFLES)):
            value = getattr(self, attr)
            if value not in allowed:
                raise ValueError(f"Stage {self.key!r}: invalid value for {attr!r}: expected one "
                                 f"of {', '.join(map(repr, allowed))}, got {value!r}.")
        if self.shuffle == "teacher" and self.teacher is None:
            raise ValueError(f"Stage {self.key!r}: shuffle='teacher' needs a 'teacher' stage.")
        if self.scaler != "standard" and not self.scaler.startswith("from:"):
            raise ValueError(f"Stage {self.key!r}: invalid value for 'scaler': expected "
                             f"'standard' or 'from:<stage key>', got {self.scaler!r}.")

    @property
    def key(self) -> str:
        """``"<method>/<name>/<target>"``: names its checkpoint, history and seed."""
        return f"{self.method}/{self.name}/{self.target}"


class _StageStore:
    """Per-stage checkpoints of one unit: ``<key>.json`` (results) + ``<key>.pt`` (model)."""

    def __init__(self, directory: Path | None) -> None:
        self.directory = directory

    def _paths(self, key: str) -> tuple[Path, Path]:
        name = key.replace("/", "__")
        return self.directory / f"{name}.json", self.directory / f"{name}.pt"

    def load(self, key: str):
        if self.directory is None:
            return None
        meta_path, model_path = self._paths(key)
        if not (meta_path.is_file() and model_path.is_file()):
            return None
        from .training.checkpoint import load_checkpoint

        try:
            checkpoint = load_checkpoint(model_path)
            meta = json.loads(meta_path.read_text())
        except Exception as exc:  # a damaged checkpoint is retrained, not trusted
            logger.warning("Ignoring unreadable checkpoint %s (%s); retraining.", model_path, exc)
            return None
        return checkpoint, meta

    def save(self, key: str, model, scaler, meta: dict) -> None:
        if self.directory is None:
            return
        from .training.checkpoint import save_checkpoint

        meta_path, model_path = self._paths(key)
        save_checkpoint(model_path, model, scaler=scaler)
        write_atomic(meta_path, dumps(meta))


def metric_rows(stage: dict, y_true: dict, pred: dict, proba: dict, n_classes: int) -> tuple:
    """Tidy rows of every metric on the ``train`` and ``test`` splits; and the test confusion."""
    rows, confusion = [], None
    for split in ("train", "test"):
        if len(y_true[split]) == 0:
            continue
        m = fold_metrics(y_true[split], pred[split], proba[split], labels=range(n_classes))
        if split == "test":
            confusion = m["confusion_matrix"]
        for metric in METRICS:
            rows.append({**stage, "split": split, "metric": metric, "value": float(m[metric])})
    return rows, confusion


@dataclass
class StageContext:
    """What the stages of one unit share: the fold, the settings, the finished stages.

    ``models[key]`` is ``(model, scaler, inputs)`` of each stage run so far (a KD student
    learns from its teacher's logits before any temperature scaling); ``out`` gathers
    the unit's ``rows``, ``histories``, ``confusion`` and ``fit_seconds``.
    """

    fold: Fold
    settings: PipelineSettings
    backbone: str
    n_classes: dict[str, int]
    class_names: tuple[str, ...]
    seed: int = 0
    store: _StageStore = field(default_factory=lambda: _StageStore(None))
    models: dict[str, tuple[Any, Any, str]] = field(default_factory=dict)
    #: ``T`` of each finished stage (1.0 unless ``[training] calibrate = "temperature"``).
    temperatures: dict[str, float] = field(default_factory=dict)
    out: dict = field(default_factory=dict)
    _logits: dict = field(default_factory=dict)

    def model_name(self, stage: Stage) -> str:
        """Registry name of a stage built from scratch."""
        if stage.model:
            return stage.model
        if stage.inputs == "student":
            return self.settings.student_model or self.backbone
        return self.backbone

    def teacher_logits(self, key: str, rows: np.ndarray) -> np.ndarray:
        """Logits of finished stage ``key`` on ``rows`` of its own inputs (cached)."""
        from .training.trainer import predict_logits

        cache_key = (key, rows.tobytes())
        if cache_key not in self._logits:
            model, scaler, inputs = self.models[key]
            self._logits[cache_key] = predict_logits(model, self.fold.X[inputs][rows],
                                                     scaler=scaler)
        return self._logits[cache_key]

    def earlier(self, stage: Stage, key: str | None, what: str):
        if key not in self.models:
            raise ValueError(f"Stage {stage.key!r}: its {what} {key!r} has not run before it; "
                             f"list that stage earlier in the method.")
        return self.models[key]


def _build(stage: Stage, ctx: StageContext):
    from .models import MODELS, make_model, replace_head

    n_out = ctx.n_classes[stage.task]
    seed = stage_seed(ctx.seed, stage.init_seed or f"init/{stage.key}")
    if stage.init_from is not None:
        base = ctx.earlier(stage, stage.init_from, "init_from stage")[0]
        return replace_head(copy.deepcopy(base), n_out, random_state=seed)
    name = ctx.model_name(stage)
    params = dict(ctx.settings.model_params.get(name, {}))
    if getattr(MODELS.get(name), "takes_feature_names", False):
        params.setdefault("feature_names", list(ctx.fold.names[stage.inputs]))
    return make_model(name, ctx.fold.X[stage.inputs].shape[1], n_out, random_state=seed,
                      **params)


def _train(stage: Stage, ctx: StageContext):
    """Train a stage; return (model, scaler, meta) with the stage's scored rows in ``meta``."""
    from .training import trainer
    from .training.distill import KD_LOSSES, make_kd_loss

    s, fold = ctx.settings, ctx.fold
    X, y = fold.X[stage.inputs], fold.y[stage.task]
    tr, va = fold.rows(stage.task, "train"), fold.rows(stage.task, "val")
    model = _build(stage, ctx)
    n_classes = ctx.n_classes[stage.task]
    loss, teacher = None, None
    if stage.loss is not None:
        if KD_LOSSES.entry(stage.loss).info.get("needs_teacher", True):
            if stage.teacher is None:
                raise ValueError(f"Stage {stage.key!r}: KD loss {stage.loss!r} needs a teacher "
                                 f"stage; set 'teacher' to an earlier stage's key.")
            ctx.earlier(stage, stage.teacher, "teacher stage")
            teacher = stage.teacher
        # every target's terms weigh classes like the trainer's default cross-entropy
        # (distill.CLASS_WEIGHTING; the loss's .class_weighting says what it applied)
        weights = trainer.class_weights(s.fit.class_weight_policy, y[tr],
                                        model.head.out_features)
        loss = make_kd_loss(stage.loss, alpha=s.alpha, temperature=s.temperature,
                            soft_temperature=s.soft_temperature, class_weight=weights)
    # controls: permutations seeded by the stage alone, training and validation rows apart
    rng = np.random.default_rng(stage_seed(ctx.seed, f"shuffle/{stage.key}"))
    perm_tr, perm_va = rng.permutation(len(tr)), rng.permutation(len(va))
    y_fit = y.copy()
    if stage.shuffle == "labels":
        y_fit[tr], y_fit[va] = y[tr][perm_tr], y[va][perm_va]
    targets = None if teacher is None else ctx.teacher_logits(teacher, tr)
    if targets is not None and stage.shuffle == "teacher":
        targets = targets[perm_tr]
    validation = None
    if len(va):
        if teacher is None:
            validation = (X[va], y_fit[va])
        else:
            t_va = ctx.teacher_logits(teacher, va)
            validation = (X[va], y_fit[va], t_va[perm_va] if stage.shuffle == "teacher" else t_va)
    scaler = "standard"
    if stage.scaler.startswith("from:"):
        scaler = ctx.earlier(stage, stage.scaler[len("from:"):], "scaler stage")[1]
    start = time.perf_counter()
    epochs = s.fit.epochs_for(stage.epochs)
    adapted = contextlib.nullcontext()
    if s.fit.adaptation != "none":
        adapted, loss, targets, validation, scaler = _adaptation(
            stage, ctx, model, loss, targets, validation, scaler, tr, va, epochs)
    if hasattr(model, "set_vote_head"):  # an ensemble: each member through the loop
        from .training.ensemble import fit_ensemble_model

        if loss is not None or s.fit.adaptation != "none":
            raise ValueError(f"Stage {stage.key!r}: an ensemble ([models] ensemble) is "
                             f"trained on labels only, as a teacher; it cannot be a distilled "
                             f"student or take [training] adaptation.")
        res = fit_ensemble_model(model, X[tr], y_fit[tr], s.fit,
                                 groups=fold.groups_for(stage.task, tr), validation=validation,
                                 random_state=stage_seed(ctx.seed, stage.key), epochs=epochs)
    else:
        with adapted:
            res = trainer.fit(model, X[tr], y_fit[tr], settings=s.fit, targets=targets,
                              loss=loss, groups=fold.groups_for(stage.task, tr),
                              validation=validation, freeze=stage.freeze, scaler=scaler,
                              random_state=stage_seed(ctx.seed, stage.key), epochs=epochs)
    seconds = time.perf_counter() - start
    temperature = None
    if s.fit.calibrate == "temperature":
        temperature = _fit_temperature(stage, model, res, X, y_fit, tr, va)
    y_true, pred, proba, raw = {}, {}, {}, {}
    for split in ("train", "test"):
        rows = fold.rows(stage.task, split)
        logits = trainer.predict_logits(model, X[rows], scaler=res.scaler)
        p = _softmax(logits / (temperature or 1.0))
        y_true[split], pred[split], proba[split], raw[split] = y[rows], p.argmax(1), p, logits
    info = {"method": stage.method, "stage": stage.name, "model": model.spec.name,
            "target": stage.target, "task": stage.task,
            "n_params": int(sum(q.numel() for q in model.parameters())),
            "n_train": int(len(tr)), "n_test": int(len(fold.rows(stage.task, "test"))),
            "chance": chance_of_labels(fold.y[stage.task], n_classes)}
    rows, confusion = metric_rows(info, y_true, pred, proba, n_classes)
    if temperature is not None:
        rows += calibration_rows(info, y_true["test"], _softmax(raw["test"]), temperature,
                                 n_classes)
    hist = res.history
    meta = {"rows": rows, "seconds": seconds, "best_epoch": int(res.best_epoch),
            "temperature": temperature,
            "history": {c: [float(v) for v in hist[c]] for c in
                        ("train_loss", "train_accuracy", "val_loss", "val_accuracy")},
            "confusion": None if confusion is None else {
                "labels": list(range(n_classes)),
                "class_names": list(ctx.class_names) if stage.task == "fear"
                else [str(i) for i in range(n_classes)],
                "matrix": confusion, "split": "test",
                "subjects": _subject_counts(fold.subjects[fold.rows(stage.task, "test")],
                                            y_true["test"], pred["test"]),
                "subject_classes": _subject_classes(fold.subjects[fold.rows(stage.task, "test")],
                                                    y_true["test"], n_classes)}}
    return model, res.scaler, meta


def _fit_temperature(stage: Stage, model, res, X: np.ndarray, y: np.ndarray, tr: np.ndarray,
                     va: np.ndarray) -> float:
    """``[training] calibrate = "temperature"``: ``T`` on the stage's inner validation rows.

    The fold's validation rows when the splitter gave some, else the rows the training loop
    held out of ``tr`` for early stopping; never test rows. Labels are those the stage trained
    on (a label-shuffling control is calibrated on its shuffled labels).
    """
    from .training.temperature import fit_temperature
    from .training.trainer import predict_logits

    rows = va if len(va) else tr[np.asarray(res.val_index, dtype=np.int64)]
    if len(rows) == 0:
        raise ValueError(f"Stage {stage.key!r}: [training] calibrate = \"temperature\" needs "
                         f"inner validation windows and this stage has none ({len(tr)} "
                         f"training windows); raise [training] val_fraction or set "
                         f"calibrate = \"none\".")
    logits = predict_logits(model, X[rows], scaler=res.scaler)
    temperature = fit_temperature(logits, y[rows])
    logger.info("Stage %s: temperature %.3f fitted on %d validation windows.", stage.key,
                temperature, len(rows))
    return temperature


#: Probability metrics reported before temperature scaling, as ``<metric>_uncalibrated``.
UNCALIBRATED = ("log_loss", "ece", "brier")


def calibration_rows(info: dict, y_test: np.ndarray, proba_raw: np.ndarray,
                     temperature: float, n_classes: int) -> list[dict]:
    """Test rows of a temperature-scaled stage: its ``T`` (metric ``temperature``) and its
    probability metrics before scaling (``log_loss_uncalibrated``, ``ece_uncalibrated``,
    ``brier_uncalibrated``); the stage's ordinary rows hold the scaled ones."""
    if len(y_test) == 0:
        return []
    m = fold_metrics(y_test, proba_raw.argmax(1), proba_raw, labels=range(n_classes))
    rows = [{**info, "split": "test", "metric": f"{k}_uncalibrated", "value": float(m[k])}
            for k in UNCALIBRATED]
    rows.append({**info, "split": "test", "metric": "temperature", "value": float(temperature)})
    return rows


def _subject_counts(subjects: np.ndarray, y_true: np.ndarray, y_pred: np.ndarray) -> dict:
    """``{subject: [correct, total]}`` of the test rows (the report's per-subject scores)."""
    out = {}
    for subject in np.unique(subjects):
        hit = subjects == subject
        out[str(subject)] = [int((y_true[hit] == y_pred[hit]).sum()), int(hit.sum())]
    return out


def _subject_classes(subjects: np.ndarray, y_true: np.ndarray, n_classes: int) -> dict:
    """``{subject: [test windows of class 0, 1, ...]}`` (the report's class balance)."""
    return {str(s): np.bincount(y_true[subjects == s], minlength=n_classes).astype(int).tolist()
            for s in np.unique(subjects)}


def _adaptation(stage: Stage, ctx: StageContext, model, loss, targets, validation, scaler,
                tr: np.ndarray, va: np.ndarray, epochs: int):
    """Wrap a stage's loss in ``[training] adaptation`` (:mod:`fearkd.training.adaptation`).

    The target rows are the fold's test windows, features only (transductive). The scaler is
    fitted here on the training rows' features so that the target rows get the same scale;
    each training row's domain id rides as the last column of the loop's ``targets``.
    """
    from sklearn.preprocessing import StandardScaler

    from .training import trainer
    from .training.adaptation import AdaptedLoss

    s, fold = ctx.settings, ctx.fold
    X = fold.X[stage.inputs]
    if isinstance(scaler, str):
        scaler = StandardScaler().fit(X[tr])
    domains = fold.domains(s.fit.adaptation_domain)
    target_rows = fold.test
    codes = {d: i for i, d in enumerate(np.unique(np.concatenate(
        [domains[tr], domains[va], domains[target_rows]])))}
    code = np.array([codes.get(d, 0) for d in domains], dtype=np.float32)

    def with_domain(extra, rows):
        col = code[rows][:, None]
        return col if extra is None else np.column_stack([np.asarray(extra, np.float32), col])

    targets = with_domain(targets, tr)
    if validation is not None:
        validation = (validation[0], validation[1],
                      with_domain(validation[2] if len(validation) == 3 else None, va))
    weights = trainer.class_weights(s.fit.class_weight_policy, fold.y[stage.task][tr],
                                    model.head.out_features)
    wrapped = AdaptedLoss(
        s.fit.adaptation, model, loss, scaler.transform(X[target_rows]).astype(np.float32),
        code[target_rows].astype(np.int64), len(codes), weight=s.fit.adaptation_weight,
        total_steps=epochs * -(-len(tr) // s.fit.batch_size), batch_size=s.fit.batch_size,
        random_state=stage_seed(ctx.seed, f"adapt/{stage.key}"), class_weight=weights)
    return wrapped, wrapped, targets, validation, scaler


def run_stage(stage: Stage, ctx: StageContext) -> tuple[Any, Any]:
    """Train (or reload from the unit's checkpoints) and score one stage.

    Parameters
    ----------
    stage : Stage
    ctx : StageContext
        The unit; the stage's model, rows, history and confusion matrix are added to it.

    Returns
    -------
    model : nn.Module
    scaler : StandardScaler or None
    """
    cached = ctx.store.load(stage.key)
    if cached is not None:
        ck, meta = cached
        model, scaler = ck.model, ck.scaler
    else:
        model, scaler, meta = _train(stage, ctx)
        ctx.store.save(stage.key, model, scaler, meta)
    ctx.models[stage.key] = (model, scaler, stage.inputs)
    ctx.temperatures[stage.key] = float(meta.get("temperature") or 1.0)
    ctx.out["rows"].extend(meta["rows"])
    ctx.out["histories"][stage.key] = meta["history"]
    if meta["confusion"] is not None:
        ctx.out["confusion"][stage.key] = meta["confusion"]
    ctx.out["fit_seconds"] += meta["seconds"]
    return model, scaler


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)
