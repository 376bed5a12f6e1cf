"""The model registry, ``make_model``, heads and freeze policies.

Every network is built as ``make_model(name, n_features, n_outputs, **params)`` from the
:data:`MODELS` registry. The model files (``cnn.py``, ``rnn.py``, ``hybrid.py``, ``mlp.py``)
register their names with :func:`register_model` when :mod:`fearkd.models` is imported; this
module imports none of them. A model follows the contract of :mod:`fearkd.models.base`: it
maps ``(batch, n_features)`` to logits ``(batch, n_outputs)``, its output layer is an
``nn.Linear`` named ``.head``, and it names its feature extractor in ``trunk_names``.

Freeze policies (:data:`FREEZE_POLICIES`, applied by :func:`freeze` before optimisation):

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

from collections.abc import Callable
from typing import Any

import pandas as pd
import torch
from torch import nn

from fearkd._registry import Registry
from fearkd.models.base import ModelSpec, check_size, keras_init_

__all__ = [
    "FREEZE_POLICIES",
    "MODELS",
    "available_models",
    "freeze",
    "make_model",
    "parameter_summary",
    "parameter_table",
    "register_freeze_policy",
    "register_model",
    "replace_head",
]

ModelBuilder = Callable[..., nn.Module]
FreezePolicy = Callable[[nn.Module], set[int]]

MODELS: Registry[ModelBuilder] = Registry("model", "[models] backbones")
FREEZE_POLICIES: Registry[FreezePolicy] = Registry("freeze policy", "[methods] freeze")


def register_model(name: str, builder: ModelBuilder, *, defaults: dict[str, Any] | None = None,
                   description: str = "", overwrite: bool = False) -> ModelBuilder:
    """Make ``name`` a model that ``make_model``, experiment files and the CLI accept.

    Parameters
    ----------
    name : str
        What a user writes (``[models] backbones = ["mynet"]``).
    builder : callable
        A :class:`~fearkd.models.base.FearkdModule` subclass or any callable
        ``builder(n_features, n_outputs, **params) -> nn.Module`` whose module maps
        ``(batch, n_features)`` to logits ``(batch, n_outputs)`` and has an ``nn.Linear``
        output layer named ``.head``. A ``trunk_names`` tuple of child-module names on the
        module enables the ``"trunk"`` freeze policy.
    defaults : dict, optional
        Parameters passed to ``builder`` unless the caller gives them.
    description : str
        One line for ``--help`` and the docs.
    overwrite : bool
        Replace an existing registration of ``name`` instead of raising.

    Returns
    -------
    callable
        ``builder`` itself.

    Raises
    ------
    TypeError
        ``builder`` is not callable or ``defaults`` is not a dict.
    ValueError
        ``name`` is registered already and ``overwrite`` is false.
    """
    if not callable(builder):
        raise TypeError(f"register_model({name!r}, ...): 'builder' must be a class or function "
                        f"builder(n_features, n_outputs, **params) -> nn.Module, got "
                        f"{type(builder).__name__} {builder!r}.")
    if defaults is not None and not isinstance(defaults, dict):
        raise TypeError(f"register_model({name!r}, ...): 'defaults' must be a dict of "
                        f"parameters, got {type(defaults).__name__} {defaults!r}.")
    return MODELS.register(name, builder, description=description, overwrite=overwrite,
                           defaults=dict(defaults or {}))


def available_models() -> tuple[str, ...]:
    """Names accepted by :func:`make_model`, in registration order."""
    return MODELS.names()


def make_model(name: str, n_features: int, n_outputs: int, *, random_state: int | None = None,
               **params: Any) -> nn.Module:
    """Build a registered network.

    Parameters
    ----------
    name : str
        One of :func:`available_models`: the built-ins ``cnn``, ``lstm``, ``gru``,
        ``cnn-lstm``, ``ann``, ``dnn150``, ``dnn300``, ``bilstm``, ``bigru``,
        ``cnn-teacher``, ``attention``, ``multi-input``, ``ensemble``, plus any name given to
        :func:`register_model`.
    n_features : int
        Length of the input feature vector.
    n_outputs : int
        Number of logits (classes).
    random_state : int or None
        Seed of the weight initialisation (the global torch generator is left as it was).
    **params
        Architecture parameters of the model family (see each class); they override the
        name's registered defaults.

    Returns
    -------
    nn.Module
        Maps ``(batch, n_features)`` float32 to logits ``(batch, n_outputs)``; has a Linear
        ``.head`` and its :class:`~fearkd.models.base.ModelSpec` as ``.spec``.
    """
    if not isinstance(name, str):
        raise TypeError(f"'name' must be a model name (str), got {type(name).__name__}.")
    entry = MODELS.entry(name)
    n_features = check_size("n_features", n_features, 1)
    n_outputs = check_size("n_outputs", n_outputs, 1)
    kwargs = {**entry.info.get("defaults", {}), **params}
    if random_state is None:
        model = entry.obj(n_features, n_outputs, **kwargs)
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(random_state))
            model = entry.obj(n_features, n_outputs, **kwargs)
    if not isinstance(model, nn.Module) or not isinstance(getattr(model, "head", None),
                                                          nn.Linear):
        raise TypeError(f"Model {name!r}: its builder returned {type(model).__name__} without "
                        f"an nn.Linear '.head'; a registered model must be an nn.Module whose "
                        f"output layer is an nn.Linear named 'head' (see register_model).")
    model.spec = ModelSpec(name, n_features, n_outputs, dict(params))
    return model


def replace_head(model: nn.Module, n_outputs: int, *,
                 random_state: int | None = None) -> nn.Module:
    """Put a fresh output layer with ``n_outputs`` logits on a model's trunk (in place).

    Parameters
    ----------
    model : nn.Module
        A model from :func:`make_model`; every other layer keeps its weights. A model with a
        ``replace_outputs(n_outputs, random_state=...)`` method (the ``ensemble``: each
        member's head and the combining head) replaces its output layers itself.
    n_outputs : int
        Number of classes of the new task.
    random_state : int or None
        Seed of the new layer's (Glorot-uniform) initialisation.

    Returns
    -------
    nn.Module
        ``model``, with ``.head`` replaced and ``.spec.n_outputs`` updated.
    """
    if not isinstance(getattr(model, "head", None), nn.Linear):
        raise TypeError(f"replace_head needs a model with a Linear '.head', got "
                        f"{type(model).__name__}.")
    n_outputs = check_size("n_outputs", n_outputs, 1)
    own = getattr(model, "replace_outputs", None)
    if callable(own):  # a model whose head depends on its output size elsewhere (an ensemble)
        own(n_outputs, random_state=random_state)
        _respec(model, n_outputs)
        return model
    old = model.head
    with torch.random.fork_rng(devices=[]):
        if random_state is not None:
            torch.manual_seed(int(random_state))
        head = nn.Linear(old.in_features, n_outputs, dtype=old.weight.dtype,
                         device=old.weight.device)
        keras_init_(head)
    model.head = head
    _respec(model, n_outputs)
    return model


def _respec(model: nn.Module, n_outputs: int) -> None:
    spec = getattr(model, "spec", None)
    if spec is not None:
        model.spec = ModelSpec(spec.name, spec.n_features, n_outputs, dict(spec.params))


def register_freeze_policy(name: str, policy: FreezePolicy, *, description: str = "",
                           overwrite: bool = False) -> FreezePolicy:
    """Make ``name`` a value of ``[methods] freeze``.

    Parameters
    ----------
    name : str
    policy : callable
        ``policy(model) -> set of id(parameter)``: the parameters to freeze.
    description : str
        One line for ``--help`` and the docs.
    overwrite : bool
        Replace an existing registration of ``name`` instead of raising.

    Returns
    -------
    callable
        ``policy`` itself.
    """
    if not callable(policy):
        raise TypeError(f"register_freeze_policy({name!r}, ...): 'policy' must be a function "
                        f"model -> set of parameter ids, got {type(policy).__name__}.")
    return FREEZE_POLICIES.register(name, policy, description=description, overwrite=overwrite)


def _freeze_none(model: nn.Module) -> set[int]:
    return set()


def _freeze_trunk(model: nn.Module) -> set[int]:
    names = tuple(getattr(model, "trunk_names", ()) or ())
    if not names:
        spec = getattr(model, "spec", None)
        label = repr(spec.name) if spec is not None else type(model).__name__
        raise ValueError(f"Invalid value for '[methods] freeze': model {label} names no trunk "
                         f"(its 'trunk_names' is empty), so 'trunk' cannot apply; use "
                         f"'all-but-head' or 'none', or give the model a trunk_names tuple.")
    return {id(p) for n in names for p in getattr(model, n).parameters()}


def _freeze_all_but_head(model: nn.Module) -> set[int]:
    head_ids = {id(p) for p in model.head.parameters()}
    return {id(p) for p in model.parameters() if id(p) not in head_ids}


register_freeze_policy("none", _freeze_none, description="every parameter trains")
register_freeze_policy("trunk", _freeze_trunk,
                       description="the feature extractor (trunk_names) is frozen")
register_freeze_policy("all-but-head", _freeze_all_but_head,
                       description="only the output layer (.head) trains")


def freeze(model: nn.Module, policy: str) -> list[str]:
    """Apply a freeze policy (``requires_grad``); see the module docstring.

    Parameters
    ----------
    model : nn.Module
        A model from :func:`make_model`.
    policy : str
        A name of :data:`FREEZE_POLICIES` (``"none"``, ``"trunk"``, ``"all-but-head"``).

    Returns
    -------
    list of str
        Names of the frozen parameters.
    """
    frozen_ids = FREEZE_POLICIES.get(policy)(model)
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
