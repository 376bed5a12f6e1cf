"""Fast layers: the CNN's conv blocks (conv, ReLU, BatchNorm, pooling) with hand-written backward.

They compute exactly the same functions as the plain PyTorch layers (``nn.Conv1d`` ->
``nn.ReLU`` -> ``nn.BatchNorm1d`` -> ``nn.MaxPool1d(2)``), formulated so
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

* **Fewer passes over the big buffers**: column sums (BatchNorm statistics, bias and
  BatchNorm-parameter gradients) are matrix-vector products with a vector of ones, about twice
  as fast here as ``sum(0)``; the first convolution's unfolded input carries a column of ones, so
  one GEMM gives its weight and bias gradients; the BatchNorm terms of the input gradient are
  written in one contiguous pass before the pooled gradient is added; the input gradient's first
  tap writes its GEMM result instead of adding to a zero-filled buffer.
* **Pooled buffers**: the saved activations and the backward pass's temporaries come from the
  buffer pool of :mod:`fearkd.models.layers_rnn` (saved ones go back when the graph node dies,
  temporaries at the end of the call), because memory freshly mapped for every batch costs a
  page fault per 4 KiB.

The LSTM and GRU have their own fused functions in :mod:`fearkd.models.layers_rnn`.

Measured on the 2-core AVX-512 machine, ``torch.where``, ``masked_fill``, ``var_mean`` and
reductions over strided views cost 10-20x a contiguous ``sum(0)`` or ``threshold_backward``;
the code avoids them on large tensors.
"""

from __future__ import annotations

import weakref

import torch
from torch import Tensor

from fearkd.models.layers_rnn import _give_back, _take

__all__ = ["conv_block"]

_threshold_backward = torch.ops.aten.threshold_backward


class _Scratch:
    """Temporaries of one call, taken from the buffer pool of :mod:`fearkd.models.layers_rnn`
    (freshly allocated memory of this size is mapped page by page on first touch, which cost
    about a tenth of a training step) and handed back by :meth:`release`."""

    def __init__(self, like: Tensor) -> None:
        self.like, self.flats = like, []

    def __call__(self, *shape: int) -> Tensor:
        flat, (tensor,) = _take([shape], self.like)
        self.flats.append(flat)
        return tensor

    def release(self) -> None:
        for flat in self.flats:
            _give_back(flat)
        self.flats = []


def _colsum(mat: Tensor) -> Tensor:
    """Column sums of a contiguous ``(rows, cols)`` matrix, as a matrix-vector product (about
    twice as fast here as ``mat.sum(0)``)."""
    return torch.mv(mat.t(), mat.new_ones(mat.shape[0]))


def _conv_forward(x: Tensor, wk: Tensor, bias: Tensor, first: bool,
                  alloc: _Scratch) -> tuple[Tensor, Tensor]:
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
    alloc : _Scratch
        Where the output buffer comes from.

    Returns
    -------
    y : Tensor, shape (batch, length_out, c_out)
        Pre-activation output; ``length_out`` is ``length`` (first) or ``length + 2`` (the last
        two rows of every sample are junk, zeroed by the caller).
    cols : Tensor
        What the weight gradient needs: the unfolded input plus a column of ones
        ``(batch * length, 4)`` (first) or the flat padded input ``(batch * (length + 2), c_in)``.
    """
    if first:
        batch, length = x.shape
        # The unfolded input has 3 columns only: copying it is cheaper than three GEMMs.
        # A fourth column of ones makes the backward GEMM give the bias gradient too.
        cols = x.new_empty(batch, length, 4)
        cols[:, :, :3] = torch.nn.functional.pad(x, (1, 1)).unfold(1, 3, 1)
        cols[:, :, 3] = 1.0
        cols = cols.view(batch * length, 4)
        y = torch.addmm(bias, cols[:, :3], wk[:, 0, :], out=alloc(batch * length, wk.shape[2]))
        return y.view(batch, length, -1), cols
    batch, rows, c_in = x.shape
    flat = x.reshape(batch * rows, c_in)
    m = batch * rows - 2
    y = alloc(batch * rows, wk.shape[2])
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
        if first:
            both = cols.t() @ dy2  # rows: the three taps, then the bias
            dwk, dbias = both[:3].unsqueeze(1), both[3]
        else:
            dbias = _colsum(dy2)
            m = dy2.shape[0] - 2
            dwk = torch.stack([cols[k : k + m].t() @ dy2[:m] for k in range(3)])
    if need_dx:
        if first:
            batch, length = shape_in
            dcols = (dy2 @ wk[:, 0, :].t()).view(batch, length, 3)  # input needs a gradient
            dpad = dy2.new_zeros(batch, length + 2)
            for k in range(3):
                dpad[:, k : k + length] += dcols[:, :, k]
            dx = dpad[:, 1:-1]
        else:
            m = dy2.shape[0] - 2
            dflat = dy2.new_empty(dy2.shape[0], wk.shape[1])
            torch.mm(dy2[:m], wk[0].t(), out=dflat[:m])  # the first tap writes, no zero fill
            dflat[m:].zero_()
            for k in (1, 2):
                dflat[k : k + m].addmm_(dy2[:m], wk[k].t())
            dx = dflat.view(shape_in)
    return dx, dwk, dbias


class _ConvBlock(torch.autograd.Function):
    """Conv1d(k=3, same) -> ReLU -> [BatchNorm] -> MaxPool(2), channels-last, fused."""

    @staticmethod
    def forward(ctx, x, weight, bias, gamma, beta, running_mean, running_var, training,
                momentum, eps, first, pad_out):
        wk = weight.detach().permute(2, 1, 0).contiguous()
        # y and the pooled maxima are saved for the backward pass: pooled buffers that go back
        # when the graph node dies (at once when nothing needs a gradient).
        saved = _Scratch(x)
        y, cols = _conv_forward(x.detach(), wk, bias.detach(), first, saved)
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
                total = _colsum(y2)
                mean = total / count
                # Junk rows are zero, so sums over the whole buffer are sums over valid rows.
                scratch = _Scratch(y2)
                squares = torch.mul(y2, y2, out=scratch(*y2.shape))
                var = (_colsum(squares) / count - mean * mean).clamp_(min=0)
                scratch.release()
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
        picked = torch.maximum(even, odd, out=saved(batch, pooled_len, chans))
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
        if any(ctx.needs_input_grad):
            weakref.finalize(ctx, saved.release)
        else:
            saved.release()
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
        scratch = _Scratch(y)
        half = (batch, pooled_len, chans)
        g = grad_out[:, 1:-1] if ctx.pad_out else grad_out
        if not g.is_contiguous():
            g = scratch(*half).copy_(g)
        even = y[:, 0 : 2 * pooled_len : 2]
        odd = y[:, 1 : 2 * pooled_len : 2]
        # The odd element of a pair takes the gradient only where it alone is the max (ties
        # go to the first element, as in nn.MaxPool1d); for scale < 0 the order flips.
        diff = torch.sub(odd, even, out=scratch(*half))
        if ctx.sign is not None:
            diff.mul_(ctx.sign)
        dgamma = dbeta = None
        if ctx.use_bn:
            g2 = g.view(-1, chans)
            dbeta = _colsum(g2)
            prod = torch.mul(g2, picked.view(-1, chans), out=scratch(*g2.shape))
            dgamma = invstd * (_colsum(prod) - mean * dbeta)
            gs = torch.mul(g, scale, out=prod.view(half))
            if ctx.training:
                coef_y = -scale * dgamma * invstd / ctx.count
                const = -scale * dbeta / ctx.count - coef_y * mean
            else:
                coef_y = const = None
        else:
            gs = g
            coef_y = const = None
        g_odd = _threshold_backward(gs, diff, 0, grad_input=diff)  # diff is not needed again
        dy = scratch(*y.shape)
        d_even = dy[:, 0 : 2 * pooled_len : 2]
        d_odd = dy[:, 1 : 2 * pooled_len : 2]
        if coef_y is None:
            torch.sub(gs, g_odd, out=d_even)
            d_odd.copy_(g_odd)
            dy[:, 2 * pooled_len :].zero_()
        else:
            # The BatchNorm terms reach every position: one contiguous pass over the buffer,
            # then the pooled gradient is added where each pair's maximum was.
            torch.addcmul(const, y, coef_y, out=dy)
            d_odd.add_(g_odd)
            d_even.add_(gs).sub_(g_odd)
        # ReLU mask; it also zeroes the junk rows, where y == 0.
        _threshold_backward(dy, y, 0, grad_input=dy)
        dx, dwk, dbias = _conv_backward(dy, cols, wk, ctx.first, ctx.shape_in, need[0],
                                        need[1] or need[2])
        scratch.release()  # nothing returned is a view of the temporaries
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
