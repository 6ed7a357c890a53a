"""Markdown rendering of a :class:`~gridverify.report.content.Report` (``index.md``).

User text (case names, model paths, regions, error messages) is written through
:func:`md_escape`, so that a Markdown viewer shows it as it is: no HTML tag, table
cell break or emphasis comes out of it.
"""

from __future__ import annotations

import html
import os
import re
from pathlib import Path
from urllib.parse import quote

from gridverify.report.content import Report, Table, code, inline

__all__ = ["md_escape", "render_markdown"]

# Markdown punctuation that can start markup anywhere in a line ("_" is handled apart)
_SPECIAL = re.compile(r"[\\`*\[\]|#~$]")


def md_escape(text: object) -> str:
    """``text`` as Markdown that shows it literally: ``&``, ``<`` and ``>`` as HTML
    entities (no inline HTML), a backslash before the characters that start markup
    (``\\ ` * [ ] | # ~ $``: ``$`` starts inline math on GitHub), and before ``_``
    unless it joins two letters or digits, as in ``p_balance`` (no emphasis there);
    line breaks become spaces."""
    s = " ".join(str(text).splitlines())
    s = _SPECIAL.sub(lambda m: "\\" + m.group(0), html.escape(s, quote=False))

    def under(m: re.Match[str]) -> str:
        a, b = m.start(), m.end()
        inside = 0 < a and b < len(s) and s[a - 1].isalnum() and s[b].isalnum()
        return m.group(0) if inside else m.group(0).replace("_", "\\_")

    return re.sub(r"_+", under, s)


def _paragraph(text: str) -> str:
    """A paragraph's inline markup (see :mod:`gridverify.report.content`) as Markdown."""
    out = []
    for kind, t in inline(text):
        if kind == "code":
            out.append(code(t))
        elif kind == "em":
            out.append(f"*{md_escape(t)}*")
        else:
            out.append(md_escape(t))
    return "".join(out)


def _table(t: Table) -> list[str]:
    lines = [f"**{md_escape(t.title)}**", ""] if t.title else []
    lines.append("| " + " | ".join(md_escape(c) for c in t.columns) + " |")
    lines.append("|" + "|".join("---" for _ in t.columns) + "|")
    for row in t.rows:
        lines.append("| " + " | ".join(md_escape(c) for c in row) + " |")
    if t.note:
        lines += ["", f"_{md_escape(t.note)}_"]
    lines.append("")
    return lines


def render_markdown(report: Report, base: str | os.PathLike[str]) -> str:
    """Markdown text; figure paths are written relative to ``base`` (the report folder)."""
    base = Path(base)
    lines = [f"# {md_escape(report.title)}", ""]
    for s in report.sections:
        lines += ["#" * s.level + " " + md_escape(s.title), ""]
        for p in s.paragraphs:
            lines += [_paragraph(p), ""]
        for t in s.tables:
            lines += _table(t)
        for f in s.figures:
            rel = quote(Path(os.path.relpath(f.path, base)).as_posix())
            lines += [f"### {md_escape(f.title)}", "", f"![{md_escape(f.title)}]({rel})", "",
                      f"_{md_escape(f.caption)}_", ""]
    return "\n".join(lines).rstrip() + "\n"
