"""The equations written once give the same numbers on every backend.

numpy, torch and the scalar-expression backend (here on Python floats with
``math.cos``/``math.sin``, the path Pyomo and SCIP expressions take) agree in
float64; the limit table covers every simple family of the constraint spec.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from gridverify.grid import load_compiled
from gridverify.physics import equations as eq
from gridverify.spec.constraints import FAMILIES


@pytest.fixture(scope="module")
def case():
    return load_compiled("pglib_opf_case14_ieee")


def _point(case, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "vm": rng.uniform(0.9, 1.1, case.n_bus), "va": rng.uniform(-0.5, 0.5, case.n_bus),
        "pg": rng.uniform(0, 2, case.n_gen), "qg": rng.uniform(-1, 1, case.n_gen),
        "pd": case.pd * rng.uniform(0.8, 1.2, case.n_load),
        "qd": case.qd * rng.uniform(0.8, 1.2, case.n_load),
    }


def _evaluate(alg, case, v):
    base = eq.base_terms(alg, case, v["vm"], v["va"])
    fl = eq.branch_flows(alg, case, base)
    out = {k: getattr(fl, k) for k in eq.FLOW_NAMES}
    out["res_p"] = eq.bus_balance(alg, case, False, v["pg"], v["pd"], base.vm2, fl.pf, fl.pt)
    out["res_q"] = eq.bus_balance(alg, case, True, v["qg"], v["qd"], base.vm2, fl.qf, fl.qt)
    out["thermal"] = eq.thermal_violation(alg, fl.pf, fl.qf, case.rate_a)
    sizes = {"vm": case.n_bus, "pg": case.n_gen, "qg": case.n_gen, "dva": case.n_branch}
    for fam, lim in eq.LIMITS.items():
        idx = np.arange(sizes[lim.quantity])
        value = eq.quantity(alg, case, lim.quantity, v, idx)
        out[fam] = eq.limit_violation(alg, case, fam, value, idx)
    return out


def test_backends_agree(case):
    v = _point(case)
    ref = _evaluate(eq.ArrayAlgebra(v["vm"]), case, v)
    vt = {k: torch.from_numpy(a) for k, a in v.items()}
    tt = _evaluate(eq.ArrayAlgebra(vt["vm"]), case, vt)
    sc = eq.ExprAlgebra(math.cos, math.sin)
    ss = _evaluate(sc, case, {k: sc.vector(a.tolist()) for k, a in v.items()})
    for k, a in ref.items():
        np.testing.assert_array_equal(tt[k].numpy(), a, err_msg=k)
        np.testing.assert_allclose(np.asarray(ss[k], dtype=np.float64), a, rtol=1e-13,
                                   atol=1e-12, err_msg=k)


def test_expression_backend_drops_zero_terms(case):
    sc = eq.ExprAlgebra(math.cos, math.sin)
    out = sc.scale(np.array([0.0, 2.0]), sc.vector(["never used", 3.0]))
    assert out.tolist() == [0, 6.0]
    assert sc.scatter(sc.vector([1.0, 2.0]), np.array([1, 1]), 3).tolist() == [0, 3.0, 0]


def test_limit_table_covers_simple_families(case):
    simple = {f for f in FAMILIES if not f.endswith("balance") and not f.startswith("thermal")}
    assert set(eq.LIMITS) == simple
    for fam, lim in eq.LIMITS.items():
        vals = eq.limit_values(case, fam)
        if lim.quantity != "dva":
            np.testing.assert_array_equal(vals, getattr(case, lim.field))
