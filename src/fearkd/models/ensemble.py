"""``ensemble``: several registered models as one teacher (soft voting or stacking).

The module holds its members (each a registered model on the same input columns), each
member's input scale (the ``StandardScaler`` it was trained with, as buffers, so the ensemble
takes the unscaled columns) and a Linear ``.head`` over the members' concatenated class
probabilities:

``kind = "vote"``
    The head is fixed to the mean of the members' probabilities; the output is its log
    (log-probabilities are logits: a softmax maps them back to the mean probabilities).
``kind = "stack"``
    The head is a multinomial logistic regression over the members' probabilities (its
    coefficients and intercepts); the output is its logits.

It is trained by :func:`fearkd.training.ensemble.fit_ensemble_model` (each member through the
one training loop on its own; stacking's head on inner-cross-validation out-of-fold
probabilities, never on predictions made on the meta-model's own training rows), which the
stage runner calls for a stage whose model is an ensemble. An experiment builds it with
``[models] ensemble = "vote" | "stack"`` over ``[models] backbones``, as the teacher of a
unit of its own (:mod:`fearkd.methods`, method ``ensemble``).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from fearkd.models.registry import MODELS, make_model, register_model, replace_head

__all__ = ["Ensemble", "ENSEMBLE_KINDS"]

#: Values of ``[models] ensemble`` (and of the model's ``kind``).
ENSEMBLE_KINDS = ("vote", "stack")


class Ensemble(nn.Module):
    """Members, their input scales and a head over their probabilities (module docstring).

    Parameters
    ----------
    n_features, n_outputs : int
    members : sequence of str
        Registry names of the members (not ``ensemble``); the same name twice is two members.
    kind : {"vote", "stack"}
    member_params : mapping of str to mapping, optional
        Constructor parameters per member name (``[models.params.NAME]``).
    n_inner : int
        Inner folds of stacking's out-of-fold probabilities.
    feature_names : sequence of str, optional
        Passed to members that take them (``multi-input``).
    """

    takes_feature_names = True

    def __init__(self, n_features: int, n_outputs: int, *, members=("ann",), kind: str = "vote",
                 member_params: Mapping | None = None, n_inner: int = 3,
                 feature_names=None) -> None:
        super().__init__()
        if isinstance(members, str) or not members or not all(isinstance(m, str)
                                                               for m in members):
            raise ValueError(f"Invalid value for 'members' of model 'ensemble': expected a "
                             f"non-empty list of model names, got {members!r}; set [models] "
                             f"backbones = [\"ann\", \"attention\"] with [models] ensemble.")
        bad = [m for m in members if m == "ensemble" or m not in MODELS]
        if bad:
            raise ValueError(f"Invalid value for 'members' of model 'ensemble': {bad!r} are not "
                             f"models an ensemble can hold; expected names of "
                             f"{[n for n in MODELS.names() if n != 'ensemble']!r}.")
        if kind not in ENSEMBLE_KINDS:
            raise ValueError(f"Invalid value for 'kind' of model 'ensemble': expected one of "
                             f"{list(ENSEMBLE_KINDS)!r}, got {kind!r}; set [models] ensemble = "
                             f"\"vote\" or \"stack\".")
        if isinstance(n_inner, bool) or not isinstance(n_inner, int) or n_inner < 2:
            raise ValueError(f"Invalid value for 'n_inner' of model 'ensemble': expected an "
                             f"integer >= 2, got {n_inner!r}; set [models.params.ensemble] "
                             f"n_inner = 3.")
        self.kind, self.n_inner, self.n_outputs = kind, n_inner, n_outputs
        params = dict(member_params or {})
        built = []
        for name in members:
            kw = dict(params.get(name) or {})
            if feature_names is not None and getattr(MODELS.get(name), "takes_feature_names",
                                                     False):
                kw.setdefault("feature_names", list(feature_names))
            built.append(make_model(name, n_features, n_outputs, **kw))
        self.members = nn.ModuleList(built)
        for k in range(len(built)):
            self.register_buffer(f"mean_{k}", torch.zeros(n_features))
            self.register_buffer(f"scale_{k}", torch.ones(n_features))
        self.head = nn.Linear(len(built) * n_outputs, n_outputs)
        self.set_vote_head()

    def replace_outputs(self, n_outputs: int, *, random_state: int | None = None) -> None:
        """A new task (transfer learning): each member gets a fresh ``n_outputs`` head on its
        trunk and the combining head is rebuilt as the vote (what :func:`replace_head` calls)."""
        for k, member in enumerate(self.members):
            replace_head(member, n_outputs,
                         random_state=None if random_state is None else int(random_state) + k)
        self.n_outputs = int(n_outputs)
        self.head = nn.Linear(len(self.members) * self.n_outputs, self.n_outputs)
        self.set_vote_head()

    def set_vote_head(self) -> None:
        """Make ``.head`` the mean of the members' probabilities."""
        k = len(self.members)
        with torch.no_grad():
            self.head.weight.copy_(torch.eye(self.n_outputs).repeat(1, k) / k)
            self.head.bias.zero_()

    def set_scale(self, k: int, mean, scale) -> None:
        """Member ``k``'s input scale: it sees ``(x - mean) / scale``."""
        with torch.no_grad():
            getattr(self, f"mean_{k}").copy_(torch.as_tensor(mean, dtype=torch.float32))
            getattr(self, f"scale_{k}").copy_(torch.as_tensor(scale, dtype=torch.float32))

    def member_proba(self, x: Tensor) -> Tensor:
        """Concatenated member probabilities, shape (batch, n_members * n_outputs)."""
        x = x.reshape(x.shape[0], -1)
        return torch.cat([torch.softmax(m((x - getattr(self, f"mean_{k}"))
                                          / getattr(self, f"scale_{k}")), dim=1)
                          for k, m in enumerate(self.members)], dim=1)

    def forward(self, x: Tensor) -> Tensor:
        """Logits, shape (batch, n_outputs): log mean probabilities (vote) or the meta-model's."""
        z = self.head(self.member_proba(x))
        return torch.log(z.clamp_min(1e-12)) if self.kind == "vote" else z


register_model("ensemble", Ensemble,
               description="soft voting or stacking over registered models ([models] ensemble)"
                           "; a teacher")
