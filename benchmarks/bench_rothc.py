"""Throughput of the RothC-26.3 kernels (pixel-months per second) and of the pure-Python reference.

Run: ``.venv/bin/python benchmarks/bench_rothc.py [n_pixels] [n_years]`` (default 16384 pixels,
20 years). Prints one line per benchmark: pixel-months/s on 1 thread and on all threads, the
reference on a small sample, the ratio, the closed-form equilibrium and the affine forward path,
peak memory. Whole-procedure figures: decorate a function ``fn(n_pixels) -> dict[str, float]``
with :func:`register` (e.g. from ``bench_phases.py``) and it is run and printed after these.
"""

from __future__ import annotations

import resource
import sys
import time
import tracemalloc
from collections.abc import Callable

import numba
import numpy as np

from gsocseq.model import reference, rothc

EXTRA: list[Callable[[int], dict[str, float]]] = []


def register(fn: Callable[[int], dict[str, float]]) -> Callable[[int], dict[str, float]]:
    """Add a whole-procedure benchmark ``fn(n_pixels) -> {name: value}`` to this script's run."""
    EXTRA.append(fn)
    return fn


def synthetic(n_pixels: int, n_months: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, dict]:
    """Return start pools, deficit and seasonal monthly inputs (smooth, like real climate)."""
    rng = np.random.default_rng(seed)
    month = np.arange(n_months) % 12
    season = np.cos(2 * np.pi * (month - 6) / 12)[:, None]
    tmp = rng.uniform(-2, 26, n_pixels) + rng.uniform(1, 14, n_pixels) * season
    tmp = tmp + rng.normal(0, 1, (n_months, n_pixels))
    rain = rng.uniform(0, 150, (n_months, n_pixels))
    evap = np.clip(20 + 4 * tmp, 0, None)
    cover = np.repeat((month[:, None] % 12 >= 3) & (month[:, None] % 12 <= 9), n_pixels, 1)
    inputs = {
        "tmp": tmp, "rain": rain, "evap": evap, "cover": cover.astype(float),
        "c_inp": np.full((n_months, n_pixels), 0.25), "fym": np.zeros((n_months, n_pixels)),
        "dpm_rpm": np.full(n_pixels, 1.44), "clay": rng.uniform(5, 60, n_pixels),
        "depth": np.full(n_pixels, 30.0), "evap_factor": 1.0,
    }
    pools = np.zeros((n_pixels, 5))
    pools[:, 1:4] = rng.uniform(1, 30, (n_pixels, 3))
    pools[:, 4] = 3.0
    return pools, np.zeros(n_pixels), inputs


def best_of(fn: Callable[[], object], repeat: int = 3, clock=time.perf_counter) -> float:
    """Return the shortest time (s, wall clock by default) of ``repeat`` calls."""
    times = []
    for _ in range(repeat):
        t = clock()
        fn()
        times.append(clock() - t)
    return min(times)


def bench_simulate(n: int, n_months: int) -> dict[str, float]:
    """Pixel-months/s of :func:`rothc.simulate`, serial and parallel, and its peak memory."""
    pools, smd, inp = synthetic(n, n_months)
    rothc.simulate(pools[:8], smd[:8], **{k: v[..., :8] if np.ndim(v) else v
                                          for k, v in inp.items()})  # compile / load cache
    rothc.simulate(pools[:8], smd[:8], parallel=True,
                   **{k: v[..., :8] if np.ndim(v) else v for k, v in inp.items()})
    out = {}
    for label, kw in (("validated", {}), ("validate=False", {"validate": False})):
        dt = best_of(lambda kw=kw: rothc.simulate(pools, smd, **inp, **kw))
        out[f"simulate 1 thread, {label} [pixel-months/s]"] = n * n_months / dt
    # CPU time of the serial kernel: robust when other processes share the cores
    for label, kw in (("validated", {}), ("validate=False", {"validate": False})):
        dt = best_of(lambda kw=kw: rothc.simulate(pools, smd, **inp, **kw),
                     clock=time.process_time)
        out[f"simulate 1 thread, {label}, CPU time [pixel-months/s]"] = n * n_months / dt
    threads = numba.config.NUMBA_NUM_THREADS
    numba.set_num_threads(threads)
    dt = best_of(lambda: rothc.simulate(pools, smd, **inp, parallel=True, validate=False))
    out[f"simulate {threads} threads, validate=False [pixel-months/s]"] = n * n_months / dt
    tracemalloc.start()
    rothc.simulate(pools, smd, **inp)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    inputs_bytes = sum(v.nbytes for v in inp.values() if isinstance(v, np.ndarray))
    out["simulate peak extra memory (tracemalloc) [MB]"] = peak / 1e6
    out["simulate inputs [MB]"] = inputs_bytes / 1e6
    return out


def bench_reference(n: int, n_months: int) -> dict[str, float]:
    """Pixel-months/s of the pure-Python reference on a small sample."""
    pools, smd, inp = synthetic(n, n_months, seed=1)
    names = ("tmp", "rain", "evap", "cover", "c_inp", "fym")

    def run() -> None:
        for i in range(n):
            months = [reference.Month(*(float(inp[k][m, i]) for k in names),
                                      float(inp["dpm_rpm"][i])) for m in range(n_months)]
            reference.run(reference.State(*pools[i], smd=smd[i]), months, inp["clay"][i],
                          inp["depth"][i], inp["evap_factor"])

    return {"reference (pure Python) [pixel-months/s]": n * n_months / best_of(run, 1)}


def bench_year_paths(n: int) -> dict[str, float]:
    """Closed-form equilibrium and the affine forward path (20 years, 4 inputs)."""
    _, _, inp = synthetic(n, 12, seed=2)
    inp.pop("c_inp")
    rothc.equilibrium_parts(**{k: v[..., :8] if np.ndim(v) else v for k, v in inp.items()})
    dt = best_of(lambda: rothc.equilibrium_parts(**inp))
    out = {"equilibrium_parts (closed form) [pixels/s]": n / dt}
    start = np.zeros((n, 5))
    start[:, 4] = 3.0
    cin = np.outer([1.0, 1.05, 1.1, 1.2], np.full(n, 3.0))  # BAU and three SSM inputs
    rothc.repeat_year(start[:8], np.zeros(8), cin=cin[:, :8], n_years=1,
                      **{k: v[..., :8] if np.ndim(v) else v for k, v in inp.items()})
    dt = best_of(lambda: rothc.repeat_year(start, np.zeros(n), cin=cin, n_years=20, **inp,
                                           validate=False))
    out["repeat_year, 4 inputs x 20 years [equivalent pixel-months/s]"] = 4 * 240 * n / dt
    return out


def main(argv: list[str]) -> None:
    """Run every benchmark and print the figures."""
    n = int(argv[1]) if len(argv) > 1 else 16384
    years = int(argv[2]) if len(argv) > 2 else 20
    figures: dict[str, float] = {}
    figures.update(bench_simulate(n, 12 * years))
    figures.update(bench_reference(64, 24))
    one = figures["simulate 1 thread, validate=False, CPU time [pixel-months/s]"]
    figures["speed-up numba 1 thread / pure Python"] = (
        one / figures["reference (pure Python) [pixel-months/s]"]
    )
    figures.update(bench_year_paths(n))
    for fn in EXTRA:
        figures.update(fn(n))
    figures["peak RSS of the process [MB]"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3
    print(f"n_pixels={n}, months={12 * years}, numba threads={numba.config.NUMBA_NUM_THREADS}")
    for name, value in figures.items():
        print(f"{name:<72s} {value:14.4g}")


if __name__ == "__main__":
    main(sys.argv)
