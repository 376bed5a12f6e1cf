"""Plain-text result summaries for the command line: the reference's tables and model tests.

The CLI prints what these functions return and formats nothing itself; the same tables appear
in the HTML/Markdown report (:mod:`fearkd.reporting.document`).
"""

from __future__ import annotations

import pandas as pd

from ..evaluation.contrasts import central_contrasts, compare_by
from ..evaluation.stats import compare_models
from .combined import combined_text, own_results
from .plots import dataset_title
from .tables import (
    backbone_table,
    finetune_table,
    format_table,
    kd_table,
    method_comparison_table,
    result_groups,
    timing_table,
)

__all__ = ["data_title", "method_tables", "comparison_text", "contrast_text", "by_text",
           "timing_text", "PLUS_MINUS_LEGEND"]

#: Printed under every table whose cells read "x ± y".
PLUS_MINUS_LEGEND = ("x ± y: mean ± half-width of the 95 % t-interval over the folds "
                     "(and seeds).")

def data_title(summaries: dict[str, dict]) -> str:
    """The datasets a run read, each marked ``(synthetic data)`` when a synthetic writer made it.

    Parameters
    ----------
    summaries : dict
        Dataset name -> its summary (``datasets/<name>/summary.json``; ``synthetic`` is read).
    """
    return ", ".join(dataset_title(name, bool((summary or {}).get("synthetic")))
                     for name, summary in summaries.items())


def timing_text(timing: pd.DataFrame, wall_seconds: float | None) -> str:
    """The cross-validation time table as printed after ``fearkd run`` and ``fearkd cv``.

    The same table as the report's (:func:`fearkd.reporting.tables.timing_table`): training
    seconds per dataset and model, then the seconds summed over every unit beside the run's
    wall time, and the note that says why the two differ.

    Parameters
    ----------
    timing : DataFrame
        ``timing.csv`` of the run.
    wall_seconds : float or None
        The run's wall time (``environment.json`` ``wall_seconds``).
    """
    table = timing_table(timing, wall_seconds=wall_seconds)
    text = format_table(table)
    note = table.attrs.get("note")
    return f"{text}\n{note}" if note else text


#: Stages whose KD table is printed, per method, in order.
_KD_STAGES = (("method1", ("student",)), ("method2", ("student-source", "student")),
              ("ensemble", ("student",)))


def method_tables(results: pd.DataFrame) -> list[str]:
    """The reference's tables, as plain text, for every (dataset, protocol) of a run.

    Parameters
    ----------
    results : DataFrame
        Tidy results of a run (``results.csv``; columns
        :data:`fearkd.evaluation.results.RESULT_COLUMNS`).

    Returns
    -------
    list of str
        Backbone table, fine-tuned table (Method 1), one KD table per (method, model, stage)
        and the Method 1 vs Method 2 table (when both ran), for each (dataset, protocol) in
        report order ("LEAKY" in the titles of seed-legacy and window tables), then, for a run
        with several ``[[datasets]]``, the combined student's per-dataset table
        (:func:`fearkd.reporting.combined.combined_table`), then the legend of "x ± y". A
        dataset's tables hold its own models only: the combined model's scores on that
        dataset are in the combined table.
    """
    out = []
    everything, results = results, own_results(results)
    for dataset, protocol in result_groups(results):
        sel = results[(results["dataset"] == dataset) & (results["protocol"] == protocol)]
        where = f"{dataset}, protocol {protocol}" + (
            ", LEAKY" if protocol in ("seed-legacy", "window") else "")
        methods = set(sel["method"])
        out.append(format_table(backbone_table(sel), title=f"Backbone ({where})"))
        if methods & {"method1", "ensemble"}:
            out.append(format_table(finetune_table(sel), title=f"Fine-tuned ({where})"))
        for method, stages in _KD_STAGES:
            if method not in methods:
                continue
            own = (sel["method"] == method) & sel["stage"].isin(stages)
            for model in sel.loc[own, "model"].unique():
                for stage in stages:
                    table = kd_table(sel, model, method=method, stage=stage)
                    out.append(format_table(table, title=f"{table.attrs.get('title', '')} "
                                                         f"({where})"))
        if {"method1", "method2"} <= methods:
            out.append(format_table(method_comparison_table(sel),
                                    title=f"Method 1 vs Method 2 ({where})"))
    out += combined_text(everything)
    if out:
        out.append(PLUS_MINUS_LEGEND)
    return out


def comparison_text(results: pd.DataFrame, metric: str = "accuracy", alpha: float = 0.05, *,
                    as_json: bool = False) -> str | dict | None:
    """Paired tests between the backbone models of ``results`` (one protocol), as text.

    Parameters
    ----------
    results : DataFrame
        Tidy results of one protocol.
    metric : str
        Test-split metric to compare (:data:`fearkd.evaluation.metrics.METRICS`).
    alpha : float
        Significance level.
    as_json : bool
        Return a JSON-ready dict (metric, alpha, table records, sentences) instead of text.

    Returns
    -------
    str, dict or None
        None when fewer than two backbone models ran.
    """
    models = results[(results["method"] == "backbone") & (results["split"] == "test")]
    if models["model"].nunique() < 2:
        return None
    comparison = compare_models(models, metric=metric, alpha=alpha)
    if as_json:
        return {"metric": metric, "alpha": alpha,
                "table": comparison.table.to_dict(orient="records"),
                "sentences": list(comparison.sentences)}
    return comparison.to_text()


def contrast_text(results: pd.DataFrame, metric: str = "accuracy", alpha: float = 0.05, *,
                  as_json: bool = False) -> str | dict | None:
    """The method's named contrasts (:func:`fearkd.evaluation.contrasts.central_contrasts`).

    Returns
    -------
    str, dict or None
        None when neither Method 1 nor Method 2 ran.
    """
    if not set(results["method"]) & {"method1", "method2"}:
        return None
    res = central_contrasts(results, metric, alpha=alpha)
    if as_json:
        return {"metric": metric, "alpha": alpha, "table": res.table.to_dict(orient="records"),
                "sentences": list(res.sentences)}
    return res.to_text()


def by_text(results: pd.DataFrame, by: str, metric: str = "accuracy", alpha: float = 0.05, *,
            as_json: bool = False) -> str | dict:
    """Paired comparison along one result column (``fearkd compare --by``), as text or JSON."""
    res = compare_by(results, by, metric, alpha=alpha)
    if as_json:
        return {"by": by, "metric": metric, "alpha": alpha,
                "table": res.table.to_dict(orient="records"), "sentences": list(res.sentences)}
    return res.to_text()
