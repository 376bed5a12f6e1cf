"""Generative model of affect-driven physiology shared by the synthetic dataset writers.

The synthetic writers (:mod:`.deap`, :mod:`.ascertain`) write files in the real on-disk formats
whose signals carry **learnable, realistic structure**: fear can be detected, and the
subject-independent protocol is harder than the subject-dependent one, as on the real data.

Model
-----
*State and ratings.* Each trial has a true affective state ``z = (valence, arousal, dominance)``
on a normalised scale (about -1..1, 0 = neutral); physiology is driven by ``z`` only. The
self-report is ``rating = bias_s + scale_s * z + noise`` (rating scale mapped to -1..1), where
``bias_s``, ``scale_s`` are the subject's rating habits. Writers draw the ratings first (so that
every fear box receives trials) and get ``z`` by inverting the habit (:func:`latent_state`): the
same joint distribution. Models tested on other subjects meet other habits and other
physiological offsets than they were trained on. Stimulus effects start at the trial's onset
(none in the baseline) and rise with a time constant of 1.5 s (:func:`onset_ramp`).

*EEG* (µV, :func:`affective_eeg`): 1/f (pink) background of 12 µV RMS in 4-45 Hz plus theta
(4-7 Hz), alpha at the subject's peak frequency (9-11 Hz, strongest parieto-occipitally), beta
(13-30 Hz) and gamma (30-45 Hz) band-limited processes, each with trial-to-trial jitter.
Valence sets **frontal alpha asymmetry**: alpha amplitude over left frontal sites (Fp1, AF3, F3,
F7, FC5, FC1) scales by ``exp(-k_v * valence)``, over right ones (Fp2, AF4, F4, F8, FC6, FC2)
by ``exp(+k_v * valence)``, so ``log(alpha F4 / alpha F3)`` rises with valence. Arousal raises
**beta and gamma** amplitude by ``exp(k_a * arousal)`` (gamma 1.3x) and lowers alpha slightly.
Arousal also raises **frontal theta** (log amplitude ``THETA_AROUSAL`` = 0.4 per unit, x the
frontal weight). Strength: one fear level (one box step) moves the state by about -0.5 in
valence and +0.5 in arousal, so the planted F4-vs-F3 alpha log-amplitude ratio falls by
``k_valence_alpha`` (0.3-0.55) per level; in log band power (8-12 Hz, 4 s windows, background
included) the measured ``log alpha(F4) - log alpha(F3)`` is 0.42, 0.05, 0.01, -0.21 for none,
low, medium, high (about -0.21 per level; seed 0, 6 subjects x 16 trials,
``tests/test_synthetic_knobs.py::asymmetry_by_level``).
Residual blinks (0.2 x vEOG, weighted Fp > AF > F > FC) reach frontal channels; the montage is
re-referenced to the common average, as in DEAP.

*Fear and source patterns* (DEAP writer's ``shared`` knob). The fear correlates (alpha
asymmetry, theta, beta/gamma, skin conductance, heart and breathing rate, temperature,
trapezius EMG, blink rate) follow the state passed as ``state``; the source-task pattern
(zygomaticus EMG by valence, alpha desynchronisation by arousal) follows ``source_state``.
With both equal (the default) the model is the one above. The ``privileged`` knob scales the
EEG log-gains of chosen channels (``effect_scale``).

*Peripheral signals.* Heart: PPG (or ECG with P-QRS-T waves) at ``hr_base + hr_gain *
arousal`` bpm (55-85 at rest, +4-10 per unit arousal) with slow heart-rate variability
(:func:`pulse_wave`). Skin conductance (µS, :func:`skin_conductance`): tonic level ``scl_base *
exp(scl_gain * arousal)`` with slow drift, phasic responses (SCRs: Bateman shape, rise 0.75 s,
decay 2 s) whose rate and amplitude grow with arousal, and one stimulus-evoked SCR 1.5-3 s after
onset scaled by arousal. DEAP stores skin **resistance** (Ohm) = ``1e6 / conductance``, about
1e5-1e6 Ohm, so resistance falls as arousal rises. Respiration: belt signal at ``resp_base +
resp_gain * arousal`` breaths/min (12-18 at rest) with varying depth. EMG (µV): zygomaticus
(smiling) 20-60 Hz activity growing as ``exp(k_emg * valence)``; trapezius growing with
arousal. EOG (µV): vertical = blinks (10-25 per minute, more with arousal) + small saccades;
horizontal = saccade steps. Skin temperature: 29-33 °C with slow drift, falling slightly with
arousal (vasoconstriction).

*Subjects* (:func:`subject_profile`): each subject has its own gains and offsets in every
channel (EEG amplitude per channel, alpha frequency and amplitude, effect sizes, resting heart
and breathing rate, skin conductance level, temperature, sensor gains and offsets) and its own
rating habits, so band powers and peripheral means differ by subject.

Conventions
-----------
Generators are vectorised over trials and channels and draw every random number from the
``numpy.random.Generator`` ``rng`` they get (same seed, same signals). ``n_chans``, ``n_times``:
channels and samples per epoch; ``sfreq``: sampling rate in Hz; ``n_epochs``: independent epochs
(trials), ``None`` drops that leading axis. A *per-epoch parameter* is a scalar, an array of
shape (n_epochs,) or, to vary in time, (n_epochs, n_times).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.signal import oaconvolve

from ._subjects import SubjectProfile, latent_state, subject_profile

__all__ = [
    "SubjectProfile", "affective_eeg", "band_oscillation", "blink_train", "latent_state",
    "onset_ramp", "pink_noise", "pulse_wave", "respiration_wave", "saccade_steps", "scr_train",
    "skin_conductance", "slow_drift", "subject_profile",
]

#: Time constant (s) of the rise of stimulus effects after onset.
EFFECT_TAU = 1.5
#: Background EEG RMS (µV) in 4-45 Hz before the subject's channel gains.
EEG_BACKGROUND_UV = 12.0
#: Share of the vEOG blink amplitude left in frontal EEG after DEAP's EOG cleaning.
BLINK_RESIDUAL = 0.2
#: Factor on the subject's ``k_valence_alpha`` (frontal alpha log-amplitude per unit valence).
FAA_GAIN = 1.0
#: Frontal theta log-amplitude per unit arousal (x the channel's frontal weight).
THETA_AROUSAL = 0.4
#: Factor on the subject's ``k_arousal_fast`` (beta log-amplitude per unit arousal).
FAST_AROUSAL = 1.0
#: Alpha log-amplitude lost per unit arousal, every channel (the source-task pattern).
ALPHA_DESYNC = 0.15


def _spectral_noise(
    rng: np.random.Generator, shape: tuple[int, ...], n_times: int, sfreq: float, weight
) -> np.ndarray:
    """Gaussian noise with amplitude spectrum ``weight(freqs)``, scaled to unit expected RMS."""
    freqs = np.fft.rfftfreq(n_times, 1.0 / sfreq)
    w = np.asarray(weight(freqs), dtype=float)
    w[0] = 0.0
    if n_times % 2 == 0:
        w[-1] = 0.0  # irfft drops the imaginary part of the Nyquist bin; keep the scaling exact
    power = float(np.sum(w**2))
    if power == 0.0:
        raise ValueError(
            f"No frequency bin of a {n_times}-sample signal at {sfreq} Hz (resolution "
            f"{sfreq / n_times:.3g} Hz) falls in the requested band; use a wider band or a "
            f"longer signal."
        )
    # One float64 draw viewed as complex avoids a second full-size temporary.
    spec = rng.standard_normal((*shape, 2 * freqs.size)).view(np.complex128)
    spec *= w
    x = np.fft.irfft(spec, n=n_times, axis=-1)
    # E|X_k|^2 = 2 w_k^2 per interior bin; var(x_t) = 4 * sum(w^2) / N^2 for irfft's 1/N.
    x *= n_times / (2.0 * np.sqrt(power))
    return x


def _shape(n_epochs: int | None, n_chans: int) -> tuple[int, ...]:
    return (n_chans,) if n_epochs is None else (int(n_epochs), n_chans)


def _check_band(band: tuple[float | None, float | None], sfreq: float) -> tuple[float, float]:
    lo, hi = band
    lo = 0.0 if lo is None else float(lo)
    hi = sfreq / 2.0 if hi is None else min(float(hi), sfreq / 2.0)
    if not lo < hi:
        raise ValueError(
            f"Invalid value for 'band': expected (low, high) with low < high <= sfreq/2 "
            f"= {sfreq / 2.0}, got {band!r}."
        )
    return lo, hi


def onset_ramp(n_times: int, sfreq: float, onset: float, *, tau: float = EFFECT_TAU) -> np.ndarray:
    """Envelope of a stimulus effect: 0 before ``onset`` (s), then ``1 - exp(-(t - onset) / tau)``.

    Returns ``env``, shape (n_times,), values in [0, 1); ``tau`` is the rise time in seconds.
    """
    t = np.arange(n_times) / sfreq - onset
    return np.where(t > 0, -np.expm1(-np.maximum(t, 0.0) / tau), 0.0)


def pink_noise(
    rng: np.random.Generator, n_chans: int, n_times: int, sfreq: float, *,
    n_epochs: int | None = None, exponent: float = 1.0,
    band: tuple[float | None, float | None] = (None, None)
) -> np.ndarray:
    """Gaussian noise with a ``1 / f**exponent`` power spectrum inside ``band``.

    Parameters
    ----------
    rng, n_chans, n_times, sfreq, n_epochs
        As in *Conventions* (module docstring).
    exponent : float
        Power-law exponent (1 = pink, 2 = brown / random-walk-like drift).
    band : (float or None, float or None)
        Pass band in Hz; power outside it is zero. ``None`` means 0 or Nyquist.

    Returns
    -------
    ndarray, shape (n_epochs, n_chans, n_times) or (n_chans, n_times); unit expected RMS.
    """
    lo, hi = _check_band(band, sfreq)

    def weight(f):
        inside = (f >= lo) & (f <= hi) & (f > 0)
        return np.where(inside, np.power(np.where(f > 0, f, 1.0), -exponent / 2.0), 0.0)

    return _spectral_noise(rng, _shape(n_epochs, n_chans), n_times, sfreq, weight)


def band_oscillation(
    rng: np.random.Generator, n_chans: int, n_times: int, sfreq: float, band: tuple[float, float],
    *, n_epochs: int | None = None
) -> np.ndarray:
    """Band-limited Gaussian process: a rhythm with fluctuating amplitude and phase.

    The amplitude spectrum is a half-sine over ``band`` (a spectral peak at its centre), as an
    EEG rhythm (alpha, beta) or muscle activity looks in a spectrum.

    Parameters
    ----------
    rng, n_chans, n_times, sfreq, n_epochs
        As in *Conventions* (module docstring).
    band : (float, float)
        Low and high edge in Hz; the high edge is clipped to Nyquist.

    Returns
    -------
    ndarray, shape (n_epochs, n_chans, n_times) or (n_chans, n_times); unit expected RMS.
    """
    lo, hi = _check_band(band, sfreq)

    def weight(f):
        inside = (f >= lo) & (f <= hi)
        return np.where(inside, np.sin(np.pi * (f - lo) / (hi - lo)), 0.0)

    return _spectral_noise(rng, _shape(n_epochs, n_chans), n_times, sfreq, weight)


def slow_drift(
    rng: np.random.Generator, n_times: int, sfreq: float, *, n_epochs: int | None = None,
    cutoff: float = 0.1
) -> np.ndarray:
    """Slow random-walk-like drift: brown (1/f^2) noise below ``cutoff`` Hz, unit expected RMS.

    The band always keeps the two lowest frequency bins, so short signals still drift.
    Returns ndarray, shape (n_epochs, n_times) or (n_times,).
    """
    res = sfreq / n_times
    x = pink_noise(rng, 1, n_times, sfreq, n_epochs=n_epochs, exponent=2.0,
                   band=(res, max(cutoff, 2.0 * res)))
    return x[..., 0, :]


def _per_epoch(value, n_epochs: int, n_times: int) -> np.ndarray:
    """Broadcast a scalar, (n_epochs,) or (n_epochs, n_times) parameter to 2-D."""
    v = np.asarray(value, dtype=float)
    if v.ndim == 0:
        return np.full((n_epochs, 1), float(v))
    if v.ndim == 1:
        if v.shape[0] != n_epochs:
            raise ValueError(f"Expected {n_epochs} per-epoch values, got shape {v.shape}.")
        return v[:, None]
    if v.shape not in {(n_epochs, n_times), (n_epochs, 1)}:
        raise ValueError(
            f"Expected shape ({n_epochs}, {n_times}) for a time-varying parameter, got {v.shape}."
        )
    return v


def _events(rng: np.random.Generator, rate, sfreq: float, n_epochs: int, n_times: int):
    """Poisson event indicator (n_epochs, n_times) for a rate in events per minute."""
    p = np.clip(_per_epoch(rate, n_epochs, n_times) / 60.0 / sfreq, 0.0, 1.0)
    return rng.random((n_epochs, n_times)) < p


def _convolve_events(weights: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    n_times = weights.shape[-1]
    return oaconvolve(weights, kernel[None, :], mode="full", axes=-1)[:, :n_times]


def _squeeze(x: np.ndarray, n_epochs: int | None) -> np.ndarray:
    return x[0] if n_epochs is None else x


def blink_train(
    rng: np.random.Generator, n_times: int, sfreq: float, rate, *, n_epochs: int | None = None,
    duration: float = 0.3
) -> np.ndarray:
    """Eye blinks at random (Poisson) times, each a smooth bump of peak about 1.

    Parameters
    ----------
    rng, n_times, sfreq, n_epochs
        As in *Conventions* (module docstring).
    rate : float or ndarray (per-epoch parameter)
        Blinks per minute (may vary by epoch and in time).
    duration : float
        Blink duration in seconds.

    Returns
    -------
    ndarray, shape (n_epochs, n_times) or (n_times,); bumps of peak lognormal around 1.
    """
    n = 1 if n_epochs is None else int(n_epochs)
    ev = _events(rng, rate, sfreq, n, n_times)
    amp = np.exp(0.2 * rng.standard_normal((n, n_times)))
    t = np.arange(max(int(round(duration * sfreq)), 2)) / (duration * sfreq)
    kernel = np.sin(np.pi * t) ** 2
    x = _convolve_events(np.where(ev, amp, 0.0), kernel)
    return _squeeze(np.maximum(x, 0.0, out=x), n_epochs)


def scr_train(
    rng: np.random.Generator, n_times: int, sfreq: float, rate, amplitude, *,
    n_epochs: int | None = None, rise: float = 0.75, decay: float = 2.0
) -> np.ndarray:
    """Phasic skin conductance responses (SCRs) at random times.

    Each response is a Bateman function ``exp(-t/decay) - exp(-t/rise)`` scaled to a peak of the
    event's amplitude; amplitudes are lognormal (sd of log 0.4) around ``amplitude``.

    Parameters
    ----------
    rng, n_times, sfreq, n_epochs
        As in *Conventions* (module docstring).
    rate : float or ndarray (per-epoch parameter)
        Responses per minute.
    amplitude : float or ndarray (per-epoch parameter)
        Typical peak amplitude in µS.
    rise, decay : float
        Time constants in seconds (rise < decay).

    Returns
    -------
    ndarray, shape (n_epochs, n_times) or (n_times,); conductance increments in µS (>= 0).
    """
    n = 1 if n_epochs is None else int(n_epochs)
    ev = _events(rng, rate, sfreq, n, n_times)
    amp = _per_epoch(amplitude, n, n_times) * np.exp(0.4 * rng.standard_normal((n, n_times)))
    x = _convolve_events(np.where(ev, amp, 0.0), _bateman(sfreq, rise, decay))
    return _squeeze(np.maximum(x, 0.0, out=x), n_epochs)  # FFT round-off can dip below 0


def _bateman(sfreq: float, rise: float, decay: float) -> np.ndarray:
    t = np.arange(int(round(8 * decay * sfreq))) / sfreq
    k = np.exp(-t / decay) - np.exp(-t / rise)
    return k / k.max()


def _phase(rng, rate, sfreq, n_epochs, n_times, variability) -> np.ndarray:
    """Cumulative phase (radians) of a quasi-periodic process at ``rate`` cycles per minute."""
    r = _per_epoch(rate, n_epochs, n_times)
    if variability > 0 and n_times > 8:
        r = r * (1.0 + variability * slow_drift(rng, n_times, sfreq, n_epochs=n_epochs,
                                                cutoff=0.4))
    phase0 = rng.uniform(0.0, 2.0 * np.pi, size=(n_epochs, 1))
    return phase0 + 2.0 * np.pi * np.cumsum(np.broadcast_to(r, (n_epochs, n_times)), axis=1) / (
        60.0 * sfreq
    )


#: (centre as a share of the cycle, amplitude, width) of the waves of one heart beat.
_PPG_WAVES = ((0.15, 1.0, 0.07), (0.45, 0.35, 0.08))
_ECG_WAVES = (
    (0.10, 0.12, 0.025), (0.235, -0.15, 0.008), (0.25, 1.0, 0.010),
    (0.265, -0.25, 0.008), (0.50, 0.30, 0.040),
)


def pulse_wave(
    rng: np.random.Generator, n_times: int, sfreq: float, rate, *, n_epochs: int | None = None,
    kind: str = "ppg", variability: float = 0.03
) -> np.ndarray:
    """Cardiac waveform (photoplethysmogram or ECG) at a given heart rate.

    Parameters
    ----------
    rng, n_times, sfreq, n_epochs
        As in *Conventions* (module docstring).
    rate : float or ndarray (per-epoch parameter)
        Heart rate in beats per minute.
    kind : {"ppg", "ecg"}
        Systolic peak with dicrotic wave, or P, Q, R, S, T waves.
    variability : float
        Relative size of slow (0.02-0.4 Hz) heart-rate fluctuations.

    Returns
    -------
    ndarray, shape (n_epochs, n_times) or (n_times,); peak about 1 (R wave, systolic peak).
    """
    waves = {"ppg": _PPG_WAVES, "ecg": _ECG_WAVES}.get(kind)
    if waves is None:
        raise ValueError(f"Invalid value for 'kind': expected 'ppg' or 'ecg', got {kind!r}.")
    n = 1 if n_epochs is None else int(n_epochs)
    cycle = np.mod(_phase(rng, rate, sfreq, n, n_times, variability) / (2.0 * np.pi), 1.0)
    out = np.zeros((n, n_times))
    for centre, amp, width in waves:
        out += amp * np.exp(-0.5 * ((cycle - centre) / width) ** 2)
    return _squeeze(out, n_epochs)


def respiration_wave(
    rng: np.random.Generator, n_times: int, sfreq: float, rate, *, n_epochs: int | None = None,
    variability: float = 0.1
) -> np.ndarray:
    """Respiration belt signal (chest expansion) at a given breathing rate.

    Parameters
    ----------
    rng, n_times, sfreq, n_epochs
        As in *Conventions* (module docstring).
    rate : float or ndarray (per-epoch parameter)
        Breaths per minute.
    variability : float
        Relative size of slow fluctuations of rate and depth.

    Returns
    -------
    ndarray, shape (n_epochs, n_times) or (n_times,); amplitude about 1.
    """
    n = 1 if n_epochs is None else int(n_epochs)
    phase = _phase(rng, rate, sfreq, n, n_times, variability)
    depth = 1.0 + 1.5 * variability * slow_drift(rng, n_times, sfreq, n_epochs=n, cutoff=0.2)
    # Exhalation is longer than inhalation: a second harmonic skews the wave.
    return _squeeze(depth * (-np.cos(phase) + 0.2 * np.cos(2.0 * phase)), n_epochs)


def saccade_steps(
    rng: np.random.Generator, n_times: int, sfreq: float, rate, amplitude: float, *,
    n_epochs: int | None = None
) -> np.ndarray:
    """Gaze position as steps (saccades) at random times, as seen by an EOG channel.

    Parameters
    ----------
    rng, n_times, sfreq, n_epochs
        As in *Conventions* (module docstring).
    rate : float or ndarray (per-epoch parameter)
        Saccades per minute.
    amplitude : float
        Standard deviation of the gaze position (signal units, e.g. µV).

    Returns
    -------
    ndarray, shape (n_epochs, n_times) or (n_times,); steps smoothed over 30 ms.
    """
    n = 1 if n_epochs is None else int(n_epochs)
    ev = _events(rng, rate, sfreq, n, n_times)
    ev[:, 0] = True
    positions = amplitude * rng.standard_normal((n, n_times))
    last = np.maximum.accumulate(np.where(ev, np.arange(n_times), 0), axis=1)
    steps = np.take_along_axis(positions, last, axis=1)
    width = max(int(round(0.03 * sfreq)), 1)
    if width > 1:
        kernel = np.ones(width) / width
        steps = _convolve_events(np.pad(steps, ((0, 0), (width - 1, 0)), mode="edge"), kernel)
        steps = steps[:, width - 1 : width - 1 + n_times]
    return _squeeze(steps, n_epochs)


def _eeg_topography(ch_names: Sequence[str]):
    """Per channel: hemisphere side (-1 left, +1 right, 0 midline), frontal weight,
    posterior alpha weight, blink weight; from 10-20 names."""
    side, frontal, posterior, blink = [], [], [], []
    for name in ch_names:
        digits = "".join(c for c in name if c.isdigit())
        side.append(0.0 if not digits else (-1.0 if int(digits) % 2 else 1.0))
        head = name.rstrip("0123456789z").upper()
        frontal.append({"FP": 1.0, "AF": 1.0, "F": 1.0, "FC": 0.6}.get(head, 0.0))
        posterior.append(1.8 if head in {"O", "PO", "P"} else (1.2 if head == "CP" else 0.8))
        blink.append({"FP": 1.0, "AF": 0.6, "F": 0.25, "FC": 0.1}.get(head, 0.0))
    return tuple(np.asarray(v) for v in (side, frontal, posterior, blink))


def affective_eeg(
    rng: np.random.Generator, state: np.ndarray, profile: SubjectProfile, ch_names: Sequence[str],
    n_times: int, sfreq: float, *, onset: float = 0.0, blinks: np.ndarray | None = None,
    car: bool = True, source_state: np.ndarray | None = None,
    effect_scale: np.ndarray | None = None
) -> np.ndarray:
    """EEG whose band powers follow the affective state (see the module docstring).

    Parameters
    ----------
    rng, n_times, sfreq
        As in *Conventions*; bands above 0.45 * sfreq are left out.
    state : ndarray, shape (n_trials, 3)
        Normalised valence, arousal, dominance (from :func:`latent_state`) driving the fear
        correlates: frontal alpha asymmetry (valence), frontal theta and beta/gamma (arousal).
    profile : SubjectProfile
        The subject; ``profile.eeg_gain`` needs at least ``len(ch_names)`` entries.
    ch_names : sequence of str
        10-20 names; they set hemisphere (odd = left, even = right), frontal and posterior
        weights and blink spread.
    onset : float
        Stimulus onset in seconds (effects start there).
    blinks : ndarray, shape (n_trials, n_times), optional
        vEOG blink signal (µV); its residual is added to frontal channels.
    car : bool
        Re-reference to the common average.
    source_state : ndarray, shape (n_trials, 3), optional
        State driving the source-task pattern (alpha desynchronisation by arousal); default
        ``state``.
    effect_scale : ndarray, shape (n_chans,), optional
        Per-channel factor on every affective log-gain (0 removes the channel's affective
        effects; default 1 everywhere).

    Returns
    -------
    ndarray, shape (n_trials, n_chans, n_times); EEG in µV.
    """
    state = np.asarray(state, dtype=float)
    source = state if source_state is None else np.asarray(source_state, dtype=float)
    n, n_ch = state.shape[0], len(ch_names)
    scale = np.ones(n_ch) if effect_scale is None else np.asarray(effect_scale, dtype=float)
    side, frontal, posterior, blink_w = _eeg_topography(ch_names)
    env = onset_ramp(n_times, sfreq, onset)
    top = 0.45 * sfreq
    valence, arousal = state[:, 0], state[:, 1]
    zero = np.zeros(n_ch)

    eeg = pink_noise(rng, n_ch, n_times, sfreq, n_epochs=n, band=(4.0, min(45.0, top)))
    eeg *= EEG_BACKGROUND_UV
    # (amplitude, band, per-channel topography, log-gains per channel: (k, driver) pairs)
    af = profile.alpha_freq
    ones = np.ones(n_ch)
    k_fast = FAST_AROUSAL * profile.k_arousal_fast * ones
    comps = [
        (profile.theta_amp, (4.0, 7.0), ones, [(THETA_AROUSAL * frontal, arousal)]),
        # valence sets frontal asymmetry; arousal (source pattern) desynchronises alpha
        (profile.alpha_amp, (af - 1.5, af + 1.5), posterior,
         [(FAA_GAIN * side * frontal * profile.k_valence_alpha, valence),
          (-ALPHA_DESYNC * ones, source[:, 1])]),
        (profile.beta_amp, (13.0, 30.0), ones, [(k_fast, arousal)]),
        (profile.gamma_amp, (30.0, 45.0), ones, [(1.3 * k_fast, arousal)]),
    ]
    for amp, (lo, hi), topo, effects in comps:
        if lo >= top:
            continue
        x = band_oscillation(rng, n_ch, n_times, sfreq, (lo, min(hi, top)), n_epochs=n)
        # trial-to-trial fluctuation unrelated to the state (sd 0.15 in log amplitude)
        x *= (amp * topo)[None, :, None] * np.exp(0.15 * rng.standard_normal((n, n_ch, 1)))
        log_gain = sum((k * scale)[None, :] * d[:, None] for k, d in effects) + zero
        x *= np.exp(log_gain[:, :, None] * env)
        eeg += x
        del x
    eeg *= profile.eeg_gain[None, :n_ch, None]
    if blinks is not None:
        eeg += BLINK_RESIDUAL * blink_w[None, :, None] * np.asarray(blinks)[:, None, :]
    if car and n_ch > 1:
        eeg -= eeg.mean(axis=1, keepdims=True)
    return eeg


def skin_conductance(
    rng: np.random.Generator, arousal: np.ndarray, profile: SubjectProfile, n_times: int,
    sfreq: float, *, onset: float = 0.0
) -> np.ndarray:
    """Skin conductance (tonic level + SCRs) driven by arousal.

    Parameters
    ----------
    rng, n_times, sfreq
        As in *Conventions*.
    arousal : ndarray, shape (n_trials,)
        Normalised arousal (from :func:`latent_state`).
    profile : SubjectProfile
        The subject.
    onset : float
        Stimulus onset in seconds.

    Returns
    -------
    ndarray, shape (n_trials, n_times); conductance in µS (>= 0.2), resistance is 1e6 / it.
    """
    arousal = np.asarray(arousal, dtype=float)
    n = arousal.shape[0]
    env = onset_ramp(n_times, sfreq, onset)[None, :]
    drive = arousal[:, None] * env
    tonic = profile.scl_base * np.exp(profile.scl_gain * drive)
    tonic *= 1.0 + 0.03 * slow_drift(rng, n_times, sfreq, n_epochs=n, cutoff=0.1)
    phasic = scr_train(
        rng, n_times, sfreq, profile.scr_rate * np.exp(0.7 * drive),
        profile.scr_amp * np.exp(0.4 * drive), n_epochs=n,
    )
    # One stimulus-evoked response per trial, larger for more arousing stimuli.
    at = onset + rng.uniform(1.5, 3.0, n)
    idx = np.minimum((at * sfreq).astype(int), n_times - 1)
    evoked = np.zeros((n, n_times))
    evoked[np.arange(n), idx] = profile.scr_amp * 2.0 * np.exp(0.8 * arousal)
    phasic += _convolve_events(evoked, _bateman(sfreq, 0.75, 2.0))
    g = tonic + phasic + 0.002 * profile.scl_base * rng.standard_normal((n, n_times))
    return np.maximum(g, 0.2)
