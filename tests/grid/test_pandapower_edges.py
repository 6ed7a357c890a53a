"""Edges of the pandapower conversion: costs of storage and of networks without costs,
piecewise-linear costs of loads, iron losses behind an off-nominal tap, merged buses,
three-winding transformers' rows, and transformers reversed for ``from_ppc``."""

from __future__ import annotations

import numpy as np
import pytest

pp = pytest.importorskip("pandapower")

from pandapower_helpers import check_net  # noqa: E402

from gridverify.grid import case as C  # noqa: E402
from gridverify.grid.pandapower_io import (  # noqa: E402
    _high_voltage_first,
    from_pandapower_mapped,
)


def _two_bus(vn_lv: float = 20.0):
    net = pp.create_empty_network(sn_mva=100.0)
    hv = pp.create_bus(net, 110.0, max_vm_pu=1.1, min_vm_pu=0.9)
    lv = pp.create_bus(net, vn_lv, max_vm_pu=1.1, min_vm_pu=0.9)
    pp.create_ext_grid(net, hv, vm_pu=1.02, max_p_mw=100.0, min_p_mw=-100.0,
                       max_q_mvar=100.0, min_q_mvar=-100.0)
    pp.create_load(net, lv, p_mw=10.0, q_mvar=3.0)
    return net, hv, lv


def test_storage_costs_are_signed_like_loads() -> None:
    net, _, lv = _two_bus()
    pp.create_transformer(net, 0, lv, "25 MVA 110/20 kV")
    st = pp.create_storage(net, lv, p_mw=2.0, max_e_mwh=10.0, controllable=True,
                           max_p_mw=5.0, min_p_mw=-5.0, max_q_mvar=1.0, min_q_mvar=-1.0)
    pp.create_poly_cost(net, st, "storage", cp1_eur_per_mw=7.0, cp2_eur_per_mw2=0.25)
    pc = from_pandapower_mapped(net)
    row = pc.gen_elements.index(("storage", st))
    assert pc.raw.gencost[row, 4:7].tolist() == [-0.25, -7.0, 0.0]


def test_a_network_without_costs_pays_one_per_mw() -> None:
    net, _, lv = _two_bus()
    pp.create_transformer(net, 0, lv, "25 MVA 110/20 kV")
    raw = from_pandapower_mapped(net).raw
    assert raw.gencost[:, C.MODEL].tolist() == [2]
    assert raw.gencost[:, 4:7].tolist() == [[0.0, 1.0, 0.0]]
    assert any("no costs" in n for n in raw.notes)


def test_load_pwl_cost_starts_at_its_first_area_with_the_load_sign() -> None:
    net, _, lv = _two_bus()
    pp.create_transformer(net, 0, lv, "25 MVA 110/20 kV")
    ld = pp.create_load(net, lv, p_mw=8.0, controllable=True, max_p_mw=15.0, min_p_mw=5.0,
                        max_q_mvar=0.0, min_q_mvar=0.0)
    pp.create_pwl_cost(net, ld, "load", [[5.0, 10.0, 2.0], [10.0, 15.0, 4.0]])
    pc = from_pandapower_mapped(net)
    row = pc.gen_elements.index(("load", ld))
    gc = pc.raw.gencost[row]
    assert gc[C.MODEL] == 1 and gc[C.NCOST] == 3
    assert gc[C.COST:C.COST + 6].tolist() == [5.0, -10.0, 10.0, -20.0, 15.0, -40.0]


def test_iron_losses_behind_an_off_nominal_tap_balance_asrunpp() -> None:
    """The transformer's conductance goes to the from (tapped, high-voltage) bus as
    g/2/tap^2 and to the other as g/2: bus balances are pandapower's."""
    net, hv, lv = _two_bus()
    pp.create_transformer_from_parameters(
        net, hv, lv, sn_mva=25.0, vn_hv_kv=110.0, vn_lv_kv=20.0, vkr_percent=0.4,
        vk_percent=12.0, pfe_kw=400.0, i0_percent=0.5, tap_side="hv", tap_neutral=0,
        tap_min=-9, tap_max=9, tap_step_percent=5.0, tap_pos=4,
        tap_changer_type="Ratio")
    raw = from_pandapower_mapped(net).raw
    assert raw.branch[0, C.TAP] != 1.0
    check_net(net, flows=False)


def test_buses_merged_by_a_switch_take_the_first_ones_id() -> None:
    net, hv, lv = _two_bus()
    b2 = pp.create_bus(net, 20.0, max_vm_pu=1.1, min_vm_pu=0.9)
    pp.create_switch(net, lv, b2, et="b", closed=True)
    pp.create_load(net, b2, p_mw=1.0)
    pp.create_transformer(net, hv, b2, "25 MVA 110/20 kV")
    pc = from_pandapower_mapped(net)
    assert pc.bus_ids[lv] == pc.bus_ids[b2] == lv + 1
    check_net(net, flows=False)  # iron losses: flows leave them out


def test_two_three_winding_transformers_rows_name_their_own_element() -> None:
    net = pp.create_empty_network(sn_mva=100.0)
    hv = pp.create_bus(net, 110.0, max_vm_pu=1.1, min_vm_pu=0.9)
    pp.create_ext_grid(net, hv, vm_pu=1.0)
    ends = []
    for _ in range(2):
        mv = pp.create_bus(net, 20.0, max_vm_pu=1.1, min_vm_pu=0.9)
        lv = pp.create_bus(net, 10.0, max_vm_pu=1.1, min_vm_pu=0.9)
        pp.create_load(net, mv, p_mw=3.0, q_mvar=1.0)
        pp.create_load(net, lv, p_mw=1.0, q_mvar=0.5)
        pp.create_transformer3w(net, hv, mv, lv, "63/25/38 MVA 110/20/10 kV")
        ends.append({hv, mv, lv})
    pc = from_pandapower_mapped(net)
    ids = {v: k for k, v in pc.bus_ids.items()}
    rows = [k for k, (et, _) in enumerate(pc.branch_elements) if et == "trafo3w"]
    assert len(rows) == 6
    for k in rows:
        _, el = pc.branch_elements[k]
        f, t = (int(x) for x in pc.raw.branch[k, [C.F_BUS, C.T_BUS]])
        # one end is the star point (an auxiliary bus), the other a bus of that element
        assert {ids.get(f), ids.get(t)} & ends[el], (k, el)
    assert pc.raw.branch_is_transformer[rows].all()
    check_net(net, flows=False)


def test_a_reversed_transformer_has_the_same_admittances_and_mirrored_angle_limits() -> None:
    """MATPOWER's transformer from its low-voltage bus, passed to ``from_ppc`` from the
    high-voltage one: tap 1/t, shift negated, impedance t^2 z, charging b/t^2 and the
    angle limits negated and swapped."""
    from pandapower.pypower.idx_brch import branch_cols
    from pandapower.pypower.makeYbus import makeYbus

    bus = np.array([[1, 3, 0, 0, 0, 0, 1, 1, 0, 20, 1, 1.1, 0.9],
                    [2, 1, 0, 0, 0, 0, 1, 1, 0, 110, 1, 1.1, 0.9]], dtype=float)
    branch = np.array([[1, 2, 0.01, 0.1, 0.04, 0, 0, 0, 0.95, 7.0, 1, -10.0, 25.0]])
    ppc = {"baseMVA": 100.0, "bus": bus, "branch": branch}
    out = _high_voltage_first(ppc)["branch"][0]
    assert out[[C.F_BUS, C.T_BUS]].tolist() == [2, 1]
    assert out[C.SHIFT] == -7.0
    assert out[[C.ANGMIN, C.ANGMAX]].tolist() == [-25.0, 10.0]

    def ybus(br):
        full = np.zeros((1, branch_cols))
        full[:, : br.shape[0]] = br[:13]
        full[:, :2] -= 1  # PYPOWER's internal bus indices
        b0 = bus.copy()
        b0[:, 0] -= 1
        y, _, _ = makeYbus(100.0, b0, full)
        return y.toarray()

    np.testing.assert_allclose(ybus(out), ybus(branch[0]), atol=1e-12)
