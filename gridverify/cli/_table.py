"""The two-column ``field | value`` table that the ``info``-style commands print."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = ["field_table"]


def field_table(title: str, rows: Iterable[tuple[str, Any]], float_format: str = ".4f") -> Any:
    """A headerless rich ``Table`` of ``(field, value)`` rows titled ``title``.

    A float value is formatted with ``float_format``, any other value with ``str``.
    The title, fields and values are plain text (file names may hold ``[...]``):
    they are escaped, never read as rich markup.
    """
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=escape(title), show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")  # long values (hashes, paths) wrap, never cut
    for key, val in rows:
        text = format(val, float_format) if isinstance(val, float) else str(val)
        table.add_row(escape(str(key)), escape(text))
    return table
