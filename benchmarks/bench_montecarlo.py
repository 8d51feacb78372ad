"""Benchmark of the Monte Carlo uncertainty against the central run, on one core.

Central run: ``run_phases`` with FAO's brackets (the default run). Monte Carlo run: the same plus
``montecarlo_layers`` with N draws (what a tile task does with ``uncertainty = "montecarlo"``).
Prints pixels per CPU second of both, the cost ratio (Monte Carlo run / central run; issue 15 §4
goal: < 20 for N = 100) and the peak traced memory of each. CPU time, best of ``--repeat``: robust
to other processes on a shared machine.
Run: ``NUMBA_NUM_THREADS=1 .venv/bin/python benchmarks/bench_montecarlo.py [--pixels 2000]
[--draws 100] [--repeat 3] [--baseline-rev REV] [--rates-out gsocseq/pipeline/rates.json]``;
``--baseline-rev`` also times ``montecarlo.py`` of git revision REV (imported from a temporary
copy) in the same process, for a before/after ratio; ``--base DIR`` (another checkout) runs DIR's
whole ``gsocseq`` Monte Carlo beside this tree's and prints the largest float64 difference of
the draws' stocks (relative above 1, absolute below: ``bench_phases.max_difference``) and how
many float32 layer values differ; ``--rates-out`` sets the ``montecarlo_core_s_per_pixel_draw``
rate of ``gsocseq plan`` in that file (other keys kept).
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("NUMBA_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).parent))

import numpy as np  # noqa: E402
from bench_phases import base_procedure, caught, max_difference, synthetic_inputs  # noqa: E402

from gsocseq.model.montecarlo import montecarlo_layers  # noqa: E402
from gsocseq.model.phases import PhaseConfig, run_phases  # noqa: E402

GOAL_RATIO = 20.0


def _measure(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    """Return (best CPU seconds of ``repeat`` calls, peak traced MiB of one call)."""
    best = float("inf")
    for _ in range(repeat):
        c0 = time.process_time()
        fn()
        best = min(best, time.process_time() - c0)
    tracemalloc.start()
    fn()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return best, peak / 2**20


def _baseline(rev: str) -> Callable[..., dict[str, np.ndarray]]:
    """Return ``montecarlo_layers`` of ``gsocseq/model/montecarlo.py`` at git revision ``rev``."""
    root = Path(__file__).resolve().parent.parent
    src = subprocess.run(["git", "show", f"{rev}:gsocseq/model/montecarlo.py"], cwd=root,
                         check=True, capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp()) / "montecarlo_baseline.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location("montecarlo_baseline", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.montecarlo_layers


def compare_draws(checkout: str, **kwargs) -> None:
    """Print the largest difference of the draws and the float32 layers differing from DIR's."""
    base = base_procedure(checkout, "gsocseq.model.montecarlo")
    this = sys.modules["gsocseq.model.montecarlo"]
    (lb, db), (lt, dt_) = (
        caught(m, "run_draws", lambda m=m: m.montecarlo_layers(**kwargs)) for m in (base, this))
    db, dt_ = ({k: np.concatenate([c[k] for c in d]) for k in d[0]} for d in (db, dt_))
    diffs = "  ".join(f"{k}={max_difference(db[k], dt_[k]):.3g}" for k in db)
    differing = sum(int(np.count_nonzero(lb[k].view(np.uint32) != lt[k].view(np.uint32)))
                    for k in lb)
    print(f"--base {checkout}: max difference of the draws {diffs}; float32 layer values "
          f"differing {differing} of {sum(v.size for v in lb.values())}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pixels", type=int, default=2000)
    ap.add_argument("--draws", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--baseline-rev", default=None,
                    help="git revision whose montecarlo.py to time too (before/after ratio)")
    ap.add_argument("--base", default=None,
                    help="another checkout: print the largest difference of its draws")
    ap.add_argument("--rates-out", default=None,
                    help="rates JSON whose Monte Carlo rate to set (gsocseq/pipeline/rates.json)")
    args = ap.parse_args()
    n = args.pixels
    warm = synthetic_inputs(8)
    rc = np.arange(8)
    run_phases(**warm)
    montecarlo_layers(**warm, rows=rc, cols=rc, draws=2, seed=0)  # compile / load numba caches
    inputs = synthetic_inputs(n)
    rows, cols = np.arange(n) // 240, np.arange(n) % 240
    config = PhaseConfig()
    central_s, central_mib = _measure(lambda: run_phases(**inputs, config=config), args.repeat)
    mc_s, mc_mib = _measure(lambda: montecarlo_layers(
        **inputs, rows=rows, cols=cols, draws=args.draws, seed=1, config=config), args.repeat)
    total = central_s + mc_s
    if args.base:
        compare_draws(args.base, **inputs, rows=rows, cols=cols, draws=args.draws, seed=1,
                      config=config)
    if args.baseline_rev:
        old = _baseline(args.baseline_rev)
        old(**warm, rows=rc, cols=rc, draws=2, seed=0)
        old_s, _ = _measure(lambda: old(**inputs, rows=rows, cols=cols, draws=args.draws, seed=1,
                                        config=config), args.repeat)
        print(f"baseline {args.baseline_rev}: draws only {old_s:8.3f} s; ratio montecarlo run / "
              f"central run = {(central_s + old_s) / central_s:.2f}; draws old / new = "
              f"{old_s / mc_s:.2f}")
    print(f"pixels={n} draws={args.draws} repeat={args.repeat} (CPU s, best of repeat)")
    print(f"central (brackets)      {central_s:8.3f} s  {n / central_s:10.0f} px/cpu-s  "
          f"peak {central_mib:7.1f} MiB")
    print(f"montecarlo draws only   {mc_s:8.3f} s  {n / mc_s:10.0f} px/cpu-s  "
          f"peak {mc_mib:7.1f} MiB  ({n * args.draws / mc_s:.0f} pixel-draws/cpu-s)")
    print(f"montecarlo run (central + draws) {n / total:10.0f} px/cpu-s")
    print(f"ratio montecarlo run / central run = {total / central_s:.2f} (goal < {GOAL_RATIO:g}); "
          f"one draw / one central pixel = {mc_s / args.draws / central_s:.3f}")
    if args.rates_out:
        path = Path(args.rates_out)
        doc = json.loads(path.read_text()) if path.exists() else {}
        doc["montecarlo_core_s_per_pixel_draw"] = mc_s / (n * args.draws)
        doc["montecarlo_measured"] = (
            f"benchmarks/bench_montecarlo.py {dt.date.today()}: {n} pixels x {args.draws} draws, "
            f"best of {args.repeat}, one core of a {os.cpu_count()}-core machine "
            f"(load {os.getloadavg()[0]:.1f})")
        path.write_text(json.dumps(doc, indent=2) + "\n")
        print(f"wrote montecarlo_core_s_per_pixel_draw to {path}")


if __name__ == "__main__":
    main()
