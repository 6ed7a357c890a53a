"""Edges of the report's content from small synthetic results: the worst constraints
table (order, length, note), the overview's job counts, relu and open radius cells,
escaped emphasis in Markdown and clamped heading levels in HTML."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gridverify.certify import Certificate, ConstraintResult
from gridverify.certify.options import radius_text
from gridverify.report.content import (
    TOP_CONSTRAINTS,
    Report,
    Section,
    _open_radius,
    _relus,
    build_report,
)
from gridverify.report.html import render_html
from gridverify.report.markdown import render_markdown
from gridverify.spec.region import Region
from gridverify.study.results import StudyResults

T = 1e-6
# (upper bound, attained) of 13 constraints, out of order: 2 certified, 3 violated, 8 open
CONS = [(0.1, -0.5), (-0.3, -0.5), (0.9, 0.6), (0.05, -0.5), (0.6, -0.5), (0.2, -0.5),
        (0.7, 0.6), (-0.2, -0.5), (0.4, -0.5), (0.15, -0.5), (0.8, 0.6), (0.5, -0.5),
        (0.3, -0.5)]


def _status(ub: float, att: float) -> str:
    return "certified" if ub <= T else "violated" if att > T else "open"


def _cert(method: str, cons: list[tuple[float, float]]) -> Certificate:
    region = Region(np.full(4, 0.9), np.full(4, 1.1), "box", (("a", 0.9), ("b", 1.1)))
    rows = tuple(ConstraintResult(
        family="vm_max", component=i + 1, index=i, upper_bound=ub, attained=att, threshold=T,
        status=_status(ub, att), method=method, seconds=0.01, radius=None,
        worst_load=np.full(4, 1.0) if att > T else None)
        for i, (ub, att) in enumerate(cons))
    return Certificate(case="pglib_opf_case14_ieee", model="m", region=region, method=method,
                       seconds=1.0, constraints=rows)


def _record(method: str, state: str, cons: list[tuple[float, float]] | None = None) -> dict:
    job = {"case_key": "c14", "case": "pglib_opf_case14_ieee",
           "case_name": "pglib_opf_case14_ieee", "model_label": "m", "region_name": "near",
           "region": {"kind": "box", "params": {"lo": 0.9}}, "constraint_set": "all",
           "method": method}
    rec = {"job_id": method, "job": job, "state": state, "certificate": None, "error": None}
    if state == "done":
        rec.update(certificate=_cert(method, cons or []).to_dict(), seconds=2.5)
    elif state == "failed":
        rec.update(seconds=1.0, error={"type": "RuntimeError", "message": "boom"})
    return rec


def _section(report: Report, title: str) -> Section:
    return next(s for s in report.sections if s.title == title)


def test_worst_constraints_are_the_top_ones_by_bound_above_threshold(tmp_path: Path) -> None:
    res = StudyResults(tmp_path, "t", (_record("crown", "done", CONS),))
    (table,) = _section(build_report(res, []), "Worst constraints").tables
    assert TOP_CONSTRAINTS == 12 and len(table.rows) == 12
    comps = [int(r[1]) for r in table.rows]
    margins = [CONS[c - 1][0] - T for c in comps]
    assert margins == sorted(margins, reverse=True)
    assert comps[:3] == [3, 11, 7] and 2 not in comps  # the most certified one is left out
    assert [r[2] for r in table.rows[:3]] == ["violated"] * 3
    assert table.note.startswith("13 constraints: 2 certified, 3 violated, 8 open. "
                                 "The 12 with the largest bound above threshold are shown")


def test_the_overview_counts_pending_jobs(tmp_path: Path) -> None:
    res = StudyResults(tmp_path, "t", (_record("crown", "done", CONS[:2]),
                                       _record("ibp", "failed"), _record("bab", "pending")))
    first = _section(build_report(res, []), "Overview").paragraphs[0]
    assert "3 jobs: 1 done, 1 failed, 1 pending;" in first
    assert "total job time 3.5 s" in first


def test_relu_cells() -> None:
    assert _relus(3, 10) == "3 of 10"
    assert _relus(3.0, 10.0) == "3 of 10"
    assert _relus(None, 10) == "-" and _relus(float("nan"), 10) == "-"


def test_open_radius_cells() -> None:
    assert _open_radius(2, float("nan"), True) == "none"  # some open constraint has none
    assert _open_radius(2, float("nan"), False) == "-"  # no radius computed
    assert _open_radius(0, 0.5, True) == "-"  # none open
    assert _open_radius(2, 0.25, True) == radius_text(0.25) == "0.25"


def test_markdown_escapes_emphasized_text(tmp_path: Path) -> None:
    report = Report("t", (Section("S", ("see *a<b|c* here",)),))
    md = render_markdown(report, tmp_path)
    assert "see *a&lt;b\\|c* here" in md
    assert "<b" not in md and "b|c" not in md


def test_html_heading_levels_are_clamped() -> None:
    page = render_html(Report("t", (Section("Deep", level=9), Section("Top", level=0))))
    assert "<h6>Deep</h6>" in page and "<h1>Top</h1>" in page
    assert "<h9>" not in page and "<h0>" not in page
