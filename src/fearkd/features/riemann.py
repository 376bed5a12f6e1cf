"""Per-subject re-centred Riemannian features of band-filtered EEG covariances.

For each band, each window's EEG is band-pass filtered and its spatial covariance estimated
(shrinkage, ``oas``); then, per subject, every covariance ``C`` is **re-centred** on that
subject's Riemannian mean ``M_s``: ``M_s^{-1/2} C M_s^{-1/2}`` (Zanini et al. 2018,
"Transfer learning: a Riemannian geometry framework with applications to brain-computer
interfaces"; pyRiemann's ``transfer`` module does the same). Every subject's windows are then
centred on the identity, which removes a fixed per-subject mixing or gain of the channels
(electrode placement, impedance, skull). The re-centred matrices are mapped to the tangent
space at the identity (upper triangle of the matrix logarithm, off-diagonal terms times
sqrt(2)), one vector of ``n_ch (n_ch + 1) / 2`` numbers per band.

The subject means use the subject's windows without labels. Fitted on a fold's test subject,
that is transductive, like ``[features] normalize = "subject"``; a deployed monitor fits it
on a new user's unlabelled calibration recording.

``riemann_features`` is the function; :class:`RiemannRecentering` the thin transformer over
covariances. ``[features] riemann = true`` adds these features, per subject, to the teacher's
columns during extraction (:func:`fearkd.features.extract.subject_features`).
"""

from __future__ import annotations

import numpy as np
from pyriemann.geometry.base import invsqrtm
from pyriemann.geometry.covariance import covariances
from pyriemann.geometry.mean import mean_riemann
from pyriemann.geometry.tangentspace import tangent_space

from fearkd.features.spectral import check_bands, filter_bank

__all__ = ["RiemannRecentering", "band_covariances", "recenter", "riemann_feature_names",
           "riemann_features"]


def band_covariances(x: np.ndarray, sfreq: float, bands, *,
                     estimator: str = "oas") -> np.ndarray:
    """Spatial covariance of each window in each band.

    Parameters
    ----------
    x : ndarray, shape (n_windows, n_chans, n_times)
    sfreq : float
    bands : tuple of (name, low, high)
    estimator : str
        A pyRiemann covariance estimator (``"oas"``, ``"lwf"``, ``"scm"``).

    Returns
    -------
    ndarray, shape (n_bands, n_windows, n_chans, n_chans)
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 3 or x.shape[1] < 2:
        raise ValueError(f"'x' must have shape (n_windows, n_chans >= 2, n_times), got "
                         f"{x.shape}; give the EEG windows of at least two channels.")
    bands = check_bands(bands, sfreq)
    filtered = filter_bank(x, sfreq, bands)
    return np.stack([covariances(np.asarray(f, dtype=np.float64), estimator=estimator)
                     for f in filtered])


def recenter(covs: np.ndarray, subjects) -> np.ndarray:
    """Re-centre each subject's covariances on its Riemannian mean.

    Parameters
    ----------
    covs : ndarray, shape (n_windows, n_chans, n_chans)
    subjects : array-like, shape (n_windows,)

    Returns
    -------
    ndarray, shape (n_windows, n_chans, n_chans)
        ``M_s^{-1/2} C M_s^{-1/2}``; each subject's Riemannian mean becomes the identity.
    """
    subjects = np.asarray(subjects)
    if len(subjects) != len(covs):
        raise ValueError(f"'subjects' has {len(subjects)} entries but there are {len(covs)} "
                         f"covariance matrices; give one subject per window.")
    out = np.empty_like(covs)
    for s in np.unique(subjects):
        rows = subjects == s
        w = invsqrtm(mean_riemann(covs[rows]))
        out[rows] = w @ covs[rows] @ w
    return out


class RiemannRecentering:
    """Transformer: per-subject re-centring + tangent space at the identity.

    ``transform(covs, subjects)`` re-centres on the means of the subjects given (fitted on
    those rows, unlabelled); there is nothing to learn across subjects, so ``fit`` only
    returns ``self`` (scikit-learn shape).
    """

    def fit(self, covs=None, subjects=None) -> RiemannRecentering:
        """Nothing to fit across subjects; returns ``self``."""
        return self

    def transform(self, covs: np.ndarray, subjects) -> np.ndarray:
        """Tangent vectors, shape (n_windows, n_chans (n_chans + 1) / 2)."""
        covs = recenter(np.asarray(covs, dtype=np.float64), subjects)
        return tangent_space(covs, np.eye(covs.shape[-1]))


def riemann_features(x: np.ndarray, sfreq: float, bands, subjects, *,
                     estimator: str = "oas") -> np.ndarray:
    """Re-centred tangent-space features of band-filtered EEG covariances.

    Parameters
    ----------
    x : ndarray, shape (n_windows, n_chans, n_times)
        EEG windows.
    sfreq : float
    bands : tuple of (name, low, high)
    subjects : array-like, shape (n_windows,)
    estimator : str

    Returns
    -------
    ndarray of float32, shape (n_windows, n_bands * n_chans (n_chans + 1) / 2)
        Band-major; names from :func:`riemann_feature_names`.
    """
    covs = band_covariances(x, sfreq, bands, estimator=estimator)
    step = RiemannRecentering()
    return np.hstack([step.transform(c, subjects) for c in covs]).astype(np.float32)


def riemann_feature_names(channels, bands) -> list[str]:
    """``"eeg:<ch_i>-<ch_j>:riemann-<band>"`` for each band, then each upper-triangle pair."""
    channels = list(channels)
    rows, cols = np.triu_indices(len(channels))
    return [f"eeg:{channels[i]}-{channels[j]}:riemann-{b[0]}" for b in bands
            for i, j in zip(rows, cols, strict=True)]
