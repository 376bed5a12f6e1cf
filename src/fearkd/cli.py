"""The ``fearkd`` command line.

Each subcommand is a small function that parses nothing itself: argparse does that, the
library does the work, and :mod:`fearkd.reporting.text` formats what this module prints. A
:class:`~fearkd.errors.FearkdError`, a bad value (``ValueError``) or a missing file prints one line
and exits with status 2 (``--debug`` shows the traceback); any other exception is a bug and is
not caught. Flags that take a registered name build their ``choices=`` and ``--help`` from the
registry.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from .errors import FearkdError

__all__ = ["main", "build_parser"]

logger = logging.getLogger("fearkd")


def _json_default(value):
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _print_json(data) -> None:
    print(json.dumps(data, indent=2, default=_json_default))


def _help(text: str, names) -> str:
    """``text`` followed by the names (with their descriptions where a registry has them)."""
    detail = names.help_text() if hasattr(names, "help_text") else ", ".join(names)
    return f"{text}: {detail}".replace("%", "%%")


def _name_list(names, flag: str, extra: tuple[str, ...] = ()):
    """argparse ``type=`` for a comma-separated list of registered names."""
    allowed = tuple(names) + extra

    def parse(text: str) -> tuple[str, ...]:
        items = tuple(x.strip() for x in text.split(",") if x.strip())
        bad = [x for x in items if x not in allowed]
        if not items or bad:
            raise argparse.ArgumentTypeError(
                f"expected a comma-separated list of {', '.join(map(repr, allowed))} for "
                f"{flag}, got {text!r}"
            )
        return items

    return parse


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def _folds(text: str):
    if text == "auto":
        return text
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 2:
        raise argparse.ArgumentTypeError(f"expected an integer >= 2 or 'auto', got {text!r}")
    return value


# ----------------------------------------------------------------------------------- synth
def _cmd_synth(args) -> int:
    from ._outputs import prepare_synthetic_folder
    from .datasets import synthetic

    prepare_synthetic_folder(args.out, args.dataset, args.force)

    if args.dataset == "deap":
        knobs = {k: getattr(args, k) for k in _DEAP_KNOBS if getattr(args, k) is not None}
        root = synthetic.write_deap(
            args.out, n_subjects=args.subjects, n_trials=args.trials, seconds=args.seconds,
            seed=args.seed, fmt=args.format, **knobs,
        )
    else:
        root = synthetic.write_ascertain(
            args.out, n_subjects=args.subjects, n_clips=args.trials, seconds=args.seconds,
            seed=args.seed,
        )
    print(f"Wrote synthetic {args.dataset.upper()} ({args.subjects} subjects) to {root}")
    return 0


def _add_synth(sub) -> None:
    p = sub.add_parser(
        "synth", help="write a synthetic dataset in the real on-disk format",
        description="Write a seeded synthetic DEAP or ASCERTAIN dataset in the real on-disk "
                    "format, with physiology driven by each trial's ratings.",
    )
    p.add_argument("dataset", choices=["deap", "ascertain"], help="which format to write")
    p.add_argument("out", type=Path, help="output folder (the dataset root)")
    p.add_argument("--subjects", type=int, default=4, help="number of subjects (default 4)")
    p.add_argument("--trials", type=int, default=None,
                   help="trials (DEAP, max 40) or clips (ASCERTAIN, max 36) per subject "
                        "(default: the real number)")
    p.add_argument("--seconds", type=float, default=None,
                   help="trial length in seconds (DEAP default 63 incl. 3 s baseline, max 63; "
                        "ASCERTAIN default 60, clip lengths vary around it)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--format", choices=["dat", "mat"], default="dat",
                   help="DEAP only: Python pickle (.dat) or MATLAB (.mat) files (default dat)")
    p.add_argument("--force", action="store_true",
                   help="write into a non-empty folder after removing the synthetic files it "
                        "holds (refused if it holds anything else)")
    p.add_argument("--fear-share", type=float, default=None,
                   help="DEAP only: share of each subject's trials rated inside a fear box, "
                        "0..1 (default 0.5; real DEAP about 0.1)")
    p.add_argument("--privileged", type=float, default=None,
                   help="DEAP only: share of the EEG fear signal removed from the 14 EPOC "
                        "channels of the deap-student-eeg preset, 0..1 (default 0)")
    p.add_argument("--shared", type=float, default=None,
                   help="DEAP only: overlap of the source-task (valence) latent and the fear "
                        "latent, 0..1 (default 1: one latent drives both)")
    p.add_argument("--subject-shift", type=float, default=None,
                   help="DEAP only: size of per-subject offsets and gains on every channel, "
                        "0..5 (default 1; 0 = none)")
    p.set_defaults(func=_cmd_synth_defaults)


#: write_deap keywords set by `fearkd synth deap` flags (None = the writer's default).
_DEAP_KNOBS = ("fear_share", "privileged", "shared", "subject_shift")


def _cmd_synth_defaults(args) -> int:
    if args.trials is None:
        args.trials = 40 if args.dataset == "deap" else 36
    if args.seconds is None:
        args.seconds = 63.0 if args.dataset == "deap" else 60.0
    if args.dataset == "ascertain" and args.format != "dat":
        raise ValueError("--format applies to DEAP only; ASCERTAIN is always MATLAB .mat files.")
    if args.dataset == "ascertain":
        for k in _DEAP_KNOBS:
            if getattr(args, k) is not None:
                flag = "--" + k.replace("_", "-")
                raise ValueError(f"{flag} applies to DEAP only; drop it or write "
                                 f"`fearkd synth deap ... {flag} X`.")
    return _cmd_synth(args)


# ------------------------------------------------------------------------------------ info
def _format_info(s: dict) -> str:
    lines = [f"Dataset: {s['dataset']}" + (" (synthetic data)" if s.get("synthetic") else "")]
    for key, value in s["description"].items():
        lines.append(f"  {key}: {value}")
    counts = sorted(set(s["trials_per_subject"].values()))
    lines.append(
        f"Subjects: {s['n_subjects']} ({', '.join(s['trials_per_subject'])}); "
        f"trials: {s['n_trials']} ({'/'.join(map(str, counts))} per subject)"
    )
    ts = s["trial_seconds"]
    if ts["min"] is not None:
        lines.append(f"Trial length: {ts['min']:.1f}-{ts['max']:.1f} s; "
                     f"stimulus onset at {', '.join(f'{o:g}' for o in s['onset_seconds'])} s")
    lines.append("Modalities:")
    for m, e in s["modalities"].items():
        lines.append(f"  {m:<5} {e['sfreq']:g} Hz, {len(e['channels'])} channel(s): "
                     f"{' '.join(e['channels'])}")
    lines.append("Ratings:")
    for name, r in s["ratings"].items():
        if r["min"] is None:
            lines.append(f"  {name:<12} all NaN ({r['n']})")
        else:
            lines.append(f"  {name:<12} min {r['min']:.2f}  mean {r['mean']:.2f}  "
                         f"max {r['max']:.2f}  NaN {r['n_nan']}/{r['n']}")
    lines += _load_report_lines(s["load_report"])
    return "\n".join(lines)


def _load_report_lines(rep: dict) -> list[str]:
    """The load report as text: skipped subjects/trials, repairs, flat-lined channels."""
    flagged = rep.get("flagged", [])
    if not (rep["skipped"] or rep["repaired"] or flagged):
        return ["Load report: nothing skipped or repaired"]
    lines = [f"Load report: {len(rep['skipped'])} skipped, {len(rep['repaired'])} repaired, "
             f"{len(flagged)} flat channel(s)"]
    for e in rep["skipped"]:
        what = f"trial {e['trial']}" if e["trial"] is not None else "(whole subject or session)"
        lines.append(f"  skipped subject {e['subject']} {what}: {e['reason']}")
    for e in rep["repaired"]:
        lines.append(f"  repaired subject {e['subject']} trial {e['trial']}: "
                     f"{e['what']} ({e['count']})")
    for e in flagged:
        lines.append(f"  flat channel {e['channel']} of subject {e['subject']}: {e['why']} "
                     f"([dataset] flat = \"drop-subject\" skips such subjects)")
    return lines


def _open(args):
    """The dataset at ``args.path``, with ``--nan-samples`` for readers that take it."""
    from .datasets.loaders import open_dataset

    _refuse_experiment_file(args.path, args.command)
    options = {}
    if getattr(args, "nan_samples", None):
        options["nan_policy"] = args.nan_samples
    try:
        return open_dataset(args.path, **options)
    except TypeError as exc:
        if options and "nan_policy" in str(exc):
            raise ValueError(f"--nan-samples applies to DEAP and ASCERTAIN folders; "
                             f"{str(args.path)!r} is read by another reader: drop the "
                             f"flag.") from None
        raise


def _refuse_experiment_file(path: Path, command: str) -> None:
    """An experiment file given where a dataset is expected: say what it is and what to do."""
    if path.suffix != ".toml" or not path.is_file():
        return
    try:
        from .config import tomllib

        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return  # the reader says what is wrong with it
    ds = data.get("dataset")
    own = {"evaluation", "models", "methods", "training", "features", "labels"}
    kind = ds.get("kind", "deap" if own & set(data) else "generic") if isinstance(ds, dict) else ""
    if isinstance(ds, dict) and kind != "generic":  # a generic experiment file is readable
        where = ds.get("path") or "(no path set)"
        raise ValueError(
            f"{str(path)!r} is an experiment file, not a dataset: run it with `fearkd run "
            f"{path} --out RUNDIR`, or give `fearkd {command}` its [dataset] path ({where})."
        )


def _cmd_info(args) -> int:
    from .datasets.loaders import summarize

    recordings = _open(args)
    summary = summarize(recordings, progress=not args.json)
    if args.json:
        _print_json(summary)
    else:
        print(_format_info(summary))
    return 0


def _add_info(sub) -> None:
    p = sub.add_parser(
        "info", help="describe a dataset (kind, subjects, modalities, ratings, load report)",
        description="Detect the dataset kind under PATH (DEAP, ASCERTAIN, or a .toml "
                    "description of your own recordings) and describe it.",
    )
    p.add_argument("path", type=Path, help="dataset root folder or description file")
    _add_nan_samples(p)
    p.add_argument("--json", action="store_true", help="print one JSON object instead")
    p.set_defaults(func=_cmd_info)


def _add_nan_samples(p) -> None:
    p.add_argument("--nan-samples", choices=("raise", "drop-trial", "keep"), default=None,
                   help="DEAP/ASCERTAIN: a trial with NaN/Inf samples fails (default), is "
                        "skipped (listed in the load report) or is kept as it is; in an "
                        "experiment file: [dataset] nan_policy")


# ---------------------------------------------------------------------------------- labels
def _cmd_labels(args) -> int:
    from .labels import label_recordings

    recordings = _open(args)
    trials, report = label_recordings(recordings, args.rules, ambiguous=args.ambiguous,
                                      nan_policy=args.nan_policy)
    if args.json:
        out = report.to_dict()
        out["dataset"] = recordings.dataset
        out["n_trials"] = len(trials)
        out["load_report"] = recordings.report.to_dict()
        out["source_classes"] = {
            str(k): int(v) for k, v in trials["y_source"].value_counts().sort_index().items()
        }
        _print_json(out)
    else:
        print(f"Fear labels of {recordings.dataset} ({len(trials)} trials, "
              f"{trials['subject'].nunique()} subjects)")
        print(report.to_text())
        print("\n".join(_load_report_lines(recordings.report.to_dict())))
    return 0


def _add_labels(sub) -> None:
    p = sub.add_parser(
        "labels", help="fear-label report: trials per subject and class",
        description="Turn every trial's ratings into a fear level with a rule table and print "
                    "trials per subject and class, unlabelled and ambiguous counts, and a "
                    "warning for classes held by two subjects or fewer.",
    )
    p.add_argument("path", type=Path, help="dataset root folder or description file")
    p.add_argument("--rules", default=None,
                   help="rule table: 'deap', 'ascertain' or a TOML file (default: the "
                        "dataset's built-in table, or the classes a description file gives)")
    _add_label_policies(p)
    _add_nan_samples(p)
    p.add_argument("--json", action="store_true", help="print one JSON object instead")
    p.set_defaults(func=_cmd_labels)


def _add_label_policies(p) -> None:
    from .labels import AMBIGUOUS_POLICIES, NAN_POLICIES

    p.add_argument("--ambiguous", choices=AMBIGUOUS_POLICIES, default="drop",
                   help="a trial matching two levels: drop it (default), take the first, or fail")
    p.add_argument("--nan-policy", choices=NAN_POLICIES, default="raise",
                   help="a NaN rating: fail (default) or leave the trial unlabelled")


# -------------------------------------------------------------------------------- features
def _cmd_features(args) -> int:
    from .features.extract import extract_features

    if args.out.suffix != ".npz":
        raise ValueError(f"--out must name a .npz file (NumPy archive), got {str(args.out)!r}.")
    window = args.window
    try:
        window = float(window)  # a length in seconds; otherwise a windowing preset's name
    except (TypeError, ValueError):
        pass
    recordings = _open(args)
    fs = extract_features(
        recordings, args.preset, window=window, step=args.step, baseline=args.baseline,
        rules=args.rules, ambiguous=args.ambiguous, nan_policy=args.nan_policy,
        n_jobs=args.jobs, cache_dir=args.cache, progress=not args.json,
    )
    fs.save(args.out)
    meta = fs.metadata
    summary = {
        "out": str(args.out), "dataset": recordings.dataset, "preset": args.preset,
        "n_windows": len(fs), "n_features": fs.n_features,
        "n_subjects": int(meta["subject"].nunique()),
        "n_trials": int(len(meta.drop_duplicates(["subject", "trial"]))),
        "fear_windows": {str(k): int(v) for k, v in
                         meta["y_fear"].value_counts().sort_index().items()},
        "feature_names": list(fs.feature_names),
    }
    if args.json:
        _print_json(summary)
    else:
        shown = ", ".join(fs.feature_names[:4])
        print(f"Wrote {summary['n_windows']} windows x {summary['n_features']} features "
              f"({shown}, ...) of {summary['n_subjects']} subject(s) to {args.out}")
        print(f"Windows per fear class (-1 = unlabelled): {summary['fear_windows']}")
    return 0


def _add_features(sub) -> None:
    from .features.presets import list_presets

    p = sub.add_parser(
        "features", help="extract windowed features of a dataset into a .npz file",
        description="Cut every trial into windows (in seconds), compute a preset's features "
                    "(band power per EEG channel and band, mean/variance per peripheral "
                    "channel, ...) and the fear/source labels, and save them as one .npz "
                    "(arrays X, feature_names and meta_<column>) that NumPy alone can read.",
    )
    p.add_argument("path", type=Path, help="dataset root folder or description file")
    p.add_argument("--preset", required=True, choices=list_presets(), help="feature preset")
    p.add_argument("--window", default=None,
                   help="window length in seconds, or a windowing preset name "
                        "('default': 4 s every 2 s; 'seed-legacy': 2 s every 0.125 s)")
    p.add_argument("--step", type=float, default=None, help="step between windows in seconds")
    from .features.extract import BASELINE_POLICIES

    p.add_argument("--baseline", choices=BASELINE_POLICIES, default="drop",
                   help="drop the pre-stimulus baseline (default) or subtract its band power")
    p.add_argument("--rules", default=None, help="fear rule table (default: the dataset's)")
    _add_label_policies(p)
    p.add_argument("--jobs", type=int, default=1, help="subjects processed in parallel")
    p.add_argument("--cache", type=Path, default=None,
                   help="cache folder: a second call with the same inputs is a load")
    _add_nan_samples(p)
    p.add_argument("--out", type=Path, required=True, help="output .npz file")
    p.add_argument("--json", action="store_true", help="print a JSON summary instead")
    p.set_defaults(func=_cmd_features)


# ------------------------------------------------------------------------------------ demo
def _cmd_demo(args) -> int:
    from .demo import run_demo
    from .experiment import seconds_text

    res = run_demo(args.out, quick=args.quick, seed=args.seed, progress=not args.quiet)
    print("\nfearkd demo: summary (synthetic data)")
    for line in res.summary:
        print(line)
    print(f"Wall time: {seconds_text(res.wall_seconds)}")
    print(f"Report: {res.report['html']}  (Markdown: {res.report['md']})")
    return 0


def _add_demo(sub) -> None:
    p = sub.add_parser(
        "demo", help="run the whole method on built-in synthetic data and write the report",
        description="Write small synthetic DEAP- and ASCERTAIN-format datasets (DEAP with "
                    "the knobs of fearkd.demo.DEMO_KNOBS) and run label reports, features, "
                    "the multi-input/CNN backbone comparison under the 'subject' protocol "
                    "and multi-input under 'seed-legacy' too, with statistics, Method 1 and "
                    "Method 2 with the "
                    "three KD targets for the multi-input teacher, the controls (teacher and "
                    "student from scratch, mis-paired KD, permuted source labels) and the "
                    "majority, logreg and rf baselines, for 3 seeds; then the teacher check "
                    "(teacher within 5 pp of the better of logreg and rf, 30 pp above "
                    "majority), the deployed student and the report. Re-running into the "
                    "same --out resumes.",
    )
    p.add_argument("--out", type=Path, default=Path("runs/demo"),
                   help="run directory (default runs/demo)")
    p.add_argument("--quick", action="store_true",
                   help="smaller data and training: a couple of minutes")
    p.add_argument("--seed", type=int, default=0, help="random seed of the data (default 0)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_demo)


# ------------------------------------------------------------------------- run / cv / compare
def _experiment(args, *, methods=None, protocols=None, folds=None, models=None):
    from .config import load_config
    from .experiment import run_experiment

    if str(args.config) == "demo" and not args.config.exists():
        from .demo import demo_toml

        with demo_toml() as path:
            cfg = load_config(path)
    else:
        cfg = load_config(args.config)
    return run_experiment(cfg, args.out, data_path=args.data, protocols=protocols,
                          models=models, methods=methods, folds=folds,
                          jobs=getattr(args, "jobs", None),
                          scheduler=getattr(args, "scheduler", None),
                          scheduler_timeout=getattr(args, "scheduler_timeout", 5.0),
                          progress=not getattr(args, "quiet", False))


def _data_title(data) -> str:
    """``DEAP (synthetic data)``: what the run read, from its prepared data's summaries."""
    from .reporting.text import data_title

    parts = {n: summary for n, (_, summary) in data.parts.items()} if data.parts \
        else {data.dataset: data.summary}
    return data_title(parts)


def _cmd_run(args) -> int:
    from .experiment import seconds_text
    from .reporting.text import method_tables

    res = _experiment(args)
    for text in method_tables(res.results):
        print(text)
        print()
    print(f"Data: {_data_title(res.data)}")
    print(f"Results: {res.rundir.path / 'results.csv'} ({len(res.results)} rows); "
          f"wall time {seconds_text(res.wall_seconds)}. Report: fearkd report {res.rundir.path}")
    return 0


def _cmd_cv(args) -> int:
    from .experiment import seconds_text
    from .reporting.tables import format_table, timing_table
    from .reporting.text import comparison_text, method_tables

    models = list(args.models) if args.models else None
    methods = None
    if args.methods is not None:
        methods = tuple(m for m in args.methods if m != "backbone")
    res = _experiment(args, methods=methods, folds=args.folds,
                      protocols=[args.protocol] if args.protocol else None, models=models)
    for text in method_tables(res.results):
        print(text)
        print()
    print(format_table(timing_table(res.timing), title="Cross-validation time"))
    for protocol in res.results["protocol"].unique():
        text = comparison_text(res.results[res.results["protocol"] == protocol])
        if text:
            print(f"\nModel comparison, protocol {protocol} (test accuracy):\n{text}")
    print(f"\nData: {_data_title(res.data)}")
    print(f"Results: {res.rundir.path / 'results.csv'}; wall time "
          f"{seconds_text(res.wall_seconds)}. Statistics: fearkd compare {res.rundir.path}")
    return 0


def _cmd_compare(args) -> int:
    from .reporting.text import by_text, comparison_text, contrast_text
    from .rundir import RunDir

    rundir = Path(args.rundir)
    if not (rundir / "results.csv").is_file():
        raise FileNotFoundError(f"No results in {str(rundir)!r}: results.csv is missing; run "
                                f"`fearkd run` or `fearkd cv` first.")
    results = RunDir(rundir).results()
    if args.by is not None:
        out = by_text(results, args.by, args.metric, args.alpha, as_json=args.json)
        if args.json:
            _print_json(out)
        else:
            print(out)
        return 0
    out = {}
    for protocol in results["protocol"].unique():
        sel = results[results["protocol"] == protocol]
        models = comparison_text(sel, args.metric, args.alpha, as_json=args.json)
        contrasts = contrast_text(sel, args.metric, args.alpha, as_json=args.json)
        out[protocol] = (models, contrasts)
    if args.json:
        _print_json({p: {**(m or {"metric": args.metric, "alpha": args.alpha}),
                         **({"contrasts": c} if c else {})} for p, (m, c) in out.items()})
        return 0
    for protocol, (models, contrasts) in out.items():
        print(f"Protocol {protocol} ({args.metric}, alpha {args.alpha}):")
        print(models or "  fewer than two backbone models: no backbone comparison "
                        "(fearkd cv --models cnn,lstm runs several).")
        if contrasts:
            print()
            print(contrasts)
        print()
    return 0


def _add_experiment_args(p) -> None:
    p.add_argument("config", type=Path,
                   help="experiment file (TOML), e.g. configs/deap-method1.toml, or 'demo' "
                        "for the demo's experiment shipped with fearkd (pass --data)")
    p.add_argument("--data", type=Path, default=None,
                   help="dataset root or description file (overrides [dataset] path)")
    p.add_argument("--out", type=Path, required=True,
                   help="run directory; re-running into the same one resumes")
    p.add_argument("--jobs", type=int, default=None,
                   help="local worker processes (default: [evaluation] jobs)")
    p.add_argument("--scheduler", default=None,
                   help="Dask scheduler address, e.g. tcp://10.0.0.5:8786 (needs fearkd[dask])")
    p.add_argument("--scheduler-timeout", type=_positive_float, default=5.0, metavar="SECONDS",
                   help="give up connecting to --scheduler after this long (default 5)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _add_run(sub) -> None:
    p = sub.add_parser(
        "run", help="run an experiment file (Method 1 / Method 2, all folds)",
        description="Run the experiment a TOML file describes: features, backbone "
                    "pretraining, Method 1 and Method 2 with every KD target, the student from "
                    "scratch and the baselines, on every fold of the configured protocol. "
                    "Prints the reference's result tables; resumes an interrupted run.",
    )
    _add_experiment_args(p)
    p.set_defaults(func=_cmd_run)


def _add_cv(sub) -> None:
    p = sub.add_parser(
        "cv", help="cross-validate backbones and methods, with statistics",
        description="Cross-validate the configured pipeline for several backbone models under "
                    "a protocol, check every split with the leakage guard, and compare the "
                    "models with paired tests.",
    )
    _add_experiment_args(p)
    from .evaluation.splitters import PROTOCOLS as protocols
    from .methods import METHODS as methods
    from .models.registry import MODELS as models

    p.add_argument("--protocol", choices=tuple(protocols), default=None,
                   help=_help("evaluation protocol (default: [evaluation] protocol)", protocols))
    p.add_argument("--folds", type=_folds, default=None,
                   help="number of folds (>= 2), or 'auto' for one fold per subject (at most 10)")
    p.add_argument("--models", default=None, type=_name_list(models, "--models"),
                   help=_help("comma-separated backbones (default: [models] backbones)",
                              models))
    p.add_argument("--methods", default=None,
                   type=_name_list(methods, "--methods", extra=("backbone",)),
                   help=_help("'backbone' for the backbone comparison only, or a "
                              "comma-separated subset of the methods (default: [methods] run)",
                              methods))
    p.set_defaults(func=_cmd_cv)


def _add_compare(sub) -> None:
    from .evaluation.contrasts import DIMENSIONS as dimensions

    p = sub.add_parser(
        "compare", help="paired statistics of a run: backbones and the method's named contrasts",
        description="Paired statistics on the fold scores of a run, per protocol. By default: "
                    "every pair of backbone models (paired t-test, Nadeau-Bengio corrected "
                    "t-test, Wilcoxon, Holm, mean difference with 95 % CI, Cohen's d_z) and "
                    "the method's named contrasts (TL teacher vs teacher from scratch, each KD "
                    "target vs the scratch student, Method 1 vs Method 2, mis-paired KD), "
                    "paired on (fold, seed), Holm-adjusted across the family, with a sentence "
                    "on power when the pairs are too few for p < alpha. --by compares the "
                    "levels of one result column with every other column fixed.",
    )
    p.add_argument("--by", default=None, choices=dimensions,
                   help="compare along this result column: 'stage' = the named contrasts; "
                        "'method', 'target', 'model', 'normalize' pair that column's values "
                        "(default: backbones and named contrasts)")
    p.add_argument("rundir", type=Path, help="run directory of `fearkd cv` or `fearkd run`")
    from .evaluation.metrics import METRICS as metrics

    p.add_argument("--metric", default="accuracy", choices=tuple(metrics),
                   help=_help("metric to compare (default accuracy)", metrics))
    p.add_argument("--alpha", type=float, default=0.05, help="significance level (default 0.05)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead")
    p.set_defaults(func=_cmd_compare)


# ---------------------------------------------------------------------------------- report
def _cmd_report(args) -> int:
    from .reporting import write_report

    paths = write_report(args.rundir, formats=tuple(args.formats.split(",")))
    for kind, path in paths.items():
        print(f"Wrote {kind.upper()} report: {path}")
    return 0


def _add_report(sub) -> None:
    p = sub.add_parser(
        "report", help="write report.html and report.md from a run directory",
        description="Write a self-contained report.html (images embedded, opens offline) and "
                    "report.md (figures under RUNDIR/figures) from any run directory written "
                    "by `fearkd run`, `fearkd cv` or `fearkd demo`.",
    )
    p.add_argument("rundir", type=Path, help="run directory")
    p.add_argument("--formats", default="html,md",
                   help="comma-separated formats to write: html, md (default both)")
    p.set_defaults(func=_cmd_report)


# ------------------------------------------------------------------ train / predict / export
def _add_train(sub) -> None:
    from .deploy.cli_commands import add_train

    add_train(sub)


def _add_predict(sub) -> None:
    from .deploy.cli_commands import add_predict

    add_predict(sub)


def _add_export(sub) -> None:
    from .deploy.cli_commands import add_export

    add_export(sub)


def _add_calibrate(sub) -> None:
    from .deploy.cli_commands import add_calibrate

    add_calibrate(sub)
def _add_stream(sub) -> None:
    from .deploy.cli_commands import add_stream

    add_stream(sub)


# ------------------------------------------------------------------------------------ main
#: What a user can cause and fix: domain failures (FearkdError), a bad value the library
#: validates (ValueError, per the style guide) and a path that is not there (FileNotFoundError,
#: raised by the readers and by `compare` for a run directory without results.csv). A TypeError
#: or KeyError is a bug and keeps its traceback.
_USER_ERRORS = (FearkdError, ValueError, FileNotFoundError)

_SUBCOMMANDS = [_add_synth, _add_info, _add_labels, _add_features, _add_run, _add_cv,
               _add_compare, _add_report, _add_demo, _add_train, _add_predict, _add_export,
               _add_calibrate, _add_stream]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fearkd",
        description="Fear-level detection from EEG and peripheral physiology with transfer "
                    "learning and knowledge distillation.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add in _SUBCOMMANDS:
        add(sub)
    return parser


def _load_plugins(argv: list[str]) -> None:
    """Import plug-ins before the parser is built, so that ``choices=`` list their names.

    ``FEARKD_PLUGINS`` names plug-ins for every command; an experiment file on the command line
    names its own (its top-level ``plugins`` key, read again when the file is loaded).
    """
    from .config import _plugins, tomllib
    from .plugins import plugins_from_env

    plugins_from_env()
    for arg in argv:
        path = Path(arg)
        if arg.endswith(".toml") and path.is_file():
            try:
                data = tomllib.loads(path.read_text(encoding="utf-8"))
            except (tomllib.TOMLDecodeError, UnicodeDecodeError, OSError):
                continue  # reported with its file name when the command loads it
            if "plugins" in data:
                _plugins(data["plugins"], str(path))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        _load_plugins(argv)
    except FearkdError as exc:
        print(f"fearkd: error: {exc}", file=sys.stderr)
        return 2
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args) or 0)
    except _USER_ERRORS as exc:
        if args.debug:
            raise
        print(f"fearkd {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # disk full, read-only or unwritable folder, a path under a file
        if args.debug:
            raise
        from ._outputs import os_error_line

        print(f"fearkd {args.command}: error: {os_error_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("fearkd: interrupted; finished work is kept and a re-run resumes.", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
