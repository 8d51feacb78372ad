"""The allocator setting of a process that runs tiles: large NumPy temporaries reused, not re-mapped.

Owns one process-wide setting, applied once by the tasks (:func:`reuse_large_allocations`). Dask's
nanny starts workers with ``MALLOC_TRIM_THRESHOLD_`` set, which freezes glibc's mmap threshold at
128 KiB: every larger array is then a fresh ``mmap``, zero-filled page by page on first touch and
unmapped when freed. A tile allocates such arrays by the thousand (one pixel batch of float64 is
16 384 × 8 B = 128 KiB), which doubled the CPU time of a tile on a worker against the same code in
a plain process (measured with ``benchmarks/bench_pipeline.py``).
"""

from __future__ import annotations

import ctypes
import threading

MMAP_THRESHOLD_BYTES: int = 32 * 2**20
"""Allocations below this come from the heap and are reused (glibc's largest dynamic threshold)."""
_M_MMAP_THRESHOLD = -3  # glibc <malloc.h>
_DONE: list[bool] = []
_LOCK = threading.Lock()


def reuse_large_allocations() -> bool:
    """Raise this process's mmap threshold to :data:`MMAP_THRESHOLD_BYTES` (once); True if set.

    Freed memory above the threshold still goes back to the system (the trim threshold is kept);
    a no-op returning False where the C library is not glibc.
    """
    with _LOCK:
        if _DONE:
            return _DONE[0]
        try:  # the process's own symbols: the C library it runs on
            mallopt = getattr(ctypes.CDLL(None), "mallopt", None)
            ok = bool(mallopt is not None and mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) == 1)
        except OSError:
            ok = False
        _DONE.append(ok)
        return ok
