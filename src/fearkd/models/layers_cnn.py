"""The CNN's conv blocks, computed in cache-sized chunks of samples.

Activations are channels-last and padded with a zero row at each end of every sample; each
kernel-3 convolution is three GEMMs over shifted views of that buffer, pooling is the max of
two strided views with BatchNorm applied after it (exact, as BatchNorm is a per-channel affine
map: for a negative scale the min is taken), and the BatchNorm/ReLU/pooling backward pass is
fused by hand. What removes most of the time spent around the GEMMs:

* **Chunks of samples.** Each block runs its element-wise passes (ReLU, statistics, pooling,
  the fused backward) a few samples at a time (:data:`fearkd.models._cnn_parts.CHUNK_VALUES`
  values per thread, 512 KiB), right after that chunk's GEMMs, so the data stay in the core's
  2 MiB L2 cache instead of streaming the whole activation through main memory once per pass.
  The GEMMs lose nothing at these sizes (about 1,000 rows by 128 channels run at the full
  single-core rate).
* **The first block never builds a full-size tensor in its backward pass.** Its convolution
  has one input channel, so ``y = relu(cols @ w)`` with ``cols`` the ``(positions, 3 + 1)``
  unfolded input (plus ones, for the bias). Every statistic it needs (the BatchNorm sums of
  ``y`` and ``y**2``, and ``cols^T @ y``, ``cols^T @ mask``) follows from one GEMM in the
  forward pass, the mask-weighted second moments of ``cols``. The weight gradient
  ``cols^T @ dy`` then splits into those BatchNorm terms and a pooled term that lives on
  half-size tensors only (see :func:`_first_block_weight_grad`). Its full-size activation is
  never stored: only the pooled values and which element of each pair was chosen, and the
  compiled pass keeps neither: it computes both again from the input (six multiply-adds per
  pair and channel cost less than reading two more half-size arrays back from memory).
* **Pooled buffers between blocks** (:class:`Link`): a block's output and the gradient that
  comes back for it are the largest tensors made at every step; freshly mapped memory costs a
  page fault per 4 KiB, so both come from the buffer pool of :mod:`fearkd.models._pool`.
* **BatchNorm folded into the next convolution.** Across a link, a block with BatchNorm hands
  over its pooled values before the affine map ``scale * v + shift`` and the next block
  convolves them with ``diag(scale) W`` and an adjusted bias (see
  :func:`fearkd.models._cnn_parts._fold_affine`), so no pass over the whole output applies
  BatchNorm; the next block's weight gradient gets the matching correction.

* **Compiled passes** (:mod:`fearkd.models._fused`, float32/float64 on the CPU when the C
  module is built): each chunk's element-wise passes are one loop, and a whole
  :func:`next_block` pass is one call in which each OpenMP thread takes chunks of its own and
  runs their GEMMs (PyTorch's BLAS) on its core. The per-channel work around them (BatchNorm's
  statistics and gradient terms, the weights' layout and folding) is one call each as well.
  The PyTorch operations below remain the fallback and compute the same function.

Same functions as ``nn.Conv1d`` -> ``nn.ReLU`` -> ``nn.BatchNorm1d`` -> ``nn.MaxPool1d(2)``
(pooling ties, negative or zero BatchNorm scales, running statistics); only the order of
floating-point summation differs. When the network input needs a gradient, the first block
takes a longer backward pass that recomputes each chunk's activation and builds its gradient.
"""

from __future__ import annotations

import torch
from torch import Tensor

from fearkd.models import _fused
from fearkd.models._cnn_parts import (
    Link,
    _backward_chunks,
    _block_dy,
    _bn_affine,
    _bn_grad_terms,
    _bn_sums,
    _chunk_step,
    _chunks,
    _done_with_saved,
    _fold_affine,
    _forward_chunks,
    _keep_saved,
    _pair_pick,
    _Pool,
    _threshold_backward,
)

__all__ = ["Link", "first_block", "next_block"]


def _first_block_weight_grad(ctx, grad_out):
    """Backward pass of :class:`_FirstBlock` when its input needs no gradient.

    The weight and bias gradients are ``cols^T @ dy`` with ``cols`` the unfolded input (plus
    ones) and ``dy = mask * (const + coef * y + pooled)``: the BatchNorm terms reach every
    position, the pooled gradient only each pair's chosen element. Since ``mask * y = y``,
    the first two terms are ``coef * (cols^T @ y) + const * (cols^T @ mask)``, two ``(4, c)``
    reductions made in the forward pass; the pooled term is a GEMM over the chosen elements'
    columns, on half-size tensors only. So no full-size activation is recomputed or built.
    """
    if ctx.kern:
        return _first_block_weight_grad_compiled(ctx, grad_out)
    cols_even, cols_delta, picked, chosen, sum_y, sum_mask, mean, invstd, scale = ctx.saved_tensors
    batch, pooled_len, chans = picked.shape
    chunks = _chunks(batch, pooled_len, chans)
    scratch = _Pool(picked)
    half_rows = chunks[0][1] * pooled_len
    g_buf = scratch(half_rows, chans)
    p_buf = scratch(half_rows, chans)
    ones = picked.new_ones(half_rows)
    g = grad_out[:, 1:-1]
    dbeta = picked.new_zeros(chans)
    dgp = picked.new_zeros(chans)
    both = picked.new_zeros(4, chans)
    for s0, s1 in chunks:
        k = s1 - s0
        n = k * pooled_len
        gc = g_buf[:n].view(k, pooled_len, chans).copy_(g[s0:s1])
        pc = picked[s0:s1]  # a strided view when the output buffer holds it (see Link)
        prod = p_buf[:n].view(k, pooled_len, chans)
        dbeta.addmv_(gc.view(n, chans).t(), ones[:n])
        dgp.addmv_(torch.mul(gc, pc, out=prod).view(n, chans).t(), ones[:n])
        gs = gc.mul_(scale)
        # The chosen element's ReLU mask: it is nonzero exactly where the pooled value is.
        g_mask = _threshold_backward(gs, pc, 0, grad_input=gs)
        g_odd = _threshold_backward(g_mask, chosen[s0:s1], 0, grad_input=prod)
        both.addmm_(cols_even[s0:s1].view(n, 4).t(), g_mask.view(n, chans))
        both.addmm_(cols_delta[s0:s1].view(n, 4).t(), g_odd.view(n, chans))
    scratch.release()
    del g, grad_out
    return _first_block_grads(ctx, dbeta, dgp, both, sum_y, sum_mask, mean, invstd, scale)


def _first_block_weight_grad_compiled(ctx, grad_out):
    """:func:`_first_block_weight_grad` as one compiled loop over the pooled positions, and
    the parameter gradients from its sums in one more call."""
    xpad, sums, weight, bias, gamma = ctx.saved_tensors
    affine = sums[9:]
    link = ctx.link_out
    if link is not None and link.first_sums is not None:  # made by the next block (see Link)
        bsums, link.first_sums = link.first_sums, None
    else:
        bsums = _fused.first_bwd(xpad, grad_out[:, 1:-1], weight, bias, gamma, affine)
    del grad_out
    if link is not None:  # the next block's input gradient has been read
        link.give_back_grad()
    grads = _fused.first_grad(bsums, sums, affine, ctx.count, ctx.training)
    _done_with_saved(ctx)
    need = ctx.needs_input_grad
    c = weight.shape[0]
    # One buffer: the weight's gradient (c x 3), then the bias', gamma's and beta's.
    return (None, grads[: 3 * c].view(c, 1, 3) if need[1] else None,
            grads[3 * c : 4 * c] if need[2] else None, grads[4 * c : 5 * c] if need[3] else None,
            grads[5 * c :] if need[4] else None, None, None, None, None, None, None, None)


def _first_block_grads(ctx, dbeta, dgp, both, sum_y, sum_mask, mean, invstd, scale):
    """The first block's parameter gradients from its sums: ``dbeta``, ``dgp`` (see
    :func:`_bn_sums`) and the pooled part of ``cols^T @ dy``, ``both`` (4, c)."""
    need = ctx.needs_input_grad
    chans = both.shape[1]
    if ctx.link_out is not None:  # the next block's input gradient has been read
        ctx.link_out.give_back_grad()
    dgamma, coef_y, const = _bn_grad_terms(ctx, dbeta, dgp, mean, invstd, scale)
    if coef_y is not None:
        both.addcmul_(sum_y, coef_y).addcmul_(sum_mask, const)
    dweight = both[:3].t().reshape(chans, 1, 3).contiguous() if need[1] else None
    dbias = both[3].clone() if need[2] else None
    _done_with_saved(ctx)
    return (None, dweight, dbias, dgamma if need[3] else None, dbeta if need[4] else None,
            None, None, None, None, None, None, None)


def _first_forward(x, w, sign, short, training, saved, picked):
    """:class:`_FirstBlock`'s forward pass in PyTorch operations, chunk by chunk: writes the
    pooled pick to ``picked`` and returns the sums of ``y`` times each unfolded column and
    of the ReLU mask times each (``(4, c)`` each, ``None`` without batch statistics), the
    sums of ``y`` and ``y**2``, and the tensors the backward pass needs."""
    batch, length = x.shape
    chans = w.shape[1]
    pooled_len = length // 2
    # Unfolded input plus a column of ones: the backward GEMM gives the bias gradient too.
    cols = saved(batch, length, 4)
    cols[:, :, :3] = torch.nn.functional.pad(x.detach(), (1, 1)).unfold(1, 3, 1)
    cols[:, :, 3] = 1.0
    if short:
        chosen = saved(batch, pooled_len, chans)
        cols_even = saved(batch, pooled_len, 4).copy_(cols[:, 0 : 2 * pooled_len : 2])
        # cols_even^T @ g_even + cols_odd^T @ g_odd, with g_even = g - g_odd, is
        # cols_even^T @ g + (cols_odd - cols_even)^T @ g_odd: no g_even to build.
        cols_delta = saved(batch, pooled_len, 4)
        torch.sub(cols[:, 1 : 2 * pooled_len : 2], cols_even, out=cols_delta)
    scratch = _Pool(x)
    rows = min(_chunk_step(length, chans), batch) * length
    y_buf = scratch(rows, chans)
    mask_buf = scratch(rows, chans)
    # Every statistic of the block is a sum over positions of y = mask * (cols @ w) or of
    # y**2 or the mask times a column of cols: all follow from the mask-weighted second
    # moments of cols, q[i, j, c] = sum_p mask[p, c] * cols[p, i] * cols[p, j], one GEMM.
    if training:
        # Position-minor (16, n): the products vectorise along the positions.
        cols_t = cols.view(-1, 4).t().contiguous()
        pairs = (cols_t[:, None, :] * cols_t[None, :, :]).view(16, -1)
        moments = x.new_zeros(16, chans)
    for s0, s1 in _chunks(batch, length, chans):
        n = (s1 - s0) * length
        y = torch.mm(cols[s0:s1].view(n, 4), w, out=y_buf[:n]).relu_()
        if training:  # y >= 0, so sign(y) is the ReLU mask
            moments.addmm_(pairs[:, s0 * length : s1 * length],
                           torch.sign(y, out=mask_buf[:n]))
        y3 = y.view(s1 - s0, length, chans)
        even = y3[:, 0 : 2 * pooled_len : 2]
        odd = y3[:, 1 : 2 * pooled_len : 2]
        _pair_pick(even, odd, sign, picked[s0:s1])
        if short:
            diff = torch.sub(odd, even, out=chosen[s0:s1])
            if sign is not None:
                diff.mul_(sign)
    sum_y = sum_mask = total = total_sq = None
    if training:
        full = moments.view(4, 4, chans)
        sum_y = torch.einsum("ijc,jc->ic", full, w)  # cols^T @ y
        sum_mask = full[:, 3].contiguous()  # cols^T @ mask (column 3 is ones)
        total = sum_y[3]
        total_sq = (sum_y * w).sum(0)
    scratch.release()
    if short:
        keep = [cols_even, cols_delta, picked, chosen, sum_y, sum_mask]
    else:
        keep = [cols, picked, w]
    return sum_y, sum_mask, total, total_sq, keep


class _FirstBlock(torch.autograd.Function):
    """Conv1d(1 -> c, k=3, same) -> ReLU -> BatchNorm -> MaxPool(2) -> zero-padded output."""

    @staticmethod
    def forward(ctx, x, weight, bias, gamma, beta, running_mean, running_var, training,
                momentum, eps, link_out, graph):
        batch, length = x.shape
        chans = weight.shape[0]
        pooled_len = length // 2
        saved = _Pool(x)
        fold = link_out is not None
        shape = (batch, pooled_len + 2, chans)
        out = link_out.take_out(x, *shape) if fold else x.new_empty(shape)
        # Folding (see Link), the pooled values are the output; else BatchNorm follows.
        picked = out[:, 1:-1] if fold else saved(batch, pooled_len, chans)
        # Without an input gradient, the backward pass needs no full-size tensor (see
        # _first_block_weight_grad): keep the pooling choice and two small reductions instead.
        short = not ctx.needs_input_grad[0]
        kern = short and _fused.available(x)
        count = batch * length
        bn_args = (gamma, beta, running_mean, running_var, training, momentum, eps)
        if kern:  # compiled (see fearkd.models._fused), straight from the input and weights
            xpad = saved(batch, length + 2)
            # The forward sums (9 rows), then BatchNorm's mean, invstd, scale and shift.
            sums = x.new_zeros(13, chans)
            _fused.first_fwd(x.detach().contiguous(), xpad, weight, bias, gamma, sums, picked,
                             pad=fold)
            affine = sums[9:]
            _fused.bn_affine(sums, 3, 8, affine, count, *bn_args)
            scale, shift = affine[2], affine[3]
            # The backward pass computes the pooled values again from the input and these.
            keep = [xpad, sums, weight, bias, gamma]
            if fold and any(ctx.needs_input_grad):  # else the buffers go back at once
                link_out.first = (xpad, weight, bias, gamma, affine)
        else:
            # Taps then bias, (4, c): against the unfolded input's column of ones, one GEMM.
            w = torch.cat([weight.detach().reshape(chans, 3).t(), bias.detach()[None]])
            sign = None if bool((gamma > 0).all()) else torch.sign(gamma.detach())
            sum_y, sum_mask, total, total_sq, keep = _first_forward(x, w, sign, short, training,
                                                                    saved, picked)
            mean, invstd, scale, shift = _bn_affine(total, total_sq, count, *bn_args)
            keep += [mean, invstd, scale]
            ctx.sign = sign
        if fold:
            link_out.affine = (scale, shift)
        else:
            torch.addcmul(shift, picked, scale, out=out[:, 1:-1])
        if not (kern and fold):  # first_fwd zeroes them in the output buffer
            out[:, 0].zero_()
            out[:, -1].zero_()
        ctx.training, ctx.count, ctx.short = training, count, short
        ctx.link_out, ctx.kern = link_out, kern
        ctx.save_for_backward(*keep)
        _keep_saved(ctx, saved, link_out, fold, graph)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        if ctx.short:
            return _first_block_weight_grad(ctx, grad_out)
        cols, picked, w, mean, invstd, scale = ctx.saved_tensors
        need = ctx.needs_input_grad
        batch, length, _ = cols.shape
        pooled_len, chans = picked.shape[1], picked.shape[2]
        chunks = _chunks(batch, length, chans)
        scratch = _Pool(picked)
        rows = chunks[0][1] * length
        half_rows = chunks[0][1] * pooled_len
        g_buf = scratch(half_rows, chans)
        p_buf = scratch(half_rows, chans)
        g = grad_out[:, 1:-1]
        # Pass 1: dbeta and dgamma, which the BatchNorm input gradient needs everywhere.
        dbeta, dgp = _bn_sums(g, picked, chunks)
        dgamma, coef_y, const = _bn_grad_terms(ctx, dbeta, dgp, mean, invstd, scale)
        # Pass 2: recompute each chunk's activation, build its gradient, reduce it at once.
        y_buf = scratch(rows, chans)
        dy_buf = scratch(rows, chans)
        need_w = need[1] or need[2]
        both = picked.new_zeros(4, chans) if need_w else None
        dpad = picked.new_zeros(batch, length + 2) if need[0] else None
        for s0, s1 in chunks:
            k = s1 - s0
            n = k * length
            y = torch.mm(cols[s0:s1].view(n, 4), w, out=y_buf[:n]).relu_()
            dy = dy_buf[:n]
            _block_dy(ctx, y, g[s0:s1], dy, scale, coef_y, const, p_buf, g_buf, None, None, None)
            if need_w:
                both.addmm_(cols[s0:s1].view(n, 4).t(), dy)
            if need[0]:
                dcols = (dy @ w[:3].t()).view(k, length, 3)
                for tap in range(3):
                    dpad[s0:s1, tap : tap + length] += dcols[:, :, tap]
        scratch.release()
        del g, grad_out
        if ctx.link_out is not None:
            ctx.link_out.give_back_grad()
        dx = dpad[:, 1:-1] if need[0] else None
        dweight = both[:3].t().reshape(chans, 1, 3).contiguous() if need[1] else None
        dbias = both[3].clone() if need[2] else None
        _done_with_saved(ctx)
        return (dx, dweight, dbias, dgamma if need[3] else None, dbeta if need[4] else None,
                None, None, None, None, None, None, None)


def _check_params(x: Tensor, conv: torch.nn.Conv1d, bn: torch.nn.BatchNorm1d | None) -> None:
    """A block's parameters and statistics must be there and have the input's dtype and
    device (the compiled passes read their memory as the input's type)."""
    tensors = [("conv.weight", conv.weight), ("conv.bias", conv.bias)]
    if bn is not None:
        tensors += [("bn.weight", bn.weight), ("bn.bias", bn.bias),
                    ("bn.running_mean", bn.running_mean), ("bn.running_var", bn.running_var)]
    for name, t in tensors:
        if t is None:
            if name.startswith("bn.running"):  # track_running_stats=False: batch statistics
                continue
            raise ValueError(f"The fused CNN block needs '{name}', got None; build the layer "
                             f"with bias=True (Conv1d) or affine=True (BatchNorm1d).")
        if t.dtype != x.dtype or t.device != x.device:
            raise ValueError(f"'{name}' is {t.dtype} on {t.device}, but the input is {x.dtype} "
                             f"on {x.device}; convert the model and the input to one dtype and "
                             f"device (for example model.to(x.dtype)).")


def _bn_mode(bn: torch.nn.BatchNorm1d) -> tuple[bool, float]:
    """As ``nn.BatchNorm1d.forward``: whether batch statistics are used, and the running
    statistics' update factor (``momentum``, or with ``momentum=None`` the cumulative
    average's ``1 / batches seen``); counts the batch in training mode."""
    training = bn.training or bn.running_mean is None
    momentum = 0.0 if bn.momentum is None else bn.momentum
    if bn.training and bn.num_batches_tracked is not None:
        bn.num_batches_tracked.add_(1)
        if bn.momentum is None:
            momentum = 1.0 / float(bn.num_batches_tracked)
    return training, momentum


def first_block(x: Tensor, conv: torch.nn.Conv1d, bn: torch.nn.BatchNorm1d, *,
                link: Link | None = None) -> Tensor:
    """Fused ``conv -> ReLU -> bn -> MaxPool1d(2)`` of the one-channel network input.

    Parameters
    ----------
    x : Tensor, shape (batch, length)
        Network input.
    conv : nn.Conv1d
        One input channel, kernel 3, 'same' padding; holds the weight, shape (c, 1, 3), and the
        bias. Its ``forward`` is not used.
    bn : nn.BatchNorm1d
        Affine parameters and running statistics; its ``training`` flag selects batch or
        running statistics, as in ``nn.BatchNorm1d``.
    link : Link, optional
        Shared with the :func:`next_block` that alone consumes the output: the output then comes
        from the buffer pool and holds the pooled values *before* BatchNorm, whose affine map
        goes to that block through the link (see :class:`Link`).

    Returns
    -------
    Tensor, shape (batch, length // 2 + 2, c)
        Channels-last, with zero first and last rows (the next block's 'same' padding).
    """
    _check_params(x, conv, bn)
    training, momentum = _bn_mode(bn)
    return _FirstBlock.apply(x, conv.weight, conv.bias, bn.weight, bn.bias, bn.running_mean,
                             bn.running_var, training, momentum, bn.eps, link,
                             torch.is_grad_enabled())


class _Block(torch.autograd.Function):
    """Conv1d(k=3, same) -> ReLU -> [BatchNorm] -> MaxPool(2) on a zero-padded channels-last
    input, chunk by chunk (see the module docstring)."""

    @staticmethod
    def forward(ctx, x, weight, bias, gamma, beta, running_mean, running_var, training,
                momentum, eps, pad_out, link_in, link_out, graph):
        batch, rows, c_in = x.shape
        length, chans = rows - 2, weight.shape[0]
        pooled_len = length // 2
        # The input holds pre-BatchNorm values when the previous block folds (see Link).
        fold_in = link_in.affine if link_in is not None else None
        xf = x.detach().contiguous().view(batch * rows, c_in)
        use_bn = gamma is not None
        fold_out = use_bn and link_out is not None
        saved = _Pool(x)
        y = saved(batch * rows, chans)
        out_rows = pooled_len + 2 if pad_out else pooled_len
        shape = (batch, out_rows, chans)
        out = link_out.take_out(x, *shape) if link_out is not None else x.new_empty(shape)
        inner = out[:, 1:-1] if pad_out else out
        picked = None
        if use_bn:
            picked = inner if fold_out else saved(batch, pooled_len, chans)
        target = picked if use_bn else inner
        count = batch * length
        bn_args = (gamma, beta, running_mean, running_var, training, momentum, eps)
        ctx.whole = _fused.whole(x)
        ctx.first = None
        if link_in is not None:  # a compiled first block's inputs (see Link)
            ctx.first, link_in.first = (link_in.first if ctx.whole else None), None
        if ctx.whole:  # one compiled pass, GEMMs included (see fearkd.models._fused)
            par = saved(_fused.conv_par_size(c_in, chans))
            _fused.conv_weights(par, weight, bias, fold_in, gamma)
            # Sums of y and y**2 over positions, then BatchNorm's mean, invstd, scale, shift.
            stats = x.new_zeros(6, chans)
            pad = pad_out and target is inner  # else out's padding rows are zeroed below
            _fused.block_forward(xf, y, par, fold_in is not None, rows, length, stats, target,
                                 pad, _chunk_step(rows, chans, per_thread=True))
            if use_bn:
                _fused.bn_affine(stats, 0, 1, stats[2:], count, *bn_args)
                scale, shift = stats[4], stats[5]
            keep = [y, xf, par, picked, stats]
        else:
            wk = weight.detach().permute(2, 1, 0).contiguous()  # (3, c_in, c_out)
            b = bias.detach()
            w_fwd, b_fwd, edge = (wk, b, None) if fold_in is None else _fold_affine(wk, b,
                                                                                      *fold_in)
            sign = None
            if use_bn and not bool((gamma > 0).all()):
                sign = torch.sign(gamma.detach())
            sums = x.new_zeros(2, chans)  # of y and y**2 over positions, for the statistics
            _forward_chunks(xf, y, w_fwd, b_fwd, rows, length, edge, sign, sums,
                            use_bn and training, target)
            mean = invstd = scale = None
            if use_bn:
                mean, invstd, scale, shift = _bn_affine(sums[0], sums[1], count, *bn_args)
            keep = [y, xf, wk, picked, mean, invstd, scale]
            pad = False
            ctx.sign = sign
        if pad_out and not pad:
            out[:, 0].zero_()
            out[:, -1].zero_()
        if use_bn:
            if fold_out:
                link_out.affine = (scale, shift)
            else:
                torch.addcmul(shift, picked, scale, out=inner)
        ctx.pad_out, ctx.use_bn, ctx.training = pad_out, use_bn, training
        ctx.count, ctx.shape_in, ctx.fold_in = count, (batch, rows, c_in), fold_in
        ctx.link_in, ctx.link_out = link_in, link_out
        if link_in is not None and link_in.out_flat is not None:
            # The input (the previous block's pooled output) is kept only in this node.
            saved.flats.append(link_in.out_flat)
            link_in.out_flat = None
        ctx.save_for_backward(*keep)
        _keep_saved(ctx, saved, link_out, fold_out, graph)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        need = ctx.needs_input_grad
        batch, rows, c_in = ctx.shape_in
        g = grad_out[:, 1:-1] if ctx.pad_out else grad_out
        need_w = need[1] or need[2]
        dflat = None
        if need[0]:
            shape = (batch * rows, c_in)
            link_in = ctx.link_in
            dflat = link_in.take_grad(g, *shape) if link_in is not None else g.new_empty(shape)
        if ctx.whole:
            dgamma, dbeta, dweight, sums = _block_backward_compiled(ctx, g, need_w, dflat)
        else:
            dgamma, dbeta, dweight, sums = _block_backward_chunks(ctx, g, need_w, dflat)
        del g, grad_out
        if ctx.link_out is not None:
            ctx.link_out.give_back_grad()
        dx = dflat.view(batch, rows, c_in) if need[0] else None
        _done_with_saved(ctx)
        return (dx, dweight if need[1] else None, sums[0].clone() if need[2] else None,
                dgamma if need[3] else None, dbeta if need[4] else None, None, None, None,
                None, None, None, None, None, None)


def _block_backward_compiled(ctx, g, need_w, dflat):
    """:class:`_Block`'s backward pass as compiled calls: BatchNorm's sums and terms, the
    whole block (GEMMs included), then the weight gradient in ``nn.Conv1d``'s layout.
    Returns ``dgamma``, ``dbeta``, the weight gradient and the column sums of ``dy`` (the
    first of which is the bias gradient); see :meth:`_Block.backward`."""
    y, xf, par, picked, stats = ctx.saved_tensors
    batch, rows, c_in = ctx.shape_in
    chans = stats.shape[1]
    affine = stats[2:]
    dbeta = bn = None
    if ctx.use_bn:
        dbeta, bn = _fused.bn_backward(g, picked, affine, ctx.count, ctx.training)
    step = _chunk_step(rows, chans, per_thread=True)
    sums, dwk, first_sums = _fused.block_backward(xf, y, g, par, rows, rows - 2, affine, bn,
                                                  need_w, dflat, step, ctx.first)
    if first_sums is not None:  # for the first block's backward pass (see Link)
        ctx.link_in.first_sums = first_sums
    dweight = None
    if ctx.needs_input_grad[1]:
        dweight = _fused.conv_grad(dwk, sums, ctx.fold_in, chans, c_in)
    return (None if bn is None else bn[0]), dbeta, dweight, sums


def _block_backward_chunks(ctx, g, need_w, dflat):
    """:class:`_Block`'s backward pass chunk by chunk: PyTorch GEMMs, with compiled
    element-wise passes where available (see :func:`_backward_chunks`)."""
    y, xf, wk, picked, mean, invstd, scale = ctx.saved_tensors
    batch, rows, c_in = ctx.shape_in
    chans = wk.shape[2]
    dgamma = dbeta = coef_y = const = None
    if ctx.use_bn:
        if _fused.available(y):
            dbeta, dgp = _fused.bn_sums(g, picked)
        else:
            dbeta, dgp = _bn_sums(g, picked, _chunks(batch, rows, chans))
        dgamma, coef_y, const = _bn_grad_terms(ctx, dbeta, dgp, mean, invstd, scale)
    fold = ctx.fold_in is not None and need_w
    terms = (scale, ctx.sign, coef_y, const)
    sums, dwk = _backward_chunks(ctx, xf, y, g, wk, *terms, need_w, dflat, fold)
    # Column sums of dy: all rows, and (folding, see below) each sample's first and last.
    dbias, d_ends = sums[0], sums[1:]
    if fold:
        # The GEMMs above read pre-BatchNorm values v; the layer's input is
        # scale * v + shift except in padding rows, so tap k's weight gradient is
        # diag(scale) @ (its GEMM) + outer(shift, sum of dy over the rows where tap k reads
        # no padding row: all but each sample's first (tap 0) or last (tap 2) position).
        scale_in, shift_in = ctx.fold_in
        reach = torch.stack([dbias - d_ends[0], dbias, dbias - d_ends[1]])
        dwk.mul_(scale_in[None, :, None]).add_(shift_in[None, :, None] * reach[:, None, :])
    dweight = dwk.permute(2, 1, 0).contiguous() if ctx.needs_input_grad[1] else None
    return dgamma, dbeta, dweight, sums


def next_block(x: Tensor, conv: torch.nn.Conv1d, bn: torch.nn.BatchNorm1d | None, *,
               pad_out: bool, link_in: Link | None = None,
               link_out: Link | None = None) -> Tensor:
    """Fused ``conv -> ReLU -> [bn] -> MaxPool1d(2)`` of a previous block's output.

    Parameters
    ----------
    x : Tensor, shape (batch, length + 2, c_in)
        Zero-padded channels-last output of :func:`first_block` or of another ``next_block``.
    conv : nn.Conv1d
        Kernel 3, 'same' padding; holds the weight, shape (c_out, c_in, 3), and the bias.
    bn : nn.BatchNorm1d or None
        Affine parameters and running statistics, or no BatchNorm.
    pad_out : bool
        Return ``(batch, length // 2 + 2, c_out)`` with zero first and last rows (input of
        another block) instead of ``(batch, length // 2, c_out)``.
    link_in, link_out : Link, optional
        The link given to the block that produced ``x`` (``x`` then holds pre-BatchNorm values
        when that block has BatchNorm), and one for the :func:`next_block` that alone consumes
        this block's output (with ``bn``, the output then holds pre-BatchNorm values and the
        affine map goes through the link; see :class:`Link`).

    Returns
    -------
    Tensor, shape (batch, length // 2 [+ 2], c_out)
    """
    _check_params(x, conv, bn)
    if bn is None:
        return _Block.apply(x, conv.weight, conv.bias, None, None, None, None, False, 0.0, 0.0,
                            pad_out, link_in, link_out, torch.is_grad_enabled())
    training, momentum = _bn_mode(bn)
    return _Block.apply(x, conv.weight, conv.bias, bn.weight, bn.bias, bn.running_mean,
                        bn.running_var, training, momentum, bn.eps, pad_out, link_in, link_out,
                        torch.is_grad_enabled())
