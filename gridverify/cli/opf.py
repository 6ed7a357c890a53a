"""``gridverify opf``: solve a case's AC-OPF (``opf solve``) and list solvers.

``opf solve CASE --json`` prints one JSON object with at least ``case``,
``status`` (:data:`gridverify.opf.acopf.STATUSES`: ``"optimal"`` when solved to
optimality), ``objective`` ($/h), ``max_balance_residual_pu``, ``solve_seconds``,
``solver``, ``termination`` (an Ipopt return-status name on every route, see
:data:`gridverify.opf.backends.IPOPT_RETURN_STATUS`), ``message``, ``iterations``
(``None`` where the route's output does not give it) and ``warnings`` (what reading
the case noted); docs/cli.md lists the values.  Exit status 0 when optimal, 1 when
the solver ended otherwise, 2 on bad input.  ``opf solvers --json`` prints
:func:`gridverify.opf.solvers.solver_routes`.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

__all__ = ["register", "solver_options_from_args", "add_solver_arguments"]


def add_solver_arguments(p: argparse.ArgumentParser) -> None:
    """The solver flags shared by ``opf solve`` and ``dataset make`` (one set of defaults)."""
    from gridverify.cli._args import count, int_range, positive_float
    from gridverify.opf.solvers import PRINT_LEVEL_MAX, SOLVER_NAMES, SolverOptions

    d = SolverOptions()
    p.add_argument(
        "--solver",
        default=d.name,
        choices=SOLVER_NAMES,
        help="NLP solver: auto (ipopt on PATH, else pounce), ipopt, pounce, pounce-cli",
    )
    p.add_argument("--tol", type=positive_float, default=d.tol, help="Ipopt tol")
    p.add_argument("--max-iter", type=count(1), default=d.max_iter, help="iteration limit")
    p.add_argument("--time-limit", type=positive_float, default=d.time_limit,
                   help="wall-clock limit per solve, s (default: none)")
    p.add_argument("--print-level", type=int_range(0, PRINT_LEVEL_MAX), default=d.print_level,
                   help=f"solver print level, 0 (silent) to {PRINT_LEVEL_MAX} (Ipopt's range); "
                        "the solver's log goes to stderr")


def solver_options_from_args(args: argparse.Namespace) -> Any:
    """A :class:`~gridverify.opf.solvers.SolverOptions` from the parsed solver flags."""
    from gridverify.opf.solvers import SolverOptions

    return SolverOptions(
        name=args.solver,
        tol=args.tol,
        max_iter=args.max_iter,
        time_limit=args.time_limit,
        print_level=args.print_level,
    )


def _solve(args: argparse.Namespace) -> int:
    from gridverify.grid import load_compiled
    from gridverify.opf.acopf import solve_opf

    options = solver_options_from_args(args)
    case = load_compiled(args.case, emit_warnings=False)
    sol = solve_opf(case, options=options)
    if args.json:
        out = sol.to_dict(arrays=args.arrays)
        out["n_bus"], out["n_gen"], out["n_load"] = case.n_bus, case.n_gen, case.n_load
        out["iterations"] = sol.iterations
        out["warnings"] = list(case.warnings)
        print(json.dumps(out))
    else:
        _print_table(case, sol)
    return 0 if sol.optimal else 1


def _print_table(case: Any, sol: Any) -> None:
    from rich.console import Console

    from gridverify.cli._table import field_table

    console = Console()
    for w in case.warnings:
        print(f"warning: {w}", file=sys.stderr)
    rows = [
        ("status", sol.status),
        ("objective ($/h)", f"{sol.objective:.4f}"),
        ("max balance residual (pu)", f"{sol.max_balance_residual_pu:.3e}"),
        ("iterations", str(sol.iterations)),
        ("solve seconds", f"{sol.solve_seconds:.3f}"),
        ("solver", sol.solver),
        ("termination", sol.termination),
    ]
    if sol.optimal:
        base = case.base_mva
        rows += [
            ("total pg (MW)", f"{sol.pg.sum() * base:.2f}"),
            ("total qg (MVAr)", f"{sol.qg.sum() * base:.2f}"),
            ("vm range (pu)", f"{sol.vm.min():.4f} .. {sol.vm.max():.4f}"),
        ]
    console.print(field_table(f"AC-OPF {sol.case}", rows))


def _solvers(args: argparse.Namespace) -> int:
    from gridverify.opf.solvers import available_solvers, solver_routes

    if args.json:
        print(json.dumps(solver_routes()))
    else:
        for name, what in available_solvers().items():
            print(f"{name:11s} {what}")
    return 0


def register(subparsers: Any) -> None:
    """Install ``gridverify opf solve`` and ``gridverify opf solvers``."""
    from gridverify.cli._args import add_case_argument

    p = subparsers.add_parser("opf", help="solve AC optimal power flow")
    sub = p.add_subparsers(dest="opf_command", metavar="SUBCOMMAND", parser_class=type(p))
    sub.required = True
    s = sub.add_parser(
        "solve",
        help="solve the AC-OPF of a case",
        description="Solve the polar AC-OPF (PowerModels' ACP) of CASE at nominal load. "
        "Exit status 0 optimal, 1 not optimal, 2 bad input.",
    )
    add_case_argument(s)
    add_solver_arguments(s)
    s.add_argument("--json", action="store_true", help="print one JSON object")
    s.add_argument("--arrays", action="store_true", help="with --json: include pg, vm, ... arrays")
    s.set_defaults(func=_solve)
    v = sub.add_parser("solvers", help="list the NLP solver routes and their versions")
    v.add_argument("--json", action="store_true", help="print one JSON object")
    v.set_defaults(func=_solvers)
