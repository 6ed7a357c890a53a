"""``gridverify certify``: certify a proxy against a case's AC-OPF constraints.

Exit status: 0 every constraint certified, 1 a violation found, 3 some open,
2 bad input.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from typing import Any

__all__ = ["register", "run_certify"]

_EPILOG = """\
regions:   box:0.9,1.1 | pglearn:A,B,R | dataset:FILE.h5 | FILE.toml/.json ([region] table)
           (default: the proxy's training region, else box:0.9,1.1)
constraints: comma list of families, optionally family[ids], e.g. p_balance,thermal_fr[1,5]
           families: p_balance q_balance thermal_fr thermal_to vm_max vm_min pg_max pg_min
                     qg_max qg_min angle_max angle_min (all: every family)
thresholds: 0.01 (every family) or p_balance=0.01,thermal_fr=0 or p_balance=max:0.001:0.01
           (defaults: 1e-3 pu for p/q balance, 1e-6 for every limit family)
exit status: 0 all certified, 1 a violation found, 3 some open, 2 bad input
"""


class _Default:
    """A default of :class:`CertifyOptions` (dotted ``path``), read only when needed.

    Building the parser then imports nothing heavy; ``%(default)s`` in a help
    text and :func:`_resolve_defaults` read the value.
    """

    def __init__(self, path: str) -> None:
        self.path = path

    def value(self) -> Any:
        from gridverify.certify.options import CertifyOptions

        v: Any = CertifyOptions()
        for part in self.path.split("."):
            v = getattr(v, part)
        return v

    def __str__(self) -> str:
        v = self.value()
        return f"{v:g}" if isinstance(v, float) else str(v)


def _resolve_defaults(args: argparse.Namespace) -> None:
    for k, v in vars(args).items():
        if isinstance(v, _Default):
            setattr(args, k, v.value())


def register(sub: Any) -> None:
    """Install the ``certify`` command."""
    p = sub.add_parser(
        "certify",
        help="certify a proxy over a load region (bounds, attained violations, witnesses)",
        description="Certify a neural AC-OPF proxy against every AC-OPF constraint of a "
        "case over a whole region of loads.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("case", metavar="CASE", help="bundled case name or MATPOWER file")
    p.add_argument("--model", required=True, metavar="MODEL",
                   help="proxy: model directory, torch checkpoint or .onnx")
    p.add_argument("--region", metavar="REGION", help="load region (see below)")
    p.add_argument("--spec", metavar="FILE", help="specification file (.toml or .json)")
    p.add_argument("--constraints", metavar="LIST", help="constraint selection (see below)")
    p.add_argument("--threshold", metavar="T", help="thresholds (see below)")
    p.add_argument("--method", default="alpha-crown",
                   choices=("ibp", "crown", "alpha-crown", "bab"),
                   help="bounding method (default alpha-crown)")
    p.add_argument("--timeout", type=float, metavar="S", help="time limit in seconds")
    p.add_argument("--samples", type=int, default=_Default("samples"), metavar="N",
                   help="random loads tried before bounding (default %(default)s)")
    p.add_argument("--attack", default="uncertified",
                   choices=("uncertified", "undecided", "all", "none"),
                   help="which constraints get the gradient attack: uncertified (default; "
                   "violated ones too, pushing the worst violation found up), undecided "
                   "(not yet violated), all, none")
    p.add_argument("--intermediate", default="alpha-crown", choices=("alpha-crown", "crown"),
                   help="intermediate bounds of the alpha-crown stage: alpha-crown (default; "
                   "optimized node by node, tighter, somewhat slower) or crown")
    p.add_argument("--seed", type=int, default=0, help="sampling and attack seed")
    p.add_argument("--bab-timeout", type=float, default=_Default("bab.timeout"), metavar="S",
                   help="branch-and-bound seconds per constraint (--method bab; default "
                   "%(default)s)")
    p.add_argument("--bab-mode", default="tighten", choices=("tighten", "decide"),
                   help="--method bab: tighten (default; every constraint whose gap, bound "
                   "minus worst found, exceeds --gap-tolerance, violated ones included, open "
                   "ones first) or decide (only the open ones, at their threshold)")
    p.add_argument("--gap-tolerance", type=float, default=_Default("bab.tolerance"),
                   metavar="G", help="--method bab: gap left alone (default %(default)s)")
    p.add_argument("--memory-cap", type=float, default=_Default("bab.memory_mb"), metavar="MB",
                   help="memory cap of branch-and-bound's domain store (--method bab; "
                   "default %(default)s)")
    p.add_argument("--threads", type=int, default=1, metavar="N",
                   help="torch CPU threads for this run (default 1: the graphs are small and "
                   "extra threads mostly contend)")
    p.add_argument("--json", action="store_true", help="print the certificate as JSON")
    p.add_argument("--out", metavar="FILE", help="write the certificate JSON to FILE")
    p.add_argument("--quiet", action="store_true", help="no progress bar and no table")
    p.set_defaults(func=run_certify)


def _build_inputs(args: argparse.Namespace) -> tuple[Any, Any, Any, Any, Any]:
    from gridverify.grid import load_compiled
    from gridverify.proxy.load import load_proxy
    from gridverify.spec.constraints import (
        ConstraintSelection,
        parse_constraints,
        select_constraints,
    )
    from gridverify.spec.region import parse_region
    from gridverify.spec.specfile import load_spec
    from gridverify.spec.thresholds import ThresholdSpec, parse_threshold

    case = load_compiled(args.case)
    proxy = load_proxy(args.model, case=case)
    spec = load_spec(args.spec, case) if args.spec else None
    region = parse_region(args.region, case) if args.region else (spec.region if spec else None)
    cons = parse_constraints(args.constraints) if args.constraints else (
        spec.constraints if spec else None
    )
    # resolve the selection now: bad component ids fail before any progress output
    cons = select_constraints(case, cons or ConstraintSelection())
    if not cons:
        from gridverify.errors import SpecError

        raise SpecError("constraints: the selection is empty for this case")
    thr = spec.thresholds if spec else ThresholdSpec()
    if args.threshold:
        over = parse_threshold(args.threshold)
        merged = dict(thr.rules)
        merged.update(dict(over.rules))
        thr = ThresholdSpec(tuple(merged.items()))
    return case, proxy, region, cons, thr


def run_certify(args: argparse.Namespace) -> int:
    """Handler of ``gridverify certify``; returns the exit status."""
    from gridverify.certify import certify
    from gridverify.errors import SpecError

    _resolve_defaults(args)
    if args.timeout is not None and not args.timeout > 0:
        raise SpecError(f"--timeout: must be > 0 seconds, got {args.timeout}")
    if args.samples < 0:
        raise SpecError(f"--samples: must be >= 0, got {args.samples}")
    if args.threads < 1:
        raise SpecError(f"--threads: must be >= 1, got {args.threads}")
    import torch

    torch.set_num_threads(args.threads)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        case, proxy, region, cons, thr = _build_inputs(args)
        opts = _options(args)
        show = not (args.quiet or args.json)
        if show:
            cert = _with_progress(certify, case, proxy, region, cons, args.method, opts, thr)
        else:
            cert = certify(case, proxy, region, constraints=cons, method=args.method,
                           options=opts, thresholds=thr)
    del caught  # certify's warnings are in cert.warnings
    for w in cert.warnings:
        print(f"gridverify: warning: {w}", file=sys.stderr)
    if args.out:
        cert.write(args.out)
    if args.json:
        print(json.dumps(cert.to_dict(), allow_nan=False))
    elif not args.quiet:
        _print_table(cert)
    return cert.exit_status


def _options(args: argparse.Namespace) -> Any:
    """The CertifyOptions of the command line (defaults from CertifyOptions itself)."""
    from dataclasses import replace

    from gridverify.bab.options import BabOptionsError
    from gridverify.certify import CertifyOptions
    from gridverify.errors import SpecError

    if not args.memory_cap > 0:
        raise SpecError(f"--memory-cap: the bab_memory_mb cap must be > 0, got {args.memory_cap}")
    if not args.gap_tolerance >= 0:
        raise SpecError(f"--gap-tolerance: must be >= 0, got {args.gap_tolerance}")
    d = CertifyOptions()
    try:
        bab = replace(d.bab, timeout=args.bab_timeout, memory_mb=args.memory_cap,
                      tolerance=args.gap_tolerance)
    except BabOptionsError as exc:
        raise SpecError(f"--bab-timeout/--memory-cap: {exc}") from None
    return CertifyOptions(timeout=args.timeout, samples=args.samples, attack=args.attack,
                          seed=args.seed, bab=bab, bab_mode=args.bab_mode,
                          bounds=replace(d.bounds, intermediate=args.intermediate))


def _with_progress(certify: Any, case: Any, proxy: Any, region: Any, cons: Any, method: str,
                   opts: Any, thr: Any) -> Any:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    with Progress(TextColumn("[bold]certify[/bold] {task.description}"), BarColumn(),
                  TimeElapsedColumn(), console=console, transient=True) as bar:
        task = bar.add_task("starting", total=1.0)

        def cb(stage: str, frac: float) -> None:
            bar.update(task, description=stage, completed=frac)

        return certify(case, proxy, region, constraints=cons, method=method, options=opts,
                       thresholds=thr, progress=cb)


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    return f"{v:.3g}"


def _print_table(cert: Any) -> None:
    from rich import box
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not console.is_terminal:
        console = Console(width=120)
    fams = cert.families()
    table = Table(title=f"{cert.case} | {cert.model} | {cert.region.describe()} | {cert.method}",
                  box=box.SIMPLE_HEAD)
    for col in ("family", "n", "certified", "violated", "open", "max bound", "max attained",
                "gap", "threshold", "unit"):
        table.add_column(col, justify="left" if col in ("family", "unit") else "right",
                         no_wrap=True)
    thr_by_fam: dict[str, float] = {}
    for c in cert.constraints:
        thr_by_fam[c.family] = max(thr_by_fam.get(c.family, -float("inf")), c.threshold)
    for fam, d in fams.items():
        style = "red" if d["violated"] else ("yellow" if d["open"] else "green")
        table.add_row(
            f"[{style}]{fam}[/{style}]", str(d["count"]), str(d["certified"]),
            str(d["violated"]), str(d["open"]), _fmt(d["max_upper_bound"]),
            _fmt(d["max_attained"]), _fmt(d["gap"]), _fmt(thr_by_fam[fam]), d["unit"],
        )
    console.print(table)
    s = cert.summary
    console.print(
        f"{s['certified']} certified, {s['violated']} violated, {s['open']} open "
        f"of {s['total']} constraints in {cert.seconds:.1f} s"
    )
    for w in cert.warnings:
        if w.startswith(("timeout", "memory cap")):
            console.print(f"[yellow]incomplete: {w}[/yellow]")
