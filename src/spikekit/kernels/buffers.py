"""Reused memory for the fused kernels' large outputs (``[T, ...]`` spikes and input gradients).

Why: memory the process has not touched recently costs a page fault per 4 KB page on first
write. glibc serves blocks between its mmap threshold (128 KB, raised as blocks are freed) and
32 MB from its heap, which it trims back to the OS when enough is free at the top, so whether
``torch.empty`` of such a block is warm or fresh depends on what else was allocated and freed
in between. Measured on 2 cores, Linear(512) + LIF, T = 500, B = 16 (16 MB per buffer): 0 to
8,000 faults per iteration in the fused kernels, in varying iterations, and 4,000 more in the
Linear's own output once our buffers had shifted the heap; a fresh 16 MB cost 5-8 ms of
faults against a 2.4 ms forward kernel. (Huge pages do not help: first touch of 64 MB took
68 ms with them and 46 ms without.)

So buffers of :data:`MIN_BYTES` to :data:`MAX_BYTES` live in mappings of their own (outside
glibc's heap, so they never move its other blocks), kept after use and handed out again once
nothing references them: a buffer is free when the only reference to its array is this
cache's (every tensor made from it, views and autograd's saved tensors included, holds one).
Larger blocks are fresh mappings in glibc too, whoever allocates them, and keeping them would
cost more memory than faults: with them cached, Linear(4096) + LIF peaked at 1.53x the bare
Linear's memory against 1.35x without (same time within noise). At most :data:`LIMIT_BYTES`
are kept (``$SPIKEKIT_BUFFER_CACHE_MB``, default 256; 0 turns the reuse off);
:func:`empty_cache` releases the free ones. The same idea as PyTorch's CUDA caching
allocator, for the few buffer sizes a training loop repeats.
"""

from __future__ import annotations

import mmap
import os
import sys
import threading
from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = ["empty", "empty_cache", "cached_bytes", "LIMIT_BYTES", "MIN_BYTES", "MAX_BYTES"]

#: Buffers outside ``[MIN_BYTES, MAX_BYTES]`` come from ``torch.empty`` (see the module docstring).
MIN_BYTES = 1 << 20
MAX_BYTES = 32 << 20
#: Most bytes kept in the cache (free and in use together).
LIMIT_BYTES = int(float(os.environ.get("SPIKEKIT_BUFFER_CACHE_MB", "256")) * (1 << 20))

_LOCK = threading.Lock()
_CACHE: dict[int, list[np.ndarray]] = {}  # by size in bytes: byte arrays over private mappings
_total = 0


_NUMPY = {torch.float32: np.float32, torch.float64: np.float64, torch.float16: np.float16}


def _free(arrs: list[np.ndarray]) -> list[bool]:
    """Which arrays nothing but the cache references (a tensor made from one, or any view of
    that tensor, holds a reference to it through the numpy view it wraps)."""
    # the two references of a free one: the list's, and getrefcount's argument
    return [sys.getrefcount(arrs[i]) == 2 for i in range(len(arrs))]


def empty(shape: tuple[int, ...], dtype: torch.dtype) -> Tensor:
    """An uninitialised contiguous CPU tensor of ``shape`` and ``dtype``, from the cache when large.

    Args:
        shape: the tensor's shape.
        dtype: a floating-point dtype.

    Returns:
        A tensor that owns its memory as any other; when it (and every view of it) is gone,
        the memory goes back to the cache instead of the OS.
    """
    global _total
    numel = 1
    for s in shape:
        numel *= s
    nbytes = numel * dtype.itemsize
    if not MIN_BYTES <= nbytes <= MAX_BYTES or LIMIT_BYTES <= 0 or dtype not in _NUMPY:
        return torch.empty(shape, dtype=dtype)
    with _LOCK:
        arrs = _CACHE.get(nbytes, [])
        arr = next((a for a, free in zip(arrs, _free(arrs), strict=True) if free), None)
        if arr is None:
            mm = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
            arr = np.frombuffer(mm, dtype=np.uint8)
            if _total + nbytes <= LIMIT_BYTES:
                _CACHE.setdefault(nbytes, []).append(arr)
                _total += nbytes
        view: Any = arr.view(_NUMPY[dtype])
        del arr
    return torch.from_numpy(view).view(shape)


def empty_cache() -> int:
    """Release the cached buffers nothing uses any more; returns the bytes released."""
    global _total
    freed = 0
    with _LOCK:
        for size, arrs in list(_CACHE.items()):
            keep = [a for a, free in zip(arrs, _free(arrs), strict=True) if not free]
            freed += size * (len(arrs) - len(keep))
            if keep:
                _CACHE[size] = keep
            else:
                del _CACHE[size]
        _total -= freed
    return freed


def cached_bytes() -> int:
    """Bytes held by the cache (buffers in use included)."""
    return _total
