"""pandapower networks with partial loading limits, bad bus references, phase shifts."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

pp = pytest.importorskip("pandapower")

from gridverify.errors import CaseFormatError  # noqa: E402
from gridverify.grid import compile_case, from_pandapower  # noqa: E402

LINE = "149-AL1/24-ST1A 110.0"


def _net3():  # noqa: ANN202
    """Three 110 kV buses in a ring, an ext_grid and a controllable gen (QA's net4)."""
    net = pp.create_empty_network()
    b = [pp.create_bus(net, 110, min_vm_pu=0.95, max_vm_pu=1.05) for _ in range(3)]
    pp.create_ext_grid(net, b[0], vm_pu=1.0, min_p_mw=-300, max_p_mw=300, min_q_mvar=-300,
                       max_q_mvar=300)
    pp.create_gen(net, b[2], p_mw=10, vm_pu=1.0, min_p_mw=0, max_p_mw=100, min_q_mvar=-50,
                  max_q_mvar=50, controllable=True)
    pp.create_line(net, b[0], b[1], 30, LINE)
    pp.create_line(net, b[1], b[2], 20, LINE)
    pp.create_line(net, b[0], b[2], 20, LINE)
    for bus, p in ((b[1], 40), (b[2], 30)):
        pp.create_load(net, bus, p_mw=p, q_mvar=p / 4)
    pp.create_poly_cost(net, 0, "ext_grid", cp1_eur_per_mw=20)
    pp.create_poly_cost(net, 0, "gen", cp1_eur_per_mw=25)
    return net


def _compiled(net):  # noqa: ANN001, ANN202
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return compile_case(from_pandapower(net), emit_warnings=False)


def test_partial_loading_limits_leave_the_others_unlimited():
    from gridverify.opf import solve_opf

    net = _net3()
    net.line["max_loading_percent"] = [np.nan, 80.0, np.nan]
    cc = _compiled(net)
    assert np.isinf(cc.rate_a).tolist() == [True, False, True]
    # 80 % of 0.47 kA at 110 kV
    assert cc.rate_a[1] * cc.base_mva == pytest.approx(0.8 * 0.47 * 110 * np.sqrt(3))
    sol = solve_opf(cc)
    assert sol.optimal
    assert sol.objective == pytest.approx(1420.5134, rel=1e-6)  # pandapower's runopp
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pp.runopp(net, numba=False)
    assert sol.objective == pytest.approx(float(net.res_cost), rel=1e-6)


@pytest.mark.parametrize(("table", "col", "value", "message"), [
    ("line", "to_bus", 42, "line 1: to_bus 42 is not a bus of the network"),
    ("line", "from_bus", 7, "line 1: from_bus 7 is not a bus of the network"),
    ("load", "bus", 99, "load 1: bus 99 is not a bus of the network"),
    ("gen", "bus", 5, "gen 0: bus 5 is not a bus of the network"),
    ("ext_grid", "bus", np.nan, "ext_grid 0: bus nan is not a bus of the network"),
])
def test_bad_bus_references_are_named(table, col, value, message):
    net = _net3()
    idx = 1 if table in ("line", "load") else 0
    net[table][col] = net[table][col].astype(float)
    net[table].loc[idx, col] = value
    with pytest.raises(CaseFormatError) as info:
        from_pandapower(net)
    text = str(info.value)
    assert message in text and f"field {table}.{col}" in text
    assert len(text.splitlines()) == 1


def test_bad_bus_of_a_bus_bus_switch_is_named():
    net = _net3()
    pp.create_switch(net, 0, 0, et="l")
    pp.create_switch(net, 1, 2, et="b")
    net.switch.loc[1, "element"] = 17
    with pytest.raises(CaseFormatError, match="switch 1: element 17 is not a bus"):
        from_pandapower(net)


def test_standard_150_degree_transformer_solves_from_the_default_start():
    """pandapower's "25 MVA 110/20 kV" (Dyn5, 150 degrees): the OPF starts its angles
    from the shifts and finds the optimum that a start at runpp's angles gives (QA's
    net1: 2210.73164)."""
    from gridverify.opf import solve_opf

    net = pp.create_empty_network(sn_mva=100)
    b = [pp.create_bus(net, 110, min_vm_pu=0.94, max_vm_pu=1.06) for _ in range(4)]
    m = [pp.create_bus(net, 20, min_vm_pu=0.94, max_vm_pu=1.06) for _ in range(2)]
    pp.create_ext_grid(net, b[0], vm_pu=1.02, min_p_mw=-500, max_p_mw=500, min_q_mvar=-300,
                       max_q_mvar=300)
    pp.create_gen(net, b[2], p_mw=40, vm_pu=1.01, min_p_mw=0, max_p_mw=80, min_q_mvar=-40,
                  max_q_mvar=40, controllable=True)
    for f, t, km, par in ((0, 1, 30, 1), (1, 2, 20, 2), (0, 3, 25, 1), (3, 2, 15, 1)):
        pp.create_line(net, b[f], b[t], km, LINE, max_loading_percent=100, parallel=par)
    t = pp.create_transformer(net, b[3], m[0], "25 MVA 110/20 kV", max_loading_percent=100)
    net.trafo.loc[t, "tap_pos"] = 2
    pp.create_line(net, m[0], m[1], 5, "NA2XS2Y 1x185 RM/25 12/20 kV", max_loading_percent=100)
    for bus, p, q in ((b[1], 30, 10), (b[2], 45, 15), (m[0], 8, 3), (m[1], 6, 2)):
        pp.create_load(net, bus, p_mw=p, q_mvar=q)
    pp.create_shunt(net, b[1], q_mvar=-5, p_mw=0.2)
    pp.create_poly_cost(net, 0, "ext_grid", cp1_eur_per_mw=30, cp2_eur_per_mw2=0.01)
    pp.create_poly_cost(net, 0, "gen", cp1_eur_per_mw=20, cp2_eur_per_mw2=0.05, cp0_eur=5)
    cc = _compiled(net)
    assert np.rad2deg(cc.shift).round(6).tolist().count(150.0) == 1
    sol = solve_opf(cc)
    assert sol.optimal, sol.status
    assert sol.objective == pytest.approx(2210.73164, rel=1e-7)


def test_transformers_of_a_pandapower_network_are_its_trafos():
    from gridverify.grid.pandapower_io import from_pandapower_mapped

    net = _net3()
    m = pp.create_bus(net, 20, min_vm_pu=0.9, max_vm_pu=1.1)
    lv = pp.create_bus(net, 10, min_vm_pu=0.9, max_vm_pu=1.1)
    mid = pp.create_bus(net, 20, min_vm_pu=0.9, max_vm_pu=1.1)
    pp.create_transformer3w(net, 1, m, lv, "63/25/38 MVA 110/20/10 kV")
    pp.create_transformer(net, 2, mid, "25 MVA 110/20 kV")
    for bus in (m, lv, mid):
        pp.create_load(net, bus, p_mw=2, q_mvar=0.5)
    pc = from_pandapower_mapped(net)
    kinds = [et for et, _ in pc.branch_elements]
    assert kinds.count("line") == 3 and kinds.count("trafo") == 1
    assert kinds.count("trafo3w") == 3  # three branches about the star point
    cc = _compiled(net)
    assert cc.n_transformers == 4  # lines have ratio 1 in pandapower's case, not counted


def test_ext_grid_angle_is_noted_not_kept():
    from gridverify.opf import solve_opf

    net = _net3()
    ref = _compiled(net)
    net.ext_grid["va_degree"] = 30.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        raw = from_pandapower(net)
    notes = [n for n in raw.notes if "va_degree" in n]
    assert len(notes) == 1
    assert "ext_grid 0 has va_degree 30" in notes[0] and "relative to the reference bus" in notes[0]
    cc = _compiled(net)
    assert any("va_degree" in w for w in cc.warnings)
    assert not any("va_degree" in w for w in ref.warnings)
    sol = solve_opf(cc)
    assert sol.va[cc.ref_bus[0]] == 0.0
    assert sol.objective == pytest.approx(solve_opf(ref).objective, rel=1e-9)


def test_row_errors_name_the_pandapower_element():
    net = _net3()
    net.line.loc[1, ["r_ohm_per_km", "x_ohm_per_km"]] = 0.0
    with pytest.raises(CaseFormatError, match=r"branch row 2 \(line 1\): zero impedance"):
        _compiled(net)


@pytest.mark.parametrize(("table", "idx", "col", "value", "message"), [
    ("load", 0, "p_mw", np.nan, "load 0: p_mw is nan (must be a finite number)"),
    ("load", 1, "q_mvar", np.inf, "load 1: q_mvar is inf (must be a finite number)"),
    ("bus", 2, "vn_kv", 0.0, "bus 2: vn_kv is 0 (must be > 0)"),
    ("line", 1, "x_ohm_per_km", np.nan, "line 1: x_ohm_per_km is nan"),
    ("gen", 0, "vm_pu", -np.inf, "gen 0: vm_pu is -inf"),
])
def test_a_bad_value_of_an_element_is_named_by_the_element(table, idx, col, value, message):
    """pandapower's converter carried the value into its bus and branch tables, and the
    error named those ("bus row 4: NaN in column Pd" for a load's p_mw)."""
    net = _net3()
    net[table][col] = net[table][col].astype(float)
    net[table].loc[idx, col] = value
    with pytest.raises(CaseFormatError) as info:
        from_pandapower(net)
    text = str(info.value)
    assert message in text and f"field {table}.{col}" in text, text


@pytest.mark.parametrize(("col", "value", "message"), [
    ("max_i_ka", np.nan, "line 1: max_i_ka is nan (must be > 0 where max_loading_percent "
                         "is given, 80 here)"),
    ("max_i_ka", 0.0, "line 1: max_i_ka is 0"),
    ("max_loading_percent", 0.0, "line 1: max_loading_percent is 0 (must be > 0, or NaN"),
    ("max_loading_percent", -5.0, "line 1: max_loading_percent is -5"),
])
def test_a_limit_read_as_zero_is_refused_not_unlimited(col, value, message):
    """A limited line whose rating would come out 0 (MATPOWER's "unlimited") is refused;
    a NaN max_loading_percent alone is unlimited (the partial-limits test above)."""
    net = _net3()
    net.line["max_loading_percent"] = [np.nan, 80.0, np.nan]
    net.line.loc[0, "max_i_ka"] = np.nan  # of an unlimited line: not read
    net.line.loc[1, col] = value
    with pytest.raises(CaseFormatError) as info:
        from_pandapower(net)
    assert message in str(info.value) and f"field line.{col}" in str(info.value)


def test_a_bad_value_of_an_element_out_of_service_is_named_too():
    """pandapower's converter reads it (``p_mw * in_service`` is NaN)."""
    net = _net3()
    pp.create_load(net, 1, p_mw=np.nan, q_mvar=0.0, in_service=False)
    with pytest.raises(CaseFormatError, match="load 2: p_mw is nan"):
        from_pandapower(net)


def test_only_the_reference_ext_grids_angle_is_noted():
    """A second ext_grid is a generator for the OPF (its angle is free): its va_degree
    says nothing of how the angles differ from pandapower's."""
    net = _net3()
    pp.create_ext_grid(net, 1, vm_pu=1.0, va_degree=5.0, min_p_mw=-100, max_p_mw=100,
                       min_q_mvar=-100, max_q_mvar=100)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        raw = from_pandapower(net)
    assert not [n for n in raw.notes if "va_degree" in n]
    net.ext_grid.loc[0, "va_degree"] = 10.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        raw = from_pandapower(net)
    notes = [n for n in raw.notes if "va_degree" in n]
    assert len(notes) == 1 and "ext_grid 0 has va_degree 10" in notes[0], notes
