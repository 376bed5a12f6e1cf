"""The report's "Deployed student" section (``RUNDIR/deployed/summary.json``) and its
"Pseudo-online evaluation" section (``RUNDIR/online/summary.json``, :mod:`fearkd.deploy.online`).

``fearkd demo`` writes that file (:func:`fearkd.demo.deploy_student`): the bundle trained on
every training subject, its size, parameters and FLOPs per window
(:func:`fearkd.deploy.graph.graph_flops`), the streaming latency on a replayed subject the
model never saw, and how closely the streaming path (ONNX, one window at a time) agrees with
:meth:`fearkd.deploy.bundle.Bundle.predict` (features extracted from the whole recording).
"""

from __future__ import annotations

import json

import pandas as pd

from .blocks import Section, TableBlock, TextBlock
from .rundata import RunData

__all__ = ["deployed_section", "deployed_table", "online_section", "online_table"]


def deployed_table(summary: dict) -> pd.DataFrame:
    """One row per figure of a ``deployed/summary.json``, columns ``Value``."""
    w = summary["windows"]
    rows = {
        "Bundle": f"{summary['bundle']} ({summary['bundle_bytes'] / 1024:.1f} KiB)",
        "Model": f"{summary['model']} ({summary['stage']}), {summary['n_params']} parameters",
        "FLOPs per window": f"{summary['flops_per_window']:,} (MatMul, Gemm, Conv at batch 1)",
        "Trained on": f"{len(summary['training_subjects'])} subjects, "
                      f"{summary['epochs']} epoch(s)",
        "Replayed (never seen)": f"subject(s) {', '.join(summary['unseen']['subjects'])}, "
                                 f"{summary['unseen']['trials']} trials",
        "Streaming latency": f"p50 {summary['latency_ms']['p50']:.3f} ms, "
                             f"p99 {summary['latency_ms']['p99']:.3f} ms",
        "Stream vs predict": f"{100 * summary['agreement']:.1f} % of {w['matched']} windows "
                             f"with the same level (stream {w['stream']}, predict "
                             f"{w['predict']}); max probability difference "
                             f"{summary['max_abs_diff']:.2g}",
    }
    table = pd.DataFrame({"Value": list(rows.values())}, index=pd.Index(list(rows),
                                                                         name="Item"))
    table.attrs["marked_rows"] = []
    return table


def deployed_section(run: RunData) -> Section | None:
    """The "Deployed student" section, or None when the run deployed nothing."""
    path = run.path / "deployed" / "summary.json"
    if not path.is_file():
        return None
    summary = json.loads(path.read_text(encoding="utf-8"))
    sec = Section("deployed", "Deployed student")
    sec.intro = ("The student trained on every training subject and written as one bundle, "
                 "then one synthetic subject it never saw replayed through the streaming path "
                 "(as fast as possible) and through Bundle.predict.")
    sec.blocks.append(TableBlock("deployed", "Deployed student", deployed_table(summary)))
    card = run.path / "deployed" / "MODEL_CARD.md"
    if card.is_file():
        sec.blocks.append(TextBlock(card.read_text(encoding="utf-8"), "code"))
    return sec


def _pct(x) -> str:
    return "n/a" if x is None else f"{100 * x:.1f} %"


def online_table(summary: dict) -> pd.DataFrame:
    """One row per fold of an ``online/summary.json`` and one for all folds."""
    rows = []
    for f in summary["folds"] + [dict(summary, fold="all")]:
        rows.append({
            "Fold": str(f["fold"]),
            "Test subjects": ", ".join(f.get("test_subjects", [])) or "all",
            "Windows": f["windows"]["matched"] if isinstance(f["windows"], dict)
            else f["windows"],
            "Stream = predict": _pct(f["agreement_predict"]),
            "Stream = CV model": _pct(f["agreement_cv"]),
            "Latency p50 / p99 (ms)": f"{f['latency_ms']['p50']:.3f} / "
                                      f"{f['latency_ms']['p99']:.3f}",
            "Accuracy online (CV)": f"{_pct(f['online']['accuracy'])} "
                                    f"({_pct(f['cv'].get('accuracy'))})",
            "Balanced accuracy online (CV)": f"{_pct(f['online']['balanced_accuracy'])} "
                                             f"({_pct(f['cv'].get('balanced_accuracy'))})",
        })
    table = pd.DataFrame(rows).set_index("Fold")
    table.attrs["marked_rows"] = []
    return table


def online_section(run: RunData) -> Section | None:
    """The "Pseudo-online evaluation" section, or None when ``fearkd online`` did not run."""
    path = run.path / "online" / "summary.json"
    if not path.is_file():
        return None
    s = json.loads(path.read_text(encoding="utf-8"))
    sec = Section("online", "Pseudo-online evaluation")
    sec.intro = (f"Each fold's {s['stage']} ({s['model']}) trained on the fold's training "
                 f"subjects as a bundle, its test subjects replayed through the streaming path "
                 f"(ring buffer and ONNX graph, as fast as possible) and matched window by "
                 f"window with Bundle.predict and with the CV's own model (`fearkd online`).")
    sec.blocks.append(TableBlock("online", "Pseudo-online evaluation", online_table(s)))
    if s["differences"]:
        sec.blocks.append(TextBlock("The CV scored other features than the deployed graph "
                                    "computes: " + "; ".join(s["differences"]) + ".",
                                    "warning"))
    b = s["budget"]
    curve = pd.DataFrame({"Minutes of calibration": [f"{m:g}" for m in b["minutes"]],
                          "Accuracy": [_pct(a) for a in b["accuracy"]],
                          "Balanced accuracy": [_pct(a) for a in b["balanced_accuracy"]]}
                         ).set_index("Minutes of calibration")
    curve.attrs["marked_rows"] = []
    part = f"the stage {b['rest']!r}" if b["rest"] else "the first minutes of each recording"
    sec.blocks.append(TableBlock("online-budget", "Enrolment budget", curve,
                                 note=f"Mean over {b['subjects']} held-out subjects; the "
                                      f"normaliser fitted on {part}."))
    for w in s.get("warnings", []):
        sec.blocks.append(TextBlock(w, "warning"))
    return sec
