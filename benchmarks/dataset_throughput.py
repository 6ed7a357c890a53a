"""OPF dataset throughput: samples per minute of ``make_dataset``.

Run: ``.venv/bin/python benchmarks/dataset_throughput.py [--cases case14_ieee,...]
[--samples 300,200,60] [--workers 1,2] [--region box:0.9,1.1] [--solver auto]``.

For every case and worker count it makes a fresh dataset in a temporary folder
and prints the end-to-end rate (wall time of the whole ``make_dataset`` call:
worker start-up, model build, nominal solve, file creation, all samples) and
the steady rate (samples / (wall - start-up), where start-up is the wall time
of the same call with one sample), and a CPU-bound rate: workers x samples per
CPU-minute spent on the samples (CPU of this process and the pool's workers,
less the one-sample call's), i.e. the rate with that many otherwise idle
cores.  The issue's aim is >= 300 samples/min on
case118_ieee with 2 workers on a 2-core machine.  The load average is printed
too: on a shared machine the figures drop with it.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

import _common


def _cpu() -> float:
    """CPU seconds of this process and its reaped children (the pool's workers)."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def _run(
    case: object, n: int, workers: int, region: str, solver: str, folder: Path
) -> tuple[float, float]:
    from gridverify.opf.dataset import DATASET_MAX_ITER, make_dataset
    from gridverify.opf.samplers import sampler_from_spec
    from gridverify.opf.solvers import SolverOptions

    out = folder / f"ds-{time.monotonic_ns()}.h5"
    t0, c0 = time.perf_counter(), _cpu()
    d = make_dataset(case, n, out, sampler_from_spec(region), seed=0, workers=workers,
                     options=SolverOptions(name=solver, max_iter=DATASET_MAX_ITER),
                     progress=False)
    wall, cpu = time.perf_counter() - t0, _cpu() - c0
    if not d.done.all():
        raise SystemExit(f"incomplete dataset {out}")
    counts = {k: v for k, v in d.status_counts().items() if v}
    print(f"    n={n:4d} wall {wall:7.2f} s  cpu {cpu:7.2f} s  statuses {counts}  "
          f"mean solve {d.solve_seconds.mean() * 1e3:.1f} ms")
    return wall, cpu


def main() -> int:
    """Parse flags, run every (case, workers) pair, print the rates."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default="case14_ieee,case118_ieee,case300_ieee")
    parser.add_argument("--samples", type=_common.number_list(), default="300,200,60",
                        help="samples per case (one number, or one per case)")
    parser.add_argument("--workers", type=_common.number_list(), default="1,2",
                        help="comma list of worker counts (each >= 1)")
    parser.add_argument("--region", default="box:0.9,1.1")
    parser.add_argument("--solver", default="auto")
    args = parser.parse_args()

    from gridverify.grid import load_compiled
    from gridverify.opf.samplers import sampler_from_spec

    names = [c.strip() for c in args.cases.split(",") if c.strip()]
    if not names:
        parser.error("--cases: no case given")
    samples = args.samples
    if len(samples) == 1:
        samples = samples * len(names)
    if len(samples) < len(names):
        parser.error(f"--samples: one number, or one per case ({len(names)}), "
                     f"got {len(samples)}")
    sampler_from_spec(args.region)  # a bad region: one line now, not after the first case
    # every case loaded first: an unknown one is reported before any run
    cases = [(name, load_compiled(name if name.startswith("pglib_opf_") else f"pglib_opf_{name}",
                                  emit_warnings=False)) for name in names]
    workers_list = args.workers
    print(f"cpus {os.cpu_count()}, load average {os.getloadavg()}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for (name, case), n in zip(cases, samples):
            print(f"{name}: warm-up (imports, first parse; not counted)")
            _run(case, 1, 1, args.region, args.solver, folder)
            for workers in workers_list:
                print(f"{name}, {workers} worker(s):")
                setup, setup_cpu = _run(case, 1, workers, args.region, args.solver, folder)
                wall, cpu = _run(case, n, workers, args.region, args.solver, folder)
                e2e = n / wall * 60
                steady = n / (wall - setup) * 60 if wall > setup else float("nan")
                # samples per minute if the run had `workers` otherwise idle cores
                idle = workers * n / max(cpu - setup_cpu, 1e-9) * 60
                rows.append((name, workers, n, e2e, steady, idle))
    print(f"\nload average after: {os.getloadavg()}")
    print(f"{'case':16s} {'workers':>7s} {'samples':>7s} {'end-to-end/min':>15s} "
          f"{'steady/min':>11s} {'cpu-bound/min':>14s}")
    for name, workers, n, e2e, steady, idle in rows:
        print(f"{name:16s} {workers:7d} {n:7d} {e2e:15.0f} {steady:11.0f} {idle:14.0f}")
    return 0


if __name__ == "__main__":
    _common.run(main)
