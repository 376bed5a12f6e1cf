"""Experiment files: TOML in, frozen and validated dataclasses out.

An experiment file has one table per pipeline stage; every key has a default, so a file names
only what it changes. Unknown keys and wrong types are :class:`~fearkd.errors.ConfigError`
naming the key and the file. Example (``configs/demo.toml`` is a complete one)::

    name = "deap-method1"

    [dataset]
    kind = "deap"                 # a dataset reader: deap | ascertain | generic | registered
    path = "/data/deap"           # relative paths are relative to this file; --data overrides
    subjects = []                 # empty: all

    [labels]
    rules = "auto"                # auto | deap | ascertain | a TOML rule table
    source = "auto"               # auto | deap | ascertain | deap-arousal | a TOML task
    ambiguous = "drop"            # drop | first | error
    nan_policy = "raise"          # raise | unlabelled

    [features]
    teacher = "deap-teacher"
    student = "deap-student"
    window = 4.0                  # seconds
    step = 2.0                    # seconds
    baseline = "drop"             # drop | subtract | keep (windows over the baseline too)
    log = true                    # log (with a floor) of band power and variance features
    normalize = "subject"         # none | subject | global | l2-rows | calibration:...

    [models]
    backbones = ["cnn", "lstm", "gru"]  # registered models (fearkd.models.available_models())

    [methods]
    run = ["method1", "method2"]
    kd_targets = ["hard", "soft", "combined"]
    alpha = 0.5
    temperature = 3.0             # T of the 'combined' KD target
    soft_temperature = 1.0        # T of the 'soft' KD target (1: the teacher's predictions)
    freeze = "none"               # none | trunk | all-but-head
    baselines = ["majority", "stratified"]  # any of fearkd.models.baselines.BASELINES

    [training]
    epochs = 30
    batch_size = 256
    calibrate = "none"            # none | temperature (T fitted on the inner validation split)

    [evaluation]
    protocol = "subject"          # subject | trial | window | seed-legacy | registered
    folds = 5
    seeds = [0]

Every name is checked against the registry that defines it (dataset readers, protocols, models,
freeze policies, KD losses, methods, baselines; :mod:`fearkd._config_checks`), so a name
registered from outside the package is accepted like a built-in one; an unknown name is a
:class:`~fearkd.errors.ConfigError` naming the file and the key. The registries are imported
when a file is validated, not with this module.
"""

from __future__ import annotations

import dataclasses
import sys
import types
import typing
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ._config_checks import check_config
from .errors import ConfigError
from .training.settings import FitSettings

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = [
    "DatasetConfig",
    "DatasetEntry",
    "CommonConfig",
    "LabelsConfig",
    "FeaturesConfig",
    "ModelsConfig",
    "MethodsConfig",
    "TrainingConfig",
    "EvaluationConfig",
    "ExperimentConfig",
    "load_config",
    "config_to_dict",
]


def _kd_losses() -> Collection[str]:
    from .training.distill import KD_LOSSES

    return KD_LOSSES


def _all_kd_losses() -> tuple[str, ...]:
    return tuple(_kd_losses())


@dataclass(frozen=True)
class DatasetConfig:
    """Where the recordings are and which of them to use."""

    kind: str = "deap"
    path: str = ""
    subjects: tuple[str, ...] = ()
    #: Every other key of the table, passed to the reader (``channels``, ``fmt``, ...). For
    #: ``kind = "generic"`` they are the reader's description (see
    #: :mod:`fearkd.datasets.generic`); ``path`` then overrides its ``root``.
    options: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class DatasetEntry:
    """One ``[[datasets]]`` entry: a dataset of a multi-dataset experiment, with its labels.

    ``name`` (default: ``kind``) is its value in the results' ``dataset`` column; ``rules``,
    ``source`` and ``nan_policy`` override ``[labels]`` for this dataset (empty: ``[labels]``'s).
    Every other key is passed to the reader, as in ``[dataset]``.
    """

    kind: str = "deap"
    path: str = ""
    name: str = ""
    subjects: tuple[str, ...] = ()
    rules: str = ""
    source: str = ""
    nan_policy: str = ""
    options: Mapping[str, object] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return self.name or self.kind


@dataclass(frozen=True)
class CommonConfig:
    """``[common]``: the named common feature space of a multi-dataset experiment.

    ``space``: a name of :data:`fearkd.features.common.COMMON_SPACES`. ``student``: the
    student's common columns (empty: all of them). ``prefix_subjects``: prefix subject ids
    with the dataset name when two datasets share an id (false: such a clash is an error).
    ``per_dataset``: also train each dataset's own model on its rows alone, next to the
    combined one.
    """

    space: str = "seed-frontal-gsr"
    student: tuple[str, ...] = ()
    prefix_subjects: bool = True
    per_dataset: bool = True


@dataclass(frozen=True)
class LabelsConfig:
    """``auto``: the built-in table and source task named like the dataset (DEAP, ASCERTAIN),
    or the classes a generic description gives."""

    rules: str = "auto"
    source: str = "auto"
    ambiguous: str = "drop"
    nan_policy: str = "raise"


@dataclass(frozen=True)
class FeaturesConfig:
    """``[features]``: presets, windowing, transforms and the per-subject normalisation.

    ``log``: natural log (with a floor) of band power and variance features (see
    :mod:`fearkd.features.presets`). ``normalize``: ``"none"``, ``"subject"``, ``"global"``,
    ``"calibration:<stage>"`` (``"calibration:baseline"``: each trial's pre-stimulus
    baseline) or ``"calibration:<N>s"``, fitted inside each fold (see
    :mod:`fearkd.features.normalize`).
    """

    teacher: str = "deap-teacher"
    student: str = "deap-student"
    window: float = 4.0
    step: float = 2.0
    baseline: str = "drop"
    method: str = "filter"
    n_jobs: int = 1
    log: bool = True
    normalize: str = "subject"
    #: Append the teacher preset's EEG band covariances, re-centred per subject (pyRiemann
    #: re-centring, :mod:`fearkd.features.riemann`), as tangent-space columns.
    riemann: bool = False


@dataclass(frozen=True)
class ModelsConfig:
    backbones: tuple[str, ...] = ("cnn",)
    #: Model used for the student; empty means "the same architecture as the backbone".
    student: str = ""
    #: Per-model constructor parameters, e.g. ``[models.params.lstm] hidden_size = 32``.
    params: Mapping[str, Mapping[str, object]] = field(default_factory=dict)
    #: ``"vote"`` or ``"stack"``: also an ensemble of the backbones as a teacher (its own unit,
    #: method ``ensemble``); empty: none.
    ensemble: str = ""


@dataclass(frozen=True)
class MethodsConfig:
    run: tuple[str, ...] = ("method1", "method2")
    #: KD losses to distil with; default every registered one.
    kd_targets: tuple[str, ...] = field(default_factory=_all_kd_losses)
    alpha: float = 0.5
    #: T of the ``combined`` KD target.
    temperature: float = 3.0
    #: T of the ``soft`` KD target (1.0: the teacher's plain predictions, as the seed).
    soft_temperature: float = 1.0
    freeze: str = "none"
    baselines: tuple[str, ...] = ("majority", "stratified")


#: The ``[training]`` table: its keys are the fields of
#: :class:`~fearkd.training.settings.FitSettings`, which the training loop takes as it is.
TrainingConfig = FitSettings


@dataclass(frozen=True)
class EvaluationConfig:
    protocol: str = "subject"
    #: A number of folds, or ``"auto"``: one fold per subject (trial), at most 10.
    folds: int | str = 5
    seeds: tuple[int, ...] = (0,)
    jobs: int = 1
    scheduler: str = ""


@dataclass(frozen=True)
class ExperimentConfig:
    """A whole experiment; ``source`` is the file it came from (for messages and paths)."""

    name: str = "experiment"
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    #: ``[[datasets]]``: several datasets in one experiment (empty: ``[dataset]`` alone).
    datasets: tuple[DatasetEntry, ...] = ()
    common: CommonConfig = field(default_factory=CommonConfig)
    labels: LabelsConfig = field(default_factory=LabelsConfig)
    features: FeaturesConfig = field(default_factory=FeaturesConfig)
    models: ModelsConfig = field(default_factory=ModelsConfig)
    methods: MethodsConfig = field(default_factory=MethodsConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    #: Plug-in modules imported before validation (:mod:`fearkd.plugins`); ``.py`` paths are
    #: stored absolute.
    plugins: tuple[str, ...] = ()
    source: str = ""

    def replace(self, **sections: Mapping[str, object]) -> ExperimentConfig:
        """Return a copy with some keys of some sections changed (validated like the file)."""
        data = config_to_dict(self)
        for section, values in sections.items():
            if section not in data or not isinstance(data[section], dict):
                raise ConfigError(f"Unknown config section {section!r}.")
            data[section].update(values)
        return _from_dict(data, self.source or "<overrides>")


_POSITIVE = {
    ("features", "window"), ("features", "step"), ("training", "epochs"),
    ("training", "batch_size"), ("training", "lr"), ("methods", "temperature"),
    ("methods", "soft_temperature"), ("evaluation", "jobs"), ("features", "n_jobs"),
}


def _type_name(tp) -> str:
    return getattr(tp, "__name__", str(tp))


def _coerce(value, tp, where: str):
    """Check ``value`` against the annotation ``tp``; return it in the dataclass's form."""
    origin = typing.get_origin(tp)
    if origin in (types.UnionType, typing.Union):
        arms = typing.get_args(tp)
        if value is None and type(None) in arms:
            return None
        errors = []
        for arm in (a for a in arms if a is not type(None)):
            try:
                return _coerce(value, arm, where)
            except ConfigError as exc:
                errors.append(exc)
        raise errors[0]
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}.")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}.")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}.")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}.")
        return value
    if origin is tuple:
        (item_tp, _) = typing.get_args(tp)
        if isinstance(value, (str, int)) and not isinstance(value, bool):
            value = [value]  # a single name is a list of one
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}.")
        if item_tp is str:
            # subject ids may be given as numbers
            value = [str(v) if isinstance(v, int) and not isinstance(v, bool) else v for v in value]
        return tuple(_coerce(v, item_tp, f"{where}[{i}]") for i, v in enumerate(value))
    if origin in (Mapping, dict) or tp is Mapping:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a table, got {value!r}.")
        return types.MappingProxyType(dict(value))
    raise ConfigError(f"{where}: unsupported type {_type_name(tp)}.")  # pragma: no cover


def _build(cls, table: Mapping, section: str, source: str):
    if not isinstance(table, Mapping):
        raise ConfigError(f"{source}: [{section}] must be a table, got {table!r}.")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(table) - set(names))
    if unknown:
        raise ConfigError(
            f"{source}: unknown key(s) {unknown!r} in [{section}]; known keys: {names!r}."
        )
    values = {}
    for key, raw in table.items():
        where = f"{source}: [{section}] {key}"
        value = _coerce(raw, hints[key], where)
        if (section, key) in _POSITIVE and value <= 0:
            raise ConfigError(f"{where}: expected a positive value, got {value!r}.")
        values[key] = value
    try:
        return cls(**values)
    except (TypeError, ValueError) as exc:  # the dataclass's own checks (FitSettings)
        raise ConfigError(f"{source}: {exc}") from None


def _entries(value: object, source: str) -> tuple[DatasetEntry, ...]:
    """``[[datasets]]``: a list of tables; keys beyond the entry's own are reader options."""
    if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
        raise ConfigError(f"{source}: datasets: expected an array of tables ([[datasets]] "
                          f"entries with kind and path), got {value!r}.")
    own = [f.name for f in dataclasses.fields(DatasetEntry) if f.name != "options"]
    out = []
    for table in value:
        if isinstance(table.get("options"), Mapping):
            table = {**{k: v for k, v in table.items() if k != "options"}, **table["options"]}
        opts = {k: v for k, v in table.items() if k not in own}
        entry = _build(DatasetEntry, {**{k: table[k] for k in own if k in table},
                                      "options": opts}, "[datasets]", source)
        out.append(entry)
    return tuple(out)


def _plugins(value: object, source: str) -> tuple[str, ...]:
    """Resolve and import the file's plug-ins, so that the names they register validate."""
    from .plugins import load_plugins, resolve_plugin

    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{source}: plugins: expected a list of module names or .py paths, "
                          f"got {value!r}.")
    base = Path(source).parent if Path(source).is_file() else Path.cwd()
    resolved = tuple(resolve_plugin(v, base) for v in value)
    load_plugins(resolved, where=source)
    return resolved


def _from_dict(data: Mapping, source: str) -> ExperimentConfig:
    sections = {
        "dataset": DatasetConfig, "labels": LabelsConfig, "features": FeaturesConfig,
        "models": ModelsConfig, "methods": MethodsConfig, "training": TrainingConfig,
        "evaluation": EvaluationConfig, "common": CommonConfig,
    }
    top = {"name", "plugins", "datasets"} | set(sections) | {"source"}
    unknown = sorted(set(data) - top)
    if unknown:
        raise ConfigError(
            f"{source}: unknown top-level key(s) {unknown!r}; known: {sorted(top - {'source'})!r}."
        )
    kwargs: dict[str, object] = {"source": source}
    ds = data.get("dataset")
    if isinstance(ds, Mapping) and not isinstance(ds.get("options"), Mapping):
        # Keys the table does not define are the reader's options (for "generic", its
        # description: fearkd.datasets.generic); `path` still overrides a description's `root`.
        own = ("kind", "path") if ds.get("kind") == "generic" else ("kind", "path", "subjects")
        options = {k: v for k, v in ds.items() if k not in own}
        data = {**data, "dataset": {**{k: ds[k] for k in own if k in ds}, "options": options}}
    if "name" in data:
        kwargs["name"] = _coerce(data["name"], str, f"{source}: name")
    if "plugins" in data:
        kwargs["plugins"] = _plugins(data["plugins"], source)
    for key, cls in sections.items():
        if key in data:
            kwargs[key] = _build(cls, data[key], key, source)
    if "datasets" in data:
        kwargs["datasets"] = _entries(data["datasets"], source)
    cfg = ExperimentConfig(**kwargs)
    check_config(cfg, source)
    return cfg


def load_config(path: str | Path) -> ExperimentConfig:
    """Read and validate an experiment file.

    A relative ``[dataset] path`` is resolved against the file's folder.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"Experiment file {str(path)!r} does not exist (expected a TOML file).")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc}).") from None
    cfg = _from_dict(data, str(path))
    ds = cfg.dataset
    if ds.path and not Path(ds.path).is_absolute():
        resolved = str((path.parent / ds.path).resolve())
        cfg = dataclasses.replace(cfg, dataset=dataclasses.replace(ds, path=resolved))
        ds = cfg.dataset
    root = ds.options.get("root")
    if ds.kind == "generic" and isinstance(root, str) and not Path(root).is_absolute():
        options = {**ds.options, "root": str((path.parent / root).resolve())}
        cfg = dataclasses.replace(cfg, dataset=dataclasses.replace(ds, options=options))
    entries = tuple(dataclasses.replace(e, path=str((path.parent / e.path).resolve()))
                    if e.path and not Path(e.path).is_absolute() else e for e in cfg.datasets)
    return dataclasses.replace(cfg, datasets=entries)


def config_to_dict(cfg: ExperimentConfig) -> dict:
    """Plain-data form (lists and dicts), for writing the resolved config of a run."""

    def plain(value):
        if dataclasses.is_dataclass(value):
            return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, Mapping):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, tuple):
            return [plain(v) for v in value]
        return value

    data = plain(cfg)
    data.pop("source", None)
    return data
