"""The seed's teacher CNN (registry name ``cnn-teacher``): 198,362 parameters for 176 -> 10.

The seed document prints the teacher's Keras summary (``Total params: 198,362``,
``Trainable params: 197,338``, ``Non-trainable params: 1,024``) and describes it as five
``Conv1D`` layers, four of them followed by ``BatchNormalization``, then ``Dense`` 64-32-16; it
does not list the filters. This module's layers are the unique solution of those figures within
the seed's own building blocks (``Conv1D(f, kernel_size=3, padding='same')``, ``MaxPooling1D(2)``,
filters in {16, 32, 64, 128, 256}, the 176 teacher features read as ``(176, 1)``, 10 valence
classes out)::

    [Conv1d(128, k=3, same) + ReLU -> BatchNorm -> MaxPool(2)] x 4
    Conv1d(64, k=3, same) + ReLU -> MaxPool(2)                [176 -> 88 -> 44 -> 22 -> 11 -> 5]
    Flatten (channels-last, Keras order: 5 x 64 = 320)
    -> Dense(64, tanh) -> Dropout(0.2) -> Dense(32, ReLU) -> Dropout(0.2)
    -> Dense(16, ReLU) -> Dropout(0.2) -> Dense(n_outputs)    [.head, logits]

Derivation. Keras counts a BatchNorm layer of ``c`` channels as ``2c`` trainable (gamma, beta)
and ``2c`` non-trainable (moving mean, variance) parameters, so 1,024 non-trainable means the
four BatchNorm layers hold 512 channels: 4 x 128. What remains for the convolutions and the
dense layers is ``198,362 - 4 * 512 (BatchNorm) - (64*32+32) - (32*16+16) - (16*10+10)
- 64 (Dense(64) bias) = 193,472 = conv + 64 * flat``. With kernels 3 the convolutions cost
``512 + 3 * 49,280 + 24,640 = 172,992`` (1->128, three 128->128, 128->64), leaving
``64 * flat = 20,480``, i.e. ``flat = 320 = 5 positions x 64 filters``: five poolings by 2
(176 // 32 = 5). An exhaustive search over five filter counts in {16, ..., 256}, kernels
{3, 5, 7}, the BatchNorm-less layer and 0-5 poolings (with or without global pooling) finds only
this net and three variants with a 256-filter second layer and three 64-filter layers; the one
kept is the student CNN's pattern (128-filter blocks with BatchNorm, a last 64-filter block
without) made deeper. The dense activations (tanh, ReLU, ReLU) and dropout 0.2 follow the
student CNN of the seed; they do not change the count.

PyTorch counts the same numbers: ``nn.Conv1d``/``nn.Linear`` have one bias each, as Keras, and
:func:`fearkd.models.parameter_table` adds BatchNorm's running mean and variance as
non-trainable, as Keras does (``num_batches_tracked`` is not counted).

BatchNorm uses Keras' epsilon (1e-3) and PyTorch's default momentum (0.1, i.e. Keras
``momentum=0.9``): with Keras' 0.99 the running statistics used in evaluation lag far behind
the batch statistics during the few hundred steps a fold trains, and evaluation accuracy stays
near chance while training accuracy rises (see ``tests/test_learnability.py``). Kernels are
Glorot-uniform and biases zero. Needs ``n_features >= 32`` (five poolings by 2).
"""

from __future__ import annotations

from torch import Tensor, nn

from fearkd.models.base import FearkdModule, keras_init_
from fearkd.models.registry import register_model

__all__ = ["TeacherCNN"]

FILTERS = (128, 128, 128, 128, 64)
N_BATCHNORM = 4
DENSE = (64, 32, 16)
KERNEL = 3
BN_EPS = 1e-3
BN_MOMENTUM = 0.1


class TeacherCNN(FearkdModule):
    """The seed's five-block teacher CNN (see the module docstring).

    Parameters
    ----------
    n_features : int
        Input length, at least 32 (five poolings by 2).
    n_outputs : int
        Number of logits.
    dropout : float
        Rate of the three dropout layers (0.2, as the seed's student CNN).

    Notes
    -----
    Input ``x`` of shape ``(batch, n_features)`` is read as a one-channel sequence
    ``(batch, 1, n_features)``; the output is logits of shape ``(batch, n_outputs)``.
    """

    trunk_names = ("convs", "norms")

    def __init__(self, n_features: int, n_outputs: int, *, dropout: float = 0.2) -> None:
        super().__init__()
        minimum = 2 ** len(FILTERS)
        if n_features < minimum:
            raise ValueError(f"'cnn-teacher' pools five times by 2, so it needs at least "
                             f"{minimum} features, got {n_features!r}; choose a preset with more "
                             f"features or another model in '[models] backbones' (e.g. 'ann').")
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"'dropout' must be in [0, 1), got {dropout!r}; set it in "
                             f"'[models.params.cnn-teacher] dropout'.")
        sizes = (1, *FILTERS)
        self.convs = nn.ModuleList(nn.Conv1d(sizes[i], sizes[i + 1], KERNEL, padding=KERNEL // 2)
                                   for i in range(len(FILTERS)))
        self.norms = nn.ModuleList(nn.BatchNorm1d(c, eps=BN_EPS, momentum=BN_MOMENTUM)
                                   for c in FILTERS[:N_BATCHNORM])
        self.pool = nn.MaxPool1d(2)
        length = n_features
        for _ in FILTERS:
            length //= 2
        dense: list[nn.Module] = []
        size = length * FILTERS[-1]
        for i, units in enumerate(DENSE):
            dense += [nn.Linear(size, units), nn.Tanh() if i == 0 else nn.ReLU(),
                      nn.Dropout(dropout)]
            size = units
        self.dense = nn.Sequential(*dense)
        self.head = nn.Linear(size, n_outputs)
        keras_init_(self)

    def features(self, x: Tensor) -> Tensor:
        """Convolutional trunk.

        Parameters
        ----------
        x : Tensor, shape (batch, n_features)

        Returns
        -------
        Tensor, shape (batch, (n_features // 32) * 64)
            Flattened in channels-last (Keras) order: position-major, channel-minor.
        """
        batch = x.shape[0]
        h = x.reshape(batch, 1, -1)
        for i, conv in enumerate(self.convs):
            h = conv(h).relu()
            if i < len(self.norms):
                h = self.norms[i](h)
            h = self.pool(h)
        return h.transpose(1, 2).reshape(batch, -1)

    def forward(self, x: Tensor) -> Tensor:
        """Logits, shape (batch, n_outputs), of ``x``, shape (batch, n_features)."""
        return self.head(self.dense(self.features(x)))


register_model("cnn-teacher", TeacherCNN,
               description="the seed's teacher CNN: 5 conv blocks (4 with BatchNorm), "
                           "dense 64-32-16 (198,362 parameters for 176 -> 10)")
