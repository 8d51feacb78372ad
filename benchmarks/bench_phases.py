"""Benchmark of the whole GSOCseq procedure (exact scheme) on one core.

Spin-up + 20-year warm-up + 4 forward scenarios + the min/max bracket runs, on synthetic pixels.
Run: ``NUMBA_NUM_THREADS=1 .venv/bin/python benchmarks/bench_phases.py [n_pixels ...]``.
``--base DIR`` (a checkout, e.g. ``git worktree add /tmp/base HEAD~3``) also times the procedure
with DIR's RothC kernels (``gsocseq/model/_rothc_kernels.py``) in the same process, alternating
with this tree's, and says whether the 29 layers are bitwise the same: a before/after ratio on a
shared machine (only the kernel module is swapped; the Python around it is this tree's).
"""

from __future__ import annotations

import importlib.util
import os
import sys
import time
import tracemalloc
from pathlib import Path
from types import ModuleType

os.environ.setdefault("NUMBA_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from gsocseq.model import rothc  # noqa: E402
from gsocseq.model.phases import PhaseConfig, run_phases  # noqa: E402


def synthetic_inputs(n_pixels: int, seed: int = 0, dtype=np.float32) -> dict[str, np.ndarray]:
    """Seasonal climate 1981-2020 with noise, SOC 20-90 t C/ha, clay 5-60 %, modelled classes.

    Generated in chunks of pixels straight into ``dtype`` arrays, so 1e6 pixels need only the
    5.8 GB of the float32 result.
    """
    rng = np.random.default_rng(seed)
    n_months = 480
    season = np.cos(2 * np.pi * (np.arange(n_months) % 12 - 6) / 12)[:, None]
    tmp, prec, pet = (np.empty((n_months, n_pixels), dtype) for _ in range(3))
    for i in range(0, n_pixels, 50_000):
        j = min(n_pixels, i + 50_000)
        k = j - i
        t = rng.uniform(-2, 26, k) + rng.uniform(1, 14, k) * season
        tmp[:, i:j] = t + rng.normal(0, 1, (n_months, k))
        prec[:, i:j] = rng.uniform(0, 150, (n_months, k))
        pet[:, i:j] = np.clip(20 + 4 * tmp[:, i:j], 0, None) * rng.uniform(0.8, 1.2, (n_months, k))
    return {
        "soc": rng.uniform(20, 90, n_pixels),
        "clay": rng.uniform(5, 60, n_pixels),
        "land_use": rng.choice(np.array([2, 3, 5, 12, 13], dtype=np.uint8), n_pixels),
        "tmp": tmp, "prec": prec, "pet": pet,
        "cover": rng.uniform(0, 1, (12, n_pixels)).astype(dtype),
    }


def bench_procedure(
    n_pixels: int, config: PhaseConfig = PhaseConfig(), repeat: int = 3
) -> dict[str, float]:
    """Time ``run_phases`` on ``n_pixels`` synthetic pixels; return figures (s, pixels/s, MiB).

    Wall and CPU seconds are both reported, each the best of ``repeat`` runs; on a shared machine
    the CPU time is the figure that does not depend on other processes. The peak memory comes
    from one more run under ``tracemalloc`` (not timed: tracing slows allocations).
    """
    run_phases(**synthetic_inputs(64), config=config)  # compile / load the numba cache
    inputs = synthetic_inputs(n_pixels)
    input_mib = sum(a.nbytes for a in inputs.values()) / 2**20
    seconds = cpu = float("inf")
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        res = run_phases(**inputs, config=config)
        seconds = min(seconds, time.perf_counter() - t0)
        cpu = min(cpu, time.process_time() - c0)  # CPU time: robust to other processes
    tracemalloc.start()
    run_phases(**inputs, config=config)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {
        "n_pixels": float(n_pixels),
        "seconds": seconds,
        "cpu_seconds": cpu,
        "pixels_per_cpu_s": n_pixels / cpu,
        "cpu_seconds_per_1e6": 1e6 * cpu / n_pixels,
        "modelled_share": float((res.reason == 0).mean()),
        "peak_mib_above_inputs": peak / 2**20,
        "input_mib": input_mib,
    }


def base_kernels(checkout: str) -> ModuleType:
    """Import ``gsocseq/model/_rothc_kernels.py`` of another checkout as module ``base_kernels``."""
    path = Path(checkout) / "gsocseq" / "model" / "_rothc_kernels.py"
    spec = importlib.util.spec_from_file_location("base_kernels", path)
    if spec is None or spec.loader is None or not path.is_file():
        raise SystemExit(f"--base {checkout}: no kernels at {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules["base_kernels"] = module  # numba's cache finds the module again by this name
    spec.loader.exec_module(module)
    return module


def compare_kernels(n_pixels: int, base: ModuleType, repeat: int = 5) -> dict[str, float]:
    """Time ``run_phases`` (with brackets) with ``base``'s kernels and this tree's, alternating.

    Returns each one's best CPU time as pixels per CPU-second, their ratio and whether the 29
    layers (float32) are bitwise equal.
    """
    inputs = synthetic_inputs(n_pixels)
    kernels = {"base": base, "this": rothc._k}
    best = dict.fromkeys(kernels, float("inf"))
    layers = {}
    try:
        for module in kernels.values():  # compile / load the cache of both first
            rothc._k = module
            run_phases(**synthetic_inputs(64))
        for _ in range(repeat):
            for name, module in kernels.items():
                rothc._k = module
                c0 = time.process_time()
                layers[name] = run_phases(**inputs).layers
                best[name] = min(best[name], time.process_time() - c0)
    finally:
        rothc._k = kernels["this"]
    same = all(np.array_equal(layers["base"][k].view(np.uint32), layers["this"][k].view(np.uint32))
               for k in layers["base"])
    return {"base_pixels_per_cpu_s": n_pixels / best["base"],
            "this_pixels_per_cpu_s": n_pixels / best["this"],
            "this_over_base": best["base"] / best["this"], "layers_bitwise_equal": float(same)}


#: Goal of issue 14 §2: the whole GSOCseq pixel (with brackets) per core and second.
GOAL_PIXELS_PER_CPU_S = 1e5


if __name__ == "__main__":
    args = sys.argv[1:]
    base = None
    if "--base" in args:
        k = args.index("--base")
        base = base_kernels(args[k + 1])
        del args[k : k + 2]
    sizes = [int(a) for a in args] or [10_000, 100_000]
    for n in sizes:
        if base is not None:
            r = compare_kernels(n, base)
            print(f"n={n} same run, kernels of --base vs this tree: "
                  + "  ".join(f"{k}={v:.4g}" for k, v in r.items()))
            continue
        runs = {}
        for unc in (True, False):
            r = bench_procedure(n, PhaseConfig(uncertainty=unc))
            runs[unc] = r
            print(f"uncertainty={unc!s:5} " + "  ".join(f"{k}={v:.4g}" for k, v in r.items()))
        with_brackets = runs[True]["pixels_per_cpu_s"]
        print(f"n={n}: whole pixel with brackets / goal {GOAL_PIXELS_PER_CPU_S:.0e} px/s = "
              f"{with_brackets / GOAL_PIXELS_PER_CPU_S:.3f}; cost of the brackets (same run) = "
              f"{runs[False]['pixels_per_cpu_s'] / with_brackets:.2f}x")
