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
- ``soft``: ``CE(p, q) = -sum(p * log q)`` — the reference's "soft targets": the student learns
  the teacher's plain predictions, so ``T`` is ``[methods] soft_temperature`` (default 1.0, the
  seed's choice), not ``[methods] temperature``.
- ``combined``: ``alpha * CE(labels, student) + (1 - alpha) * T**2 * KL(p || q)`` with
  ``T = [methods] temperature`` (default 3.0).

The ``T**2`` factor keeps the soft term's gradient magnitude comparable across temperatures
(the reference's notebooks left it out and applied the temperature to probabilities).

**Class weighting, the same for every target** (:data:`CLASS_WEIGHTING`). With class weights
``w`` (``[training] class_weight``, computed on the stage's training rows), each row ``i`` of a
batch weighs ``w[y_i]``, the weight of its label's class, in *every* term — the label
cross-entropy, the soft cross-entropy and the KL term — and each term is the weighted mean
``sum_i w[y_i] * l_i / sum_i w[y_i]`` (PyTorch's weighted ``cross_entropy`` convention). So
``hard``, ``soft`` and ``combined`` see the classes in the same proportions. A loss module
states what it applied in its ``class_weighting`` attribute (``"label-class weight on every
term"`` or ``"none"``) for reports.

The names an experiment file may list in ``[methods] kd_targets`` live in :data:`KD_LOSSES`;
:func:`register_kd_loss` adds one from outside the package. A factory is called as
``factory(alpha=..., temperature=..., class_weight=...)`` (``class_weight`` a tensor of shape
``(n_classes,)`` or None, computed by :func:`fearkd.training.class_weights` on the stage's
training rows; ``temperature`` the value of the key the loss was registered to read,
``temperature_key``) and returns an ``nn.Module`` whose ``forward(logits, y, teacher_logits,
X=None)`` is a scalar; ``X`` is the batch's inputs, for losses that use them.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F

from fearkd._registry import Registry

__all__ = ["CLASS_WEIGHTING", "DistillationLoss", "KD_LOSSES", "KD_MODES", "TEMPERATURE_KEYS",
           "make_kd_loss", "register_kd_loss"]

KD_MODES = ("hard", "soft", "combined")
#: The class-weighting policy of the built-in KD losses, in one sentence (for reports).
CLASS_WEIGHTING = ("every row weighs the [training] class_weight of its label's class in every "
                   "term (label CE, soft CE, KL), each term a weighted mean over the batch")
#: ``[methods]`` keys a KD loss may take its temperature from.
TEMPERATURE_KEYS = ("temperature", "soft_temperature")


class DistillationLoss(nn.Module):
    """Distillation loss on logits.

    Parameters
    ----------
    mode : {"hard", "soft", "combined"}
        Which target the student learns from (see the module docstring).
    alpha : float, default 0.5
        Weight of the label term in ``combined``; ``1 - alpha`` weighs the distillation term.
    temperature : float, default 3.0
        Softmax temperature ``T`` for ``soft`` and ``combined`` (the registry's ``soft`` is
        built with ``[methods] soft_temperature``, default 1.0).
    class_weight : tensor, shape (n_classes,), optional
        Per-class weights; row ``i`` weighs ``class_weight[y_i]`` in every term (see the module
        docstring).

    Attributes
    ----------
    class_weighting : str
        ``"label-class weight on every term"`` when ``class_weight`` is given, else ``"none"``.
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
        self.class_weighting = ("none" if class_weight is None
                                else "label-class weight on every term")

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
        row_w = None
        if self.class_weight is not None:
            row_w = self.class_weight.to(device=student.device, dtype=student.dtype)[y]
        if self.mode == "hard":
            return _weighted_mean(F.cross_entropy(student, y, reduction="none"), row_w)
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
            return _weighted_mean(-(log_p.exp() * log_q).sum(dim=1), row_w)
        kl = (log_p.exp() * (log_p - log_q)).sum(dim=1)
        ce = F.cross_entropy(student, y, reduction="none")
        return (self.alpha * _weighted_mean(ce, row_w)
                + (1.0 - self.alpha) * t * t * _weighted_mean(kl, row_w))

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}, alpha={self.alpha}, temperature={self.temperature}"


def _weighted_mean(values: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    """``sum(w * v) / sum(w)`` over the batch (plain mean without weights), shape ()."""
    if weights is None:
        return values.mean()
    return (weights * values).sum() / weights.sum()


#: KD losses by the name ``[methods] kd_targets`` takes, in report order.
KD_LOSSES: Registry[Callable[..., nn.Module]] = Registry("KD loss", "[methods] kd_targets")


def register_kd_loss(name: str, factory: Callable[..., nn.Module], *, description: str = "",
                     needs_teacher: bool = True, temperature_key: str = "temperature",
                     overwrite: bool = False) -> Callable[..., nn.Module]:
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
    temperature_key : {"temperature", "soft_temperature"}
        The ``[methods]`` key whose value the factory gets as ``temperature``.
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
    if temperature_key not in TEMPERATURE_KEYS:
        raise ValueError(f"KD loss {name!r}: 'temperature_key' must be one of "
                         f"{TEMPERATURE_KEYS}, got {temperature_key!r}.")
    return KD_LOSSES.register(name, factory, description=description, overwrite=overwrite,
                              needs_teacher=bool(needs_teacher),
                              temperature_key=temperature_key)


def make_kd_loss(name: str, *, alpha: float = 0.5, temperature: float = 3.0,
                 soft_temperature: float = 1.0,
                 class_weight: torch.Tensor | None = None) -> nn.Module:
    """Build the KD loss registered as ``name`` (an unknown name names ``[methods] kd_targets``).

    Parameters
    ----------
    name : str
        A name of :data:`KD_LOSSES`.
    alpha : float
        ``[methods] alpha``.
    temperature, soft_temperature : float
        ``[methods] temperature`` and ``[methods] soft_temperature``; the factory gets the one
        its registration names (``temperature_key``): ``soft`` reads ``soft_temperature``.
    class_weight : tensor, shape (n_classes,), optional
        ``[training] class_weight`` computed on the stage's training rows.

    Returns
    -------
    nn.Module
    """
    entry = KD_LOSSES.entry(name)
    temperatures = {"temperature": temperature, "soft_temperature": soft_temperature}
    t = temperatures[entry.info.get("temperature_key", "temperature")]
    return entry.obj(alpha=alpha, temperature=t, class_weight=class_weight)


def _builtin(mode: str) -> Callable[..., nn.Module]:
    def factory(*, alpha: float = 0.5, temperature: float = 3.0,
                class_weight: torch.Tensor | None = None) -> nn.Module:
        return DistillationLoss(mode, alpha=alpha, temperature=temperature,
                                class_weight=class_weight)
    factory.__name__ = f"{mode}_loss"
    return factory


register_kd_loss("hard", _builtin("hard"), needs_teacher=False,
                 description="cross-entropy on the labels, no teacher (the student alone)")
register_kd_loss("soft", _builtin("soft"), temperature_key="soft_temperature",
                 description="cross-entropy against the teacher's probabilities at "
                             "soft_temperature (1: its plain predictions)")
register_kd_loss("combined", _builtin("combined"),
                 description="alpha * label CE + (1 - alpha) * T^2 * KL(teacher || student)")
