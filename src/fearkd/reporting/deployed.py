"""The report's "Deployed student" section, read from ``RUNDIR/deployed/summary.json``.

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

__all__ = ["deployed_section", "deployed_table"]


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
