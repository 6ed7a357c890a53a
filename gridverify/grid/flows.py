"""AC power flow of a compiled case on numpy arrays and torch tensors.

The equations are those of :mod:`gridverify.physics.equations` (written once
for every backend); this module evaluates them on arrays.  Any float dtype
(float64 recommended) and arbitrary leading batch dimensions: ``vm`` and ``va``
have shape ``(..., n_bus)``.  Torch inputs keep autograd and device.

Conventions are those of :mod:`gridverify.grid.compiled`: flows are per unit on
the case base, positive out of the bus at that end; injections are net flows out
of each bus; balance residuals are ``generation - demand - shunt - flows out``
(zero at a power-flow solution).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gridverify.grid.compiled import CompiledCase
from gridverify.physics import equations as eq
from gridverify.physics.equations import Flows

__all__ = [
    "Flows",
    "branch_flows",
    "bus_injections",
    "balance_residuals",
    "thermal_residuals",
    "ybus_injections",
]

Array = Any  # numpy.ndarray or torch.Tensor


def branch_flows(case: CompiledCase, vm: Array, va: Array) -> Flows:
    """Branch flows (pf, qf, pt, qt) in pu at bus voltages ``vm`` (pu), ``va`` (rad)."""
    alg = eq.ArrayAlgebra(vm)
    base = eq.base_terms(alg, case, alg.arr(vm), alg.arr(va))
    return eq.branch_flows(alg, case, base)


def bus_injections(
    case: CompiledCase, vm: Array, va: Array, flows: Flows | None = None
) -> tuple[Array, Array]:
    """Net branch flow out of each bus, (p, q), shape (..., n_bus).

    ``p[i] = sum_{from i} pf + sum_{to i} pt`` (shunts not included).
    """
    alg = eq.ArrayAlgebra(vm)
    fl = flows if flows is not None else branch_flows(case, vm, va)
    nb = case.n_bus
    p = alg.scatter(fl.pf, case.f_bus, nb) + alg.scatter(fl.pt, case.t_bus, nb)
    q = alg.scatter(fl.qf, case.f_bus, nb) + alg.scatter(fl.qt, case.t_bus, nb)
    return p, q


def balance_residuals(
    case: CompiledCase,
    pg: Array,
    qg: Array,
    vm: Array,
    va: Array,
    pd: Array | None = None,
    qd: Array | None = None,
) -> tuple[Array, Array]:
    """Power-balance residuals per bus, (res_p, res_q), shape (..., n_bus).

    ``res_p = sum gens pg - sum loads pd - gs vm^2 - flows out`` and
    ``res_q = sum gens qg - sum loads qd + bs vm^2 - flows out``; ``pg``/``qg``
    per active generator, ``pd``/``qd`` per load (default: nominal).
    """
    alg = eq.ArrayAlgebra(vm)
    pd = alg.const(case.pd) if pd is None else alg.arr(pd)
    qd = alg.const(case.qd) if qd is None else alg.arr(qd)
    base = eq.base_terms(alg, case, alg.arr(vm), alg.arr(va))
    fl = eq.branch_flows(alg, case, base)
    res_p = eq.bus_balance(alg, case, False, alg.arr(pg), pd, base.vm2, fl.pf, fl.pt)
    res_q = eq.bus_balance(alg, case, True, alg.arr(qg), qd, base.vm2, fl.qf, fl.qt)
    return res_p, res_q


def thermal_residuals(case: CompiledCase, flows: Flows) -> tuple[Array, Array]:
    """``pf^2 + qf^2 - rate_a^2`` and ``pt^2 + qt^2 - rate_a^2`` (<= 0 is within limit).

    Unlimited branches (``rate_a = inf``) give ``-inf``.
    """
    alg = eq.ArrayAlgebra(flows.pf)
    rate = np.asarray(case.rate_a, dtype=np.float64)
    return (eq.thermal_violation(alg, flows.pf, flows.qf, rate),
            eq.thermal_violation(alg, flows.pt, flows.qt, rate))


def ybus_injections(case: CompiledCase, vm: np.ndarray, va: np.ndarray) -> tuple[
        np.ndarray, np.ndarray]:
    """Complex injections ``S = V conj(Ybus V)`` (numpy, shunts included), (p, q).

    A cross-check of the templates: ``p = bus_injections_p + gs vm^2`` and
    ``q = bus_injections_q - bs vm^2``.
    """
    v = np.asarray(vm) * np.exp(1j * np.asarray(va))
    shape = v.shape
    v2 = v.reshape(-1, shape[-1])
    i = (case.ybus @ v2.T).T
    s = (v2 * np.conj(i)).reshape(shape)
    return s.real, s.imag
