"""Evaluation: splitters over window metadata, per-fold metrics, statistics on fold scores.

The splitters (:mod:`.splitters`) implement the protocols of the ``PROTOCOLS`` registry (built in
``subject``, ``trial``, ``window``, ``seed-legacy``, and the cross-dataset ``train-on-one``
and ``leave-one-dataset-out`` of :mod:`.crossdataset`; more with ``register_protocol``) with a
leakage guard; :mod:`.results` holds the schema of the tidy results table; :mod:`.metrics`
scores one fold with a fixed label set; :mod:`.stats` compares models on paired fold scores
(paired and corrected t-tests, Wilcoxon, Holm). The cross-validation runner (:mod:`.crossval`)
is imported from its own module.
"""

# imported for its registrations: the cross-dataset protocols (train-on-one,
# leave-one-dataset-out) join PROTOCOLS whenever any evaluation module is imported
from . import crossdataset  # noqa: F401
from .metrics import chance_level, fold_metrics, majority_baseline, majority_class
from .splitters import PROTOCOLS, LeakageReport, check_split, make_splitter, register_protocol
from .stats import ComparisonResult, compare_models, holm, nadeau_bengio_ttest

__all__ = [
    "PROTOCOLS",
    "register_protocol",
    "LeakageReport",
    "check_split",
    "make_splitter",
    "fold_metrics",
    "chance_level",
    "majority_class",
    "majority_baseline",
    "ComparisonResult",
    "compare_models",
    "holm",
    "nadeau_bengio_ttest",
]
