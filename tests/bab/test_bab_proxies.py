"""Branch-and-bound on the shipped case14 proxy: sound on samples and tighter than the root."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gridverify.bab import BabOptions, bab_maximize


def _instance(family: str, model: str = "models/case14_relu",
              case_name: str = "pglib_opf_case14_ieee"):
    from gridverify.grid import load_compiled
    from gridverify.ir import from_torch
    from gridverify.physics.acp import build_physics_graph, compose_with_proxy
    from gridverify.proxy.load import load_proxy
    from gridverify.spec.constraints import parse_constraints, select_constraints
    from gridverify.spec.region import box_region

    case = load_compiled(case_name)
    prox = load_proxy(model, case=case)
    cons = select_constraints(case, parse_constraints(family))
    ph = build_physics_graph(case, cons)
    reg = box_region(case, 0.9, 1.1)
    g = compose_with_proxy(ph, from_torch(prox.module, input_size=reg.n_input))
    return g, reg


@pytest.mark.parametrize("branching", ["input", pytest.param("bbps", marks=pytest.mark.slow)])
def test_case14_angle_max_gap_shrinks_and_bound_is_sound(branching):
    g, reg = _instance("angle_max")
    spec = np.eye(g.output_size)
    res = bab_maximize(g, reg.lower, reg.upper, spec, mode="optimization",
                       options=BabOptions(timeout=3.0, clock="cpu", branching=branching))
    root_bound = res.history[0][1]
    assert res.upper_bound < root_bound - 1e-4, "branching should tighten the root bound"
    rng = np.random.default_rng(0)
    x = reg.sample(20_000, rng)
    y = g.evaluate_flat(torch.from_numpy(x), dtype=torch.float64).numpy()
    assert (y @ spec.T).max() <= res.upper_bound + 1e-12
    assert res.attained <= res.upper_bound


@pytest.mark.parametrize("family", ["p_balance", "q_balance"])
def test_stable_case14_proxy_closes_the_balance_gap(family):
    """On the verification-friendly proxy (trained with --stability-weight) the default
    branch-and-bound closes the family's gap to the tolerance; the bound holds on 20,000
    samples and every attained value is a real load's."""
    g, reg = _instance(family, "models/case14_relu_stable")
    spec = np.eye(g.output_size)
    res = bab_maximize(g, reg.lower, reg.upper, spec, mode="optimization",
                       options=BabOptions(timeout=60.0, clock="cpu"))
    assert res.branching == "input"
    assert res.status == "certified" and res.reason == "gap", (res.upper_bound, res.attained)
    assert res.upper_bound - res.attained <= 1e-4
    assert res.history[0][1] - res.attained > 1e-3  # the root alone did not close it
    x = reg.sample(20_000, np.random.default_rng(1))
    y = g.evaluate_flat(torch.from_numpy(x), dtype=torch.float64).numpy()
    assert (y @ spec.T).max() <= res.upper_bound + 1e-12
    w = g.evaluate_flat(torch.from_numpy(res.witness[None]), dtype=torch.float64).numpy()
    assert (w @ spec.T).max() == pytest.approx(res.attained, abs=1e-12)


def test_auto_branches_on_inputs_for_a_stable_network_with_many_inputs():
    """case57 has 84 inputs (above input_split_max_dim): the plain proxy gets neuron
    branching, the verification-friendly one (its relus stable over the region) inputs."""
    opts = BabOptions(max_domains=2, timeout=None, root_alpha_iterations=0,
                      root_intermediate="crown", attack_steps=2)
    for model, expect in (("models/case57_relu", "babsr"),
                          ("models/case57_relu_stable", "input")):
        g, reg = _instance("vm_min", model, "pglib_opf_case57_ieee")
        res = bab_maximize(g, reg.lower, reg.upper, np.eye(g.output_size), options=opts,
                           mode="optimization")
        assert res.branching == expect, model
