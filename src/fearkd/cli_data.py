"""The ``fearkd`` commands that look at data: ``synth``, ``info``, ``labels``, ``features``,
and the argument helpers every command shares (registry-built ``choices=``, JSON output).

Kept apart from :mod:`fearkd.cli`, which holds the experiment commands, the parser and
``main``; the same rules apply: argparse parses, the library works, one line per user error.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


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
    elif args.dataset == "e4":
        root = synthetic.write_e4(args.out, n_subjects=args.subjects, seconds=args.seconds,
                                  random_state=args.seed).parent
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
                    "format, with physiology driven by each trial's ratings, or Empatica E4 "
                    "exports (one session folder per subject, stages between button presses, "
                    "stress raising EDA and heart rate) with their description.toml.",
    )
    p.add_argument("dataset", choices=["deap", "ascertain", "e4"], help="which format to write")
    p.add_argument("out", type=Path, help="output folder (the dataset root)")
    p.add_argument("--subjects", type=int, default=4, help="number of subjects (default 4)")
    p.add_argument("--trials", type=int, default=None,
                   help="trials (DEAP, max 40) or clips (ASCERTAIN, max 36) per subject "
                        "(default: the real number; E4: not used, its stages come from tags)")
    p.add_argument("--seconds", type=float, default=None,
                   help="trial length in seconds (DEAP default 63 incl. 3 s baseline, max 63; "
                        "ASCERTAIN default 60, clip lengths vary around it; E4: the session "
                        "length, default 600, at least 60)")
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
    if args.dataset == "e4":
        if args.trials is not None or args.format != "dat":
            raise ValueError("--trials and --format do not apply to E4: its stages come from "
                             "the button presses; drop them (--seconds sets the session length).")
        args.seconds = 600.0 if args.seconds is None else args.seconds
    if args.trials is None:
        args.trials = 40 if args.dataset == "deap" else 36
    if args.seconds is None:
        args.seconds = 63.0 if args.dataset == "deap" else 60.0
    if args.dataset == "ascertain" and args.format != "dat":
        raise ValueError("--format applies to DEAP only; ASCERTAIN is always MATLAB .mat files.")
    if args.dataset in ("ascertain", "e4"):
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
