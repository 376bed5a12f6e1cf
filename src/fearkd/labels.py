"""Ratings -> class labels: fear levels from rule tables, source-task classes, class reports.

A **rule table** defines each fear level by one interval per named rating; a trial gets the
level whose every interval contains its rating. Tables are TOML files, so users can write their
own with any ratings and any number of levels. The n-th ``[[levels]]`` entry is class ``n - 1``
(the built-in tables: 0 none, 1 low, 2 medium, 3 high)::

    name = "my-table"
    description = "two levels on a 1-9 scale"

    [scales]                      # optional: a rating outside its scale is a LabelError
    valence = "[1, 9]"
    arousal = "[1, 9]"

    [[levels]]
    name = "calm"
    ranges = { valence = "[5, 9]", arousal = "[1, 5)" }

    [[levels]]
    name = "afraid"
    ranges = { valence = "[1, 5)", arousal = "[5, 9]" }

    [source_task]                 # optional: see load_source_task
    rating = "valence"
    n_classes = 10
    binning = "floor"

Intervals are written as strings in mathematical notation: ``"[lo, hi]"`` is closed, ``"[lo, hi)"``
excludes ``hi``, ``"(lo, hi]"`` excludes ``lo``; ``"[-3, -3]"`` is the single value -3 and
``inf``/``-inf`` are allowed. A level that names no interval for a rating does not constrain it.
``load_rules("deap")`` and ``load_rules("ascertain")`` read the built-in tables in
``fearkd/configs/rules/``.

A trial matching no level is unlabelled (``-1``) and stays available for the source task; a trial
matching two levels is ambiguous (policy ``drop``, ``first`` or ``error``, always counted); a NaN
rating raises :class:`~fearkd.errors.LabelError` unless ``nan_policy="unlabelled"``, and never
becomes a label.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from os import PathLike
from pathlib import Path
from types import MappingProxyType

import numpy as np
import pandas as pd

from .errors import ConfigError, LabelError
from .label_report import FEAR_CLASSES, LabelReport, label_report

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

__all__ = [
    "FEAR_CLASSES",
    "BUILTIN_TABLES",
    "Interval",
    "Level",
    "RuleTable",
    "FearAssignment",
    "SourceTask",
    "LabelReport",
    "parse_interval",
    "load_rules",
    "assign_fear",
    "load_source_task",
    "label_report",
]

logger = logging.getLogger(__name__)

#: Names accepted by :func:`load_rules` and :func:`load_source_task`.
BUILTIN_TABLES = ("deap", "ascertain")
AMBIGUOUS_POLICIES = ("drop", "first", "error")
NAN_POLICIES = ("raise", "unlabelled")
#: How many offending rows an error message lists.
_N_EXAMPLES = 5
_NUMBER = r"[-+]?(?:inf|(?:\d+\.?\d*|\.\d+)(?:e[-+]?\d+)?)"
_INTERVAL_RE = re.compile(
    rf"^\s*([\[(])\s*({_NUMBER})\s*,\s*({_NUMBER})\s*([\])])\s*$", re.IGNORECASE
)


def _fmt(x: float) -> str:
    """Shortest TOML-safe text of a bound (integers without a decimal point)."""
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return str(int(x)) if float(x).is_integer() else repr(float(x))


@dataclass(frozen=True)
class Interval:
    """An interval of rating values with explicit closedness of each bound."""

    lo: float
    hi: float
    lo_closed: bool = True
    hi_closed: bool = True

    def contains(self, values: np.ndarray) -> np.ndarray:
        """Boolean mask, same shape as ``values``; NaN is in no interval."""
        values = np.asarray(values, dtype=float)
        above = values >= self.lo if self.lo_closed else values > self.lo
        below = values <= self.hi if self.hi_closed else values < self.hi
        return above & below

    def __str__(self) -> str:
        left = "[" if self.lo_closed else "("
        right = "]" if self.hi_closed else ")"
        return f"{left}{_fmt(self.lo)}, {_fmt(self.hi)}{right}"


def parse_interval(value: object, where: str = "interval") -> Interval:
    """Read an interval from its string form (``"[5, 7)"``, ``"[7, 9]"``, ``"(0, 1]"``).

    Parameters
    ----------
    value : str or Interval
        The interval as written in a rule table.
    where : str
        Names the file and key in error messages.

    Raises
    ------
    ConfigError
        On a malformed, inverted (``min > max``) or empty interval.
    """
    if isinstance(value, Interval):
        interval = value
    elif isinstance(value, str):
        match = _INTERVAL_RE.match(value)
        if match is None:
            raise ConfigError(
                f"{where}: invalid interval {value!r}; expected a string like '[5, 7)' or "
                "'[7, 9]' ('[' / ']' include a bound, '(' / ')' exclude it)."
            )
        left, lo, hi, right = match.groups()
        interval = Interval(float(lo), float(hi), left == "[", right == "]")
    else:
        raise ConfigError(
            f"{where}: expected an interval string like '[5, 7)', got {type(value).__name__} "
            f"{value!r}."
        )
    if math.isnan(interval.lo) or math.isnan(interval.hi):
        raise ConfigError(f"{where}: interval {interval} has a NaN bound.")
    if interval.lo > interval.hi:
        raise ConfigError(
            f"{where}: inverted interval {interval} (min {_fmt(interval.lo)} > max "
            f"{_fmt(interval.hi)}); write the smaller bound first."
        )
    if interval.lo == interval.hi and not (interval.lo_closed and interval.hi_closed):
        raise ConfigError(
            f"{where}: interval {interval} is empty; write '[{_fmt(interval.lo)}, "
            f"{_fmt(interval.lo)}]' for the single value."
        )
    return interval


@dataclass(frozen=True)
class Level:
    """One row of a rule table: a class name and one interval per constrained rating."""

    name: str
    ranges: Mapping[str, Interval]


@dataclass(frozen=True, eq=False)
class RuleTable:
    """Fear levels defined by rating intervals; class ``i`` is ``levels[i]``.

    Build one with :func:`load_rules` or :meth:`from_dict`; write it back with :meth:`save`.
    """

    name: str
    levels: tuple[Level, ...]
    scales: Mapping[str, Interval] = field(default_factory=dict)
    description: str = ""
    #: Where the table came from (a path or ``"built-in 'deap'"``), for error messages.
    source: str = "<dict>"

    @property
    def class_names(self) -> tuple[str, ...]:
        return tuple(level.name for level in self.levels)

    @property
    def n_classes(self) -> int:
        return len(self.levels)

    @property
    def ratings(self) -> tuple[str, ...]:
        """Every rating a level constrains, in first-mention order."""
        names: dict[str, None] = {}
        for level in self.levels:
            names.update(dict.fromkeys(level.ranges))
        return tuple(names)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RuleTable):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    __hash__ = None  # mutable-looking mappings inside; equality is by content

    @classmethod
    def from_dict(cls, data: Mapping, source: str = "<dict>") -> RuleTable:
        """Validate a parsed TOML document (see the module docstring for its layout)."""
        if not isinstance(data, Mapping):
            raise TypeError(f"{source}: a rule table must be a mapping, got {type(data).__name__}.")
        unknown = set(data) - {"name", "description", "scales", "levels", "source_task"}
        if unknown:
            raise ConfigError(
                f"{source}: unknown key(s) {sorted(unknown)!r} in a rule table; expected 'name', "
                "'description', 'scales', 'levels', 'source_task'."
            )
        scales_in = data.get("scales", {})
        if not isinstance(scales_in, Mapping):
            raise ConfigError(f"{source}: 'scales' must be a table, got {scales_in!r}.")
        scales = {
            str(k): parse_interval(v, f"{source}: scales.{k}") for k, v in scales_in.items()
        }
        levels_in = data.get("levels")
        if not isinstance(levels_in, Sequence) or len(levels_in) < 2:
            raise ConfigError(
                f"{source}: a rule table needs at least two [[levels]] entries, got "
                f"{levels_in!r}."
            )
        levels = []
        for i, entry in enumerate(levels_in):
            where = f"{source}: levels[{i}]"
            if not isinstance(entry, Mapping) or set(entry) != {"name", "ranges"}:
                raise ConfigError(
                    f"{where}: expected a table with keys 'name' and 'ranges', got {entry!r}."
                )
            ranges_in = entry["ranges"]
            if not isinstance(ranges_in, Mapping) or not ranges_in:
                raise ConfigError(
                    f"{where}: 'ranges' must be a non-empty table of rating intervals, got "
                    f"{ranges_in!r}."
                )
            ranges = {}
            for rating, spec in ranges_in.items():
                interval = parse_interval(spec, f"{where}.ranges.{rating}")
                scale = scales.get(rating)
                if scale is not None and (interval.lo < scale.lo or interval.hi > scale.hi):
                    raise ConfigError(
                        f"{where}.ranges.{rating}: interval {interval} lies outside the declared "
                        f"scale {scale} of {rating!r}."
                    )
                ranges[str(rating)] = interval
            levels.append(Level(str(entry["name"]), MappingProxyType(ranges)))
        names = [level.name for level in levels]
        if len(set(names)) != len(names):
            raise ConfigError(f"{source}: level names must be unique, got {names!r}.")
        return cls(
            name=str(data.get("name", Path(source).stem)),
            levels=tuple(levels),
            scales=MappingProxyType(scales),
            description=str(data.get("description", "")),
            source=source,
        )

    def to_dict(self) -> dict:
        """The table as plain data, intervals in their string form (TOML/JSON ready)."""
        return {
            "name": self.name,
            "description": self.description,
            "scales": {k: str(v) for k, v in self.scales.items()},
            "levels": [
                {"name": lv.name, "ranges": {k: str(v) for k, v in lv.ranges.items()}}
                for lv in self.levels
            ],
        }

    def to_toml(self) -> str:
        """The table as a TOML document that :func:`load_rules` reads back unchanged."""
        d = self.to_dict()
        lines = [f"name = {_toml_str(d['name'])}", f"description = {_toml_str(d['description'])}"]
        if d["scales"]:
            lines += ["", "[scales]"]
            lines += [f"{_toml_key(k)} = {_toml_str(v)}" for k, v in d["scales"].items()]
        for level in d["levels"]:
            items = level["ranges"].items()
            ranges = ", ".join(f"{_toml_key(k)} = {_toml_str(v)}" for k, v in items)
            lines += ["", "[[levels]]", f"name = {_toml_str(level['name'])}"]
            lines.append(f"ranges = {{ {ranges} }}")
        return "\n".join(lines) + "\n"

    def save(self, path: str | PathLike) -> Path:
        """Write :meth:`to_toml` to ``path`` and return it."""
        path = Path(path)
        path.write_text(self.to_toml(), encoding="utf-8")
        return path


def _toml_str(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _toml_key(s: str) -> str:
    return s if re.fullmatch(r"[A-Za-z0-9_-]+", s) else _toml_str(s)


def _read_toml(spec: str | PathLike, what: str) -> tuple[dict, str]:
    """Parse a built-in name or a TOML path; return (document, source description)."""
    if isinstance(spec, str) and spec in BUILTIN_TABLES:
        resource = resources.files("fearkd") / "configs" / "rules" / f"{spec}.toml"
        return tomllib.loads(resource.read_text(encoding="utf-8")), f"built-in {spec!r}"
    path = Path(spec)
    if not path.is_file():
        raise ConfigError(
            f"Invalid {what} {str(spec)!r}: expected one of {BUILTIN_TABLES!r} or the path of "
            "a TOML file, and no such file exists."
        )
    try:
        return tomllib.loads(path.read_text(encoding="utf-8")), str(path)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not a valid TOML file ({exc}).") from None


def load_rules(spec: str | PathLike | Mapping | RuleTable) -> RuleTable:
    """Load a fear rule table.

    Parameters
    ----------
    spec : {"deap", "ascertain"}, path, mapping or RuleTable
        A built-in table name, the path of a TOML table, a parsed table, or a table (returned).

    Returns
    -------
    RuleTable
    """
    if isinstance(spec, RuleTable):
        return spec
    if isinstance(spec, Mapping):
        return RuleTable.from_dict(spec)
    if not isinstance(spec, (str, PathLike)):
        raise TypeError(
            f"'rules' must be 'deap', 'ascertain', a path, a mapping or a RuleTable, got "
            f"{type(spec).__name__} {spec!r}."
        )
    data, source = _read_toml(spec, "rule table")
    return RuleTable.from_dict(data, source)


def _rating_matrix(
    ratings: pd.DataFrame, names: Sequence[str], source: str, scales: Mapping[str, Interval]
) -> np.ndarray:
    """Columns ``names`` of ``ratings`` as float, shape (n_trials, n_ratings); scale-checked."""
    if not isinstance(ratings, pd.DataFrame):
        raise TypeError(f"'ratings' must be a pandas DataFrame, got {type(ratings).__name__}.")
    missing = [n for n in names if n not in ratings.columns]
    if missing:
        raise ConfigError(
            f"{source}: rating(s) {missing!r} named in the table are not columns of the ratings "
            f"table (columns: {list(ratings.columns)!r}); rename the column or fix the table."
        )
    columns = []
    for name in names:
        try:
            col = ratings[name].to_numpy(dtype=float, na_value=np.nan)
        except (TypeError, ValueError):
            raise TypeError(
                f"Rating column {name!r} must be numeric, got dtype {ratings[name].dtype}."
            ) from None
        scale = scales.get(name)
        if scale is not None:
            bad = ~np.isnan(col) & ~scale.contains(col)
            if bad.any():
                rows = np.flatnonzero(bad)[:_N_EXAMPLES]
                raise LabelError(
                    f"{int(bad.sum())} value(s) of rating {name!r} lie outside its scale {scale} "
                    f"declared in {source}, e.g. rows {rows.tolist()} = {col[rows].tolist()}; "
                    "check the rating scale of the dataset."
                )
        columns.append(col)
    return np.column_stack(columns) if columns else np.empty((len(ratings), 0))


@dataclass(frozen=True)
class FearAssignment:
    """Result of :func:`assign_fear` with ``return_counts=True``.

    ``labels`` has shape (n_trials,), ``-1`` for unlabelled; ``ambiguous`` and ``nan`` are boolean
    masks of the same shape.
    """

    labels: np.ndarray
    ambiguous: np.ndarray
    nan: np.ndarray
    class_names: tuple[str, ...]

    @property
    def n_unlabelled(self) -> int:
        return int((self.labels < 0).sum())

    @property
    def n_ambiguous(self) -> int:
        return int(self.ambiguous.sum())

    @property
    def n_nan(self) -> int:
        return int(self.nan.sum())


def assign_fear(
    ratings: pd.DataFrame,
    rules: str | PathLike | Mapping | RuleTable,
    *,
    ambiguous: str = "drop",
    nan_policy: str = "raise",
    return_counts: bool = False,
) -> np.ndarray | FearAssignment:
    """Fear level of every trial from its ratings.

    Parameters
    ----------
    ratings : DataFrame, shape (n_trials, ...)
        One row per trial, one column per rating the table names (other columns ignored).
    rules : str, path, mapping or RuleTable
        Anything :func:`load_rules` accepts.
    ambiguous : {"drop", "first", "error"}
        A trial matching several levels: ``-1``, the first matching level, or a LabelError.
    nan_policy : {"raise", "unlabelled"}
        A trial with a NaN rating: LabelError, or ``-1`` (counted in ``n_nan``).
    return_counts : bool
        Return a :class:`FearAssignment` (labels plus counts) instead of the labels.

    Returns
    -------
    labels : ndarray of int64, shape (n_trials,)
        Class codes ``0 .. n_levels - 1``, ``-1`` where unlabelled.
    """
    if ambiguous not in AMBIGUOUS_POLICIES:
        raise ValueError(
            f"Invalid value for 'ambiguous': expected one of {AMBIGUOUS_POLICIES!r}, "
            f"got {ambiguous!r}."
        )
    if nan_policy not in NAN_POLICIES:
        raise ValueError(
            f"Invalid value for 'nan_policy': expected one of {NAN_POLICIES!r}, "
            f"got {nan_policy!r}."
        )
    table = load_rules(rules)
    names = table.ratings
    values = _rating_matrix(ratings, names, table.source, table.scales)
    nan = np.isnan(values).any(axis=1)
    if nan.any() and nan_policy == "raise":
        rows = np.flatnonzero(nan)[:_N_EXAMPLES]
        raise LabelError(
            f"{int(nan.sum())} trial(s) have a NaN rating (rows {rows.tolist()}); a NaN never "
            "becomes a fear label: fix the ratings or pass nan_policy='unlabelled'."
        )
    # matches[i, k]: trial i lies in every interval of level k.
    matches = np.ones((len(values), table.n_classes), dtype=bool)
    for k, level in enumerate(table.levels):
        for rating, interval in level.ranges.items():
            matches[:, k] &= interval.contains(values[:, names.index(rating)])
    matches[nan] = False
    n_match = matches.sum(axis=1)
    is_ambiguous = n_match > 1
    if is_ambiguous.any() and ambiguous == "error":
        rows = np.flatnonzero(is_ambiguous)[:_N_EXAMPLES]
        levels = [[table.class_names[k] for k in np.flatnonzero(matches[r])] for r in rows]
        raise LabelError(
            f"{int(is_ambiguous.sum())} trial(s) match several levels of {table.source}, e.g. "
            f"rows {rows.tolist()} match {levels!r}; make the ranges disjoint or pass "
            "ambiguous='drop' or 'first'."
        )
    labels = np.where(n_match > 0, matches.argmax(axis=1), -1).astype(np.int64)
    if ambiguous == "drop":
        labels[is_ambiguous] = -1
    if is_ambiguous.any():
        logger.info(
            "%d trial(s) match several fear levels (policy %r).", int(is_ambiguous.sum()), ambiguous
        )
    result = FearAssignment(labels, is_ambiguous, nan, table.class_names)
    return result if return_counts else labels


@dataclass(frozen=True)
class SourceTask:
    """Classes of the pretraining (source) task, binned from one rating.

    ``binning="floor"``: class = ``floor(rating) + offset``. ``binning="edges"``: class ``i`` is
    ``[edges[i], edges[i + 1])``, the last bin closed. A class outside ``0 .. n_classes - 1`` is
    ``-1`` (not assignable); a value outside ``scale`` is a LabelError.
    """

    rating: str
    n_classes: int
    binning: str = "floor"
    offset: int = 0
    edges: tuple[float, ...] = ()
    scale: Interval | None = None
    source: str = "<dict>"

    @classmethod
    def from_dict(cls, data: Mapping, source: str = "<dict>") -> SourceTask:
        """Validate ``{rating, n_classes, binning, offset | edges, scale}``."""
        if not isinstance(data, Mapping):
            raise TypeError(f"{source}: a source task must be a mapping, got {data!r}.")
        unknown = set(data) - {"rating", "n_classes", "binning", "offset", "edges", "scale"}
        if unknown or "rating" not in data:
            raise ConfigError(
                f"{source}: a source task needs 'rating' and takes 'n_classes', 'binning', "
                f"'offset', 'edges', 'scale'; got keys {sorted(data)!r}."
            )
        binning = data.get("binning", "edges" if "edges" in data else "floor")
        if binning not in ("floor", "edges"):
            raise ConfigError(
                f"{source}: 'binning' must be 'floor' or 'edges', got {binning!r}."
            )
        edges = tuple(float(e) for e in data.get("edges", ()))
        if binning == "edges":
            if len(edges) < 3 or np.any(np.diff(edges) <= 0):
                raise ConfigError(
                    f"{source}: 'edges' must be at least 3 strictly increasing numbers, got "
                    f"{list(edges)!r}."
                )
            n_classes = data.get("n_classes", len(edges) - 1)
            if n_classes != len(edges) - 1:
                raise ConfigError(
                    f"{source}: 'n_classes' = {n_classes!r} but {len(edges)} edges make "
                    f"{len(edges) - 1} classes."
                )
        else:
            n_classes = data.get("n_classes")
        offset = data.get("offset", 0)
        if not isinstance(n_classes, int) or n_classes < 2 or not isinstance(offset, int):
            raise ConfigError(
                f"{source}: 'n_classes' must be an integer >= 2 and 'offset' an integer, got "
                f"n_classes={n_classes!r}, offset={offset!r}."
            )
        scale = data.get("scale")
        scale = None if scale is None else parse_interval(scale, f"{source}: source_task.scale")
        return cls(str(data["rating"]), n_classes, binning, offset, edges, scale, source)

    def assign(self, ratings: pd.DataFrame, *, nan_policy: str = "raise") -> np.ndarray:
        """Source class of every trial, ndarray of int64, shape (n_trials,), ``-1`` if none.

        A NaN rating raises LabelError (``nan_policy="raise"``) or gives ``-1``.
        """
        if nan_policy not in NAN_POLICIES:
            raise ValueError(
                f"Invalid value for 'nan_policy': expected one of {NAN_POLICIES!r}, "
                f"got {nan_policy!r}."
            )
        scales = {self.rating: self.scale} if self.scale is not None else {}
        values = _rating_matrix(ratings, [self.rating], self.source, scales)[:, 0]
        nan = np.isnan(values)
        if nan.any() and nan_policy == "raise":
            raise LabelError(
                f"{int(nan.sum())} trial(s) have a NaN {self.rating!r} rating (rows "
                f"{np.flatnonzero(nan)[:_N_EXAMPLES].tolist()}); pass nan_policy='unlabelled' "
                "to leave them without a source class."
            )
        filled = np.where(nan, 0.0, values)
        if self.binning == "floor":
            classes = np.floor(filled).astype(np.int64) + self.offset
        else:
            edges = np.asarray(self.edges)
            classes = np.searchsorted(edges, filled, side="right").astype(np.int64) - 1
            classes[filled == edges[-1]] = len(edges) - 2  # the last bin is closed
            classes[(filled < edges[0]) | (filled > edges[-1])] = -1
        classes[(classes < 0) | (classes >= self.n_classes) | nan] = -1
        return classes


def load_source_task(spec: str | PathLike | Mapping | SourceTask) -> SourceTask:
    """Load a source-task definition.

    Parameters
    ----------
    spec : {"deap", "ascertain"}, path, mapping or SourceTask
        A built-in name (DEAP: valence, 10 classes = integer part of the 1-9 rating; ASCERTAIN:
        arousal, 7 classes 0..6), a TOML file with a ``[source_task]`` table (or the task's keys
        at top level), a mapping of those keys, or a task (returned).
    """
    if isinstance(spec, SourceTask):
        return spec
    if isinstance(spec, Mapping):
        return SourceTask.from_dict(spec)
    if not isinstance(spec, (str, PathLike)):
        raise TypeError(
            f"'source' must be 'deap', 'ascertain', a path, a mapping or a SourceTask, got "
            f"{type(spec).__name__} {spec!r}."
        )
    data, source = _read_toml(spec, "source task")
    return SourceTask.from_dict(data.get("source_task", data), source)
