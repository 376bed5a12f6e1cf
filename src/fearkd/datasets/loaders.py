"""Open any supported dataset from a path: detect its kind, call its reader, summarise it."""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path

from ..errors import DatasetNotFoundError
from ..recordings import MODALITIES, Recordings

__all__ = ["detect_dataset", "open_dataset", "summarize", "LAYOUTS"]

#: What each kind looks like on disk, for detection and for the "not found" message.
LAYOUTS = {
    "deap": "data_preprocessed_python/s01.dat ... or data_preprocessed_matlab/s01.mat ...",
    "ascertain": "ASCERTAIN_Raw/EEGData/Movie_P01/EEG_Clip1.mat ... and "
                 "ASCERTAIN_Features/Dt_SelfReports.mat",
    "generic": "a description file (.toml) of your own recordings",
}
_DEAP_DIRS = ("data_preprocessed_python", "data_preprocessed_matlab")


def _layouts_text() -> str:
    return "; ".join(f"{k}: {v}" for k, v in LAYOUTS.items())


def detect_dataset(path: str | Path) -> tuple[str, Path]:
    """Return ``(kind, root)`` for a dataset folder or a description file.

    ``path`` may also be one of DEAP's two data folders; the root is then its parent.
    """
    path = Path(path)
    if not path.exists():
        raise DatasetNotFoundError(
            f"Dataset path {str(path)!r} does not exist; expected a folder holding one of: "
            f"{_layouts_text()}."
        )
    if path.is_file():
        if path.suffix.lower() == ".toml":
            return "generic", path
        raise DatasetNotFoundError(
            f"{str(path)!r} is a file; expected a dataset folder or a .toml description file "
            f"({_layouts_text()})."
        )
    if path.name in _DEAP_DIRS:
        return "deap", path.parent
    if any((path / d).is_dir() for d in _DEAP_DIRS):
        return "deap", path
    if (path / "ASCERTAIN_Raw").is_dir() or (path / "ASCERTAIN_Features").is_dir():
        return "ascertain", path
    if path.name in ("ASCERTAIN_Raw", "ASCERTAIN_Features"):
        return "ascertain", path.parent
    raise DatasetNotFoundError(
        f"No dataset found under {str(path)!r}: expected one of {_layouts_text()}."
    )


def open_dataset(path: str | Path, kind: str | None = None, **kwargs) -> Recordings:
    """Open a dataset with the reader for its kind (detected when ``kind`` is None).

    Keyword arguments go to the reader (``subjects``, ``channels``, ...).
    """
    if kind is None:
        kind, root = detect_dataset(path)
    else:
        root = Path(path)
    if kind == "deap":
        from .deap import load_deap

        return load_deap(root, **kwargs)
    if kind == "ascertain":
        from .ascertain import load_ascertain

        return load_ascertain(root, **kwargs)
    if kind == "generic":
        from .generic import load_generic

        return load_generic(root, **kwargs)
    raise ValueError(
        f"Invalid value for 'kind': expected one of 'deap', 'ascertain', 'generic', got {kind!r}."
    )


def summarize(recordings: Recordings, progress: bool = False) -> dict:
    """Subjects, trials, modalities (rates, channels), durations and ratings of a dataset.

    Reads every subject once (one at a time). The result is plain data, ready for JSON.
    """
    from tqdm.auto import tqdm

    trials_per_subject: dict[str, int] = {}
    modalities: dict[str, dict] = {}
    durations: list[float] = []
    ratings: dict[str, list[float]] = defaultdict(list)
    onsets: set[float] = set()
    for subject in tqdm(recordings, total=len(recordings), disable=not progress,
                        desc="reading subjects", unit="subject"):
        trials_per_subject[subject.subject] = len(subject)
        for trial in subject:
            durations.append(trial.duration)
            onsets.add(trial.onset)
            for name, value in trial.ratings.items():
                ratings[name].append(value)
            for m, sig in trial.signals.items():
                entry = modalities.setdefault(
                    m, {"sfreq": sig.sfreq, "channels": list(sig.ch_names), "n_trials": 0}
                )
                entry["n_trials"] += 1
    summary_ratings = {}
    for name, values in ratings.items():
        finite = [v for v in values if not math.isnan(v)]
        summary_ratings[name] = {
            "n": len(values),
            "n_nan": len(values) - len(finite),
            "min": min(finite) if finite else None,
            "mean": sum(finite) / len(finite) if finite else None,
            "max": max(finite) if finite else None,
        }
    ordered = {m: modalities[m] for m in MODALITIES if m in modalities}
    return {
        "dataset": recordings.dataset,
        "description": {k: v for k, v in recordings.description.items() if k != "files"},
        "n_subjects": len(trials_per_subject),
        "n_trials": sum(trials_per_subject.values()),
        "trials_per_subject": trials_per_subject,
        "modalities": ordered,
        "trial_seconds": {
            "min": min(durations) if durations else None,
            "max": max(durations) if durations else None,
        },
        "onset_seconds": sorted(onsets),
        "ratings": summary_ratings,
        "load_report": recordings.report.to_dict(),
    }
