"""The combined student's table: one student trained on several datasets, scored on each.

An experiment with several ``[[datasets]]`` trains a combined model on the union of their
windows (rows with ``dataset`` = ``trained_on`` = ``"deap+ascertain"``), scores it also on each
dataset's own test windows (``dataset`` = ``"deap"``, ``trained_on`` = ``"deap+ascertain"``) and,
with ``[common] per_dataset``, trains each dataset's own model on its rows alone
(``dataset`` = ``trained_on`` = ``"deap"``). The union's folds are the union of each dataset's
own folds (:func:`fearkd.experiment.run_experiment`), so on the same (fold, seed) the combined
and the dataset's own student are tested on the same subjects and can be paired.

:func:`combined_table` is the seed's table (student test accuracy on DEAP and on ASCERTAIN)
with 95 % intervals, next to each dataset's own student and their paired difference;
:func:`own_results` drops the combined model's per-dataset rows so that every other table of a
dataset shows that dataset's own models only.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..evaluation.results import check_results
from .blocks import Section, TableBlock, slug
from .rundata import RunData
from .tables import _METHOD_NAMES, CI_SUFFIX, mean_ci, model_label, target_label

__all__ = ["combined_mask", "own_results", "combined_table", "combined_text", "combined_section",
           "COMBINED", "OWN", "DIFF"]

COMBINED = "Combined student (%)"
OWN = "Own student (%)"
DIFF = "Combined − own (pp)"


def _trained_on(results: pd.DataFrame) -> pd.Series:
    if "trained_on" not in results:
        return pd.Series("", index=results.index)
    return results["trained_on"].fillna("").astype(str).replace("nan", "")


def combined_mask(results: pd.DataFrame) -> pd.Series:
    """Rows scoring a combined model on one of the datasets it was trained on.

    Such a row has ``trained_on`` = ``"a+b"`` and ``dataset`` one of ``a``, ``b`` (a
    leave-one-dataset-out row is scored on a dataset *outside* ``trained_on`` and is kept).
    """
    on = _trained_on(results)
    ds = results["dataset"].astype(str)
    return pd.Series([("+" in t and d != t and d in t.split("+")) for d, t in
                      zip(ds, on, strict=True)], index=results.index, dtype=bool)


def own_results(results: pd.DataFrame) -> pd.DataFrame:
    """``results`` without the combined model's per-dataset rows (see :func:`combined_mask`)."""
    return results[~combined_mask(results)]


def _student_label(model: str, method: str, target: str) -> str:
    if method == "scratch":
        return f"{model_label(model)}, scratch (no KD)"
    return f"{model_label(model)}, {_METHOD_NAMES.get(method, method)}, {target_label(target)}"


def _per_fold(rows: pd.DataFrame) -> pd.Series:
    """Test accuracy per (fold, seed), then seeds averaged within each fold."""
    return rows.groupby(["fold", "seed"])["value"].mean().groupby(level="fold").mean()


def combined_table(results: pd.DataFrame, protocol: str | None = None) -> pd.DataFrame:
    """Fear students' test accuracy per dataset: the combined student next to each dataset's own.

    Parameters
    ----------
    results : DataFrame
        Tidy results of a run with several ``[[datasets]]`` (a ``trained_on`` column).
    protocol : str, optional
        The protocol to show (default: the first one with a combined model).

    Returns
    -------
    DataFrame
        One row per (student, dataset), e.g. ``"CNN, Method 1, Combined loss · DEAP"``, plus a
        row per student on the union (``· all``). Columns :data:`COMBINED`, :data:`OWN` (the
        dataset's own student, same method and target; NaN on the union) and :data:`DIFF`
        (paired on fold, seeds averaged), each with its ``" ±"`` partner (half-width of the
        95 % t-interval over folds), and ``n`` (folds). Empty when no combined model ran.
    """
    df = check_results(results)
    on = _trained_on(df)
    union = df[(on == df["dataset"]) & on.str.contains("+", regex=False)]
    if protocol is None and len(union):
        protocol = str(union["protocol"].iloc[0])
    students = (df["stage"] == "student") & (df["split"] == "test") \
        & (df["metric"] == "accuracy") & (df["task"] == "fear") & (df["protocol"] == protocol)
    comb = df[students & (combined_mask(df) | ((on == df["dataset"]) & on.str.contains(
        "+", regex=False)))]
    own = df[students & (on == df["dataset"]) & ~on.str.contains("+", regex=False)]
    records, index = [], []
    keys = ["model", "method", "target"]
    for (model, method, target), rows in comb.groupby(keys, sort=False):
        union_name = str(rows["trained_on"].iloc[0])
        order = [*union_name.split("+"), union_name]
        for ds in [d for d in order if d in set(rows["dataset"])]:
            c = _per_fold(rows[rows["dataset"] == ds])
            mine = own[(own["dataset"] == ds) & (own["model"] == model)
                       & (own["method"] == method) & (own["target"] == target)]
            o = _per_fold(mine) if len(mine) else pd.Series(dtype=float)
            both = c.index.intersection(o.index)
            rec = {}
            for col, values in ((COMBINED, c), (OWN, o), (DIFF, c[both] - o[both])):
                mean, ci, _n = mean_ci(values.to_numpy() * 100.0)
                rec[col], rec[col + CI_SUFFIX] = mean, ci
            rec["n"] = float(len(c))
            where = "all" if ds == union_name else ds.upper()
            index.append(f"{_student_label(str(model), str(method), str(target))} · {where}")
            records.append(rec)
    cols = [COMBINED, COMBINED + CI_SUFFIX, OWN, OWN + CI_SUFFIX, DIFF, DIFF + CI_SUFFIX, "n"]
    table = pd.DataFrame(records, columns=cols, index=pd.Index(index, name="Student · test data"))
    table.attrs.update(
        title=f"Combined student per dataset (protocol {protocol})", protocol=protocol,
        marked_rows=[], note=(
            "Fear test accuracy of the student trained on every dataset together, scored on "
            "each dataset's test subjects, next to the student trained on that dataset alone "
            "(same folds and seeds); the difference is paired on the fold. x ± y: mean ± "
            "half-width of the 95 % t-interval over the folds."))
    if table.empty or not np.isfinite(table[COMBINED].to_numpy(dtype=float)).any():
        table.attrs["note"] = ""
    return table


def combined_text(results: pd.DataFrame) -> list[str]:
    """:func:`combined_table` as plain text, one per protocol that has a combined model."""
    from .tables import format_table

    df = check_results(results)
    on = _trained_on(df)
    union = df[(on == df["dataset"]) & on.str.contains("+", regex=False)]
    out = []
    for protocol in pd.unique(union["protocol"]):
        table = combined_table(df, str(protocol))
        if len(table):
            note = table.attrs.get("note", "")
            out.append(format_table(table) + (f"\n{note}" if note else ""))
    return out


def combined_section(run: RunData) -> Section | None:
    """The combined student per dataset, next to each dataset's own (several datasets)."""
    res = run.results
    if "trained_on" not in res:
        return None
    sec = Section("combined", "The combined student per dataset")
    sec.intro = ("One student trained on every dataset of the experiment together (in the "
                 "[common] feature space) and tested subject-wise, scored on each dataset's "
                 "test subjects next to the student trained on that dataset alone.")
    for protocol in pd.unique(res["protocol"]):
        table = combined_table(res, str(protocol))
        if len(table):
            sec.blocks.append(TableBlock(slug("combined", protocol), table.attrs["title"],
                                         table, note=table.attrs.get("note", "")))
    return sec if sec.blocks else None
