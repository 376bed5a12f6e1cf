"""The method's claims as named, paired contrasts; paired comparisons along any result dimension.

Every stage of a unit is trained and tested on the same fold, so the fold scores of two stages
are paired by construction (on ``(fold, seed)``). :func:`central_contrasts` tests the contrasts
the method claims, for each dataset and protocol, on the test split:

- **TL teacher vs teacher from scratch**: ``method1/teacher/-`` vs ``scratch/teacher/-`` (same
  architecture and inputs; random init, fear only);
- **KD (<target>) vs scratch student**: each distilled student (``method1/student/<t>``,
  ``method2/student/<t>``) vs ``scratch/student/-``, the student trained on labels only (which
  *is* the "hard labels" student of Method 1);
- **Method 1 vs Method 2 (<target>)**: ``method1/student/<t>`` vs ``method2/student/<t>``;
- **mis-paired KD vs KD (<target>)**: ``mispaired/student/<t>`` (a student taught by a teacher
  that saw other windows) vs ``method1/student/<t>``, where a run has it.

Each contrast gives the number of pairs, the mean difference ``a - b`` with its 95 % t
interval, the Nadeau-Bengio corrected t-test and the Wilcoxon signed-rank test, both
Holm-adjusted across the family (the contrasts of one dataset and protocol); the verdict uses
the Holm-adjusted corrected t-test. A contrast whose stages did not run, or that has fewer than
2 pairs, gets a sentence saying so and which command produces it; when the pairs are too few for
the Wilcoxon test to reach p < alpha, a sentence says so.

:func:`compare_by` compares the levels of one dimension (``method``, ``stage``, ``target``,
``model``, ``normalize``) with every other column fixed, through
:func:`fearkd.evaluation.stats.compare_models`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .stats import holm, mean_difference_ci, nadeau_bengio_ttest

__all__ = ["DIMENSIONS", "ContrastResult", "central_contrasts", "compare_by",
           "min_wilcoxon_p", "contrast_specs"]

logger = logging.getLogger(__name__)

#: Dimensions ``fearkd compare --by`` takes. ``stage`` means the named contrasts.
DIMENSIONS = ("stage", "method", "target", "model", "normalize")
#: What produces each side of a contrast, for the "not run" sentences.
_PRODUCER = {
    "method1": "[methods] run = [\"method1\"] (fearkd run / fearkd cv)",
    "method2": "[methods] run = [\"method2\"] (fearkd run / fearkd cv)",
    "scratch": "[methods] scratch = true with method1 (fearkd run / fearkd cv)",
    "mispaired": "a mis-paired KD stage (method 'mispaired'), which this run does not define",
}
_CONTEXT = ("dataset", "protocol")


def min_wilcoxon_p(n_pairs: int) -> float:
    """Smallest two-sided p-value the exact Wilcoxon signed-rank test can give with
    ``n_pairs`` non-zero differences: ``2 / 2**n`` (every difference of one sign)."""
    return float(2.0 / 2.0 ** n_pairs) if n_pairs > 0 else 1.0


def contrast_specs(targets) -> list[tuple[str, tuple, tuple]]:
    """The named contrasts ``(name, (method, stage, target) of a, ... of b)`` for ``targets``."""
    specs = [("TL teacher vs teacher from scratch", ("method1", "teacher", "-"),
              ("scratch", "teacher", "-"))]
    for method, title in (("method1", "Method 1"), ("method2", "Method 2")):
        for t in targets:
            specs.append((f"{title} KD ({t}) vs scratch student", (method, "student", t),
                          ("scratch", "student", "-")))
    for t in targets:
        specs.append((f"Method 1 vs Method 2 ({t})",
                      ("method1", "student", t) if t != "hard" else ("scratch", "student", "-"),
                      ("method2", "student", t)))
    for t in targets:
        if t != "hard":
            specs.append((f"mis-paired KD vs KD ({t})", ("mispaired", "student", t),
                          ("method1", "student", t)))
    return specs


@dataclass(frozen=True)
class ContrastResult:
    """``table``: one row per tested contrast; ``sentences``: verdicts, power and what is
    missing, in order."""

    table: pd.DataFrame
    sentences: tuple[str, ...]
    metric: str
    alpha: float

    def to_text(self) -> str:
        """Plain text for the command line and the report."""
        lines = []
        if not self.table.empty:
            shown = [c for c in ("dataset", "protocol", "model", "contrast", "n_pairs",
                                 "mean_diff", "ci_low", "ci_high", "nb_p_holm",
                                 "wilcoxon_p_holm", "significant") if c in self.table.columns]
            lines += [f"Named contrasts on test {self.metric} (a - b, 95 % CI; p Holm-adjusted "
                      f"across each dataset/protocol's family; alpha {self.alpha:g}):",
                      self.table[shown].to_string(index=False,
                                                  float_format=lambda x: f"{x:.3g}"), ""]
        return "\n".join([*lines, *self.sentences])


def _side(sel: pd.DataFrame, spec: tuple) -> pd.DataFrame:
    method, stage, target = spec
    return sel[(sel["method"] == method) & (sel["stage"] == stage) & (sel["target"] == target)]


def _name(spec: tuple) -> str:
    return "hard labels (= scratch student, no KD)" if spec == ("scratch", "student", "-") \
        else "/".join(spec)


def central_contrasts(results: pd.DataFrame, metric: str = "accuracy", *, alpha: float = 0.05,
                      confidence: float = 0.95) -> ContrastResult:
    """Test the named contrasts of every (dataset, protocol) of a run's results.

    Parameters
    ----------
    results : DataFrame
        Tidy results (``results.csv``): ``dataset``, ``protocol``, ``method``, ``stage``,
        ``model``, ``target``, ``fold``, ``seed``, ``split``, ``metric``, ``value``,
        ``n_train``, ``n_test``.
    metric : str
        Test-split metric.
    alpha, confidence : float

    Returns
    -------
    ContrastResult
    """
    missing_cols = [c for c in ("dataset", "protocol", "method", "stage", "target", "model",
                                "fold", "seed", "split", "metric", "value")
                    if c not in results.columns]
    if missing_cols:
        raise ValueError(f"'results' lacks column(s) {missing_cols!r}: expected a run's "
                         "results.csv (fearkd run / fearkd cv).")
    if metric not in set(results["metric"]):
        raise ValueError(f"Invalid value for --metric: expected one of "
                         f"{sorted(set(results['metric']))!r}, got {metric!r}.")
    data = results[(results["split"] == "test") & (results["metric"] == metric)]
    rows, sentences = [], []
    for context, sel in data.groupby(list(_CONTEXT), sort=False):
        where = ", ".join(f"{k} {v}" for k, v in zip(_CONTEXT, context, strict=True))
        if not set(sel["method"]) & {"method1", "method2"}:
            continue
        targets = [t for t in dict.fromkeys(sel.loc[sel["stage"] == "student", "target"])
                   if t != "-"] or ["soft"]
        family = []
        for name, a_spec, b_spec in contrast_specs(targets):
            a, b = _side(sel, a_spec), _side(sel, b_spec)
            absent = [s for s, part in ((a_spec, a), (b_spec, b)) if part.empty]
            if a_spec[0] == "mispaired" and absent:
                if f"[{where}] mis-paired KD" not in "".join(sentences):
                    sentences.append(f"[{where}] mis-paired KD: not run "
                                     f"({_PRODUCER['mispaired']}).")
                continue
            if a_spec == ("method1", "student", "hard") and absent:
                continue  # trained once, as the scratch student
            if absent:
                sentences.append(
                    f"[{where}] {name}: not run ({_name(absent[0])} has no results; it needs "
                    f"{_PRODUCER.get(absent[0][0], 'that stage')}).")
                continue
            for model, a_part in a.groupby("model", sort=False):
                b_part = b[b["model"] == model]
                row = _pair_row(a_part, b_part, confidence)
                if row is None:
                    sentences.append(f"[{where}, {model}] {name}: fewer than 2 (fold, seed) "
                                     f"pairs; add folds ([evaluation] folds) or seeds "
                                     f"([evaluation] seeds) and re-run.")
                    continue
                family.append({"dataset": context[0], "protocol": context[1], "model": model,
                               "contrast": name, "a": _name(a_spec), "b": _name(b_spec), **row})
        if not family:
            continue
        for col in ("nb_p", "wilcoxon_p"):
            adj = holm(np.array([r[col] for r in family]))
            for r, p in zip(family, adj, strict=True):
                r[f"{col}_holm"] = float(p)
        for r in family:
            r["significant"] = bool(r["nb_p_holm"] < alpha)
            verdict = "differ" if r["significant"] else "are not significantly different"
            sentences.append(
                f"[{where}, {r['model']}] {r['contrast']}: {r['mean_diff']:+.3f} "
                f"({100 * confidence:.0f} % CI {r['ci_low']:+.3f} to {r['ci_high']:+.3f}, "
                f"{r['n_pairs']} pairs); {r['a']} and {r['b']} {verdict} "
                f"(corrected t, Holm p = {r['nb_p_holm']:.3g}).")
        n_min = min(r["n_pairs"] for r in family)
        floor = min_wilcoxon_p(n_min)  # before Holm, which can only raise it
        if floor >= alpha:
            sentences.append(
                f"[{where}] Power: with {n_min} pairs the Wilcoxon test cannot give p below "
                f"{floor:.3g}, so p < {alpha:g} is unreachable whatever the effect; 'not "
                f"significant' here says little. More folds or [evaluation] seeds add pairs.")
        rows.extend(family)
    if not rows and not sentences:
        sentences.append("No Method 1 or Method 2 results: the named contrasts need "
                         "[methods] run = [\"method1\", \"method2\"] (fearkd run / fearkd cv).")
    return ContrastResult(pd.DataFrame(rows), tuple(sentences), metric, alpha)


def _pair_row(a: pd.DataFrame, b: pd.DataFrame, confidence: float) -> dict | None:
    keys = ["fold", "seed"]
    if a.duplicated(keys).any() or b.duplicated(keys).any():
        logger.info("Several rows per (fold, seed): more than one unit trains this stage.")
        a, b = a.groupby(keys, as_index=False).mean(numeric_only=True), \
            b.groupby(keys, as_index=False).mean(numeric_only=True)
    m = a.merge(b, on=keys, suffixes=("_a", "_b"))
    if len(m) < 2:
        return None
    d = (m["value_a"] - m["value_b"]).to_numpy(float)
    ratio = float((m["n_test_a"] / m["n_train_a"]).mean()) \
        if {"n_test_a", "n_train_a"} <= set(m.columns) else 1.0 / (len(d) - 1)
    mean, lo, hi = mean_difference_ci(d, confidence)
    if np.all(d == d[0]):
        nb_p = 1.0 if d[0] == 0 else 0.0
    else:
        nb_p = nadeau_bengio_ttest(d, ratio)[1]
    if np.all(d == 0):
        w_p = 1.0
    else:
        from scipy import stats
        w_p = float(stats.wilcoxon(d).pvalue)
    return {"n_pairs": len(d), "mean_a": float(m["value_a"].mean()),
            "mean_b": float(m["value_b"].mean()), "mean_diff": mean, "ci_low": lo,
            "ci_high": hi, "nb_p": float(nb_p), "wilcoxon_p": w_p}


def compare_by(results: pd.DataFrame, by: str, metric: str = "accuracy", *,
               alpha: float = 0.05):
    """Paired comparison of the levels of ``by`` with every other result column fixed.

    Parameters
    ----------
    results : DataFrame
        Tidy results of a run.
    by : {"stage", "method", "target", "model", "normalize"}
        ``"stage"`` returns :func:`central_contrasts`; the others pair the column's values
        through :func:`fearkd.evaluation.stats.compare_models` (baselines left out).
    metric : str
    alpha : float

    Returns
    -------
    ContrastResult or ComparisonResult
    """
    from .stats import compare_models

    if by not in DIMENSIONS:
        raise ValueError(f"Invalid value for --by: expected one of "
                         f"{', '.join(map(repr, DIMENSIONS))}, got {by!r}.")
    if by == "stage":
        return central_contrasts(results, metric, alpha=alpha)
    if by not in results.columns:
        raise ValueError(f"--by {by}: the results have no {by!r} column; a run made with "
                         f"normalisation settings ([features] normalize) writes it.")
    data = results[(results["method"] != "baseline") & (results["split"] == "test")]
    others = [c for c in ("dataset", "protocol", "task", "method", "stage", "target", "model",
                          "normalize") if c in data.columns and c != by]
    if by != "model":
        data = data.rename(columns={"model": "model_name"})
        others = ["model_name" if c == "model" else c for c in others]
    frame = data.rename(columns={by: "model"}) if by != "model" else data
    counts = frame.groupby(others + ["metric"])["model"].nunique()
    if counts.empty or counts.max() < 2:
        raise ValueError(f"--by {by}: no results hold two {by} values with everything else "
                         f"equal; run more than one {by} (e.g. [methods] run = [\"method1\", "
                         f"\"method2\"] or [models] backbones) with fearkd run / fearkd cv.")
    keep = counts[counts >= 2].reset_index()[others + ["metric"]]
    frame = frame.merge(keep, on=others + ["metric"])
    return compare_models(frame, metric=metric, alpha=alpha, by=others, baselines=())
