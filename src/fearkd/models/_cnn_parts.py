"""Shared machinery of the fast CNN blocks (:mod:`fearkd.models.layers_cnn`).

Chunking of a batch into cache-sized pieces, the pooled buffers of one call and the
:class:`Link` between consecutive blocks, the folding of a producer's BatchNorm into the
consumer's weights, and the small per-chunk helpers both blocks use.
"""

from __future__ import annotations

import weakref

import torch
from torch import Tensor

from fearkd.models import _fused
from fearkd.models._pool import give_back as _give_back
from fearkd.models._pool import take as _take

__all__ = ["CHUNK_VALUES", "Link"]

_threshold_backward = torch.ops.aten.threshold_backward
# Whether the running backward keeps its graph; without this private hook, assume it does.
_KEEP_GRAPH = getattr(torch._C._autograd, "_get_current_graph_task_keep_graph", lambda: True)

#: Values per chunk of an activation (512 KiB of float32): a chunk's activation, its gradient
#: and the pooled temporaries stay in a 2 MiB L2 cache.
CHUNK_VALUES = 131072


class _Pool:
    """Buffers of one call from the shared pool of :mod:`fearkd.models._pool`."""

    def __init__(self, like: Tensor) -> None:
        self.like, self.flats = like, []

    def __call__(self, *shape: int) -> Tensor:
        flat, (tensor,) = _take([shape], self.like)
        self.flats.append(flat)
        return tensor

    def release(self) -> None:
        for flat in self.flats:
            _give_back(flat)
        self.flats = []  # a second call (the finalizer after an early release) gives nothing


class Link:
    """Hands pooled buffers between two consecutive blocks.

    The producer's output and the consumer's input gradient are the two largest tensors made
    fresh at every step (memory newly mapped for each costs a page fault per 4 KiB, about as
    much as the arithmetic on it). With a link, the producer takes its output from the buffer
    pool and the consumer gives it back with its saved buffers (the only place that output
    is kept); the consumer takes its input gradient from the pool and the producer's backward
    pass gives it back once it has read it. Use a link only when the producer's output goes to
    the consumer alone and nothing keeps a reference to that output or its gradient.

    **BatchNorm folded into the consumer.** A producer with BatchNorm hands over its pooled
    values *before* the BatchNorm affine map ``scale * v + shift`` and puts ``(scale, shift)``
    in :attr:`affine`; the consumer's convolution applies it through its weights (see
    :func:`_fold_affine`), which saves the producer a pass over its whole output. The tensor
    the producer returns then holds those pre-BatchNorm values (zero padding rows included),
    and the gradient that comes back for it is the gradient of the BatchNorm output, which is
    what the producer's backward pass expects. The producer keeps its output buffer until its
    own backward pass, which reads the pooled values.

    **The first block's backward pass inside the consumer's.** A compiled first block puts its
    inputs in :attr:`first`; a compiled consumer then makes the first block's backward sums
    chunk by chunk, right after each chunk's input gradient (while it is still in cache), and
    puts them in :attr:`first_sums`, which the first block's backward pass takes instead of
    reading that whole gradient back from memory.
    """

    def __init__(self) -> None:
        self.out_flat: Tensor | None = None
        self.grad_flat: Tensor | None = None
        self.affine: tuple[Tensor, Tensor] | None = None
        # A compiled first block's inputs, for the consumer's compiled backward pass to make
        # the first block's sums while each chunk's gradient is in cache, and those sums.
        self.first: tuple[Tensor, ...] | None = None
        self.first_sums: Tensor | None = None

    def keep_out(self, pool: _Pool) -> None:
        """The producer keeps its output buffer in its own saved buffers (folded BatchNorm)."""
        if self.out_flat is not None:
            pool.flats.append(self.out_flat)
            self.out_flat = None

    def take_out(self, like: Tensor, *shape: int) -> Tensor:
        self.out_flat, (tensor,) = _take([shape], like)
        return tensor

    def take_grad(self, like: Tensor, *shape: int) -> Tensor:
        self.grad_flat, (tensor,) = _take([shape], like)
        return tensor

    def give_back_grad(self) -> None:
        if self.grad_flat is not None:
            _give_back(self.grad_flat)
            self.grad_flat = None


def _done_with_saved(ctx) -> None:
    """Give the saved buffers back at the end of a backward pass that frees its graph.

    Otherwise they would go back only when the graph node dies, which a training loop that
    keeps the last logits (to count correct predictions) delays past the next forward pass:
    every step would then need a second set of buffers. With ``retain_graph=True`` they stay.
    """
    if not _KEEP_GRAPH():
        ctx.saved_pool.release()  # the finalizer then finds nothing left to give back


def _chunk_step(length: int, chans: int, per_thread: bool = False) -> int:
    """Samples per chunk: about :data:`CHUNK_VALUES` values per intra-op thread.

    Each thread then works on about that much of a chunk, in its own core's cache; with two
    threads, chunks of twice the size ran 4-8 % faster than equal ones (fewer operations, each
    split between the cores). With ``per_thread``, chunks of :data:`CHUNK_VALUES` (for loops
    where each thread takes chunks of its own).
    """
    values = CHUNK_VALUES * (1 if per_thread else torch.get_num_threads())
    return max(1, values // max(length * chans, 1))


def _chunks(batch: int, length: int, chans: int) -> list[tuple[int, int]]:
    """Sample ranges ``[start, stop)`` of :func:`_chunk_step` samples each (the last shorter)."""
    step = _chunk_step(length, chans)
    return [(s, min(s + step, batch)) for s in range(0, batch, step)]


def _keep_saved(ctx, saved: _Pool, link_out: Link | None, fold_out: bool, graph: bool) -> None:
    """Who owns a block's saved buffers after its forward pass: its graph node, given back
    when the node dies or its backward pass ends (see :func:`_done_with_saved`), when any
    input needs a gradient; otherwise nobody, so they go back at once. With ``fold_out`` and
    a recorded graph, the node also keeps the output buffer, which holds the pooled values
    its backward pass reads (see :class:`Link`)."""
    if any(ctx.needs_input_grad):
        if fold_out and graph:
            link_out.keep_out(saved)
        weakref.finalize(ctx, saved.release)
        ctx.saved_pool = saved
    else:
        saved.release()


def _fold_affine(wk: Tensor, bias: Tensor, scale: Tensor,
                 shift: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Weights that convolve pre-BatchNorm values ``v`` as the original ones convolve
    ``scale * v + shift``.

    Per tap ``W_k' = diag(scale) W_k`` and the bias gains ``sum_k shift @ W_k``; at the first
    and last positions of every sample, where tap 0 or tap 2 reads a zero padding row (zero
    after BatchNorm, not ``shift``), ``edge[0] = shift @ W_0`` and ``edge[2] = shift @ W_2``
    must be taken off again. Returns ``(W', bias', edge)``; ``wk`` is ``(3, c_in, c_out)``.
    """
    edge = torch.matmul(shift, wk)  # (3, c_out): shift @ W_k per tap (6 us; einsum took 29)
    return wk * scale[None, :, None], bias + edge.sum(0), edge


def _bn_affine(total: Tensor | None, total_sq: Tensor | None, count: int, gamma: Tensor,
               beta: Tensor, running_mean: Tensor | None, running_var: Tensor | None,
               training: bool, momentum: float, eps: float) -> tuple[Tensor, ...]:
    """BatchNorm's ``(mean, invstd, scale, shift)`` from the sums of ``y`` and ``y**2`` over
    ``count`` positions (batch statistics, which also update the running ones) or from the
    running statistics; ``scale * y + shift`` is the normalised output."""
    if training:
        mean = total / count
        var = (total_sq / count - mean * mean).clamp_(min=0)
        if running_mean is not None:
            unbiased = var * (count / max(count - 1, 1))
            running_mean.mul_(1 - momentum).add_(mean, alpha=momentum)
            running_var.mul_(1 - momentum).add_(unbiased, alpha=momentum)
    else:
        mean, var = running_mean.detach(), running_var.detach()
    invstd = torch.rsqrt(var + eps)
    scale = gamma.detach() * invstd
    return mean, invstd, scale, beta.detach() - mean * scale


def _bn_grad_terms(ctx, dbeta: Tensor, dgp: Tensor, mean: Tensor, invstd: Tensor,
                   scale: Tensor) -> tuple[Tensor, Tensor | None, Tensor | None]:
    """``dgamma`` and, with batch statistics, the terms of the BatchNorm input gradient that
    reach every position: ``dy = mask * (const + coef_y * y + pooled gradient * scale)``.
    ``dbeta = sum(g)`` and ``dgp = sum(g * pooled value)`` (see :func:`_bn_sums`)."""
    dgamma = invstd * (dgp - mean * dbeta)
    if not ctx.training:
        return dgamma, None, None
    coef_y = -scale * dgamma * invstd / ctx.count
    return dgamma, coef_y, -scale * dbeta / ctx.count - coef_y * mean


def _bn_sums(g: Tensor, picked: Tensor, chunks: list[tuple[int, int]]) -> tuple[Tensor, Tensor]:
    """``sum(g)`` and ``sum(g * picked)`` per channel over a block's pooled positions, chunk by
    chunk (``g`` and ``picked`` may be strided views; the sums run over contiguous copies)."""
    _, pooled_len, chans = picked.shape
    scratch = _Pool(picked)
    rows = (chunks[0][1] - chunks[0][0]) * pooled_len
    g_buf, p_buf = scratch(rows, chans), scratch(rows, chans)
    ones = picked.new_ones(rows)
    dbeta = picked.new_zeros(chans)
    dgp = picked.new_zeros(chans)
    for s0, s1 in chunks:
        k = s1 - s0
        n = k * pooled_len
        gc = g_buf[:n].view(k, pooled_len, chans).copy_(g[s0:s1])
        dbeta.addmv_(gc.view(n, chans).t(), ones[:n])
        prod = torch.mul(gc, picked[s0:s1], out=p_buf[:n].view(k, pooled_len, chans))
        dgp.addmv_(prod.view(n, chans).t(), ones[:n])
    scratch.release()
    return dbeta, dgp


def _pair_pick(even: Tensor, odd: Tensor, sign: Tensor | None, out: Tensor) -> Tensor:
    """The element of each pair that max-pooling after the BN affine map selects (pre-BN)."""
    torch.maximum(even, odd, out=out)
    if sign is not None:
        # scale == 0: every pair ties after BN, and the first element is the one picked.
        out.copy_(torch.where(sign > 0, out, torch.where(sign < 0, torch.minimum(even, odd), even)))
    return out


def _block_dy(ctx, yc: Tensor, g: Tensor, dy: Tensor, scale: Tensor | None,
              coef_y: Tensor | None, const: Tensor | None, p_buf: Tensor, g_buf: Tensor,
              ones: Tensor | None, dbias: Tensor | None, d_ends: Tensor | None) -> None:
    """A chunk's conv-output gradient ``dy`` (``k`` samples of ``rows`` rows, like ``yc``, the
    saved ReLU output) from its pooled gradient ``g``, through pooling, BatchNorm and ReLU,
    in PyTorch operations (the compiled loop's fallback); ``dbias`` and ``d_ends``, if given,
    gain the column sums of ``dy`` and of each sample's first and last position (``ones``
    then holds at least ``k * rows`` ones)."""
    k, pooled_len, chans = g.shape
    rows = yc.shape[0] // k
    y3 = yc.view(k, rows, chans)
    even = y3[:, 0 : 2 * pooled_len : 2]
    odd = y3[:, 1 : 2 * pooled_len : 2]
    diff = torch.sub(odd, even, out=p_buf[: k * pooled_len].view(k, pooled_len, chans))
    if ctx.sign is not None:
        diff.mul_(ctx.sign)
    if scale is not None:
        gs = torch.mul(g, scale, out=g_buf[: k * pooled_len].view(k, pooled_len, chans))
    else:
        gs = g
    g_odd = _threshold_backward(gs, diff, 0, grad_input=diff)
    dy3 = dy.view(k, rows, chans)
    d_even = dy3[:, 0 : 2 * pooled_len : 2]
    d_odd = dy3[:, 1 : 2 * pooled_len : 2]
    if coef_y is None:
        torch.sub(gs, g_odd, out=d_even)
        d_odd.copy_(g_odd)
        dy3[:, 2 * pooled_len :].zero_()
    else:
        torch.addcmul(const, yc, coef_y, out=dy)
        d_odd.add_(g_odd)
        d_even.add_(gs.sub_(g_odd))  # gs is not needed again
    # ReLU mask; it also zeroes the junk rows, where y == 0.
    _threshold_backward(dy, yc, 0, grad_input=dy)
    if dbias is not None:
        dbias.addmv_(dy.t(), ones[: k * rows])
    if d_ends is not None:
        length = ctx.shape_in[1] - 2
        d_ends[0].addmv_(dy3[:, 0].t(), ones[:k])
        d_ends[1].addmv_(dy3[:, length - 1].t(), ones[:k])


def _forward_chunks(xf: Tensor, y: Tensor, w: Tensor, bias: Tensor, rows: int, length: int,
                    edge: Tensor | None, sign: Tensor | None, sums: Tensor, stats: bool,
                    target: Tensor) -> None:
    """A :class:`~fearkd.models.layers_cnn._Block`'s forward pass chunk by chunk: the tap
    GEMMs into ``y``, then (compiled when available, else in PyTorch operations) padding-tap
    corrections, junk rows zeroed, ReLU, the sums of ``y`` and ``y**2`` into ``sums`` (with
    ``stats``) and the pooled pick into ``target``."""
    batch, pooled_len, chans = target.shape
    chunks = _chunks(batch, rows, chans)
    kern = _fused.available(y)
    if kern:
        # The GEMMs below add the bias: the compiled pass adds zeros.
        sign_k, zeros = _fused.channel_terms(y, chans, (sign, 1.0), (None, 0.0))
    else:
        scratch = _Pool(y)
        sq_buf = scratch(chunks[0][1] * rows, chans)
        ones = y.new_ones(chunks[0][1] * rows)
    for s0, s1 in chunks:
        r0, n = s0 * rows, (s1 - s0) * rows
        m = n - 2
        yc = y[r0 : r0 + n]
        torch.addmm(bias, xf[r0 : r0 + m], w[0], out=yc[:m])
        yc[:m].addmm_(xf[r0 + 1 : r0 + m + 1], w[1])
        yc[:m].addmm_(xf[r0 + 2 : r0 + m + 2], w[2])
        if kern:  # the passes below as one compiled loop
            _fused.block_fwd(yc, rows, chans, length, edge, zeros, sign_k, sums, target[s0:s1])
            continue
        y3 = yc.view(s1 - s0, rows, chans)
        if edge is not None:  # taps that read a padding row (see _fold_affine)
            y3[:, 0].sub_(edge[0])
            y3[:, length - 1].sub_(edge[2])
        y3[:, length:].zero_()  # junk rows: excluded from statistics and gradients
        yc.relu_()
        if stats:
            sums[0].addmv_(yc.t(), ones[:n])
            sums[1].addmv_(torch.mul(yc, yc, out=sq_buf[:n]).t(), ones[:n])
        even = y3[:, 0 : 2 * pooled_len : 2]
        odd = y3[:, 1 : 2 * pooled_len : 2]
        _pair_pick(even, odd, sign, target[s0:s1])
    if not kern:
        scratch.release()


def _backward_chunks(ctx, xf: Tensor, y: Tensor, g: Tensor, wk: Tensor, scale: Tensor | None,
                     sign: Tensor | None, coef_y: Tensor | None, const: Tensor | None,
                     need_w: bool, dflat: Tensor | None,
                     fold: bool) -> tuple[Tensor, Tensor | None]:
    """A :class:`~fearkd.models.layers_cnn._Block`'s backward pass chunk by chunk: each
    chunk's conv-output gradient ``dy`` (compiled when available), then the weight-gradient
    GEMMs (with ``need_w``) and the input-gradient GEMMs into ``dflat`` (if given). Returns
    the column sums of ``dy`` (all rows, each sample's first and last position; (3, c)) and
    the tap weight gradients ``(3, c_in, c)`` (``None`` without ``need_w``)."""
    batch, pooled_len, chans = g.shape
    rows = y.shape[0] // batch
    length = rows - 2
    chunks = _chunks(batch, rows, chans)
    step = chunks[0][1]
    kern = _fused.available(y)
    scratch = _Pool(y)
    dy_buf = scratch(step * rows, chans)
    sums = y.new_zeros(3, chans)
    dwk = y.new_zeros(wk.shape) if need_w else None
    if kern:
        terms = _fused.channel_terms(y, chans, (scale, 1.0), (sign, 1.0), (coef_y, 0.0),
                                     (const, 0.0))
    else:
        g_buf = scratch(step * pooled_len, chans)
        p_buf = scratch(step * pooled_len, chans)
        ones = y.new_ones(step * rows)
    for s0, s1 in chunks:
        k = s1 - s0
        r0, n = s0 * rows, k * rows
        m = n - 2
        yc = y[r0 : r0 + n]
        dy = dy_buf[:n]
        if kern:  # the passes of _block_dy as one compiled loop
            _fused.block_bwd(yc, g[s0:s1], rows, chans, length, *terms, dy, sums)
        else:
            _block_dy(ctx, yc, g[s0:s1], dy, scale, coef_y, const, p_buf, g_buf, ones,
                      sums[0] if need_w else None, sums[1:] if fold else None)
        if need_w:
            for tap in range(3):
                dwk[tap].addmm_(xf[r0 + tap : r0 + tap + m].t(), dy[:m])
        if dflat is not None:
            dfc = dflat[r0 : r0 + n]
            torch.mm(dy[:m], wk[0].t(), out=dfc[:m])  # the first tap writes, no zero fill
            dfc[m:].zero_()
            dfc[1 : m + 1].addmm_(dy[:m], wk[1].t())
            dfc[2 : m + 2].addmm_(dy[:m], wk[2].t())
    scratch.release()
    return sums, dwk
