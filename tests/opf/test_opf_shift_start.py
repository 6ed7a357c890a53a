"""The default start follows the phase shifts (150-degree vector groups solve from it)."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pytest

from gridverify.grid import load_compiled
from gridverify.opf import ACOPFModel, solve_opf
from gridverify.opf.acopf import shift_angles

CASE4 = """function mpc = shift
mpc.version = '2';
mpc.baseMVA = 100;
mpc.bus = [
 1 3 0  0  0 0 1 1 0 230 1 1.1 0.9;
 2 2 50 10 0 0 1 1 0 230 1 1.1 0.9;
 3 1 80 30 0 0 1 1 0 230 1 1.1 0.9;
 4 1 10 3 0 0 1 1 0 20 1 1.1 0.9;
];
mpc.gen = [
 1 0 0 100 -100 1 100 1 200 0;
 2 0 0 100 -100 1 100 1 100 0;
];
mpc.branch = [
 1 2 0.01 0.05 0.04 100 0 0 0 0 1 -30 30;
 1 3 0.02 0.08 0.04 100 0 0 0 0 1 -30 30;
 2 3 0.02 0.08 0.04 100 0 0 0 0 1 -30 30;
 {trafo} 0.005 0.05 0 50 0 0 1.0 {shift} 1 -360 360;
];
mpc.gencost = [
 2 0 0 3 0.02 20 0;
 2 0 0 3 0.03 25 0;
];
"""
OBJECTIVE = 3222.883074  # from a start at pandapower's power-flow angles (QA)


def _case(tmp_path: Path, shift: float, trafo: str = "3 4"):  # noqa: ANN202
    p = tmp_path / f"shift_{trafo.replace(' ', '_')}_{shift:g}.m"
    p.write_text(CASE4.format(shift=shift, trafo=trafo))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_compiled(p)


@pytest.mark.parametrize("shift", [150.0, -150.0, 30.0])
def test_phase_shifted_case_solves_from_the_default_start(tmp_path: Path, shift: float) -> None:
    case = _case(tmp_path, shift)
    sol = solve_opf(case)
    assert sol.optimal, sol.status
    assert sol.objective == pytest.approx(OBJECTIVE, rel=1e-8)
    dva = math.degrees(sol.va[2] - sol.va[3])
    assert dva == pytest.approx(shift, abs=10.0)


@pytest.mark.parametrize(("trafo", "shift", "expect"), [
    ("3 4", 150.0, -150.0),  # va_t = va_f - shift
    ("4 3", 150.0, 150.0),  # walked backwards: va_f = va_t + shift
    ("3 4", 210.0, 150.0),  # the shift taken in [-180, 180)
])
def test_start_angles_follow_matpower_sign(tmp_path: Path, trafo: str, shift: float,
                                           expect: float) -> None:
    case = _case(tmp_path, shift, trafo)
    va = shift_angles(case)
    np.testing.assert_allclose(np.degrees(va), [0.0, 0.0, 0.0, expect], atol=1e-12)
    np.testing.assert_array_equal(ACOPFModel(case).flat_start()["va"], va)


@pytest.mark.parametrize("name", ["pglib_opf_case5_pjm", "pglib_opf_case14_ieee"])
def test_zero_shift_start_is_the_flat_start(name: str) -> None:
    case = load_compiled(name, emit_warnings=False)
    assert not np.any(case.shift != 0)
    start = ACOPFModel(case).flat_start()
    assert start["va"].tobytes() == np.zeros(case.n_bus).tobytes()  # +0.0, bit for bit
    assert start["pg"].tobytes() == (0.5 * (case.pmin + case.pmax)).tobytes()
    assert start["qg"].tobytes() == (0.5 * (case.qmin + case.qmax)).tobytes()
    assert start["vm"].tobytes() == np.clip(np.ones(case.n_bus), case.vmin, case.vmax).tobytes()
