"""Reading a run directory for the report: results, units, timing, config, environment.

Only ``results.csv`` is required; every other file is optional and its section of the report
is left out when it is missing. Nothing here writes or creates anything in the run directory.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import FearkdError, FormatError
from ..evaluation.results import RESULT_COLUMNS, check_results

__all__ = ["RunData", "load_run", "history_frame", "confusion_sums", "named_confusions",
           "dropped_features",
           "source_class_names", "dataset_config", "HISTORY_CURVES"]

logger = logging.getLogger(__name__)

#: Per-epoch curves a unit's ``histories`` may hold.
HISTORY_CURVES = ("train_loss", "train_accuracy", "val_loss", "val_accuracy")

# When a history key does not name its method, the stage tells it (docs/RUNDIR.md, checkpoints).
_STAGE_METHOD = {"backbone": "backbone", "teacher": "method1", "student-source": "method2",
                 "baseline": "baseline"}


@dataclass
class RunData:
    """Everything a report can show, read from one run directory.

    Attributes
    ----------
    path : Path
    results : DataFrame
        ``results.csv`` (tidy, docs/RUNDIR.md schema).
    units : list of dict
        ``units/*.json`` in file-name order (empty when there are none).
    timing : DataFrame or None
        ``timing.csv``.
    config, environment : dict or None
        ``config.json`` and ``environment.json``.
    label_reports, summaries : dict of str to dict
        ``datasets/<dataset>/label_report.json`` and ``summary.json`` per dataset.
    """

    path: Path
    results: pd.DataFrame
    units: list = field(default_factory=list)
    timing: pd.DataFrame | None = None
    config: dict | None = None
    environment: dict | None = None
    label_reports: dict = field(default_factory=dict)
    summaries: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        """The run's name (config ``name``, else the folder name)."""
        if self.config and self.config.get("name"):
            return str(self.config["name"])
        return self.path.name


def _read_json(path: Path) -> dict | None:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise FormatError(
            f"{path}: not valid JSON ({exc}); re-run the command that writes it, or delete it "
            "to leave its section out of the report."
        ) from None
    if not isinstance(data, dict):
        raise FormatError(f"{path}: expected a JSON object, got {type(data).__name__}.")
    return data


def load_run(rundir: str | Path) -> RunData:
    """Read a run directory.

    Raises
    ------
    TypeError
        ``rundir`` is not a path.
    FearkdError
        The folder or its ``results.csv`` is missing.
    FormatError
        ``results.csv`` lacks columns of the tidy schema, or a JSON file is malformed.
    """
    if not isinstance(rundir, (str, Path)):
        raise TypeError(f"'rundir' must be a path (str or Path), got {type(rundir).__name__}.")
    path = Path(rundir)
    if not path.is_dir():
        raise FearkdError(
            f"No results in {str(path)!r}: the folder does not exist; run `fearkd run` or "
            "`fearkd cv` first, or give the --out folder of an earlier run."
        )
    csv = path / "results.csv"
    if not csv.is_file():
        raise FearkdError(
            f"No results in {str(path)!r}: results.csv is missing; run `fearkd run` or "
            "`fearkd cv` first."
        )
    try:
        raw = pd.read_csv(csv, dtype={"target": str, "dataset": str, "model": str},
                          keep_default_na=False, na_values=[""])
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise FormatError(f"{csv}: not a readable CSV file ({exc}).") from None
    try:
        results = check_results(raw, where=str(csv))
    except ValueError as exc:
        raise FormatError(str(exc)) from None
    results = results[list(RESULT_COLUMNS) + [c for c in results if c not in RESULT_COLUMNS]]
    units = []
    for p in sorted((path / "units").glob("*.json")):
        unit = _read_json(p)
        if unit is not None:
            units.append(unit)
    timing = None
    if (path / "timing.csv").is_file():
        timing = pd.read_csv(path / "timing.csv")
    run = RunData(path=path, results=results, units=units, timing=timing,
                  config=_read_json(path / "config.json"),
                  environment=_read_json(path / "environment.json"))
    for d in sorted((path / "datasets").glob("*")) if (path / "datasets").is_dir() else []:
        report = _read_json(d / "label_report.json")
        if report is not None:
            run.label_reports[d.name] = report
        summary = _read_json(d / "summary.json")
        if summary is not None:
            run.summaries[d.name] = summary
    return run


def _split_key(key: str, unit_info: dict) -> tuple[str, str, str]:
    """(method, stage, target) of a history/confusion key ``[method/]stage/target``."""
    parts = str(key).split("/")
    if len(parts) >= 3:
        return parts[0], parts[1], "/".join(parts[2:])
    stage = parts[0]
    target = parts[1] if len(parts) > 1 else "-"
    method = unit_info.get("method") or _STAGE_METHOD.get(stage, "")
    return str(method), stage, target


def _row_models(unit: dict) -> dict:
    """(method, stage, target) -> the ``model`` column of the unit's rows of that stage.

    A student stage's rows name the student model; the unit's own ``model`` is its backbone.
    """
    out = {}
    for row in unit.get("rows") or []:
        if isinstance(row, dict) and row.get("model") not in (None, ""):
            key = (str(row.get("method", "")), str(row.get("stage", "")),
                   str(row.get("target", "-")))
            out.setdefault(key, str(row["model"]))
    return out


def _unit_keys(unit: dict) -> dict:
    info = unit.get("unit") or {}
    return {"dataset": str(info.get("dataset", "")), "protocol": str(info.get("protocol", "")),
            "model": str(info.get("model", "")), "fold": int(info.get("fold", 0)),
            "seed": int(info.get("seed", 0)), "method": info.get("method")}


def history_frame(units: list) -> pd.DataFrame:
    """Per-epoch training curves of every unit and stage, long format.

    Returns
    -------
    DataFrame
        One row per (dataset, protocol, method, stage, model, target, fold, seed, epoch) with
        the columns of :data:`HISTORY_CURVES` (NaN where a curve is absent); epochs count from 1.
        ``model`` is the model trained in the stage (a student's own model, from the unit's
        rows); ``backbone`` is the unit's model.
    """
    rows = []
    for unit in units:
        keys = _unit_keys(unit)
        models = _row_models(unit)
        for key, curves in (unit.get("histories") or {}).items():
            if not isinstance(curves, dict):
                continue
            method, stage, target = _split_key(key, keys)
            n = max((len(curves.get(c) or []) for c in HISTORY_CURVES), default=0)
            for e in range(n):
                row = {k: keys[k] for k in ("dataset", "protocol", "fold", "seed")}
                row.update(method=method, stage=stage, target=target, epoch=e + 1,
                           model=models.get((method, stage, target), keys["model"]),
                           backbone=keys["model"])
                for c in HISTORY_CURVES:
                    values = curves.get(c) or []
                    row[c] = float(values[e]) if e < len(values) and values[e] is not None \
                        else np.nan
                rows.append(row)
    cols = ["dataset", "protocol", "method", "stage", "model", "backbone", "target", "fold",
            "seed", "epoch", *HISTORY_CURVES]
    return pd.DataFrame(rows, columns=cols)


def dropped_features(units: list, dataset: str) -> pd.DataFrame:
    """Features dropped as constant over a fold's training windows, per protocol and fold.

    Returns
    -------
    DataFrame
        Index ``Protocol``; columns ``Fold``, ``Seed``, ``Dropped`` (count) and ``Features``
        (names, comma separated); one row per (protocol, fold, seed) that dropped any, the
        units of several models of one fold merged. Empty when none did.
    """
    found: dict[tuple, set] = {}
    for unit in units:
        info = unit.get("unit") or {}
        names = unit.get("dropped_features") or []
        if names and info.get("dataset") == dataset:
            key = (str(info.get("protocol")), int(info.get("fold", -1)), int(info.get("seed", 0)))
            found.setdefault(key, set()).update(names)
    rows = [{"Protocol": p, "Fold": float(f), "Seed": float(s), "Dropped": float(len(n)),
             "Features": ", ".join(sorted(n))} for (p, f, s), n in sorted(found.items())]
    table = pd.DataFrame(rows, columns=["Protocol", "Fold", "Seed", "Dropped", "Features"])
    table = table.set_index("Protocol")
    table.attrs["marked_rows"] = []
    return table


def confusion_sums(units: list) -> list[dict]:
    """Confusion matrices summed over folds and seeds.

    Returns
    -------
    list of dict
        One per (dataset, protocol, method, stage, backbone, target) with keys of that tuple plus
        ``model`` (the model trained in the stage: a student's own model), ``labels``,
        ``class_names``, ``matrix`` (ndarray of int, shape (n_classes, n_classes),
        rows = true class, columns = predicted) and ``n_folds``.
    """
    sums: dict[tuple, dict] = {}
    for unit in units:
        keys = _unit_keys(unit)
        models = _row_models(unit)
        for key, conf in (unit.get("confusion") or {}).items():
            if not isinstance(conf, dict) or conf.get("matrix") is None:
                continue
            if conf.get("split", "test") != "test":
                continue
            method, stage, target = _split_key(key, keys)
            matrix = np.asarray(conf["matrix"], dtype=np.int64)
            if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
                raise FormatError(
                    f"Unit {keys['model']} fold {keys['fold']}: confusion {key!r} has shape "
                    f"{matrix.shape}; expected a square (n_classes, n_classes) matrix."
                )
            model = models.get((method, stage, target), keys["model"])
            ident = (keys["dataset"], keys["protocol"], method, stage, keys["model"], target)
            labels = list(conf.get("labels") or range(matrix.shape[0]))
            names = [str(c) for c in (conf.get("class_names") or labels)]
            entry = sums.get(ident)
            if entry is None:
                sums[ident] = {
                    "dataset": ident[0], "protocol": ident[1], "method": method, "stage": stage,
                    "model": model, "backbone": ident[4], "target": target, "labels": labels,
                    "class_names": names,
                    "matrix": matrix.copy(), "n_folds": 1,
                }
            elif entry["matrix"].shape != matrix.shape:
                logger.warning("Confusion %s of %s has shape %s, others %s; not summed.",
                               key, ident, matrix.shape, entry["matrix"].shape)
            else:
                entry["matrix"] += matrix
                entry["n_folds"] += 1
    return list(sums.values())


def dataset_config(config: dict | None, dataset: str) -> dict | None:
    """The config of one dataset: a demo's config.json holds one config per dataset key."""
    nested = (config or {}).get(dataset)
    return nested if isinstance(nested, dict) and "features" in nested else config


def source_class_names(config: dict | None, dataset: str) -> list[str] | None:
    """The dataset's source classes with their rating ranges (``"2: valence [2, 3)"``).

    The source task is the dataset's ``source`` or ``[labels] source`` of the run's config
    (``auto``: the built-in task of DEAP or ASCERTAIN); None when it cannot be resolved.
    """
    from ..labels import load_source_task

    cfg = dataset_config(config, dataset) or {}
    spec = (cfg.get("dataset") or {}).get("source") or (cfg.get("labels") or {}).get("source")
    if spec in (None, "", "auto"):
        spec = dataset if dataset in ("deap", "ascertain") else None
    if spec is None:
        return None
    try:
        return load_source_task(spec).class_names()
    except (FearkdError, OSError, ValueError, TypeError) as exc:
        logger.info("Source classes of %s shown without rating ranges: %s", dataset, exc)
        return None


def named_confusions(run: RunData) -> list[dict]:
    """:func:`confusion_sums` with source-task classes named by their rating ranges."""
    entries = confusion_sums(run.units)
    names: dict[str, list | None] = {}
    for e in entries:
        if e["stage"] not in ("backbone", "student-source"):
            continue
        if e["dataset"] not in names:
            names[e["dataset"]] = source_class_names(run.config, e["dataset"])
        ranged = names[e["dataset"]]
        if ranged and len(ranged) == len(e["class_names"]) and all(
                r.split(":")[0] == str(c) for r, c in zip(ranged, e["class_names"], strict=True)):
            e["class_names"] = list(ranged)
    return entries
