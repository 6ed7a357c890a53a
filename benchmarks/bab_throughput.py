"""Branch-and-bound throughput (domains bounded per second) on the case57 proxy, CPU vs GPU.

Usage: ``python benchmarks/bab_throughput.py [--devices cpu,cuda] [--seconds 30]
[--batch 64] [--gpu-batch 2048] [--family p_balance] [--case case57] [--json FILE]``.
CUDA is skipped when unavailable.  The search runs in optimization mode with the tolerance at 0 (so
it never stops early) and no in-search attack; domains/s counts the domains
bounded after the root, over the time after the root.
"""

from __future__ import annotations

import argparse
import time

import _common
import torch
from bab_ablation import CASES

from gridverify.bab import BabOptions, bab_maximize
from gridverify.bab.options import BRANCHINGS


def build(family: str, case: str = "case57"):
    """The instance of ``family`` on ``case`` (see ``bab_ablation.instance``)."""
    from bab_ablation import instance

    return instance(case, family)


def measure(device: str, seconds: float, batch: int, family: str, branching: str,
            clock: str = "wall", case: str = "case57") -> dict:
    g, lo, hi, spec = build(family, case)
    opts = BabOptions(timeout=seconds, batch=batch, device=device, tolerance=0.0,
                      attack_every=0, branching=branching, memory_mb=4096,
                      root_alpha_iterations=0, attack_steps=2, clock=clock)
    t0 = time.perf_counter()
    r = bab_maximize(g, lo, hi, spec, options=opts, mode="optimization")
    t_root = r.history[0][0]
    dt = max(r.history[-1][0] - t_root, 1e-9)
    return {"device": device, "case": case, "branching": r.branching, "batch": batch,
            "family": family,
            "visited": r.domains_visited, "seconds": time.perf_counter() - t0,
            "domains_per_s": (r.domains_visited - 1) / dt, "bound": r.upper_bound,
            "attained": r.attained}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--devices", type=_common.devices, default="cpu,cuda",
                    help="comma list of cpu, cuda, cuda:N")
    ap.add_argument("--seconds", type=_common.positive_float, default=30.0)
    ap.add_argument("--batch", type=_common.count(1), default=64,
                    help="domains popped per round (CPU)")
    ap.add_argument("--gpu-batch", type=_common.count(1), default=2048,
                    help="domains popped per round (GPU)")
    ap.add_argument("--family", type=_common.family, default="p_balance")
    ap.add_argument("--case", default="case57", choices=CASES,
                    help="a bab_ablation case key (case57s: the verification-friendly proxy)")
    ap.add_argument("--branching", default="auto", choices=BRANCHINGS)
    ap.add_argument("--clock", default="wall", choices=("wall", "cpu"),
                    help="what --seconds measures (cpu: process CPU time, for loaded machines)")
    ap.add_argument("--threads", type=_common.count(1), default=1,
                    help="torch CPU threads (default 1)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    _common.check_outputs(json=args.json)
    torch.set_num_threads(args.threads)
    rows = []
    for dev in args.devices:
        if _common.cuda_missing(dev):
            continue
        batch = args.gpu_batch if dev.startswith("cuda") else args.batch
        row = measure(dev, args.seconds, batch, args.family, args.branching, args.clock,
                      args.case)
        rows.append(row)
        print(f"{dev:6s} {row['branching']:6s} batch {row['batch']}: {row['visited']} domains, "
              f"{row['domains_per_s']:.1f} domains/s, bound {row['bound']:.5g}, "
              f"attained {row['attained']:.5g}", flush=True)
    if len(rows) == 2 and rows[0]["domains_per_s"] > 0:
        ratio = rows[1]["domains_per_s"] / rows[0]["domains_per_s"]
        print(f"GPU/CPU domains/s ratio: {ratio:.1f}x")
    if args.json:
        _common.write_json(args.json, rows)
    return 0


if __name__ == "__main__":
    _common.run(main)
