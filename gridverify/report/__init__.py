"""Study reports: ``index.md``, a self-contained ``index.html`` and PNG figures.

``render_report("reports/NAME")`` (or ``gridverify report reports/NAME``)
re-renders a study's report from its stored results.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

__all__ = ["ReportFiles", "render_report"]


class ReportFiles(tuple):
    """``(index_md, index_html, figures, constraints_csv)`` paths of a rendered report."""

    __slots__ = ()

    @property
    def markdown(self) -> Path:
        """``index.md``."""
        return self[0]

    @property
    def html(self) -> Path:
        """``index.html``."""
        return self[1]


def render_report(root: str | os.PathLike[str], command: str | None = None,
                  results: Any = None) -> ReportFiles:
    """Render the report of the study folder ``root`` from its stored job files.

    Writes ``index.md``, ``index.html``, ``figures/*.png`` and ``constraints.csv``
    (every constraint, best of methods), each atomically.  ``command``: the
    command that made the study, quoted in the report.
    """
    from gridverify.report.content import build_report
    from gridverify.report.figures import write_figures
    from gridverify.report.html import render_html
    from gridverify.report.markdown import render_markdown
    from gridverify.study.results import load_results
    from gridverify.study.storage import write_bytes_atomic

    root = Path(root)
    res = results if results is not None else load_results(root)
    figs = write_figures(res, root / "figures")
    report = build_report(res, figs, command=command)
    md = root / "index.md"
    page = root / "index.html"
    csv = root / "constraints.csv"
    comb = res.combined_frame()
    write_bytes_atomic(csv, comb.to_csv(index=False).encode())
    write_bytes_atomic(md, render_markdown(report, root).encode())
    write_bytes_atomic(page, render_html(report).encode())
    return ReportFiles((md, page, [f.path for f in figs], csv))
