"""Wall time of the input stage of ``make demo`` (demo world, tile size 240, 2 worker processes).

Writes the demo world once (or reuses ``--world``), then builds the input cube from scratch
``--repeats`` times on a fresh ``LocalCluster`` of processes (one thread each, as ``gsocseq run``
starts), timing ``prepare_inputs`` alone (the ``inputs`` stage of the run summary): its wall time and
the CPU-seconds of the workers (all threads, ``getrusage``) and of this process (client and
scheduler) — on a shared machine the CPU-seconds carry the comparison. Run it with
``PYTHONPATH=<other checkout>`` to time another version of the code on the same world in the same
session: the ratio of the two is the figure to quote (the machine is shared).

    python benchmarks/bench_inputs.py [--world DIR] [--tile-size 240] [--workers 2] [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path


def _cpu_s() -> float:
    """CPU-seconds (user + system, all threads) of this process so far."""
    import resource

    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def main() -> None:
    """Time the input stage and print a JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world", default=None, help="demo world folder (written if missing)")
    parser.add_argument("--tile-size", type=int, default=240)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--keep", default=None, help="leave the last run's output here")
    args = parser.parse_args()

    from distributed import Client, LocalCluster

    import gsocseq
    from gsocseq.config import RunConfig
    from gsocseq.demo import write_demo_world
    from gsocseq.pipeline import plan_run, prepare_inputs

    tmp = Path(tempfile.mkdtemp(prefix="bench-inputs-"))
    world = Path(args.world) if args.world else tmp / "world"
    if not (world / "sources.toml").exists():
        write_demo_world(f"file://{world}", {}, tile_size=args.tile_size)
    times, cpus = [], []
    try:
        for k in range(args.repeats):
            out = Path(args.keep) if args.keep and k == args.repeats - 1 else tmp / f"out{k}"
            shutil.rmtree(out, ignore_errors=True)
            config = RunConfig(region="demo", out=f"file://{out}",
                               sources=f"file://{world}/sources.toml", tile_size=args.tile_size)
            plan = plan_run(config)
            with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                              dashboard_address=None) as cluster, Client(cluster) as client:
                before, own = client.run(_cpu_s), _cpu_s()
                t = time.perf_counter()
                prepare_inputs(config, plan, client)
                times.append(round(time.perf_counter() - t, 3))
                after = client.run(_cpu_s)
                cpus.append(round(sum(after[w] - before[w] for w in after) + _cpu_s() - own, 3))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps({"code": str(Path(gsocseq.__file__).parent), "input_stage_s": times,
                      "best_s": min(times), "cpu_s": cpus, "best_cpu_s": min(cpus),
                      "load_avg": os.getloadavg()}))


if __name__ == "__main__":
    main()
