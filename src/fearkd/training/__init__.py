"""Training: the one loop (``fit``) and its settings, KD losses, the sklearn estimator and
checkpoints."""

from fearkd.training.checkpoint import Checkpoint, load_checkpoint, load_weights, save_checkpoint
from fearkd.training.distill import KD_LOSSES, DistillationLoss, make_kd_loss, register_kd_loss
from fearkd.training.estimator import FearkdClassifier
from fearkd.training.settings import FitSettings
from fearkd.training.trainer import (
    EarlyStopping,
    FitResult,
    class_weights,
    fit,
    inner_split,
    make_optimizer,
    predict_logits,
    resolve_device,
    train_epoch,
    validate_inputs,
)

__all__ = [
    "Checkpoint",
    "DistillationLoss",
    "EarlyStopping",
    "FearkdClassifier",
    "FitResult",
    "FitSettings",
    "KD_LOSSES",
    "class_weights",
    "fit",
    "inner_split",
    "load_checkpoint",
    "load_weights",
    "make_kd_loss",
    "make_optimizer",
    "predict_logits",
    "register_kd_loss",
    "resolve_device",
    "save_checkpoint",
    "train_epoch",
    "validate_inputs",
]
