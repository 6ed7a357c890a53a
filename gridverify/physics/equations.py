"""The ACP equations and the limit table, written once for every backend.

PowerModels' way: a problem is written once and a *formulation* chooses how each
piece is expressed.  Here the polar (ACP) equations of a compiled case are
functions of a small **algebra** object; each backend supplies one:

* :class:`ArrayAlgebra` -- numpy arrays or torch tensors (any batch shape);
* :class:`ExprAlgebra` -- numpy object arrays of scalar modeling expressions
  (Pyomo in :mod:`gridverify.opf.acopf`, SCIP in :mod:`gridverify.exact.scip`);
* the graph builder and its affine rows -- :mod:`gridverify.physics.acp`.

An algebra provides ``take`` (gather along the last axis), ``scatter`` (sum into
slots), ``square``, ``mul``, ``cos``, ``sin``, ``angle_diff``, ``scale`` (times a
coefficient array) and ``const``; sums and differences use the values' own
``+``/``-``.

The equations (per unit, radians; see :mod:`gridverify.grid.compiled`)::

    base:     vm2 = vm**2 (per bus),  w = vm_f vm_t,  d = va_f - va_t,
              wc = w cos(d),  ws = w sin(d)          (per branch)
    flow:     vv * vm2[side] + c * wc + s * ws        (pf, qf, pt, qt)
    balance:  sum gens - sum loads -/+ shunt * vm2 - (flows out at from ends + at to ends)
    thermal:  p**2 + q**2 - rate_a**2
    limits:   sign * (quantity - limit)               (:data:`LIMITS`; a constant
              :data:`UNLIMITED_VIOLATION` where the limit is infinite)

The angle-difference limits are PowerModels' corrected ones
(:func:`angle_limits`); every consumer reads them through :func:`limit_values`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from gridverify.spec.constraints import LIMITS, Limit

__all__ = [
    "ANGLE_PAD",
    "FLOW_NAMES",
    "UNLIMITED_VIOLATION",
    "LIMITS",
    "ArrayAlgebra",
    "Base",
    "ExprAlgebra",
    "Flows",
    "Limit",
    "angle_limits",
    "base_terms",
    "branch_flows",
    "bus_balance",
    "flow",
    "case_templates",
    "limit_values",
    "limit_violation",
    "quantity",
    "thermal_violation",
]

Value = Any  # whatever the algebra works on (array, tensor, object array, graph node, rows)

FLOW_NAMES: tuple[str, ...] = ("pf", "qf", "pt", "qt")
ANGLE_PAD = math.pi / 3  # PowerModels' default angle-difference pad (60 degrees)


class Flows(NamedTuple):
    """Branch flows in pu, shape (..., n_branch): from end (pf, qf), to end (pt, qt)."""

    pf: Value
    qf: Value
    pt: Value
    qt: Value


class Base(NamedTuple):
    """The nonlinear base quantities of ACP: ``vm2`` per bus, ``wc``, ``ws`` per branch."""

    vm2: Value
    wc: Value
    ws: Value


# ---------------------------------------------------------------- equations


def case_templates(case: Any) -> tuple[Any, Any, Any, Any]:
    """The case's four :class:`~gridverify.grid.compiled.FlowTemplate` (pf, qf, pt, qt)."""
    return case.pf_t, case.qf_t, case.pt_t, case.qt_t


def base_terms(alg: Any, case: Any, vm: Value, va: Value) -> Base:
    """``vm2 = vm**2``, ``wc = vm_f vm_t cos(va_f - va_t)``, ``ws = ... sin(...)``."""
    f = np.asarray(case.f_bus, dtype=np.int64)
    t = np.asarray(case.t_bus, dtype=np.int64)
    vm2 = alg.square(vm, name="vm2")
    w = alg.mul(alg.take(vm, f), alg.take(vm, t), name="w_ft")
    d = alg.angle_diff(va, f, t, name="dva")
    return Base(vm2, alg.mul(w, alg.cos(d), name="w_cos"), alg.mul(w, alg.sin(d), name="w_sin"))


def flow(alg: Any, case: Any, tpl: Any, base: Base) -> Value:
    """One flow quantity of every branch: ``vv * vm2[side] + c * wc + s * ws``."""
    side = case.f_bus if tpl.side == "f" else case.t_bus
    if tpl.side not in ("f", "t"):  # pragma: no cover - contract of the compiled case
        raise ValueError(f"flow template: side must be 'f' or 't', got {tpl.side!r}")
    v2 = alg.take(base.vm2, np.asarray(side, dtype=np.int64))
    return alg.scale(tpl.vv, v2) + alg.scale(tpl.c, base.wc) + alg.scale(tpl.s, base.ws)


def branch_flows(alg: Any, case: Any, base: Base) -> Flows:
    """The four flows (pf, qf, pt, qt) of every branch."""
    return Flows(*(flow(alg, case, tpl, base) for tpl in case_templates(case)))


def bus_balance(alg: Any, case: Any, reactive: bool, gen: Value, load: Value, vm2: Value,
                out_from: Value, out_to: Value) -> Value:
    """Balance residual of every bus (zero at a power-flow solution).

    ``sum gens - sum loads - gs vm2 - flows out`` (active) or ``... + bs vm2 - ...``
    (reactive); ``gen`` per generator, ``load`` per load, ``out_from``/``out_to``
    the flow of every branch at its from/to end.
    """
    n = case.n_bus
    shunt = np.asarray(case.bs, dtype=np.float64) if reactive else \
        -np.asarray(case.gs, dtype=np.float64)
    out = alg.scatter(out_from, case.f_bus, n) + alg.scatter(out_to, case.t_bus, n)
    return (alg.scatter(gen, case.gen_bus, n) - alg.scatter(load, case.load_bus, n)
            + alg.scale(shunt, vm2) - out)


def thermal_violation(alg: Any, p: Value, q: Value, rate: np.ndarray) -> Value:
    """``p**2 + q**2 - rate**2`` (``<= 0`` within the thermal limit)."""
    return alg.square(p) + alg.square(q) - alg.const(np.asarray(rate, dtype=np.float64) ** 2)


# ---------------------------------------------------------------- limits


def angle_limits(case: Any) -> tuple[np.ndarray, np.ndarray]:
    """Angle-difference limits ``(lo, hi)`` after PowerModels' correction.

    A limit at or beyond +-90 degrees, or both limits 0, becomes +-60 degrees
    (:data:`ANGLE_PAD`) about the branch's phase shift (taken in [-180, 180)
    degrees): about 0 on a branch without one, as in PowerModels, and about the
    shift on a phase-shifting transformer, whose bus angles differ by about
    the shift (a 150-degree vector group of a pandapower network, say, would
    be infeasible under +-60 degrees about 0).  When only one side is
    corrected and that would cross or meet the side kept, it is PowerModels' +-60
    degrees about 0 instead, or, should that cross too, 60 degrees beyond the
    kept side: a 100-degree shifter limited to ``angmax = 30`` gets
    ``[-60, 30]``, not the empty ``[40, 30]``.  This is the only place the
    correction is written.
    """
    lo = np.array(case.angmin, dtype=np.float64)
    hi = np.array(case.angmax, dtype=np.float64)
    shift = np.broadcast_to(np.asarray(getattr(case, "shift", 0.0), dtype=np.float64), lo.shape)
    centre = np.remainder(shift + math.pi, 2 * math.pi) - math.pi  # 330 degrees is -30
    both_zero = (lo == 0) & (hi == 0)
    fix_lo = (lo <= -math.pi / 2) | both_zero
    fix_hi = (hi >= math.pi / 2) | both_zero
    # the first candidate on the right side of the other limit (corrected or kept)
    top = np.where(fix_hi, centre + ANGLE_PAD, hi)
    bottom = np.where(fix_lo, centre - ANGLE_PAD, lo)
    gap = 1e-9  # a candidate meeting the other limit (up to rounding) leaves no range
    new_lo = np.where(centre - ANGLE_PAD < top - gap, centre - ANGLE_PAD,
                      np.where(-ANGLE_PAD < top - gap, -ANGLE_PAD, top - ANGLE_PAD))
    new_hi = np.where(centre + ANGLE_PAD > bottom + gap, centre + ANGLE_PAD,
                      np.where(ANGLE_PAD > bottom + gap, ANGLE_PAD, bottom + ANGLE_PAD))
    return np.where(fix_lo, new_lo, lo), np.where(fix_hi, new_hi, hi)


def limit_values(case: Any, family: str) -> np.ndarray:
    """The limit of every component of a :data:`LIMITS` family (angles corrected)."""
    lim = LIMITS[family]
    if lim.quantity == "dva":
        lo, hi = angle_limits(case)
        return hi if lim.sign > 0 else lo
    return np.asarray(getattr(case, lim.field), dtype=np.float64)


#: violation row of a side without a limit (an infinite generator limit: ``Inf``
#: in a case file is no limit, as in MATPOWER): a finite constant below any
#: threshold, so that no graph row, bound or reference value is inf or NaN
UNLIMITED_VIOLATION = -1.0


def limit_violation(alg: Any, case: Any, family: str, value: Value, idx: np.ndarray) -> Value:
    """``sign * (value - limit[idx])`` for ``value`` the family's quantity at ``idx``.

    A component whose limit is infinite on this side (no limit) gets the constant
    :data:`UNLIMITED_VIOLATION` instead (its row does not depend on ``value``).
    """
    lim = LIMITS[family]
    limit = limit_values(case, family)[np.asarray(idx, dtype=np.int64)]
    finite = np.isfinite(limit)
    if finite.all():
        return lim.sign * (value - alg.const(limit))
    keep = finite.astype(np.float64)
    bias = np.where(finite, lim.sign * np.where(finite, limit, 0.0), -UNLIMITED_VIOLATION)
    return lim.sign * alg.scale(keep, value) - alg.const(bias)


def quantity(alg: Any, case: Any, name: str, parts: dict[str, Value], idx: np.ndarray) -> Value:
    """A limit quantity at components ``idx``: ``parts[name][idx]``, or ``va_f - va_t``."""
    idx = np.asarray(idx, dtype=np.int64)
    if name == "dva":
        f = np.asarray(case.f_bus, dtype=np.int64)[idx]
        t = np.asarray(case.t_bus, dtype=np.int64)[idx]
        return alg.angle_diff(parts["va"], f, t)
    return alg.take(parts[name], idx)


# ---------------------------------------------------------------- backends


def _is_torch(a: Any) -> bool:
    return type(a).__module__.startswith("torch")


class ArrayAlgebra:
    """numpy arrays or torch tensors (the dtype and device of ``like``; ints become float64)."""

    def __init__(self, like: Any) -> None:
        self.torch = _is_torch(like)
        if self.torch:
            import torch

            self.t = torch
            self.dtype = like.dtype if like.is_floating_point() else torch.float64
            self.device = like.device
        else:
            dt = np.asarray(like).dtype
            self.dtype = dt if np.issubdtype(dt, np.floating) else np.result_type(dt, np.float64)

    def const(self, a: Any) -> Any:
        """A constant (numpy data) in this backend's dtype and device."""
        if self.torch:
            return self.t.tensor(np.array(a), dtype=self.dtype, device=self.device)
        return np.asarray(a, dtype=self.dtype)

    def arr(self, a: Any) -> Any:
        """An input array in this backend's type, dtype and device."""
        if self.torch and _is_torch(a):
            return a.to(dtype=self.dtype, device=self.device)
        return self.const(a)

    def index(self, a: np.ndarray) -> Any:
        """An int64 index in this backend."""
        if self.torch:
            return self.t.tensor(np.array(a), dtype=self.t.int64, device=self.device)
        return np.asarray(a, dtype=np.int64)

    def take(self, a: Any, idx: np.ndarray) -> Any:
        """``a[..., idx]``."""
        if self.torch:
            return a.index_select(-1, self.index(idx))
        return a[..., np.asarray(idx, dtype=np.int64)]

    def square(self, a: Any, name: str | None = None) -> Any:
        """``a * a``."""
        return a * a

    def mul(self, a: Any, b: Any, name: str | None = None) -> Any:
        """``a * b``."""
        return a * b

    def cos(self, a: Any) -> Any:
        """``cos(a)``."""
        return self.t.cos(a) if self.torch else np.cos(a)

    def sin(self, a: Any) -> Any:
        """``sin(a)``."""
        return self.t.sin(a) if self.torch else np.sin(a)

    def angle_diff(self, va: Any, f: np.ndarray, t: np.ndarray, name: str | None = None) -> Any:
        """``va[..., f] - va[..., t]``."""
        return self.take(va, f) - self.take(va, t)

    def scale(self, coef: np.ndarray, a: Any) -> Any:
        """``coef * a`` (coef broadcast along the last axis)."""
        return self.const(coef) * a

    def scatter(self, src: Any, idx: np.ndarray, n: int) -> Any:
        """``out[..., j] = sum over k with idx[k] == j of src[..., k]``."""
        shape = tuple(src.shape[:-1]) + (n,)
        if self.torch:
            out = self.t.zeros(shape, dtype=src.dtype, device=src.device)
            return out.index_add(-1, self.index(idx), src)
        import scipy.sparse as sp

        m = src.shape[-1]
        if m == 0:
            return np.zeros(shape, dtype=src.dtype)
        inc = sp.csr_matrix((np.ones(m), (np.asarray(idx), np.arange(m))), shape=(n, m))
        s2 = np.asarray(src).reshape(-1, m)
        return np.asarray(inc @ s2.T).T.reshape(shape).astype(src.dtype, copy=False)


class ExprAlgebra:
    """1-D numpy object arrays of scalar expressions of a modeling library.

    ``cos``/``sin`` are the library's functions (``pyomo.environ.cos``,
    ``pyscipopt.cos``); zero coefficients drop their term, so the models hold
    only the terms a case has.
    """

    def __init__(self, cos: Callable[[Any], Any], sin: Callable[[Any], Any]) -> None:
        self._cos = cos
        self._sin = sin

    @staticmethod
    def vector(items: Any) -> np.ndarray:
        """An object array of the given expressions (variables, parameters, numbers)."""
        out = np.empty(len(items), dtype=object)
        out[:] = list(items)
        return out

    def const(self, a: Any) -> np.ndarray:
        """Constants as an object array of Python floats."""
        return self.vector([float(v) for v in np.atleast_1d(np.asarray(a, dtype=np.float64))])

    def take(self, a: np.ndarray, idx: np.ndarray) -> np.ndarray:
        """``a[idx]``."""
        return a[np.asarray(idx, dtype=np.int64)]

    def square(self, a: np.ndarray, name: str | None = None) -> np.ndarray:
        """``a**2`` per element."""
        return self.vector([v**2 for v in a])

    def mul(self, a: np.ndarray, b: np.ndarray, name: str | None = None) -> np.ndarray:
        """Elementwise product."""
        return self.vector([x * y for x, y in zip(a, b)])

    def cos(self, a: np.ndarray) -> np.ndarray:
        """The library's ``cos`` per element."""
        return self.vector([self._cos(v) for v in a])

    def sin(self, a: np.ndarray) -> np.ndarray:
        """The library's ``sin`` per element."""
        return self.vector([self._sin(v) for v in a])

    def angle_diff(self, va: np.ndarray, f: np.ndarray, t: np.ndarray,
                   name: str | None = None) -> np.ndarray:
        """``va[f] - va[t]``."""
        return self.vector([va[i] - va[j] for i, j in zip(f, t)])

    def scale(self, coef: np.ndarray, a: np.ndarray) -> np.ndarray:
        """``coef * a`` per element; a zero coefficient gives the number 0."""
        return self.vector([float(c) * v if c != 0 else 0 for c, v in zip(coef, a)])

    def scatter(self, src: np.ndarray, idx: np.ndarray, n: int) -> np.ndarray:
        """Sums of ``src`` per slot (0 where a slot gets nothing)."""
        slots: list[list[Any]] = [[] for _ in range(n)]
        for k, j in enumerate(np.asarray(idx, dtype=np.int64)):
            slots[int(j)].append(src[k])
        return self.vector([sum(s) if s else 0 for s in slots])
