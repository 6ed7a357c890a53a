"""``python -m gridverify.vnncomp ...``: the vnncomp commands with a light start-up.

Same commands and exit statuses as ``gridverify vnncomp ...``, but only the
vnncomp command group is loaded (the full CLI imports every command module, e.g.
the OPF stack), which matters when the start-up is most of an easy instance's
time.  The competition scripts use this entry.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``gridverify vnncomp`` with the given arguments (default: ``sys.argv[1:]``)."""
    from gridverify.cli import EXIT_BAD_INPUT, _Parser
    from gridverify.cli.vnncomp import register
    from gridverify.errors import GridverifyError

    parser = _Parser(prog="python -m gridverify.vnncomp", add_help=False)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    register(sub)
    args = parser.parse_args(["vnncomp", *(sys.argv[1:] if argv is None else argv)])
    try:
        return int(args.func(args) or 0)
    except GridverifyError as exc:
        print(f"gridverify: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except FileNotFoundError as exc:
        print(f"gridverify: error: file not found: {exc.filename or exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("gridverify: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
