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
import logging
import sys
from pathlib import Path

from .cli_data import (
    _add_features,
    _add_info,
    _add_labels,
    _add_synth,
    _folds,
    _help,
    _name_list,
    _positive_float,
    _print_json,
)
from .errors import FearkdError

__all__ = ["main", "build_parser"]

logger = logging.getLogger("fearkd")


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
    from .reporting.text import method_tables, timing_text

    res = _experiment(args)
    for text in method_tables(res.results):
        print(text)
        print()
    print(timing_text(res.timing, res.wall_seconds))
    print(f"\nData: {_data_title(res.data)}")
    print(f"Results: {res.rundir.path / 'results.csv'} ({len(res.results)} rows); "
          f"wall time {seconds_text(res.wall_seconds)}. Report: fearkd report {res.rundir.path}")
    return 0


def _cmd_cv(args) -> int:
    from .experiment import seconds_text
    from .reporting.text import comparison_text, method_tables, timing_text

    models = list(args.models) if args.models else None
    methods = None
    if args.methods is not None:
        methods = tuple(m for m in args.methods if m != "backbone")
    res = _experiment(args, methods=methods, folds=args.folds,
                      protocols=[args.protocol] if args.protocol else None, models=models)
    for text in method_tables(res.results):
        print(text)
        print()
    print(timing_text(res.timing, res.wall_seconds))
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
                    "Prints the reference's result tables (with [[datasets]], also the "
                    "combined student's test accuracy per dataset next to each dataset's own "
                    "student); resumes an interrupted run.",
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

    paths = write_report(args.rundir, formats=tuple(args.formats.split(",")), out=args.out)
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
    p.add_argument("--out", type=Path, default=None, metavar="DIR",
                   help="folder to write the report into (default the run directory; use it "
                        "for a run you cannot write to)")
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


def _add_online(sub) -> None:
    from .deploy.cli_commands import add_online

    add_online(sub)


# ------------------------------------------------------------------------------------ main
#: What a user can cause and fix: domain failures (FearkdError), a bad value the library
#: validates (ValueError, per the style guide) and a path that is not there (FileNotFoundError,
#: raised by the readers and by `compare` for a run directory without results.csv). A TypeError
#: or KeyError is a bug and keeps its traceback.
_USER_ERRORS = (FearkdError, ValueError, FileNotFoundError)

_SUBCOMMANDS = [_add_synth, _add_info, _add_labels, _add_features, _add_run, _add_cv,
               _add_compare, _add_report, _add_demo, _add_train, _add_predict, _add_export,
               _add_calibrate, _add_stream, _add_online]


def _command_of(adder) -> str:
    return adder.__name__.removeprefix("_add_")


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The ``fearkd`` parser; ``only``: build that subcommand alone (``main`` does so for a
    known command, so that ``stream`` or ``predict`` never import the registries, and torch,
    to list the choices of other commands)."""
    parser = argparse.ArgumentParser(
        prog="fearkd",
        description="Fear-level detection from EEG and peripheral physiology with transfer "
                    "learning and knowledge distillation.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add in _SUBCOMMANDS:
        if only is None or _command_of(add) == only:
            add(sub)
    return parser


def _load_plugins(argv: list[str]) -> None:
    """Import plug-ins before the parser is built, so that ``choices=`` list their names.

    ``FEARKD_PLUGINS`` names plug-ins for every command; an experiment file on the command line
    names its own (its top-level ``plugins`` key, read again when the file is loaded).
    """
    from .plugins import plugins_from_env

    plugins_from_env()
    for arg in argv:
        path = Path(arg)
        if arg.endswith(".toml") and path.is_file():
            # imported here only: the config module pulls in torch, which `stream` and
            # `predict` through ONNX never need
            from .config import _plugins, tomllib

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
    command = next((a for a in argv if not a.startswith("-")), None)
    known = {_command_of(add) for add in _SUBCOMMANDS}
    parser = build_parser(command if command in known else None)
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
