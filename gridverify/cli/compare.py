"""``gridverify compare OLD.json NEW.json``: two certificates of one case side by side.

Thin wrapper over :func:`gridverify.certify.compare.compare_certificates`.  Exit
status 0 when no constraint regressed, 1 when one did (certified before and
open or violated now, or open before and violated now) or lost its certificate
(certified before and absent now: the new certificate covers other constraints),
2 on bad input (a file that is no certificate, or whose statuses contradict their
numbers: see :meth:`gridverify.certify.Certificate.from_dict`).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

from gridverify._html import value_text

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Install the ``compare`` command."""
    p = subparsers.add_parser(
        "compare",
        help="compare two certificates of one case (regressions, improvements)",
        description=(
            "Read two certificates written by 'gridverify certify --out' (for instance of a "
            "proxy and of its retrained version, over the same region) and show, per "
            "constraint family, the status counts and worst values of both, then the "
            "constraints whose status changed: regressions (certified before, open or "
            "violated now; open before, violated now), lost certificates (certified before, "
            "absent now) and improvements.  Says where the two are not like for like (other "
            "constraint selections, regions, thresholds or methods).  Exit status 0 no "
            "regression, 1 a regression or a lost certificate, 2 bad input (a certificate "
            "whose statuses contradict its numbers too)."
        ),
        epilog=(
            "examples:\n"
            "  gridverify certify pglib_opf_case14_ieee --model old/ --out old.json\n"
            "  gridverify certify pglib_opf_case14_ieee --model new/ --out new.json\n"
            "  gridverify compare old.json new.json\n"
            "  gridverify compare old.json new.json --json --all"
        ),
    )
    p.add_argument("old", metavar="OLD.json", help="the certificate to compare against")
    p.add_argument("new", metavar="NEW.json", help="the new certificate")
    p.add_argument("--limit", type=_positive, default=20, metavar="N",
                   help="constraints listed per kind of change (default 20)")
    p.add_argument("--all", action="store_true",
                   help="list every changed constraint (with --json: every constraint)")
    p.add_argument("--plot", metavar="FILE.png", default=None,
                   help="also write a figure (.png, .svg or .pdf): each constraint's old "
                        "margin (bound - threshold) against its new one")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--quiet", action="store_true", help="print nothing (exit status only)")
    p.set_defaults(func=_run)


def _positive(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return n


def _read(path: str) -> Any:
    """A certificate file, or a study's job record (``OUT/jobs/ID.json``) holding one."""
    from gridverify.certify import Certificate
    from gridverify.errors import SpecError

    try:
        return Certificate.read(path)  # its errors name the file
    except UnicodeDecodeError:
        raise SpecError(f"{path}: not a certificate (not UTF-8 text)") from None
    except SpecError:
        rec = _job_record(path)
        if rec is None:
            raise
    if not isinstance(rec.get("certificate"), dict):
        raise SpecError(f"{path}: a study job record without a certificate (job "
                        f"{rec.get('job_id')!r}, state {rec.get('state')!r})")
    try:
        return Certificate.from_dict(rec["certificate"])
    except SpecError as exc:
        raise SpecError(f"{path}: its certificate: "
                        f"{str(exc).removeprefix('certificate: ')}") from None


def _job_record(path: str) -> dict[str, Any] | None:
    """The study job record ``path`` holds (``None`` when it is none)."""
    import json

    from gridverify.study.jobs import RECORD_FORMAT

    try:
        with open(path, encoding="utf-8") as f:
            rec = json.loads(f.read())
    except (OSError, ValueError):
        return None
    return rec if isinstance(rec, dict) and rec.get("format") == RECORD_FORMAT else None


def _run(args: argparse.Namespace) -> int:
    from gridverify.certify.compare import compare_certificates
    from gridverify.fileio import check_output_path

    if args.plot is not None:
        check_output_path(args.plot, "--plot")
        _plot_format(args.plot)
    diff = compare_certificates(_read(args.old), _read(args.new))
    if args.plot is not None:
        _write_plot(diff, args.plot)
    if args.quiet:  # the exit status only, --json or not
        pass
    elif args.json:
        print(json.dumps(diff.to_dict(every=args.all), allow_nan=False))
    else:
        _print(diff, None if args.all else args.limit)
    return 1 if diff.regressed else 0


def _arrow(a: Any, b: Any, fmt: str = "") -> str:
    """``a`` when equal, else ``a -> b``; numbers that ``fmt`` rounds alike get the
    digits that tell them apart (``1.2900e-08 -> 1.2901e-08``, not the same twice)."""
    def f(v: Any, spec: str) -> str:
        if v is None or (isinstance(v, float) and not math.isfinite(v)):
            return value_text(v)  # '-': absent; 'inf': no finite bound
        return format(v + 0.0 if isinstance(v, float) else v, spec)

    if a == b:
        return f(a, fmt)
    spec = fmt
    if fmt.endswith("g") and isinstance(a, float) and isinstance(b, float):
        digits = int(fmt[1:-1] or 6)
        while f(a, spec) == f(b, spec) and digits < 17:
            digits += 1
            spec = f".{digits}g"
    return f"{f(a, spec)} -> {f(b, spec)}"


def _print(diff: Any, limit: int | None) -> None:
    from rich import box
    from rich.console import Console
    from rich.table import Table

    from gridverify.cli.certify import _short_model, _table_width

    o, n = diff.old, diff.new
    headers = ["family", "cert", "viol", "open", "bound", "found", "unit"]
    rows, styles = [], []
    for fam, d in diff.families(null_nonfinite=False).items():
        a, b = d["old"] or {}, d["new"] or {}
        cells = [_arrow(a.get(k), b.get(k)) for k in ("certified", "violated", "open")]
        cells += [_arrow(a.get(k), b.get(k), ".3g") for k in ("max_upper_bound",
                                                              "max_attained")]
        rows.append([fam, *cells, (b or a).get("unit", "")])
        worse = any(c.kind == "regression" and c.family == fam for c in diff.changes)
        better = any(c.kind == "improvement" and c.family == fam for c in diff.changes)
        styles.append("red" if worse else ("green" if better else "default"))
    # the table fits the terminal: a cell "old -> new" wraps after its arrow where the
    # width asks for it; family names and units are never cut (wider than a terminal
    # narrower than them)
    console = Console(highlight=False)
    narrowest = _table_width(headers, [[r[0], *(c.split(" -> ")[0] for c in r[1:-1]), r[-1]]
                                       for r in rows])
    console = Console(highlight=False, width=max(console.width, narrowest))
    console.print(f"{o.case} | {_short_model(o.model)} ({o.method}) -> "
                  f"{_short_model(n.model)} ({n.method})", markup=False, soft_wrap=True)
    for note in diff.notes:
        console.print(f"note: {note}", style="yellow", markup=False, soft_wrap=True)
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False, padding=(0, 1, 0, 0))
    for h in headers:
        table.add_column(h, justify="left" if h in ("family", "unit") else "right",
                         no_wrap=h in ("family", "unit"))
    for row, style in zip(rows, styles):
        table.add_row(f"[{style}]{row[0]}[/{style}]", *row[1:])
    console.print(table)
    console.print("cert / viol / open: constraints certified, violated, open; bound: largest "
                  "sound upper bound of the family; found: largest violation found "
                  "(old -> new where they differ)", markup=False)
    c = diff.counts
    lost = diff.lost
    console.print(f"{c['regression']} regressed, {c['improvement']} improved, "
                  f"{c['unchanged']} unchanged" + "".join(
                      f", {c[k]} {k}" for k in ("added", "removed") if c[k])
                  + (f" ({len(lost)} of them certified before: lost certificates)"
                     if lost else ""), markup=False, soft_wrap=True)
    sections = (("regression", "regressions", "red"),
                ("lost", "lost certificates: certified in the old certificate, absent from "
                         "the new one", "red"),
                ("improvement", "improvements", "green"),
                ("added", "only in the new certificate", "default"),
                ("removed", "only in the old certificate", "default"))
    for kind, title, style in sections:
        changed = lost if kind == "lost" else [
            ch for ch in diff.of_kind(kind) if not ch.lost]
        if not changed:
            continue
        console.print(f"[{style}]{title}[/{style}] (status, bound, found):")
        for ch in changed[:limit]:
            a, b = ch.old, ch.new
            status = _arrow(a.status if a else "absent", b.status if b else "absent")
            console.print(
                f"  {ch.name:<16} {status}  "
                f"bound {_arrow(a and a.upper_bound, b and b.upper_bound, '.3g')}  "
                f"found {_arrow(a and a.attained, b and b.attained, '.3g')}", markup=False,
                soft_wrap=True)
        if limit is not None and len(changed) > limit:
            console.print(f"  ... {len(changed) - limit} more (--all lists them)")


_PLOT_FORMATS = ("png", "svg", "pdf")


def _plot_format(path: str) -> str:
    """The figure format named by ``path``'s extension; SpecError for another one."""
    from gridverify.errors import SpecError

    ext = Path(path).suffix.lower().lstrip(".")
    if ext not in _PLOT_FORMATS:
        raise SpecError(f"--plot {path}: expected a .png, .svg or .pdf file name")
    return ext


def _write_plot(diff: Any, path: str) -> None:
    import gridverify.display  # noqa: F401 - registers the figure
    from gridverify.fileio import atomic_write_bytes
    from gridverify.report.figures import _plt, save_figure

    fig = diff.plot()
    data = save_figure(fig, _plot_format(path), dpi=110)  # the same bytes each time
    _plt().close(fig)
    atomic_write_bytes(path, data, fsync=False)
