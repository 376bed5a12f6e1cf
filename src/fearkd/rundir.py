"""The run directory: where a run's config, units, checkpoints and results live.

Every file is written atomically (a temporary file in the same folder, then ``os.replace``),
so a crash never leaves a half-written unit that a re-run would mistake for a finished one.
Layout::

    RUNDIR/config.json  environment.json  results.csv  timing.csv
    RUNDIR/units/<unit_id>.json          one per finished unit
    RUNDIR/checkpoints/<unit_id>/...     stage checkpoints of units in progress or done
    RUNDIR/datasets/<dataset>/...        label reports and dataset summaries

``docs/RUNDIR.md`` describes every file and every column of ``results.csv``.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import sys
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from ._atomic import dumps, write_atomic
from .errors import ConfigError, FearkdError
from .evaluation.results import results_to_frame

__all__ = ["RunDir", "environment_info"]

def environment_info() -> dict:
    """Python, platform, cores and library versions, for the report."""
    import numpy
    import scipy
    import sklearn
    import torch

    from ._version import __version__

    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "versions": {"fearkd": __version__, "numpy": numpy.__version__,
                     "scipy": scipy.__version__, "sklearn": sklearn.__version__,
                     "pandas": pd.__version__, "torch": torch.__version__},
    }


class RunDir:
    """A run directory (created if missing)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if self.path.exists() and not self.path.is_dir():
            raise ConfigError(
                f"Run directory {str(self.path)!r} is a file; give a folder path with --out."
            )
        self.path.mkdir(parents=True, exist_ok=True)

    # ------------------------------------------------------------------ plain files
    @property
    def units_dir(self) -> Path:
        return self.path / "units"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    def dataset_dir(self, dataset: str) -> Path:
        d = self.path / "datasets" / dataset
        d.mkdir(parents=True, exist_ok=True)
        return d

    def write_json(self, relpath: str | Path, data) -> Path:

        return write_atomic(self.path / relpath, dumps(data) + "\n")

    def read_json(self, relpath: str | Path):
        p = self.path / relpath
        try:
            return json.loads(p.read_text())
        except FileNotFoundError:
            raise FearkdError(f"{p} is missing; is {self.path} a fearkd run directory?") from None
        except json.JSONDecodeError as exc:
            raise FearkdError(f"{p} is not valid JSON ({exc}); delete it and re-run.") from None

    def check_config(self, config: dict, key: str | None = None, *, write: bool = True) -> None:
        """Write the resolved config, or refuse to resume a run made with another one.

        With ``key``, ``config.json`` maps keys to configs (a demo runs one experiment per
        dataset in the same directory) and only that key's config is compared. With
        ``write=False`` a new config is only checked, not written.
        """
        p = self.path / "config.json"
        stored = self.read_json("config.json") if p.exists() else {}
        old = stored.get(key) if key is not None else (stored or None)
        new = json.loads(json.dumps(config))
        if key is not None and stored and not self._keyed(stored):
            old = stored  # one experiment's folder (`run`, `cv`) is not a demo's
        if old is not None and old != new and not self._has_work(key):
            old = None  # a run that failed before any unit started is no experiment yet
            if key is not None and not self._keyed(stored):
                stored = {}
        if old is not None:
            if old != new:
                changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
                self._refuse(changed)
            return
        if write:
            self.write_json("config.json", {**stored, key: new} if key is not None else new)

    def _refuse(self, changed) -> None:
        raise ConfigError(
            f"{self.path} holds a run with another configuration (sections differing: "
            f"{changed}); use a new --out folder, or delete {self.path} to start over."
        )

    @staticmethod
    def _keyed(stored: dict) -> bool:
        """Whether ``config.json`` maps experiment keys to configs (a demo's folder)."""
        return not ("run" in stored or "dataset" in stored)

    def check_keyed(self, keys) -> None:
        """Refuse before any work a folder that holds another, single experiment (a `run` or
        `cv` folder given to `demo`): the same check and message as :meth:`check_config`."""
        p = self.path / "config.json"
        stored = self.read_json("config.json") if p.exists() else {}
        if stored and not self._keyed(stored) and self._has_work(None):
            self._refuse(sorted(set(stored) | set(keys)))

    def _has_work(self, key: str | None) -> bool:
        """Whether a unit of this experiment (``key``: a dataset of a demo) finished or started."""
        prefix = "" if key is None else f"{key}__"
        return (any(p.stem.startswith(prefix) for p in self.units_dir.glob("*.json"))
                or any(p.name.startswith(prefix) for p in self.checkpoints.glob("*")
                       if p.is_dir() and any(p.iterdir())))

    def start_environment(self, **extra) -> dict:
        env = environment_info()
        env.update(extra)
        p = self.path / "environment.json"
        old = self.read_json("environment.json") if p.exists() else {}
        env["started"] = old.get("started", _dt.datetime.now().isoformat(timespec="seconds"))
        # several experiments (a demo's datasets, a resumed run) add up their wall time
        env["wall_seconds"] = float(old.get("wall_seconds", 0.0))
        self.write_json("environment.json", env)
        return env

    def finish_environment(self, wall_seconds: float, **extra) -> None:
        env = self.read_json("environment.json")
        env["finished"] = _dt.datetime.now().isoformat(timespec="seconds")
        env["wall_seconds"] = env.get("wall_seconds", 0.0) + float(wall_seconds)
        env.update(extra)
        self.write_json("environment.json", env)

    # ------------------------------------------------------------------ units
    def unit_path(self, unit_id: str) -> Path:
        return self.units_dir / f"{unit_id}.json"

    def has_unit(self, unit_id: str) -> bool:
        return self.unit_path(unit_id).is_file()

    def write_unit(self, unit_id: str, result: dict) -> Path:
        return self.write_json(Path("units") / f"{unit_id}.json", result)

    def read_unit(self, unit_id: str) -> dict:
        return self.read_json(Path("units") / f"{unit_id}.json")

    def unit_ids(self) -> list[str]:
        return sorted(p.stem for p in self.units_dir.glob("*.json"))

    def results(self, unit_ids: Iterable[str] | None = None) -> pd.DataFrame:
        """Every row of the given (default: all) finished units, in unit order."""
        ids = self.unit_ids() if unit_ids is None else list(unit_ids)
        rows = [row for uid in ids if self.has_unit(uid) for row in self.read_unit(uid)["rows"]]
        return results_to_frame(rows)

    def write_results(self, results: pd.DataFrame, name: str = "results.csv") -> Path:
        return write_atomic(self.path / name, results.to_csv(index=False))
