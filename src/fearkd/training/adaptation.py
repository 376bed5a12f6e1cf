"""Domain adaptation as a training option: DANN and CORAL on the penultimate features.

``[training] adaptation`` names one entry of :data:`ADAPTATIONS`; ``adaptation_weight`` scales
its penalty and ``adaptation_domain`` says what a domain is (``"subject"``, the default, or
``"dataset"`` when the metadata has one). Any model works: the penultimate features are the
input of the model's ``.head``, read by a forward pre-hook, so no model changes.

``"dann"`` (Ganin et al. 2016, "Domain-adversarial training of neural networks")
    A small domain classifier over the penultimate features predicts each row's domain
    (one class per subject, or per dataset); a gradient-reversal step between the features
    and that classifier makes the trunk *remove* what tells domains apart. The reversal is
    plain arithmetic, ``f.detach() * (1 + lam) - f * lam`` (value ``f``, gradient ``-lam``),
    and ``lam`` follows the paper's schedule ``2 / (1 + exp(-10 p)) - 1`` over training
    progress ``p`` in [0, 1], times ``adaptation_weight``.
``"coral"`` (Sun & Saenko 2016, "Deep CORAL")
    ``adaptation_weight * ||C_s - C_t||_F^2 / (4 d^2)``: the distance between the covariance
    of the source (training) batch's penultimate features and that of a batch of target rows.

**Transductive.** The target rows are the fold's *test* windows, features only, never their
labels (as ``[features] normalize = "subject"`` uses them): a deployed monitor can do the same
with a new user's unlabelled recording. The report's method rows are then transductive too.
Validation loss and early stopping see the label loss only.

:class:`AdaptedLoss` wraps any loss of the one training loop (cross-entropy or a KD loss):
the trainer's ``targets`` carry each training row's domain id as their last column, which the
wrapper strips before calling the wrapped loss, so adaptation composes with distillation.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor, nn

from fearkd._registry import Registry

__all__ = ["ADAPTATIONS", "DOMAINS", "AdaptedLoss", "CoralPenalty", "DannPenalty",
           "coral_distance", "dann_lambda", "register_adaptation", "reverse_gradient"]

#: What ``[training] adaptation_domain`` may name.
DOMAINS = ("subject", "dataset")

ADAPTATIONS: Registry[Callable[..., nn.Module] | None] = Registry(
    "domain adaptation", "[training] adaptation")


def register_adaptation(name: str, factory: Callable[..., nn.Module] | None, *,
                        description: str = "", overwrite: bool = False):
    """Make ``name`` a value of ``[training] adaptation``.

    Parameters
    ----------
    name : str
    factory : callable or None
        ``factory(n_features, n_domains) -> nn.Module`` whose
        ``forward(f_source, d_source, f_target, d_target, lam)`` returns a scalar penalty;
        ``n_features`` is the width of the head's input. ``None``: no adaptation.
    description : str
        One line for ``--help`` and the docs.
    overwrite : bool
    """
    if factory is not None and not callable(factory):
        raise TypeError(f"register_adaptation({name!r}, ...): 'factory' must be callable "
                        f"(n_features, n_domains) -> nn.Module or None, got "
                        f"{type(factory).__name__}.")
    return ADAPTATIONS.register(name, factory, description=description, overwrite=overwrite)


def reverse_gradient(x: Tensor, lam: float) -> Tensor:
    """Identity forward, gradient times ``-lam`` backward (plain tensor arithmetic)."""
    return x.detach() * (1.0 + lam) - x * lam


def dann_lambda(progress: float) -> float:
    """Ganin et al.'s schedule: ``2 / (1 + exp(-10 p)) - 1`` for progress ``p`` in [0, 1]."""
    p = min(max(float(progress), 0.0), 1.0)
    return 2.0 / (1.0 + math.exp(-10.0 * p)) - 1.0


def coral_distance(source: Tensor, target: Tensor) -> Tensor:
    """``||C_s - C_t||_F^2 / (4 d^2)`` of two feature batches, shapes (n_s, d), (n_t, d)."""
    d = source.shape[1]

    def cov(f: Tensor) -> Tensor:
        f = f - f.mean(0, keepdim=True)
        return f.T @ f / max(f.shape[0] - 1, 1)

    return ((cov(source) - cov(target)) ** 2).sum() / (4.0 * d * d)


class DannPenalty(nn.Module):
    """Domain classifier behind a gradient reversal; its cross-entropy is the penalty.

    Parameters
    ----------
    n_features : int
        Width of the penultimate features.
    n_domains : int
        Number of domains (subjects or datasets of the training and target rows).
    hidden : int
    """

    def __init__(self, n_features: int, n_domains: int, hidden: int = 32) -> None:
        super().__init__()
        self.classifier = nn.Sequential(nn.Linear(n_features, hidden), nn.ReLU(),
                                        nn.Linear(hidden, max(n_domains, 2)))

    def forward(self, f_source: Tensor, d_source: Tensor, f_target: Tensor, d_target: Tensor,
                lam: float) -> Tensor:
        """Cross-entropy of the domain classifier on both batches (reversed into the trunk)."""
        f = reverse_gradient(torch.cat([f_source, f_target]), lam)
        d = torch.cat([d_source, d_target])
        return nn.functional.cross_entropy(self.classifier(f), d)


class CoralPenalty(nn.Module):
    """CORAL distance between the source and target batches (no parameters)."""

    def __init__(self, n_features: int, n_domains: int) -> None:
        super().__init__()

    def forward(self, f_source: Tensor, d_source: Tensor, f_target: Tensor, d_target: Tensor,
                lam: float) -> Tensor:
        """:func:`coral_distance` of the two batches (``lam`` unused: CORAL has no schedule)."""
        return coral_distance(f_source, f_target)


register_adaptation("none", None, description="no domain adaptation")
register_adaptation("dann", DannPenalty,
                    description="gradient-reversal domain classifier over the penultimate "
                                "features (Ganin et al. 2016), transductive")
register_adaptation("coral", CoralPenalty,
                    description="match the penultimate features' covariance to the test "
                                "windows' (Sun & Saenko 2016), transductive")


class AdaptedLoss:
    """A training-loop loss plus a domain-adaptation penalty on the head's input.

    Use as a context manager around :func:`fearkd.training.fit`: entering attaches the
    penalty module to the model (as ``model.adaptation_penalty``, so the loop's optimiser
    trains its parameters) and a forward pre-hook on ``model.head``; leaving removes both, so
    the trained model is the plain registered model again.

    Parameters
    ----------
    name : str
        A name of :data:`ADAPTATIONS` other than ``"none"``.
    model : nn.Module
        The model to train (has a Linear ``.head``).
    base : callable or None
        The wrapped loss ``(logits, y, targets, X) -> scalar``; None: cross-entropy with
        ``class_weight``.
    X_target : ndarray, shape (n_target, n_features)
        Unlabelled target rows, already scaled like the training rows.
    d_target : ndarray of int, shape (n_target,)
        Domain id of each target row.
    n_domains : int
    weight : float
        ``[training] adaptation_weight``.
    total_steps : int
        Optimiser steps of the whole fit (the schedule's ``p`` = steps so far / this).
    batch_size : int
        Target rows drawn per step.
    random_state : int
    class_weight : Tensor or None
        Class weights of the default cross-entropy.
    """

    def __init__(self, name: str, model: nn.Module, base, X_target: np.ndarray,
                 d_target: np.ndarray, n_domains: int, *, weight: float, total_steps: int,
                 batch_size: int, random_state: int = 0, class_weight: Tensor | None = None
                 ) -> None:
        factory = ADAPTATIONS.get(name)
        if factory is None:
            raise ValueError(f"Invalid value for '[training] adaptation': AdaptedLoss needs a "
                             f"method, got {name!r}; do not wrap the loss for 'none'.")
        if len(X_target) < 2:
            raise ValueError(f"[training] adaptation = {name!r} needs at least 2 unlabelled "
                             f"target (test) rows, got {len(X_target)}; use adaptation = "
                             f"'none' for this protocol.")
        self.model = model
        self.base = base
        self.weight = float(weight)
        self.total_steps = max(int(total_steps), 1)
        self.batch_size = int(batch_size)
        with torch.random.fork_rng(devices=[]):  # the same seed, the same domain head
            torch.manual_seed(int(random_state))
            self.penalty = factory(model.head.in_features, int(n_domains))
        self._X_target = torch.as_tensor(np.asarray(X_target, dtype=np.float32))
        self._d_target = torch.as_tensor(np.asarray(d_target, dtype=np.int64))
        self._generator = torch.Generator().manual_seed(int(random_state))
        self._class_weight = class_weight
        self._features: Tensor | None = None
        self._hook = None
        self.steps = 0

    def __enter__(self) -> AdaptedLoss:
        self.model.adaptation_penalty = self.penalty
        self._hook = self.model.head.register_forward_pre_hook(self._capture)
        return self

    def __exit__(self, *exc) -> None:
        if self._hook is not None:
            self._hook.remove()
            self._hook = None
        if hasattr(self.model, "adaptation_penalty"):
            del self.model.adaptation_penalty

    def _capture(self, module: nn.Module, args: tuple) -> None:
        self._features = args[0]

    def __call__(self, logits: Tensor, y: Tensor, targets: Tensor | None,
                 X: Tensor | None = None) -> Tensor:
        """Wrapped loss on the labels; plus the penalty while the model trains."""
        domains = targets[:, -1].long()
        rest = targets[:, :-1] if targets.shape[1] > 1 else None
        if self.base is None:
            w = None if self._class_weight is None else self._class_weight.to(logits.device)
            value = nn.functional.cross_entropy(logits, y, weight=w)
        else:
            value = self.base(logits, y, rest, X)
        if not self.model.training or self.weight == 0.0:
            return value
        f_source = self._features
        idx = torch.randint(len(self._X_target), (min(self.batch_size, len(self._X_target)),),
                            generator=self._generator)
        device = logits.device
        self.model(self._X_target[idx].to(device))
        f_target = self._features
        lam = dann_lambda(self.steps / self.total_steps)
        self.steps += 1
        penalty = self.penalty(f_source.reshape(len(f_source), -1), domains,
                               f_target.reshape(len(f_target), -1),
                               self._d_target[idx].to(device), lam)
        return value + self.weight * penalty
