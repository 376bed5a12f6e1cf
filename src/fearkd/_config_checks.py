"""The checks of an experiment file that need more than one key or a registry.

:func:`check_config` runs after :mod:`fearkd.config` has built the frozen dataclasses from the
TOML tables (types, unknown keys, positive values): every name against the registry that
defines it, reader options against the reader's signature, ``[[datasets]]`` entries, model
parameters, the ensemble and the numeric ranges. Each failure is one
:class:`~fearkd.errors.ConfigError` naming the file, the key and the fix. The registries are
imported when a file is checked, not with this module.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Collection, Mapping
from typing import TYPE_CHECKING

from ._registry import Registry
from .errors import ConfigError

if TYPE_CHECKING:
    from .config import ExperimentConfig

__all__ = ["check_config"]


def check_config(cfg: ExperimentConfig, source: str) -> None:
    """Check what the dataclasses alone cannot; raise :class:`ConfigError` on the first fault."""
    _check_names(cfg, source)
    _check_multi(cfg, source)
    _check_reader_options(cfg.dataset.kind, cfg.dataset.options, source)
    m, e = cfg.methods, cfg.evaluation
    from .features.normalize import parse_normalize

    try:
        parse_normalize(cfg.features.normalize)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    if not 0.0 <= m.alpha <= 1.0:
        raise ConfigError(
            f"{source}: [methods] alpha: expected a number in [0, 1], got {m.alpha!r}."
        )
    if not 0.0 < cfg.training.val_fraction < 1.0:
        raise ConfigError(
            f"{source}: [training] val_fraction: expected a number in (0, 1), "
            f"got {cfg.training.val_fraction!r}."
        )
    if isinstance(e.folds, str) and e.folds != "auto":
        raise ConfigError(f"{source}: [evaluation] folds: expected an integer >= 2 or \"auto\" "
                          f"(one fold per subject), got {e.folds!r}.")
    if e.protocol != "seed-legacy" and isinstance(e.folds, int) and e.folds < 2:
        raise ConfigError(f"{source}: [evaluation] folds: expected at least 2 (or \"auto\"), "
                          f"got {e.folds!r}.")
    if not e.seeds:
        raise ConfigError(f"{source}: [evaluation] seeds: expected at least one seed, got [] "
                          f"(a run would train nothing); write e.g. seeds = [0].")
    _check_model_params(cfg.models.params, source)
    if not cfg.models.backbones:
        raise ConfigError(f"{source}: [models] backbones: expected at least one model name.")
    _check_ensemble(cfg, source)


def _name_sources() -> dict[tuple[str, str], Collection[str]]:
    """The registry (or constant) that defines the names of each key; imported on use."""
    from .datasets.loaders import READERS
    from .evaluation.splitters import PROTOCOLS
    from .features.extract import BASELINE_POLICIES
    from .features.spectral import BAND_POWER_METHODS
    from .labels import AMBIGUOUS_POLICIES, NAN_POLICIES
    from .methods import METHODS
    from .models import available_models
    from .models.baselines import BASELINES
    from .models.registry import FREEZE_POLICIES
    from .training.adaptation import ADAPTATIONS, DOMAINS
    from .training.distill import KD_LOSSES

    return {
        ("dataset", "kind"): READERS,
        ("labels", "ambiguous"): AMBIGUOUS_POLICIES,
        ("labels", "nan_policy"): NAN_POLICIES,
        ("features", "baseline"): BASELINE_POLICIES,
        ("features", "method"): BAND_POWER_METHODS,
        ("models", "backbones"): available_models(),
        ("models", "student"): available_models(),
        ("methods", "run"): METHODS,
        ("methods", "kd_targets"): KD_LOSSES,
        ("methods", "freeze"): FREEZE_POLICIES,
        ("methods", "baselines"): BASELINES,
        ("training", "class_weight"): ("balanced", "none"),
        ("training", "adaptation"): ADAPTATIONS,
        ("training", "adaptation_domain"): DOMAINS,
        ("evaluation", "protocol"): PROTOCOLS,
    }


#: Keys whose empty string means "not set" rather than a name.
_OPTIONAL_NAMES = {("models", "student")}


def _check_name(value: str, names: Collection[str], key: str, source: str) -> None:
    """One name against the registry (or tuple) ``names``; ConfigError naming file and key."""
    try:
        if isinstance(names, Registry):
            names.entry(value, key)
        elif value not in names:
            raise ValueError(f"Invalid value for {key!r}: expected one of "
                             f"{', '.join(map(repr, names))}, got {value!r}.")
    except ValueError as exc:
        raise ConfigError(f"{source}: {exc}") from None


def _check_names(cfg: ExperimentConfig, source: str) -> None:
    for (section, key), names in _name_sources().items():
        value = getattr(getattr(cfg, section), key)
        if (section, key) in _OPTIONAL_NAMES and value == "":
            continue
        for item in value if isinstance(value, tuple) else (value,):
            _check_name(item, names, f"[{section}] {key}", source)


def _check_reader_options(kind: str, options: Mapping, source: str,
                          where: str = "[dataset]") -> None:
    """Keys of ``[dataset]`` (or of the ``[[datasets]]`` entry ``where``) beyond
    kind/path/subjects must be arguments of the reader."""
    from .datasets.loaders import FLAT_POLICIES, READERS

    flat = options.get("flat", "warn")
    if flat not in FLAT_POLICIES:
        raise ConfigError(f"{source}: {where} flat: expected one of "
                          f"{', '.join(map(repr, FLAT_POLICIES))}, got {flat!r}.")
    if kind == "generic" or not options:
        return  # a generic table is the reader's description; its parser checks its keys
    load: Callable = READERS.get(kind)
    params = list(inspect.signature(load).parameters.values())[1:]  # after the path
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return
    known = [p.name for p in params if p.kind in (inspect.Parameter.KEYWORD_ONLY,
                                                   inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    unknown = sorted(set(options) - set(known) - {"flat"})  # flat: any reader (_open)
    if unknown:
        keys = ["kind", "path", "flat"] + ["subjects"] * ("subjects" not in known) + known
        raise ConfigError(f"{source}: unknown key(s) {unknown!r} in {where} for kind "
                          f"{kind!r}; known keys: {keys!r}.")


def _check_model_params(params: Mapping, source: str) -> None:
    """``[models.params.NAME]``: a registered model, its constructor's keys, values it takes."""
    from .models import available_models
    from .models.registry import MODELS, make_model

    for name, table in params.items():
        where = f"{source}: [models.params.{name}]"
        if name not in available_models():
            raise ConfigError(f"{where}: {name!r} is not a model; expected a table named after "
                              f"one of {', '.join(available_models())}.")
        if not isinstance(table, Mapping):
            raise ConfigError(f"{where}: expected a table of parameters, got {table!r}.")
        builder = MODELS.entry(name).obj
        sig = inspect.signature(builder)
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values()):
            known = [k for k in sig.parameters if k not in ("self", "n_features", "n_outputs")]
            for key in table:
                if key not in known:
                    raise ConfigError(f"{where} {key}: unknown parameter of model {name!r}; "
                                      f"known: {', '.join(known)}.")
        try:
            make_model(name, 4, 2, **dict(table))
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{where}: {exc} Fix the value in that table.") from None


def _check_ensemble(cfg: ExperimentConfig, source: str) -> None:
    """``[models] ensemble``: a kind, over backbones; ``ensemble`` is no backbone or student."""
    from .models.ensemble import ENSEMBLE_KINDS

    mo = cfg.models
    if mo.ensemble not in ("", *ENSEMBLE_KINDS):
        raise ConfigError(f"{source}: [models] ensemble: expected one of "
                          f"{list(ENSEMBLE_KINDS)!r} (or \"\" for none), got {mo.ensemble!r}; "
                          f"write ensemble = \"vote\" or ensemble = \"stack\".")
    if "ensemble" in mo.backbones or mo.student == "ensemble":
        key = "backbones" if "ensemble" in mo.backbones else "student"
        raise ConfigError(f"{source}: [models] {key} names 'ensemble'; an ensemble is built "
                          f"over the backbones as a teacher: remove it there and set [models] "
                          f"ensemble = \"vote\" or \"stack\".")
    if cfg.features.riemann and cfg.datasets:
        raise ConfigError(f"{source}: [features] riemann = true with [[datasets]]: the common "
                          f"feature space has no covariance columns; set riemann = false or "
                          f"run each dataset with its own [dataset] file.")
    if "ensemble" in cfg.methods.run:
        raise ConfigError(f"{source}: [methods] run names 'ensemble', which runs in a unit of "
                          f"its own: remove it from run and set [models] ensemble = \"vote\" "
                          f"or \"stack\".")
    if mo.ensemble and cfg.training.adaptation != "none":
        raise ConfigError(f"{source}: [models] ensemble = {mo.ensemble!r} with [training] "
                          f"adaptation = {cfg.training.adaptation!r}: an ensemble's members "
                          f"train on labels only; set adaptation = \"none\" or remove "
                          f"[models] ensemble.")


def _check_multi(cfg: ExperimentConfig, source: str) -> None:
    """Names of ``[[datasets]]`` entries, their readers and labels, the common space."""
    from .datasets.loaders import READERS
    from .evaluation.splitters import PROTOCOLS
    from .features.common import get_space
    from .labels import NAN_POLICIES

    names = [e.label for e in cfg.datasets]
    for i, e in enumerate(cfg.datasets):
        where = f"[[datasets]] {i + 1} ({e.label!r})"
        _check_name(e.kind, READERS, f"{where} kind", source)
        if e.nan_policy:
            _check_name(e.nan_policy, NAN_POLICIES, f"{where} nan_policy", source)
        _check_reader_options(e.kind, e.options, source, where)
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ConfigError(f"{source}: [[datasets]] name: {dup!r} appear(s) twice; give each "
                          f"entry its own name = \"...\" (the results' dataset column).")
    cross = PROTOCOLS.entry(cfg.evaluation.protocol).info.get("group") == "dataset"
    if cross and len(cfg.datasets) < 2:
        raise ConfigError(f"{source}: [evaluation] protocol = {cfg.evaluation.protocol!r} "
                          f"compares datasets: expected at least 2 [[datasets]] entries, got "
                          f"{len(cfg.datasets)}; add a [[datasets]] entry or use protocol = "
                          f"\"subject\".")
    if cfg.datasets:
        try:
            get_space(cfg.common.space)
        except ConfigError as exc:
            raise ConfigError(f"{source}: {exc}") from None
