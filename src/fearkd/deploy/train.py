"""``fearkd train``: an experiment's recipe trained on all its subjects, written as a bundle.

:func:`train_final` extracts the experiment's features of every subject
(:func:`fearkd.experiment.prepare_data`), runs the stages the chosen model needs (the backbone,
the teacher, the distilled student ... as :func:`fearkd.methods.stage_list` lists them) with
every labelled window on the training side and none on the test side, early stopping on the
inner, trial-grouped validation split of :func:`fearkd.training.fit`, and returns a
:class:`~fearkd.deploy.bundle.Bundle`. With ``[training] calibrate = "temperature"`` the bundled
stage's temperature, fitted on that same validation split, goes into the bundle (manifest
``temperature_scaling``, ONNX initialiser ``temperature``).

Deployable features. The ``filter`` band-power method filters whole trials, which a graph fed
one window cannot reproduce, so when the student's recipe has EEG channels the experiment's
``[features] method`` is replaced by ``periodogram`` (the same brick-wall band power computed
on each window alone) and the bundle is trained on features computed that way; the manifest's
``recipe.method`` says so. A recipe with physiological descriptors, or whose channels have
different sampling rates, is exported from features (``input_kind = "features"``).
"""

from __future__ import annotations

import hashlib
import logging

import numpy as np

from ..config import ExperimentConfig, config_to_dict
from ..errors import ConfigError
from .bundle import Bundle, build_bundle
from .graph import WindowSpec

__all__ = ["train_final", "deploy_config", "student_keys", "describe_channels"]

logger = logging.getLogger(__name__)

#: Units by modality where a reader gives none (what fearkd's readers deliver).
_UNITS = {"eeg": "uV", "eog": "uV", "emg": "uV", "ecg": "mV", "gsr": "as recorded",
          "resp": "as recorded", "ppg": "as recorded", "temp": "degC", "acc": "g", "hr": "bpm",
          "spo2": "%", "misc": "as recorded"}


def student_keys(settings) -> list[str]:
    """Keys of the stages ``--student`` may pick: every fear stage, students first."""
    from ..methods import stage_list

    stages = [s for s in stage_list(settings) if s.task == "fear"]
    return [s.key for s in stages if s.name == "student"] + \
        [s.key for s in stages if s.name != "student"]


def _closure(stages, key: str) -> list:
    by_key = {s.key: s for s in stages}
    need, todo = set(), [key]
    while todo:
        k = todo.pop()
        if k in need:
            continue
        need.add(k)
        st = by_key[k]
        for dep in (st.init_from, st.teacher,
                    st.scaler[5:] if st.scaler.startswith("from:") else None):
            if dep:
                todo.append(dep)
    return [s for s in stages if s.key in need]


def describe_channels(trial, plan, units=None) -> list[dict]:
    """One dict per input channel: name, modality, unit, sfreq, features."""
    units = units or {}
    out = []
    for name, kind in [(c, "band_power") for c in plan.eeg] + \
            [(c, "mean_logmean") for c in getattr(plan, "levels", ())] + \
            [(c, "mean_var") for c in plan.peripheral if c not in plan.eeg]:
        modality = trial.channel_modality(name)
        out.append({"name": name, "modality": modality,
                    "unit": units.get(name, _UNITS.get(modality, "as recorded")),
                    "sfreq": float(trial.signals[modality].sfreq), "features": kind})
    return out


def _window_spec(plan, channels, window_s: float, baseline: str) -> tuple[WindowSpec | None, str]:
    """The raw-input spec, or None and the reason the graph takes features."""
    r = plan.recipe
    if plan.descriptor_modalities:
        return None, "its physiological descriptors cannot be graph nodes"
    if getattr(plan, "levels", ()):
        return None, "its held-value channels (levels) are not graph nodes"
    if plan.eeg and r.method != "periodogram":
        return None, f"band-power method {r.method!r} needs the whole trial"
    if plan.eeg and baseline == "subtract":
        return None, "baseline='subtract' needs the pre-stimulus segment"
    rates = sorted({c["sfreq"] for c in channels})
    if len(rates) != 1:
        return None, f"its channels have several sampling rates {rates}"
    sfreq = rates[0]
    return WindowSpec(tuple(c["name"] for c in channels), len(plan.eeg), sfreq,
                      int(round(window_s * sfreq)), r.bands, r.log, r.relative,
                      r.log_variance), ""


def deploy_config(cfg: ExperimentConfig) -> ExperimentConfig:
    """``cfg`` with the features a bundle computes: per-window band power (``periodogram``)
    when the student has EEG, and ``normalize = "global"`` (the training set's normaliser,
    which the graph holds until ``fearkd calibrate`` replaces it), so that a CV of this
    configuration (``fearkd train --with-cv``) measures what the bundle does."""
    from ..features.presets import get_preset

    if get_preset(cfg.features.student).eeg != () and cfg.features.method != "periodogram":
        logger.info("Band power per window ('periodogram') instead of %r: a deployed graph "
                    "sees one window at a time.", cfg.features.method)
        cfg = cfg.replace(features={"method": "periodogram"})
    if cfg.features.normalize != "global":
        logger.info("normalize = 'global' instead of %r: the bundle holds the training set's "
                    "normaliser (per-user: `fearkd calibrate`).", cfg.features.normalize)
        cfg = cfg.replace(features={"normalize": "global"})
    return cfg


def fingerprint(fs) -> str:
    """SHA-256 of the training features and their (subject, trial, window, label) rows."""
    h = hashlib.sha256(np.ascontiguousarray(fs.X).tobytes())
    meta = fs.metadata
    for col in ("subject", "trial", "window", "y_fear"):
        h.update(meta[col].astype(str).str.cat(sep=",").encode())
    return h.hexdigest()


def train_final(cfg: ExperimentConfig, *, student: str | None = None, data_path=None,
                synthetic: bool | None = None, card: str | None = None,
                subjects=None, cache_dir=None, progress: bool = False) -> Bundle:
    """Train ``cfg``'s recipe on every subject and return the bundle of one fear model.

    Parameters
    ----------
    cfg : ExperimentConfig
    student : str, optional
        Stage key of the model to bundle (``"method1/student/soft"``, ``"method1/teacher/-"``);
        default the first student stage of the experiment (:func:`student_keys`).
    data_path : path, optional
        Overrides ``[dataset] path``.
    synthetic : bool or None
        Whether the data are synthetic (written by ``fearkd synth``); None: not declared.
    card : str, optional
        Model card text (:func:`fearkd.deploy.card.model_card`).
    subjects : sequence of str, optional
        Train on these subjects only (a fold's training subjects, :mod:`fearkd.deploy.online`);
        default every subject.
    cache_dir : path, optional
        Per-subject feature cache (:mod:`fearkd.features.cache`).
    progress : bool

    Returns
    -------
    Bundle
    """
    from ..experiment import _open, prepare_data
    from ..features.presets import get_preset
    from ..methods import PipelineSettings, stage_list
    from ..stages import Fold, StageContext, run_stage

    cfg = deploy_config(cfg)
    settings = PipelineSettings.from_config(cfg, progress=progress)
    stages = stage_list(settings)
    keys = student_keys(settings)
    if not keys:
        raise ConfigError(f"{cfg.source}: [methods] run is empty: no fear model to train; list "
                          f"a method (e.g. run = [\"method1\"]).")
    key = student or keys[0]
    if key not in keys:
        raise ConfigError(f"--student {key!r}: expected one of {keys} (stage keys of "
                          f"{cfg.source or 'the experiment'}).")
    data = prepare_data(cfg, data_path=data_path, cache_dir=cache_dir, progress=progress)
    fs = data.featureset
    if subjects is not None:
        keep = {str(s) for s in subjects}
        have = set(fs.metadata["subject"].astype(str))
        if not keep <= have:
            raise ConfigError(f"train_final: subject(s) {sorted(keep - have)[:10]} are not in "
                              f"the data, which hold {sorted(have)[:10]}.")
        fs = fs.select_rows(fs.metadata["subject"].astype(str).isin(keep).to_numpy())
    labelled = np.flatnonzero(fs.metadata["y_fear"].to_numpy() >= 0)
    # every column: the bundle's graph computes them all
    fold = Fold(fs, data.student_names, np.arange(len(fs)), np.array([], dtype=np.int64), None,
                drop_constant=False)
    n_classes = {"fear": len(data.class_names),
                 "source": int(data.n_source_classes or (fold.y["source"].max() + 1))}
    ctx = StageContext(fold=fold, settings=settings, backbone=cfg.models.backbones[0],
                       n_classes=n_classes, class_names=tuple(data.class_names), seed=0,
                       out={"rows": [], "histories": {}, "confusion": {}, "fit_seconds": 0.0})
    for stage in _closure(stages, key):
        logger.info("Training %s on all %d subjects", stage.key, fs.metadata["subject"].nunique())
        run_stage(stage, ctx)
    model, scaler, inputs = ctx.models[key]
    names = list(data.student_names if inputs == "student" else fs.feature_names)
    preset = cfg.features.student if inputs == "student" else cfg.features.teacher
    # the recipe the training features were extracted with (prepare_data applies
    # [features] log the same way)
    recipe = get_preset(preset, method=cfg.features.method)
    if cfg.features.log is not None:
        recipe = recipe.with_log(cfg.features.log)
    recordings = _open(cfg, data_path)
    trial = recordings.load(recordings.subjects[0]).trials[0]
    plan = recipe.plan(trial)
    channels = describe_channels(trial, plan, recordings.description.get("units"))
    spec, why = _window_spec(plan, channels, cfg.features.window, cfg.features.baseline)
    if spec is None:
        logger.info("The ONNX graph takes features, not samples: %s.", why)
    meta = fs.metadata
    y = meta["y_fear"].to_numpy()
    resolved = config_to_dict(cfg)
    extra = {
        "stage": key,
        "experiment": {"name": cfg.name, "source": str(cfg.source)},
        "windowing": {"window_s": cfg.features.window, "step_s": cfg.features.step,
                      "baseline": cfg.features.baseline},
        "features_input_reason": why or None,
        "labels": {"dataset": data.dataset, **resolved["labels"],
                   "classes": {str(i): n for i, n in enumerate(data.class_names)}},
        "recipe_hash": hashlib.sha256(repr(sorted(recipe.to_dict().items())).encode())
        .hexdigest(),
        "training_data": {
            "kind": cfg.dataset.kind, "dataset": data.dataset, "synthetic": synthetic,
            "subjects": sorted(map(str, meta["subject"].unique())),
            "n_windows": int(len(labelled)),
            "windows_per_class": {data.class_names[c]: int((y == c).sum())
                                  for c in range(len(data.class_names))},
            "fingerprint": fingerprint(fs),
        },
        "config": resolved,
    }
    recipe_dict = {**recipe.to_dict(), "window_s": cfg.features.window,
                   "step_s": cfg.features.step, "normalisation": "standard (training windows)"}
    mean = None if scaler is None else scaler.mean_
    scale = None if scaler is None else scaler.scale_
    temperature = None
    if settings.fit.calibrate == "temperature":
        temperature = {"temperature": ctx.temperatures[key], "method": "temperature",
                       "fitted_on": "inner validation split of the training windows "
                                    "([training] val_fraction, trial-grouped)"}
    return build_bundle(model, feature_names=names, class_names=data.class_names, mean=mean,
                        scale=scale, spec=spec, recipe=recipe_dict, channels=channels,
                        extra=extra, card=card, temperature=temperature)
