"""Cost of the least-area slope search (the default lines of sin, cos and S-shaped ops).

Times :func:`gridverify.bounds.relaxations.smooth.area_slope` (upper and lower
lines) on intervals that straddle an inflection point, with the grid the
engine picks for the tensor's size and device against plain bisection
(``grid=2``, the baseline) in the same process, and prints the ratio.

    .venv/bin/python benchmarks/slope_search.py
    .venv/bin/python benchmarks/slope_search.py --sizes 64,4096 --device cuda --json out.json

``--device cuda`` on a machine without CUDA prints ``cuda: skipped (no CUDA)`` and
exits 0 (no JSON is written).
"""

from __future__ import annotations

import argparse
import time

import _common
import torch

from gridverify.bounds.relaxations import smooth, sshaped, trig

OPS = {"sin": trig.SIN_OP, "cos": trig.COS_OP, "sigmoid": sshaped.SIGMOID_OP,
       "tanh": sshaped.TANH_OP}
# a point where each op changes curvature
INFLECTION = {"sin": 0.0, "cos": 1.5707963267948966, "sigmoid": 0.0, "tanh": 0.0}


def _seconds(fn, repeats: int, device: torch.device) -> float:
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(repeats):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - t) / repeats


def measure(name: str, n: int, device: torch.device, repeats: int) -> dict:
    """Seconds per call (upper and lower slope) with plain bisection and with the engine's grid."""
    op = OPS[name]
    g = torch.Generator().manual_seed(0)
    c = INFLECTION[name] + (torch.rand(n, generator=g, dtype=torch.float64) - 0.5)
    w = 0.5 + 2.0 * torch.rand(n, generator=g, dtype=torch.float64)
    l, u = (c - w).to(device), (c + w).to(device)

    def run(grid: int | None) -> None:
        smooth.area_slope(op, l, u, True, grid=grid)
        smooth.area_slope(op, l, u, False, grid=grid)

    base = _seconds(lambda: run(2), repeats, device)
    new = _seconds(lambda: run(None), repeats, device)
    return {"op": name, "n": n, "device": str(device),
            "grid": smooth._slope_search_grid(n, device),
            "bisection_ms": 1e3 * base, "search_ms": 1e3 * new, "speedup": base / new}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=_common.number_list(), default="64,512,2048,8192")
    ap.add_argument("--ops", type=_common.keys(OPS, "op"), default=",".join(OPS))
    ap.add_argument("--device", type=_common.device, default="cpu")
    ap.add_argument("--repeats", type=_common.count(1), default=10)
    ap.add_argument("--threads", type=_common.count(1), default=1,
                    help="torch CPU threads (default 1)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    _common.check_outputs(json=args.json)
    if _common.cuda_missing(args.device):
        return 0
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    rows = [measure(op, n, device, args.repeats) for op in args.ops for n in args.sizes]
    print(f"{'op':8} {'n':>6} {'grid':>4} {'bisection ms':>12} {'search ms':>10} {'speedup':>7}")
    for r in rows:
        print(f"{r['op']:8} {r['n']:>6} {r['grid']:>4} {r['bisection_ms']:>12.2f} "
              f"{r['search_ms']:>10.2f} {r['speedup']:>6.2f}x")
    if args.json:
        _common.write_json(args.json, rows)
    return 0


if __name__ == "__main__":
    _common.run(main)
