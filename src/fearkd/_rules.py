"""Rule tables: the interval grammar, :class:`RuleTable` and :func:`load_rules`.

Private: everything here is re-exported by :mod:`fearkd.labels`, whose docstring describes the
TOML format. Kept apart so that :mod:`fearkd.labels` (which applies the tables) stays short.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from os import PathLike
from pathlib import Path
from types import MappingProxyType

import numpy as np

from .errors import ConfigError

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

__all__ = ["BUILTIN_TABLES", "Interval", "Level", "RuleTable", "parse_interval", "load_rules"]

#: Names accepted by :func:`load_rules` and :func:`fearkd.labels.load_source_task`.
BUILTIN_TABLES = ("deap", "ascertain", "ascertain-notebooks", "wesad")

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
    spec : {"deap", "ascertain", "ascertain-notebooks", "wesad"}, path, mapping or RuleTable
        A built-in table name (``ascertain-notebooks``: the ASCERTAIN rule the seed's
        notebooks apply, four ratings, 322 labelled rating combinations), the path of a TOML
        table, a parsed table, or a table (returned).

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

