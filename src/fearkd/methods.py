"""The reference's Method 1 and Method 2, the from-scratch student and the baselines, per fold.

Given the teacher's FeatureSet, the student's column names and one train/test split,
:func:`run_pipeline` runs, on the training side only:

- **backbone**: the backbone (``cnn``, ``lstm``, ``gru``, any registry model) pretrained on the
  source task (DEAP valence, ASCERTAIN arousal) with the teacher's features on *every* training
  window, labelled for fear or not;
- **Method 1** (TL then KD): a copy of the backbone with a new 4-class head fine-tuned on the
  fear-labelled training windows = the fear **teacher**; then, for each KD target (``hard``,
  ``soft``, ``combined``), a **student** on the student's columns of the same windows,
  distilled from the teacher;
- **Method 2** (KD then TL): for each KD target, the backbone distilled into a student on the
  *source* task (``student-source``), whose head is then replaced and fine-tuned on fear;
- **scratch**: the student trained from scratch on fear (the reference's "without KD");
- **baselines**: majority class and stratified chance, for the fear and the source task.

Every stage is scored on the training rows and on the test rows of its task; scalers, early
stopping and model selection see training rows only (the inner validation split is grouped by
trial, or the protocol's own validation rows for ``seed-legacy``). Each stage is seeded from the
unit's seed and the stage's name alone, and its model and results are checkpointed, so an
interrupted unit resumes with identical results.
"""

from __future__ import annotations

import copy
import json
import logging
import time
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ._atomic import dumps, write_atomic
from .config import ExperimentConfig, MethodsConfig, TrainingConfig
from .evaluation.metrics import METRICS, fold_metrics
from .labels import FEAR_CLASSES

__all__ = ["PipelineSettings", "run_pipeline", "STAGES"]

logger = logging.getLogger(__name__)

STAGES = ("backbone", "teacher", "student-source", "student", "baseline")


_METHODS, _TRAINING = MethodsConfig(), TrainingConfig()


@dataclass(frozen=True)
class PipelineSettings:
    """What a unit trains; built from an :class:`~fearkd.config.ExperimentConfig`."""

    # Defaults: those of the configuration file's [methods] and [training] tables.
    methods: tuple[str, ...] = _METHODS.run
    kd_targets: tuple[str, ...] = _METHODS.kd_targets
    alpha: float = _METHODS.alpha
    temperature: float = _METHODS.temperature
    freeze: str = _METHODS.freeze
    baselines: tuple[str, ...] = _METHODS.baselines
    scratch: bool = True
    student_model: str = ""
    model_params: Mapping[str, Mapping[str, object]] = field(default_factory=dict)
    epochs: int = _TRAINING.epochs
    pretrain_epochs: int = _TRAINING.pretrain_epochs
    batch_size: int = _TRAINING.batch_size
    lr: float = _TRAINING.lr
    weight_decay: float = _TRAINING.weight_decay
    patience: int = _TRAINING.patience
    class_weight: str = _TRAINING.class_weight
    val_fraction: float = _TRAINING.val_fraction
    progress: bool = False

    @classmethod
    def from_config(cls, cfg: ExperimentConfig, **overrides) -> PipelineSettings:
        m, t = cfg.methods, cfg.training
        values = dict(
            methods=m.run, kd_targets=m.kd_targets, alpha=m.alpha, temperature=m.temperature,
            freeze=m.freeze, baselines=m.baselines, student_model=cfg.models.student,
            model_params={k: dict(v) for k, v in cfg.models.params.items()},
            epochs=t.epochs, pretrain_epochs=t.pretrain_epochs, batch_size=t.batch_size,
            lr=t.lr, weight_decay=t.weight_decay, patience=t.patience,
            class_weight=t.class_weight, val_fraction=t.val_fraction,
        )
        values.update(overrides)
        return cls(**values)


def _stage_seed(seed: int, key: str) -> int:
    """A seed for one stage that depends on the unit's seed and the stage's name only."""
    return (int(seed) * 1_000_003 + zlib.crc32(key.encode())) % (2**31 - 1)


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


def _metric_rows(stage: dict, y_true: dict, pred: dict, proba: dict, n_classes: int) -> tuple:
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


class _Fold:
    """The arrays of one fold, with per-task row selections."""

    def __init__(self, fs, student_names, train_idx, test_idx, val_idx) -> None:
        meta = fs.metadata
        self.Xt = np.ascontiguousarray(fs.X)
        self.Xs = np.ascontiguousarray(fs.select_columns(student_names).X)
        self.y = {"fear": meta["y_fear"].to_numpy(np.int64),
                  "source": meta["y_source"].to_numpy(np.int64)}
        self.groups = (meta["subject"].astype(str) + ":" + meta["trial"].astype(str)).to_numpy()
        self.train = np.asarray(train_idx, dtype=np.int64)
        self.test = np.asarray(test_idx, dtype=np.int64)
        self.val = (np.asarray(val_idx, dtype=np.int64) if val_idx is not None
                    else np.array([], dtype=np.int64))
        self.student_names = tuple(student_names)
        self.teacher_names = tuple(fs.feature_names)

    def rows(self, task: str, split: str) -> np.ndarray:
        """Rows of ``split`` ('train', 'val', 'test') labelled for ``task``."""
        idx = getattr(self, split)
        return idx[self.y[task][idx] >= 0]


def _fit_kwargs(s: PipelineSettings, epochs: int) -> dict:
    return dict(epochs=epochs, batch_size=s.batch_size, lr=s.lr, weight_decay=s.weight_decay,
                class_weight=None if s.class_weight == "none" else s.class_weight,
                patience=s.patience, val_fraction=s.val_fraction, progress=s.progress)


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
        inner split of the training rows grouped by trial.
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
        ``"<method>/<stage>/<target>"``, ``fit_seconds``, ``n_train``, ``n_test``.
    """
    from .models import make_model, replace_head
    from .training.distill import DistillationLoss
    from .training.trainer import _class_weights, fit, predict_logits

    s = settings or PipelineSettings()
    unknown = [n for n in student_names if n not in set(fs.feature_names)]
    if unknown:
        raise ValueError(f"Student feature(s) {unknown[:5]!r} are not teacher columns; the "
                         f"student must see a subset of the teacher's columns of the same windows.")
    fold = _Fold(fs, student_names, train_idx, test_idx, val_idx)
    n_fear = len(class_names)
    n_source = int(n_source_classes or (fold.y["source"][fold.train].max() + 1))
    student_name = s.student_model or backbone
    params = {k: dict(v) for k, v in s.model_params.items()}
    store = _StageStore(None if checkpoint_dir is None else Path(checkpoint_dir))
    out = {"rows": [], "histories": {}, "confusion": {}, "fit_seconds": 0.0,
           "n_train": int(len(fold.train)), "n_test": int(len(fold.test))}

    def stage(method, stage_name, target, task, X, build, *, teacher=None, scaler="standard",
              loss=None, freeze="none", epochs=None):
        """Train (or reload) one stage and score it; returns (model, scaler)."""
        key = f"{method}/{stage_name}/{target}"
        cached = store.load(key)
        if cached is not None:
            ck, meta = cached
            model, fitted = ck.model, ck.scaler
        else:
            tr = fold.rows(task, "train")
            y = fold.y[task]
            targets = None if teacher is None else teacher(tr)
            validation = None
            va = fold.rows(task, "val")
            if len(va):
                validation = (X[va], y[va]) if teacher is None else (X[va], y[va], teacher(va))
            model = build()
            if isinstance(loss, DistillationLoss):
                # the label term weighs classes like the trainer's default cross-entropy
                loss.class_weight = _class_weights(
                    None if s.class_weight == "none" else s.class_weight, y[tr],
                    model.head.out_features)
                loss = _kd_loss(loss)
            start = time.perf_counter()
            res = fit(model, X[tr], y[tr], targets=targets, loss=loss, groups=fold.groups[tr],
                      validation=validation, freeze=freeze, scaler=scaler,
                      random_state=_stage_seed(seed, key),
                      **_fit_kwargs(s, epochs or s.epochs))
            seconds = time.perf_counter() - start
            fitted = res.scaler
            n_classes = n_fear if task == "fear" else n_source
            y_true, pred, proba = {}, {}, {}
            for split in ("train", "test"):
                rows = fold.rows(task, split)
                logits = predict_logits(model, X[rows], scaler=fitted)
                p = _softmax(logits)
                y_true[split], pred[split], proba[split] = y[rows], p.argmax(1), p
            n_params = sum(q.numel() for q in model.parameters())
            info = {"method": method, "stage": stage_name, "model": model.spec.name,
                    "target": target, "task": task, "n_params": int(n_params),
                    "n_train": int(len(fold.rows(task, "train"))),
                    "n_test": int(len(fold.rows(task, "test"))), "chance": 1.0 / n_classes}
            rows, confusion = _metric_rows(info, y_true, pred, proba, n_classes)
            hist = res.history
            meta = {"rows": rows, "seconds": seconds, "best_epoch": int(res.best_epoch),
                    "history": {c: [float(v) for v in hist[c]] for c in
                                ("train_loss", "train_accuracy", "val_loss", "val_accuracy")},
                    "confusion": None if confusion is None else {
                        "labels": list(range(n_classes)),
                        "class_names": list(class_names) if task == "fear"
                        else [str(i) for i in range(n_classes)],
                        "matrix": confusion, "split": "test"}}
            store.save(key, model, fitted, meta)
        out["rows"].extend(meta["rows"])
        out["histories"][key] = meta["history"]
        if meta["confusion"] is not None:
            out["confusion"][key] = meta["confusion"]
        out["fit_seconds"] += meta["seconds"]
        return model, fitted

    def logits_of(model, scaler, X):
        cache = {}

        def teacher(rows):
            key = rows.tobytes()
            if key not in cache:
                cache[key] = predict_logits(model, X[rows], scaler=scaler)
            return cache[key]
        return teacher

    pre_epochs = s.pretrain_epochs or s.epochs
    # The backbone always trains: with no method, a unit is one fold of the backbone comparison.
    bb, bb_scaler = stage(
        "backbone", "backbone", "-", "source", fold.Xt,
        lambda: make_model(backbone, fold.Xt.shape[1], n_source,
                           random_state=_stage_seed(seed, "init/backbone"),
                           **params.get(backbone, {})),
        epochs=pre_epochs)
    if "method1" in s.methods:
        # Transfer: a copy of the trunk with a new fear head, fine-tuned on the backbone's scale.
        teacher, t_scaler = stage(
            "method1", "teacher", "-", "fear", fold.Xt,
            lambda: replace_head(copy.deepcopy(bb), n_fear,
                                 random_state=_stage_seed(seed, "init/teacher-head")),
            scaler=bb_scaler, freeze=s.freeze)
        t_logits = logits_of(teacher, t_scaler, fold.Xt)
        for target in s.kd_targets:
            stage("method1", "student", target, "fear", fold.Xs,
                  lambda: make_model(student_name, fold.Xs.shape[1], n_fear,
                                     random_state=_stage_seed(seed, "init/student"),
                                     **params.get(student_name, {})),
                  teacher=None if target == "hard" else t_logits,
                  loss=None if target == "hard" else DistillationLoss(
                      target, s.alpha, s.temperature))
    if "method2" in s.methods:
        b_logits = logits_of(bb, bb_scaler, fold.Xt)
        for target in s.kd_targets:
            student, st_scaler = stage(
                "method2", "student-source", target, "source", fold.Xs,
                lambda: make_model(student_name, fold.Xs.shape[1], n_source,
                                   random_state=_stage_seed(seed, "init/student"),
                                   **params.get(student_name, {})),
                teacher=None if target == "hard" else b_logits,
                loss=None if target == "hard" else DistillationLoss(
                    target, s.alpha, s.temperature),
                epochs=pre_epochs)
            stage("method2", "student", target, "fear", fold.Xs,
                  lambda student=student: replace_head(
                      copy.deepcopy(student), n_fear,
                      random_state=_stage_seed(seed, "init/student-head")),
                  scaler=st_scaler, freeze=s.freeze)
    if s.scratch and s.methods:
        stage("scratch", "student", "-", "fear", fold.Xs,
              lambda: make_model(student_name, fold.Xs.shape[1], n_fear,
                                 random_state=_stage_seed(seed, "init/student"),
                                 **params.get(student_name, {})))
    out["rows"].extend(_baseline_rows(fold, s.baselines, n_fear, n_source, seed,
                                      tasks=("fear", "source") if s.methods else ("source",)))
    return out


def _kd_loss(kd):
    """Adapt a DistillationLoss to the trainer's ``loss(logits, y, targets)`` signature."""

    def loss(logits, y, teacher):
        return kd(logits, y, teacher)
    return loss


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _baseline_rows(fold: _Fold, names: Sequence[str], n_fear: int, n_source: int, seed: int,
                   tasks: Sequence[str]) -> list[dict]:
    """Majority-class and stratified-chance rows, fitted on the training rows of each task."""
    from sklearn.dummy import DummyClassifier

    strategies = {"majority": "most_frequent", "stratified": "stratified"}
    rows = []
    for task in tasks:
        n_classes = n_fear if task == "fear" else n_source
        tr, te = fold.rows(task, "train"), fold.rows(task, "test")
        if len(tr) == 0 or len(te) == 0:
            continue
        y = fold.y[task]
        for name in names:
            clf = DummyClassifier(strategy=strategies[name],
                                  random_state=_stage_seed(seed, f"baseline/{name}/{task}"))
            clf.fit(np.zeros((len(tr), 1)), y[tr])
            y_true, pred, proba = {}, {}, {}
            for split, idx in (("train", tr), ("test", te)):
                p_known = clf.predict_proba(np.zeros((len(idx), 1)))
                p = np.zeros((len(idx), n_classes))
                p[:, clf.classes_] = p_known
                y_true[split], proba[split] = y[idx], p
                pred[split] = clf.predict(np.zeros((len(idx), 1)))
            info = {"method": "baseline", "stage": "baseline", "model": name, "target": "-",
                    "task": task, "n_params": 0, "n_train": int(len(tr)), "n_test": int(len(te)),
                    "chance": 1.0 / n_classes}
            rows.extend(_metric_rows(info, y_true, pred, proba, n_classes)[0])
    return rows
