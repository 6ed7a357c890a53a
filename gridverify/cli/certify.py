"""``gridverify certify``: certify a proxy against a case's AC-OPF constraints.

Exit status: 0 every constraint certified, 1 a violation found, 3 some open,
2 bad input.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["register", "run_certify"]

_EPILOG = """\
regions:   box:0.9,1.1 | pglearn:A,B,R | dataset:FILE.h5 | FILE.toml/.json ([region] table)
           (default: the proxy's training region, else box:0.9,1.1)
           factor regions, loads moving together (power factors kept), bounded over
           their factors: scale:A,B (every load at one factor s in [A,B] x nominal),
           load-factors:A,B (each load at its own factor), correlated:A,B,R (a common
           factor in [A,B] plus a per-load one within +-R), zones:A,B,K (the loads of
           each of K connected zones of the grid at the zone's own factor)
constraints: comma list of families, optionally family[ids], e.g. p_balance,thermal_fr[1,5]
           families: p_balance q_balance thermal_fr thermal_to vm_max vm_min pg_max pg_min
                     qg_max qg_min angle_max angle_min (all: every family)
thresholds: 0.01 (every family) or p_balance=0.01,thermal_fr=0 or p_balance=max:0.001:0.01
           A: absolute, in the family's unit; rel:B: B x |nominal demand at the bus|;
           max:A:B: max(A, B x |nominal demand at the bus|), the larger of an absolute
           floor and a relative part (rel and max: p_balance and q_balance only)
           (defaults: 1e-3 pu for p/q balance, 1e-6 for every limit family)
spec file: region, constraints and thresholds in one TOML/JSON file: see docs/spec.md
           (flags given on the command line override the file's tables)
table:     bound = sound upper bound of the worst violation, found = worst violation
           attained by a load (> threshold: violated), gap = bound - found
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
    from gridverify.cli._args import (
        add_case_argument,
        add_layout_arguments,
        add_progress_flag,
        count,
        fraction,
        int_range,
        nonneg_float,
        positive_float,
        seed,
    )
    from gridverify.sysmem import MAX_WORKERS

    p = sub.add_parser(
        "certify",
        help="certify a proxy over a load region (bounds, attained violations, witnesses)",
        description="Certify a neural AC-OPF proxy against every AC-OPF constraint of a "
        "case over a whole region of loads.",
        epilog=_EPILOG,
    )
    add_case_argument(p)
    p.add_argument("--model", required=True, metavar="MODEL",
                   help="proxy: model directory, torch checkpoint or TorchScript archive "
                   "(.pt), .onnx, torch.export program (.pt2, torch.export.save), or a "
                   "bundled proxy's name (case14_relu, case57_relu, ...)")
    p.add_argument("--region", metavar="REGION", help="load region (see below)")
    p.add_argument("--spec", metavar="FILE", help="specification file (.toml or .json, "
                   "see docs/spec.md)")
    p.add_argument("--constraints", metavar="LIST",
                   help="constraint selection (see below; default: all)")
    p.add_argument("--threshold", metavar="T", help="thresholds (see below)")
    p.add_argument("--method", default="alpha-crown",
                   choices=("ibp", "crown", "alpha-crown", "bab"),
                   help="bounding method")
    p.add_argument("--timeout", type=positive_float, metavar="S",
                   help="time limit in seconds for the whole certificate, counted once the "
                   "case and the proxy are loaded (start-up takes 1-3 s more; a CROWN pass "
                   "under way ends first, about 2 s on case300; default: none)")
    p.add_argument("--samples", type=count(0), default=_Default("samples"), metavar="N",
                   help="random loads tried before bounding")
    p.add_argument("--attack", default=_Default("attack"),
                   choices=("uncertified", "undecided", "all", "none"),
                   help="which constraints get the gradient attack: uncertified (violated "
                   "ones too, pushing the worst violation found up), undecided "
                   "(not yet violated), all, none")
    p.add_argument("--intermediate", default=_Default("bounds.intermediate"),
                   choices=("alpha-crown", "crown"),
                   help="intermediate bounds of the alpha-crown stage: alpha-crown "
                   "(optimized node by node, tighter, somewhat slower) or crown")
    p.add_argument("--refine", default=_Default("refine"), choices=("auto", "undecided", "all"),
                   help="constraints the alpha-crown stage tightens after CROWN: undecided "
                   "(those CROWN leaves open), all (violated and certified ones too: "
                   "tighter bounds on how large a violation can get, for more time) or "
                   "auto (all with --method bab --bab-mode tighten, else undecided)")
    p.add_argument("--seed", type=seed, default=0, help="sampling and attack seed")
    p.add_argument("--bab-timeout", type=positive_float, default=_Default("bab.timeout"),
                   metavar="S", help="branch-and-bound seconds per constraint (--method bab)")
    p.add_argument("--bab-mode", default=_Default("bab_mode"), choices=("tighten", "decide"),
                   help="--method bab: both first decide the open constraints at their "
                   "threshold, nearly certified ones first, in searches of 1/16, 1/4 and "
                   "all of --bab-timeout (tighten: within half of the time left); tighten then "
                   "narrows every constraint whose gap, bound minus worst found, exceeds "
                   "--gap-tolerance (violated ones included) with the time left; decide "
                   "stops there")
    p.add_argument("--gap-tolerance", type=nonneg_float, default=_Default("bab.tolerance"),
                   metavar="G", help="--method bab: gap left alone")
    p.add_argument("--gap-rel-tolerance", type=fraction,
                   default=_Default("bab.rel_tolerance"), metavar="R",
                   help="--method bab: gap left alone, as a fraction in [0, 1) of the worst "
                   "value found (0.01: within 1%%), where larger than --gap-tolerance")
    p.add_argument("--memory-cap", type=positive_float, metavar="MB",
                   help="memory cap of the run, counted on top of what the process holds "
                   "once the case and the proxy are loaded (torch alone takes a few hundred "
                   "MB): stages shrink, fall back or leave constraints open to stay under it "
                   "(default: 80%% of the available memory; branch-and-bound's domain store "
                   "gets min(512, MB/2))")
    p.add_argument("--threads", type=int_range(1, MAX_WORKERS), default=1, metavar="N",
                   help="torch CPU threads for this run (the graphs are small and "
                   "extra threads mostly contend)")
    p.add_argument("--jobs", type=int_range(1, MAX_WORKERS), default=_Default("jobs"), metavar="N",
                   help="--method bab: searches of different constraints run side by side in "
                   "N worker processes, each with --threads threads (on a machine with N "
                   "free cores: about N times the searches in the same time)")
    p.add_argument("--radius", action=argparse.BooleanOptionalAction,
                   default=_Default("radius"),
                   help="for every constraint not certified over the region, the largest "
                   "box about the region's centre (a fraction of its half-widths, 0.71 down "
                   "to 0.0078) on which CROWN certifies it: loads nearer the centre are safe "
                   "(the 'radius' of each constraint in --json; a line under the table)")
    p.add_argument("--radius-steps", type=count(0), default=_Default("radius_steps"),
                   metavar="N",
                   help="bisection steps refining each radius between the ladder's values "
                   "(0: the ladder only, within a factor 1.41 of the largest radius that "
                   "certifies; 1: 1.19; 2: 1.09; 3: 1.044); a step costs one CROWN pass per "
                   "bracket")
    p.add_argument("--json", action="store_true", help="print the certificate as JSON")
    p.add_argument("--out", metavar="FILE", help="write the certificate JSON to FILE")
    p.add_argument("--checkpoint", metavar="FILE",
                   help="--method bab: save branch-and-bound's progress to FILE as it goes "
                   "(every 20 s and at the end); run the same command again to resume from "
                   "it: its bounds and worst loads are kept and its searches not repeated "
                   "(FILE must come from the same case, proxy, region, constraints, "
                   "thresholds and seed)")
    p.add_argument("--quiet", action="store_true", help="no progress bar and no table")
    add_layout_arguments(p)
    add_progress_flag(p)
    p.set_defaults(func=run_certify)


def _build_inputs(args: argparse.Namespace) -> tuple[Any, Any, Any, Any, Any]:
    from gridverify.cli._args import keep_outputs_from_args, layout_from_args
    from gridverify.errors import SpecError
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
    proxy = load_proxy(args.model, case=case, layout=layout_from_args(args),
                       onnx_keep_outputs=keep_outputs_from_args(args))
    spec = load_spec(args.spec, case) if args.spec is not None else None
    region = (parse_region(args.region, case) if args.region is not None
              else (spec.region if spec else None))
    cons = parse_constraints(args.constraints) if args.constraints is not None else (
        spec.constraints if spec else None
    )
    # resolve the selection now: bad component ids fail before any progress output
    cons = select_constraints(case, cons or ConstraintSelection())
    if not cons:
        raise SpecError("constraints: the selection is empty for this case")
    thr = spec.thresholds if spec else ThresholdSpec()
    if args.threshold is not None:
        try:
            over = parse_threshold(args.threshold)
        except SpecError as exc:
            raise SpecError(f"--threshold {args.threshold}: {exc}") from None
        thr = thr.overridden(over)
    return case, proxy, region, cons, thr


# flags whose empty value is an error (never the default the flag's absence gives)
_EMPTY_FLAGS: tuple[tuple[str, str, str], ...] = (
    ("region", "--region", "empty region (leave the flag out for the proxy's training "
     "region)"),
    ("spec", "--spec", "empty file name"),
    ("constraints", "--constraints", "empty selection (leave the flag out for all "
     "constraints)"),
    ("threshold", "--threshold", "empty value (leave the flag out for the default "
     "thresholds)"),
    ("out", "--out", "empty file name"),
    ("checkpoint", "--checkpoint", "empty file name"),
)


def _reject_empty_flags(args: argparse.Namespace) -> None:
    """SpecError naming the first flag given as an empty (or blank) string."""
    from gridverify.errors import SpecError

    for dest, flag, message in _EMPTY_FLAGS:
        value = getattr(args, dest, None)
        if value is not None and not str(value).strip():
            raise SpecError(f"{flag}: {message}")


# branch-and-bound's flags (dest, flag): said to be ignored by the other methods
_BAB_FLAGS = (("bab_timeout", "--bab-timeout"), ("bab_mode", "--bab-mode"),
              ("gap_tolerance", "--gap-tolerance"), ("gap_rel_tolerance", "--gap-rel-tolerance"),
              ("jobs", "--jobs"))


def run_certify(args: argparse.Namespace) -> int:
    """Handler of ``gridverify certify``; returns the exit status."""
    from gridverify.certify import certify
    from gridverify.cli._args import show_progress
    from gridverify.errors import SpecError
    from gridverify.fileio import check_output_path

    _reject_empty_flags(args)
    if args.method != "bab":
        given = [flag for dest, flag in _BAB_FLAGS if not isinstance(getattr(args, dest), _Default)]
        if given:
            print(f"gridverify: warning: {', '.join(given)}: only with --method bab; ignored "
                  f"by --method {args.method}", file=sys.stderr)
    _resolve_defaults(args)
    if args.out:
        check_output_path(args.out, "--out")
    if args.checkpoint:
        if args.method != "bab":
            raise SpecError("--checkpoint: only --method bab saves progress")
        check_output_path(args.checkpoint, "--checkpoint")
        if args.out and _same_file(args.out, args.checkpoint):
            raise SpecError(f"--out {args.out} and --checkpoint {args.checkpoint} name the same "
                            "file (the certificate would replace the progress); give two paths")
    import torch

    from gridverify.errors import one_printable_line

    torch.set_num_threads(args.threads)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        case, proxy, region, cons, thr = _build_inputs(args)
        opts = _options(args)
        run = functools.partial(certify, checkpoint=args.checkpoint)
        if show_progress(args, quiet=args.quiet or args.json):
            cert = _with_progress(run, case, proxy, region, cons, args.method, opts, thr)
        else:
            cert = run(case, proxy, region, constraints=cons, method=args.method,
                       options=opts, thresholds=thr)
    del caught  # certify's warnings are in cert.warnings
    for w in cert.warnings:
        print(one_printable_line(f"gridverify: warning: {w}"), file=sys.stderr)
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

    d = CertifyOptions()
    try:
        bab = replace(d.bab, timeout=args.bab_timeout, tolerance=args.gap_tolerance,
                      rel_tolerance=args.gap_rel_tolerance)
    except BabOptionsError as exc:
        raise SpecError(f"--bab-timeout/--gap-tolerance/--gap-rel-tolerance: {exc}") from None
    return CertifyOptions(timeout=args.timeout, samples=args.samples, attack=args.attack,
                          seed=args.seed, bab=bab, bab_mode=args.bab_mode, refine=args.refine,
                          bounds=replace(d.bounds, intermediate=args.intermediate),
                          jobs=args.jobs, threads=args.threads, radius=args.radius,
                          radius_steps=args.radius_steps).with_memory_cap(args.memory_cap)


def _with_progress(certify: Any, case: Any, proxy: Any, region: Any, cons: Any, method: str,
                   opts: Any, thr: Any) -> Any:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from gridverify._progress import progress_console

    console = progress_console()
    with Progress(TextColumn("[bold]certify[/bold] {task.description}"), BarColumn(),
                  TimeElapsedColumn(), console=console, transient=True) as bar:
        task = bar.add_task("starting", total=1.0)

        def cb(stage: str, frac: float) -> None:
            bar.update(task, description=stage, completed=frac)

        return certify(case, proxy, region, constraints=cons, method=method, options=opts,
                       thresholds=thr, progress=cb)


def _same_file(a: str, b: str) -> bool:
    """Whether the paths ``a`` and ``b`` name one file (existing or not)."""
    pa, pb = Path(a), Path(b)
    if pa.exists() and pb.exists():
        return os.path.samefile(pa, pb)
    return pa.resolve() == pb.resolve()


def _fmt(v: Any) -> str:
    """A number of the table, as the certificate's other views show it (``inf``: no
    finite bound)."""
    from gridverify._html import value_text

    return value_text(v, digits=3)


# Columns of the certify table: (wide header, compact header, justify, cell).  The
# compact headers keep the table within 80 columns; the wide ones are used when
# the console is wide enough for them.  A cell is ``cell(family, summary, threshold)``.
_Cell = Callable[[str, dict[str, Any], float], str]
_COLUMNS: tuple[tuple[str, str, str, _Cell], ...] = (
    ("family", "family", "left", lambda f, d, t: f),
    ("n", "n", "right", lambda f, d, t: str(d["count"])),
    ("certified", "cert", "right", lambda f, d, t: str(d["certified"])),
    ("violated", "viol", "right", lambda f, d, t: str(d["violated"])),
    ("open", "open", "right", lambda f, d, t: str(d["open"])),
    ("max bound", "bound", "right", lambda f, d, t: _fmt(d["max_upper_bound"])),
    ("max attained", "found", "right", lambda f, d, t: _fmt(d["max_attained"])),
    ("gap", "gap", "right", lambda f, d, t: _fmt(d["gap"])),
    ("threshold", "thr", "right", lambda f, d, t: _fmt(t)),
    ("unit", "unit", "left", lambda f, d, t: d["unit"]),
)
_LEGEND = ("bound: sound upper bound of the worst violation; found: worst violation attained "
           "by a load; thr: threshold")
# shown when the certificate has radii and the console has room for it
_RADIUS_COLUMN = ("radius", "rad", "right", lambda f, d, t: _radius_cell(d.get("radius")))
_RADIUS_LEGEND = ("; rad: every constraint of the family is certified on the box about the "
                  "region's centre with this fraction of its half-widths")


def _radius_cell(radius: float | None) -> str:
    from gridverify.certify.options import radius_text

    if radius is None:
        return "-"
    return "none" if radius <= 0 else ("1" if radius >= 1 else radius_text(radius))


def _table_width(headers: list[str], rows: list[list[str]]) -> int:
    """Characters the table of :func:`certify_table` needs (two spaces between columns)."""
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    return sum(widths) + 2 * (len(widths) - 1)


def certify_table(cert: Any, width: int) -> tuple[Any, int, str | None]:
    """The per-family table of a certificate for a console ``width`` columns wide, the
    width it needs, and the legend of its compact headers (``None`` with the wide ones).

    No cell is ever truncated or wrapped: the compact headers fit 80 columns; on a
    narrower console the table is printed wider than the console.  The family
    radius (``Certificate.families``) gets a column when the certificate has radii
    and the console has room for it (wide headers first, then compact ones).
    """
    from rich import box
    from rich.table import Table

    thr_by_fam: dict[str, float] = {}
    for c in cert.constraints:
        thr_by_fam[c.family] = max(thr_by_fam.get(c.family, -float("inf")), c.threshold)
    fams = cert.families(null_nonfinite=False)  # inf where there is no finite bound
    with_radius = any(d.get("radius") is not None for d in fams.values())
    layouts = [(cols, compact) for cols in ((*_COLUMNS, _RADIUS_COLUMN), _COLUMNS)
               if with_radius or cols is _COLUMNS for compact in (False, True)]
    for cols, compact in layouts:  # the first that fits, else the last (the narrowest)
        rows = [[cell(f, d, thr_by_fam[f]) for _, _, _, cell in cols] for f, d in fams.items()]
        headers = [c[1] if compact else c[0] for c in cols]
        needed = _table_width(headers, rows)
        if needed <= width:
            break
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False, padding=(0, 1, 0, 0))
    for header, (_, _, justify, _) in zip(headers, cols):
        table.add_column(header, justify=justify, no_wrap=True)
    for (_, d), row in zip(fams.items(), rows):
        style = "red" if d["violated"] else ("yellow" if d["open"] else "green")
        table.add_row(f"[{style}]{row[0]}[/{style}]", *row[1:])
    legend = None
    if compact:
        legend = _LEGEND + (_RADIUS_LEGEND if len(cols) > len(_COLUMNS) else "")
    return table, needed, legend


def _print_table(cert: Any) -> None:
    from rich.console import Console
    from rich.markup import escape

    console = Console(highlight=False)  # its width: the terminal's, else $COLUMNS, else 80
    console.print(f"{cert.case} | {_short_model(cert.model)} | {cert.region.describe()} | "
                  f"{cert.method}", markup=False)
    table, needed, legend = certify_table(cert, console.width)
    if needed > console.width:  # a console narrower than 80: wider than it, never cut
        console = Console(highlight=False, width=needed)
    console.print(table)
    if legend:
        console.print(legend, markup=False)
    s = cert.summary
    console.print(
        f"{s['certified']} certified, {s['violated']} violated, {s['open']} open "
        f"of {s['total']} constraints in {cert.seconds:.1f} s{_stage_text(cert)}"
    )
    for w in cert.warnings:
        if w.startswith(("timeout", "memory cap")):
            console.print(f"[yellow]incomplete: {escape(w)}[/yellow]")
    for note in (cert.radius_note(), cert.region_note()):
        if note:
            console.print(note, markup=False)
    hint = open_hint(cert)
    if hint:
        console.print(hint, markup=False)


def _stage_text(cert: Any) -> str:
    """`` (attack 28.4 s, bounds 4.5 s)``: the stages that took a tenth of the time or
    more, longest first (``provenance.stage_seconds``; empty without it)."""
    laps = cert.provenance.get("stage_seconds") or {}
    big = sorted(((v, k) for k, v in laps.items() if v >= 0.1 * cert.seconds and v > 0),
                 reverse=True)
    return f" ({', '.join(f'{k} {v:.1f} s' for v, k in big)})" if big else ""


def open_hint(cert: Any) -> str | None:
    """What to try when constraints stay open (``None`` when none is open).

    Names the proxy's unstable relus (:meth:`Certificate.relu_note`): through
    them every bound is loose, which is why an ordinary relu proxy leaves
    constraints open where a proxy trained with ``--stability-weight`` does not
    (docs/tightness.md).
    """
    n_open = cert.summary["open"]
    if not n_open:
        return None
    note = cert.relu_note()
    why = f" {note[0].upper()}{note[1:]}." if note else ""
    more = ("a longer --timeout" if cert.method == "bab"
            else "--method bab with a longer --timeout")
    are = "constraint is" if n_open == 1 else "constraints are"
    region = ("a narrower region" if cert.region.factors is not None else
              "a narrower region or one of loads that move together (--region scale:A,B, "
              "zones:A,B,K, load-factors:A,B, correlated:A,B,R)")
    relus = cert.provenance.get("proxy_relus") or {}
    stable = relus.get("total") and not relus.get("unstable")  # nothing left to stabilise
    train = "" if stable else ", or a proxy trained with `gridverify train --stability-weight`"
    return (f"hint: {n_open} {are} open (bound above the threshold, no violating load found)."
            f"{why} To close them: {more}{',' if train else ' or'} {region}{train} "
            "(see docs/tightness.md).")


def _short_model(model: str) -> str:
    """A bundled proxy by its name, any other model as given."""
    from pathlib import Path

    from gridverify.resources import bundled_models_dir

    try:
        rel = Path(model).absolute().relative_to(bundled_models_dir().absolute())
    except ValueError:
        return model
    return rel.parts[0] if rel.parts else model
