"""Reference evaluation of constraint violations from the grid flow equations.

This is the independent check of the physics graph: it evaluates the violation
of every constraint with :mod:`gridverify.grid.flows` (not with the graph), in
numpy or torch (float64 recommended), for a batch of loads ``x`` (``(B, 2L)``)
and proxy outputs ``y`` (``(B, 2G + 2N)``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from gridverify.grid.flows import balance_residuals, branch_flows
from gridverify.spec.constraints import Constraint


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
    if is_torch:
        import torch

        absf = torch.abs
    else:
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        absf = np.abs
    L = case.n_load
    pd, qd = x[..., :L], x[..., L:2 * L]
    pg, qg, vm, va = split_output(case, y)
    fams = {c.family for c in constraints}
    flows = res = None
    if fams & {"thermal_fr", "thermal_to"}:
        flows = branch_flows(case, vm, va)
    if fams & {"p_balance", "q_balance"}:
        res = balance_residuals(case, pg, qg, vm, va, pd, qd)
    fam_pos: dict[str, list[int]] = {}
    for k, c in enumerate(constraints):
        fam_pos.setdefault(c.family, []).append(k)
    blocks, order = [], []
    for fam, pos in fam_pos.items():
        idx = np.array([constraints[k].index for k in pos], dtype=np.int64)
        if is_torch:
            import torch

            ti = torch.as_tensor(idx, device=y.device)
            take = lambda a, ti=ti: a.index_select(-1, ti)  # noqa: E731
            const = lambda v: torch.as_tensor(v, dtype=y.dtype, device=y.device)  # noqa: E731
        else:
            take = lambda a, idx=idx: a[..., idx]  # noqa: E731
            const = lambda v: v  # noqa: E731
        if fam == "p_balance":
            v = absf(take(res[0]))
        elif fam == "q_balance":
            v = absf(take(res[1]))
        elif fam in ("thermal_fr", "thermal_to"):
            p_, q_ = (flows.pf, flows.qf) if fam == "thermal_fr" else (flows.pt, flows.qt)
            v = take(p_) ** 2 + take(q_) ** 2 - const(np.asarray(case.rate_a)[idx] ** 2)
        elif fam in _SIMPLE:
            name, lim, sgn = _SIMPLE[fam]
            var = {"vm": vm, "pg": pg, "qg": qg}[name]
            v = sgn * (take(var) - const(np.asarray(getattr(case, lim), dtype=np.float64)[idx]))
        else:
            f_i = np.asarray(case.f_bus)[idx]
            t_i = np.asarray(case.t_bus)[idx]
            if is_torch:
                d = va.index_select(-1, torch.as_tensor(f_i, device=y.device)) - va.index_select(
                    -1, torch.as_tensor(t_i, device=y.device))
            else:
                d = va[..., f_i] - va[..., t_i]
            if fam == "angle_max":
                v = d - const(np.asarray(case.angmax, dtype=np.float64)[idx])
            else:
                v = const(np.asarray(case.angmin, dtype=np.float64)[idx]) - d
        blocks.append(v)
        order.extend(pos)
    inv = np.argsort(np.asarray(order, dtype=np.int64))
    if is_torch:
        out = torch.cat(blocks, dim=-1)
        return out.index_select(-1, torch.as_tensor(inv, device=y.device))
    return np.concatenate(blocks, axis=-1)[..., inv]


_SIMPLE = {
    "vm_max": ("vm", "vmax", 1.0), "vm_min": ("vm", "vmin", -1.0),
    "pg_max": ("pg", "pmax", 1.0), "pg_min": ("pg", "pmin", -1.0),
    "qg_max": ("qg", "qmax", 1.0), "qg_min": ("qg", "qmin", -1.0),
}
