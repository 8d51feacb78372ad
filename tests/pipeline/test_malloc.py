"""The tile tasks' allocator setting: large temporaries reused instead of re-mapped (as on a dask worker)."""

from __future__ import annotations

import os
import subprocess
import sys

CHILD = r"""
import resource, numpy as np
from gsocseq.pipeline.malloc import reuse_large_allocations

def faults():
    for _ in range(3):  # warm
        np.ones(131072)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(200):  # 1 MiB arrays allocated and freed, like a tile's pixel batches
        np.ones(131072)
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

first = faults()
ok = reuse_large_allocations()
print(first, faults(), ok, reuse_large_allocations())
"""


def test_large_arrays_are_reused_after_the_setting_under_dask_s_trim_threshold() -> None:
    # the environment dask's nanny gives its workers: glibc's mmap threshold frozen at 128 KiB
    env = {**os.environ, "MALLOC_TRIM_THRESHOLD_": "65536"}
    out = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True,
                         check=True, timeout=120).stdout.split()
    before, after = int(out[0]), int(out[1])
    assert out[2:] == ["True", "True"]  # set once, then reported as set
    assert before >= 200 * 256 // 2  # each 1 MiB array faulted its pages in again (256 × 4 KiB)
    assert after < before // 20
