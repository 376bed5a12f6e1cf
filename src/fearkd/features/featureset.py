"""The feature table every model and splitter reads: X, feature names and window metadata.

A :class:`FeatureSet` holds one row per window: ``X`` (float32), self-describing column names
(``"eeg:Fp1:alpha"``) and a metadata table with the window's dataset, subject, trial, index,
time span, its trial's ratings and labels. Unlabelled windows (``y_fear == -1``) stay in the
set: the source task and unsupervised steps use them.

On disk a FeatureSet is **one** ``.npz`` file that NumPy alone reads, without pickles
(``np.load(path, allow_pickle=False)``): arrays ``X``, ``feature_names``,
``metadata_columns``, ``info`` (a JSON string) and one array ``meta_<column>`` per metadata
column (strings as unicode arrays).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from .._atomic import atomic_open
from ..errors import FormatError

__all__ = ["FeatureSet", "REQUIRED_COLUMNS"]

#: Metadata columns every FeatureSet has, in order (ratings follow ``t_stop``).
REQUIRED_COLUMNS = ("dataset", "subject", "trial", "window", "t_start", "t_stop",
                    "y_fear", "y_source")
_INT_COLUMNS = ("trial", "window", "y_fear", "y_source")
_MAX_NAMED = 10


class FeatureSet:
    """Features of windows with their metadata.

    Parameters
    ----------
    X : array_like, shape (n_windows, n_features)
        Stored as float32; every value must be finite.
    feature_names : sequence of str, length n_features
        Unique names such as ``"eeg:Fp1:alpha"``, ``"gsr:GSR:mean"``.
    metadata : pandas.DataFrame, n_windows rows
        Columns :data:`REQUIRED_COLUMNS` plus one float column per rating.
    info : mapping, optional
        JSON-able provenance (recipe, windowing, fearkd version).
    """

    def __init__(self, X, feature_names: Sequence[str], metadata: pd.DataFrame,
                 info: Mapping | None = None) -> None:
        if not isinstance(X, np.ndarray):
            raise TypeError(f"FeatureSet 'X' must be a NumPy array, got {type(X).__name__}.")
        if not (np.issubdtype(X.dtype, np.floating) or np.issubdtype(X.dtype, np.integer)):
            raise TypeError(f"FeatureSet 'X' must be numeric, got dtype {X.dtype}.")
        if X.ndim != 2:
            raise ValueError(
                f"FeatureSet 'X' must have shape (n_windows, n_features), got shape {X.shape}."
            )
        if isinstance(feature_names, str):
            raise TypeError("FeatureSet 'feature_names' must be a sequence of str, got a str.")
        names = tuple(str(n) for n in feature_names)
        if len(names) != X.shape[1]:
            raise ValueError(
                f"FeatureSet 'X' has {X.shape[1]} column(s) but 'feature_names' has "
                f"{len(names)} name(s)."
            )
        if len(set(names)) != len(names):
            dup = sorted({n for n in names if names.count(n) > 1})
            raise ValueError(f"Duplicate feature names: {dup!r}.")
        if not isinstance(metadata, pd.DataFrame):
            raise TypeError(
                f"FeatureSet 'metadata' must be a pandas DataFrame, got {type(metadata).__name__}."
            )
        if len(metadata) != X.shape[0]:
            raise ValueError(
                f"FeatureSet 'X' has {X.shape[0]} row(s) but 'metadata' has {len(metadata)}."
            )
        missing = [c for c in REQUIRED_COLUMNS if c not in metadata.columns]
        if missing:
            raise ValueError(
                f"FeatureSet 'metadata' lacks column(s) {missing!r}; it has "
                f"{list(metadata.columns)!r}."
            )
        X = np.ascontiguousarray(X, dtype=np.float32)
        bad = ~np.isfinite(X)
        if bad.any():
            cols = np.flatnonzero(bad.any(axis=0))
            named = [names[i] for i in cols[:_MAX_NAMED]]
            more = f" and {cols.size - _MAX_NAMED} more" if cols.size > _MAX_NAMED else ""
            raise ValueError(
                f"FeatureSet 'X' holds {int(bad.sum())} non-finite value(s) (NaN or inf) in "
                f"column(s) {named!r}{more}. Check those channels for flat or missing signal."
            )
        meta = metadata.reset_index(drop=True).copy()
        for c in _INT_COLUMNS:
            meta[c] = meta[c].astype(np.int64)
        self.X = X
        self.feature_names = names
        self.metadata = meta
        self.info = dict(info or {})

    # ------------------------------------------------------------------ basic properties
    def __len__(self) -> int:
        return self.X.shape[0]

    @property
    def n_features(self) -> int:
        return self.X.shape[1]

    @property
    def rating_columns(self) -> tuple[str, ...]:
        """Metadata columns that are not required ones (the trials' ratings)."""
        return tuple(c for c in self.metadata.columns if c not in REQUIRED_COLUMNS)

    def __repr__(self) -> str:
        n_lab = int((self.metadata["y_fear"] >= 0).sum())
        subjects = self.metadata["subject"].nunique()
        return (f"FeatureSet(n_windows={len(self)}, n_features={self.n_features}, "
                f"n_subjects={subjects}, n_fear_labelled={n_lab})")

    # ------------------------------------------------------------------ selection
    def select_columns(self, names: Iterable[str]) -> FeatureSet:
        """The features named, in the order given (a student's inputs from a teacher's set)."""
        if isinstance(names, str):
            raise TypeError("select_columns expects a sequence of feature names, got a str.")
        names = [str(n) for n in names]
        index = {n: i for i, n in enumerate(self.feature_names)}
        unknown = [n for n in names if n not in index]
        if unknown:
            raise ValueError(
                f"Unknown feature name(s) {unknown[:_MAX_NAMED]!r}; this FeatureSet has "
                f"{self.n_features} features, e.g. {list(self.feature_names[:5])!r}."
            )
        cols = [index[n] for n in names]
        return FeatureSet(self.X[:, cols], names, self.metadata, self.info)

    def select_rows(self, index_or_mask) -> FeatureSet:
        """Rows by boolean mask (length n_windows) or by integer positions."""
        idx = np.asarray(index_or_mask)
        if idx.dtype == bool:
            if idx.shape != (len(self),):
                raise ValueError(
                    f"A row mask must have shape ({len(self)},), got {idx.shape}."
                )
            idx = np.flatnonzero(idx)
        elif idx.size == 0:
            idx = idx.astype(np.int64)
        elif not np.issubdtype(idx.dtype, np.integer):
            raise TypeError(
                f"select_rows expects a boolean mask or integer positions, got dtype {idx.dtype}."
            )
        if idx.size and (idx.min() < -len(self) or idx.max() >= len(self)):
            raise IndexError(
                f"Row positions must lie in [0, {len(self)}), got {int(idx.min())}.."
                f"{int(idx.max())}."
            )
        return FeatureSet(self.X[idx], self.feature_names,
                          self.metadata.iloc[idx], self.info)

    def labelled(self, target: str = "fear") -> FeatureSet:
        """Rows with a label for ``target`` (``"fear"`` or ``"source"``)."""
        if target not in ("fear", "source"):
            raise ValueError(f"'target' must be 'fear' or 'source', got {target!r}.")
        return self.select_rows(self.metadata[f"y_{target}"].to_numpy() >= 0)

    @classmethod
    def concat(cls, sets: Sequence[FeatureSet]) -> FeatureSet:
        """Stack sets with the same feature names (the first set's info is kept)."""
        sets = list(sets)
        if not sets:
            raise ValueError("FeatureSet.concat needs at least one FeatureSet.")
        names = sets[0].feature_names
        for i, s in enumerate(sets[1:], start=1):
            if s.feature_names != names:
                raise ValueError(
                    f"FeatureSet.concat: set {i} has different feature names from set 0 "
                    f"({s.n_features} vs {len(names)} features)."
                )
        meta = pd.concat([s.metadata for s in sets], ignore_index=True)
        return cls(np.concatenate([s.X for s in sets], axis=0), names, meta, sets[0].info)

    # ------------------------------------------------------------------ files
    def save(self, path: str | os.PathLike) -> Path:
        """Write one ``.npz`` (no pickles), atomically (temp file + rename)."""
        path = Path(path)
        arrays = {
            "X": self.X,
            "feature_names": np.asarray(self.feature_names, dtype=str),
            "metadata_columns": np.asarray(list(self.metadata.columns), dtype=str),
            "info": np.asarray(json.dumps(self.info, sort_keys=True, default=str)),
        }
        for col in self.metadata.columns:
            series = self.metadata[col]
            if pd.api.types.is_bool_dtype(series) or pd.api.types.is_numeric_dtype(series):
                arrays[f"meta_{col}"] = series.to_numpy()
            else:
                arrays[f"meta_{col}"] = np.asarray(series.astype(str).to_numpy(), dtype=str)
        with atomic_open(path) as fh:
            np.savez(fh, **arrays)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> FeatureSet:
        """Read a file written by :meth:`save`."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"No FeatureSet file at {str(path)!r}.")
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {k: data[k] for k in data.files}
        except ValueError as exc:
            raise FormatError(f"{path}: not a FeatureSet .npz without pickles ({exc}).") from exc
        need = ("X", "feature_names", "metadata_columns")
        missing = [k for k in need if k not in arrays]
        if missing:
            raise FormatError(
                f"{path}: lacks array(s) {missing!r}; a FeatureSet file has X, feature_names, "
                f"metadata_columns and meta_<column> arrays."
            )
        columns = [str(c) for c in arrays["metadata_columns"]]
        absent = [c for c in columns if f"meta_{c}" not in arrays]
        if absent:
            raise FormatError(f"{path}: lacks metadata array(s) for column(s) {absent!r}.")
        meta = pd.DataFrame({c: arrays[f"meta_{c}"] for c in columns})
        info = json.loads(str(arrays["info"])) if "info" in arrays else {}
        return cls(arrays["X"], [str(n) for n in arrays["feature_names"]], meta, info)
