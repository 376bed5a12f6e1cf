"""Benchmark: feature presets side by side on the real PhysioNet Non-EEG recordings.

Reads the 20 subjects described by ``configs/physionet-noneeg.toml`` (wrist EDA, temperature and
accelerometer at 8 Hz, SpO2 and heart rate at 1 Hz; four stages: relax, physical, cognitive and
emotional stress), cuts 30 s windows every 15 s (the config's windowing), extracts each preset
and scores one protocol on each:

- features z-scored per subject (``[features] normalize = "subject"``: each subject's own
  windows, no labels), then
- a logistic regression (scikit-learn, ``class_weight="balanced"``, ``max_iter=2000``) with its
  own ``StandardScaler`` fitted on the training windows,
- 20-fold ``GroupKFold`` by subject (leave-one-subject-out), 4 classes.

Prints one line per preset: features, balanced accuracy pooled over all test windows, and the
mean and standard deviation over the 20 folds; ends with one JSON line. The default presets are
``peripheral`` (mean/variance + descriptors), ``physio`` (NeuroKit2 features by modality),
``peripheral-eda`` and ``eda`` (the EDA-only students of each family).

Measured on 2026-12-07 (2,849 windows; deterministic, so machine-independent)::

    preset           features  bal.acc (pooled)   fold mean +- sd
    peripheral             21             0.783      0.786 +- 0.118
    physio                 13             0.764      0.767 +- 0.142
    peripheral-eda          4             0.489      0.493 +- 0.100
    eda                     5             0.578      0.578 +- 0.147

(``physio`` was 0.673 before it had the heart-rate and SpO2 features.)

Usage::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_physionet_features.py
    .venv/bin/python benchmarks/bench_physionet_features.py --presets physio eda --data DIR
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score
from sklearn.model_selection import GroupKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from fearkd.config import load_config
from fearkd.datasets.generic import load_generic
from fearkd.features.extract import extract_features
from fearkd.features.normalize import subject_standardize

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "configs" / "physionet-noneeg.toml"
PRESETS = ("peripheral", "physio", "peripheral-eda", "eda")


def score(preset: str, options: dict, window: float, step: float, folds: int) -> dict:
    t0 = time.perf_counter()
    fs = extract_features(load_generic({"dataset": options}), preset, window=window, step=step,
                          progress=False)
    seconds = time.perf_counter() - t0
    meta = fs.metadata
    keep = meta["y_fear"].to_numpy() >= 0
    subjects = meta["subject"].astype(str).to_numpy()[keep]
    X = subject_standardize(fs.X[keep], subjects, feature_names=fs.feature_names)
    y = meta["y_fear"].to_numpy()[keep]
    pred = np.empty_like(y)
    per_fold = []
    for train, test in GroupKFold(n_splits=folds).split(X, y, subjects):
        model = make_pipeline(StandardScaler(), LogisticRegression(
            class_weight="balanced", max_iter=2000))
        model.fit(X[train], y[train])
        pred[test] = model.predict(X[test])
        per_fold.append(balanced_accuracy_score(y[test], pred[test]))
    return {"preset": preset, "n_features": fs.n_features, "n_windows": int(len(y)),
            "balanced_accuracy": float(balanced_accuracy_score(y, pred)),
            "fold_mean": float(np.mean(per_fold)), "fold_std": float(np.std(per_fold)),
            "extract_seconds": round(seconds, 1), "features": list(fs.feature_names)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=list(PRESETS))
    parser.add_argument("--data", help="the PhysioNet noneeg folder (default: the config's)")
    parser.add_argument("--folds", type=int, default=20)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    cfg = load_config(CONFIG)
    options = dict(cfg.dataset.options)
    if args.data:
        options["root"] = str(Path(args.data).resolve())
    results = []
    print(f"{'preset':<16} {'features':>8} {'bal.acc (pooled)':>17} {'fold mean +- sd':>17}")
    for preset in args.presets:
        r = score(preset, options, cfg.features.window, cfg.features.step, args.folds)
        results.append(r)
        print(f"{preset:<16} {r['n_features']:>8} {r['balanced_accuracy']:>17.3f} "
              f"{r['fold_mean']:>10.3f} +- {r['fold_std']:.3f}")
    print(json.dumps({"protocol": f"subject-wise GroupKFold({args.folds}), per-subject z-score, "
                                  f"logistic regression", "results": results}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
