"""Branch-and-bound effect and ablation on the shipped proxies.

Usage::

    python benchmarks/bab_ablation.py effect   [--cases case14,case57] [--timeout 60]
    python benchmarks/bab_ablation.py ablation [--cases ...] [--families ...] [--timeout 20]
    python benchmarks/bab_ablation.py focus    [--cases ...] [--families ...] [--timeout 20]

*effect*: per constraint family (the spec is every row of the family, so the
bound is the family's worst violation), alpha-CROWN alone (the root bound:
alpha-CROWN with alpha-optimized intermediate bounds, with the same attack)
against branch-and-bound with the default options in optimization mode within
``--timeout`` seconds: bound, attained, gap, gap ratio (or "closed" when the gap
is within the tolerance), domains visited.

*ablation*: the same instances with widest-interval, the BaBSR-like score,
BBPS and BBPS with pre-optimized branching points (neuron branching only), and
input splitting: time to close the gap (``-`` if not closed) or the gap at the
timeout, and domains visited.

Region: ``[0.9, 1.1] x nominal`` loads.  One torch thread; timeouts are CPU seconds
(``BabOptions(clock="cpu")``), so a loaded machine does not shrink the budget.  Prints markdown
tables; ``--out FILE`` also writes the rows as JSON.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import _common
import numpy as np
import torch

from gridverify.bab import BabOptions, bab_maximize
from gridverify.bab.options import BRANCHINGS
from gridverify.errors import SpecError

#: key -> (case name, shipped proxy folder: absolute, so any working directory will do)
CASES = {
    "case14": ("pglib_opf_case14_ieee", _common.model_path("case14_relu")),
    "case57": ("pglib_opf_case57_ieee", _common.model_path("case57_relu")),
    "case118": ("pglib_opf_case118_ieee", _common.model_path("case118_relu")),
    "case300": ("pglib_opf_case300_ieee", _common.model_path("case300_relu")),
    "case14s": ("pglib_opf_case14_ieee", _common.model_path("case14_relu_stable")),
    "case57s": ("pglib_opf_case57_ieee", _common.model_path("case57_relu_stable")),
}
ABLATION = {
    "widest": BabOptions(branching="widest", points="midpoint"),
    "babsr": BabOptions(branching="babsr", points="midpoint"),
    "bbps": BabOptions(branching="bbps", points="midpoint"),
    "bbps+table": BabOptions(branching="bbps", points="table"),
    "input": BabOptions(branching="input"),
}


def case_and_proxy(case_key: str):
    """(compiled case, loaded proxy) of a key of :data:`CASES`, or ``key=MODEL_DIR`` for
    another proxy of that case (the one place the benchmarks load a shipped pair)."""
    from gridverify.grid import load_compiled
    from gridverify.proxy.load import load_proxy

    key, _, model_dir = case_key.partition("=")
    name, model = CASES[key]
    case = load_compiled(name, emit_warnings=False)
    return case, load_proxy(model_dir or model, case=case)


def instance(case_key: str, family: str | None = None):
    """(graph, lower, upper, spec) of one family (``None``: every constraint) of a shipped proxy.

    ``case_key``: a key of :data:`CASES`, or ``key=MODEL_DIR`` for another proxy of that case.

    Also used by ``bab_throughput.py`` and ``graph_eval.py``.
    """
    from gridverify.ir import from_torch
    from gridverify.physics.acp import build_physics_graph, compose_with_proxy
    from gridverify.spec.constraints import (
        ConstraintSelection,
        parse_constraints,
        select_constraints,
    )
    from gridverify.spec.region import box_region

    case, prox = case_and_proxy(case_key)
    sel = parse_constraints(family) if family else ConstraintSelection()
    cons = select_constraints(case, sel)
    ph = build_physics_graph(case, cons)
    reg = box_region(case, 0.9, 1.1)
    g = compose_with_proxy(ph, from_torch(prox.module, input_size=reg.n_input))
    return g, reg.lower, reg.upper, np.eye(g.output_size)


def whole_instance(case_key: str):
    """(graph, lower, upper, physics) of a shipped proxy with every constraint (as certify
    builds it; ``constraint_spec`` picks one constraint's rows)."""
    from gridverify.ir import from_torch
    from gridverify.physics.acp import build_physics_graph, compose_with_proxy
    from gridverify.spec.constraints import ConstraintSelection, select_constraints
    from gridverify.spec.region import box_region

    case, prox = case_and_proxy(case_key)
    ph = build_physics_graph(case, select_constraints(case, ConstraintSelection()))
    reg = box_region(case, 0.9, 1.1)
    g = compose_with_proxy(ph, from_torch(prox.module, input_size=reg.n_input))
    return g, reg.lower, reg.upper, ph


def constraint_spec(g, ph, family: str) -> np.ndarray:
    """The rows of the first constraint of ``family`` (:class:`SpecError` if it has none)."""
    k = next((i for i, c in enumerate(ph.constraints) if c.family == family), None)
    if k is None:
        raise SpecError(f"no {family} constraint in this case")
    rows = np.flatnonzero(ph.row_constraint == k)
    spec = np.zeros((rows.size, g.output_size))
    spec[np.arange(rows.size), rows] = 1.0
    return spec


def case_families(case_key: str) -> list[str]:
    from gridverify.grid import load_compiled
    from gridverify.spec import FAMILIES
    from gridverify.spec.constraints import ConstraintSelection, select_constraints

    case = load_compiled(CASES[case_key.partition("=")[0]][0])
    present = {c.family for c in select_constraints(case, ConstraintSelection())}
    return [f for f in FAMILIES if f in present]


def run(case_key: str, family: str, opts: BabOptions, whole: bool = False) -> dict:
    if whole:  # one constraint on the graph of every constraint, as certify runs it
        g, lo, hi, ph = whole_instance(case_key)
        spec = constraint_spec(g, ph, family)
    else:
        g, lo, hi, spec = instance(case_key, family)
    t0 = time.perf_counter()
    r = bab_maximize(g, lo, hi, spec, options=opts, mode="optimization")
    root_t, root_b, _ = r.history[0]
    closed_at = next((t for t, b, a in r.history if b - a <= opts.tolerance), None)
    return {
        "case": case_key, "family": family, "branching": r.branching, "points": opts.points,
        "root_bound": root_b, "bound": r.upper_bound, "attained": r.attained,
        "root_gap": root_b - r.attained, "gap": r.gap, "status": r.status, "reason": r.reason,
        "visited": r.domains_visited, "seconds": time.perf_counter() - t0,
        "closed_at": closed_at,
    }


def _fmt(v: float) -> str:
    return "-" if v is None else f"{v:.3g}"


def effect(cases: list[str], fams: list[str] | None, timeout: float, out: list,
           branching: str = "auto") -> None:
    print("| case | family | alpha-CROWN bound | BaB bound | attained | gap alpha-CROWN "
          "| gap BaB | shrink | domains | s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for ck in cases:
        for fam in fams or case_families(ck):
            row = run(ck, fam, BabOptions(timeout=timeout, clock="cpu", branching=branching))
            out.append(row)
            tol = BabOptions().tolerance
            if row["root_gap"] <= tol:
                shrink = "closed at the root"
            elif row["gap"] <= tol:
                shrink = "closed"
            else:
                shrink = f"{_fmt(row['root_gap'] / row['gap'])}x"
            print(f"| {ck} | {fam} | {_fmt(row['root_bound'])} | {_fmt(row['bound'])} | "
                  f"{_fmt(row['attained'])} | {_fmt(row['root_gap'])} | {_fmt(row['gap'])} | "
                  f"{shrink} | {row['visited']} | {row['seconds']:.0f} |", flush=True)


def ablation(cases: list[str], fams: list[str], timeout: float, out: list) -> None:
    print("| case | family | heuristic | time to close (s) | gap at end | root gap "
          "| domains |")
    print("|---|---|---|---|---|---|---|")
    for ck in cases:
        for fam in fams:
            for name, o in ABLATION.items():
                row = run(ck, fam, replace(o, timeout=timeout, clock="cpu"))
                row["heuristic"] = name
                out.append(row)
                print(f"| {ck} | {fam} | {name} | {_fmt(row['closed_at'])} | "
                      f"{_fmt(row['gap'])} | {_fmt(row['root_gap'])} | {row['visited']} |",
                      flush=True)


def focus(cases: list[str], fams: list[str], timeout: float, out: list,
          whole: bool = False) -> None:
    """Default options with and without ``focus`` (row pruning + relevance), same process."""
    print("| case | family | focus | domains | domains/s | gap at end | root gap | ratio |")
    print("|---|---|---|---|---|---|---|---|")
    for ck in cases:
        for fam in fams:
            res = {}
            for on in (False, True):
                row = run(ck, fam, BabOptions(timeout=timeout, clock="cpu", focus=on), whole)
                row["focus"] = on
                out.append(row)
                res[on] = row
                rate = row["visited"] / max(row["seconds"], 1e-9)
                ratio = (f"{rate / (res[False]['visited'] / max(res[False]['seconds'], 1e-9)):.2f}x"
                         " domains/s" if on else "baseline")
                print(f"| {ck} | {fam} | {'on' if on else 'off'} | {row['visited']} | "
                      f"{rate:.0f} | {_fmt(row['gap'])} | {_fmt(row['root_gap'])} | {ratio} |",
                      flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("what", choices=("effect", "ablation", "focus"))
    ap.add_argument("--cases", type=_common.keys(CASES, "case"), default="case14,case57",
                    help=f"comma list of {', '.join(CASES)}")
    ap.add_argument("--families", type=_common.families, default=None,
                    help="comma list (default: every family; ablation: angle_max,p_balance)")
    ap.add_argument("--timeout", type=_common.positive_float, default=None,
                    help="CPU seconds per search (default: effect 60, else 20)")
    ap.add_argument("--branching", default="auto", choices=BRANCHINGS,
                    help="effect: the branching heuristic")
    ap.add_argument("--whole", action="store_true",
                    help="focus: the first constraint of each family on the graph of every "
                         "constraint (as certify --method bab runs it)")
    ap.add_argument("--out", default=None, help="write the rows as JSON")
    args = ap.parse_args(argv)
    _common.check_outputs(out=args.out)
    torch.set_num_threads(1)
    cases, fams = args.cases, args.families
    timeout = args.timeout
    if timeout is None:  # an explicit value is kept (0 and below are refused at parse time)
        timeout = 60.0 if args.what == "effect" else 20.0
    rows: list = []
    if args.what == "effect":
        effect(cases, fams, timeout, rows, args.branching)
    elif args.what == "focus":
        focus(cases, fams or ["p_balance", "thermal_fr"], timeout, rows, args.whole)
    else:
        ablation(cases, fams or ["angle_max", "p_balance"], timeout, rows)
    if args.out:
        _common.write_json(args.out, rows)
    return 0


if __name__ == "__main__":
    _common.run(main)
