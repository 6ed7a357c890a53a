"""AC power flow equations from the compiled flow templates (numpy and torch).

One implementation serves numpy arrays and torch tensors (any float dtype;
float64 recommended) with arbitrary leading batch dimensions: ``vm`` and ``va``
have shape ``(..., n_bus)``.  Torch inputs keep autograd and device.

Conventions are those of :mod:`gridverify.grid.compiled`: flows are per unit on
the case base, positive out of the bus at that end; injections are net flows out
of each bus; balance residuals are ``generation - demand - shunt - flows out``
(zero at a power-flow solution).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import scipy.sparse as sp

from gridverify.grid.compiled import CompiledCase, FlowTemplate

__all__ = [
    "Flows",
    "branch_flows",
    "bus_injections",
    "balance_residuals",
    "thermal_residuals",
    "ybus_injections",
]

Array = Any  # numpy.ndarray or torch.Tensor


class Flows(NamedTuple):
    """Branch flows in pu, shape (..., n_branch): from end (pf, qf), to end (pt, qt)."""

    pf: Array
    qf: Array
    pt: Array
    qt: Array


def _is_torch(a: Any) -> bool:
    mod = type(a).__module__
    return mod.startswith("torch")


class _Ops:
    """The few array operations the equations need, for numpy or torch."""

    def __init__(self, like: Array) -> None:
        self.torch = _is_torch(like)
        if self.torch:
            import torch

            self.t = torch
            self.dtype = like.dtype if like.is_floating_point() else torch.float64
            self.device = like.device
        else:
            self.dtype = np.result_type(np.asarray(like).dtype, np.float64) \
                if not np.issubdtype(np.asarray(like).dtype, np.floating) \
                else np.asarray(like).dtype

    def const(self, a: np.ndarray) -> Array:
        if self.torch:
            return self.t.tensor(np.array(a), dtype=self.dtype, device=self.device)
        return np.asarray(a, dtype=self.dtype)

    def arr(self, a: Array) -> Array:
        if self.torch:
            if _is_torch(a):
                return a.to(dtype=self.dtype, device=self.device)
            return self.t.tensor(np.array(a), dtype=self.dtype, device=self.device)
        return np.asarray(a, dtype=self.dtype)

    def index(self, a: np.ndarray) -> Array:
        if self.torch:
            return self.t.tensor(np.array(a), dtype=self.t.int64, device=self.device)
        return np.asarray(a, dtype=np.int64)

    def cos(self, a: Array) -> Array:
        return self.t.cos(a) if self.torch else np.cos(a)

    def sin(self, a: Array) -> Array:
        return self.t.sin(a) if self.torch else np.sin(a)

    def scatter(self, src: Array, idx: np.ndarray, n: int) -> Array:
        """out[..., j] = sum over k with idx[k] == j of src[..., k]."""
        shape = tuple(src.shape[:-1]) + (n,)
        if self.torch:
            out = self.t.zeros(shape, dtype=src.dtype, device=src.device)
            return out.index_add(-1, self.index(idx), src)
        m = src.shape[-1]
        if m == 0:
            return np.zeros(shape, dtype=src.dtype)
        inc = sp.csr_matrix((np.ones(m), (np.asarray(idx), np.arange(m))), shape=(n, m))
        s2 = np.asarray(src).reshape(-1, m)
        return np.asarray(inc @ s2.T).T.reshape(shape).astype(src.dtype, copy=False)


def _eval(tpl: FlowTemplate, ops: _Ops, v2f: Array, v2t: Array, wc: Array, ws: Array) -> Array:
    v2 = v2f if tpl.side == "f" else v2t
    return ops.const(tpl.vv) * v2 + ops.const(tpl.c) * wc + ops.const(tpl.s) * ws


def branch_flows(case: CompiledCase, vm: Array, va: Array) -> Flows:
    """Branch flows (pf, qf, pt, qt) in pu at bus voltages ``vm`` (pu), ``va`` (rad)."""
    ops = _Ops(vm)
    vm = ops.arr(vm)
    va = ops.arr(va)
    f = ops.index(case.f_bus)
    t = ops.index(case.t_bus)
    vm_f = vm[..., f]
    vm_t = vm[..., t]
    dva = va[..., f] - va[..., t]
    w = vm_f * vm_t
    wc = w * ops.cos(dva)
    ws = w * ops.sin(dva)
    v2f = vm_f * vm_f
    v2t = vm_t * vm_t
    return Flows(
        pf=_eval(case.pf_t, ops, v2f, v2t, wc, ws),
        qf=_eval(case.qf_t, ops, v2f, v2t, wc, ws),
        pt=_eval(case.pt_t, ops, v2f, v2t, wc, ws),
        qt=_eval(case.qt_t, ops, v2f, v2t, wc, ws),
    )


def bus_injections(
    case: CompiledCase, vm: Array, va: Array, flows: Flows | None = None
) -> tuple[Array, Array]:
    """Net branch flow out of each bus, (p, q), shape (..., n_bus).

    ``p[i] = sum_{from i} pf + sum_{to i} pt`` (shunts not included).
    """
    ops = _Ops(vm)
    fl = flows if flows is not None else branch_flows(case, vm, va)
    nb = case.n_bus
    p = ops.scatter(fl.pf, case.f_bus, nb) + ops.scatter(fl.pt, case.t_bus, nb)
    q = ops.scatter(fl.qf, case.f_bus, nb) + ops.scatter(fl.qt, case.t_bus, nb)
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
    ops = _Ops(vm)
    vm_ = ops.arr(vm)
    pg = ops.arr(pg)
    qg = ops.arr(qg)
    pd = ops.const(case.pd) if pd is None else ops.arr(pd)
    qd = ops.const(case.qd) if qd is None else ops.arr(qd)
    nb = case.n_bus
    p_out, q_out = bus_injections(case, vm_, va)
    v2 = vm_ * vm_
    res_p = (ops.scatter(pg, case.gen_bus, nb) - ops.scatter(pd, case.load_bus, nb)
             - ops.const(case.gs) * v2 - p_out)
    res_q = (ops.scatter(qg, case.gen_bus, nb) - ops.scatter(qd, case.load_bus, nb)
             + ops.const(case.bs) * v2 - q_out)
    return res_p, res_q


def thermal_residuals(case: CompiledCase, flows: Flows) -> tuple[Array, Array]:
    """``pf^2 + qf^2 - rate_a^2`` and ``pt^2 + qt^2 - rate_a^2`` (<= 0 is within limit).

    Unlimited branches (``rate_a = inf``) give ``-inf``.
    """
    ops = _Ops(flows.pf)
    rate2 = ops.const(np.where(np.isinf(case.rate_a), -np.inf, 0.0))
    lim = ops.const(np.where(np.isinf(case.rate_a), 0.0, case.rate_a**2))
    sf = flows.pf * flows.pf + flows.qf * flows.qf - lim + rate2
    st = flows.pt * flows.pt + flows.qt * flows.qt - lim + rate2
    return sf, st


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
