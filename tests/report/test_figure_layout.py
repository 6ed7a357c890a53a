"""Figures keep their text in the figure and apart, whatever the names: long model and
region names, no balance constraint, every job failed; empty panels say why; colorbars,
count axes and comparison labels tell what they show; figure files are reproducible;
the Markdown report escapes ``$``."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")

from matplotlib.legend import Legend  # noqa: E402
from matplotlib.text import Text  # noqa: E402

from gridverify import display  # noqa: E402
from gridverify.certify import Certificate, ConstraintResult, compare_certificates  # noqa: E402
from gridverify.report import figures  # noqa: E402
from gridverify.spec.region import box_region  # noqa: E402
from gridverify.study.results import StudyResults  # noqa: E402

LONG_MODEL = ("models/case14_relu_retrained_with_stability_weight_0.01_and_a_very_long_"
              "descriptive_name_v2$final$")
LONG_REGION = "near_nominal_region_with_long_name"


def _cert(case, families=("vm_max", "p_balance", "thermal_fr"), bound: float = 0.01,
          model: str = "m", lo: float = 0.97, radius: bool = True) -> Certificate:
    """Every component of ``families``; the last one open with ``bound``, the others
    certified."""
    sizes = {"vm_max": case.n_bus, "p_balance": case.n_bus, "thermal_fr": case.n_branch}
    cons = []
    for fam in families:
        for i in range(sizes[fam]):
            status = "open" if i == sizes[fam] - 1 else "certified"
            comp = int(case.bus_ids[i]) if fam != "thermal_fr" else i + 1
            cons.append(ConstraintResult(
                family=fam, component=comp, index=i,
                upper_bound=bound if status == "open" else -0.02, attained=-0.03,
                threshold=1e-6, status=status, method="crown", seconds=0.0,
                radius=(0.5 if status == "open" else 1.0) if radius else None,
                rate=1.0 if fam == "thermal_fr" else None))
    return Certificate(case=case.name, model=model, region=box_region(case, lo, 2 - lo),
                       method="crown", seconds=1.0, constraints=tuple(cons),
                       provenance={"case_name": case.name, "case_hash": case.content_hash})


def _study(tmp_path: Path, cert: Certificate | None, models=("m",), regions=("near",),
           state: str = "done") -> StudyResults:
    recs = []
    for m in models:
        for r in regions:
            job = {"case_key": "c14", "case": "pglib_opf_case14_ieee",
                   "case_name": "pglib_opf_case14_ieee", "model_label": m, "region_name": r,
                   "region": {"kind": "box", "params": {"lo": 0.97, "hi": 1.03}},
                   "constraint_set": "all", "method": "crown"}
            if cert is not None:
                job["region"] = cert.region.to_dict()
            recs.append({"job_id": f"j{len(recs)}", "job": job, "state": state,
                         "certificate": cert.to_dict() if state == "done" else None,
                         "seconds": 1.0,
                         "error": None if state == "done" else {
                             "type": "MemoryCapError", "message": "memory cap"}})
    return StudyResults(tmp_path, "t", tuple(recs))


def _inside(box, page, tol: float = 1.0) -> bool:
    return (page.x0 - tol <= box.x0 and box.x1 <= page.x1 + tol
            and page.y0 - tol <= box.y0 and box.y1 <= page.y1 + tol)


def _overlap(a, b) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def _texts(fig) -> list[Text]:
    """The shown texts of ``fig`` but tick labels (each axes' tight box holds those it
    draws)."""
    ticks = {id(lab) for ax in fig.axes for axis in (ax.xaxis, ax.yaxis)
             for tick in axis.get_major_ticks() + axis.get_minor_ticks()
             for lab in (tick.label1, tick.label2)}
    return [t for t in fig.findobj(Text)
            if t.get_text() and t.get_visible() and id(t) not in ticks]


def _check_fits(fig) -> None:
    """Every text and legend of ``fig`` lies inside it; titles keep apart from each other
    and from every other axes (colorbars)."""
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    page = fig.bbox
    for t in _texts(fig):
        assert _inside(t.get_window_extent(r), page), (t.get_text(), t.get_window_extent(r),
                                                      page)
    for ax in fig.axes:
        assert _inside(ax.get_tightbbox(r), page), (ax.get_title(), ax.get_tightbbox(r))
    for leg in fig.findobj(Legend):
        assert _inside(leg.get_window_extent(r), page), leg.get_window_extent(r)
    titles = [(ax, ax.title.get_window_extent(r)) for ax in fig.axes if ax.get_title()]
    for k, (ax, box) in enumerate(titles):
        for _, other in titles[k + 1:]:
            assert not _overlap(box, other), (ax.get_title(), box, other)
        for ax2 in fig.axes:
            if ax2 is not ax and not ax2.get_title():
                assert not _overlap(box, ax2.get_tightbbox(r)), ax.get_title()


@pytest.mark.filterwarnings("ignore:Attempting to set identical")
def test_long_names_fit_every_study_figure(tmp_path: Path, case14) -> None:
    """D1-D3: a 90-character model name, 2 models x 2 regions."""
    res = _study(tmp_path, _cert(case14), models=(LONG_MODEL, "models/case14_tanh"),
                 regions=(LONG_REGION, "train"))
    for fn in (figures.grid_figure, figures.bound_time_figure, figures.gap_figure,
               figures.study_radius_figure):
        _check_fits(fn(res))
    fig = figures.bound_time_figure(res)  # the legend is below the panels, none in them
    assert all(ax.get_legend() is None for ax in fig.axes) and fig.legends
    fig.canvas.draw()
    leg = fig.legends[0].get_window_extent()
    assert all(not _overlap(leg, ax.get_tightbbox()) for ax in fig.axes)


def test_long_names_fit_certificate_figures(case14) -> None:
    cert = _cert(case14, model="/work/" + LONG_MODEL)
    _check_fits(display.plot(cert, case=case14))
    _check_fits(display.plot(cert, kind="radius"))
    _check_fits(compare_certificates(cert, dataclasses.replace(cert, model=LONG_MODEL + "2"))
                .plot())


@pytest.mark.filterwarnings("ignore:Attempting to set identical")
def test_grid_suptitle_fits_one_map(tmp_path: Path, case14) -> None:
    """D4: one model x one region gives a 6-inch figure; the suptitle fits it."""
    fig = figures.grid_figure(_study(tmp_path, _cert(case14)), compiled=case14)
    assert fig.get_figwidth() == pytest.approx(6.0)
    assert fig._suptitle is not None
    _check_fits(fig)


@pytest.mark.filterwarnings("ignore:Attempting to set identical")
def test_bound_time_without_balance_constraints(tmp_path: Path, case14) -> None:
    """D2: no balance constraint: the bound panel says so, without ticks; the open counts
    (all 0 here) on an integer axis from 0."""
    cert = _cert(case14, families=("thermal_fr",), bound=-0.01)
    cons = tuple(dataclasses.replace(c, status="certified", upper_bound=-0.01)
                 for c in cert.constraints)
    fig = figures.bound_time_figure(_study(tmp_path, dataclasses.replace(
        cert, constraints=cons)))
    bound, _, count = fig.axes
    assert any("no power-balance constraints selected" in t.get_text() for t in bound.texts)
    assert not bound.get_yticks().size
    assert not any(y == y for line in bound.get_lines() for y in line.get_ydata())
    fig.canvas.draw()
    ticks = [t for t in count.get_yticks() if count.get_ylim()[0] <= t <= count.get_ylim()[1]]
    assert ticks and ticks[0] == 0 and all(float(t).is_integer() for t in ticks), ticks
    _check_fits(fig)


def test_bus_colorbar_ticks_and_floor(case14) -> None:
    """D5: major and minor tick labels of one size; the lowest color is the extension
    for every value at or below the scale; no positive bus bound: a note, no scale."""
    fig = display.plot(_cert(case14, bound=0.3), case=case14)
    fig.canvas.draw()
    bus = fig.axes[1]
    labels = [t for t in bus.yaxis.get_ticklabels(which="both") if t.get_text()]
    assert len({t.get_fontsize() for t in labels}) == 1, {t.get_fontsize() for t in labels}
    assert bus.collections and "<=" in bus.get_ylabel()
    cbar = bus._colorbar
    assert cbar.extend == "min"
    fig = display.plot(_cert(case14, bound=-0.01), case=case14)  # every bound <= 0
    bus = fig.axes[1]
    assert "all certified" in bus.get_ylabel().replace("\n", " ")
    assert not len(bus.get_yticks())
    _check_fits(fig)


def test_comparison_labels_tell_the_certificates_apart(case14) -> None:
    """D6: same proxy over two regions; same folder name in two places."""
    near = _cert(case14, model="/a/case14_relu")
    wide = _cert(case14, model="/a/case14_relu", lo=0.9)
    ax = compare_certificates(near, wide).plot().axes[0]
    x, y = (s.replace("\n", "") for s in (ax.get_xlabel(), ax.get_ylabel()))
    assert near.region.describe() in x and wide.region.describe() in y
    assert "region" in ax.get_title()
    other = dataclasses.replace(near, model="/b/case14_relu")
    ax = compare_certificates(near, other).plot().axes[0]
    x, y = (s.replace("\n", "") for s in (ax.get_xlabel(), ax.get_ylabel()))
    assert "/a/case14_relu" in x and "/b/case14_relu" in y


@pytest.mark.parametrize("fmt", ["svg", "pdf"])
def test_compare_plot_files_are_reproducible(case14, tmp_path: Path, fmt: str) -> None:
    """D7: ``compare --plot`` writes the same bytes twice (no date, fixed SVG ids)."""
    from gridverify.cli.compare import _write_plot

    diff = compare_certificates(_cert(case14), _cert(case14, model="n"))
    a, b = tmp_path / f"a.{fmt}", tmp_path / f"b.{fmt}"
    _write_plot(diff, str(a))
    _write_plot(diff, str(b))
    assert a.read_bytes() == b.read_bytes()
    assert b"CreationDate" not in a.read_bytes() and b"<dc:date>" not in a.read_bytes()


def test_all_failed_study_says_so(tmp_path: Path, case14) -> None:
    """D8: every job failed: each figure says "no finished jobs", the grid has no status
    legend, and the report's summary section has the note."""
    from gridverify.report import render_report
    from gridverify.report.content import NO_FINISHED_JOBS

    res = _study(tmp_path, None, state="failed")
    for kind in ("grid", "time", "gaps"):
        fig = res.plot(kind)
        said = [t for t in _texts(fig) if t.get_text() == "no finished jobs"]
        assert len(said) == (3 if kind == "time" else 1), kind
        assert not fig.legends, kind
        _check_fits(fig)
    md, html_path = render_report(tmp_path / "report", results=res)[:2]
    text = md.read_text()
    summary = text[text.index("## Summary"):text.index("## Jobs")]
    assert "No finished jobs" in summary
    assert NO_FINISHED_JOBS.split(":")[0] in html_path.read_text()


def test_markdown_escapes_dollars() -> None:
    """D9: a ``$`` would start inline math on GitHub."""
    from gridverify.report.markdown import md_escape

    assert md_escape("models/v2$final$") == "models/v2\\$final\\$"
