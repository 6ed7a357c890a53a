"""Lookup-table instances decided as fast as the smooth ones (issue 13, items 4 and 7).

Makes the instances of one proxy twice with ``make_benchmark`` (the smooth export
and ``lut_points`` lookup tables, ``--open`` variants included), then decides
every instance with the VNN-COMP runner three ways, in one run:

* ``smooth``  the smooth export (sin, cos, sigmoid);
* ``lut``     the lookup-table export, imported with the piecewise merge (``pwl``);
* ``relus``   the same lookup-table file imported without the merge (the tables
              stay sums of relus: the ablation of item 4).

Prints per instance the answer and seconds, then the total seconds over the
instances smooth and lut both decided (and over those all three decided), as
ratios to ``smooth``.  Measured (2-core machine, shared, timeout 60 s, 32 points):
case14_relu: 11 of 13 decided by smooth and by lut, lut/smooth 0.93 over them;
relus decide 9 (8.5x slower over those).  case57_relu: 11 and 11, lut/smooth
1.42; relus decide 6 (4.9x).  The two undecided are the open balance properties
(timeouts in every way).
Run: ``.venv/bin/python benchmarks/lut_variant.py [--case C --model M --width W
--points N --timeout S --kinds k1,k2]`` (defaults: case14, models/case14_relu,
0.1, 32, 60 s, every kind).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import tempfile
import time
from pathlib import Path

import _common


def _decide(onnx_path: Path, vnnlib: Path, timeout: float, merge: bool) -> tuple[str, float]:
    from gridverify.ir import from_onnx
    from gridverify.vnncomp.runner import RunOptions, _Clock, decide, load_instance

    opts = RunOptions(timeout=timeout)
    t0 = time.perf_counter()
    clock = _Clock(opts.timeout, opts.safety_margin_s)
    inst = load_instance(onnx_path, vnnlib)
    if not merge:
        inst = dataclasses.replace(inst, graph=from_onnx(str(onnx_path), merge_pwl=False))
    clock.lap("startup")
    out = decide(inst, opts, clock)
    return out.result, time.perf_counter() - t0


def _ratio(a: float, b: float) -> str:
    """``a / b`` to two places, ``-`` when ``b`` is 0 (no instance decided by both)."""
    return f"{a / b:.2f}" if b > 0 else "-"


def main() -> int:
    from gridverify.vnncomp.instances import KINDS, make_benchmark

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--case", default="pglib_opf_case14_ieee")
    ap.add_argument("--model", default=_common.model_path("case14_relu"))
    ap.add_argument("--width", type=_common.positive_float, default=0.1)
    ap.add_argument("--points", type=_common.count(2), default=32)
    ap.add_argument("--timeout", type=_common.positive_float, default=60.0)
    ap.add_argument("--kinds", type=_common.keys(KINDS, "kind"), default=None,
                    help=f"comma-separated kinds of {', '.join(KINDS)} (default: all)")
    args = ap.parse_args()

    import torch

    from gridverify.grid import load_compiled
    from gridverify.proxy.load import load_proxy

    torch.set_num_threads(1)
    case = load_compiled(args.case, emit_warnings=False)
    proxy = load_proxy(args.model, case).module
    kinds = tuple(args.kinds) if args.kinds else KINDS
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        for lut in (None, args.points):
            make_benchmark(case, proxy, out / ("lut" if lut else "smooth"),
                           widths=(args.width,), kinds=kinds, open_variant=True,
                           timeout=args.timeout, lut_points=lut)
        rows = {v: list(csv.reader((out / v / "instances.csv").open()))
                for v in ("smooth", "lut")}
        ways = (("smooth", "smooth", True), ("lut", "lut", True), ("relus", "lut", False))
        res: dict[str, list[tuple[str, float]]] = {w: [] for w, _, _ in ways}
        names = [Path(r[1]).stem for r in rows["smooth"]]
        for way, folder, merge in ways:
            for onnx_rel, vnn_rel, _ in rows[folder]:
                res[way].append(_decide(out / folder / onnx_rel, out / folder / vnn_rel,
                                        args.timeout, merge))
    print(f"{args.case} {Path(args.model).name} +-{args.width:g}, {args.points} points, "
          f"timeout {args.timeout:g} s")
    print(f"{'instance':58s} " + " ".join(f"{w:>16s}" for w, _, _ in ways))
    for k, name in enumerate(names):
        cells = [f"{res[w][k][0]:>8s} {res[w][k][1]:6.1f}s" for w, _, _ in ways]
        print(f"{name[-58:]:58s} " + " ".join(cells))
    def decided(ks: tuple[str, ...]) -> list[int]:
        return [k for k in range(len(names)) if all(res[w][k][0] in ("sat", "unsat")
                                                    for w in ks)]

    two = decided(("smooth", "lut"))
    s2, l2 = (sum(res[w][k][1] for k in two) for w in ("smooth", "lut"))
    print(f"decided by smooth and lut: {len(two)} of {len(names)}; seconds: smooth {s2:.1f}, "
          f"lut {l2:.1f}; lut/smooth {_ratio(l2, s2)}")
    three = decided(("smooth", "lut", "relus"))
    tot = {w: sum(res[w][k][1] for k in three) for w, _, _ in ways}
    print(f"decided by all three: {len(three)} of {len(names)}; seconds: "
          + ", ".join(f"{w} {tot[w]:.1f}" for w, _, _ in ways)
          + f"; lut/smooth {_ratio(tot['lut'], tot['smooth'])}, "
          f"relus/smooth {_ratio(tot['relus'], tot['smooth'])}")
    for w, _, _ in ways:
        print(f"decided {w}: {sum(r in ('sat', 'unsat') for r, _ in res[w])} of {len(names)}")
    return 0


if __name__ == "__main__":
    _common.run(main)
