"""CNN-LSTM hybrid: a convolutional front-end feeding an LSTM.

Layers (the reference names the model but does not list its layers; this is our choice)::

    Conv1d(filters=64, k=3, same) + ReLU -> MaxPool(2)      [sequence of n_features // 2 steps]
    LSTM(hidden_size=64) over the pooled positions (64 inputs per step), last hidden state
    -> Dense(n_outputs)                                      [.head, logits]

``impl="fast"`` (``cnn-lstm``) runs the front-end through the CNN's fused block,
:func:`fearkd.models.layers_cnn.next_block` (on the zero-padded one-channel input), and the
LSTM through :func:`fearkd.models.layers_rnn.fused_lstm`; ``impl="plain"``
(``cnn-lstm-plain``) runs ``nn.Conv1d``/``nn.MaxPool1d`` and ``nn.LSTM`` (oneDNN on CPU). The
parameters are the same. The fused LSTM is the faster one here too (see :mod:`fearkd.models.rnn`).
"""

from __future__ import annotations

from torch import Tensor, nn
from torch.nn import functional as F

from fearkd.models.layers_cnn import next_block
from fearkd.models.registry import FearkdModule, keras_init_
from fearkd.models.rnn import init_recurrent_, last_hidden_state, run_recurrent

IMPLS = ("fast", "plain")

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
    impl : {"fast", "plain"}
    """

    trunk_names = ("conv1", "rnn")

    def __init__(self, n_features: int, n_outputs: int, *, filters: int = 64,
                 hidden_size: int = 64, impl: str = "fast") -> None:
        super().__init__()
        if n_features < 2:
            raise ValueError(f"The CNN-LSTM pools once by 2, so 'n_features' must be at least 2, "
                             f"got {n_features!r}.")
        if impl not in IMPLS:
            raise ValueError(f"Invalid value for 'impl': expected one of {IMPLS}, got {impl!r}.")
        self.impl = impl
        self.conv1 = nn.Conv1d(1, filters, 3, padding=1)
        self.pool = nn.MaxPool1d(2)
        self.rnn = nn.LSTM(filters, hidden_size)
        self.head = nn.Linear(hidden_size, n_outputs)
        keras_init_(self)
        init_recurrent_(self.rnn)

    def forward(self, x: Tensor) -> Tensor:
        """Logits, shape (batch, n_outputs), of ``x``, shape (batch, n_features)."""
        batch = x.shape[0]
        x = x.reshape(batch, -1)
        if self.impl == "fast":
            padded = F.pad(x, (1, 1)).unsqueeze(-1)  # (B, L + 2, 1): 'same' padding, 1 channel
            h = next_block(padded, self.conv1, None, pad_out=False)  # (B, L // 2, C)
            return self.head(last_hidden_state(self.rnn, h.transpose(0, 1), "fused"))
        h = self.pool(self.conv1(x.unsqueeze(1)).relu())  # (B, C, L)
        hs = run_recurrent(self.rnn, h.permute(2, 0, 1).contiguous(), "native")
        return self.head(hs[-1])
