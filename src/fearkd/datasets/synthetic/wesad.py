"""Synthetic WESAD subjects in the release's layout (``SX/SX.pkl``, ``SX/SX_quest.csv``).

Each subject runs Base, TSST, Medi 1, Fun, Medi 2 (WESAD's order for half its subjects), each
``seconds_per_condition`` long, separated by 10 s of label 0 (transient). Stress raises heart
rate, skin-conductance responses and breathing rate; the quest file's STAI items and SAM ratings
follow the condition (stress anxious, baseline and amusement calm, meditation in between) with
per-subject noise. The pickle is written with protocol 2 and holds only ``str`` keys and NumPy
arrays, like the release's Python-2 pickles.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

__all__ = ["write_wesad"]

_ORDER = ("Base", "TSST", "Medi 1", "Fun", "Medi 2")
_CODE = {"Base": 1, "TSST": 2, "Medi 1": 4, "Fun": 3, "Medi 2": 4}
# condition -> (heart rate bpm, SCRs per minute, breaths per minute)
_PHYSIO = {1: (65.0, 2.0, 13.0), 2: (90.0, 8.0, 20.0), 3: (70.0, 3.0, 14.0), 4: (60.0, 1.0, 9.0)}
# condition -> STAI items 1-6 (1-4; items 1, 4, 6 positive) and SAM valence, arousal
_QUEST = {1: ([4, 1, 1, 4, 1, 4], [7, 3]), 2: ([1, 4, 3, 1, 4, 1], [3, 7]),
          3: ([3, 1, 2, 3, 1, 4], [8, 4]), 4: ([3, 2, 2, 3, 2, 3], [6, 2])}
_GAP = 10.0


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
                random_state: int = 0) -> Path:
    """Write ``n_subjects`` subjects S2, S3, ... under ``root``.

    Parameters
    ----------
    root : str or Path
        Folder to create (the WESAD folder).
    n_subjects : int
    seconds_per_condition : float
        Length of each of the five conditions.
    random_state : int

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
        wrist = {}
        for key, rate in (("ACC", 32.0), ("BVP", 64.0), ("EDA", 4.0), ("TEMP", 4.0)):
            tw = np.arange(int(total * rate)) / rate
            lw = label[np.minimum((tw * fs).astype(int), t.size - 1)]
            if key == "ACC":
                wrist[key] = np.round(rng.normal([58, 0, -20], 2, (tw.size, 3)))
            elif key == "BVP":
                hw = np.array([_PHYSIO.get(c, _PHYSIO[1])[0] for c in lw]) + rng.normal(0, 3)
                wrist[key] = (50 * _pulses(rng, tw, hw / 60.0, 0.12))[:, None]
            elif key == "EDA":
                sw = np.array([_PHYSIO.get(c, _PHYSIO[1])[1] for c in lw])
                wrist[key] = (1.0 + _scr(rng, tw, sw))[:, None]
            else:
                wrist[key] = (32.0 + 0.0005 * tw + rng.normal(0, 0.02, tw.size))[:, None]
        with open(root / sid / f"{sid}.pkl", "wb") as f:
            pickle.dump({"signal": {"chest": chest, "wrist": wrist}, "label": label,
                         "subject": sid}, f, protocol=2)
        _write_quest(root / sid / f"{sid}_quest.csv", sid, stages, rng)
    return root


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
