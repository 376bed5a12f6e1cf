"""The training settings, held once: :class:`FitSettings`.

The experiment file's ``[training]`` table is read into a :class:`FitSettings` (its keys are the
field names), :class:`fearkd.methods.PipelineSettings` holds one, :func:`fearkd.training.fit`
takes one, and :class:`fearkd.training.FearkdClassifier` builds one from its constructor
parameters in ``fit``. The module imports nothing from :mod:`fearkd.config`: the configuration
depends on the training package, never the other way round.

Errors name the experiment-file key (``[training] epochs``), the place where a user sets it;
:func:`fearkd.training.fit` and the estimator take the same names as keyword arguments.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

__all__ = ["FitSettings", "MONITORS", "CLASS_WEIGHTS"]

#: What model selection and early stopping may watch.
MONITORS = ("val_loss", "val_accuracy")
#: Named class-weight policies (a ``{class: weight}`` mapping is accepted as well).
CLASS_WEIGHTS = ("balanced", "none")


def _is_int(value) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) \
        and not isinstance(value, bool) and math.isfinite(float(value))


@dataclass(frozen=True)
class FitSettings:
    """Settings of one call of the training loop (Adam, early stopping, model selection).

    Parameters
    ----------
    epochs : int, default 30
        Maximum epochs of fine-tuning (and of every stage that does not pretrain).
    pretrain_epochs : int, default 0
        Maximum epochs of the stages that pretrain on the source task; 0 means ``epochs``.
    batch_size : int, default 32
        Rows per Adam step. 32 gives a few thousand training rows about a hundred steps per
        epoch; at 256 the capacity probe of ``tests/test_learnability.py`` (1,600 training
        rows after the inner split) got 7 steps per epoch and the recurrent models, the
        CNN-LSTM and the teacher CNN stopped early near chance.
    lr : float, default 1e-3
        Adam's learning rate.
    weight_decay : float, default 0.0
    patience : int or None, default 8
        Epochs without improvement of ``monitor`` before stopping; ``None`` never stops early.
    class_weight : {"balanced", "none"} or dict {class: weight}, default "balanced"
        Weights of the label cross-entropy (``None`` is read as ``"none"``).
    val_fraction : float in [0, 1), default 0.2
        Share of the training rows held out for early stopping when no validation set is
        given; 0 trains on every row for all epochs and keeps the last weights.
    monitor : {"val_loss", "val_accuracy"}, default "val_loss"
    device : str or None, default None
        ``None``: CUDA when present, else CPU.
    num_threads : int or None, default None
        torch CPU threads while training (restored afterwards); ``None`` keeps the current.
    progress : bool, default False
        A progress bar over epochs.
    adaptation : str, default "none"
        A name of :data:`fearkd.training.adaptation.ADAPTATIONS` (``"none"``, ``"dann"``,
        ``"coral"``): a domain-adaptation penalty on the penultimate features, using the
        fold's test windows without labels (transductive); applied by the stages.
    adaptation_weight : float, default 1.0
        Weight of that penalty (non-negative).
    adaptation_domain : {"subject", "dataset"}, default "subject"
        What a domain is for DANN's domain classifier.
    calibrate : {"none", "temperature"}, default "none"
        ``"temperature"``: after training, each stage fits one temperature ``T > 0`` on its
        inner validation split (:func:`fearkd.training.temperature.fit_temperature`) and its
        probabilities become ``softmax(logits / T)``; applied by the stages and by
        ``fearkd train``'s bundle, not by :func:`fearkd.training.fit` itself.

    Raises
    ------
    TypeError, ValueError
        A setting of the wrong type or out of range; the message names the ``[training]`` key.
    """

    epochs: int = 30
    pretrain_epochs: int = 0
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.0
    patience: int | None = 8
    class_weight: str | Mapping[int, float] = "balanced"
    val_fraction: float = 0.2
    monitor: str = "val_loss"
    device: str | None = None
    num_threads: int | None = None
    progress: bool = False
    adaptation: str = "none"
    adaptation_weight: float = 1.0
    adaptation_domain: str = "subject"
    calibrate: str = "none"

    def __post_init__(self) -> None:
        if self.class_weight is None:
            object.__setattr__(self, "class_weight", "none")
        for name in ("epochs", "batch_size"):
            value = getattr(self, name)
            if not _is_int(value) or value < 1:
                raise ValueError(f"[training] {name} must be a positive int, got {value!r}.")
        if not _is_int(self.pretrain_epochs) or self.pretrain_epochs < 0:
            raise ValueError(f"[training] pretrain_epochs must be a non-negative int (0: the "
                             f"same as epochs), got {self.pretrain_epochs!r}.")
        if not _is_number(self.lr) or self.lr <= 0:
            raise ValueError(f"[training] lr must be a positive number, got {self.lr!r}.")
        if not _is_number(self.weight_decay) or self.weight_decay < 0:
            raise ValueError(f"[training] weight_decay must be a non-negative number, got "
                             f"{self.weight_decay!r}.")
        if self.patience is not None and (not _is_int(self.patience) or self.patience < 0):
            raise ValueError(f"[training] patience must be a non-negative int (or None: never "
                             f"stop early), got {self.patience!r}.")
        cw = self.class_weight
        if isinstance(cw, str):
            if cw not in CLASS_WEIGHTS:
                raise ValueError(f"Invalid value for '[training] class_weight': expected one of "
                                 f"'balanced', 'none' or a table {{class: weight}}, got {cw!r}.")
        elif not isinstance(cw, Mapping):
            raise TypeError(f"[training] class_weight must be 'balanced', 'none' or a table "
                            f"{{class: weight}}, got {type(cw).__name__} {cw!r}.")
        if not _is_number(self.val_fraction) or not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"[training] val_fraction must be a number in [0, 1), got "
                             f"{self.val_fraction!r}.")
        if self.monitor not in MONITORS:
            raise ValueError(f"Invalid value for '[training] monitor': expected one of "
                             f"{', '.join(map(repr, MONITORS))}, got {self.monitor!r}.")
        if self.num_threads is not None and (not _is_int(self.num_threads)
                                             or self.num_threads < 1):
            raise ValueError(f"[training] num_threads must be a positive int or None, got "
                             f"{self.num_threads!r}.")
        if not isinstance(self.progress, bool):
            raise TypeError(f"[training] progress must be true or false, got "
                            f"{self.progress!r}.")

        from fearkd.training.adaptation import ADAPTATIONS, DOMAINS

        if not isinstance(self.adaptation, str) or self.adaptation not in ADAPTATIONS:
            raise ValueError(f"Invalid value for '[training] adaptation': expected one of "
                             f"{ADAPTATIONS.expected()}, got {self.adaptation!r}; set it to "
                             f"one of those in the experiment file.")
        if not _is_number(self.adaptation_weight) or self.adaptation_weight < 0:
            raise ValueError(f"Invalid value for '[training] adaptation_weight': expected a "
                             f"non-negative number, got {self.adaptation_weight!r}; set e.g. "
                             f"adaptation_weight = 1.0 in the experiment file.")
        if self.adaptation_domain not in DOMAINS:
            raise ValueError(f"Invalid value for '[training] adaptation_domain': expected one "
                             f"of {', '.join(map(repr, DOMAINS))}, got "
                             f"{self.adaptation_domain!r}; set it to one of those in the "
                             f"experiment file.")
        from fearkd.training.temperature import CALIBRATIONS

        if not isinstance(self.calibrate, str) or self.calibrate not in CALIBRATIONS:
            raise ValueError(f"Invalid value for '[training] calibrate': expected one of "
                             f"{', '.join(map(repr, CALIBRATIONS))}, got {self.calibrate!r}; "
                             f"set calibrate = \"temperature\" (or \"none\") in the "
                             f"experiment file.")

    @property
    def class_weight_policy(self) -> str | Mapping[int, float] | None:
        """``class_weight`` as :func:`fearkd.training.class_weights` takes it (``None``: none)."""
        return None if self.class_weight == "none" else self.class_weight

    def epochs_for(self, phase: str) -> int:
        """Maximum epochs of a ``"pretrain"`` or ``"finetune"`` stage."""
        if phase == "pretrain":
            return self.pretrain_epochs or self.epochs
        if phase == "finetune":
            return self.epochs
        raise ValueError(f"Invalid value for 'epochs': expected 'pretrain' or 'finetune', got "
                         f"{phase!r}.")

    def replace(self, **changes) -> FitSettings:
        """A copy with some fields changed; an unknown name is a TypeError naming it."""
        names = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - names)
        if unknown:
            raise TypeError(f"Unknown training setting(s) {unknown!r}; known: "
                            f"{sorted(names)!r}.")
        return dataclasses.replace(self, **changes) if changes else self
