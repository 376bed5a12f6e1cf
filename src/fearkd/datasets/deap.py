"""Reader for the preprocessed DEAP release (Koelstra et al. 2012).

Layout read (``root`` is the folder holding the subfolders)::

    <root>/data_preprocessed_python/s01.dat ... s32.dat   Python-2 pickles
    <root>/data_preprocessed_matlab/s01.mat ... s32.mat   MATLAB v5, same content
    <root>/metadata_csv/participant_ratings.csv           optional

Each file holds ``data``, shape (40, 40, 8064) = (trial, channel, time), float64 at 128 Hz, and
``labels``, shape (40, 4) = valence, arousal, dominance, liking in 1..9. Files with fewer trials
or samples (as the synthetic writer can produce) are accepted; 40 channels are required. Trial
index ``i`` of a file is the video's ``Experiment_id`` ``i + 1``; it becomes ``Trial.trial``. The
first 3 s of every trial are the pre-trial baseline (``Trial.onset = 3.0``).

``.dat`` files are unpickled by :mod:`fearkd.datasets._safe_pickle`, which admits only NumPy
array reconstruction: a file that asks to run anything else is refused, and nothing in it runs.

Channels per trial (modality: names), all at 128 Hz:

- ``eeg``: Fp1 AF3 F3 F7 FC5 FC1 C3 T7 CP5 CP1 P3 P7 PO3 O1 Oz Pz Fp2 AF4 Fz F4 F8 FC6 FC2 Cz
  C4 T8 CP6 CP2 P4 P8 PO4 O2 (Geneva order, µV);
- ``eog``: hEOG, vEOG; ``emg``: zEMG (zygomaticus), tEMG (trapezius);
- ``gsr``: GSR (skin resistance, Ohm); ``resp``: Resp; ``ppg``: PPG; ``temp``: Temp.

Ratings: ``valence``, ``arousal``, ``dominance``, ``liking``, plus ``familiarity`` (NaN where
blank) when ``participant_ratings.csv`` is present; then ``Trial.info["presentation"]`` is the
trial's presentation position (1-40).
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np

from ..errors import DatasetNotFoundError, FormatError, UnknownChannelError
from ..recordings import LoadReport, Recordings, Signal, Subject, Trial
from ._safe_pickle import safe_load

__all__ = [
    "CHANNELS",
    "EEG_CHANNELS",
    "MODALITY_CHANNELS",
    "ONSET",
    "RATINGS",
    "SFREQ",
    "load_deap",
    "read_deap_file",
]

logger = logging.getLogger(__name__)

SFREQ = 128.0
ONSET = 3.0
N_SUBJECTS = 32
N_TRIALS = 40
N_TIMES = 8064
EEG_CHANNELS = (
    "Fp1", "AF3", "F3", "F7", "FC5", "FC1", "C3", "T7", "CP5", "CP1", "P3", "P7", "PO3", "O1",
    "Oz", "Pz", "Fp2", "AF4", "Fz", "F4", "F8", "FC6", "FC2", "Cz", "C4", "T8", "CP6", "CP2",
    "P4", "P8", "PO4", "O2",
)
#: Channel names of each modality, in file order (channels 0-39).
MODALITY_CHANNELS = {
    "eeg": EEG_CHANNELS,
    "eog": ("hEOG", "vEOG"),
    "emg": ("zEMG", "tEMG"),
    "gsr": ("GSR",),
    "resp": ("Resp",),
    "ppg": ("PPG",),
    "temp": ("Temp",),
}
CHANNELS = tuple(n for names in MODALITY_CHANNELS.values() for n in names)
RATINGS = ("valence", "arousal", "dominance", "liking")
RATING_RANGE = (1.0, 9.0)
FAMILIARITY_RANGE = (1.0, 5.0)
FORMATS = ("auto", "dat", "mat")
NAN_POLICIES = ("raise", "drop-trial", "keep")
_FOLDERS = {"dat": "data_preprocessed_python", "mat": "data_preprocessed_matlab"}
_CSV = Path("metadata_csv") / "participant_ratings.csv"
_CSV_COLUMNS = ("Participant_id", "Trial", "Experiment_id", "Familiarity")
_FILE_RE = re.compile(r"^s(\d{2})\.(dat|mat)$")


def read_deap_file(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read and check one subject file (``.dat`` or ``.mat``).

    Parameters
    ----------
    path : str or path-like
        ``sNN.dat`` (Python-2 pickle) or ``sNN.mat`` (MATLAB v5).

    Returns
    -------
    data : ndarray, shape (n_trials, 40, n_times)
        Signals, float64, C order (the file's buffer, not copied for ``.dat``).
    labels : ndarray, shape (n_trials, 4)
        Valence, arousal, dominance, liking (may hold NaN; values are in 1..9).

    Raises
    ------
    FormatError
        Unreadable file, missing key, wrong shape or dtype, rating outside 1..9.
    UnsafeFileError
        A ``.dat`` pickle that asks to run code.
    """
    path = Path(path)
    name = path.name
    if path.suffix == ".mat":
        content = _read_mat(path)
    else:
        content = safe_load(path)
    if not isinstance(content, Mapping):
        raise FormatError(
            f"{name}: expected a dict with 'data' and 'labels', got {type(content).__name__}."
        )
    data = _get_array(content, "data", name)
    labels = _get_array(content, "labels", name)
    if (
        data.ndim != 3
        or data.shape[1] != len(CHANNELS)
        or not 1 <= data.shape[0] <= N_TRIALS
        or data.shape[2] <= int(ONSET * SFREQ)
    ):
        raise FormatError(
            f"{name}: 'data' has shape {data.shape}; a DEAP file has "
            f"({N_TRIALS}, {len(CHANNELS)}, {N_TIMES}) (trial, channel, time) "
            f"(1-{N_TRIALS} trials and more than {int(ONSET * SFREQ)} samples are accepted)."
        )
    if labels.shape != (data.shape[0], len(RATINGS)):
        raise FormatError(
            f"{name}: 'labels' has shape {labels.shape}; expected ({data.shape[0]}, "
            f"{len(RATINGS)}) (one row of {', '.join(RATINGS)} per trial of 'data')."
        )
    for key, arr in (("data", data), ("labels", labels)):
        if not np.issubdtype(arr.dtype, np.floating):
            raise FormatError(f"{name}: {key!r} has dtype {arr.dtype}; expected float64.")
    lo, hi = RATING_RANGE
    bad = np.argwhere((labels < lo) | (labels > hi))  # NaN compares False: handled by the policy
    if bad.size:
        t, r = bad[0]
        raise FormatError(
            f"{name}: trial {t + 1} rating {RATINGS[r]!r} = {float(labels[t, r])!r} is outside "
            f"the DEAP scale {lo:g}..{hi:g} ({len(bad)} value(s) out of range)."
        )
    if not data.flags.c_contiguous:
        data = np.ascontiguousarray(data)
    return data, np.asarray(labels, dtype=float)


def _read_mat(path: Path) -> dict:
    import scipy.io
    import scipy.io.matlab

    corrupt = (ValueError, TypeError, OSError, EOFError, KeyError, IndexError, OverflowError,
               scipy.io.matlab.MatReadError)
    try:
        major, _ = scipy.io.matlab.matfile_version(str(path))
        if major == 2:  # HDF5-based MATLAB v7.3, which scipy does not read
            raise FormatError(
                f"{path.name}: MATLAB v7.3 (HDF5) files are not read; save it as v5 "
                f"(save -v7) or use the data_preprocessed_python files."
            )
        return scipy.io.loadmat(path, variable_names=("data", "labels"))
    except corrupt as exc:
        if isinstance(exc, FormatError):
            raise
        raise FormatError(
            f"{path.name}: not a readable MATLAB file ({type(exc).__name__}: {exc}); the file "
            f"is truncated or corrupt. Download it again."
        ) from exc


def _get_array(content: Mapping, key: str, name: str) -> np.ndarray:
    for k in (key, key.encode("ascii")):
        if k in content:
            value = content[k]
            if not isinstance(value, np.ndarray):
                raise FormatError(
                    f"{name}: {key!r} is a {type(value).__name__}; expected a NumPy array."
                )
            return value
    keys = sorted(str(k) for k in content if not str(k).startswith("__"))
    raise FormatError(f"{name}: no {key!r} in the file; it holds {keys!r}. Expected 'data' and "
                      f"'labels'.")


@dataclass(frozen=True)
class _Config:
    """What ``_load_subject`` needs; plain data so that the bound loader pickles (joblib)."""

    files: Mapping[str, str]
    channels: tuple[str, ...] | None
    nan_policy: str
    csv_name: str | None
    csv_rows: Mapping[tuple[str, int], tuple[int, float]] = field(default_factory=dict)


def _load_subject(subject: str, report: LoadReport, *, config: _Config) -> Subject:
    """Read one subject file into a :class:`Subject` (module level so it pickles)."""
    path = config.files[subject]
    name = os.path.basename(path)
    data, labels = read_deap_file(path)
    groups = _channel_groups(config.channels)
    trials = []
    for i in range(data.shape[0]):
        number = i + 1
        x = data[i]
        # One trial at a time keeps the temporary mask small (2.6 MB, not the subject's 100 MB).
        n_bad = x.size - int(np.count_nonzero(np.isfinite(x)))
        bad_ratings = [r for r, v in zip(RATINGS, labels[i], strict=True) if math.isnan(v)]
        if n_bad or bad_ratings:
            what = (
                f"{n_bad} NaN/Inf sample(s)" if n_bad else f"NaN rating(s) {bad_ratings!r}"
            )
            if config.nan_policy == "raise":
                raise FormatError(
                    f"{name}: trial {number} has {what}. Skip such trials with --nan-samples "
                    f"drop-trial (fearkd info / labels / features) or [dataset] nan_policy = "
                    f"\"drop-trial\" (experiment file); they are listed in the load report."
                )
            if config.nan_policy == "drop-trial":
                report.skip(subject, number, name, what)
                continue
        signals = {
            mod: Signal(x[rows], SFREQ, names, mod) for mod, (rows, names) in groups.items()
        }
        ratings = dict(zip(RATINGS, labels[i].tolist(), strict=True))
        info: dict[str, object] = {"file": name, "index": i}
        if config.csv_name is not None:
            row = config.csv_rows.get((subject, number))
            if row is None:
                ratings["familiarity"] = math.nan
                report.repair(
                    subject, number, config.csv_name,
                    "no row in participant_ratings.csv; familiarity set to NaN", 1,
                )
            else:
                info["presentation"], ratings["familiarity"] = row
        trials.append(Trial("deap", subject, number, signals, ratings, ONSET, info))
    return Subject("deap", subject, tuple(trials))


def _channel_groups(channels: tuple[str, ...] | None) -> dict[str, tuple[object, tuple]]:
    """Per modality: row selector into the 40 file channels and the names, in request order."""
    groups: dict[str, tuple[object, tuple]] = {}
    start = 0
    for mod, names in MODALITY_CHANNELS.items():
        stop = start + len(names)
        if channels is None:
            groups[mod] = (slice(start, stop), names)  # a view: no copy of the signals
        else:
            picked = tuple(n for n in channels if n in names)
            if picked:
                groups[mod] = ([CHANNELS.index(n) for n in picked], picked)
        start = stop
    return groups


def _check_choice(value, name: str, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise ValueError(
            f"Invalid value for {name!r}: expected one of "
            f"{', '.join(repr(c) for c in choices)}, got {value!r}."
        )
    return value


def _subject_ids(subjects) -> list[str] | None:
    """Normalise ``subjects`` (None, int, 's01' or a sequence of them) to ids."""
    if subjects is None:
        return None
    items = [subjects] if isinstance(subjects, (int, str, np.integer)) else subjects
    if not isinstance(items, Iterable):
        raise TypeError(
            f"'subjects' must be None, an int 1-{N_SUBJECTS}, an id like 's01' or a list of "
            f"them, got {type(subjects).__name__}."
        )
    ids = []
    for s in items:
        if isinstance(s, (bool, np.bool_)) or not isinstance(s, (int, str, np.integer)):
            raise TypeError(
                f"Invalid subject {s!r} ({type(s).__name__}) in 'subjects': expected an int "
                f"1-{N_SUBJECTS} or an id like 's01'."
            )
        if isinstance(s, str):
            # 's01', or a number written as text (TOML `subjects = [1, 2]` arrives as "1")
            m = re.fullmatch(r"s?(\d{1,2})", s.strip())
            number = int(m.group(1)) if m else 0
        else:
            number = int(s)
        if not 1 <= number <= N_SUBJECTS:
            raise ValueError(
                f"Invalid subject {s!r} in [dataset] subjects: expected a subject number "
                f"1-{N_SUBJECTS} or an id 's01'-'s{N_SUBJECTS}'; write e.g. subjects = [1, 2] "
                f"or subjects = [\"s01\", \"s02\"]."
            )
        ids.append(f"s{number:02d}")
    if len(set(ids)) != len(ids):
        raise ValueError(f"Duplicate subjects in 'subjects': {ids!r}.")
    if not ids:
        raise ValueError("'subjects' is empty; pass None for every subject found.")
    return ids


def _check_channels(channels) -> tuple[str, ...] | None:
    if channels is None:
        return None
    if isinstance(channels, str) or not isinstance(channels, Iterable):
        raise TypeError(
            f"'channels' must be a list of channel names, got {type(channels).__name__} "
            f"{channels!r}; for one channel pass [{channels!r}]."
        )
    channels = tuple(channels)
    unknown = [c for c in channels if c not in CHANNELS]
    if unknown:
        raise UnknownChannelError(
            f"Unknown DEAP channel(s) {unknown!r} in 'channels'; known channels: "
            f"{list(CHANNELS)!r}."
        )
    if len(set(channels)) != len(channels):
        raise ValueError(f"Duplicate channel names in 'channels': {list(channels)!r}.")
    if not channels:
        raise ValueError("'channels' is empty; pass None for all channels.")
    return channels


def _find_files(root: Path, fmt: str) -> tuple[str, dict[str, str]]:
    """Pick the format and list ``{subject id: path}`` of the files found."""
    found = {}
    for kind, folder in _FOLDERS.items():
        d = root / folder
        files = {}
        if d.is_dir():
            for entry in sorted(os.listdir(d)):
                m = _FILE_RE.match(entry)
                if m and m.group(2) == kind:
                    files[f"s{m.group(1)}"] = str(d / entry)
        found[kind] = files
    order = ("dat", "mat") if fmt == "auto" else (fmt,)
    for kind in order:
        if found[kind]:
            return kind, found[kind]
    looked = " or ".join(f"{_FOLDERS[k]}/s01.{k} ..." for k in order)
    raise DatasetNotFoundError(f"No DEAP files under '{root}': expected {looked}.")


def _read_ratings_csv(path: Path) -> dict[tuple[str, int], tuple[int, float]]:
    """``{(subject id, experiment id): (presentation position, familiarity)}``."""
    import pandas as pd

    name = path.name
    try:
        table = pd.read_csv(path)
    except (ValueError, OSError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise FormatError(f"{name}: not a readable CSV file ({exc}).") from exc
    missing = [c for c in _CSV_COLUMNS if c not in table.columns]
    if missing:
        raise FormatError(
            f"{name}: missing column(s) {missing!r}; it has {list(table.columns)!r}. Expected "
            f"the DEAP layout: Participant_id, Trial, Experiment_id, Start_time, Valence, "
            f"Arousal, Dominance, Liking, Familiarity."
        )
    rows = {}
    lo, hi = FAMILIARITY_RANGE
    for line, rec in enumerate(table[list(_CSV_COLUMNS)].itertuples(index=False), start=2):
        pid, pos, exp, fam = rec
        try:
            pid, pos, exp, fam = int(pid), int(pos), int(exp), float(fam)
        except (TypeError, ValueError) as exc:
            raise FormatError(
                f"{name}: line {line}: Participant_id, Trial and Experiment_id must be integers "
                f"and Familiarity a number or blank, got {tuple(rec)!r}."
            ) from exc
        if not (1 <= exp <= N_TRIALS and 1 <= pos <= N_TRIALS):
            raise FormatError(
                f"{name}: line {line}: Trial {pos!r} and Experiment_id {exp!r} must be in "
                f"1..{N_TRIALS}."
            )
        if not math.isnan(fam) and not lo <= fam <= hi:
            raise FormatError(
                f"{name}: line {line}: Familiarity = {fam!r} is outside {lo:g}..{hi:g}."
            )
        key = (f"s{pid:02d}", exp)
        if key in rows:
            raise FormatError(
                f"{name}: line {line}: a second row for Participant_id {pid}, Experiment_id "
                f"{exp}."
            )
        rows[key] = (pos, fam)
    return rows


def load_deap(
    root: str | os.PathLike,
    *,
    subjects=None,
    channels=None,
    fmt: str = "auto",
    nan_policy: str = "raise",
) -> Recordings:
    """Open the preprocessed DEAP release lazily (one subject file per iteration step).

    Parameters
    ----------
    root : str or path-like
        Folder holding ``data_preprocessed_python/`` and/or ``data_preprocessed_matlab/``.
    subjects : int, str or sequence of them, optional
        Subjects to load, as numbers 1-32 or ids ``"s01"``-``"s32"``; default every file found.
    channels : sequence of str, optional
        Channel names to keep (see the module docstring); default all 40.
    fmt : {"auto", "dat", "mat"}
        File format; ``"auto"`` uses the ``.dat`` files if any, else the ``.mat`` files.
    nan_policy : {"raise", "drop-trial", "keep"}
        What to do with a trial holding NaN/Inf samples or a NaN rating: raise
        :class:`~fearkd.errors.FormatError`, skip it (listed in ``Recordings.report``), or keep it.

    Returns
    -------
    recordings : Recordings
        ``dataset="deap"``, subjects ``"s01"``...; each trial has signals of shape
        (n_chans, n_times) at 128 Hz and ``onset=3.0``.

    Raises
    ------
    DatasetNotFoundError
        ``root`` or a requested subject's file does not exist.
    UnknownChannelError
        A name in ``channels`` is not a DEAP channel.
    FormatError
        Raised while iterating, for a malformed file (and here for a malformed
        ``participant_ratings.csv``).
    """
    if not isinstance(root, (str, os.PathLike)):
        raise TypeError(f"'root' must be a path, got {type(root).__name__} {root!r}.")
    fmt = _check_choice(fmt, "fmt", FORMATS)
    nan_policy = _check_choice(nan_policy, "nan_policy", NAN_POLICIES)
    wanted = _subject_ids(subjects)
    picked = _check_channels(channels)
    root = Path(root)
    if not root.is_dir():
        raise DatasetNotFoundError(
            f"DEAP root '{root}' is not a folder; pass the folder that holds "
            f"data_preprocessed_python/ or data_preprocessed_matlab/."
        )
    kind, files = _find_files(root, fmt)
    if wanted is not None:
        missing = [s for s in wanted if s not in files]
        if missing:
            raise DatasetNotFoundError(
                f"No DEAP file for subject(s) {missing!r} under '{root / _FOLDERS[kind]}'; "
                f"found {sorted(files)!r}."
            )
        files = {s: files[s] for s in wanted}
    csv_path = root / _CSV
    csv_rows = _read_ratings_csv(csv_path) if csv_path.is_file() else {}
    config = _Config(
        files=dict(files),
        channels=picked,
        nan_policy=nan_policy,
        csv_name=csv_path.name if csv_path.is_file() else None,
        csv_rows=csv_rows,
    )
    description = {
        "root": str(root),
        "format": kind,
        "sfreq": SFREQ,
        "onset": ONSET,
        "files": list(files.values()),
        "channels": list(picked or CHANNELS),
        "ratings": list(RATINGS) + (["familiarity"] if config.csv_name else []),
        "ratings_csv": str(csv_path) if config.csv_name else None,
        "nan_policy": nan_policy,
    }
    logger.debug("DEAP: %d subject file(s) (%s) under %s", len(files), kind, root)
    return Recordings("deap", list(files), partial(_load_subject, config=config), description)
