"""Cross-checks against pandapower's runpp, and the pandapower converter.

runpp uses ``trafo_model="pi"``, the MATPOWER branch model that the converter
writes (with pandapower's default ``"t"`` the bundled cases still agree, as their
transformers have no magnetizing branch, but pandapower's own networks do not).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

pp = pytest.importorskip("pandapower")
pn = pytest.importorskip("pandapower.networks")

from pandapower_helpers import TOL, check_net, runpp, side_results  # noqa: E402

from gridverify.errors import CaseFormatError  # noqa: E402
from gridverify.grid import (  # noqa: E402
    balance_residuals,
    branch_flows,
    bus_injections,
    compile_case,
    from_pandapower,
    load_case,
)
from gridverify.grid.pandapower_io import from_pandapower_mapped, to_pandapower  # noqa: E402


def _solved(raw):
    """The compiled case, its pandapower network solved by runpp, and the voltages."""
    cc = compile_case(raw, emit_warnings=False)
    net = to_pandapower(raw)
    runpp(net)
    assert net.converged
    vm = net.res_bus.vm_pu.loc[cc.bus_ids].to_numpy()
    va = np.deg2rad(net.res_bus.va_degree.loc[cc.bus_ids].to_numpy())
    return cc, net, vm, va


@pytest.mark.parametrize("name", ["case14_ieee", "case24_ieee_rts", "case57_ieee",
                                  "case118_ieee"])
def test_flows_matchrunpp(name):
    """Our flows at pandapower's solved voltages equal its line/trafo results
    (case24: transformers whose tap sits at their low-voltage from bus)."""
    cc, net, vm, va = _solved(load_case(name))
    fl = branch_flows(cc, vm, va)
    ours = np.stack([fl.pf, fl.qf, fl.pt, fl.qt], axis=1)
    lookup = net._from_ppc_lookups["branch"]
    kinds = set()
    for k in range(cc.n_branch):
        row = lookup.loc[int(cc.branch_row[k]) - 1]
        et, idx = str(row.element_type), int(row.element)
        kinds.add(et)
        theirs = side_results(net, et, idx, cc.base_mva)
        if et == "trafo" and net.trafo.lv_bus[idx] == cc.bus_ids[cc.f_bus[k]]:
            theirs = theirs[[2, 3, 0, 1]]  # from bus on the low-voltage side
        np.testing.assert_allclose(ours[k], theirs,
                                   rtol=0, atol=TOL, err_msg=f"branch row {cc.branch_row[k]}")
    assert {"line", "trafo"} <= kinds
    # bus level: pandapower's bus result (consumption positive, shunts included) is
    # minus the net flow out of the bus
    p, q = bus_injections(cc, vm, va)
    res_p = -net.res_bus.p_mw.loc[cc.bus_ids].to_numpy() / cc.base_mva
    res_q = -net.res_bus.q_mvar.loc[cc.bus_ids].to_numpy() / cc.base_mva
    np.testing.assert_allclose(p, res_p, rtol=0, atol=TOL)
    np.testing.assert_allclose(q, res_q, rtol=0, atol=TOL)
    assert np.any(cc.bs != 0) or name != "case14_ieee"


@pytest.mark.parametrize("factory", [pn.case14, pn.case57, pn.case118])
def test_from_pandapower_builtin_cases(factory):
    check_net(factory())


def test_from_pandapower_case14_costs_and_ids():
    net = pn.case14()
    raw = from_pandapower(net, name="pp14")
    assert raw.name == "pp14" and raw.source == "<pandapower>"
    assert sorted(raw.bus[:, 0].astype(int)) == list(range(1, 15))
    cc = compile_case(raw, emit_warnings=False)
    assert cc.n_gen == len(net.gen) + len(net.ext_grid)
    # ext_grid cost: pandapower poly_cost in $/MW^2 -> pu
    cost = net.poly_cost[(net.poly_cost.et == "ext_grid")].iloc[0]
    assert cc.cost_c2[0] == pytest.approx(cost.cp2_eur_per_mw2 * cc.base_mva**2)
    assert cc.cost_c1[0] == pytest.approx(cost.cp1_eur_per_mw * cc.base_mva)
    assert np.isclose(cc.pd.sum() * cc.base_mva, net.load.p_mw.sum())


@pytest.mark.parametrize("edit", ["gen_out", "gen_bus_out", "slack_gen_only"])
def test_from_pandapower_with_no_element_of_a_type_in_service(edit):
    """pandapower's lookup of a type with nothing in service is None: no such element,
    whether or not a power flow ran on the network before."""
    net = pn.example_simple()
    if edit == "gen_out":
        net.gen["in_service"] = False
    elif edit == "gen_bus_out":
        net.bus["in_service"] = net.bus.index != int(net.gen.bus.iloc[0])
    else:
        net.gen["slack"] = True
        net.ext_grid["in_service"] = False
    cc = compile_case(from_pandapower(net), emit_warnings=False)
    assert cc.n_gen == 1  # the ext_grid or the gen, whichever is in service
    check_net(net, flows=False)


def test_from_pandapower_with_switches_and_iron_losses():
    """example_simple: merged buses, an open line end, a transformer with iron losses."""
    net = pn.example_simple()
    pc = from_pandapower_mapped(net)
    assert any("1 trafo (line conductance, transformer iron losses) moved to bus shunts" in n
               for n in pc.raw.notes), pc.raw.notes
    # flows of transformers exclude the iron losses, so compare bus balances only there
    check_net(net, flows=False)


def test_from_pandapower_distribution_grid():
    check_net(pn.mv_oberrhein(), flows=False)


def _runopp_cost(net) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pp.runopp(net, numba=False)
    return float(net.res_cost)


@pytest.mark.parametrize("factory", [pn.case9, pn.case14, pn.case_ieee30, pn.case24_ieee_rts,
                                     pn.create_cigre_network_mv])
def test_from_pandapower_opf_matches_runopp(factory):
    """The converted case is pandapower's OPF problem: same limits, same optimum."""
    from gridverify.opf import solve_opf

    net = factory()
    cc = compile_case(from_pandapower(net), emit_warnings=False)
    sol = solve_opf(cc)
    assert sol.status == "optimal"
    assert sol.objective == pytest.approx(_runopp_cost(factory()), rel=1e-6)
    # limits are the network's own, not power-flow placeholders (vm in [0, 2], q = 0)
    assert np.all(cc.vmax <= 1.1 + 1e-9) and np.all(cc.vmin >= 0.9 - 1e-9)
    # (case24_ieee_rts: costs on controllable sgens; cigre mv: no costs at all, so
    # the total generation is minimized as runopp does)
    gen = net.gen.sort_index()
    rows = [i for i, (et, _) in enumerate(from_pandapower_mapped(net).gen_elements)
            if et == "gen"]
    if not rows:
        return
    # (pandapower widens them by its delta, 1e-10)
    np.testing.assert_allclose(cc.pmax[rows] * cc.base_mva, gen.max_p_mw, atol=1e-8)
    np.testing.assert_allclose(cc.qmin[rows] * cc.base_mva, gen.min_q_mvar, atol=1e-8)


def test_from_pandapower_branch_without_loading_limit_is_unlimited():
    net = pn.case9()
    net.line = net.line.drop(columns="max_loading_percent")
    cc = compile_case(from_pandapower(net), emit_warnings=False)
    assert np.all(np.isinf(cc.rate_a))  # not pandapower's 100 MVA power-flow placeholder


def test_read_pandapower_json_file(tmp_path):
    from gridverify.grid.pandapower_io import read_pandapower_json

    net = pn.case9()
    path = tmp_path / "my grid.json"
    pp.to_json(net, str(path))
    raw = read_pandapower_json(path)
    assert raw.name == "my grid" and raw.source == str(path)
    direct = from_pandapower(net)
    for table in ("bus", "gen", "branch", "gencost"):
        np.testing.assert_array_equal(getattr(raw, table), getattr(direct, table))
    # load_case dispatches on the suffix, so every command reads such files
    assert compile_case(load_case(path)).content_hash == compile_case(direct).content_hash


@pytest.mark.parametrize(("text", "match"), [
    ("not json", "not a pandapower network file"),
    ('{"a": 1}', "holds a dict"),
    ("", "not a pandapower network file"),
])
def test_read_pandapower_json_rejects_other_files(tmp_path, text, match):
    path = tmp_path / "net.json"
    path.write_text(text)
    with pytest.raises(CaseFormatError, match=match) as info:
        load_case(path)
    assert str(path) in str(info.value)


def test_from_pandapower_costs_of_controllable_elements():
    """Controllable sgen, load and storage are generator rows with pandapower's costs
    (sign flipped for loads and storage, whose generator variable is minus their power)."""
    net = pn.case9()
    pp.create_sgen(net, 4, p_mw=10.0, controllable=True, max_p_mw=20.0, min_p_mw=0.0,
                   max_q_mvar=5.0, min_q_mvar=-5.0)
    pp.create_load(net, 6, p_mw=10.0, controllable=True, max_p_mw=15.0, min_p_mw=5.0,
                   max_q_mvar=0.0, min_q_mvar=0.0)
    sg, ld = net.sgen.index[-1], net.load.index[-1]
    pp.create_poly_cost(net, sg, "sgen", cp1_eur_per_mw=3.0, cp2_eur_per_mw2=0.5)
    pp.create_poly_cost(net, ld, "load", cp1_eur_per_mw=-40.0)
    pc = from_pandapower_mapped(net)
    row = {el: i for i, el in enumerate(pc.gen_elements)}
    assert pc.raw.gencost[row[("sgen", sg)], 4:7].tolist() == [0.5, 3.0, 0.0]
    assert pc.raw.gencost[row[("load", ld)], 4:7].tolist() == [0.0, 40.0, 0.0]
    cc = compile_case(pc.raw, emit_warnings=False)
    from gridverify.opf import solve_opf

    assert solve_opf(cc).objective == pytest.approx(_runopp_cost(net), rel=1e-6)


def test_from_pandapower_vector_group_shift_is_feasible():
    """A 150-degree transformer (pandapower's Dyn5) with unlimited angle difference:
    the padded limits sit about the shift, so the OPF is feasible and its angle
    difference across the transformer is about 150 degrees."""
    from gridverify.opf import solve_opf

    net = pn.simple_four_bus_system()
    pc = from_pandapower_mapped(net)
    cc = compile_case(pc.raw, emit_warnings=False)
    k = int(np.flatnonzero(cc.shift != 0)[0])
    assert np.rad2deg(cc.shift[k]) == pytest.approx(150.0)
    sol = solve_opf(cc)
    assert sol.status == "optimal"
    dva = np.rad2deg(sol.va[cc.f_bus[k]] - sol.va[cc.t_bus[k]])
    assert 90.0 < dva < 210.0 and abs(dva - 150.0) < 5.0


def test_from_pandapower_piecewise_linear_costs_match_runopp():
    """pwl_cost areas become MATPOWER model-1 points; the optimum is runopp's."""
    from gridverify.opf import solve_opf

    net = pn.case9()
    net.poly_cost = net.poly_cost.iloc[0:0]
    pp.create_pwl_cost(net, 0, "ext_grid", [[0, 100, 10], [100, 300, 30]])
    pp.create_pwl_cost(net, 0, "gen", [[0, 150, 12], [150, 300, 25]])
    pp.create_pwl_cost(net, 1, "gen", [[0, 270, 15]])
    raw = from_pandapower(net)
    assert raw.gencost[0, :10].tolist() == [1, 0, 0, 3, 0, 0, 100, 1000, 300, 7000]
    cc = compile_case(raw, emit_warnings=False)
    assert sorted(cc.cost_pwl) == [0, 1, 2]
    sol = solve_opf(cc)
    assert sol.objective == pytest.approx(_runopp_cost(net), rel=1e-6)


def test_from_pandapower_rejects_gaps_between_cost_areas():
    net = pn.case9()
    net.poly_cost = net.poly_cost.iloc[0:0]
    pp.create_pwl_cost(net, 0, "gen", [[0, 100, 12], [150, 300, 25]])
    with pytest.raises(CaseFormatError) as info:  # named by row, not pandapower's words
        from_pandapower(net)
    assert "pwl_cost 0: areas are not consecutive (100 MW, then 150 MW)" in str(info.value)
    assert "field pwl_cost" in str(info.value)
    net.pwl_cost.at[0, "points"] = [[0, 100]]
    with pytest.raises(CaseFormatError, match="pwl_cost 0: points must be areas"):
        from_pandapower(net)


def test_from_pandapower_rejects_in_service_dc_lines():
    net = pn.case9()
    k = pp.create_dcline(net, 4, 6, p_mw=20, loss_percent=1, loss_mw=0.5, vm_from_pu=1.0,
                         vm_to_pu=1.0, max_p_mw=50)
    with pytest.raises(CaseFormatError, match=f"dcline {k}: in-service DC lines"):
        from_pandapower(net)
    net.dcline.loc[k, "in_service"] = False
    assert from_pandapower(net).gen.shape[0] == 3


def test_pandapower_log_warnings_become_notes(capfd):
    """pandapower's own warnings while converting are notes of the case, not stderr."""
    raw = from_pandapower(pn.case14())
    assert any("pandapower: gen vm_pu > bus max_vm_pu" in n for n in raw.notes)
    net = pn.case9()
    net.poly_cost = net.poly_cost.iloc[0:0]
    raw = from_pandapower(net)
    assert sum("no costs" in n for n in raw.notes) == 1
    assert capfd.readouterr().err == ""


@pytest.mark.parametrize("edit", [
    lambda n: n.load.__setitem__("p_mw", "abc"),  # a string where pandapower needs a number
    lambda n: n.line.__setitem__("from_bus", 99),  # a line to a bus that does not exist
    lambda n: n.poly_cost.__setitem__("cp1_eur_per_mw", "x"),
])
def test_malformed_networks_are_named_errors(edit):
    net = pn.case9()
    edit(net)
    with pytest.raises(CaseFormatError, match="pandapower"):
        from_pandapower(net)


@pytest.mark.parametrize("name", ["case14_ieee", "case118_ieee", "case300_ieee",
                                  "case1354_pegase"])
def test_admittances_match_pypower(name):
    """Bus and branch admittance matrices equal PYPOWER's ``makeYbus`` (as shipped in
    pandapower) on the same case: taps, phase shifters, charging, shunts and negative
    reactances included, without a power flow that has to converge."""
    from pandapower.pypower.makeYbus import makeYbus

    from gridverify.grid.pandapower_io import ppc_of

    raw = load_case(name)
    cc = compile_case(raw, emit_warnings=False)
    ppc = ppc_of(raw)
    # PYPOWER's internal numbering: the compiled case's buses and in-service branches,
    # in their order, buses numbered 0..n-1 (what ext2int does)
    rows = {int(b): k for k, b in enumerate(ppc["bus"][:, 0])}
    bus = ppc["bus"][[rows[int(b)] for b in cc.bus_ids]].copy()
    bus[:, 0] = np.arange(cc.n_bus)
    from pandapower.pypower.idx_brch import branch_cols
    from pandapower.pypower.idx_bus import bus_cols

    br = ppc["branch"][np.asarray(cc.branch_row) - 1]
    branch = np.zeros((br.shape[0], branch_cols))  # pandapower's extra columns: zero
    branch[:, : br.shape[1]] = br
    branch[:, 0], branch[:, 1] = cc.f_bus, cc.t_bus
    bus = np.hstack([bus, np.zeros((bus.shape[0], max(bus_cols - bus.shape[1], 0)))])
    ybus, yf, yt = makeYbus(ppc["baseMVA"], bus, branch)
    np.testing.assert_allclose(ybus.toarray(), cc.ybus.toarray(), rtol=0, atol=1e-9)
    vm = np.random.default_rng(0).uniform(0.9, 1.1, cc.n_bus)
    va = np.random.default_rng(1).uniform(-0.5, 0.5, cc.n_bus)
    v = vm * np.exp(1j * va)
    fl = branch_flows(cc, vm, va)
    sf = v[cc.f_bus] * np.conj(yf @ v)
    st_ = v[cc.t_bus] * np.conj(yt @ v)
    np.testing.assert_allclose(fl.pf + 1j * fl.qf, sf, rtol=0, atol=1e-9)
    np.testing.assert_allclose(fl.pt + 1j * fl.qt, st_, rtol=0, atol=1e-9)
    assert np.any(cc.shift != 0) or name != "case300_ieee"


ODD_CASE = """function mpc = odd4
mpc.version = '2';
mpc.baseMVA = 100;
mpc.bus = [
	1	3	0	0	0	0	1	1.02	0	230	1	1.1	0.9;
	2	2	30	10	0	5	1	1.0	0	230	1	1.1	0.9;
	3	1	60	20	2	-3	1	1.0	0	115	1	1.1	0.9;
	4	4	0	0	0	0	1	1.0	0	115	1	1.1	0.9;
];
mpc.gen = [
	1	50	0	100	-100	1.02	100	1	200	0;
	2	40	0	100	-100	1.0	100	1	200	0;
];
mpc.gencost = [
	2	0	0	4	0	0.01	20	0;
	2	0	0	3	0.02	15	0	0;
];
mpc.branch = [
	1	2	0.01	0.08	0.10	0	0	0	0	0	1	-30	30;
	1	3	0.01	0.09	0.20	0	0	0	1.05	0	1	-30	30;
	2	3	0.02	0.10	0.05	0	0	0	0.98	-5	1	-30	30;
	1	3	0.02	0.10	0.04	0	0	0	0	0	0	-30	30;
	3	4	0.02	0.10	0.20	0	0	0	0	0	1	-30	30;
];
"""


# the phase shifter written from its low-voltage end (pandapower's transformer runs
# from the high-voltage side: the shift changes sign when the ends are swapped)
_SHIFTER = "\t2\t3\t0.02\t0.10\t0.05\t0\t0\t0\t0.98\t-5\t1\t-30\t30;"
_REVERSED = "\t3\t2\t0.02\t0.10\t0.05\t0\t0\t0\t0.98\t-5\t1\t-30\t30;"


@pytest.mark.parametrize("reversed_shifter", [False, True])
def test_to_pandapower_odd_case_balances(tmp_path, reversed_shifter):
    """A branch out of service between buses of different voltage (``from_ppc`` makes
    it an impedance, in service), a line to an isolated bus, transformers with line
    charging (pandapower's transformer has none), a phase shifter written from either
    end and a cubic cost with a zero leading coefficient: runpp's bus results are
    MATPOWER's."""
    assert _SHIFTER in ODD_CASE
    path = tmp_path / "odd4.m"
    path.write_text(ODD_CASE.replace(_SHIFTER, _REVERSED) if reversed_shifter else ODD_CASE)
    cc, net, vm, va = _solved(load_case(path))
    # the generators' outputs at runpp's solution balance every bus in MATPOWER's
    # model (the charging pandapower holds as bus shunts is in our branch flows)
    gens = net._from_ppc_lookups["gen"]
    pg, qg = np.zeros(cc.n_gen), np.zeros(cc.n_gen)
    for j, row in enumerate(cc.gen_row):
        g = gens.loc[int(row) - 1]
        r = net["res_" + str(g.element_type)].loc[int(g.element)]
        pg[j], qg[j] = r.p_mw / cc.base_mva, r.q_mvar / cc.base_mva
    rp, rq = balance_residuals(cc, pg, qg, vm, va)
    assert np.abs(rp).max() < TOL and np.abs(rq).max() < TOL
    lookup = net._from_ppc_lookups["branch"]
    for k in (3, 4):  # out of service, and to the isolated bus
        row = lookup.loc[k]
        assert not bool(net[str(row.element_type)].in_service.loc[int(row.element)])
    cost = net.poly_cost.set_index("element").sort_index()
    assert list(cost.cp2_eur_per_mw2) == [0.01, 0.02]
    # a true cubic (which load_case refuses already) is refused, not cut
    from gridverify.grid.pandapower_io import _quadratic_gencost

    with pytest.raises(CaseFormatError, match="gencost row 1: a polynomial of degree 3"):
        _quadratic_gencost(np.array([[2, 0, 0, 4, 0.5, 0.01, 20, 0]]), "odd4.m")
