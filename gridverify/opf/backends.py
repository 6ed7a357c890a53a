"""How an :class:`~gridverify.opf.acopf.ACOPFModel` is handed to a solver.

Two backends, chosen by the resolved solver route (see :mod:`.solvers`):

``NlBackend`` (route ``pounce``, the default)
    Pyomo writes the model's AMPL ``.nl`` text once per case (linear presolve
    and scaling off, so rows and columns are exactly the model's); POUNCE parses
    it in-process (``pounce.parse_nl_text``) into a native evaluator.  The loads
    enter only the constant bounds of the power-balance rows, so each re-solve
    is a ``variant`` of that evaluator with new row bounds and a new start point;
    no file is written.  A warm start from a previous solution of this backend
    also seeds the duals and barrier parameter.
``PyomoBackend`` (routes ``ipopt`` and ``pounce-cli``)
    Pyomo's ordinary ``SolverFactory`` path: the ``.nl`` file is rewritten and
    an executable run for every solve.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from gridverify.errors import SolverError
from gridverify.opf.solvers import SolverInfo, SolverOptions, import_pounce, make_pyomo_solver

#: Ipopt's ApplicationReturnStatus (POUNCE ports the same twenty exits), code -> name.
#: The ``termination`` of every route is one of these names (what in-process POUNCE
#: reports as ``status_msg``), ``"exception"`` when the solver raised, or
#: ``"unknown"`` when a route's output names none of them.
IPOPT_RETURN_STATUS: dict[int, str] = {
    0: "Solve_Succeeded",
    1: "Solved_To_Acceptable_Level",
    2: "Infeasible_Problem_Detected",
    3: "Search_Direction_Becomes_Too_Small",
    4: "Diverging_Iterates",
    5: "User_Requested_Stop",
    6: "Feasible_Point_Found",
    -1: "Maximum_Iterations_Exceeded",
    -2: "Restoration_Failed",
    -3: "Error_In_Step_Computation",
    -4: "Maximum_CpuTime_Exceeded",
    -5: "Maximum_WallTime_Exceeded",
    -10: "Not_Enough_Degrees_Of_Freedom",
    -11: "Invalid_Problem_Definition",
    -12: "Invalid_Option",
    -13: "Invalid_Number_Detected",
    -100: "Unrecoverable_Exception",
    -101: "NonIpopt_Exception_Thrown",
    -102: "Insufficient_Memory",
    -199: "Internal_Error",
}
_RETURN_CODE = {name: code for code, name in IPOPT_RETURN_STATUS.items()}
#: Ipopt return code -> gridverify status ("acceptable" is settled by the caller);
#: every other code is "error"
_IPOPT_STATUS = {
    0: "optimal",
    1: "acceptable",
    2: "locally_infeasible",
    -1: "max_iter",
    -4: "time_limit",
    -5: "time_limit",
}
#: the messages of Ipopt's AMPL interface (``.sol``) and of its log's ``EXIT:`` line
#: that do not spell their return status (compared letters and digits only)
_IPOPT_SOL_MESSAGES = {
    "Optimal Solution Found": "Solve_Succeeded",
    "Converged to a locally infeasible point. Problem may be infeasible.":
        "Infeasible_Problem_Detected",
    "Converged to a point of local infeasibility. Problem may be infeasible.":
        "Infeasible_Problem_Detected",
    "Maximum Number of Iterations Exceeded.": "Maximum_Iterations_Exceeded",
    "Maximum CPU Time Exceeded.": "Maximum_CpuTime_Exceeded",
    "Maximum Wallclock Time Exceeded.": "Maximum_WallTime_Exceeded",
    "Search Direction is becoming Too Small.": "Search_Direction_Becomes_Too_Small",
    "Iterates diverging; problem might be unbounded.": "Diverging_Iterates",
    "Restoration Phase Failed.": "Restoration_Failed",
    "Restoration Failed!": "Restoration_Failed",
    "Found feasible point for square problem.": "Feasible_Point_Found",
    "Feasible point for square problem found.": "Feasible_Point_Found",
    "Stopping optimization at current point as requested by user.": "User_Requested_Stop",
    "Error in step computation (regularization becomes too large?)!":
        "Error_In_Step_Computation",
    "Invalid number in NLP function or derivative detected.": "Invalid_Number_Detected",
    "Problem has too few degrees of freedom.": "Not_Enough_Degrees_Of_Freedom",
    "Not enough memory.": "Insufficient_Memory",
}


def _squash(text: str) -> str:
    """Lower-case letters and digits only: ``SolveSucceeded`` ~ ``Solve_Succeeded``."""
    return "".join(ch for ch in text.lower() if ch.isalnum())


_BY_SQUASHED = {_squash(name): name for name in (*IPOPT_RETURN_STATUS.values(),
                                                 *_IPOPT_SOL_MESSAGES)}


def decode_sol_message(message: str) -> str:
    """A solver message as Pyomo's ``.sol`` reader stores it, its escaped colons
    (``\\x3a``, kept out of Pyomo's YAML results) decoded."""
    return message.replace("\\x3a", ":")


def termination_from_output(message: str, log: str) -> str:
    """The Ipopt return-status name a ``.sol`` route's output states: the log's
    ``Status: NAME`` line (a print level above 0), else the ``.sol`` message after
    ``"SOLVER VERSION: "`` (POUNCE writes the name in CamelCase, Ipopt one of
    :data:`_IPOPT_SOL_MESSAGES`); ``"unknown"`` when neither names one."""
    for line in reversed(log.splitlines()):
        key, _, value = line.strip().partition(":")
        if key == "Status" and value.strip() in _RETURN_CODE:
            return value.strip()
        if key == "EXIT" and _squash(value) in _BY_SQUASHED:  # Ipopt's own log
            return _named(value)
    return _named(message.split(": ", 1)[-1])


def _named(text: str) -> str:
    """The return-status name ``text`` spells or states, else ``"unknown"``."""
    name = _BY_SQUASHED.get(_squash(text.strip()), "unknown")
    return _IPOPT_SOL_MESSAGES.get(name, name)


def iterations_from_log(log: str) -> int | None:
    """The iteration count of an Ipopt-style log (``Number of Iterations....: 22``,
    printed at a print level above 0), or None when the log has none."""
    for line in reversed(log.splitlines()):
        key, _, value = line.partition(":")
        if key.startswith("Number of Iterations") and value.strip().isdigit():
            return int(value.strip())
    return None

VAR_FAMILIES = ("vm", "va", "pg", "qg", "p_fr", "q_fr", "p_to", "q_to")


@dataclass(frozen=True)
class RawResult:
    """What a backend returns: status, termination text and variable values."""

    status: str
    termination: str
    message: str
    values: dict[str, np.ndarray] | None  # family -> values (index order)
    iterations: int | None = None
    warm_data: Any = None


@contextlib.contextmanager
def solver_output_to_stderr(enabled: bool = True) -> Iterator[None]:
    """Send what a solver prints (its log, ``print_level`` > 0) to stderr, not stdout.

    stdout carries a command's results (``--json`` output is valid JSON alone on
    stdout), so the log goes to stderr: Python's ``sys.stdout`` (Pyomo's ``tee``)
    and file descriptor 1 (POUNCE in-process and any native code write there) both
    point at stderr inside the block.  A no-op when ``enabled`` is false.
    """
    if not enabled:
        yield
        return
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    saved = None
    try:
        saved = os.dup(1)
        os.dup2(2, 1)
    except OSError:  # no usable descriptor 1 or 2: only Python's stream is redirected
        if saved is not None:
            os.close(saved)
        saved = None
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        if saved is not None:
            os.dup2(saved, 1)
            os.close(saved)


class NlBackend:
    """In-process POUNCE on a parsed ``.nl`` evaluator (see module docstring)."""

    def __init__(self, model: Any, info: SolverInfo, options: SolverOptions) -> None:
        from pyomo.repn.plugins.nl_writer import NLWriter

        pounce = import_pounce()

        self.info = info
        self.options = options
        m = model.model
        writer = NLWriter()
        buf = io.StringIO()
        cfg = writer.config(
            {"linear_presolve": False, "scale_model": False, "skip_trivial_constraints": False}
        )
        nl_info = writer.write(m, buf, config=cfg)
        if nl_info.eliminated_vars:
            raise SolverError("internal: the .nl writer eliminated variables")
        self.problem = pounce.parse_nl_text(buf.getvalue())
        col = {id(v): k for k, v in enumerate(nl_info.variables)}
        row = {id(c): k for k, c in enumerate(nl_info.constraints)}
        self.n = len(nl_info.variables)
        # column of each variable family member (-1: fixed, not in the .nl)
        self.cols: dict[str, np.ndarray] = {}
        self.fixed: dict[str, np.ndarray] = {}
        for fam in VAR_FAMILIES:
            var = getattr(m, fam)
            idx = np.array([col.get(id(var[i]), -1) for i in sorted(var.keys())], dtype=np.int64)
            self.cols[fam] = idx
            self.fixed[fam] = np.array(
                [float(var[i].value or 0.0) if idx[k] < 0 else 0.0
                 for k, i in enumerate(sorted(var.keys()))]
            )
        case = model.case
        nb = case.n_bus
        # Balance rows of buses that have one (an isolated bus without load,
        # generation or shunt has none).
        self.bus_p = np.array([i for i in range(nb) if i in m.bal_p], dtype=np.int64)
        self.bus_q = np.array([i for i in range(nb) if i in m.bal_q], dtype=np.int64)
        self.rows_p = np.array([row[id(m.bal_p[i])] for i in self.bus_p], dtype=np.int64)
        self.rows_q = np.array([row[id(m.bal_q[i])] for i in self.bus_q], dtype=np.int64)
        g_l = np.asarray(self.problem.g_l, dtype=float).copy()
        g_u = np.asarray(self.problem.g_u, dtype=float).copy()
        # Balance rows are "expr == sum(loads at bus)": the writer moves the load
        # constant into the row bounds.  Recover the load-free offset and check.
        pd_bus = (case.cl.T @ np.asarray(case.pd, dtype=float))[self.bus_p]
        qd_bus = (case.cl.T @ np.asarray(case.qd, dtype=float))[self.bus_q]
        self.off_p = g_l[self.rows_p] - pd_bus
        self.off_q = g_l[self.rows_q] - qd_bus
        ok = (
            np.allclose(g_l[self.rows_p], g_u[self.rows_p], rtol=0, atol=0)
            and np.allclose(g_l[self.rows_q], g_u[self.rows_q], rtol=0, atol=0)
            and np.all(np.abs(self.off_p) < 1e-12)
            and np.all(np.abs(self.off_q) < 1e-12)
        )
        if not ok:
            raise SolverError("internal: unexpected layout of the power-balance rows in .nl")
        self.g_l, self.g_u = g_l, g_u
        self.load_map = case.cl.T.tocsr()

    def pack(self, values: dict[str, np.ndarray]) -> np.ndarray:
        """A start vector in .nl column order from per-family values."""
        x = np.asarray(self.problem.x0, dtype=float).copy()
        for fam, idx in self.cols.items():
            vals = values.get(fam)
            if vals is None:
                continue
            mask = idx >= 0
            x[idx[mask]] = np.asarray(vals, dtype=float)[mask]
        return x

    def unpack(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """Per-family values from an .nl column-order vector."""
        out = {}
        for fam, idx in self.cols.items():
            vals = self.fixed[fam].copy()
            mask = idx >= 0
            vals[mask] = x[idx[mask]]
            out[fam] = vals
        return out

    def solve(
        self, pd: np.ndarray, qd: np.ndarray, start: dict[str, np.ndarray], warm: Any
    ) -> RawResult:
        """Solve with loads (pd, qd) from ``start`` (and duals from ``warm`` if given)."""
        pounce = import_pounce()

        g_l, g_u = self.g_l.copy(), self.g_u.copy()
        bp = (self.load_map @ pd)[self.bus_p] + self.off_p
        bq = (self.load_map @ qd)[self.bus_q] + self.off_q
        g_l[self.rows_p] = bp
        g_u[self.rows_p] = bp
        g_l[self.rows_q] = bq
        g_u[self.rows_q] = bq
        x0 = self.pack(start)
        prob = self.problem.variant(x0=x0, g_l=g_l, g_u=g_u)
        opts = self.options.ipopt_options()
        try:
            with solver_output_to_stderr(self.options.print_level > 0):
                if warm is not None and len(warm[0]) == self.n:
                    [(x, info)] = pounce.solve_nlp_batch(
                        [prob], options=opts, parallel=False, warms=[warm]
                    )
                else:
                    [(x, info)] = pounce.solve_nlp_batch([prob], options=opts, parallel=False)
        except (RuntimeError, ValueError) as exc:
            return RawResult("error", "exception", f"{type(exc).__name__}: {exc}", None)
        code = int(info.get("status", -100))
        status = _IPOPT_STATUS.get(code, "error")
        x = np.asarray(x, dtype=float)
        values = self.unpack(x) if np.all(np.isfinite(x)) else None
        keep = {k: info[k] for k in ("mult_g", "mult_x_L", "mult_x_U", "mu") if k in info}
        return RawResult(
            status=status,
            termination=IPOPT_RETURN_STATUS.get(code, "unknown"),
            message=str(info.get("status_msg", "")),
            values=values,
            iterations=int(info.get("iter_count", 0)),
            warm_data=(x, keep) if status in ("optimal", "acceptable") else None,
        )


class PyomoBackend:
    """Pyomo's SolverFactory path: rewrite the .nl and run an executable per solve."""

    def __init__(self, model: Any, info: SolverInfo, options: SolverOptions) -> None:
        self.acopf = model
        self.info = info
        self.options = options
        self.solver = make_pyomo_solver(info)

    def solve(
        self, pd: np.ndarray, qd: np.ndarray, start: dict[str, np.ndarray], warm: Any
    ) -> RawResult:
        """Set loads and start values on the Pyomo model and run the executable."""
        m = self.acopf.model
        for i in range(len(pd)):
            m.pd[i].set_value(float(pd[i]))
            m.qd[i].set_value(float(qd[i]))
        for fam in VAR_FAMILIES:
            vals = start.get(fam)
            if vals is None:
                continue
            var = getattr(m, fam)
            for i, v in enumerate(vals):
                if not var[i].fixed:
                    var[i].set_value(float(v), skip_validation=True)
        tee = self.options.print_level > 0
        try:
            with solver_output_to_stderr(tee):
                results = self.solver.solve(
                    m, options=self.options.ipopt_options(), tee=tee, load_solutions=False
                )
        except (OSError, RuntimeError, ValueError) as exc:
            return RawResult("error", "exception", f"{type(exc).__name__}: {exc}", None)
        message = decode_sol_message(str(getattr(results.solver, "message", "") or ""))
        log = str(getattr(self.solver, "_log", "") or "")  # Pyomo keeps the run's output
        termination = termination_from_output(message, log)
        if termination in _RETURN_CODE:
            status = _IPOPT_STATUS.get(_RETURN_CODE[termination], "error")
        else:
            status = _status_of_condition(results.solver.termination_condition)
        iterations = iterations_from_log(log)
        if len(results.solution) == 0:
            return RawResult(status, termination, message, None, iterations)
        m.solutions.load_from(results)
        values = {}
        for fam in VAR_FAMILIES:
            var = getattr(m, fam)
            values[fam] = np.array(
                [math.nan if var[i].value is None else float(var[i].value)
                 for i in sorted(var.keys())]
            )
        return RawResult(status, termination, message, values, iterations)


def _status_of_condition(tc: Any) -> str:
    """The gridverify status of a Pyomo termination condition: the fallback of a
    ``.sol`` route whose output names no Ipopt return status."""
    from pyomo.opt import TerminationCondition as TC

    if tc in (TC.optimal, TC.locallyOptimal, TC.globallyOptimal):
        return "optimal"
    if tc in (TC.infeasible, TC.infeasibleOrUnbounded):
        return "locally_infeasible"
    if tc == TC.maxIterations:
        return "max_iter"
    if tc in (TC.maxTimeLimit, TC.maxEvaluations):
        return "time_limit"
    return "error"
