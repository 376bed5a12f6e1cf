"""Synthetic DEAP in the real on-disk layout, with physiology driven by the ratings.

:func:`write_deap` writes ``data_preprocessed_python/sNN.dat`` (a Python-2 protocol-2 pickle
built byte by byte, as the real release has it), ``data_preprocessed_matlab/sNN.mat`` and
``metadata_csv/participant_ratings.csv``, and marks the root as synthetic
(``fearkd-synthetic.json``: the writer and its arguments; readers report it). The signals
follow the generative model of :mod:`fearkd.datasets.synthetic._physio`.

Ratings. For each subject, ``round(fear_share * n_trials)`` trials get valence, arousal and
dominance drawn uniformly inside a DEAP fear box (none, low, medium, high, cycled starting at a
box that shifts with the subject, so every box receives trials whenever the dataset has at least
four fear trials); the other trials are drawn uniformly over the rest of the 1..9 cube (outside
every box). Liking follows valence with noise; familiarity (CSV only) is an integer 1-5, blank
for participants 2, 15 and 23 as in the real file. Ratings have two decimals.

Knobs (:func:`write_deap`, ``fearkd synth deap``): ``fear_share`` (label sparsity),
``privileged`` (the EEG fear signal removed from the student's 14 EPOC channels, so only the
teacher's other channels carry it), ``shared`` (overlap of the source-task and fear latents)
and ``subject_shift`` (per-subject offsets and gains). Defaults reproduce the earlier data
kind: every EEG channel carries the correlates, one latent drives both tasks, the spread of
``_subjects._PROFILE_RANGES``. Measured known answers: ``tests/test_synthetic_knobs.py``.

Every subject draws from its own generator ``default_rng([seed, subject_number])``: a subject's
files do not depend on how many subjects are written, and the same seed gives byte-identical
files.
"""

from __future__ import annotations

import csv
import logging
import numbers
import os
import struct
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from ..._atomic import atomic_open
from ..._outputs import write_synthetic_marker
from ..deap import CHANNELS, EEG_CHANNELS, N_SUBJECTS, N_TIMES, N_TRIALS, ONSET, SFREQ
from . import _physio as phy

__all__ = ["FEAR_BOXES", "STUDENT_EEG", "write_dat_file", "write_deap"]

logger = logging.getLogger(__name__)

#: DEAP fear boxes: (valence, arousal, dominance) ranges, half-open with a closed top edge at 9.
FEAR_BOXES = {
    "none": ((7.0, 9.0), (1.0, 3.0), (7.0, 9.0)),
    "low": ((5.0, 7.0), (3.0, 5.0), (5.0, 7.0)),
    "medium": ((3.0, 5.0), (5.0, 7.0), (3.0, 5.0)),
    "high": ((1.0, 3.0), (7.0, 9.0), (1.0, 3.0)),
}
#: The student's EEG channels (Emotiv EPOC; the ``deap-student-eeg`` feature preset).
STUDENT_EEG = (
    "AF3", "F7", "F3", "FC5", "T7", "P7", "O1", "O2", "P8", "T8", "FC6", "F4", "F8", "AF4",
)
#: Largest ``subject_shift``: beyond it resting levels leave any physiological range.
MAX_SUBJECT_SHIFT = 5.0
#: Participants whose familiarity is blank in the real participant_ratings.csv.
_BLANK_FAMILIARITY = (2, 15, 23)
#: Trials simulated at once: bounds the writer's memory at about 120 MB at full length.
_CHUNK = 8
#: Fixed text for the MATLAB header, whose default holds the current time.
_MAT_HEADER = b"MATLAB 5.0 MAT-file, Platform: posix, Created by: fearkd synthetic DEAP"


# ---------------------------------------------------------------- hand-built Python-2 pickle
def _pickle_int(n: int) -> bytes:
    if 0 <= n < 256:
        return b"K" + bytes([n])  # BININT1
    if 0 <= n < 65536:
        return b"M" + struct.pack("<H", n)  # BININT2
    return b"J" + struct.pack("<i", n)  # BININT


def _short_binstring(s: bytes) -> bytes:
    return b"U" + bytes([len(s)]) + s


def _array_head(shape: tuple[int, ...], nbytes: int) -> bytes:
    """Opcodes of a Python-2 NumPy array pickle up to the raw buffer (BINSTRING length)."""
    ints = b"".join(_pickle_int(int(d)) for d in shape)
    tuple_op = {1: b"\x85", 2: b"\x86", 3: b"\x87"}
    shape_op = ints + tuple_op[len(shape)] if len(shape) in tuple_op else b"(" + ints + b"t"
    return (
        b"cnumpy.core.multiarray\n_reconstruct\n"
        b"cnumpy\nndarray\n"
        b"K\x00\x85" + _short_binstring(b"b") + b"\x87R"
        b"(K\x01" + shape_op
        + b"cnumpy\ndtype\n" + _short_binstring(b"f8") + b"K\x00K\x01\x87R"
        b"(K\x03" + _short_binstring(b"<") + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb"
        b"\x89T" + struct.pack("<i", nbytes)
    )


_ARRAY_TAIL = b"tb"


def _write_array(f, shape: tuple[int, ...], chunks: Iterable[np.ndarray]) -> None:
    """Stream one float64 array: the buffer is written chunk by chunk, never joined."""
    nbytes = int(np.prod(shape)) * 8
    if nbytes >= 2**31:
        raise ValueError(f"An array of shape {shape} is too large for a protocol-2 BINSTRING.")
    f.write(_array_head(shape, nbytes))
    written = 0
    for chunk in chunks:
        chunk = np.ascontiguousarray(chunk, dtype="<f8")
        f.write(chunk.data)  # the buffer itself, no bytes copy
        written += chunk.nbytes
    if written != nbytes:
        raise ValueError(f"Chunks hold {written} bytes; shape {shape} needs {nbytes}.")
    f.write(_ARRAY_TAIL)


def _write_dat_stream(path: Path, arrays) -> None:
    """``arrays``: (key, shape, iterable of C-order chunks) in the order to write."""
    with atomic_open(path) as f:  # no half-written file left behind
        f.write(b"\x80\x02}(")  # PROTO 2, EMPTY_DICT, MARK
        for key, shape, chunks in arrays:
            f.write(_short_binstring(key.encode("ascii")))
            _write_array(f, tuple(shape), chunks)
        f.write(b"u.")  # SETITEMS, STOP


def write_dat_file(path: str | os.PathLike, arrays: dict[str, np.ndarray]) -> Path:
    """Write arrays as a DEAP-style Python-2 pickle (a dict of float64 arrays).

    Parameters
    ----------
    path : str or path-like
        Output file.
    arrays : dict of str to ndarray
        Keys (ASCII, < 256 bytes) and arrays of any shape; stored as little-endian float64.

    Returns
    -------
    path : pathlib.Path
    """
    path = Path(path)
    _write_dat_stream(
        path, [(k, np.shape(v), [np.asarray(v, dtype=float)]) for k, v in arrays.items()]
    )
    return path


# ---------------------------------------------------------------- ratings
def _in_box(r: np.ndarray, box) -> np.ndarray:
    ok = np.ones(r.shape[0], dtype=bool)
    for j, (lo, hi) in enumerate(box):
        ok &= (r[:, j] >= lo) & ((r[:, j] < hi) | ((hi == 9.0) & (r[:, j] == 9.0)))
    return ok


def _two_decimals(x: np.ndarray) -> np.ndarray:
    # floor keeps a value drawn in [lo, hi) inside the box; k / 100 is the double nearest to
    # the decimal, so the CSV text round-trips exactly.
    return np.floor(x * 100.0) / 100.0


def _draw_ratings(rng: np.random.Generator, n_trials: int, n_fear: int, first_box: int):
    """Ratings (n_trials, 4) in 1..9 and the fear box index per trial (-1 = none)."""
    boxes = list(FEAR_BOXES.values())
    which = np.full(n_trials, -1)
    which[rng.permutation(n_trials)[:n_fear]] = (first_box + np.arange(n_fear)) % len(boxes)
    vad = np.empty((n_trials, 3))
    for i, b in enumerate(which):
        if b >= 0:
            lo, hi = np.array(boxes[b]).T
            vad[i] = _two_decimals(rng.uniform(lo, hi))
        else:
            while True:  # rejection: the rest of the cube, outside every box
                r = _two_decimals(rng.uniform(1.0, 9.0, (1, 3)))
                if not any(_in_box(r, box)[0] for box in boxes):
                    vad[i] = r[0]
                    break
    liking = _two_decimals(np.clip(5.0 + 0.6 * (vad[:, 0] - 5.0) + rng.normal(0, 1.2, n_trials),
                                   1.0, 9.0))
    return np.column_stack([vad, liking]), which


# ---------------------------------------------------------------- signals
def _simulate(rng, profile: phy.SubjectProfile, state: np.ndarray, n_times: int,
              effect_scale: np.ndarray) -> np.ndarray:
    """The 40 DEAP channels, shape (n_trials, 40, n_times).

    ``state``, shape (n_trials, 2, 3): per trial the state driving the fear pattern (index 0)
    and the source-task pattern (index 1); ``effect_scale``, shape (32,): factor on the EEG
    channels' affective effects.
    """
    n, sf = state.shape[0], SFREQ
    env = phy.onset_ramp(n_times, sf, ONSET)[None, :]
    fear_state, source_state = state[:, 0], state[:, 1]
    arousal = fear_state[:, 1:2]
    valence = source_state[:, 0:1]
    gain, offset = profile.sensor_gain, profile.sensor_offset
    out = np.empty((n, len(CHANNELS), n_times))

    blinks = profile.blink_amp * phy.blink_train(
        rng, n_times, sf, profile.blink_rate * np.exp(0.2 * arousal * env), n_epochs=n
    )
    out[:, :32] = phy.affective_eeg(
        rng, fear_state, profile, EEG_CHANNELS, n_times, sf, onset=ONSET, blinks=blinks,
        source_state=source_state, effect_scale=effect_scale,
    )
    eog = gain[3] * np.stack([
        phy.saccade_steps(rng, n_times, sf, 40.0, 120.0, n_epochs=n),
        blinks + 0.4 * phy.saccade_steps(rng, n_times, sf, 20.0, 60.0, n_epochs=n),
    ], axis=1)
    out[:, 32:34] = eog + 5.0 * rng.standard_normal((n, 2, n_times))
    emg = phy.band_oscillation(rng, 2, n_times, sf, (20.0, 60.0), n_epochs=n)
    emg[:, 0] *= profile.emg_base * np.exp(profile.k_valence_emg * valence * env)
    emg[:, 1] *= profile.temg_base * np.exp(profile.k_arousal_emg * arousal * env)
    out[:, 34:36] = emg
    conductance = phy.skin_conductance(rng, fear_state[:, 1], profile, n_times, sf, onset=ONSET)
    out[:, 36] = 1e6 / (gain[2] * conductance)  # skin resistance in Ohm
    resp_rate = profile.resp_base + profile.resp_gain * arousal * env
    out[:, 37] = 800.0 * gain[0] * phy.respiration_wave(rng, n_times, sf, resp_rate, n_epochs=n)
    out[:, 37] += 1000.0 * offset[0]
    heart_rate = profile.hr_base + profile.hr_gain * arousal * env
    wander = phy.slow_drift(rng, n_times, sf, n_epochs=n, cutoff=0.3)
    out[:, 38] = gain[1] * (1500.0 * phy.pulse_wave(rng, n_times, sf, heart_rate, n_epochs=n)
                            + 300.0 * wander + 2000.0 * offset[1])
    drift = phy.slow_drift(rng, n_times, sf, n_epochs=n, cutoff=0.05)
    out[:, 39] = (profile.temp_base + profile.temp_arousal * arousal * env + 0.05 * drift
                  + 0.005 * rng.standard_normal((n, n_times)))
    return out


def _subject_chunks(rng, profile, state, n_times, effect_scale) -> Iterator[np.ndarray]:
    for start in range(0, state.shape[0], _CHUNK):
        yield _simulate(rng, profile, state[start : start + _CHUNK], n_times, effect_scale)


# ---------------------------------------------------------------- public writer
def _check_int(value, name: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"'{name}' must be an int, got {type(value).__name__} {value!r}.")
    if not lo <= value <= hi:
        raise ValueError(
            f"Invalid value for '{name}': expected {lo}..{hi} (the real DEAP has at most {hi}), "
            f"got {value!r}."
        )
    return int(value)


def _check_real(value, name: str, lo: float, hi: float | None, meaning: str) -> float:
    flag = "--" + name.replace("_", "-")
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(
            f"'{name}' ({flag}) must be a number, got {type(value).__name__} {value!r}."
        )
    value = float(value)
    if not (lo <= value and (hi is None or value <= hi)):
        rng_txt = f"{lo:g}..{hi:g}" if hi is not None else f">= {lo:g}"
        raise ValueError(
            f"Invalid value for '{name}' ({flag}): expected {rng_txt} ({meaning}), got {value!r}."
        )
    return value


def _driving_states(rng, rated: np.ndarray, which: np.ndarray, shared: float) -> np.ndarray:
    """Per trial the states driving the fear pattern and the source pattern, (n, 2, 3).

    Fear-box trials express their rated state in the fear pattern, the other trials in the
    source pattern; the other pattern gets ``shared * rated + sqrt(1 - shared**2) * other``
    with ``other`` an independent state uniform in -1..1.
    """
    other = rng.uniform(-1.0, 1.0, rated.shape)
    mixed = shared * rated + np.sqrt(1.0 - shared**2) * other
    fear = np.where(which[:, None] >= 0, rated, mixed)
    source = np.where(which[:, None] >= 0, mixed, rated)
    return np.stack([fear, source], axis=1)


def write_deap(
    root: str | os.PathLike,
    *,
    n_subjects: int = 4,
    n_trials: int = 40,
    seconds: float = 63.0,
    seed: int = 0,
    fmt: str = "dat",
    fear_share: float = 0.5,
    privileged: float = 0.0,
    shared: float = 1.0,
    subject_shift: float = 1.0,
    ratings_csv: bool = True,
) -> Path:
    """Write a synthetic DEAP dataset in the real release's layout.

    Parameters
    ----------
    root : str or path-like
        Output folder (created; existing files of the same names are replaced).
    n_subjects : int
        Subjects ``s01``... (1-32).
    n_trials : int
        Trials per subject (1-40); trial ``i`` is experiment id ``i + 1``.
    seconds : float
        Trial length including the 3 s baseline (more than 3, at most 63; 63 s = 8064 samples).
    seed : int
        Seed (>= 0); the same seed gives byte-identical files.
    fmt : {"dat", "mat", "both"}
        Python pickles, MATLAB files or both.
    fear_share : float
        Share of each subject's trials rated inside a fear box (0-1; default 0.5). Real DEAP
        keeps about 0.1 (124 of 1,280); 0.1-0.2 with 40 trials gives the low-fear-data regime
        of 1-2 trials per fear level per subject.
    privileged : float
        Share of the EEG fear signal removed from the 14 student channels
        (:data:`STUDENT_EEG`, the ``deap-student-eeg`` preset): their affective log-gains are
        multiplied by ``1 - privileged`` (0-1; default 0, every channel carries it). The other
        18 EEG channels and the peripheral channels keep theirs in full.
    shared : float
        Overlap of the source-task latent and the fear latent (0-1; default 1): a fear-box
        trial's physiology expresses its rated state in the fear pattern, any other trial's
        in the source pattern, and the other pattern gets ``shared * rated + sqrt(1 -
        shared**2) * independent``. 1: one latent drives both (a source-task model transfers
        to fear); 0: independent.
    subject_shift : float
        Size of the per-subject offsets and gains on every channel (0-5; default 1, 0 = every
        subject the same levels; see :func:`~fearkd.datasets.synthetic._subjects.
        subject_profile`).
    ratings_csv : bool
        Also write ``metadata_csv/participant_ratings.csv``.

    Returns
    -------
    root : pathlib.Path
        The folder to pass to :func:`fearkd.datasets.deap.load_deap`.
    """
    if not isinstance(root, (str, os.PathLike)):
        raise TypeError(f"'root' must be a path, got {type(root).__name__} {root!r}.")
    n_subjects = _check_int(n_subjects, "n_subjects", 1, N_SUBJECTS)
    n_trials = _check_int(n_trials, "n_trials", 1, N_TRIALS)
    seed = _check_int(seed, "seed", 0, 2**63 - 1)
    if isinstance(seconds, bool) or not isinstance(seconds, numbers.Real):
        raise TypeError(f"'seconds' must be a number, got {type(seconds).__name__} {seconds!r}.")
    n_times = int(round(float(seconds) * SFREQ))
    if not ONSET * SFREQ < n_times <= N_TIMES:
        raise ValueError(
            f"Invalid value for 'seconds': expected more than {ONSET:g} (the baseline) and at "
            f"most {N_TIMES / SFREQ:g} (the real trial length), got {seconds!r}."
        )
    if fmt not in ("dat", "mat", "both"):
        raise ValueError(f"Invalid value for 'fmt': expected 'dat', 'mat' or 'both', got {fmt!r}.")
    fear_share = _check_real(fear_share, "fear_share", 0.0, 1.0,
                             "the share of trials rated inside a fear box")
    privileged = _check_real(privileged, "privileged", 0.0, 1.0,
                             "0 = student channels carry the EEG fear signal, 1 = they do not")
    shared = _check_real(shared, "shared", 0.0, 1.0,
                         "0 = source task and fear independent, 1 = one latent")
    subject_shift = _check_real(subject_shift, "subject_shift", 0.0, MAX_SUBJECT_SHIFT,
                                "0 = no per-subject offsets, 1 = the default spread")
    if not isinstance(ratings_csv, bool):
        raise TypeError(f"'ratings_csv' must be True or False, got {ratings_csv!r}.")

    root = Path(root)
    n_fear = int(round(fear_share * n_trials))
    effect_scale = np.where(np.isin(EEG_CHANNELS, STUDENT_EEG), 1.0 - privileged, 1.0)
    csv_rows = []
    for number in range(1, n_subjects + 1):
        rng = np.random.default_rng([seed, number])
        profile = phy.subject_profile(rng, n_eeg=len(EEG_CHANNELS), shift=subject_shift)
        labels, which = _draw_ratings(rng, n_trials, n_fear, first_box=number - 1)
        rated = phy.latent_state(rng, labels[:, :3], profile)
        # A separate stream: the default (shared = 1) signals stay those of earlier versions.
        state = _driving_states(np.random.default_rng([seed, number, 1]), rated, which, shared)
        _write_subject(root, f"s{number:02d}", fmt, labels, rng, profile, state, n_times,
                       effect_scale)
        csv_rows.extend(_csv_rows(rng, number, labels))
        logger.info("synthetic DEAP: wrote subject %d/%d", number, n_subjects)
    if ratings_csv:
        _write_csv(root / "metadata_csv" / "participant_ratings.csv", csv_rows)
    write_synthetic_marker(root, "write_deap", n_subjects=n_subjects, n_trials=n_trials,
                           seconds=float(seconds), seed=seed, fear_share=fear_share,
                           privileged=privileged, shared=shared, subject_shift=subject_shift)
    return root


def _write_subject(root, sid, fmt, labels, rng, profile, state, n_times, effect_scale) -> None:
    shape = (labels.shape[0], len(CHANNELS), n_times)
    chunks = _subject_chunks(rng, profile, state, n_times, effect_scale)
    if fmt == "dat":
        folder = root / "data_preprocessed_python"
        folder.mkdir(parents=True, exist_ok=True)
        _write_dat_stream(
            folder / f"{sid}.dat", [("labels", labels.shape, [labels]), ("data", shape, chunks)]
        )
        return
    # savemat needs the whole array; fill it chunk by chunk.
    data = np.empty(shape)
    start = 0
    for chunk in chunks:
        data[start : start + chunk.shape[0]] = chunk
        start += chunk.shape[0]
    if fmt == "both":
        folder = root / "data_preprocessed_python"
        folder.mkdir(parents=True, exist_ok=True)
        write_dat_file(folder / f"{sid}.dat", {"labels": labels, "data": data})
    folder = root / "data_preprocessed_matlab"
    folder.mkdir(parents=True, exist_ok=True)
    _write_mat(folder / f"{sid}.mat", data, labels)


def _write_mat(path: Path, data: np.ndarray, labels: np.ndarray) -> None:
    import scipy.io

    scipy.io.savemat(path, {"data": data, "labels": labels}, format="5", do_compression=False)
    # The 116-byte text header holds the creation time; a fixed text keeps files reproducible.
    with open(path, "r+b") as f:
        f.write(_MAT_HEADER.ljust(116, b" "))


def _csv_rows(rng, number: int, labels: np.ndarray) -> list[list[str]]:
    n = labels.shape[0]
    order = rng.permutation(n)  # order[k] = file index shown at position k + 1
    familiarity = rng.integers(1, 6, n)
    start = np.cumsum(rng.uniform(75.0, 90.0, n)) * 1e6  # µs; trial + rating + rest
    rows = []
    for pos, idx in enumerate(order, start=1):
        fam = "" if number in _BLANK_FAMILIARITY else str(int(familiarity[idx]))
        v, a, d, li = (f"{x:.2f}" for x in labels[idx])
        rows.append([str(number), str(pos), str(idx + 1), str(int(start[pos - 1])),
                     v, a, d, li, fam])
    return rows


def _write_csv(path: Path, rows: list[list[str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="ascii") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["Participant_id", "Trial", "Experiment_id", "Start_time", "Valence",
                    "Arousal", "Dominance", "Liking", "Familiarity"])
        w.writerows(rows)
