"""A small pool of work buffers, shared by the fast CNN blocks and the fused recurrent layers.

Those layers need large scratch and saved buffers on every call (a 176-step LSTM batch of 256
saves about 58 MB). Freshly allocated memory of that size is mapped page by page on first
touch, which cost as much as a third of the arithmetic, so the buffers are kept and reused:
:func:`take` hands out a free buffer of the right size (or a new one), and :func:`give_back`
returns it, at most :data:`POOL_BYTES` in all (the least recently used sizes go first).
"""

from __future__ import annotations

import math
import threading

import torch
from torch import Tensor

__all__ = ["give_back", "take"]

#: Free work buffers, keyed by (number of elements, dtype, device), least recently used first.
_POOL: dict[tuple[int, torch.dtype, torch.device], list[Tensor]] = {}
#: Most bytes the pool keeps; older sizes are dropped first, then the allocator takes over.
POOL_BYTES = 256 * 2**20
#: Bytes held in the pool, counted as buffers come and go (at least the true total: emptying
#: ``_POOL`` from outside leaves it high, and :func:`give_back` then counts again).
_BYTES = 0
_ALIGN = 16  # elements: sub-buffers start on 64-byte boundaries (float32)
_POOL_LOCK = threading.Lock()  # models may train in several threads at once


def take(sizes: list[tuple[int, ...]], like: Tensor) -> tuple[Tensor, list[Tensor]]:
    """One pooled flat buffer carved into uninitialised tensors of the given shapes."""
    global _BYTES
    counts = [math.prod(s) for s in sizes]
    padded = [-(-c // _ALIGN) * _ALIGN for c in counts]
    key = (sum(padded), like.dtype, like.device)
    with _POOL_LOCK:
        free = _POOL.get(key)
        flat = free.pop() if free else None
        if free is not None and not free:
            del _POOL[key]
        if flat is not None:
            _BYTES -= key[0] * key[1].itemsize
    if flat is None:
        flat = torch.empty(key[0], dtype=like.dtype, device=like.device)
    if len(sizes) == 1 and counts[0] == key[0]:  # most calls: one part, no slicing
        return flat, [flat.view(sizes[0])]
    parts, offset = [], 0
    for shape, count, step in zip(sizes, counts, padded, strict=True):
        parts.append(flat[offset : offset + count].view(shape))
        offset += step
    return flat, parts


def give_back(flat: Tensor) -> None:
    """Return a buffer of :func:`take` to the pool (most recently used size last)."""
    global _BYTES
    key = (flat.numel(), flat.dtype, flat.device)
    with _POOL_LOCK:
        free = _POOL.pop(key, [])
        free.append(flat)
        _POOL[key] = free
        _BYTES += key[0] * key[1].itemsize
        if _BYTES <= POOL_BYTES:
            return
        # Over the bound by the running count: count exactly (the count is never below the
        # true total), then drop the least recently used sizes first.
        _BYTES = sum(k[0] * k[1].itemsize * len(bufs) for k, bufs in _POOL.items())
        while _BYTES > POOL_BYTES and _POOL:
            oldest = next(iter(_POOL))
            dropped = _POOL[oldest].pop(0)
            _BYTES -= dropped.numel() * dropped.element_size()
            if not _POOL[oldest]:
                del _POOL[oldest]
