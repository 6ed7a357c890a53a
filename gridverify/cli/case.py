"""``gridverify case``: inspect grid cases (``case info``, ``case list``)."""

from __future__ import annotations

import argparse
import json
import math
import sys
import warnings
from typing import Any

__all__ = ["register", "case_summary"]


def _total(values: Any, base: float) -> float | None:
    """A sum in MW / MVAr, rounded to 1e-6 (no float noise of the per-unit
    round trip); ``None`` when a term is infinite (``Inf``: no limit)."""
    total = float(sum(float(v) for v in values) * base)
    return round(total, 6) if math.isfinite(total) else None


def case_summary(name_or_path: str, zones: int | None = None) -> dict[str, Any]:
    """The ``case info --json`` object of a case (path or bundled name); with ``zones``
    also ``"zones"``: the case's split into that many zones (``zones:A,B,K`` regions)."""
    import numpy as np

    from gridverify.grid.case import load_case
    from gridverify.grid.compile import compile_case

    raw = load_case(name_or_path, validate=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cc = compile_case(raw, emit_warnings=False)
    base = cc.base_mva
    finite_rate = np.isfinite(cc.rate_a)
    out = {
        "name": cc.name,
        "source": cc.source,
        "n_bus": cc.n_bus,
        "n_gen": cc.n_gen,
        "n_branch": cc.n_branch,
        "n_load": cc.n_load,
        "base_mva": base,
        "n_bus_in_file": int(raw.bus.shape[0]),
        "n_gen_in_file": int(raw.gen.shape[0]),
        "n_branch_in_file": int(raw.branch.shape[0]),
        "n_transformers": cc.n_transformers,
        "n_ref_bus": int(cc.ref_bus.shape[0]),
        "ref_bus_ids": [int(cc.bus_ids[i]) for i in cc.ref_bus],
        "total_pd_mw": _total(cc.pd, base),
        "total_qd_mvar": _total(cc.qd, base),
        "total_pmax_mw": _total(cc.pmax, base),  # None: some generator has no limit
        "total_pmin_mw": _total(cc.pmin, base),
        "n_branch_unlimited": int(np.count_nonzero(~finite_rate)),
        "has_costs": cc.has_costs,
        "content_hash": cc.content_hash,
        "warnings": list(cc.warnings),
    }
    if zones is not None:
        from gridverify.spec.zones import zone_table

        out["zones"] = zone_table(cc, zones)
    return out


def _info(args: argparse.Namespace) -> int:
    from gridverify.errors import SpecError

    try:
        info = case_summary(args.case, args.zones)
    except SpecError as exc:  # the zones: name the flag
        raise SpecError(f"--zones {args.zones}: {exc}") from None
    if args.json:
        print(json.dumps(info))
        return 0
    from rich.console import Console
    from rich.markup import escape

    from gridverify.cli._table import field_table

    keys = ("source", "base_mva", "n_bus", "n_gen", "n_branch", "n_load", "n_transformers",
            "ref_bus_ids", "total_pd_mw", "total_qd_mvar", "total_pmax_mw",
            "n_branch_unlimited", "content_hash")
    rows = [(k, "no limit" if info[k] is None else info[k]) for k in keys]
    table = field_table(f"case {info['name']}", rows, ".2f")
    console = Console()
    console.print(table)
    if args.zones is not None:
        console.print(_zones_table(info["zones"]))
    for w in info["warnings"]:  # the text names the file: never markup
        console.print(f"[yellow]warning:[/yellow] {escape(w)}", markup=True, highlight=False)
    return 0


def _zones_table(zones: list[dict[str, Any]]) -> Any:
    from rich.table import Table

    t = Table(title=f"{len(zones)} zones (--region zones:A,B,{len(zones)})")
    for col in ("zone", "buses", "loads", "pd MW", "qd MVAr", "load bus ids"):
        t.add_column(col, justify="left" if col == "load bus ids" else "right")
    for z in zones:
        ids = ", ".join(str(i) for i in z["load_bus_ids"])
        t.add_row(str(z["zone"]), str(z["n_bus"]), str(z["n_load"]), f"{z['pd_mw']:.1f}",
                  f"{z['qd_mvar']:.1f}", ids)
    return t


def _list(args: argparse.Namespace) -> int:
    from gridverify.grid.case import bundled_cases_dir, list_bundled_cases

    names = list_bundled_cases()
    if args.json:
        print(json.dumps({"cases": names, "directory": str(bundled_cases_dir())}))
    else:
        for n in names:
            sys.stdout.write(n + "\n")
    return 0


def register(subparsers: Any) -> None:
    """Add ``case info`` and ``case list`` to the ``gridverify`` parser."""
    from gridverify.cli._args import add_case_argument, count

    p = subparsers.add_parser("case", help="inspect grid cases (info, list)",
                              description="Inspect grid cases.")
    sub = p.add_subparsers(dest="case_command", metavar="SUBCOMMAND",
                           parser_class=type(p))
    info = sub.add_parser(
        "info",
        help="summary of a case (sizes, totals, hash, warnings)",
        description="Summary of a grid case: a MATPOWER .m file, a pandapower network "
        "saved as .json, or a bundled name (e.g. pglib_opf_case14_ieee or case14_ieee).",
    )
    add_case_argument(info)
    info.add_argument("--json", action="store_true", help="print one JSON object")
    info.add_argument("--zones", type=count(1), default=None, metavar="K",
                      help="also list the K zones of the grid that --region zones:A,B,K "
                      "moves apart (buses, loads, demand, load bus ids)")
    info.set_defaults(func=_info)
    lst = sub.add_parser("list", help="list bundled cases", description="List bundled cases.")
    lst.add_argument("--json", action="store_true", help="print one JSON object")
    lst.set_defaults(func=_list)

    def _no_sub(args: argparse.Namespace) -> int:
        p.print_help(sys.stderr)
        return 2

    p.set_defaults(func=_no_sub)
