"""Fused single-layer LSTM and GRU: whole-sequence autograd functions with hand-written BPTT.

:func:`fused_lstm` and :func:`fused_gru` compute exactly ``nn.LSTM(...)(x)[1][0][-1]`` and
``nn.GRU(...)(x)[1][-1]`` (the last hidden state of one unidirectional layer from a zero state),
from the parameters of those modules, with PyTorch's gate equations::

    LSTM  i, f, o = sigmoid(.), g = tanh(.)   of  W_ih x + b_ih + W_hh h + b_hh
          c' = f * c + i * g,  h' = o * tanh(c')
    GRU   r, z = sigmoid(W_i{r,z} x + b_i{r,z} + W_h{r,z} h + b_h{r,z})
          n = tanh(W_in x + b_in + r * (W_hn h + b_hn)),  h' = (1 - z) * n + z * h

Two implementations of the same passes, chosen per call by :func:`fearkd.models._fused.whole`
and tested against ``nn.LSTM``/``nn.GRU`` alike:

* **Compiled** (float32/float64 on the CPU, with :mod:`fearkd.models._kernels` built): one C
  call runs a layer's whole forward or backward pass. Each thread takes a slice of the batch
  through every step with its own small GEMMs (PyTorch's BLAS, one core each) and one loop per
  step for all gate nonlinearities and the cell update; the threads never wait for each other.
  At a batch of 256 and 64 units PyTorch cannot share one step's operations between cores, so
  on 2 threads this ran LSTM and GRU training 2.1-2.2x as fast as the PyTorch operations below.
  Each thread sums its own weight gradients, added up in thread order (the same bits from run
  to run), and flushes subnormals on its own thread. Same buffers, layouts and equations as
  below.
* **PyTorch operations** (every other case, or ``FEARKD_KERNELS=0``), as follows.

How the time goes into matrix multiplies on a CPU:

* **One GEMM per step, no separate input projection.** The step's input and a constant 1 ride
  along with the hidden state: row ``t`` of the buffer ``hx`` (shape ``(steps + 1, batch,
  hidden + input + 1)``) holds ``[h_{t-1}, x_t, 1]``, and one augmented weight matrix ``W``
  (``[W_hh, W_ih, b]`` per gate row) gives every gate's pre-activation of step ``t`` as
  ``hx[t] @ W.T``, written straight into the saved gate buffer. For the GRU the matrix has four
  row blocks, ``r``, ``z``, ``W_hn h + b_hn`` and ``W_in x + b_in`` (zeros elsewhere), because
  the reset gate multiplies the recurrent part of ``n`` only. The LSTM keeps only
  :data:`_RING` rows of ``hx`` (a ring that stays in cache; the ``x_t`` of that many steps
  are copied in at once) and its backward pass rebuilds ``h_{t-1} = o_{t-1} * tanh(c_{t-1})``
  from the saved gates and cell states, which it reads anyway: writing and re-reading ``hx``
  from memory cost more. The LSTM's GEMM writes into a scratch row that stays in cache, and
  the gate nonlinearity copies it into the saved buffer: GEMM stores into memory that is not in
  cache ran about 10 % slower.
* **Forward without autograd.** Per step: that GEMM and five or six element-wise operations
  into preallocated ``(steps, batch, .)`` buffers (gate activations; for the LSTM also the cell
  state), which are all the backward pass needs. The LSTM keeps its gates in the order o, i, f,
  g and computes its three sigmoids as ``0.5 + 0.5 * tanh(a / 2)`` (the halving folded into the
  weights, exactly): one tanh over the contiguous gate row and one affine map replace a strided
  sigmoid and a strided tanh.
* **Hand-written backward through time.** Only the last hidden state has a gradient, so per step
  the backward pass does a few element-wise operations (``sigmoid_backward``/``tanh_backward``
  kernels; for the LSTM ``dc = dh * q + dc_{t+1} f_{t+1}`` with ``q = o - h tanh(c)`` made
  alongside the rebuilt ``h``) and one GEMM ``dh_{t-1} = dgates_t @ W_hh``. The step's gate
  gradients go to a small ring buffer that stays in cache; every :data:`_CHUNK` steps one GEMM
  over those ``chunk * batch`` rows adds their share of the gradient of the whole augmented
  matrix (recurrent weights, input weights and biases at once):
  ``dW.T += hx[t:t+chunk].T @ dgates``.
  The full ``(steps, batch, 4 * hidden)`` gradient is never written to memory. (One GEMM over
  all steps after the loop, from a saved gradient buffer, measured slower: the extra memory
  traffic costs more than the bigger GEMM saves.)
* **Buffers reused across calls.** A forward pass saves about 58 MB for a 176-step LSTM batch of
  256 (gates and cell states); freshly allocated memory of that size is mapped page by page on
  first touch, which cost as much as a third of the arithmetic. The buffers are taken from a
  small pool (:mod:`fearkd.models._pool`) and returned to it when the
  autograd graph that saved them is freed (at once when nothing needs a gradient), so a buffer
  is never shared while in use. In a training loop the previous batch's graph is still alive
  during the next forward pass, so two buffers take turns.
* **Subnormals flushed to zero** while the recurrence runs (see :class:`_FlushDenormal`).
* **Python overhead kept out of the loops.** A view made inside a loop costs about a
  microsecond; every per-step and per-chunk view is made once per call (``unbind``/``split``)
  and the loops only index lists and call operations with ``out=``.

The backward pass only reads what the forward pass saved, so ``backward(retain_graph=True)``
may run it again. It is not differentiable twice (``once_differentiable``).
"""

from __future__ import annotations

import weakref

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from fearkd.models import _fused
from fearkd.models._pool import give_back as _give_back
from fearkd.models._pool import take as _take

__all__ = ["fused_gru", "fused_lstm"]

_sigmoid_backward = torch.ops.aten.sigmoid_backward.grad_input
_tanh_backward = torch.ops.aten.tanh_backward.grad_input

_CHUNK = 1  # steps per weight-gradient GEMM in the backward pass (1 measured best of 1-16)
_RING = 4  # slots of the LSTM forward pass's ring of GEMM rows [h_{t-1}, x_t, 1]


# The smallest positive float32 subnormal, built from its bit pattern (no float arithmetic).
_SUBNORMAL = torch.ones(1, dtype=torch.int32).view(torch.float32)


class _FlushDenormal:
    """Flush subnormal floats to zero inside the recurrence, restoring the previous mode.

    Gradients carried back through many steps shrink geometrically and can become subnormal
    (below 1.2e-38 in float32), where every arithmetic instruction is 10-100x slower; on this
    CPU that made a backward pass several times slower than its forward pass. Flushing them to
    zero changes nothing above that magnitude. The mode is per thread and only the calling
    thread can be switched, so with ``one_thread`` the block also runs on the calling thread
    alone (the intra-op thread count is per thread too): the other threads of PyTorch's pool,
    which would compute half of every matrix multiply, keep subnormals. On the 2-core machine
    the GRU's backward pass (176 steps, batch 256) took 89-97 ms on two threads against 24-27
    ms on one for that reason (and 23 ms on two threads whose pool was started with
    subnormals flushed).
    """

    def __init__(self, one_thread: bool = False) -> None:
        self.one_thread = one_thread

    def __enter__(self):
        # Under flush-to-zero / denormals-are-zero, twice the smallest subnormal reads as 0.
        self.was_on = bool((_SUBNORMAL * 2.0).item() == 0.0)
        if not self.was_on:
            torch.set_flush_denormal(True)
        self.threads = torch.get_num_threads()
        if self.one_thread and self.threads > 1:
            torch.set_num_threads(1)
        return self

    def __exit__(self, *exc):
        if not self.was_on:
            torch.set_flush_denormal(False)
        if torch.get_num_threads() != self.threads:
            torch.set_num_threads(self.threads)
        return False


def _per_step(buf: Tensor, start: int | None = None, stop: int | None = None) -> tuple:
    """Views ``buf[t, :, start:stop]`` for every ``t``, made in one call (slicing inside the
    loop costs about a microsecond per view, several per step)."""
    return buf[:, :, start:stop].unbind(0)


def _check(x: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor, b_hh: Tensor,
           gates: int) -> tuple[int, int, int, int]:
    for name, p in (("w_ih", w_ih), ("w_hh", w_hh), ("b_ih", b_ih), ("b_hh", b_hh)):
        if p.dtype != x.dtype or p.device != x.device:
            raise ValueError(f"The input sequence is {x.dtype} on {x.device}, but the layer's "
                             f"parameter {name} is {p.dtype} on {p.device}; convert one to "
                             f"the other (for example model.to(x.dtype) or x.to(torch.float32)).")
    if x.dim() != 3:
        raise ValueError(f"The input sequence must have shape (steps, batch, input_size), got "
                         f"shape {tuple(x.shape)!r}.")
    steps, batch, size_in = x.shape
    hidden = w_hh.shape[-1]
    if w_hh.shape != (gates * hidden, hidden) or w_ih.shape != (gates * hidden, size_in):
        raise ValueError(f"Weight shapes {tuple(w_ih.shape)!r} (input) and "
                         f"{tuple(w_hh.shape)!r} (recurrent) do not fit {gates} gates of a "
                         f"layer with input size {size_in}; pass the parameters of one "
                         f"nn.{'LSTM' if gates == 4 else 'GRU'} layer.")
    if steps < 1 or batch < 1:
        raise ValueError(f"The input sequence must have at least one step and one sequence in "
                         f"the batch, got shape {tuple(x.shape)!r} (steps, batch, input_size).")
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
    written to memory as a whole. The GEMM rows ``[h_{t-1}, x_t, 1]`` come from ``hx`` (the
    GRU's saved ``(steps + 1, batch, K)`` buffer) or, with ``hx=None``, from a ring of
    ``chunk`` slots that the caller fills (the LSTM rebuilds ``h_{t-1}`` on the fly). The
    GEMM operands of every chunk are views made once here (a view made in the loop costs
    about a microsecond and a half).
    """

    def __init__(self, ctx, w_aug: Tensor, hx: Tensor | None, chunk: int | None = None) -> None:
        steps, batch, size_in, hidden = ctx.sizes
        need = ctx.needs_input_grad
        chunk = _CHUNK if chunk is None else chunk
        self.steps, self.batch, self.chunk = steps, batch, chunk
        self.hx_is_ring = hx is None
        if hx is None:  # the caller fills the rows of each chunk into this ring
            hx = w_aug.new_empty(chunk, batch, w_aug.shape[1])
            hx[:, :, -1].fill_(1.0)
        self.hx = hx
        self.ring = hx.new_empty(chunk, batch, w_aug.shape[0])
        self.slots = self.ring.unbind(0)  # step t uses slot t % chunk
        self.dw_t = hx.new_zeros(w_aug.shape[1], w_aug.shape[0]) if any(need[1:]) else None
        self.w_x = w_aug[:, hidden : hidden + size_in].contiguous()
        self.dx = hx.new_empty(steps, batch, size_in) if need[0] else None
        # Chunk c covers steps c * chunk ..; all are full but possibly the last.
        sizes = {chunk, steps - chunk * ((steps - 1) // chunk)}
        self.dgates = {n: self.ring[:n].view(n * batch, -1) for n in sizes}
        if self.hx_is_ring:
            self.rows_t = {n: hx[:n].view(n * batch, -1).t() for n in sizes}
        else:
            self.rows_t = [rows.reshape(-1, hx.shape[-1]).t()
                           for rows in hx[:steps].split(chunk)]
        if self.dx is not None:
            self.dx_chunks = self.dx.view(steps * batch, size_in).split(chunk * batch)

    def views(self, bounds: tuple[tuple[int, int | None], ...],
              rows: bool = False) -> list[tuple[Tensor, ...]]:
        """Per ring slot: the column blocks ``slot[:, a:b]`` for ``(a, b)`` in ``bounds``, then
        the whole slot (made once, not in the loop). Slots of the gate-gradient ring, or with
        ``rows`` of the ring of GEMM rows ``[h_{t-1}, x_t, 1]`` (``hx=None``)."""
        slots = self.hx.unbind(0) if rows else self.slots
        return [(*(slot[:, a:b] for a, b in bounds), slot) for slot in slots]

    def flush(self, t: int) -> None:
        """Consume the chunk of steps ``t .. t + chunk - 1`` (call when step ``t`` is done;
        ``t`` is a multiple of ``chunk``)."""
        n = min(self.chunk, self.steps - t)
        dgates = self.dgates[n]
        if self.dw_t is not None:
            # (K, rows) @ (rows, 4H): faster here than dgates.T @ hx.
            rows_t = self.rows_t[n] if self.hx_is_ring else self.rows_t[t // self.chunk]
            self.dw_t.addmm_(rows_t, dgates)
        if self.dx is not None:
            torch.mm(dgates, self.w_x, out=self.dx_chunks[t // self.chunk])


def _keep_for_backward(ctx, flat: Tensor, *tensors: Tensor) -> None:
    """Save ``tensors`` (views of the pooled buffer ``flat``) for the backward pass.

    The buffer goes back to the pool when the graph node dies, not when its backward pass ends,
    so ``backward(retain_graph=True)`` may run again; without a gradient it goes back at once.
    """
    if any(ctx.needs_input_grad):
        ctx.save_for_backward(*tensors)
        weakref.finalize(ctx, _give_back, flat)
    else:
        _give_back(flat)


class _FusedLSTM(torch.autograd.Function):
    """Last hidden state of one nn.LSTM layer; gates kept in the order o, i, f, g.

    The per-step views of the saved buffers are made once by the forward pass and kept on
    ``ctx`` for the backward pass (about 1,000 views per call, a microsecond or so each).
    """

    @staticmethod
    def forward(ctx, x, w_ih, w_hh, b_ih, b_hh):
        steps, batch, size_in, hidden = _check(x, w_ih, w_hh, b_ih, b_hh, 4)
        h1, h2, h3, h4 = hidden, 2 * hidden, 3 * hidden, 4 * hidden
        width = hidden + size_in + 1
        # nn.LSTM's row blocks are i, f, g, o; o, i, f, g puts the sigmoid gates side by side.
        perm = torch.cat([torch.arange(3 * hidden, 4 * hidden), torch.arange(3 * hidden)])
        perm = perm.to(x.device)
        w_aug = torch.cat([w_hh, w_ih, (b_ih + b_hh).unsqueeze(1)], dim=1)[perm].contiguous()
        flat, (gates, cs) = _take([(steps, batch, 4 * hidden), (steps + 1, batch, hidden)], x)
        cs[0].zero_()
        ctx.sizes = (steps, batch, size_in, hidden)
        ctx.compiled = _fused.whole(x)
        if ctx.compiled:  # each thread runs a slice of the batch through every step
            w_t = w_aug.t().contiguous()
            w_t[:, :h3] *= 0.5
            xs = x.detach().contiguous()
            h_last = x.new_empty(batch, hidden)
            _fused.lstm_forward(xs, w_t, gates, cs, h_last)
            _keep_for_backward(ctx, flat, w_aug, perm, gates, cs, xs)
            return h_last
        # The GEMM's input rows [h_{t-1}, x_t, 1] live in a ring of _RING slots that stays in
        # cache (step t uses slot t % _RING); the x_t of a chunk of steps are copied in at
        # once. The backward pass rebuilds h_{t-1} = o_{t-1} * tanh(c_{t-1}) from the saved
        # gates and cell states, which it reads anyway: writing and re-reading every h cost more.
        chunk = _RING
        xs = x.detach().contiguous()
        hx = x.new_empty(chunk, batch, width)
        hx[0, :, :hidden].zero_()
        hx[:, :, -1].fill_(1.0)
        x_ring = {n: hx[:n, :, hidden:-1] for n in range(1, chunk + 1)}
        tc = x.new_empty(batch, hidden)
        # sigmoid(a) = 0.5 + 0.5 * tanh(a / 2): halving the sigmoid gates' rows (exact) lets one
        # tanh over the whole contiguous gate row replace a strided sigmoid and a strided tanh.
        w_t = w_aug.t().contiguous()  # (K, 4H) row-major: the faster operand layout here
        w_t[:, :h3] *= 0.5
        half = x.new_tensor(0.5)
        sig_all, tanh_all = _per_step(gates, 0, h3), _per_step(gates, h3, h4)
        o_all, c_all = _per_step(gates, 0, h1), cs.unbind(0)
        i_all, f_all = _per_step(gates, h1, h2), _per_step(gates, h2, h3)
        hx_all, h_all = hx.unbind(0), _per_step(hx, 0, hidden)
        # Everything step t touches, bound once (indexing several lists per step costs more).
        step_views = list(zip([hx_all[t % chunk] for t in range(steps)],
                              gates.unbind(0), sig_all, f_all, c_all[:-1], c_all[1:], i_all,
                              tanh_all, o_all,
                              [h_all[(t + 1) % chunk] for t in range(steps)], strict=True))
        # The GEMM writes into a scratch row that stays in cache and the tanh copies it into the
        # saved buffer: GEMM stores to memory that is not in cache ran about 10 % slower.
        pre = x.new_empty(batch, 4 * hidden)
        mm, mul, tanh, add = torch.mm, torch.mul, torch.tanh, torch.add
        for t0, x_chunk in zip(range(0, steps, chunk), xs.split(chunk), strict=True):
            n = len(x_chunk)
            x_ring[n].copy_(x_chunk)
            for row, g, sig, f, c, c_new, i, g_act, o, h_next in step_views[t0 : t0 + n]:
                mm(row, w_t, out=pre)
                tanh(pre, out=g)
                add(half, sig, alpha=0.5, out=sig)
                mul(f, c, out=c_new)
                c_new.addcmul_(i, g_act)
                tanh(c_new, out=tc)
                mul(o, tc, out=h_next)
        h_last = h_all[steps % chunk].clone()
        _keep_for_backward(ctx, flat, w_aug, perm, gates, cs, xs)
        if any(ctx.needs_input_grad):  # views of the saved buffer, reused by the backward pass
            ctx.step_views = (sig_all, o_all, i_all, f_all, tanh_all, c_all)
        return h_last

    @staticmethod
    @once_differentiable
    def backward(ctx, dh_last):
        need = ctx.needs_input_grad
        w_aug, perm, gates, cs, xs = ctx.saved_tensors
        if ctx.compiled:
            dx, dw_t = _fused.lstm_backward(xs, w_aug, gates, cs, dh_last.contiguous(),
                                            need[0], any(need[1:]), _CHUNK)
        else:
            with _FlushDenormal():
                dx, dw_t = _FusedLSTM._backward(ctx, dh_last)
        *_, size_in, hidden = ctx.sizes
        dw_ih = dw_hh = db = None
        if dw_t is not None:
            dw = torch.empty_like(dw_t.t())
            dw[perm] = dw_t.t()  # back to nn.LSTM's gate order
            dw_hh = dw[:, :hidden].contiguous() if need[2] else None
            dw_ih = dw[:, hidden : hidden + size_in].contiguous() if need[1] else None
            db = dw[:, -1].contiguous()
        return (dx, dw_ih, dw_hh, db if need[3] else None, db if need[4] else None)

    @staticmethod
    def _backward(ctx, dh_last):
        """The PyTorch operations' backward pass: the input gradient and ``dW.T``."""
        w_aug, perm, _, _, xs = ctx.saved_tensors  # gates and cell states: via ctx.step_views
        sig_all, o_all, i_all, f_all, g_all, c_all = ctx.step_views
        steps, batch, size_in, hidden = ctx.sizes
        h1, h2, h3 = hidden, 2 * hidden, 3 * hidden
        w_h = w_aug[:, :hidden].contiguous()
        dh = dh_last.contiguous().clone()
        dc = torch.empty_like(dh)
        dcf = torch.zeros_like(dh)  # dc_{t+1} * f_{t+1}: the cell gradient carried back
        sink = _GradSink(ctx, w_aug, None)
        chunk = sink.chunk
        ring = [(slot[:, :h1], slot[:, h1:h2], slot[:, h2:h3], slot[:, h3:], slot[:, :h3], slot)
                for slot in sink.slots]
        dcf_next = torch.empty_like(dh)
        rows = sink.dw_t is not None
        h_rows = _per_step(sink.hx, 0, hidden) if rows else None
        x_rows = {n: sink.hx[:n, :, hidden:-1] for n in range(1, chunk + 1)}
        x_chunks = xs.split(chunk)
        tc = torch.tanh(c_all[steps])  # tanh(c_t); each step makes tanh(c_{t-1}) for the next
        tc_prev = torch.empty_like(tc)
        # q = dh'/dc' = o * (1 - tanh(c)^2) = o - h * tanh(c), from h = o * tanh(c), which the
        # weight gradient needs anyway: then dc = dh * q + dcf is one addcmul.
        h_tmp, q = torch.empty_like(tc), torch.empty_like(tc)
        torch.mul(o_all[steps - 1], tc, out=h_tmp)
        torch.addcmul(o_all[steps - 1], h_tmp, tc, value=-1.0, out=q)
        addcmul = torch.addcmul
        mm, mul, tanh = torch.mm, torch.mul, torch.tanh
        for t0 in range(chunk * ((steps - 1) // chunk), -1, -chunk):
            n = min(chunk, steps - t0)
            if rows:
                x_rows[n].copy_(x_chunks[t0 // chunk])
            for t in range(t0 + n - 1, t0 - 1, -1):
                d_o, d_i, d_f, d_g, d_sig, dg = ring[t - t0]
                addcmul(dcf, dh, q, out=dc)
                # Gradients of the activations o, i, f, g, then, in place, of the
                # pre-activations; dc * f is carried to step t - 1.
                mul(dh, tc, out=d_o)
                mul(dc, g_all[t], out=d_i)
                mul(dc, c_all[t], out=d_f)
                mul(dc, i_all[t], out=d_g)
                mul(dc, f_all[t], out=dcf_next)
                _sigmoid_backward(d_sig, sig_all[t], grad_input=d_sig)
                _tanh_backward(d_g, g_all[t], grad_input=d_g)
                dcf, dcf_next = dcf_next, dcf
                if t > 0:
                    mm(dg, w_h, out=dh)
                    tanh(c_all[t], out=tc_prev)
                    # With weight gradients, h_{t-1} goes into its GEMM row [h_{t-1}, x_t, 1].
                    h = h_rows[t - t0] if rows else h_tmp
                    mul(o_all[t - 1], tc_prev, out=h)
                    addcmul(o_all[t - 1], h, tc_prev, value=-1.0, out=q)
                elif rows:
                    h_rows[0].zero_()
                tc, tc_prev = tc_prev, tc
            sink.flush(t0)
        return sink.dx, sink.dw_t


class _FusedGRU(torch.autograd.Function):
    """Last hidden state of one nn.GRU layer; gate blocks r, z, W_hn h + b_hn, then n."""

    @staticmethod
    def forward(ctx, x, w_ih, w_hh, b_ih, b_hh):
        steps, batch, size_in, hidden = _check(x, w_ih, w_hh, b_ih, b_hh, 3)
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
        w_t = w_aug.t().contiguous()  # (K, 4H) row-major: the faster operand layout here
        ctx.sizes = (steps, batch, size_in, hidden)
        ctx.compiled = _fused.whole(x)
        if ctx.compiled:  # each thread runs a slice of the batch through every step
            _fused.gru_forward(hx, w_t, gates)
            h_last = hx[steps, :, :hidden].clone()
            _keep_for_backward(ctx, flat, w_aug, gates, hx)
            return h_last
        diff = x.new_empty(batch, hidden)
        g_all, rz_all, r_all = gates.unbind(0), _per_step(gates, 0, h2), _per_step(gates, 0, h1)
        z_all, hn_all = _per_step(gates, h1, h2), _per_step(gates, h2, h3)
        n_all = _per_step(gates, h3)
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
        _keep_for_backward(ctx, flat, w_aug, gates, hx)
        return h_last

    @staticmethod
    @once_differentiable
    def backward(ctx, dh_last):
        need = ctx.needs_input_grad
        if ctx.compiled:
            w_aug, gates, hx = ctx.saved_tensors
            dx, dw_t = _fused.gru_backward(hx, w_aug, gates, dh_last.contiguous(), need[0],
                                           any(need[1:]))
        else:
            with _FlushDenormal(one_thread=True):
                dx, dw_t = _FusedGRU._backward(ctx, dh_last)
        *_, size_in, hidden = ctx.sizes
        h2, h3 = 2 * hidden, 3 * hidden
        dw_ih = dw_hh = db_ih = db_hh = None
        if dw_t is not None:
            dw_aug = dw_t.t()
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

    @staticmethod
    def _backward(ctx, dh_last):
        """The PyTorch operations' backward pass: the input gradient and ``dW.T``."""
        w_aug, gates, hx = ctx.saved_tensors
        steps, batch, size_in, hidden = ctx.sizes
        h1, h2, h3 = hidden, 2 * hidden, 3 * hidden
        w_h = w_aug[:h3, :hidden].contiguous()  # = weight_hh (r, z, n rows)
        dh = dh_last.contiguous().clone()
        dhz = torch.empty_like(dh)  # dh * z: the direct path h_{t-1} -> h_t
        dn = torch.empty_like(dh)
        sink = _GradSink(ctx, w_aug, hx)
        rz_all, r_all = _per_step(gates, 0, h2), _per_step(gates, 0, h1)
        z_all, hn_all = _per_step(gates, h1, h2), _per_step(gates, h2, h3)
        n_all, h_all = _per_step(gates, h3), _per_step(hx, 0, hidden)
        ring = sink.views(((0, h1), (h1, h2), (h2, h3), (h3, None), (0, h2), (0, h3)))
        chunk = sink.chunk
        for t in range(steps - 1, -1, -1):
            d_r, d_z, d_hn, d_nx, d_rz, d_rzn, _ = ring[t % chunk]
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
            if t % chunk == 0:
                sink.flush(t)
        return sink.dx, sink.dw_t


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
