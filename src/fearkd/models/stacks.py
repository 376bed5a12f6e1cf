"""The published notebooks' recurrent backbones: ``bilstm`` and ``bigru``.

Layers (the notebooks' Keras stacks; every recurrent layer but the last returns its sequence)::

    bilstm: Bidirectional(LSTM(128)) -> LSTM(128) -> LSTM(32)
            -> Dense(32, ReLU) -> Dense(16, ReLU) -> Dense(16, ReLU) -> Dense(n_outputs)
    bigru:  Bidirectional(GRU(128)) -> GRU(256) -> GRU(32)
            -> Dense(32, ReLU) -> Dense(16, ReLU) -> Dense(16, ReLU) -> Dense(n_outputs)

The notebooks give the GRU stack's recurrent layers only; its dense layers here are the LSTM
stack's (32-16-16, ReLU), our choice. ``.head`` is the last ``Dense`` (logits).

**How the features are read.** The notebooks read the feature vector as a sequence of
``n_features`` one-dimensional steps. Here the vector is cut into tokens of ``token_size``
consecutive features (the last token zero-padded), one token per step: ``ceil(n_features /
token_size)`` steps of ``token_size`` inputs. The default ``token_size=16`` (6 steps for 86
features, 11 for 176) makes the stacks 16x shorter to run and lets them fit the capacity probe
of ``tests/test_learnability.py`` with the project's default training settings, which the
one-dimensional reading does not within a bounded number of epochs; ``token_size=1`` is the
notebooks' reading and gives the notebooks' parameter counts. On that probe (2,000 training
rows, one torch thread, a shared machine) 16-feature tokens took 28 s (``bigru``) and 18 s
(``bilstm``) to reach 91.8 % and 90.5 % test accuracy; 8-feature tokens took 53 s and 28 s for
93.8 % and 94.2 %.

**Parameter counts.** Keras' LSTM layer has one bias vector (``4 * units``); PyTorch's
``nn.LSTM`` has two (``bias_ih`` and ``bias_hh``), so each LSTM direction counts ``4 * units``
more in PyTorch for the same function (the extra bias is redundant: only the sum acts). Keras'
default GRU (``reset_after=True``) has two bias vectors, as PyTorch's ``nn.GRU``, and counts
the same. For 176 one-dimensional steps and 10 outputs: ``bilstm`` 352,874 in Keras, 354,538
in PyTorch (+ 4 * (128 + 128 + 128 + 32)); ``bigru`` 525,226 in both.

Initialisation follows Keras (Glorot-uniform input kernels, orthogonal recurrent kernels, zero
biases, LSTM forget-gate bias 1; Glorot-uniform dense kernels), except that the GRU's update
gate starts with a bias of 1 (:func:`fearkd.models.rnn.init_recurrent_`). Plain
``nn.LSTM``/``nn.GRU``.
"""

from __future__ import annotations

import math

from torch import Tensor, nn
from torch.nn import functional as F

from fearkd.models.base import FearkdModule, check_size, keras_init_
from fearkd.models.registry import register_model
from fearkd.models.rnn import init_recurrent_

__all__ = ["RecurrentStack", "STACKS"]

#: Features per step of the registered stacks (see the module docstring).
TOKEN_SIZE = 16
#: Recurrent layers of each registered stack: (units, bidirectional) per layer.
STACKS: dict[str, tuple[str, tuple[tuple[int, bool], ...]]] = {
    "bilstm": ("lstm", ((128, True), (128, False), (32, False))),
    "bigru": ("gru", ((128, True), (256, False), (32, False))),
}
DENSE = (32, 16, 16)
_CELLS = {"lstm": nn.LSTM, "gru": nn.GRU}


class RecurrentStack(FearkdModule):
    """Stacked recurrent layers over feature tokens, then dense layers and ``.head``.

    Parameters
    ----------
    n_features : int
        Length of the input feature vector.
    n_outputs : int
        Number of logits.
    cell : {"lstm", "gru"}
    layers : sequence of (int, bool)
        ``(units, bidirectional)`` of each recurrent layer, first to last.
    dense : sequence of int
        Units of the ReLU dense layers between the last recurrent state and ``.head``.
    token_size : int
        Features per step (see the module docstring); 1 reads one feature per step.

    Notes
    -----
    ``x`` of shape ``(batch, n_features)`` becomes ``(batch, steps, token_size)`` with
    ``steps = ceil(n_features / token_size)``; the last layer's output at the last step,
    shape ``(batch, units)``, feeds the dense layers; logits have shape ``(batch, n_outputs)``.
    """

    trunk_names = ("rnns",)

    def __init__(self, n_features: int, n_outputs: int, *, cell: str = "lstm",
                 layers=((128, True), (128, False), (32, False)), dense=DENSE,
                 token_size: int = TOKEN_SIZE) -> None:
        super().__init__()
        if cell not in _CELLS:
            raise ValueError(f"Invalid value for 'cell': expected one of {tuple(_CELLS)}, "
                             f"got {cell!r}.")
        self.token_size = check_size("token_size", token_size, 1)
        self.n_steps = math.ceil(n_features / self.token_size)
        self.n_pad = self.n_steps * self.token_size - n_features
        self.rnns = nn.ModuleList()
        size = self.token_size
        for units, bidirectional in layers:
            units = check_size("layers units", units, 1)
            rnn = _CELLS[cell](size, units, batch_first=True, bidirectional=bool(bidirectional))
            self.rnns.append(rnn)
            size = units * (2 if bidirectional else 1)
        if not self.rnns:
            raise ValueError("'layers' must hold at least one (units, bidirectional) pair.")
        blocks: list[nn.Module] = []
        for units in dense:
            blocks += [nn.Linear(size, check_size("dense units", units, 1)), nn.ReLU()]
            size = units
        self.dense = nn.Sequential(*blocks)
        self.head = nn.Linear(size, n_outputs)
        keras_init_(self)
        for rnn in self.rnns:
            init_recurrent_(rnn)

    def tokens(self, x: Tensor) -> Tensor:
        """``x``, shape (batch, n_features), as steps, shape (batch, steps, token_size)."""
        x = x.reshape(x.shape[0], -1)
        if self.n_pad:
            x = F.pad(x, (0, self.n_pad))
        return x.reshape(x.shape[0], self.n_steps, self.token_size)

    def forward(self, x: Tensor) -> Tensor:
        """Logits, shape (batch, n_outputs), of ``x``, shape (batch, n_features)."""
        h = self.tokens(x)
        for rnn in self.rnns:
            h = rnn(h)[0]
        return self.head(self.dense(h[:, -1]))


def _stack_builder(name: str):
    cell, layers = STACKS[name]

    def build(n_features: int, n_outputs: int, **params) -> RecurrentStack:
        for fixed in ("cell", "layers"):
            if fixed in params:
                raise ValueError(f"Model {name!r} fixes {fixed!r}; register another model with "
                                 f"register_model to change it.")
        return RecurrentStack(n_features, n_outputs, cell=cell, layers=layers, **params)

    build.__name__ = build.__qualname__ = f"build_{name}"
    return build


register_model("bilstm", _stack_builder("bilstm"),
               description="the notebooks' BiLSTM(128) -> LSTM(128) -> LSTM(32) -> dense "
                           "32-16-16, over 16-feature tokens")
register_model("bigru", _stack_builder("bigru"),
               description="the notebooks' BiGRU(128) -> GRU(256) -> GRU(32) -> dense 32-16-16, "
                           "over 16-feature tokens")
