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
    from gridverify.cli import _Parser, run_handler
    from gridverify.cli.vnncomp import register

    parser = _Parser(prog="python -m gridverify.vnncomp", add_help=False)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    register(sub)
    args = parser.parse_args(["vnncomp", *(sys.argv[1:] if argv is None else argv)])
    return run_handler(args.func, args)

if __name__ == "__main__":
    sys.exit(main())
