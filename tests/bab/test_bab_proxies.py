"""Branch-and-bound on the shipped case14 proxy: sound on samples and tighter than the root."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gridverify.bab import BabOptions, bab_maximize


def _instance(family: str):
    from gridverify.grid import load_compiled
    from gridverify.ir import from_torch
    from gridverify.physics.acp import build_physics_graph, compose_with_proxy
    from gridverify.proxy.load import load_proxy
    from gridverify.spec.constraints import parse_constraints, select_constraints
    from gridverify.spec.region import box_region

    case = load_compiled("pglib_opf_case14_ieee")
    prox = load_proxy("models/case14_relu", case=case)
    cons = select_constraints(case, parse_constraints(family))
    ph = build_physics_graph(case, cons)
    reg = box_region(case, 0.9, 1.1)
    g = compose_with_proxy(ph, from_torch(prox.module, input_size=reg.n_input))
    return g, reg


@pytest.mark.parametrize("branching", ["input", pytest.param("bbps", marks=pytest.mark.slow)])
def test_case14_angle_max_gap_shrinks_and_bound_is_sound(branching):
    torch.set_num_threads(1)
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
