"""``gridverify dataset``: make OPF datasets (``dataset make``) and describe them.

``dataset make CASE --samples N --out FILE.h5 [--region box:0.9,1.1 |
pglearn:0.8,1.2,0.1] [--seed S] [--workers K]`` samples loads, solves every
AC-OPF and writes the HDF5 schema of :mod:`gridverify.opf.dataset` (also in
docs/dataset.md).  ``--workers`` is capped at the CPUs here and the number of
samples (a note on stderr says so); a dataset too large for this machine's
memory or disk is refused before anything is written.  Re-running the same
command on an existing file resumes it.
Exit status 0 when every sample is done (whatever its solver status), 2 on bad
input.  ``dataset info FILE.h5 [--json]`` prints the attributes and status
counts.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

__all__ = ["register"]


def _make(args: argparse.Namespace) -> int:
    from gridverify.cli._args import show_progress
    from gridverify.cli.opf import solver_options_from_args
    from gridverify.fileio import check_output_path
    from gridverify.grid import load_compiled
    from gridverify.opf.dataset import check_dataset_size, make_dataset, max_workers
    from gridverify.opf.samplers import sampler_from_spec

    out = check_output_path(args.out, "--out")  # an existing dataset is resumed in place
    sampler = sampler_from_spec(args.region, "--region")
    options = solver_options_from_args(args)
    case = load_compiled(args.case, emit_warnings=False)
    if not out.exists():
        check_dataset_size(case, args.samples, out, "--samples")
    workers = min(args.workers, max_workers(), args.samples)
    if workers < args.workers:
        limits = [f"the {max_workers()} CPUs here"] if args.workers > max_workers() else []
        if args.workers > args.samples:
            limits.append(f"the {args.samples} samples")
        print(f"gridverify: note: --workers {args.workers} is more than "
              f"{' and '.join(limits)}; using {workers} worker process"
              f"{'es' if workers > 1 else ''}", file=sys.stderr)
    d = make_dataset(
        case,
        args.samples,
        args.out,
        sampler=sampler,
        seed=args.seed,
        workers=workers,
        options=options,
        progress=show_progress(args, quiet=args.json),
    )
    summary = d.summary()
    if args.json:
        print(json.dumps(summary))
    else:
        counts = ", ".join(f"{k} {v}" for k, v in summary["status_counts"].items() if v)
        print(f"{args.out}: {summary['n_done']}/{d.n_samples} samples done ({counts})")
    counts = summary["status_counts"]
    if summary["n_done"] and not counts.get("optimal"):
        if counts.get("max_iter") == summary["n_done"]:  # the limits, not the case
            why = ("every solve stopped at its iteration or time limit (raise --max-iter or "
                   "--time-limit)")
        else:
            why = (f"the AC-OPF of {args.case} may be infeasible over the region (try "
                   f"`gridverify opf solve {args.case}`)")
        print(f"gridverify: warning: no sample of {args.out} solved to optimality; {why}",
              file=sys.stderr)
    return 0 if summary["n_done"] == d.n_samples else 1


def _info(args: argparse.Namespace) -> int:
    from gridverify.opf.dataset import load_dataset

    d = load_dataset(args.file)
    summary = d.summary()
    if args.json:
        print(json.dumps(summary))
        return 0
    from rich.console import Console

    from gridverify.cli._table import field_table

    keys = ("case_name", "case_hash", "sampler", "seed", "n_samples", "n_done", "n_solved",
            "n_load", "n_gen", "n_bus", "solver_name", "solver_version",
            "gridverify_version", "mean_solve_seconds")
    rows = [(k, json.dumps(v) if isinstance(v, dict) else v)
            for k, v in ((k, summary.get(k)) for k in keys)]
    table = field_table(f"OPF dataset {args.file}", rows)
    table.add_row("status", ", ".join(f"{k} {v}" for k, v in summary["status_counts"].items()))
    Console().print(table)
    return 0


def register(subparsers: Any) -> None:
    """Install ``gridverify dataset make`` and ``gridverify dataset info``."""
    from gridverify.cli._args import add_case_argument, add_progress_flag, count, int_range, seed
    from gridverify.cli.opf import add_solver_arguments
    from gridverify.sysmem import MAX_WORKERS

    p = subparsers.add_parser("dataset", help="make and inspect OPF datasets (HDF5)")
    sub = p.add_subparsers(dest="dataset_command", metavar="SUBCOMMAND", parser_class=type(p))
    sub.required = True
    m = sub.add_parser(
        "make",
        help="sample loads, solve each AC-OPF, write HDF5",
        description="Sample N load vectors in a region around the nominal loads, solve "
        "each AC-OPF and write FILE.h5. Re-running the same command resumes a killed run.",
    )
    add_case_argument(m)
    m.add_argument("--samples", type=count(1), required=True, metavar="N",
                   help="number of samples")
    m.add_argument("--out", required=True, metavar="FILE.h5", help="output HDF5 file")
    m.add_argument(
        "--region",
        default="box:0.9,1.1",
        help="box:LOW,HIGH (per-load factor) or pglearn:A,B,R (global factor in [A,B] "
        "times per-load noise 1+U(-R,R))",
    )
    m.add_argument("--seed", type=seed, default=0, help="random seed")
    m.add_argument("--workers", type=int_range(1, MAX_WORKERS), default=1,
                   help="worker processes; at most one per CPU and one per sample (more "
                        "are capped, with a note on stderr)")
    m.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    add_progress_flag(m)
    add_solver_arguments(m)
    m.set_defaults(func=_make)
    i = sub.add_parser("info", help="describe an OPF dataset file")
    i.add_argument("file", metavar="FILE.h5", help="a dataset made by `dataset make`")
    i.add_argument("--json", action="store_true", help="print one JSON object")
    i.set_defaults(func=_info)
