"""Exact worst case (SCIP) at its edges: bias-free layers, constant outputs, saturated
sigmoids, worst cases far below zero, degenerate boxes and the gap option."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from torch import nn

pytest.importorskip("pyscipopt")

from gridverify.exact import ExactOptions, exact_worst_case  # noqa: E402
from gridverify.grid import load_compiled  # noqa: E402
from gridverify.physics.evaluate import violation_values  # noqa: E402
from gridverify.spec import box_region  # noqa: E402
from gridverify.spec.constraints import Constraint  # noqa: E402

TOL = 1e-5  # SCIP feasibility/optimality tolerance, absolute

CASE3 = "pglib_opf_case3_lmbd"


def _net(case, *, bias=True, act=nn.ReLU, hidden=4, out_scale=0.01, vm=1.0, seed=3):
    """A float64 MLP loads -> (pg, qg, vm, va): no generation, voltages ``vm``, angles 0,
    plus a small load-dependent term (its last layer's weights scaled by ``out_scale``)."""
    L, G, N = case.n_load, case.n_gen, case.n_bus
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(2 * L, hidden, bias=bias), act(),
                        nn.Linear(hidden, 2 * G + 2 * N, bias=bias)).double()
    with torch.no_grad():
        net[-1].weight.mul_(out_scale)
        if bias:
            net[-1].bias.zero_()
            net[-1].bias[2 * G:2 * G + N] = vm
    return net.eval()


def _sampled(case, net, con, lo, hi, n=2000, seed=0):
    """Violations of ``con`` at ``n`` uniform loads of the box [lo, hi] and its corners."""
    x = lo + np.random.default_rng(seed).random((n, lo.size)) * (hi - lo)
    x = np.vstack([x, lo, hi])
    with torch.no_grad():
        y = net(torch.from_numpy(x)).numpy()
    return violation_values(case, [con], x, y)[:, 0]


def _assert_bracket(ex, sampled):
    """The network at the witness gives SCIP's value; no sampled load beats the bound."""
    worst = float(sampled.max())
    scale = 1.0 + abs(worst)
    assert ex.witness_value == pytest.approx(ex.value, abs=TOL * (1.0 + abs(ex.value)))
    assert ex.bound >= worst - TOL * scale, (ex.bound, worst)
    assert ex.value <= ex.bound + TOL * scale, (ex.value, ex.bound)


@pytest.mark.parametrize("family", ["vm_min", "p_balance"])
def test_linear_layers_without_bias_are_encoded_without_bias(family):
    """``nn.Linear(..., bias=False)``: SCIP's worst case is the network's own value at
    its witness (no bias made up), and it brackets every sampled load."""
    case = load_compiled(CASE3)
    net = _net(case, bias=False, out_scale=0.3)
    assert all(m.bias is None for m in net if isinstance(m, nn.Linear))
    reg = box_region(case, 0.9, 1.1)
    con = Constraint(family, int(case.bus_ids[0]), 0)
    ex = exact_worst_case(case, net, reg.lower, reg.upper, con, ExactOptions(time_limit=10))
    _assert_bracket(ex, _sampled(case, net, con, reg.lower, reg.upper))
    assert ex.status in ("optimal", "gaplimit")


def test_a_network_whose_outputs_do_not_move_is_solved_exactly():
    """Every output sits on its interval edge (last layer's weights 0: the proxy returns
    the same point for every load): the worst case is that point's violation, found and
    proved, not an empty interval."""
    case = load_compiled(CASE3)
    net = _net(case, out_scale=0.0, vm=1.2)
    reg = box_region(case, 0.9, 1.1)
    con = Constraint("vm_max", int(case.bus_ids[0]), 0)
    ex = exact_worst_case(case, net, reg.lower, reg.upper, con, ExactOptions(time_limit=10))
    expected = 1.2 - float(case.vmax[0])
    assert ex.value == pytest.approx(expected, abs=TOL)
    assert ex.bound == pytest.approx(expected, abs=TOL)
    assert ex.witness_value == pytest.approx(expected, abs=1e-12)
    _assert_bracket(ex, _sampled(case, net, con, reg.lower, reg.upper))


def test_sigmoid_pre_activations_beyond_40_are_encoded():
    """A sigmoid whose pre-activations range across 40 (bounded below by far more than
    -40): written as 1 / (1 + exp(-z)), no ExactError, and bracketed."""
    case = load_compiled(CASE3)
    net = _net(case, act=nn.Sigmoid, out_scale=0.3)
    reg = box_region(case, 0.9, 1.1)
    centre = 0.5 * (reg.lower + reg.upper)
    with torch.no_grad():
        net[0].weight.mul_(20.0)
        w = net[0].weight.numpy()
        net[0].bias.copy_(torch.from_numpy(40.0 - w @ centre))
        z = net[0](torch.from_numpy(np.vstack([reg.lower, reg.upper]))).numpy()
    rad = np.abs(w) @ (0.5 * (reg.upper - reg.lower))
    assert (rad > 0.5).all() and (rad < 60.0).all()  # each across 40, none below -20
    assert z.min() < 40.0 < z.max()
    con = Constraint("p_balance", int(case.bus_ids[0]), 0)
    ex = exact_worst_case(case, net, reg.lower, reg.upper, con, ExactOptions(time_limit=5))
    _assert_bracket(ex, _sampled(case, net, con, reg.lower, reg.upper))


def test_a_worst_case_far_below_minus_one_million_is_bracketed():
    """A rating 10^4 times the case's: every flow is far inside it and the thermal
    violation p^2 + q^2 - rate^2 is about -2.5e7 at every load.  The objective is free
    (no cap at -1e6): SCIP finds that value and its bound brackets every sample."""
    case = load_compiled(CASE3)
    huge = dataclasses.replace(case, rate_a=np.asarray(case.rate_a) * 1e4)
    net = _net(case, out_scale=0.3)
    reg = box_region(case, 0.9, 1.1)
    con = Constraint("thermal_fr", 2, 1)
    sampled = _sampled(huge, net, con, reg.lower, reg.upper)
    assert sampled.max() < -1e7
    ex = exact_worst_case(huge, net, reg.lower, reg.upper, con, ExactOptions(time_limit=10))
    assert ex.value < -1e7
    assert ex.bound >= sampled.max() - TOL * abs(sampled.max()), (ex.bound, sampled.max())
    assert ex.witness_value == pytest.approx(ex.value, rel=1e-6)


def test_a_box_with_fixed_coordinates_is_accepted():
    """lower == upper in some coordinates (the reactive loads fixed): accepted, and the
    witness sits exactly on the fixed values; the other coordinates stay in the box."""
    case = load_compiled(CASE3)
    net = _net(case, out_scale=0.3)
    reg = box_region(case, 0.9, 1.1)
    L = case.n_load
    lo, hi = reg.lower.copy(), reg.upper.copy()
    lo[L:] = hi[L:] = 0.5 * (lo[L:] + hi[L:])
    con = Constraint("p_balance", int(case.bus_ids[0]), 0)
    ex = exact_worst_case(case, net, lo, hi, con, ExactOptions(time_limit=10))
    assert np.array_equal(ex.witness[L:], lo[L:])
    assert np.all(ex.witness >= lo) and np.all(ex.witness <= hi)
    _assert_bracket(ex, _sampled(case, net, con, lo, hi))


def test_a_single_point_box_gives_the_violation_at_that_point():
    """lower == upper everywhere: the worst case is the violation at that load."""
    case = load_compiled(CASE3)
    net = _net(case, out_scale=0.3)
    reg = box_region(case, 0.9, 1.1)
    x = 0.5 * (reg.lower + reg.upper)
    con = Constraint("p_balance", int(case.bus_ids[0]), 0)
    ex = exact_worst_case(case, net, x, x.copy(), con, ExactOptions(time_limit=10))
    at_x = float(_sampled(case, net, con, x, x, n=1)[0])
    assert np.array_equal(ex.witness, x)
    assert ex.witness_value == at_x
    assert ex.value == pytest.approx(at_x, abs=TOL)
    assert ex.bound == pytest.approx(at_x, abs=TOL)


def test_the_gap_option_reaches_scip():
    """gap 0 proves optimality (bound - value <= 1e-6); a loose gap of 50% stops SCIP
    early: the status says so and the bracket is open, but within the gap."""
    case = load_compiled(CASE3)
    net = _net(case, hidden=8, out_scale=0.3, seed=11)
    reg = box_region(case, 0.8, 1.2)
    con = Constraint("vm_max", int(case.bus_ids[0]), 0)
    tight = exact_worst_case(case, net, reg.lower, reg.upper, con,
                             ExactOptions(time_limit=10, gap=0.0))
    assert tight.optimal and tight.status == "optimal"
    assert tight.bound - tight.value <= 1e-6
    loose = exact_worst_case(case, net, reg.lower, reg.upper, con,
                             ExactOptions(time_limit=10, gap=0.5))
    assert loose.status == "gaplimit" and not loose.optimal
    assert loose.value <= tight.value + TOL <= loose.bound + 2 * TOL
    assert loose.bound - loose.value <= 0.5 * min(abs(loose.value), abs(loose.bound)) + TOL
