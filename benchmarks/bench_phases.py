"""Benchmark of the whole GSOCseq procedure (exact scheme) on one core.

Spin-up + 20-year warm-up + 4 forward scenarios + the min/max bracket runs, on synthetic pixels.
Run: ``NUMBA_NUM_THREADS=1 .venv/bin/python benchmarks/bench_phases.py [n_pixels ...]``
``[--base DIR [--repeat 5]]``.
``--base DIR`` (a checkout, e.g. ``git worktree add /tmp/base HEAD~3``) also times the procedure
with DIR's whole ``gsocseq`` package (imported beside this tree's under the same names, see
:func:`base_procedure`) in the same process, alternating with this tree's: a before/after ratio on
a shared machine. It also prints, per layer group, the largest difference of the 29 layers in
float64 (before their float32 cast) and of the float64 diagnostics: relative where
``|value| ≥ 1``, absolute (t C/ha, t C/ha/yr or %) below, and how many float32 layer values differ.
"""

from __future__ import annotations

import importlib
import os
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

os.environ.setdefault("NUMBA_NUM_THREADS", "1")

import numpy as np  # noqa: E402

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


def base_procedure(checkout: str, name: str = "gsocseq.model.phases") -> ModuleType:
    """Return module ``name`` (default the procedure's) of another checkout, imported here.

    This tree's ``gsocseq`` modules are set aside while DIR's are imported under the same names
    (so numba's cache and every absolute import inside them resolve to DIR's files), then put
    back: both live side by side, each with its own kernels and NumPy code.
    """
    root = Path(checkout).resolve()
    if not (root / Path(*name.split(".")).with_suffix(".py")).is_file():
        raise SystemExit(f"--base {checkout}: no {name} there")
    ours = {k: sys.modules.pop(k) for k in list(sys.modules) if k.split(".")[0] == "gsocseq"}
    sys.path.insert(0, str(root))
    try:
        module = importlib.import_module(name)
    finally:
        sys.path.remove(str(root))
        for k in [k for k in sys.modules if k.split(".")[0] == "gsocseq"]:
            del sys.modules[k]
        sys.modules.update(ours)
    return module


def caught(module: ModuleType, name: str, run: Callable[[], object]) -> tuple[object, list]:
    """Return ``run()`` and what every call of ``module.<name>`` returned during it, in order."""
    outputs: list = []
    original = getattr(module, name)

    def catch(*args, **kwargs):
        out = original(*args, **kwargs)
        outputs.append(out)
        return out

    setattr(module, name, catch)
    try:
        return run(), outputs
    finally:
        setattr(module, name, original)


def _float64_layers(module: ModuleType, inputs: dict[str, np.ndarray]) -> tuple[object, dict]:
    """Run ``module.run_phases`` and also return its 29 layers in float64 (before the cast).

    The layers of each block are caught where the procedure derives them (``product_layers``)
    and put back at the pixels that passed the input checks, in block order (NaN where the
    procedure masks a pixel).
    """
    res, blocks = caught(module, "product_layers", lambda: module.run_phases(**inputs))
    todo = np.flatnonzero(module.classify_pixels(
        **{k: inputs[k] for k in ("soc", "clay", "land_use", "tmp", "prec", "pet", "cover")}) == 0)
    layers = {}
    for name in res.layers:
        full = np.full(res.reason.shape, np.nan)
        if blocks:
            full[todo] = np.concatenate([b[name] for b in blocks])
        full[res.reason != 0] = np.nan  # as the procedure masks them
        layers[name] = full
    return res, layers


def max_difference(a: np.ndarray, b: np.ndarray) -> float:
    """Return the largest ``|a - b| / max(1, |a|, |b|)``: relative above 1, absolute below.

    NaN where only one of them is NaN counts as ``inf``; NaN in both is no difference.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    nan_a, nan_b = np.isnan(a), np.isnan(b)
    if (nan_a != nan_b).any():
        return float("inf")
    both = ~nan_a
    if not both.any():
        return 0.0
    x, y = a[both], b[both]
    return float(np.max(np.abs(x - y) / np.maximum(1.0, np.maximum(np.abs(x), np.abs(y)))))


#: Layer groups of the difference report: name prefix → group.
LAYER_GROUPS = {"T0": "T0", "finalSOC": "finalSOC", "AbsDiff": "AbsDiff", "ASR": "ASR",
                "RelDiff": "RelDiff", "RSR": "RSR"}


def _group(layer: str) -> str:
    return "Uncertainty" if layer.endswith("_Uncertainty") else LAYER_GROUPS[layer.split("_")[0]]


def compare_procedures(n_pixels: int, base: ModuleType, repeat: int = 5) -> dict[str, float]:
    """Time ``run_phases`` (with brackets) of ``base`` and of this tree, alternating.

    Returns each one's best CPU time as pixels per CPU-second and their ratio; then, per layer
    group, the largest :func:`max_difference` of the float64 layers (``diff_<group>``), of the
    float64 diagnostics (``diff_diagnostics``), the number of float32 layer values that differ
    (``float32_values_differing``) and whether the reason codes are equal.
    """
    inputs = synthetic_inputs(n_pixels)
    procedures = {"base": base, "this": sys.modules["gsocseq.model.phases"]}
    best = dict.fromkeys(procedures, float("inf"))
    for module in procedures.values():  # compile / load the cache of both first
        module.run_phases(**synthetic_inputs(64))
    for _ in range(repeat):
        for name, module in procedures.items():
            c0 = time.process_time()
            module.run_phases(**inputs)
            best[name] = min(best[name], time.process_time() - c0)
    (res_b, f64_b), (res_t, f64_t) = (_float64_layers(m, inputs) for m in procedures.values())
    out = {"base_pixels_per_cpu_s": n_pixels / best["base"],
           "this_pixels_per_cpu_s": n_pixels / best["this"],
           "this_over_base": best["base"] / best["this"]}
    for name in f64_b:
        key = f"diff_{_group(name)}"
        out[key] = max(out.get(key, 0.0), max_difference(f64_b[name], f64_t[name]))
    out["diff_diagnostics"] = max(max_difference(res_b.diagnostics[k], res_t.diagnostics[k])
                                  for k in res_b.diagnostics)
    out["float32_values_differing"] = float(sum(
        np.count_nonzero(res_b.layers[k].view(np.uint32) != res_t.layers[k].view(np.uint32))
        for k in res_b.layers))
    out["reasons_equal"] = float(np.array_equal(res_b.reason, res_t.reason))
    return out


#: Goal of issue 14 §2: the whole GSOCseq pixel (with brackets) per core and second.
GOAL_PIXELS_PER_CPU_S = 1e5


if __name__ == "__main__":
    args = sys.argv[1:]
    base = None
    repeat = 5
    if "--base" in args:
        k = args.index("--base")
        base = base_procedure(args[k + 1])
        del args[k : k + 2]
    if "--repeat" in args:  # alternating runs of each with --base (best of them is kept)
        k = args.index("--repeat")
        repeat = int(args[k + 1])
        del args[k : k + 2]
    sizes = [int(a) for a in args] or [10_000, 100_000]
    for n in sizes:
        if base is not None:
            r = compare_procedures(n, base, repeat)
            print(f"n={n} same run, --base vs this tree: "
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
