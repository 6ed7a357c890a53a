"""Branch-and-bound on tiny exact cases: its bounds bracket SCIP's global optimum.

The proxies are tiny fixed-seed MLPs following the proxy convention on
``pglib_opf_case3_lmbd``; the spec of a constraint is all its violation rows
(so BaB bounds the constraint's violation itself).  Also: ``certify`` with
method ``bab`` passes the sampling-soundness check.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

pytest.importorskip("pyscipopt")

from gridverify.attack import AttackOptions  # noqa: E402
from gridverify.bab import BabOptions, bab_maximize  # noqa: E402
from gridverify.certify import CertifyOptions, certify, evaluate_violations  # noqa: E402
from gridverify.exact import ExactOptions, exact_worst_case  # noqa: E402
from gridverify.grid import load_compiled  # noqa: E402
from gridverify.ir import from_torch  # noqa: E402
from gridverify.physics.acp import build_physics_graph, compose_with_proxy  # noqa: E402
from gridverify.spec import box_region  # noqa: E402
from gridverify.spec.constraints import Constraint  # noqa: E402

TOL = 1e-5
_ACTS = {"relu": nn.ReLU, "tanh": nn.Tanh}



def tiny_proxy(case, act: str, seed: int, hidden=(8, 8), out_scale=0.3) -> nn.Sequential:
    """Fixed-seed float64 MLP: the case's start point plus a load-dependent term."""
    torch.manual_seed(seed)
    sizes = [2 * case.n_load, *hidden, 2 * case.n_gen + 2 * case.n_bus]
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1], dtype=torch.float64))
        if i < len(sizes) - 2:
            layers.append(_ACTS[act]())
    net = nn.Sequential(*layers)
    with torch.no_grad():
        net[-1].weight.mul_(out_scale)
        net[-1].bias.copy_(torch.from_numpy(np.concatenate([case.pg0, case.qg0, case.vm0,
                                                              case.va0])))
    return net.eval()


_SLOW = pytest.mark.slow
CASES = [
    ("relu", 21, ("p_balance", 0)),
    ("tanh", 22, ("vm_max", 1)),
    pytest.param("relu", 21, ("vm_max", 1), marks=_SLOW),
    pytest.param("relu", 21, ("thermal_fr", 0), marks=_SLOW),
    pytest.param("tanh", 22, ("p_balance", 0), marks=_SLOW),
    pytest.param("tanh", 22, ("thermal_fr", 0), marks=_SLOW),
]


@pytest.mark.parametrize("act,seed,con", CASES)
def test_bab_brackets_exact_optimum(act, seed, con):
    case = load_compiled("pglib_opf_case3_lmbd")
    net = tiny_proxy(case, act, seed)
    region = box_region(case, 0.9, 1.1)
    cons = [c for c in _all(case) if (c.family, c.index) == con]
    ph = build_physics_graph(case, cons)
    g = compose_with_proxy(ph, from_torch(net, input_size=region.n_input))
    spec = np.eye(g.output_size)
    res = bab_maximize(g, region.lower, region.upper, spec, mode="optimization",
                       options=BabOptions(timeout=3.0, batch=32, tolerance=1e-6))
    ex = exact_worst_case(case, net, region.lower, region.upper, cons[0],
                          ExactOptions(time_limit=10))
    scale = 1.0 + abs(ex.bound)
    # sound: the global optimum (and SCIP's re-evaluated witness) under the BaB bound
    assert ex.witness_value <= res.upper_bound + 1e-9, (ex.witness_value, res.upper_bound)
    assert ex.value <= res.upper_bound + TOL * scale
    # the attained value is a real point: never above SCIP's dual bound
    assert res.attained <= ex.bound + TOL * scale
    # the witness re-evaluated on the module and grid equations gives the attained value
    v = evaluate_violations(case, net, cons, res.witness[None])[0, 0]
    assert v == pytest.approx(res.attained, abs=1e-9)


def _all(case):
    from gridverify.spec.constraints import ConstraintSelection, select_constraints

    return select_constraints(case, ConstraintSelection())


def test_certify_method_bab_is_sound_on_samples():
    case = load_compiled("pglib_opf_case3_lmbd")
    net = tiny_proxy(case, "relu", 23)
    region = box_region(case, 0.9, 1.1)
    cert = certify(case, net, region, method="bab",
                   options=CertifyOptions(samples=256, attack_options=AttackOptions(steps=10),
                                          bab=BabOptions(timeout=2.0),
                                          timeout=60.0))
    cons = [Constraint(c.family, c.component, c.index) for c in cert.constraints]
    ub = np.array([c.upper_bound for c in cert.constraints])
    att = np.array([c.attained for c in cert.constraints])
    rng = np.random.default_rng(5)
    x = np.concatenate([region.sample(50_000, rng), region.lower[None], region.upper[None]])
    smax = evaluate_violations(case, net, cons, x).max(axis=0)
    bad = np.flatnonzero(smax > ub)
    assert bad.size == 0, [(cons[i], smax[i], ub[i]) for i in bad[:5]]
    assert np.all(att <= ub)
    assert cert.method == "bab"
