"""The schema of the tidy results table: one row per (dataset, method, stage, model, target,
protocol, fold, seed, split, metric).

A cross-validation run writes these rows (``results.csv`` of a run directory, see
``docs/RUNDIR.md``); statistics and reports read them. This module is the one place that names
the columns, so that writers and readers cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

__all__ = ["RESULT_COLUMNS", "TEXT_COLUMNS", "NUMBER_COLUMNS", "check_results",
           "results_to_frame"]

#: Columns of every results table, in their written order.
RESULT_COLUMNS = (
    "dataset", "protocol", "method", "stage", "model", "target", "task", "fold", "seed",
    "split", "metric", "value", "n_params", "n_train", "n_test", "chance",
)
#: Columns read as text, whatever pandas guessed when reading the CSV.
TEXT_COLUMNS = ("dataset", "protocol", "method", "stage", "model", "target", "task", "split",
                "metric")
#: Columns read as numbers (unparseable entries become NaN).
NUMBER_COLUMNS = ("value", "n_params", "n_train", "n_test", "chance")


def check_results(results: object, where: str = "results") -> pd.DataFrame:
    """Validate a tidy results table and return a copy with normalised dtypes.

    Parameters
    ----------
    results : DataFrame
        Holds every column of :data:`RESULT_COLUMNS` (others are kept).
    where : str
        What to call ``results`` in messages (a file name).

    Returns
    -------
    DataFrame
        :data:`TEXT_COLUMNS` as str, :data:`NUMBER_COLUMNS` numeric.

    Raises
    ------
    TypeError
        ``results`` is not a DataFrame.
    ValueError
        A column of :data:`RESULT_COLUMNS` is missing.
    """
    if not isinstance(results, pd.DataFrame):
        raise TypeError(
            f"'{where}' must be a pandas DataFrame (the tidy results table), "
            f"got {type(results).__name__}."
        )
    missing = [c for c in RESULT_COLUMNS if c not in results.columns]
    if missing:
        raise ValueError(
            f"'{where}' lacks column(s) {missing!r}; a tidy results table has columns "
            f"{list(RESULT_COLUMNS)!r} (see docs/RUNDIR.md)."
        )
    df = results.copy()
    for col in TEXT_COLUMNS:
        df[col] = df[col].astype(str)
    for col in NUMBER_COLUMNS:
        df[col] = pd.to_numeric(df[col], errors="coerce")
    return df


def results_to_frame(rows: Iterable[dict]) -> pd.DataFrame:
    """Tidy results from row dicts, columns in :data:`RESULT_COLUMNS` order (missing ones NaN).

    Parameters
    ----------
    rows : iterable of dict
        One dict per result row; keys beyond the schema become trailing columns.

    Returns
    -------
    DataFrame
    """
    df = pd.DataFrame(list(rows))
    for col in RESULT_COLUMNS:
        if col not in df.columns:
            df[col] = np.nan
    return df[list(RESULT_COLUMNS) + [c for c in df.columns if c not in RESULT_COLUMNS]]
