"""Reference evaluation of constraint violations (numpy or torch).

This is the independent check of the physics graph: it evaluates the violation
of every constraint with the equations of :mod:`gridverify.physics.equations`
on arrays (not with the graph), in numpy or torch (float64 recommended), for a
batch of loads ``x`` (``(B, 2L)``) and proxy outputs ``y`` (``(B, 2G + 2N)``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from gridverify.physics import equations as eq
from gridverify.spec.constraints import BALANCE_FAMILIES, THERMAL_FAMILIES, Constraint


def split_output(case: Any, y: Any) -> tuple[Any, Any, Any, Any]:
    """``(pg, qg, vm, va)`` views of proxy outputs ``(..., 2G + 2N)``."""
    g, n = case.n_gen, case.n_bus
    return y[..., :g], y[..., g:2 * g], y[..., 2 * g:2 * g + n], y[..., 2 * g + n:2 * g + 2 * n]


def violation_values(case: Any, constraints: Sequence[Constraint], x: Any, y: Any) -> Any:
    """Violation of every constraint, ``(B, K)`` (``|residual|`` for balance families).

    ``x``: loads ``[pd, qd]``; ``y``: proxy outputs ``[pg, qg, vm, va]``.  Works
    on numpy arrays and torch tensors (same type out).
    """
    is_torch = type(y).__module__.startswith("torch")
    if not is_torch:
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
    alg = eq.ArrayAlgebra(y)
    L = case.n_load
    pd, qd = alg.arr(x[..., :L]), alg.arr(x[..., L:2 * L])
    pg, qg, vm, va = split_output(case, y)
    parts = {"pg": pg, "qg": qg, "vm": vm, "va": va}
    fams = {c.family for c in constraints}
    flows = res_p = res_q = None
    if fams.intersection(BALANCE_FAMILIES + THERMAL_FAMILIES):
        base = eq.base_terms(alg, case, vm, va)
        flows = eq.branch_flows(alg, case, base)
        if "p_balance" in fams:
            res_p = eq.bus_balance(alg, case, False, pg, pd, base.vm2, flows.pf, flows.pt)
        if "q_balance" in fams:
            res_q = eq.bus_balance(alg, case, True, qg, qd, base.vm2, flows.qf, flows.qt)
    fam_pos: dict[str, list[int]] = {}
    for k, c in enumerate(constraints):
        fam_pos.setdefault(c.family, []).append(k)
    blocks, order = [], []
    for fam, pos in fam_pos.items():
        idx = np.array([constraints[k].index for k in pos], dtype=np.int64)
        if fam in BALANCE_FAMILIES:
            v = abs(alg.take(res_p if fam == "p_balance" else res_q, idx))
        elif fam in THERMAL_FAMILIES:
            assert flows is not None
            p_, q_ = (flows.pf, flows.qf) if fam == "thermal_fr" else (flows.pt, flows.qt)
            rate = np.asarray(case.rate_a, dtype=np.float64)[idx]
            v = eq.thermal_violation(alg, alg.take(p_, idx), alg.take(q_, idx), rate)
        else:
            value = eq.quantity(alg, case, eq.LIMITS[fam].quantity, parts, idx)
            v = eq.limit_violation(alg, case, fam, value, idx)
        blocks.append(v)
        order.extend(pos)
    inv = np.argsort(np.asarray(order, dtype=np.int64))
    if is_torch:
        import torch

        out = torch.cat(blocks, dim=-1)
        return out.index_select(-1, torch.as_tensor(inv, device=y.device))
    return np.concatenate(blocks, axis=-1)[..., inv]
