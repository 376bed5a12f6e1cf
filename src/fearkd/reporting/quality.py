"""Per-stage probability quality and pooled macro-F1, as report tables.

Accuracy says how often the top class is right; a deployed monitor also shows its
probabilities, so the report gives, per stage and model, what its probabilities are worth on the
test folds: expected calibration error (ECE, 0 = confidences match accuracy), the multi-class
Brier score (0 best, 2 worst) and log loss, each as mean ± 95 % t-interval over folds, beside the
log loss of the class priors (the training class frequencies, what a model that learned nothing
gets). The pooled macro-F1 scores every fold's test predictions at once (summed confusion
matrices, :func:`fearkd.evaluation.metrics.macro_f1_from_confusion`): a fold that holds few
classes cannot pull it to 0 or 1 the way a per-fold macro-F1 can.

A stage trained with ``[training] calibrate = "temperature"`` divides its logits by a
temperature ``T`` fitted on its inner validation split: its row then shows the same three
figures before scaling (:data:`UNCALIBRATED_COLUMNS`, "before T") and the mean ``T`` over
folds; the ordinary columns hold the scaled probabilities, the ones a deployed model gives.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..evaluation.metrics import macro_f1_from_confusion
from .tables import CI_SUFFIX, check_results, model_label, summarize_folds

__all__ = ["QUALITY_COLUMNS", "UNCALIBRATED_COLUMNS", "quality_table", "pooled_macro_f1"]

#: (column, metric, scale) of :func:`quality_table`; each with its ``" ±"`` partner.
QUALITY_COLUMNS = (
    ("ECE (%)", "ece", 100.0),
    ("Brier", "brier", 1.0),
    ("Test Loss", "log_loss", 1.0),
)
#: (column, metric, scale) of a temperature-scaled stage: its figures before scaling, and T.
UNCALIBRATED_COLUMNS = (
    ("ECE before T (%)", "ece_uncalibrated", 100.0),
    ("Brier before T", "brier_uncalibrated", 1.0),
    ("Test Loss before T", "log_loss_uncalibrated", 1.0),
    ("T", "temperature", 1.0),
)
_STAGE_NAMES = {("method1", "teacher"): "Method 1 teacher", ("method1", "student"):
                "Method 1 student", ("method2", "student"): "Method 2 student",
                ("method2", "student-source"): "Method 2 student (source task)",
                ("scratch", "student"): "Scratch student", ("scratch", "teacher"):
                "Scratch teacher", ("backbone", "backbone"): "Backbone"}


def pooled_macro_f1(confusions: list[dict]) -> dict[tuple, float]:
    """Macro-F1 of every (dataset, protocol, method, stage, model, target)'s summed confusion.

    Parameters
    ----------
    confusions : list of dict
        :func:`fearkd.reporting.rundata.confusion_sums`.

    Returns
    -------
    dict
        ``{(dataset, protocol, method, stage, model, target): macro-F1 in [0, 1]}``.
    """
    return {(e["dataset"], e["protocol"], e["method"], e["stage"], e["model"], e["target"]):
            macro_f1_from_confusion(e["matrix"]) for e in confusions}


def _row_label(method: str, stage: str, model: str, target: str) -> str:
    name = _STAGE_NAMES.get((method, stage), f"{method} {stage}")
    tail = "" if str(target) in ("-", "", "nan") else f" ({target})"
    return f"{model_label(model)} · {name}{tail}"


def quality_table(results: pd.DataFrame, confusions: list[dict] | None = None, *,
                  dataset: str, protocol: str) -> pd.DataFrame:
    """Probability quality and pooled macro-F1 of every stage of one dataset and protocol.

    Parameters
    ----------
    results : DataFrame
        Tidy results (``results.csv``).
    confusions : list of dict, optional
        :func:`fearkd.reporting.rundata.confusion_sums`; without it the pooled column is absent.
    dataset, protocol : str

    Returns
    -------
    DataFrame
        Index ``"<MODEL> · <stage> (<target>)"``; columns of :data:`QUALITY_COLUMNS` with their
        ``" ±"`` partners, then, when some stage was temperature-scaled, those of
        :data:`UNCALIBRATED_COLUMNS` (NaN for the other stages), ``"Pooled macro-F1 (%)"``,
        ``"Prior log loss"`` (the ``majority`` baseline's test log loss, i.e. the class
        priors', of the stage's task) and ``n`` (folds). Empty when no stage has probability
        metrics.
    """
    df = check_results(results)
    df = df[(df["dataset"] == dataset) & (df["protocol"] == protocol) & (df["split"] == "test")]
    columns = QUALITY_COLUMNS
    if df["metric"].eq("temperature").any():
        columns = QUALITY_COLUMNS + UNCALIBRATED_COLUMNS
    wanted = [m for _, m, _ in columns]
    models = df[(df["method"] != "baseline") & df["metric"].isin(wanted)]
    pooled = pooled_macro_f1([e for e in confusions or []
                              if e["dataset"] == dataset and e["protocol"] == protocol])
    prior = df[(df["method"] == "baseline") & (df["model"] == "majority")
               & (df["metric"] == "log_loss")].groupby("task")["value"].mean()
    keys = ["method", "stage", "model", "target", "task"]
    summ = summarize_folds(models, keys)
    records = {}
    for key, grp in summ.groupby(keys, sort=False):
        method, stage, model, target, task = (str(k) for k in key)
        rec: dict[str, float] = {}
        for label, metric, scale in columns:
            hit = grp[grp["metric"] == metric]
            rec[label] = float(hit["mean"].iloc[0]) * scale if len(hit) else math.nan
            rec[label + CI_SUFFIX] = float(hit["ci"].iloc[0]) * scale if len(hit) else math.nan
        rec["Prior log loss"] = float(prior.get(task, math.nan))
        if confusions is not None:
            rec["Pooled macro-F1 (%)"] = 100.0 * pooled.get(
                (dataset, protocol, method, stage, model, target), math.nan)
        rec["n"] = float(grp["n"].max())
        records[_row_label(method, stage, model, target)] = rec
    table = pd.DataFrame.from_dict(records, orient="index")
    if len(table) and not np.isfinite(table["Prior log loss"].to_numpy(dtype=float)).any():
        table = table.drop(columns="Prior log loss")
    table.index.name = "Model · stage"
    table.attrs.update(title="Probability quality (test folds)", dataset=dataset,
                       protocol=protocol, marked_rows=[])
    if columns is not QUALITY_COLUMNS:
        table.attrs["note"] = (
            "Temperature scaling ([training] calibrate = \"temperature\"): ECE, Brier and "
            "Test Loss are those of softmax(logits / T), T fitted per fold on the inner "
            "validation split; the \"before T\" columns are the same model's unscaled "
            "probabilities. Accuracy does not change with T.")
    return table
