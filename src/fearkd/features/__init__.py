"""Windows and features: Recordings -> FeatureSet.

- :mod:`~fearkd.features.windows`: windows in seconds, aligned across sampling rates.
- :mod:`~fearkd.features.spectral`: band power per EEG channel x band (``band_power``,
  ``BandPower``).
- :mod:`~fearkd.features.physio`: peripheral statistics and physiological descriptors.
- :mod:`~fearkd.features.presets`: recipes by name (``deap-teacher``, ``deap-student``, ...).
- :mod:`~fearkd.features.featureset`: the :class:`FeatureSet` table and its ``.npz`` file.
- :mod:`~fearkd.features.cache`: per-subject on-disk cache under a content hash.
- :mod:`~fearkd.features.extract`: :func:`extract_features`, the per-subject driver.
"""

from .extract import extract_features, subject_features, trial_features
from .featureset import REQUIRED_COLUMNS, FeatureSet
from .physio import peripheral_stats, sliding_stats
from .presets import PRESETS, Recipe, get_preset, list_presets, register_preset
from .spectral import DEFAULT_BANDS, BandPower, band_power, check_bands, sliding_band_power
from .windows import WINDOWINGS, Windowing, get_windowing, make_windows, window_samples

__all__ = [
    "extract_features",
    "subject_features",
    "trial_features",
    "FeatureSet",
    "REQUIRED_COLUMNS",
    "peripheral_stats",
    "sliding_stats",
    "PRESETS",
    "Recipe",
    "get_preset",
    "list_presets",
    "register_preset",
    "DEFAULT_BANDS",
    "BandPower",
    "band_power",
    "check_bands",
    "sliding_band_power",
    "WINDOWINGS",
    "Windowing",
    "get_windowing",
    "make_windows",
    "window_samples",
]
