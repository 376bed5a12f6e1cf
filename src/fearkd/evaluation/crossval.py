"""Cross-validation runner: models x folds x seeds, resumable, serial, joblib or Dask.

A **unit** is one fold of one pipeline: ``(dataset, protocol, model, fold, seed)``. It trains the
backbone and every configured method on the fold's training side and evaluates on its test
side (:func:`fearkd.methods.run_pipeline`). Each finished unit is written atomically to
``RUNDIR/units/<unit_id>.json``; a re-run of the same command skips finished units and, inside an
unfinished unit, reloads finished stages from their checkpoints, so a killed run resumes and
ends with the same results as an uninterrupted one.

Splits come from :mod:`fearkd.evaluation.splitters` and every split passes the leakage guard
before anything is trained. Units run in the calling process (``jobs=1``), in local worker
processes (``jobs=N``, joblib), or on a Dask distributed cluster (``scheduler="tcp://host:port"``);
all three give identical results because every stage is seeded from the unit's seed alone and
every unit trains on one torch thread (see :func:`_run_one`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import ConfigError
from ..labels import FEAR_CLASSES
from ..rundir import RunDir
from .results import RESULT_COLUMNS

__all__ = ["Unit", "CVData", "make_units", "run_units", "timing_table", "RESULT_COLUMNS",
           "UNIT_THREADS"]

logger = logging.getLogger(__name__)

#: torch threads every unit trains on, whatever runs it (see :func:`_run_one`).
UNIT_THREADS = 1



@dataclass(frozen=True)
class Unit:
    """One fold of one pipeline.

    ``methods`` are the methods the unit runs after the backbone (empty: the backbone and the
    baselines only, as in a backbone comparison).
    """

    dataset: str
    protocol: str
    model: str
    fold: int
    seed: int
    methods: tuple[str, ...] = ("method1", "method2")

    def __post_init__(self) -> None:
        object.__setattr__(self, "methods", tuple(self.methods))

    @property
    def id(self) -> str:
        return f"{self.dataset}__{self.protocol}__{self.model}__fold{self.fold}__seed{self.seed}"


@dataclass
class CVData:
    """Everything a unit needs, shipped once to each worker.

    ``splits[(protocol, seed)]`` is the list of ``(train, val_or_None, test)`` index arrays.
    """

    featureset: object  # fearkd.features.featureset.FeatureSet (teacher columns)
    student_names: tuple[str, ...]
    splits: dict
    settings: object  # fearkd.methods.PipelineSettings
    n_source_classes: int
    class_names: tuple[str, ...] = FEAR_CLASSES
    #: Plug-in modules (:mod:`fearkd.plugins`) each worker imports before running a unit, so
    #: that the names they register exist in every process.
    plugins: tuple[str, ...] = ()
    #: Several datasets (``[[datasets]]``): rows carry ``trained_on`` and a unit whose test
    #: side holds several datasets is also scored on each of them.
    multi: bool = False


def make_units(dataset: str, plan: Sequence[tuple[str, str, tuple[str, ...]]],
               n_folds: dict, seeds: Sequence[int]) -> list[Unit]:
    """Every unit of a run, in a stable order (plan entry, seed, fold).

    ``plan`` lists ``(protocol, model, methods)``; each (protocol, model) pair at most once.
    """
    pairs = [(p, m) for p, m, _ in plan]
    dup = sorted({x for x in pairs if pairs.count(x) > 1})
    if dup:
        raise ValueError(f"Each (protocol, model) may appear once in a plan; repeated: {dup!r}.")
    return [
        Unit(dataset, p, m, f, s, tuple(methods))
        for p, m, methods in plan for s in seeds for f in range(n_folds[(p, s)])
    ]


#: Seconds between two looks of a worker's watchdog at its parent process.
WATCHDOG_SECONDS = 0.5
_watched: set[int] = set()


def _watch_parent(parent_pid: int) -> None:
    """In a local worker process: exit at once when the run's process is gone.

    A worker whose parent died (``SIGKILL`` included) is re-parented, so ``os.getppid()``
    changes; the thread then ends the worker with ``os._exit`` before it writes anything more
    into the run directory. Started once per worker process.
    """
    if os.getpid() == parent_pid or parent_pid in _watched:
        return
    _watched.add(parent_pid)

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(WATCHDOG_SECONDS)
        os._exit(70)

    threading.Thread(target=watch, name="fearkd-parent-watchdog", daemon=True).start()


def _run_one(unit: Unit, data: CVData, checkpoint_root: str | None,
             parent_pid: int | None = None) -> dict:
    """Execute one unit (in whatever process it lands in), on one torch thread.

    CPU kernels (the CNN's matrix products) sum in an order that depends on the number of
    threads, so the thread count is part of the result: a unit on 2 threads and the same unit
    on 1 differ in the last bits of their losses. Fixing it at one thread makes serial, joblib
    and Dask runs, and machines with other core counts, agree bit for bit; parallelism comes
    from running units side by side (``jobs``, Dask workers), which also avoids
    oversubscribing the cores.
    """
    import torch

    from .. import methods
    from ..plugins import load_plugins

    if parent_pid is not None:
        _watch_parent(parent_pid)
    load_plugins(data.plugins, where="plugins")
    old_threads = torch.get_num_threads()
    torch.set_num_threads(UNIT_THREADS)
    try:
        return _run_unit(unit, data, checkpoint_root, methods)
    finally:
        torch.set_num_threads(old_threads)


def _run_unit(unit: Unit, data: CVData, checkpoint_root: str | None, methods) -> dict:
    import dataclasses

    from .splitters import PROTOCOLS

    # under a subject-wise protocol, model selection must not see windows of a training
    # subject on both sides of the inner split either
    grouped = PROTOCOLS.entry(unit.protocol).info.get("group")
    inner = "subject" if grouped in ("subject", "dataset") else "trial"
    settings = dataclasses.replace(data.settings, methods=unit.methods,
                                   scratch=bool(unit.methods) and data.settings.scratch,
                                   inner_groups=inner)
    if unit.model == "ensemble":
        # the ensemble's unit: its students are the first member's architecture (unless
        # [models] student), and the scratch student is the members' own units'
        members = (settings.model_params.get("ensemble") or {}).get("members") or ["ann"]
        settings = dataclasses.replace(settings, scratch=False,
                                       student_model=settings.student_model or members[0])
    key = (unit.dataset, unit.protocol, unit.seed)
    train, val, test = data.splits[key if key in data.splits else key[1:]][unit.fold]
    ckpt = None if checkpoint_root is None else Path(checkpoint_root) / unit.id
    start = time.perf_counter()
    # the per-dataset scores of a combined unit reload its stages: they need a checkpoint folder
    scratch_dir = tempfile.TemporaryDirectory() if data.multi and ckpt is None else None
    with scratch_dir or contextlib.nullcontext():
        if scratch_dir is not None:
            ckpt = Path(scratch_dir.name)
        result = methods.run_pipeline(
            data.featureset, data.student_names, train, test, val_idx=val,
            backbone=unit.model, settings=settings, seed=unit.seed,
            n_source_classes=data.n_source_classes, class_names=data.class_names,
            checkpoint_dir=ckpt,
        )
        cross, tested, trained_on = False, [unit.dataset], ""
        if data.multi or grouped == "dataset":
            names = data.featureset.metadata["dataset"].astype(str).to_numpy()
            trained_on = "+".join(dict.fromkeys(names[train]))
            tested = list(dict.fromkeys(names[test]))
            # a cross-dataset fold is named by its test dataset; a combined unit by the union
            cross = grouped == "dataset" and len(tested) == 1
        for row in result["rows"]:
            row.update(dataset=tested[0] if cross else unit.dataset,
                       protocol=unit.protocol, model=row.get("model", unit.model),
                       fold=unit.fold, seed=unit.seed)
            if data.multi:
                row["trained_on"] = trained_on
        if data.multi and not cross and unit.dataset not in tested:
            result["rows"] += dataset_rows(data, settings, unit, train, val, test, ckpt,
                                           trained_on)
    result["unit"] = asdict(unit)
    result["wall_seconds"] = time.perf_counter() - start
    return result


def dataset_rows(data: CVData, settings, unit: Unit, train, val, test, ckpt: Path,
                 trained_on: str) -> list[dict]:
    """Test rows of every stage of a finished unit, scored on each dataset's test windows.

    The stages are reloaded from the unit's checkpoints (the models just trained on the whole
    training side); each dataset's rows get ``dataset`` = that dataset and ``n_test`` = its
    test windows. The baselines are scored on the union only.
    """
    from .. import methods
    from ..stages import Fold, _softmax, _StageStore, metric_rows
    from ..training.trainer import predict_logits

    fs = data.featureset
    fold = Fold(fs, data.student_names, train, test, val, normalize=settings.normalize,
                inner_groups=settings.inner_groups)
    names = fs.metadata["dataset"].astype(str).to_numpy()
    store = _StageStore(ckpt)
    n_classes = {"fear": len(data.class_names), "source": int(data.n_source_classes)}
    rows = []
    for stage in methods.stage_list(settings):
        cached = store.load(stage.key)
        if cached is None:
            continue
        ck, meta = cached
        first = next((r for r in meta["rows"] if r["split"] == "test"), None)
        if first is None:
            continue
        X, y = fold.X[stage.inputs], fold.y[stage.task]
        test_rows = fold.rows(stage.task, "test")
        for name in dict.fromkeys(names[test_rows]):
            sel = test_rows[names[test_rows] == name]
            p = _softmax(predict_logits(ck.model, X[sel], scaler=ck.scaler)
                         / float(meta.get("temperature") or 1.0))
            info = {k: v for k, v in first.items() if k not in ("split", "metric", "value")}
            info.update(n_test=int(len(sel)))
            empty = np.empty(0, dtype=np.int64)
            got, _ = metric_rows(info, {"train": empty, "test": y[sel]},
                                 {"train": empty, "test": p.argmax(1)},
                                 {"train": None, "test": p}, n_classes[stage.task])
            for row in got:
                row.update(dataset=name, protocol=unit.protocol, fold=unit.fold,
                           seed=unit.seed, trained_on=trained_on)
            rows.extend(got)
    return rows


def _connect(scheduler: str, timeout: float):
    """A Dask client, or one line naming the address when it cannot be reached in time."""
    try:
        from distributed import Client
    except ImportError:  # pragma: no cover - depends on the extra
        raise ConfigError(
            "A Dask scheduler was given but the 'distributed' package is missing; "
            "install the extra: pip install 'fearkd[dask]'."
        ) from None
    try:
        return Client(scheduler, timeout=timeout)
    except (OSError, TimeoutError, ValueError) as exc:
        raise ConfigError(
            f"cannot reach the Dask scheduler at {scheduler!r} within {timeout:g} s "
            f"({type(exc).__name__}); start it (`dask scheduler`), fix the address given with "
            f"--scheduler ([evaluation] scheduler), or wait longer with --scheduler-timeout. "
            f"A re-run resumes."
        ) from None


def _execute(units: Sequence[Unit], data: CVData, checkpoint_root: str | None, jobs: int,
             scheduler: str | None, scheduler_timeout: float = 5.0) -> Iterator[dict]:
    if not units:
        return
    if scheduler:
        from distributed import as_completed

        with _connect(scheduler, scheduler_timeout) as client:
            workers = max(1, len(client.scheduler_info().get("workers", {})))
            shared = client.scatter(data, broadcast=True)
            futures = [client.submit(_run_one, u, shared, checkpoint_root, key=u.id, pure=False)
                       for u in units]
            logger.info("Running %d units on %s (%d workers)", len(units), scheduler, workers)
            for future in as_completed(futures):
                yield future.result()
        return
    if jobs > 1:
        from joblib import Parallel, delayed

        parallel = Parallel(n_jobs=jobs, return_as="generator_unordered")
        parent = os.getpid()  # each worker watches it and exits when it dies
        yield from parallel(delayed(_run_one)(u, data, checkpoint_root, parent) for u in units)
        return
    for unit in units:
        yield _run_one(unit, data, checkpoint_root)


def run_units(units: Sequence[Unit], data: CVData, rundir: RunDir, *, jobs: int = 1,
              scheduler: str | None = None, progress: bool = True,
              on_unit: Callable[[dict], None] | None = None,
              scheduler_timeout: float = 5.0) -> pd.DataFrame:
    """Run the units not yet finished in ``rundir`` and return every unit's result rows.

    Parameters
    ----------
    units : sequence of Unit
    data : CVData
    rundir : RunDir
        Finished units are read from it and new ones written to it as they finish.
    jobs : int
        Local worker processes (ignored when ``scheduler`` is given).
    scheduler : str, optional
        Address of a Dask distributed scheduler, e.g. ``"tcp://10.0.0.5:8786"``.
    on_unit : callable, optional
        Called with each newly finished unit's result (after it is written).
    """
    from tqdm.auto import tqdm

    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"Invalid value for 'jobs': expected an integer >= 1, got {jobs!r}.")
    todo = [u for u in units if not rundir.has_unit(u.id)]
    if len(todo) < len(units):
        logger.info("Resuming: %d of %d units already finished in %s",
                    len(units) - len(todo), len(units), rundir.path)
    bar = tqdm(total=len(units), initial=len(units) - len(todo), disable=not progress,
               desc="cross-validation", unit="unit")
    try:
        for result in _execute(todo, data, str(rundir.checkpoints), jobs, scheduler,
                               scheduler_timeout):
            rundir.write_unit(Unit(**result["unit"]).id, result)
            bar.update(1)
            if on_unit is not None:
                on_unit(result)
    finally:
        bar.close()
    return rundir.results([u.id for u in units])


def timing_table(rundir: RunDir, unit_ids: Iterable[str], workers: int) -> pd.DataFrame:
    """Training seconds per (dataset, protocol, model), like the reference's CV timing table."""
    rows = []
    for uid in unit_ids:
        unit = rundir.read_unit(uid)
        rows.append({"dataset": unit["unit"]["dataset"], "protocol": unit["unit"]["protocol"],
                     "model": unit["unit"]["model"],
                     "seconds": float(unit.get("fit_seconds", unit.get("wall_seconds", 0.0)))})
    if not rows:
        return pd.DataFrame(columns=["dataset", "protocol", "model", "workers", "seconds",
                                     "hours"])
    grouped = pd.DataFrame(rows).groupby(["dataset", "protocol", "model"], sort=False,
                                         as_index=False)
    df = grouped["seconds"].sum()
    df.insert(3, "workers", int(workers))
    df["hours"] = df["seconds"] / 3600.0
    return df

