"""``gridverify vnncomp``: run VNN-COMP instances (ONNX + VNN-LIB).

``vnncomp run MODEL.onnx PROPERTY.vnnlib --timeout S --out RESULT`` writes the
competition's result file; ``vnncomp batch BENCHMARK_DIR --out results.csv``
runs every row of ``instances.csv`` and prints a summary.

``python -m gridverify.cli.vnncomp ...`` runs the same commands with a light
start-up: only this command group is loaded (the full CLI imports every command
module, e.g. the OPF stack), which matters when the start-up is most of an easy
instance's time.  The competition scripts use this entry.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

__all__ = ["main", "register"]

_EXIT = {"unsat": 0, "sat": 1, "unknown": 3, "timeout": 3}
_KINDS = ("balance_all", "thermal_one", "gen_limits", "voltage_limits", "balance_one")
#: the untrained proxy of make-instances (without --model)
_HIDDEN = (32, 32)
_ACTIVATION = "relu"


def register(subparsers: argparse._SubParsersAction) -> None:
    """Install the ``vnncomp`` command group."""
    from gridverify.cli._args import (
        add_case_argument,
        add_layout_arguments,
        add_progress_flag,
        hidden_sizes,
        positive_float,
        seed,
    )
    from gridverify.proxy.options import ACTIVATIONS
    p = subparsers.add_parser(
        "vnncomp",
        help="run VNN-COMP instances (ONNX model + VNN-LIB property)",
        description="Run VNN-COMP instances: ONNX models with VNN-LIB properties.",
    )
    sub = p.add_subparsers(dest="vnncomp_command", metavar="SUBCOMMAND")

    run = sub.add_parser(
        "run",
        help="decide one instance and write the result file",
        description=(
            "Decide one instance: writes unsat, sat with a counterexample confirmed by "
            "onnxruntime, unknown or timeout.  Exit status 0 unsat, 1 sat, 3 unknown/timeout, "
            "2 bad input.  unsat is proved for the function the graph's stored weights "
            "define in exact arithmetic (the bounds are rounded outward for that); the "
            "rounding of a float32 runtime evaluating the graph is not modelled, so on a "
            "float32 model onnxruntime can exceed a proved bound by its own rounding "
            "(about 1e-7 of the magnitudes the graph adds up; more where a sum cancels "
            "large terms), as with the other verifiers of the competition.  Floor, a "
            "step, is bounded over its input widened by 2^-17 of its magnitude, so that "
            "such rounding does not move it to the next step unseen."
        ),
    )
    run.add_argument("onnx", help="the ONNX model (.onnx or .onnx.gz)")
    run.add_argument("vnnlib", help="the VNN-LIB property (.vnnlib or .vnnlib.gz)")
    run.add_argument("result", nargs="?", metavar="RESULT",
                     help="the result file to write, right after VNNLIB (or --out "
                     "anywhere)")
    run.add_argument("--timeout", type=positive_float, required=True, help="seconds")
    run.add_argument("--out", help="the result file to write (or RESULT)")
    run.add_argument(
        "--started-at",
        type=float,
        default=None,
        help="epoch seconds when the timeout started (default: now); scripts pass the "
        "launch time so that interpreter start-up counts against the timeout",
    )
    _common(run)
    run.set_defaults(func=_run)

    batch = sub.add_parser(
        "batch",
        help="run every instance of a benchmark folder",
        description="Run every row (onnx,vnnlib,timeout) of BENCHMARK_DIR/instances.csv. "
        "A row whose files cannot be read or parsed is recorded as error and the others "
        "still run; the results CSV is rewritten after every row. A stopped run resumes: "
        "the same command again keeps the rows --out already holds for the same "
        "instances (errors run again) and runs the others (--fresh: every row).",
        epilog="exit status: 0 done (rows that error or time out are counted in the "
        "summary), 1 a result contradicts --expected, 2 bad input (the folder, the CSV, "
        "the options)",
    )
    batch.add_argument("benchmark_dir", help="benchmark folder (instances.csv, onnx/, vnnlib/)")
    batch.add_argument("--instances", help="instances CSV (default BENCHMARK_DIR/instances.csv)")
    batch.add_argument(
        "--timeout-scale",
        type=positive_float,
        default=1.0,
        help="multiply every timeout by this",
    )
    batch.add_argument("--expected", help="CSV onnx,vnnlib,expected-result to score against")
    batch.add_argument("--out", required=True,
                       help="results CSV (onnx,vnnlib,result,seconds,detail)")
    batch.add_argument("--fresh", action="store_true",
                       help="run every row again, replacing the results --out holds "
                       "(default: keep them and run the rest)")
    add_progress_flag(batch)
    _common(batch)
    batch.set_defaults(func=_batch)

    mk = sub.add_parser(
        "make-instances",
        help="write ACOPF instances of our own (proxy + physics in one ONNX graph)",
        description=(
            "Export a proxy with the AC physics to ONNX and write properties of five kinds "
            "(power balance at every bus, thermal limit of one line, generator limits, "
            "voltage limits, power balance at one bus) over small and large load boxes, "
            "each violated and holding, with instances.csv and expected.csv.  A folder "
            "grows by appending: the model is onnx/<case>_<proxy>.onnx, or "
            "onnx/<case>_<proxy>_<sha8>.onnx (first 8 hex digits of the SHA-256 of the "
            "exported graph) when a file of that name holds another graph, so an earlier "
            "graph and its properties are never replaced; the same graph again reuses its "
            "file."
        ),
    )
    add_case_argument(mk)
    mk.add_argument("--out", required=True, help="benchmark folder to write (appends)")
    mk.add_argument(
        "--model",
        help="a proxy (model directory, checkpoint or .onnx); "
        "default: an untrained seeded proxy with the clamp head",
    )
    add_layout_arguments(mk)
    mk.add_argument("--hidden", type=hidden_sizes, default=None,
                    help="hidden sizes of the untrained proxy, without --model (default "
                    f"{','.join(map(str, _HIDDEN))})")
    mk.add_argument("--activation", default=None, choices=ACTIVATIONS,
                    help=f"activation of the untrained proxy, without --model (default "
                    f"{_ACTIVATION})")
    mk.add_argument(
        "--widths",
        default="0.01,0.2",
        help="relative half-widths of the load boxes",
    )
    mk.add_argument("--kinds", default=",".join(_KINDS),
                    help=f"property kinds, comma separated (default: all of {' '.join(_KINDS)})")
    mk.add_argument("--timeout", type=positive_float, default=60.0,
                    help="timeout per instance, s (written to instances.csv)")
    mk.add_argument("--seed", type=seed, default=0,
                    help="seed of the untrained proxy and of the sampling")
    mk.add_argument(
        "--alpha",
        action="store_true",
        help="also use alpha-CROWN for the holding thresholds (slower, tighter)",
    )
    mk.add_argument(
        "--open",
        action="store_true",
        help="add a property per kind with the threshold between the worst case "
        "found and the bound (answer unknown in advance)",
    )
    mk.add_argument(
        "--exact",
        action="store_true",
        help="cross-check thermal_one/balance_one with SCIP (small cases) and let it decide "
        "the open variants",
    )
    mk.add_argument(
        "--nonlinear",
        choices=("smooth", "lut"),
        default="smooth",
        help="lut: replace sin, cos, sigmoid (and tanh, erf, exp) by ReLU lookup tables "
        "(piecewise-linear interpolation, written as weighted sums of Relu(x - t_k)); "
        "the model is then <name>_lut.onnx",
    )
    mk.add_argument(
        "--lut-points",
        type=int,
        default=None,
        help="grid points per lookup table (default 32; only with --nonlinear lut)",
    )
    mk.set_defaults(func=_make)

    def _help(args: argparse.Namespace) -> int:
        p.print_help()
        return 2

    p.set_defaults(func=_help)


def _common(p: argparse.ArgumentParser) -> None:
    from gridverify.cli._args import count, positive_float, seed

    p.add_argument("--device", default="cpu", help="torch device: cpu, cuda, cuda:N, auto")
    p.add_argument("--seed", type=seed, default=0, help="attack seed")
    p.add_argument(
        "--bounds",
        default="alpha-crown",
        choices=["none", "ibp", "crown", "alpha-crown"],
        help="bound method",
    )
    p.add_argument("--no-bab", action="store_true", help="skip branch-and-bound")
    p.add_argument(
        "--no-extend-attack",
        action="store_true",
        help="answer unknown instead of attacking until the timeout",
    )
    p.add_argument("--attack-restarts", type=count(1), default=16,
                   help="random restarts of the gradient attack")
    p.add_argument("--attack-steps", type=count(0), default=50,
                   help="steps of each attack restart (0: its random starts only)")
    p.add_argument("--memory-cap", type=positive_float, metavar="MB",
                   help="memory an instance may allocate once loaded: bound row chunks "
                   "shrink to fit, a bound method that does not fit is skipped, "
                   "branch-and-bound's domain store gets half of what is left "
                   "(at most 512 MB); default 80%% of the available memory")


def _options(args: argparse.Namespace, timeout: float):
    from gridverify.vnncomp.runner import RunOptions

    device = args.device
    if device == "auto":
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    return RunOptions(
        timeout=timeout,
        device=device,
        seed=args.seed,
        attack_restarts=args.attack_restarts,
        attack_steps=args.attack_steps,
        bound_method=args.bounds,
        use_bab=not args.no_bab,
        extend_attack=not args.no_extend_attack,
        memory_cap_mb=args.memory_cap,
    )


class _Watchdog:
    """Writes ``timeout`` and ends the process if the run overshoots its deadline."""

    def __init__(self, out: str, seconds: float) -> None:
        self.out = out
        self.lock = threading.Lock()
        self.done = False
        self.timer = threading.Timer(seconds, self._fire)
        self.timer.daemon = True

    def _fire(self) -> None:
        from gridverify.vnncomp.result import write_result

        with self.lock:
            if self.done:
                return
            self.done = True
            write_result(self.out, "timeout")
            print("timeout (hard deadline)", flush=True)
            os._exit(3)

    def finish(self, write) -> bool:
        """Run ``write`` unless the watchdog already fired; stop the watchdog."""
        with self.lock:
            if self.done:
                return False
            self.done = True
            self.timer.cancel()
            write()
            return True


def _run(args: argparse.Namespace) -> int:
    from gridverify.errors import OutputPathError
    from gridverify.fileio import check_output_path
    from gridverify.vnncomp.result import write_result
    from gridverify.vnncomp.runner import run_instance

    t0 = time.monotonic()
    if args.result is not None and args.out is not None and args.result != args.out:
        raise OutputPathError(f"two result files: {args.result} and --out {args.out}")
    args.out = args.out or args.result
    if args.out is None:
        raise OutputPathError("give the result file to write (RESULT or --out)")
    check_output_path(args.out, "--out")
    spent = 0.0 if args.started_at is None else max(0.0, time.time() - args.started_at)
    budget = args.timeout - spent
    if budget <= 0.05:
        write_result(args.out, "timeout")
        print("timeout (no time left after start-up)")
        return 3
    opts = _options(args, budget)
    dog = _Watchdog(args.out, max(0.5, budget + min(5.0, 0.1 * budget)))
    dog.timer.start()
    try:
        outcome = run_instance(args.onnx, args.vnnlib, opts)
    except BaseException:
        dog.finish(lambda: None)
        raise
    dog.finish(lambda: write_result(args.out, outcome.result, outcome.x, outcome.y))
    times = ", ".join(f"{k} {v:.2f}s" for k, v in outcome.timings.items())
    print(
        f"{outcome.result} ({outcome.stage}; {time.monotonic() - t0:.2f} s: {times})"
        + (f" {outcome.detail}" if outcome.detail else "")
    )
    return _EXIT.get(outcome.result, 3)


def _batch(args: argparse.Namespace) -> int:
    from gridverify.cli._args import output_lock, show_progress
    from gridverify.errors import OutputPathError
    from gridverify.fileio import check_output_path
    from gridverify.vnncomp.batch import run_batch

    check_output_path(args.out, "--out")

    opts = _options(args, 1.0)
    # one run at a time writes (and resumes) the results file
    with output_lock(args.out, "vnncomp batch", OutputPathError):
        summary = run_batch(
            args.benchmark_dir,
            args.out,
            instances=args.instances,
            timeout_scale=args.timeout_scale,
            expected=args.expected,
            options=opts,
            progress=show_progress(args),
            resume=not args.fresh,
        )
    for line in summary.lines():
        print(line)
    print(f"results: {args.out}")
    if summary.wrong:
        return 1
    return 0


def _floats(text: str, what: str) -> tuple[float, ...]:
    from gridverify.errors import SpecError

    try:
        vals = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise SpecError(f"{what}: expected comma-separated numbers, got {text!r}") from None
    if not vals:
        raise SpecError(f"{what}: empty list")
    return vals


def _make(args: argparse.Namespace) -> int:
    import torch

    from gridverify.cli._args import output_lock
    from gridverify.errors import OutputPathError, SpecError
    from gridverify.fileio import check_output_path
    from gridverify.grid import load_compiled
    from gridverify.vnncomp.instances import KINDS, make_benchmark

    out = check_output_path(args.out, "--out", folder=True)
    case = load_compiled(args.case, emit_warnings=False)
    widths = _floats(args.widths, "--widths")
    if any(not (0 <= w < 1) for w in widths):
        raise SpecError(f"--widths: each width must be in [0, 1), got {args.widths!r}")
    kinds = tuple(k.strip() for k in args.kinds.split(",") if k.strip())
    if not kinds:
        raise SpecError(f"--kinds: empty list (known: {', '.join(KINDS)})")
    for k in kinds:
        if k not in KINDS:
            raise SpecError(f"--kinds: unknown kind {k!r} (known: {', '.join(KINDS)})")
    from gridverify.cli._args import keep_outputs_from_args, layout_flags_given, layout_from_args

    given = layout_flags_given(args)
    if not args.model and given:
        raise SpecError(f"{given[0]}: only with --model (the untrained proxy has "
                        "gridverify's layout, docs/proxy.md)")
    if args.model and (args.hidden is not None or args.activation is not None):
        flag = "--hidden" if args.hidden is not None else "--activation"
        raise SpecError(f"{flag}: only without --model (it shapes the untrained proxy)")
    if args.model:
        import numpy as np

        from gridverify.proxy.load import check_source, load_proxy

        proxy = load_proxy(args.model, case, layout=layout_from_args(args),
                           onnx_keep_outputs=keep_outputs_from_args(args))
        # the export writes the imported graph: it must be the file's function over the
        # widest box exported
        w = max(widths, default=0.0)
        nominal = np.concatenate([case.pd, case.qd])
        rng = np.random.default_rng(args.seed)
        check_source(proxy, np.vstack([nominal, nominal * rng.uniform(1 - w, 1 + w, (7,
                                                                       nominal.size))]))
        module = proxy.module
        prefix = f"{case.name}_{Path(args.model).stem}"
    else:
        from gridverify.proxy.model import ProxyArch, ProxyMLP, case_limits

        hidden = args.hidden or _HIDDEN
        act = args.activation or _ACTIVATION
        arch = ProxyArch(case.n_load, case.n_gen, case.n_bus, hidden, act, True)
        lo, hi = case_limits(case)
        torch.manual_seed(args.seed)
        module = ProxyMLP(arch, head_lo=lo, head_hi=hi, dtype=torch.float64).eval()
        prefix = f"{case.name}_{act}{'x'.join(map(str, hidden))}_s{args.seed}"
    methods = ("ibp", "crown", "alpha-crown") if args.alpha else ("ibp", "crown")
    if args.lut_points is not None and args.nonlinear != "lut":
        raise SpecError("--lut-points: only with --nonlinear lut (the smooth model has no "
                        "lookup tables)")
    if args.lut_points is not None and args.lut_points < 2:
        raise SpecError(f"--lut-points: need at least 2 points, got {args.lut_points}")
    lut = (args.lut_points or 32) if args.nonlinear == "lut" else None
    if lut is not None and args.exact:
        raise SpecError("--exact: cannot be combined with --nonlinear lut (SCIP models the "
                        "smooth functions)")
    if "thermal_one" in kinds:
        from gridverify.vnncomp.instances import acopf_layout

        if acopf_layout(case).thermal_branches.size == 0:
            print(f"gridverify: warning: --kinds thermal_one: case {case.name} has no branch "
                  "with a thermal rating (rate_a), so no thermal_one property is written",
                  file=sys.stderr)
    # one run at a time writes into the folder: its CSV files and graph names are merged
    with output_lock(out, "vnncomp make-instances", OutputPathError), \
            _staged_folder(out) as stage:
        specs = make_benchmark(
            case,
            module,
            stage,
            widths=widths,
            kinds=kinds,
            timeout=args.timeout,
            seed=args.seed,
            prefix=prefix,
            bound_methods=methods,
            open_variant=args.open,
            exact=args.exact,
            lut_points=lut,
            merge_into=out,
        )
        (model,) = sorted((stage / "onnx").glob("*.onnx"))  # the one model of this run
    n = {v: sum(s.variant == v for s in specs) for v in ("violated", "holds", "open")}
    print(
        f"wrote {len(specs)} properties ({n['violated']} violated, {n['holds']} holding, "
        f"{n['open']} open) for onnx/{model.name} under {args.out}"
    )
    return 0


@contextmanager
def _staged_folder(out: Path) -> Iterator[Path]:
    """A staging folder next to ``out`` that becomes (or is merged into) ``out`` when
    the body succeeds and is removed when it fails: a failed run writes nothing.

    The staging folder starts with ``out``'s CSV files, which the body updates;
    the merge moves every new file into ``out`` with ``os.replace``, the CSV files
    last: a merge that fails part-way leaves them listing only files that exist.
    """
    from gridverify.fileio import process_umask

    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        # mkdtemp makes it 0700; it may become ``out``: give it the usual permissions
        os.chmod(stage, 0o777 & ~process_umask())
        if out.is_dir():
            for name in ("instances.csv", "expected.csv"):
                if (out / name).is_file():
                    shutil.copy2(out / name, stage / name)
        yield stage
        if not out.exists():
            os.replace(stage, out)
            return
        files = [p for p in sorted(stage.rglob("*")) if p.is_file()]
        for src in sorted(files, key=lambda p: p.parent == stage):  # the CSV files last
            dst = out / src.relative_to(stage)
            try:
                dst.parent.mkdir(parents=True, exist_ok=True)
                os.replace(src, dst)
            except OSError as exc:  # name the folder written into, not the staging one
                raise OSError(exc.errno, exc.strerror, str(dst.parent)) from None
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``gridverify vnncomp`` with the given arguments (default: ``sys.argv[1:]``)."""
    from gridverify.cli import _Parser, run_handler

    parser = _Parser(prog="python -m gridverify.cli.vnncomp", add_help=False)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    register(sub)
    args = parser.parse_args(["vnncomp", *(sys.argv[1:] if argv is None else argv)])
    return run_handler(args.func, args)


if __name__ == "__main__":
    sys.exit(main())
