"""The reference's earlier fully connected models: ``ann``, ``dnn150``, ``dnn300``.

Their layers are inferred from the parameter counts in the reference's table "Result of
Previous Work" (teacher: 40 input channels, student: 8; 4 fear classes; Keras counts
``(inputs + 1) * units`` per Dense layer):

=========  ==================  ===========================  =================================
name       hidden layers       teacher, 40 inputs           student, 8 inputs
=========  ==================  ===========================  =================================
ann        64, 32              4,836 (40-64-32-4)           420 with ``hidden=(32,)`` (8-32-4)
dnn150     150, 150, 150       52,054 (3 x 150)             24,604 with ``hidden=(150, 150)``
dnn300     300 x 5             374,704 (5 x 300)            274,804 with 4 x 300, 184,504 with 3
=========  ==================  ===========================  =================================

Every count above is reproduced exactly by those layer sizes (tests check them). The students
had fewer hidden layers; ``hidden`` sets them. Hidden layers use ReLU (Keras' usual choice;
the table does not say) and dropout, 0.2 by default for the registered names (the rate of the
seed's CNN; the table does not say); the last layer ``.head`` gives logits.

Why dropout by default: on the capacity probe of ``tests/test_learnability.py`` (86 Gaussian
features of which 2 carry the class, 2,000 training rows) the three MLPs without dropout fit
the 84 noise features and reached 82.8 / 81.8 / 83.2 % test accuracy (``ann`` / ``dnn150`` /
``dnn300``), with dropout 0.2 87.0 / 85.1 / 83.3 %. Dropout sits in the activation's slot of
``.hidden`` so the Linear layers keep their state-dict keys (``hidden.0``, ``hidden.2``, ...)
whatever the rate, and checkpoints written before the default changed still load.
"""

from __future__ import annotations

from torch import Tensor, nn

from fearkd.models.base import FearkdModule, keras_init_
from fearkd.models.registry import register_model

__all__ = ["MLP", "MLP_PRESETS"]

MLP_PRESETS: dict[str, tuple[int, ...]] = {
    "ann": (64, 32),
    "dnn150": (150, 150, 150),
    "dnn300": (300, 300, 300, 300, 300),
}
#: Default dropout rate of the registered MLPs (see the module docstring).
MLP_DROPOUT = 0.2
_ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "elu": nn.ELU}


class MLP(FearkdModule):
    """Fully connected network: ``[Dense(units, activation) -> Dropout] * k -> Dense(n_outputs)``.

    Parameters
    ----------
    n_features : int
    n_outputs : int
    hidden : sequence of int
        Units of each hidden layer.
    activation : {"relu", "tanh", "elu"}
    dropout : float
        Dropout rate after each hidden layer (0 = none; the registered names ``ann``,
        ``dnn150`` and ``dnn300`` default to 0.2).
    """

    trunk_names = ("hidden",)

    def __init__(self, n_features: int, n_outputs: int, *, hidden=(64, 32),
                 activation: str = "relu", dropout: float = 0.0) -> None:
        super().__init__()
        hidden = tuple(hidden)
        if not hidden or any(isinstance(u, bool) or not isinstance(u, int) or u < 1
                             for u in hidden):
            raise ValueError(f"'hidden' must be a non-empty sequence of positive ints, got "
                             f"{hidden!r}.")
        if activation not in _ACTIVATIONS:
            raise ValueError(f"Invalid value for 'activation': expected one of "
                             f"{tuple(_ACTIVATIONS)}, got {activation!r}.")
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"'dropout' must be in [0, 1), got {dropout!r}.")
        layers: list[nn.Module] = []
        size = n_features
        for units in hidden:
            act = _ACTIVATIONS[activation]()
            layers += [nn.Linear(size, units),
                       nn.Sequential(act, nn.Dropout(dropout)) if dropout else act]
            size = units
        self.hidden = nn.Sequential(*layers)
        self.head = nn.Linear(size, n_outputs)
        keras_init_(self)

    def forward(self, x: Tensor) -> Tensor:
        """Logits, shape (batch, n_outputs), of ``x``, shape (batch, n_features)."""
        return self.head(self.hidden(x.reshape(x.shape[0], -1)))


for _name, _hidden in MLP_PRESETS.items():
    register_model(_name, MLP, defaults={"hidden": _hidden, "dropout": MLP_DROPOUT},
                   description=f"fully connected, hidden layers {'-'.join(map(str, _hidden))}")
