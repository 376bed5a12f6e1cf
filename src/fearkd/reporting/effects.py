"""Planted effects: what the synthetic data were written to show, and whether a run shows it.

The synthetic writers plant effects with named knobs (``write_deap(privileged=, shared=,
fear_share=, subject_shift=)``); each effect has an expected sign. :func:`planted_effects`
reads a run's tidy results and measures every effect whose stages ran, with the project's
paired statistics (pairs on ``(fold, seed)`` within a protocol; on ``seed`` across protocols,
whose folds differ):

- **leak of the reference's split**: backbone test accuracy under ``seed-legacy`` minus under
  ``subject`` (expected > 0);
- **KD**: ``method1/student/<t>`` minus ``mispaired/student/<t>`` (the same student taught by
  the teacher's outputs shuffled across rows), from
  :func:`fearkd.evaluation.contrasts.central_contrasts` with its sign turned (expected > 0);
- **TL**: ``method1/teacher/-`` minus ``scratch/teacher/-`` (expected > 0 when the source and
  fear latents are shared);
- **TL, permuted source labels** (negative control): ``method1-permuted/teacher/-`` minus
  ``scratch/teacher/-`` (expected ≈ 0: its interval contains 0), and ``method1/teacher/-``
  minus ``method1-permuted/teacher/-``, what the source labels themselves give (expected > 0).
  On synthetic data a trunk pretrained on permuted labels and fine-tuned whole can still beat a
  fresh one (it has seen the windows); with ``[methods] freeze = "trunk"`` it cannot
  (``tests/test_known_answers.py``).

An effect is *met* when its 95 % interval lies above 0 (expected > 0) or contains 0
(expected ≈ 0).

:func:`teacher_check` is the demo's check of the teacher against the classical baselines on
the same features and normalisation: Method 1's teacher within :data:`TEACHER_MARGIN` of the
best of ``logreg`` and ``rf`` and at least :data:`MAJORITY_MARGIN` above ``majority``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..evaluation.stats import mean_difference_ci
from .blocks import Section, TableBlock, TextBlock
from .rundata import RunData

__all__ = ["CHECK_COLUMNS", "EFFECT_COLUMNS", "MAJORITY_MARGIN", "TEACHER_MARGIN",
           "paired_effect", "planted_effects", "protocol_effect", "teacher_check",
           "teacher_check_sentence", "effects_section", "teacher_check_section"]

#: Columns of :func:`planted_effects`.
EFFECT_COLUMNS = ("dataset", "effect", "a", "b", "expected", "n_pairs", "mean_diff", "ci_low",
                  "ci_high", "met")
#: Columns of :func:`teacher_check`.
CHECK_COLUMNS = ("dataset", "model", "n_pairs", "teacher", "logreg", "rf", "majority", "best",
                 "gap", "ci_low", "ci_high", "above_majority", "met")
#: The teacher may trail the best classical baseline by at most this much (a fraction).
TEACHER_MARGIN = 0.05
#: ... and must beat the majority baseline by at least this much.
MAJORITY_MARGIN = 0.30
#: The classical baselines the teacher is held against.
CLASSICAL = ("logreg", "rf")


def _test_rows(results: pd.DataFrame, metric: str, **where) -> pd.DataFrame:
    sel = results[(results["split"] == "test") & (results["metric"] == metric)]
    for col, value in where.items():
        if value is not None:
            sel = sel[sel[col] == value]
    return sel


def _summary(d: np.ndarray, confidence: float) -> dict:
    if len(d) < 2:
        return {"n_pairs": int(len(d)), "mean_diff": float(np.mean(d)) if len(d) else np.nan,
                "ci_low": np.nan, "ci_high": np.nan}
    mean, lo, hi = mean_difference_ci(d, confidence)
    return {"n_pairs": int(len(d)), "mean_diff": mean, "ci_low": lo, "ci_high": hi}


def paired_effect(a: pd.DataFrame, b: pd.DataFrame, spec: tuple[str, str, str],
                  b_spec: tuple[str, str, str] | None = None, *, metric: str = "accuracy",
                  confidence: float = 0.95, **where) -> dict:
    """Mean test difference ``a - b`` of one stage, paired on ``(fold, seed)``.

    Parameters
    ----------
    a, b : DataFrame
        Tidy results (one run's, or two runs' with the same splits, e.g. two normalisations of
        the same data).
    spec : (method, stage, target)
        The stage of ``a``; ``b_spec`` that of ``b`` (default: the same).
    metric : str
    confidence : float
    **where
        Further column filters (``dataset=``, ``protocol=``, ``model=``).

    Returns
    -------
    dict
        ``n_pairs``, ``mean_diff``, ``ci_low``, ``ci_high`` (NaN below 2 pairs).
    """
    sides = []
    for frame, (method, stage, target) in ((a, spec), (b, b_spec or spec)):
        sel = _test_rows(frame, metric, method=method, stage=stage, target=target, **where)
        sides.append(sel.groupby(["fold", "seed"])["value"].mean())
    pairs = pd.concat(sides, axis=1, join="inner").dropna()
    return _summary((pairs.iloc[:, 0] - pairs.iloc[:, 1]).to_numpy(float), confidence)


def protocol_effect(a: pd.DataFrame, b: pd.DataFrame, *, method: str = "backbone",
                    metric: str = "accuracy", confidence: float = 0.95, **where) -> dict:
    """Mean test difference ``a - b`` of a method's stages, paired on ``seed``.

    Two protocols split differently, so their folds are not paired; each seed's fold mean is.

    Parameters
    ----------
    a, b : DataFrame
        Tidy results of two protocols (both may be in one frame: pass ``protocol=`` through
        :func:`planted_effects`, or filter before).
    method : str
    metric : str
    confidence : float
    **where
        Further column filters.

    Returns
    -------
    dict
        ``n_pairs`` (seeds), ``mean_diff``, ``ci_low``, ``ci_high``.
    """
    means = [_test_rows(f, metric, method=method, **where).groupby("seed")["value"].mean()
             for f in (a, b)]
    pairs = pd.concat(means, axis=1, join="inner").dropna()
    return _summary((pairs.iloc[:, 0] - pairs.iloc[:, 1]).to_numpy(float), confidence)


def _met(expected: str, row: dict) -> bool:
    if not np.isfinite(row["ci_low"]):
        return False
    if expected == "> 0":
        return bool(row["ci_low"] > 0)
    return bool(row["ci_low"] <= 0 <= row["ci_high"])


def planted_effects(results: pd.DataFrame, metric: str = "accuracy",
                    confidence: float = 0.95) -> pd.DataFrame:
    """Every planted effect a run's results can measure, one row each.

    Parameters
    ----------
    results : DataFrame
        Tidy results of a run (``results.csv``).
    metric : str
    confidence : float

    Returns
    -------
    DataFrame
        Columns :data:`EFFECT_COLUMNS`; differences are fractions (``a - b``); empty when none
        of the effects' stages ran.
    """
    from ..evaluation.contrasts import central_contrasts

    rows = []
    for dataset, res in results.groupby("dataset", sort=False):
        protocols = set(res["protocol"])
        if {"seed-legacy", "subject"} <= protocols:
            for model in pd.unique(_test_rows(res, metric, method="backbone")["model"]):
                eff = protocol_effect(res[res["protocol"] == "seed-legacy"],
                                      res[res["protocol"] == "subject"], metric=metric,
                                      confidence=confidence, model=model)
                if eff["n_pairs"]:
                    rows.append({"dataset": dataset, "effect": f"leak of the reference's split "
                                 f"({model} backbone, source task; pairs = seeds)",
                                 "a": "seed-legacy", "b": "subject", "expected": "> 0", **eff})
        sub = res[res["protocol"] == "subject"]
        if set(sub["method"]) & {"method1", "method2"}:
            table = central_contrasts(sub, metric, confidence=confidence).table
            for r in table.itertuples() if not table.empty else ():
                if r.contrast.startswith("mis-paired KD"):
                    target = r.contrast[r.contrast.index("(") + 1:-1]
                    rows.append({"dataset": dataset, "effect": f"KD ({target}) vs mis-paired "
                                 f"KD ({r.model} student)", "a": f"method1/student/{target}",
                                 "b": f"mispaired/student/{target}", "expected": "> 0",
                                 "n_pairs": r.n_pairs, "mean_diff": -r.mean_diff,
                                 "ci_low": -r.ci_high, "ci_high": -r.ci_low})
        for a, name, expected in (("method1", "TL teacher vs teacher from scratch", "> 0"),
                                  ("method1-permuted", "TL with permuted source labels vs "
                                   "teacher from scratch (negative control)", "≈ 0")):
            for model in pd.unique(_test_rows(sub, metric, method=a, stage="teacher")["model"]):
                eff = paired_effect(sub, sub, (a, "teacher", "-"), ("scratch", "teacher", "-"),
                                    metric=metric, confidence=confidence, model=model)
                if eff["n_pairs"]:
                    rows.append({"dataset": dataset, "effect": f"{name} ({model})",
                                 "a": f"{a}/teacher/-", "b": "scratch/teacher/-",
                                 "expected": expected, **eff})
        for model in pd.unique(_test_rows(sub, metric, method="method1-permuted",
                                          stage="teacher")["model"]):
            eff = paired_effect(sub, sub, ("method1", "teacher", "-"),
                                ("method1-permuted", "teacher", "-"), metric=metric,
                                confidence=confidence, model=model)
            if eff["n_pairs"]:
                rows.append({"dataset": dataset, "effect": f"TL vs TL with permuted source "
                             f"labels ({model})", "a": "method1/teacher/-",
                             "b": "method1-permuted/teacher/-", "expected": "> 0", **eff})
    for row in rows:
        row["met"] = _met(row["expected"], row)
    return pd.DataFrame(rows, columns=list(EFFECT_COLUMNS))


def teacher_check(results: pd.DataFrame, *, metric: str = "accuracy", protocol: str = "subject",
                  confidence: float = 0.95) -> pd.DataFrame:
    """Method 1's teacher against the classical baselines of the same run, one row per teacher.

    All sides are the fear task's test scores under ``protocol``, on the same folds, seeds,
    features and normalisation (the baselines are fitted on the teacher's columns of the same
    training rows). The best classical baseline is the one of :data:`CLASSICAL` with the higher
    mean; ``gap`` is its mean minus the teacher's, with the 95 % interval of that difference
    paired on ``(fold, seed)``.

    Parameters
    ----------
    results : DataFrame
        Tidy results of a run (``results.csv``).
    metric : str
    protocol : str
    confidence : float

    Returns
    -------
    DataFrame
        Columns :data:`CHECK_COLUMNS` (fractions); ``met`` is ``gap <= TEACHER_MARGIN`` and
        ``above_majority >= MAJORITY_MARGIN``. Empty when the run has no Method 1 teacher, no
        ``majority`` or none of :data:`CLASSICAL` under ``protocol``.
    """
    rows = []
    sub = results[results["protocol"] == protocol]
    for dataset, res in sub.groupby("dataset", sort=False):
        base = _test_rows(res, metric, method="baseline", task="fear")
        means = base.groupby("model")["value"].mean()
        classical = [m for m in CLASSICAL if m in means.index]
        if not classical or "majority" not in means.index:
            continue
        best = max(classical, key=lambda m: means[m])
        teachers = _test_rows(res, metric, method="method1", stage="teacher", task="fear")
        for model in pd.unique(teachers["model"]):
            spec = ("baseline", "baseline", "-")
            b = res[res["model"] == best]
            t = res[res["model"] == model]
            gap = paired_effect(b, t, spec, ("method1", "teacher", "-"), metric=metric,
                                confidence=confidence, task="fear")
            teacher = float(teachers.loc[teachers["model"] == model, "value"].mean())
            row = {"dataset": dataset, "model": model, "n_pairs": gap["n_pairs"],
                   "teacher": teacher, "logreg": float(means.get("logreg", np.nan)),
                   "rf": float(means.get("rf", np.nan)), "majority": float(means["majority"]),
                   "best": best, "gap": float(means[best]) - teacher, "ci_low": gap["ci_low"],
                   "ci_high": gap["ci_high"],
                   "above_majority": teacher - float(means["majority"])}
            row["met"] = bool(row["gap"] <= TEACHER_MARGIN
                              and row["above_majority"] >= MAJORITY_MARGIN)
            rows.append(row)
    return pd.DataFrame(rows, columns=list(CHECK_COLUMNS))


def teacher_check_sentence(row) -> str:
    """One line of :func:`teacher_check`: the teacher, the best baseline, the gap, met or not."""
    return (f"{row['model']} Method 1 teacher {100 * row['teacher']:.1f} % vs best classical "
            f"baseline {row['best']} {100 * row[row['best']]:.1f} % (logreg "
            f"{100 * row['logreg']:.1f} %, rf {100 * row['rf']:.1f} %, majority "
            f"{100 * row['majority']:.1f} %): gap {100 * row['gap']:.1f} pp "
            f"(at most {100 * TEACHER_MARGIN:.0f}), {100 * row['above_majority']:.1f} pp above "
            f"majority (at least {100 * MAJORITY_MARGIN:.0f}): "
            f"{'met' if row['met'] else 'not met'}")


def effects_section(run: RunData) -> Section | None:
    """Planted effects (:mod:`fearkd.reporting.effects`): expected sign, measured, met."""
    table = planted_effects(run.results)
    if table.empty:
        return None
    sec = Section("planted-effects", "Planted effects")
    sec.intro = ("Effects the synthetic data were written to show, each with its expected "
                 "sign, the measured test-accuracy difference a − b with its 95 % interval "
                 "(paired on (fold, seed); across protocols on seed) and whether it was met "
                 "(interval above 0, or containing 0 for a negative control).")
    shown = table.copy()
    for col in ("mean_diff", "ci_low", "ci_high"):
        shown[col] = 100 * shown[col]
    shown["met"] = shown["met"].map({True: "met", False: "not met"})
    shown.index = pd.Index([f"{r.dataset.upper()} · {r.effect}" for r in shown.itertuples()],
                           name="effect")
    shown = shown.drop(columns=["dataset", "effect"]).rename(columns={
        "n_pairs": "pairs", "mean_diff": "a − b (pp)", "ci_low": "95 % CI low (pp)",
        "ci_high": "95 % CI high (pp)"})
    sec.blocks.append(TableBlock("planted-effects", "Planted effects (test accuracy)", shown))
    return sec


def teacher_check_section(run: RunData) -> Section | None:
    """The teacher against the classical baselines (:func:`fearkd.reporting.effects.
    teacher_check`), when the run has Method 1's teacher and the baselines."""
    table = teacher_check(run.results)
    if table.empty:
        return None
    sec = Section("teacher-check", "Teacher vs classical baselines")
    sec.intro = (f"Method 1's teacher against logistic regression, the random forest and the "
                 f"majority baseline on the same features, normalisation, folds and seeds "
                 f"(subject protocol, fear, test accuracy): the check is met when the teacher "
                 f"is within {100 * TEACHER_MARGIN:.0f} pp of the better of logistic "
                 f"regression and the random forest and at least {100 * MAJORITY_MARGIN:.0f} pp "
                 f"above the majority baseline. The gap's 95 % interval is paired on "
                 f"(fold, seed).")
    shown = table.copy()
    for col in ("teacher", "logreg", "rf", "majority", "gap", "ci_low", "ci_high",
                "above_majority"):
        shown[col] = 100 * shown[col]
    shown["met"] = shown["met"].map({True: "met", False: "not met"})
    shown.index = pd.Index([f"{r.dataset.upper()} · {r.model}" for r in shown.itertuples()],
                           name="teacher")
    shown = shown.drop(columns=["dataset", "model"]).rename(columns={
        "n_pairs": "pairs", "teacher": "teacher (%)", "logreg": "logreg (%)", "rf": "rf (%)",
        "majority": "majority (%)", "best": "best baseline", "gap": "best − teacher (pp)",
        "ci_low": "95 % CI low (pp)", "ci_high": "95 % CI high (pp)",
        "above_majority": "teacher − majority (pp)"})
    sec.blocks.append(TableBlock("teacher-check", "Teacher vs classical baselines", shown))
    for _, row in table.iterrows():
        sec.blocks.append(TextBlock(f"{row['dataset'].upper()}: "
                                    f"{teacher_check_sentence(row)}."))
    return sec
