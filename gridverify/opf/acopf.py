"""The polar (ACP) AC-OPF, written as PowerModels writes it, in Pyomo.

Variables (per-unit, radians): ``vm`` in ``[vmin, vmax]``, ``va`` (free, the
reference bus fixed at 0), ``pg``/``qg`` in their generator limits, and branch
flows ``p_fr, q_fr, p_to, q_to`` (bounded by ``+-rate_a`` where finite).

Constraints:

* flow definitions from the case's :class:`~gridverify.grid.compiled.FlowTemplate`
  coefficients (series admittance, charging, tap and shift already folded in);
* power balance with shunts at every bus (see ``gridverify.grid.compiled``);
* thermal limits ``p^2 + q^2 <= rate_a^2`` at both ends (skipped where
  ``rate_a`` is infinite, i.e. 0 in the file);
* angle-difference limits ``angmin <= va_f - va_t <= angmax``.  As PowerModels
  does, a limit at or beyond +-90 degrees (or both limits 0) is replaced by
  +-60 degrees;
* generator and voltage bounds.

Objective: ``sum c2 * pg^2 + c1 * pg + c0`` in $/h (pg in p.u.).

The model is built once per case (:class:`ACOPFModel`); loads are mutable
Pyomo parameters, so re-solving for new loads only rewrites the ``.nl`` file.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gridverify.errors import GridverifyError, SolverError
from gridverify.grid.compiled import CompiledCase, FlowTemplate
from gridverify.opf.solvers import SolverInfo, SolverOptions, make_pyomo_solver, resolve_solver

STATUSES = ("optimal", "locally_infeasible", "max_iter", "time_limit", "error")

_ANG_PAD = math.pi / 3  # PowerModels' default angle-difference pad (60 degrees)


@dataclass(frozen=True)
class OPFSolution:
    """Result of one AC-OPF solve (arrays in the compiled case's orders).

    ``status`` is one of ``"optimal"``, ``"locally_infeasible"``, ``"max_iter"``,
    ``"time_limit"``, ``"error"``.  When the solver returned no point the arrays
    are NaN.  ``max_balance_residual_pu`` is recomputed from (vm, va, pg, qg)
    by :func:`gridverify.grid.flows.balance_residuals`, not taken from the solver.
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
    termination: str = field(default="")

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


def angle_limits(case: CompiledCase) -> tuple[np.ndarray, np.ndarray]:
    """Angle-difference limits after PowerModels' correction (see module docstring)."""
    lo = np.array(case.angmin, dtype=float)
    hi = np.array(case.angmax, dtype=float)
    both_zero = (lo == 0) & (hi == 0)
    lo = np.where((lo <= -math.pi / 2) | both_zero, -_ANG_PAD, lo)
    hi = np.where((hi >= math.pi / 2) | both_zero, _ANG_PAD, hi)
    return lo, hi


def _flow_expr(m: Any, t: FlowTemplate, k: int, f: int, to: int) -> Any:
    import pyomo.environ as pyo

    vm_side = m.vm[f] if t.side == "f" else m.vm[to]
    expr = 0
    if t.vv[k] != 0:
        expr = expr + float(t.vv[k]) * vm_side**2
    w = m.vm[f] * m.vm[to]
    if t.c[k] != 0:
        expr = expr + float(t.c[k]) * w * pyo.cos(m.va[f] - m.va[to])
    if t.s[k] != 0:
        expr = expr + float(t.s[k]) * w * pyo.sin(m.va[f] - m.va[to])
    return expr


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

    m.vm = pyo.Var(m.B, bounds=lambda _m, i: (float(case.vmin[i]), float(case.vmax[i])))
    m.va = pyo.Var(m.B)
    m.pg = pyo.Var(m.G, bounds=lambda _m, g: (float(case.pmin[g]), float(case.pmax[g])))
    m.qg = pyo.Var(m.G, bounds=lambda _m, g: (float(case.qmin[g]), float(case.qmax[g])))

    def flow_bounds(_m: Any, k: int) -> tuple[float | None, float | None]:
        rate = float(case.rate_a[k])
        return (-rate, rate) if math.isfinite(rate) else (None, None)

    m.p_fr = pyo.Var(m.L, bounds=flow_bounds)
    m.q_fr = pyo.Var(m.L, bounds=flow_bounds)
    m.p_to = pyo.Var(m.L, bounds=flow_bounds)
    m.q_to = pyo.Var(m.L, bounds=flow_bounds)
    for r in case.ref_bus:
        m.va[int(r)].fix(0.0)

    f_bus = [int(v) for v in case.f_bus]
    t_bus = [int(v) for v in case.t_bus]
    m.def_p_fr = pyo.Constraint(
        m.L, rule=lambda m, k: m.p_fr[k] == _flow_expr(m, case.pf_t, k, f_bus[k], t_bus[k])
    )
    m.def_q_fr = pyo.Constraint(
        m.L, rule=lambda m, k: m.q_fr[k] == _flow_expr(m, case.qf_t, k, f_bus[k], t_bus[k])
    )
    m.def_p_to = pyo.Constraint(
        m.L, rule=lambda m, k: m.p_to[k] == _flow_expr(m, case.pt_t, k, f_bus[k], t_bus[k])
    )
    m.def_q_to = pyo.Constraint(
        m.L, rule=lambda m, k: m.q_to[k] == _flow_expr(m, case.qt_t, k, f_bus[k], t_bus[k])
    )

    gens_at: list[list[int]] = [[] for _ in range(nb)]
    loads_at: list[list[int]] = [[] for _ in range(nb)]
    from_at: list[list[int]] = [[] for _ in range(nb)]
    to_at: list[list[int]] = [[] for _ in range(nb)]
    for g, b in enumerate(case.gen_bus):
        gens_at[int(b)].append(g)
    for d, b in enumerate(case.load_bus):
        loads_at[int(b)].append(d)
    for k in range(nl):
        from_at[f_bus[k]].append(k)
        to_at[t_bus[k]].append(k)

    def bal_p(m: Any, i: int) -> Any:
        lhs = sum(m.pg[g] for g in gens_at[i]) - sum(m.pd[d] for d in loads_at[i])
        if case.gs[i] != 0:
            lhs = lhs - float(case.gs[i]) * m.vm[i] ** 2
        rhs = sum(m.p_fr[k] for k in from_at[i]) + sum(m.p_to[k] for k in to_at[i])
        return lhs - rhs == 0

    def bal_q(m: Any, i: int) -> Any:
        lhs = sum(m.qg[g] for g in gens_at[i]) - sum(m.qd[d] for d in loads_at[i])
        if case.bs[i] != 0:
            lhs = lhs + float(case.bs[i]) * m.vm[i] ** 2
        rhs = sum(m.q_fr[k] for k in from_at[i]) + sum(m.q_to[k] for k in to_at[i])
        return lhs - rhs == 0

    m.bal_p = pyo.Constraint(m.B, rule=bal_p)
    m.bal_q = pyo.Constraint(m.B, rule=bal_q)

    limited = [k for k in range(nl) if math.isfinite(float(case.rate_a[k]))]
    m.LT = pyo.Set(initialize=limited, ordered=True)
    m.thermal_fr = pyo.Constraint(
        m.LT, rule=lambda m, k: m.p_fr[k] ** 2 + m.q_fr[k] ** 2 <= float(case.rate_a[k]) ** 2
    )
    m.thermal_to = pyo.Constraint(
        m.LT, rule=lambda m, k: m.p_to[k] ** 2 + m.q_to[k] ** 2 <= float(case.rate_a[k]) ** 2
    )
    lo, hi = angle_limits(case)
    m.angle_diff = pyo.Constraint(
        m.L,
        rule=lambda m, k: pyo.inequality(
            float(lo[k]), m.va[f_bus[k]] - m.va[t_bus[k]], float(hi[k])
        ),
    )

    def cost(m: Any) -> Any:
        total = 0.0
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


def _status_of(results: Any) -> str:
    from pyomo.opt import TerminationCondition as TC

    tc = results.solver.termination_condition
    if tc in (TC.optimal, TC.locallyOptimal, TC.globallyOptimal):
        return "optimal"
    if tc in (TC.infeasible, TC.locallyInfeasible, TC.globallyInfeasible, TC.infeasibleOrUnbounded):
        return "locally_infeasible"
    if tc == TC.maxIterations:
        return "max_iter"
    if tc in (TC.maxTimeLimit, TC.maxEvaluations):
        return "time_limit"
    return "error"


class ACOPFModel:
    """One case's AC-OPF Pyomo model, built once and re-solved for new loads."""

    def __init__(self, case: CompiledCase, options: SolverOptions | None = None) -> None:
        self.case = case
        self.options = options or SolverOptions()
        self.solver_info: SolverInfo = resolve_solver(self.options)
        self._solver = make_pyomo_solver(self.solver_info)
        self.model = _build_model(case)

    # -- starting points -------------------------------------------------
    def flat_start(self) -> dict[str, np.ndarray]:
        """PowerModels-style flat start: vm = 1 (clipped to bounds), va = 0, pg/qg mid-range."""
        c = self.case
        return {
            "vm": np.clip(np.ones(c.n_bus), c.vmin, c.vmax),
            "va": np.zeros(c.n_bus),
            "pg": 0.5 * (c.pmin + c.pmax),
            "qg": 0.5 * (c.qmin + c.qmax),
        }

    def _set_start(self, start: dict[str, np.ndarray] | OPFSolution) -> None:
        m = self.model
        get = (lambda k: getattr(start, k)) if isinstance(start, OPFSolution) else start.get
        for key, var in (("vm", m.vm), ("va", m.va), ("pg", m.pg), ("qg", m.qg)):
            vals = get(key)
            if vals is None:
                continue
            vals = np.asarray(vals, dtype=float)
            if not np.all(np.isfinite(vals)):
                continue
            for i, v in enumerate(vals):
                if not var[i].fixed:
                    var[i].set_value(float(v), skip_validation=True)
        # Flows: consistent with the voltages (computed from the templates).
        vm = np.array([m.vm[i].value for i in range(self.case.n_bus)], dtype=float)
        va = np.array([m.va[i].value for i in range(self.case.n_bus)], dtype=float)
        flows = branch_flows(self.case, vm, va)
        for name, var in (("pf", m.p_fr), ("qf", m.q_fr), ("pt", m.p_to), ("qt", m.q_to)):
            for k, v in enumerate(flows[name]):
                var[k].set_value(float(v), skip_validation=True)

    def set_loads(self, pd: np.ndarray | None, qd: np.ndarray | None) -> None:
        """Set the per-load demand (p.u., compiled load order); None keeps nominal."""
        c = self.case
        pd = c.pd if pd is None else np.asarray(pd, dtype=float)
        qd = c.qd if qd is None else np.asarray(qd, dtype=float)
        for name, vec in (("pd", pd), ("qd", qd)):
            if vec.shape != (c.n_load,):
                raise GridverifyError(
                    f"{name} has shape {vec.shape}, expected ({c.n_load},) for case {c.name}"
                )
            if not np.all(np.isfinite(vec)):
                raise GridverifyError(f"{name} contains NaN or inf")
        for i in range(c.n_load):
            self.model.pd[i].set_value(float(pd[i]))
            self.model.qd[i].set_value(float(qd[i]))

    def solve(
        self,
        pd: np.ndarray | None = None,
        qd: np.ndarray | None = None,
        warm_start: dict[str, np.ndarray] | OPFSolution | None = None,
    ) -> OPFSolution:
        """Solve for the given loads from ``warm_start`` (default: flat start)."""
        self.set_loads(pd, qd)
        self._set_start(warm_start if warm_start is not None else self.flat_start())
        t0 = time.perf_counter()
        try:
            results = self._solver.solve(
                self.model,
                options=self.options.ipopt_options(),
                tee=self.options.print_level > 0,
                load_solutions=False,
            )
        except (OSError, RuntimeError, ValueError) as exc:
            elapsed = time.perf_counter() - t0
            return self._failed("error", elapsed, f"{type(exc).__name__}: {exc}")
        elapsed = time.perf_counter() - t0
        status = _status_of(results)
        termination = str(results.solver.termination_condition)
        message = str(getattr(results.solver, "message", "") or "")
        if len(results.solution) == 0:
            return self._failed(status, elapsed, message, termination)
        self.model.solutions.load_from(results)
        return self._extract(status, elapsed, message, termination)

    def _failed(
        self, status: str, elapsed: float, message: str, termination: str = ""
    ) -> OPFSolution:
        c = self.case
        nan = np.full
        return OPFSolution(
            case=c.name,
            status="error" if status == "optimal" else status,
            objective=math.nan,
            pg=nan(c.n_gen, math.nan),
            qg=nan(c.n_gen, math.nan),
            vm=nan(c.n_bus, math.nan),
            va=nan(c.n_bus, math.nan),
            pf=nan(c.n_branch, math.nan),
            qf=nan(c.n_branch, math.nan),
            pt=nan(c.n_branch, math.nan),
            qt=nan(c.n_branch, math.nan),
            solve_seconds=elapsed,
            solver=self.solver_info.label,
            max_balance_residual_pu=math.nan,
            message=message,
            termination=termination,
        )

    def _extract(self, status: str, elapsed: float, message: str, termination: str) -> OPFSolution:
        import pyomo.environ as pyo

        m, c = self.model, self.case

        def arr(var: Any, n: int) -> np.ndarray:
            out = np.array([var[i].value for i in range(n)], dtype=float)
            out.setflags(write=False)
            return out

        vm, va = arr(m.vm, c.n_bus), arr(m.va, c.n_bus)
        pg, qg = arr(m.pg, c.n_gen), arr(m.qg, c.n_gen)
        pd = np.array([pyo.value(m.pd[i]) for i in range(c.n_load)])
        qd = np.array([pyo.value(m.qd[i]) for i in range(c.n_load)])
        residual = max_balance_residual(c, vm, va, pg, qg, pd, qd)
        return OPFSolution(
            case=c.name,
            status=status,
            objective=float(pyo.value(m.cost)),
            pg=pg,
            qg=qg,
            vm=vm,
            va=va,
            pf=arr(m.p_fr, c.n_branch),
            qf=arr(m.q_fr, c.n_branch),
            pt=arr(m.p_to, c.n_branch),
            qt=arr(m.q_to, c.n_branch),
            solve_seconds=elapsed,
            solver=self.solver_info.label,
            max_balance_residual_pu=residual,
            message=message,
            termination=termination,
        )


def branch_flows(case: CompiledCase, vm: np.ndarray, va: np.ndarray) -> dict[str, np.ndarray]:
    """Branch flows (pf, qf, pt, qt) from the case's flow templates (numpy)."""
    f, t = case.f_bus, case.t_bus
    w = vm[f] * vm[t]
    cos_ft, sin_ft = np.cos(va[f] - va[t]), np.sin(va[f] - va[t])
    out = {}
    for name, tmpl in (("pf", case.pf_t), ("qf", case.qf_t), ("pt", case.pt_t), ("qt", case.qt_t)):
        vside = vm[f] if tmpl.side == "f" else vm[t]
        out[name] = tmpl.vv * vside**2 + tmpl.c * w * cos_ft + tmpl.s * w * sin_ft
    return out


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
    from gridverify.grid.flows import balance_residuals

    res = balance_residuals(case, vm, va, pg, qg, pd, qd)
    arrays = res if isinstance(res, tuple | list) else (res,)
    vals = [np.abs(np.asarray(a, dtype=float)) for a in arrays]
    if any(not np.all(np.isfinite(v)) for v in vals):
        return math.nan
    return float(max(float(v.max()) if v.size else 0.0 for v in vals))


def _as_case(case: CompiledCase | str | Path) -> CompiledCase:
    if isinstance(case, CompiledCase):
        return case
    from gridverify.grid import load_compiled

    return load_compiled(case)


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
    "branch_flows",
    "max_balance_residual",
    "solve_opf",
]
