"""AC-OPF: PGLib baseline objectives, physical feasibility, solver routes."""

from __future__ import annotations

import math
import re
import shutil
from functools import cache
from pathlib import Path

import numpy as np
import pytest

from gridverify.errors import GridverifyError, SolverError
from gridverify.grid import balance_residuals, branch_flows, load_compiled
from gridverify.opf import ACOPFModel, OPFSolution, SolverOptions, solve_opf
from gridverify.opf.acopf import angle_limits
from gridverify.opf.solvers import available_solvers, resolve_solver

REPO = Path(__file__).resolve().parents[2]
BASELINE_CANDIDATES = (
    REPO / "cases" / "BASELINE.md",
    REPO.parent / "shared" / "pglib" / "BASELINE.md",
)
DEFAULT_CASES = (
    "case3_lmbd",
    "case5_pjm",
    "case14_ieee",
    "case24_ieee_rts",
    "case30_ieee",
    "case39_epri",
    "case57_ieee",
    "case118_ieee",
    "case300_ieee",
)


@cache
def baseline_ac() -> dict[str, float]:
    """AC objectives ($/h) of the TYP table of PGLib's BASELINE.md."""
    path = next((p for p in BASELINE_CANDIDATES if p.exists()), None)
    if path is None:
        pytest.skip(f"BASELINE.md not found in {[str(p) for p in BASELINE_CANDIDATES]}")
    text = path.read_text()
    section = text.split("## Typical Operating Conditions (TYP)", 1)[1].split("\n## ", 1)[0]
    lines = [ln for ln in section.splitlines() if ln.startswith("|")]
    header = [h.strip().strip("*") for h in lines[0].strip("|").split("|")]
    ac_col = next(i for i, h in enumerate(header) if re.fullmatch(r"AC \(\\?\$/h\)", h))
    out = {}
    for ln in lines[2:]:
        cells = [c.strip() for c in ln.strip("|").split("|")]
        out[cells[0]] = float(cells[ac_col])
    return out


@cache
def solved(name: str) -> tuple[object, OPFSolution]:
    case = load_compiled(f"pglib_opf_{name}", emit_warnings=False)
    return case, solve_opf(case)


def check_feasible(case, sol: OPFSolution, tol: float = 1e-6) -> None:  # noqa: ANN001
    """Independent check of every ACP constraint at the returned point."""
    assert sol.status == "optimal"
    vm, va, pg, qg = sol.vm, sol.va, sol.pg, sol.qg
    assert np.all(vm >= case.vmin - tol) and np.all(vm <= case.vmax + tol)
    assert np.all(pg >= case.pmin - tol) and np.all(pg <= case.pmax + tol)
    assert np.all(qg >= case.qmin - tol) and np.all(qg <= case.qmax + tol)
    assert np.all(np.abs(va[case.ref_bus]) <= 1e-12)
    flows = branch_flows(case, vm, va)
    for mine, ref in ((sol.pf, flows.pf), (sol.qf, flows.qf), (sol.pt, flows.pt),
                      (sol.qt, flows.qt)):
        np.testing.assert_allclose(mine, ref, atol=1e-6)
    lim = np.isfinite(case.rate_a)
    for p, q in ((flows.pf, flows.qf), (flows.pt, flows.qt)):
        # apparent power within the rating (Ipopt relaxes bounds by 1e-8 relative)
        assert np.all(np.hypot(p[lim], q[lim]) <= case.rate_a[lim] + tol)
    lo, hi = angle_limits(case)
    d = va[case.f_bus] - va[case.t_bus]
    assert np.all(d >= lo - tol) and np.all(d <= hi + tol)
    res_p, res_q = balance_residuals(case, pg=pg, qg=qg, vm=vm, va=va)
    assert max(np.abs(res_p).max(), np.abs(res_q).max()) <= 1e-6
    cost = np.sum(case.cost_c2 * pg**2 + case.cost_c1 * pg + case.cost_c0)
    assert math.isclose(cost, sol.objective, rel_tol=1e-12)


def test_baseline_table_parsed() -> None:
    table = baseline_ac()
    assert table["pglib_opf_case14_ieee"] == pytest.approx(2178.1, rel=1e-4)
    assert all(f"pglib_opf_{name}" in table for name in (*DEFAULT_CASES, "case1354_pegase"))


@pytest.mark.parametrize("name", DEFAULT_CASES)
def test_matches_pglib_baseline(name: str) -> None:
    case, sol = solved(name)
    ref = baseline_ac()[f"pglib_opf_{name}"]
    assert sol.status == "optimal", sol.termination
    assert abs(sol.objective - ref) <= 1e-3 * abs(ref), (sol.objective, ref)
    assert sol.max_balance_residual_pu <= 1e-6
    assert sol.solver.startswith(resolve_solver(SolverOptions()).name)


@pytest.mark.parametrize("name", ("case5_pjm", "case14_ieee", "case57_ieee", "case118_ieee"))
def test_solution_satisfies_every_constraint(name: str) -> None:
    case, sol = solved(name)
    check_feasible(case, sol)


@pytest.mark.slow
def test_case1354_pegase_baseline() -> None:
    case = load_compiled("pglib_opf_case1354_pegase", emit_warnings=False)
    sol = solve_opf(case)
    ref = baseline_ac()["pglib_opf_case1354_pegase"]
    assert sol.status == "optimal"
    assert abs(sol.objective - ref) <= 1e-3 * ref
    assert sol.max_balance_residual_pu <= 1e-6
    check_feasible(case, sol)


def test_loads_override_and_warm_start() -> None:
    case, nominal = solved("case14_ieee")
    model = ACOPFModel(case)
    rng = np.random.default_rng(7)
    for _ in range(3):
        f = rng.uniform(0.9, 1.1, case.n_load)
        pd, qd = case.pd * f, case.qd * f
        warm = model.solve(pd, qd, warm_start=nominal)
        cold = model.solve(pd, qd)
        assert warm.optimal and cold.optimal
        assert warm.objective == pytest.approx(cold.objective, rel=1e-6)
        res_p, res_q = balance_residuals(case, pg=warm.pg, qg=warm.qg, vm=warm.vm, va=warm.va,
                                         pd=pd, qd=qd)
        assert max(np.abs(res_p).max(), np.abs(res_q).max()) <= 1e-6
    # more load costs more (case14 is not congested at +10 %)
    heavy = model.solve(case.pd * 1.1, case.qd * 1.1)
    assert heavy.objective > nominal.objective
    # nominal again after other loads: same optimum
    again = model.solve()
    assert again.objective == pytest.approx(nominal.objective, rel=1e-7)


def test_cli_route_agrees_with_in_process_route() -> None:
    case, sol = solved("case30_ieee")
    try:
        other = solve_opf(case, options=SolverOptions(name="pounce-cli"))
    except SolverError:
        pytest.skip("pounce executable not available")
    assert other.optimal
    assert other.objective == pytest.approx(sol.objective, rel=1e-6)
    np.testing.assert_allclose(other.vm, sol.vm, atol=1e-4)


def test_infeasible_load_is_reported_not_optimal() -> None:
    case, _ = solved("case5_pjm")
    total_pmax = case.pmax.sum()
    scale = 1.5 * total_pmax / case.pd.sum()  # demand beyond all generation
    sol = solve_opf(case, pd=case.pd * scale, qd=case.qd * scale,
                    options=SolverOptions(max_iter=300))
    assert sol.status in ("locally_infeasible", "max_iter", "error")
    assert not sol.optimal
    d = sol.to_dict(arrays=False)
    assert d["status"] == sol.status


def test_to_dict_json_contract() -> None:
    import json

    _, sol = solved("case14_ieee")
    d = json.loads(json.dumps(sol.to_dict()))
    for key in ("case", "status", "objective", "max_balance_residual_pu", "solve_seconds",
                "solver"):
        assert key in d
    assert len(d["vm"]) == 14 and d["status"] == "optimal"


def test_bad_loads_raise_named_error() -> None:
    case, _ = solved("case14_ieee")
    with pytest.raises(GridverifyError, match="pd has shape"):
        solve_opf(case, pd=np.ones(3))
    with pytest.raises(GridverifyError, match="NaN"):
        solve_opf(case, pd=np.full(case.n_load, np.nan))


def test_solver_options_validation() -> None:
    with pytest.raises(SolverError, match="unknown solver"):
        SolverOptions(name="gurobi")
    with pytest.raises(SolverError):
        SolverOptions(max_iter=0)
    with pytest.raises(SolverError):
        SolverOptions(tol=-1)
    assert "pounce" in available_solvers()


@pytest.mark.skipif(shutil.which("ipopt") is not None, reason="an ipopt executable is on PATH")
def test_missing_ipopt_is_a_solver_error() -> None:
    with pytest.raises(SolverError, match="ipopt"):
        resolve_solver(SolverOptions(name="ipopt"))


def test_angle_limit_correction() -> None:
    case, _ = solved("case5_pjm")
    import dataclasses

    wide = dataclasses.replace(
        case, angmin=np.full(case.n_branch, -math.pi), angmax=np.zeros(case.n_branch)
    )
    lo, hi = angle_limits(wide)
    assert np.allclose(lo, -math.pi / 3) and np.all(hi == 0)
    both_zero = dataclasses.replace(wide, angmin=np.zeros(case.n_branch))
    lo, hi = angle_limits(both_zero)
    assert np.allclose(lo, -math.pi / 3) and np.allclose(hi, math.pi / 3)
    lo, hi = angle_limits(case)  # PGLib's +-30 degrees are kept
    assert np.allclose(lo, case.angmin) and np.allclose(hi, case.angmax)


def test_isolated_bus_without_load(tmp_path: Path) -> None:
    text = (REPO / "cases" / "pglib_opf_case5_pjm.m").read_text()
    end = text.index("];", text.index("mpc.bus = ["))
    extra = "\t99\t 1\t 0.0\t 0.0\t 0.0\t 0.0\t 1\t 1.0\t 0.0\t 230.0\t 1\t 1.1\t 0.9;\n"
    path = tmp_path / "case5_isolated.m"
    path.write_text(text[:end] + extra + text[end:])
    case = load_compiled(path, emit_warnings=False)
    assert case.n_bus == 6
    sol = solve_opf(case)
    assert sol.optimal
    assert sol.objective == pytest.approx(solved("case5_pjm")[1].objective, rel=1e-7)
    assert sol.max_balance_residual_pu <= 1e-6


def test_a_bus_with_only_a_shunt_keeps_its_balance(tmp_path) -> None:
    """A bus with no branch, load or generator but a 50 MVAr shunt: its reactive
    balance ``bs vm^2 = 0`` stays in the model (as in PowerModels), and with
    ``vm >= 0.9`` it cannot hold, so the solve is not reported optimal."""
    import warnings

    from gridverify.grid.case import resolve_case_path

    text = resolve_case_path("pglib_opf_case5_pjm").read_text()
    head, body = text.split("mpc.bus = [\n", 1)
    rows, tail = body.split("];", 1)
    path = tmp_path / "case5_shunt_bus.m"
    path.write_text(head + "mpc.bus = [\n" + rows
                    + "\t6\t1\t0\t0\t0\t50\t1\t1\t0\t230\t1\t1.1\t0.9;\n];" + tail)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        case = load_compiled(path, emit_warnings=False)
    assert case.n_bus == 6 and case.bs[-1] == pytest.approx(0.5)
    m = ACOPFModel(case)
    assert 5 in m.model.bal_q and 5 not in m.model.bal_p
    assert m.solve().status != "optimal"


def test_model_objective_is_the_generation_cost() -> None:
    """The objective Ipopt minimizes is the case's cost, constant terms included
    (case24_ieee_rts has nonzero c0), at any generator output, not only at the optimum."""
    import pyomo.environ as pyo

    from gridverify.opf.acopf import _build_model

    case = load_compiled("pglib_opf_case24_ieee_rts")
    assert np.any(case.cost_c0 != 0)
    m = _build_model(case)
    rng = np.random.default_rng(3)
    for _ in range(3):
        pg = rng.uniform(case.pmin, case.pmax)
        for g in range(case.n_gen):
            m.pg[g].set_value(float(pg[g]))
        assert pyo.value(m.cost) == pytest.approx(case.generation_cost(pg), rel=1e-12)
