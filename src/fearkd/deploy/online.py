"""``fearkd online``: a finished cross-validation replayed through the deployed path.

For every subject-wise fold of a run directory (``fearkd cv``/``fearkd run``),
:func:`online_evaluation` trains the fold's bundle on the fold's training subjects only
(:func:`fearkd.deploy.train.train_final`, the same recipe as ``fearkd train``: per-window band
power, the training set's normaliser) and replays each test trial through the path
``fearkd stream`` uses: a :class:`~fearkd.deploy.stream.StreamPredictor` (ring buffer, one
ONNX run per step) fed by :func:`~fearkd.deploy.stream.replay_chunks` as fast as possible.
Each streamed window is matched (subject, trial, start time) with

- the same bundle's offline prediction (:meth:`Bundle.predict`, features from the whole
  recording): agreement of levels and the largest probability difference;
- the CV's own prediction of that window (the fold's stage checkpoint on the CV's features,
  with the CV's per-subject normalisation): the agreement the model card quotes when the CV
  and the graph compute different features (:func:`feature_path_differences`).

Scores (accuracy, balanced accuracy, macro-F1) are computed over the labelled streamed
windows, latency p50/p99 over every streamed window. Calibration is scored as enrolment-budget
curves (:func:`fearkd.deploy.calibrate.budget_curve`: subject-wise accuracy of each test
subject against minutes of its own calibration data, 0 to the whole resting part), with a
warning when the calibration windows are not a resting/baseline part.

Everything goes to ``RUNDIR/online/`` (docs/RUNDIR.md): ``summary.json``, ``windows.csv``
(one row per matched window) and ``budget.csv``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import BundleError, ConfigError

__all__ = ["online_evaluation", "run_config", "cv_folds", "replay_windows",
           "feature_path_differences", "ONLINE_DIR"]

logger = logging.getLogger(__name__)

#: Sub-folder of the run directory that ``fearkd online`` writes.
ONLINE_DIR = "online"


def run_config(rundir, dataset: str | None = None):
    """The :class:`~fearkd.config.ExperimentConfig` of a run directory's ``config.json``.

    A demo's folder maps dataset names to configs: ``dataset`` picks one.
    """
    from ..config import _from_dict

    path = Path(rundir) / "config.json"
    if not path.is_file() or not (Path(rundir) / "units").is_dir():
        raise ConfigError(f"RUN {str(rundir)!r}: not a run directory (no config.json and "
                          f"units/); run `fearkd cv EXPERIMENT --out RUN` first.")
    data = json.loads(path.read_text(encoding="utf-8"))
    if "dataset" not in data:
        keys = sorted(data)
        if dataset not in keys:
            raise ConfigError(f"RUN {str(rundir)!r} holds one experiment per dataset {keys}; "
                              f"pick one with --dataset NAME (e.g. --dataset {keys[0]}).")
        data = data[dataset]
    data = {k: v for k, v in data.items() if k != "run"}
    return _from_dict(data, str(path))


def cv_folds(rundir, key: str, model: str, dataset: str | None = None) -> list[dict]:
    """The finished subject-wise units of ``model`` (on ``dataset``, when given) that scored
    stage ``key``, fold by fold.

    Returns
    -------
    list of dict
        ``unit_id``, ``dataset``, ``protocol``, ``fold``, ``seed`` and ``test_subjects``.
    """
    from ..evaluation.splitters import PROTOCOLS

    out, other = [], set()
    for path in sorted((Path(rundir) / "units").glob("*.json")):
        unit = json.loads(path.read_text(encoding="utf-8"))
        u = unit["unit"]
        if u["model"] != model or key not in unit.get("confusion", {}) or \
                (dataset is not None and u["dataset"] != dataset):
            continue
        if PROTOCOLS.entry(u["protocol"]).info.get("group") != "subject":
            other.add(u["protocol"])
            continue
        out.append({"unit_id": path.stem, "dataset": u["dataset"], "protocol": u["protocol"],
                    "fold": int(u["fold"]), "seed": int(u["seed"]),
                    "test_subjects": sorted(map(str, unit["confusion"][key]["subjects"]))})
    if not out:
        why = (f"its protocols {sorted(other)} mix subjects between training and test"
               if other else f"no finished unit of model {model!r} scored {key}")
        raise ConfigError(f"RUN {str(rundir)!r}: nothing to replay: {why}; run the CV with "
                          f"[evaluation] protocol = \"subject\" (or --student KEY).")
    return out


def replay_windows(bundle, recordings) -> pd.DataFrame:
    """Stream every trial of ``recordings`` through the bundle's ring buffer and ONNX graph.

    Each trial is played from its stimulus onset (the bundle's windows drop the baseline when
    its ``windowing.baseline`` is ``drop``) by a fresh :class:`StreamPredictor`, as fast as
    possible, one step per chunk.

    Returns
    -------
    DataFrame
        One row per streamed window: ``subject``, ``trial``, ``t_start`` (s on the trial's
        clock, as :meth:`Bundle.predict` gives it), ``status``, ``level``, ``p_<class>``,
        ``latency_ms``.
    """
    from .predict import adapt_recordings
    from .stream import StreamPredictor, replay_chunks, trial_samples

    spec = bundle.spec
    drop = bundle.manifest["windowing"]["baseline"] == "drop"
    rows = []
    adapted = adapt_recordings(recordings, bundle)
    for subject in adapted.subjects:
        for trial in adapted.load(subject).trials:
            stream = StreamPredictor(bundle)
            onset = float(trial.onset) if drop else 0.0
            samples = trial_samples(trial, spec.channels)[int(round(onset * spec.sfreq)):]
            for chunk, ts in replay_chunks(samples, spec.sfreq, speed=None,
                                           chunk=stream.n_step):
                for rec in stream.push(chunk, ts):
                    rows.append({"subject": str(subject), "trial": trial.trial,
                                 **{k: v for k, v in rec.items() if k != "t_start"},
                                 "t_start": round(onset + rec["t_start"], 6)})
    return pd.DataFrame(rows)


def _cv_predictions(rundir: Path, fold: dict, key: str, cfg, data) -> pd.DataFrame | None:
    """The CV checkpoint's level for every test window of the fold, or None without one."""
    import torch

    from ..methods import PipelineSettings, stage_list
    from ..stages import Fold
    from ..training.checkpoint import load_checkpoint

    path = rundir / "checkpoints" / fold["unit_id"] / (key.replace("/", "__") + ".pt")
    if not path.is_file():
        logger.warning("No checkpoint %s: agreement with the CV's predictions not measured.",
                       path)
        return None
    ck = load_checkpoint(path)
    fs = data.featureset
    meta = fs.metadata
    test = meta["subject"].astype(str).isin(fold["test_subjects"]).to_numpy()
    settings = PipelineSettings.from_config(cfg)
    inputs = {s.key: s.inputs for s in stage_list(settings)}[key]
    cv_fold = Fold(fs, data.student_names, np.flatnonzero(~test), np.flatnonzero(test), None,
                   normalize=settings.normalize)
    X = cv_fold.X[inputs][test]
    if ck.scaler is not None:
        X = ck.scaler.transform(X)
    with torch.no_grad():
        logits = ck.model(torch.as_tensor(np.asarray(X, np.float32))).numpy()
    names = data.class_names
    sub = meta[test]
    return pd.DataFrame({"subject": sub["subject"].astype(str).to_numpy(),
                         "trial": sub["trial"].to_numpy(),
                         "t_start": sub["t_start"].round(6).to_numpy(),
                         "level_cv": [names[i] for i in logits.argmax(1)]})


def feature_path_differences(run_cfg: dict, manifest: dict) -> list[str]:
    """How the features a CV scored differ from those a bundle's graph computes.

    Parameters
    ----------
    run_cfg : dict
        The run's resolved configuration (``config.json``; one dataset's for a demo).
    manifest : dict
        The bundle's manifest.

    Returns
    -------
    list of str
        One phrase per difference (band-power method, per-subject normalisation, windowing,
        log); empty when the CV computed what the graph computes.
    """
    from ..features.normalize import parse_normalize

    f = run_cfg.get("features", {})
    recipe, win = manifest.get("recipe", {}), manifest.get("windowing", {})
    out = []
    has_eeg = any(c.get("features") == "band_power" for c in manifest.get("channels", []))
    if has_eeg and f.get("method") != recipe.get("method"):
        out.append(f"the CV's band power is {f.get('method')!r} and the graph's "
                   f"{recipe.get('method')!r} (per window)")
    mode = parse_normalize(f.get("normalize", "global"))[0]
    if mode not in ("none", "global"):
        out.append(f"the CV z-scores each subject on its own windows "
                   f"(normalize = {f.get('normalize')!r}) and the graph applies the training "
                   f"set's normaliser (until `fearkd calibrate`)")
    for k, mk in (("window", "window_s"), ("step", "step_s"), ("baseline", "baseline")):
        if k in f and mk in win and f[k] != win[mk]:
            out.append(f"[features] {k} is {f[k]!r} in the CV and {win[mk]!r} in the bundle")
    if has_eeg and "log" in f and "log" in recipe and bool(f["log"]) != bool(recipe["log"]):
        out.append(f"[features] log is {f['log']} in the CV and {recipe['log']} in the graph")
    return out


def _scores(y_true: pd.Series, y_pred: pd.Series, names) -> dict:
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score

    lab = y_true != ""
    if not lab.any():
        return {"n_windows": 0, "accuracy": None, "balanced_accuracy": None, "macro_f1": None}
    y, p = y_true[lab], y_pred[lab]
    return {"n_windows": int(lab.sum()), "accuracy": float(accuracy_score(y, p)),
            "balanced_accuracy": float(balanced_accuracy_score(y, p)),
            "macro_f1": float(f1_score(y, p, average="macro", labels=list(names),
                                       zero_division=0))}


def _cv_scores(rundir: Path, fold: dict, key: str, model: str) -> dict:
    res = pd.read_csv(rundir / "results.csv")
    method, stage, target = key.split("/")
    mine = res[(res["split"] == "test") & (res["task"] == "fear") & (res["method"] == method)
               & (res["dataset"] == fold["dataset"])
               & (res["stage"] == stage) & (res["target"].astype(str) == target)
               & (res["model"] == model) & (res["fold"] == fold["fold"])
               & (res["seed"] == fold["seed"]) & (res["protocol"] == fold["protocol"])]
    return {m: float(mine.loc[mine["metric"] == m, "value"].mean())
            for m in ("accuracy", "balanced_accuracy", "macro_f1")
            if (mine["metric"] == m).any()}


def online_evaluation(rundir, *, student: str | None = None, data_path=None,
                      rest: str | None = None, minutes=None, dataset: str | None = None,
                      progress: bool = False) -> dict:
    """Replay every subject-wise fold of a finished CV through the deployed path.

    Parameters
    ----------
    rundir : path
        A finished ``fearkd cv``/``run`` directory.
    student : str, optional
        Stage key to deploy (default the experiment's first student, as ``fearkd train``).
    data_path : path, optional
        Overrides the run's ``[dataset] path``.
    rest : str, optional
        Stage name of the resting/baseline part the budget curves calibrate on; None: the
        first minutes of each recording (a warning says these are not a resting part).
    minutes : sequence of float, optional
        Calibration budgets (default 0 to the whole part, :func:`budget_curve`).
    dataset : str, optional
        Which experiment of a demo's folder (one per dataset).
    progress : bool

    Returns
    -------
    dict
        The content of ``RUNDIR/online/summary.json``.
    """
    from ..config import config_to_dict
    from ..experiment import _open, prepare_data
    from ..methods import PipelineSettings
    from .calibrate import budget_curve
    from .train import student_keys, train_final

    rundir = Path(rundir)
    cfg = run_config(rundir, dataset)
    keys = student_keys(PipelineSettings.from_config(cfg))
    key = student or (keys[0] if keys else None)
    if key not in keys:
        raise ConfigError(f"--student {key!r}: expected one of {keys} (stage keys of the run "
                          f"{str(rundir)!r}).")
    model = cfg.models.backbones[0]
    cache = rundir / "cache"
    data = prepare_data(cfg, data_path=data_path, cache_dir=cache, progress=progress)
    folds = cv_folds(rundir, key, model, data.dataset)
    recordings = _open(cfg, data_path)
    all_subjects = sorted(map(str, data.featureset.metadata["subject"].unique()))
    out_dir = rundir / ONLINE_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    windows, curves, per_fold = [], [], []
    manifest = None
    for fold in folds:
        test = fold["test_subjects"]
        train = [s for s in all_subjects if s not in set(test)]
        logger.info("Fold %d: training the deployed %s on %d subjects, replaying %s",
                    fold["fold"], key, len(train), test)
        bundle = train_final(cfg, student=key, data_path=data_path, subjects=train,
                             cache_dir=cache, progress=progress)
        manifest = bundle.manifest
        if bundle.spec is None:
            raise ConfigError(f"RUN {str(rundir)!r}: the deployed {key} takes features, not "
                              f"samples ({manifest.get('features_input_reason')}); only a "
                              f"bundle whose graph computes its features can be streamed.")
        held = recordings.select(test)
        pred = bundle.predict(held).assign(t_start=lambda d: d["t_start"].round(6))
        stream = replay_windows(bundle, held)
        ok = stream[stream["status"] == "ok"]
        both = pred.merge(ok, on=["subject", "trial", "t_start"],
                          suffixes=("_predict", "_stream"))
        if both.empty:
            raise BundleError(f"RUN {str(rundir)!r}: no streamed window of fold {fold['fold']} "
                              f"matched a window of Bundle.predict (subject, trial, start "
                              f"time); the replay and the bundle's windowing disagree "
                              f"({manifest['windowing']}).")
        cols = [f"p_{c}" for c in bundle.class_names]
        diff = np.abs(both[[f"{c}_predict" for c in cols]].to_numpy()
                      - both[[f"{c}_stream" for c in cols]].to_numpy())
        cvp = _cv_predictions(rundir, fold, key, cfg, data)
        if cvp is not None:
            both = both.merge(cvp, on=["subject", "trial", "t_start"], how="left")
        else:
            both["level_cv"] = None
        lat = ok["latency_ms"].to_numpy(float)
        with_cv = both["level_cv"].notna()
        entry = {
            "fold": fold["fold"], "seed": fold["seed"], "unit_id": fold["unit_id"],
            "train_subjects": train, "test_subjects": test,
            "windows": {"stream": int(len(stream)), "missing": int(len(stream) - len(ok)),
                        "predict": int(len(pred)), "matched": int(len(both)),
                        "matched_cv": int(with_cv.sum())},
            "agreement_predict": float((both["predicted"] == both["level"]).mean())
            if len(both) else None,
            "max_abs_diff_predict": float(diff.max()) if diff.size else None,
            "agreement_cv": float((both.loc[with_cv, "level_cv"]
                                   == both.loc[with_cv, "level"]).mean())
            if with_cv.any() else None,
            "latency_ms": {"p50": float(np.percentile(lat, 50)) if lat.size else None,
                           "p99": float(np.percentile(lat, 99)) if lat.size else None},
            "online": _scores(both["y_true"], both["level"], bundle.class_names),
            "cv": _cv_scores(rundir, fold, key, model),
        }
        per_fold.append(entry)
        windows.append(both.assign(fold=fold["fold"]))
        curve = budget_curve(bundle, held, minutes=minutes, rest=rest)
        curves.append(curve.assign(fold=fold["fold"]))
    table = pd.concat(windows, ignore_index=True)
    curve = pd.concat(curves, ignore_index=True)
    warnings = []
    if rest is None:
        warnings.append("The calibration windows are the first minutes of each recording, not "
                        "a resting/baseline stage: pass --rest STAGE when the data name one.")
    if curve["label_shift"].any():
        bad = sorted(curve.loc[curve["label_shift"], "subject"].unique())
        warnings.append(f"Calibration windows of subject(s) {bad[:10]} carry fear levels above "
                        f"the lowest: they are not a resting/baseline part, so the normaliser "
                        f"absorbs the fear level (label shift); calibrate on a resting stage "
                        f"(--rest STAGE).")
    for w in warnings:
        logger.warning(w)
    lat = table["latency_ms"].to_numpy(float)
    with_cv = table["level_cv"].notna()
    mean_curve = curve.groupby("minutes")[["accuracy", "balanced_accuracy"]].mean()
    summary = {
        "run": str(rundir), "stage": key, "model": model,
        "differences": feature_path_differences(config_to_dict(cfg), manifest),
        "folds": per_fold,
        "windows": int(len(table)),
        "agreement_predict": float((table["predicted"] == table["level"]).mean()),
        "max_abs_diff_predict": float(max(f["max_abs_diff_predict"] or 0.0 for f in per_fold)),
        "agreement_cv": float((table.loc[with_cv, "level_cv"]
                               == table.loc[with_cv, "level"]).mean())
        if with_cv.any() else None,
        "latency_ms": {"p50": float(np.percentile(lat, 50)),
                       "p99": float(np.percentile(lat, 99))},
        "online": _scores(table["y_true"], table["level"], manifest["classes"]["names"]),
        "cv": {m: float(np.mean([f["cv"][m] for f in per_fold if m in f["cv"]]))
               for m in ("accuracy", "balanced_accuracy", "macro_f1")
               if any(m in f["cv"] for f in per_fold)},
        "budget": {"rest": rest, "minutes": [float(m) for m in mean_curve.index],
                   "accuracy": mean_curve["accuracy"].round(6).tolist(),
                   "balanced_accuracy": mean_curve["balanced_accuracy"].round(6).tolist(),
                   "subjects": int(curve["subject"].nunique())},
        "warnings": warnings,
    }
    from .._atomic import write_atomic

    write_atomic(out_dir / "windows.csv", table.to_csv(index=False))
    write_atomic(out_dir / "budget.csv", curve.to_csv(index=False))
    write_atomic(out_dir / "summary.json", json.dumps(summary, indent=2))
    return summary
