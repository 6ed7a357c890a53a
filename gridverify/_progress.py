"""The one console every progress bar draws on: stderr, so that stdout stays the
command's output (``--json``, tables, pipes).

A bar is only asked for on a terminal or with an explicit ``--progress``
(:func:`gridverify.cli._args.show_progress`); in the second case stderr may be a
file or a pipe, where rich would draw nothing, so the console is then forced to
draw (a notebook keeps rich's own display).
"""

from __future__ import annotations

from typing import Any

__all__ = ["progress_console"]


def progress_console() -> Any:
    """A ``rich`` console on stderr that draws even when stderr is not a terminal."""
    from rich.console import Console

    console = Console(stderr=True)
    if console.is_terminal or console.is_jupyter:
        return console
    return Console(stderr=True, force_terminal=True)
