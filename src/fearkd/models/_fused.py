"""Python side of the compiled passes of the fast CNN blocks and the fused recurrent layers.

:mod:`fearkd.models._kernels` (C, built at install time by ``setup.py``) runs each pass that
:mod:`fearkd.models.layers_cnn` otherwise spells as several PyTorch operations as one loop over
the data, on PyTorch's own OpenMP threads; with the BLAS GEMMs of PyTorch's CPU library (see
:func:`_find_gemm`) it runs a whole block, GEMMs included, in one call (:func:`whole`). Around
those calls, the per-channel work (BatchNorm's statistics and gradient terms, the conv weights'
layout with the previous BatchNorm folded in: :func:`bn_affine`, :func:`bn_backward`,
:func:`conv_weights`, :func:`conv_grad`, :func:`first_grad`) is one call each too: spelt as
PyTorch operations on vectors of 64-128 values, it cost more in calls than in arithmetic (moving
it here took a training step at batch size 32, 2 threads, from 5.7 to 5.4 ms). These wrappers
check the layout the loops assume and pass data pointers. The blocks use them for float32 and
float64 tensors on the CPU when the module is built and ``FEARKD_KERNELS`` is not ``0``;
otherwise (CUDA, another dtype, no C compiler at install time) they run the PyTorch operations,
which compute the same function and are tested against the same plain layers.

The fused LSTM and GRU of :mod:`fearkd.models.layers_rnn` run a whole layer's forward or
backward pass in one call when :func:`whole` allows (:func:`lstm_forward` and the others): each
thread takes a slice of the batch through every step, with its own small GEMMs. At 256 samples
of 64 units, one step's operations are too small for PyTorch to share between cores.
"""

from __future__ import annotations

import ctypes
import os
import struct

import torch  # before the kernels: they share the OpenMP runtime torch has loaded
from torch import Tensor

from fearkd.models._pool import give_back as _give_back
from fearkd.models._pool import take as _take

try:
    from fearkd.models import _kernels
except ImportError:  # not built: the PyTorch operations run instead
    _kernels = None

__all__ = ["available", "built", "whole"]

_CODES = {torch.float32: 4, torch.float64: 8}

#: Whether the compiled passes may be used; ``FEARKD_KERNELS=0`` turns them off.
ENABLED = os.environ.get("FEARKD_KERNELS", "1") != "0"


def _find_gemm() -> bool:
    """Hands the compiled module the BLAS GEMMs of PyTorch's CPU library (MKL's ``sgemm_`` and
    ``dgemm_`` in the x86-64 builds); False where that library exports none or where they fail
    a small known product."""
    if _kernels is None:
        return False
    lib_dir = os.path.join(os.path.dirname(torch.__file__), "lib")
    try:
        names = [n for n in os.listdir(lib_dir) if n.startswith("libtorch_cpu.")]
        lib = ctypes.CDLL(os.path.join(lib_dir, names[0]))
        addresses = [ctypes.cast(getattr(lib, f), ctypes.c_void_p).value
                     for f in ("sgemm_", "dgemm_")]
    except (IndexError, OSError, AttributeError):
        return False
    _kernels.set_gemm(*addresses)
    if not _kernels.gemm_probe():  # not the interface the loops call: leave them unused
        _kernels.set_gemm(0, 0)
        return False
    return True


#: Whether whole blocks, GEMMs included, run compiled (each thread taking chunks of its own).
GEMM = _find_gemm()


def built() -> bool:
    """Whether :mod:`fearkd.models._kernels` was built and imports."""
    return _kernels is not None


def available(t: Tensor) -> bool:
    """Whether the blocks run their element-wise passes compiled for tensors like ``t``."""
    return ENABLED and _kernels is not None and t.device.type == "cpu" and t.dtype in _CODES


def whole(t: Tensor) -> bool:
    """Whether a whole CNN block or recurrent layer, GEMMs included, runs as one compiled pass
    for tensors like ``t``: each thread then takes samples of its own, and each GEMM runs on
    one core (at these sizes a GEMM split between two cores ran at 70-90 % of their combined
    rate, against 90-100 % on one)."""
    return GEMM and available(t)


def _ptr(t: Tensor | None) -> int:
    return 0 if t is None else t.data_ptr()


def channel_terms(like: Tensor, chans: int, *terms: tuple[Tensor | None, float]
                  ) -> list[Tensor]:
    """Per-channel arguments as the loops read them: contiguous, each ``None`` replaced by
    ``chans`` copies of its default (1 for a missing scale or sign, 0 for a missing term).
    Make them once per call of a block, not per chunk."""
    out = []
    for t, default in terms:
        out.append(like.new_full((chans,), default) if t is None else t.detach().contiguous())
    return out


def _rows(t: Tensor, chans: int) -> tuple[Tensor, int]:
    """``t`` (samples, positions, chans) with contiguous rows of ``chans`` values; returns it
    (copied if its layout is another) and its sample stride."""
    if t.stride(2) != 1 or (t.shape[1] > 1 and t.stride(1) != chans):
        t = t.contiguous()
    return t, t.stride(0)


def block_fwd(y: Tensor, rows: int, chans: int, length: int, edge: Tensor | None,
              bias: Tensor, sign: Tensor, sums: Tensor, picked: Tensor) -> None:
    """ReLU in place on ``y`` (a chunk's conv output, samples of ``rows`` rows; ``edge``, if
    given, taken off each sample's first and last position first, then ``bias`` added, junk
    rows zeroed), the sums of ``y`` and ``y**2`` added to ``sums`` (2, chans) and the pooled
    pick written to ``picked`` (samples, length // 2, chans; rows contiguous). ``bias`` (zeros
    when the GEMMs added it) and ``sign``: see :func:`channel_terms`."""
    assert picked.stride(2) == 1 and (picked.shape[1] < 2 or picked.stride(1) == chans)
    e0 = e2 = 0
    if edge is not None:
        edge = edge.contiguous()
        e0, e2 = edge[0].data_ptr(), edge[2].data_ptr()
    _kernels.block_fwd(torch.get_num_threads(), picked.shape[0], sums.data_ptr(), 2 * chans,
                       _CODES[y.dtype], y.data_ptr(), rows, chans, length, e0, e2,
                       bias.data_ptr(), sign.data_ptr(), picked.data_ptr(), picked.stride(0))


def block_bwd(y: Tensor, g: Tensor, rows: int, chans: int, length: int, scale: Tensor,
              sign: Tensor, coef: Tensor, const: Tensor, dy: Tensor, sums: Tensor) -> None:
    """A chunk's conv-output gradient ``dy`` from its pooled gradient ``g`` (samples,
    length // 2, chans); ``sums`` (3, chans) gains the column sums of ``dy``, then those of
    each sample's first and last position. ``scale``, ``sign``, ``coef`` and ``const``: see
    :func:`channel_terms`."""
    g, gstride = _rows(g, chans)
    _kernels.block_bwd(torch.get_num_threads(), g.shape[0], sums.data_ptr(), 3 * chans,
                       _CODES[y.dtype], y.data_ptr(), g.data_ptr(), gstride, rows, chans,
                       length, scale.data_ptr(), sign.data_ptr(), coef.data_ptr(),
                       const.data_ptr(), dy.data_ptr())


def bn_sums(g: Tensor, picked: Tensor) -> tuple[Tensor, Tensor]:
    """``sum(g)`` and ``sum(g * picked)`` per channel, both (samples, positions, chans)."""
    _, pooled, chans = picked.shape
    g, gstride = _rows(g, chans)
    picked, pstride = _rows(picked, chans)
    sums = picked.new_zeros(2, chans)
    _kernels.bn_sums(torch.get_num_threads(), g.shape[0], sums.data_ptr(), 2 * chans,
                     _CODES[g.dtype], g.data_ptr(), gstride, picked.data_ptr(), pstride,
                     pooled, chans)
    return sums[0], sums[1]


def _row(table: Tensor, i: int) -> int:
    """Address of row ``i`` of a contiguous table of per-channel values."""
    return table.data_ptr() + i * table.stride(0) * table.element_size()


def _c(t: Tensor) -> Tensor:
    """``t``, or a contiguous copy of it. Bind the result to a name until the call that reads
    its address has returned: a copy made inside the argument list is freed before it."""
    return t if t.is_contiguous() else t.contiguous()


def _bits(value: float) -> int:
    """``value`` as the 64 bits of a double, as the compiled module reads real arguments."""
    return struct.unpack("q", struct.pack("d", float(value)))[0]


def first_fwd(x: Tensor, xpad: Tensor, weight: Tensor, bias: Tensor, gamma: Tensor,
              sums: Tensor, picked: Tensor, pad: bool) -> None:
    """The first block's conv (``weight`` (chans, 1, 3) and ``bias`` as ``nn.Conv1d`` holds
    them) of ``x`` (batch, length), which it copies to ``xpad`` (batch, length + 2) with a
    zero at each end ('same' padding), ReLU and the pooled pick for BatchNorm's scale
    ``gamma`` into ``picked`` (rows contiguous; with ``pad``, the rows just before and after
    each sample's are zeroed: ``picked`` is then a view into a padded buffer); ``sums`` (at
    least 9 rows of chans) gains the statistics :class:`_FirstBlock` needs."""
    chans = weight.shape[0]
    assert x.is_contiguous() and xpad.is_contiguous() and picked.stride(2) == 1
    assert sums.is_contiguous() and sums.shape[1] == chans
    weight, bias, gamma = _c(weight), _c(bias), _c(gamma)
    _kernels.first_fwd(torch.get_num_threads(), x.shape[0], sums.data_ptr(), 9 * chans,
                       _CODES[x.dtype], x.data_ptr(), xpad.data_ptr(), x.shape[1], chans,
                       weight.data_ptr(), bias.data_ptr(), gamma.data_ptr(), picked.data_ptr(),
                       picked.stride(0), int(pad))


def first_bwd(xpad: Tensor, g: Tensor, weight: Tensor, bias: Tensor, gamma: Tensor,
              affine: Tensor) -> Tensor:
    """(6, chans): ``sum(g)``, ``sum(g * picked)`` and the pooled part of the first block's
    ``cols^T @ dy`` (three taps, then the bias), for the gradient ``g`` of the pooled values
    (batch, length // 2, chans); ``xpad`` as :func:`first_fwd` left it and the same
    ``weight``, ``bias`` and ``gamma`` (the pooled values are computed again from them);
    ``affine``: :func:`bn_affine`'s rows."""
    chans = weight.shape[0]
    g, gstride = _rows(g, chans)
    sums = g.new_zeros(6, chans)
    weight, bias, gamma = _c(weight), _c(bias), _c(gamma)
    _kernels.first_bwd(torch.get_num_threads(), g.shape[0], sums.data_ptr(), 6 * chans,
                       _CODES[g.dtype], xpad.data_ptr(), g.data_ptr(), gstride,
                       xpad.shape[1] - 2, chans, weight.data_ptr(), bias.data_ptr(),
                       gamma.data_ptr(), _row(affine, 2))
    return sums


def first_grad(bsums: Tensor, fsums: Tensor, affine: Tensor, count: int,
               training: bool) -> Tensor:
    """The first block's parameter gradients, (6 * chans,): the weight's (chans x 3), then
    the bias', gamma's and beta's, from :func:`first_bwd`'s sums, the forward pass's
    (``fsums``, rows 0-7 as :func:`first_fwd` leaves them) and :func:`bn_affine`'s rows."""
    chans = bsums.shape[1]
    out = bsums.new_empty(6 * chans)
    _kernels.first_grad(1, 1, 0, 0, _CODES[bsums.dtype], bsums.data_ptr(), fsums.data_ptr(),
                        affine.data_ptr(), count, int(training), chans, out.data_ptr())
    return out


def bn_affine(sums: Tensor, tot: int, tsq: int, affine: Tensor, count: int, gamma: Tensor,
              beta: Tensor, running_mean: Tensor | None, running_var: Tensor | None,
              training: bool, momentum: float, eps: float) -> None:
    """BatchNorm's rows mean, invstd, scale and shift into ``affine`` (4, chans) from rows
    ``tot`` and ``tsq`` of ``sums``, the sums of ``y`` and ``y**2`` over ``count`` positions
    (see :func:`fearkd.models._cnn_parts._bn_affine`, whose formulas it follows; the running
    statistics are updated in place)."""
    assert affine.is_contiguous() and sums.is_contiguous()
    for t in (running_mean, running_var):
        assert t is None or t.is_contiguous()
    gamma, beta = _c(gamma), _c(beta)
    _kernels.bn_affine(1, 1, 0, 0, _CODES[affine.dtype], _row(sums, tot), _row(sums, tsq), count,
                       gamma.data_ptr(), beta.data_ptr(), _ptr(running_mean),
                       _ptr(running_var), int(training), _bits(momentum), _bits(eps),
                       affine.shape[1], affine.data_ptr())


def conv_par_size(c_in: int, c_out: int) -> int:
    """Elements of the table :func:`conv_weights` fills."""
    return 6 * c_in * c_out + 6 * c_out


def conv_weights(par: Tensor, weight: Tensor, bias: Tensor, fold: tuple[Tensor, Tensor] | None,
                 gamma: Tensor | None) -> None:
    """Fills ``par`` (:func:`conv_par_size` elements) with a block's conv weights as the
    compiled passes read them: the taps (3, c_in, c_out); with the previous block's BatchNorm
    folded in (``fold``: its scale and shift, see
    :func:`fearkd.models._cnn_parts._fold_affine`) the folded taps; the bias (folded or not);
    with ``fold`` the two edge rows; the sign of ``gamma`` (ones without BatchNorm), a row of
    ones and one of zeros (:func:`_par` gives where each starts)."""
    c_out, c_in, _ = weight.shape
    scale, shift = (None, None) if fold is None else (_c(fold[0]), _c(fold[1]))
    weight, bias = _c(weight), _c(bias)
    gamma = None if gamma is None else _c(gamma)
    _kernels.conv_weights(1, 1, 0, 0, _CODES[par.dtype], weight.data_ptr(), bias.data_ptr(),
                          _ptr(scale), _ptr(shift), _ptr(gamma), c_in, c_out,
                          par.data_ptr())


def _par(par: Tensor, c_in: int, c_out: int, what: str) -> int:
    """Address of one part of :func:`conv_weights`' table."""
    nw = 3 * c_in * c_out
    start = {"wk": 0, "wf": nw, "bf": 2 * nw}
    index = start[what] if what in start else 2 * nw + c_out * (
        1 + ("edge0", "edge2", "sign", "ones", "zeros").index(what))
    return par.data_ptr() + index * par.element_size()


def block_forward(xf: Tensor, y: Tensor, par: Tensor, folded: bool, rows: int, length: int,
                  sums: Tensor, target: Tensor, pad: bool, step: int) -> None:
    """A block's whole forward pass: ``y`` (batch * rows, chans) = the convolution of ``xf``
    (batch * rows, c_in) by the taps of ``par`` (see :func:`conv_weights`; the folded ones
    when ``folded``), then :func:`block_fwd` on it, in equal chunks of at most ``step``
    samples per thread;
    ``sums`` gains the sums of ``y`` and ``y**2`` in its first two rows. With ``pad``, the
    rows just before and after each sample's in ``target`` are zeroed."""
    batch, _, chans = target.shape
    c_in = xf.shape[1]
    assert xf.is_contiguous() and y.is_contiguous() and target.stride(2) == 1
    assert sums.is_contiguous() and par.numel() == conv_par_size(c_in, chans)
    w, e0, e2 = "wk", 0, 0
    if folded:
        w, e0, e2 = "wf", _par(par, c_in, chans, "edge0"), _par(par, c_in, chans, "edge2")
    _kernels.block_fwd_full(torch.get_num_threads(), batch, sums.data_ptr(), 2 * chans,
                            _CODES[y.dtype], xf.data_ptr(), y.data_ptr(),
                            _par(par, c_in, chans, w), _par(par, c_in, chans, "bf"), step,
                            rows, c_in, chans, length,
                            e0, e2, _par(par, c_in, chans, "sign"), target.data_ptr(),
                            target.stride(0), int(pad))


def bn_backward(g: Tensor, picked: Tensor, affine: Tensor, count: int,
                training: bool) -> tuple[Tensor, Tensor]:
    """BatchNorm's backward sums and terms: ``dbeta = sum(g)`` (see :func:`bn_sums`) and the
    rows ``dgamma``, ``coef`` and ``const``, (3, chans) (see
    :func:`fearkd.models._cnn_parts._bn_grad_terms`); ``affine``: :func:`bn_affine`'s rows."""
    dbeta, dgp = bn_sums(g, picked)
    chans = dbeta.shape[0]
    terms = dbeta.new_empty(3, chans)
    _kernels.bn_terms(1, 1, 0, 0, _CODES[dbeta.dtype], dbeta.data_ptr(), dgp.data_ptr(),
                      affine.data_ptr(), count, int(training), chans, terms.data_ptr())
    return dbeta, terms


def block_backward(xf: Tensor, y: Tensor, g: Tensor, par: Tensor, rows: int, length: int,
                   affine: Tensor | None, bn: Tensor | None, need_w: bool,
                   dflat: Tensor | None, step: int, first: tuple[Tensor, ...] | None = None
                   ) -> tuple[Tensor, Tensor | None, Tensor | None]:
    """A block's whole backward pass: :func:`block_bwd`, then the weight-gradient GEMMs (with
    ``need_w``) and the input-gradient GEMMs into ``dflat`` (if given), in equal chunks of at
    most ``step`` samples per thread. ``par``: :func:`conv_weights`' table; ``affine`` and
    ``bn``: the rows of :func:`bn_affine` and the terms of :func:`bn_backward` (``None``
    without BatchNorm). With ``first`` (the first block's ``xpad``, weight, bias, gamma and
    :func:`bn_affine` rows) and ``dflat``, the input is the first block's output, and
    :func:`first_bwd`'s sums for it are made chunk by chunk, while each chunk's input gradient
    is still in cache. Returns the column sums of ``dy`` (3, chans; see :func:`block_bwd`),
    the tap weight gradients (3, c_in, chans), or ``None`` without ``need_w``, and the first
    block's sums (6, c_in), or ``None``."""
    batch, _, chans = g.shape
    c_in = xf.shape[1]
    g, gstride = _rows(g, chans)
    assert xf.is_contiguous() and y.is_contiguous()
    assert dflat is None or dflat.is_contiguous()
    if bn is None:
        ones, zeros = _par(par, c_in, chans, "ones"), _par(par, c_in, chans, "zeros")
        terms = (ones, ones, zeros, zeros)
    else:
        terms = (_row(affine, 2), _par(par, c_in, chans, "sign"), _row(bn, 1), _row(bn, 2))
    first_args = (0, 0, 0, 0, 0, 0)
    n_acc = 3 * chans + 3 * c_in * chans
    if first is not None and dflat is not None:
        xpad, weight, bias, gamma, first_affine = first
        assert (xpad.shape[1] - 2) // 2 == length and weight.shape[0] == c_in
        weight, bias, gamma = _c(weight), _c(bias), _c(gamma)
        first_args = (xpad.data_ptr(), xpad.shape[1] - 2, weight.data_ptr(), bias.data_ptr(),
                      gamma.data_ptr(), _row(first_affine, 2))
        n_acc += 6 * c_in
    threads = torch.get_num_threads()
    acc = y.new_zeros(n_acc)
    # Each thread's dy, from the buffer pool (fresh memory costs a page fault per 4 KiB).
    flat, (scratch,) = _take([(max(1, min(threads, batch)) * step * rows * chans,)], y)
    _kernels.block_bwd_full(threads, batch, acc.data_ptr(), n_acc, _CODES[y.dtype],
                            xf.data_ptr(), y.data_ptr(), g.data_ptr(), gstride, par.data_ptr(),
                            step, rows, c_in, chans, length, *terms, int(need_w), _ptr(dflat),
                            scratch.data_ptr(), *first_args)
    _give_back(flat)
    sums = acc[: 3 * chans].view(3, chans)
    at = 3 * chans + 3 * c_in * chans
    dwk = acc[3 * chans : at].view(3, c_in, chans) if need_w else None
    return sums, dwk, (acc[at:].view(6, c_in) if first_args[0] else None)


def conv_grad(dwk: Tensor, sums: Tensor, fold: tuple[Tensor, Tensor] | None, c_out: int,
              c_in: int) -> Tensor:
    """The conv weight's gradient, (c_out, c_in, 3) as ``nn.Conv1d`` holds it, from the tap
    gradients ``dwk`` (3, c_in, c_out) and, folding (``fold``: the previous block's scale and
    shift), the correction that needs ``sums`` (see :func:`block_backward`)."""
    out = dwk.new_empty(c_out, c_in, 3)
    scale, shift = (None, None) if fold is None else (_c(fold[0]), _c(fold[1]))
    assert dwk.is_contiguous() and sums.is_contiguous()
    _kernels.conv_grad(1, 1, 0, 0, _CODES[dwk.dtype], dwk.data_ptr(), sums.data_ptr(),
                       _ptr(scale), _ptr(shift), c_in, c_out, out.data_ptr())
    return out


def _rnn_scratch(batch: int, per_sample: int, like: Tensor) -> tuple[int, Tensor, Tensor, int]:
    """The thread count, a pooled buffer of scratch for every thread's slice of the batch (as
    the compiled ``run`` splits it), the buffer's flat view and the elements per slice."""
    threads = torch.get_num_threads()
    shares = max(1, min(threads, batch))
    stride = -(-batch // shares) * per_sample
    flat, (scratch,) = _take([(shares * stride,)], like)
    return threads, flat, scratch, stride


def lstm_forward(xs: Tensor, w_t: Tensor, gates: Tensor, cs: Tensor, h_last: Tensor) -> None:
    """An LSTM layer's whole forward pass (see :class:`fearkd.models.layers_rnn._FusedLSTM`):
    ``xs`` (steps, batch, n_in), ``w_t`` (K, 4H: the augmented weights, gate blocks o, i, f, g,
    sigmoid blocks halved); fills ``gates`` (steps, batch, 4H), ``cs`` (steps + 1, batch, H;
    ``cs[0]`` must be zero) and ``h_last`` (batch, H). Each thread runs a slice of the batch
    through every step, with GEMMs of its own."""
    steps, batch, n_in = xs.shape
    hid = cs.shape[2]
    assert all(t.is_contiguous() for t in (xs, w_t, gates, cs, h_last))
    threads, flat, scratch, stride = _rnn_scratch(batch, n_in + 5 * hid + 1, xs)
    _kernels.lstm_fwd(threads, batch, 0, 0, _CODES[xs.dtype], xs.data_ptr(), w_t.data_ptr(),
                      gates.data_ptr(), cs.data_ptr(), h_last.data_ptr(), steps, batch, hid,
                      n_in, scratch.data_ptr(), stride)
    _give_back(flat)


def lstm_backward(xs: Tensor, w_aug: Tensor, gates: Tensor, cs: Tensor, dh_last: Tensor,
                  need_x: bool, need_w: bool, chunk: int) -> tuple[Tensor | None,
                                                                   Tensor | None]:
    """The backward pass of :func:`lstm_forward` (``w_aug`` (4H, K): the augmented weights,
    not halved); returns the input gradient (with ``need_x``) and the gradient of ``w_aug``
    transposed, (K, 4H) (with ``need_w``; one GEMM per ``chunk`` steps adds to it)."""
    steps, batch, n_in = xs.shape
    hid = cs.shape[2]
    k = hid + n_in + 1
    assert all(t.is_contiguous() for t in (xs, w_aug, gates, cs, dh_last))
    dx = xs.new_empty(steps, batch, n_in) if need_x else None
    acc = xs.new_zeros(k, 4 * hid) if need_w else None
    per_sample = chunk * (k + 4 * hid) + 5 * hid + n_in
    threads, flat, scratch, stride = _rnn_scratch(batch, per_sample, xs)
    _kernels.lstm_bwd(threads, batch, _ptr(acc), 0 if acc is None else acc.numel(),
                      _CODES[xs.dtype], xs.data_ptr(), w_aug.data_ptr(), gates.data_ptr(),
                      cs.data_ptr(), dh_last.data_ptr(), _ptr(dx), steps, batch, hid, n_in,
                      chunk, scratch.data_ptr(), stride)
    _give_back(flat)
    return dx, acc


def gru_forward(hx: Tensor, w_t: Tensor, gates: Tensor) -> None:
    """A GRU layer's whole forward pass (see :class:`fearkd.models.layers_rnn._FusedGRU`):
    ``hx`` (steps + 1, batch, K) holds the rows ``[h_{t-1}, x_t, 1]`` with ``h_{-1} = 0`` and
    gets every ``h_t``; ``w_t`` (K, 4H); fills ``gates`` (steps, batch, 4H)."""
    steps, batch, _ = gates.shape
    hid = gates.shape[2] // 4
    n_in = hx.shape[2] - hid - 1
    assert all(t.is_contiguous() for t in (hx, w_t, gates))
    _kernels.gru_fwd(torch.get_num_threads(), batch, 0, 0, _CODES[hx.dtype], hx.data_ptr(),
                     w_t.data_ptr(), gates.data_ptr(), steps, batch, hid, n_in)


def gru_backward(hx: Tensor, w_aug: Tensor, gates: Tensor, dh_last: Tensor, need_x: bool,
                 need_w: bool) -> tuple[Tensor | None, Tensor | None]:
    """The backward pass of :func:`gru_forward` (``w_aug`` (4H, K)); returns the input
    gradient (with ``need_x``) and the gradient of ``w_aug`` transposed, (K, 4H) (with
    ``need_w``)."""
    steps, batch, _ = gates.shape
    hid = gates.shape[2] // 4
    k = hx.shape[2]
    n_in = k - hid - 1
    assert all(t.is_contiguous() for t in (hx, w_aug, gates, dh_last))
    dx = hx.new_empty(steps, batch, n_in) if need_x else None
    acc = hx.new_zeros(k, 4 * hid) if need_w else None
    threads, flat, scratch, stride = _rnn_scratch(batch, 7 * hid + n_in, hx)
    _kernels.gru_bwd(threads, batch, _ptr(acc), 0 if acc is None else acc.numel(),
                     _CODES[hx.dtype], hx.data_ptr(), w_aug.data_ptr(), gates.data_ptr(),
                     dh_last.data_ptr(), _ptr(dx), steps, batch, hid, n_in,
                     scratch.data_ptr(), stride)
    _give_back(flat)
    return dx, acc
