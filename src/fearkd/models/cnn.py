"""The seed's student CNN over the feature vector (registry name ``cnn``).

Layers (input: the feature vector read as a one-channel sequence of length ``n_features``; the
reference's Keras model sees it as ``(n_features, 1)``)::

    Conv1d(128, k=3, same) + ReLU -> BatchNorm -> MaxPool(2)
    Conv1d(128, k=3, same) + ReLU -> BatchNorm -> MaxPool(2)
    Conv1d(64,  k=3, same) + ReLU              -> MaxPool(2)
    Flatten (channels-last, Keras order) -> Dense(64, tanh) -> Dropout(0.2)
    -> Dense(16, ReLU) -> Dropout(0.2) -> Dense(n_outputs)  [.head, logits]

Pooling floors odd lengths (Keras ``padding='valid'``), so ``n_features >= 8``. BatchNorm uses
Keras' epsilon (1e-3) and PyTorch's default momentum 0.1 (Keras ``momentum=0.9``), not Keras'
0.99: with 0.99 the running statistics used in evaluation lag the batch statistics over the few
hundred steps a fold trains; at the former default batch size 256 (4 steps per epoch on 1,000
rows) evaluation accuracy stayed at chance on the capacity probe of
``tests/test_learnability.py`` (35 % train) where 0.1 reached 97 % / 83 %. At the default
batch size 32 both momenta fit the probe (0.1: 97.7 % / 92.6 %, 0.01: 97.7 % / 93.5 %). Kernels are
Glorot-uniform and biases zero. Trainable parameters: 117,076
for 86 inputs and 4 outputs, 166,228 for 176 inputs.

Plain ``torch.nn`` layers (``nn.Conv1d``, ``nn.BatchNorm1d``, ``nn.MaxPool1d``, ``nn.Linear``).
"""

from __future__ import annotations

from torch import Tensor, nn

from fearkd.models.base import FearkdModule, keras_init_
from fearkd.models.registry import register_model

__all__ = ["CNN", "cnn_flops_per_sample", "cnn_macs"]

_FILTERS = (128, 128, 64)
_DENSE = (64, 16)
_KERNEL = 3
_N_POOLS = 3
BN_EPS = 1e-3
BN_MOMENTUM = 0.1


def _pooled_lengths(n_features: int) -> tuple[int, int, int, int]:
    l1 = n_features // 2
    l2 = l1 // 2
    return n_features, l1, l2, l2 // 2


class CNN(FearkdModule):
    """The reference's CNN (see the module docstring).

    Parameters
    ----------
    n_features : int
        Input length, at least 8 (three poolings by 2).
    n_outputs : int
        Number of logits.
    dropout : float
        Rate of both dropout layers (0.2 in the reference).
    """

    trunk_names = ("conv1", "bn1", "conv2", "bn2", "conv3")

    def __init__(self, n_features: int, n_outputs: int, *, dropout: float = 0.2) -> None:
        super().__init__()
        minimum = 2**_N_POOLS
        if n_features < minimum:
            raise ValueError(f"The CNN pools three times by 2, so 'n_features' must be at least "
                             f"{minimum}, got {n_features!r}; use an MLP ('ann', 'dnn150') for "
                             f"fewer features.")
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"'dropout' must be in [0, 1), got {dropout!r}.")
        c1, c2, c3 = _FILTERS
        self.conv1 = nn.Conv1d(1, c1, _KERNEL, padding=1)
        self.bn1 = nn.BatchNorm1d(c1, eps=BN_EPS, momentum=BN_MOMENTUM)
        self.conv2 = nn.Conv1d(c1, c2, _KERNEL, padding=1)
        self.bn2 = nn.BatchNorm1d(c2, eps=BN_EPS, momentum=BN_MOMENTUM)
        self.conv3 = nn.Conv1d(c2, c3, _KERNEL, padding=1)
        self.pool = nn.MaxPool1d(2)
        flat = _pooled_lengths(n_features)[-1] * c3
        self.fc1 = nn.Linear(flat, _DENSE[0])
        self.drop1 = nn.Dropout(dropout)
        self.fc2 = nn.Linear(_DENSE[0], _DENSE[1])
        self.drop2 = nn.Dropout(dropout)
        self.head = nn.Linear(_DENSE[1], n_outputs)
        keras_init_(self)

    def features(self, x: Tensor) -> Tensor:
        """Convolutional trunk.

        Parameters
        ----------
        x : Tensor, shape (batch, n_features)

        Returns
        -------
        Tensor, shape (batch, (n_features // 8) * 64)
            Flattened in channels-last (Keras) order: position-major, channel-minor.
        """
        batch = x.shape[0]
        h = x.reshape(batch, 1, -1)
        h = self.pool(self.bn1(self.conv1(h).relu()))
        h = self.pool(self.bn2(self.conv2(h).relu()))
        h = self.pool(self.conv3(h).relu())
        return h.transpose(1, 2).reshape(batch, -1)

    def forward(self, x: Tensor) -> Tensor:
        """Logits, shape (batch, n_outputs), of ``x``, shape (batch, n_features)."""
        h = self.drop1(self.fc1(self.features(x)).tanh())
        h = self.drop2(self.fc2(h).relu())
        return self.head(h)


def cnn_macs(n_features: int, n_outputs: int = 4) -> dict[str, int]:
    """Multiply-accumulates per sample of each weight layer's forward pass."""
    lengths = _pooled_lengths(n_features)
    c1, c2, c3 = _FILTERS
    return {
        "conv1": lengths[0] * _KERNEL * 1 * c1,
        "conv2": lengths[1] * _KERNEL * c1 * c2,
        "conv3": lengths[2] * _KERNEL * c2 * c3,
        "fc1": lengths[3] * c3 * _DENSE[0],
        "fc2": _DENSE[0] * _DENSE[1],
        "head": _DENSE[1] * n_outputs,
    }


def cnn_flops_per_sample(n_features: int, n_outputs: int = 4) -> int:
    """Analytic training FLOPs per sample (forward + backward) of the CNN.

    Every weight layer costs ``2 * MACs`` forward, ``2 * MACs`` for the weight gradient and
    ``2 * MACs`` for the input gradient, except the first convolution, whose input needs no
    gradient: ``6 * sum(MACs) - 2 * MACs(conv1)``. Element-wise work (ReLU, BatchNorm, pooling,
    bias) is not counted. This gives 33.26 MFLOP for 176 inputs and 16.16 MFLOP for 86, the
    figures of BENCHMARKS.md.
    """
    macs = cnn_macs(n_features, n_outputs)
    return 6 * sum(macs.values()) - 2 * macs["conv1"]


register_model("cnn", CNN, description="the reference's 1-D CNN (3 conv blocks, 3 dense layers)")
