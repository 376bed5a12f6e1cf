import math

import pytest
import torch
from torch import nn

from fearkd.training.distill import KD_LOSSES, DistillationLoss, make_kd_loss, register_kd_loss

S = torch.tensor([[2.0, 0.5, -1.0, 0.0], [0.1, 0.2, 0.3, -0.4]])
T_ = torch.tensor([[1.5, 1.0, -0.5, 0.2], [-1.0, 2.0, 0.0, 0.5]])
Y = torch.tensor([0, 2])


def _softmax(v, t=1.0):
    e = [math.exp(x / t) for x in v]
    return [x / sum(e) for x in e]


def _hand(mode, alpha, temp):
    """The loss written out with Python floats, row by row."""
    total = 0.0
    for s, t, y in zip(S.tolist(), T_.tolist(), Y.tolist(), strict=True):
        ce = -math.log(_softmax(s)[y])
        p, q = _softmax(t, temp), _softmax(s, temp)
        soft_ce = -sum(pi * math.log(qi) for pi, qi in zip(p, q, strict=True))
        kl = sum(pi * (math.log(pi) - math.log(qi)) for pi, qi in zip(p, q, strict=True))
        if mode == "hard":
            total += ce
        elif mode == "soft":
            total += soft_ce
        else:
            total += alpha * ce + (1 - alpha) * temp**2 * kl
    return total / len(Y)


@pytest.mark.parametrize("mode", ["hard", "soft", "combined"])
@pytest.mark.parametrize("alpha,temp", [(0.5, 3.0), (0.2, 1.0), (0.9, 7.5)])
def test_loss_equals_hand_computation(mode, alpha, temp):
    loss = DistillationLoss(mode, alpha=alpha, temperature=temp)(S, Y, T_)
    assert loss.item() == pytest.approx(_hand(mode, alpha, temp), rel=1e-5)


def test_combined_is_label_ce_when_alpha_is_one():
    loss = DistillationLoss("combined", alpha=1.0)(S, Y, T_)
    assert loss.item() == pytest.approx(nn.functional.cross_entropy(S, Y).item(), rel=1e-6)


def test_no_gradient_reaches_the_teacher():
    teacher = nn.Linear(3, 4)
    student = nn.Linear(2, 4)
    x = torch.randn(5, 3)
    t_logits = teacher(x)
    loss = DistillationLoss("combined")(student(x[:, :2]), torch.tensor([0, 1, 2, 3, 0]), t_logits)
    loss.backward()
    assert all(p.grad is None for p in teacher.parameters())
    assert all(p.grad is not None for p in student.parameters())


def test_t_squared_keeps_soft_gradient_magnitude_comparable():
    # For large T the gradient of KL(p_T || q_T) w.r.t. the logits shrinks like 1/T^2; the T^2
    # factor restores it, so the soft term's gradient stays of the same order across T.
    torch.manual_seed(0)
    t_logits = torch.randn(64, 4) * 3
    norms_scaled, norms_raw = [], []
    for temp in (2.0, 8.0, 32.0):
        torch.manual_seed(1)
        s = torch.randn(64, 4).mul(3).requires_grad_(True)
        loss = DistillationLoss("combined", alpha=0.0, temperature=temp)(s, torch.zeros(64).long(),
                                                                         t_logits)
        (g,) = torch.autograd.grad(loss, s)
        norms_scaled.append(g.norm().item())
        norms_raw.append(g.norm().item() / temp**2)
    assert max(norms_scaled) / min(norms_scaled) < 3.0
    assert norms_raw[0] / norms_raw[-1] > 100.0  # without T^2 it would collapse


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"mode": "sof"}, "Invalid value for 'mode'"),
        ({"alpha": 1.5}, "Invalid value for 'alpha'"),
        ({"temperature": 0}, "Invalid value for 'temperature'"),
    ],
)
def test_bad_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DistillationLoss(**kwargs)


def test_missing_or_mismatched_teacher():
    with pytest.raises(ValueError, match="needs teacher logits"):
        DistillationLoss("soft")(S, Y)
    with pytest.raises(ValueError, match="must predict the same classes"):
        DistillationLoss("soft")(S, Y, T_[:, :3])


# ------------------------------------------------------------------------------ the registry
def test_registry_holds_the_three_targets_with_the_same_maths():
    assert KD_LOSSES.names() == ("hard", "soft", "combined")
    assert [KD_LOSSES.entry(n).info["needs_teacher"] for n in KD_LOSSES] == [False, True, True]
    w = torch.tensor([1.0, 2.0, 0.5, 1.0])
    for mode in KD_LOSSES:
        built = make_kd_loss(mode, alpha=0.3, temperature=2.0, soft_temperature=2.0,
                             class_weight=w)
        direct = DistillationLoss(mode, alpha=0.3, temperature=2.0, class_weight=w)
        # the trainer hands the batch inputs as a fourth argument; logit losses ignore them
        assert built(S, Y, T_, torch.ones(2, 7)).item() == pytest.approx(
            direct(S, Y, T_).item(), rel=1e-6)
    weighted = make_kd_loss("hard", class_weight=w)(S, Y).item()
    assert weighted == pytest.approx(
        torch.nn.functional.cross_entropy(S, Y, weight=w).item(), rel=1e-6)
    assert weighted != pytest.approx(make_kd_loss("hard")(S, Y).item(), rel=1e-3)


def test_register_kd_loss_checks_name_and_factory():
    with pytest.raises(TypeError, match=r"KD loss 'x': 'factory' must be callable, got int"):
        register_kd_loss("x", 3)
    with pytest.raises(ValueError, match=r"A KD loss named 'soft' is already registered"):
        register_kd_loss("soft", lambda **kw: nn.MSELoss())
    with pytest.raises(ValueError, match=r"Invalid value for '\[methods\] kd_targets': expected "
                                         r"one of 'hard', 'soft', 'combined', got 'warm'"):
        make_kd_loss("warm")
    register_kd_loss("plain", lambda **kw: nn.Identity(), needs_teacher=False)
    try:
        assert "plain" in KD_LOSSES and KD_LOSSES.entry("plain").info["needs_teacher"] is False
    finally:
        KD_LOSSES.unregister("plain")


# --------------------------------------------------- seed targets: soft at T = 1, one weighting
W = torch.tensor([1.0, 2.0, 0.5, 1.0])


def _hand_weighted(mode, alpha, temp, w):
    """Every term a weighted mean with row weight w[y_i], written out with Python floats."""
    num = {"ce": 0.0, "soft": 0.0, "kl": 0.0}
    den = 0.0
    for s, t, y in zip(S.tolist(), T_.tolist(), Y.tolist(), strict=True):
        wi = w[y]
        p, q = _softmax(t, temp), _softmax(s, temp)
        num["ce"] += wi * -math.log(_softmax(s)[y])
        num["soft"] += wi * -sum(pi * math.log(qi) for pi, qi in zip(p, q, strict=True))
        num["kl"] += wi * sum(pi * (math.log(pi) - math.log(qi)) for pi, qi in zip(p, q,
                                                                                  strict=True))
        den += wi
    if mode == "hard":
        return num["ce"] / den
    if mode == "soft":
        return num["soft"] / den
    return alpha * num["ce"] / den + (1 - alpha) * temp**2 * num["kl"] / den


@pytest.mark.parametrize("mode", ["hard", "soft", "combined"])
def test_every_target_weighs_rows_by_their_label_class(mode):
    w = W.tolist()
    loss = DistillationLoss(mode, alpha=0.3, temperature=2.0, class_weight=W)(S, Y, T_)
    assert loss.item() == pytest.approx(_hand_weighted(mode, 0.3, 2.0, w), rel=1e-5)
    # the weighting changes the value (rows 0 and 2 weigh 1 and 0.5)
    assert loss.item() != pytest.approx(_hand(mode, 0.3, 2.0), rel=1e-3)
    assert DistillationLoss(mode, class_weight=W).class_weighting == \
        "label-class weight on every term"
    assert DistillationLoss(mode).class_weighting == "none"


def test_soft_reads_soft_temperature_and_combined_reads_temperature():
    assert KD_LOSSES.entry("soft").info["temperature_key"] == "soft_temperature"
    assert KD_LOSSES.entry("combined").info["temperature_key"] == "temperature"
    soft = make_kd_loss("soft", temperature=3.0)  # soft_temperature defaults to 1.0
    combined = make_kd_loss("combined", alpha=0.5, temperature=3.0)
    assert (soft.temperature, combined.temperature) == (1.0, 3.0)
    # at T = 1 the soft target is CE against the teacher's plain predictions
    assert soft(S, Y, T_).item() == pytest.approx(_hand("soft", 0.5, 1.0), rel=1e-5)
    assert make_kd_loss("soft", soft_temperature=4.0)(S, Y, T_).item() == pytest.approx(
        _hand("soft", 0.5, 4.0), rel=1e-5)


def test_register_kd_loss_refuses_an_unknown_temperature_key():
    with pytest.raises(ValueError, match=r"KD loss 'x': 'temperature_key' must be one of "
                                         r"\('temperature', 'soft_temperature'\), got 'T'"):
        register_kd_loss("x", lambda **kw: nn.Identity(), temperature_key="T")
