"""Infinite generator limits (``Inf`` in a case file) are no limits, as in MATPOWER."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from gridverify.errors import CaseFormatError
from gridverify.grid import load_case, load_compiled
from gridverify.opf import ACOPFModel, solve_opf
from gridverify.opf.acopf import start_power
from gridverify.physics.acp import build_physics_graph
from gridverify.physics.equations import UNLIMITED_VIOLATION
from gridverify.physics.evaluate import violation_values
from gridverify.spec.constraints import Constraint, select_constraints

LIMITS = {  # (qmax, qmin, pmax, pmin) of generator 1, infinite and huge finite
    "q": (("Inf", "-Inf", "200", "0"), ("9999", "-9999", "200", "0")),
    "qmin": (("100", "-Inf", "200", "0"), ("100", "-9999", "200", "0")),
    "pmax": (("100", "-100", "Inf", "0"), ("100", "-100", "9999", "0")),
    "pmin": (("100", "-100", "200", "-Inf"), ("100", "-100", "200", "-9999")),
}


def _case(mpc3, name: str, lim: tuple[str, str, str, str] = ("100", "-100", "200", "0"),  # noqa: ANN001
          rate: str = "100", ang: tuple[str, str] = ("-30", "30")) -> Path:
    """The shared 3-bus case with the first generator's limits ``(qmax, qmin, pmax,
    pmin)`` and the first line's rating and angle limits."""
    qmax, qmin, pmax, pmin = lim
    return mpc3(name, gen={0: f"1 0 0 {qmax} {qmin} 1 100 1 {pmax} {pmin}"},
                branch={0: f"1 2 0.01 0.05 0.04 {rate} 0 0 0 0 1 {ang[0]} {ang[1]}"})


def _compiled(path: Path):  # noqa: ANN202
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_compiled(path)


@pytest.mark.parametrize("which", sorted(LIMITS))
def test_infinite_limit_solves_like_a_huge_one(mpc3, which: str) -> None:
    inf_lim, big_lim = LIMITS[which]
    inf_case = _compiled(_case(mpc3, "inf", inf_lim))
    big_case = _compiled(_case(mpc3, "big", big_lim))
    start = ACOPFModel(inf_case).flat_start()
    assert all(np.all(np.isfinite(v)) for v in start.values())
    sol, ref = solve_opf(inf_case), solve_opf(big_case)
    assert sol.optimal and ref.optimal
    assert sol.objective == pytest.approx(ref.objective, rel=1e-7)
    assert sol.objective == pytest.approx(2965.65855061, rel=1e-8)


def test_start_power_is_finite_and_mid_range() -> None:
    lo = np.array([0.0, -np.inf, 0.5, -np.inf, -2.0])
    hi = np.array([2.0, np.inf, np.inf, -0.5, np.inf])
    np.testing.assert_array_equal(start_power(lo, hi), [1.0, 0.0, 0.5, -0.5, 0.0])


def test_physics_rows_of_infinite_limits_are_finite(mpc3) -> None:
    case = _compiled(_case(mpc3, "inf", ("Inf", "-Inf", "Inf", "-Inf")))
    assert math.isinf(case.qmax[0]) and math.isinf(case.pmin[0])
    cons = select_constraints(case)
    gen_limits = ("qg_max", "qg_min", "pg_max", "pg_min")
    # no limit, no constraint: the selection leaves them out (as an unrated line's)
    assert not [c for c in cons if c.family in gen_limits and c.index == 0]
    # built anyway (a hand-made list), their rows are the finite constant
    cons = cons + [Constraint(f, int(case.gen_row[0]), 0) for f in gen_limits]
    phys = build_physics_graph(case, cons)
    for node in phys.graph.nodes:
        for v in node.attrs.values():
            if isinstance(v, torch.Tensor) and v.is_floating_point():
                assert torch.all(torch.isfinite(v)), node
    rng = np.random.default_rng(0)
    x = np.concatenate([case.pd, case.qd])[None, :] * rng.uniform(0.8, 1.2, (16, 2 * case.n_load))
    y = np.concatenate([rng.uniform(-2, 2, (16, 2 * case.n_gen)),
                        rng.uniform(0.9, 1.1, (16, case.n_bus)),
                        rng.uniform(-0.3, 0.3, (16, case.n_bus))], axis=1)
    (rows,) = phys.graph.evaluate({"load": torch.from_numpy(x), "proxy_out": torch.from_numpy(y)},
                                  dtype=torch.float64)
    assert np.all(np.isfinite(rows.numpy()))
    got = phys.reduce(rows.numpy())
    ref = violation_values(case, cons, x, y)
    assert np.all(np.isfinite(ref))
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-9)
    unlimited = [k for k, c in enumerate(cons) if c.family in gen_limits and c.index == 0]
    assert len(unlimited) == 4
    np.testing.assert_array_equal(ref[:, unlimited], UNLIMITED_VIOLATION)


def test_solution_json_of_infinite_limits_is_valid(mpc3) -> None:
    case = _compiled(_case(mpc3, "inf", ("Inf", "-Inf", "200", "0")))
    text = json.dumps(solve_opf(case).to_dict(), allow_nan=False)
    assert json.loads(text)["status"] == "optimal"


def test_infinite_rating_is_unlimited_like_zero(mpc3) -> None:
    inf_case = _compiled(_case(mpc3, "rate_inf", rate="Inf"))
    zero_case = _compiled(_case(mpc3, "rate_zero", rate="0"))
    assert math.isinf(inf_case.rate_a[0])
    np.testing.assert_array_equal(inf_case.rate_a, zero_case.rate_a)
    assert solve_opf(inf_case).objective == pytest.approx(solve_opf(zero_case).objective,
                                                          rel=1e-9)
    with pytest.raises(CaseFormatError, match="negative rating rateA = -inf"):
        load_case(_case(mpc3, "rate_minus_inf", rate="-Inf"))
    with pytest.raises(CaseFormatError, match=r"NaN in column 6 \(rateA\)"):
        load_case(_case(mpc3, "rate_nan", rate="NaN"))


def test_infinite_angle_limits_are_like_360(mpc3) -> None:  # noqa: ANN001
    from gridverify.physics.equations import angle_limits

    inf_case = _compiled(_case(mpc3, "ang_inf", ang=("-Inf", "Inf")))
    wide = _compiled(_case(mpc3, "ang_360", ang=("-360", "360")))
    for a, b in zip(angle_limits(inf_case), angle_limits(wide)):
        np.testing.assert_array_equal(a, b)
        assert np.all(np.isfinite(a))
    assert solve_opf(inf_case).objective == pytest.approx(solve_opf(wide).objective, rel=1e-9)


def test_cli_json_of_infinite_limits_is_valid(mpc3, capsys) -> None:
    """``case info --json`` says no total where a limit is infinite (strict JSON);
    ``opf solve --json`` carries the case's warnings."""
    from gridverify.cli import main

    path = _case(mpc3, "inf", ("Inf", "-Inf", "Inf", "0"))
    assert main(["case", "info", str(path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out, parse_constant=lambda c: pytest.fail(c))
    assert info["total_pmax_mw"] is None and info["total_pmin_mw"] == 0.0
    assert info["total_pd_mw"] == round(info["total_pd_mw"], 6)
    assert main(["case", "info", str(path)]) == 0
    assert "no limit" in capsys.readouterr().out
    assert main(["opf", "solve", str(path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["status"] == "optimal" and isinstance(out["warnings"], list)


def test_proxy_head_limits_are_finite_stand_ins(mpc3) -> None:
    """The clamp head of a proxy of a case with Inf limits spans a finite range that
    holds every finite limit and reaches beyond the total load."""
    from gridverify.proxy.model import case_limits

    case = _compiled(_case(mpc3, "inf", ("Inf", "-Inf", "Inf", "0")))
    lo, hi = case_limits(case)
    assert np.all(np.isfinite(lo)) and np.all(np.isfinite(hi)) and np.all(hi > lo)
    reach = 2 * (np.abs(case.pd).sum() + np.abs(case.qd).sum()) + 1
    g = case.n_gen
    assert hi[0] == pytest.approx(reach) and lo[g] == pytest.approx(-reach)  # pmax, qmin
    assert hi[g] == pytest.approx(reach) and lo[0] == 0.0  # qmax, pmin
    finite = _compiled(_case(mpc3, "fin"))
    np.testing.assert_array_equal(case_limits(finite)[0][g + 1:], lo[g + 1:])
