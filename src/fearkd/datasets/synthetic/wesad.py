"""Synthetic WESAD subjects in the release's layout (``SX/SX.pkl``, ``SX/SX_quest.csv``,
``SX/SX_E4_Data.zip``).

Each subject runs Base, TSST, Medi 1, Fun, Medi 2 (WESAD's order for half its subjects), each
``seconds_per_condition`` long, separated by 10 s of label 0 (transient). Stress raises heart
rate, skin-conductance responses and breathing rate; the quest file's STAI items and SAM ratings
follow the condition (stress anxious, baseline and amusement calm, meditation in between) with
per-subject noise. ``SX_E4_Data.zip`` is the wrist device's raw export (:mod:`fearkd.datasets.e4`
format: ACC, BVP, EDA, TEMP, HR, IBI, tags, info.txt): it starts :data:`E4_LEAD` s before the
pickle's first sample and ends :data:`E4_TAIL` s after its last, holds the pickle's wrist samples
in between (the values the CSV text gives), a 1 Hz heart rate from 10 s on, the beat times of the
BVP pulses and one tag per condition start. The pickle is written with protocol 2 and holds
only ``str`` keys and NumPy arrays, like the release's Python-2 pickles.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import numpy as np

from .e4 import signal_text

__all__ = ["write_wesad"]

_ORDER = ("Base", "TSST", "Medi 1", "Fun", "Medi 2")
_CODE = {"Base": 1, "TSST": 2, "Medi 1": 4, "Fun": 3, "Medi 2": 4}
# condition -> (heart rate bpm, SCRs per minute, breaths per minute)
_PHYSIO = {1: (65.0, 2.0, 13.0), 2: (90.0, 8.0, 20.0), 3: (70.0, 3.0, 14.0), 4: (60.0, 1.0, 9.0)}
# condition -> STAI items 1-6 (1-4; items 1, 4, 6 positive) and SAM valence, arousal
_QUEST = {1: ([4, 1, 1, 4, 1, 4], [7, 3]), 2: ([1, 4, 3, 1, 4, 1], [3, 7]),
          3: ([3, 1, 2, 3, 1, 4], [8, 4]), 4: ([3, 2, 2, 3, 2, 3], [6, 2])}
_GAP = 10.0
#: POSIX start of S2's E4 export (S3 a day later, ...).
E4_ZIP_START = 1495437000.0
#: Seconds the E4 export starts before the pickle's first sample, and goes on after its last.
E4_LEAD, E4_TAIL = 12.25, 5.0
#: HR.csv starts this long after the export's other files, as in real E4 exports.
E4_HR_DELAY = 10.0
_E4_FORMATS = {"ACC": "%d", "BVP": "%.2f", "EDA": "%.6f", "TEMP": "%.2f", "HR": "%.2f"}


def _pulses(rng, t: np.ndarray, rate_hz: np.ndarray, width: float) -> np.ndarray:
    """A train of Gaussian pulses at a time-varying rate (ECG R waves or BVP beats)."""
    phase = np.cumsum(rate_hz) * (t[1] - t[0]) + rng.uniform()
    return np.exp(-0.5 * (((phase % 1.0) - 0.5) / width) ** 2)


def _scr(rng, t: np.ndarray, per_min: np.ndarray) -> np.ndarray:
    dt = t[1] - t[0]
    events = rng.random(t.size) < per_min / 60.0 * dt
    k = np.arange(0, 15.0, dt)
    kernel = np.exp(-k / 4.0) - np.exp(-k / 0.75)
    return np.convolve(events * rng.uniform(0.3, 0.8, t.size), kernel)[: t.size]


def _stage_times(seconds: float) -> list[tuple[str, float, float]]:
    out, t = [], _GAP
    for stage in _ORDER:
        out.append((stage, t, t + seconds))
        t += seconds + _GAP
    return out


def _mmss(t: float) -> str:
    return f"{int(t // 60)}.{int(round(t % 60)):02d}"


def write_wesad(root: str | Path, *, n_subjects: int = 3, seconds_per_condition: float = 60.0,
                random_state: int = 0, e4_zip: bool = True) -> Path:
    """Write ``n_subjects`` subjects S2, S3, ... under ``root``.

    Parameters
    ----------
    root : str or Path
        Folder to create (the WESAD folder).
    n_subjects : int
    seconds_per_condition : float
        Length of each of the five conditions.
    random_state : int
    e4_zip : bool
        Also write ``SX/SX_E4_Data.zip``, the wrist device's raw export (see the module
        docstring).

    Returns
    -------
    Path
        ``root``.
    """
    if n_subjects < 1 or seconds_per_condition < 10:
        raise ValueError("write_wesad needs n_subjects >= 1 and seconds_per_condition >= 10.")
    rng = np.random.default_rng(random_state)
    root = Path(root)
    stages = _stage_times(seconds_per_condition)
    total = stages[-1][2] + _GAP
    for i in range(n_subjects):
        sid = f"S{i + 2}"
        (root / sid).mkdir(parents=True, exist_ok=True)
        fs = 700.0
        t = np.arange(int(total * fs)) / fs
        label = np.zeros(t.size, dtype=np.int32)
        for stage, a, b in stages:
            label[int(a * fs):int(b * fs)] = _CODE[stage]
        hr, scr, br = (np.array([_PHYSIO.get(c, _PHYSIO[1])[j] for c in label]) for j in range(3))
        hr = hr + rng.normal(0, 3)
        chest = {
            "ECG": _pulses(rng, t, hr / 60.0, 0.02) + rng.normal(0, 0.02, t.size),
            "EMG": rng.normal(0, 0.01, t.size),
            "EDA": 4.0 + _scr(rng, t[::175], scr[::175]).repeat(175)[: t.size],
            "Temp": 33.0 + 0.001 * t + rng.normal(0, 0.01, t.size),
            "Resp": np.sin(2 * np.pi * np.cumsum(br / 60.0) / fs),
        }
        chest = {k: v[:, None].astype(np.float64) for k, v in chest.items()}
        chest["ACC"] = rng.normal([0.9, 0.0, -0.3], 0.02, (t.size, 3))
        wrist, raw = {}, {}
        e4_start = E4_ZIP_START + i * 86400.0
        for key, rate in (("ACC", 32.0), ("BVP", 64.0), ("EDA", 4.0), ("TEMP", 4.0)):
            # the E4 ran E4_LEAD s before and E4_TAIL s after the chest device: its export
            # holds those samples too, the pickle only the synchronised part
            lead = int(E4_LEAD * rate)
            tw = (np.arange(lead + int(total * rate) + int(E4_TAIL * rate)) - lead) / rate
            lw = label[np.clip((tw * fs).astype(int), 0, t.size - 1)] * (tw >= 0)
            if key == "ACC":
                raw[key] = np.round(rng.normal([58, 0, -20], 2, (tw.size, 3)))
            elif key == "BVP":
                hw = np.array([_PHYSIO.get(c, _PHYSIO[1])[0] for c in lw]) + rng.normal(0, 3)
                phase = np.cumsum(hw / 60.0) / rate + rng.uniform()
                raw[key] = np.round(50 * np.exp(-0.5 * (((phase % 1.0) - 0.5) / 0.12) ** 2),
                                    2)[:, None]
                beats = tw[np.flatnonzero(np.diff(np.floor(phase - 0.5)) > 0) + 1] + E4_LEAD
                hr_t = np.arange(E4_HR_DELAY, tw[-1] + E4_LEAD)
                raw["HR"] = np.round(np.interp(hr_t, tw + E4_LEAD, hw), 2)[:, None]
            elif key == "EDA":
                sw = np.array([_PHYSIO.get(c, _PHYSIO[1])[1] for c in lw])
                raw[key] = np.round(1.0 + _scr(rng, tw, sw), 6)[:, None]
            else:
                raw[key] = np.round(32.0 + 0.0005 * tw + rng.normal(0, 0.02, tw.size),
                                    2)[:, None]
            wrist[key] = raw[key][lead:lead + int(total * rate)]
        if e4_zip:
            _write_e4_zip(root / sid / f"{sid}_E4_Data.zip", e4_start, raw, beats,
                          [e4_start + E4_LEAD + a for _, a, _ in stages])
        with open(root / sid / f"{sid}.pkl", "wb") as f:
            pickle.dump({"signal": {"chest": chest, "wrist": wrist}, "label": label,
                         "subject": sid}, f, protocol=2)
        _write_quest(root / sid / f"{sid}_quest.csv", sid, stages, rng)
    return root


def _write_e4_zip(path: Path, start: float, raw: dict, beats: np.ndarray, tags) -> None:
    """The E4 export of one subject: signal files, IBI.csv, tags.csv and info.txt."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for key, rate in (("ACC", 32.0), ("BVP", 64.0), ("EDA", 4.0), ("TEMP", 4.0),
                          ("HR", 1.0)):
            delay = E4_HR_DELAY if key == "HR" else 0.0
            archive.writestr(f"{key}.csv", signal_text(start + delay, rate, raw[key],
                                                       _E4_FORMATS[key]))
        rows = "\n".join(f"{b:.6f},{b - a:.6f}" for a, b in zip(beats[:-1], beats[1:],
                                                                  strict=True))
        archive.writestr("IBI.csv", f"{start:.6f}, IBI\n{rows}\n")
        archive.writestr("tags.csv", "".join(f"{t:.2f}\n" for t in tags))
        archive.writestr("info.txt", "Synthetic Empatica E4 export written by fearkd "
                                     "(see fearkd.datasets.e4 for the file formats).\n")


def _write_quest(path: Path, sid: str, stages, rng) -> None:
    n = len(stages)
    pad = ";" * (n - 1)
    lines = [f"# Subj;{sid}{pad}", "# ORDER;" + ";".join(s for s, _, _ in stages),
             "# START;" + ";".join(_mmss(a) for _, a, _ in stages),
             "# END;" + ";".join(_mmss(b) for _, _, b in stages), ";" * n]
    for _stage in stages:
        lines.append("# PANAS;" + ";".join(str(int(v)) for v in rng.integers(1, 6, 26)))
    for stage, _, _ in stages:
        items = np.clip(np.array(_QUEST[_CODE[stage]][0]) + rng.integers(-1, 2, 6)
                        * (rng.random(6) < 0.3), 1, 4)
        lines.append("# STAI;" + ";".join(str(int(v)) for v in items))
    for stage, _, _ in stages:
        sam = np.clip(np.array(_QUEST[_CODE[stage]][1]) + rng.integers(-1, 2, 2), 1, 9)
        lines.append("# DIM;" + ";".join(str(int(v)) for v in sam))
    lines.append("# SSSQ;" + ";".join(str(int(v)) for v in rng.integers(1, 6, 6)))
    path.write_text("\n".join(lines) + "\n", encoding="latin-1")
