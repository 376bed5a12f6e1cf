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

The names an experiment file may list in ``[methods] kd_targets`` live in :data:`KD_LOSSES`;
:func:`register_kd_loss` adds one from outside the package. A factory is called as
``factory(alpha=..., temperature=..., class_weight=...)`` (``class_weight`` a tensor of shape
``(n_classes,)`` or None, computed by :func:`fearkd.training.class_weights` on the stage's
training rows) and returns an ``nn.Module`` whose ``forward(logits, y, teacher_logits, X=None)``
is a scalar; ``X`` is the batch's inputs, for losses that use them.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F

from fearkd._registry import Registry

__all__ = ["DistillationLoss", "KD_LOSSES", "KD_MODES", "make_kd_loss", "register_kd_loss"]

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
                teacher: torch.Tensor | None = None, X: torch.Tensor | None = None
                ) -> torch.Tensor:
        """Mean loss over the batch.

        Parameters
        ----------
        student : tensor, shape (batch, n_classes)
            Student logits.
        y : tensor of int64, shape (batch,)
            Labels.
        teacher : tensor, shape (batch, n_classes)
            Teacher logits for the same windows (ignored by ``hard``).
        X : tensor, shape (batch, n_features), optional
            The batch's inputs (unused: these losses work on logits only).
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


#: KD losses by the name ``[methods] kd_targets`` takes, in report order.
KD_LOSSES: Registry[Callable[..., nn.Module]] = Registry("KD loss", "[methods] kd_targets")


def register_kd_loss(name: str, factory: Callable[..., nn.Module], *, description: str = "",
                     needs_teacher: bool = True, overwrite: bool = False
                     ) -> Callable[..., nn.Module]:
    """Make ``name`` a KD target of every method that distils.

    Parameters
    ----------
    name : str
        What ``[methods] kd_targets`` lists.
    factory : callable
        ``factory(alpha=float, temperature=float, class_weight=Tensor | None) -> nn.Module``;
        the module's ``forward(logits, y, teacher_logits, X=None)`` returns a scalar.
    description : str
        One line for ``--help`` and the docs.
    needs_teacher : bool
        False: the student learns from the labels alone (no teacher logits are computed and
        ``teacher_logits`` is None).
    overwrite : bool
        Replace an existing entry of that name.

    Returns
    -------
    callable
        ``factory``.
    """
    if not callable(factory):
        raise TypeError(f"KD loss {name!r}: 'factory' must be callable, got "
                        f"{type(factory).__name__}.")
    return KD_LOSSES.register(name, factory, description=description, overwrite=overwrite,
                              needs_teacher=bool(needs_teacher))


def make_kd_loss(name: str, *, alpha: float = 0.5, temperature: float = 3.0,
                 class_weight: torch.Tensor | None = None) -> nn.Module:
    """Build the KD loss registered as ``name`` (an unknown name names ``[methods] kd_targets``)."""
    return KD_LOSSES.get(name)(alpha=alpha, temperature=temperature, class_weight=class_weight)


def _builtin(mode: str) -> Callable[..., nn.Module]:
    def factory(*, alpha: float = 0.5, temperature: float = 3.0,
                class_weight: torch.Tensor | None = None) -> nn.Module:
        return DistillationLoss(mode, alpha=alpha, temperature=temperature,
                                class_weight=class_weight)
    factory.__name__ = f"{mode}_loss"
    return factory


register_kd_loss("hard", _builtin("hard"), needs_teacher=False,
                 description="cross-entropy on the labels, no teacher (the student alone)")
register_kd_loss("soft", _builtin("soft"),
                 description="cross-entropy against the teacher's probabilities at temperature T")
register_kd_loss("combined", _builtin("combined"),
                 description="alpha * label CE + (1 - alpha) * T^2 * KL(teacher || student)")
