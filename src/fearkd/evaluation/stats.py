"""Paired statistics on fold scores: which models differ, by how much, and how surely.

Input is the tidy results table of a run: one row per (model, fold, metric) with a ``value``, and
optionally ``seed`` (pairs are matched on fold *and* seed) and context columns (``dataset``,
``protocol``, ``task``, ``target``, ``method``, ``stage``, ``split``; models are compared within
each combination).
For every pair of models and every metric, :func:`compare_models` reports

- the dependent (paired) t-test (:func:`scipy.stats.ttest_rel`), as in the reference;
- the Nadeau-Bengio corrected resampled t-test: folds share training data, so the plain paired
  t-test is too confident; ``t = mean(d) / sqrt((1/k + n_test/n_train) * var(d))``, ``k - 1`` df;
- the Wilcoxon signed-rank test (:func:`scipy.stats.wilcoxon`);
- the mean difference with a t-based confidence interval and Cohen's ``d_z = mean(d) / sd(d)``;
- Holm's step-down correction of the chosen test's p-values across the pairs;

and the reference's sentences ("CNN and LSTM performances are significantly different."),
decided by the Holm-corrected p-value at the stated alpha. Baseline rows (models ``chance``,
``majority``, ``stratified``) are not paired; their scores, and the mean of a ``chance`` column
when the results have one, appear next to each model's.
"""

from __future__ import annotations

import itertools
import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

__all__ = [
    "TESTS",
    "REFERENCE_MODELS",
    "holm",
    "nadeau_bengio_ttest",
    "mean_difference_ci",
    "cohens_dz",
    "ComparisonResult",
    "compare_models",
]

logger = logging.getLogger(__name__)

TESTS = ("nadeau-bengio", "ttest", "wilcoxon")
TEST_TITLES = {
    "nadeau-bengio": "Nadeau-Bengio corrected resampled t-test",
    "ttest": "dependent (paired) t-test",
    "wilcoxon": "Wilcoxon signed-rank test",
}
CORRECTIONS = ("holm", "none")
#: Models that are reference points, not competitors.
REFERENCE_MODELS = ("chance", "majority", "stratified")
CONTEXT_COLUMNS = ("dataset", "protocol", "task", "target", "method", "stage", "split")
REQUIRED = ("model", "fold", "metric", "value")


def holm(p_values) -> np.ndarray:
    """Holm's step-down adjusted p-values, shape (m,); NaN entries stay NaN and do not count.

    With p-values sorted ascending ``p_(1) <= ... <= p_(m)``, the adjusted value of ``p_(i)`` is
    ``min(1, max_{j <= i} (m - j + 1) p_(j))``; reject where it is below alpha.
    """
    p = np.asarray(p_values, dtype=float)
    if p.ndim != 1:
        raise ValueError(f"'p_values' must be 1-D, got shape {p.shape}.")
    if np.any((p < 0) | (p > 1)):
        raise ValueError(f"'p_values' must lie in [0, 1], got {p.tolist()}.")
    out = np.full(p.shape, np.nan)
    ok = ~np.isnan(p)
    m = int(ok.sum())
    order = np.argsort(p[ok], kind="stable")
    adjusted = np.minimum(np.maximum.accumulate((m - np.arange(m)) * p[ok][order]), 1.0)
    tmp = np.empty(m)
    tmp[order] = adjusted
    out[ok] = tmp
    return out


def nadeau_bengio_ttest(d, test_train_ratio: float) -> tuple[float, float, int]:
    """Corrected resampled t-test on paired differences (Nadeau & Bengio 2003).

    Parameters
    ----------
    d : array-like, shape (k,)
        Score differences per fold.
    test_train_ratio : float
        ``n_test / n_train`` of the folds.

    Returns
    -------
    t, p, df : float, float (two-sided), int
    """
    d = np.asarray(d, dtype=float)
    k = len(d)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = d.mean() / np.sqrt((1.0 / k + test_train_ratio) * d.var(ddof=1))
    return float(t), float(2.0 * stats.t.sf(abs(t), k - 1)), k - 1


def mean_difference_ci(d, confidence: float = 0.95) -> tuple[float, float, float]:
    """Mean of ``d`` and its t-based confidence interval ``mean +- t_{k-1} * sd / sqrt(k)``."""
    d = np.asarray(d, dtype=float)
    k = len(d)
    half = stats.t.ppf(0.5 + confidence / 2.0, k - 1) * d.std(ddof=1) / np.sqrt(k)
    return float(d.mean()), float(d.mean() - half), float(d.mean() + half)


def cohens_dz(d) -> float:
    """Standardised mean difference of paired scores, ``mean(d) / sd(d)`` (ddof 1)."""
    d = np.asarray(d, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(d.mean() / d.std(ddof=1))


def _wilcoxon(d: np.ndarray) -> tuple[float, float, str]:
    if np.all(d == 0):
        return float("nan"), float("nan"), "Wilcoxon undefined: all differences are zero"
    with warnings.catch_warnings():
        # SciPy warns when zeros or ties force the normal approximation; the result stands.
        warnings.simplefilter("ignore")
        res = stats.wilcoxon(d)
    return float(res.statistic), float(res.pvalue), ""


@dataclass(frozen=True)
class ComparisonResult:
    """What :func:`compare_models` found.

    ``table``: one row per (context, metric, model pair); ``scores``: one row per (context,
    metric, model) with mean, sd and folds, and the baselines' means as extra columns;
    ``sentences``: the reference's verdicts.
    """

    table: pd.DataFrame
    scores: pd.DataFrame
    sentences: tuple[str, ...]
    alpha: float
    test: str
    correction: str

    def to_text(self) -> str:
        """Plain text for the command line and reports."""
        shown = [
            c for c in (*CONTEXT_COLUMNS, "metric", "model_a", "model_b", "n_folds", "mean_diff",
                        "ci_low", "ci_high", "cohen_dz", "statistic", "p_value", "p_adjusted",
                        "significant")
            if c in self.table.columns
        ]
        lines = [
            f"Model scores (mean and sd over folds):\n{self.scores.to_string(index=False)}",
            "",
            f"Pairwise comparisons: {TEST_TITLES[self.test]}, correction {self.correction!r}, "
            f"alpha = {self.alpha:g}",
            self.table[shown].to_string(index=False, float_format=lambda x: f"{x:.4g}"),
            "",
            *self.sentences,
        ]
        return "\n".join(lines)


def _check_args(results, metric, alpha, test, correction, confidence) -> list[str]:
    if not isinstance(results, pd.DataFrame):
        raise TypeError(f"'results' must be a pandas DataFrame, got {type(results).__name__}.")
    missing = [c for c in REQUIRED if c not in results.columns]
    if missing:
        raise ValueError(
            f"'results' lacks column(s) {missing!r} (has {list(results.columns)!r}); expected the "
            "tidy results table with columns model, fold, metric, value."
        )
    if test not in TESTS:
        raise ValueError(
            f"Invalid value for 'test': expected one of {', '.join(map(repr, TESTS))}, "
            f"got {test!r}."
        )
    if correction not in CORRECTIONS:
        raise ValueError(
            f"Invalid value for 'correction': expected one of {CORRECTIONS!r}, got {correction!r}."
        )
    for name, value in (("alpha", alpha), ("confidence", confidence)):
        if not isinstance(value, (int, float)) or not 0.0 < value < 1.0:
            raise ValueError(f"'{name}' must be a number in (0, 1), got {value!r}.")
    metrics = [metric] if isinstance(metric, str) else list(metric)
    available = sorted(results["metric"].astype(str).unique())
    unknown = [m for m in metrics if m not in available]
    if unknown or not metrics:
        raise ValueError(
            f"Unknown metric(s) {unknown or metrics!r}: the results hold {available!r}."
        )
    return metrics


def _ratio(results: pd.DataFrame, test_train_ratio) -> pd.Series | float | None:
    """n_test / n_train: the argument, or per pairing key from n_train/n_test columns."""
    if test_train_ratio is not None:
        if isinstance(test_train_ratio, bool) or not isinstance(test_train_ratio, (int, float)):
            raise TypeError(
                f"'test_train_ratio' must be a number, got {type(test_train_ratio).__name__}."
            )
        if not test_train_ratio > 0:
            raise ValueError(f"'test_train_ratio' must be > 0, got {test_train_ratio!r}.")
        return float(test_train_ratio)
    if {"n_train", "n_test"} <= set(results.columns):
        return results["n_test"].astype(float) / results["n_train"].astype(float)
    return None


def _wide(frame: pd.DataFrame, keys: list[str], where: str) -> pd.DataFrame:
    """Scores as (pairing key) x model; errors on duplicates, NaN, mismatched or too few folds."""
    dup = frame.duplicated(["model", *keys])
    if dup.any():
        row = frame.loc[dup].iloc[0]
        raise ValueError(
            f"{where}: 'results' holds several rows for model {row['model']!r} at "
            f"{dict(row[keys])!r}; add a 'seed' column, or filter the results (or pass 'by') "
            "so that each model has one value per fold."
        )
    wide = frame.pivot(index=keys, columns="model", values="value")
    wide = wide[list(dict.fromkeys(frame["model"]))]  # keep the results' model order
    for model in wide.columns:
        absent = wide.index[wide[model].isna()]
        if len(absent):
            present = frame.loc[frame["model"] == model]
            if present["value"].isna().any():
                raise ValueError(f"{where}: model {model!r} has NaN scores; they cannot be paired.")
            raise ValueError(
                f"{where}: folds do not match between models: {model!r} lacks "
                f"{list(absent)[:5]!r} that other models have; compare models on the same folds."
            )
    if len(wide) < 2:
        raise ValueError(
            f"{where}: paired tests need at least 2 folds per model, got {len(wide)}."
        )
    return wide


def compare_models(
    results: pd.DataFrame,
    metric: str | Sequence[str] = "accuracy",
    alpha: float = 0.05,
    test: str = "nadeau-bengio",
    test_train_ratio: float | None = None,
    *,
    correction: str = "holm",
    confidence: float = 0.95,
    baselines: Sequence[str] = REFERENCE_MODELS,
    by: Sequence[str] | None = None,
) -> ComparisonResult:
    """Compare every pair of models on paired fold scores.

    Parameters
    ----------
    results : DataFrame
        Tidy results: columns ``model``, ``fold``, ``metric``, ``value``; optional ``seed``,
        context columns, and ``n_train``/``n_test`` (fold sizes, for the corrected test).
    metric : str or sequence of str
        Metric name(s) in ``results["metric"]``: ``"accuracy"``, ``["accuracy", "log_loss"]``.
    alpha : float
        Significance level of the verdicts (on Holm-adjusted p-values unless ``correction="none"``).
    test : {"nadeau-bengio", "ttest", "wilcoxon"}
        The test whose p-value decides; the table carries all three.
    test_train_ratio : float, optional
        ``n_test / n_train`` per fold (about ``1 / (k - 1)`` for k-fold). Needed by
        ``"nadeau-bengio"`` unless ``results`` has ``n_train`` and ``n_test`` columns.
    correction : {"holm", "none"}
        Multiple-comparison correction across the pairs of one context and metric.
    confidence : float
        Level of the confidence interval of the mean difference.
    baselines : sequence of str
        Model names shown next to the others instead of being paired.
    by : sequence of str, optional
        Columns within whose values models are compared; default: the context columns present.

    Returns
    -------
    ComparisonResult
    """
    metrics = _check_args(results, metric, alpha, test, correction, confidence)
    ratio = _ratio(results, test_train_ratio)
    if test == "nadeau-bengio" and ratio is None:
        raise ValueError(
            "test='nadeau-bengio' needs the folds' n_test / n_train: pass test_train_ratio "
            "(e.g. 0.25 for 5-fold CV), add 'n_train' and 'n_test' columns to 'results', or "
            "choose test='ttest'."
        )
    data = results.assign(metric=results["metric"].astype(str))
    if isinstance(ratio, pd.Series):
        data = data.assign(_ratio=ratio)
    by = [c for c in CONTEXT_COLUMNS if c in data.columns] if by is None else list(by)
    keys = ["fold", "seed"] if "seed" in data.columns else ["fold"]
    data = data[data["metric"].isin(metrics)]
    rows, score_rows = [], []
    for context, group in data.groupby([*by, "metric"], sort=False, dropna=False):
        context = dict(zip([*by, "metric"], context, strict=True))
        where = ", ".join(f"{k}={v}" for k, v in context.items())
        is_base = group["model"].isin(list(baselines))
        models = list(dict.fromkeys(group.loc[~is_base, "model"]))
        base_means = group.loc[is_base].groupby("model")["value"].mean()
        for model, part in group.loc[~is_base].groupby("model", sort=False):
            extra = {"chance": part["chance"].mean()} if "chance" in part.columns else {}
            score_rows.append(
                {**context, "model": model, "mean": part["value"].mean(),
                 "sd": part["value"].std(ddof=1), "n_folds": len(part), **extra,
                 **base_means.to_dict()}
            )
        if len(models) < 2:
            logger.info("%s: %d model(s), nothing to pair.", where, len(models))
            continue
        wide = _wide(group.loc[~is_base], keys, where)
        if isinstance(ratio, pd.Series):
            fold_ratio = float(group.groupby(keys)["_ratio"].mean().mean())
        else:
            fold_ratio = ratio
        pair_rows = [
            _pair(wide[a].to_numpy(float), wide[b].to_numpy(float), fold_ratio, confidence)
            | {**context, "model_a": a, "model_b": b}
            for a, b in itertools.combinations(models, 2)
        ]
        chosen = np.array([r[_P_COLUMN[test]] for r in pair_rows])
        adjusted = holm(chosen) if correction == "holm" else chosen
        for r, p, p_adj in zip(pair_rows, chosen, adjusted, strict=True):
            r.update(test=test, statistic=r[_STAT_COLUMN[test]], p_value=p, p_adjusted=p_adj,
                     significant=bool(p_adj < alpha))
            rows.append(r)
    if not rows:
        raise ValueError(
            "compare_models needs at least 2 non-baseline models with scores in one context; "
            f"got models {sorted(data['model'].unique())!r} (baselines: {list(baselines)!r})."
        )
    table = pd.DataFrame(rows)
    front = [*by, "metric", "model_a", "model_b", "n_folds"]
    table = table[front + [c for c in table.columns if c not in front]]
    sentences = _sentences(table, by, len(metrics) > 1)
    return ComparisonResult(table, pd.DataFrame(score_rows), sentences, alpha, test, correction)


_P_COLUMN = {"nadeau-bengio": "nb_p", "ttest": "t_p", "wilcoxon": "wilcoxon_p"}
_STAT_COLUMN = {"nadeau-bengio": "nb_t", "ttest": "t_stat", "wilcoxon": "wilcoxon_stat"}


def _pair(a: np.ndarray, b: np.ndarray, ratio: float | None, confidence: float) -> dict:
    """Every statistic of one pair of paired score vectors, shape (k,) each."""
    d = a - b
    notes = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        t_res = stats.ttest_rel(a, b)
    lost = False
    for w in caught:  # SciPy's precision-loss warning becomes a note; others pass through
        if issubclass(w.category, RuntimeWarning) and "Precision loss" in str(w.message):
            lost = True
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if np.all(d == d[0]):
        notes.append("all differences are equal: t undefined or infinite")
    elif lost:
        notes.append("differences nearly equal: t unreliable (precision lost)")
    nb_t, nb_p = (float("nan"), float("nan"))
    if ratio is not None and not np.isnan(ratio):
        nb_t, nb_p, _ = nadeau_bengio_ttest(d, ratio)
    elif ratio is not None:
        notes.append("no n_train/n_test for these folds: corrected test undefined")
    w_stat, w_p, w_note = _wilcoxon(d)
    if w_note:
        notes.append(w_note)
    mean, lo, hi = mean_difference_ci(d, confidence)
    return {
        "n_folds": len(d),
        "mean_a": float(a.mean()),
        "mean_b": float(b.mean()),
        "mean_diff": mean,
        "sd_diff": float(d.std(ddof=1)),
        "ci_low": lo,
        "ci_high": hi,
        "cohen_dz": cohens_dz(d),
        "df": len(d) - 1,
        "t_stat": float(t_res.statistic),
        "t_p": float(t_res.pvalue),
        "nb_t": nb_t,
        "nb_p": nb_p,
        "test_train_ratio": float("nan") if ratio is None else ratio,
        "wilcoxon_stat": w_stat,
        "wilcoxon_p": w_p,
        "note": "; ".join(notes),
    }


def _sentences(table: pd.DataFrame, by: list[str], several_metrics: bool) -> tuple[str, ...]:
    """The reference's verdicts; prefixed with the context when there is more than one."""
    prefix_cols = [c for c in by if table[c].nunique(dropna=False) > 1]
    if several_metrics:
        prefix_cols.append("metric")
    out = []
    for _, r in table.iterrows():
        a, b = str(r["model_a"]).upper(), str(r["model_b"]).upper()
        if np.isnan(r["p_adjusted"]):
            verdict = f"{a} and {b} performances cannot be compared ({r['note']})."
        elif r["significant"]:
            verdict = f"{a} and {b} performances are significantly different."
        else:
            verdict = f"{a} and {b} performances are not significantly different."
        prefix = ", ".join(f"{c}={r[c]}" for c in prefix_cols)
        out.append(f"[{prefix}] {verdict}" if prefix else verdict)
    return tuple(out)
