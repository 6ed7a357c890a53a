"""pandapower elements the converter does not model are refused, not dropped.

An in-service row of an element table outside ``MODELLED_ELEMENTS`` (svc, ssc,
tcsc, asymmetric loads and sgens, DC grids, ...) is a one-line
:class:`CaseFormatError` naming the table and the row; out-of-service rows, and
the network's other tables (results, costs, controllers, groups, measurements,
geodata), are fine.
"""

from __future__ import annotations

import warnings

import pytest

pp = pytest.importorskip("pandapower")
pn = pytest.importorskip("pandapower.networks")

from gridverify.cli import main  # noqa: E402
from gridverify.errors import CaseFormatError  # noqa: E402
from gridverify.grid import compile_case, from_pandapower, load_case  # noqa: E402
from gridverify.grid.pandapower_io import MODELLED_ELEMENTS  # noqa: E402

CABLE = "NAYY 4x50 SE"


def _net():  # noqa: ANN202
    """Three 20 kV buses, an ext_grid at bus 0, cables to buses 1 and 2, a load."""
    net = pp.create_empty_network()
    b = [pp.create_bus(net, 20.0) for _ in range(3)]
    pp.create_ext_grid(net, b[0])
    pp.create_line(net, b[0], b[1], 1.0, CABLE)
    pp.create_line(net, b[0], b[2], 1.0, CABLE)
    pp.create_load(net, b[1], 0.1, 0.05)
    return net


# one element of each table, between or at buses 1 and 2
_ADD = {
    "svc": lambda net: pp.create_svc(net, 1, x_l_ohm=1, x_cvar_ohm=-10, set_vm_pu=1.0,
                                     thyristor_firing_angle_degree=130),
    "ssc": lambda net: pp.create_ssc(net, 1, r_ohm=0, x_ohm=5, set_vm_pu=1.0, vm_internal_pu=1.0,
                                     va_internal_degree=0),
    "tcsc": lambda net: pp.create_tcsc(net, 1, 2, x_l_ohm=1, x_cvar_ohm=-10, set_p_to_mw=0.1,
                                       thyristor_firing_angle_degree=130),
    "asymmetric_load": lambda net: pp.create_asymmetric_load(net, 1, p_a_mw=0.01, q_a_mvar=0.01),
    "asymmetric_sgen": lambda net: pp.create_asymmetric_sgen(net, 2, p_a_mw=0.01),
}


def _compile(net):  # noqa: ANN001, ANN202
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return compile_case(from_pandapower(net), emit_warnings=False)


@pytest.mark.parametrize("et", sorted(_ADD))
def test_in_service_unsupported_element_is_refused(et):
    net = _net()
    first = _ADD[et](net)
    second = _ADD[et](net)
    net[et].loc[first, "in_service"] = False  # the error names the in-service row
    with pytest.raises(CaseFormatError) as info:
        from_pandapower(net)
    msg = str(info.value)
    assert "\n" not in msg
    assert f"field {et} {second}: in-service {et} elements are not supported" in msg
    assert "set their in_service to False or remove them" in msg
    assert info.value.field == f"{et} {second}"
    with pytest.raises(CaseFormatError, match=f"field {et} {second}: "):
        compile_case(net)  # compile_case of a network goes the same way


@pytest.mark.parametrize("et", sorted(_ADD))
def test_out_of_service_unsupported_element_compiles(et):
    net = _net()
    _ADD[et](net)
    net[et]["in_service"] = False
    cc = _compile(net)
    assert cc.n_bus == 3


def test_several_in_service_rows_are_counted():
    net = _net()
    for _ in range(3):
        _ADD["svc"](net)
    with pytest.raises(CaseFormatError, match=r"field svc 0: in-service svc elements \(3 of "
                                              r"them\) are not supported"):
        from_pandapower(net)


def test_dc_grid_is_refused():
    """A VSC and a DC line: the DC buses are named first (any in-service DC bus would
    make pandapower look for a DC reference bus)."""
    net = _net()
    d0, d1 = pp.create_bus_dc(net, 20.0), pp.create_bus_dc(net, 20.0)
    pp.create_vsc(net, 1, d0, 0.1, 1.0, 0.1)
    pp.create_line_dc(net, d0, d1, 1.0, std_type="2400-CU")
    with pytest.raises(CaseFormatError, match=f"field bus_dc {d0}: in-service bus_dc elements "):
        from_pandapower(net)
    net.bus_dc["in_service"] = False
    with pytest.raises(CaseFormatError, match="field line_dc 0: in-service line_dc elements "):
        from_pandapower(net)
    net.line_dc["in_service"] = False
    with pytest.raises(CaseFormatError, match="field vsc 0: in-service vsc elements "):
        from_pandapower(net)
    net.vsc["in_service"] = False
    assert _compile(net).n_bus == 3


def test_in_service_dcline_keeps_its_own_message():
    net = _net()
    pp.create_dcline(net, 1, 2, p_mw=0.05, loss_percent=1, loss_mw=0.0, vm_from_pu=1.0,
                     vm_to_pu=1.0)
    with pytest.raises(CaseFormatError, match="field dcline 0: in-service DC lines"):
        from_pandapower(net)


def test_message_names_the_modelled_tables():
    net = _net()
    _ADD["svc"](net)
    with pytest.raises(CaseFormatError) as info:
        from_pandapower(net)
    assert f"models only {', '.join(MODELLED_ELEMENTS)})" in str(info.value)


@pytest.mark.parametrize("make", [pn.case14, pn.example_multivoltage, pn.example_simple])
def test_standard_networks_still_compile(make):
    cc = _compile(make())
    assert cc.n_bus > 1 and cc.n_gen > 0 and cc.n_branch > 0


def test_other_tables_of_a_network_are_not_elements():
    """Results, costs, controllers, measurements, groups, a user's own table with a
    bus column: none of them is an element table."""
    import pandas as pd
    from pandapower.control import ConstControl
    from pandapower.timeseries import DFData

    net = pn.example_multivoltage()
    pp.create_poly_cost(net, 0, "ext_grid", cp1_eur_per_mw=10)
    before = _compile(net).content_hash
    ConstControl(net, "load", "p_mw", element_index=[0],
                 data_source=DFData(pd.DataFrame({"p": [1.0]})), profile_name=["p"])
    pp.create_measurement(net, "v", "bus", 1.0, 0.01, element=0)
    pp.create_group(net, "bus", [[0, 1]])
    net["my_notes"] = pd.DataFrame({"bus": [0, 1], "note": ["a", "b"]})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pp.runpp(net, numba=False)  # fills the res_ tables
    assert len(net.res_bus) and len(net.controller) and len(net.measurement)
    assert _compile(net).content_hash == before


def test_unsupported_element_in_a_json_file(tmp_path, capsys):
    net = _net()
    _ADD["tcsc"](net)
    path = tmp_path / "grid_tcsc.json"
    pp.to_json(net, str(path))
    with pytest.raises(CaseFormatError, match="field tcsc 0: in-service tcsc elements"):
        load_case(str(path))
    assert main(["case", "info", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(path) in err[0] and "tcsc 0" in err[0]


def test_network_without_reference_bus_is_a_clean_error():
    net = pp.create_empty_network()
    pp.create_bus(net, 20.0)
    pp.create_bus(net, 20.0)
    with pytest.raises(CaseFormatError) as info:
        from_pandapower(net)
    msg = str(info.value)
    assert "\n" not in msg and "UserWarning" not in msg
    assert "no reference bus (pandapower needs an in-service ext_grid" in msg


def test_voltage_dependent_load_parts_are_noted_as_constant_power() -> None:
    plain = _net()
    zip_load = _net()
    zip_load.load.loc[0, "const_z_p_percent"] = 30.0
    quiet, noted = (from_pandapower(n) for n in (plain, zip_load))
    assert not any("constant-impedance" in w for w in quiet.notes)
    note = [w for w in noted.notes if "constant-impedance" in w]
    assert len(note) == 1 and "load 0" in note[0] and "constant power" in note[0]
    zip_load.load.loc[0, "in_service"] = False  # an out-of-service one: nothing to say
    assert not any("constant-impedance" in w for w in from_pandapower(zip_load).notes)
