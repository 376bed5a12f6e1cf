"""Recordings -> FeatureSet: windows, features and labels, one subject at a time.

:func:`extract_features` runs a recipe (:mod:`~fearkd.features.presets`) over every subject of a
:class:`~fearkd.recordings.Recordings`. Each subject is loaded, windowed and reduced to
features by one worker (``n_jobs`` processes through joblib), so at most ``n_jobs`` subjects'
raw signals are in memory at once; results can be cached on disk per subject
(:mod:`~fearkd.features.cache`). Labels are attached afterwards from the trials' ratings, so
changing the rule table never invalidates the cache.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from tqdm.auto import tqdm

from .. import labels
from ..errors import ConfigError
from ..recordings import Recordings, Subject, Trial
from . import cache
from .featureset import FeatureSet
from .physio import sliding_descriptors, sliding_stats
from .physio_nk import trial_physio
from .presets import VAR_LOG_FLOOR, Plan, Recipe, get_preset, level_features
from .spectral import sliding_band_power
from .windows import Windowing, get_windowing, make_windows, window_samples

__all__ = ["CALIBRATION_ONLY", "extract_features", "subject_features", "trial_features"]

logger = logging.getLogger(__name__)
BASELINE_POLICIES = ("drop", "subtract", "keep")
BASELINE_MODES = ("subtract", "divide")
_LABELLED_DATASETS = ("deap", "ascertain", "wesad")
_INFO_TRIALS = "trials_with_info_labels"
#: Metadata column (``calibration_baseline`` only): a pre-stimulus window cut for the
#: per-subject calibration alone, unlabelled for every task.
CALIBRATION_ONLY = "calibration_only"


def _choice(value, name: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ValueError(
            f"Invalid value for {name!r}: expected one of {', '.join(map(repr, choices))}, "
            f"got {value!r}."
        )
    return value


def trial_features(
    trial: Trial,
    plan: Plan,
    windowing: Windowing,
    *,
    baseline: str = "drop",
    baseline_mode: str = "subtract",
    workspace: dict | None = None,
    calibration_baseline: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Features of every window of one trial.

    Parameters
    ----------
    trial : Trial
    plan : Plan
        ``recipe.plan(trial)``.
    windowing : Windowing
    baseline : {"drop", "subtract", "keep"}
        ``"drop"`` and ``"subtract"``: windows start at the stimulus onset (``trial.onset``);
        ``"subtract"`` also removes the band power of the pre-stimulus segment ``[0, onset)``
        from every window's band-power features (peripheral features are not
        baseline-corrected). ``"keep"``: windows start at the trial's first sample, the
        pre-stimulus baseline cut like the rest (the reference notebooks' windowing).
    baseline_mode : {"subtract", "divide"}
    workspace : dict, optional
        FFT buffers reused between trials (pass one dict for all trials of a subject).
    calibration_baseline : bool
        With ``"drop"`` or ``"subtract"``, also cut windows over the pre-stimulus baseline
        ``[0, onset)`` (first, in time order) for ``normalize = "calibration:baseline"``; the
        caller keeps them out of training and testing.

    Returns
    -------
    X : ndarray of float32, shape (n_windows, n_features)
    t_start, t_stop : ndarray, shape (n_windows,)
        Seconds from the trial's first sample.
    """
    recipe = plan.recipe
    modality = {n: m for m in trial.modalities for n in trial.signals[m].ch_names}
    used = ({modality[c] for c in (*plan.eeg, *plan.levels, *plan.peripheral)}
            | set(plan.descriptor_modalities) | set(plan.physio_modalities))
    signals = [trial.signals[m] for m in trial.modalities if m in used]
    n_times: dict[float, int] = {}
    for sig in signals:
        n_times[sig.sfreq] = min(n_times.get(sig.sfreq, sig.n_times), sig.n_times)
    duration = min(n / sf for sf, n in n_times.items())
    # "keep": windows from the first sample, pre-stimulus baseline included (the notebooks)
    t_start, t_stop = make_windows(duration, windowing.length, windowing.step,
                                   tmin=0.0 if baseline == "keep" else trial.onset,
                                   n_times=n_times)
    if calibration_baseline and baseline != "keep" and trial.onset > 0:
        _check_baseline_part(trial, windowing)
        pre = make_windows(trial.onset, windowing.length, windowing.step, n_times=n_times)
        t_start, t_stop = np.concatenate([pre[0], t_start]), np.concatenate([pre[1], t_stop])
    blocks = []
    if plan.eeg:
        sig = trial.signals["eeg"]
        starts, n = window_samples(t_start, windowing.length, sig.sfreq)
        n_base = 0
        if baseline == "subtract":
            n_base = int(round(trial.onset * sig.sfreq))
            if n_base < 2:
                raise ValueError(
                    f"baseline='subtract' needs a pre-stimulus segment, but {trial.dataset} "
                    f"subject {trial.subject} trial {trial.trial} has onset {trial.onset:g} s; "
                    f"use baseline='drop'."
                )
        x = sig.data if plan.eeg == sig.ch_names else sig.pick(plan.eeg).data
        power = sliding_band_power(
            x, sig.sfreq, starts, n, recipe.bands,
            method=recipe.method, filter_design=recipe.filter_design, log=recipe.log,
            relative=recipe.relative, nperseg=recipe.nperseg, baseline_samples=n_base,
            baseline_mode=baseline_mode, workspace=workspace, check_finite=False,
        )
        blocks.append(power.reshape(len(t_start), -1))
    for c in plan.levels:
        # held values (NeuroSky's once-a-second rows): window mean and its log1p
        sig = trial.signals[modality[c]]
        starts, n = window_samples(t_start, windowing.length, sig.sfreq)
        mean = sliding_stats(sig.data[sig.ch_names.index(c)][None], starts, n)[:, 0, 0]
        blocks.append(level_features(mean))
    if plan.peripheral:
        # One pass per sampling rate over every peripheral channel at that rate.
        by_rate: dict[float, list[str]] = {}
        for c in plan.peripheral:
            by_rate.setdefault(trial.signals[modality[c]].sfreq, []).append(c)
        by_name = {}
        for sfreq, chans in by_rate.items():
            rows = []
            for c in chans:
                sig = trial.signals[modality[c]]
                rows.append(sig.data[sig.ch_names.index(c)])
            rows = np.stack(rows)
            starts, n = window_samples(t_start, windowing.length, sfreq)
            stats = sliding_stats(rows, starts, n)
            if recipe.log_variance:
                stats[..., 1] = np.log(np.maximum(stats[..., 1], VAR_LOG_FLOOR))
            by_name.update({c: stats[:, i] for i, c in enumerate(chans)})
        blocks.append(np.concatenate([by_name[c] for c in plan.peripheral], axis=1))
    for m in plan.descriptor_modalities:
        sig = trial.signals[m]
        starts, n = window_samples(t_start, windowing.length, sig.sfreq)
        blocks.append(sliding_descriptors(sig.data, sig.sfreq, m, starts, n,
                                          scr_prominence=recipe.scr_prominence))
    if plan.physio_modalities:
        n_physio = len(plan.feature_names) - sum(b.shape[1] for b in blocks)
        blocks.append(trial_physio(trial, plan.physio_modalities, t_start, windowing.length,
                                   plan.feature_names[len(plan.feature_names) - n_physio:]))
    X = np.concatenate(blocks, axis=1).astype(np.float32)
    if X.shape[1] != len(plan.feature_names):
        raise RuntimeError(
            f"Recipe {recipe.name!r} produced {X.shape[1]} features for "
            f"{len(plan.feature_names)} names."
        )
    # A NaN or inf sample makes its channel's features non-finite: checking the (small)
    # output spares a pass over the raw data; the inputs are searched only on failure.
    if not np.isfinite(X).all():
        for sig in signals:
            finite = np.isfinite(sig.data).all(axis=1)
            if not finite.all():
                bad = [sig.ch_names[i] for i in np.flatnonzero(~finite)]
                raise ValueError(
                    f"Non-finite values (NaN or inf) in {trial.dataset} subject "
                    f"{trial.subject} trial {trial.trial}, channel(s) {bad!r}; drop such trials "
                    f"with [dataset] nan_policy = \"drop-trial\" (experiment file) or "
                    f"--nan-samples drop-trial (fearkd info / labels)."
                )
    return X, t_start, t_stop


def _check_baseline_part(trial: Trial, windowing: Windowing) -> None:
    """The pre-stimulus baseline holds at least one window, or a one-line ConfigError."""
    if trial.onset + 1e-9 < windowing.length:
        raise ConfigError(
            f"[features] normalize = \"calibration:baseline\": the pre-stimulus baseline of "
            f"{trial.dataset} subject {trial.subject} trial {trial.trial} is {trial.onset:g} s, "
            f"shorter than one window ({windowing.length:g} s); expected a window of at most "
            f"{trial.onset:g} s: set [features] window = {trial.onset:g} (or less), or "
            f"normalize = \"subject\".")


def subject_features(
    subject: Subject,
    recipe: Recipe,
    windowing: Windowing,
    *,
    baseline: str = "drop",
    baseline_mode: str = "subtract",
    calibration_baseline: bool = False,
    riemann: bool = False,
) -> FeatureSet | None:
    """Features of every window of every trial of one subject (None if it has no trial).

    ``y_fear``/``y_source`` are the trial's ``info["y_fear"]``/``info["y_source"]`` where a
    reader gave them and -1 elsewhere; :func:`extract_features` fills in the rest from ratings.
    When the reader names stages (``info["stage"]``) the metadata also has a ``stage`` column.
    With ``calibration_baseline`` (``normalize = "calibration:baseline"``) the windows that end
    by a trial's stimulus onset get stage ``"baseline"`` (with ``baseline = "drop"`` or
    ``"subtract"`` they are cut for this alone, and :data:`CALIBRATION_ONLY` marks them), the
    other windows of trials without a reader stage ``"stimulus"``.
    ``riemann``: append the recipe's EEG channels' band covariances re-centred on this
    subject's Riemannian mean, in the tangent space (:mod:`fearkd.features.riemann`; the
    subject's own windows, no labels); nothing is appended when the recipe has no EEG.
    """
    xs, t0s, t1s, trial_ids, info_trials = [], [], [], [], []
    ratings: dict[str, list] = {}
    y_fear, y_source, stages, window_stages = [], [], [], []
    names = None
    workspace: dict = {}
    eeg_windows: list[np.ndarray] = []
    eeg_rate = 0.0
    for k, trial in enumerate(subject.trials):
        plan = recipe.plan(trial, windowing.length)
        if names is None:
            names = plan.feature_names
        elif plan.feature_names != names:
            raise ValueError(
                f"{trial.dataset} subject {trial.subject} trial {trial.trial} gives "
                f"{len(plan.feature_names)} features that differ from the subject's first "
                f"trial's {len(names)}: its channels differ. Name the channels in the recipe."
            )
        X, t0, t1 = trial_features(trial, plan, windowing, baseline=baseline,
                                   baseline_mode=baseline_mode, workspace=workspace,
                                   calibration_baseline=calibration_baseline)
        if calibration_baseline:
            reader_stage = str(trial.info.get("stage", "")) or "stimulus"
            window_stages.append(np.where(t1 <= trial.onset + 1e-9, "baseline", reader_stage))
        if riemann and plan.eeg:
            sig = trial.signals["eeg"]
            x = sig.data if plan.eeg == sig.ch_names else sig.pick(plan.eeg).data
            starts, n = window_samples(t0, windowing.length, sig.sfreq)
            eeg_windows.append(np.stack([x[:, a:a + n] for a in starts]))
            eeg_rate = sig.sfreq
        has_info = "y_fear" in trial.info
        if has_info:
            info_trials.append(trial.trial)
        xs.append(X)
        t0s.append(t0)
        t1s.append(t1)
        trial_ids.append(np.full(len(t0), trial.trial, dtype=np.int64))
        for key in trial.ratings:
            ratings.setdefault(key, [np.nan] * k)
        for key in ratings:
            ratings[key].append(float(trial.ratings.get(key, np.nan)))
        stages.append(str(trial.info.get("stage", "")))
        y_fear.append(int(trial.info["y_fear"]) if has_info else -1)
        y_source.append(int(trial.info.get("y_source", -1)) if has_info else -1)
    if names is None:
        return None
    if eeg_windows:
        from .riemann import riemann_feature_names, riemann_features

        x = np.concatenate(eeg_windows)
        tangent = riemann_features(x, eeg_rate, recipe.bands, np.zeros(len(x)))
        splits = np.cumsum([len(w) for w in eeg_windows])[:-1]
        xs = [np.hstack([a, b]) for a, b in zip(xs, np.split(tangent, splits), strict=True)]
        names = [*names, *riemann_feature_names(recipe.plan(subject.trials[0],
                                                            windowing.length).eeg,
                                                recipe.bands)]
    counts = np.array([len(t) for t in t0s])
    metadata = pd.DataFrame({
        "dataset": subject.dataset if not subject.trials else subject.trials[0].dataset,
        "subject": subject.subject,
        "trial": np.concatenate(trial_ids),
        "window": np.concatenate([np.arange(c) for c in counts]),
        "t_start": np.concatenate(t0s),
        "t_stop": np.concatenate(t1s),
        **{key: np.repeat(np.asarray(v, dtype=np.float64), counts)
           for key, v in ratings.items()},
        "y_fear": np.repeat(np.asarray(y_fear, dtype=np.int64), counts),
        "y_source": np.repeat(np.asarray(y_source, dtype=np.int64), counts),
    })
    sessions = [str(t.info.get("session", "")) for t in subject.trials]
    if any(sessions):  # several recordings per subject (generic reader)
        metadata["session"] = np.repeat(np.asarray(sessions, dtype=str), counts)
    if calibration_baseline:
        metadata["stage"] = np.concatenate(window_stages).astype(str)
        metadata[CALIBRATION_ONLY] = ((metadata["stage"] == "baseline").to_numpy()
                                      & (baseline != "keep"))
    elif any(stages):
        # named stages (generic reader): what `normalize = "calibration:<stage>"` selects
        metadata["stage"] = np.repeat(np.asarray(stages, dtype=str), counts)
    return FeatureSet(np.concatenate(xs), names, metadata, {_INFO_TRIALS: info_trials})


def _subject_job(recordings: Recordings, sid: str, recipe: Recipe, windowing: Windowing,
                 baseline: str, baseline_mode: str, calibration_baseline: bool, riemann: bool,
                 path: Path | None):
    """One worker's unit: (FeatureSet or None, new load-report records, came from cache)."""
    if path is not None:
        cached = cache.load_entry(path)
        if cached is not None:
            return cached, ([], [], []), True
    n_skipped, n_repaired = len(recordings.report.skipped), len(recordings.report.repaired)
    n_flagged = len(recordings.report.flagged)
    fs = subject_features(recordings.load(sid), recipe, windowing, baseline=baseline,
                          baseline_mode=baseline_mode, calibration_baseline=calibration_baseline,
                          riemann=riemann)
    delta = (recordings.report.skipped[n_skipped:], recordings.report.repaired[n_repaired:],
             recordings.report.flagged[n_flagged:])
    if fs is not None and path is not None:
        cache.store_entry(fs, path)
    return fs, delta, False


def extract_features(
    recordings: Recordings,
    preset: str | Recipe,
    *,
    window: Windowing | str | float | None = None,
    step: float | None = None,
    baseline: str = "drop",
    baseline_mode: str = "subtract",
    method: str | None = None,
    log: bool | None = None,
    rules=None,
    source=None,
    ambiguous: str = "drop",
    nan_policy: str = "raise",
    n_jobs: int = 1,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
    return_labels: bool = False,
    calibration_baseline: bool = False,
    riemann: bool = False,
) -> FeatureSet | tuple[FeatureSet, labels.LabeledTrials]:
    """Windows, features and labels of every subject of ``recordings``.

    Labels are made once per trial (:func:`fearkd.labels.label_trials`) and joined to the
    windows on (subject, trial).

    Parameters
    ----------
    recordings : Recordings
        Loaded one subject at a time (``recordings.load(subject_id)`` in each worker).
    preset : str or Recipe
        A preset name (:func:`~fearkd.features.presets.list_presets`) or a recipe.
    window : Windowing, str, float or None
        A windowing preset name (``"default"``: 4 s every 2 s; ``"seed-legacy"``: 2 s every
        0.125 s), a window length in seconds, or None for ``"default"``.
    step : float, optional
        Step in seconds (overrides the windowing preset's).
    baseline : {"drop", "subtract", "keep"}
        Windows start at each trial's stimulus onset (``"keep"``: at its first sample);
        ``"subtract"`` also corrects band power by the pre-stimulus segment (see
        :func:`trial_features`).
    baseline_mode : {"subtract", "divide"}
        How the baseline's value is removed.
    method : {"filter", "welch", "de"}, optional
        Overrides the recipe's band-power method.
    log : bool, optional
        Log band power and variance features with a floor (:meth:`Recipe.with_log`, families
        in :mod:`~fearkd.features.presets`); None keeps the recipe's own settings.
    rules : str, path, mapping or RuleTable, optional
        Fear rule table for :func:`fearkd.labels.assign_fear`; default the dataset's built-in
        table for ``deap``/``ascertain``, none otherwise (``y_fear = -1`` unless a reader put
        ``info["y_fear"]`` in the trials, which is used as is).
    source : str, path, mapping or SourceTask, optional
        Source task for :func:`fearkd.labels.load_source_task`; same defaults as ``rules``.
    ambiguous, nan_policy : str
        Passed to :func:`fearkd.labels.assign_fear` (``nan_policy`` also to the source task).
    n_jobs : int
        Worker processes (joblib); 1 runs in this process.
    cache_dir : path, optional
        Folder for the per-subject cache (:mod:`~fearkd.features.cache`); None: no cache.
    progress : bool
        Show a progress bar (tqdm) over subjects.
    return_labels : bool
        Also return the per-trial labels and their report.
    calibration_baseline : bool
        For ``normalize = "calibration:baseline"``: a ``stage`` column with ``"baseline"`` for
        the windows over each trial's pre-stimulus baseline (cut for this alone under
        ``"drop"``/``"subtract"``, and then unlabelled for every task, so no model trains or is
        scored on them); a baseline shorter than one window is a
        :class:`~fearkd.errors.ConfigError` naming ``[features] window``.
    riemann : bool
        Append per-subject re-centred EEG covariance features (``[features] riemann``; see
        :func:`subject_features`): ``n_bands * n_eeg (n_eeg + 1) / 2`` columns named
        ``eeg:<ch_i>-<ch_j>:riemann-<band>``.

    Returns
    -------
    FeatureSet
        Every window of every trial, labelled or not; ``info`` holds the recipe, windowing,
        baseline settings and fearkd version.
    LabeledTrials
        Only with ``return_labels=True``: one label per trial, the label report, the class
        names and the source task's class count.
    """
    if not isinstance(recordings, Recordings):
        raise TypeError(
            f"'recordings' must be a fearkd Recordings (from a reader such as load_deap), got "
            f"{type(recordings).__name__}."
        )
    if len(recordings) == 0:
        raise ValueError("'recordings' holds no subject; nothing to extract.")
    recipe = get_preset(preset) if method is None else get_preset(preset, method=method)
    if log is not None:
        recipe = recipe.with_log(log)
    windowing = get_windowing(window, step)
    _choice(baseline, "baseline", BASELINE_POLICIES)
    _choice(baseline_mode, "baseline_mode", BASELINE_MODES)
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, int) or n_jobs == 0:
        raise ValueError(f"'n_jobs' must be a non-zero integer (-1 for all cores), got {n_jobs!r}.")
    settings = {"recipe": recipe.to_dict(), "windowing": windowing.to_dict(),
                "baseline": baseline,
                "baseline_mode": baseline_mode if baseline == "subtract" else None}
    if calibration_baseline:  # only then, so that earlier cache entries stay valid
        settings["calibration_baseline"] = True
    if riemann:  # only then: the cache keys of every other extraction stay as they were
        settings["riemann"] = True
    paths: dict[str, Path | None] = dict.fromkeys(recordings.subjects)
    if cache_dir is not None:
        Path(cache_dir).mkdir(parents=True, exist_ok=True)
        fingerprint = cache.input_fingerprint(recordings)
        paths = {s: cache.cache_path(cache_dir, recordings.dataset, s,
                                     cache.cache_key(fingerprint, s, settings))
                 for s in recordings.subjects}
    args = (recipe, windowing, baseline, baseline_mode, bool(calibration_baseline),
            bool(riemann))
    bar = tqdm(total=len(recordings), desc=f"features {recipe.name}", unit="subject",
               disable=not progress)
    results = []
    try:
        if n_jobs == 1:
            for s in recordings.subjects:
                results.append(_subject_job(recordings, s, *args, paths[s]))
                bar.update()
        else:
            jobs = Parallel(n_jobs=n_jobs, return_as="generator")(
                delayed(_subject_job)(recordings, s, *args, paths[s])
                for s in recordings.subjects
            )
            for fs, (skipped, repaired, flagged), hit in jobs:
                # Workers load into their own copy of the report: merge it back.
                recordings.report.skipped.extend(skipped)
                recordings.report.repaired.extend(repaired)
                recordings.report.flagged.extend(flagged)
                results.append((fs, None, hit))
                bar.update()
    finally:
        bar.close()
    hits = sum(hit for _, _, hit in results)
    if hits:
        logger.info("Feature cache: %d of %d subject(s) loaded from %s", hits, len(results),
                    cache_dir)
    sets = [fs for fs, _, _ in results if fs is not None]
    if not sets:
        raise ValueError(f"No trial in {recordings!r}: every subject came back empty.")
    info_trials = {(fs.metadata["subject"].iat[0], t) for fs in sets
                   for t in fs.info.get(_INFO_TRIALS, [])}
    features = FeatureSet.concat(sets)
    if recipe.physio != ():
        features = drop_constant(features, recipe.name)
    if rules is None:  # a generic description's own rule table
        rules = recordings.description.get("rules")
    labeled = _label(features, recordings.dataset, info_trials, rules, source, ambiguous,
                     nan_policy, recordings.description.get("classes"))
    if CALIBRATION_ONLY in features.metadata.columns:
        only = features.metadata[CALIBRATION_ONLY].to_numpy(bool)
        features.metadata.loc[only, ["y_fear", "y_source"]] = -1
    features.info = {**settings, "dataset": recordings.dataset,
                     "fearkd_version": cache.fearkd_version(),
                     "rules": _describe(rules, recordings.dataset),
                     "source": _describe(source, recordings.dataset)}
    return (features, labeled) if return_labels else features


def drop_constant(features: FeatureSet, name: str) -> FeatureSet:
    """Drop the columns that are constant over every window, with one warning naming them.

    A constant column (a feature every window gives the same value, e.g. no SCR anywhere)
    carries no information and makes a per-subject z-score divide by zero.
    """
    X = features.X
    constant = np.all(X == X[:1], axis=0)
    if not constant.any():
        return features
    dropped = [n for n, c in zip(features.feature_names, constant, strict=True) if c]
    logger.warning("Feature recipe %r: %d feature(s) constant over all %d windows, dropped: %s",
                   name, len(dropped), len(X), dropped)
    if constant.all():
        raise ValueError(f"Feature recipe {name!r}: every feature is constant over the "
                         f"{len(X)} windows ({dropped!r}); check the signals or the window.")
    return features.select_columns([n for n in features.feature_names if n not in dropped])


def _describe(spec, dataset: str) -> str | None:
    if spec is None:
        return dataset if dataset in _LABELLED_DATASETS else None
    return spec if isinstance(spec, str) else repr(spec)



def _label(features: FeatureSet, dataset: str, info_trials: set, rules, source,
           ambiguous: str, nan_policy: str, classes) -> labels.LabeledTrials:
    """Label every trial once (:func:`fearkd.labels.label_trials`) and join it to the windows."""
    if rules is None and dataset in _LABELLED_DATASETS:
        rules = dataset
    if source is None and dataset in _LABELLED_DATASETS:
        source = dataset
    meta = features.metadata
    trials = meta.drop_duplicates(["subject", "trial"]).reset_index(drop=True)
    given = np.array([k in info_trials for k in zip(trials["subject"], trials["trial"],
                                                    strict=True)], dtype=bool)
    labeled = labels.label_trials(trials, rules, source, ambiguous=ambiguous,
                                  nan_policy=nan_policy, given=given, classes=classes)
    joined = labeled.join(meta)
    for column in ("y_fear", "y_source"):
        meta[column] = joined[column].to_numpy()
    return labeled
