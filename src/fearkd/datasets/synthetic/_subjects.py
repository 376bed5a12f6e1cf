"""Synthetic subjects: physiological constants and rating habits (see :mod:`._physio`).

Each synthetic subject draws its own gains and offsets in every channel and its own habit of
using the rating scales (:func:`subject_profile`); :func:`latent_state` inverts that habit to
get the true affective state that drives the subject's physiology.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["SubjectProfile", "subject_profile", "latent_state"]


#: Uniform ranges of a subject's scalar constants (see :class:`SubjectProfile`), in draw order.
_PROFILE_RANGES = {
    "alpha_freq": (9.0, 11.0), "alpha_amp": (6.0, 12.0), "theta_amp": (3.0, 6.0),
    "beta_amp": (2.5, 5.0), "gamma_amp": (1.0, 2.5), "k_valence_alpha": (0.3, 0.55),
    "k_arousal_fast": (0.25, 0.45), "blink_rate": (10.0, 25.0), "blink_amp": (150.0, 400.0),
    "hr_base": (55.0, 85.0), "hr_gain": (4.0, 10.0), "resp_base": (12.0, 18.0),
    "resp_gain": (1.5, 4.0), "scl_base": (1.0, 8.0), "scl_gain": (0.15, 0.4),
    "scr_rate": (1.0, 3.0), "scr_amp": (0.05, 0.3), "emg_base": (2.0, 6.0),
    "k_valence_emg": (0.4, 0.8), "temg_base": (3.0, 8.0), "k_arousal_emg": (0.2, 0.5),
    "temp_base": (29.0, 33.0), "temp_arousal": (-0.4, -0.1),
}

#: Resting levels (offsets of every channel's features) that ``subject_profile(shift=...)``
#: scales; the effect sizes (``k_*``, ``*_gain``, ``temp_arousal``) and ``alpha_freq`` are not.
SHIFTED = (
    "alpha_amp", "theta_amp", "beta_amp", "gamma_amp", "blink_rate", "blink_amp", "hr_base",
    "resp_base", "scl_base", "scr_rate", "scr_amp", "emg_base", "temg_base", "temp_base",
)


@dataclass(frozen=True)
class SubjectProfile:
    """One synthetic subject's physiology and rating habits (ranges: ``_PROFILE_RANGES``).

    Attributes
    ----------
    eeg_gain : ndarray, shape (n_eeg,)
        Amplitude gain of every EEG channel (subject gain x channel gain).
    alpha_freq, alpha_amp, theta_amp, beta_amp, gamma_amp : float
        Alpha peak frequency (Hz); rhythm amplitudes (µV RMS).
    k_valence_alpha, k_arousal_fast : float
        Frontal alpha log-amplitude per unit valence; beta/gamma log-amplitude per unit arousal.
    blink_rate, blink_amp : float
        Blinks per minute at rest; vEOG blink amplitude (µV).
    hr_base, hr_gain, resp_base, resp_gain : float
        Resting heart rate (bpm) and bpm per unit arousal; the same for breaths per minute.
    scl_base, scl_gain, scr_rate, scr_amp : float
        Tonic skin conductance (µS) and its log change per unit arousal; spontaneous SCRs per
        minute at rest and their typical amplitude (µS).
    emg_base, k_valence_emg, temg_base, k_arousal_emg : float
        Zygomaticus EMG RMS (µV) and log change per unit valence; trapezius, per unit arousal.
    temp_base, temp_arousal : float
        Skin temperature (°C) and its change per unit arousal (negative).
    sensor_gain, sensor_offset : ndarray, shape (4,)
        Gain and offset of the respiration belt, pulse sensor, GSR amplifier and EOG amplifier.
    rating_bias, rating_scale : ndarray, shape (3,)
        Rating habit for valence, arousal, dominance on the -1..1 scale:
        ``rating = rating_bias + rating_scale * state + noise``.
    """

    eeg_gain: np.ndarray
    alpha_freq: float
    alpha_amp: float
    theta_amp: float
    beta_amp: float
    gamma_amp: float
    k_valence_alpha: float
    k_arousal_fast: float
    blink_rate: float
    blink_amp: float
    hr_base: float
    hr_gain: float
    resp_base: float
    resp_gain: float
    scl_base: float
    scl_gain: float
    scr_rate: float
    scr_amp: float
    emg_base: float
    k_valence_emg: float
    temg_base: float
    k_arousal_emg: float
    temp_base: float
    temp_arousal: float
    sensor_gain: np.ndarray
    sensor_offset: np.ndarray
    rating_bias: np.ndarray
    rating_scale: np.ndarray


def subject_profile(
    rng: np.random.Generator, *, n_eeg: int = 32, shift: float = 1.0
) -> SubjectProfile:
    """Draw one subject's physiological constants and rating habits.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of randomness (one generator per subject gives reproducible subjects).
    n_eeg : int
        Number of EEG channels that get a gain.
    shift : float
        Size of the between-subject offsets and gains (>= 0). The resting levels in
        ``SHIFTED`` move from the geometric centre ``c`` of their range to ``c * (x / c) **
        shift`` for a draw ``x``; the EEG and sensor log-gains and the sensor offsets are
        multiplied by ``shift``. 1 gives the ranges of ``_PROFILE_RANGES``; 0 gives every subject
        the same levels, gains and offsets (effect sizes and rating habits still vary). The
        draws themselves do not depend on ``shift``.

    Returns
    -------
    SubjectProfile
    """
    eeg_gain = np.exp(shift * (0.25 * rng.standard_normal() + 0.15 * rng.standard_normal(n_eeg)))
    scalars = {k: float(rng.uniform(lo, hi)) for k, (lo, hi) in _PROFILE_RANGES.items()}
    if shift != 1.0:
        for k in SHIFTED:
            lo, hi = _PROFILE_RANGES[k]
            centre = np.sqrt(lo * hi)
            scalars[k] = float(centre * (scalars[k] / centre) ** shift)
    return SubjectProfile(
        eeg_gain=eeg_gain, **scalars,
        sensor_gain=np.exp(shift * 0.3 * rng.standard_normal(4)),
        sensor_offset=shift * rng.normal(0.0, 1.0, 4),
        rating_bias=rng.normal(0.0, 0.15, 3),
        rating_scale=rng.uniform(0.7, 1.2, 3),
    )


def latent_state(
    rng: np.random.Generator, ratings: np.ndarray, profile: SubjectProfile, *, low=1.0, high=9.0,
    noise: float = 0.1
) -> np.ndarray:
    """True affective state behind the ratings, by inverting the subject's rating habit.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of the rating noise.
    ratings : ndarray, shape (n_trials, 3)
        Valence, arousal, dominance ratings.
    profile : SubjectProfile
        The subject (``rating_bias``, ``rating_scale``).
    low, high : float or sequence of 3 floats
        Ends of each rating scale (DEAP 1..9; ASCERTAIN arousal 0..6, valence -3..3).
    noise : float
        Rating noise (sd on the -1..1 scale).

    Returns
    -------
    ndarray, shape (n_trials, 3); normalised valence, arousal, dominance, in [-1.5, 1.5].
    """
    r = np.asarray(ratings, dtype=float)
    if r.ndim != 2 or r.shape[1] != 3:
        raise ValueError(f"'ratings' must have shape (n_trials, 3), got {r.shape}.")
    low = np.asarray(low, dtype=float)
    high = np.asarray(high, dtype=float)
    unit = 2.0 * (r - low) / (high - low) - 1.0
    state = (unit - profile.rating_bias - noise * rng.standard_normal(r.shape)) / (
        profile.rating_scale
    )
    return np.clip(state, -1.5, 1.5)
