"""Fast layers: the CNN's conv blocks and the LSTM/GRU recurrences with hand-written backward.

They compute exactly the same functions as the plain PyTorch layers (``nn.Conv1d`` ->
``nn.ReLU`` -> ``nn.BatchNorm1d`` -> ``nn.MaxPool1d(2)``; ``nn.LSTM``; ``nn.GRU``), formulated so
that the time goes into large matrix multiplies on a 2-core CPU:

* **Channels-last, padded activations.** A block's output is written straight into a buffer of
  shape ``(batch, length + 2, channels)`` whose first and last rows are zero (the 'same' padding
  of the next kernel-3 convolution). Flattened to ``(batch * (length + 2), channels)``, the
  ``k``-th tap of the next convolution reads the contiguous rows ``k .. k + M`` of that matrix, so
  the convolution is three GEMMs over views, with no im2col copy and no transposes. Each sample
  yields two junk output rows (windows straddling two samples); they are zeroed and ignored.
* **Pooling as a max of two strided views**, and BatchNorm applied *after* pooling: the BN
  affine map ``y * scale + shift`` is monotonic per channel, so max-pooling commutes with it
  (the minimum is taken where ``scale < 0``). Batch statistics still use every unpooled
  position, as ``nn.BatchNorm1d`` does.
* **BN + ReLU + pooling backward fused by hand**: the BatchNorm input gradient is
  ``scale * dz + A + B * y`` with per-channel ``A`` and ``B``, the pooled gradient lands on the
  selected element of each pair (the first on ties, as ``nn.MaxPool1d``), and the ReLU mask is
  one ``threshold_backward``. Reductions run on contiguous buffers only (junk rows are
  zeroed so whole-buffer sums are valid-row sums).
* **Recurrences**: the input projection of all time steps is one GEMM outside the loop; the
  loop does one small GEMM and a few in-place element-wise operations per step into
  preallocated buffers; the backward pass precomputes all gate derivatives in whole-sequence
  operations, so each step costs one GEMM and three or four element-wise operations, and the
  recurrent weight gradient is one GEMM over all steps. (Measured slower on this CPU than
  ``nn.LSTM``/``nn.GRU``, which run oneDNN's fused kernels: the registry's ``lstm``/``gru`` use
  those; these recurrences back ``lstm-loop``/``gru-loop``.)

Measured on the 2-core AVX-512 machine, ``torch.where``, ``masked_fill``, ``var_mean`` and
reductions over strided views cost 10-20x a contiguous ``sum(0)`` or ``threshold_backward``;
the code avoids them on large tensors.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["conv_block", "lstm_recurrence", "gru_recurrence"]

_threshold_backward = torch.ops.aten.threshold_backward


def _conv_forward(x: Tensor, wk: Tensor, bias: Tensor, first: bool) -> tuple[Tensor, Tensor]:
    """Kernel-3 'same' convolution in channels-last layout.

    Parameters
    ----------
    x : Tensor, shape (batch, length) if ``first`` else (batch, length + 2, c_in)
        Raw input (one channel) or a zero-padded channels-last activation.
    wk : Tensor, shape (3, c_in, c_out)
        The kernel, tap first.
    bias : Tensor, shape (c_out,)
    first : bool
        Whether ``x`` is the one-channel network input.

    Returns
    -------
    y : Tensor, shape (batch, length_out, c_out)
        Pre-activation output; ``length_out`` is ``length`` (first) or ``length + 2`` (the last
        two rows of every sample are junk, zeroed by the caller).
    cols : Tensor
        What the weight gradient needs: the unfolded input ``(batch * length, 3)`` (first) or
        the flat padded input ``(batch * (length + 2), c_in)``.
    """
    if first:
        batch, length = x.shape
        # The unfolded input has 3 columns only: copying it is cheaper than three GEMMs.
        cols = torch.nn.functional.pad(x, (1, 1)).unfold(1, 3, 1).reshape(batch * length, 3)
        y = torch.addmm(bias, cols, wk[:, 0, :])
        return y.view(batch, length, -1), cols
    batch, rows, c_in = x.shape
    flat = x.reshape(batch * rows, c_in)
    m = batch * rows - 2
    y = torch.empty(batch * rows, wk.shape[2], dtype=x.dtype, device=x.device)
    torch.addmm(bias, flat[0:m], wk[0], out=y[:m])
    y[:m].addmm_(flat[1 : m + 1], wk[1])
    y[:m].addmm_(flat[2 : m + 2], wk[2])
    return y.view(batch, rows, -1), flat


def _conv_backward(dy, cols, wk, first, shape_in, need_dx, need_dw):
    """Gradients of :func:`_conv_forward`; ``dy`` has zero junk rows."""
    c_out = wk.shape[2]
    dy2 = dy.reshape(-1, c_out)
    dx = dwk = dbias = None
    if need_dw:
        dbias = dy2.sum(0)
        if first:
            dwk = (cols.t() @ dy2).unsqueeze(1)
        else:
            m = dy2.shape[0] - 2
            dwk = torch.stack([cols[k : k + m].t() @ dy2[:m] for k in range(3)])
    if need_dx:
        if first:
            batch, length = shape_in
            dcols = (dy2 @ wk[:, 0, :].t()).view(batch, length, 3)
            dpad = dy2.new_zeros(batch, length + 2)
            for k in range(3):
                dpad[:, k : k + length] += dcols[:, :, k]
            dx = dpad[:, 1:-1]
        else:
            m = dy2.shape[0] - 2
            dflat = dy2.new_zeros(dy2.shape[0], wk.shape[1])
            for k in range(3):
                dflat[k : k + m].addmm_(dy2[:m], wk[k].t())
            dx = dflat.view(shape_in)
    return dx, dwk, dbias


class _ConvBlock(torch.autograd.Function):
    """Conv1d(k=3, same) -> ReLU -> [BatchNorm] -> MaxPool(2), channels-last, fused."""

    @staticmethod
    def forward(ctx, x, weight, bias, gamma, beta, running_mean, running_var, training,
                momentum, eps, first, pad_out):
        wk = weight.detach().permute(2, 1, 0).contiguous()
        y, cols = _conv_forward(x.detach(), wk, bias.detach(), first)
        batch, rows, chans = y.shape
        length = x.shape[1] if first else rows - 2
        if not first:
            y[:, length:].zero_()  # junk rows: excluded from statistics and gradients
        y.relu_()
        y2 = y.view(-1, chans)
        pooled_len = length // 2
        even = y[:, 0 : 2 * pooled_len : 2]
        odd = y[:, 1 : 2 * pooled_len : 2]
        use_bn = gamma is not None
        count = batch * length
        if use_bn:
            if training:
                total = y2.sum(0)
                mean = total / count
                # Junk rows are zero, so sums over the whole buffer are sums over valid rows.
                var = ((y2 * y2).sum(0) / count - mean * mean).clamp_(min=0)
                if running_mean is not None:
                    unbiased = var * (count / max(count - 1, 1))
                    running_mean.mul_(1 - momentum).add_(mean, alpha=momentum)
                    running_var.mul_(1 - momentum).add_(unbiased, alpha=momentum)
            else:
                mean, var = running_mean.detach(), running_var.detach()
            invstd = torch.rsqrt(var + eps)
            scale = gamma.detach() * invstd
            shift = beta.detach() - mean * scale
            sign = None if bool((scale > 0).all()) else torch.sign(scale)
        else:
            sign = None
        picked = torch.maximum(even, odd)
        if sign is not None:
            # scale == 0: every z of the pair ties, and the first element is the one picked.
            picked = torch.where(sign > 0, picked,
                                 torch.where(sign < 0, torch.minimum(even, odd), even))
        out_rows = pooled_len + 2 if pad_out else pooled_len
        out = y.new_empty(batch, out_rows, chans)
        inner = out[:, 1:-1] if pad_out else out
        if pad_out:
            out[:, 0].zero_()
            out[:, -1].zero_()
        if use_bn:
            torch.addcmul(shift, picked, scale, out=inner)
        else:
            inner.copy_(picked)
        ctx.first, ctx.pad_out, ctx.use_bn, ctx.training = first, pad_out, use_bn, training
        ctx.length, ctx.count, ctx.shape_in = length, count, tuple(x.shape)
        ctx.sign = sign
        if use_bn:
            ctx.save_for_backward(y, cols, wk, picked, mean, invstd, scale)
        else:
            ctx.save_for_backward(y, cols, wk)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        if ctx.use_bn:
            y, cols, wk, picked, mean, invstd, scale = ctx.saved_tensors
        else:
            y, cols, wk = ctx.saved_tensors
        need = ctx.needs_input_grad
        batch, rows, chans = y.shape
        pooled_len = ctx.length // 2
        g = (grad_out[:, 1:-1] if ctx.pad_out else grad_out).contiguous()
        even = y[:, 0 : 2 * pooled_len : 2]
        odd = y[:, 1 : 2 * pooled_len : 2]
        # The odd element of a pair takes the gradient only where it alone is the max (ties
        # go to the first element, as in nn.MaxPool1d); for scale < 0 the order flips.
        diff = odd - even
        if ctx.sign is not None:
            diff.mul_(ctx.sign)
        dgamma = dbeta = None
        if ctx.use_bn:
            g2 = g.view(-1, chans)
            dbeta = g2.sum(0)
            dgamma = invstd * ((g2 * picked.view(-1, chans)).sum(0) - mean * dbeta)
            gs = g * scale
            if ctx.training:
                coef_y = -scale * dgamma * invstd / ctx.count
                const = -scale * dbeta / ctx.count - coef_y * mean
            else:
                coef_y = const = None
        else:
            gs = g
            coef_y = const = None
        g_odd = _threshold_backward(gs, diff, 0)
        dy = torch.empty_like(y)
        d_even = dy[:, 0 : 2 * pooled_len : 2]
        d_odd = dy[:, 1 : 2 * pooled_len : 2]
        if coef_y is None:
            torch.sub(gs, g_odd, out=d_even)
            d_odd.copy_(g_odd)
            dy[:, 2 * pooled_len :].zero_()
        else:
            torch.addcmul(gs - g_odd + const, even, coef_y, out=d_even)
            torch.addcmul(g_odd + const, odd, coef_y, out=d_odd)
            torch.addcmul(const, y[:, 2 * pooled_len :], coef_y, out=dy[:, 2 * pooled_len :])
        # ReLU mask; it also zeroes the junk rows, where y == 0.
        _threshold_backward(dy, y, 0, grad_input=dy)
        dx, dwk, dbias = _conv_backward(dy, cols, wk, ctx.first, ctx.shape_in, need[0],
                                        need[1] or need[2])
        dweight = dwk.permute(2, 1, 0).contiguous() if dwk is not None and need[1] else None
        return (dx, dweight, dbias if need[2] else None, dgamma if need[3] else None,
                dbeta if need[4] else None, None, None, None, None, None, None, None)


def conv_block(x: Tensor, conv: torch.nn.Conv1d, bn: torch.nn.BatchNorm1d | None, *,
               first: bool, pad_out: bool) -> Tensor:
    """Fused ``conv -> ReLU -> [bn] -> MaxPool1d(2)`` in channels-last layout.

    Parameters
    ----------
    x : Tensor, shape (batch, length) if ``first`` else (batch, length + 2, c_in)
        Network input, or the zero-padded output of a previous block.
    conv : nn.Conv1d
        Holds the weights, shape (c_out, c_in, 3), and bias; its ``forward`` is not used.
    bn : nn.BatchNorm1d or None
        Holds affine parameters and running statistics; its ``training`` flag selects batch or
        running statistics, as in ``nn.BatchNorm1d``.
    first : bool
        ``x`` is the one-channel network input.
    pad_out : bool
        Return ``(batch, length // 2 + 2, c_out)`` with zero first/last rows (input of another
        block) instead of ``(batch, length // 2, c_out)``.

    Returns
    -------
    Tensor, shape (batch, length // 2 [+ 2], c_out)
    """
    if bn is None:
        return _ConvBlock.apply(x, conv.weight, conv.bias, None, None, None, None, False,
                                0.0, 0.0, first, pad_out)
    training = bn.training or bn.running_mean is None
    if bn.training and bn.num_batches_tracked is not None:
        bn.num_batches_tracked.add_(1)
    momentum = 0.0 if bn.momentum is None else bn.momentum
    return _ConvBlock.apply(x, conv.weight, conv.bias, bn.weight, bn.bias, bn.running_mean,
                            bn.running_var, training, momentum, bn.eps, first, pad_out)


class _LSTMRecurrence(torch.autograd.Function):
    """LSTM recurrence with gates i, f, g, o (nn.LSTM's order), zero initial state."""

    @staticmethod
    def forward(ctx, xproj, w_hh):
        steps, batch, four_h = xproj.shape
        hidden = four_h // 4
        h2 = 2 * hidden
        h3 = 3 * hidden
        w_t = w_hh.detach().t()
        gates = torch.empty_like(xproj)
        cs = xproj.new_empty(steps, batch, hidden)
        tcs = torch.empty_like(cs)
        hs = torch.empty_like(cs)
        h = xproj.new_zeros(batch, hidden)
        c = xproj.new_zeros(batch, hidden)
        for t in range(steps):
            gt = gates[t]
            torch.addmm(xproj[t], h, w_t, out=gt)
            gt[:, :h2].sigmoid_()
            gt[:, h2:h3].tanh_()
            gt[:, h3:].sigmoid_()
            torch.mul(gt[:, hidden:h2], c, out=cs[t])
            cs[t].addcmul_(gt[:, :hidden], gt[:, h2:h3])
            torch.tanh(cs[t], out=tcs[t])
            torch.mul(gt[:, h3:], tcs[t], out=hs[t])
            h, c = hs[t], cs[t]
        ctx.save_for_backward(w_hh, gates, cs, tcs, hs)
        return hs

    @staticmethod
    def backward(ctx, dhs):
        w_hh, gates, cs, tcs, hs = ctx.saved_tensors
        steps, batch, hidden = hs.shape
        h2, h3 = 2 * hidden, 3 * hidden
        i, f = gates[..., :hidden], gates[..., hidden:h2]
        g, o = gates[..., h2:h3], gates[..., h3:]
        c_prev = torch.cat([cs.new_zeros(1, batch, hidden), cs[:-1]])
        # Coefficients of every gate derivative, for all steps at once: dgates = coef * (dc or dh).
        coef = torch.empty_like(gates)
        sig = torch.cat([gates[..., :h2], o], dim=-1)
        sd = sig - sig * sig
        torch.mul(sd[..., :hidden], g, out=coef[..., :hidden])
        torch.mul(sd[..., hidden:h2], c_prev, out=coef[..., hidden:h2])
        torch.mul(1 - g * g, i, out=coef[..., h2:h3])
        torch.mul(sd[..., h2:], tcs, out=coef[..., h3:])
        dc_from_h = o * (1 - tcs * tcs)
        dgates = torch.empty_like(gates)
        w = w_hh.detach()
        dh = torch.empty(batch, hidden, dtype=hs.dtype, device=hs.device)
        dc = torch.zeros_like(dh)
        dhs = dhs.contiguous()
        for t in range(steps - 1, -1, -1):
            if t == steps - 1:
                dh.copy_(dhs[t])
            else:
                torch.addmm(dhs[t], dgates[t + 1], w, out=dh)
                dc.mul_(f[t + 1])
            dc.addcmul_(dh, dc_from_h[t])
            dgt = dgates[t]
            torch.mul(coef[t, :, :h3].view(batch, 3, hidden), dc.unsqueeze(1),
                      out=dgt[:, :h3].view(batch, 3, hidden))
            torch.mul(coef[t, :, h3:], dh, out=dgt[:, h3:])
        dw = None
        if ctx.needs_input_grad[1]:
            dw = dgates[1:].reshape(-1, 4 * hidden).t() @ hs[:-1].reshape(-1, hidden)
        return dgates, dw


class _GRURecurrence(torch.autograd.Function):
    """GRU recurrence with gates r, z, n (nn.GRU's formula and order), zero initial state."""

    @staticmethod
    def forward(ctx, xproj, w_hh, b_hh):
        steps, batch, three_h = xproj.shape
        hidden = three_h // 3
        h2 = 2 * hidden
        w_t = w_hh.detach().t()
        b = b_hh.detach()
        gates = torch.empty_like(xproj)
        hps = torch.empty_like(xproj)
        hs = xproj.new_empty(steps, batch, hidden)
        h = xproj.new_zeros(batch, hidden)
        tmp = torch.empty_like(h)
        for t in range(steps):
            hp, gt = hps[t], gates[t]
            torch.addmm(b, h, w_t, out=hp)
            torch.add(xproj[t, :, :h2], hp[:, :h2], out=gt[:, :h2])
            gt[:, :h2].sigmoid_()
            torch.addcmul(xproj[t, :, h2:], gt[:, :hidden], hp[:, h2:], out=gt[:, h2:])
            gt[:, h2:].tanh_()
            torch.sub(h, gt[:, h2:], out=tmp)
            torch.addcmul(gt[:, h2:], gt[:, hidden:h2], tmp, out=hs[t])
            h = hs[t]
        ctx.save_for_backward(w_hh, gates, hps, hs)
        return hs

    @staticmethod
    def backward(ctx, dhs):
        w_hh, gates, hps, hs = ctx.saved_tensors
        steps, batch, hidden = hs.shape
        h2 = 2 * hidden
        r, z, n = gates[..., :hidden], gates[..., hidden:h2], gates[..., h2:]
        h_prev = torch.cat([hs.new_zeros(1, batch, hidden), hs[:-1]])
        cn = (1 - z) * (1 - n * n)
        # d xproj = dh * kx and d hproj = dh * kh, per gate, for all steps at once.
        kx = torch.empty_like(gates)
        torch.mul(cn * hps[..., h2:], r - r * r, out=kx[..., :hidden])
        torch.mul(h_prev - n, z - z * z, out=kx[..., hidden:h2])
        kx[..., h2:].copy_(cn)
        kh = kx.clone()
        kh[..., h2:].mul_(r)
        dxp = torch.empty_like(gates)
        dhp = torch.empty_like(gates)
        w = w_hh.detach()
        dh = torch.empty(batch, hidden, dtype=hs.dtype, device=hs.device)
        dhs = dhs.contiguous()
        for t in range(steps - 1, -1, -1):
            if t == steps - 1:
                dh.copy_(dhs[t])
            else:
                torch.addcmul(dhs[t], dh, z[t + 1], out=dh)
                dh.addmm_(dhp[t + 1], w)
            d3 = dh.unsqueeze(1)
            torch.mul(kx[t].view(batch, 3, hidden), d3, out=dxp[t].view(batch, 3, hidden))
            torch.mul(kh[t].view(batch, 3, hidden), d3, out=dhp[t].view(batch, 3, hidden))
        dw = db = None
        if ctx.needs_input_grad[1]:
            dw = dhp[1:].reshape(-1, 3 * hidden).t() @ hs[:-1].reshape(-1, hidden)
        if ctx.needs_input_grad[2]:
            db = dhp.reshape(-1, 3 * hidden).sum(0)
        return dxp, dw, db


def lstm_recurrence(xproj: Tensor, w_hh: Tensor) -> Tensor:
    """Run an LSTM layer's recurrence from zero state.

    Parameters
    ----------
    xproj : Tensor, shape (steps, batch, 4 * hidden)
        Input projection of every step plus both biases, gates in nn.LSTM's order i, f, g, o.
    w_hh : Tensor, shape (4 * hidden, hidden)
        Recurrent weights (``nn.LSTM.weight_hh_l*``).

    Returns
    -------
    Tensor, shape (steps, batch, hidden)
        Hidden state after each step.
    """
    return _LSTMRecurrence.apply(xproj.contiguous(), w_hh)


def gru_recurrence(xproj: Tensor, w_hh: Tensor, b_hh: Tensor) -> Tensor:
    """Run a GRU layer's recurrence from zero state.

    Parameters
    ----------
    xproj : Tensor, shape (steps, batch, 3 * hidden)
        ``x @ weight_ih.T + bias_ih`` of every step, gates in nn.GRU's order r, z, n.
    w_hh : Tensor, shape (3 * hidden, hidden)
    b_hh : Tensor, shape (3 * hidden,)
        Recurrent bias; it sits inside the reset gate's product for n, as in nn.GRU.

    Returns
    -------
    Tensor, shape (steps, batch, hidden)
    """
    return _GRURecurrence.apply(xproj.contiguous(), w_hh, b_hh)
