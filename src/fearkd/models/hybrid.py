"""CNN-LSTM hybrid: a convolutional front-end feeding an LSTM.

Layers (the reference names the model but does not list its layers; this is our choice)::

    Conv1d(filters=64, k=3, same) + ReLU -> MaxPool(2)      [sequence of n_features // 2 steps]
    LSTM(hidden_size=64) over the pooled positions (64 inputs per step)
    -> max over the steps of the LSTM's outputs -> Dense(n_outputs)   [.head, logits]

Why the maximum over steps rather than the last hidden state: the positions are the features'
order, so a feature near the start of the vector had to survive ``n_features // 2`` LSTM steps
to reach the last state. On the capacity probe of ``tests/test_learnability.py`` (the class in
the first two of 86 features) the last-state read-out stayed at chance (27.6 % train, 23.4 %
test) and the maximum over steps reaches 99.0 % / 96.7 %, with the same parameters.

Plain ``nn.Conv1d``, ``nn.MaxPool1d`` and ``nn.LSTM`` layers; registry name ``cnn-lstm``.
"""

from __future__ import annotations

from torch import Tensor, nn

from fearkd.models.base import FearkdModule, keras_init_
from fearkd.models.registry import register_model
from fearkd.models.rnn import init_recurrent_

__all__ = ["CNNLSTM"]


class CNNLSTM(FearkdModule):
    """Conv front-end + LSTM (see the module docstring).

    Parameters
    ----------
    n_features : int
        Input length, at least 2 (one pooling by 2).
    n_outputs : int
    filters : int
        Convolution channels (= LSTM input size).
    hidden_size : int
        LSTM units.
    """

    trunk_names = ("conv1", "rnn")

    def __init__(self, n_features: int, n_outputs: int, *, filters: int = 64,
                 hidden_size: int = 64) -> None:
        super().__init__()
        if n_features < 2:
            raise ValueError(f"The CNN-LSTM pools once by 2, so 'n_features' must be at least 2, "
                             f"got {n_features!r}.")
        self.conv1 = nn.Conv1d(1, filters, 3, padding=1)
        self.pool = nn.MaxPool1d(2)
        self.rnn = nn.LSTM(filters, hidden_size)
        self.head = nn.Linear(hidden_size, n_outputs)
        keras_init_(self)
        init_recurrent_(self.rnn)

    def forward(self, x: Tensor) -> Tensor:
        """Logits, shape (batch, n_outputs), of ``x``, shape (batch, n_features)."""
        batch = x.shape[0]
        h = self.pool(self.conv1(x.reshape(batch, 1, -1)).relu())  # (B, C, L // 2)
        hs, _ = self.rnn(h.permute(2, 0, 1).contiguous())  # time-major: (L // 2, B, hidden_size)
        return self.head(hs.amax(0))


register_model("cnn-lstm", CNNLSTM,
               description="Conv1d(64) + MaxPool front-end feeding an LSTM(64), max over steps "
                           "-> Dense")
