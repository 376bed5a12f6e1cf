"""Single-width recurrent backbones: ``lstm`` and ``gru`` over the feature vector as a sequence.

These are not the seed's networks (its notebooks stack BiLSTM(128) -> LSTM(128) -> LSTM(32)
and BiGRU(128) -> GRU(256) -> GRU(32): registry names ``bilstm`` and ``bigru``, in
:mod:`fearkd.models.stacks`); they are small recurrent baselines. The feature vector is cut into
tokens of ``token_size`` consecutive features (default 8, the last zero-padded), one token per
time step (``ceil(n_features / token_size)`` steps; ``token_size=1`` reads one feature per
step, as the checkpoints written before this parameter existed); ``num_layers``
stacked recurrent layers of ``hidden_size`` units (64 by default) run from a zero state, and the
last layer's hidden state after the last step goes through the output layer ``.head``
(``Dense(n_outputs)``, logits). Initialisation follows Keras: Glorot-uniform input kernels,
orthogonal recurrent kernels, zero biases and, for the LSTM, a forget-gate bias of 1; unlike
Keras, the GRU's update gate starts with a bias of 1 as well (see :func:`init_recurrent_`). The
GRU is PyTorch's formulation, which is Keras' ``reset_after=True`` default.

The recurrent layers are a plain ``nn.LSTM``/``nn.GRU`` held as ``.rnn`` and run time-major.
Registry names: ``lstm`` and ``gru``.

Parameter counts: PyTorch's LSTM has two bias vectors (``bias_ih``, ``bias_hh``), so it counts
``4 * hidden_size`` more parameters per layer than Keras' LSTM for the same function; PyTorch's
GRU and Keras' ``reset_after=True`` GRU both have two and count the same.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from fearkd.models.base import FearkdModule, check_size, keras_init_
from fearkd.models.registry import register_model

__all__ = ["RecurrentNet", "init_recurrent_", "rnn_flops_per_sample"]

CELLS = {"lstm": (nn.LSTM, 4), "gru": (nn.GRU, 3)}


def init_recurrent_(rnn: nn.LSTM | nn.GRU) -> None:
    """Keras initialisation of a recurrent module (in place), with a remembering start.

    Glorot-uniform input kernels, orthogonal recurrent kernels, zero biases, except the gates
    that decide how much of the state is kept: the LSTM's forget gate (Keras'
    ``unit_forget_bias``) and the GRU's update gate both start with a bias of 1 (PyTorch's
    GRU keeps ``z * h``, so a positive bias keeps the state). Keras starts the GRU's update
    gate at 0, which halves the state at every step: on the capacity probe of
    ``tests/test_learnability.py`` a GRU(32) over 11 tokens forgot the first token, stayed at
    chance (26.9 % train, 24.4 % test) and was stopped early; with the bias 1 it reaches
    97.1 % / 91.6 % with the same settings.
    """
    hidden = rnn.hidden_size
    for name, param in rnn.named_parameters():
        if name.startswith("weight_ih"):
            nn.init.xavier_uniform_(param)
        elif name.startswith("weight_hh"):
            nn.init.orthogonal_(param)
        else:
            nn.init.zeros_(param)
            if name.startswith("bias_ih"):
                with torch.no_grad():
                    # LSTM gates (i, f, g, o), GRU gates (r, z, n): the second is f or z
                    param[hidden : 2 * hidden] = 1.0


class RecurrentNet(FearkdModule):
    """LSTM or GRU backbone over the features as a sequence, plus a Dense head.

    Parameters
    ----------
    n_features : int
        Sequence length (one feature per step).
    n_outputs : int
        Number of logits.
    cell : {"lstm", "gru"}
    hidden_size : int
        Units per recurrent layer (64 by default).
    num_layers : int
        Stacked recurrent layers.
    token_size : int
        Features per step: the vector is cut into ``ceil(n_features / token_size)`` tokens
        (the last zero-padded); 1 reads one feature per step.
    """

    trunk_names = ("rnn",)

    def __init__(self, n_features: int, n_outputs: int, *, cell: str = "lstm",
                 hidden_size: int = 64, num_layers: int = 1, token_size: int = 8) -> None:
        super().__init__()
        if cell not in CELLS:
            raise ValueError(f"Invalid value for 'cell': expected one of {tuple(CELLS)}, "
                             f"got {cell!r}.")
        for name, value in (("hidden_size", hidden_size), ("num_layers", num_layers)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"'{name}' must be a positive int, got {value!r}.")
        self.cell = cell
        self.token_size = check_size("token_size", token_size, 1)
        self.n_steps = math.ceil(n_features / self.token_size)
        self.rnn = CELLS[cell][0](self.token_size, hidden_size, num_layers)
        self.head = nn.Linear(hidden_size, n_outputs)
        keras_init_(self)
        init_recurrent_(self.rnn)

    def forward(self, x: Tensor) -> Tensor:
        """Logits, shape (batch, n_outputs), of ``x``, shape (batch, n_features)."""
        x = x.reshape(x.shape[0], -1)
        pad = self.n_steps * self.token_size - x.shape[1]
        if pad:
            x = F.pad(x, (0, pad))
        # (steps, batch, token_size), time-major
        seq = x.reshape(x.shape[0], self.n_steps, self.token_size).transpose(0, 1)
        return self.head(self.rnn(seq)[0][-1])


def _recurrent_builder(cell: str):
    """A registry builder for ``cell`` (the name fixes the cell; ``cell=`` is refused)."""

    def build(n_features: int, n_outputs: int, **params) -> RecurrentNet:
        if "cell" in params:
            raise ValueError(f"Model {cell!r} fixes 'cell'; choose the model by name ('lstm' or "
                             f"'gru') instead of passing cell={params['cell']!r}.")
        return RecurrentNet(n_features, n_outputs, cell=cell, **params)

    build.__name__ = build.__qualname__ = f"build_{cell}"
    return build


def rnn_flops_per_sample(n_features: int, cell: str = "lstm", hidden_size: int = 64,
                         input_size: int = 1, num_layers: int = 1) -> int:
    """Analytic training FLOPs per sample (forward + backward) of a recurrent stack.

    ``gates * (input + hidden) * hidden * 2 * steps * 3`` per layer (4 gates for the LSTM, 3
    for the GRU; the factor 3 is forward + weight gradient + input gradient; element-wise gate
    work and the head are not counted). For 176 steps, 1 input and 64 units: 17.57 MFLOP (LSTM)
    and 13.18 MFLOP (GRU), i.e. 1.79 s and 1.34 s for 20,000 samples at 196.5 GFLOP/s, the
    ceilings of BENCHMARKS.md.
    """
    if cell not in CELLS:
        raise ValueError(f"Invalid value for 'cell': expected one of {tuple(CELLS)}, "
                         f"got {cell!r}.")
    gates = CELLS[cell][1]
    total = 0
    size_in = input_size
    for _ in range(num_layers):
        total += gates * (size_in + hidden_size) * hidden_size * 2 * n_features * 3
        size_in = hidden_size
    return total


register_model("lstm", _recurrent_builder("lstm"),
               description="LSTM(64) over 8-feature tokens, last state -> Dense")
register_model("gru", _recurrent_builder("gru"),
               description="GRU(64) over 8-feature tokens, last state -> Dense")
