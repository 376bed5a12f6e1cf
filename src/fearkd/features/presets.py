"""Feature recipes by name: which channels, which bands, which statistics.

A :class:`Recipe` names its channels (never positions); a preset is a recipe in the registry
:data:`PRESETS`, looked up with :func:`get_preset`. Feature names are
``"<modality>:<channel>:<feature>"``: ``"eeg:Fp1:alpha"``, ``"gsr:GSR:mean"``,
``"gsr:GSR:var"``. EEG columns come first, channel-major (every band of the first channel,
then the next channel), then each peripheral channel's ``mean`` and ``var``, then the
physiological descriptors.

Presets
-------
``deap-teacher``
    The 32 DEAP EEG channels x 5 bands (theta 4-8, alpha 8-12, low beta 12-16, high beta
    16-25, gamma 25-45 Hz) + 8 peripheral channels (hEOG, vEOG, zEMG, tEMG, GSR, Resp, PPG,
    Temp) x (mean, var) = 160 + 16 = **176** features, as in the reference.
``deap-student``
    The 14 channels of the Emotiv EPOC layout (AF3 F7 F3 FC5 T7 P7 O1 O2 P8 T8 FC6 F4 F8 AF4)
    x 5 bands + the same 8 x 2 = 70 + 16 = **86**. Its columns are a subset, by name, of the
    teacher's, computed on the same windows with the same arithmetic.
``deap-student-eeg``
    The same 14 EPOC channels x 5 bands and no peripheral channel = **70**: the student that
    lacks the privileged channels (``fearkd synth deap --privileged``); a subset of the
    teacher's columns.
``ascertain-teacher``
    The NeuroSky file's 8 rows are one raw EEG stream (row 1, ``EEG1``) and 7 values the
    headset computes and holds for a second (rows 2-8: attention, meditation, alpha, beta,
    delta, gamma, theta; ``../shared/reference/datasets.md``). Band power only from EEG1
    (theta, alpha, low beta); rows 2-8 as held values (:attr:`Recipe.levels`: window mean
    and ``log(1 + mean)``); accX, accY, accZ, GSR, ECG_L, ECG_R x (mean, var)
    = 3 + 14 + 12 = **29**.
``ascertain-student``
    EEG1 x 3 bands + EEG2..EEG6 x (mean, logmean) + GSR x (mean, var) = 3 + 10 + 2 = **15**.
``ascertain-8eeg-teacher``, ``ascertain-8eeg-student``
    The earlier presets, kept to reproduce older runs: all 8 rows (or rows 1-6) band-passed as
    EEG, 8 x 3 + 12 = **36** and 6 x 3 + 2 = **20**. Band power of a value held for a second
    is the power of a step function, not of brain activity.
``peripheral``
    For peripheral-only data (PhysioNet's wrist set): every non-EEG channel present x (mean,
    var), plus the descriptors of :mod:`fearkd.features.physio` chosen by modality (EDA slope
    and SCRs per minute, heart-rate change and slope, temperature slope, accelerometer
    magnitude mean and variance).
``physio``, ``eda``, ``bvp``, ``eda-bvp``, ``wrist``, ``chest``
    NeuroKit2 features by modality (:mod:`~fearkd.features.physio_nk`): every supported
    modality present (including a sampled heart-rate channel, ``hr``: mean, std, slope, and
    SpO2, ``spo2``: mean, min); EDA; BVP (+ IBI beats); EDA + BVP; the E4 wrist set (EDA,
    BVP, TEMP, ACC); the RespiBAN chest set (ECG, EDA, Resp, Temp, ACC). Each is a subset by name of
    ``physio`` on the same data (teacher/student pairs).
``peripheral-eda``
    The channel named ``EDA`` alone (PhysioNet's wrist set): mean, var, EDA slope and SCRs per
    minute = **4**; its columns are a subset of ``peripheral``'s (the one-sensor student).

Log transform (``[features] log = true``, the default; :meth:`Recipe.with_log`)
---------------------------------------------------------------------------------
Power and variance are positive and right-skewed over orders of magnitude; their logarithm is
close to Gaussian, which linear models and networks need. Per feature family:

- **band power** (``eeg:<ch>:<band>``): ``log(max(power, 1e-12))``
  (:data:`~fearkd.features.spectral.LOG_FLOOR`, in the EEG's unit squared), taken before a
  pre-stimulus baseline correction (``baseline = "subtract"`` then gives a log ratio).
  ``method = "de"`` (differential entropy) is already a logarithm and is left as it is.
- **variance** (``<modality>:<ch>:var``): ``log(max(var, 1e-12))`` (:data:`VAR_LOG_FLOOR`, in
  the channel's unit squared).
- **means** (``<modality>:<ch>:mean``) and the **physiological descriptors** (slopes, rates,
  which can be negative or zero) are not logged.

A flat channel therefore gives the floor's logarithm (about -27.6), not ``-inf``. Feature
names do not change; the recipe records the transform (``log``, ``log_variance``), so the
feature cache keeps logged and raw features apart.

How the ASCERTAIN presets differ from the reference's "52 features". The reference counts
8 EEG x 5 bands + 3 accelerometer axes x 2 + GSR x 2 + 2 ECG x 2 = 52. ASCERTAIN's EEG is
sampled at **32 Hz** (Nyquist 16 Hz): high beta (16-25 Hz) and gamma (25-45 Hz) cannot exist
in it, so any value computed for them is aliasing or filter leakage, not brain activity.
fearkd keeps the three bands that exist (low beta's top edge, 16 Hz, is exactly the Nyquist
frequency and keeps the Nyquist bin) and says so in the feature names, and computes band power
from the one raw row only (the others are the headset's own values, see above): 29 features,
the student 15 (the legacy ``ascertain-8eeg-*`` presets: 36 and 20). Asking for a band above
Nyquist raises an error naming the band.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

import numpy as np

from ..errors import UnknownChannelError
from ..recordings import Trial
from .physio import DEFAULT_SCR_PROMINENCE, DESCRIPTORS, STATS, descriptor_names
from .physio_nk import NK_MODALITIES, physio_names
from .spectral import DEFAULT_BANDS, Bands, _check_method, check_bands

#: Floor under a variance feature before its log (``log_variance``), in the unit squared.
VAR_LOG_FLOOR = 1e-12
#: Features of a held-value channel (:attr:`Recipe.levels`), in column order.
LEVEL_STATS = ("mean", "logmean")


def level_features(means: np.ndarray) -> np.ndarray:
    """``(mean, log(1 + max(mean, 0)))`` of held-value channels (:attr:`Recipe.levels`).

    NeuroSky's eSense rows (0-100) can be 0 and its band-power rows span orders of magnitude;
    ``log1p`` of the non-negative part is finite for both and close to ``log`` for the powers.

    Parameters
    ----------
    means : ndarray, shape (..., )
        Window means of the channels.

    Returns
    -------
    ndarray of float64, shape (..., 2)
    """
    means = np.asarray(means, dtype=np.float64)
    return np.stack([means, np.log1p(np.maximum(means, 0.0))], axis=-1)

__all__ = [
    "DEAP_EEG",
    "DEAP_PERIPHERAL",
    "EPOC_CHANNELS",
    "ASCERTAIN_EEG",
    "Recipe",
    "Plan",
    "VAR_LOG_FLOOR",
    "LEVEL_STATS",
    "level_features",
    "PRESETS",
    "get_preset",
    "list_presets",
    "register_preset",
]

#: DEAP's 32 EEG channels, in the files' (Geneva) order.
DEAP_EEG = (
    "Fp1", "AF3", "F3", "F7", "FC5", "FC1", "C3", "T7", "CP5", "CP1", "P3", "P7", "PO3", "O1",
    "Oz", "Pz", "Fp2", "AF4", "Fz", "F4", "F8", "FC6", "FC2", "Cz", "C4", "T8", "CP6", "CP2",
    "P4", "P8", "PO4", "O2",
)
#: DEAP's 8 peripheral channels, in the files' order.
DEAP_PERIPHERAL = ("hEOG", "vEOG", "zEMG", "tEMG", "GSR", "Resp", "PPG", "Temp")
#: The 14 channels of the Emotiv EPOC headset (the reference's student).
EPOC_CHANNELS = (
    "AF3", "F7", "F3", "FC5", "T7", "P7", "O1", "O2", "P8", "T8", "FC6", "F4", "F8", "AF4",
)
#: ASCERTAIN's 8 NeuroSky EEG streams (reader default names).
ASCERTAIN_EEG = tuple(f"EEG{i}" for i in range(1, 9))
_ASCERTAIN_BANDS = tuple((n, lo, hi) for n, (lo, hi) in DEFAULT_BANDS.items() if hi <= 16.0)


@dataclass(frozen=True)
class Recipe:
    """What to compute from a trial.

    Parameters
    ----------
    name : str
        Shown in reports and stored with the features.
    eeg : tuple of str or None
        EEG channels with band power, by name; None for every EEG channel of the data.
    bands : tuple of (name, low, high)
        Band edges in Hz (see :func:`~fearkd.features.spectral.check_bands`).
    peripheral : tuple of str or None
        Channels with (mean, var), by name; None for every non-EEG channel of the data.
    levels : tuple of str
        Channels that carry values a device computed and holds between updates (NeuroSky's
        eSense and band-power rows, updated once a second), by name, whatever their modality:
        ``mean`` and ``logmean`` = ``log(1 + max(mean, 0))`` per window
        (:func:`level_features`), no band power and no variance (a held value has none of
        its own).
    descriptors : bool
        Add the physiological descriptors of :mod:`~fearkd.features.physio`.
    method, filter_design, log, relative, nperseg
        Band-power settings (see :mod:`~fearkd.features.spectral`); ``log`` takes the log of
        ``max(power, LOG_FLOOR)``.
    log_variance : bool
        Take ``log(max(var, VAR_LOG_FLOOR))`` of the peripheral ``var`` features.
    scr_prominence : float
        Minimum SCR prominence for the ``scr_per_min`` descriptor.
    physio : tuple of str or None
        Modalities with NeuroKit2 features (:mod:`~fearkd.features.physio_nk`), by modality
        name (``"gsr"``, ``"ppg"``, ...); None for every supported modality of the data; those a
        trial lacks give no column. Not combined with ``descriptors``.
    dataset : str or None
        Dataset the recipe is written for (used in error messages).
    description : str
        One line for reports.
    """

    name: str
    eeg: tuple[str, ...] | None = ()
    bands: Bands = field(default_factory=lambda: check_bands(None))
    peripheral: tuple[str, ...] | None = ()
    levels: tuple[str, ...] = ()
    descriptors: bool = False
    method: str = "filter"
    filter_design: str = "fft"
    log: bool = False
    relative: bool = False
    nperseg: int | None = None
    log_variance: bool = False
    scr_prominence: float = DEFAULT_SCR_PROMINENCE
    physio: tuple[str, ...] | None = ()
    dataset: str | None = None
    description: str = ""

    def __post_init__(self) -> None:
        if self.levels is None:
            raise TypeError(f"Recipe {self.name!r}: 'levels' must be a sequence of channel "
                            f"names (possibly empty), got None.")
        for attr in ("eeg", "peripheral", "levels", "physio"):
            value = getattr(self, attr)
            if value is not None:
                if isinstance(value, str):
                    raise TypeError(
                        f"Recipe {attr!r} must be a sequence of channel names, got the string "
                        f"{value!r}; write ({value!r},)."
                    )
                object.__setattr__(self, attr, tuple(str(v) for v in value))
        object.__setattr__(self, "bands", check_bands(self.bands))
        unknown = sorted(set(self.physio or ()) - set(NK_MODALITIES))
        if unknown:
            raise ValueError(f"Recipe {self.name!r}: no physiology features for modality "
                             f"{unknown!r}; expected some of {list(NK_MODALITIES)!r}.")
        if self.descriptors and self.physio != ():
            raise ValueError(f"Recipe {self.name!r}: 'descriptors' and 'physio' overlap (both "
                             f"give slopes and SCRs); use one of them.")
        _check_method(self.method, self.filter_design, self.log, self.relative)

    def replace(self, **changes) -> Recipe:
        """A copy with some settings changed (``recipe.replace(method="welch")``)."""
        return replace(self, **changes)

    def with_log(self, log: bool = True) -> Recipe:
        """A copy whose band power (unless ``method="de"``, already a log) and variance
        features are logged (``log=True``) or not (``log=False``)."""
        return replace(self, log=bool(log) and self.method != "de", log_variance=bool(log))

    def to_dict(self) -> dict:
        """JSON-able settings (used in cache keys and stored with the features)."""
        d = asdict(self)
        d["bands"] = [list(b) for b in self.bands]
        for attr in ("eeg", "peripheral", "levels", "physio"):
            if d[attr] is not None:
                d[attr] = list(d[attr])
        return d

    def plan(self, trial: Trial, window: float | None = None) -> Plan:
        """Resolve the recipe's channels on a trial and check them and the bands.

        ``window`` (s) leaves out the physiology features such windows cannot support
        (:func:`~fearkd.features.physio_nk.supported_features`).

        Raises
        ------
        UnknownChannelError
            If the recipe names a channel the trial lacks.
        ValueError
            If a band lies above the Nyquist frequency of the EEG.
        """
        modality = {n: m for m in trial.modalities for n in trial.signals[m].ch_names}
        eeg_sig = trial.signals.get("eeg")
        eeg = tuple(eeg_sig.ch_names if eeg_sig is not None else ()) if self.eeg is None \
            else self.eeg
        levels = self.levels
        if self.eeg is None:
            eeg = tuple(n for n in eeg if n not in levels)
        if self.peripheral is None:
            peripheral = tuple(n for n, m in modality.items() if m != "eeg" and n not in levels)
        else:
            peripheral = self.peripheral
        missing = [n for n in (*eeg, *levels, *peripheral) if n not in modality]
        if missing:
            intended = f" (it is written for dataset {self.dataset!r})" if self.dataset else ""
            more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
            raise UnknownChannelError(
                f"Feature recipe {self.name!r}{intended} names channel(s) {missing[:10]!r}{more} "
                f"that "
                f"{trial.dataset} subject {trial.subject} trial {trial.trial} lacks; it has "
                f"{list(modality)!r}. {preset_advice(trial.dataset)}"
            )
        both = sorted(set(levels) & (set(eeg) | set(peripheral)))
        if both:
            raise ValueError(
                f"Feature recipe {self.name!r} lists {both!r} under 'levels' and under 'eeg' or "
                f"'peripheral'; a held-value channel gets (mean, logmean) only: remove it from "
                f"the other list."
            )
        wrong = [n for n in eeg if modality[n] != "eeg"]
        if wrong:
            raise ValueError(
                f"Feature recipe {self.name!r} asks band power of {wrong!r}, which are not EEG "
                f"channels in {trial.dataset}; list them under 'peripheral' instead."
            )
        if eeg:
            check_bands(self.bands, eeg_sig.sfreq,
                        where=f"the EEG of {trial.dataset} ({len(eeg)} channel(s))")
        # descriptors only for the modalities of the chosen peripheral channels
        chosen = {modality[n] for n in peripheral}
        modalities = tuple(
            m for m in trial.modalities if m in DESCRIPTORS and m in chosen
        ) if self.descriptors else ()
        physio = tuple(m for m in (NK_MODALITIES if self.physio is None else self.physio)
                       if m in trial.signals)
        names = _feature_names(self, trial, modality, eeg, peripheral, modalities, levels)
        return Plan(self, tuple(eeg), tuple(peripheral), modalities,
                    names + tuple(physio_names(trial, physio, window)), physio, tuple(levels))


def _feature_names(recipe, trial, modality, eeg, peripheral, modalities,
                   levels=()) -> tuple[str, ...]:
    names = [f"eeg:{ch}:{b[0]}" for ch in eeg for b in recipe.bands]
    names += [f"{modality[ch]}:{ch}:{s}" for ch in levels for s in LEVEL_STATS]
    names += [f"{modality[ch]}:{ch}:{s}" for ch in peripheral for s in STATS]
    for m in modalities:
        names += descriptor_names(m, trial.signals[m].ch_names)
    return tuple(names)


@dataclass(frozen=True)
class Plan:
    """A recipe resolved on a dataset's channels (what a worker computes per trial)."""

    recipe: Recipe
    eeg: tuple[str, ...]
    peripheral: tuple[str, ...]
    descriptor_modalities: tuple[str, ...]
    feature_names: tuple[str, ...]
    physio_modalities: tuple[str, ...] = ()
    levels: tuple[str, ...] = ()


PRESETS: dict[str, Recipe] = {}


def preset_advice(dataset: str) -> str:
    """The fix in the user's words: the experiment file's keys and the CLI flag."""
    own = [n for n, r in PRESETS.items() if r.dataset == dataset]
    teacher = next((n for n in own if n.endswith("-teacher")), None)
    student = next((n for n in own if n.endswith("-student")), None)
    if teacher and student:
        return (f"For {dataset} data set [dataset] kind = {dataset!r} and [features] "
                f"teacher = {teacher!r}, student = {student!r} in the experiment file "
                f"(fearkd features: --preset {teacher}).")
    return ("Name a preset whose channels this dataset has in [features] teacher / student "
            "(fearkd features: --preset NAME; fearkd info lists the channels).")


def register_preset(recipe: Recipe, *, overwrite: bool = False) -> Recipe:
    """Add a recipe to the registry under ``recipe.name``."""
    if not isinstance(recipe, Recipe):
        raise TypeError(f"register_preset expects a Recipe, got {type(recipe).__name__}.")
    if recipe.name in PRESETS and not overwrite:
        raise ValueError(
            f"A preset named {recipe.name!r} exists already; pass overwrite=True to replace it."
        )
    PRESETS[recipe.name] = recipe
    return recipe


def list_presets() -> list[str]:
    """Names of the registered presets, sorted."""
    return sorted(PRESETS)


def get_preset(preset: str | Recipe, **changes) -> Recipe:
    """Look a recipe up by name (or pass a :class:`Recipe` through), with optional changes.

    Parameters
    ----------
    preset : str or Recipe
    **changes
        Settings to override (``method="welch"``, ``bands=...``).
    """
    if isinstance(preset, Recipe):
        recipe = preset
    elif isinstance(preset, str):
        if preset not in PRESETS:
            raise ValueError(
                f"Unknown feature preset {preset!r}: expected one of {list_presets()!r}, or a "
                f"fearkd.features.presets.Recipe."
            )
        recipe = PRESETS[preset]
    else:
        raise TypeError(
            f"'preset' must be a preset name or a Recipe, got {type(preset).__name__}."
        )
    return recipe.replace(**changes) if changes else recipe


register_preset(Recipe(
    "deap-teacher", eeg=DEAP_EEG, peripheral=DEAP_PERIPHERAL, dataset="deap",
    description="DEAP: 32 EEG x 5 bands + 8 peripheral x (mean, var) = 176",
))
register_preset(Recipe(
    "deap-student", eeg=EPOC_CHANNELS, peripheral=DEAP_PERIPHERAL, dataset="deap",
    description="DEAP: 14 Emotiv EPOC EEG x 5 bands + 8 peripheral x (mean, var) = 86",
))
register_preset(Recipe(
    "ascertain-teacher", eeg=ASCERTAIN_EEG[:1], levels=ASCERTAIN_EEG[1:], bands=_ASCERTAIN_BANDS,
    peripheral=("accX", "accY", "accZ", "GSR", "ECG_L", "ECG_R"), dataset="ascertain",
    description="ASCERTAIN: raw NeuroSky row EEG1 x 3 bands + the 7 held rows EEG2-EEG8 "
                "(eSense, band values) x (mean, logmean) + acc x/y/z, GSR, ECG L/R x (mean, "
                "var) = 29",
))
register_preset(Recipe(
    "ascertain-student", eeg=ASCERTAIN_EEG[:1], levels=ASCERTAIN_EEG[1:6],
    bands=_ASCERTAIN_BANDS, peripheral=("GSR",), dataset="ascertain",
    description="ASCERTAIN: EEG1 x 3 bands + held rows EEG2-EEG6 x (mean, logmean) + GSR x "
                "(mean, var) = 15",
))
# The earlier presets: every NeuroSky row band-passed as if it were raw EEG (as the seed did).
register_preset(Recipe(
    "ascertain-8eeg-teacher", eeg=ASCERTAIN_EEG, bands=_ASCERTAIN_BANDS,
    peripheral=("accX", "accY", "accZ", "GSR", "ECG_L", "ECG_R"), dataset="ascertain",
    description="ASCERTAIN, legacy: all 8 NeuroSky rows x 3 bands (rows 2-8 are held values, "
                "not EEG) + acc x/y/z, GSR, ECG L/R x (mean, var) = 36",
))
register_preset(Recipe(
    "ascertain-8eeg-student", eeg=ASCERTAIN_EEG[:6], bands=_ASCERTAIN_BANDS,
    peripheral=("GSR",), dataset="ascertain",
    description="ASCERTAIN, legacy: NeuroSky rows 1-6 x 3 bands + GSR x (mean, var) = 20",
))
register_preset(Recipe(
    "peripheral", eeg=(), peripheral=None, descriptors=True,
    description="Every non-EEG channel x (mean, var) + physiological descriptors by modality",
))
register_preset(Recipe(
    "peripheral-eda", eeg=(), peripheral=("EDA",), descriptors=True,
    description="The 'EDA' channel alone x (mean, var) + EDA slope and SCRs per minute = 4 "
                "(a student for one cheap sensor; a subset of 'peripheral')",
))

# NeuroKit2 physiology features by modality (fearkd.features.physio_nk); each a subset, by name,
# of ``physio`` on the same data, so any two nest as a teacher/student pair.
register_preset(Recipe(
    "physio", eeg=(), physio=None,
    description="NeuroKit2 features of every supported modality present (EDA, BVP/ECG, "
                "respiration, temperature, accelerometer, sampled heart rate, SpO2)",
))
register_preset(Recipe(
    "eda", eeg=(), physio=("gsr",),
    description="EDA alone: tonic level and slope, SCR count, amplitude and rise time",
))
register_preset(Recipe(
    "bvp", eeg=(), physio=("ppg",),
    description="BVP alone (and IBI beats when present): heart rate and HRV",
))
register_preset(Recipe(
    "eda-bvp", eeg=(), physio=("gsr", "ppg"),
    description="EDA + BVP NeuroKit2 features (a wrist student)",
))
register_preset(Recipe(
    "wrist", eeg=(), physio=("gsr", "ppg", "temp", "acc"),
    description="Empatica E4 wrist: EDA, BVP/IBI, temperature slope, acceleration magnitude",
))
register_preset(Recipe(
    "chest", eeg=(), physio=("ecg", "gsr", "resp", "temp", "acc"),
    description="RespiBAN chest (WESAD): ECG HRV, EDA, respiration, temperature, acceleration",
))
register_preset(Recipe(
    "deap-student-eeg", eeg=EPOC_CHANNELS, peripheral=(), dataset="deap",
    description="DEAP: 14 Emotiv EPOC EEG x 5 bands = 70, no peripheral channels (the student "
                "without the privileged channels of `fearkd synth deap --privileged`)",
))
