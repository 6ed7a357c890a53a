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


def test_long_values_wrap_and_are_never_cut():
    """A case's content hash on an 80-column output (a pipe) is shown whole, wrapped
    (it was cut with an ellipsis: the one field to match against a certificate)."""
    digest = "3130f984867d9ed3ca1fe0dc49cd236f724a3dd10ed3ec19d447b435165ceb3a"
    console = Console(record=True, width=80)
    console.print(field_table("case", [("content_hash", digest), ("source", "/x" * 60)]))
    text = console.export_text()
    assert "…" not in text
    cells = "".join(line.split("│")[2].strip() for line in text.splitlines()
                    if line.count("│") == 3)
    assert digest in cells and "/x" * 60 in cells
