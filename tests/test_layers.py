"""The fast layers compute the same function as plain PyTorch layers (outputs and gradients)."""

import os

import pytest
import torch

from fearkd.models import _cnn_parts, _fused, _pool, layers_rnn, make_model
from fearkd.models.layers_rnn import fused_gru, fused_lstm

PAIRS = [("cnn", 19), ("cnn", 32), ("cnn", 8), ("lstm", 9), ("gru", 9), ("cnn-lstm", 11)]


def _use_path(monkeypatch, path):
    """Run the CNN blocks as whole compiled passes (``whole``), as PyTorch GEMMs with compiled
    element-wise passes (``chunks``) or in PyTorch operations alone (``torch``)."""
    if path != "torch" and not _fused.built():
        if os.environ.get("CI"):  # CI builds the module: a missing one is a failure there
            pytest.fail("fearkd.models._kernels was not built")
        pytest.skip("fearkd.models._kernels is not built (no C compiler at install time)")
    if path == "whole" and not _fused._find_gemm():
        if os.environ.get("CI"):
            pytest.fail("PyTorch's CPU library exports no sgemm_/dgemm_ here")
        pytest.skip("PyTorch's CPU library exports no sgemm_/dgemm_ here")
    monkeypatch.setattr(_fused, "ENABLED", path != "torch")
    monkeypatch.setattr(_fused, "GEMM", path == "whole")


@pytest.fixture(params=["whole", "chunks", "torch"])
def cnn_path(request, monkeypatch):
    """Runs a CNN test through each of the three ways the blocks compute (see _use_path)."""
    _use_path(monkeypatch, request.param)
    return request.param


@pytest.fixture(params=["whole", "torch"])
def rnn_path(request, monkeypatch):
    """Runs a recurrent test through the compiled whole-sequence passes and through the
    PyTorch operations."""
    _use_path(monkeypatch, request.param)
    return request.param


def _no_dropout(model):
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0


def _pair(name, n_features, dtype):
    fast = make_model(name, n_features, 4, random_state=3).to(dtype)
    plain_name = name + "-plain"
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


def _run(model, x, train, input_grad=True):
    model.train(train)
    x = x.clone().requires_grad_(input_grad)
    out = model(x)
    weights = torch.arange(1, out.shape[1] + 1, dtype=out.dtype)
    (out * weights).sum().backward()
    grads = {k: p.grad.clone() for k, p in model.named_parameters()}
    if input_grad:
        grads["input"] = x.grad.clone()
    return out.detach(), grads


@pytest.mark.parametrize("train", [True, False])
@pytest.mark.parametrize(("name", "n_features"), PAIRS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_fast_equals_plain(cnn_path, name, n_features, train, dtype):
    # The recurrent layers have no chunked path: under "chunks" they run PyTorch operations.
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


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("input_grad", [True, False])
def test_cnn_in_many_chunks_equals_plain(cnn_path, monkeypatch, threads, input_grad):
    # Tiny chunks (1 to 8 samples, the last one shorter; chunks grow with the thread count):
    # every block's statistics and gradients are sums over chunks.
    monkeypatch.setattr(_cnn_parts, "CHUNK_VALUES", 2000)
    torch.manual_seed(1)
    fast, plain = _pair("cnn", 21, torch.float64)
    x = torch.randn(7, 21, dtype=torch.float64)
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        out_f, grad_f = _run(fast, x, True, input_grad)
        out_p, grad_p = _run(plain, x, True, input_grad)
    finally:
        torch.set_num_threads(old)
    torch.testing.assert_close(out_f, out_p, rtol=1e-10, atol=1e-10)
    assert grad_f.keys() == grad_p.keys()
    for key in grad_f:
        torch.testing.assert_close(grad_f[key], grad_p[key], rtol=1e-10, atol=1e-10, msg=key)


def test_running_stats_change_in_train_mode_only(cnn_path):
    fast, _ = _pair("cnn", 16, torch.float64)
    before = fast.bn1.running_mean.clone()
    fast.eval()
    fast(torch.randn(4, 16, dtype=torch.float64))
    assert torch.equal(fast.bn1.running_mean, before)
    fast.train()
    fast(torch.randn(4, 16, dtype=torch.float64))
    assert not torch.equal(fast.bn1.running_mean, before)
    assert int(fast.bn1.num_batches_tracked) == 1


def test_cumulative_running_stats_match_plain(cnn_path):
    # momentum=None: nn.BatchNorm1d keeps the cumulative average, 1 / batches seen.
    fast, plain = _pair("cnn", 16, torch.float64)
    for model in (fast, plain):
        model.bn1.momentum = model.bn2.momentum = None
        model.train()
        for seed in range(3):
            model(torch.randn(5, 16, dtype=torch.float64,
                              generator=torch.Generator().manual_seed(seed)))
    for name in ("bn1", "bn2"):
        for stat in ("running_mean", "running_var"):
            torch.testing.assert_close(getattr(getattr(fast, name), stat),
                                       getattr(getattr(plain, name), stat), msg=name + stat)


@pytest.mark.parametrize("input_grad", [False, True])
def test_cnn_with_noncontiguous_parameters_equals_plain(cnn_path, input_grad):
    # The compiled passes read parameters by address: strided ones go through copies that
    # must stay alive for the call.
    fast, plain = _pair("cnn", 19, torch.float64)
    with torch.no_grad():
        for module in (fast.conv1, fast.conv2, fast.conv3, fast.bn1, fast.bn2):
            for name in ("weight", "bias"):
                p = getattr(module, name).detach()
                strided = torch.stack([p, torch.full_like(p, 7.0)], -1)[..., 0]
                setattr(module, name, torch.nn.Parameter(strided))
    assert not fast.conv2.weight.is_contiguous() and not fast.bn1.bias.is_contiguous()
    x = torch.randn(6, 19, dtype=torch.float64)
    out_f, grad_f = _run(fast, x, True, input_grad)
    out_p, grad_p = _run(plain, x, True, input_grad)
    torch.testing.assert_close(out_f, out_p, rtol=1e-10, atol=1e-10)
    assert grad_f.keys() == grad_p.keys()
    for key in grad_p:
        torch.testing.assert_close(grad_f[key], grad_p[key], rtol=1e-10, atol=1e-10, msg=key)


def test_cnn_parameters_of_another_dtype_or_without_bias_are_clear_errors(cnn_path):
    # The compiled passes read parameters as the input's type: a mismatch is refused first.
    model = make_model("cnn", 16, 4, random_state=0)
    with pytest.raises(ValueError, match=r"'conv.weight' is torch.float32 .* input is "
                                         r"torch.float64 .*model.to\(x.dtype\)"):
        model(torch.randn(3, 16, dtype=torch.float64))
    model.double()
    model.bn2.running_var.data = model.bn2.running_var.float()
    with pytest.raises(ValueError, match="'bn.running_var' is torch.float32"):
        model(torch.randn(3, 16, dtype=torch.float64))
    model = make_model("cnn", 16, 4, random_state=0)
    model.conv2.bias = None
    with pytest.raises(ValueError, match="needs 'conv.bias', got None; .*bias=True"):
        model(torch.randn(3, 16))


def test_pooling_ties_send_gradient_to_first_element(cnn_path):
    # Constant input -> equal pairs everywhere; nn.MaxPool1d routes the gradient to the first.
    fast, plain = _pair("cnn", 16, torch.float64)
    x = torch.ones(3, 16, dtype=torch.float64)
    out_f, grad_f = _run(fast, x, True)
    out_p, grad_p = _run(plain, x, True)
    torch.testing.assert_close(out_f, out_p)
    for key in grad_f:
        torch.testing.assert_close(grad_f[key], grad_p[key], msg=key)


def test_frozen_conv_needs_no_weight_gradient():
    fast, _ = _pair("cnn", 16, torch.float32)
    for p in fast.parameters():
        p.requires_grad_(False)
    fast.head.weight.requires_grad_(True)
    fast(torch.randn(4, 16)).sum().backward()
    assert fast.conv1.weight.grad is None
    assert fast.head.weight.grad is not None


@pytest.mark.parametrize("frozen", [("conv1", "bn1"), ("conv2", "bn2"), ("conv1", "bn1", "conv3")])
def test_partly_frozen_cnn_matches_plain_over_steps(cnn_path, frozen):
    # A block hands its pre-BatchNorm values to the next (layers_cnn.Link); whichever of the two
    # keeps the shared buffer (the one with a backward pass to come), no step may see it reused.
    torch.manual_seed(4)
    fast, plain = _pair("cnn", 20, torch.float64)
    for model in (fast, plain):
        for name in frozen:
            getattr(model, name).requires_grad_(False)
    optims = [torch.optim.SGD([p for p in m.parameters() if p.requires_grad], lr=0.05)
              for m in (fast, plain)]
    for _ in range(3):
        x = torch.randn(6, 20, dtype=torch.float64)
        for model, optim in zip((fast, plain), optims, strict=True):
            optim.zero_grad()
            model(x).square().sum().backward()
            optim.step()
    for (k, a), (_, b) in zip(fast.state_dict().items(), plain.state_dict().items(),
                              strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9, msg=k)


# ---------------------------------------------------------------- fused LSTM / GRU

CELLS = {"lstm": (torch.nn.LSTM, fused_lstm), "gru": (torch.nn.GRU, fused_gru)}


def _torch_rnn(cell, size_in, hidden, dtype, seed=0):
    """An nn.LSTM/nn.GRU with weights large enough to drive the gates into their nonlinear range."""
    gen = torch.Generator().manual_seed(seed)
    rnn = CELLS[cell][0](size_in, hidden).to(dtype)
    with torch.no_grad():
        for p in rnn.parameters():
            p.copy_(torch.rand(p.shape, generator=gen, dtype=dtype) * 1.4 - 0.7)
    return rnn


def _last_state(rnn, x):
    h_n = rnn(x)[1]
    return (h_n[0] if isinstance(rnn, torch.nn.LSTM) else h_n)[-1]


def _grads(out, inputs):
    weights = torch.linspace(-1.0, 2.0, out.numel(), dtype=out.dtype).view(out.shape)
    return torch.autograd.grad((out * weights).sum(), inputs)


def _fused_vs_module(cell, rnn, x):
    """``(out, grads)`` of the fused function on copies of ``x`` and the parameters, and
    ``(ref, ref_grads)`` of the module itself (gradients: input first, then parameters)."""
    params = list(rnn.parameters())
    ref = _last_state(rnn, x)
    ref_grads = _grads(ref, [x, *params])
    copies = [p.detach().clone().requires_grad_() for p in params]
    x2 = x.detach().clone().requires_grad_()
    out = CELLS[cell][1](x2, *copies)
    return (out, _grads(out, [x2, *copies])), (ref, ref_grads)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize(("steps", "batch", "hidden", "size_in"),
                         [(1, 2, 3, 1), (7, 5, 4, 1), (12, 3, 8, 1), (6, 4, 5, 3)])
def test_fused_rnn_equals_torch_module(rnn_path, cell, dtype, steps, batch, hidden, size_in):
    rnn = _torch_rnn(cell, size_in, hidden, dtype)
    x = torch.randn(steps, batch, size_in, dtype=dtype, requires_grad=True)
    (out, grads), (ref, ref_grads) = _fused_vs_module(cell, rnn, x)
    tol = {"rtol": 1e-12, "atol": 1e-12} if dtype == torch.float64 else {"rtol": 2e-5,
                                                                         "atol": 2e-6}
    torch.testing.assert_close(out, ref, **tol)
    names = ["input"] + [n for n, _ in rnn.named_parameters()]
    for name, got, expected in zip(names, grads, ref_grads, strict=True):
        torch.testing.assert_close(got, expected, **tol, msg=name)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_fused_rnn_matches_cell_stepped_by_hand(rnn_path, cell):
    # Independent reference: nn.LSTMCell / nn.GRUCell stepped in a Python loop.
    torch.manual_seed(1)
    hidden, steps, batch = 5, 7, 3
    cell_mod = (torch.nn.LSTMCell if cell == "lstm" else torch.nn.GRUCell)(2, hidden).double()
    x = torch.randn(steps, batch, 2, dtype=torch.float64)
    h = torch.zeros(batch, hidden, dtype=torch.float64)
    c = torch.zeros_like(h)
    for t in range(steps):
        if cell == "lstm":
            h, c = cell_mod(x[t], (h, c))
        else:
            h = cell_mod(x[t], h)
    ours = CELLS[cell][1](x, cell_mod.weight_ih, cell_mod.weight_hh, cell_mod.bias_ih,
                          cell_mod.bias_hh)
    torch.testing.assert_close(ours, h)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_fused_rnn_gradcheck(rnn_path, cell):
    rnn = _torch_rnn(cell, 2, 3, torch.float64, seed=2)
    x = torch.randn(4, 2, 2, dtype=torch.float64, requires_grad=True)
    params = [p.detach().clone().requires_grad_() for p in rnn.parameters()]
    assert torch.autograd.gradcheck(CELLS[cell][1], (x, *params))


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_fused_rnn_frozen_parameters_get_no_gradient(rnn_path, cell):
    rnn = _torch_rnn(cell, 1, 4, torch.float64)
    x = torch.randn(5, 3, 1, dtype=torch.float64)
    ref_grads = _grads(_last_state(rnn, x), [rnn.bias_ih_l0, rnn.bias_hh_l0])
    params = [p.detach().clone() for p in rnn.parameters()]
    params[2].requires_grad_()  # only the biases train
    params[3].requires_grad_()
    CELLS[cell][1](x, *params).mul(
        torch.linspace(-1.0, 2.0, 12, dtype=torch.float64).view(3, 4)).sum().backward()
    assert params[0].grad is None and params[1].grad is None
    torch.testing.assert_close(params[2].grad, ref_grads[0])
    torch.testing.assert_close(params[3].grad, ref_grads[1])


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("steps", [1, 2, 5])
def test_fused_rnn_input_gradient_only(rnn_path, cell, steps):
    # Frozen weights: no weight-gradient GEMM, so the backward pass takes its other branch
    # (the LSTM then rebuilds h only for dc); odd step counts end on a partial chunk.
    rnn = _torch_rnn(cell, 2, 4, torch.float64, seed=3)
    x = torch.randn(steps, 3, 2, dtype=torch.float64, requires_grad=True)
    (ref,) = _grads(_last_state(rnn, x), [x])
    params = [p.detach().clone() for p in rnn.parameters()]
    x2 = x.detach().clone().requires_grad_()
    (got,) = _grads(CELLS[cell][1](x2, *params), [x2])
    torch.testing.assert_close(got, ref, rtol=1e-12, atol=1e-12)
    assert all(p.grad is None for p in params)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize(("chunk", "ring"), [(1, 1), (3, 2), (4, 5)])
def test_fused_rnn_chunk_and_ring_sizes(rnn_path, monkeypatch, cell, chunk, ring):
    # Weight-gradient GEMMs over `chunk` steps and an LSTM forward ring of `ring` slots: 7
    # steps end on a partial chunk/ring for every size here except 1.
    monkeypatch.setattr(layers_rnn, "_CHUNK", chunk)
    monkeypatch.setattr(layers_rnn, "_RING", ring)
    rnn = _torch_rnn(cell, 2, 4, torch.float64, seed=4)
    x = torch.randn(7, 3, 2, dtype=torch.float64, requires_grad=True)
    (out, grads), (ref, ref_grads) = _fused_vs_module(cell, rnn, x)
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    for got, expected in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_fused_rnn_no_grad_and_buffer_reuse(rnn_path, cell):
    rnn = _torch_rnn(cell, 1, 4, torch.float32)
    x = torch.randn(6, 3, 1)
    params = list(rnn.parameters())
    with torch.no_grad():
        first = CELLS[cell][1](x, *params)
        again = CELLS[cell][1](x, *params)  # runs in the pooled buffer of the first call
    torch.testing.assert_close(first, _last_state(rnn, x).detach())
    assert torch.equal(first, again)
    assert not first.requires_grad


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_fused_rnn_buffers_stay_with_the_graph(rnn_path, cell):
    # A retained graph may run backward again, even after other forward passes of the same
    # shape; its buffers return to the pool only when the graph is freed.
    rnn = _torch_rnn(cell, 1, 3, torch.float64)
    params = [p.detach().clone().requires_grad_() for p in rnn.parameters()]
    x = torch.randn(4, 2, 1, dtype=torch.float64)
    out = CELLS[cell][1](x, *params).sum()
    first = torch.autograd.grad(out, params, retain_graph=True)
    CELLS[cell][1](x * 3.0, *params).sum().backward()  # another graph, same buffer size
    second = torch.autograd.grad(out, params)
    for a, b in zip(first, second, strict=True):
        assert torch.equal(a, b)
    _pool._POOL.clear()
    del out
    assert sum(len(bufs) for bufs in _pool._POOL.values()) == 1


def test_fused_rnn_bad_shapes(rnn_path):
    rnn = _torch_rnn("lstm", 2, 3, torch.float32)
    params = list(rnn.parameters())
    with pytest.raises(ValueError, match=r"must have shape \(steps, batch, input_size\), got "
                                         r"shape \(4, 2\)"):
        fused_lstm(torch.randn(4, 2), *params)
    with pytest.raises(ValueError, match=r"do not fit 4 gates of a layer with input size 1"):
        fused_lstm(torch.randn(4, 2, 1), *params)
    with pytest.raises(ValueError, match=r"do not fit 3 gates"):
        fused_gru(torch.randn(4, 2, 2), *params)
    with pytest.raises(ValueError, match=r"at least one step and one sequence in the batch, "
                                         r"got shape \(0, 2, 2\)"):
        fused_lstm(torch.randn(0, 2, 2), *params)
    with pytest.raises(ValueError, match=r"got shape \(4, 0, 2\)"):
        fused_gru(torch.randn(4, 0, 2), *_torch_rnn("gru", 2, 3, torch.float32).parameters())
    # Parameters of another dtype: a clear error on every path, never a wrong result.
    with pytest.raises(ValueError, match=r"input sequence is torch.float64 on cpu, but the "
                                         r"layer's parameter w_ih is torch.float32"):
        fused_lstm(torch.randn(4, 2, 2, dtype=torch.float64), *params)


@pytest.mark.parametrize("was_on", [False, True])
def test_fused_rnn_restores_flush_denormal_mode(rnn_path, was_on):
    tiny = torch.ones(1, dtype=torch.int32).view(torch.float32)  # smallest subnormal
    rnn = _torch_rnn("gru", 1, 3, torch.float32)
    torch.set_flush_denormal(was_on)
    try:
        fused_gru(torch.randn(3, 2, 1), *rnn.parameters()).sum().backward()
        assert ((tiny * 2.0).item() == 0.0) == was_on
    finally:
        torch.set_flush_denormal(False)


@pytest.mark.parametrize("threads", [1, 2])
def test_gru_backward_runs_on_one_thread_and_restores_the_count(monkeypatch, threads):
    # The other threads of PyTorch's pool cannot flush subnormals (see _FlushDenormal); the
    # compiled passes flush them on each of their threads instead.
    _use_path(monkeypatch, "torch")
    inner = layers_rnn._FusedGRU._backward
    seen = []

    def spy(ctx, dh_last):
        seen.append(torch.get_num_threads())
        return inner(ctx, dh_last)

    monkeypatch.setattr(layers_rnn._FusedGRU, "_backward", staticmethod(spy))
    rnn = _torch_rnn("gru", 1, 4, torch.float64)
    x = torch.randn(9, 5, 1, dtype=torch.float64, requires_grad=True)
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        out = fused_gru(x, *rnn.parameters())
        grads = _grads(out, [x, *rnn.parameters()])
        assert torch.get_num_threads() == threads
    finally:
        torch.set_num_threads(old)
    assert seen == [1]
    ref_grads = _grads(_last_state(rnn, x), [x, *rnn.parameters()])
    for got, expected in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize(("threads", "batch"), [(2, 33), (2, 1), (3, 8), (1, 5)])
def test_compiled_rnn_runs_in_batch_slices_and_repeats_bit_for_bit(monkeypatch, cell, threads,
                                                                   batch):
    # Each thread runs its own slice of the batch (uneven slices, fewer samples than threads),
    # the compiled passes are really called, and each thread's weight-gradient sums are added
    # in a fixed order: two runs give identical bits.
    _use_path(monkeypatch, "whole")
    calls = []
    for name in (f"{cell}_fwd", f"{cell}_bwd"):
        real = getattr(_fused._kernels, name)
        monkeypatch.setattr(_fused._kernels, name,
                            lambda *a, _real=real, _name=name: (calls.append(_name), _real(*a)))
    rnn = _torch_rnn(cell, 2, 6, torch.float32, seed=5)
    x = torch.randn(11, batch, 2, requires_grad=True)
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        runs = [_fused_vs_module(cell, rnn, x) for _ in range(2)]
    finally:
        torch.set_num_threads(old)
    assert calls == [f"{cell}_fwd", f"{cell}_bwd"] * 2
    (out, grads), (ref, ref_grads) = runs[0]
    assert torch.equal(out, runs[1][0][0])
    for got, again, expected in zip(grads, runs[1][0][1], ref_grads, strict=True):
        assert torch.equal(got, again)
        torch.testing.assert_close(got, expected, rtol=2e-5, atol=2e-6)
    torch.testing.assert_close(out, ref, rtol=2e-5, atol=2e-6)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_fused_rnn_saturated_gates_and_nan_inputs(rnn_path, cell):
    # Inputs far into the gates' flat range (tanh and sigmoid of +-1e4) give nn.LSTM/nn.GRU's
    # values; a NaN in one sample's input makes that sample's state NaN and no other's.
    rnn = _torch_rnn(cell, 1, 5, torch.float32, seed=6)
    x = torch.randn(9, 4, 1) * torch.tensor([1.0, 1e2, 1e4, 1.0]).view(1, 4, 1)
    x[3, 3, 0] = float("nan")
    params = [p.detach() for p in rnn.parameters()]
    with torch.no_grad():
        out, ref = CELLS[cell][1](x, *params), _last_state(rnn, x)
    assert torch.isnan(out[3]).all() and torch.isnan(ref[3]).all()
    torch.testing.assert_close(out[:3], ref[:3], rtol=2e-5, atol=2e-6)


def test_buffer_pool_is_bounded(monkeypatch):
    monkeypatch.setattr(_pool, "_POOL", {})
    monkeypatch.setattr(_pool, "_BYTES", 0)
    monkeypatch.setattr(_pool, "POOL_BYTES", 3 * 1024 * 4)
    like = torch.empty(0)
    flats = [_pool.take([(n, 1024)], like)[0] for n in (1, 2, 1, 1)]
    for flat in flats:
        _pool.give_back(flat)
    pooled = [b for bufs in _pool._POOL.values() for b in bufs]
    assert sum(b.numel() for b in pooled) <= 3 * 1024
    # The most recently returned buffers stay; the oldest size goes first.
    assert any(b is flats[-1] for b in pooled)
    again, (view,) = _pool.take([(1, 1024)], like)
    assert again is flats[-1] or again is flats[-2]
    assert view.shape == (1, 1024)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_two_layer_fused_model_falls_back_to_torch(cell):
    fused = make_model(cell, 9, 4, random_state=0, num_layers=2, hidden_size=5).double()
    plain = make_model(f"{cell}-plain", 9, 4, random_state=0, num_layers=2,
                       hidden_size=5).double()
    plain.load_state_dict(fused.state_dict())
    x = torch.randn(3, 9, dtype=torch.float64)
    torch.testing.assert_close(fused(x), plain(x))


@pytest.mark.parametrize("train", [True, False])
@pytest.mark.parametrize("n_features", [19, 32, 8])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_cnn_without_input_gradient_equals_plain(cnn_path, n_features, train, dtype):
    # Training never asks for the input's gradient: the first block then takes its shorter
    # backward pass (no full-size tensor), which must give the same parameter gradients.
    torch.manual_seed(1)
    fast, plain = _pair("cnn", n_features, dtype)
    x = torch.randn(7, n_features, dtype=dtype)
    grads = [_run(model, x, train, input_grad=False)[1] for model in (fast, plain)]
    rel = 1e-10 if dtype == torch.float64 else 2e-5
    for key, expected in grads[1].items():
        scale = max(1.0, float(expected.abs().max()))
        torch.testing.assert_close(grads[0][key], expected, rtol=rel, atol=rel * scale,
                                   msg=key)
    for (k, a), (_, b) in zip(fast.state_dict().items(), plain.state_dict().items(),
                              strict=True):
        torch.testing.assert_close(a, b, rtol=rel, atol=rel, msg=k)


def test_cnn_training_steps_match_plain_with_pooled_buffers(cnn_path):
    # Several optimizer steps, two graphs alive at once, then an eval pass: the pooled buffers
    # that blocks hand each other (layers_cnn.Link) are reused across calls and must never be
    # handed out while still in use.
    torch.manual_seed(2)
    fast, plain = _pair("cnn", 24, torch.float64)
    optims = [torch.optim.Adam(m.parameters(), lr=1e-2) for m in (fast, plain)]
    batches = [torch.randn(5, 24, dtype=torch.float64) for _ in range(4)]
    for step in range(3):
        for model, optim in zip((fast, plain), optims, strict=True):
            model.train()
            optim.zero_grad()
            # Two forward passes before one backward: both graphs hold pooled buffers.
            loss = model(batches[step]).square().sum() + model(batches[step + 1]).sum()
            loss.backward()
            optim.step()
    for (k, a), (_, b) in zip(fast.state_dict().items(), plain.state_dict().items(),
                              strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9, msg=k)
    fast.eval()
    plain.eval()
    with torch.no_grad():
        first = fast(batches[0])
        torch.testing.assert_close(fast(batches[1]), plain(batches[1]))
        torch.testing.assert_close(first, plain(batches[0]))


def test_cnn_backward_twice_with_retained_graph_matches_plain(cnn_path):
    # retain_graph=True must keep the saved buffers: they are given back early only when the
    # backward pass frees its graph.
    fast, plain = _pair("cnn", 20, torch.float64)
    x = torch.randn(5, 20, dtype=torch.float64)
    grads = []
    for model in (fast, plain):
        model.train()
        loss = model(x).square().sum()
        loss.backward(retain_graph=True)
        model(x + 1.0).sum().backward()  # other buffers taken in between
        loss.backward()
        grads.append({k: p.grad.clone() for k, p in model.named_parameters()})
    for key, expected in grads[1].items():
        torch.testing.assert_close(grads[0][key], expected, rtol=1e-9, atol=1e-9, msg=key)


@pytest.mark.parametrize("path", ["whole", "chunks"])
def test_compiled_passes_run_and_repeat_bit_for_bit(monkeypatch, path):
    # The compiled loops are really called (not silently bypassed), and with two threads each
    # thread's sums are added in a fixed order: two runs give identical bits.
    _use_path(monkeypatch, path)
    calls = []
    names = ["bn_sums", "first_fwd", "first_bwd", "block_fwd_full", "block_bwd_full",
             "block_fwd", "block_bwd"]
    # Whole blocks: the first block's backward pass runs inside the second's (see Link).
    expected = {"bn_sums", "first_fwd"} | ({"block_fwd_full", "block_bwd_full"}
                                           if path == "whole" else
                                           {"block_fwd", "block_bwd", "first_bwd"})
    for name in names:
        real = getattr(_fused._kernels, name)
        monkeypatch.setattr(_fused._kernels, name,
                            lambda *a, _real=real, _name=name: (calls.append(_name), _real(*a)))
    monkeypatch.setattr(_cnn_parts, "CHUNK_VALUES", 3000)  # several chunks per block
    fast, _ = _pair("cnn", 40, torch.float32)
    fast.train()
    x = torch.randn(33, 40)
    old = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        runs = []
        for _ in range(2):
            fast.zero_grad()
            out = fast(x)
            out.square().sum().backward()
            runs.append([out.detach().clone()] + [p.grad.clone() for p in fast.parameters()])
    finally:
        torch.set_num_threads(old)
    assert set(calls) == expected
    for a, b in zip(*runs, strict=True):
        assert torch.equal(a, b)


def test_compiled_passes_are_off_for_other_dtypes_and_when_disabled(monkeypatch):
    monkeypatch.setattr(_fused, "ENABLED", True)
    assert not _fused.available(torch.zeros(2, dtype=torch.bfloat16))
    assert _fused.available(torch.zeros(2)) == _fused.built()
    monkeypatch.setattr(_fused, "ENABLED", False)
    assert not _fused.available(torch.zeros(2))


def test_compiled_module_rejects_wrong_calls(monkeypatch):
    _use_path(monkeypatch, "chunks")
    with pytest.raises(TypeError, match="expected 11 integer arguments, got 2"):
        _fused._kernels.bn_sums(1, 2)
    with pytest.raises(ValueError, match="dtype code"):
        _fused._kernels.bn_sums(1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0)
