"""Branch-flow templates of a compiled case, in the form the physics graph needs.

The compiled case carries one :class:`~gridverify.grid.compiled.FlowTemplate`
per flow quantity (``pf, qf, pt, qt``).  Each flow of branch ``e`` is

    flow_e = vv_e * vm_side(e)**2 + c_e * w_e * cos_e + s_e * w_e * sin_e

with ``w_e = vm_f * vm_t``, ``cos_e = cos(va_f - va_t)``, ``sin_e = sin(va_f - va_t)``.
:class:`BranchTemplates` stacks the four templates and records, per quantity,
which bus's squared voltage the ``vv`` term uses.  :func:`template_flows` is a
plain numpy evaluation of the templates, used by tests and by the exact check.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

FLOW_NAMES: tuple[str, ...] = ("pf", "qf", "pt", "qt")


@dataclass(frozen=True)
class BranchTemplates:
    """Stacked flow templates: arrays ``(4, n_branch)`` in the order pf, qf, pt, qt.

    ``vv_bus[k, e]`` is the bus index whose ``vm**2`` multiplies ``vv[k, e]``.
    """

    vv: np.ndarray
    c: np.ndarray
    s: np.ndarray
    vv_bus: np.ndarray
    f_bus: np.ndarray
    t_bus: np.ndarray

    @property
    def n_branch(self) -> int:
        """Number of branches."""
        return int(self.f_bus.shape[0])


def branch_templates(case: Any) -> BranchTemplates:
    """Read the four FlowTemplates of a compiled case."""
    f_bus = np.asarray(case.f_bus, dtype=np.int64)
    t_bus = np.asarray(case.t_bus, dtype=np.int64)
    vv, c, s, vb = [], [], [], []
    for name in FLOW_NAMES:
        t = getattr(case, f"{name}_t")
        vv.append(np.asarray(t.vv, dtype=np.float64))
        c.append(np.asarray(t.c, dtype=np.float64))
        s.append(np.asarray(t.s, dtype=np.float64))
        if t.side == "f":
            vb.append(f_bus)
        elif t.side == "t":
            vb.append(t_bus)
        else:  # pragma: no cover - contract violation of the compiled case
            raise ValueError(f"flow template {name}: side must be 'f' or 't', got {t.side!r}")
    return BranchTemplates(
        np.stack(vv), np.stack(c), np.stack(s), np.stack(vb), f_bus, t_bus
    )


def template_flows(tpl: BranchTemplates, vm: np.ndarray, va: np.ndarray) -> np.ndarray:
    """Flows ``(..., 4, n_branch)`` (pf, qf, pt, qt) for voltages ``(..., n_bus)``."""
    vm = np.asarray(vm, dtype=np.float64)
    va = np.asarray(va, dtype=np.float64)
    vf = vm[..., tpl.f_bus]
    vt = vm[..., tpl.t_bus]
    d = va[..., tpl.f_bus] - va[..., tpl.t_bus]
    w = vf * vt
    wc = w * np.cos(d)
    ws = w * np.sin(d)
    out = []
    for k in range(4):
        vsq = vm[..., tpl.vv_bus[k]] ** 2
        out.append(tpl.vv[k] * vsq + tpl.c[k] * wc + tpl.s[k] * ws)
    return np.stack(out, axis=-2)
