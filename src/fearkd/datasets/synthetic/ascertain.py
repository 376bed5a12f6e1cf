"""Synthetic ASCERTAIN: files in the real raw-release layout, with learnable physiology.

Layout, variable names, shapes and column orders are those of the release (see
:mod:`fearkd.datasets.ascertain`), written as MATLAB v5 files with :func:`scipy.io.savemat`:

- ``ASCERTAIN_Raw/EEGData/Movie_PNN/EEG_ClipN.mat``: ``ThisEEG``, 8 x L at 32 Hz;
- ``ASCERTAIN_Raw/ECGData/Movie_PNN/ECG_ClipN.mat``: ``Data_ECG`` at 256 Hz, L x 3 (t_ms,
  ECG right, ECG left) for subjects 1-8 and L x 6 (t_ms, accX, accY, accZ, ECG right, ECG left)
  from subject 9 on;
- ``ASCERTAIN_Raw/GSRData/Movie_PNN/GSR_ClipN.mat``: ``Data_GSR``, L x 5 (t_ms, accX, accY,
  accZ, GSR) at 128 Hz;
- ``ASCERTAIN_Features/Dt_SelfReports.mat``: ``Ratings`` (5, n_subjects, n_clips), integer
  arousal 0..6, valence -3..3, engagement, liking, familiarity 0..6, clip axis in clip-id order
  (the reader's default ``rating_order="clip"``), about 2 % of clips with one NaN rating;
- ``ASCERTAIN_Features/Dt_Order_Movie.mat``: ``PermutationList`` (n_subjects, n_clips), each
  subject's random viewing order (clip ids). It also orders the clips in each subject's session
  clock; ``Ratings`` stays in clip-id order, so reading these files with
  ``rating_order="presentation"`` pairs ratings with the wrong clips (as it would on real data
  if the release were in clip order).

Clip ``c`` lasts ``seconds * exp(u_c)`` with ``u_c`` uniform in [-0.35, 0.35] (0.70-1.42 x
``seconds``; the real clips last 51-128 s), the same for every subject. Each sensor starts
recording its own lead time before the clip (EEG 0.5-3 s, ECG and GSR 0-2 s each) and stops at
the clip's end, so ECG and GSR start at different ``t_ms`` and have unequal lengths, and the
three modalities share their end: the reader's alignment recovers the common span (exactly,
but for the few samples of dropped NaN rows).
``t_ms`` is a session clock in milliseconds (a 2015 epoch time, clips in viewing order 20-40 s
apart). Writing quirks of the release are reproduced: about 10 % of ECG and GSR files hold 1-5
NaN rows, about 3 % of EEG files a NaN sample column, and about 5 % of EEG files a 9th row
(NeuroSky's signal-quality value, 0 or 200); every subject with two clips or more has at least
one file with NaN rows and one 9-row EEG file.

Generative model
----------------
*Ratings.* ``round(fear_share * n_clips)`` clips per subject receive ratings inside the rows of
the ASCERTAIN fear table (closed ranges; arousal, valence, engagement, liking, familiarity):
none 0-2, 1..3, 0-2, 5-6, 2-4; low 3-4, -2..-1, 3-4, 3-4, 1-2; medium 4-5, -3..-2, 4-5, 1-2,
0-1; high 5-6, -3, 5-6, 0-1, 0. Rows take turns (none, low, medium, high, none, ...), so each
receives clips once a subject has four such clips; inside a row each rating is drawn uniformly
from the values no other row's range holds, where such values exist (low arousal 3, high
arousal 6, ...), so a rated clip matches exactly one row. The other clips get uniform integer
ratings over the whole scale that match no row.

*Latent state.* The physiology follows the true state ``z`` = (valence, arousal, engagement)
on a -1..1 scale, obtained from the ratings by inverting the subject's rating habit
(:func:`~fearkd.datasets.synthetic._physio.latent_state`: ``rating = bias_s + scale_s * z +
noise``, noise sd 0.2 on the -1..1 scale). Effects rise with a 1.5 s time constant from the
clip's start; the sensors' lead time before it is baseline. Every subject draws its own profile
(:func:`~fearkd.datasets.synthetic._physio.subject_profile`) plus ASCERTAIN-specific offsets,
so every channel has per-subject gains and offsets. Each clip also draws influences unrelated
to the ratings (content, posture; ``n`` standard normal, independent per clip and signal):
heart rate ``+ 3 n`` bpm, skin conductance ``x exp(0.15 n)``, EEG band powers ``x exp(0.2 n)``,
attention and meditation ``+ 5 n``.

*EEG* (``ThisEEG``, one frontal NeuroSky electrode at Fp1, rows 1-8 = raw, attention,
meditation, alpha, beta, delta, gamma, theta):

1. raw (µV): the shared EEG model for one Fp1 channel at 32 Hz (1/f background, theta, alpha
   whose amplitude falls with valence through frontal asymmetry and with arousal, beta clipped
   at 14.4 Hz) plus low beta (12-15.5 Hz) whose amplitude grows as ``exp(k_a * arousal)``, a
   0.5-4 Hz delta background, and eye blinks (Fp1 sees them fully, 10-25 per minute);
2. attention (eSense 0-100, updated once a second): ``50 + 20 * engagement + 8 * arousal``
   plus a subject offset and slow noise;
3. meditation (eSense 0-100): ``50 + 12 * valence - 12 * arousal`` plus offset and noise;
4-8. band powers (positive, lognormal, levels about 6e3-1e5, updated once a second): log power =
   subject level + drive + slow noise, with drive alpha ``+k_v * valence - 0.3 * arousal``,
   beta ``+k_a * arousal``, delta ``-0.1 * arousal``, gamma ``+1.3 k_a * arousal``, theta
   ``+0.3 * arousal`` (``k_v``, ``k_a`` = the subject's valence-alpha and arousal-fast gains).

*ECG* (mV): P-QRS-T waveform at ``hr_base + hr_gain * arousal`` bpm (55-85 bpm at rest, +4-10
per unit arousal) with slow heart-rate variability; right and left arm leads have subject gains
(0.8-1.5 and 0.3-0.8 mV), DC offsets (sd 0.5 mV), baseline wander and noise.

*GSR*: skin conductance from the shared model (tonic level ``scl_base * exp(scl_gain *
arousal)`` with drift, spontaneous SCRs whose rate and amplitude grow with arousal, one evoked
SCR 1.5-3 s into the clip), stored as **resistance in kΩ** (``1000 / µS``, times the subject's
amplifier gain): the GSR value falls as arousal rises.

*Accelerometers* (m/s², GSR sensor on the hand, ECG sensor on the chest): gravity along a
subject-specific orientation of each sensor plus noise and movement bumps whose rate grows with
arousal (fidgeting).

Since ratings, offsets and habits differ by subject, within-subject relations (heart rate or GSR
level versus arousal) are much tighter than pooled ones: a model trained on other subjects does
worse than one trained on the same subject, as on the real data.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import scipy.io

from ..._outputs import write_synthetic_marker
from ..ascertain import DEFAULT_SFREQ, RATING_NAMES, RATING_SCALES
from ._physio import (
    SubjectProfile,
    affective_eeg,
    band_oscillation,
    blink_train,
    latent_state,
    onset_ramp,
    pink_noise,
    pulse_wave,
    skin_conductance,
    subject_profile,
)

__all__ = ["FEAR_ROWS", "draw_ratings", "write_ascertain"]

MAX_SUBJECTS = 58
MAX_CLIPS = 36
#: Rows of the ASCERTAIN fear table: closed integer ranges of arousal, valence, engagement,
#: liking, familiarity (the reader's rating order).
FEAR_ROWS = {
    "none": ((0, 2), (1, 3), (0, 2), (5, 6), (2, 4)),
    "low": ((3, 4), (-2, -1), (3, 4), (3, 4), (1, 2)),
    "medium": ((4, 5), (-3, -2), (4, 5), (1, 2), (0, 1)),
    "high": ((5, 6), (-3, -3), (5, 6), (0, 1), (0, 0)),
}
EEG_RATE, ECG_RATE, GSR_RATE = DEFAULT_SFREQ["eeg"], DEFAULT_SFREQ["ecg"], DEFAULT_SFREQ["gsr"]
#: 2015-01-01 as Unix epoch milliseconds: where the synthetic session clocks start.
SESSION_START_MS = 1_420_070_400_000.0
GRAVITY = 9.81
#: Shortest record (s) that _physio.skin_conductance accepts (its drift band starts at 0.1 Hz).
MIN_SCL_SECONDS = 12.0
# Rates of the release's writing quirks (per file).
P_NAN_ROWS, P_NAN_EEG, P_NINE_ROWS = 0.10, 0.03, 0.05
P_NAN_RATING = 0.02
#: Rating noise (sd on the -1..1 scale): how loosely a report follows the felt state.
RATING_NOISE = 0.2


def _row_values() -> dict[str, list[np.ndarray]]:
    """Per fear row and rating: the values to draw from (those no other row's range holds)."""
    out = {}
    for name, ranges in FEAR_ROWS.items():
        values = []
        for j, (lo, hi) in enumerate(ranges):
            own = np.arange(lo, hi + 1)
            others = [FEAR_ROWS[o][j] for o in FEAR_ROWS if o != name]
            core = [v for v in own if not any(a <= v <= b for a, b in others)]
            values.append(np.asarray(core if core else own, dtype=float))
        out[name] = values
    return out


_ROW_VALUES = _row_values()
_SCALES = np.array([RATING_SCALES[n] for n in RATING_NAMES])  # (5, 2) low and high ends


def _matching_rows(rating: np.ndarray) -> list[str]:
    return [name for name, ranges in FEAR_ROWS.items()
            if all(lo <= r <= hi for r, (lo, hi) in zip(rating, ranges, strict=True))]


def draw_ratings(
    rng: np.random.Generator, n_clips: int, fear_share: float
) -> tuple[np.ndarray, np.ndarray]:
    """Integer ratings of one subject's clips (see the module docstring).

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of randomness.
    n_clips : int
        Number of clips.
    fear_share : float
        Share of clips rated inside a fear-table row (0..1).

    Returns
    -------
    ratings : ndarray, shape (n_clips, 5)
        Arousal, valence, engagement, liking, familiarity.
    rows : ndarray of int, shape (n_clips,)
        Index of the fear row (0 none .. 3 high) each clip was drawn in, -1 for the others.
    """
    n_rule = int(round(fear_share * n_clips))
    rows = np.full(n_clips, -1)
    rows[rng.permutation(n_clips)[:n_rule]] = np.arange(n_rule) % len(FEAR_ROWS)
    names = list(FEAR_ROWS)
    ratings = np.empty((n_clips, 5))
    for c in range(n_clips):
        if rows[c] >= 0:
            ratings[c] = [rng.choice(v) for v in _ROW_VALUES[names[rows[c]]]]
            continue
        while True:  # rejection: about 1 % of uniform draws fall in a row
            rating = rng.integers(_SCALES[:, 0], _SCALES[:, 1], endpoint=True).astype(float)
            if not _matching_rows(rating):
                break
        ratings[c] = rating
    return ratings, rows


def _check_args(n_subjects, n_clips, seconds, seed, fear_share) -> None:
    for name, value, top in (("n_subjects", n_subjects, MAX_SUBJECTS), ("n_clips", n_clips,
                                                                         MAX_CLIPS)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise TypeError(f"'{name}' must be an int, got {type(value).__name__}.")
        if not 1 <= value <= top:
            raise ValueError(
                f"Invalid value for '{name}': expected 1..{top} (the size of ASCERTAIN), "
                f"got {value!r}."
            )
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float, np.number)):
        raise TypeError(f"'seconds' must be a number, got {type(seconds).__name__}.")
    if not (math.isfinite(seconds) and 5.0 <= seconds <= 600.0):
        raise ValueError(
            f"Invalid value for 'seconds': expected 5..600 (mean clip length), got {seconds!r}."
        )
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise TypeError(f"'seed' must be a non-negative int, got {seed!r}.")
    if isinstance(fear_share, bool) or not isinstance(fear_share, (int, float, np.number)):
        raise TypeError(f"'fear_share' must be a number, got {type(fear_share).__name__}.")
    if not 0.0 <= fear_share <= 1.0:
        raise ValueError(f"Invalid value for 'fear_share': expected 0..1, got {fear_share!r}.")


def _slow_noise(rng: np.random.Generator, n_streams: int, n_steps: int, rho: float = 0.8):
    """Unit-variance AR(1) series, shape (n_streams, n_steps): slow once-a-second drift."""
    e = rng.standard_normal((n_streams, n_steps))
    out = np.empty_like(e)
    out[:, 0] = e[:, 0]
    for k in range(1, n_steps):
        out[:, k] = rho * out[:, k - 1] + math.sqrt(1.0 - rho**2) * e[:, k]
    return out


def _unit_vector(rng: np.random.Generator) -> np.ndarray:
    v = rng.standard_normal(3)
    return v / np.linalg.norm(v)


class _Subject:
    """A subject's shared profile plus the ASCERTAIN-specific constants drawn for it."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.profile: SubjectProfile = subject_profile(rng, n_eeg=1)
        self.attention_offset, self.meditation_offset = rng.normal(0.0, 8.0, 2)
        # log10 level of alpha, beta, delta, gamma, theta band powers
        self.band_level = rng.normal([4.5, 4.3, 5.0, 3.8, 4.8], 0.25) * math.log(10.0)
        self.ecg_gain = np.array([rng.uniform(0.8, 1.5), rng.uniform(0.3, 0.8)])
        self.ecg_offset = rng.normal(0.0, 0.5, 2)
        self.gsr_dir, self.ecg_dir = _unit_vector(rng), _unit_vector(rng)
        self.move_rate = rng.uniform(1.0, 4.0)


def _eeg(rng, subj: _Subject, z: np.ndarray, n: int, lead: float, nuisance) -> np.ndarray:
    """``ThisEEG`` rows, shape (8, n): raw, attention, meditation, alpha, beta, delta, gamma,
    theta."""
    p = subj.profile
    valence, arousal, engagement = z
    blinks = blink_train(rng, n, EEG_RATE, p.blink_rate, n_epochs=1) * p.blink_amp
    raw = affective_eeg(rng, z[None, :], p, ["Fp1"], n, EEG_RATE, onset=lead, blinks=blinks,
                        car=False)[0, 0]
    env = onset_ramp(n, EEG_RATE, lead)
    low_beta = band_oscillation(rng, 1, n, EEG_RATE, (12.0, 15.5))[0]
    raw += p.eeg_gain[0] * p.beta_amp * np.exp(p.k_arousal_fast * arousal * env) * low_beta
    raw += p.eeg_gain[0] * 8.0 * pink_noise(rng, 1, n, EEG_RATE, band=(0.5, 4.0))[0]

    n_sec = int(math.ceil(n / EEG_RATE))
    env_s = onset_ramp(n_sec, 1.0, lead)
    noise = _slow_noise(rng, 7, n_sec)
    attention = 50 + subj.attention_offset + 5 * nuisance[0] + 8 * noise[0]
    attention += (20 * engagement + 8 * arousal) * env_s
    meditation = 50 + subj.meditation_offset + 5 * nuisance[1] + 8 * noise[1]
    meditation += (12 * valence - 12 * arousal) * env_s
    k_a, k_v = p.k_arousal_fast, p.k_valence_alpha
    drive = np.array([k_v * valence - 0.3 * arousal, k_a * arousal, -0.1 * arousal,
                      1.3 * k_a * arousal, 0.3 * arousal])
    level = subj.band_level + 0.2 * nuisance[2]
    bands = np.exp(level[:, None] + drive[:, None] * env_s + 0.3 * noise[2:])
    slow = np.vstack([np.clip(np.round([attention, meditation]), 1, 100), np.round(bands)])
    # NeuroSky updates these values once a second; the 32 Hz stream holds them.
    held = np.repeat(slow, int(EEG_RATE), axis=1)[:, n_sec * int(EEG_RATE) - n :]
    return np.vstack([raw[None, :], held])


def _ecg(rng, subj: _Subject, arousal: float, n: int, lead: float, columns: int, nuisance):
    """ECG columns without t_ms, shape (n, columns - 1)."""
    p = subj.profile
    env = onset_ramp(n, ECG_RATE, lead)
    hr = (p.hr_base + 3.0 * nuisance + p.hr_gain * arousal * env)[None, :]
    wave = pulse_wave(rng, n, ECG_RATE, hr, n_epochs=1, kind="ecg")[0]
    wander = 0.05 * pink_noise(rng, 2, n, ECG_RATE, exponent=2.0, band=(0.05, 0.5))
    leads = (subj.ecg_offset[:, None] + subj.ecg_gain[:, None] * wave[None, :] + wander
             + 0.01 * rng.standard_normal((2, n)))
    if columns == 3:
        return leads.T
    return np.vstack([_acc(rng, subj.ecg_dir, subj.move_rate, arousal, n, ECG_RATE), leads]).T


def _acc(rng, direction, move_rate, arousal, n, sfreq) -> np.ndarray:
    """Accelerometer (3, n) in m/s²: gravity, noise, movement bumps (more with arousal)."""
    bumps = blink_train(rng, n, sfreq, move_rate * math.exp(0.5 * arousal), duration=0.8)
    return (GRAVITY * direction[:, None] + 0.03 * rng.standard_normal((3, n))
            + 0.8 * _unit_vector(rng)[:, None] * bumps[None, :])


def _gsr(rng, subj: _Subject, arousal: float, n: int, lead: float, nuisance) -> np.ndarray:
    """GSR columns without t_ms, shape (n, 4): accX, accY, accZ, GSR (kΩ)."""
    p = subj.profile
    # skin_conductance's drift needs >= 10 s: draw a longer record and keep its end.
    n_draw = max(n, int(math.ceil(MIN_SCL_SECONDS * GSR_RATE)))
    lead += (n_draw - n) / GSR_RATE
    conductance = skin_conductance(rng, np.array([arousal]), p, n_draw, GSR_RATE, onset=lead)
    conductance = conductance[0, n_draw - n :] * math.exp(0.15 * nuisance)
    resistance = p.sensor_gain[2] * 1000.0 / conductance
    acc = _acc(rng, subj.gsr_dir, subj.move_rate, arousal, n, GSR_RATE)
    return np.vstack([acc, resistance[None, :]]).T


def _stamps(start_ms: float, duration: float, n: int, sfreq: float) -> np.ndarray:
    """Timestamps (ms) of ``n`` samples whose last one ends at the clip's end."""
    return start_ms + 1000.0 * (duration - (n - np.arange(n)) / sfreq)


def _quirks(rng: np.random.Generator, n_clips: int) -> np.ndarray:
    """Per clip of one subject: NaN rows in ECG, in GSR, NaN EEG sample, 9-row EEG (4, n_clips).

    A subject with two clips or more gets at least one NaN-row file and one 9-row EEG file.
    """
    flags = rng.random((4, n_clips)) < np.array([P_NAN_ROWS, P_NAN_ROWS, P_NAN_EEG,
                                                 P_NINE_ROWS])[:, None]
    if n_clips >= 2:
        if not flags[:2].any():
            flags[rng.integers(2), rng.integers(n_clips)] = True
        if not flags[3].any():
            flags[3, rng.integers(n_clips)] = True
    return flags


def _nan_rows(rng: np.random.Generator, table: np.ndarray) -> None:
    rows = rng.choice(table.shape[0], size=int(rng.integers(1, 6)), replace=False)
    table[rows] = np.nan


def _save(path: Path, variable: str, value: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(path, {variable: value}, do_compression=True)


def write_ascertain(
    root: str | os.PathLike,
    *,
    n_subjects: int = 4,
    n_clips: int = 36,
    seconds: float = 60.0,
    seed: int = 0,
    fear_share: float = 0.5,
) -> Path:
    """Write a synthetic ASCERTAIN raw release under ``root`` (see the module docstring).

    Parameters
    ----------
    root : str or path-like
        Output folder (created); ``ASCERTAIN_Raw`` and ``ASCERTAIN_Features`` go inside.
    n_subjects : int
        Subjects ``P01`` ... (1..58).
    n_clips : int
        Clips ``1`` ... per subject (1..36).
    seconds : float
        Typical clip length in seconds (5..600); clips last 0.70-1.42 times it.
    seed : int
        Seed; the same arguments give identical files.
    fear_share : float
        Share of each subject's clips rated inside a fear-table row.

    Returns
    -------
    pathlib.Path
        ``root``, ready for :func:`fearkd.datasets.ascertain.load_ascertain`.
    """
    if not isinstance(root, (str, os.PathLike)):
        raise TypeError(f"'root' must be a path (str or os.PathLike), got {type(root).__name__}.")
    _check_args(n_subjects, n_clips, seconds, seed, fear_share)
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise ValueError(f"Invalid value for 'root': {str(root)!r} is a file; expected a folder.")
    # Child generators by index: subject k's signals do not depend on how many subjects follow.
    seqs = np.random.SeedSequence(seed).spawn(MAX_SUBJECTS + 1)
    rng = np.random.default_rng(seqs[0])
    durations = float(seconds) * np.exp(rng.uniform(-0.35, 0.35, n_clips))

    ratings = np.empty((5, n_subjects, n_clips))
    order = np.empty((n_subjects, n_clips))
    raw = root / "ASCERTAIN_Raw"
    for s in range(n_subjects):
        # Signals and file quirks draw from separate streams, so quirks never shift signals.
        srng, qrng = (np.random.default_rng(q) for q in seqs[s + 1].spawn(2))
        nan_ecg, nan_gsr, nan_eeg, nine = _quirks(qrng, n_clips)
        subj = _Subject(srng)
        r, _ = draw_ratings(srng, n_clips, fear_share)
        # (valence, arousal, engagement) drive the physiology; liking/familiarity only rate it.
        z = latent_state(srng, r[:, [1, 0, 2]], subj.profile, low=(-3.0, 0.0, 0.0),
                         high=(3.0, 6.0, 6.0), noise=RATING_NOISE)
        viewing = srng.permutation(n_clips)
        order[s] = viewing + 1
        clock = SESSION_START_MS + s * 86_400_000.0 + srng.uniform(0.0, 3.6e6)
        columns = 3 if s < 8 else 6  # subjects 1-8 lack the ECG accelerometer
        sid = f"P{s + 1:02d}"
        for c in viewing:
            clock += 1000.0 * srng.uniform(20.0, 40.0)  # rating and pause between clips
            dur = durations[c]
            leads = {"eeg": srng.uniform(0.5, 3.0), "ecg": srng.uniform(0.0, 2.0),
                     "gsr": srng.uniform(0.0, 2.0)}
            n = {m: int(math.floor((dur + leads[m]) * DEFAULT_SFREQ[m])) for m in leads}
            # Sample grids end exactly at the clip's end; effects start at the clip's start.
            onset = {m: n[m] / DEFAULT_SFREQ[m] - dur for m in leads}
            # Clip-level influences unrelated to the ratings (content, posture, time of day).
            nuis = srng.standard_normal(5)
            eeg = _eeg(srng, subj, z[c], n["eeg"], onset["eeg"], nuis[:3])
            ecg = _ecg(srng, subj, z[c, 1], n["ecg"], onset["ecg"], columns, nuis[3])
            gsr = _gsr(srng, subj, z[c, 1], n["gsr"], onset["gsr"], nuis[4])
            ecg = np.column_stack([_stamps(clock, dur, n["ecg"], ECG_RATE), ecg])
            gsr = np.column_stack([_stamps(clock, dur, n["gsr"], GSR_RATE), gsr])
            clock += 1000.0 * dur
            if nan_ecg[c]:
                _nan_rows(qrng, ecg)
            if nan_gsr[c]:
                _nan_rows(qrng, gsr)
            if nan_eeg[c]:
                eeg[:, qrng.integers(eeg.shape[1])] = np.nan
            if nine[c]:
                quality = np.where(qrng.random(eeg.shape[1]) < 0.05, 200.0, 0.0)
                eeg = np.vstack([eeg, quality[None, :]])
            clip = c + 1
            _save(raw / "EEGData" / f"Movie_{sid}" / f"EEG_Clip{clip}.mat", "ThisEEG", eeg)
            _save(raw / "ECGData" / f"Movie_{sid}" / f"ECG_Clip{clip}.mat", "Data_ECG", ecg)
            _save(raw / "GSRData" / f"Movie_{sid}" / f"GSR_Clip{clip}.mat", "Data_GSR", gsr)
        # A few skipped self-reports, written after the physiology used the full ratings.
        missing = qrng.random(n_clips) < P_NAN_RATING
        r[missing, qrng.integers(0, 5, int(missing.sum()))] = np.nan
        ratings[:, s, :] = r.T
    features = root / "ASCERTAIN_Features"
    _save(features / "Dt_SelfReports.mat", "Ratings", ratings)
    _save(features / "Dt_Order_Movie.mat", "PermutationList", order)
    write_synthetic_marker(root, "write_ascertain", n_subjects=int(n_subjects),
                           n_clips=int(n_clips), seconds=float(seconds), seed=int(seed),
                           fear_share=float(fear_share))
    return root
