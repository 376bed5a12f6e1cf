"""The report's two renderings: one self-contained HTML file, and GitHub-flavoured Markdown.

The HTML file has inline CSS, figures as base64 PNG and no scripts; it opens offline in any
browser. Each section is ``<section id="...">``, each table
``<table data-table="...">`` and each figure ``<img data-figure="...">``, so tests and tools can
find them. Baseline and chance rows carry ``class="marked"``; warnings ``class="warning"``.
The Markdown file mirrors the tables as pipe tables and links the figures as
``figures/<name>.png``, which :func:`fearkd.reporting.write_report` saves next to it.
"""

from __future__ import annotations

import base64
from html import escape

from .._version import __version__
from .blocks import Document, FigureBlock, TableBlock, TextBlock
from .tables import display_frame

__all__ = ["render_html", "table_html", "render_markdown", "table_markdown"]

_CSS = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d2430;
margin:0;background:#f6f7f9}
main,header,nav,footer{max-width:1180px;margin:0 auto;padding:0 24px}
header{padding-top:22px}h1{font-size:1.6em;margin:.2em 0 .4em}
h2{font-size:1.3em;border-bottom:2px solid #d4dae3;padding-bottom:4px;margin-top:1.8em}
dl.meta{display:grid;grid-template-columns:max-content auto;gap:2px 14px;margin:0 0 12px;
background:#fff;border:1px solid #dde2ea;border-radius:6px;padding:10px 14px}
dl.meta dt{font-weight:600;color:#4a5566}dl.meta dd{margin:0}
nav ol{columns:2;background:#fff;border:1px solid #dde2ea;border-radius:6px;
padding:10px 10px 10px 34px;margin:0}
nav a,main a{color:#1f5fa8;text-decoration:none}
section{background:#fff;border:1px solid #dde2ea;border-radius:6px;padding:6px 18px 16px;
margin:18px 0}
section h2{margin-top:.6em}
figure{margin:14px 0}figcaption{font-weight:600;margin:4px 0 6px;color:#2c3848}
main,section,figure{min-width:0;max-width:100%}
.tablewrap{overflow-x:auto;max-width:100%}
table{border-collapse:collapse;font-size:13px;font-variant-numeric:tabular-nums}
th,td{padding:4px 9px;border-bottom:1px solid #e3e7ee;text-align:right;white-space:nowrap}
th:first-child,td:first-child{text-align:left}
thead th{background:#eef2f7;border-bottom:2px solid #c9d2de}
tr.marked td{background:#fbf6e4;color:#6b5b1e;font-style:italic}
tbody tr:hover td{background:#f1f6fc}
p.note{color:#5a6474;font-size:13px;margin:4px 0}
p.warning{background:#fff3f0;border-left:4px solid #d9534f;padding:8px 12px;color:#7a2420}
p.intro{color:#3c4656}
img{max-width:100%;height:auto;border:1px solid #e3e7ee;border-radius:4px}
pre{background:#f3f5f8;border:1px solid #dde2ea;padding:10px;overflow-x:auto;font-size:12px}
footer{color:#7a8494;font-size:12px;padding:10px 24px 30px}
"""


def table_html(block: TableBlock) -> str:
    """One table as an HTML ``<figure>``; cells formatted by :func:`display_frame`."""
    frame = display_frame(block.table)
    marked = {str(r) for r in block.table.attrs.get("marked_rows", [])}
    head = "".join(f"<th>{escape(str(c))}</th>" for c in [frame.index.name or "", *frame.columns])
    rows = []
    for label, values in zip(frame.index, frame.itertuples(index=False), strict=True):
        cls = ' class="marked"' if str(label) in marked else ""
        cells = "".join(f"<td>{escape(str(v))}</td>" for v in values)
        rows.append(f"<tr{cls}><td>{escape(str(label))}</td>{cells}</tr>")
    note = f'<p class="note">{escape(block.note)}</p>' if block.note else ""
    return (f'<figure class="table"><figcaption>{escape(block.title)}</figcaption>'
            f'<div class="tablewrap"><table data-table="{escape(block.id)}"><thead><tr>{head}'
            f'</tr></thead><tbody>{"".join(rows)}</tbody></table></div>{note}</figure>')


def _figure_html(block: FigureBlock) -> str:
    data = base64.b64encode(block.png).decode("ascii")
    caption = escape(block.caption or block.title)
    return (f'<figure class="plot"><img data-figure="{escape(block.name)}" '
            f'alt="{escape(block.title)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{caption}</figcaption></figure>")


def _text_html(block: TextBlock) -> str:
    if block.kind == "code":
        return f"<pre>{escape(block.text)}</pre>"
    if block.kind == "warning":
        return f'<p class="warning">&#9888; {escape(block.text)}</p>'
    return f"<p>{escape(block.text)}</p>"


def render_html(doc: Document) -> str:
    """The whole report as one HTML string."""
    meta = "".join(f"<dt>{escape(k)}</dt><dd>{escape(str(v))}</dd>" for k, v in doc.meta)
    toc = "".join(f'<li><a href="#{escape(s.id)}">{escape(s.title)}</a></li>'
                  for s in doc.sections)
    body = []
    for sec in doc.sections:
        parts = [f'<section id="{escape(sec.id)}"><h2>{escape(sec.title)}</h2>']
        if sec.intro:
            parts.append(f'<p class="intro">{escape(sec.intro)}</p>')
        for block in sec.blocks:
            if isinstance(block, TableBlock):
                parts.append(table_html(block))
            elif isinstance(block, FigureBlock):
                parts.append(_figure_html(block))
            else:
                parts.append(_text_html(block))
        parts.append("</section>")
        body.append("\n".join(parts))
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(doc.title)}</title><style>{_CSS}</style></head><body>\n"
        f'<header id="overview"><h1>{escape(doc.title)}</h1><dl class="meta">{meta}</dl>'
        "</header>\n"
        f'<nav id="toc"><h2>Contents</h2><ol>{toc}</ol></nav>\n<main>\n'
        + "\n".join(body)
        + f"\n</main>\n<footer>Written by fearkd {escape(__version__)}. Cells: mean ± half-width "
        "of the 95 % t-interval across folds; marked rows are chance level or baselines."
        "</footer>\n</body></html>\n"
    )


# ------------------------------------------------------------------------------- markdown
def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def table_markdown(block: TableBlock) -> str:
    """One table as a pipe table; marked (baseline/chance) rows in italics."""
    frame = display_frame(block.table)
    marked = {str(r) for r in block.table.attrs.get("marked_rows", [])}
    cols = [frame.index.name or "", *frame.columns]
    lines = [f"**{_cell(block.title)}**", "",
             "| " + " | ".join(_cell(c) for c in cols) + " |",
             "|" + "|".join([":---"] + ["---:"] * (len(cols) - 1)) + "|"]
    for label, values in zip(frame.index, frame.itertuples(index=False), strict=True):
        name = f"*{_cell(label)}*" if str(label) in marked else _cell(label)
        lines.append("| " + " | ".join([name, *(_cell(v) for v in values)]) + " |")
    if block.note:
        lines += ["", f"_{_cell(block.note)}_"]
    return "\n".join(lines)


def render_markdown(doc: Document, figure_dir: str = "figures") -> str:
    """The whole report; figure ``name`` is linked as ``<figure_dir>/<name>.png``."""
    out = [f"# {doc.title}", ""]
    out += [f"- **{k}:** {v}" for k, v in doc.meta]
    out += ["", "## Contents", ""]
    out += [f"{i}. [{s.title}](#{s.id})" for i, s in enumerate(doc.sections, 1)]
    for sec in doc.sections:
        # An explicit anchor keeps the links stable whatever the renderer does to headings.
        out += ["", f'<a id="{sec.id}"></a>', "", f"## {sec.title}", ""]
        if sec.intro:
            out += [sec.intro, ""]
        for block in sec.blocks:
            if isinstance(block, TableBlock):
                out += [table_markdown(block), ""]
            elif isinstance(block, FigureBlock):
                out += [f"![{_cell(block.title)}]({figure_dir}/{block.name}.png)", "",
                        f"*{_cell(block.caption or block.title)}*", ""]
            elif isinstance(block, TextBlock) and block.kind == "code":
                out += ["```json", block.text, "```", ""]
            elif isinstance(block, TextBlock) and block.kind == "warning":
                out += [f"> **Warning:** {block.text}", ""]
            else:
                out += [block.text, ""]
    out += ["", "_Cells: mean ± half-width of the 95 % t-interval across folds (n = folds); "
                "italic rows are chance level or baselines._", ""]
    return "\n".join(out)
