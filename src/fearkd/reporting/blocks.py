"""The report's building blocks: sections of tables, figures and text, and the document.

Kept apart from :mod:`.document` (which decides what the report shows) so that a module adding a
section, e.g. :mod:`.deployed`, builds blocks without importing the whole document.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import pandas as pd

__all__ = ["Document", "FigureBlock", "Section", "TableBlock", "TextBlock", "slug"]


def slug(*parts: object) -> str:
    """``"history", "deap", "Method 1"`` -> ``"history-deap-method-1"`` (ids and file names)."""
    text = "-".join(str(p) for p in parts if str(p) not in ("", "-", "nan"))
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


@dataclass
class TableBlock:
    """A table: ``id`` is unique in the document (the HTML ``data-table`` attribute)."""

    id: str
    title: str
    table: pd.DataFrame
    note: str = ""


@dataclass
class FigureBlock:
    """A rendered figure: ``name`` is unique (``data-figure``; ``figures/<name>.png``)."""

    name: str
    title: str
    png: bytes
    caption: str = ""


@dataclass
class TextBlock:
    """A paragraph; ``kind`` is ``"p"``, ``"warning"`` or ``"code"`` (preformatted)."""

    text: str
    kind: str = "p"


@dataclass
class Section:
    id: str
    title: str
    blocks: list = field(default_factory=list)
    intro: str = ""


@dataclass
class Document:
    title: str
    meta: list  # (label, value) pairs for the header
    sections: list

    def figures(self) -> list[FigureBlock]:
        return [b for s in self.sections for b in s.blocks if isinstance(b, FigureBlock)]

    def tables(self) -> list[TableBlock]:
        return [b for s in self.sections for b in s.blocks if isinstance(b, TableBlock)]
