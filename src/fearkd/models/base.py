"""The model contract: what every registered network is and carries.

A network maps a batch of feature vectors ``(batch, n_features)`` to logits
``(batch, n_outputs)``, exposes its output layer as ``.head`` (an ``nn.Linear``), may name its
feature extractor in ``trunk_names`` (what the ``"trunk"`` freeze policy freezes), and carries
its :class:`ModelSpec` as ``.spec`` (what a checkpoint stores to rebuild it).

This module imports no model file and no registry, so that model files, the registry and the
training code can all import it without a cycle.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field
from typing import Any

from torch import nn

__all__ = ["FearkdModule", "ModelSpec", "check_size", "keras_init_"]


@dataclass(frozen=True)
class ModelSpec:
    """What is needed to rebuild a model: registry name, input and output sizes, parameters.

    Attributes
    ----------
    name : str
        The model's registry name (``make_model``'s ``name``).
    n_features : int
        Length of the input feature vector.
    n_outputs : int
        Number of logits.
    params : dict
        The architecture parameters given to ``make_model`` (defaults of the name excluded).
    """

    name: str
    n_features: int
    n_outputs: int
    params: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain-type form (what a checkpoint stores)."""
        return {"name": self.name, "n_features": self.n_features, "n_outputs": self.n_outputs,
                "params": dict(self.params)}


class FearkdModule(nn.Module):
    """Base of the built-in networks.

    Subclasses set ``self.head`` (the last ``nn.Linear``) and the class attribute
    ``trunk_names`` (child modules frozen by the ``"trunk"`` freeze policy).
    """

    trunk_names: tuple[str, ...] = ()
    spec: ModelSpec

    def trunk_modules(self) -> list[nn.Module]:
        """The feature-extractor modules named in ``trunk_names``."""
        return [getattr(self, name) for name in self.trunk_names]


def keras_init_(module: nn.Module) -> None:
    """Keras defaults: Glorot-uniform kernels and zero biases for every Conv1d and Linear.

    Parameters
    ----------
    module : nn.Module
        Initialised in place.
    """
    for sub in module.modules():
        if isinstance(sub, nn.Linear | nn.Conv1d):
            nn.init.xavier_uniform_(sub.weight)
            if sub.bias is not None:
                nn.init.zeros_(sub.bias)


def check_size(name: str, value: Any, minimum: int) -> int:
    """``value`` as an int of at least ``minimum``, or a one-line error naming ``name``.

    Raises
    ------
    TypeError
        ``value`` is not an integer (``bool`` counts as not one).
    ValueError
        ``value`` is below ``minimum``.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"'{name}' must be an int, got {type(value).__name__} {value!r}.")
    value = int(value)
    if value < minimum:
        raise ValueError(f"'{name}' must be at least {minimum}, got {value!r}.")
    return value
