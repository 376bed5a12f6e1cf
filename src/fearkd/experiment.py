"""One experiment from a config: data -> labels -> features -> splits -> units -> results.

:func:`prepare_data` reads the dataset named by the config and extracts the teacher's features
(cached in the run directory); each trial is labelled once (:func:`fearkd.labels.label_trials`,
called by :func:`~fearkd.features.extract.extract_features`) and the windows join its labels.
:func:`run_experiment` builds the splits of every protocol and seed, checks them with the
leakage guard, runs every unit (resuming a previous run in the same directory) and writes
``results.csv`` and ``timing.csv``. The command line's ``run``, ``cv`` and ``demo`` are thin
layers over these two functions.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .config import ExperimentConfig, config_to_dict
from .errors import ConfigError, DatasetNotFoundError
from .evaluation.crossval import UNIT_THREADS, CVData, make_units, run_units, timing_table
from .labels import LabelReport
from .methods import PipelineSettings
from .recordings import Recordings
from .rundir import RunDir

__all__ = ["PreparedData", "prepare_data", "prepare_multi", "run_experiment", "ExperimentResult"]

logger = logging.getLogger(__name__)


@dataclass
class PreparedData:
    """A dataset's teacher features, the student's column names and its label report."""

    dataset: str
    featureset: object
    student_names: tuple[str, ...]
    n_source_classes: int
    class_names: tuple[str, ...]
    label_report: LabelReport
    summary: dict
    #: Each dataset's label report and summary (several ``[[datasets]]``; else this one).
    parts: dict | None = None


@dataclass
class ExperimentResult:
    rundir: RunDir
    results: pd.DataFrame
    timing: pd.DataFrame
    data: PreparedData
    wall_seconds: float


def _open(cfg: ExperimentConfig, data_path: str | Path | None):
    from .datasets.loaders import open_dataset, with_flat_policy

    ds = cfg.dataset
    path = data_path or ds.path
    options = dict(ds.options)
    if ds.subjects:
        if ds.kind == "generic":
            raise ConfigError(f"{cfg.source}: [dataset] subjects selects subjects of a dataset "
                              f"release; a generic description lists its own subjects.")
        options["subjects"] = list(ds.subjects)
    if not path and not set(ds.options) - {"flat"}:
        raise ConfigError(
            f"{cfg.source or 'config'}: no dataset path: set [dataset] path or pass --data PATH."
        )
    if ds.kind == "generic" and not data_path and isinstance(ds.options.get("root"), str) \
            and not Path(ds.options["root"]).is_dir():
        raise DatasetNotFoundError(
            f"{cfg.source}: [dataset] root: expected the folder holding the records, got "
            f"{ds.options['root']!r}, which is not a folder; set root in this file (relative to "
            f"it) or pass --data DIR."
        )
    # generic descriptions apply `flat` themselves; every other reader gets it here
    flat = options.pop("flat", "warn") if ds.kind != "generic" else None
    try:
        recordings = open_dataset(path, kind=ds.kind, **options)
    except DatasetNotFoundError as exc:
        raise DatasetNotFoundError(f"{exc}{_other_kind(cfg, path)}") from None
    return recordings if flat is None else with_flat_policy(recordings, flat, cfg.source)


def _other_kind(cfg: ExperimentConfig, path) -> str:
    """The TOML fix when the folder holds another reader's dataset (a DEAP file on ASCERTAIN)."""
    from .datasets.loaders import detect_dataset
    from .features.presets import preset_advice

    try:
        kind, _ = detect_dataset(path)
    except (DatasetNotFoundError, OSError, TypeError):
        return ""
    if kind == cfg.dataset.kind:
        return ""
    return f" {str(path)!r} holds {kind} data. {preset_advice(kind)}"


def _rules(cfg: ExperimentConfig, dataset: str, key: str):
    from .datasets.loaders import builtin_labels

    value = getattr(cfg.labels, key)
    if value != "auto":
        return value
    return builtin_labels(dataset)[0 if key == "rules" else 1]


def prepare_data(cfg: ExperimentConfig, *, data_path=None, cache_dir=None,
                 progress: bool = True) -> PreparedData:
    """Open the dataset, extract teacher features with labels, resolve the student's columns."""
    from .datasets.loaders import summarize
    from .features.extract import extract_features
    from .features.normalize import parse_normalize
    from .features.presets import get_preset

    recordings = _open(cfg, data_path)
    f = cfg.features
    rules, source = _rules(cfg, recordings.dataset, "rules"), _rules(cfg, recordings.dataset,
                                                                      "source")
    fs, labeled = extract_features(
        recordings, f.teacher, window=f.window, step=f.step, baseline=f.baseline,
        method=f.method, log=f.log, rules=rules, source=source, ambiguous=cfg.labels.ambiguous,
        nan_policy=cfg.labels.nan_policy, n_jobs=f.n_jobs, cache_dir=cache_dir,
        progress=progress, return_labels=True, riemann=f.riemann,
        calibration_baseline=parse_normalize(f.normalize) == ("calibration", "baseline"),
    )
    # the first subject with windows: a subject dropped by [dataset] flat has no trial
    first_subject = recordings.load(str(fs.metadata["subject"].iloc[0]))
    first = first_subject.trials[0]
    student_names = get_preset(f.student).plan(first).feature_names
    if f.riemann and not get_preset(f.teacher).plan(first).eeg:
        raise ConfigError(f"{cfg.source}: [features] riemann = true re-centres EEG "
                          f"covariances, but the teacher preset {f.teacher!r} has no EEG "
                          f"channel on this data; set riemann = false or a teacher preset "
                          f"with EEG ([features] teacher).")
    missing = [n for n in student_names if n not in set(fs.feature_names)]
    if missing:
        raise ConfigError(
            f"{cfg.source}: the student preset {f.student!r} has column(s) {missing[:5]!r} that "
            f"the teacher preset {f.teacher!r} lacks; a student sees a subset of the teacher's "
            f"columns of the same windows."
        )
    meta = fs.metadata
    if (meta["y_fear"] >= 0).sum() == 0:
        raise ConfigError(f"{recordings.dataset}: no window is labelled for fear; check the "
                          f"rule table ({rules!r}) against the ratings (`fearkd labels`).")
    # modalities and rates from the first subject (already read above); counts from the windows,
    # so the dataset is not read a second time
    summary = summarize(Recordings(recordings.dataset, [first_subject.subject],
                                   lambda _sid, _report: first_subject, recordings.description))
    summary.pop("trials_per_subject")
    summary["n_subjects"] = int(meta["subject"].nunique())
    summary["n_trials"] = int(len(labeled.labels))
    summary["load_report"] = recordings.report.to_dict()
    summary["windows"] = {"n": int(len(meta)), "n_fear_labelled": int((meta["y_fear"] >= 0).sum()),
                          "n_source_labelled": int((meta["y_source"] >= 0).sum()),
                          "window_s": f.window, "step_s": f.step,
                          "teacher_features": fs.n_features,
                          "student_features": len(student_names)}
    return PreparedData(recordings.dataset, fs, tuple(student_names), labeled.n_source_classes,
                        labeled.class_names, labeled.report, summary)


def prepare_multi(cfg: ExperimentConfig, *, cache_dir=None, progress: bool = True
                  ) -> PreparedData:
    """Every ``[[datasets]]`` entry in the ``[common]`` space, stacked into one FeatureSet.

    Each dataset is read with its own reader and labels, its columns renamed to the space's
    (:mod:`fearkd.features.common`), its ``dataset`` column set to the entry's name and its
    source-task classes shifted after the previous dataset's (the source tasks differ: DEAP
    valence, ASCERTAIN arousal). Subject ids two datasets share are prefixed with the dataset
    name (``[common] prefix_subjects``), or refused.
    """
    from .datasets.loaders import open_dataset, with_flat_policy
    from .features.common import check_channels, common_recipe, get_space, to_common
    from .features.extract import extract_features
    from .features.featureset import FeatureSet

    space = get_space(cfg.common.space, f"{cfg.source}: [common] space")
    f, sets, parts, offset, class_names = cfg.features, [], {}, 0, None
    for e in cfg.datasets:
        options = dict(e.options) | ({"subjects": list(e.subjects)} if e.subjects else {})
        flat = options.pop("flat", "warn") if e.kind != "generic" else None
        recordings = open_dataset(e.path, kind=e.kind, **options)
        if flat is not None:
            recordings = with_flat_policy(recordings, flat, cfg.source,
                                          f"[[datasets]] {e.label!r}")
        first = next((t for s in recordings for t in s.trials), None)  # dropped: no trial
        if first is None:
            raise ConfigError(f"{cfg.source}: [[datasets]] {e.label!r}: every subject was "
                              f"dropped (flat = \"drop-subject\"); see the load report.")
        channels = [n for m in first.modalities for n in first.signals[m].ch_names]
        check_channels(space, e.kind, e.label, channels, cfg.source)
        rules = e.rules or _rules(cfg, recordings.dataset, "rules")
        source = e.source or _rules(cfg, recordings.dataset, "source")
        fs, labeled = extract_features(
            recordings, common_recipe(space, e.kind), window=f.window, step=f.step,
            baseline=f.baseline, method=f.method, log=f.log, rules=rules, source=source,
            ambiguous=cfg.labels.ambiguous, nan_policy=e.nan_policy or cfg.labels.nan_policy,
            n_jobs=f.n_jobs, cache_dir=cache_dir, progress=progress, return_labels=True)
        fs = to_common(fs, space, e.kind)
        meta = fs.metadata.copy()
        meta["dataset"] = e.label
        meta["subject"] = meta["subject"].astype(str)
        meta.loc[meta["y_source"] >= 0, "y_source"] += offset
        offset += labeled.n_source_classes
        class_names = class_names or labeled.class_names
        sets.append(FeatureSet(fs.X, fs.feature_names, meta, fs.info))
        parts[e.label] = (labeled.report, {"kind": e.kind, "n_subjects": int(
            meta["subject"].nunique()), "n_trials": int(len(labeled.labels)),
            "n_windows": int(len(meta)), "n_fear_labelled": int((meta["y_fear"] >= 0).sum()),
            "source_classes": labeled.n_source_classes,
            "synthetic": bool(recordings.description.get("synthetic"))})
    ids = [set(s.metadata["subject"]) for s in sets]
    clash = sorted(set.union(*[a & b for i, a in enumerate(ids) for b in ids[i + 1:]] or [set()]))
    if clash and not cfg.common.prefix_subjects:
        raise ConfigError(f"{cfg.source}: [common] prefix_subjects = false but [[datasets]] "
                          f"{[e.label for e in cfg.datasets]!r} share subject id(s) "
                          f"{clash[:5]!r}; set prefix_subjects = true (ids become "
                          f"'<dataset>:<id>') or select disjoint subjects.")
    if clash:
        for s in sets:
            s.metadata["subject"] = s.metadata["dataset"] + ":" + s.metadata["subject"]
    fs = FeatureSet.concat(sets)
    student = cfg.common.student or tuple(fs.feature_names)
    unknown = [n for n in student if n not in fs.feature_names]
    if unknown:
        raise ConfigError(f"{cfg.source}: [common] student: {unknown!r} are not columns of the "
                          f"space {space.name!r}; expected some of {list(fs.feature_names)!r}.")
    meta = fs.metadata
    name = "+".join(e.label for e in cfg.datasets)
    summary = {"datasets": {k: v[1] for k, v in parts.items()}, "common": space.name,
               "n_subjects": int(meta["subject"].nunique()),
               "windows": {"n": int(len(meta)), "n_fear_labelled": int((meta["y_fear"] >= 0)
                                                                       .sum()),
                           "window_s": f.window, "step_s": f.step,
                           "teacher_features": fs.n_features, "student_features": len(student)}}
    first_report = next(iter(parts.values()))[0]
    return PreparedData(name, fs, tuple(student), offset, class_names, first_report, summary,
                        parts)


def _scoped_splits(meta: pd.DataFrame, protocol: str, folds: int, seed: int,
                   scope: str | None, parts=()) -> list[tuple]:
    """Splits of the rows of one dataset (``scope``) or of all rows, as global positions.

    ``parts``: the datasets of a combined experiment. Under a protocol that does not split by
    dataset, the union's fold ``k`` is the union of every dataset's own fold ``k``: folds over
    the pooled subjects balance windows, not datasets, so with few subjects a fold could test
    all of one dataset's subjects with none of them on its training side, and the combined
    student would then never be scored on that dataset (the missing DEAP rows). Per-dataset
    folds also make the combined and each dataset's own student share their test subjects,
    which pairs them fold by fold.
    """
    import numpy as np

    from .evaluation.splitters import PROTOCOLS, check_split

    if scope is not None:
        pos = np.flatnonzero(meta["dataset"].astype(str).to_numpy() == scope)
        out = _splits(meta.iloc[pos].reset_index(drop=True), protocol, folds, seed)
        return [(pos[tr], None if va is None else pos[va], pos[te]) for tr, va, te in out]
    if len(parts) < 2 or PROTOCOLS.entry(protocol).info.get("group") == "dataset":
        return _splits(meta, protocol, folds, seed)
    each = [_scoped_splits(meta, protocol, folds, seed, name) for name in parts]
    counts = {name: len(s) for name, s in zip(parts, each, strict=True)}
    if len(set(counts.values())) > 1:
        raise ConfigError(f"[evaluation] protocol = {protocol!r} gives the [[datasets]] "
                          f"different numbers of folds ({counts!r}); set [evaluation] folds "
                          f"to at most the smallest count.")
    out, guarded = [], PROTOCOLS.entry(protocol).info.get("group", "none") != "none"
    for fold in zip(*each, strict=True):
        train = np.sort(np.concatenate([tr for tr, _, _ in fold]))
        vals = [va for _, va, _ in fold if va is not None]
        val = np.sort(np.concatenate(vals)) if vals else None
        test = np.sort(np.concatenate([te for _, _, te in fold]))
        if guarded:
            check_split(meta, train, test, protocol)
        out.append((train, val, test))
    return out


def _splits(meta: pd.DataFrame, protocol: str, folds: int, seed: int) -> list[tuple]:
    from .evaluation.splitters import PROTOCOLS, check_split, iter_splits, make_splitter

    splitter = make_splitter(protocol, n_splits=folds, random_state=seed)
    guarded = PROTOCOLS.entry(protocol).info.get("group", "none") != "none"
    out = []
    for train, val, test in iter_splits(splitter, meta):
        if guarded:
            # The runner's own guard, whatever produced the split: a subject (trial) on both
            # sides raises LeakageError here, before any unit trains. The leaky protocols only
            # log, which their splitters already did.
            check_split(meta, train, test, protocol)
        out.append((train, val if len(val) else None, test))
    return out


def run_experiment(cfg: ExperimentConfig, rundir: str | Path, *, data_path=None,
                   protocols=None, models=None, methods=None, folds=None, jobs=None,
                   scheduler=None, scheduler_timeout: float = 5.0, progress: bool = True,
                   plan=None,
                   prepared: PreparedData | None = None,
                   config_key: str | None = None) -> ExperimentResult:
    """Run every unit of an experiment into ``rundir`` (resuming what is there).

    Parameters
    ----------
    cfg : ExperimentConfig
    rundir : path
        Run directory; a previous run of the same configuration there is resumed.
    data_path : path, optional
        Overrides ``[dataset] path``.
    protocols, models, methods : sequence of str, optional
        Override ``[evaluation] protocol``, ``[models] backbones`` and ``[methods] run``
        (``methods=()`` runs the backbone comparison only).
    folds, jobs : int, optional
    scheduler : str, optional
        Dask scheduler address.
    scheduler_timeout : float
        Seconds to wait for the scheduler before giving up with a one-line error.
    plan : sequence of (protocol, model, methods), optional
        Instead of every protocol x model with the same methods: which methods each
        (protocol, model) pair runs (the demo runs Method 1 and 2 for the CNN under
        ``subject`` and the backbone comparison elsewhere).
    prepared : PreparedData, optional
        Features already extracted.
    config_key : str, optional
        Store the config under this key of ``config.json`` (several experiments, e.g. one
        per dataset, in one run directory).

    Returns
    -------
    ExperimentResult
        ``results`` and ``timing`` cover every unit in the run directory.
    """
    start = time.perf_counter()
    ev = cfg.evaluation
    protocols = tuple(protocols or (ev.protocol,))
    models = tuple(models or cfg.models.backbones)
    folds = ev.folds if folds is None else folds
    jobs = ev.jobs if jobs is None else jobs
    _check_counts(folds, jobs, cfg.source)
    scheduler = scheduler or ev.scheduler or None
    from .methods import METHODS
    from .models import available_models

    settings = PipelineSettings.from_config(cfg)
    methods = settings.methods if methods is None else tuple(methods)
    bad = [m for m in methods if m not in METHODS]
    if bad:
        raise ConfigError(f"Unknown method(s) {bad!r} (--methods or [methods] run): expected "
                          f"some of {', '.join(map(repr, METHODS))}.")
    if plan is None:
        plan = [(p, m, methods) for p in protocols for m in models]
        if cfg.models.ensemble and methods:
            # KD from an ensemble of the backbones: a unit of its own, method "ensemble"
            plan += [(p, "ensemble", ("ensemble",)) for p in protocols]
    plan = [(p, m, tuple(ms)) for p, m, ms in plan]
    protocols = tuple(dict.fromkeys(p for p, _, _ in plan))
    unknown = [m for _, m, _ in plan if m not in available_models()]
    if unknown:
        raise ConfigError(f"Unknown model(s) {unknown!r}: expected some of "
                          f"{', '.join(available_models())}.")
    run = RunDir(rundir)
    resolved = config_to_dict(cfg)
    resolved["run"] = {"plan": [[p, m, list(ms)] for p, m, ms in plan], "folds": folds}
    if data_path:  # --data overrides [dataset] path: the same folder is the same experiment
        resolved["dataset"]["path"] = str(Path(data_path).resolve())
    # refuse another configuration before any work, but write this one only once the data
    # have been read: a run that failed on a wrong path must not pin its config
    run.check_config(resolved, key=config_key, write=False)
    if prepared is None and cfg.datasets:
        prepared = prepare_multi(cfg, cache_dir=run.path / "cache", progress=progress)
    data = prepared or prepare_data(cfg, data_path=data_path, cache_dir=run.path / "cache",
                                    progress=progress)
    _check_model_inputs(cfg, settings, [m for _, m, _ in plan], data)
    run.check_config(resolved, key=config_key)
    run.start_environment(seeds=list(ev.seeds), jobs=jobs, scheduler=scheduler or "",
                          torch_threads=UNIT_THREADS)
    parts = data.parts or {data.dataset: (data.label_report, data.summary)}
    if data.parts:
        parts = {**parts, data.dataset: (data.label_report, data.summary)}
    for name, (report, summary) in parts.items():
        dsdir = run.dataset_dir(name)
        run.write_json(dsdir.relative_to(run.path) / "label_report.json", report.to_dict())
        run.write_json(dsdir.relative_to(run.path) / "summary.json", summary)
        for warning in report.warnings if name != data.dataset or not data.parts else ():
            logger.warning("%s: %s", name, warning)
    meta = data.featureset.metadata
    from .evaluation.splitters import PROTOCOLS

    multi = bool(data.parts)
    scopes = {}  # unit dataset name -> rows it splits (None: all)
    for protocol in protocols:
        scopes[(data.dataset, protocol)] = None
        per = multi and cfg.common.per_dataset
        if per and PROTOCOLS.entry(protocol).info.get("group") != "dataset":
            scopes.update({(name, protocol): name for name in data.parts})
    if multi:  # the union's folds are each dataset's own: every dataset must fill them
        folds = min(_resolve_folds(folds, meta[meta["dataset"] == n], protocols, cfg.source)
                    for n in data.parts)
    else:
        folds = _resolve_folds(folds, meta, protocols, cfg.source)
    from .features.normalize import check_normalize

    try:
        # a calibration part every subject has, before any unit trains
        check_normalize(cfg.features.normalize, meta, cfg.features.window)
    except ConfigError as exc:
        raise ConfigError(f"{cfg.source or 'config'}: {exc}") from None
    splits, units = {}, []
    for (name, protocol), scope in scopes.items():
        n_folds = {}
        for seed in ev.seeds:
            splits[(name, protocol, seed)] = _scoped_splits(meta, protocol, folds, seed,
                                                            scope, tuple(data.parts or ()))
            n_folds[(protocol, seed)] = len(splits[(name, protocol, seed)])
        units += make_units(name, [x for x in plan if x[0] == protocol], n_folds, ev.seeds)
    cv = CVData(data.featureset, data.student_names, splits, settings, data.n_source_classes,
                data.class_names, plugins=cfg.plugins, multi=multi)
    run_units(units, cv, run, jobs=jobs, scheduler=scheduler, progress=progress,
              scheduler_timeout=scheduler_timeout)
    results = run.results()
    run.write_results(results)
    workers = jobs if not scheduler else 0
    timing = timing_table(run, run.unit_ids(), workers)
    run.write_results(timing, "timing.csv")
    wall = time.perf_counter() - start
    run.finish_environment(wall)
    return ExperimentResult(run, results, timing, data, wall)


def _check_model_inputs(cfg: ExperimentConfig, settings: PipelineSettings, models,
                        data: PreparedData) -> None:
    """Before any unit trains: declared multi-input branches cover their columns' modalities.

    The backbone and teacher see the teacher's columns, the student (``[models] student``, else
    the backbone's architecture) the student's.
    """
    from .models.multi_input import MultiInput, check_branches
    from .models.registry import MODELS

    teacher = (f"the [common] space {cfg.common.space!r}" if data.parts
               else f"the teacher preset {cfg.features.teacher!r}")
    student = ("the [common] student columns" if data.parts
               else f"the student preset {cfg.features.student!r}")
    for model in dict.fromkeys(models):
        for name, names, what in ((model, data.featureset.feature_names, teacher),
                                  (settings.student_model or model, data.student_names,
                                   student)):
            builder = MODELS.get(name)
            branches = (settings.model_params.get(name) or {}).get("branches")
            if isinstance(builder, type) and issubclass(builder, MultiInput):
                try:
                    check_branches(branches, names, what)
                except ConfigError as exc:
                    raise ConfigError(f"{cfg.source or 'config'}: {exc}") from None


#: ``folds = "auto"``: one fold per group (leave-one-subject-out), at most this many.
AUTO_MAX_FOLDS = 10


def _check_counts(folds, jobs, source: str) -> None:
    """``--folds`` / ``[evaluation] folds`` and ``--jobs`` / ``[evaluation] jobs``."""
    where = source or "config"
    if folds != "auto" and (isinstance(folds, bool) or not isinstance(folds, int) or folds < 1):
        raise ConfigError(f"{where}: --folds / [evaluation] folds: expected an integer >= 2 or "
                          f"\"auto\", got {folds!r}; e.g. --folds 5 or --folds auto.")
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ConfigError(f"{where}: --jobs / [evaluation] jobs: expected an integer >= 1 "
                          f"(worker processes), got {jobs!r}; e.g. --jobs 2.")


def _resolve_folds(folds, meta: pd.DataFrame, protocols, source: str) -> int:
    """Refuse more folds than the protocol has groups; ``"auto"``: one fold per group."""
    counts = {"subject": meta["subject"].nunique(),
              "trial": len(meta.drop_duplicates(["subject", "trial"]))}
    groups = [(p, int(counts[p])) for p in protocols if p in counts]
    if folds == "auto":
        return max(2, min([AUTO_MAX_FOLDS] + [n for _, n in groups]))
    for protocol, n in groups:
        if folds > n:
            unit = "subjects" if protocol == "subject" else "trials"
            raise ConfigError(
                f"{source or 'config'}: [evaluation] folds = {folds} but protocol "
                f"{protocol!r} has only {n} {unit}; set folds = {n} or fewer, or "
                f"folds = \"auto\" (--folds auto) for one fold per {unit[:-1]}."
            )
    return int(folds)


def seconds_text(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"

