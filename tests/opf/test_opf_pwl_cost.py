"""Piecewise-linear generator costs (MATPOWER model 1) in the AC-OPF.

A case's polynomial costs are rewritten as model-1 rows: a linear cost as the
two points at Pmin and Pmax gives the same optimum; a convex quadratic as the
secant interpolant through many points gives an optimum just above it.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from gridverify.cli import main
from gridverify.errors import CaseFormatError
from gridverify.grid import load_compiled
from gridverify.grid.case import resolve_case_path
from gridverify.opf import solve_opf


def _with_gencost(tmp_path: Path, name: str, rows: list[list[float]], tag: str) -> Path:
    """A copy of a bundled case whose gencost table is ``rows`` (padded with zeros)."""
    text = resolve_case_path(name).read_text()
    width = max(len(r) for r in rows)
    body = "\n".join("\t" + "\t".join(f"{v:.12g}" for v in r + [0.0] * (width - len(r))) + ";"
                     for r in rows)
    text = re.sub(r"mpc\.gencost = \[.*?\];", "mpc.gencost = [\n" + body + "\n];", text,
                  flags=re.S)
    path = tmp_path / f"{tag}.m"
    path.write_text(text)
    return path


def _pwl_rows(case, points: int) -> list[list[float]]:
    """Model-1 rows through the polynomial cost at ``points`` powers in [Pmin, Pmax]."""
    rows = []
    for g in range(case.n_gen):
        lo, hi = case.pmin[g], case.pmax[g]
        hi = hi if hi > lo else lo + 1.0 / case.base_mva
        p = np.linspace(lo, hi, points)
        c = case.cost_c2[g] * p**2 + case.cost_c1[g] * p + case.cost_c0[g]
        rows.append([1, 0, 0, points] + np.ravel(np.stack([p * case.base_mva, c], 1)).tolist())
    return rows


def test_linear_costs_as_two_points_give_the_same_optimum(tmp_path):
    case = load_compiled("pglib_opf_case5_pjm", emit_warnings=False)
    ref = solve_opf(case)
    pwl_case = load_compiled(_with_gencost(tmp_path, "pglib_opf_case5_pjm",
                                           _pwl_rows(case, 2), "case5_pwl"),
                             emit_warnings=False)
    assert set(pwl_case.cost_pwl) == set(range(case.n_gen))
    assert not np.any(pwl_case.cost_c1)
    sol = solve_opf(pwl_case)
    assert sol.status == "optimal"
    assert sol.objective == pytest.approx(ref.objective, rel=1e-6)
    assert sol.objective == pytest.approx(pwl_case.generation_cost(sol.pg), rel=1e-12)


def test_quadratic_costs_as_secants_bound_the_optimum_from_above(tmp_path):
    case = load_compiled("pglib_opf_case24_ieee_rts", emit_warnings=False)
    assert np.any(case.cost_c2 > 0)
    ref = solve_opf(case)
    pwl_case = load_compiled(_with_gencost(tmp_path, "pglib_opf_case24_ieee_rts",
                                           _pwl_rows(case, 40), "case24_pwl"),
                             emit_warnings=False)
    sol = solve_opf(pwl_case)
    assert sol.status == "optimal"
    # the secant interpolant lies above the convex quadratic, within 1e-3 here
    assert ref.objective - 1e-6 * ref.objective <= sol.objective <= ref.objective * (1 + 1e-3)
    # and the polynomial cost of the pwl optimum is no better than the true optimum
    assert case.generation_cost(sol.pg) >= ref.objective * (1 - 1e-6)


def test_generation_cost_extends_the_end_segments(tmp_path):
    rows = [[1, 0, 0, 3, 0.0, 0.0, 10.0, 100.0, 30.0, 500.0]] + [[2, 0, 0, 3, 0, 0, 0]] * 2
    case = load_compiled(_with_gencost(tmp_path, "pglib_opf_case3_lmbd", rows, "c3"),
                         emit_warnings=False)
    base = case.base_mva
    pg = np.zeros(case.n_gen)
    for p_mw, want in ((5.0, 50.0), (20.0, 300.0), (40.0, 700.0), (-10.0, -100.0)):
        pg[0] = p_mw / base
        assert case.generation_cost(pg) == pytest.approx(want, rel=1e-12)


@pytest.mark.parametrize(("row", "message"), [
    ([1, 0, 0, 3, 0.0, 0.0, 20.0, 100.0, 10.0, 150.0], "not strictly increasing"),
    ([1, 0, 0, 3, 0.0, 0.0, 10.0, 300.0, 30.0, 400.0], "not convex"),
])
def test_bad_piecewise_costs_are_named_errors(tmp_path, capsys, row, message):
    rows = [row] + [[2, 0, 0, 3, 0, 0, 0]] * 2
    path = _with_gencost(tmp_path, "pglib_opf_case3_lmbd", rows, "bad")
    with pytest.raises(CaseFormatError, match=message):
        load_compiled(path)
    assert main(["case", "info", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(path) in err[0] and message in err[0]
