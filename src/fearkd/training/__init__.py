"""Training: the one loop (``fit``), the sklearn estimator and checkpoints."""

from fearkd.training.checkpoint import Checkpoint, load_checkpoint, load_weights, save_checkpoint
from fearkd.training.estimator import FearkdClassifier
from fearkd.training.trainer import (
    FitResult,
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
    "FearkdClassifier",
    "FitResult",
    "fit",
    "inner_split",
    "load_checkpoint",
    "load_weights",
    "make_optimizer",
    "predict_logits",
    "resolve_device",
    "save_checkpoint",
    "train_epoch",
    "validate_inputs",
]
