"""Reader for the ASCERTAIN raw release (EEG, ECG, GSR) and its self-reports.

Layout read (``root`` is the folder holding both subfolders)::

    <root>/ASCERTAIN_Raw/EEGData/Movie_P01/EEG_Clip1.mat ... EEG_Clip36.mat
    <root>/ASCERTAIN_Raw/ECGData/Movie_P01/ECG_Clip1.mat ...
    <root>/ASCERTAIN_Raw/GSRData/Movie_P01/GSR_Clip1.mat ...
    <root>/ASCERTAIN_Features/Dt_SelfReports.mat     (``Ratings``, shape (5, S, C))
    <root>/ASCERTAIN_Features/Dt_Order_Movie.mat     (``PermutationList``, shape (S, C);
                                                      only for ``rating_order="presentation"``)

Subject folders ``Movie_P<n>`` give subject ``"P%02d" % n``; files ``{MOD}_Clip<c>.mat`` give
trial ``c`` (the original clip id). ``EMOData``, ``.DS_Store`` and any other name are ignored.

Channels per trial (modality: names, rate):

- ``eeg``: ``EEG1`` ... ``EEG8`` (or ``eeg_names``), 32 Hz, the 8 NeuroSky streams of
  ``ThisEEG`` (8 x L). A 9 x L file keeps its first 8 rows; the cut is recorded in the report.
- ``ecg``: ``ECG_R``, ``ECG_L``, 256 Hz, from ``Data_ECG``. Its layout is detected by column
  count: L x 6 = (t_ms, accX, accY, accZ, ECG right, ECG left), L x 3 = (t_ms, ECG right,
  ECG left). The ECG sensor's accelerometer is not kept (subjects 1-8 do not have it).
- ``gsr``: ``GSR``, 128 Hz, and ``acc``: ``accX``, ``accY``, ``accZ``, 128 Hz, both from
  ``Data_GSR`` (L x 5 = t_ms, accX, accY, accZ, GSR).

Every clip needs all three files; a clip with a missing or unreadable file is skipped and listed
in ``Recordings.report.skipped`` (``strict=True`` raises instead, when the subject is loaded).

Repairs, each recorded in ``Recordings.report.repaired``:

1. rows (ECG, GSR) or sample columns (EEG) holding a NaN or an infinity are dropped;
2. a 9-row EEG file keeps rows 1-8.

Alignment of the modalities of one clip (after the repairs):

1. ECG and GSR carry millisecond timestamps (``t_ms``); sample ``i`` covers
   ``[t_i, t_i + 1000 / sfreq)``. Both are cut to the span they share, ``[t0, t1)`` with ``t0``
   the later first timestamp and ``t1`` the earlier end, keeping the samples whose interval has
   its middle in the span. If the spans do not overlap at all (clocks that cannot be compared),
   this step is skipped and recorded as a repair; step 2 alone then aligns the clip.
2. EEG has no timestamps, so every modality is assumed to **end** with the clip: the common
   duration ``D`` is the shortest of ``n_times / sfreq`` over EEG, ECG and GSR, and each
   modality keeps its last ``floor(D * sfreq)`` samples.

Hence all signals of a trial start at ``t = 0`` and their durations differ by less than one
sample of the slowest rate (32 Hz). Sampling is taken as uniform at the nominal rate; ``t_ms``
only fixes the shared span. ``trial.info`` holds ``alignment`` (``"t_ms"`` or ``"end"``), the
common ``duration`` in seconds, ``ecg_columns`` (3 or 6) and, where known,
``presentation_position`` (1-based).

Ratings (``arousal``, ``valence``, ``engagement``, ``liking``, ``familiarity``; NaN kept as
NaN). With ``rating_order="clip"`` (default, as most public code does) trial ``c`` of subject
``P<s>`` gets ``Ratings[:, s-1, c-1]``. With ``rating_order="presentation"`` the clip axis of
``Ratings`` is viewing order: ``Ratings[:, s-1, k]`` rates the k-th clip shown to subject ``s``,
whose clip id is ``PermutationList[s-1, k]``; so trial ``c`` gets ``Ratings[:, s-1, k]`` for the
``k`` with ``PermutationList[s-1, k] == c`` (NaN ratings if ``c`` is not in that row).
"""

from __future__ import annotations

import logging
import math
import os
import re
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import scipy.io

from ..errors import DatasetNotFoundError, FormatError, UnknownChannelError
from ..recordings import LoadReport, Recordings, Signal, Subject, Trial

__all__ = [
    "RATING_NAMES",
    "RATING_SCALES",
    "DEFAULT_EEG_NAMES",
    "DEFAULT_SFREQ",
    "align_clip",
    "load_ascertain",
    "read_mat_variable",
]

logger = logging.getLogger(__name__)

DATASET = "ascertain"
RAW_DIR = "ASCERTAIN_Raw"
FEATURES_DIR = "ASCERTAIN_Features"
SELF_REPORTS = "Dt_SelfReports.mat"
ORDER_FILE = "Dt_Order_Movie.mat"
#: Folder and variable of each modality file, keyed by the file-name prefix.
MODALITY_FILES = {"EEG": ("EEGData", "ThisEEG"), "ECG": ("ECGData", "Data_ECG"),
                  "GSR": ("GSRData", "Data_GSR")}
RATING_NAMES = ("arousal", "valence", "engagement", "liking", "familiarity")
#: Closed scale of each rating; a value outside it means the file is not what it claims.
RATING_SCALES = {"arousal": (0.0, 6.0), "valence": (-3.0, 3.0), "engagement": (0.0, 6.0),
                 "liking": (0.0, 6.0), "familiarity": (0.0, 6.0)}
DEFAULT_EEG_NAMES = tuple(f"EEG{i}" for i in range(1, 9))
ECG_NAMES = ("ECG_R", "ECG_L")
GSR_NAMES = ("GSR",)
ACC_NAMES = ("accX", "accY", "accZ")
PERIPHERAL_NAMES = ECG_NAMES + GSR_NAMES + ACC_NAMES
#: Nominal rates in Hz; ``acc`` comes from the GSR sensor and shares its rate.
DEFAULT_SFREQ = {"eeg": 32.0, "ecg": 256.0, "gsr": 128.0}
N_EEG_ROWS = 8
# Columns of the ECG signals for each known Data_ECG width.
ECG_COLUMNS = {6: (4, 5), 3: (1, 2)}
N_GSR_COLUMNS = 5

# What scipy.io.loadmat raises on damaged bytes (zlib.error for a broken compressed block).
_READ_ERRORS = (ValueError, OSError, TypeError, EOFError, IndexError, KeyError, zlib.error)
_SUBJECT_DIR = re.compile(r"^Movie_P(\d+)$")
_CLIP_FILE = re.compile(r"^(EEG|ECG|GSR)_Clip(\d+)\.mat$")
_SUBJECT_ID = re.compile(r"^[Pp]?(\d+)$")


def read_mat_variable(path: Path, variable: str) -> np.ndarray:
    """Read one numeric variable of a MATLAB v5 file as a float64 array.

    Raises
    ------
    DatasetNotFoundError
        The file does not exist.
    FormatError
        The file cannot be read as a v5 ``.mat`` file, lacks ``variable``, or ``variable``
        is not numeric.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetNotFoundError(f"Missing file {str(path)!r}.")
    try:
        major = scipy.io.matlab.matfile_version(str(path))[0]
        # MATLAB v7.3 files are HDF5, which scipy.io does not read.
        content = None if major == 2 else scipy.io.loadmat(str(path), variable_names=[variable])
    except (*_READ_ERRORS, scipy.io.matlab.MatReadError) as exc:
        raise FormatError(
            f"{path}: not a readable MATLAB v5 file ({type(exc).__name__}: {exc}). "
            "The file is corrupt or truncated; restore it from the original release."
        ) from exc
    if content is None:
        raise FormatError(
            f"{path}: MATLAB v7.3 (HDF5) file; ASCERTAIN files are MATLAB v5. Re-save it with "
            "save(..., '-v7') or use the original release."
        )
    if variable not in content:
        found = sorted(name for name, _, _ in scipy.io.whosmat(str(path)))
        raise FormatError(
            f"{path}: variable {variable!r} not found (found {found!r}). "
            "Check that this is the right ASCERTAIN file."
        )
    value = content[variable]
    if not isinstance(value, np.ndarray) or not np.issubdtype(value.dtype, np.number):
        kind = getattr(value, "dtype", type(value).__name__)
        raise FormatError(f"{path}: {variable!r} must be a numeric array, got {kind!s}.")
    return np.asarray(value, dtype=np.float64)


@dataclass(frozen=True, eq=False)
class _Config:
    """Everything the per-subject loader needs; plain data so that it pickles."""

    raw: Path
    clips: Mapping[str, tuple[int, ...]]
    ratings: np.ndarray  # (5, S, C), clip axis already in clip-id order
    positions: np.ndarray | None  # (S, C) 1-based viewing position of clip c, 0 = unknown
    eeg_names: tuple[str, ...]
    sfreq: Mapping[str, float]
    channels: tuple[str, ...] | None
    strict: bool


def load_ascertain(
    root: str | os.PathLike,
    *,
    subjects: Iterable[str | int] | str | int | None = None,
    channels: Iterable[str] | None = None,
    rating_order: str = "clip",
    strict: bool = False,
    eeg_names: Sequence[str] | None = None,
    sfreq: Mapping[str, float] | None = None,
) -> Recordings:
    """Open the ASCERTAIN raw release lazily (one subject per iteration step).

    Parameters
    ----------
    root : str or path-like
        Folder holding ``ASCERTAIN_Raw`` and ``ASCERTAIN_Features``.
    subjects : iterable of str or int, optional
        Subject ids (``"P07"``, ``"P7"`` or ``7``); default every subject found.
    channels : iterable of str, optional
        Channel names to keep (see the module docstring); default all.
    rating_order : {"clip", "presentation"}
        How the clip axis of ``Ratings`` is read (see the module docstring).
    strict : bool
        Raise on a missing or unreadable clip file instead of skipping the clip.
    eeg_names : sequence of 8 str, optional
        Names of the 8 NeuroSky streams (default ``EEG1`` ... ``EEG8``).
    sfreq : mapping, optional
        Rates overriding :data:`DEFAULT_SFREQ` (keys ``"eeg"``, ``"ecg"``, ``"gsr"``).

    Returns
    -------
    Recordings
        ``dataset="ascertain"``; trials are clip ids with ``onset=0``.
    """
    if not isinstance(root, (str, os.PathLike)):
        raise TypeError(f"'root' must be a path (str or os.PathLike), got {type(root).__name__}.")
    if rating_order not in ("clip", "presentation"):
        raise ValueError(
            f"Invalid value for 'rating_order': expected 'clip' or 'presentation', "
            f"got {rating_order!r}."
        )
    if not isinstance(strict, bool):
        raise TypeError(f"'strict' must be True or False, got {strict!r}.")
    names = _check_eeg_names(eeg_names)
    rates = _check_sfreq(sfreq)
    root = Path(root)
    raw = root / RAW_DIR
    found = _discover(root, raw)
    wanted = _select_subjects(subjects, found, root)
    chans = _check_channels(channels, names)

    max_subject = max(int(s[1:]) for s in found)
    max_clip = max((c for clips in found.values() for c in clips), default=1)
    ratings_path = root / FEATURES_DIR / SELF_REPORTS
    if not ratings_path.is_file():
        raise DatasetNotFoundError(
            f"Missing self-reports {str(ratings_path)!r}: ASCERTAIN ratings are read from "
            f"{FEATURES_DIR}/{SELF_REPORTS} (variable 'Ratings', shape (5, 58, 36)). "
            "Copy that file from the ASCERTAIN release next to ASCERTAIN_Raw."
        )
    ratings = read_mat_variable(ratings_path, "Ratings")
    _check_ratings(ratings, ratings_path, max_subject, max_clip)
    positions = None
    if rating_order == "presentation":
        order_path = root / FEATURES_DIR / ORDER_FILE
        if not order_path.is_file():
            raise DatasetNotFoundError(
                f"Missing clip order {str(order_path)!r}: rating_order='presentation' needs "
                f"{FEATURES_DIR}/{ORDER_FILE} (variable 'PermutationList'). Copy it from the "
                "release, or use rating_order='clip'."
            )
        perm = read_mat_variable(order_path, "PermutationList")
        ratings, positions = _reorder_by_presentation(ratings, perm, order_path)

    clips = {s: found[s] for s in wanted}
    config = _Config(raw, clips, ratings, positions, names, rates, chans, strict)
    description = {
        "root": str(root),
        "format": "ASCERTAIN raw .mat (v5)",
        "sfreq": {**rates, "acc": rates["gsr"]},
        "rating_order": rating_order,
        "ratings": RATING_NAMES,
        "n_clips": {s: len(found[s]) for s in wanted},
        "channels": chans if chans is not None else names + PERIPHERAL_NAMES,
    }
    return Recordings(DATASET, wanted, partial(_load_subject, config=config), description)


def _check_eeg_names(eeg_names: Sequence[str] | None) -> tuple[str, ...]:
    if eeg_names is None:
        return DEFAULT_EEG_NAMES
    if isinstance(eeg_names, str) or not all(isinstance(n, str) for n in eeg_names):
        raise TypeError(f"'eeg_names' must be a sequence of 8 str, got {eeg_names!r}.")
    names = tuple(eeg_names)
    others = set(PERIPHERAL_NAMES)
    if len(names) != N_EEG_ROWS or len(set(names)) != N_EEG_ROWS or others & set(names):
        raise ValueError(
            f"Invalid value for 'eeg_names': expected 8 distinct names not among "
            f"{sorted(others)!r}, got {names!r}."
        )
    return names


def _check_sfreq(sfreq: Mapping[str, float] | None) -> dict[str, float]:
    rates = dict(DEFAULT_SFREQ)
    if sfreq is None:
        return rates
    if not isinstance(sfreq, Mapping):
        raise TypeError(f"'sfreq' must be a mapping such as {{'eeg': 32.0}}, got {sfreq!r}.")
    for key, value in sfreq.items():
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if key not in rates or not (ok and math.isfinite(value) and value > 0):
            raise ValueError(
                f"Invalid entry in 'sfreq': {key!r}: {value!r}; expected keys 'eeg', 'ecg', "
                "'gsr' with rates in Hz > 0."
            )
        rates[key] = float(value)
    return rates


def _check_channels(
    channels: Iterable[str] | None, eeg_names: tuple[str, ...]
) -> tuple[str, ...] | None:
    if channels is None:
        return None
    if isinstance(channels, str):
        channels = [channels]
    chans = tuple(channels)
    if not all(isinstance(c, str) for c in chans):
        raise TypeError(f"'channels' must be channel names (str), got {chans!r}.")
    if not chans or len(set(chans)) != len(chans):
        raise ValueError(f"'channels' must name at least one channel, once each; got {chans!r}.")
    known = eeg_names + PERIPHERAL_NAMES
    unknown = [c for c in chans if c not in known]
    if unknown:
        raise UnknownChannelError(
            f"Unknown ASCERTAIN channel(s) {unknown!r}; known channels: {list(known)!r}."
        )
    return chans


def _discover(root: Path, raw: Path) -> dict[str, tuple[int, ...]]:
    """Subject id -> sorted clip ids that have at least one modality file."""
    expected = (
        f"expected {RAW_DIR}/EEGData/Movie_P01/EEG_Clip1.mat ..., "
        f"{RAW_DIR}/ECGData/Movie_P01/ECG_Clip1.mat ..., "
        f"{RAW_DIR}/GSRData/Movie_P01/GSR_Clip1.mat ... and "
        f"{FEATURES_DIR}/{SELF_REPORTS}"
    )
    if not root.is_dir():
        raise DatasetNotFoundError(f"No ASCERTAIN folder at {str(root)!r}: {expected}.")
    found: dict[int, set[int]] = {}
    for prefix, (folder, _) in MODALITY_FILES.items():
        base = raw / folder
        if not base.is_dir():
            continue
        for sub in base.iterdir():
            match = _SUBJECT_DIR.match(sub.name)
            if not match or not sub.is_dir():
                continue
            clips = found.setdefault(int(match.group(1)), set())
            for f in sub.iterdir():
                m = _CLIP_FILE.match(f.name)
                if m and m.group(1) == prefix:
                    clips.add(int(m.group(2)))
    if not any(found.values()):
        hint = " (this looks like ASCERTAIN_Raw: pass its parent)" * (root / "EEGData").is_dir()
        raise DatasetNotFoundError(f"No ASCERTAIN files under {str(root)!r}: {expected}.{hint}")
    return {f"P{n:02d}": tuple(sorted(c)) for n, c in sorted(found.items())}


def _select_subjects(
    subjects: Iterable[str | int] | str | int | None,
    found: Mapping[str, tuple[int, ...]],
    root: Path,
) -> list[str]:
    if subjects is None:
        return list(found)
    if isinstance(subjects, (str, int)):
        subjects = [subjects]
    wanted = []
    for s in subjects:
        match = _SUBJECT_ID.match(str(s)) if isinstance(s, (str, int)) else None
        if match is None or isinstance(s, bool):
            raise ValueError(
                f"Invalid subject id {s!r} in 'subjects': expected 'P01'..'P58' or 1..58."
            )
        sid = f"P{int(match.group(1)):02d}"
        if sid not in found:
            raise ValueError(
                f"Invalid value in 'subjects': {s!r} has no files under {str(root)!r}; "
                f"found {list(found)!r}."
            )
        if sid not in wanted:
            wanted.append(sid)
    if not wanted:
        raise ValueError("'subjects' is empty; pass None for every subject.")
    return wanted


def _check_ratings(ratings: np.ndarray, path: Path, max_subject: int, max_clip: int) -> None:
    shape = ratings.shape
    if ratings.ndim != 3 or shape[0] != 5 or shape[1] < max_subject or shape[2] < max_clip:
        raise FormatError(
            f"{path}: 'Ratings' has shape {shape}; expected (5, S, C) = (rating, subject, clip) "
            f"with S >= {max_subject} and C >= {max_clip} (the largest subject number and clip "
            "id on disk; the release has (5, 58, 36)). Use the release's Dt_SelfReports.mat or "
            "one that covers every subject and clip."
        )
    for r, name in enumerate(RATING_NAMES):
        low, high = RATING_SCALES[name]
        values = ratings[r]
        bad = np.argwhere(np.isinf(values) | (values < low) | (values > high))
        if bad.size:
            s, c = (int(i) for i in bad[0])
            raise FormatError(
                f"{path}: {name} rating of subject P{s + 1:02d}, clip axis position {c + 1} is "
                f"{float(values[s, c])!r}, outside the {name} scale {low:g}..{high:g} "
                f"({len(bad)} such value(s)). The file is not ASCERTAIN's Dt_SelfReports.mat "
                "or has been altered; restore it from the release."
            )


def _reorder_by_presentation(
    ratings: np.ndarray, perm: np.ndarray, path: Path
) -> tuple[np.ndarray, np.ndarray]:
    """Rewrite ``Ratings`` from viewing order to clip-id order.

    Returns the reordered ratings (5, S, C), NaN where a clip id is absent from a subject's
    row, and the 1-based viewing position of each clip (S, C), 0 where unknown.
    """
    n_subj, n_clip = ratings.shape[1:]
    if perm.shape != (n_subj, n_clip):
        raise FormatError(
            f"{path}: 'PermutationList' has shape {perm.shape}; expected {(n_subj, n_clip)} "
            "(subject, viewing position), matching 'Ratings' in Dt_SelfReports.mat."
        )
    out = np.full_like(ratings, np.nan)
    positions = np.zeros((n_subj, n_clip), dtype=np.int64)
    for s in range(n_subj):
        row = perm[s]
        known = np.isfinite(row)
        ids = row[known]
        valid = np.all(ids == np.round(ids)) and np.all((ids >= 1) & (ids <= n_clip))
        if not valid or len(np.unique(ids)) != len(ids):
            raise FormatError(
                f"{path}: row {s + 1} (subject P{s + 1:02d}) of 'PermutationList' is "
                f"{row.tolist()!r}; expected distinct clip ids 1..{n_clip} in viewing order."
            )
        for k in np.flatnonzero(known):
            clip = int(row[k]) - 1
            out[:, s, clip] = ratings[:, s, k]
            positions[s, clip] = k + 1
    return out, positions


def _drop_nonfinite(rows: np.ndarray) -> tuple[np.ndarray, int]:
    """Drop the rows (samples) of an L x k table that hold a NaN or an infinity."""
    keep = np.isfinite(rows).all(axis=1)
    return rows[keep], int(keep.size - keep.sum())


def _read_eeg(path: Path, repairs: list[tuple[str, int]]) -> np.ndarray:
    """``ThisEEG`` as (8, n_times), repaired."""
    data = read_mat_variable(path, "ThisEEG")
    if data.ndim != 2 or data.shape[0] not in (N_EEG_ROWS, N_EEG_ROWS + 1):
        raise FormatError(
            f"{path}: 'ThisEEG' has shape {data.shape}; expected (8, L) or (9, L) "
            "(NeuroSky streams x samples)."
        )
    if data.shape[0] == N_EEG_ROWS + 1:
        data = data[:N_EEG_ROWS]
        repairs.append(("kept the first 8 of 9 EEG rows", 1))
    samples, n_bad = _drop_nonfinite(data.T)
    if n_bad:
        repairs.append(("dropped EEG samples with NaN/inf", n_bad))
    if samples.shape[0] == 0:
        raise FormatError(f"{path}: 'ThisEEG' has no sample without NaN; nothing to load.")
    return samples.T


def _read_table(
    path: Path, variable: str, widths: Sequence[int], repairs: list[tuple[str, int]]
) -> np.ndarray:
    """An L x k sample table whose width is one of ``widths``, NaN rows dropped."""
    data = read_mat_variable(path, variable)
    if data.ndim != 2 or data.shape[1] not in widths:
        layout = " or ".join(f"(L, {w})" for w in widths)
        raise FormatError(
            f"{path}: {variable!r} has shape {data.shape}; expected {layout} "
            "(samples x columns, first column t_ms)."
        )
    data, n_bad = _drop_nonfinite(data)
    if n_bad:
        repairs.append((f"dropped {variable} rows with NaN/inf", n_bad))
    if data.shape[0] == 0:
        raise FormatError(f"{path}: {variable!r} has no row without NaN; nothing to load.")
    return data


def _span(t: np.ndarray, dt: float, t0: float, t1: float) -> slice:
    """Index range of the samples whose interval ``[t, t + dt)`` has its middle in ``[t0, t1)``.

    Judging by the middle keeps whole samples and tolerates timestamp jitter below ``dt / 2``.
    """
    mid = t + dt / 2
    inside = np.flatnonzero((mid >= t0) & (mid < t1))
    return slice(int(inside[0]), int(inside[-1]) + 1) if inside.size else slice(0, 0)


def align_clip(
    eeg: np.ndarray,
    ecg: np.ndarray,
    gsr: np.ndarray,
    sfreq: Mapping[str, float],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """Align the three modalities of one clip (see the module docstring).

    Parameters
    ----------
    eeg : ndarray, shape (n_streams, n_eeg)
        EEG streams, no timestamps.
    ecg : ndarray, shape (n_ecg, n_cols)
        ECG table, column 0 is t_ms.
    gsr : ndarray, shape (n_gsr, n_cols)
        GSR table, column 0 is t_ms.
    sfreq : mapping
        Rates of ``"eeg"``, ``"ecg"`` and ``"gsr"`` in Hz.

    Returns
    -------
    eeg, ecg, gsr : ndarray
        The inputs cut to the common span, same layouts.
    alignment : str
        ``"t_ms"`` when the timestamps overlapped, else ``"end"``.
    """
    dt_ecg, dt_gsr = 1000.0 / sfreq["ecg"], 1000.0 / sfreq["gsr"]
    t0 = max(ecg[0, 0], gsr[0, 0])
    t1 = min(ecg[-1, 0] + dt_ecg, gsr[-1, 0] + dt_gsr)
    alignment = "end"
    if t0 < t1:
        ecg, gsr = ecg[_span(ecg[:, 0], dt_ecg, t0, t1)], gsr[_span(gsr[:, 0], dt_gsr, t0, t1)]
        alignment = "t_ms"
    duration = min(
        eeg.shape[1] / sfreq["eeg"], ecg.shape[0] / sfreq["ecg"], gsr.shape[0] / sfreq["gsr"]
    )

    def n_keep(rate: float) -> int:
        # The epsilon keeps exact products (60 s * 32 Hz) from rounding one sample down.
        return int(math.floor(duration * rate + 1e-9))

    n_eeg, n_ecg, n_gsr = n_keep(sfreq["eeg"]), n_keep(sfreq["ecg"]), n_keep(sfreq["gsr"])
    return (
        eeg[:, eeg.shape[1] - n_eeg :],
        ecg[ecg.shape[0] - n_ecg :],
        gsr[gsr.shape[0] - n_gsr :],
        alignment,
    )


def _load_clip(config: _Config, subject: str, clip: int, report: LoadReport) -> Trial:
    """Read, repair and align one clip; raise FormatError/DatasetNotFoundError on failure."""
    paths = {
        prefix: config.raw / folder / f"Movie_{subject}" / f"{prefix}_Clip{clip}.mat"
        for prefix, (folder, _) in MODALITY_FILES.items()
    }
    missing = [str(p) for p in paths.values() if not p.is_file()]
    if missing:
        raise DatasetNotFoundError(
            f"Subject {subject} clip {clip}: missing file(s) {missing!r}; every clip needs its "
            "EEG, ECG and GSR file."
        )
    repairs: dict[str, list[tuple[str, int]]] = {p: [] for p in paths}
    eeg = _read_eeg(paths["EEG"], repairs["EEG"])
    ecg = _read_table(paths["ECG"], "Data_ECG", tuple(ECG_COLUMNS), repairs["ECG"])
    gsr = _read_table(paths["GSR"], "Data_GSR", (N_GSR_COLUMNS,), repairs["GSR"])
    ecg_columns = ecg.shape[1]
    eeg, ecg, gsr, alignment = align_clip(eeg, ecg, gsr, config.sfreq)
    if alignment == "end":
        repairs["ECG"].append(("ECG and GSR t_ms spans do not overlap; aligned on clip end", 1))
    if min(eeg.shape[1], ecg.shape[0], gsr.shape[0]) == 0:
        raise FormatError(
            f"Subject {subject} clip {clip}: no common time span between EEG "
            f"({eeg.shape[1]} samples), ECG and GSR after alignment."
        )
    rates, ecg_cols = config.sfreq, list(ECG_COLUMNS[ecg_columns])
    signals = {  # copies, so that a trial does not keep the whole file's table alive
        "eeg": Signal(eeg.copy(), rates["eeg"], config.eeg_names, "eeg"),
        "ecg": Signal(ecg[:, ecg_cols].T.copy(), rates["ecg"], ECG_NAMES, "ecg"),
        "gsr": Signal(gsr[:, [4]].T.copy(), rates["gsr"], GSR_NAMES, "gsr"),
        "acc": Signal(gsr[:, 1:4].T.copy(), rates["gsr"], ACC_NAMES, "acc"),
    }
    s, c = int(subject[1:]) - 1, clip - 1
    ratings = dict(zip(RATING_NAMES, (float(v) for v in config.ratings[:, s, c]), strict=True))
    info: dict[str, object] = {"alignment": alignment, "ecg_columns": ecg_columns,
                               "duration": signals["eeg"].duration}
    if config.positions is not None and config.positions[s, c] > 0:
        info["presentation_position"] = int(config.positions[s, c])
    trial = Trial(DATASET, subject, clip, signals, ratings, onset=0.0, info=info)
    # Repairs are recorded only for clips that load, so a skipped clip is reported once.
    for prefix, items in repairs.items():
        for what, count in items:
            report.repair(subject, clip, str(paths[prefix]), what, count)
    return trial.pick(config.channels) if config.channels is not None else trial


def _load_subject(subject: str, report: LoadReport, *, config: _Config) -> Subject:
    """Read every clip of one subject (module level so that the bound loader pickles)."""
    trials = []
    for clip in config.clips[subject]:
        try:
            trials.append(_load_clip(config, subject, clip, report))
        except (FormatError, DatasetNotFoundError) as exc:
            if config.strict:
                raise
            pattern = config.raw / "{EEG,ECG,GSR}Data" / f"Movie_{subject}" / f"*_Clip{clip}.mat"
            report.skip(subject, clip, str(pattern), str(exc))
    if not trials:
        where = config.raw / "*Data" / f"Movie_{subject}"
        reason = "no clip with readable EEG, ECG and GSR files"
        if config.strict:
            raise DatasetNotFoundError(f"Subject {subject}: {reason} under {str(where)!r}.")
        report.skip(subject, None, str(where), reason)
    logger.debug("Loaded ASCERTAIN subject %s: %d clip(s).", subject, len(trials))
    return Subject(DATASET, subject, tuple(trials))
