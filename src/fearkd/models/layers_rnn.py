"""Fused single-layer LSTM and GRU: whole-sequence autograd functions with hand-written BPTT.

:func:`fused_lstm` and :func:`fused_gru` compute exactly ``nn.LSTM(...)(x)[1][0][-1]`` and
``nn.GRU(...)(x)[1][-1]`` (the last hidden state of one unidirectional layer from a zero state),
from the parameters of those modules, with PyTorch's gate equations::

    LSTM  i, f, o = sigmoid(.), g = tanh(.)   of  W_ih x + b_ih + W_hh h + b_hh
          c' = f * c + i * g,  h' = o * tanh(c')
    GRU   r, z = sigmoid(W_i{r,z} x + b_i{r,z} + W_h{r,z} h + b_h{r,z})
          n = tanh(W_in x + b_in + r * (W_hn h + b_hn)),  h' = (1 - z) * n + z * h

How the time goes into matrix multiplies on a CPU:

* **One GEMM per step, no separate input projection.** The step's input and a constant 1 ride
  along with the hidden state: row ``t`` of the buffer ``hx`` (shape ``(steps + 1, batch,
  hidden + input + 1)``) holds ``[h_{t-1}, x_t, 1]``, and one augmented weight matrix ``W``
  (``[W_hh, W_ih, b]`` per gate row) gives every gate's pre-activation of step ``t`` as
  ``hx[t] @ W.T``, written straight into the saved gate buffer. For the GRU the matrix has four
  blocks, ``r``, ``z``, ``W_hn h + b_hn`` and ``W_in x + b_in`` (zeros elsewhere), because the
  reset gate multiplies the recurrent part of ``n`` only.
* **Forward without autograd.** Per step: that GEMM and five or six in-place element-wise
  operations into preallocated ``(steps, batch, .)`` buffers (gate activations; for the LSTM
  also the cell state and its tanh), which are what the backward pass needs.
* **Hand-written backward through time.** Only the last hidden state has a gradient, so per step
  the backward pass does a few element-wise operations (``sigmoid_backward``/``tanh_backward``
  kernels) that turn the gate activations *in place* into pre-activation gradients, and one GEMM
  ``dh_{t-1} = dgates_t @ W_hh``. The gradient of the whole augmented matrix (recurrent weights,
  input weights and biases at once) is then **one** GEMM over all ``steps * batch`` rows,
  ``hx[:-1].T @ dgates``; the input gradient (when asked for) is another.
* **Buffers reused across calls.** A forward pass saves 60-80 MB for a 176-step batch of 256;
  freshly allocated memory of that size is mapped page by page on first touch, which costs as
  much as the arithmetic. The buffers are taken from a small pool (:data:`_POOL`, at most
  :data:`_POOL_KEEP` free buffers per size) and returned to it when the backward pass is done
  (or at once when nothing needs a gradient), so a buffer is never shared while in use. A graph
  whose backward pass is never run simply lets its buffers be garbage-collected.

The backward pass overwrites the saved gate activations, so it can run only once per forward
pass (``retain_graph=True`` followed by a second backward raises ``RuntimeError``). It is not
differentiable twice (``once_differentiable``).
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

__all__ = ["fused_gru", "fused_lstm"]

_sigmoid_backward = torch.ops.aten.sigmoid_backward.grad_input
_tanh_backward = torch.ops.aten.tanh_backward.grad_input

#: Free work buffers, keyed by (number of elements, dtype, device).
_POOL: dict[tuple[int, torch.dtype, torch.device], list[Tensor]] = {}
#: Free buffers kept per key; more are left to the allocator.
_POOL_KEEP = 2
_CHUNK = 4  # steps per weight-gradient GEMM in the backward pass
_ALIGN = 16  # elements: sub-buffers start on 64-byte boundaries (float32)


# The smallest positive float32 subnormal, built from its bit pattern (no float arithmetic).
_SUBNORMAL = torch.ones(1, dtype=torch.int32).view(torch.float32)


class _FlushDenormal:
    """Flush subnormal floats to zero inside the recurrence, restoring the previous mode.

    Gradients carried back through many steps shrink geometrically and can become subnormal
    (below 1.2e-38 in float32), where every arithmetic instruction is 10-100x slower; on this
    CPU that made a backward pass several times slower than its forward pass. Flushing them to
    zero changes nothing above that magnitude. The mode is per thread, so only the calling
    thread (which runs the small per-step operations) is switched.
    """

    def __enter__(self):
        # Under flush-to-zero / denormals-are-zero, twice the smallest subnormal reads as 0.
        self.was_on = bool((_SUBNORMAL * 2.0).item() == 0.0)
        if not self.was_on:
            torch.set_flush_denormal(True)
        return self

    def __exit__(self, *exc):
        if not self.was_on:
            torch.set_flush_denormal(False)
        return False


def _take(sizes: list[tuple[int, ...]], like: Tensor) -> tuple[Tensor, list[Tensor]]:
    """One pooled flat buffer carved into uninitialised tensors of the given shapes."""
    counts = [int(torch.Size(s).numel()) for s in sizes]
    padded = [-(-c // _ALIGN) * _ALIGN for c in counts]
    key = (sum(padded), like.dtype, like.device)
    free = _POOL.get(key)
    flat = free.pop() if free else torch.empty(key[0], dtype=like.dtype, device=like.device)
    parts, offset = [], 0
    for shape, count, step in zip(sizes, counts, padded, strict=True):
        parts.append(flat[offset : offset + count].view(shape))
        offset += step
    return flat, parts


def _give_back(flat: Tensor) -> None:
    free = _POOL.setdefault((flat.numel(), flat.dtype, flat.device), [])
    if len(free) < _POOL_KEEP:
        free.append(flat)


def _per_step(buf: Tensor, start: int | None = None, stop: int | None = None) -> tuple:
    """Views ``buf[t, :, start:stop]`` for every ``t``, made in one call (slicing inside the
    loop costs about a microsecond per view, several per step)."""
    return buf[:, :, start:stop].unbind(0)


def _check(x: Tensor, w_ih: Tensor, w_hh: Tensor, gates: int) -> tuple[int, int, int, int]:
    if x.dim() != 3:
        raise ValueError(f"The input sequence must have shape (steps, batch, input_size), got "
                         f"shape {tuple(x.shape)!r}.")
    steps, batch, size_in = x.shape
    hidden = w_hh.shape[1]
    if w_hh.shape != (gates * hidden, hidden) or w_ih.shape != (gates * hidden, size_in):
        raise ValueError(f"Weight shapes {tuple(w_ih.shape)!r} (input) and "
                         f"{tuple(w_hh.shape)!r} (recurrent) do not fit {gates} gates of a "
                         f"layer with input size {size_in}; pass the parameters of one "
                         f"nn.{'LSTM' if gates == 4 else 'GRU'} layer.")
    if steps < 1:
        raise ValueError("The input sequence must have at least one step, got 0.")
    return steps, batch, size_in, hidden


def _start_hx(hx: Tensor, x: Tensor, hidden: int) -> None:
    """Fill ``hx`` (steps + 1, batch, hidden + input + 1) with [0, x_t, 1] (h_{-1} = 0)."""
    steps = x.shape[0]
    hx[0, :, :hidden].zero_()
    hx[:steps, :, hidden:-1].copy_(x)
    hx[steps, :, hidden:-1].zero_()
    hx[:, :, -1].fill_(1.0)


class _GradSink:
    """Where the backward loop puts each step's gate gradients, and what it makes of them.

    Step ``t``'s pre-activation gradients go to slot ``t % chunk`` of a small ring buffer that
    stays in cache; once a chunk of ``chunk`` consecutive steps is complete, one GEMM adds its
    share of the augmented-weight gradient, ``hx[t:t+n].T @ dgates`` with ``n * batch`` rows,
    and another its input gradient. The ``(steps, batch, 4 * hidden)`` gradients are never
    written to memory as a whole.
    """

    def __init__(self, ctx, w_aug: Tensor, hx: Tensor, chunk: int = _CHUNK) -> None:
        steps, batch, size_in, hidden = ctx.sizes
        need = ctx.needs_input_grad
        self.steps, self.batch, self.hx, self.chunk = steps, batch, hx, chunk
        self.ring = hx.new_empty(chunk, batch, w_aug.shape[0])
        self.slots = self.ring.unbind(0)
        self.dw_t = hx.new_zeros(w_aug.shape[1], w_aug.shape[0]) if any(need[1:]) else None
        self.w_x = w_aug[:, hidden : hidden + size_in].contiguous()
        self.dx = hx.new_empty(steps, batch, size_in) if need[0] else None

    def slot(self, t: int) -> Tensor:
        """The ``(batch, 4 * hidden)`` buffer of step ``t``'s gate gradients."""
        return self.slots[t % self.chunk]

    def step_done(self, t: int) -> None:
        """Consume the chunk that starts at ``t`` once its first step is done."""
        if t % self.chunk:
            return
        n = min(self.chunk, self.steps - t)
        rows = n * self.batch
        dgates = self.ring[:n].view(rows, -1)
        if self.dw_t is not None:
            # (K, rows) @ (rows, 4H): about twice as fast here as dgates.T @ hx.
            self.dw_t.addmm_(self.hx[t : t + n].view(rows, -1).t(), dgates)
        if self.dx is not None:
            torch.mm(dgates, self.w_x, out=self.dx[t : t + n].view(rows, -1))


def _claim(ctx, cell: str) -> None:
    if ctx.used:
        raise RuntimeError(f"The fused {cell} recycles its saved activations after its backward "
                           f"pass, which can therefore run only once per forward pass; run the "
                           f"forward pass again instead of backward(retain_graph=True).")
    ctx.used = True


class _FusedLSTM(torch.autograd.Function):
    """Last hidden state of one nn.LSTM layer; gates kept in the order o, i, f, g."""

    @staticmethod
    def forward(ctx, x, w_ih, w_hh, b_ih, b_hh):
        steps, batch, size_in, hidden = _check(x, w_ih, w_hh, 4)
        h1, h2, h3 = hidden, 2 * hidden, 3 * hidden
        width = hidden + size_in + 1
        # nn.LSTM's row blocks are i, f, g, o; o, i, f, g puts the sigmoid gates side by side.
        perm = torch.cat([torch.arange(3 * hidden, 4 * hidden), torch.arange(3 * hidden)])
        perm = perm.to(x.device)
        w_aug = torch.cat([w_hh, w_ih, (b_ih + b_hh).unsqueeze(1)], dim=1)[perm].contiguous()
        flat, (gates, cs, hx) = _take(
            [(steps, batch, 4 * hidden), (steps + 1, batch, hidden), (steps + 1, batch, width)], x)
        tc = x.new_empty(batch, hidden)
        _start_hx(hx, x, hidden)
        cs[0].zero_()
        w_t = w_aug.t()
        g_all, sig_all, tanh_all = _per_step(gates), _per_step(gates, 0, h3), _per_step(gates, h3)
        o_all, i_all, f_all = _per_step(gates, 0, h1), _per_step(gates, h1, h2), _per_step(gates, h2, h3)
        c_all = cs.unbind(0)
        hx_all, h_all = hx.unbind(0), _per_step(hx, 0, hidden)
        for t in range(steps):
            c_new = c_all[t + 1]
            torch.mm(hx_all[t], w_t, out=g_all[t])
            sig_all[t].sigmoid_()
            tanh_all[t].tanh_()
            torch.mul(f_all[t], c_all[t], out=c_new)
            c_new.addcmul_(i_all[t], tanh_all[t])
            torch.tanh(c_new, out=tc)
            torch.mul(o_all[t], tc, out=h_all[t + 1])
        h_last = hx[steps, :, :hidden].clone()
        if any(ctx.needs_input_grad):
            ctx.save_for_backward(w_aug, perm, flat, gates, cs, hx)
            ctx.used = False
        else:
            _give_back(flat)
        ctx.sizes = (steps, batch, size_in, hidden)
        return h_last

    @staticmethod
    @once_differentiable
    def backward(ctx, dh_last):
        with _FlushDenormal():
            return _FusedLSTM._backward(ctx, dh_last)

    @staticmethod
    def _backward(ctx, dh_last):
        _claim(ctx, "LSTM")
        w_aug, perm, flat, gates, cs, hx = ctx.saved_tensors
        steps, batch, size_in, hidden = ctx.sizes
        h1, h2, h3 = hidden, 2 * hidden, 3 * hidden
        w_h = w_aug[:, :hidden].contiguous()
        dh = dh_last.contiguous().clone()
        dc = torch.empty_like(dh)
        dcf = torch.zeros_like(dh)  # dc_{t+1} * f_{t+1}: the cell gradient carried back
        sink = _GradSink(ctx, w_aug, hx)
        sig_all, o_all, i_all = _per_step(gates, 0, h3), _per_step(gates, 0, h1), _per_step(gates, h1, h2)
        f_all, g_all = _per_step(gates, h2, h3), _per_step(gates, h3)
        c_all = cs.unbind(0)
        tc = torch.empty_like(dh)
        rings = [_per_step(sink.ring, a, b) for a, b in ((0, h1), (h1, h2), (h2, h3), (h3, None), (0, h3))]
        for t in range(steps - 1, -1, -1):
            k = t % sink.chunk
            torch.tanh(c_all[t + 1], out=tc)  # recomputed from the cell state (hot in cache)
            d_o, d_i, d_f, d_g, d_sig = (ring[k] for ring in rings)
            torch.mul(dh, o_all[t], out=dc)
            _tanh_backward(dc, tc, grad_input=dc)
            dc.add_(dcf)
            # Gradients of the activations o, i, f, g, then, in place, of the pre-activations.
            torch.mul(dh, tc, out=d_o)
            torch.mul(dc, g_all[t], out=d_i)
            torch.mul(dc, c_all[t], out=d_f)
            torch.mul(dc, i_all[t], out=d_g)
            torch.mul(dc, f_all[t], out=dcf)
            _sigmoid_backward(d_sig, sig_all[t], grad_input=d_sig)
            _tanh_backward(d_g, g_all[t], grad_input=d_g)
            if t > 0:
                torch.mm(sink.slots[k], w_h, out=dh)
            sink.step_done(t)
        _give_back(flat)
        dw_aug, dx = None if sink.dw_t is None else sink.dw_t.t(), sink.dx
        need = ctx.needs_input_grad
        dw_ih = dw_hh = db = None
        if dw_aug is not None:
            dw = torch.empty_like(dw_aug)
            dw[perm] = dw_aug  # back to nn.LSTM's gate order
            dw_hh = dw[:, :hidden].contiguous() if need[2] else None
            dw_ih = dw[:, hidden : hidden + size_in].contiguous() if need[1] else None
            db = dw[:, -1].contiguous()
        return (dx, dw_ih, dw_hh, db if need[3] else None, db if need[4] else None)


class _FusedGRU(torch.autograd.Function):
    """Last hidden state of one nn.GRU layer; gate blocks r, z, W_hn h + b_hn, then n."""

    @staticmethod
    def forward(ctx, x, w_ih, w_hh, b_ih, b_hh):
        steps, batch, size_in, hidden = _check(x, w_ih, w_hh, 3)
        h1, h2, h3 = hidden, 2 * hidden, 3 * hidden
        width = hidden + size_in + 1
        w_aug = x.new_zeros(4 * hidden, width)
        w_aug[:h2, :hidden] = w_hh[:h2]
        w_aug[:h2, hidden:-1] = w_ih[:h2]
        w_aug[:h2, -1] = b_ih[:h2] + b_hh[:h2]
        w_aug[h2:h3, :hidden] = w_hh[h2:]
        w_aug[h2:h3, -1] = b_hh[h2:]
        w_aug[h3:, hidden:-1] = w_ih[h2:]
        w_aug[h3:, -1] = b_ih[h2:]
        flat, (gates, hx) = _take([(steps, batch, 4 * hidden), (steps + 1, batch, width)], x)
        _start_hx(hx, x, hidden)
        w_t = w_aug.t()
        diff = x.new_empty(batch, hidden)
        g_all, rz_all, r_all = gates.unbind(0), _per_step(gates, 0, h2), _per_step(gates, 0, h1)
        z_all, hn_all, n_all = _per_step(gates, h1, h2), _per_step(gates, h2, h3), _per_step(gates, h3)
        hx_all, h_all = hx.unbind(0), _per_step(hx, 0, hidden)
        for t in range(steps):
            n = n_all[t]
            torch.mm(hx_all[t], w_t, out=g_all[t])
            rz_all[t].sigmoid_()
            n.addcmul_(r_all[t], hn_all[t])
            n.tanh_()
            torch.sub(h_all[t], n, out=diff)
            torch.addcmul(n, z_all[t], diff, out=h_all[t + 1])
        h_last = hx[steps, :, :hidden].clone()
        if any(ctx.needs_input_grad):
            ctx.save_for_backward(w_aug, flat, gates, hx)
            ctx.used = False
        else:
            _give_back(flat)
        ctx.sizes = (steps, batch, size_in, hidden)
        return h_last

    @staticmethod
    @once_differentiable
    def backward(ctx, dh_last):
        with _FlushDenormal():
            return _FusedGRU._backward(ctx, dh_last)

    @staticmethod
    def _backward(ctx, dh_last):
        _claim(ctx, "GRU")
        w_aug, flat, gates, hx = ctx.saved_tensors
        steps, batch, size_in, hidden = ctx.sizes
        h1, h2, h3 = hidden, 2 * hidden, 3 * hidden
        w_h = w_aug[:h3, :hidden].contiguous()  # = weight_hh (r, z, n rows)
        dh = dh_last.contiguous().clone()
        dhz = torch.empty_like(dh)  # dh * z: the direct path h_{t-1} -> h_t
        dn = torch.empty_like(dh)
        sink = _GradSink(ctx, w_aug, hx)
        rz_all, r_all = _per_step(gates, 0, h2), _per_step(gates, 0, h1)
        z_all, hn_all, n_all = _per_step(gates, h1, h2), _per_step(gates, h2, h3), _per_step(gates, h3)
        h_all = _per_step(hx, 0, hidden)
        rings = [_per_step(sink.ring, a, b)
                 for a, b in ((0, h1), (h1, h2), (h2, h3), (h3, None), (0, h2), (0, h3))]
        for t in range(steps - 1, -1, -1):
            k = t % sink.chunk
            d_r, d_z, d_hn, d_nx, d_rz, d_rzn = (ring[k] for ring in rings)
            n = n_all[t]
            torch.sub(h_all[t], n, out=d_z)
            d_z.mul_(dh)
            torch.mul(dh, z_all[t], out=dhz)
            torch.sub(dh, dhz, out=dn)
            _tanh_backward(dn, n, grad_input=d_nx)  # d(n pre-activation) = d(W_in x + b_in)
            torch.mul(d_nx, hn_all[t], out=d_r)
            torch.mul(d_nx, r_all[t], out=d_hn)  # d(W_hn h + b_hn)
            _sigmoid_backward(d_rz, rz_all[t], grad_input=d_rz)
            if t > 0:
                torch.addmm(dhz, d_rzn, w_h, out=dh)
            sink.step_done(t)
        _give_back(flat)
        dw_aug, dx = None if sink.dw_t is None else sink.dw_t.t(), sink.dx
        need = ctx.needs_input_grad
        dw_ih = dw_hh = db_ih = db_hh = None
        if dw_aug is not None:
            inp, rec = slice(hidden, hidden + size_in), slice(0, hidden)
            if need[1]:
                dw_ih = torch.cat([dw_aug[:h2, inp], dw_aug[h3:, inp]])
            if need[2]:
                dw_hh = dw_aug[:h3, rec].contiguous()
            if need[3]:
                db_ih = torch.cat([dw_aug[:h2, -1], dw_aug[h3:, -1]])
            if need[4]:
                db_hh = dw_aug[:h3, -1].contiguous()
        return dx, dw_ih, dw_hh, db_ih, db_hh


def fused_lstm(x: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor, b_hh: Tensor) -> Tensor:
    """Last hidden state of one LSTM layer run from a zero state.

    Parameters
    ----------
    x : Tensor, shape (steps, batch, input_size)
        Time-major input sequence.
    w_ih : Tensor, shape (4 * hidden, input_size)
    w_hh : Tensor, shape (4 * hidden, hidden)
    b_ih, b_hh : Tensor, shape (4 * hidden,)
        ``nn.LSTM``'s ``weight_ih_l0``, ``weight_hh_l0``, ``bias_ih_l0``, ``bias_hh_l0`` (gate
        order i, f, g, o).

    Returns
    -------
    Tensor, shape (batch, hidden)
        ``h`` after the last step, as ``nn.LSTM(x)[1][0][-1]``; differentiable with respect to
        every argument.
    """
    with _FlushDenormal():
        return _FusedLSTM.apply(x, w_ih, w_hh, b_ih, b_hh)


def fused_gru(x: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor, b_hh: Tensor) -> Tensor:
    """Last hidden state of one GRU layer run from a zero state.

    Parameters
    ----------
    x : Tensor, shape (steps, batch, input_size)
        Time-major input sequence.
    w_ih : Tensor, shape (3 * hidden, input_size)
    w_hh : Tensor, shape (3 * hidden, hidden)
    b_ih, b_hh : Tensor, shape (3 * hidden,)
        ``nn.GRU``'s ``weight_ih_l0``, ``weight_hh_l0``, ``bias_ih_l0``, ``bias_hh_l0`` (gate
        order r, z, n; ``b_hn`` sits inside the reset gate's product, as in ``nn.GRU``).

    Returns
    -------
    Tensor, shape (batch, hidden)
        ``h`` after the last step, as ``nn.GRU(x)[1][-1]``; differentiable with respect to
        every argument.
    """
    with _FlushDenormal():
        return _FusedGRU.apply(x, w_ih, w_hh, b_ih, b_hh)
