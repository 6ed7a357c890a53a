"""Figures show user text (case names, model paths, regions) literally, whatever it holds;
``display.plot`` passes its arguments on to every kind of figure; the two colorbars of a
certificate's grid map keep apart."""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.text import Text  # noqa: E402

from gridverify import display  # noqa: E402
from gridverify.certify import Certificate, ConstraintResult, compare_certificates  # noqa: E402
from gridverify.report import figures  # noqa: E402
from gridverify.spec.region import box_region  # noqa: E402
from gridverify.study.results import StudyResults  # noqa: E402

#: user text that matplotlib would read as mathtext (and fail to parse: ``\x``, ``\foo``)
MODEL = "/tmp/m$\\x$/run $\\foo$"
CASE_KEY = "c$\\x$"
REGION = "near $\\alpha_{x$"


def _cert(case, model: str = MODEL) -> Certificate:
    """Every bus's vm_max and p_balance, the last bus open; radii on the open ones."""
    cons = []
    for fam in ("vm_max", "p_balance"):
        for i in range(case.n_bus):
            status = "open" if i == case.n_bus - 1 else "certified"
            cons.append(ConstraintResult(
                family=fam, component=int(case.bus_ids[i]), index=i,
                upper_bound=0.01 if status == "open" else -0.02, attained=-0.03,
                threshold=1e-6, status=status, method="crown", seconds=0.0,
                radius=0.5 if status == "open" else 1.0))
    return Certificate(case=case.name, model=model, region=box_region(case, 0.97, 1.03),
                       method="crown", seconds=1.0, constraints=tuple(cons),
                       provenance={"case_name": case.name, "case_hash": case.content_hash})


def _study(tmp_path: Path, cert: Certificate, keys: tuple[str, ...] = (CASE_KEY,),
           model: str = MODEL) -> StudyResults:
    recs = []
    for key in keys:
        job = {"case_key": key, "case": "pglib_opf_case14_ieee", "case_name": cert.case,
               "model_label": model, "region_name": REGION, "region": cert.region.to_dict(),
               "constraint_set": "all", "method": "crown"}
        recs.append({"job_id": f"j{len(recs)}", "job": job, "state": "done",
                     "certificate": cert.to_dict(), "seconds": 1.0, "error": None})
    return StudyResults(tmp_path, "t", tuple(recs))


def _shown(fig) -> list[tuple[str, bool]]:
    """Every text of ``fig`` as matplotlib draws it, and whether it draws it as mathtext."""
    return [t._preprocess_math(t.get_text()) for t in fig.findobj(Text) if t.get_text()]


def _check_literal(fig, *raw: str) -> None:
    """``fig`` draws (in every format) and shows each of ``raw`` literally, never as
    mathtext."""
    for fmt in ("png", "svg", "pdf"):
        fig.savefig(io.BytesIO(), format=fmt)
    shown = _shown(fig)
    for text in raw:
        hits = [(s, math) for s, math in shown if text in s]
        assert hits, (text, shown)
        assert not any(math for _, math in hits), hits
    assert not any(math for s, math in shown if "$" in s and "mathdefault" not in s), shown


def test_literal_text_escapes_mathtext_once() -> None:
    t = Text(text=figures.literal_text("a $\\x$ b \\$ c $"))
    assert t._preprocess_math(t.get_text()) == ("a $\\x$ b \\$ c $", False)
    assert figures.literal_text("p_balance | 1.0") == "p_balance | 1.0"
    with matplotlib.rc_context({"text.parse_math": False}):
        assert figures.literal_text("a $x$") == "a $x$"  # shown as it is already
    with matplotlib.rc_context({"text.usetex": True}):
        assert figures.literal_text("a_b $5% {x}") == r"a\_b \$5\% \{x\}"


def test_certificate_figures_show_dollars_literally(case14) -> None:
    cert = _cert(case14)
    _check_literal(display.plot(cert, case=case14), MODEL)
    _check_literal(display.plot(cert, kind="radius"), MODEL)
    other = dataclasses.replace(cert, model="/x/new $\\foo$")
    diff = compare_certificates(cert, other)
    _check_literal(diff.plot(), "run $\\foo$", "new $\\foo$")
    named = dataclasses.replace(cert, case="case $\\x$")  # the recorded hash finds its case
    _check_literal(display.plot(named, case=case14), "case $\\x$ | ")


@pytest.mark.filterwarnings("ignore:Attempting to set identical")  # one job
def test_study_figures_and_report_show_dollars_literally(tmp_path: Path, case14) -> None:
    from gridverify.report import render_report

    res = _study(tmp_path, _cert(case14))
    _check_literal(figures.grid_figure(res), f"{CASE_KEY} | {MODEL} | {REGION}")
    _check_literal(figures.bound_time_figure(res), CASE_KEY, f"{MODEL} | {REGION}")
    _check_literal(figures.gap_figure(res), CASE_KEY)
    _check_literal(figures.study_radius_figure(res), CASE_KEY, f"{MODEL} | {REGION}")
    files = render_report(tmp_path / "report", results=res)  # `gridverify report` did fail
    assert len(files[2]) == 4 and all(p.exists() for p in files[2])


def test_plot_of_study_results_passes_case_and_ax(tmp_path: Path, case14) -> None:
    res = _study(tmp_path, _cert(case14, model="m"), keys=("a", "b"))
    assert display.plot(res, kind="gaps").axes[0].get_title().startswith("a:")
    assert display.plot(res, kind="gaps", case="b").axes[0].get_title().startswith("b:")
    assert res.plot("gaps", case="b").axes[0].get_title().startswith("b:")
    for kind in ("gaps", "radius"):
        fig, ax = plt.subplots()
        assert display.plot(res, kind=kind, case="b", ax=ax) is fig
        assert ax.get_title().startswith("b:") and len(fig.axes) == 1
    for kind in ("grid", "time"):
        _, ax = plt.subplots()
        with pytest.raises(TypeError, match=f"kind '{kind}' draws a figure of several axes"):
            display.plot(res, kind=kind, ax=ax)
    grid = display.plot(res, kind="grid", case="b")
    assert grid.axes[0].get_title().startswith("b | ")
    with pytest.raises(ValueError, match="case 'c' is not in the study"):
        display.plot(res, kind="gaps", case="c")


def test_plot_of_a_comparison(case14) -> None:
    cert = _cert(case14, model="m")
    diff = compare_certificates(cert, dataclasses.replace(cert, model="n"))
    fig = display.plot(diff)
    assert fig.axes[0].get_xlabel().startswith("old: bound - threshold (m)")
    fig, ax = plt.subplots()
    assert display.plot(diff, ax=ax) is fig and ax.get_legend() is not None
    assert display.plot(diff, figsize=(3, 3)).get_figwidth() == 3
    with pytest.raises(TypeError, match="a comparison takes no case="):
        display.plot(diff, case=case14)
    with pytest.raises(ValueError, match="a comparison has one figure"):
        display.plot(diff, kind="radius")


def _overlap(a, b) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


@pytest.mark.parametrize("own_axes", [False, True])
def test_grid_map_colorbars_keep_apart(case14, own_axes: bool) -> None:
    """The bus and the branch colorbar, with their ticks and labels, neither overlap each
    other nor the map, and stay in the figure."""
    cert = _cert(case14, model="m")
    if own_axes:
        _, ax = plt.subplots(figsize=(7, 5.5))
        fig = display.plot(cert, case=case14, ax=ax)
    else:
        fig = display.plot(cert, case=case14)
    assert len(fig.axes) == 3
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    grid, bus, branch = fig.axes
    assert "bus" in bus.get_ylabel() and "branch" in branch.get_ylabel()
    boxes = [a.get_tightbbox(r) for a in (bus, branch)]
    assert not _overlap(*boxes), [b.extents for b in boxes]
    drawn = grid.get_window_extent(r)
    assert not any(_overlap(b, drawn) for b in boxes)
    if not own_axes:  # the figure display.plot makes has room for both
        page = fig.bbox
        assert all(page.x0 <= b.x0 and b.x1 <= page.x1 for b in boxes)


@pytest.mark.filterwarnings("ignore:Attempting to set identical")  # one job
def test_report_of_jobs_without_a_finite_bound_renders(tmp_path: Path, case14) -> None:
    """Every bound infinite (a timeout, a proxy undefined everywhere): the gap panel has
    no finite value to put on a log scale, and the report renders all the same."""
    from gridverify.report import render_report

    cert = _cert(case14)
    cons = tuple(dataclasses.replace(c, upper_bound=float("inf"), status="open")
                 for c in cert.constraints)
    res = _study(tmp_path, dataclasses.replace(cert, constraints=cons))
    fig = figures.bound_time_figure(res)
    fig.savefig(io.BytesIO(), format="png")
    files = render_report(tmp_path / "report", results=res)
    assert all(p.exists() for p in files[2])


def test_radius_figure_of_a_certificate_whose_radii_are_all_none(case14) -> None:
    """Radii computed, every constraint violated (none holds on any box): the figure is
    drawn (all curves at zero), not refused as if no radius had been asked."""
    cert = _cert(case14)
    cons = tuple(dataclasses.replace(c, status="violated", attained=0.5, upper_bound=0.6,
                                     radius=None) for c in cert.constraints)
    cert = dataclasses.replace(cert, constraints=cons, provenance={
        **cert.provenance, "options": {"radius": True}})
    fig = display.plot(cert, kind="radius")
    fig.savefig(io.BytesIO(), format="png")
    unasked = dataclasses.replace(cert, provenance={"options": {"radius": False}})
    with pytest.raises(ValueError, match="has no radius"):
        display.plot(unasked, kind="radius")


def test_names_the_font_lacks_draw_without_warnings() -> None:
    """A model named with CJK or emoji: boxes in the figure, not nine warnings on the
    command's stderr (compare --plot, study run, report)."""
    import warnings

    name = "mod\u00e8le \u65e5\u672c \U0001f389"
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        fig, ax = plt.subplots()
        figures.fit_title(ax, name)
        ax.set_xlabel(name)
        assert figures.save_figure(fig, "png")
    glyphs = [w for w in seen if "Glyph" in str(w.message)]
    assert not glyphs, [str(w.message) for w in glyphs]
