"""Cross-dataset protocols: train on some datasets, test on another one.

Registered in :data:`~fearkd.evaluation.splitters.PROTOCOLS` with ``group = "dataset"``, so
the leakage guard (:func:`~fearkd.evaluation.splitters.check_split`) refuses a split with a
dataset (or a subject, or a row) on both sides. Both read the ``dataset`` column of the
metadata table of a multi-dataset experiment (``[[datasets]]``):

- ``train-on-one``: for every ordered pair (A, B) of datasets, train on A and test on B; with
  two datasets, 2 folds (A -> B and B -> A).
- ``leave-one-dataset-out``: one fold per dataset, tested on it, trained on all the others.

Neither has a random part (``random_state`` is not used) nor a fold count (``n_splits`` is
ignored: the datasets make the folds).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd

from ..errors import ConfigError
from .splitters import MetadataSplitter, register_protocol

__all__ = ["TrainOnOneSplitter", "LeaveOneDatasetOutSplitter", "dataset_folds"]


def _datasets(metadata: pd.DataFrame, protocol: str) -> tuple[np.ndarray, list[str]]:
    ds = metadata["dataset"].astype(str).to_numpy()
    names = list(dict.fromkeys(ds))
    if len(names) < 2:
        raise ConfigError(f"[evaluation] protocol = {protocol!r} compares datasets: expected "
                          f"at least 2 datasets in the experiment, got {names!r}; add a "
                          f"[[datasets]] entry or use protocol = \"subject\".")
    return ds, names


def dataset_folds(metadata: pd.DataFrame, protocol: str) -> list[tuple[str, str]]:
    """``(trained on, tested on)`` of each fold of a cross-dataset protocol, in fold order."""
    _ds, names = _datasets(metadata, protocol)
    if protocol == "train-on-one":
        return [(a, b) for a in names for b in names if a != b]
    return [("+".join(n for n in names if n != b), b) for b in names]


class TrainOnOneSplitter(MetadataSplitter):
    """Train on one dataset, test on another, for every ordered pair."""

    protocol = "train-on-one"
    _columns = ("dataset", "subject", "trial", "t_start", "t_stop")

    def get_n_splits(self, metadata: pd.DataFrame | None = None, y=None, groups=None) -> int:
        if metadata is None:
            raise ValueError("get_n_splits needs 'metadata' (the datasets make the folds).")
        return len(dataset_folds(metadata, self.protocol))

    def _iter(self, metadata: pd.DataFrame) -> Iterator[tuple]:
        ds, names = _datasets(metadata, self.protocol)
        empty = np.empty(0, dtype=np.int64)
        for a in names:
            for b in names:
                if a != b:
                    yield np.flatnonzero(ds == a), empty, np.flatnonzero(ds == b)


class LeaveOneDatasetOutSplitter(TrainOnOneSplitter):
    """One fold per dataset: tested on it, trained on every other dataset."""

    protocol = "leave-one-dataset-out"

    def _iter(self, metadata: pd.DataFrame) -> Iterator[tuple]:
        ds, names = _datasets(metadata, self.protocol)
        empty = np.empty(0, dtype=np.int64)
        for b in names:
            yield np.flatnonzero(ds != b), empty, np.flatnonzero(ds == b)


register_protocol("train-on-one", lambda n_splits, random_state, target: TrainOnOneSplitter(),
                  group="dataset",
                  description="train on one dataset, test on another (every ordered pair)")
register_protocol("leave-one-dataset-out",
                  lambda n_splits, random_state, target: LeaveOneDatasetOutSplitter(),
                  group="dataset",
                  description="one fold per dataset: test on it, train on the others")
