"""The physics graph equals the grid flow equations (1e-9) and pandapower's runpp (1e-6)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gridverify.grid import (
    balance_residuals,
    branch_flows,
    load_case,
    load_compiled,
    ybus_injections,
)
from gridverify.physics.acp import build_physics_graph
from gridverify.physics.equations import angle_limits
from gridverify.physics.evaluate import violation_values
from gridverify.spec.constraints import FAMILIES, ConstraintSelection, select_constraints

CASES = ["pglib_opf_case14_ieee", "pglib_opf_case57_ieee", "pglib_opf_case118_ieee"]


def _random_point(case, rng, b):
    n_in = 2 * case.n_load
    x = np.concatenate([case.pd, case.qd]) * rng.uniform(0.7, 1.3, (b, n_in))
    y = np.concatenate(
        [
            rng.uniform(-2, 4, (b, 2 * case.n_gen)),
            rng.uniform(0.85, 1.15, (b, case.n_bus)),
            rng.uniform(-0.8, 0.8, (b, case.n_bus)),
        ],
        axis=1,
    )
    return x, y


def _split(case, y):
    g, n = case.n_gen, case.n_bus
    return y[:, :g], y[:, g:2 * g], y[:, 2 * g:2 * g + n], y[:, 2 * g + n:]


@pytest.mark.parametrize("name", CASES)
def test_graph_matches_flow_equations(name):
    case = load_compiled(name)
    cons = select_constraints(case)
    phys = build_physics_graph(case, cons, expose_flows=True)
    rng = np.random.default_rng(0)
    x, y = _random_point(case, rng, 64)
    viol, flows, res = phys.graph.evaluate(
        {"load": torch.from_numpy(x), "proxy_out": torch.from_numpy(y)}, dtype=torch.float64
    )
    pg, qg, vm, va = _split(case, y)
    fl = branch_flows(case, vm, va)
    ref_flows = np.concatenate([fl.pf, fl.qf, fl.pt, fl.qt], axis=1)
    np.testing.assert_allclose(flows.numpy(), ref_flows, rtol=0, atol=1e-9)
    L = case.n_load
    rp, rq = balance_residuals(case, pg, qg, vm, va, x[:, :L], x[:, L:])
    np.testing.assert_allclose(res.numpy(), np.concatenate([rp, rq], axis=1), rtol=0, atol=1e-9)
    # every violation row, per constraint, equals the reference evaluation
    ref = violation_values(case, cons, x, y)
    np.testing.assert_allclose(phys.reduce(viol.numpy()), ref, rtol=1e-12, atol=1e-9)
    # and the independent bus-admittance evaluation (the graph's flows summed per bus)
    n = case.n_bus
    fl_g = flows.numpy().reshape(64, 4, -1)
    inj = [np.zeros((64, n)) for _ in range(2)]
    for k, (p_or_q, end) in enumerate([(0, case.f_bus), (1, case.f_bus), (0, case.t_bus),
                                       (1, case.t_bus)]):
        np.add.at(inj[p_or_q].T, end, fl_g[:, k].T)
    yp, yq = ybus_injections(case, vm, va)
    np.testing.assert_allclose(inj[0] + case.gs * vm**2, yp, rtol=0, atol=1e-8)
    np.testing.assert_allclose(inj[1] - case.bs * vm**2, yq, rtol=0, atol=1e-8)


@pytest.mark.parametrize("name", ["pglib_opf_case300_ieee", "pglib_opf_case14_ieee"])
def test_violations_match_the_textbook_branch_model(name):
    """Every family's violations against MATPOWER's pi model and limits written out here, with
    complex numbers (``1/(r + jx)``, charging ``jb/2``, tap ``tau e^{j shift}`` on the
    from side): independent of ``physics/equations.py``, which the graph and
    ``violation_values`` share.  case300 has bus conductances ``gs`` and phase
    shifters."""
    case = load_compiled(name)
    cons = select_constraints(case)
    rng = np.random.default_rng(3)
    b, n, L = 8, case.n_bus, case.n_load
    x, y = _random_point(case, rng, b)
    pg, qg, vm, va = _split(case, y)
    ref = violation_values(case, cons, x, y)
    v = vm * np.exp(1j * va)
    ys = 1 / (case.r + 1j * case.x)
    tap = case.tap * np.exp(1j * case.shift)
    vf, vt = v[:, case.f_bus], v[:, case.t_bus]
    sf = vf * np.conj((ys + 0.5j * case.b) / np.abs(tap) ** 2 * vf - ys / np.conj(tap) * vt)
    st = vt * np.conj((ys + 0.5j * case.b) * vt - ys / tap * vf)

    def per_bus(values, bus):
        out = np.zeros((b, n), dtype=values.dtype)
        np.add.at(out.T, bus, values.T)
        return out

    out = per_bus(sf, case.f_bus) + per_bus(st, case.t_bus)
    res_p = (per_bus(pg, case.gen_bus) - per_bus(x[:, :L], case.load_bus)
             - case.gs * vm**2 - out.real)
    res_q = (per_bus(qg, case.gen_bus) - per_bus(x[:, L:], case.load_bus)
             + case.bs * vm**2 - out.imag)
    dva = va[:, case.f_bus] - va[:, case.t_bus]
    amin, amax = angle_limits(case)  # PowerModels' correction, tested on its own
    expect = {"p_balance": lambda i: np.abs(res_p[:, i]),
              "q_balance": lambda i: np.abs(res_q[:, i]),
              "thermal_fr": lambda i: np.abs(sf[:, i]) ** 2 - case.rate_a[i] ** 2,
              "thermal_to": lambda i: np.abs(st[:, i]) ** 2 - case.rate_a[i] ** 2,
              "vm_max": lambda i: vm[:, i] - case.vmax[i],
              "vm_min": lambda i: case.vmin[i] - vm[:, i],
              "pg_max": lambda i: pg[:, i] - case.pmax[i],
              "pg_min": lambda i: case.pmin[i] - pg[:, i],
              "qg_max": lambda i: qg[:, i] - case.qmax[i],
              "qg_min": lambda i: case.qmin[i] - qg[:, i],
              "angle_max": lambda i: dva[:, i] - amax[i],
              "angle_min": lambda i: amin[i] - dva[:, i]}
    checked = {f: 0 for f in expect}
    for k, con in enumerate(cons):
        if con.family in expect:
            np.testing.assert_allclose(ref[:, k], expect[con.family](con.index),
                                       rtol=1e-12, atol=1e-9, err_msg=str(con))
            checked[con.family] += 1
    assert min(checked.values()) > 0, checked
    if name == "pglib_opf_case300_ieee":
        assert np.any(case.gs != 0) and np.any(case.shift != 0)


def test_graph_rows_and_signs():
    case = load_compiled("pglib_opf_case14_ieee")
    cons = select_constraints(case)
    phys = build_physics_graph(case, cons)
    fams = [cons[k].family for k in phys.row_constraint]
    # balance constraints have two rows (+res, -res); every other constraint one
    for k, c in enumerate(cons):
        n = int(np.sum(phys.row_constraint == k))
        assert n == (2 if c.family.endswith("balance") else 1)
    assert set(fams) == set(FAMILIES)
    assert set(phys.row_sign.tolist()) == {1, -1}


@pytest.mark.parametrize("family", FAMILIES)
def test_single_family_graphs(family):
    """A graph of one family alone evaluates like the full reference."""
    case = load_compiled("pglib_opf_case14_ieee")
    cons = select_constraints(case, ConstraintSelection((family,)))
    phys = build_physics_graph(case, cons)
    x, y = _random_point(case, np.random.default_rng(1), 16)
    (viol,) = phys.graph.evaluate({"load": torch.from_numpy(x), "proxy_out": torch.from_numpy(y)})
    np.testing.assert_allclose(
        phys.reduce(viol.numpy()), violation_values(case, cons, x, y), rtol=1e-12, atol=1e-9
    )


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    scale=st.floats(0.5, 1.5),
    spread=st.floats(0.0, 1.5),
)
def test_graph_matches_reference_property(seed, scale, spread):
    case = load_compiled("pglib_opf_case57_ieee")
    cons = select_constraints(case)
    phys = build_physics_graph(case, cons)
    rng = np.random.default_rng(seed)
    x = np.concatenate([case.pd, case.qd]) * scale
    y = np.concatenate(
        [
            rng.normal(0, 2, 2 * case.n_gen),
            1 + spread * 0.2 * rng.standard_normal(case.n_bus),
            spread * rng.standard_normal(case.n_bus),
        ]
    )
    (viol,) = phys.graph.evaluate({"load": torch.from_numpy(x), "proxy_out": torch.from_numpy(y)})
    ref = violation_values(case, cons, x[None], y[None])
    np.testing.assert_allclose(phys.reduce(viol.numpy()), ref, rtol=1e-12, atol=1e-9)


@pytest.mark.parametrize("name", ["case14_ieee", "case57_ieee", "case118_ieee"])
def test_graph_matches_runpp(name):
    """At pandapower's power-flow solution, graph flows equal runpp's and residuals vanish."""
    pp = pytest.importorskip("pandapower")
    from gridverify.grid import compile_case
    from gridverify.grid.pandapower_io import to_pandapower

    raw = load_case(name)
    case = compile_case(raw, emit_warnings=False)
    net = to_pandapower(raw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pp.runpp(net, calculate_voltage_angles=True, trafo_model="pi", tolerance_mva=1e-9,
                 max_iteration=30, numba=False)
    assert net.converged
    vm = net.res_bus.vm_pu.loc[case.bus_ids].to_numpy()
    va = np.deg2rad(net.res_bus.va_degree.loc[case.bus_ids].to_numpy())
    # generation per bus from runpp's solved ppc generator table, put on the first
    # generator of each bus (any split gives the same balance)
    ppc = net._ppc
    ppc_row = np.asarray(net._pd2ppc_lookups["bus"])[case.bus_ids]
    gen_ppc_bus = np.real(ppc["gen"][:, 0]).astype(int)
    gp = np.array([np.real(ppc["gen"][gen_ppc_bus == r, 1]).sum() for r in ppc_row])
    gq = np.array([np.real(ppc["gen"][gen_ppc_bus == r, 2]).sum() for r in ppc_row])
    gp, gq = gp / case.base_mva, gq / case.base_mva
    pg = np.zeros(case.n_gen)
    qg = np.zeros(case.n_gen)
    for i in np.unique(case.gen_bus):
        first = int(np.flatnonzero(case.gen_bus == i)[0])
        pg[first], qg[first] = gp[i], gq[i]
    no_gen = np.setdiff1d(np.arange(case.n_bus), case.gen_bus)
    assert np.abs(gp[no_gen]).max(initial=0) < 1e-9
    y = np.concatenate([pg, qg, vm, va])[None]
    x = np.concatenate([case.pd, case.qd])[None]
    cons = select_constraints(case, ConstraintSelection(("p_balance", "q_balance")))
    phys = build_physics_graph(case, cons, expose_flows=True)
    viol, flows, _res = phys.graph.evaluate(
        {"load": torch.from_numpy(x), "proxy_out": torch.from_numpy(y)}
    )
    assert phys.reduce(viol.numpy()).max() < 1e-6  # |residual| at a power-flow solution
    lookup = net._from_ppc_lookups["branch"]
    f = flows.numpy().reshape(4, case.n_branch)
    for k in range(case.n_branch):
        row = lookup.loc[int(case.branch_row[k]) - 1]
        et, idx = str(row.element_type), int(row.element)
        r = net["res_" + et].loc[idx]
        a, b = ("hv", "lv") if et == "trafo" else ("from", "to")
        ref = np.array([r[f"p_{a}_mw"], r[f"q_{a}_mvar"], r[f"p_{b}_mw"], r[f"q_{b}_mvar"]])
        np.testing.assert_allclose(f[:, k], ref / case.base_mva, rtol=0, atol=1e-6)
