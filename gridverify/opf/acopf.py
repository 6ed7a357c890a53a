"""The polar (ACP) AC-OPF, written as PowerModels writes it, in Pyomo.

Variables (per-unit, radians): ``vm`` in ``[vmin, vmax]``, ``va`` (free, the
reference bus fixed at 0), ``pg``/``qg`` in their generator limits, and branch
flows ``p_fr, q_fr, p_to, q_to`` (bounded by ``+-rate_a`` where finite).

Constraints:

* flow definitions, power balance, thermal and simple limits from
  :mod:`gridverify.physics.equations` (the one home of the ACP equations),
  with the case's flow templates (series admittance, charging, tap and shift
  already folded in);
* power balance with shunts at every bus (see ``gridverify.grid.compiled``);
* thermal limits ``p^2 + q^2 <= rate_a^2`` at both ends (skipped where
  ``rate_a`` is infinite, i.e. 0 in the file);
* angle-difference limits ``angmin <= va_f - va_t <= angmax``.  As PowerModels
  does, a limit at or beyond +-90 degrees (or both limits 0) is replaced by
  +-60 degrees, about the phase shift of a phase-shifting transformer
  (:func:`gridverify.physics.equations.angle_limits`);
* generator and voltage bounds (none where a generator limit is infinite:
  ``Inf`` in a MATPOWER file is no limit).

The default start (:meth:`ACOPFModel.flat_start`) is PowerModels' flat start
with the voltage angles following the phase shifts (:func:`shift_angles`).

Objective: ``sum c2 * pg^2 + c1 * pg + c0`` in $/h (pg in p.u.).

The model is built once per case (:class:`ACOPFModel`); loads are mutable
Pyomo parameters; how a re-solve reaches the solver is up to the backend
(:mod:`gridverify.opf.backends`).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gridverify.errors import GridverifyError, SolverError
from gridverify.grid.compiled import CompiledCase
from gridverify.grid.flows import balance_residuals, branch_flows
from gridverify.opf.backends import RawResult
from gridverify.opf.solvers import SolverInfo, SolverOptions, resolve_solver
from gridverify.physics import equations as eq
from gridverify.physics.equations import angle_limits

STATUSES = ("optimal", "locally_infeasible", "max_iter", "time_limit", "error")

#: p.u. (and radians); an "acceptable" solve counts as optimal only when its power-balance
#: residual and every limit violation (:func:`max_limit_violation`) are within this
ACCEPTABLE_RESIDUAL = 1e-6


@dataclass(frozen=True)
class OPFSolution:
    """Result of one AC-OPF solve (arrays in the compiled case's orders).

    ``status`` is one of ``"optimal"``, ``"locally_infeasible"``, ``"max_iter"``,
    ``"time_limit"``, ``"error"``.  When the solver returned no point the arrays
    are NaN.  ``max_balance_residual_pu`` is recomputed from (vm, va, pg, qg)
    by :func:`gridverify.grid.flows.balance_residuals`, not taken from the solver.
    ``termination`` is the solver's exit as an Ipopt return-status name on every route
    (:data:`gridverify.opf.backends.IPOPT_RETURN_STATUS`; ``"exception"``,
    ``"unknown"``), ``message`` its own text, ``iterations`` None where the route's
    output does not give the count.
    """

    case: str
    status: str
    objective: float
    pg: np.ndarray
    qg: np.ndarray
    vm: np.ndarray
    va: np.ndarray
    pf: np.ndarray
    qf: np.ndarray
    pt: np.ndarray
    qt: np.ndarray
    solve_seconds: float
    solver: str
    max_balance_residual_pu: float
    iterations: int | None = None
    message: str = ""
    termination: str = ""
    warm_data: Any = field(default=None, repr=False, compare=False)

    @property
    def optimal(self) -> bool:
        """True when the solver reported (local) optimality."""
        return self.status == "optimal"

    def to_dict(self, arrays: bool = True) -> dict[str, Any]:
        """A JSON-ready dict (NaN becomes ``None``); ``arrays=False`` drops the vectors."""

        def num(x: float) -> float | None:
            return float(x) if math.isfinite(x) else None

        out: dict[str, Any] = {
            "case": self.case,
            "status": self.status,
            "objective": num(self.objective),
            "max_balance_residual_pu": num(self.max_balance_residual_pu),
            "solve_seconds": self.solve_seconds,
            "solver": self.solver,
            "termination": self.termination,
            "message": self.message,
        }
        if arrays:
            for key in ("pg", "qg", "vm", "va", "pf", "qf", "pt", "qt"):
                out[key] = [num(v) for v in np.asarray(getattr(self, key), dtype=float)]
        return out


def _finite_or_none(x: float) -> float | None:
    """A variable bound: ``None`` (no bound) for an infinite limit."""
    x = float(x)
    return x if math.isfinite(x) else None


def start_power(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Start values of generator outputs with limits ``[lo, hi]`` (pu).

    The middle of the range where both limits are finite (PowerModels' start);
    where a limit is infinite (``Inf`` in a case file means no limit), 0 clipped
    into the finite side, so the start is always finite.
    """
    lo = np.asarray(lo, dtype=np.float64)
    hi = np.asarray(hi, dtype=np.float64)
    both = np.isfinite(lo) & np.isfinite(hi)
    with np.errstate(invalid="ignore"):
        mid = 0.5 * (lo + hi)
    return np.where(both, mid, np.clip(np.zeros_like(lo), lo, hi))


def shift_angles(case: CompiledCase) -> np.ndarray:
    """Start voltage angles (radians) consistent with the phase shifts.

    MATPOWER's branch model puts the ideal transformer ``tap * exp(j shift)`` on
    the from side, so with no flow ``va_t = va_f - shift``.  Walking the
    in-service branches breadth-first from the reference bus(es) (then from the
    first bus of every island without one, at angle 0) sets ``va_t = va_f -
    shift`` along a branch and ``va_f = va_t + shift`` against it, the shift
    taken in [-180, 180) degrees as :func:`gridverify.physics.equations.angle_limits`
    centres the angle limits.  A 150-degree vector group (pandapower's standard
    transformers) is then no longer 150 degrees away from the start.  In a case
    without phase shifts this is exactly the flat start (all 0).
    """
    nb = case.n_bus
    shift = np.asarray(case.shift, dtype=np.float64)
    va = np.zeros(nb)
    if not np.any(shift != 0):
        return va
    shift = np.remainder(shift + math.pi, 2 * math.pi) - math.pi
    adj: list[list[tuple[int, float]]] = [[] for _ in range(nb)]
    for k, (f, t) in enumerate(zip(case.f_bus, case.t_bus)):
        adj[int(f)].append((int(t), -float(shift[k])))
        adj[int(t)].append((int(f), float(shift[k])))
    seen = np.zeros(nb, dtype=bool)
    roots = [int(r) for r in case.ref_bus] + list(range(nb))
    for root in roots:
        if seen[root]:
            continue
        seen[root] = True
        queue = [root]
        while queue:
            nxt: list[int] = []
            for i in queue:
                for j, d in adj[i]:
                    if not seen[j]:
                        seen[j] = True
                        va[j] = va[i] + d
                        nxt.append(j)
            queue = nxt
    return va


def _build_model(case: CompiledCase) -> Any:
    import pyomo.environ as pyo

    m = pyo.ConcreteModel(name=case.name)
    nb, ng, nl, nd = case.n_bus, case.n_gen, case.n_branch, case.n_load
    m.B = pyo.RangeSet(0, nb - 1)
    m.G = pyo.RangeSet(0, ng - 1)
    m.L = pyo.RangeSet(0, nl - 1)
    m.D = pyo.RangeSet(0, nd - 1)
    m.pd = pyo.Param(m.D, mutable=True, initialize=lambda _m, i: float(case.pd[i]))
    m.qd = pyo.Param(m.D, mutable=True, initialize=lambda _m, i: float(case.qd[i]))

    def bounds(fam_min: str, fam_max: str) -> Any:
        # an infinite limit (``Inf`` in the file, as in MATPOWER) is no bound
        lo, hi = eq.limit_values(case, fam_min), eq.limit_values(case, fam_max)
        return lambda _m, i: (_finite_or_none(lo[i]), _finite_or_none(hi[i]))

    m.vm = pyo.Var(m.B, bounds=bounds("vm_min", "vm_max"))
    m.va = pyo.Var(m.B)
    m.pg = pyo.Var(m.G, bounds=bounds("pg_min", "pg_max"))
    m.qg = pyo.Var(m.G, bounds=bounds("qg_min", "qg_max"))

    def flow_bounds(_m: Any, k: int) -> tuple[float | None, float | None]:
        rate = float(case.rate_a[k])
        return (-rate, rate) if math.isfinite(rate) else (None, None)

    m.p_fr = pyo.Var(m.L, bounds=flow_bounds)
    m.q_fr = pyo.Var(m.L, bounds=flow_bounds)
    m.p_to = pyo.Var(m.L, bounds=flow_bounds)
    m.q_to = pyo.Var(m.L, bounds=flow_bounds)
    for r in case.ref_bus:
        m.va[int(r)].fix(0.0)

    alg = eq.ExprAlgebra(pyo.cos, pyo.sin)
    vec = alg.vector
    vm, va = vec([m.vm[i] for i in range(nb)]), vec([m.va[i] for i in range(nb)])
    base = eq.base_terms(alg, case, vm, va)
    flows = eq.branch_flows(alg, case, base)
    m.def_p_fr = pyo.Constraint(m.L, rule=lambda m, k: m.p_fr[k] == flows.pf[k])
    m.def_q_fr = pyo.Constraint(m.L, rule=lambda m, k: m.q_fr[k] == flows.qf[k])
    m.def_p_to = pyo.Constraint(m.L, rule=lambda m, k: m.p_to[k] == flows.pt[k])
    m.def_q_to = pyo.Constraint(m.L, rule=lambda m, k: m.q_to[k] == flows.qt[k])

    # an isolated bus without load or generation has no balance (unless it has a shunt)
    used = np.zeros(nb, dtype=bool)
    for idx in (case.gen_bus, case.load_bus, case.f_bus, case.t_bus):
        used[np.asarray(idx, dtype=np.int64)] = True
    res_p = eq.bus_balance(
        alg, case, False, vec([m.pg[g] for g in range(ng)]), vec([m.pd[d] for d in range(nd)]),
        base.vm2, vec([m.p_fr[k] for k in range(nl)]), vec([m.p_to[k] for k in range(nl)]))
    res_q = eq.bus_balance(
        alg, case, True, vec([m.qg[g] for g in range(ng)]), vec([m.qd[d] for d in range(nd)]),
        base.vm2, vec([m.q_fr[k] for k in range(nl)]), vec([m.q_to[k] for k in range(nl)]))

    def balance(res: np.ndarray, shunt: np.ndarray) -> Any:
        return lambda m, i: (res[i] == 0) if used[i] or shunt[i] != 0 else pyo.Constraint.Skip

    m.bal_p = pyo.Constraint(m.B, rule=balance(res_p, case.gs))
    m.bal_q = pyo.Constraint(m.B, rule=balance(res_q, case.bs))

    limited = [k for k in range(nl) if math.isfinite(float(case.rate_a[k]))]
    m.LT = pyo.Set(initialize=limited, ordered=True)
    rate = np.asarray(case.rate_a, dtype=np.float64)
    vars_ = {n: vec([getattr(m, n)[k] for k in range(nl)]) for n in ("p_fr", "q_fr", "p_to",
                                                                       "q_to")}
    th_fr = eq.thermal_violation(alg, vars_["p_fr"], vars_["q_fr"], rate)
    th_to = eq.thermal_violation(alg, vars_["p_to"], vars_["q_to"], rate)
    m.thermal_fr = pyo.Constraint(m.LT, rule=lambda m, k: th_fr[k] <= 0)
    m.thermal_to = pyo.Constraint(m.LT, rule=lambda m, k: th_to[k] <= 0)
    lo, hi = eq.limit_values(case, "angle_min"), eq.limit_values(case, "angle_max")
    dva = eq.quantity(alg, case, "dva", {"va": va}, np.arange(nl))
    m.angle_diff = pyo.Constraint(
        m.L, rule=lambda m, k: pyo.inequality(float(lo[k]), dva[k], float(hi[k])),
    )

    # piecewise-linear costs: one cost variable per generator above every segment
    # (MATPOWER's constrained cost variable; exact at the optimum as the cost is convex)
    pwl = sorted(case.cost_pwl)
    m.PWL = pyo.Set(initialize=pwl, ordered=True)
    seg = {g: case.pwl_segments(g) for g in pwl}
    pg0 = start_power(case.pmin, case.pmax)
    m.cg = pyo.Var(m.PWL, initialize=lambda m, g: float(np.max(
        seg[g][0] * pg0[g] + seg[g][1])))
    m.SEG = pyo.Set(initialize=[(g, j) for g in pwl for j in range(seg[g][0].size)],
                    dimen=2, ordered=True)
    m.cg_above = pyo.Constraint(m.SEG, rule=lambda m, g, j: m.cg[g] >= float(seg[g][0][j])
                                * m.pg[g] + float(seg[g][1][j]))

    def cost(m: Any) -> Any:
        total = sum(m.cg[g] for g in pwl) if pwl else 0.0
        for g in range(ng):
            c2, c1, c0 = (float(case.cost_c2[g]), float(case.cost_c1[g]), float(case.cost_c0[g]))
            if c2 != 0:
                total = total + c2 * m.pg[g] ** 2
            if c1 != 0:
                total = total + c1 * m.pg[g]
            total = total + c0
        return total

    m.cost = pyo.Objective(rule=cost, sense=pyo.minimize)
    return m


class ACOPFModel:
    """One case's AC-OPF Pyomo model, built once and re-solved for new loads."""

    def __init__(self, case: CompiledCase, options: SolverOptions | None = None) -> None:
        from gridverify.opf.backends import NlBackend, PyomoBackend

        require_costs(case)
        self.case = case
        self.options = options or SolverOptions()
        self.solver_info: SolverInfo = resolve_solver(self.options)
        self.model = _build_model(case)
        self._set_start(self.flat_start())
        backend = NlBackend if self.solver_info.name == "pounce" else PyomoBackend
        self.backend = backend(self, self.solver_info, self.options)

    def flat_start(self) -> dict[str, np.ndarray]:
        """The default start (the one home of it): PowerModels' flat start, vm = 1
        (clipped to bounds) and pg/qg mid-range (:func:`start_power`), with the
        angles of :func:`shift_angles` (all 0 in a case without phase shifts)."""
        c = self.case
        return {
            "vm": np.clip(np.ones(c.n_bus), c.vmin, c.vmax),
            "va": shift_angles(c),
            "pg": start_power(c.pmin, c.pmax),
            "qg": start_power(c.qmin, c.qmax),
        }

    def _start_values(self, start: dict[str, np.ndarray] | OPFSolution) -> dict[str, np.ndarray]:
        """Start values for every variable family; flows follow from the voltages."""
        get = (lambda k: getattr(start, k)) if isinstance(start, OPFSolution) else start.get
        flat = self.flat_start()
        vals: dict[str, np.ndarray] = {}
        for key in ("vm", "va", "pg", "qg"):
            v = get(key)
            v = flat[key] if v is None else np.asarray(v, dtype=float)
            if v.shape != flat[key].shape or not np.all(np.isfinite(v)):
                v = flat[key]
            vals[key] = v
        flows = branch_flows(self.case, vals["vm"], vals["va"])
        vals.update(p_fr=flows.pf, q_fr=flows.qf, p_to=flows.pt, q_to=flows.qt)
        return vals

    def _set_start(self, start: dict[str, np.ndarray] | OPFSolution) -> None:
        m = self.model
        for fam, v in self._start_values(start).items():
            var = getattr(m, fam)
            for i, x in enumerate(v):
                if not var[i].fixed:
                    var[i].set_value(float(x), skip_validation=True)

    def _loads(
        self, pd: np.ndarray | None, qd: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        c = self.case
        pd = np.asarray(c.pd if pd is None else pd, dtype=float)
        qd = np.asarray(c.qd if qd is None else qd, dtype=float)
        for name, vec in (("pd", pd), ("qd", qd)):
            if vec.shape != (c.n_load,):
                raise GridverifyError(
                    f"{name} has shape {vec.shape}, expected ({c.n_load},) for case {c.name}"
                )
            if not np.all(np.isfinite(vec)):
                raise GridverifyError(f"{name} contains NaN or inf")
        return pd, qd

    def solve(
        self,
        pd: np.ndarray | None = None,
        qd: np.ndarray | None = None,
        warm_start: dict[str, np.ndarray] | OPFSolution | None = None,
    ) -> OPFSolution:
        """Solve for the given loads from ``warm_start`` (default: flat start).

        A warm start that is an :class:`OPFSolution` of this model's backend
        also passes its duals to the solver.
        """
        pd, qd = self._loads(pd, qd)
        start = self._start_values(warm_start if warm_start is not None else self.flat_start())
        warm = warm_start.warm_data if isinstance(warm_start, OPFSolution) else None
        t0 = time.perf_counter()
        raw = self.backend.solve(pd, qd, start, warm)
        elapsed = time.perf_counter() - t0
        return self._solution(raw, pd, qd, elapsed)

    def _solution(
        self, raw: RawResult, pd: np.ndarray, qd: np.ndarray, elapsed: float
    ) -> OPFSolution:
        c = self.case
        values = raw.values
        status = raw.status
        if values is None:
            values = {
                "vm": np.full(c.n_bus, math.nan),
                "va": np.full(c.n_bus, math.nan),
                "pg": np.full(c.n_gen, math.nan),
                "qg": np.full(c.n_gen, math.nan),
                **{k: np.full(c.n_branch, math.nan) for k in ("p_fr", "q_fr", "p_to", "q_to")},
            }
            residual = math.nan
            objective = math.nan
        else:
            pg = values["pg"]
            residual = max_balance_residual(c, values["vm"], values["va"], pg, values["qg"], pd, qd)
            objective = c.generation_cost(pg)
        if status == "acceptable":
            # Ipopt's "solved to acceptable level" (its constraint violation may be up
            # to acceptable_constr_viol_tol): optimal only if physically tight, the
            # balance and every limit (bounds, thermal, angle difference) re-checked.
            tight = residual <= ACCEPTABLE_RESIDUAL and max_limit_violation(
                c, values["vm"], values["va"], values["pg"], values["qg"]
            ) <= ACCEPTABLE_RESIDUAL
            status = "optimal" if tight else "error"
        if status == "optimal" and not math.isfinite(residual):
            status = "error"
        for v in values.values():
            v.setflags(write=False)
        return OPFSolution(
            case=c.name,
            status=status,
            objective=objective,
            pg=values["pg"],
            qg=values["qg"],
            vm=values["vm"],
            va=values["va"],
            pf=values["p_fr"],
            qf=values["q_fr"],
            pt=values["p_to"],
            qt=values["q_to"],
            solve_seconds=elapsed,
            solver=self.solver_info.label,
            max_balance_residual_pu=residual,
            iterations=raw.iterations,
            message=raw.message,
            termination=raw.termination,
            warm_data=raw.warm_data,
        )


def max_balance_residual(
    case: CompiledCase,
    vm: np.ndarray,
    va: np.ndarray,
    pg: np.ndarray,
    qg: np.ndarray,
    pd: np.ndarray,
    qd: np.ndarray,
) -> float:
    """Max |power-balance residual| (p.u.), recomputed by the grid's flow function."""
    res_p, res_q = balance_residuals(case, pg=pg, qg=qg, vm=vm, va=va, pd=pd, qd=qd)
    vals = [np.abs(np.asarray(a, dtype=float)) for a in (res_p, res_q)]
    if any(not np.all(np.isfinite(v)) for v in vals):
        return math.nan
    return float(max(float(v.max()) if v.size else 0.0 for v in vals))


def max_limit_violation(
    case: CompiledCase, vm: np.ndarray, va: np.ndarray, pg: np.ndarray, qg: np.ndarray
) -> float:
    """Largest violation of the OPF's limits at a point, recomputed from (vm, va, pg, qg).

    The value of every limit family of :mod:`gridverify.spec.constraints` (voltage and
    generator bounds in p.u., thermal ``pf^2 + qf^2 - rate_a^2`` at both ends in p.u.^2,
    angle differences in radians) by :func:`gridverify.physics.evaluate.violation_values`,
    the equations the certificates use.  NaN anywhere gives ``inf``; 0 or less is feasible.
    """
    from gridverify.physics.evaluate import violation_values
    from gridverify.spec.constraints import (
        BALANCE_FAMILIES,
        FAMILIES,
        ConstraintSelection,
        select_constraints,
    )

    limits = tuple(f for f in FAMILIES if f not in BALANCE_FAMILIES)
    cons = select_constraints(case, ConstraintSelection(families=limits))
    y = np.concatenate([np.asarray(a, dtype=np.float64).reshape(-1) for a in (pg, qg, vm, va)])
    if not np.all(np.isfinite(y)):
        return math.inf
    if not cons:
        return 0.0
    x = np.concatenate([case.pd, case.qd])  # the limit families do not read the loads
    worst = float(np.max(violation_values(case, cons, x[None], y[None])))
    return max(worst, 0.0) if not math.isnan(worst) else math.inf


def _as_case(case: CompiledCase | str | Path) -> CompiledCase:
    """The compiled case of an OPF (``CaseFormatError`` when it has no generator costs)."""
    if not isinstance(case, CompiledCase):
        from gridverify.grid import load_compiled

        case = load_compiled(case)
    require_costs(case)
    return case


def require_costs(case: CompiledCase) -> None:
    """An OPF minimizes the generation cost: refuse a (power-flow) case without any."""
    if not case.has_costs:
        from gridverify.errors import CaseFormatError

        raise CaseFormatError("no generator costs (mpc.gencost): an OPF needs them (the case "
                              "can still be certified)", source=case.source or case.name,
                              field="gencost")


def solve_opf(
    case: CompiledCase | str | Path,
    pd: np.ndarray | None = None,
    qd: np.ndarray | None = None,
    options: SolverOptions | None = None,
    warm_start: dict[str, np.ndarray] | OPFSolution | None = None,
) -> OPFSolution:
    """Solve the AC-OPF of ``case`` (a CompiledCase, bundled name or path).

    ``pd``/``qd`` are per-load demands in p.u. (compiled load order) replacing
    the nominal ones; ``warm_start`` is a previous solution or a dict with any
    of ``vm, va, pg, qg``.  Raises SolverError when no solver is usable.
    """
    model = ACOPFModel(_as_case(case), options)
    return model.solve(pd, qd, warm_start)


__all__ = [
    "ACOPFModel",
    "OPFSolution",
    "SolverError",
    "STATUSES",
    "angle_limits",
    "max_balance_residual",
    "max_limit_violation",
    "shift_angles",
    "solve_opf",
    "start_power",
]
