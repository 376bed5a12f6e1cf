"""The model card: what a bundled model can be expected to do, from a finished CV run.

:func:`card_facts` reads a run directory of the same experiment (``results.csv``,
``units/*.json``) and :func:`model_card` writes ``MODEL_CARD.md``: the protocol, the expected
accuracy, balanced accuracy and macro-F1 of the bundled stage on unseen subjects (mean over
folds with a 95 % t-interval), chance and majority-class rates, per-class recall (from the
summed test confusion matrices), the training data, intended use and limitations.

:func:`feature_path_facts` compares what the CV computed (the run's ``config.json``) with what
the bundle's graph computes (its manifest): band-power method, per-subject normalisation,
windowing, log. The card then says in one sentence whether the figures come from the same
feature path, with the agreement ``fearkd online RUN`` measured between the deployed path and
the CV's own models (``RUN/online/summary.json``) when it was run.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from ..config import config_to_dict
from ..errors import ConfigError

__all__ = ["card_facts", "model_card", "check_run_config", "feature_path_facts"]

_SECTIONS = ("dataset", "labels", "features", "models", "methods", "training")
METRICS = ("accuracy", "balanced_accuracy", "macro_f1")


def check_run_config(cfg, rundir: Path) -> None:
    """Refuse a run directory made with another experiment (names the differing sections)."""
    path = Path(rundir) / "config.json"
    if not path.is_file() or not (Path(rundir) / "results.csv").is_file():
        raise ConfigError(f"--cv {str(rundir)!r}: not a finished run directory (no config.json "
                          f"and results.csv); run `fearkd cv EXPERIMENT --out RUN` first, or "
                          f"pass --with-cv.")
    saved = json.loads(path.read_text())
    mine = config_to_dict(cfg)
    differ = [s for s in _SECTIONS if s != "features" and saved.get(s) != mine.get(s)]
    feats = {k: v for k, v in saved.get("features", {}).items() if k != "method"}
    if feats != {k: v for k, v in mine["features"].items() if k != "method"}:
        differ.append("features")
    if differ:
        raise ConfigError(f"--cv {str(rundir)!r} was run with another configuration (sections "
                          f"{differ} differ from {cfg.source}); pass the run of this "
                          f"experiment or --with-cv.")


def _interval(values: np.ndarray) -> tuple[float, float, float]:
    mean = float(np.mean(values))
    if len(values) < 2:
        return mean, float("nan"), float("nan")
    half = float(stats.t.ppf(0.975, len(values) - 1) * stats.sem(values))
    return mean, max(mean - half, 0.0), min(mean + half, 1.0)


def card_facts(rundir, stage_key: str, model_name: str) -> dict:
    """Cross-validated figures of ``stage_key`` (``method/stage/target``) in a run directory."""
    rundir = Path(rundir)
    res = pd.read_csv(rundir / "results.csv")
    method, stage, target = stage_key.split("/")
    test = res[(res["split"] == "test") & (res["task"] == "fear")]
    mine = test[(test["method"] == method) & (test["stage"] == stage)
                & (test["target"].astype(str) == target) & (test["model"] == model_name)]
    if mine.empty:
        raise ConfigError(f"--cv {str(rundir)!r} holds no test result of {stage_key} "
                          f"({model_name}); run the CV of this experiment (--with-cv).")
    facts = {"protocol": str(mine["protocol"].iat[0]), "n_folds": int(mine["fold"].nunique()),
             "chance": float(mine["chance"].iat[0]), "metrics": {}}
    for metric in METRICS:
        per_fold = mine[mine["metric"] == metric].groupby("fold")["value"].mean().to_numpy()
        facts["metrics"][metric] = _interval(per_fold)
    major = test[(test["model"] == "majority") & (test["metric"] == "accuracy")]
    facts["majority"] = float(major["value"].mean()) if not major.empty else float("nan")
    total = None
    for unit in sorted((rundir / "units").glob("*.json")):
        conf = json.loads(unit.read_text()).get("confusion", {}).get(stage_key)
        if conf and f"__{model_name}__" in unit.name:
            m = np.asarray(conf["matrix"], dtype=float)
            total = m if total is None else total + m
            facts["class_names"] = conf["class_names"]
    if total is not None:
        with np.errstate(invalid="ignore", divide="ignore"):
            facts["recall"] = (np.diag(total) / total.sum(axis=1)).tolist()
    return facts


def feature_path_facts(rundir, manifest: dict) -> dict:
    """``differences`` between the CV of ``rundir`` and the bundle's graph, and the agreement.

    Returns
    -------
    dict
        ``differences`` (list of phrases, :func:`fearkd.deploy.online.feature_path_differences`),
        ``agreement`` (fraction of streamed windows whose level equals the CV model's, from
        ``RUN/online/summary.json`` of the same stage, or None) and ``n_windows``.
    """
    from .online import ONLINE_DIR, feature_path_differences

    rundir = Path(rundir)
    saved = json.loads((rundir / "config.json").read_text(encoding="utf-8"))
    dataset = manifest.get("training_data", {}).get("dataset")
    # a demo's config.json maps each dataset to its experiment's config
    nested = "features" not in saved and isinstance(saved.get(dataset), dict)
    run_cfg = saved[dataset] if nested else saved
    out = {"differences": feature_path_differences(run_cfg, manifest), "agreement": None,
           "n_windows": None, "command": f"fearkd online {rundir}"
           + (f" --dataset {dataset}" if nested else "")}
    online = rundir / ONLINE_DIR / "summary.json"
    if online.is_file():
        s = json.loads(online.read_text(encoding="utf-8"))
        if s.get("stage") == manifest.get("stage") and s.get("agreement_cv") is not None:
            out["agreement"] = float(s["agreement_cv"])
            out["n_windows"] = int(sum(f["windows"]["matched_cv"] for f in s["folds"]))
    return out


def _feature_path_sentence(path: dict) -> str:
    if path["agreement"] is not None:
        measured = (f"the deployed path (fold bundles streamed, `fearkd online`) gives the CV "
                    f"model's level on {_pct(path['agreement'])} of {path['n_windows']} test "
                    f"windows")
    else:
        measured = f"their agreement was not measured (run `{path['command']}`)"
    if path["differences"]:
        return ("**These figures come from a different feature path than this bundle's "
                "graph**: " + "; ".join(path["differences"]) + f"; {measured}.")
    return ("The CV computed the same features as this bundle's graph (band-power method, "
            f"normalisation, windowing); {measured}.")


def _pct(x: float) -> str:
    return "n/a" if not np.isfinite(x) else f"{100 * x:.1f} %"


def model_card(manifest: dict, facts: dict | None) -> str:
    """``MODEL_CARD.md`` text for a bundle's manifest and its CV facts."""
    td = manifest.get("training_data", {})
    synthetic = {True: "**yes: synthetic data**, the figures say nothing about real people",
                 False: "no (real recordings)", None: "not declared"}[td.get("synthetic")]
    lines = [f"# Model card: {manifest.get('experiment', {}).get('name', 'fearkd model')} "
             f"({manifest.get('stage', '')})", "",
             f"Model `{manifest['model']['name']}`, {manifest['model']['n_params']} parameters, "
             f"input {manifest['input_kind']} ({len(manifest['feature_names'])} features), "
             f"classes {', '.join(manifest['classes']['names'])}.", ""]
    if facts:
        lines += [f"## Expected performance ({facts['protocol']}-wise cross-validation, "
                  f"{facts['n_folds']} folds)", "",
                  "| metric | mean | 95 % interval over folds |", "|---|---|---|"]
        for metric, (m, lo, hi) in facts["metrics"].items():
            lines.append(f"| {metric} | {_pct(m)} | {_pct(lo)} to {_pct(hi)} |")
        lines += ["", f"Chance {_pct(facts['chance'])}; majority class "
                  f"{_pct(facts['majority'])}."]
        if "recall" in facts:
            lines.append("Per-class recall (test folds summed): " + ", ".join(
                f"{n} {_pct(r)}" for n, r in zip(facts["class_names"], facts["recall"],
                                                 strict=True)) + ".")
        if facts.get("feature_path"):
            lines += ["", _feature_path_sentence(facts["feature_path"])]
    else:
        lines += ["## Expected performance", "", "Not measured: no cross-validation was given "
                  "(`fearkd train --cv RUN` or `--with-cv`)."]
    lines += ["", "## Training data", "",
              f"Kind {td.get('kind')}, dataset {td.get('dataset')}, "
              f"{len(td.get('subjects', []))} subjects, {td.get('n_windows')} labelled windows "
              f"per class {td.get('windows_per_class')}; fingerprint "
              f"`{str(td.get('fingerprint'))[:16]}`; synthetic: {synthetic}.", "",
              "## Intended use and limitations", "",
              "Research on fear and stress detection. **Not a medical device**: not for "
              "diagnosis, treatment or any decision about a person. Accuracy on a new person, "
              "new sensors or a new setting can be far below the figures above; recalibrate "
              "per user and check on your own labelled data before relying on it.", ""]
    return "\n".join(lines)
