"""Exact worst-case violation of one constraint by global optimization (SCIP).

For a tiny case and a small proxy MLP the problem

    max_{x in region}  violation_k(x, proxy(x))

is written as a mixed-integer nonlinear program and solved by SCIP's spatial
branch-and-bound (through PySCIPOpt).  The encoding is independent of the
gridverify graph and of the bound engine: it reads the proxy's ``nn.Linear``
layers and activations directly and writes the ACP flows from the case's flow
templates.

* ReLU: big-M with one binary per unstable neuron, ``M`` from interval bounds
  of the pre-activation (computed here in float64 and padded);
* sigmoid ``1 / (1 + exp(-z))``, tanh ``2 sigmoid(2z) - 1``, both as SCIP
  nonlinear expressions (``exp(z) / (1 + exp(z))`` when ``z`` is bounded above
  but not below, to avoid overflow);
* the clamp head of :class:`~gridverify.proxy.model.ProxyMLP`
  (``lo + span * sigmoid(z)``);
* the flows, balances and limits of :mod:`gridverify.physics.equations`
  (written once for every backend) on SCIP expressions, with SCIP's
  ``sin``/``cos``; angle limits are PowerModels' corrected ones.

SCIP returns a primal value (a feasible point: a lower bound on the true
maximum, up to its feasibility tolerance) and a dual bound (an upper bound).
The bracket ``[value, bound]`` contains the true worst case within SCIP's
tolerances.  Balance constraints (``|residual|``) are solved twice (both signs).
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from gridverify._typed import check_field_types
from gridverify.errors import GridverifyError, SolverError
from gridverify.physics import equations as eq
from gridverify.spec.constraints import BALANCE_FAMILIES, THERMAL_FAMILIES, Constraint

_EXP_LIMIT = 40.0  # |z| beyond which exp(z) is not written (SCIP infinity is 1e20)


class ExactError(GridverifyError):
    """The model cannot be written as an exact SCIP problem (op or size not supported)."""


@dataclass(frozen=True)
class ExactOptions:
    """Options of the exact check: SCIP ``time_limit`` (s), relative ``gap``, ``feastol``."""

    time_limit: float = 60.0
    gap: float = 1e-6
    feastol: float | None = None
    verbose: bool = False

    def __post_init__(self) -> None:
        def number(name: str, v: Any, positive: bool) -> None:
            ok = (isinstance(v, int | float) and not isinstance(v, bool)
                  and math.isfinite(v) and (v > 0 if positive else v >= 0))
            if not ok:
                what = "> 0" if positive else ">= 0"
                raise ExactError(f"exact options: {name} must be a finite number {what}, "
                                 f"got {v!r}")

        number("time_limit", self.time_limit, positive=False)
        number("gap", self.gap, positive=False)
        if self.feastol is not None:
            number("feastol", self.feastol, positive=True)
        check_field_types(self, ExactError, "exact options")  # verbose


@dataclass(frozen=True)
class ExactResult:
    """Bracket of the true worst-case violation of one constraint.

    ``value``: SCIP's best primal objective; ``bound``: SCIP's dual bound;
    ``witness``: the load vector of the best solution (clipped into the region);
    ``witness_value``: the violation re-evaluated in float64 at ``witness`` on
    the concrete proxy and the grid flow equations; ``status``: SCIP's status
    (``optimal`` when the gap closed).
    """

    constraint: Constraint
    value: float
    bound: float
    witness: np.ndarray
    witness_value: float
    status: str
    seconds: float

    @property
    def optimal(self) -> bool:
        """Whether SCIP proved optimality."""
        return self.status == "optimal"


@dataclass(frozen=True)
class _Layer:
    kind: str  # "linear", "relu", "tanh", "sigmoid", "head"
    w: np.ndarray | None = None
    b: np.ndarray | None = None


def mlp_layers(module: nn.Module) -> list[_Layer]:
    """The chain of layers of a proxy MLP (ProxyMLP or ``nn.Sequential``), float64.

    Raises ExactError for any other structure.
    """
    from gridverify.proxy.model import ProxyMLP

    acts = {nn.ReLU: "relu", nn.Tanh: "tanh", nn.Sigmoid: "sigmoid"}
    out: list[_Layer] = []
    if isinstance(module, ProxyMLP):
        m = module if module.is_folded else module.folded(dtype=torch.float64)
        act = type(m.act)
        if act not in acts:
            raise ExactError(f"exact check: activation {act.__name__} is not supported")
        n = len(m.layers)
        for i, lin in enumerate(m.layers):
            out.append(_Layer("linear", _np(lin.weight), _np(lin.bias)))
            if i < n - 1:
                out.append(_Layer(acts[act]))
        if m.n_clamped:
            out.append(_Layer("head", _np(m.head_lo), _np(m.head_span)))
        return out
    if isinstance(module, nn.Sequential):
        kinds = [isinstance(sub, nn.Linear) for sub in module]
        # an activation reads the pre-activation bounds of the Linear just before it
        if not kinds or not kinds[0] or not kinds[-1] or any(
                not a and not b for a, b in zip(kinds, kinds[1:])):
            raise ExactError("exact check: an nn.Sequential MLP starts and ends with Linear, "
                             "with one ReLU/Tanh/Sigmoid at most between two Linear layers")
        for sub in module:
            if isinstance(sub, nn.Linear):
                bias = _np(sub.bias) if sub.bias is not None else np.zeros(sub.out_features)
                out.append(_Layer("linear", _np(sub.weight), bias))
            elif type(sub) in acts:
                out.append(_Layer(acts[type(sub)]))
            else:
                raise ExactError(f"exact check: layer {type(sub).__name__} is not supported")
        return out
    raise ExactError(
        f"exact check: module {type(module).__name__} is not a ProxyMLP or nn.Sequential MLP"
    )


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().to(torch.float64).cpu().numpy().copy()


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def _interval(layers: list[_Layer], lo: np.ndarray, hi: np.ndarray) -> list[tuple]:
    """Interval bounds (padded) of every layer's output."""
    bounds = []
    for lay in layers:
        if lay.kind == "linear":
            c, r = 0.5 * (lo + hi), 0.5 * (hi - lo)
            mid = lay.w @ c + lay.b
            rad = np.abs(lay.w) @ r
            pad = 1e-9 * (1.0 + np.abs(mid) + rad)
            lo, hi = mid - rad - pad, mid + rad + pad
        elif lay.kind == "relu":
            lo, hi = np.maximum(lo, 0), np.maximum(hi, 0)
        elif lay.kind == "tanh":
            lo, hi = np.tanh(lo), np.tanh(hi)
        elif lay.kind == "sigmoid":
            lo, hi = _sigmoid(lo), _sigmoid(hi)
        else:
            n = lay.w.size
            slo, shi = _sigmoid(lo[:n]), _sigmoid(hi[:n])
            lo = np.concatenate([lay.w + lay.b * slo, lo[n:]])
            hi = np.concatenate([lay.w + lay.b * shi, hi[n:]])
        bounds.append((lo, hi))
    return bounds


def _sig_expr(z: Any, zl: float, zu: float) -> Any:
    from pyscipopt import exp

    if zl >= -_EXP_LIMIT:
        return 1.0 / (1.0 + exp(-z))
    if zu <= _EXP_LIMIT:
        return exp(z) / (1.0 + exp(z))
    raise ExactError(
        f"exact check: a pre-activation ranges over [{zl:g}, {zu:g}], too wide for exp()"
    )


def _encode_mlp(model: Any, layers: list[_Layer], xs: list[Any], lo: np.ndarray,
                hi: np.ndarray) -> list[Any]:
    """Add the MLP to a SCIP model; returns the output variables."""
    bounds = _interval(layers, lo, hi)
    h = xs
    for li, (lay, (blo, bhi)) in enumerate(zip(layers, bounds)):
        if lay.kind == "linear":
            z = []
            for j in range(lay.w.shape[0]):
                v = model.addVar(f"z{li}_{j}", lb=float(blo[j]), ub=float(bhi[j]))
                expr = sum(float(lay.w[j, k]) * h[k] for k in range(len(h)) if lay.w[j, k] != 0)
                model.addCons(v == expr + float(lay.b[j]))
                z.append(v)
            prev = bounds[li][0], bounds[li][1]
            h = z
            continue
        zlo, zhi = prev
        new = []
        if lay.kind == "head":
            n = lay.w.size
            for j in range(len(h)):
                if j >= n:
                    new.append(h[j])
                    continue
                v = model.addVar(f"a{li}_{j}", lb=float(blo[j]), ub=float(bhi[j]))
                s = _sig_expr(h[j], float(zlo[j]), float(zhi[j]))
                model.addCons(v == float(lay.w[j]) + float(lay.b[j]) * s)
                new.append(v)
        else:
            for j in range(len(h)):
                v = model.addVar(f"a{li}_{j}", lb=float(blo[j]), ub=float(bhi[j]))
                zl, zu = float(zlo[j]), float(zhi[j])
                if lay.kind == "relu":
                    if zl >= 0:
                        model.addCons(v == h[j])
                    elif zu <= 0:
                        model.addCons(v == 0)
                    else:
                        d = model.addVar(f"d{li}_{j}", vtype="B")
                        model.addCons(v >= h[j])
                        model.addCons(v <= h[j] - zl * (1 - d))
                        model.addCons(v <= zu * d)
                elif lay.kind == "sigmoid":
                    model.addCons(v == _sig_expr(h[j], zl, zu))
                else:  # tanh(z) = 2 sigmoid(2 z) - 1
                    model.addCons(v == 2.0 * _sig_expr(2.0 * h[j], 2 * zl, 2 * zu) - 1.0)
                new.append(v)
        prev = (blo, bhi)
        h = new
    return h


def _violation_expr(case: Any, c: Constraint, sign: float, x: list[Any], y: list[Any]) -> Any:
    """SCIP expression of the (signed) violation of one constraint."""
    from pyscipopt import cos, sin

    g, n, L = case.n_gen, case.n_bus, case.n_load
    alg = eq.ExprAlgebra(cos, sin)
    vec = alg.vector
    pg, qg, vm, va = vec(y[:g]), vec(y[g:2 * g]), vec(y[2 * g:2 * g + n]), vec(y[2 * g + n:])
    i, fam = c.index, c.family
    idx = np.array([i], dtype=np.int64)
    if fam in eq.LIMITS:
        parts = {"pg": pg, "qg": qg, "vm": vm, "va": va}
        value = eq.quantity(alg, case, eq.LIMITS[fam].quantity, parts, idx)
        return eq.limit_violation(alg, case, fam, value, idx)[0]
    base = eq.base_terms(alg, case, vm, va)
    flows = eq.branch_flows(alg, case, base)
    if fam in BALANCE_FAMILIES:
        if fam == "q_balance":
            res = eq.bus_balance(alg, case, True, qg, vec(x[L:]), base.vm2, flows.qf, flows.qt)
        else:
            res = eq.bus_balance(alg, case, False, pg, vec(x[:L]), base.vm2, flows.pf, flows.pt)
        return sign * res[i]
    p, q = (flows.pf, flows.qf) if fam == "thermal_fr" else (flows.pt, flows.qt)
    rate = np.asarray(case.rate_a, dtype=np.float64)[idx]
    return eq.thermal_violation(alg, alg.take(p, idx), alg.take(q, idx), rate)[0]


def _solve_one(
    case: Any, layers: list[_Layer], lo: np.ndarray, hi: np.ndarray, c: Constraint,
    sign: float, opts: ExactOptions,
) -> tuple[float, float, np.ndarray, str]:
    try:
        from pyscipopt import Model
    except ImportError as exc:  # pragma: no cover - pyscipopt is a dev dependency
        raise SolverError(
            "the exact check needs pyscipopt (pip install gridverify[exact])"
        ) from exc
    m = Model("gridverify_exact")
    if not opts.verbose:
        m.hideOutput()
    m.setParam("limits/time", float(opts.time_limit))
    m.setParam("limits/gap", float(opts.gap))
    if opts.feastol is not None:
        m.setParam("numerics/feastol", float(opts.feastol))
    xs = [m.addVar(f"x{j}", lb=float(lo[j]), ub=float(hi[j])) for j in range(lo.size)]
    y = _encode_mlp(m, layers, xs, lo, hi)
    t = m.addVar("t", lb=None, ub=None)  # free: a cap would cut off the true worst case
    m.addCons(t <= _violation_expr(case, c, sign, xs, y))
    m.setObjective(t, "maximize")
    m.optimize()
    status = str(m.getStatus())
    if m.getNSols() == 0:
        raise SolverError(f"exact check: SCIP found no solution ({status})")
    sol = m.getBestSol()
    x = np.array([m.getSolVal(sol, v) for v in xs], dtype=np.float64)
    return float(m.getObjVal()), float(m.getDualbound()), np.clip(x, lo, hi), status


def combined_status(statuses: list[str]) -> str:
    """The status of a worst case solved as several problems (the two signs of a
    balance residual): ``optimal`` only when every one is, else the first that is not
    (a time or gap limit of one sign leaves the bracket open whatever the other did)."""
    return next((s for s in statuses if s != "optimal"), "optimal")


def _check_problem(case: Any, layers: list[_Layer], lo: np.ndarray, hi: np.ndarray,
                   c: Constraint) -> None:
    """ExactError unless the box, the network and the constraint fit the case."""
    from gridverify.spec.constraints import FAMILIES, LIMITS, family_candidates

    n_in, n_out = 2 * case.n_load, 2 * case.n_gen + 2 * case.n_bus
    if lo.shape != (n_in,) or hi.shape != (n_in,):
        raise ExactError(f"exact check: the box must have {n_in} entries (2L), got "
                         f"{lo.shape} and {hi.shape}")
    if not (np.isfinite(lo).all() and np.isfinite(hi).all()):
        raise ExactError("exact check: the box must be finite (no NaN or infinity)")
    if (lo > hi).any():
        k = int(np.flatnonzero(lo > hi)[0])
        raise ExactError(f"exact check: the box is empty (lower {lo[k]:g} > upper {hi[k]:g} "
                         f"at input {k})")
    w = [lay.w for lay in layers if lay.kind == "linear"]
    if w[0].shape[1] != n_in or w[-1].shape[0] != n_out:
        raise ExactError(f"exact check: the network maps {w[0].shape[1]} inputs to "
                         f"{w[-1].shape[0]} outputs; case {case.name!r} needs {n_in} -> {n_out}")
    if c.family not in FAMILIES:
        raise ExactError(f"exact check: unknown constraint family {c.family!r}")
    idx, _ = family_candidates(case, c.family)
    if c.index not in set(idx.tolist()):
        why = (" (an unrated branch has no thermal limit)" if c.family in THERMAL_FAMILIES
               else " (an infinite limit is no constraint)" if c.family in LIMITS else "")
        raise ExactError(f"exact check: {c.family} has no constraint at index {c.index} in "
                         f"case {case.name!r}{why}")


def exact_worst_case(
    case: Any,
    module: nn.Module,
    lower: np.ndarray,
    upper: np.ndarray,
    constraint: Constraint,
    options: ExactOptions | None = None,
) -> ExactResult:
    """Bracket the worst-case violation of ``constraint`` over the box ``[lower, upper]``.

    ``module``: the proxy (ProxyMLP or ``nn.Sequential`` of Linear and
    ReLU/Tanh/Sigmoid).  The witness is re-evaluated in float64 on the module
    and the grid flow equations.
    """
    from gridverify.physics.evaluate import violation_values

    opts = options or ExactOptions()
    lo = np.asarray(lower, dtype=np.float64)
    hi = np.asarray(upper, dtype=np.float64)
    layers = mlp_layers(module)
    _check_problem(case, layers, lo, hi, constraint)
    t0 = time.perf_counter()
    signs = (1.0, -1.0) if constraint.family in BALANCE_FAMILIES else (1.0,)
    best = None
    bound = -np.inf
    statuses = []
    for s in signs:
        val, bnd, x, st = _solve_one(case, layers, lo, hi, constraint, s, opts)
        bound = max(bound, bnd)
        statuses.append(st)
        if best is None or val > best[0]:
            best = (val, x)
    assert best is not None
    mod64 = copy.deepcopy(module).to(torch.float64)
    with torch.no_grad():
        yw = mod64(torch.from_numpy(best[1][None, :])).numpy()
    wv = float(violation_values(case, [constraint], best[1][None, :], yw)[0, 0])
    status = combined_status(statuses)
    return ExactResult(constraint, best[0], float(bound), best[1], wv, status,
                       time.perf_counter() - t0)
