"""WESAD reader: RespiBAN chest and Empatica E4 wrist signals, conditions as trials.

Layout (Schmidt et al. 2018, the public release)::

    WESAD/S2/S2.pkl         latin-1 pickle {'signal': {'chest': {ACC (n, 3), ECG, EMG, EDA,
                            Temp, Resp (n, 1)} at 700 Hz, 'wrist': {ACC (m, 3) 32 Hz, BVP 64 Hz,
                            EDA 4 Hz, TEMP 4 Hz}}, 'label': (n,) condition per 700 Hz sample,
                            'subject': 'S2'}
    WESAD/S2/S2_quest.csv   ';'-separated: '# Subj', '# ORDER' (condition names), '# START' and
                            '# END' (minutes.seconds), then one '# PANAS', '# STAI', '# DIM'
                            (SAM valence, arousal) and '# SSSQ' row per rated condition

The pickle is read with :func:`fearkd.datasets._safe_pickle.safe_load` (numeric NumPy arrays,
dicts and strings only). Each contiguous run of label 1 (baseline), 2 (stress), 3 (amusement)
or 4 (meditation) in the label array is one trial, numbered in recording order, with
``info["condition"]`` and ``info["stage"]`` (the quest file's name, e.g. ``"Medi 1"``); labels 0
and 5-7 are left out. The quest file's START/END times are compared with the label array and
disagreements beyond ``time_tolerance`` seconds are listed in the load report (the label array
is used). Ratings per trial: ``stai`` (STAI-6: items 1-6 on 1-4, the positive items 1, 4 and 6
reversed, the sum times 20/6, range 20-80, as in WESAD's readme), ``valence`` and ``arousal``
(SAM, 1-9).

``device`` chooses the signals: ``"wrist"`` (gsr EDA 4 Hz, ppg BVP 64 Hz, temp TEMP 4 Hz, acc
ACC_x/y/z 32 Hz in g, from the E4's 1/64 g), ``"chest"`` (ecg, emg, gsr, temp, resp at 700 Hz,
acc ACC_x/y/z in g) or ``"both"`` (the chest's ecg, emg, resp at 700 Hz; the chest's EDA and
Temp decimated to the wrist's 4 Hz and its ACC to 32 Hz, next to the wrist's as
``EDA_chest``/``EDA_wrist`` and so on, since a trial holds one rate per modality).

``wrist_source`` chooses where the wrist signals come from: ``"pkl"`` (default) the pickle;
``"e4zip"`` each subject's raw E4 export ``SX/SX_E4_Data.zip`` (ACC, BVP, EDA, TEMP, HR, IBI,
tags in the :mod:`fearkd.datasets.e4` format), read from the archive without extracting it. The
export starts before the chest device, so it is put on the label array's clock: by
``e4_offset`` (seconds from the zip's first EDA sample to the label array's first sample) when
given, else by finding the pickle's wrist EDA (the export's samples, cut to the chest recording)
in the zip's EDA (an error when it is not there). The export adds the 1 Hz heart rate
(modality ``hr``, channel ``HR``) and the beats of ``IBI.csv`` (``info["beats"]``: seconds
from each trial's start), which the physiology features use; its tags are not used (the label
array gives the conditions).

A subject whose pickle, quest file or (with ``"e4zip"``) zip is missing or unreadable is skipped
and listed in the load report; ``strict=True`` raises instead.
"""

from __future__ import annotations

import logging
import re
from fractions import Fraction
from pathlib import Path

import numpy as np
import scipy.signal

from ..errors import FearkdError, FormatError
from ..recordings import LoadReport, Recordings, Signal, Subject, Trial
from ._safe_pickle import safe_load
from .e4 import ACC_COUNTS_PER_G, read_e4_zip

__all__ = ["CONDITIONS", "STAGES", "read_wesad_pickle", "read_quest", "stai6", "load_wesad"]

logger = logging.getLogger(__name__)

#: Label codes kept as trials.
CONDITIONS = {1: "baseline", 2: "stress", 3: "amusement", 4: "meditation"}
#: Quest file condition names -> label code (the reading tasks of some subjects have none).
STAGES = {"Base": 1, "TSST": 2, "Fun": 3, "Medi 1": 4, "Medi 2": 4}
CHEST_RATE = 700.0
WRIST_RATES = {"ACC": 32.0, "BVP": 64.0, "EDA": 4.0, "TEMP": 4.0}
DEVICES = ("wrist", "chest", "both")
#: Where wrist signals come from (``wrist_source``).
WRIST_SOURCES = ("pkl", "e4zip")
#: Export files the wrist signals need.
_ZIP_SIGNALS = ("ACC", "BVP", "EDA", "TEMP")
#: Largest mean absolute difference (x (1 + std)) of a matched EDA, uS: the CSV's rounding.
_MATCH_TOLERANCE = 1e-3
_POSITIVE_STAI = (0, 3, 5)


def read_wesad_pickle(path: str | Path) -> dict:
    """The subject pickle as ``{'signal': {'chest': ..., 'wrist': ...}, 'label': ndarray}``.

    Raises
    ------
    FormatError
        The pickle lacks ``signal`` or ``label`` (or is corrupt); UnsafeFileError if it names
        anything beyond numeric arrays.
    """
    path = Path(path)
    content = safe_load(path)
    if not isinstance(content, dict) or not {"signal", "label"} <= set(content):
        keys = sorted(content) if isinstance(content, dict) else type(content).__name__
        raise FormatError(
            f"{path}: a WESAD pickle holds a dict with 'signal' and 'label', this one has "
            f"{keys!r}; download the subject's folder again, or remove it from [dataset] "
            f"subjects."
        )
    return content


def _minutes(text: str) -> float:
    """'7.08' (minutes.seconds) -> 428.0 seconds."""
    minutes, _, seconds = text.strip().partition(".")
    return 60.0 * int(minutes) + (int(seconds.ljust(2, "0")[:2]) if seconds else 0)


def stai6(items) -> float:
    """STAI-6 score (20-80) of six items on 1-4, the positive items 1, 4 and 6 reversed."""
    x = np.asarray(items, dtype=np.float64)
    x[list(_POSITIVE_STAI)] = 5.0 - x[list(_POSITIVE_STAI)]
    return float(x.sum() * 20.0 / 6.0)


def read_quest(path: str | Path) -> dict[str, dict]:
    """Conditions of a quest file: ``{stage: {"start", "end", "stai", "valence", "arousal"}}``.

    Times are seconds from the recording start; ratings NaN for a stage without questionnaire.

    Raises
    ------
    FormatError
        No ``# ORDER`` row, or a malformed row (the message names the line).
    """
    path = Path(path)
    rows: dict[str, list[tuple[int, list[str]]]] = {}
    for number, line in enumerate(path.read_text(encoding="latin-1").splitlines(), 1):
        fields = [f.strip() for f in line.split(";")]
        if fields and fields[0].startswith("#"):
            key = fields[0].lstrip("#").strip().upper()
            rows.setdefault(key, []).append((number, [f for f in fields[1:] if f != ""]))
    if "ORDER" not in rows:
        raise FormatError(
            f"{path}: no '# ORDER;...' row naming the conditions (e.g. '# ORDER;Base;TSST;"
            f"Medi 1;Fun;Medi 2'); add it, or remove the subject from [dataset] subjects."
        )
    order = rows["ORDER"][0][1]
    out = {s: {"start": np.nan, "end": np.nan, "stai": np.nan, "valence": np.nan,
               "arousal": np.nan} for s in order}
    for key in ("START", "END"):
        for number, values in rows.get(key, [])[:1]:
            try:
                for s, v in zip(order, values, strict=False):
                    out[s][key.lower()] = _minutes(v)
            except ValueError:
                raise FormatError(f"{path}, line {number}: '# {key}' holds {values!r}; expected "
                                  f"minutes.seconds such as 7.08.") from None
    rated = [s for s in order if s in STAGES]
    for key, n_items in (("STAI", 6), ("DIM", 2)):
        for s, (number, values) in zip(rated, rows.get(key, []), strict=False):
            try:
                items = [float(v) for v in values[:n_items]]
            except ValueError:
                items = []
            if len(items) != n_items:
                raise FormatError(f"{path}, line {number}: '# {key}' needs {n_items} numbers, "
                                  f"got {values!r}; correct the row.")
            if key == "STAI":
                out[s]["stai"] = stai6(items)
            else:
                out[s]["valence"], out[s]["arousal"] = items
    return out


def _segments(label: np.ndarray) -> list[tuple[int, int, int]]:
    """(code, start, stop) of each contiguous run of a kept condition code."""
    edges = np.flatnonzero(np.diff(label)) + 1
    starts = np.concatenate([[0], edges])
    stops = np.concatenate([edges, [label.size]])
    return [(int(label[a]), int(a), int(b)) for a, b in zip(starts, stops, strict=True)
            if int(label[a]) in CONDITIONS]


def _decimate(x: np.ndarray, sfreq: float, target: float) -> np.ndarray:
    r = Fraction(target / sfreq).limit_denominator(1000)
    return scipy.signal.resample_poly(x, r.numerator, r.denominator, axis=-1)


def _rows(device: dict, key: str) -> np.ndarray:
    return np.asarray(device[key], dtype=np.float64).reshape(len(device[key]), -1).T


def _signals(signal: dict, device: str) -> dict[str, tuple[np.ndarray, float, tuple]]:
    """modality -> (data (n_chans, n_times), sfreq, names) over the whole recording."""
    out = {}
    axes = ("x", "y", "z")
    if device in ("wrist", "both"):
        w = signal["wrist"]
        sfx = "_wrist" if device == "both" else ""
        out["gsr"] = (_rows(w, "EDA"), 4.0, (f"EDA{sfx}",))
        out["ppg"] = (_rows(w, "BVP"), 64.0, ("BVP",))
        out["temp"] = (_rows(w, "TEMP"), 4.0, (f"TEMP{sfx}",))
        out["acc"] = (_rows(w, "ACC") / 64.0, 32.0, tuple(f"ACC{sfx}_{a}" for a in axes))
        if "HR" in w:  # only in the E4 export (wrist_source = "e4zip")
            out["hr"] = (_rows(w, "HR"), 1.0, ("HR",))
    if device in ("chest", "both"):
        c = signal["chest"]
        for m, key in (("ecg", "ECG"), ("emg", "EMG"), ("resp", "Resp")):
            out[m] = (_rows(c, key), CHEST_RATE, (key,))
        chest = {"gsr": (_rows(c, "EDA"), ("EDA",)), "temp": (_rows(c, "Temp"), ("Temp",)),
                 "acc": (_rows(c, "ACC"), tuple(f"ACC_{a}" for a in axes))}
        for m, (x, names) in chest.items():
            if device == "chest":
                out[m] = (x, CHEST_RATE, names)
            else:
                wx, rate, wnames = out[m]
                y = _decimate(x, CHEST_RATE, rate)
                n = min(y.shape[1], wx.shape[1])
                names = tuple(n_.replace("ACC_", "ACC_chest_") if m == "acc" else
                              f"{n_}_chest" for n_ in names)
                out[m] = (np.vstack([y[:, :n], wx[:, :n]]), rate, names + wnames)
    return out


def _e4_zero(session, content: dict, offset: float | None, zpath: Path) -> float:
    """POSIX time of the label array's first sample on the E4 export's clock.

    ``offset`` (s after the export's first EDA sample) when given; else where the pickle's
    wrist EDA (the export's samples, cut to the chest recording) lies in the export's EDA.
    """
    start, rate, eda = session.signals["EDA"]
    if offset is not None:
        return start + offset
    z = eda[:, 0]
    p = np.asarray(content["signal"]["wrist"]["EDA"], dtype=np.float64).ravel()
    if p.size == 0 or p.size > z.size:
        raise FormatError(
            f"{zpath}: its EDA.csv has {z.size} samples, fewer than the pickle's wrist EDA "
            f"({p.size}), so the two cannot be aligned; set [dataset] e4_offset to the seconds "
            f"from the zip's first EDA sample to the label array's first sample.")
    view = np.lib.stride_tricks.sliding_window_view(z, p.size)
    err = np.concatenate([np.abs(view[k:k + 64] - p).mean(axis=1)
                          for k in range(0, len(view), 64)])
    lag = int(np.argmin(err))
    if err[lag] > _MATCH_TOLERANCE * (1.0 + p.std()):
        raise FormatError(
            f"{zpath}: its EDA.csv does not contain the pickle's wrist EDA (closest match off "
            f"by {err[lag]:.3g} uS on average, at {lag / rate:g} s); set [dataset] e4_offset "
            f"to the seconds from the zip's first EDA sample to the label array's first sample.")
    return start + lag / rate


def _e4_wrist(session, zero: float, total: float, report: LoadReport, sid: str,
              zpath: Path) -> dict:
    """The export's signals on the label array's clock, ``[0, total)`` s, in the pickle's
    layout (``ACC`` in 1/64 g, as the pickle holds it); ``HR`` added."""
    wrist = {}
    for stem, (start, rate, data) in session.signals.items():
        n = int(total * rate)
        i0 = int(round((zero - start) * rate))
        got = data[max(i0, 0):max(i0 + n, 0)]
        before, after = max(-i0, 0), n - max(-i0, 0) - len(got)
        if before or after or not len(got):
            if not len(got):
                raise FormatError(f"{zpath}:{stem}.csv: no sample within the chest recording "
                                  f"({total:g} s); set [dataset] wrist_source = \"pkl\".")
            got = np.pad(got, ((before, max(after, 0)), (0, 0)), mode="edge")[:n]
            report.repair(sid, None, str(zpath), f"{stem}.csv covers {before / rate:g} s less "
                          f"at the start and {max(after, 0) / rate:g} s less at the end than the "
                          f"label array; its edge values held", before + max(after, 0))
        wrist[stem] = got * ACC_COUNTS_PER_G if stem == "ACC" else got
    return wrist


def _load_subject(sid: str, report: LoadReport, *, root: Path, device: str, strict: bool,
                  tolerance: float, wrist_source: str = "pkl",
                  e4_offset: float | None = None) -> Subject:
    pkl, quest = root / sid / f"{sid}.pkl", root / sid / f"{sid}_quest.csv"
    zpath = root / sid / f"{sid}_E4_Data.zip"
    use_zip = wrist_source == "e4zip" and device != "chest"
    session, where = None, pkl
    try:
        for f in (pkl, quest, zpath) if use_zip else (pkl, quest):
            if not f.is_file():
                where = f
                extra = (" or set [dataset] wrist_source = \"pkl\"" if f == zpath else "")
                raise FormatError(f"{f}: missing; download the subject's folder{extra} or "
                                  f"remove {sid!r} from [dataset] subjects.")
        content = read_wesad_pickle(pkl)
        stages = read_quest(quest)
        label = np.asarray(content["label"]).ravel().astype(np.int64)
        signal = content["signal"]
        if use_zip:
            where = zpath
            session = read_e4_zip(zpath, required=_ZIP_SIGNALS)
            zero = _e4_zero(session, content, e4_offset, zpath)
            signal = {**signal, "wrist": _e4_wrist(session, zero, label.size / CHEST_RATE,
                                                   report, sid, zpath)}
    except (FearkdError, OSError) as exc:
        if strict:
            raise
        report.skip(sid, None, str(where), str(exc))
        return Subject("wesad", sid, ())
    signals = _signals(signal, device)
    beats = session.beats - zero if session is not None and session.ibi is not None else None
    names = {code: [s for s in stages if STAGES.get(s) == code] for code in CONDITIONS}
    trials = []
    for k, (code, a, b) in enumerate(_segments(label), 1):
        t0, t1 = a / CHEST_RATE, b / CHEST_RATE
        stage = names[code].pop(0) if names[code] else CONDITIONS[code]
        q = stages.get(stage, {})
        off = max(abs(q.get("start", np.nan) - t0), abs(q.get("end", np.nan) - t1))
        if np.isfinite(off) and off > tolerance:
            report.repair(sid, k, str(quest), f"'{stage}' START/END differ from the label "
                          f"array by {off:.0f} s (> {tolerance:g} s); label array used", 1)
        sigs = {}
        for m, (x, rate, chs) in signals.items():
            i0 = int(round(t0 * rate))
            sigs[m] = Signal(x[:, i0:i0 + int((t1 - t0) * rate)], rate, chs, m)
        ratings = {r: q.get(r, np.nan) for r in ("stai", "valence", "arousal")}
        info = {"condition": CONDITIONS[code], "stage": stage}
        if beats is not None:
            info["beats"] = beats[(beats >= t0) & (beats < t1)] - t0
        trials.append(Trial("wesad", sid, k, sigs, ratings=ratings, info=info))
    return Subject("wesad", sid, trials)


def load_wesad(path: str | Path, *, subjects=None, device: str = "both", strict: bool = False,
               time_tolerance: float = 60.0, wrist_source: str = "pkl",
               e4_offset: float | None = None) -> Recordings:
    """Open a WESAD folder (``S2/S2.pkl``, ``S2/S2_quest.csv``, ...).

    Parameters
    ----------
    path : str or Path
        The folder holding the ``SX`` subject folders.
    subjects : list of str, optional
        Subject ids (``["S2", "S3"]``); None for every ``SX`` folder.
    device : {"wrist", "chest", "both"}
        Which signals (see the module docstring).
    strict : bool
        Raise on a missing or unreadable subject instead of skipping and listing it.
    time_tolerance : float
        Seconds the quest file's START/END may differ from the label array before the
        difference is listed in the load report.
    wrist_source : {"pkl", "e4zip"}
        Where the wrist signals come from: the pickle, or each subject's raw E4 export
        ``SX/SX_E4_Data.zip`` (adds the 1 Hz heart rate and the IBI beats; see the module
        docstring). Ignored with ``device="chest"``.
    e4_offset : float, optional
        With ``"e4zip"``: seconds from the zip's first EDA sample to the label array's first
        sample; None finds it by matching the pickle's wrist EDA in the zip's.

    Returns
    -------
    Recordings
    """
    root = Path(path)
    if device not in DEVICES:
        raise ValueError(f"Invalid WESAD device {device!r}: set [dataset] device to one of "
                         f"{DEVICES!r}.")
    if wrist_source not in WRIST_SOURCES:
        raise ValueError(f"Invalid WESAD wrist_source {wrist_source!r}: set [dataset] "
                         f"wrist_source to one of {WRIST_SOURCES!r}.")
    if e4_offset is not None and (isinstance(e4_offset, bool)
                                  or not isinstance(e4_offset, int | float)
                                  or not np.isfinite(e4_offset)):
        raise ValueError(f"Invalid WESAD e4_offset {e4_offset!r}: set [dataset] e4_offset to "
                         f"a number of seconds, or leave it out to match the EDA.")
    found = sorted((p.name for p in root.iterdir() if p.is_dir() and re.fullmatch(r"S\d+",
                    p.name)), key=lambda s: int(s[1:]))
    ids = found if subjects is None else [str(s) for s in subjects]
    if not ids:
        raise FormatError(f"{root}: no subject folder S2, S3, ...; point [dataset] path at the "
                          f"WESAD folder.")

    def load(sid: str, report: LoadReport) -> Subject:
        return _load_subject(sid, report, root=root, device=device, strict=strict,
                             tolerance=time_tolerance, wrist_source=wrist_source,
                             e4_offset=e4_offset)

    return Recordings("wesad", ids, load, {"root": str(root), "format": "wesad",
                                           "device": device, "wrist_source": wrist_source})
