"""Markdown rendering of a :class:`~gridverify.report.content.Report` (``index.md``)."""

from __future__ import annotations

import os
from pathlib import Path

from gridverify.report.content import Report, Table

__all__ = ["render_markdown"]


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _table(t: Table) -> list[str]:
    lines = [f"**{_cell(t.title)}**", ""] if t.title else []
    lines.append("| " + " | ".join(_cell(c) for c in t.columns) + " |")
    lines.append("|" + "|".join("---" for _ in t.columns) + "|")
    for row in t.rows:
        lines.append("| " + " | ".join(_cell(c) for c in row) + " |")
    if t.note:
        lines += ["", f"_{t.note}_"]
    lines.append("")
    return lines


def render_markdown(report: Report, base: str | os.PathLike[str]) -> str:
    """Markdown text; figure paths are written relative to ``base`` (the report folder)."""
    base = Path(base)
    lines = [f"# {report.title}", ""]
    for s in report.sections:
        lines += ["#" * s.level + " " + s.title, ""]
        for p in s.paragraphs:
            lines += [p, ""]
        for t in s.tables:
            lines += _table(t)
        for f in s.figures:
            rel = os.path.relpath(f.path, base)
            lines += [f"### {f.title}", "", f"![{f.title}]({Path(rel).as_posix()})", "",
                      f"_{f.caption}_", ""]
    return "\n".join(lines).rstrip() + "\n"
