"""The allocator setting of a process that runs tiles: large NumPy temporaries reused, not re-mapped.

Owns one process-wide setting, applied once by the tasks (:func:`reuse_large_allocations`). Dask's
nanny starts workers with ``MALLOC_TRIM_THRESHOLD_`` set, which freezes glibc's mmap threshold at
128 KiB and returns any free heap top above 64 KiB: every larger array is then fresh memory from
the system, zero-filled page by page on first touch and given back when freed. A tile allocates
such arrays by the thousand (one pixel batch of float64 is 16 384 × 8 B = 128 KiB), which doubled
the CPU time of a tile on a worker against the same code in a plain process (measured with
``benchmarks/bench_pipeline.py``).
"""

from __future__ import annotations

import ctypes
import threading

MMAP_THRESHOLD_BYTES: int = 32 * 2**20
"""Allocations below this come from the heap and are reused (glibc's largest dynamic threshold)."""
TRIM_THRESHOLD_BYTES: int = 64 * 2**20
"""Free memory kept at the top of a heap before it goes back to the system (dask sets 64 KiB)."""
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc <malloc.h>
_DONE: list[bool] = []
_LOCK = threading.Lock()


def reuse_large_allocations() -> bool:
    """Raise this process's mmap and trim thresholds (once); True if both were set.

    Arrays up to :data:`MMAP_THRESHOLD_BYTES` then come from the heap, and up to
    :data:`TRIM_THRESHOLD_BYTES` of freed heap per arena stay for the next tile; larger arrays
    and more free memory still go back to the system. A no-op returning False where the C
    library is not glibc.
    """
    with _LOCK:
        if _DONE:
            return _DONE[0]
        try:  # the process's own symbols: the C library it runs on
            mallopt = getattr(ctypes.CDLL(None), "mallopt", None)
            ok = mallopt is not None and all(
                mallopt(param, value) == 1 for param, value in (
                    (_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES),
                    (_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)))
        except OSError:
            ok = False
        _DONE.append(ok)
        return ok
