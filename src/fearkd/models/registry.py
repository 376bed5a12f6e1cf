"""One model contract and one registry.

Every network is built as ``make_model(name, n_features, n_outputs, **params)``, maps a batch of
feature vectors ``(batch, n_features)`` to logits ``(batch, n_outputs)``, exposes its output layer
as ``.head`` (an ``nn.Linear``) and names its feature extractor in ``trunk_names``, and carries
its :class:`ModelSpec` as ``.spec`` (what a checkpoint stores to rebuild it).

Freezing policies (:func:`freeze`), applied by the trainer before optimisation:

``"none"``
    Every parameter trains.
``"trunk"``
    The feature extractor (``trunk_names``: convolution and BatchNorm layers of the CNN, the
    recurrent layers of the LSTM/GRU, convolution and recurrent layers of the CNN-LSTM, the
    hidden layers of an MLP) is frozen; the dense layers after it, including ``.head``, train.
``"all-but-head"``
    Every parameter except those of ``.head`` is frozen.

A frozen BatchNorm layer also stops updating its running statistics and normalises with them
(the trainer keeps it in eval mode), as Keras does for a BatchNorm layer with
``trainable=False``.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import torch
from torch import nn

__all__ = [
    "FREEZE_POLICIES",
    "FearkdModule",
    "ModelSpec",
    "available_models",
    "freeze",
    "make_model",
    "parameter_summary",
    "parameter_table",
    "replace_head",
]

FREEZE_POLICIES = ("none", "trunk", "all-but-head")


@dataclass(frozen=True)
class ModelSpec:
    """What is needed to rebuild a model: registry name, input and output sizes, parameters."""

    name: str
    n_features: int
    n_outputs: int
    params: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain-type form (what a checkpoint stores)."""
        return {"name": self.name, "n_features": self.n_features, "n_outputs": self.n_outputs,
                "params": dict(self.params)}


class FearkdModule(nn.Module):
    """Base of the registered networks.

    Subclasses set ``self.head`` (the last ``nn.Linear``) and the class attribute
    ``trunk_names`` (child modules frozen by the ``"trunk"`` policy).
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


def _check_size(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"'{name}' must be an int, got {type(value).__name__} {value!r}.")
    value = int(value)
    if value < minimum:
        raise ValueError(f"'{name}' must be at least {minimum}, got {value!r}.")
    return value


def _builders() -> dict[str, tuple[type, dict[str, Any], dict[str, Any]]]:
    """name -> (class, parameters the name fixes, defaults the caller may override)."""
    # Imported here: the model modules import FearkdModule from this module.
    from fearkd.models.cnn import CNN
    from fearkd.models.hybrid import CNNLSTM
    from fearkd.models.mlp import MLP, MLP_PRESETS
    from fearkd.models.rnn import RecurrentNet

    table: dict[str, tuple[type, dict[str, Any], dict[str, Any]]] = {
        "cnn": (CNN, {"impl": "fast"}, {}),
        "cnn-plain": (CNN, {"impl": "plain"}, {}),
        "lstm": (RecurrentNet, {"cell": "lstm", "impl": "fused"}, {}),
        "lstm-plain": (RecurrentNet, {"cell": "lstm", "impl": "native"}, {}),
        "gru": (RecurrentNet, {"cell": "gru", "impl": "fused"}, {}),
        "gru-plain": (RecurrentNet, {"cell": "gru", "impl": "native"}, {}),
        "cnn-lstm": (CNNLSTM, {"impl": "fast"}, {}),
        "cnn-lstm-plain": (CNNLSTM, {"impl": "plain"}, {}),
    }
    for name, hidden in MLP_PRESETS.items():
        table[name] = (MLP, {}, {"hidden": hidden})
    return table


def available_models() -> tuple[str, ...]:
    """Names accepted by :func:`make_model`, sorted."""
    return tuple(sorted(_builders()))


def make_model(name: str, n_features: int, n_outputs: int, *, random_state: int | None = None,
               **params: Any) -> FearkdModule:
    """Build a registered network.

    Parameters
    ----------
    name : str
        One of :func:`available_models` (``cnn``, ``lstm``, ``gru``, ``ann``, ``dnn150``,
        ``dnn300``, ``cnn-lstm``; ``*-plain`` are the same functions built from plain PyTorch
        layers, kept for benchmarks and equivalence tests).
    n_features : int
        Length of the input feature vector.
    n_outputs : int
        Number of logits (classes).
    random_state : int or None
        Seed of the weight initialisation (the global torch generator is left as it was).
    **params
        Architecture parameters of the model family (see each class).

    Returns
    -------
    FearkdModule
        Maps ``(batch, n_features)`` float32 to logits ``(batch, n_outputs)``.
    """
    if not isinstance(name, str):
        raise TypeError(f"'name' must be a model name (str), got {type(name).__name__}.")
    builders = _builders()
    if name not in builders:
        raise ValueError(f"Unknown model {name!r}: expected one of "
                         f"{', '.join(sorted(builders))}.")
    n_features = _check_size("n_features", n_features, 1)
    n_outputs = _check_size("n_outputs", n_outputs, 1)
    cls, fixed, defaults = builders[name]
    clash = sorted(set(fixed) & set(params))
    if clash:
        raise ValueError(f"Model {name!r} fixes {clash}; choose the model by name instead "
                         f"(e.g. 'cnn' vs 'cnn-plain').")
    kwargs = {**defaults, **params, **fixed}
    if random_state is None:
        model = cls(n_features, n_outputs, **kwargs)
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(random_state))
            model = cls(n_features, n_outputs, **kwargs)
    model.spec = ModelSpec(name, n_features, n_outputs, dict(params))
    return model


def replace_head(model: FearkdModule, n_outputs: int, *,
                 random_state: int | None = None) -> FearkdModule:
    """Put a fresh output layer with ``n_outputs`` logits on a model's trunk (in place).

    Parameters
    ----------
    model : FearkdModule
        A model from :func:`make_model`; every other layer keeps its weights.
    n_outputs : int
        Number of classes of the new task.
    random_state : int or None
        Seed of the new layer's (Glorot-uniform) initialisation.

    Returns
    -------
    FearkdModule
        ``model``, with ``.head`` replaced and ``.spec.n_outputs`` updated.
    """
    if not isinstance(getattr(model, "head", None), nn.Linear):
        raise TypeError(f"replace_head needs a model with a Linear '.head', got "
                        f"{type(model).__name__}.")
    n_outputs = _check_size("n_outputs", n_outputs, 1)
    old = model.head
    with torch.random.fork_rng(devices=[]):
        if random_state is not None:
            torch.manual_seed(int(random_state))
        head = nn.Linear(old.in_features, n_outputs, dtype=old.weight.dtype,
                         device=old.weight.device)
        keras_init_(head)
    model.head = head
    spec = getattr(model, "spec", None)
    if spec is not None:
        model.spec = ModelSpec(spec.name, spec.n_features, n_outputs, dict(spec.params))
    return model


def freeze(model: FearkdModule, policy: str) -> list[str]:
    """Apply a freezing policy (``requires_grad``); see the module docstring.

    Parameters
    ----------
    model : FearkdModule
    policy : {"none", "trunk", "all-but-head"}

    Returns
    -------
    list of str
        Names of the frozen parameters.
    """
    if policy not in FREEZE_POLICIES:
        raise ValueError(f"Invalid value for 'freeze': expected one of "
                         f"{', '.join(repr(p) for p in FREEZE_POLICIES)}, got {policy!r}.")
    head_ids = {id(p) for p in model.head.parameters()}
    if policy == "trunk":
        frozen_ids = {id(p) for m in model.trunk_modules() for p in m.parameters()}
    elif policy == "all-but-head":
        frozen_ids = {id(p) for p in model.parameters() if id(p) not in head_ids}
    else:
        frozen_ids = set()
    names = []
    for name, param in model.named_parameters():
        param.requires_grad_(id(param) not in frozen_ids)
        if id(param) in frozen_ids:
            names.append(name)
    return names


def _counts(model: nn.Module) -> tuple[int, int]:
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
    # Keras counts BatchNorm's moving mean and variance as non-trainable parameters.
    stats = sum(b.numel() for n, b in model.named_buffers()
                if n.endswith(("running_mean", "running_var")))
    return trainable, frozen + stats


def parameter_table(models: Any, n_features: int, n_outputs: int) -> pd.DataFrame:
    """Parameter counts in the reference's (Keras) terms.

    Parameters
    ----------
    models : dict of str to nn.Module, or iterable of registry names
        Models to count; names are built with ``make_model(name, n_features, n_outputs)``.
    n_features, n_outputs : int
        Sizes used to build models given by name.

    Returns
    -------
    pandas.DataFrame
        One row per model: ``model``, ``total``, ``trainable``, ``non_trainable``
        (non-trainable = frozen parameters + BatchNorm running mean and variance, as Keras).
    """
    if isinstance(models, dict):
        items = list(models.items())
    elif isinstance(models, str):
        items = [(models, make_model(models, n_features, n_outputs))]
    else:
        items = [(name, make_model(name, n_features, n_outputs)) for name in models]
    rows = []
    for name, model in items:
        trainable, non_trainable = _counts(model)
        rows.append({"model": name, "total": trainable + non_trainable,
                     "trainable": trainable, "non_trainable": non_trainable})
    return pd.DataFrame(rows, columns=["model", "total", "trainable", "non_trainable"])


def parameter_summary(model: nn.Module) -> str:
    """Keras-style summary lines: ``Total params / Trainable params / Non-trainable params``."""
    trainable, non_trainable = _counts(model)
    return (f"Total params: {trainable + non_trainable:,}\n"
            f"Trainable params: {trainable:,}\n"
            f"Non-trainable params: {non_trainable:,}")
