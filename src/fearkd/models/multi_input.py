"""``multi-input``: one branch per modality, late fusion, modality dropout.

Branches are read from the feature names (``"<modality>:<channel>:<feature>"``, see
:mod:`fearkd.features.presets`):

* ``eeg`` band powers become a channels x bands map, ``(batch, n_bands, n_channels)``, for a
  small convolutional branch (a 1-D convolution across neighbouring channels of the preset's
  order, band powers as its input channels, global average pooling); other EEG columns (the
  held NeuroSky values of the ASCERTAIN presets, ``riemann-*`` covariances) get a dense
  branch, ``eeg-levels``;
* every other modality (``gsr``, ``ppg``, ``ecg``, ...) gets its own dense branch.

Each branch gives ``hidden`` values; they are concatenated (late fusion) and pass one dense
layer before ``.head``. **Modality dropout**: while training, each branch's inputs are zeroed
for a sample with probability ``modality_dropout`` (never all branches of one sample), so the
fusion learns to do without any one sensor. At prediction time a missing modality is given as
zeros in the model's (standardised) input, the training mean, and the output degrades instead
of breaking.

The experiment runner passes ``feature_names`` (the stage's teacher or student columns) to
every model class whose ``takes_feature_names`` is true. Built without them,
``make_model("multi-input", n_features, n_outputs)`` still works on a flat input: all
features form one dense branch and modality dropout has nothing to drop.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from fearkd.errors import ConfigError
from fearkd.models.base import FearkdModule, check_size, keras_init_
from fearkd.models.registry import register_model

__all__ = ["MultiInput", "modality_branches", "check_branches"]

#: The experiment-file key of :func:`check_branches`' messages.
BRANCHES_KEY = "[models.params.multi-input] branches"


def check_branches(branches, feature_names, what: str = "the model's input columns") -> None:
    """Refuse declared branches that leave a modality of the input columns without a branch.

    Parameters
    ----------
    branches : sequence of str or None
        The modalities the model is declared to have a branch for (``None``: one per modality
        found in ``feature_names``, nothing to check). A listed modality the columns lack is
        allowed: a student may see fewer sensors than its teacher.
    feature_names : sequence of str
        ``"<modality>:<channel>:<feature>"`` names.
    what : str
        The columns' origin for the message, e.g. ``"the student preset 'deap-student'"``.

    Raises
    ------
    ConfigError
        ``branches`` is not a list of names, or misses a modality of the columns.
    """
    if branches is None:
        return
    if isinstance(branches, str) or not all(isinstance(b, str) for b in branches) \
            or not len(branches):
        raise ConfigError(f"{BRANCHES_KEY}: expected a non-empty list of modality names, e.g. "
                          f"[\"eeg\", \"gsr\"], got {branches!r}.")
    present = list(dict.fromkeys(str(n).split(":")[0] for n in feature_names))
    missing = [m for m in present if m not in branches]
    if missing:
        raise ConfigError(f"{BRANCHES_KEY} = {list(branches)!r} does not cover modality "
                          f"{missing!r} of {what} (modalities {present!r}); add "
                          f"{missing!r} to branches, or remove the key (one branch per "
                          f"modality of the columns).")


#: The dense branch of EEG columns that are not band powers: held device values (ASCERTAIN's
#: NeuroSky rows 2-8: ``mean``, ``logmean``) and re-centred covariances (``riemann-<band>``).
EEG_LEVELS = "eeg-levels"
_NOT_BAND_POWER = ("mean", "logmean", "var", "std")


def _not_band_power(feature: str) -> bool:
    return feature in _NOT_BAND_POWER or feature.startswith("riemann")


def modality_branches(feature_names) -> list[tuple[str, list[int], tuple[int, int] | None]]:
    """Branches of a feature list: ``(modality, columns, grid)``, in order of appearance.

    Parameters
    ----------
    feature_names : sequence of str
        ``"<modality>:<channel>:<feature>"`` names.

    Returns
    -------
    list of (str, list of int, (n_channels, n_bands) or None)
        ``grid`` is set for ``eeg`` band powers: its columns are then ordered channel-major
        (all bands of the first channel, then the next) so that they reshape into the map.
        EEG columns that are not band powers (held device values ``mean``/``logmean``,
        ``var``, ``riemann-*``) form a dense branch of their own, :data:`EEG_LEVELS`.

    Raises
    ------
    ValueError
        A name without the ``modality:channel:feature`` form, or EEG band powers that do not
        fill a channels x bands grid.
    """
    groups: dict[str, list[int]] = {}
    for j, name in enumerate(feature_names):
        parts = str(name).split(":")
        if len(parts) != 3:
            raise ValueError(f"Invalid value for 'feature_names' of model 'multi-input': "
                             f"expected '<modality>:<channel>:<feature>' names, got {name!r} "
                             f"(column {j}); use a preset's features or build the model "
                             f"without feature_names (one flat branch).")
        modality = parts[0]
        if modality == "eeg" and _not_band_power(parts[2]):
            modality = EEG_LEVELS
        groups.setdefault(modality, []).append(j)
    branches = []
    for modality, cols in groups.items():
        grid = None
        if modality == "eeg":
            names = [str(feature_names[j]).split(":") for j in cols]
            channels = list(dict.fromkeys(p[1] for p in names))
            bands = list(dict.fromkeys(p[2] for p in names))
            where = {(p[1], p[2]): j for p, j in zip(names, cols, strict=True)}
            missing = [f"eeg:{c}:{b}" for c in channels for b in bands if (c, b) not in where]
            if missing:
                raise ValueError(f"Invalid value for 'feature_names' of model 'multi-input': "
                                 f"the EEG band powers must fill a channels x bands grid "
                                 f"({len(channels)} x {len(bands)}), missing {missing[:3]!r}; "
                                 f"use a preset with every band for every EEG channel.")
            cols = [where[(c, b)] for c in channels for b in bands]
            grid = (len(channels), len(bands))
        branches.append((modality, cols, grid))
    return branches


class _ConvBranch(nn.Module):
    def __init__(self, n_channels: int, n_bands: int, filters: int, hidden: int) -> None:
        super().__init__()
        self.n_channels, self.n_bands = n_channels, n_bands
        kernel = min(3, n_channels)
        self.conv = nn.Conv1d(n_bands, filters, kernel, padding=kernel // 2)
        self.out = nn.Linear(filters, hidden)

    def forward(self, x: Tensor) -> Tensor:
        # -1, not len(x): an ONNX trace would fix the batch size of its example input
        x = x.reshape(-1, self.n_channels, self.n_bands).transpose(1, 2)
        z = torch.relu(self.conv(x)).mean(dim=2)
        return torch.relu(self.out(z))


class _DenseBranch(nn.Module):
    def __init__(self, n_in: int, hidden: int) -> None:
        super().__init__()
        self.out = nn.Linear(n_in, hidden)

    def forward(self, x: Tensor) -> Tensor:
        return torch.relu(self.out(x))


class MultiInput(FearkdModule):
    """One branch per modality, late fusion, modality dropout (see the module docstring).

    Parameters
    ----------
    n_features : int
    n_outputs : int
    feature_names : sequence of str or None
        Names of the input columns; ``None``: one flat dense branch.
    hidden : int
        Width of each branch's output and of the fusion layer.
    filters : int
        Convolution filters of the EEG branch.
    modality_dropout : float in [0, 1)
        Probability of zeroing one branch's inputs for one training sample.
    branches : sequence of str or None
        Modalities the model must have a branch for (``[models.params.multi-input]
        branches``); a modality of ``feature_names`` outside it is a ConfigError
        (:func:`check_branches`). ``None``: one branch per modality found.
    """

    trunk_names = ("branches",)
    takes_feature_names = True

    def __init__(self, n_features: int, n_outputs: int, *, feature_names=None,
                 hidden: int = 16, filters: int = 8, modality_dropout: float = 0.3,
                 branches=None) -> None:
        super().__init__()
        hidden = check_size("hidden", hidden, 1)
        filters = check_size("filters", filters, 1)
        if not 0.0 <= float(modality_dropout) < 1.0:
            raise ValueError(f"Invalid value for 'modality_dropout': expected a number in "
                             f"[0, 1), got {modality_dropout!r}; set [models.params."
                             f"multi-input] modality_dropout = 0.3, for example.")
        check_branches(branches, feature_names or ())
        if feature_names is None:
            branches = [("all", list(range(n_features)), None)]
        else:
            if len(feature_names) != n_features:
                raise ValueError(f"Invalid value for 'feature_names' of model 'multi-input': "
                                 f"expected {n_features} names (one per input column), got "
                                 f"{len(feature_names)}; pass the names of the model's "
                                 f"input columns.")
            branches = modality_branches(feature_names)
        self.modalities = tuple(b[0] for b in branches)
        self.modality_dropout = float(modality_dropout)
        self._columns = [torch.as_tensor(cols, dtype=torch.int64) for _, cols, _ in branches]
        for k, cols in enumerate(self._columns):
            self.register_buffer(f"columns_{k}", cols, persistent=False)
        self.branches = nn.ModuleList(
            _ConvBranch(*grid, filters, hidden) if grid is not None
            else _DenseBranch(len(cols), hidden) for _, cols, grid in branches)
        self.fusion = nn.Linear(hidden * len(branches), hidden)
        self.head = nn.Linear(hidden, n_outputs)
        keras_init_(self)

    def branch_columns(self) -> dict[str, list[int]]:
        """Input columns of each modality's branch."""
        return {m: getattr(self, f"columns_{k}").tolist()
                for k, m in enumerate(self.modalities)}

    def _keep(self, batch: int, device) -> Tensor:
        """Per-sample branch mask for modality dropout: at least one branch stays."""
        n = len(self.branches)
        keep = torch.rand(batch, n, device=device) >= self.modality_dropout
        none = ~keep.any(dim=1)
        if none.any():
            pick = torch.randint(n, (int(none.sum()),), device=device)
            keep[none.nonzero(as_tuple=True)[0], pick] = True
        return keep

    def forward(self, x: Tensor) -> Tensor:
        """Logits, shape (batch, n_outputs), of ``x``, shape (batch, n_features)."""
        x = x.reshape(x.shape[0], -1)
        drop = self.training and self.modality_dropout > 0 and len(self.branches) > 1
        keep = self._keep(len(x), x.device) if drop else None
        parts = []
        for k, branch in enumerate(self.branches):
            xb = x[:, getattr(self, f"columns_{k}")]
            if keep is not None:
                xb = xb * keep[:, k:k + 1].to(xb.dtype)
            parts.append(branch(xb))
        return self.head(torch.relu(self.fusion(torch.cat(parts, dim=1))))


register_model("multi-input", MultiInput,
               description="one branch per modality (EEG channels x bands conv, dense "
                           "peripheral), late fusion, modality dropout")
