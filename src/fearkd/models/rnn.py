"""The reference's recurrent backbones: LSTM and GRU over the feature vector as a sequence.

Each feature is one time step with one input dimension (``n_features`` steps); ``num_layers``
stacked recurrent layers of ``hidden_size`` units (64 by default) run from a zero state, and the
last layer's hidden state after the last step goes through the output layer ``.head``
(``Dense(n_outputs)``, logits). Initialisation follows Keras: Glorot-uniform input kernels,
orthogonal recurrent kernels, zero biases and, for the LSTM, a forget-gate bias of 1. The GRU
is PyTorch's formulation, which is Keras' ``reset_after=True`` default.

Implementations (same weights, same function, interchangeable state dicts; both hold an
``nn.LSTM``/``nn.GRU`` as ``.rnn``):

``impl="fused"`` (``lstm``, ``gru``) runs a one-layer network through the whole-sequence
    autograd functions of :mod:`fearkd.models.layers_rnn` (one GEMM per step forward, hand-written
    backward through time, weight gradients by GEMM as the loop goes), fed with the parameters of
    ``.rnn``. Stacks of two or more layers fall back to ``.rnn`` itself.
``impl="native"`` (``lstm-plain``, ``gru-plain``, the benchmark reference) calls
    ``nn.LSTM``/``nn.GRU`` time-major; on CPU PyTorch runs them through oneDNN's RNN kernels.

Measured on the shared 2-core machine (``benchmarks/bench_training.py``, 176 steps, batch 256,
whole training epochs, 2 threads): with the compiled passes (each thread runs a slice of the
batch through every step) the fused path ran 3.3-3.6x as fast as oneDNN's for the LSTM and
10.8-11.0x for the GRU (0.46-0.52 and 0.37-0.40 of the 2-thread matrix-multiply ceiling; on
1 thread 0.54 and 0.41). Through PyTorch operations alone (``FEARKD_KERNELS=0``; also CUDA) it
was 1.6x and 5.0x (0.22 and 0.17): one step's operations are too small for PyTorch to share
between cores.

Parameter counts: PyTorch's LSTM has two bias vectors (``bias_ih``, ``bias_hh``), so it counts
``4 * hidden_size`` more parameters per layer than Keras' LSTM for the same function; PyTorch's
GRU and Keras' ``reset_after=True`` GRU both have two and count the same.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from fearkd.models.layers_rnn import fused_gru, fused_lstm
from fearkd.models.registry import FearkdModule, keras_init_

__all__ = ["RecurrentNet", "init_recurrent_", "last_hidden_state", "rnn_flops_per_sample",
           "run_recurrent"]

CELLS = {"lstm": (nn.LSTM, 4), "gru": (nn.GRU, 3)}
IMPLS = ("fused", "native")


def init_recurrent_(rnn: nn.LSTM | nn.GRU) -> None:
    """Keras initialisation of a recurrent module (in place)."""
    hidden = rnn.hidden_size
    for name, param in rnn.named_parameters():
        if name.startswith("weight_ih"):
            nn.init.xavier_uniform_(param)
        elif name.startswith("weight_hh"):
            nn.init.orthogonal_(param)
        else:
            nn.init.zeros_(param)
            if isinstance(rnn, nn.LSTM) and name.startswith("bias_ih"):
                with torch.no_grad():
                    param[hidden : 2 * hidden] = 1.0  # Keras unit_forget_bias


def run_recurrent(rnn: nn.LSTM | nn.GRU, seq: Tensor, impl: str = "native") -> Tensor:
    """Run a time-major recurrent stack from zero state and return every step's hidden state.

    Parameters
    ----------
    rnn : nn.LSTM or nn.GRU
        Holds the weights (``batch_first=False``, no dropout, unidirectional).
    seq : Tensor, shape (steps, batch, input_size)
    impl : {"native"}
        Only ``nn.LSTM``/``nn.GRU`` return the whole sequence; the fused functions return the
        last state (see :func:`last_hidden_state`).

    Returns
    -------
    Tensor, shape (steps, batch, hidden_size)
        The last layer's hidden states.
    """
    if impl != "native":
        raise ValueError(f"Invalid value for 'impl': run_recurrent returns every step and "
                         f"supports only 'native', got {impl!r}; use last_hidden_state for "
                         f"'fused'.")
    return rnn(seq)[0]


def last_hidden_state(rnn: nn.LSTM | nn.GRU, seq: Tensor, impl: str) -> Tensor:
    """The last layer's hidden state after the last step, from zero state.

    Parameters
    ----------
    rnn : nn.LSTM or nn.GRU
        Holds the weights (``batch_first=False``, no dropout, unidirectional, with biases).
    seq : Tensor, shape (steps, batch, input_size)
    impl : {"fused", "native"}
        ``"fused"`` runs a one-layer ``rnn`` through :func:`fearkd.models.layers_rnn.fused_lstm`
        or ``fused_gru`` (stacks of several layers use ``rnn`` itself); ``"native"`` calls
        ``rnn``.

    Returns
    -------
    Tensor, shape (batch, hidden_size)
    """
    if impl not in IMPLS:
        raise ValueError(f"Invalid value for 'impl': expected one of {IMPLS}, got {impl!r}.")
    if impl == "native" or rnn.num_layers > 1:
        return rnn(seq)[0][-1]
    fused = fused_lstm if isinstance(rnn, nn.LSTM) else fused_gru
    return fused(seq, rnn.weight_ih_l0, rnn.weight_hh_l0, rnn.bias_ih_l0, rnn.bias_hh_l0)


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
        Units per recurrent layer (64 in the reference).
    num_layers : int
        Stacked recurrent layers.
    impl : {"fused", "native"}
        Fused whole-sequence functions (one layer; more layers use ``nn.LSTM``/``nn.GRU``) or
        ``nn.LSTM``/``nn.GRU``; same function, same parameters.
    """

    trunk_names = ("rnn",)

    def __init__(self, n_features: int, n_outputs: int, *, cell: str = "lstm",
                 hidden_size: int = 64, num_layers: int = 1, impl: str = "fused") -> None:
        super().__init__()
        if cell not in CELLS:
            raise ValueError(f"Invalid value for 'cell': expected one of {tuple(CELLS)}, "
                             f"got {cell!r}.")
        if impl not in IMPLS:
            raise ValueError(f"Invalid value for 'impl': expected one of {IMPLS}, got {impl!r}.")
        for name, value in (("hidden_size", hidden_size), ("num_layers", num_layers)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"'{name}' must be a positive int, got {value!r}.")
        self.cell, self.impl = cell, impl
        self.rnn = CELLS[cell][0](1, hidden_size, num_layers)
        self.head = nn.Linear(hidden_size, n_outputs)
        keras_init_(self)
        init_recurrent_(self.rnn)

    def forward(self, x: Tensor) -> Tensor:
        """Logits, shape (batch, n_outputs), of ``x``, shape (batch, n_features)."""
        seq = x.reshape(x.shape[0], -1).t().unsqueeze(-1)
        return self.head(last_hidden_state(self.rnn, seq, self.impl))


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
