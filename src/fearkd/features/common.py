"""Named common feature spaces: one set of columns shared by several datasets.

An experiment with several ``[[datasets]]`` trains on the union of their windows, so every
dataset must give the same columns. A :class:`CommonSpace` says, feature by feature, which
column of each dataset kind provides it; :func:`common_recipe` is the feature recipe a dataset
is extracted with and :func:`to_common` renames a dataset's columns to the space's names.
Spaces are looked up by name in :data:`COMMON_SPACES` (``[common] space``).

Spaces
------
``seed-frontal-gsr`` (the seed's combined student)
    Six frontal EEG channels x (theta 4-8, alpha 8-12, low beta 12-16 Hz) + GSR x (mean, var)
    = **20**. DEAP gives Fp1, AF3, F3, Fp2, AF4, F4 and ``GSR``; ASCERTAIN gives its NeuroSky
    streams ``EEG1`` .. ``EEG6`` in that order (the pairing of the seed's notebooks, which used
    the first six streams as the student's EEG; the reference describes the streams as one
    electrode's raw, attention, meditation, alpha, beta, delta, gamma and theta tracks
    (unverified), so the pairing is positional, not anatomical) and its ``GSR``. Bands stop at
    16 Hz, the Nyquist frequency of ASCERTAIN's 32 Hz EEG (the lower of the two rates).
``frontal-gsr-hr``
    ``seed-frontal-gsr`` + heart rate (NeuroKit2, :mod:`fearkd.features.physio_nk`) from the
    plethysmograph ``PPG`` in DEAP and from the left-arm ``ECG_L`` lead in ASCERTAIN = **21**.

Common column names are ``"<modality>:<channel>:<feature>"`` with the DEAP channel names
(``eeg:Fp1:alpha``, ``gsr:GSR:mean``, ``hr:HR:hr``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from ..errors import ConfigError
from .presets import Recipe
from .spectral import DEFAULT_BANDS

__all__ = ["CommonSpace", "COMMON_SPACES", "register_space", "get_space", "common_recipe",
           "check_channels", "to_common"]

#: Bands every dataset of a space can carry: at most 16 Hz (ASCERTAIN's EEG Nyquist).
LOW_BANDS = tuple((n, lo, hi) for n, (lo, hi) in DEFAULT_BANDS.items() if hi <= 16.0)
_FRONTAL = ("Fp1", "AF3", "F3", "Fp2", "AF4", "F4")
_ASCERTAIN_FRONTAL = tuple(f"EEG{i}" for i in range(1, 7))


@dataclass(frozen=True)
class CommonSpace:
    """Which channel of each dataset kind provides each common feature.

    Parameters
    ----------
    name : str
        What ``[common] space`` names.
    eeg : mapping of str to mapping of str to str
        ``{common EEG channel: {dataset kind: that dataset's channel}}``; each gets every band.
    bands : tuple of (name, low, high)
        Band edges in Hz; within the Nyquist limit of every dataset's EEG.
    peripheral : mapping of str to mapping of str to str
        ``{common channel: {dataset kind: channel}}`` with (mean, var).
    heart_rate : mapping of str to str
        ``{dataset kind: ECG or PPG channel}`` giving the NeuroKit2 heart rate (empty: none).
    description : str
        One line for reports.
    """

    name: str
    eeg: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    bands: tuple = LOW_BANDS
    peripheral: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    heart_rate: Mapping[str, str] = field(default_factory=dict)
    description: str = ""

    @property
    def kinds(self) -> tuple[str, ...]:
        """Dataset kinds every feature of the space has a source in."""
        tables = [*self.eeg.values(), *self.peripheral.values()]
        if self.heart_rate:
            tables.append(self.heart_rate)
        kinds = set(tables[0]) if tables else set()
        for t in tables[1:]:
            kinds &= set(t)
        return tuple(sorted(kinds))

    def columns(self, kind: str) -> dict[str, str]:
        """``{common column: the dataset's column}`` for one dataset kind, in column order."""
        out = {}
        for common, src in self.eeg.items():
            for band, _lo, _hi in self.bands:
                out[f"eeg:{common}:{band}"] = f"eeg:{src[kind]}:{band}"
        for common, src in self.peripheral.items():
            modality = "gsr" if common == "GSR" else common.lower()
            for stat in ("mean", "var"):
                out[f"{modality}:{common}:{stat}"] = f"{modality}:{src[kind]}:{stat}"
        if self.heart_rate:
            ch = self.heart_rate[kind]
            modality = "ecg" if ch.upper().startswith("ECG") else "ppg"
            out["hr:HR:hr"] = f"{modality}:{ch}:hr"
        return out

    def channels(self, kind: str) -> tuple[str, ...]:
        """Channels of a dataset kind the space reads."""
        chans = [src[kind] for src in self.eeg.values()]
        chans += [src[kind] for src in self.peripheral.values()]
        if self.heart_rate:
            chans.append(self.heart_rate[kind])
        return tuple(chans)


COMMON_SPACES: dict[str, CommonSpace] = {}


def register_space(space: CommonSpace, *, overwrite: bool = False) -> CommonSpace:
    """Add a space to :data:`COMMON_SPACES` under ``space.name``."""
    if not isinstance(space, CommonSpace):
        raise TypeError(f"register_space expects a CommonSpace, got {type(space).__name__}.")
    if space.name in COMMON_SPACES and not overwrite:
        raise ValueError(f"A common space named {space.name!r} exists already; pass "
                         f"overwrite=True to replace it.")
    COMMON_SPACES[space.name] = space
    return space


def get_space(name: str, where: str = "[common] space") -> CommonSpace:
    """Look a space up by name; a ConfigError naming ``where`` and the known spaces."""
    if name not in COMMON_SPACES:
        raise ConfigError(f"{where}: expected one of {sorted(COMMON_SPACES)!r}, got {name!r}; "
                          f"write e.g. space = \"seed-frontal-gsr\".")
    return COMMON_SPACES[name]


def check_channels(space: CommonSpace, kind: str, dataset: str, available: list[str],
                   where: str) -> None:
    """Refuse a space that names a channel the dataset lacks (or a kind it does not cover).

    Parameters
    ----------
    space : CommonSpace
    kind : str
        The dataset's reader kind (the space's mapping key).
    dataset : str
        The ``[[datasets]]`` entry's name (for the message).
    available : list of str
        Channel names of the dataset's first trial.
    where : str
        The config file (for the message).
    """
    if kind not in space.kinds:
        raise ConfigError(f"{where}: [common] space {space.name!r} maps dataset kinds "
                          f"{list(space.kinds)!r}, but [[datasets]] {dataset!r} has kind "
                          f"{kind!r}; pick a space that covers it.")
    missing = [c for c in space.channels(kind) if c not in available]
    if missing:
        raise ConfigError(f"{where}: [common] space {space.name!r} takes channel(s) "
                          f"{missing!r} from [[datasets]] {dataset!r} (kind {kind!r}), which "
                          f"has {available!r}; pick a space whose channels it has, or rename "
                          f"its channels with the reader's options in that [[datasets]] entry.")


def common_recipe(space: CommonSpace, kind: str) -> Recipe:
    """The recipe a dataset of ``kind`` is extracted with to give the space's columns."""
    hr = space.heart_rate.get(kind)
    physio = () if hr is None else (("ecg",) if hr.upper().startswith("ECG") else ("ppg",))
    return Recipe(f"{space.name}:{kind}", eeg=tuple(s[kind] for s in space.eeg.values()),
                  bands=space.bands,
                  peripheral=tuple(s[kind] for s in space.peripheral.values()),
                  physio=physio, dataset=kind,
                  description=f"{kind} columns of the common space {space.name!r}")


def to_common(fs, space: CommonSpace, kind: str):
    """The dataset's FeatureSet with only the space's columns, renamed to the common names."""
    from .featureset import FeatureSet

    mapping = space.columns(kind)
    missing = [c for c in mapping.values() if c not in fs.feature_names]
    if missing:
        raise ConfigError(f"[common] space {space.name!r}: {kind} gave no column(s) "
                          f"{missing[:5]!r} (it has {list(fs.feature_names)[:10]!r} ...); "
                          f"its windows may be too short for them ([features] window).")
    sub = fs.select_columns(list(mapping.values()))
    return FeatureSet(sub.X, list(mapping), sub.metadata, {**dict(fs.info), "common": space.name})


register_space(CommonSpace(
    "seed-frontal-gsr",
    eeg={c: {"deap": c, "ascertain": a} for c, a in zip(_FRONTAL, _ASCERTAIN_FRONTAL, strict=True)},
    peripheral={"GSR": {"deap": "GSR", "ascertain": "GSR"}},
    description="the seed's combined student: Fp1 AF3 F3 Fp2 AF4 F4 (ASCERTAIN EEG1..EEG6) x "
                "theta, alpha, low beta + GSR x (mean, var) = 20",
))
register_space(CommonSpace(
    "frontal-gsr-hr",
    eeg={c: {"deap": c, "ascertain": a} for c, a in zip(_FRONTAL, _ASCERTAIN_FRONTAL, strict=True)},
    peripheral={"GSR": {"deap": "GSR", "ascertain": "GSR"}},
    heart_rate={"deap": "PPG", "ascertain": "ECG_L"},
    description="seed-frontal-gsr + heart rate from DEAP's PPG and ASCERTAIN's ECG_L = 21",
))
