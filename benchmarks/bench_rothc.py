"""Throughput of the RothC-26.3 kernels (pixel-months per second) and of the pure-Python reference.

Run: ``.venv/bin/python benchmarks/bench_rothc.py [n_pixels] [n_years] [--base DIR]`` (default
16384 pixels, 20 years). ``--base DIR`` (another checkout) also times DIR's ``site`` + checked
``simulate`` in the same process, alternating with this tree's, and prints the same-run ratio.
Prints one line per figure: ``simulate`` with its fused checks and without, and their
ratio (the cost of the checks, same run, same arrays); every case of the kernel table
(``reference.KERNELS``) against its reference;
peak memory. Whole-procedure figures: decorate ``fn(n_pixels) -> dict[str, float]``
with :func:`register` (e.g. from ``bench_phases.py``) and it is run and printed after these.
"""

from __future__ import annotations

import resource
import sys
import time
import tracemalloc
from collections.abc import Callable
from types import ModuleType

import numpy as np

from gsocseq.model import reference, rothc

EXTRA: list[Callable[[int], dict[str, float]]] = []


def register(fn: Callable[[int], dict[str, float]]) -> Callable[[int], dict[str, float]]:
    """Add a whole-procedure benchmark ``fn(n_pixels) -> {name: value}`` to this script's run."""
    EXTRA.append(fn)
    return fn


def synthetic(n_pixels: int, n_months: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, dict]:
    """Return start pools, deficit and seasonal monthly inputs (smooth, like real climate)."""
    c = reference.synthetic_case(n_pixels, n_months, seed)
    return c.pop("pools"), c.pop("smd"), c


SITE_KEYS = ("tmp", "prec", "pet", "cover", "dpm_rpm", "clay", "depth", "rate_modifier",
             "evap_factor")


def best_of(fn: Callable[[], object], repeat: int = 3, clock=time.perf_counter) -> float:
    """Return the shortest time (s, wall clock by default) of ``repeat`` calls."""
    times = []
    for _ in range(repeat):
        t = clock()
        fn()
        times.append(clock() - t)
    return min(times)


def bench_simulate(n: int, n_months: int) -> dict[str, float]:
    """Pixel-months/s of the public ``site`` + ``simulate`` with and without checks, peak memory.

    The checked call validates every input value in one fused pass; the ratio of the two is the
    cost of the checks (1.0 = free), measured in the same run on the same arrays.
    """
    pools, smd, inp = synthetic(n, n_months)
    site_kw = {k: inp[k] for k in SITE_KEYS}

    def checked() -> object:
        s = rothc.site(**site_kw)
        return rothc.simulate(pools, smd, s, c_inp=inp["c_inp"], fym=inp["fym"])

    def unchecked() -> object:
        s = rothc.site(**site_kw, validate=False)
        return rothc.simulate(pools, smd, s, c_inp=inp["c_inp"], fym=inp["fym"], validate=False)

    small = {k: v[..., :8] if np.ndim(v) else v for k, v in site_kw.items()}
    rothc.simulate(pools[:8], smd[:8], rothc.site(**small), c_inp=inp["c_inp"][:, :8])  # compile
    out = {}
    for clock, label in ((time.perf_counter, "wall"), (time.process_time, "CPU time")):
        t_checked = best_of(checked, clock=clock)
        t_unchecked = best_of(unchecked, clock=clock)
        out[f"simulate with checks, {label} [pixel-months/s]"] = n * n_months / t_checked
        out[f"simulate validate=False, {label} [pixel-months/s]"] = n * n_months / t_unchecked
        out[f"ratio checked / unchecked throughput, {label}"] = t_unchecked / t_checked
    tracemalloc.start()
    checked()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    inputs_bytes = sum(v.nbytes for v in inp.values() if isinstance(v, np.ndarray))
    out["simulate peak extra memory (tracemalloc) [MB]"] = peak / 1e6
    out["simulate inputs [MB]"] = inputs_bytes / 1e6
    return out


def bench_kernel_table(n: int) -> dict[str, float]:
    """Throughput of every case of ``reference.KERNELS`` and its ratio to the reference.

    The kernel runs on ``n`` pixels, the (slow) reference on a few; both in pixel-months/s.
    """
    out = {}
    for case in reference.KERNELS:
        n_ref = 4 if "simulate" in case.name else 64
        big = reference.synthetic_case(n, case.months, seed=5)
        small = reference.synthetic_case(n_ref, case.months, seed=5)
        case.kernel(small)  # compile
        fast = case.work(big) / best_of(lambda c=big, k=case.kernel: k(c), clock=time.process_time)
        slow = case.work(small) / best_of(lambda c=small, r=case.reference: r(c), repeat=1,
                                          clock=time.process_time)
        out[f"{case.name}: kernel [pixel-months/s]"] = fast
        out[f"{case.name}: reference [pixel-months/s]"] = slow
        out[f"{case.name}: kernel / reference"] = fast / slow
    return out


def compare_simulate(n: int, n_months: int, base: ModuleType, repeat: int = 7) -> dict[str, float]:
    """Best CPU time of ``site`` + checked ``simulate`` of ``base`` (a ``rothc`` module) and of
    this tree's, alternating on the same arrays; pixel-months/s of each and their ratio."""
    pools, smd, inp = synthetic(n, n_months)
    site_kw = {k: inp[k] for k in SITE_KEYS}
    best = {"base": float("inf"), "this": float("inf")}
    for _ in range(repeat):
        for name, module in (("base", base), ("this", rothc)):
            best[name] = min(best[name], best_of(
                lambda m=module: m.simulate(pools, smd, m.site(**site_kw), c_inp=inp["c_inp"],
                                            fym=inp["fym"]), repeat=1, clock=time.process_time))
    return {"base simulate with checks, CPU [pixel-months/s]": n * n_months / best["base"],
            "this simulate with checks, CPU [pixel-months/s]": n * n_months / best["this"],
            "this / base (same run)": best["base"] / best["this"]}


def main(argv: list[str]) -> None:
    """Run every benchmark and print the figures."""
    if "--base" in argv:
        from bench_phases import base_procedure

        k = argv.index("--base")
        base = base_procedure(argv[k + 1], "gsocseq.model.rothc")
        argv = argv[:k] + argv[k + 2:]
        n = int(argv[1]) if len(argv) > 1 else 16384
        years = int(argv[2]) if len(argv) > 2 else 20
        for name, value in compare_simulate(n, 12 * years, base).items():
            print(f"{name:<72s} {value:14.4g}")
        return
    n = int(argv[1]) if len(argv) > 1 else 16384
    years = int(argv[2]) if len(argv) > 2 else 20
    figures: dict[str, float] = {}
    figures.update(bench_simulate(n, 12 * years))
    figures.update(bench_kernel_table(min(n, 4096)))
    for fn in EXTRA:
        figures.update(fn(n))
    figures["peak RSS of the process [MB]"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3
    print(f"n_pixels={n}, months={12 * years}, one thread")
    for name, value in figures.items():
        print(f"{name:<72s} {value:14.4g}")


if __name__ == "__main__":
    main(sys.argv)
