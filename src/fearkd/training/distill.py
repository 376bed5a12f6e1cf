"""Knowledge distillation on logits.

The teacher is frozen and in eval mode, so its logits for a training window never change
during the student's training: :func:`fearkd.methods.run_pipeline` computes them once
(:func:`fearkd.training.trainer.predict_logits`, on the teacher's feature columns of the same
windows the student sees, so rows pair exactly), and the training loop hands them to
:class:`DistillationLoss` batch by batch as per-row targets. This is the same function as
running the teacher inside every step, without its cost, and no gradient can reach it.

Loss on **logits** (Hinton et al. 2015), with ``p = softmax(teacher / T)`` and
``q = softmax(student / T)``:

- ``hard``: ``CE(labels, student)`` — no distillation (the reference's "hard labels").
- ``soft``: ``CE(p, q) = -sum(p * log q)`` — the reference's "soft targets".
- ``combined``: ``alpha * CE(labels, student) + (1 - alpha) * T**2 * KL(p || q)``.

The ``T**2`` factor keeps the soft term's gradient magnitude comparable across temperatures
(the reference's notebooks left it out and applied the temperature to probabilities).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["DistillationLoss", "KD_MODES"]

KD_MODES = ("hard", "soft", "combined")


class DistillationLoss(nn.Module):
    """Distillation loss on logits.

    Parameters
    ----------
    mode : {"hard", "soft", "combined"}
        Which target the student learns from (see the module docstring).
    alpha : float, default 0.5
        Weight of the label term in ``combined``; ``1 - alpha`` weighs the distillation term.
    temperature : float, default 3.0
        Softmax temperature ``T`` for ``soft`` and ``combined``.
    class_weight : tensor, shape (n_classes,), optional
        Weights of the label cross-entropy.
    """

    def __init__(self, mode: str = "combined", alpha: float = 0.5, temperature: float = 3.0,
                 class_weight: torch.Tensor | None = None) -> None:
        super().__init__()
        if mode not in KD_MODES:
            raise ValueError(
                f"Invalid value for 'mode': expected one of {', '.join(map(repr, KD_MODES))}, "
                f"got {mode!r}."
            )
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 <= alpha <= 1:
            raise ValueError(
                f"Invalid value for 'alpha': expected a number in [0, 1], got {alpha!r}."
            )
        if (isinstance(temperature, bool) or not isinstance(temperature, (int, float))
                or not math.isfinite(temperature) or temperature <= 0):
            raise ValueError(
                f"Invalid value for 'temperature': expected a positive number, got {temperature!r}."
            )
        self.mode = mode
        self.alpha = float(alpha)
        self.temperature = float(temperature)
        self.class_weight = class_weight

    def forward(self, student: torch.Tensor, y: torch.Tensor,
                teacher: torch.Tensor | None = None) -> torch.Tensor:
        """Mean loss over the batch.

        Parameters
        ----------
        student : tensor, shape (batch, n_classes)
            Student logits.
        y : tensor of int64, shape (batch,)
            Labels.
        teacher : tensor, shape (batch, n_classes)
            Teacher logits for the same windows (ignored by ``hard``).
        """
        weight = None
        if self.class_weight is not None:
            weight = self.class_weight.to(device=student.device, dtype=student.dtype)
        if self.mode == "hard":
            return F.cross_entropy(student, y, weight=weight)
        if teacher is None:
            raise ValueError(f"DistillationLoss(mode={self.mode!r}) needs teacher logits.")
        if teacher.shape != student.shape:
            raise ValueError(
                f"Teacher logits have shape {tuple(teacher.shape)} but student logits "
                f"{tuple(student.shape)}: teacher and student must predict the same classes."
            )
        t = self.temperature
        teacher = teacher.detach()
        log_q = F.log_softmax(student / t, dim=1)
        log_p = F.log_softmax(teacher / t, dim=1)
        if self.mode == "soft":
            return -(log_p.exp() * log_q).sum(dim=1).mean()
        kl = F.kl_div(log_q, log_p, log_target=True, reduction="batchmean")
        ce = F.cross_entropy(student, y, weight=weight)
        return self.alpha * ce + (1.0 - self.alpha) * t * t * kl

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}, alpha={self.alpha}, temperature={self.temperature}"
