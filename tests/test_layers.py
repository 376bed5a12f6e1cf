"""The fast layers compute the same function as plain PyTorch layers (outputs and gradients)."""

import pytest
import torch

from fearkd.models import make_model
from fearkd.models.layers import gru_recurrence, lstm_recurrence

PAIRS = [("cnn", 19), ("cnn", 32), ("cnn", 8), ("lstm-loop", 9), ("gru-loop", 9),
         ("cnn-lstm", 11)]


def _no_dropout(model):
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0


def _pair(name, n_features, dtype):
    fast = make_model(name, n_features, 4, random_state=3).to(dtype)
    plain_name = name.replace("-loop", "") + "-plain"
    plain = make_model(plain_name, n_features, 4, random_state=3).to(dtype)
    if name == "cnn":
        with torch.no_grad():  # negative and zero BN scales flip/tie the pooling order
            fast.bn1.weight[:5].neg_()
            fast.bn1.weight[5] = 0.0
            fast.bn2.weight[7:9].neg_()
            fast.bn1.running_mean.uniform_(-0.5, 0.5)
            fast.bn2.running_var.uniform_(0.5, 2.0)
    plain.load_state_dict(fast.state_dict())
    _no_dropout(fast)
    _no_dropout(plain)
    return fast, plain


def _run(model, x, train):
    model.train(train)
    x = x.clone().requires_grad_()
    out = model(x)
    weights = torch.arange(1, out.shape[1] + 1, dtype=out.dtype)
    (out * weights).sum().backward()
    grads = {k: p.grad.clone() for k, p in model.named_parameters()}
    grads["input"] = x.grad.clone()
    return out.detach(), grads


@pytest.mark.parametrize("train", [True, False])
@pytest.mark.parametrize(("name", "n_features"), PAIRS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_fast_equals_plain(name, n_features, train, dtype):
    torch.manual_seed(0)
    fast, plain = _pair(name, n_features, dtype)
    x = torch.randn(6, n_features, dtype=dtype)
    out_f, grad_f = _run(fast, x, train)
    out_p, grad_p = _run(plain, x, train)
    rel = 1e-10 if dtype == torch.float64 else 2e-5

    def close(a, b, what):
        # float32 BatchNorm gradients cancel: compare relative to the tensor's scale.
        scale = max(1.0, float(b.abs().max())) if b.is_floating_point() else 1.0
        torch.testing.assert_close(a, b, rtol=rel, atol=rel * scale, msg=what)

    close(out_f, out_p, "logits")
    assert grad_f.keys() == grad_p.keys()
    for key in grad_f:
        close(grad_f[key], grad_p[key], key)
    # BatchNorm running statistics are updated identically (train) or untouched (eval).
    for (k, a), (_, b) in zip(fast.state_dict().items(), plain.state_dict().items(),
                              strict=True):
        close(a, b, k)


def test_running_stats_change_in_train_mode_only():
    fast, _ = _pair("cnn", 16, torch.float64)
    before = fast.bn1.running_mean.clone()
    fast.eval()
    fast(torch.randn(4, 16, dtype=torch.float64))
    assert torch.equal(fast.bn1.running_mean, before)
    fast.train()
    fast(torch.randn(4, 16, dtype=torch.float64))
    assert not torch.equal(fast.bn1.running_mean, before)
    assert int(fast.bn1.num_batches_tracked) == 1


def test_pooling_ties_send_gradient_to_first_element():
    # Constant input -> equal pairs everywhere; nn.MaxPool1d routes the gradient to the first.
    fast, plain = _pair("cnn", 16, torch.float64)
    x = torch.ones(3, 16, dtype=torch.float64)
    out_f, grad_f = _run(fast, x, True)
    out_p, grad_p = _run(plain, x, True)
    torch.testing.assert_close(out_f, out_p)
    for key in grad_f:
        torch.testing.assert_close(grad_f[key], grad_p[key], msg=key)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_recurrence_against_torch_cell_by_hand(cell):
    # Independent reference: step the nn.LSTMCell / nn.GRUCell by hand.
    torch.manual_seed(1)
    hidden, steps, batch = 5, 7, 3
    cell_mod = (torch.nn.LSTMCell if cell == "lstm" else torch.nn.GRUCell)(2, hidden).double()
    x = torch.randn(steps, batch, 2, dtype=torch.float64)
    h = torch.zeros(batch, hidden, dtype=torch.float64)
    c = torch.zeros_like(h)
    ref = []
    for t in range(steps):
        if cell == "lstm":
            h, c = cell_mod(x[t], (h, c))
        else:
            h = cell_mod(x[t], h)
        ref.append(h)
    ref = torch.stack(ref)
    xproj = x @ cell_mod.weight_ih.t() + cell_mod.bias_ih
    if cell == "lstm":
        ours = lstm_recurrence(xproj + cell_mod.bias_hh, cell_mod.weight_hh)
    else:
        ours = gru_recurrence(xproj, cell_mod.weight_hh, cell_mod.bias_hh)
    torch.testing.assert_close(ours, ref)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_recurrence_gradcheck(cell):
    torch.manual_seed(2)
    hidden, gates = 3, 4 if cell == "lstm" else 3
    xproj = torch.randn(4, 2, gates * hidden, dtype=torch.float64, requires_grad=True)
    w = torch.randn(gates * hidden, hidden, dtype=torch.float64, requires_grad=True)
    if cell == "lstm":
        assert torch.autograd.gradcheck(lambda a, b: lstm_recurrence(a, b), (xproj, w))
    else:
        b = torch.randn(gates * hidden, dtype=torch.float64, requires_grad=True)
        assert torch.autograd.gradcheck(lambda a, ww, bb: gru_recurrence(a, ww, bb),
                                        (xproj, w, b))


def test_frozen_conv_needs_no_weight_gradient():
    fast, _ = _pair("cnn", 16, torch.float32)
    for p in fast.parameters():
        p.requires_grad_(False)
    fast.head.weight.requires_grad_(True)
    fast(torch.randn(4, 16)).sum().backward()
    assert fast.conv1.weight.grad is None
    assert fast.head.weight.grad is not None
