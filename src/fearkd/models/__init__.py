"""Models: the model contract, one registry (``make_model``), freeze policies, baselines.

Importing this package imports the model files, which register the built-in names (``cnn``,
``lstm``, ``gru``, ``cnn-lstm``, ``ann``, ``dnn150``, ``dnn300``, ``bilstm``, ``bigru``,
``cnn-teacher``, ``attention``, ``multi-input``, ``ensemble``) in :data:`MODELS`; a model
from outside the package joins them through :func:`register_model`.
"""

from fearkd.models.base import FearkdModule, ModelSpec, keras_init_
from fearkd.models.baselines import BASELINES, make_baseline
from fearkd.models.cnn import CNN, cnn_flops_per_sample
from fearkd.models.hybrid import CNNLSTM
from fearkd.models.mlp import MLP, MLP_PRESETS
from fearkd.models.registry import (
    FREEZE_POLICIES,
    MODELS,
    available_models,
    freeze,
    make_model,
    parameter_summary,
    parameter_table,
    register_freeze_policy,
    register_model,
    replace_head,
)
from fearkd.models.rnn import RecurrentNet, rnn_flops_per_sample
from fearkd.models.stacks import RecurrentStack
from fearkd.models.teacher import TeacherCNN

# isort: split
# registered after the reference's models, so it is listed after them
from fearkd.models.attention import FeatureAttention
from fearkd.models.multi_input import MultiInput

# isort: split
# an ensemble holds the models above, so it is listed last
from fearkd.models.ensemble import Ensemble

__all__ = [
    "BASELINES",
    "CNN",
    "CNNLSTM",
    "Ensemble",
    "FeatureAttention",
    "MultiInput",
    "FREEZE_POLICIES",
    "FearkdModule",
    "MLP",
    "MLP_PRESETS",
    "MODELS",
    "ModelSpec",
    "RecurrentNet",
    "RecurrentStack",
    "TeacherCNN",
    "available_models",
    "cnn_flops_per_sample",
    "freeze",
    "keras_init_",
    "make_baseline",
    "make_model",
    "parameter_summary",
    "parameter_table",
    "register_freeze_policy",
    "register_model",
    "replace_head",
    "rnn_flops_per_sample",
]
