"""Synthetic Empatica E4 sessions in the real export layout (see :mod:`fearkd.datasets.e4`).

:func:`write_e4` writes one folder per subject (``S1/EDA.csv``, ``TEMP.csv``, ``BVP.csv``,
``ACC.csv``, ``HR.csv``, ``IBI.csv``, ``tags.csv``) and a description TOML beside them that
:func:`fearkd.datasets.generic.load_generic` reads. The stages follow one another between
button presses (``tags.csv`` holds every stage boundary); during a stage whose name contains
``"stress"`` skin conductance rises (x1.5) and heart rate rises (+15 bpm), the planted effect.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..._outputs import write_synthetic_marker

__all__ = ["write_e4", "E4_RATES", "E4_START"]

#: Sampling rates of the E4 signal files (Hz).
E4_RATES = {"EDA": 4.0, "TEMP": 4.0, "BVP": 64.0, "ACC": 32.0, "HR": 1.0}

#: POSIX start of subject 1's session; subject n starts n - 1 days later.
E4_START = 1644227574

#: HR.csv starts this many seconds after the session start, as in real exports.
HR_DELAY = 10.0

#: Seconds before the first tag and after the last one.
_LEAD, _TAIL = 30.0, 10.0

_VARIANTS = ("unix", "datetime")


def _stamp(t: float, variant: str) -> str:
    if variant == "unix":
        return f"{t:.6f}"
    return _dt.datetime.fromtimestamp(t, _dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def signal_text(start: float, sfreq: float, data: np.ndarray, fmt: str,
                variant: str = "unix") -> str:
    """The text of an E4 signal file: start row, rate row, then ``data`` (n_samples, n_cols)."""
    n_cols = data.shape[1]
    head = ", ".join([_stamp(start, variant)] * n_cols)
    rate = ", ".join([f"{sfreq:.6f}"] * n_cols)
    rows = "\n".join(",".join(fmt % v for v in row) for row in data)
    return f"{head}\n{rate}\n{rows}\n"


def _write_signal(path: Path, start: float, sfreq: float, data: np.ndarray, fmt: str,
                  variant: str) -> None:
    path.write_text(signal_text(start, sfreq, data, fmt, variant), encoding="utf-8")


def _stress_level(t: np.ndarray, bounds: np.ndarray, stressed: list[bool]) -> np.ndarray:
    """1 inside stressed stages, 0 elsewhere, with 5 s first-order onsets and offsets."""
    level = np.zeros_like(t)
    for (a, b), on in zip(zip(bounds[:-1], bounds[1:], strict=True), stressed, strict=True):
        if on:
            level += (1 - np.exp(-np.clip(t - a, 0, None) / 5.0)) * (t >= a) \
                - (1 - np.exp(-np.clip(t - b, 0, None) / 5.0)) * (t >= b)
    return level


def write_e4(root: str | Path, *, n_subjects: int = 3, seconds: float = 600.0,
             variant: str = "unix", stages: Sequence[str] = ("baseline", "stress", "recovery"),
             random_state: int = 0) -> Path:
    """Write synthetic E4 sessions and their description.

    Parameters
    ----------
    root : str or Path
        Output folder (created); subject ``n`` goes to ``root/S<n>/``.
    n_subjects : int
    seconds : float
        Session length (>= 60 s); stages share ``[30 s, seconds - 10 s]`` equally.
    variant : {"unix", "datetime"}
        Start-time row of every file: ``1644227574.000000`` or ``2022-02-07 09:52:54`` (UTC).
        Tags are unix times in both.
    stages : sequence of str
        Stage names in order; ``tags.csv`` holds ``len(stages) + 1`` boundaries.
    random_state : int

    Returns
    -------
    Path
        ``root/description.toml`` (``from = "tags"``; classes: 3 for a stage containing
        ``"stress"``, else 0; source classes: 1 for it, else 0; channels EDA, TEMP, BVP,
        ACC_x/y/z, HR). ``root`` also gets the synthetic-data marker
        ``fearkd-synthetic.json``, so summaries and reports say "synthetic".
    """
    if variant not in _VARIANTS:
        raise ValueError(f"Invalid value for 'variant': expected one of {_VARIANTS!r}, "
                         f"got {variant!r}.")
    if isinstance(n_subjects, bool) or not isinstance(n_subjects, int) or n_subjects < 1:
        raise ValueError(f"'n_subjects' must be a positive integer, got {n_subjects!r}.")
    if not seconds >= 60:
        raise ValueError(f"'seconds' must be at least 60, got {seconds!r}.")
    stages = [str(s) for s in stages]
    if not stages or len(set(stages)) != len(stages):
        raise ValueError(f"'stages' must be distinct names, got {stages!r}.")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(random_state)
    stressed = ["stress" in s.lower() for s in stages]
    bounds = np.round(np.linspace(_LEAD, seconds - _TAIL, len(stages) + 1), 2)
    for sub in range(1, n_subjects + 1):
        folder = root / f"S{sub}"
        folder.mkdir(exist_ok=True)
        start = float(E4_START + (sub - 1) * 86400)
        scl, hr0, temp0 = rng.uniform(1.0, 6.0), rng.uniform(60.0, 80.0), rng.uniform(31, 34)

        def clock(name, delay=0.0):
            n = int((seconds - delay) * E4_RATES[name])
            return delay + np.arange(n) / E4_RATES[name]

        t = clock("EDA")
        eda = scl * (1 + 0.5 * _stress_level(t, bounds, stressed)) + 0.02 * rng.standard_normal(
            len(t))
        _write_signal(folder / "EDA.csv", start, 4.0, eda[:, None], "%.6f", variant)
        temp = temp0 - 0.3 * _stress_level(t, bounds, stressed) + 0.02 * rng.standard_normal(
            len(t))
        _write_signal(folder / "TEMP.csv", start, 4.0, temp[:, None], "%.2f", variant)
        # heart: instantaneous rate -> beat times (phase crosses an integer) -> BVP, HR, IBI
        tb = clock("BVP")
        bpm = hr0 + 15.0 * _stress_level(tb, bounds, stressed) + rng.standard_normal(len(tb))
        phase = np.cumsum(bpm / 60.0) / E4_RATES["BVP"]
        bvp = 40 * np.sin(2 * np.pi * phase) + 3 * rng.standard_normal(len(tb))
        _write_signal(folder / "BVP.csv", start, 64.0, bvp[:, None], "%.2f", variant)
        beats = tb[np.flatnonzero(np.diff(np.floor(phase)) > 0) + 1]
        th = clock("HR", HR_DELAY)
        hr = np.interp(th, tb, bpm)
        _write_signal(folder / "HR.csv", start + HR_DELAY, 1.0, hr[:, None], "%.2f", variant)
        ta = clock("ACC")
        acc = np.round(np.column_stack([2 * rng.standard_normal(len(ta)),
                                        2 * rng.standard_normal(len(ta)),
                                        64 + 2 * rng.standard_normal(len(ta))]))
        _write_signal(folder / "ACC.csv", start, 32.0, acc, "%d", variant)
        keep = np.flatnonzero(rng.random(len(beats) - 1) > 0.1) + 1  # E4 drops unclear beats
        ibi = "\n".join(f"{beats[i]:.6f},{beats[i] - beats[i - 1]:.6f}" for i in keep)
        (folder / "IBI.csv").write_text(f"{_stamp(start, variant)}, IBI\n{ibi}\n",
                                        encoding="utf-8")
        tags = "\n".join(f"{start + b:.2f}" for b in bounds)
        (folder / "tags.csv").write_text(tags + "\n", encoding="utf-8")
    classes = "\n".join(f'"{s}" = {3 if on else 0}' for s, on in zip(stages, stressed,
                                                                       strict=True))
    source_classes = "\n".join(f'"{s}" = {int(on)}' for s, on in zip(stages, stressed,
                                                                         strict=True))
    channels = "\n".join(f'{ch} = "{m}"' for ch, m in (
        ("EDA", "gsr"), ("TEMP", "temp"), ("BVP", "ppg"), ("ACC_x", "acc"), ("ACC_y", "acc"),
        ("ACC_z", "acc"), ("HR", "hr")))
    stage_list = ", ".join(f'"{s}"' for s in stages)
    write_synthetic_marker(root, "write_e4", n_subjects=n_subjects, seconds=float(seconds),
                           variant=variant, stages=stages, random_state=int(random_state))
    path = root / "description.toml"
    path.write_text(
        f"""# Synthetic Empatica E4 sessions ({variant} start rows), written by fearkd.
[dataset]
name = "synthetic-e4"
root = "."
subjects = "1-{n_subjects}"
subject_id = "S{{subject}}"
records = [{{ file = "S{{subject}}", format = "e4" }}]

[dataset.channels]
{channels}

[dataset.labels]
from = "tags"
stages = [{stage_list}]

[dataset.labels.classes]
{classes}

[dataset.labels.source_classes]
{source_classes}
""", encoding="utf-8")
    return path
