"""Class-count report of fear labels: trials per subject and class, and its warnings.

A fear class whose trials come from one or two subjects cannot be learned subject-independently:
a model can recognise the subject instead of the fear. :func:`label_report` counts trials per
subject and class, keeps the unlabelled and ambiguous counts, and warns (logged and kept in
:attr:`LabelReport.warnings`) about such classes. Re-exported by :mod:`fearkd.labels`, which
applies the rule tables (this module imports nothing of fearkd, so that it can sit below it).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["FEAR_CLASSES", "LabelReport", "label_report"]

logger = logging.getLogger(__name__)

#: Class names of the fear task, in class-code order (re-exported by :mod:`fearkd.labels`).
FEAR_CLASSES = ("none", "low", "medium", "high")


@dataclass(frozen=True, eq=False)
class LabelReport:
    """Trials per subject and fear class, with the warnings :func:`label_report` raised.

    ``counts`` is a DataFrame, shape (n_subjects, n_classes): index subject ids, columns class
    names, labelled trials only.
    """

    counts: pd.DataFrame
    n_unlabelled: int
    n_ambiguous: int
    warnings: tuple[str, ...]

    @property
    def totals(self) -> pd.Series:
        """Trials per class over all subjects."""
        return self.counts.sum(axis=0)

    def to_dict(self) -> dict:
        """JSON-ready: per-subject counts, totals, unlabelled/ambiguous counts, warnings."""
        return {
            "classes": list(self.counts.columns),
            "counts": {
                str(s): {str(c): int(n) for c, n in row.items()}
                for s, row in self.counts.iterrows()
            },
            "totals": {str(c): int(n) for c, n in self.totals.items()},
            "n_labelled": int(self.totals.sum()),
            "n_unlabelled": self.n_unlabelled,
            "n_ambiguous": self.n_ambiguous,
            "warnings": list(self.warnings),
        }

    def to_text(self) -> str:
        """A plain-text table for the command line."""
        table = self.counts.copy()
        table.loc["total"] = self.totals
        table.index.name = "subject"
        lines = [
            table.to_string(),
            f"labelled: {int(self.totals.sum())}  unlabelled: {self.n_unlabelled}  "
            f"ambiguous: {self.n_ambiguous}",
        ]
        lines += [f"WARNING: {w}" for w in self.warnings]
        return "\n".join(lines)


def label_report(
    trials: pd.DataFrame,
    class_names: Sequence[str] = FEAR_CLASSES,
    min_subjects: int = 3,
    *,
    ambiguous: np.ndarray | None = None,
) -> LabelReport:
    """Count trials per subject and class; warn about classes held by few subjects.

    Parameters
    ----------
    trials : DataFrame
        Columns ``subject`` and ``y_fear`` (``-1`` = unlabelled), one row per trial. Window-level
        metadata (with a ``trial`` column) is reduced to its first row per (subject, trial).
    class_names : sequence of str
        Name of class ``i`` at position ``i``.
    min_subjects : int
        A class whose trials come from fewer subjects gets a warning (logged and kept).
    ambiguous : array-like of bool, shape (n_rows,), optional
        Which rows were ambiguous (:attr:`FearAssignment.ambiguous`), for the count.
    """
    if not isinstance(trials, pd.DataFrame):
        raise TypeError(f"'trials' must be a pandas DataFrame, got {type(trials).__name__}.")
    missing = [c for c in ("subject", "y_fear") if c not in trials.columns]
    if missing:
        raise ValueError(
            f"'trials' lacks column(s) {missing!r}; expected 'subject' and 'y_fear', got "
            f"{list(trials.columns)!r}."
        )
    if not isinstance(min_subjects, int) or min_subjects < 1:
        raise ValueError(f"'min_subjects' must be an integer >= 1, got {min_subjects!r}.")
    amb = np.zeros(len(trials), bool) if ambiguous is None else np.asarray(ambiguous, bool)
    if amb.shape != (len(trials),):
        raise ValueError(
            f"'ambiguous' must have shape ({len(trials)},) like 'trials', got {amb.shape}."
        )
    if "trial" in trials.columns:
        first = ~trials.duplicated(["subject", "trial"]).to_numpy()
        trials, amb = trials.loc[first], amb[first]
    y = trials["y_fear"].to_numpy()
    names = tuple(str(c) for c in class_names)
    bad = (y < -1) | (y >= len(names))
    if bad.any():
        raise ValueError(
            f"'y_fear' holds {np.unique(y[bad]).tolist()!r}; expected -1 or a class code "
            f"0..{len(names) - 1} for class_names {names!r}."
        )
    labelled = trials.loc[y >= 0]
    counts = pd.crosstab(labelled["subject"].astype(str), labelled["y_fear"].to_numpy())
    counts = counts.reindex(columns=range(len(names)), fill_value=0)
    counts = counts.reindex(sorted(trials["subject"].astype(str).unique()), fill_value=0)
    counts.columns = list(names)
    counts.index.name = "subject"
    warnings = []
    for name in names:
        holders = counts.index[counts[name] > 0].tolist()
        if not holders:
            message = f"class {name!r} has no trial: no model can learn it"
        elif len(holders) < min_subjects:
            message = (
                f"class {name!r} comes from {len(holders)} subject(s) ({', '.join(holders)}): "
                "a model can learn the subject instead of the fear"
            )
        else:
            continue
        logger.warning(message)
        warnings.append(message)
    return LabelReport(counts, int((y < 0).sum()), int(amb.sum()), tuple(warnings))

