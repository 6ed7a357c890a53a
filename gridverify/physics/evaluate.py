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

        stack = lambda cols: torch.stack(cols, dim=-1)  # noqa: E731
        absf = torch.abs
    else:
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        stack = lambda cols: np.stack(cols, axis=-1)  # noqa: E731
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
    cols = []
    for c in constraints:
        i, fam = c.index, c.family
        if fam == "p_balance":
            v = absf(res[0][..., i])
        elif fam == "q_balance":
            v = absf(res[1][..., i])
        elif fam == "thermal_fr":
            v = flows.pf[..., i] ** 2 + flows.qf[..., i] ** 2 - float(case.rate_a[i]) ** 2
        elif fam == "thermal_to":
            v = flows.pt[..., i] ** 2 + flows.qt[..., i] ** 2 - float(case.rate_a[i]) ** 2
        elif fam == "vm_max":
            v = vm[..., i] - float(case.vmax[i])
        elif fam == "vm_min":
            v = float(case.vmin[i]) - vm[..., i]
        elif fam == "pg_max":
            v = pg[..., i] - float(case.pmax[i])
        elif fam == "pg_min":
            v = float(case.pmin[i]) - pg[..., i]
        elif fam == "qg_max":
            v = qg[..., i] - float(case.qmax[i])
        elif fam == "qg_min":
            v = float(case.qmin[i]) - qg[..., i]
        else:
            d = va[..., int(case.f_bus[i])] - va[..., int(case.t_bus[i])]
            if fam == "angle_max":
                v = d - float(case.angmax[i])
            else:
                v = float(case.angmin[i]) - d
        cols.append(v)
    return stack(cols)
