"""Per-subject test scores of a run: which people a stage recognises fear in, and which not.

Each stage of a unit stores, beside its test confusion matrix, ``subjects``: per test subject
the number of correctly classified test windows and the number of test windows
(``{subject: [correct, total]}``, written by :mod:`fearkd.stages`). :func:`subject_scores`
sums them over folds and seeds; :func:`subject_table` lays out the fear-task stages side by
side, one row per subject; :func:`plot_subject_scores` draws the same numbers.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from .plots import stage_title
from .rundata import _row_models, _split_key, _unit_keys
from .tables import target_label

__all__ = ["subject_scores", "subject_table", "plot_subject_scores", "class_balance",
           "MAIN_STAGES"]

#: (method, stage) of the fear-task stages the per-subject table shows, in column order.
MAIN_STAGES = (("method1", "teacher"), ("method1", "student"), ("method2", "student"),
               ("scratch", "student"))

_COLUMNS = ["dataset", "protocol", "method", "stage", "model", "backbone", "target", "subject",
            "correct", "total"]


def subject_scores(units: list) -> pd.DataFrame:
    """Correct and total test windows per subject and stage, summed over folds and seeds.

    Parameters
    ----------
    units : list of dict
        ``units/*.json`` of a run (:attr:`fearkd.reporting.rundata.RunData.units`).

    Returns
    -------
    DataFrame
        Columns ``dataset, protocol, method, stage, model, backbone, target, subject, correct,
        total``; empty when no unit stored per-subject counts (runs made before they were).
    """
    sums: dict[tuple, list] = {}
    for unit in units:
        keys = _unit_keys(unit)
        models = _row_models(unit)
        for key, conf in (unit.get("confusion") or {}).items():
            if not isinstance(conf, dict) or not isinstance(conf.get("subjects"), dict):
                continue
            method, stage, target = _split_key(key, keys)
            model = models.get((method, stage, target), keys["model"])
            for subject, counts in conf["subjects"].items():
                if not isinstance(counts, (list, tuple)) or len(counts) != 2:
                    continue
                ident = (keys["dataset"], keys["protocol"], method, stage, model, keys["model"],
                         target, str(subject))
                acc = sums.setdefault(ident, [0, 0])
                acc[0] += int(counts[0])
                acc[1] += int(counts[1])
    rows = [(*ident, c, t) for ident, (c, t) in sums.items()]
    return pd.DataFrame(rows, columns=_COLUMNS)


def _column_label(method: str, stage: str, model: str, backbone: str, target: str) -> str:
    text = stage_title(method, stage, model, backbone=backbone).replace(" (fine-tuned to fear)",
                                                                        "")
    if target not in ("-", "", "nan"):
        text += f" ({target_label(target)})"
    return text


def subject_table(scores: pd.DataFrame, *, dataset: str, protocol: str) -> pd.DataFrame:
    """Test accuracy (%) per subject of the fear-task stages of :data:`MAIN_STAGES`.

    Parameters
    ----------
    scores : DataFrame
        Output of :func:`subject_scores`.
    dataset, protocol : str

    Returns
    -------
    DataFrame
        Index: subjects, then the marked row ``"all subjects"`` (pooled windows). One column
        ``"<stage> (%)"`` per stage, model and KD target; ``"Test windows"``: the subject's
        fear test windows (summed over folds and seeds). Empty when no stage has counts.
    """
    if not isinstance(scores, pd.DataFrame):
        raise TypeError(f"'scores' must be a DataFrame, got {type(scores).__name__}.")
    here = scores[(scores["dataset"] == dataset) & (scores["protocol"] == protocol)]
    order = {ms: i for i, ms in enumerate(MAIN_STAGES)}
    here = here[[(m, s) in order for m, s in zip(here["method"], here["stage"], strict=True)]]
    table = pd.DataFrame()
    if here.empty:
        return table
    here = here.assign(rank=[order[(m, s)] for m, s in zip(here["method"], here["stage"],
                                                          strict=True)])
    keys = ["method", "stage", "model", "backbone", "target"]
    subjects = sorted(pd.unique(here["subject"]))
    totals = None
    for key, grp in here.sort_values("rank", kind="stable").groupby(keys, sort=False):
        g = grp.set_index("subject").reindex(subjects)
        correct = np.append(g["correct"].to_numpy(float), g["correct"].sum())
        total = np.append(g["total"].to_numpy(float), g["total"].sum())
        with np.errstate(invalid="ignore", divide="ignore"):
            table[f"{_column_label(*key)} (%)"] = np.where(total > 0, 100 * correct / total,
                                                           math.nan)
        totals = total if totals is None else np.fmax(totals, total)
    table["Test windows"] = totals
    table.index = pd.Index([*subjects, "all subjects"], name="Subject")
    table.attrs.update(marked_rows=["all subjects"], dataset=dataset, protocol=protocol)
    return table


def plot_subject_scores(table: pd.DataFrame, *, chance: float | None = None,
                        title: str | None = None) -> Figure:
    """Test accuracy per subject, one marker series per stage (a :func:`subject_table`).

    Parameters
    ----------
    table : DataFrame
        Output of :func:`subject_table` (not empty).
    chance : float, optional
        Chance level as a fraction, drawn as a dashed line.
    """
    if not isinstance(table, pd.DataFrame) or table.empty:
        raise ValueError("'table' is empty; build it with subject_table() on a run whose units "
                         "stored per-subject counts.")
    body = table.drop(index=[r for r in table.attrs.get("marked_rows", []) if r in table.index])
    columns = [c for c in body.columns if c.endswith("(%)")]
    subjects = [str(s) for s in body.index]
    fig = Figure(figsize=(max(6.0, 0.45 * len(subjects) + 4.5), 3.8), layout="constrained")
    ax = fig.subplots()
    x = np.arange(len(subjects))
    markers = "osD^v<>ph*"
    for i, col in enumerate(columns):
        offset = (i - (len(columns) - 1) / 2) * min(0.12, 0.7 / max(len(columns), 1))
        ax.plot(x + offset, body[col].to_numpy(float), ls="none", marker=markers[i % 10], ms=6,
                label=col[: -len(" (%)")])
    if chance is not None and math.isfinite(chance):
        ax.axhline(100 * chance, color="black", ls="--", lw=1,
                   label=f"chance ({100 * chance:.1f} %)")
    ax.set_xticks(x, subjects, rotation=45 if len(subjects) > 8 else 0, ha="right"
                  if len(subjects) > 8 else "center", fontsize=8)
    ax.set_xlabel("Test subject")
    ax.set_ylabel("Test accuracy (%), folds pooled")
    ax.set_ylim(-3, 103)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    if title:
        ax.set_title(title, fontsize=11)
    return fig


def _fear_confusion(unit: dict) -> dict | None:
    """The test confusion of a fear-task stage of ``unit`` (all share the fold's test rows)."""
    keys = _unit_keys(unit)
    for key, conf in (unit.get("confusion") or {}).items():
        method, stage, _ = _split_key(key, keys)
        if stage in ("teacher", "student") and isinstance(conf, dict) \
                and conf.get("matrix") is not None:
            return conf
    return None


def class_balance(units: list, *, dataset: str, protocol: str,
                  ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Fear test windows per class in each fold and in each subject.

    Every fold's fear test windows are counted once (one unit per fold, the lowest seed): per
    fold from the row sums of a fear stage's test confusion matrix, per subject from its
    ``subject_classes`` summed over folds (each window is tested in exactly one fold).

    Returns
    -------
    per_fold, per_subject : DataFrame
        Index ``"fold k"`` (then the marked row ``"total"``) and the subjects; one column
        ``"<class> (windows)"`` per fear class. ``per_subject`` is empty when the units stored
        no per-subject class counts; both are empty without fear confusions.
    """
    chosen: dict[int, dict] = {}
    for unit in units:
        keys = _unit_keys(unit)
        if keys["dataset"] != dataset or keys["protocol"] != protocol:
            continue
        conf = _fear_confusion(unit)
        if conf is None:
            continue
        best = chosen.get(keys["fold"])
        if best is None or keys["seed"] < best[0]:
            chosen[keys["fold"]] = (keys["seed"], conf)
    if not chosen:
        return pd.DataFrame(), pd.DataFrame()
    first = chosen[min(chosen)][1]
    names = [str(c) for c in (first.get("class_names") or range(len(first["matrix"])))]
    columns = [f"{c} (windows)" for c in names]
    per_fold = pd.DataFrame(
        [np.asarray(chosen[f][1]["matrix"], dtype=float).sum(axis=1) for f in sorted(chosen)],
        index=pd.Index([f"fold {f}" for f in sorted(chosen)], name="Fold"), columns=columns)
    per_fold.loc["total"] = per_fold.sum(axis=0)
    per_fold.attrs["marked_rows"] = ["total"]
    counts: dict[str, np.ndarray] = {}
    for f in sorted(chosen):
        for subject, n in (chosen[f][1].get("subject_classes") or {}).items():
            counts[str(subject)] = counts.get(str(subject), 0) + np.asarray(n, dtype=float)
    per_subject = pd.DataFrame()
    if counts:
        per_subject = pd.DataFrame.from_dict(counts, orient="index", columns=columns)
        per_subject = per_subject.sort_index()
        per_subject.index.name = "Subject"
        per_subject.loc["subjects with class"] = (per_subject > 0).sum(axis=0)
        per_subject.attrs["marked_rows"] = ["subjects with class"]
    return per_fold, per_subject
