"""The window a deployed graph takes and its features in NumPy, without torch.

:class:`WindowSpec` says what the ONNX graph of a raw bundle computes from one window of
samples; :func:`window_features` computes the same features in NumPy (the Python path of
:meth:`fearkd.deploy.bundle.Bundle.predict_proba`). Kept apart from
:mod:`fearkd.deploy.graph` (the torch module exported to ONNX) so that loading a bundle and
streaming it through onnxruntime never imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..features.presets import VAR_LOG_FLOOR
from ..features.spectral import band_power

__all__ = ["WindowSpec", "window_features", "NORM_MEAN", "NORM_SCALE", "TEMPERATURE",
           "INPUT_SAMPLES", "INPUT_FEATURES", "OUTPUT"]

NORM_MEAN = "norm_mean"
NORM_SCALE = "norm_scale"
#: The ONNX initialiser that divides the logits (temperature scaling).
TEMPERATURE = "temperature"
INPUT_SAMPLES = "samples"
INPUT_FEATURES = "features"
OUTPUT = "probabilities"


@dataclass(frozen=True)
class WindowSpec:
    """What the graph computes from one window of raw samples.

    Parameters
    ----------
    channels : tuple of str
        Input rows, in order: the EEG channels, then the peripheral channels.
    n_eeg : int
        The first ``n_eeg`` channels get band power, the others mean and variance.
    sfreq : float
        Sampling rate every channel must have, Hz.
    n_samples : int
        Samples per window (``round(window_s * sfreq)``).
    bands : tuple of (name, low, high)
    log, relative : bool
        Post-processing of band power (relative first, then log of ``max(power,
        LOG_FLOOR)``).
    log_variance : bool
        Variance features as ``log(max(var, VAR_LOG_FLOOR))`` (``[features] log``).
    """

    channels: tuple[str, ...]
    n_eeg: int
    sfreq: float
    n_samples: int
    bands: tuple[tuple[str, float, float], ...]
    log: bool = False
    relative: bool = False
    log_variance: bool = False

    @property
    def n_features(self) -> int:
        return self.n_eeg * len(self.bands) + 2 * (len(self.channels) - self.n_eeg)


def window_features(x: np.ndarray, spec: WindowSpec) -> np.ndarray:
    """Features of windows of raw samples (the NumPy path).

    Parameters
    ----------
    x : ndarray, shape (n_windows, n_channels, n_samples)
        Raw samples, channels in ``spec.channels`` order.
    spec : WindowSpec

    Returns
    -------
    ndarray of float32, shape (n_windows, n_features)
        Channel-major band powers, then (mean, var) of each peripheral channel.
    """
    x = np.asarray(x, dtype=np.float64)
    expected = (len(spec.channels), spec.n_samples)
    if x.ndim != 3 or x.shape[1:] != expected:
        raise ValueError(f"'window_array' must have shape (n_windows, {expected[0]}, "
                         f"{expected[1]}) (windows, channels {list(spec.channels)[:4]}..., "
                         f"samples at {spec.sfreq:g} Hz), got {x.shape}.")
    if not np.isfinite(x).all():
        raise ValueError("'window_array' holds NaN or inf samples; a window needs every sample.")
    blocks = []
    if spec.n_eeg:
        power = band_power(x[:, :spec.n_eeg], spec.sfreq, spec.bands, method="periodogram",
                           log=spec.log, relative=spec.relative)
        blocks.append(power.reshape(len(x), -1))
    if spec.n_eeg < len(spec.channels):
        p = x[:, spec.n_eeg:]
        var = p.var(-1)
        if spec.log_variance:
            var = np.log(np.maximum(var, VAR_LOG_FLOOR))
        blocks.append(np.stack([p.mean(-1), var], axis=-1).reshape(len(x), -1))
    return np.concatenate(blocks, axis=1).astype(np.float32)
