"""Models: one registry (``make_model``), fast layers, classic baselines."""

from fearkd.models.baselines import BASELINES, make_baseline
from fearkd.models.cnn import CNN, cnn_flops_per_sample
from fearkd.models.hybrid import CNNLSTM
from fearkd.models.mlp import MLP, MLP_PRESETS
from fearkd.models.registry import (
    FREEZE_POLICIES,
    FearkdModule,
    ModelSpec,
    available_models,
    freeze,
    make_model,
    parameter_summary,
    parameter_table,
    replace_head,
)
from fearkd.models.rnn import RecurrentNet, rnn_flops_per_sample

__all__ = [
    "BASELINES",
    "CNN",
    "CNNLSTM",
    "FREEZE_POLICIES",
    "FearkdModule",
    "MLP",
    "MLP_PRESETS",
    "ModelSpec",
    "RecurrentNet",
    "available_models",
    "cnn_flops_per_sample",
    "freeze",
    "make_baseline",
    "make_model",
    "parameter_summary",
    "parameter_table",
    "replace_head",
    "rnn_flops_per_sample",
]
