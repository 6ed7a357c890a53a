"""``gridverify check-physics MODEL.onnx CASE``: the AC physics of an ACOPF graph, checked.

Thin wrapper over :func:`gridverify.vnncomp.check_physics.check_physics`.  Exit
status 0 when every physics output agrees within ``--tol`` (plus the interpolation
error of sin/cos lookup tables, when the graph has them), 1 on a disagreement,
2 on bad input.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

__all__ = ["register"]

_MAX_LINES = 20  # findings printed in the text report (all of them with --json)


def register(subparsers: Any) -> None:
    """Install the ``check-physics`` command."""
    from gridverify.cli._args import add_case_argument

    p = subparsers.add_parser(
        "check-physics",
        help="check the AC physics embedded in an ACOPF ONNX graph against the case",
        description=(
            "Evaluate an ONNX graph that maps the loads [pd, qd] to [pg qg vm va pf pt qf qt "
            "sf st rp rq] (the layout of 'vnncomp make-instances') on sampled loads, recompute "
            "every flow, thermal and balance output with gridverify's equations from the "
            "graph's own pg, qg, vm, va, and report the largest disagreement per output block "
            "and per branch or bus, naming the likely modelling mistake (phase-shift sign, tap "
            "side, tap inverted, line charging, shunt, rating).  A disagreement is |difference| "
            "divided by the size of the terms summed for that entry (at least 1).  A graph "
            "whose sin and cos are lookup tables (piecewise-linear interpolation on a grid, "
            "as 'vnncomp make-instances --nonlinear lut' writes them) is recognised: its "
            "flows are only as exact as the tables, so the tolerance becomes --tol plus the "
            "tables' interpolation error (h^2/8 for grid step h), and a note names the "
            "tables, their points and that error (and the samples whose table inputs leave "
            "the tables' grid, where the tables are not sin and cos).  Exit status "
            "0 agree, 1 disagree, 2 bad input.  Details: docs/check_physics.md."
        ),
    )
    p.add_argument("model", metavar="MODEL.onnx", help="the ONNX graph (.onnx or .onnx.gz)")
    add_case_argument(p)
    p.add_argument("--tol", type=float, default=1e-6,
                   help="largest disagreement accepted (default 1e-6; at least 1e-5 when the "
                        "graph can only run as stored in float32; plus the interpolation "
                        "error of sin/cos lookup tables)")
    p.add_argument("--samples", type=int, default=32,
                   help="load samples to evaluate (default 32)")
    p.add_argument("--seed", type=int, default=0, help="seed of the load samples (default 0)")
    p.add_argument("--width", type=float, default=0.1,
                   help="loads drawn per entry in nominal x [1 - W, 1 + W] (default 0.1)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from gridverify.grid import load_compiled
    from gridverify.vnncomp.check_physics import CheckOptions, check_physics

    opts = CheckOptions(samples=args.samples, seed=args.seed, width=args.width, tol=args.tol)
    case = load_compiled(args.case, emit_warnings=False)
    res = check_physics(args.model, case, opts)
    if args.json:
        print(json.dumps(res.to_json()))
    else:
        _print(res)
    return 0 if res.ok else 1


def _print(res: Any) -> None:
    """The report in lines of at most 80 columns (paths and notes apart)."""
    out = sys.stdout
    out.write(f"model: {res.model}\ncase: {res.case}\n{res.samples} load samples, "
              f"{res.evaluator}, tolerance {res.tol:g}\n")
    for n in res.notes:
        out.write(f"note: {n}\n")
    out.write(f"{'block':<6}{'entries':>8}{'max abs':>10}{'max rel':>10}{'bad':>5}  worst\n")
    for f in res.families:
        out.write(f"{f.family:<6}{f.size:>8}{f.max_abs:>10.2e}{f.max_err:>10.2e}{f.n_bad:>5}  "
                  f"{f.worst}\n")
    if res.ok:
        out.write(f"agree: every physics output within {res.tol:g}\n")
        return
    out.write(f"DISAGREE: {len(res.findings)} branch(es)/bus(es) above {res.tol:g}\n")
    for fd in res.findings[:_MAX_LINES]:
        out.write(f"  {fd.element}: {','.join(fd.families)} off by {fd.max_abs:.3g} "
                  f"(rel {fd.max_err:.2e})\n    -> {fd.cause or 'cause not recognised'}\n")
    if len(res.findings) > _MAX_LINES:
        out.write(f"  ... and {len(res.findings) - _MAX_LINES} more (--json lists all)\n")
