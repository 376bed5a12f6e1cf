"""Reports of a run directory: result tables, figures, one self-contained HTML file, Markdown.

``write_report(rundir)`` is what ``fearkd report RUNDIR`` runs. The table builders in
:mod:`.tables` are pure (tidy results in, DataFrame out) and :func:`format_table` prints any of
them on a terminal, so ``fearkd run`` can show them too.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from .document import Document, build_document, protocol_explanation
from .html import render_html, render_markdown
from .plots import (
    figure_to_png,
    plot_confusions,
    plot_fold_scores,
    plot_history,
    plot_protocol_comparison,
)
from .rundata import RunData, confusion_sums, history_frame, load_run
from .tables import (
    backbone_table,
    baseline_table,
    finetune_table,
    format_table,
    kd_table,
    mean_ci,
    method_comparison_table,
    protocol_comparison,
    result_groups,
    summarize_folds,
    timing_table,
)

__all__ = [
    "write_report",
    "load_run",
    "build_document",
    "RunData",
    "Document",
    "backbone_table",
    "finetune_table",
    "kd_table",
    "method_comparison_table",
    "baseline_table",
    "timing_table",
    "protocol_comparison",
    "protocol_explanation",
    "result_groups",
    "summarize_folds",
    "mean_ci",
    "format_table",
    "history_frame",
    "confusion_sums",
    "plot_history",
    "plot_fold_scores",
    "plot_confusions",
    "plot_protocol_comparison",
    "figure_to_png",
    "FORMATS",
]

logger = logging.getLogger(__name__)

#: Output formats of :func:`write_report` and their file names in the run directory.
FORMATS = {"html": "report.html", "md": "report.md"}


def _write_text(path: Path, text: str) -> None:
    # Through a temporary file and a rename, so a reader never sees half a report.
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def write_report(rundir: str | Path, *, formats: Sequence[str] = ("html", "md"),
                 out: str | Path | None = None) -> dict[str, Path]:
    """Write ``report.html`` and/or ``report.md`` for a run directory.

    Parameters
    ----------
    rundir : str or Path
        A run directory of ``fearkd run``, ``fearkd cv`` or ``fearkd demo`` (needs
        ``results.csv``; every other file is optional and its section is left out without it).
    formats : sequence of {"html", "md"}
        ``"md"`` also writes every figure to ``RUNDIR/figures/<name>.png`` for the Markdown
        file to link; the HTML file embeds its figures and needs nothing beside it.
    out : str or Path, optional
        The folder to write the report files (and ``figures/``) into, created if needed;
        default the run directory itself. For a run that is read-only to you, or a report
        kept apart from the run.

    Returns
    -------
    dict of str to Path
        Format -> written file.

    Raises
    ------
    FearkdError
        ``rundir`` or its ``results.csv`` is missing.
    ValueError
        An unknown format.
    """
    if isinstance(formats, str):
        formats = (formats,)
    if not isinstance(formats, Sequence) or not formats:
        raise ValueError(
            f"Invalid value for 'formats': expected a non-empty sequence of "
            f"{sorted(FORMATS)!r}, got {formats!r}."
        )
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise ValueError(
            f"Invalid value for 'formats': {unknown!r} unknown; expected some of "
            f"{sorted(FORMATS)!r}."
        )
    run = load_run(rundir)
    doc = build_document(run)
    target = run.path if out is None else Path(out)
    target.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    if "html" in formats:
        written["html"] = target / FORMATS["html"]
        _write_text(written["html"], render_html(doc))
    if "md" in formats:
        fig_dir = target / "figures"
        fig_dir.mkdir(exist_ok=True)
        for fig in doc.figures():
            (fig_dir / f"{fig.name}.png").write_bytes(fig.png)
        written["md"] = target / FORMATS["md"]
        _write_text(written["md"], render_markdown(doc))
    logger.info("Report of %s: %s (%d sections, %d tables, %d figures)", run.path,
                ", ".join(str(p) for p in written.values()), len(doc.sections),
                len(doc.tables()), len(doc.figures()))
    return written
