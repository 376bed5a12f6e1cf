"""``fearkd predict``: a bundle applied to every window of a dataset any fearkd reader opens.

:func:`adapt_recordings` matches the bundle's channels by name (after an optional
``channel_map`` of data name -> bundle name) and brings each to the rate the bundle needs:
a rate within a factor 2 is resampled with ``scipy.signal.resample_poly`` (one warning line),
refused with ``strict_rate``; a rate more than 2x off is refused. :func:`predict_recordings`
then cuts the bundle's windows, computes its features with the recipe the bundle was trained
with (:func:`fearkd.features.extract.extract_features`) and returns one row per window.
"""

from __future__ import annotations

import logging
from fractions import Fraction
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import scipy.signal

from ..errors import BundleError, UnknownChannelError
from ..recordings import Recordings, Signal, Subject, Trial

if TYPE_CHECKING:
    from .bundle import Bundle

__all__ = ["adapt_recordings", "bundle_featureset", "predict_recordings", "prediction_frame",
           "parse_channel_map", "score"]

logger = logging.getLogger(__name__)
MAX_RATE_RATIO = 2.0


def parse_channel_map(text: str | None) -> dict[str, str]:
    """``"A=B,C=D"`` -> ``{"A": "B", "C": "D"}`` (data channel -> bundle channel)."""
    if not text:
        return {}
    out = {}
    for item in text.split(","):
        if item.count("=") != 1 or not all(p.strip() for p in item.split("=")):
            raise ValueError(f"--channel-map: expected DATA=BUNDLE pairs separated by commas "
                             f"(e.g. 'GSR=EDA,Fpz=Fp1'), got {item!r} in {text!r}.")
        a, b = (p.strip() for p in item.split("="))
        out[a] = b
    return out


def _adapt_trial(trial: Trial, channels: list[dict], mapping: dict[str, str],
                 strict_rate: bool, warned: set) -> Trial:
    renamed: dict[str, tuple[np.ndarray, float, str]] = {}
    for sig in trial.signals.values():
        for i, name in enumerate(sig.ch_names):
            renamed[mapping.get(name, name)] = (sig.data[i], sig.sfreq, sig.modality)
    need = [c["name"] for c in channels]
    missing = [n for n in need if n not in renamed]
    if missing:
        raise UnknownChannelError(
            f"{trial.dataset} subject {trial.subject} lacks channel(s) {missing} that the "
            f"bundle needs; it needs {need} and the data have {list(renamed)}. Map names with "
            f"--channel-map DATA=BUNDLE (e.g. {next(iter(renamed), 'X')}={missing[0]}).")
    by_modality: dict[str, list] = {}
    for c in channels:
        row, rate, _ = renamed[c["name"]]
        want = float(c["sfreq"])
        if rate != want:
            ratio = max(rate / want, want / rate)
            where = f"{trial.dataset} channel {c['name']!r}"
            if ratio > MAX_RATE_RATIO:
                raise BundleError(
                    f"{where} is sampled at {rate:g} Hz but the bundle needs {want:g} Hz, more "
                    f"than {MAX_RATE_RATIO:g}x off; resample the recording to {want:g} Hz "
                    f"before `fearkd predict` or train a bundle at its rate.")
            if strict_rate:
                raise BundleError(f"{where} is sampled at {rate:g} Hz but the bundle needs "
                                  f"{want:g} Hz; drop --strict-rate to resample it.")
            frac = Fraction(want / rate).limit_denominator(1000)
            if (c["name"], rate) not in warned:
                warned.add((c["name"], rate))
                logger.warning("Resampling %s from %g Hz to %g Hz (resample_poly up=%d down=%d)",
                               where, rate, want, frac.numerator, frac.denominator)
            row = scipy.signal.resample_poly(row, frac.numerator, frac.denominator)
        by_modality.setdefault(c["modality"], []).append((c["name"], row, want))
    signals = {}
    for modality, rows in by_modality.items():
        n = min(len(r) for _, r, _ in rows)
        signals[modality] = Signal(np.stack([r[:n] for _, r, _ in rows]).astype(np.float64),
                                   rows[0][2], tuple(nm for nm, _, _ in rows), modality)
    return Trial(trial.dataset, trial.subject, trial.trial, signals, trial.ratings,
                 trial.onset, trial.info)


def adapt_recordings(recordings: Recordings, bundle: Bundle, *, channel_map=None,
                     strict_rate: bool = False) -> Recordings:
    """A lazy view of ``recordings`` with only the bundle's channels, at its rates."""
    mapping = dict(channel_map or {})
    channels = bundle.manifest["channels"]
    warned: set = set()

    def load(sid, report):
        subject = recordings.load(sid)
        return Subject(subject.dataset, subject.subject,
                       [_adapt_trial(t, channels, mapping, strict_rate, warned)
                        for t in subject.trials])

    return Recordings(recordings.dataset, recordings.subjects, load, recordings.description)


def bundle_featureset(bundle: Bundle, recordings: Recordings, *, channel_map=None,
                      strict_rate: bool = False, progress: bool = False):
    """The windows of ``recordings`` cut and described exactly as the bundle was trained.

    Returns
    -------
    FeatureSet
        Only the bundle's columns (:attr:`Bundle.feature_names`), with the metadata table
        (``subject``, ``trial``, ``t_start``, ``t_stop``, ``y_fear``...).
    """
    from ..features.extract import extract_features
    from ..features.presets import Recipe

    if not bundle.manifest["channels"]:
        raise BundleError("This bundle has no channel description (it was saved from features "
                          "by FearkdClassifier); compute its features and call "
                          "predict_proba_features().")
    m = bundle.manifest
    r = {k: v for k, v in m["recipe"].items() if k not in ("window_s", "step_s",
                                                            "normalisation")}
    r["bands"] = tuple(tuple(b) for b in r["bands"])
    recipe = Recipe(**r)
    adapted = adapt_recordings(recordings, bundle, channel_map=channel_map,
                               strict_rate=strict_rate)
    labels = m.get("labels", {})
    rules = labels.get("rules") if labels.get("rules") not in (None, "auto") else None
    fs = extract_features(adapted, recipe, window=float(m["windowing"]["window_s"]),
                          step=float(m["windowing"]["step_s"]),
                          baseline=m["windowing"]["baseline"], rules=rules,
                          ambiguous=labels.get("ambiguous", "drop"),
                          nan_policy=labels.get("nan_policy", "raise"), progress=progress)
    return fs.select_columns(bundle.feature_names)


def predict_recordings(bundle: Bundle, recordings: Recordings, *, channel_map=None,
                       strict_rate: bool = False, progress: bool = False) -> pd.DataFrame:
    """Predictions for every window of ``recordings``.

    Parameters
    ----------
    bundle : Bundle
    recordings : Recordings
    channel_map : dict of str to str, optional
        Data channel name -> the bundle's name for it.
    strict_rate : bool
        Refuse a sampling rate that differs from the bundle's instead of resampling.
    progress : bool

    Returns
    -------
    DataFrame
        One row per window: ``subject``, ``trial``, ``t_start``, ``t_stop`` (s),
        ``predicted`` (class name), ``p_<class>`` per class and ``y_true`` (class name, empty
        where the window is unlabelled). Per-user thresholds of a calibrated bundle apply.
    """
    fs = bundle_featureset(bundle, recordings, channel_map=channel_map,
                           strict_rate=strict_rate, progress=progress)
    proba = bundle.predict_proba_features(fs.X)
    return prediction_frame(fs.metadata, proba, bundle.class_names)


def prediction_frame(meta: pd.DataFrame, proba: np.ndarray, names) -> pd.DataFrame:
    """One row per window from a metadata table and its probabilities (see predict_recordings)."""
    out = pd.DataFrame({"subject": meta["subject"].astype(str).to_numpy(),
                        "trial": meta["trial"].to_numpy(),
                        "t_start": meta["t_start"].to_numpy(), "t_stop": meta["t_stop"].to_numpy(),
                        "predicted": [names[i] for i in proba.argmax(1)]})
    for i, n in enumerate(names):
        out[f"p_{n}"] = proba[:, i]
    y = meta["y_fear"].to_numpy()
    out["y_true"] = [names[v] if 0 <= v < len(names) else "" for v in y]
    return out


def score(pred: pd.DataFrame, class_names) -> dict:
    """Accuracy, balanced accuracy and macro-F1 over the labelled windows of ``pred``."""
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score

    lab = pred[pred["y_true"] != ""]
    if lab.empty:
        raise ValueError("--score: no window of DATA carries a label (no rule table or classes "
                         "match it); drop --score or give labelled data.")
    y, p = lab["y_true"], lab["predicted"]
    return {"n_windows": int(len(lab)), "accuracy": float(accuracy_score(y, p)),
            "balanced_accuracy": float(balanced_accuracy_score(y, p)),
            "macro_f1": float(f1_score(y, p, average="macro", labels=list(class_names),
                                       zero_division=0))}
