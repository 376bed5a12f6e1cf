"""``fearkd demo``: the whole method on built-in synthetic data, then the report.

Writes small seeded synthetic DEAP- and ASCERTAIN-format datasets (real on-disk formats, read
back by the real readers) and, for each dataset, in one run directory:

1. the label report (trials per subject and fear class);
2. teacher and student features (the reference's presets), log-transformed and standardised
   per subject inside each fold (``[features] normalize = "subject"``);
3. the **backbone comparison** on the source task (``[models] backbones`` of ``demo.toml``)
   under the ``subject`` protocol, and the first backbone under the reference's leaky
   ``seed-legacy`` protocol too (the **protocol comparison**), with statistics;
4. for the first backbone, the demo's **teacher** (``multi-input``: one branch per modality),
   **Method 1** and **Method 2** with the KD targets, the teacher and the student from scratch,
   the controls (``mispaired`` KD, Method 1 from a backbone pretrained on permuted source
   labels) and the baselines (``majority``, ``logreg``, ``rf``) under the ``subject`` protocol;
   every unit runs for the seeds ``[evaluation] seeds = [0, 1, 2]`` (paired on (fold, seed));
5. the **teacher check** (:func:`fearkd.reporting.effects.teacher_check`): Method 1's teacher
   within 5 pp of the best classical baseline (logistic regression, random forest) on the same
   features and normalisation and at least 30 pp above the majority baseline, computed from
   the results, in the CLI summary and the report;
6. the **deployed student**: the DEAP student trained on every training subject
   (:func:`fearkd.deploy.train.train_final`), written as ``deployed/student.fkd`` with its
   ``MODEL_CARD.md``, then one synthetic subject it never saw (written apart, another seed)
   replayed through the streaming path (:class:`fearkd.deploy.stream.StreamPredictor`, as fast
   as possible) and through :meth:`Bundle.predict`; ``deployed/summary.json`` holds the size,
   FLOPs, latency and the agreement of the two paths;
7. the report (``report.html``, ``report.md``), with its "planted effects" section.

The synthetic DEAP is written with the generator's knobs (:data:`DEMO_KNOBS`; see
:func:`fearkd.datasets.synthetic.write_deap`) so that the report's planted effects show:

- ``shared = 1.0``: one latent drives the source task (valence) and fear, so pretraining on
  the source task carries over (TL teacher vs teacher from scratch, expected > 0; the
  permuted-label control, expected ≈ 0);
- ``privileged = 0.5``: half of the EEG fear signal is removed from the student's 14 EPOC
  channels, so the teacher sees more than the student (the premise of KD; correct KD vs
  mis-paired KD, expected > 0);
- ``fear_share = 0.5``: half of each subject's trials are rated inside a fear box (real DEAP
  keeps about 0.1; 0.5 gives each 4-fold training split enough fear windows per class);
- ``subject_shift = 1.0``: per-subject offsets and gains of the default spread, which the
  per-subject normalisation removes (the known-answer test of ``tests/test_known_answers.py``
  measures that effect against ``normalize = "global"``; the demo runs ``"subject"`` only).

The leak of the reference's split (``seed-legacy`` minus ``subject``, expected > 0) needs no
knob. ASCERTAIN has no such knobs (its writer takes ``fear_share`` only) and keeps its
defaults.

Measured on the full demo (seed 0, 3 seeds x 4 subject folds, ``fearkd demo --out
runs/demo``): on DEAP the teacher check is met (``multi-input`` Method 1 teacher 85.0 %, random
forest 86.6 %, logistic regression 65.7 %, majority 25.0 %: gap 1.6 pp) and all five planted
effects are met (leak +12.9 pp, KD soft/combined vs mis-paired +49.6/+17.6 pp, TL +4.2 pp with
interval 1.6 to 6.7, permuted control +0.3 pp with interval -2.3 to 3.0); on ASCERTAIN the
check is not met (teacher 50.3 %, logistic regression 58.3 %: gap 8.0 pp, 24.2 pp above
majority) and TL and combined-target KD are not.

A re-run with the same ``--out`` resumes (finished units are kept). ``--quick`` shrinks the data
and the training so that the whole demo takes a couple of minutes (the test suite runs it).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from .config import ExperimentConfig

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

__all__ = ["run_demo", "DEMO_KNOBS", "DEMO_SIZES", "DEMO_TOML", "demo_config", "demo_toml"]

logger = logging.getLogger(__name__)

#: Data and training sizes of the demo (``full`` is what ``make demo`` runs).
DEMO_SIZES = {
    "full": {"subjects": 8, "trials": 24, "deap_seconds": 23.0, "clips": 24,
             "ascertain_seconds": 24.0, "epochs": 20, "folds": 4, "deploy_epochs": 20,
             "unseen_trials": 8},
    "quick": {"subjects": 4, "trials": 12, "deap_seconds": 13.0, "clips": 12,
              "ascertain_seconds": 16.0, "epochs": 3, "folds": 2, "deploy_epochs": 1,
              "unseen_trials": 4},
}

#: Knobs of the demo's synthetic DEAP (:func:`fearkd.datasets.synthetic.write_deap`); see the
#: module docstring for what each one plants.
DEMO_KNOBS = {"fear_share": 0.5, "privileged": 0.5, "shared": 1.0, "subject_shift": 1.0}

#: The shipped experiment file the demo runs (``fearkd run demo`` reads it too).
DEMO_TOML = ("configs", "demo.toml")

_PRESETS = {
    "deap": ("deap-teacher", "deap-student", "raise"),
    "ascertain": ("ascertain-teacher", "ascertain-student", "unlabelled"),
}


@contextmanager
def demo_toml() -> Iterator[Path]:
    """Path of the shipped ``fearkd/configs/demo.toml`` (a real file while the block runs)."""
    with resources.as_file(resources.files("fearkd").joinpath(*DEMO_TOML)) as path:
        yield path


def demo_config(dataset: str, data: Path, size: dict) -> ExperimentConfig:
    """The demo's experiment for one dataset: the shipped ``demo.toml`` adapted to the data.

    Parameters
    ----------
    dataset : {"deap", "ascertain"}
        Picks the feature presets and the NaN policy of the labels.
    data : path
        Dataset root.
    size : dict
        One of :data:`DEMO_SIZES` (epochs and folds are taken from it).
    """
    teacher, student, nan_policy = _PRESETS[dataset]
    text = resources.files("fearkd").joinpath(*DEMO_TOML).read_text(encoding="utf-8")
    sections = {k: dict(v) for k, v in tomllib.loads(text).items() if isinstance(v, dict)}
    sections["dataset"] = {"kind": dataset, "path": str(data)}
    sections["labels"]["nan_policy"] = nan_policy
    sections["features"].update(teacher=teacher, student=student)
    sections["training"]["epochs"] = size["epochs"]
    sections["evaluation"]["folds"] = size["folds"]
    return ExperimentConfig(name=f"demo-{dataset}").replace(**sections)


@dataclass
class DemoResult:
    out: Path
    report: dict
    summary: list[str]
    wall_seconds: float


def run_demo(out: str | Path, *, quick: bool = False, seed: int = 0,
             progress: bool = True) -> DemoResult:
    """Run the demo into ``out`` and return where its report is and a short summary."""
    from .datasets.synthetic import write_ascertain, write_deap
    from .experiment import prepare_data, run_experiment
    from .reporting import write_report
    from .reporting.plots import dataset_title
    from .rundir import RunDir

    start = time.perf_counter()
    out = Path(out)
    if out.is_dir():  # another experiment's run folder is refused exactly like `run` does
        RunDir(out).check_keyed(tuple(_PRESETS))
    size = DEMO_SIZES["quick" if quick else "full"]
    data_dir = out / "data"
    roots = {}
    logger.info("Writing synthetic datasets to %s", data_dir)
    if not (data_dir / "deap" / "data_preprocessed_python").is_dir():
        write_deap(data_dir / "deap", n_subjects=size["subjects"], n_trials=size["trials"],
                   seconds=size["deap_seconds"], seed=seed, **DEMO_KNOBS)
    roots["deap"] = data_dir / "deap"
    if not (data_dir / "ascertain" / "ASCERTAIN_Raw").is_dir():
        write_ascertain(data_dir / "ascertain", n_subjects=size["subjects"],
                        n_clips=size["clips"], seconds=size["ascertain_seconds"], seed=seed)
    roots["ascertain"] = data_dir / "ascertain"

    summary = []
    for dataset, root in roots.items():
        cfg = demo_config(dataset, root, size)
        logger.info("%s: labels and features", dataset.upper())
        prepared = prepare_data(cfg, cache_dir=out / "cache", progress=progress)
        counts = prepared.label_report.totals.to_dict()
        name = dataset_title(dataset, prepared.summary.get("synthetic", False))
        summary.append(f"{name}: {prepared.summary['n_subjects']} subjects, "
                       f"{prepared.summary['n_trials']} trials, "
                       f"{prepared.summary['windows']['n']} windows; fear trials per class "
                       f"{counts}; {prepared.featureset.n_features} teacher / "
                       f"{len(prepared.student_names)} student features")
        models = cfg.models.backbones
        teacher = models[0]  # the demo's teacher: the methods and controls run for it
        plan = [("subject", m, cfg.methods.run if m == teacher else ()) for m in models]
        # the leak of the reference's split, shown for the teacher's backbone (seed-legacy
        # trains on 4/5 of all windows: the costliest backbone units)
        plan.append(("seed-legacy", teacher, ()))
        logger.info("%s: cross-validation (%d backbone(s), %d seed(s); the methods for %s)",
                    dataset.upper(), len(models), len(cfg.evaluation.seeds), teacher)
        res = run_experiment(cfg, out, plan=plan, prepared=prepared, progress=progress,
                             config_key=dataset)
        sel = res.results[res.results["dataset"] == dataset]
        summary.extend(_protocol_lines(sel))
        summary.extend(_method_lines(sel))
        summary.extend(_check_lines(sel))
    deployed = deploy_student(out, demo_config("deap", roots["deap"], size), size, seed=seed,
                              progress=progress)
    summary.extend(deployed_lines(out, deployed))
    report = write_report(out)
    return DemoResult(out, report, summary, time.perf_counter() - start)


def deploy_student(out: Path, cfg: ExperimentConfig, size: dict, *, seed: int = 0,
                   progress: bool = False) -> dict:
    """Train, bundle and replay the deployed student; return (and write) its summary.

    Parameters
    ----------
    out : Path
        The demo's run directory; everything goes to ``out / "deployed"``.
    cfg : ExperimentConfig
        The DEAP experiment of the demo (its first student stage is bundled).
    size : dict
        One of :data:`DEMO_SIZES` (``deploy_epochs``, ``unseen_trials``, data sizes).

    Returns
    -------
    dict
        The content of ``deployed/summary.json`` (kept from an earlier run when present).
    """
    import json

    import numpy as np
    import pandas as pd

    from .datasets.loaders import open_dataset
    from .datasets.synthetic import write_deap
    from .deploy.card import card_facts, feature_path_facts, model_card
    from .deploy.graph import graph_flops
    from .deploy.online import replay_windows
    from .deploy.stream import OK
    from .deploy.train import train_final
    from .errors import ConfigError

    folder = out / "deployed"
    path = folder / "summary.json"
    if path.is_file():
        return json.loads(path.read_text())
    unseen = folder / "unseen"
    if not (unseen / "data_preprocessed_python").is_dir():
        write_deap(unseen, n_subjects=1, n_trials=size["unseen_trials"],
                   seconds=size["deap_seconds"], seed=seed + 1, **DEMO_KNOBS)
    logger.info("DEAP: the deployed student, trained on all %d training subjects",
                size["subjects"])
    bundle = train_final(cfg.replace(training={"epochs": size["deploy_epochs"]}),
                         synthetic=True, progress=progress)
    # the card quotes this dataset's CV of the same stage (results of DEAP only)
    results = pd.read_csv(out / "results.csv")
    (folder / "cv").mkdir(parents=True, exist_ok=True)
    results[results["dataset"] == "deap"].to_csv(folder / "cv" / "results.csv", index=False)
    m = bundle.manifest
    try:
        facts = card_facts(folder / "cv", m["stage"], m["model"]["name"])
        facts["feature_path"] = feature_path_facts(out, m)
    except ConfigError:
        facts = None
    bundle.card = model_card(m, facts)
    bundle_path = bundle.save(folder / "student.fkd")
    (folder / "MODEL_CARD.md").write_text(bundle.card, encoding="utf-8")

    recordings = open_dataset(unseen)
    pred = bundle.predict(recordings)
    names = bundle.class_names
    # the stream path of `fearkd stream` and `fearkd online`: ring buffer, ONNX, from the onset
    sdf = replay_windows(bundle, recordings)
    sdf = sdf[sdf["status"] == OK]
    pdf = pred.assign(t_start=pred["t_start"].round(6))
    both = pdf.merge(sdf, on=["subject", "trial", "t_start"], suffixes=("_predict", "_stream"))
    cols = [f"p_{c}" for c in names]
    diff = np.abs(both[[f"{c}_predict" for c in cols]].to_numpy()
                  - both[[f"{c}_stream" for c in cols]].to_numpy())
    lat = sdf["latency_ms"].to_numpy()
    summary = {
        "bundle": str(bundle_path), "card": str(folder / "MODEL_CARD.md"),
        "bundle_bytes": bundle_path.stat().st_size, "stage": m["stage"],
        "model": m["model"]["name"], "n_params": int(m["model"]["n_params"]),
        "flops_per_window": graph_flops(bundle.onnx_bytes), "input_kind": bundle.input_kind,
        "training_subjects": m["training_data"]["subjects"],
        "epochs": size["deploy_epochs"],
        "unseen": {"path": str(unseen), "subjects": [str(s) for s in recordings.subjects],
                   "trials": int(pred["trial"].nunique())},
        "windows": {"predict": int(len(pred)), "stream": int(len(sdf)),
                    "matched": int(len(both))},
        "latency_ms": {"p50": float(np.percentile(lat, 50)),
                       "p99": float(np.percentile(lat, 99))},
        "agreement": float((both["predicted"] == both["level"]).mean()) if len(both) else 0.0,
        "max_abs_diff": float(diff.max()) if diff.size else float("nan"),
    }
    path.write_text(json.dumps(summary, indent=2), encoding="utf-8")
    return summary


def deployed_lines(out: Path, s: dict) -> list[str]:
    """Summary lines of the deployed student (what :func:`deploy_student` returned)."""
    return [f"Deployed student: {s['bundle']} ({s['bundle_bytes'] / 1024:.1f} KiB, "
            f"{s['model']} {s['stage']}, {s['n_params']} parameters, "
            f"{s['flops_per_window']} FLOPs per window)",
            f"  unseen subject replayed: {s['windows']['stream']} streamed windows, latency "
            f"p50 {s['latency_ms']['p50']:.3f} ms, p99 {s['latency_ms']['p99']:.3f} ms; "
            f"stream vs predict: {100 * s['agreement']:.1f} % same level over "
            f"{s['windows']['matched']} windows, max |dp| {s['max_abs_diff']:.2g}"]


def _test_accuracy(results, **where):
    sel = results[(results["split"] == "test") & (results["metric"] == "accuracy")]
    for col, value in where.items():
        sel = sel[sel[col] == value]
    return sel


def _chance_text(results, task: str, **where) -> str:
    """``"chance 11.1 % (1/9), majority class 32.7 %"``: both rates a model must beat."""
    sel = _test_accuracy(results, task=task, **where)
    chance = float(sel["chance"].mean())
    text = f"chance {100 * chance:.1f} % (1/{round(1 / chance)})"
    major = sel[(sel["method"] == "baseline") & (sel["model"] == "majority")]
    if len(major):
        text += f", majority class {100 * float(major['value'].mean()):.1f} %"
    return text


def _check_lines(results) -> list[str]:
    """The teacher check (:func:`fearkd.reporting.effects.teacher_check`), one line each."""
    from .reporting.effects import teacher_check, teacher_check_sentence

    table = teacher_check(results)
    return [f"  teacher check (subject protocol, fear, test accuracy, mean over "
            f"{int(row['n_pairs'])} (fold, seed) pairs): {teacher_check_sentence(row)}"
            for _, row in table.iterrows()]


def _protocol_lines(results) -> list[str]:
    """Backbone test accuracy (source task) under each protocol, one line per model."""
    sel = _test_accuracy(results, method="backbone")
    if sel.empty:
        return []
    means = sel.groupby(["model", "protocol"], sort=False)["value"].mean().unstack()
    lines = [f"  source task ({_chance_text(results, 'source')}), backbone test accuracy "
             "by protocol:"]
    for model, row in means.iterrows():
        parts = [f"{p} {100 * v:.1f} %" for p, v in row.items() if v == v]
        lines.append(f"    {model.upper()}: " + ", ".join(parts))
    return lines


def _method_lines(results) -> list[str]:
    """Mean test accuracy of the fear stages (subject protocol), one line each."""
    sel = _test_accuracy(results, protocol="subject", task="fear")
    if sel.empty:
        return []
    means = sel.groupby(["method", "stage", "model", "target"], sort=False)["value"].mean()
    lines = [f"  fear ({_chance_text(results, 'fear', protocol='subject')}), subject "
             "protocol, test accuracy:"]
    for (method, stage, model, target), value in means.items():
        if method == "baseline":
            label = f"{model} baseline"
        else:
            label = f"{model.upper()} {method} {stage}" + ("" if target == "-" else
                                                           f" ({target})")
        lines.append(f"    {label}: {100 * value:.1f} %")
    return lines
