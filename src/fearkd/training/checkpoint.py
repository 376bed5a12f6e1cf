"""Checkpoints: weights + scaler + model spec + feature names + class names, loaded safely.

A checkpoint is a ``torch.save`` of a dict of tensors and plain types only::

    {"format": "fearkd-checkpoint", "version": 1,
     "spec": {"name", "n_features", "n_outputs", "params"},
     "state_dict": {name: tensor}, "scaler": None or {"mean", "scale", "var": tensor,
     "n_samples_seen": int}, "feature_names": [str] or None, "class_names": [str] or None,
     "metadata": {str: plain}}

and is read with ``torch.load(weights_only=True)``, which refuses anything but tensors and
plain containers: loading never runs code from the file. Writes are atomic (a temporary file
in the same directory, then ``os.replace``), so a crash never leaves half a checkpoint.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.preprocessing import StandardScaler
from torch import nn

from fearkd._atomic import atomic_open
from fearkd.errors import CheckpointError
from fearkd.models.base import ModelSpec
from fearkd.models.registry import make_model

__all__ = ["Checkpoint", "load_checkpoint", "load_weights", "save_checkpoint"]

FORMAT = "fearkd-checkpoint"
VERSION = 1


@dataclass
class Checkpoint:
    """A loaded checkpoint: the rebuilt model (eval mode) and what was saved with it."""

    model: nn.Module
    spec: ModelSpec
    scaler: StandardScaler | None
    feature_names: tuple[str, ...] | None
    class_names: tuple[str, ...] | None
    metadata: dict[str, Any] = field(default_factory=dict)


def _scaler_dict(scaler: StandardScaler | None) -> dict[str, Any] | None:
    if scaler is None:
        return None
    if not hasattr(scaler, "mean_"):
        raise TypeError(f"'scaler' must be a fitted StandardScaler or None, got {scaler!r}.")

    def tensor(value):
        return None if value is None else torch.as_tensor(np.asarray(value, dtype=np.float64))

    return {"mean": tensor(scaler.mean_), "scale": tensor(scaler.scale_),
            "var": tensor(scaler.var_), "n_samples_seen": int(np.max(scaler.n_samples_seen_))}


def _scaler_from(state: dict[str, Any] | None) -> StandardScaler | None:
    if state is None:
        return None
    scaler = StandardScaler()
    scaler.mean_ = state["mean"].numpy()
    scaler.scale_ = state["scale"].numpy()
    scaler.var_ = state["var"].numpy()
    scaler.n_samples_seen_ = state["n_samples_seen"]
    scaler.n_features_in_ = len(scaler.mean_)
    return scaler


def _plain(value: Any) -> Any:
    """Tuples become lists, NumPy scalars Python scalars: what weights_only loading admits."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise TypeError(f"Checkpoint values must be plain types (dict, list, str, int, float, bool, "
                    f"None), got {type(value).__name__} {value!r}.")


def save_checkpoint(path, model: nn.Module, *, scaler: StandardScaler | None = None,
                    feature_names=None, class_names=None,
                    metadata: dict[str, Any] | None = None) -> Path:
    """Write a model (built by ``make_model``) and what it needs to be used again.

    Parameters
    ----------
    path : str or Path
    model : nn.Module
        Has a ``.spec`` (:class:`fearkd.models.ModelSpec`).
    scaler : StandardScaler or None
        The scaler fitted with the model.
    feature_names : sequence of str, optional
        Input columns, in order; checked again when loading.
    class_names : sequence of str, optional
    metadata : dict, optional
        Plain values (str, numbers, lists, dicts).

    Returns
    -------
    Path
    """
    spec = getattr(model, "spec", None)
    if not isinstance(spec, ModelSpec):
        raise TypeError(f"'model' must come from fearkd.models.make_model (it needs a .spec), "
                        f"got {type(model).__name__}.")
    if feature_names is not None and len(feature_names) != spec.n_features:
        raise ValueError(f"'feature_names' has {len(feature_names)} names but the model takes "
                         f"{spec.n_features} features.")
    payload = {
        "format": FORMAT, "version": VERSION, "spec": _plain(spec.to_dict()),
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "scaler": _scaler_dict(scaler),
        "feature_names": None if feature_names is None else [str(n) for n in feature_names],
        "class_names": None if class_names is None else [str(n) for n in class_names],
        "metadata": _plain(metadata or {}),
    }
    path = Path(path)
    buffer = io.BytesIO()  # serialised first: a full disk is then an OSError, not torch's
    torch.save(payload, buffer)
    with atomic_open(path) as fh:
        fh.write(buffer.getbuffer())
    return path


def _read(path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"No checkpoint at '{path}'.")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for unreadable or unsafe files
        raise CheckpointError(f"'{path}' is not a readable fearkd checkpoint and was refused: "
                              f"{_refusal(exc)}; nothing in it ran. Delete it (a re-run "
                              f"retrains that stage) or use a checkpoint fearkd wrote.") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"'{path}' is not a fearkd checkpoint (no format {FORMAT!r}).")
    return payload


def _refusal(exc: Exception) -> str:
    """Why torch refused a file, without torch's advice to load it unsafely."""
    text = str(exc)
    found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
    if found:
        return (f"it asks to run {found.group(1)!r}, and only tensors and plain types are "
                f"loaded")
    if "weights_only" in text or "Weights only load failed" in text:
        return "it holds objects other than tensors and plain types"
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return f"it cannot be read ({first[:200]})"


def _spec(payload) -> ModelSpec:
    s = payload["spec"]
    return ModelSpec(s["name"], int(s["n_features"]), int(s["n_outputs"]), dict(s["params"]))


def load_weights(model: nn.Module, path) -> nn.Module:
    """Load a checkpoint's weights into an existing model of the same spec.

    Raises
    ------
    CheckpointError
        The model's name or shape differs from the checkpoint's (both are named).
    """
    payload = _read(path)
    saved = _spec(payload)
    spec = getattr(model, "spec", None)
    mine = (spec.name, spec.n_features, spec.n_outputs, spec.params) if spec else None
    theirs = (saved.name, saved.n_features, saved.n_outputs, saved.params)
    if spec is not None and (spec.name, spec.n_features, spec.n_outputs) != theirs[:3]:
        raise CheckpointError(f"'{path}' holds model {theirs[:3]} (name, n_features, n_outputs) "
                              f"but it is being loaded into {mine[:3]}; build the model from "
                              f"the checkpoint with load_checkpoint().")
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as exc:
        raise CheckpointError(f"'{path}' holds weights of {saved.name!r} {saved.params} that do "
                              f"not fit {type(model).__name__}: {exc}") from exc
    return model


def load_checkpoint(path, *, feature_names=None, device=None) -> Checkpoint:
    """Rebuild a model from a checkpoint.

    Parameters
    ----------
    path : str or Path
    feature_names : sequence of str, optional
        The caller's feature columns; they must equal the checkpoint's, name by name and in
        order.
    device : str or torch.device, optional

    Returns
    -------
    Checkpoint
    """
    payload = _read(path)
    spec = _spec(payload)
    saved_names = payload.get("feature_names")
    if feature_names is not None:
        wanted = [str(n) for n in feature_names]
        if saved_names is None or wanted != list(saved_names):
            missing = [n for n in (saved_names or []) if n not in wanted]
            extra = [n for n in wanted if n not in (saved_names or [])]
            raise CheckpointError(
                f"'{path}' was trained on {len(saved_names or [])} features "
                f"{_short(saved_names)} but got {len(wanted)} {_short(wanted)} (missing: "
                f"{_short(missing)}, unexpected: {_short(extra)}); select the checkpoint's "
                f"feature columns in its order.")
    try:
        model = make_model(spec.name, spec.n_features, spec.n_outputs, **spec.params)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"'{path}' describes a model that cannot be built: {exc}") from exc
    load_weights(model, path)
    if device is not None:
        model.to(device)
    model.eval()
    names = payload.get("class_names")
    return Checkpoint(model=model, spec=spec, scaler=_scaler_from(payload.get("scaler")),
                      feature_names=None if saved_names is None else tuple(saved_names),
                      class_names=None if names is None else tuple(names),
                      metadata=dict(payload.get("metadata") or {}))


def _short(names, limit: int = 6) -> str:
    if not names:
        return "[]"
    names = list(names)
    more = f", ... (+{len(names) - limit})" if len(names) > limit else ""
    return "[" + ", ".join(repr(n) for n in names[:limit]) + more + "]"
