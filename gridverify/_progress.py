"""The one console every progress bar draws on: stderr, so that stdout stays the
command's output (``--json``, tables, pipes).

A bar is only asked for on a terminal or with an explicit ``--progress``
(:func:`gridverify.cli._args.show_progress`); in the second case stderr may be a
file or a pipe, where rich would draw nothing, so the console is then forced to
draw (a notebook keeps rich's own display).
"""

from __future__ import annotations

from typing import Any

__all__ = ["progress_console", "progress_wanted", "stderr_is_terminal"]


def stderr_is_terminal() -> bool:
    """Whether stderr is an interactive terminal (not a file, a pipe or a dumb one)."""
    import os
    import sys

    try:
        return bool(sys.stderr.isatty()) and os.environ.get("TERM") != "dumb"
    except (AttributeError, ValueError):  # no stderr, or a closed one
        return False


def progress_wanted(progress: bool | None) -> bool:
    """Whether to draw a bar: ``progress`` when given; ``None`` (the Python API's
    default): when stderr is a terminal or in a notebook, so that a script whose
    stderr goes to a log gets no escape codes."""
    if progress is not None:
        return bool(progress)
    if stderr_is_terminal():
        return True
    from rich.console import Console

    return bool(Console(stderr=True).is_jupyter)


def progress_console() -> Any:
    """A ``rich`` console on stderr that draws even when stderr is not a terminal."""
    from rich.console import Console

    console = Console(stderr=True)
    if console.is_terminal or console.is_jupyter:
        return console
    return Console(stderr=True, force_terminal=True)
