"""``attention``: a small transformer over feature tokens (one token per channel x band).

Each input feature (``eeg:<channel>:<band>`` band power, or a peripheral statistic) becomes
one token: its value times a learned vector plus a learned embedding of its position (which
channel and band it is), as in the FT-Transformer of Gorishniy et al. (2021). A learned
class token is prepended; ``n_layers`` plain ``nn.TransformerEncoderLayer`` blocks let every
channel x band token attend to every other; the class token's output feeds ``.head``.
It takes the flat ``(batch, n_features)`` input of every fearkd model, so it builds from
``make_model("attention", n_features, n_outputs)`` alone and serves as teacher or student.

Size with the defaults (``d_model=16``, ``n_heads=2``, ``n_layers=1``, ``ff=32``):
``2 * 16 * n_features`` token parameters + 2,224 per layer + 16 (class token) + the head
``17 * n_outputs``; 176 teacher features and 4 classes give 7,940 parameters
(``parameter_table(["attention"], 176, 4)``).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from fearkd.models.base import FearkdModule, check_size
from fearkd.models.registry import register_model

__all__ = ["FeatureAttention", "FeatureTokens"]


class FeatureTokens(nn.Module):
    """One token per feature: ``value * x_j + position_j``, shape (batch, n_features, d)."""

    def __init__(self, n_features: int, d_model: int) -> None:
        super().__init__()
        self.value = nn.Parameter(torch.empty(n_features, d_model))
        self.position = nn.Parameter(torch.zeros(n_features, d_model))
        nn.init.xavier_uniform_(self.value)
        nn.init.normal_(self.position, std=0.02)

    def forward(self, x: Tensor) -> Tensor:
        """Tokens of ``x``, shape (batch, n_features)."""
        return x.unsqueeze(-1) * self.value + self.position


class FeatureAttention(FearkdModule):
    """Transformer encoder over one token per feature, class-token readout.

    Parameters
    ----------
    n_features : int
        Number of tokens (one per feature).
    n_outputs : int
    d_model : int
        Token width; a multiple of ``n_heads``.
    n_heads : int
    n_layers : int
    ff : int
        Width of each block's feed-forward layer.
    dropout : float
        Dropout inside the blocks.
    """

    trunk_names = ("tokens", "encoder")

    def __init__(self, n_features: int, n_outputs: int, *, d_model: int = 16,
                 n_heads: int = 2, n_layers: int = 1, ff: int = 32,
                 dropout: float = 0.0) -> None:
        super().__init__()
        d_model = check_size("d_model", d_model, 1)
        n_heads = check_size("n_heads", n_heads, 1)
        n_layers = check_size("n_layers", n_layers, 1)
        ff = check_size("ff", ff, 1)
        if d_model % n_heads:
            raise ValueError(f"Invalid value for 'd_model': expected a multiple of n_heads "
                             f"({n_heads}), got {d_model}; set [models.params.attention] "
                             f"d_model to a multiple of n_heads.")
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"'dropout' must be in [0, 1), got {dropout!r}.")
        self.tokens = FeatureTokens(n_features, d_model)
        self.cls = nn.Parameter(torch.zeros(1, 1, d_model))
        layer = nn.TransformerEncoderLayer(d_model, n_heads, dim_feedforward=ff,
                                           dropout=float(dropout), batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        self.head = nn.Linear(d_model, n_outputs)

    def forward(self, x: Tensor) -> Tensor:
        """Logits, shape (batch, n_outputs), of ``x``, shape (batch, n_features)."""
        x = x.reshape(x.shape[0], -1)
        tokens = self.tokens(x)
        # x.shape[0], not len(x): the ONNX exporter traces len() as a constant batch size
        tokens = torch.cat([self.cls.expand(x.shape[0], -1, -1), tokens], dim=1)
        return self.head(self.encoder(tokens)[:, 0])


register_model("attention", FeatureAttention,
               description="transformer over one token per channel x band feature")
