"""The ``train``, ``predict`` and ``export`` subcommands (registered by :mod:`fearkd.cli`)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..errors import FearkdError

__all__ = ["add_train", "add_predict", "add_export", "check_out"]


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
    from .card import card_facts, check_run_config, model_card
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

