"""Argument types, flags and the help formatter shared by every ``gridverify`` command.

Every numeric flag is checked by argparse through one of these types, so a bad
value is a one-line usage error (exit status 2) naming the flag, before any
file is read or any computation starts.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from gridverify.seeds import SEED_MAX, seed_problem

__all__ = [
    "HelpFormatter",
    "SEED_MAX",
    "CASE_HELP",
    "add_case_argument",
    "add_progress_flag",
    "count",
    "fraction",
    "int_range",
    "hidden_sizes",
    "nonneg_float",
    "positive_float",
    "seed",
    "show_progress",
]



class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Wraps one-paragraph descriptions, keeps multi-line ones and epilogs as written,
    and appends ``(default: X)`` to every option's help that does not state it."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if "\n" not in text.strip():
            return argparse.HelpFormatter._fill_text(self, text, width, indent)
        return super()._fill_text(text, width, indent)

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text or "%(default)" in text:
            return text
        default = action.default
        if default is None or default is False or default is argparse.SUPPRESS or isinstance(
            action, (argparse._StoreTrueAction, argparse._HelpAction, argparse._VersionAction)
        ):
            return text
        if not action.option_strings:
            return text
        value = action.default
        if isinstance(value, tuple | list):
            value = ",".join(str(v) for v in value)
        if isinstance(value, bool):
            value = "on" if value else "off"
        return f"{text} (default: {value})".lstrip()


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def seed(text: str) -> int:
    """A random seed: an integer in ``[0, 2**32 - 1]``."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be an integer in [0, {SEED_MAX}], got {text!r}") from None
    problem = seed_problem(value)
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return value


def count(minimum: int) -> Callable[[str], int]:
    """An integer ``>= minimum``."""

    def parse(text: str) -> int:
        value = _integer(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {text}")
        return value

    parse.__name__ = f"integer >= {minimum}"
    return parse


def int_range(minimum: int, maximum: int) -> Callable[[str], int]:
    """An integer in ``[minimum, maximum]``."""

    def parse(text: str) -> int:
        value = _integer(text)
        if not minimum <= value <= maximum:
            raise argparse.ArgumentTypeError(
                f"must be in [{minimum}, {maximum}], got {text}")
        return value

    parse.__name__ = f"integer in [{minimum}, {maximum}]"
    return parse


def hidden_sizes(text: str) -> tuple[int, ...]:
    """Hidden layer sizes: positive integers, comma separated (``64,64``)."""
    try:  # an empty entry (``8,,8``) is a typo, not a layer fewer
        sizes = tuple(int(p) for p in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected integers like 64,64, got {text!r}") from None
    if not sizes or any(s <= 0 for s in sizes):
        raise argparse.ArgumentTypeError(f"sizes must be positive integers, got {text!r}")
    return sizes


def positive_float(text: str) -> float:
    """A finite number ``> 0``."""
    value = _number(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def nonneg_float(text: str) -> float:
    """A finite number ``>= 0``."""
    value = _number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def fraction(text: str) -> float:
    """A number in ``[0, 1)``."""
    value = _number(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text}")
    return value


def stderr_line(message: str, kind: str | None = None) -> None:
    """``message`` as one line on stderr: ``gridverify: [KIND: ]message`` (line breaks and
    runs of spaces folded), flushed at once (a progress bar may follow)."""
    head = f"gridverify: {kind}: " if kind else "gridverify: "
    print(head + " ".join(str(message).split()), file=sys.stderr, flush=True)


CASE_HELP = ("bundled case name (see `gridverify case list`), MATPOWER .m file, or "
             "pandapower network saved with pandapower.to_json (.json)")


def add_case_argument(p: argparse.ArgumentParser) -> None:
    """The positional ``CASE`` argument that every command reading a grid case takes."""
    p.add_argument("case", metavar="CASE", help=CASE_HELP)


def add_layout_arguments(p: argparse.ArgumentParser) -> None:
    """The flags of a foreign proxy's layout (:class:`gridverify.proxy.layout.ProxyLayout`)."""
    g = p.add_argument_group(
        "proxy layout (a proxy file trained elsewhere; default: gridverify's convention, "
        "docs/proxy.md)")
    g.add_argument("--inputs", metavar="ORDER", default=None,
                   help="order of the load blocks the proxy reads (default pd,qd)")
    g.add_argument("--outputs", metavar="ORDER", default=None,
                   help="order of the blocks it returns, e.g. va,vm,pg,qg (default "
                        "pg,qg,vm,va)")
    g.add_argument("--interleaved-loads", action="store_true", default=None,
                   help="the proxy reads its loads load by load, the --inputs blocks "
                        "alternating (pd_1, qd_1, pd_2, qd_2, ... for pd,qd)")
    g.add_argument("--interleaved-outputs", action="store_true", default=None,
                   help="the proxy returns its solution generator by generator and bus by "
                        "bus, pg alternating with qg and vm with va in the --outputs order "
                        "(pg_1, qg_1, pg_2, qg_2, ..., vm_1, va_1, ...: heads of shape "
                        "(G, 2) and (N, 2))")
    g.add_argument("--load-units", choices=("pu", "mw", "MW"), default=None,
                   help="units of pd, qd: per unit or MW and MVAr (default pu)")
    g.add_argument("--gen-units", choices=("pu", "mw", "MW"), default=None,
                   help="units of pg, qg: per unit or MW and MVAr (default pu)")
    g.add_argument("--angle-units", choices=("rad", "deg"), default=None,
                   help="units of va (default rad)")
    g.add_argument("--normalization", metavar="FILE", default=None,
                   help="a .npz or .json file of the normalization the proxy expects around "
                        "it, in its own layout and units: input_mean, input_std (it reads "
                        "(u - mean) / std), output_mean, output_std (its output v means "
                        "v * std + mean); any key may be left out")
    g.add_argument("--keep-outputs", action="store_true",
                   help="an ONNX proxy with outputs after the solution (residuals, "
                        "extra heads): keep only its first 2G + 2N output entries")


def keep_outputs_from_args(args: argparse.Namespace) -> bool:
    """``--keep-outputs`` of :func:`add_layout_arguments` (``load_proxy``'s
    ``onnx_keep_outputs``)."""
    return bool(getattr(args, "keep_outputs", False))


def layout_flags_given(args: argparse.Namespace) -> list[str]:
    """The flags of :func:`add_layout_arguments` given on the command line."""
    names = ("inputs", "outputs", "load_units", "gen_units", "angle_units", "normalization",
             "interleaved_loads", "interleaved_outputs")
    given = [f"--{n.replace('_', '-')}" for n in names if getattr(args, n, None) is not None]
    return given + (["--keep-outputs"] if keep_outputs_from_args(args) else [])


def layout_from_args(args: argparse.Namespace) -> Any:
    """The :class:`~gridverify.proxy.layout.ProxyLayout` of :func:`add_layout_arguments`'s
    flags (``None`` for the convention)."""
    from gridverify.proxy.layout import ProxyLayout

    lay = ProxyLayout.parse(args.inputs, args.outputs, args.load_units, args.gen_units,
                            args.angle_units, args.normalization,
                            bool(getattr(args, "interleaved_loads", None)),
                            bool(getattr(args, "interleaved_outputs", None)))
    return None if lay.is_convention else lay


def output_lock(out: Any, name: str, error: type[Exception]) -> Any:
    """The lock of ``--out`` for a ``name`` run (:func:`gridverify._lock.run_lock` on
    :func:`~gridverify._lock.lock_beside`): ``error`` while another run writes it; a
    stale lock taken over with a warning on stderr."""
    from gridverify._lock import lock_beside, run_lock

    return run_lock(lock_beside(out), out, name, error,
                    lambda m: stderr_line(m, "warning"))


def add_progress_flag(p: argparse.ArgumentParser, what: str = "progress bar") -> None:
    """``--progress/--no-progress``: draw the bar on stderr; default only on a terminal."""
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help=f"{what} on stderr (default: only when stderr is a terminal)")


def show_progress(args: argparse.Namespace, *, quiet: bool = False) -> bool:
    """Whether to draw progress: ``--progress``/``--no-progress`` when given, else
    only when stderr is a terminal (and never with ``quiet``)."""
    flag: Any = getattr(args, "progress", None)
    if flag is not None:
        return bool(flag)
    from gridverify._progress import stderr_is_terminal

    return not quiet and stderr_is_terminal()
