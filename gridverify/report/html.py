"""Self-contained HTML rendering of a report (``index.html``): inline CSS, base64 PNGs."""

from __future__ import annotations

import base64
import html

from gridverify.report.content import Report, Table, inline

__all__ = ["render_html"]

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;
max-width:1200px;padding:0 1em;color:#222}
h1{font-size:1.6em}h2{font-size:1.3em;border-bottom:1px solid #ddd;padding-bottom:.2em}
h3{font-size:1.05em}
table{border-collapse:collapse;margin:.5em 0 1.2em;font-size:.85em}
th,td{border:1px solid #ccc;padding:.2em .5em;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}
caption{text-align:left;font-weight:bold;margin-bottom:.3em}
.certified{color:#1a7f37}.violated{color:#c62828;font-weight:bold}.open{color:#b26a00}
.failed{color:#c62828}.note{font-size:.85em;color:#555;font-style:italic}
figure{margin:1em 0}figure img{max-width:100%;border:1px solid #eee}
figcaption{font-size:.85em;color:#555}code{background:#f5f5f5;padding:0 .2em}
"""

_STATUS = {"certified", "violated", "open", "failed"}


def _inline(text: str) -> str:
    """A paragraph's inline markup (:func:`~gridverify.report.content.inline`: code spans,
    emphasis, escapes) as HTML, its text escaped, like the Markdown form."""
    tags = {"code": "<code>{}</code>", "em": "<em>{}</em>", "text": "{}"}
    return "".join(tags[kind].format(html.escape(t)) for kind, t in inline(text))


def _table(t: Table) -> str:
    parts = ["<table>"]
    if t.title:
        parts.append(f"<caption>{html.escape(t.title)}</caption>")
    parts.append("<thead><tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in t.columns)
                 + "</tr></thead><tbody>")
    for row in t.rows:
        cells = []
        for c in row:
            cls = f' class="{c}"' if c in _STATUS else ""
            cells.append(f"<td{cls}>{html.escape(str(c))}</td>")
        parts.append("<tr>" + "".join(cells) + "</tr>")
    parts.append("</tbody></table>")
    if t.note:
        parts.append(f'<p class="note">{html.escape(t.note)}</p>')
    return "\n".join(parts)


def render_html(report: Report) -> str:
    """One HTML document with every figure embedded as a base64 PNG (no external files)."""
    body = [f"<h1>{html.escape(report.title)}</h1>"]
    for s in report.sections:
        lvl = min(max(s.level, 1), 6)
        body.append(f"<h{lvl}>{html.escape(s.title)}</h{lvl}>")
        body += [f"<p>{_inline(p)}</p>" for p in s.paragraphs]
        body += [_table(t) for t in s.tables]
        for f in s.figures:
            data = base64.b64encode(f.path.read_bytes()).decode("ascii")
            body.append(
                f"<figure><h3>{html.escape(f.title)}</h3>"
                f'<img alt="{html.escape(f.title)}" src="data:image/png;base64,{data}">'
                f"<figcaption>{html.escape(f.caption)}</figcaption></figure>"
            )
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{html.escape(report.title)}</title><style>{_CSS}</style></head>\n<body>\n"
        + "\n".join(body) + "\n</body></html>\n"
    )
