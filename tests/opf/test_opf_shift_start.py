"""The default start follows the phase shifts (150-degree vector groups solve from it)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from gridverify.grid import load_compiled
from gridverify.opf import ACOPFModel, solve_opf
from gridverify.opf.acopf import shift_angles

OBJECTIVE = 3222.883074  # from a start at pandapower's power-flow angles (QA)


def _case(mpc3, shift: float, trafo: str = "3 4"):  # noqa: ANN001, ANN202
    """The shared 3-bus case and a 20 kV bus 4 behind a transformer shifting ``shift``
    degrees (``trafo``: its from and to bus)."""
    p = mpc3(f"shift_{trafo.replace(' ', '_')}_{shift:g}",
             bus_extra=["4 1 10 3 0 0 1 1 0 20 1 1.1 0.9"],
             branch_extra=[f"{trafo} 0.005 0.05 0 50 0 0 1.0 {shift} 1 -360 360"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_compiled(p)


@pytest.mark.parametrize("shift", [150.0, -150.0, 30.0])
def test_phase_shifted_case_solves_from_the_default_start(mpc3, shift: float) -> None:  # noqa: ANN001
    case = _case(mpc3, shift)
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
def test_start_angles_follow_matpower_sign(mpc3, trafo: str, shift: float,  # noqa: ANN001
                                           expect: float) -> None:
    case = _case(mpc3, shift, trafo)
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
