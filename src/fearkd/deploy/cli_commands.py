"""The ``train``, ``predict``, ``export``, ``calibrate``, ``stream`` and ``online`` subcommands
(registered by the CLI)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..errors import FearkdError

__all__ = ["add_train", "add_predict", "add_export", "add_calibrate", "add_stream", "add_online",
           "check_out"]


class OutputPathError(FearkdError, ValueError):
    """An output path that cannot be written."""


def check_out(path: Path, flag: str) -> Path:
    """Refuse an output path under a regular file or in a folder that cannot be written."""
    path = Path(path)
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise OutputPathError(f"{flag} {str(path)!r}: {str(parent)!r} is a file, not a "
                                      f"folder; choose {flag} in a folder.")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise OutputPathError(f"{flag} {str(path)!r}: folder {str(parent)!r} is not "
                                      f"writable; choose {flag} in a folder you can write.")
            break
    if path.is_dir():
        raise OutputPathError(f"{flag} {str(path)!r} is a folder; give a file name.")
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


# ----------------------------------------------------------------------------------- train
def _cmd_train(args) -> int:
    from ..config import load_config
    from .card import card_facts, check_run_config, feature_path_facts, model_card
    from .train import train_final

    out = check_out(args.out, "--out")
    cfg = load_config(args.experiment)
    if args.cv is not None:
        check_run_config(cfg, args.cv)
    bundle = train_final(cfg, student=args.student, data_path=args.data,
                         synthetic=args.synthetic, progress=not args.quiet)
    rundir = args.cv
    if args.with_cv:
        from ..experiment import run_experiment

        rundir = out.with_name(out.stem + "-cv")
        from .train import deploy_config

        # the CV measures the features the bundle computes (per-window band power)
        run_experiment(deploy_config(cfg), rundir, data_path=args.data, progress=not args.quiet)
    facts = None
    if rundir is not None:
        facts = card_facts(rundir, bundle.manifest["stage"], bundle.manifest["model"]["name"])
        facts["feature_path"] = feature_path_facts(rundir, bundle.manifest)
        bundle.manifest["cv"] = {"run": str(rundir), **{k: v for k, v in facts.items()}}
    bundle.card = model_card(bundle.manifest, facts)
    bundle.save(out)
    card_path = out.with_name("MODEL_CARD.md")
    card_path.write_text(bundle.card)
    m = bundle.manifest
    print(f"Wrote {out} ({out.stat().st_size / 1024:.1f} KiB): {m['stage']} "
          f"({m['model']['name']}, {m['model']['n_params']} parameters), input "
          f"{m['input_kind']}, trained on {len(m['training_data']['subjects'])} subjects")
    print(f"Wrote {card_path}")
    return 0


def add_train(sub) -> None:
    p = sub.add_parser(
        "train", help="train an experiment's model on all subjects and write a bundle",
        description="Train the experiment's recipe (backbone -> teacher -> student as "
                    "configured) on every subject, early stopping on an inner validation "
                    "split, and write one bundle file (weights, ONNX graph with the features "
                    "inside, manifest; see docs/BUNDLE.md) and MODEL_CARD.md beside it.",
    )
    p.add_argument("experiment", type=Path, help="experiment TOML file")
    p.add_argument("--out", type=Path, required=True, help="bundle file to write (MODEL)")
    p.add_argument("--student", default=None,
                   help="stage key of the model to bundle, e.g. method1/student/soft or "
                        "method1/teacher/- (default: the experiment's first student)")
    cv = p.add_mutually_exclusive_group()
    cv.add_argument("--cv", type=Path, default=None,
                    help="a finished `fearkd run`/`cv` run directory of the same experiment: "
                         "its figures go into the model card")
    cv.add_argument("--with-cv", action="store_true",
                    help="run the cross-validation first (into MODEL's name + '-cv')")
    p.add_argument("--data", type=Path, default=None, help="dataset path ([dataset] path)")
    p.add_argument("--synthetic", action="store_true", default=None,
                   help="declare the training data synthetic (the model card says so)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_train)


# --------------------------------------------------------------------------------- predict
def _cmd_predict(args) -> int:
    from ..datasets.loaders import open_dataset
    from .bundle import load_bundle
    from .predict import parse_channel_map, predict_recordings, score

    out = check_out(args.out, "--out")
    mapping = parse_channel_map(args.channel_map)
    bundle = load_bundle(args.model)
    pred = predict_recordings(bundle, open_dataset(args.data), channel_map=mapping,
                              strict_rate=args.strict_rate)
    pred.to_csv(out, index=False)
    print(f"Wrote {len(pred)} window predictions to {out}")
    if args.score:
        print(json.dumps(score(pred, bundle.class_names), indent=2))
    return 0


def add_predict(sub) -> None:
    p = sub.add_parser(
        "predict", help="predict fear levels for every window of a dataset with a bundle",
        description="Apply a bundle to every window of DATA (anything a fearkd reader opens: "
                    "a DEAP/ASCERTAIN folder, a generic description TOML, ...). Writes one "
                    "CSV row per window: subject, trial, t_start, t_stop (s), predicted, "
                    "p_<class> per class, y_true (empty when unlabelled).",
    )
    p.add_argument("model", type=Path, help="bundle file written by `fearkd train`")
    p.add_argument("data", type=Path, help="dataset folder or description file")
    p.add_argument("--out", type=Path, required=True, help="CSV file to write")
    p.add_argument("--score", action="store_true",
                   help="print accuracy, balanced accuracy and macro-F1 over labelled windows")
    p.add_argument("--channel-map", default=None,
                   help="rename data channels to the bundle's names: DATA=BUNDLE,...")
    p.add_argument("--strict-rate", action="store_true",
                   help="refuse a sampling rate other than the bundle's instead of resampling")
    p.set_defaults(func=_cmd_predict)


# ---------------------------------------------------------------------------------- export
def _cmd_export(args) -> int:
    from .bundle import load_bundle

    out = check_out(args.onnx, "--onnx")
    bundle = load_bundle(args.model)
    out.write_bytes(bundle.onnx_bytes)
    m = bundle.manifest
    shape = (f"[batch, {len(m['channels'])}, {m['n_samples']}] raw samples at {m['sfreq']:g} Hz"
             if m["input_kind"] == "samples" else f"[batch, {len(m['feature_names'])}] features")
    print(f"Wrote {out}: input '{m['onnx']['input']}' {shape}, output 'probabilities' "
          f"[batch, {len(bundle.class_names)}]")
    return 0


def add_export(sub) -> None:
    p = sub.add_parser(
        "export", help="write a bundle's ONNX graph alone",
        description="Write the bundle's ONNX graph (features, normaliser with initialisers "
                    "'norm_mean'/'norm_scale', network, softmax) to a file for onnxruntime.",
    )
    p.add_argument("model", type=Path, help="bundle file")
    p.add_argument("--onnx", type=Path, required=True, help="ONNX file to write")
    p.set_defaults(func=_cmd_export)



# ------------------------------------------------------------------------------- calibrate
def _ids(text: str | None, flag: str):
    if text is None:
        return None
    ids = [t.strip() for t in text.split(",") if t.strip()]
    if not ids:
        raise ValueError(f"{flag}: expected comma-separated ids (e.g. '1,2,3'), got {text!r}.")
    return ids


def _cmd_calibrate(args) -> int:
    from ..datasets.loaders import open_dataset
    from .bundle import load_bundle
    from .calibrate import budget_curve, calibrate_bundle, parse_part
    from .predict import parse_channel_map

    out = check_out(args.out, "--out")
    mapping = parse_channel_map(args.channel_map)
    rest = parse_part(args.rest)
    bundle = load_bundle(args.model)
    recordings = open_dataset(args.recording)
    if args.budget_curve:
        if isinstance(rest, float):
            raise ValueError(f"--rest {args.rest!r} with --budget-curve: expected a stage name "
                             f"(the budgets are the minutes); e.g. --rest baseline.")
        minutes = None if args.minutes is None else \
            [float(m) for m in _ids(args.minutes, "--minutes")]
        curve = budget_curve(bundle, recordings, minutes=minutes, rest=rest,
                             subjects=_ids(args.subject, "--subject"), channel_map=mapping)
        curve.to_csv(out, index=False)
        mean = curve.groupby("minutes")["accuracy"].mean()
        print(f"Wrote {out}: {curve['subject'].nunique()} held-out subject(s); mean accuracy "
              f"by minutes of calibration: "
              + ", ".join(f"{m:g} min {100 * a:.1f} %" for m, a in mean.items()))
        return 0
    if args.epochs is not None and not args.labelled:
        raise ValueError("--epochs sets head fine-tuning: add --labelled, or drop --epochs.")
    cal = calibrate_bundle(bundle, recordings, subject=args.subject,
                           trials=_ids(args.trials, "--trials"), rest=rest,
                           labelled=args.labelled,
                           labelled_trials=_ids(args.labelled_trials, "--labelled-trials"),
                           epochs=20 if args.epochs is None else args.epochs,
                           thresholds=args.thresholds, channel_map=mapping)
    cal.save(out)
    c = cal.manifest["calibration"]
    extra = ""
    if c["head_epochs"]:
        extra += f"; head fine-tuned {c['head_epochs']} epochs on {c['n_labelled_windows']} " \
                 f"labelled windows"
    if "thresholds" in cal.manifest:
        offs = cal.manifest["thresholds"]["logit_offsets"]
        extra += "; logit offsets " + ", ".join(f"{n} {o:+g}" for n, o in
                                                zip(cal.class_names, offs, strict=True))
    print(f"Wrote {out}: calibrated to subject {c['subject']} on {c['n_rest_windows']} resting "
          f"windows{extra}")
    return 0


def add_calibrate(sub) -> None:
    p = sub.add_parser(
        "calibrate", help="adapt a bundle to one user from a resting recording",
        description="A resting/baseline recording of one user (anything a fearkd reader "
                    "opens) sets the user's normaliser (the manifest's and the ONNX graph's "
                    "norm_mean/norm_scale); --labelled also fine-tunes the last layer on the "
                    "user's labelled windows, --thresholds chooses per-class logit offsets that "
                    "predict and Bundle.predict_proba apply. With --budget-curve, RECORDING "
                    "holds held-out subjects and --out gets their accuracy against minutes of "
                    "calibration data. See docs/BUNDLE.md.",
    )
    p.add_argument("model", type=Path, help="bundle file written by `fearkd train`")
    p.add_argument("recording", type=Path, help="the user's recording (dataset folder or file)")
    p.add_argument("--out", type=Path, required=True,
                   help="calibrated bundle to write (USER_MODEL), or the CSV of --budget-curve")
    p.add_argument("--subject", default=None,
                   help="the user's subject id when the recording holds several (with "
                        "--budget-curve: comma-separated held-out subjects, default all)")
    p.add_argument("--trials", default=None, help="comma-separated trial ids to use (default all)")
    p.add_argument("--rest", default=None,
                   help="the resting part that sets the normaliser: a stage name (e.g. "
                        "baseline) or the first N seconds ('60s'); default every window")
    p.add_argument("--labelled", action="store_true",
                   help="fine-tune the last layer on the user's labelled windows")
    p.add_argument("--labelled-trials", default=None,
                   help="comma-separated trials whose labelled windows --labelled uses "
                        "(default: --trials)")
    p.add_argument("--epochs", type=int, default=None,
                   help="head fine-tuning epochs with --labelled (1-200, default 20)")
    p.add_argument("--thresholds", action="store_true",
                   help="choose per-class logit offsets on the labelled windows (needs "
                        "--labelled)")
    p.add_argument("--budget-curve", action="store_true",
                   help="score held-out subjects against minutes of calibration data instead")
    p.add_argument("--minutes", default=None,
                   help="budgets for --budget-curve, e.g. '0,0.5,1,2' (default 0 to the whole "
                        "resting part, or half the recording)")
    p.add_argument("--channel-map", default=None,
                   help="rename data channels to the bundle's names: DATA=BUNDLE,...")
    p.set_defaults(func=_cmd_calibrate)
# ---------------------------------------------------------------------------------- stream
def _speed(text: str) -> float | None:
    import argparse

    if text == "max":
        return None
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0 or value != value or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number (x real time) or 'max', "
                                         f"got {text!r}; e.g. --speed 1 or --speed max")
    return value


def _positive(text: str) -> float:
    import argparse

    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}; "
                                         f"e.g. --timeout 5")
    return value


class _Writer:
    """Records as JSON lines or CSV on stdout, flushed one by one."""

    def __init__(self, fmt: str, class_names) -> None:
        import sys

        self.fmt = fmt
        self.out = sys.stdout
        self.columns = (["t", "t_start", "start", "stop", "status", "level"]
                        + [f"p_{c}" for c in class_names] + ["latency_ms"])
        if fmt == "csv":
            self.out.write(",".join(self.columns) + "\n")

    def write(self, rec: dict) -> None:
        if self.fmt == "jsonl":
            self.out.write(json.dumps(rec) + "\n")
        else:
            self.out.write(",".join("" if rec[c] is None else str(rec[c])
                                    for c in self.columns) + "\n")
        self.out.flush()


def _cmd_stream(args) -> int:
    import sys
    import time

    from .bundle import load_bundle
    from .predict import adapt_recordings, parse_channel_map
    from .stream import (
        LslSink,
        LslSource,
        StreamPredictor,
        pick_trial,
        replay_chunks,
        trial_samples,
    )

    if args.lsl is not None and (args.subject is not None or args.trial is not None):
        raise ValueError("--subject/--trial choose what --replay plays; with --lsl drop them.")
    mapping = parse_channel_map(args.channel_map)
    bundle = load_bundle(args.model)
    predictor = StreamPredictor(bundle)
    spec = bundle.spec
    source = None
    if args.replay is not None:
        from ..datasets.loaders import open_dataset

        recordings = adapt_recordings(open_dataset(args.replay), bundle, channel_map=mapping)
        trial = pick_trial(recordings, args.subject, args.trial)
        chunks = replay_chunks(trial_samples(trial, spec.channels), spec.sfreq,
                               speed=args.speed, chunk=predictor.n_step)
    else:
        source = LslSource(args.lsl, spec.channels, spec.sfreq, timeout=args.timeout,
                           channel_map=mapping)
        chunks = source.chunks()
    sink = LslSink(args.lsl_out, bundle.class_names, spec.sfreq / predictor.n_step) \
        if args.lsl_out else None
    writer = _Writer(args.format, bundle.class_names)
    stall_s = max(1.0, 2 * predictor.n_step / spec.sfreq)
    last = time.monotonic()
    code = 0
    try:
        for samples, ts in chunks:
            if len(ts):
                last = time.monotonic()
                records = predictor.push(samples, ts)
            elif source is not None and time.monotonic() - last > stall_s:
                records = predictor.stalled(source.now())
            else:
                records = []
            for rec in records:
                writer.write(rec)
                if sink is not None:
                    sink.push(rec)
    except KeyboardInterrupt:
        code = 130
    finally:
        if source is not None:
            source.close()
    print(f"fearkd stream: {predictor.stats.line()}", file=sys.stderr)
    return code


def add_stream(sub) -> None:
    p = sub.add_parser(
        "stream", help="predict fear levels on a live LSL stream or a replayed recording",
        description="Apply a bundle to a live LSL stream (--lsl NAME) or to one trial of any "
                    "dataset a fearkd reader opens, replayed on its own clock (--replay DATA). "
                    "A ring buffer per channel gives one prediction per step (the bundle's "
                    "window and step). Each record on stdout holds t (window end, s, on the "
                    "recording's clock), t_start, the sample range start/stop, status, level, "
                    "p_<class> and latency_ms; a window with missing samples (a gap, NaN, a "
                    "stalled input) has status 'no prediction: signal missing'. Ctrl-C or the "
                    "end of the input prints a summary on stderr.",
    )
    p.add_argument("model", type=Path, help="bundle file written by `fearkd train`")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--lsl", metavar="NAME", default=None, help="name of the LSL stream to read")
    src.add_argument("--replay", metavar="DATA", type=Path, default=None,
                     help="dataset folder, description file or recording to replay")
    p.add_argument("--subject", default=None, help="--replay: the subject to play")
    p.add_argument("--trial", type=int, default=None, help="--replay: the trial to play")
    p.add_argument("--speed", type=_speed, default=1.0,
                   help="--replay: multiple of real time, or 'max' (default 1)")
    p.add_argument("--timeout", type=_positive, default=5.0,
                   help="--lsl: seconds to wait for the stream (default 5)")
    p.add_argument("--format", choices=("jsonl", "csv"), default="jsonl",
                   help="output on stdout (default jsonl)")
    p.add_argument("--lsl-out", metavar="NAME", default=None,
                   help="also publish the class probabilities as an LSL outlet NAME")
    p.add_argument("--channel-map", default=None,
                   help="rename input channels to the bundle's names: INPUT=BUNDLE,...")
    p.set_defaults(func=_cmd_stream)


# ---------------------------------------------------------------------------------- online
def _cmd_online(args) -> int:
    from .calibrate import parse_part
    from .online import ONLINE_DIR, online_evaluation

    rest = parse_part(args.rest)
    if isinstance(rest, float):
        raise ValueError(f"--rest {args.rest!r}: expected a stage name (the budgets are the "
                         f"minutes); e.g. --rest baseline.")
    minutes = None if args.minutes is None else \
        [float(m) for m in _ids(args.minutes, "--minutes")]
    check_out(args.rundir / ONLINE_DIR / "summary.json", "RUN")
    s = online_evaluation(args.rundir, student=args.student, data_path=args.data, rest=rest,
                          minutes=minutes, dataset=args.dataset, progress=not args.quiet)

    def pct(x):
        return "n/a" if x is None else f"{100 * x:.1f} %"

    print(f"Wrote {args.rundir / ONLINE_DIR}/: {s['stage']} ({s['model']}) replayed over "
          f"{len(s['folds'])} folds, {s['windows']} windows")
    print(f"  stream vs predict (same bundle): {pct(s['agreement_predict'])} same level, max "
          f"|dp| {s['max_abs_diff_predict']:.2g}; stream vs the CV's model: "
          f"{pct(s['agreement_cv'])}")
    print(f"  latency p50 {s['latency_ms']['p50']:.3f} ms, p99 {s['latency_ms']['p99']:.3f} ms")
    print(f"  accuracy online {pct(s['online']['accuracy'])} (CV {pct(s['cv'].get('accuracy'))}"
          f"), balanced {pct(s['online']['balanced_accuracy'])} (CV "
          f"{pct(s['cv'].get('balanced_accuracy'))})")
    b = s["budget"]
    print("  calibration budget: " + ", ".join(
        f"{m:g} min {pct(a)}" for m, a in zip(b["minutes"], b["accuracy"], strict=True)))
    for d in s["differences"]:
        print(f"  differs from the CV: {d}")
    return 0


def add_online(sub) -> None:
    p = sub.add_parser(
        "online", help="replay a finished CV through the deployed path (pseudo-online)",
        description="For each subject-wise fold of a finished `fearkd cv`/`run` directory: "
                    "train the fold's bundle on its training subjects (as `fearkd train`), "
                    "replay its test subjects through the ring buffer and ONNX graph of "
                    "`fearkd stream` (as fast as possible), and report per-window agreement "
                    "with Bundle.predict and with the CV's own model, latency p50/p99, the "
                    "scores next to the CV's, and enrolment-budget curves (accuracy against "
                    "minutes of calibration data). Writes RUN/online/ (summary.json, "
                    "windows.csv, budget.csv); `fearkd report RUN` shows it.",
    )
    p.add_argument("rundir", type=Path, metavar="RUN", help="a finished run directory")
    p.add_argument("--student", default=None,
                   help="stage key to deploy, e.g. method1/student/soft (default: the "
                        "experiment's first student)")
    p.add_argument("--data", type=Path, default=None, help="dataset path ([dataset] path)")
    p.add_argument("--rest", default=None,
                   help="stage name of the resting part the budget curves calibrate on "
                        "(default: the first minutes of each recording, with a warning)")
    p.add_argument("--minutes", default=None,
                   help="calibration budgets, e.g. '0,0.5,1,2' (default 0 to the whole part)")
    p.add_argument("--dataset", default=None,
                   help="which experiment of a demo's run directory (e.g. deap)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_online)
