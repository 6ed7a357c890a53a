"""Cross-checks of converted pandapower networks against pandapower's own power flow
(imported by name by the grid tests: pytest puts this folder on ``sys.path``).

runpp uses ``trafo_model="pi"``, the MATPOWER branch model that the converter
writes (MATPOWER puts line charging and magnetizing as a pi).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandapower as pp
import pytest

from gridverify.grid import GridverifyWarning, balance_residuals, branch_flows, compile_case
from gridverify.grid.pandapower_io import from_pandapower_mapped

TOL = 1e-6  # pu
TRAFO_MODEL = "pi"


def runpp(net) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pp.runpp(net, calculate_voltage_angles=True, trafo_model=TRAFO_MODEL, tolerance_mva=1e-9,
                 max_iteration=30, numba=False)


def side_results(net, et: str, idx: int, base: float) -> np.ndarray:
    r = net["res_" + et].loc[idx]
    a, b = ("from", "to") if "p_from_mw" in r.index else ("hv", "lv")
    return np.array([r[f"p_{a}_mw"], r[f"q_{a}_mvar"], r[f"p_{b}_mw"], r[f"q_{b}_mvar"]]) / base


def check_net(net, *, flows: bool = True) -> None:
    pc = from_pandapower_mapped(net)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GridverifyWarning)
        cc = compile_case(pc.raw)
    runpp(net)
    ppc = net._ppc
    ids = pc.raw.bus[:, 0].astype(int)
    vm = np.zeros(cc.n_bus)
    va = np.zeros(cc.n_bus)
    for row, bid in enumerate(ids):
        if bid in cc.bus_index:
            vm[cc.bus_index[bid]] = ppc["bus"][row, 7].real
            va[cc.bus_index[bid]] = np.deg2rad(ppc["bus"][row, 8].real)
    # pandapower buses map onto case buses by id = index + 1 (or the merged bus)
    for b in net.bus.index[net.bus.in_service]:
        i = cc.bus_index[pc.bus_ids[int(b)]]
        assert vm[i] == pytest.approx(net.res_bus.vm_pu.loc[b], abs=1e-12)
    pg = np.real(ppc["gen"][cc.gen_row - 1, 1]) / cc.base_mva
    qg = np.real(ppc["gen"][cc.gen_row - 1, 2]) / cc.base_mva
    rp, rq = balance_residuals(cc, pg, qg, vm, va)
    assert np.abs(rp).max() < TOL and np.abs(rq).max() < TOL
    if flows:
        fl = branch_flows(cc, vm, va)
        ours = np.stack([fl.pf, fl.qf, fl.pt, fl.qt], axis=1)
        for k in range(cc.n_branch):
            et, idx = pc.branch_elements[int(cc.branch_row[k]) - 1]
            np.testing.assert_allclose(ours[k], side_results(net, et, idx, cc.base_mva),
                                       rtol=0, atol=TOL)
