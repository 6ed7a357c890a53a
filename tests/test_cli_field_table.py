"""The field/value table of the info-style commands (gridverify.cli._table)."""

from __future__ import annotations

from rich.console import Console

from gridverify.cli._table import field_table


def test_field_table_formats_floats_only():
    table = field_table("t", [("a", 1.23456), ("b", 7), ("c", None), ("d", "x")], ".2f")
    console = Console(record=True, width=60)
    console.print(table)
    text = console.export_text()
    assert "1.23" in text and "1.234" not in text
    assert "7" in text and "None" in text and "x" in text
    assert [c.header for c in table.columns] == ["field", "value"] and not table.show_header
