"""``gridverify study``, ``gridverify report`` and ``gridverify completion``.

Exit status of ``study run``: 0 every constraint of every job certified, 1 a
violation found, 3 some constraint open or a job failed, 2 bad input (the
study file is checked before any job starts).
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["completion_script", "register"]

_EXIT = "exit status: 0 all certified, 1 a violation found, 3 some open or a job failed, " \
        "2 bad input"

_STUDY_EPILOG = f"""\
examples:
  gridverify study check studies/demo.toml
  gridverify study run studies/demo.toml --out reports/demo --workers 2
  gridverify study run studies/demo.toml --out reports/demo --executor ray --workers 4
  gridverify study run studies/demo.toml --executor ray --address ray://head:10001

A killed study resumes: run the same command again; finished jobs are skipped.
Study file format: docs/study.md (an example: studies/demo.toml); the spec
tables of a study (regions, constraints, thresholds) as in docs/spec.md.
{_EXIT}
"""

_REPORT_EPILOG = """\
examples:
  gridverify report reports/demo          re-render index.md, index.html and figures
  gridverify report reports/demo --json   summary table as JSON
exit status: like `study run` (from the stored results); 2 bad input, or damaged
stored files (named; `study run` runs their jobs again)
"""

_COMPLETION_EPILOG = """\
examples:
  source <(gridverify completion bash)                     # this shell
  gridverify completion bash > ~/.local/share/bash-completion/completions/gridverify
  source <(gridverify completion zsh)                      # zsh (bashcompinit): a line
                                                           # of ~/.zshrc, not an fpath file
"""


def register(sub: Any) -> None:
    """Install ``study`` (run, check), ``report`` and ``completion``."""
    from gridverify.cli._args import add_progress_flag, int_range, positive_float
    from gridverify.sysmem import MAX_WORKERS

    fmt = argparse.RawDescriptionHelpFormatter
    p = sub.add_parser("study", help="run batch certification studies (cases x models x "
                       "regions x constraint sets x methods)",
                       description="Batch certification studies from a TOML study file.",
                       epilog=_STUDY_EPILOG, formatter_class=fmt)
    ssub = p.add_subparsers(dest="study_command", metavar="SUBCOMMAND")
    run = ssub.add_parser("run", help="run every job of a study (resumes a killed one)",
                          description="Run every job of a study in parallel; each job's "
                          "certificate is written as soon as it ends; then render the report.",
                          epilog=_STUDY_EPILOG, formatter_class=fmt)
    run.add_argument("study", metavar="STUDY.toml", help="study file")
    run.add_argument("--out", metavar="DIR", help="output folder (default reports/NAME)")
    run.add_argument("--executor", choices=("local", "ray"), default="local",
                     help="local process pool (default) or a Ray cluster")
    run.add_argument("--address", metavar="ADDR",
                     help="Ray cluster address (default: start a local one for the run)")
    run.add_argument("--workers", type=int_range(1, MAX_WORKERS), default=1, metavar="K",
                     help="jobs in parallel")
    run.add_argument("--memory-cap", type=positive_float, metavar="MB",
                     help="memory cap of each job (see gridverify certify --memory-cap); "
                     "default on this machine: 80%% of the available memory, split between "
                     "the --workers")
    run.add_argument("--no-report", action="store_true", help="do not render the report")
    run.add_argument("--json", action="store_true", help="print the outcome as JSON")
    run.add_argument("--quiet", action="store_true", help="no progress bar and no table")
    add_progress_flag(run)
    run.set_defaults(func=run_study_cmd)
    chk = ssub.add_parser("check", help="check a study file and list its jobs (runs nothing)",
                          epilog=_STUDY_EPILOG, formatter_class=fmt)
    chk.add_argument("study", metavar="STUDY.toml", help="study file")
    chk.add_argument("--json", action="store_true", help="print the jobs as JSON")
    chk.add_argument("--quiet", action="store_true", help="print nothing (exit status only)")
    chk.set_defaults(func=check_study_cmd)
    p.set_defaults(func=lambda args: _usage(p))

    rp = sub.add_parser("report", help="re-render a study's report from its stored results",
                        description="Render index.md, index.html (self-contained) and the "
                        "figures of a study folder from its stored job files.",
                        epilog=_REPORT_EPILOG, formatter_class=fmt)
    rp.add_argument("folder", metavar="DIR", help="study output folder (reports/NAME)")
    rp.add_argument("--json", action="store_true", help="print the summary as JSON")
    rp.add_argument("--quiet", action="store_true", help="print nothing")
    rp.set_defaults(func=report_cmd)

    cp = sub.add_parser("completion", help="print a shell completion script (bash or zsh)",
                        epilog=_COMPLETION_EPILOG, formatter_class=fmt)
    cp.add_argument("shell", choices=("bash", "zsh"), help="shell")
    cp.set_defaults(func=completion_cmd)


def _usage(p: argparse.ArgumentParser) -> int:
    p.print_help(sys.stderr)
    return 2


def _warn(message: str) -> None:
    """A one-line warning on stderr."""
    from gridverify.cli._args import stderr_line

    stderr_line(message, "warning")


def _progress_runner(spec: Any, out: Path, opts: Any, show: bool,
                     after: Callable[[Any], object]) -> Any:
    from gridverify.study.runner import run_study

    if not show:
        return run_study(spec, out, opts, warn=_warn, after=after)
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from gridverify._progress import progress_console

    console = progress_console()
    with Progress(TextColumn("[bold]study[/bold] {task.description}"), BarColumn(),
                  MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("left"),
                  TimeRemainingColumn(), console=console) as bar:
        task = bar.add_task(spec.name, total=None)

        def cb(ev: Any) -> None:
            desc = (f"{spec.name}: {ev.done} done ({ev.skipped} earlier), {ev.running} running, "
                    f"[red]{ev.failed} failed[/red]" if ev.failed else
                    f"{spec.name}: {ev.done} done ({ev.skipped} earlier), {ev.running} running, "
                    "0 failed")
            bar.update(task, description=desc, total=ev.total, completed=ev.done + ev.failed)

        return run_study(spec, out, opts, progress=cb, warn=_warn, after=after)


def run_study_cmd(args: argparse.Namespace) -> int:
    """Handler of ``gridverify study run``."""
    from gridverify.cli._args import show_progress
    from gridverify.fileio import check_output_path
    from gridverify.report import render_report
    from gridverify.study.executors import ExecutorOptions
    from gridverify.study.spec import load_study

    opts = ExecutorOptions(args.executor, args.workers, args.address,
                           memory_cap_mb=args.memory_cap)  # checks the options
    spec = load_study(args.study)
    out = check_output_path(args.out if args.out is not None else Path("reports") / spec.name,
                            "--out", folder=True)
    show = show_progress(args, quiet=args.quiet or args.json)
    rendered: list[Any] = []

    def report(_run: Any) -> None:  # under the folder's lock: no other run writes meanwhile
        if not args.no_report:
            cmd = "gridverify study run " + " ".join(shlex.quote(a) for a in _argv_tail(args, out))
            rendered.append(render_report(out, command=cmd))

    run = _progress_runner(spec, out, opts, show, report)
    files = rendered[0] if rendered else None
    if args.json:
        print(json.dumps({
            "study": spec.name, "out": str(out), "jobs": len(run.jobs), "ran": list(run.ran),
            "skipped": list(run.skipped), "failed": list(run.failed),
            "damaged": list(run.damaged),
            "seconds": run.seconds, "exit_status": run.exit_status,
            "report": None if files is None else {"markdown": str(files.markdown),
                                                  "html": str(files.html)},
        }, allow_nan=False))
    elif not args.quiet:
        _print_jobs(out)
        print(f"{len(run.ran)} jobs ran, {len(run.skipped)} skipped (finished before), "
              f"{len(run.failed)} failed in {run.seconds:.1f} s; results in {out}"
              + (f"; report {files.markdown}" if files else ""))
    if (args.json or args.quiet) and run.failed:  # errors are said however quiet
        _print_failures(out)
    return run.exit_status


def _argv_tail(args: argparse.Namespace, out: Path) -> list[str]:
    tail = [args.study, "--out", str(out)]
    if args.executor != "local":
        tail += ["--executor", args.executor]
    if args.address:
        tail += ["--address", args.address]
    if args.workers != 1:
        tail += ["--workers", str(args.workers)]
    if args.memory_cap is not None:
        tail += ["--memory-cap", f"{args.memory_cap:g}"]
    return tail


def check_study_cmd(args: argparse.Namespace) -> int:
    """Handler of ``gridverify study check``: exit 0 when the file is valid."""
    from gridverify.study.jobs import expand_jobs
    from gridverify.study.spec import load_study

    spec = load_study(args.study)
    jobs = expand_jobs(spec)
    if args.json:
        print(json.dumps({"study": spec.name, "jobs": [j.id for j in jobs]}))
    elif not args.quiet:
        print(f"study {spec.name}: {len(jobs)} jobs "
              f"({len(spec.cases)} cases, {len(spec.methods)} methods)")
        for j in jobs:
            print(f"  {j.describe()}")
    return 0


def _exit_from_results(res: Any) -> int:
    codes = [r.get("exit_status") for r in res.done]
    if 1 in codes:
        return 1
    if res.failed or 3 in codes or len(res.done) < len(res.records):
        return 3
    return 0


def report_cmd(args: argparse.Namespace) -> int:
    """Handler of ``gridverify report``."""
    from gridverify.errors import StudyError
    from gridverify.report import render_report
    from gridverify.study.results import load_results
    from gridverify.study.storage import StudyStore

    folder = Path(args.folder)
    if not folder.exists():
        raise StudyError(f"{folder}: no such study folder")
    if not folder.is_dir():
        raise StudyError(f"{folder}: not a study folder but a file (give the folder that "
                         "`study run --out` wrote)")
    res = load_results(folder)
    # the report says how the results were made, in paths that work from here (none
    # when the study file cannot be found from here: no command is better than a wrong one)
    source = StudyStore(folder).study_source()
    cmd = None
    if source is not None and Path(source).is_file():
        cmd = (f"gridverify study run {shlex.quote(_from_here(source))} "
               f"--out {shlex.quote(_from_here(folder))}")
    files = render_report(folder, command=cmd, results=res)
    if args.json:
        summ = res.summary_frame()
        print(json.dumps({
            "study": res.name, "markdown": str(files.markdown), "html": str(files.html),
            "summary": _json_records(summ),
        }))
    elif not args.quiet:
        _print_jobs(folder, res)
        print(f"report: {files.markdown} and {files.html}")
    return _exit_from_results(res)


def _json_records(frame: Any) -> list[dict[str, Any]]:
    """The rows of a DataFrame as JSON objects, numbers at full precision (pandas'
    ``to_json`` rounds to a fixed count of decimals: a bound of 4.9e-11 read 0.0),
    NaN and infinities as null."""
    import pandas as pd

    def plain(v: Any) -> Any:
        v = v.item() if hasattr(v, "item") else v
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, (str, bool, int, float)) or not pd.api.types.is_scalar(v):
            return v
        return None if pd.isna(v) else v

    return [{str(k): plain(v) for k, v in row.items()} for row in frame.to_dict("records")]


def _from_here(path: str | Path) -> str:
    """``path`` relative to the current directory when it lies below it, else absolute."""
    p = Path(path).resolve()
    try:
        return str(p.relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(p)


def _print_jobs(folder: Path, res: Any = None) -> None:
    from rich import box
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from gridverify.study.results import load_results

    res = res if res is not None else load_results(folder)
    df = res.jobs_frame()
    console = Console()
    if not console.is_terminal:
        console = Console(width=130)
    table = Table(title=f"study {res.name}", box=box.SIMPLE_HEAD)
    for col in ("case", "model", "region", "set", "method", "state", "cert", "viol", "open",
                "s"):
        table.add_column(col, justify="left" if col in ("case", "model", "region", "set",
                                                        "method", "state") else "right")
    for _, r in df.iterrows():
        st = r.state
        style = "red" if st == "failed" or (r.violated or 0) else (
            "yellow" if (r.open or 0) or st != "done" else "green")
        table.add_row(*(escape(str(v)) for v in (r.case, r.model, r.region, r.constraint_set)),
                      r.method,
                      f"[{style}]{st}[/{style}]",
                      *(("-" if v is None or v != v else str(int(v)))
                        for v in (r.certified, r.violated, r.open)),
                      "-" if r.seconds is None or r.seconds != r.seconds else f"{r.seconds:.1f}")
    console.print(table)
    _print_failures(folder, res)  # why, where the table has no room


def _print_failures(folder: Path, res: Any = None) -> None:
    """On stderr, one line per failed job of the study in ``folder``: why it failed."""
    from gridverify.errors import one_printable_line
    from gridverify.study.results import load_results

    df = (res if res is not None else load_results(folder)).jobs_frame()
    for _, r in df[df.state == "failed"].iterrows():
        why = str(r.error).strip() or "no error recorded"
        print(one_printable_line(f"gridverify: job {r.job_id} ({r.case}, {r.model}, "
                                 f"{r.region}) failed: {why}"), file=sys.stderr)


def completion_cmd(args: argparse.Namespace) -> int:
    """Handler of ``gridverify completion``."""
    sys.stdout.write(completion_script(args.shell))
    return 0


def _walk(parser: argparse.ArgumentParser, path: tuple[str, ...],
          out: dict[tuple[str, ...], dict[str, Any]]) -> None:
    opts, subs, choices = [], [], {}
    takes_case = takes_file = takes_model = False
    for act in parser._actions:  # argparse has no public API for this
        positional = not act.option_strings and not isinstance(act, argparse._SubParsersAction)
        if positional and act.dest == "case":
            takes_case = True
        elif positional and not act.choices:  # a file, folder or model argument
            takes_file = True
            takes_model = takes_model or act.metavar == "MODEL"
        if isinstance(act, argparse._SubParsersAction):
            for name, sp in act.choices.items():
                subs.append(name)
                _walk(sp, path + (name,), out)
        elif act.option_strings:
            opts += act.option_strings
            if act.choices:
                for o in act.option_strings:
                    choices[o] = [str(c) for c in act.choices]
        elif act.choices:
            subs += [str(c) for c in act.choices]
    out[path] = {"opts": opts, "subs": subs, "choices": choices, "case": takes_case,
                 "file": takes_file or takes_case, "model": takes_model}


def completion_script(shell: str) -> str:
    """A bash (or zsh, through bashcompinit) completion script for every command and option."""
    from gridverify.cli import build_parser

    tree: dict[tuple[str, ...], dict[str, Any]] = {}
    _walk(build_parser(), (), tree)
    paths = sorted(tree)
    lines = [
        "# gridverify shell completion (generated by `gridverify completion "
        f"{shell}`)",
    ]
    if shell == "zsh":
        lines += ["autoload -U +X compinit && compinit",
                  "autoload -U +X bashcompinit && bashcompinit"]
    lines += [
        "_gridverify() {",
        '  local cur prev _gv_path i w _gv_words _gv_files=0',
        '  cur="${COMP_WORDS[COMP_CWORD]}"',
        '  prev="${COMP_WORDS[COMP_CWORD-1]}"',
        '  _gv_path=""',
        '  for ((i=1; i<COMP_CWORD; i++)); do',
        '    w="${COMP_WORDS[i]}"',
        '    case " $(_gridverify_paths) " in',
        '      *" ${_gv_path:+$_gv_path/}$w "*) _gv_path="${_gv_path:+$_gv_path/}$w" ;;',
        '    esac',
        '  done',
        '  case "$prev" in',
    ]
    from gridverify.grid.case import list_bundled_cases
    from gridverify.resources import list_bundled_models

    # names of the bundled cases and proxies, completed along with file names
    lines += [
        f'    --case) COMPREPLY=($(compgen -W "{" ".join(list_bundled_cases())}" -- "$cur") '
        '$(compgen -f -- "$cur")); return ;;',
        f'    --model) COMPREPLY=($(compgen -W "{" ".join(list_bundled_models())}" -- "$cur") '
        '$(compgen -f -- "$cur")); return ;;',
    ]
    seen_opt: dict[str, list[str]] = {}
    for p in paths:
        for o, ch in tree[p]["choices"].items():
            seen_opt.setdefault(o, ch)
    for o, ch in sorted(seen_opt.items()):
        lines.append(f'    {o}) COMPREPLY=($(compgen -W "{" ".join(ch)}" -- "$cur")); return ;;')
    lines += ['  esac', '  case "$_gv_path" in']
    for p in paths:
        words = tree[p]["subs"] + tree[p]["opts"]
        if tree[p]["case"]:
            words += list_bundled_cases()
        if tree[p]["model"]:
            words += list_bundled_models()
        lines.append(f'    "{"/".join(p)}") _gv_words="{" ".join(words)}"; '
                     f'_gv_files={int(tree[p]["file"])} ;;')
    lines += [
        '  esac',
        '  COMPREPLY=($(compgen -W "$_gv_words" -- "$cur"))',
        '  if [[ "$cur" != -* && "$_gv_files" == 1 ]]; then',  # a file argument: files too
        '    COMPREPLY+=($(compgen -f -- "$cur"))',
        '  elif [[ ${#COMPREPLY[@]} -eq 0 && "$cur" != -* ]]; then',
        '    COMPREPLY=($(compgen -f -- "$cur"))',
        '  fi',
        '}',
        "_gridverify_paths() {",
        f'  echo "{" ".join("/".join(p) for p in paths if p)}"',
        "}",
        "complete -o filenames -F _gridverify gridverify",
        "",
    ]
    return "\n".join(lines)
