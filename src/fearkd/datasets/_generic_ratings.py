"""Self-reports per subject and stage (or trial) for :mod:`fearkd.datasets.generic`.

``[dataset.labels] ratings_file = "ratings.csv"`` (relative to ``root``) names a CSV with a
``subject`` column (the fearkd subject id, e.g. ``S1``, or the ``{subject}`` token, ``1``), a
``stage`` column (a stage name of ``classes``) or a ``trial`` column (the trial number, 1..n
across the subject's sessions), an optional ``session`` column, and one numeric column per
scale (``stress`` 0-10, ...). Each row's values go into ``trial.ratings`` of the matching
trials, on top of the constant ``labels.ratings``; a rule table on those scales
(``[dataset.labels] rules``) then gives each person's graded levels from their own reports.

Example::

    subject,stage,stress
    1,baseline,1
    1,stress,8
    2,baseline,3
    2,stress,5
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping

from ..errors import ConfigError, DatasetNotFoundError, FormatError
from ._generic_description import Description

__all__ = ["read_ratings_file"]

_KEY_COLUMNS = ("subject", "stage", "trial", "session")


def read_ratings_file(desc: Description, tokens: Mapping[str, str]) -> dict:
    """``{(subject id, session or None, stage name or trial number): {scale: value}}``.

    Parameters
    ----------
    desc : Description
        The validated description; ``desc.labels.ratings_file`` names the CSV (None: ``{}``).
    tokens : mapping
        Subject id -> ``{subject}`` token, the dataset's subjects.

    Raises
    ------
    DatasetNotFoundError
        The file does not exist.
    FormatError
        A missing column, an unknown subject or stage, a bad trial number or a non-numeric
        value: one line naming the file, the line and the fix.
    """
    name = desc.labels.ratings_file
    if name is None:
        return {}
    path = desc.root / name
    if not path.is_file():
        raise DatasetNotFoundError(f"{path}: ratings file not found; check "
                                   f"'dataset.labels.ratings_file' (relative to 'root').")
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            rows = list(csv.reader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise FormatError(f"{path}: cannot read the ratings file ({exc}).") from None
    header = [h.strip() for h in rows[0]] if rows else []
    by = "stage" if "stage" in header else "trial" if "trial" in header else None
    scales = [h for h in header if h not in _KEY_COLUMNS]
    if "subject" not in header or by is None or not scales:
        raise FormatError(
            f"{path}: line 1 is {header!r}; a ratings file has columns subject, stage (or "
            f"trial) and one column per scale, e.g. 'subject,stage,stress'."
        )
    by_token = {tok: sid for sid, tok in tokens.items()}
    stages = set(desc.labels.classes)
    out: dict = {}
    for line, row in enumerate(rows[1:], 2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise FormatError(f"{path}: line {line} has {len(row)} field(s), the header "
                              f"{len(header)}; fix the row.")
        cells = {h: c.strip() for h, c in zip(header, row, strict=True)}
        subject = cells["subject"]
        sid = subject if subject in tokens else by_token.get(subject)
        if sid is None:
            raise FormatError(
                f"{path}: line {line}: subject {subject!r} is not a subject of the dataset "
                f"(known: {list(tokens)[:8]!r}); fix the row or 'subjects' in [dataset]."
            )
        key = cells[by]
        if by == "stage" and key not in stages:
            raise FormatError(
                f"{path}: line {line}: stage {key!r} is not a stage of "
                f"[dataset.labels.classes] ({sorted(stages)!r}); fix the row or add the stage "
                f"to 'classes'."
            )
        if by == "trial":
            if not key.isdigit() or int(key) < 1:
                raise FormatError(f"{path}: line {line}: trial {key!r} is not a trial number "
                                  f"(1, 2, ...); fix the row.")
            key = int(key)
        values = {}
        for scale in scales:
            try:
                values[scale] = float(cells[scale]) if cells[scale] else math.nan
            except ValueError:
                raise FormatError(
                    f"{path}: line {line}: {scale} is {cells[scale]!r}, not a number; fix the "
                    f"row (leave it empty for a missing rating)."
                ) from None
        session = cells.get("session") or None
        if session is not None and desc.session_record is None:
            raise ConfigError(f"{path}: has a 'session' column but no 'records' pattern holds "
                              f"{{session}}; drop the column.")
        out[(sid, session, key)] = values
    return out
