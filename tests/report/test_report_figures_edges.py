"""What the report figures show: values and statuses per bus and branch, the points of the
bound-against-time panels in method order, branch-and-bound traces, gap histograms,
radius curves and comparison points (the data of the matplotlib artists)."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")

import matplotlib.colors as mcolors  # noqa: E402
from matplotlib.collections import LineCollection, PathCollection  # noqa: E402

from gridverify.certify import Certificate, ConstraintResult, compare_certificates  # noqa: E402
from gridverify.report import figures  # noqa: E402
from gridverify.spec.region import box_region  # noqa: E402
from gridverify.study.results import StudyResults  # noqa: E402


def _c(fam: str, i: int, ub: float, status: str, att: float = -0.5, radius=None,
       rate=None, thr: float = 0.0) -> ConstraintResult:
    return ConstraintResult(family=fam, component=i + 1, index=i, upper_bound=ub, attained=att,
                            threshold=thr, status=status, method="crown", seconds=0.0,
                            radius=radius, rate=rate)


def _cert(case, cons, method: str = "crown", provenance=None) -> Certificate:
    prov = {"case_name": case.name, "case_hash": case.content_hash, **(provenance or {})}
    return Certificate(case=case.name, model="m", region=box_region(case, 0.97, 1.03),
                       method=method, seconds=1.0, constraints=tuple(cons), provenance=prov)


def _study(tmp_path: Path, certs_seconds) -> StudyResults:
    recs = []
    for k, (cert, secs) in enumerate(certs_seconds):
        job = {"case_key": "c14", "case": "pglib_opf_case14_ieee",
               "case_name": "pglib_opf_case14_ieee", "model_label": "m", "region_name": "near",
               "region": cert.region.to_dict(), "constraint_set": "all", "method": cert.method}
        recs.append({"job_id": f"j{k}", "job": job, "state": "done",
                     "certificate": cert.to_dict(), "seconds": secs, "error": None})
    return StudyResults(tmp_path, "t", tuple(recs))


def test_grid_values_put_generator_rows_at_their_bus_and_keep_the_worst(case14) -> None:
    g = next(i for i in range(case14.n_gen) if int(case14.gen_bus[i]) != i)
    b = int(case14.gen_bus[g])
    rows = [{"family": "pg_max", "index": g, "upper_bound": 0.3, "status": "violated"},
            {"family": "vm_max", "index": b, "upper_bound": -0.1, "status": "certified"},
            {"family": "thermal_fr", "index": 2, "upper_bound": 5.0, "status": "open",
             "rate": 2.0},
            {"family": "thermal_to", "index": 2, "upper_bound": -3.0, "status": "certified",
             "rate": 2.0}]
    v = figures.grid_values(case14, rows)
    assert v["bus_value"][b] == 0.3 and v["bus_status"][b] == 2  # the worst of both rows
    assert np.isnan(v["bus_value"][g])  # not at the bus of the generator's index
    # |S| / rate: sqrt(ub + rate^2) / rate; the larger end's loading
    assert math.isclose(v["branch_loading"][2], 1.5)
    assert v["branch_status"][2] == 1
    assert np.isnan(v["branch_loading"][0]) and v["branch_status"][0] == -1


def test_grid_norms_branch_scale_reaches_the_largest_loading() -> None:
    def vals(ld):
        return {"bus_value": np.array([0.01]), "branch_loading": np.array(ld)}

    assert figures.grid_norms([vals([1.2])])[1].vmax == 1.5
    assert figures.grid_norms([vals([3.0, 0.4])])[1].vmax == 3.0


def test_draw_grid_edges_by_status_light_buses_and_dashed_unrated(case14) -> None:
    import matplotlib.pyplot as plt

    n, m = case14.n_bus, case14.n_branch
    bus_v = np.full(n, np.nan)
    bus_v[:3] = [0.0, 0.05, 0.2]
    bus_s = np.full(n, -1)
    bus_s[:3] = [0, 1, 2]
    br_v = np.full(m, np.nan)
    br_v[:4] = [0.5, 0.9, 1.2, 2.0]
    values = {"bus_value": bus_v, "bus_status": bus_s, "branch_loading": br_v,
              "branch_status": np.array([0] * 4 + [-1] * (m - 4))}
    _, ax = plt.subplots()
    figures.draw_grid(ax, case14, values, "t", colorbars=False)
    buses = next(c for c in ax.collections if isinstance(c, PathCollection))
    edges = buses.get_edgecolors()
    for k, status in enumerate(("certified", "open", "violated")):
        assert np.allclose(edges[k], mcolors.to_rgba(figures._STATUS_COLOR[status]))
    faces = buses.get_facecolors()
    white = mcolors.to_rgba("white")
    assert not np.allclose(faces[0], white)  # at or below the floor: the lightest, not white
    assert np.allclose(faces[5], white)  # no constraint at the bus
    lines = [c for c in ax.collections if isinstance(c, LineCollection)]
    dashed = [c for c in lines if c.get_linestyle()[0][1] is not None]
    solid = [c for c in lines if c.get_linestyle()[0][1] is None]
    assert len(dashed[0].get_segments()) == m - 4 and len(solid[0].get_segments()) == 4


def test_bound_time_points_in_method_order_worst_balance_and_open_count(tmp_path, case14) -> None:
    crown = _cert(case14, [_c("p_balance", 0, 0.2, "open"), _c("p_balance", 1, 0.05, "open"),
                           _c("vm_max", 0, 0.3, "violated", att=0.2)])
    ibp = _cert(case14, [_c("p_balance", 0, 0.9, "open"), _c("p_balance", 1, 0.0, "certified"),
                         _c("vm_max", 0, 0.1, "violated", att=0.05)], method="ibp")
    # ibp took longer: the points still go in order of effort (ibp first)
    fig = figures.bound_time_figure(_study(tmp_path, [(crown, 2.0), (ibp, 5.0)]))
    ax0, _, ax2 = fig.axes[:3]
    line = ax0.get_lines()[0]
    assert list(line.get_xdata()) == [5.0, 2.0]
    assert list(line.get_ydata()) == [0.9, 0.2]
    assert list(ax2.get_lines()[0].get_ydata()) == [1, 2]
    assert ax0.get_xscale() == "log" and ax0.get_yscale() == "log"


def test_bound_time_zero_bound_is_not_on_a_log_axis(tmp_path, case14) -> None:
    cert = _cert(case14, [_c("p_balance", 0, 0.0, "certified"),
                          _c("p_balance", 1, -0.1, "certified")])
    fig = figures.bound_time_figure(_study(tmp_path, [(cert, 1.0)]))
    assert fig.axes[0].get_yscale() == "symlog"


def test_bab_traces_gap_is_bound_minus_attained_balance_only_on_the_bound_panel(
        tmp_path, case14) -> None:
    bab = [{"family": "vm_max", "component": 1, "history": [[0.1, 0.5, 0.2], [0.2, 0.4, 0.3]]},
           {"family": "p_balance", "component": 1, "history": [[0.1, 0.7, 0.1]]}]
    cert = _cert(case14, [_c("p_balance", 0, 0.2, "open"), _c("vm_max", 0, 0.4, "open")],
                 method="bab", provenance={"bab": bab})
    fig = figures.bound_time_figure(_study(tmp_path, [(cert, 1.0)]))
    ax0, ax1 = fig.axes[:2]
    steps0 = [ln for ln in ax0.get_lines() if ln.get_drawstyle() == "steps-post"]
    steps1 = [ln for ln in ax1.get_lines() if ln.get_drawstyle() == "steps-post"]
    assert [list(ln.get_ydata()) for ln in steps0] == [[0.7]]
    assert [list(np.round(ln.get_ydata(), 9)) for ln in steps1] == [[0.3, 0.1], [0.6]]


def test_gap_histogram_is_log10_and_counts_missing_bounds(tmp_path, case14) -> None:
    cert = _cert(case14, [_c("vm_max", 0, 10 ** -2.9, "open", att=0.0),
                          _c("vm_max", 1, 10 ** -2.9, "open", att=0.0),
                          _c("vm_max", 2, math.inf, "open", att=0.0)])
    fig = figures.gap_figure(_study(tmp_path, [(cert, 1.0)]))
    ax = fig.axes[0]
    assert ax.get_legend().get_texts()[0].get_text() == "crown (2 finite, 1 no bound)"
    xy = ax.patches[0].get_xy()
    up = xy[xy[:, 1] > 0]
    assert math.isclose(up[:, 0].min(), -3.0) and math.isclose(up[:, 0].max(), -2.75)
    assert up[:, 1].max() == 2


def test_study_radius_curve_counts_at_its_radius_and_certified_up_to_one(
        tmp_path, case14) -> None:
    cert = _cert(case14, [_c("vm_max", 0, -0.1, "certified"),
                          _c("vm_max", 1, -0.1, "certified"),
                          _c("vm_max", 2, 0.1, "open", radius=0.5)])
    fig = figures.study_radius_figure(_study(tmp_path, [(cert, 1.0)]))
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    line = ax.get_lines()[0]
    share = dict(zip(line.get_xdata().tolist(), line.get_ydata().tolist()))
    assert math.isclose(share[0.5], 1.0)
    assert math.isclose(share[1.0], 2 / 3)


def test_comparison_points_are_old_margin_against_new(case14) -> None:
    old = _cert(case14, [_c("vm_max", 0, 0.5, "open")])
    new = _cert(case14, [_c("vm_max", 0, -0.01, "certified")])
    ax = compare_certificates(old, new).plot().axes[0]
    pts = np.vstack([c.get_offsets() for c in ax.collections if isinstance(c, PathCollection)])
    assert np.allclose(pts, [[0.5, -0.01]])
