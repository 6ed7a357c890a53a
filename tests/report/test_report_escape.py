"""The study report writes user text (case names, model paths, regions, the command)
so that Markdown and HTML viewers show it as it is: no tag, emphasis, code span or
table cell comes out of it."""

from __future__ import annotations

import html
import re
import warnings
from pathlib import Path
from urllib.parse import unquote

import pytest

from gridverify.certify import Certificate, ConstraintResult
from gridverify.report.content import Report, Section, Table, code, inline, literal
from gridverify.report.markdown import md_escape, render_markdown
from gridverify.spec.region import box_region
from gridverify.study.results import StudyResults

TRICKY = ["<b>&x", "a|b", "`x`", "``", "a`b``c", " pad ", "*em* and _u_", "back\\slash\\",
          "p_balance", "__init__", "[link](x)", "# not a heading", "~~s~~", "é ü", "\\`"]

CASE_NAME = '<b>&"\'é_case14 *x*'
MODEL = 'm<i>&"x|y `z` _w_'
KEY = "c|14 <b>"


@pytest.mark.parametrize("text", TRICKY)
def test_inline_markup_round_trips(text: str) -> None:
    assert inline(literal(text)) == [("text", text)]
    assert inline(code(text)) == [("code", text)]
    assert inline(f"a {code(text)} *b* {literal(text)}") == [
        ("text", "a "), ("code", text), ("text", " "), ("em", "b"), ("text", f" {text}")]


def _md_html(md: str) -> str:
    markdown_it = pytest.importorskip("markdown_it")
    return markdown_it.MarkdownIt("commonmark").enable("table").render(md)


def _text_of(rendered: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", rendered))


@pytest.mark.parametrize("text", TRICKY)
def test_md_escape_shows_text_literally(text: str) -> None:
    """In a paragraph and in a table cell, a CommonMark viewer shows exactly ``text``."""
    para = _md_html(f"x {md_escape(text)} y\n")
    assert para.startswith("<p>") and _text_of(para).split() == f"x {text} y".split()
    assert not re.search(r"<(?!/?p>)", para), para  # no tag but the paragraph's
    table = _md_html(f"| h | k |\n|---|---|\n| {md_escape(text)} | z |\n")
    cells = re.findall(r"<td>(.*?)</td>", table, re.S)
    assert [html.unescape(c) for c in cells] == [text.strip(), "z"], table
    assert "p_balance" == md_escape("p_balance")  # plain names stay readable


def test_render_markdown_escapes_every_user_text() -> None:
    rep = Report(f"report {KEY}", (
        Section(f"s {KEY}", (f"Cases: {literal(CASE_NAME)}; study {code(MODEL)}.",
                             "A *certified* one."),
                (Table(f"{KEY} | {MODEL}", ("model", "n"), ((MODEL, "1"),),
                       note=f"note {CASE_NAME}"),)),))
    out = _md_html(render_markdown(rep, "/tmp"))
    assert "<b>" not in out and "<i>" not in out
    assert [html.unescape(e) for e in re.findall(r"<em>(.*?)</em>", out)] == [
        "certified", f"note {CASE_NAME}"]
    assert f"<code>{html.escape(MODEL, quote=False)}</code>" in out.replace("&quot;", '"')
    text = _text_of(out)
    for part in (f"report {KEY}", f"s {KEY}", f"Cases: {CASE_NAME}; study {MODEL}.",
                 f"{KEY} | {MODEL}"):
        assert part in text, (part, text)
    cells = [html.unescape(c) for c in re.findall(r"<td>(.*?)</td>", out, re.S)]
    assert cells == [MODEL, "1"]


def _study(tmp_path: Path) -> StudyResults:
    from gridverify.grid import load_compiled

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        case = load_compiled("pglib_opf_case14_ieee", emit_warnings=False)
    cons = tuple(ConstraintResult(
        family="vm_max", component=int(case.bus_ids[i]), index=i, upper_bound=-0.02,
        attained=-0.03, threshold=1e-6, status="certified", method="crown", seconds=0.0)
        for i in range(case.n_bus))
    cert = Certificate(case=case.name, model=MODEL, region=box_region(case, 0.97, 1.03),
                       method="crown", seconds=1.0, constraints=cons,
                       provenance={"case_name": case.name, "case_hash": case.content_hash})
    job = {"case_key": KEY, "case": "pglib_opf_case14_ieee", "case_name": CASE_NAME,
           "model_label": MODEL, "region_name": "near*", "region": cert.region.to_dict(),
           "constraint_set": "all", "method": "crown"}
    rec = {"job_id": "j", "job": job, "state": "done", "certificate": cert.to_dict(),
           "seconds": 1.0, "error": None}
    return StudyResults(tmp_path, "study `t` <x>", (rec,), DESCRIPTION)


DESCRIPTION = "Ünïcödé *loads* <b>up</b> 10 %"  # the study file's description


@pytest.mark.filterwarnings("ignore:Attempting to set identical")  # one job
def test_report_files_show_user_text_literally(tmp_path: Path) -> None:
    """index.md (as a CommonMark viewer shows it) and index.html: the case name, model,
    region and command appear as they are, and no tag of theirs is rendered."""
    from gridverify.report import render_report

    command = "gridverify study run 'a`b'.toml --out <o>"
    files = render_report(tmp_path, command=command, results=_study(tmp_path))
    md = files.markdown.read_text()
    assert "<b>" not in md and "<i>" not in md
    for page in (_md_html(md), files.html.read_text()):
        assert "<b>" not in page and "<i>" not in page
        text = _text_of(page)
        for part in (f"Cases: {KEY} ({CASE_NAME})", "Study study `t` <x>", DESCRIPTION,
                     f"Reproduce with: {command}", "Regions: near* = box(",
                     f"{KEY} | {MODEL} | near*"):
            assert part in text, (part, text[:2000])
        cells = [_text_of(c) for c in re.findall(r"<td[^>]*>(.*?)</td>", page, re.S)]
        assert MODEL in cells and KEY in cells
    figs = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert figs and all((tmp_path / unquote(rel)).exists() for rel in figs)
