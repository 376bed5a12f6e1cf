"""``fearkd calibrate``: a bundle adapted to one user from a short recording of that user.

Three steps, each optional after the first:

1. **Normaliser.** The user's windows of a resting/baseline part (a stage name, or the first
   N seconds of the recording, :func:`fearkd.features.normalize.calibration_mask`) give the
   feature means and standard deviations that replace the bundle's training-set normaliser:
   the manifest's ``normaliser`` and the ONNX graph's initialisers ``norm_mean`` and
   ``norm_scale``. A user whose skin conductance or EEG power sits far from the training
   subjects' is then seen on the scale the network was trained on.
2. **Head** (``labelled=True``). The network's last layer (``model.head``) is fine-tuned on the
   user's labelled windows for at most :data:`MAX_EPOCHS` full-batch epochs; every other weight
   stays frozen. The ONNX graph is exported again from the new weights; a temperature of the
   training set (``temperature_scaling``) is dropped with the head it was fitted to.
3. **Thresholds** (``thresholds=True``, needs labelled windows). Per-class offsets added to the
   logits, chosen by coordinate search to maximise balanced accuracy on the labelled windows
   ("adjust classification thresholds using individual baselines"). They are stored in the
   manifest (``thresholds.logit_offsets``), applied by :class:`~fearkd.deploy.bundle.Bundle`
   (so by ``predict`` and by anything that calls ``Bundle.predict_proba``) and added to the ONNX
   graph as an ``Add`` before its softmax (initialiser ``logit_offsets``).

:func:`budget_curve` scores held-out subjects against the minutes of calibration data (the
enrolment budget) and warns when the calibration windows carry fear labels other than the
lowest level (they are not a resting part: the normaliser then absorbs the label, a label
shift the deployed monitor will not have).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

from ..errors import BundleError, ConfigError
from .bundle import Bundle
from .graph import NORM_MEAN, NORM_SCALE, OUTPUT, FeatureGraph, export_onnx

__all__ = ["calibrate_bundle", "budget_curve", "replace_normaliser", "set_logit_offsets",
           "fit_head", "choose_offsets", "user_windows", "MAX_EPOCHS", "LOGIT_OFFSETS"]

logger = logging.getLogger(__name__)

#: Upper bound on head fine-tuning epochs (a few labelled windows overfit quickly).
MAX_EPOCHS = 200
#: The ONNX initialiser that holds the per-user logit offsets.
LOGIT_OFFSETS = "logit_offsets"
#: Offsets searched for each class (logit units).
_OFFSET_GRID = np.round(np.arange(-3.0, 3.01, 0.25), 2)
#: Head fine-tuning learning rate (Adam, full batch).
_HEAD_LR = 1e-2
#: A feature whose calibration std is below this is centred, not divided.
_MIN_STD = 1e-8


def parse_part(text: str | None) -> str | float | None:
    """``"60s"`` -> 60.0 (seconds), ``"baseline"`` -> a stage name, None -> every window."""
    if text is None:
        return None
    text = str(text).strip()
    if text.endswith("s") and text[:-1].replace(".", "", 1).isdigit():
        return float(text[:-1])
    if not text:
        raise ValueError("--rest: expected a stage name (e.g. 'baseline') or seconds ('60s'), "
                         "got ''.")
    return text


def user_windows(bundle: Bundle, recordings, *, subject=None, trials=None, channel_map=None):
    """The bundle's features of one user's windows (one subject of ``recordings``).

    Parameters
    ----------
    bundle : Bundle
    recordings : Recordings
    subject : str, optional
        Which subject; required when ``recordings`` holds several.
    trials : sequence, optional
        Keep only these trial ids (compared as strings).
    channel_map : dict, optional

    Returns
    -------
    FeatureSet
    """
    from ..recordings import Recordings
    from .predict import bundle_featureset

    have = [str(s) for s in recordings.subjects]
    if subject is None:
        if len(have) != 1:
            raise ConfigError(f"The recording holds {len(have)} subjects {have[:10]}; calibration "
                              f"is for one user: pick one with --subject ID.")
        subject = have[0]
    if str(subject) not in have:
        raise ConfigError(f"--subject {subject!r}: not in the recording; expected one of "
                          f"{have[:20]}.")
    sid = recordings.subjects[have.index(str(subject))]
    one = Recordings(recordings.dataset, [sid], lambda s, report: recordings.load(s),
                     recordings.description)
    fs = bundle_featureset(bundle, one, channel_map=channel_map)
    if trials is not None:
        keep = {str(t) for t in trials}
        mask = fs.metadata["trial"].astype(str).isin(keep).to_numpy()
        if not mask.any():
            raise ConfigError(f"--trials {sorted(keep)}: no window of subject {subject!r} is in "
                              f"them; its trials are "
                              f"{sorted(fs.metadata['trial'].astype(str).unique())[:20]}.")
        fs = fs.select_rows(mask)
    return fs


def rest_mask(metadata: pd.DataFrame, part, window: float) -> np.ndarray:
    """Rows of the calibration (resting) part: a stage name, N seconds, or all (None)."""
    from ..features.normalize import calibration_mask

    if part is None:
        return np.ones(len(metadata), dtype=bool)
    return calibration_mask(metadata, part, window, value=f"--rest {part}")


def label_shift_warning(y: np.ndarray, class_names) -> str | None:
    """A warning when calibration windows are labelled above the lowest level, else None."""
    y = np.asarray(y)
    above = sorted({int(v) for v in y if v > 0})
    if not above:
        return None
    return (f"{int((y > 0).sum())} of {len(y)} calibration windows are labelled "
            f"{[class_names[i] for i in above]}: they are not a resting/baseline part, so the "
            f"normaliser absorbs the fear level (label shift); calibrate on a resting stage "
            f"(--rest STAGE).")


def _stats(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    X = np.asarray(X, dtype=np.float64)
    mean = X.mean(axis=0)
    std = X.std(axis=0) if len(X) > 1 else np.ones(X.shape[1])
    return mean, np.where(std > _MIN_STD, std, 1.0)


def replace_normaliser(onnx_bytes: bytes, mean: np.ndarray, scale: np.ndarray) -> bytes:
    """The graph with its ``norm_mean``/``norm_scale`` initialisers replaced (same shapes)."""
    import onnx
    from onnx import numpy_helper

    proto = onnx.load_from_string(onnx_bytes)
    inits = {i.name: i for i in proto.graph.initializer}
    for name, value in ((NORM_MEAN, mean), (NORM_SCALE, scale)):
        if name not in inits:
            raise BundleError(f"The bundle's ONNX graph has no initialiser {name!r}; write it "
                              f"again with `fearkd train`.")
        old = numpy_helper.to_array(inits[name])
        new = np.asarray(value, dtype=old.dtype).reshape(old.shape)
        inits[name].CopyFrom(numpy_helper.from_array(new, name))
    return proto.SerializeToString()


def set_logit_offsets(onnx_bytes: bytes, offsets: np.ndarray) -> bytes:
    """The graph with ``logits + logit_offsets`` before its final softmax."""
    import onnx
    from onnx import helper, numpy_helper

    proto = onnx.load_from_string(onnx_bytes)
    g = proto.graph
    value = numpy_helper.from_array(np.asarray(offsets, np.float32), LOGIT_OFFSETS)
    for init in g.initializer:
        if init.name == LOGIT_OFFSETS:  # a calibrated bundle calibrated again
            init.CopyFrom(value)
            return proto.SerializeToString()
    idx = [i for i, n in enumerate(g.node) if OUTPUT in n.output and n.op_type == "Softmax"]
    if not idx:
        raise BundleError("The bundle's ONNX graph does not end in a Softmax; write it again "
                          "with `fearkd train`.")
    soft = g.node[idx[0]]
    shifted = "logits_" + LOGIT_OFFSETS
    add = helper.make_node("Add", [soft.input[0], LOGIT_OFFSETS], [shifted], name="user_offsets")
    soft.input[0] = shifted
    g.initializer.append(value)
    g.node.insert(idx[0], add)
    onnx.checker.check_model(proto)
    return proto.SerializeToString()


def fit_head(model, Z: np.ndarray, y: np.ndarray, *, epochs: int, seed: int = 0):
    """A copy of ``model`` whose ``head`` (last ``nn.Linear``) is fine-tuned on ``(Z, y)``.

    Parameters
    ----------
    model : nn.Module
        A fearkd network with a ``.head``.
    Z : ndarray, shape (n_windows, n_features)
        Normalised features.
    y : ndarray of int, shape (n_windows,)
    epochs : int
        Full-batch Adam steps, 1 to :data:`MAX_EPOCHS`.
    seed : int
    """
    if not 1 <= int(epochs) <= MAX_EPOCHS:
        raise ValueError(f"--epochs: expected 1 to {MAX_EPOCHS}, got {epochs}; a few labelled "
                         f"windows need few epochs (e.g. --epochs 20).")
    model = copy.deepcopy(model).eval()  # frozen layers keep inference behaviour (no dropout)
    for p in model.parameters():
        p.requires_grad_(False)
    for p in model.head.parameters():
        p.requires_grad_(True)
    torch.manual_seed(seed)
    opt = torch.optim.Adam(model.head.parameters(), lr=_HEAD_LR)
    x = torch.as_tensor(np.asarray(Z, np.float32))
    t = torch.as_tensor(np.asarray(y, np.int64))
    for _ in range(int(epochs)):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), t)
        loss.backward()
        opt.step()
    for p in model.parameters():
        p.requires_grad_(True)
    return model.eval()


def choose_offsets(logits: np.ndarray, y: np.ndarray, n_classes: int,
                   n_passes: int = 3) -> np.ndarray:
    """Per-class logit offsets that maximise balanced accuracy on ``(logits, y)``.

    Coordinate search over a grid (-3 to 3 by 0.25); ties keep the offset nearest zero, and a
    class absent from ``y`` keeps 0.
    """
    from sklearn.metrics import balanced_accuracy_score

    logits = np.asarray(logits, np.float64)
    y = np.asarray(y)
    offsets = np.zeros(n_classes)

    def score(o):
        return balanced_accuracy_score(y, (logits + o).argmax(1))

    best = score(offsets)
    present = set(np.unique(y).tolist())
    for _ in range(n_passes):
        changed = False
        for c in range(n_classes):
            if c not in present:
                continue
            for v in sorted(_OFFSET_GRID, key=abs):
                trial = offsets.copy()
                trial[c] = v
                s = score(trial)
                if s > best + 1e-12:
                    best, offsets, changed = s, trial, True
        if not changed:
            break
    return offsets


def calibrate_bundle(bundle: Bundle, recordings, *, subject=None, trials=None, rest=None,
                     labelled: bool = False, labelled_trials=None, epochs: int = 20,
                     thresholds: bool = False, channel_map=None, seed: int = 0) -> Bundle:
    """A copy of ``bundle`` calibrated to one user.

    Parameters
    ----------
    bundle : Bundle
    recordings : Recordings
        The user's recording (any fearkd reader).
    subject : str, optional
        The user, when the recording holds several subjects.
    trials : sequence, optional
        Trials whose windows may be used (default all).
    rest : str or float or None
        The resting part that sets the normaliser: a stage name, seconds from the start, or
        None (every window of ``trials``).
    labelled : bool
        Fine-tune the head on the labelled windows of ``labelled_trials`` (default ``trials``).
    epochs : int
        Head fine-tuning epochs (1 to :data:`MAX_EPOCHS`).
    thresholds : bool
        Choose per-class logit offsets on the labelled windows (needs ``labelled``).
    channel_map : dict, optional
    seed : int

    Returns
    -------
    Bundle
        Not yet saved (``path`` None); its manifest has a ``calibration`` entry.
    """
    if thresholds and not labelled:
        raise ValueError("--thresholds needs labelled windows to choose them on; add --labelled "
                         "(and --labelled-trials IDS).")
    if labelled and not 1 <= int(epochs) <= MAX_EPOCHS:
        raise ValueError(f"--epochs: expected 1 to {MAX_EPOCHS}, got {epochs}; e.g. --epochs 20.")
    if bundle.input_kind != "samples":
        raise BundleError("This bundle takes features (input_kind='features'); calibration needs "
                          "a bundle whose graph computes its features from samples.")
    window = float(bundle.manifest["windowing"]["window_s"])
    fs = user_windows(bundle, recordings, subject=subject, trials=trials,
                      channel_map=channel_map)
    meta = fs.metadata
    rmask = rest_mask(meta, rest, window)
    warn = label_shift_warning(meta["y_fear"].to_numpy()[rmask], bundle.class_names)
    if warn:
        logger.warning(warn)
    mean, scale = _stats(fs.X[rmask])
    manifest = copy.deepcopy(bundle.manifest)
    manifest["normaliser"] = {**manifest["normaliser"], "mean": mean.tolist(),
                              "scale": scale.tolist()}
    sid = str(meta["subject"].iloc[0])
    info = {"subject": sid, "rest": rest, "n_rest_windows": int(rmask.sum()),
            "from_bundle": bundle.manifest.get("content_hash"), "head_epochs": 0,
            "n_labelled_windows": 0, "label_shift_warning": warn}
    model = bundle.model
    onnx_bytes = replace_normaliser(bundle.onnx_bytes, mean, scale)
    if labelled:
        if labelled_trials is not None:
            keep = {str(t) for t in labelled_trials}
            lmask = meta["trial"].astype(str).isin(keep).to_numpy()
        else:
            lmask = np.ones(len(meta), dtype=bool)
        lmask &= meta["y_fear"].to_numpy() >= 0
        if not lmask.any():
            raise ConfigError(f"--labelled: subject {sid!r} has no labelled window in the trials "
                              f"given; give trials with fear ratings (--labelled-trials IDS) or "
                              f"drop --labelled.")
        Z = (fs.X[lmask] - mean) / scale
        y = meta["y_fear"].to_numpy()[lmask]
        model = fit_head(model, Z, y, epochs=epochs, seed=seed)
        # the training-set temperature was fitted to the old head's logits: it goes with it
        manifest.pop("temperature_scaling", None)
        onnx_bytes = export_onnx(FeatureGraph(model, mean, scale, bundle.spec))
        info.update(head_epochs=int(epochs), n_labelled_windows=int(lmask.sum()),
                    labelled_classes={bundle.class_names[c]: int((y == c).sum())
                                      for c in np.unique(y)})
        if thresholds:
            with torch.no_grad():
                logits = model(torch.as_tensor(Z.astype(np.float32))).double().numpy()
            offsets = choose_offsets(logits, y, len(bundle.class_names))
            manifest["thresholds"] = {"kind": "logit_offsets", "logit_offsets": offsets.tolist(),
                                      "chosen_on": int(lmask.sum())}
            onnx_bytes = set_logit_offsets(onnx_bytes, offsets)
    if "thresholds" in manifest and not thresholds and labelled:
        # a new head makes earlier offsets meaningless
        del manifest["thresholds"]
    elif "thresholds" in manifest:
        onnx_bytes = set_logit_offsets(onnx_bytes, manifest["thresholds"]["logit_offsets"])
    manifest["calibration"] = info
    manifest.pop("content_hash", None)
    return Bundle(manifest, model, onnx_bytes, bundle.card, None)


def budget_curve(bundle: Bundle, recordings, *, minutes: Sequence[float] | None = None,
                 rest=None, subjects=None, channel_map=None) -> pd.DataFrame:
    """Subject-wise scores against minutes of calibration data, for held-out subjects.

    For each subject and budget ``b``: the normaliser is fitted on the subject's first ``b``
    minutes (within the ``rest`` stage when given, else from the start of its recording), and
    the calibrated bundle scores the subject's labelled windows outside every budget's part (so
    all rows of one subject share one test set). ``b = 0`` is the uncalibrated bundle. Without
    ``rest``, budgets go up to half of each subject's recording.

    Parameters
    ----------
    bundle : Bundle
    recordings : Recordings
        Subjects the bundle was not trained on (a subject it was trained on is refused).
    minutes : sequence of float, optional
        Budgets; default 0, 0.25, 0.5, 1, 2 and the whole part.
    rest : str, optional
        A stage name that limits the calibration windows (the resting part).
    subjects : sequence of str, optional
    channel_map : dict, optional

    Returns
    -------
    DataFrame
        ``subject``, ``minutes``, ``n_calibration``, ``n_test``, ``accuracy``,
        ``balanced_accuracy``, ``label_shift`` (bool).
    """
    from sklearn.metrics import accuracy_score, balanced_accuracy_score

    trained = {str(s) for s in bundle.manifest.get("training_data", {}).get("subjects", [])}
    subjects = [str(s) for s in (subjects or recordings.subjects)]
    seen = sorted(set(subjects) & trained)
    if seen:
        raise ConfigError(f"budget curve: subject(s) {seen[:10]} were in the bundle's training "
                          f"data; expected held-out subjects (train without them).")
    window = float(bundle.manifest["windowing"]["window_s"])
    rows = []
    for sid in subjects:
        fs = user_windows(bundle, recordings, subject=sid, channel_map=channel_map)
        meta = fs.metadata
        y = meta["y_fear"].to_numpy()
        base = rest_mask(meta, rest, window) if rest is not None else np.ones(len(meta), bool)
        order = np.flatnonzero(base)
        sub = meta.iloc[order]
        # the part's duration: each trial's windowed span, one after the other
        span = sub.groupby("trial")[["t_start", "t_stop"]].agg({"t_start": "min",
                                                                 "t_stop": "max"})
        total_s = float((span["t_stop"] - span["t_start"]).sum())
        # without a resting stage, at most half the recording calibrates: the rest is the test
        limit = total_s if rest is not None else total_s / 2.0
        budgets = sorted(set(minutes if minutes is not None
                             else [0, 0.25, 0.5, 1, 2, limit / 60.0]))
        budgets = [float(b) for b in budgets if b * 60.0 <= limit + 1e-9]
        masks = {}
        for b in budgets:
            if b == 0:
                masks[b] = np.zeros(len(meta), bool)
                continue
            part = np.zeros(len(meta), bool)
            part[order] = rest_mask(sub, max(b * 60.0, window), window)
            masks[b] = part
        used = np.logical_or.reduce(list(masks.values()))
        test = ~used & (y >= 0)
        if not test.any():
            logger.warning("budget curve: subject %s has no labelled window outside its "
                           "calibration part; skipped.", sid)
            continue
        for b in budgets:
            m = masks[b]
            if m.any():
                mean, scale = _stats(fs.X[m])
            else:
                mean, scale = bundle.mean, bundle.scale
            warn = label_shift_warning(y[m], bundle.class_names) if m.any() else None
            if warn:
                logger.warning("subject %s, %g min: %s", sid, b, warn)
            Z = ((fs.X[test] - mean) / scale).astype(np.float32)
            with torch.no_grad():
                logits = bundle.model(torch.as_tensor(Z)).double().numpy()
            pred = (logits + bundle.logit_offsets).argmax(1)
            rows.append({"subject": sid, "minutes": float(b), "n_calibration": int(m.sum()),
                         "n_test": int(test.sum()),
                         "accuracy": float(accuracy_score(y[test], pred)),
                         "balanced_accuracy": float(balanced_accuracy_score(y[test], pred)),
                         "label_shift": warn is not None})
    if not rows:
        raise ConfigError("budget curve: no subject has labelled windows outside its calibration "
                          "part; give longer recordings or smaller --minutes.")
    return pd.DataFrame(rows)
