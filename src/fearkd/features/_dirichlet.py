"""Band power of every window of a trial from each band's FFT bins (Dirichlet kernels).

Private helper of :mod:`fearkd.features.spectral`. The squared band-passed signal's sum over a
window is a sum over pairs of the band's FFT bins, each pair weighted by the window's Dirichlet
kernel (:func:`window_kernel`) with the window's position as a phase; placing the window starts
on a common grid (:func:`window_grid`) turns every window's sum into one inverse FFT per band
(:func:`band_window_sums`). The cost does not grow with the overlap of the windows. The test
suite ties the result to the plain filter-then-average :func:`fearkd.features.spectral.band_power`.
"""

from __future__ import annotations

import numpy as np
import scipy.fft

__all__ = ["window_grid", "window_kernel", "band_window_sums"]

def window_grid(starts: np.ndarray, n_times: int) -> tuple[int, int, np.ndarray]:
    """Place window starts on the coarsest grid that both they and the trial's period share.

    A sliding sum over a trial of ``n_times`` samples, sampled every ``n_times // period``
    samples from ``first``, has its frequencies folded modulo ``period``: one inverse FFT of
    ``period`` points evaluates it at every such point; the windows are those at ``index``.

    Parameters
    ----------
    starts : ndarray of int, shape (n_windows,)
    n_times : int
        Samples in the (circular) trial.

    Returns
    -------
    first : int
        The earliest start.
    period : int
        Number of grid points, ``n_times / gcd(n_times, start offsets)`` (1 for one window).
    index : ndarray of int64, shape (n_windows,)
        Grid point of each window.
    """
    starts = np.asarray(starts, dtype=np.int64)
    first = int(starts.min())
    offsets = starts - first
    spacing = int(np.gcd.reduce(np.append(offsets, n_times)))
    return first, n_times // spacing, offsets // spacing


def window_kernel(freqs: np.ndarray, first: int, n_samples: int, n_times: int) -> np.ndarray:
    """Sum of ``exp(2j pi f t / n_times)`` over ``t = first ... first + n_samples - 1``.

    A window's sum of a signal of period ``n_times`` with Fourier coefficients ``c_f`` is
    ``sum_f c_f * kernel(f)``: a Dirichlet kernel, with the window's position as a phase.

    Parameters
    ----------
    freqs : ndarray of int, shape (n_freqs,)
        Frequencies in cycles per trial (any integers: only ``f mod n_times`` matters).
    first : int
        The window's first sample.
    n_samples, n_times : int

    Returns
    -------
    ndarray of complex128, shape (n_freqs,)
    """
    f = np.mod(np.asarray(freqs, dtype=np.int64), n_times).astype(np.float64)
    den = np.sin(np.pi * f / n_times)
    zero = f == 0
    ratio = np.sin(np.pi * f * n_samples / n_times) / np.where(zero, 1.0, den)
    gain = np.where(zero, float(n_samples), ratio)
    # Phase of the window's centre; reduce the exponent mod 2 before pi to keep it exact.
    turns = np.mod(f * (2 * first + n_samples - 1), 2 * n_times) / n_times
    return gain * np.exp(1j * np.pi * turns)



def _fold_ops(blocks: list, period: int) -> tuple[list, int]:
    """Schedule ``acc[(f0 + i) % period] (+)= coef[i] * kernel[i]`` for (f0, n) blocks.

    The first block is folded from index 0 on (the caller rotates its output back). Returns
    chunks ``(block, i0, i1, r0, mode)`` and how much of ``acc`` the first chunk covers (the
    rest is zeroed first). ``mode`` is "set" for that first chunk, "add" for contiguous chunks
    added onto ``acc[r0:r0 + i1 - i0]``, and "wrap" for a block that wraps around many times
    (a short period, e.g. a single window): summed period by period at once.
    """
    ops, shift = [], blocks[0][0]
    for j, (f0, n) in enumerate(blocks):
        i, r = 0, (f0 - shift) % period
        if n > 8 * period:
            ops.append((j, 0, n, r, "wrap"))
            continue
        while i < n:
            take = min(n - i, period - r)
            ops.append((j, i, i + take, r, "set" if not ops else "add"))
            i += take
            r = 0
    return ops, (ops[0][2] if ops[0][4] == "set" else 0)


def _band_plan(n_chans: int, n_times: int, bins: list, windows: list) -> dict:
    """Transform sizes, buffers and window kernels of :func:`band_window_sums` (cacheable)."""
    bands, groups = [], {}
    for b, (k0, k1) in enumerate(bins):
        width = k1 - k0
        # |a|^2 spans frequencies -(width-1)..width-1 and a^2 spans 2*k0..2*k0+2*width-2:
        # 2*width-1 points of the band's analytic signal hold both without aliasing.
        m = scipy.fft.next_fast_len(2 * width - 1)
        # a = (2/N) sum X_k e^{...}: the transforms of |a|^2 and a^2 computed from the raw
        # bins are their Fourier coefficients times m (N/2)^2, a scale put in the kernels.
        # DC and Nyquist bins count once in x_b (half weight in a).
        once = [i for i, k in enumerate(range(k0, k1)) if k == 0 or 2 * k == n_times]
        bands.append((k0, width, 4.0 / (n_times**2 * m), once))
        groups.setdefault(m, []).append(b)
    work = {m: (np.empty((len(bs), n_chans, m), np.complex64),
                np.empty((len(bs), n_chans, m), np.float32)) for m, bs in groups.items()}
    per_windows = []
    for starts, n_samples in windows:
        first, period, index = window_grid(starts, n_times)
        if np.array_equal(index, np.arange(index.size)):
            index = slice(0, index.size)
        per_band = []
        for k0, width, scale, _ in bands:
            # x_b^2 = |a|^2 / 2 + Re(a^2) / 2 = Re(sum_m Q_m e^{...} / 2 + P_0 / 2
            # + sum_{m>0} P_m e^{...}), a^2's coefficients Q at 2*k0 + m, |a|^2's P at m.
            k_sq = 0.5 * scale * window_kernel(2 * k0 + np.arange(2 * width - 1), first,
                                               n_samples, n_times)
            k_env = scale * window_kernel(np.arange(width), first, n_samples, n_times)
            k_env[0] *= 0.5
            ops, covered = _fold_ops([(2 * k0, 2 * width - 1), (0, width)], period)
            # Folding from 2*k0 mod period shifted the frequencies: turn them back after.
            shift = (2 * k0) % period
            twist = None
            if shift:
                twist = np.exp(2j * np.pi * shift * np.arange(period)[index] / period)
                twist = twist.astype(np.complex64)
            per_band.append(((k_sq.astype(np.complex64), k_env.astype(np.complex64)), ops,
                             covered, twist))
        acc = np.empty((len(bins), n_chans, period), np.complex64)
        per_windows.append((acc, index, per_band))
    return {"bands": bands, "groups": groups, "work": work, "windows": per_windows,
            "x": np.empty((n_chans, n_times), dtype=np.float32)}


def band_window_sums(
    x: np.ndarray, bins: list, windows: list, *, workspace: dict | None = None
) -> list[np.ndarray]:
    """Window sums of the squares of band-passed ``x``, computed from its spectrum alone.

    ``x_b`` is ``x`` through an ideal FFT band-pass: its real FFT with every bin outside
    ``[k0, k1)`` set to zero, inverted (circular over the trial). With ``a`` the band's
    analytic signal (bins ``k0 .. k1-1`` only, doubled except at DC and Nyquist),
    ``x_b = Re(a)`` and ``x_b**2 = |a|**2 / 2 + Re(a**2) / 2``. Both ``|a|**2`` (frequencies
    below the band's width ``W = k1 - k0``) and ``a**2`` (frequencies ``2*k0 .. 2*k1-2``) are
    exact from ``a`` at ``2W - 1`` points once shifted to baseband: one inverse FFT of the band's
    bins, two forward FFTs of that size give their Fourier coefficients. A window's sum is then
    the sum of the coefficients times the window's Dirichlet kernel (:func:`window_kernel`);
    folded onto the grid of window starts (:func:`window_grid`) one inverse FFT gives every
    window. Nothing runs at the trial's full rate except the forward FFT of ``x``.

    Parameters
    ----------
    x : ndarray, shape (n_chans, n_times)
        One trial; transformed in single precision (relative error about 1e-6).
    bins : list of (int, int)
        Each band's real-FFT bins ``[k0, k1)`` of an ``n_times``-point transform.
    windows : list of (ndarray of int, int)
        Window sets ``(starts, n_samples)``.
    workspace : dict, optional
        Keeps kernels and buffers between calls with the same shapes (pass one dict for all
        trials of a subject).

    Returns
    -------
    list of ndarray of float64, shape (n_bands, n_chans, n_windows), one per window set
        ``sum(x_b[..., s:s + n_samples] ** 2)`` for each start ``s``.
    """
    if not isinstance(x, np.ndarray) or x.ndim != 2:
        raise ValueError(
            f"band_window_sums: 'x' must be an array of shape (n_chans, n_times), got "
            f"{type(x).__name__} with shape {getattr(x, 'shape', None)}."
        )
    n_chans, n_times = x.shape
    for k0, k1 in bins:
        if not 0 <= k0 < k1 <= n_times // 2 + 1:
            raise ValueError(
                f"band_window_sums: bins {(k0, k1)!r} are not a non-empty range of the "
                f"{n_times // 2 + 1} real-FFT bins of {n_times} samples; expected "
                f"0 <= k0 < k1 <= {n_times // 2 + 1}."
            )
    for starts, n_samples in windows:
        starts = np.asarray(starts)
        if starts.ndim != 1 or starts.size == 0 or int(n_samples) < 1:
            raise ValueError(
                f"band_window_sums: each window set must be (1-D non-empty starts, n_samples "
                f">= 1), got starts of shape {starts.shape} and n_samples {n_samples!r}."
            )
        if starts.min() < 0 or starts.max() + int(n_samples) > n_times:
            raise ValueError(
                f"Windows run from sample {int(starts.min())} to "
                f"{int(starts.max()) + int(n_samples)} but the signal has {n_times} samples."
            )
    key = ("band-window-sums", n_chans, n_times, tuple(bins),
           tuple((np.asarray(s, dtype=np.int64).tobytes(), int(n)) for s, n in windows))
    plan = None if workspace is None else workspace.get(key)
    if plan is None:
        plan = _band_plan(n_chans, n_times, bins,
                          [(np.asarray(s, dtype=np.int64), int(n)) for s, n in windows])
        if workspace is not None:
            for old in [k for k in workspace if k[0] == key[0]]:
                del workspace[old]
            workspace[key] = plan
    xs = plan["x"]
    np.copyto(xs, x, casting="same_kind")
    spec = scipy.fft.rfft(xs, axis=-1)
    coefs = [None] * len(bins)
    for m, members in plan["groups"].items():
        a, env_in = plan["work"][m]
        for i, b in enumerate(members):
            k0, width, _, once = plan["bands"][b]
            a[i, :, :width] = spec[:, k0:k0 + width]
            if once:
                a[i, :, once] *= 0.5
            a[i, :, width:] = 0
        # Each band's analytic signal, shifted to baseband, at m >= 2W-1 points (in place).
        scipy.fft.ifft(a, axis=-1, norm="forward", overwrite_x=True)
        np.abs(a, out=env_in)
        np.square(env_in, out=env_in)
        env = scipy.fft.rfft(env_in, axis=-1)
        sq = scipy.fft.fft(np.multiply(a, a, out=a), axis=-1, overwrite_x=True)
        for i, b in enumerate(members):
            width = plan["bands"][b][1]
            coefs[b] = (sq[i, :, :2 * width - 1], env[i, :, :width])
    out = []
    for acc, index, per_band in plan["windows"]:
        period = acc.shape[-1]
        tmp = np.empty(acc.shape[1:], acc.dtype)
        for b, (kernels, ops, covered, _) in enumerate(per_band):
            acc[b, :, covered:] = 0
            for j, i0, i1, r0, mode in ops:
                coef, kern = coefs[b][j][:, i0:i1], kernels[j][i0:i1]
                if mode == "wrap":
                    pad = np.zeros((n_chans, -(-(r0 + i1) // period) * period), acc.dtype)
                    np.multiply(coef, kern, out=pad[:, r0:r0 + i1])
                    acc[b] += pad.reshape(n_chans, -1, period).sum(axis=1)
                    continue
                dst = acc[b, :, r0:r0 + i1 - i0]
                if mode == "set":
                    np.multiply(coef, kern, out=dst)
                else:
                    np.add(dst, np.multiply(coef, kern, out=tmp[:, :i1 - i0]), out=dst)
        sums = scipy.fft.ifft(acc, axis=-1, norm="forward", overwrite_x=True)[..., index]
        for b, (_, _, _, twist) in enumerate(per_band):
            if twist is not None:
                np.multiply(sums[b], twist, out=sums[b])
        out.append(sums.real.astype(np.float64))
    return out
