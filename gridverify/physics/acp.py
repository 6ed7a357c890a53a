"""The AC-OPF constraints written as a gridverify graph (ACP: polar voltages).

:func:`build_physics_graph` makes a graph with inputs ``load`` (``2L``:
``[pd, qd]``) and ``proxy_out`` (``2G + 2N``: ``[pg, qg, vm, va]``) and one output
``violation``: one row per (constraint, sign).  Every constraint's violation
value is the maximum of its rows; balance constraints have two rows
(``+residual`` and ``-residual``) so that the bound of ``|residual|`` is the
larger of the two row bounds, every other constraint has one row.

Encoding (chosen to keep relaxations tight):

* base quantities ``vm2 = square(vm)`` per bus, ``w = vm_f * vm_t``,
  ``d = va_f - va_t`` (one sparse linear op), ``wc = w * cos(d)``,
  ``ws = w * sin(d)`` per branch;
* every quantity that is linear in ``u = [proxy_out, load, vm2, wc, ws]``
  (balance residuals, voltage, generator and angle limits) is **one**
  ``sparse_linear`` of ``u`` (no intermediate flow nodes, so interval
  arithmetic sees each residual as a single sum);
* thermal rows are ``square(pf) + square(qf) - rate**2`` with ``pf, qf`` one
  ``sparse_linear`` of ``u``.

No dense ``n_bus x n_branch`` matrix is formed.  :func:`compose_with_proxy`
joins the physics graph with a proxy graph into one graph from loads to
violations.  Definitions and units: ``docs/physics.md``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from gridverify.errors import GraphError
from gridverify.ir.builder import GraphBuilder, compose
from gridverify.ir.graph import Graph
from gridverify.physics.templates import BranchTemplates, branch_templates
from gridverify.spec.constraints import Constraint

LOAD_INPUT = "load"
PROXY_INPUT = "proxy_out"
VIOLATION_OUTPUT = "violation"


@dataclass(frozen=True)
class PhysicsGraph:
    """A physics graph and the meaning of its ``violation`` rows.

    ``row_constraint[r]`` is the position in ``constraints`` of row ``r``;
    ``row_sign[r]`` is +1, or -1 for the negated balance residual row.
    """

    graph: Graph
    constraints: tuple[Constraint, ...]
    row_constraint: np.ndarray
    row_sign: np.ndarray

    @property
    def n_rows(self) -> int:
        """Number of violation rows."""
        return int(self.row_constraint.shape[0])

    def reduce(self, rows: np.ndarray) -> np.ndarray:
        """Per-constraint values (max over each constraint's rows) from ``(..., n_rows)``."""
        rows = np.asarray(rows, dtype=np.float64)
        out = np.full(rows.shape[:-1] + (len(self.constraints),), -np.inf)
        for r in range(self.n_rows):
            k = self.row_constraint[r]
            out[..., k] = np.maximum(out[..., k], rows[..., r])
        return out


class _Lin:
    """Accumulates a sparse linear map ``out = A u + bias``."""

    def __init__(self) -> None:
        self.rows: list[np.ndarray] = []
        self.cols: list[np.ndarray] = []
        self.vals: list[np.ndarray] = []
        self.bias: list[float] = []

    def new_rows(self, n: int, bias: np.ndarray | float = 0.0) -> np.ndarray:
        start = len(self.bias)
        self.bias.extend(np.broadcast_to(np.asarray(bias, dtype=np.float64), (n,)).tolist())
        return np.arange(start, start + n)

    def add(self, rows: np.ndarray, cols: np.ndarray, vals: np.ndarray | float) -> None:
        r, c, v = np.broadcast_arrays(
            np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64),
            np.asarray(vals, dtype=np.float64),
        )
        self.rows.append(r.reshape(-1).copy())
        self.cols.append(c.reshape(-1).copy())
        self.vals.append(v.reshape(-1).copy())

    def emit(self, b: GraphBuilder, u: int, name: str) -> int:
        import scipy.sparse as sp

        n_out = len(self.bias)
        if self.rows:
            r = np.concatenate(self.rows)
            c = np.concatenate(self.cols)
            v = np.concatenate(self.vals)
        else:
            r = c = np.zeros(0, dtype=np.int64)
            v = np.zeros(0)
        m = sp.coo_matrix((v, (r, c)), shape=(n_out, b.size(u))).tocsr()
        m.eliminate_zeros()
        m = m.tocoo()
        return b.sparse_linear(
            u, m.row.astype(np.int64), m.col.astype(np.int64), m.data, n_out,
            bias=np.asarray(self.bias), name=name,
        )


class _Layout:
    """Column offsets of the base vector ``u``."""

    def __init__(self, n_gen: int, n_bus: int, n_load: int, n_branch: int, flows: bool) -> None:
        self.pg = 0
        self.qg = n_gen
        self.vm = 2 * n_gen
        self.va = 2 * n_gen + n_bus
        self.pd = 2 * n_gen + 2 * n_bus
        self.qd = self.pd + n_load
        end = self.qd + n_load
        self.vm2 = end
        self.wc = end + n_bus
        self.ws = self.wc + n_branch
        self.size = self.ws + n_branch if flows else end


def _add_flow(lin: _Lin, rows: np.ndarray, lay: _Layout, tpl: BranchTemplates, k: int,
              branches: np.ndarray, coef: float) -> None:
    """Add ``coef * flow_k[branches]`` to ``rows`` (one row per branch)."""
    lin.add(rows, lay.vm2 + tpl.vv_bus[k, branches], coef * tpl.vv[k, branches])
    lin.add(rows, lay.wc + branches, coef * tpl.c[k, branches])
    lin.add(rows, lay.ws + branches, coef * tpl.s[k, branches])


def _add_balance(lin: _Lin, rows: np.ndarray, case: Any, lay: _Layout, tpl: BranchTemplates,
                 reactive: bool, sign: float) -> None:
    """Add ``sign * residual`` of every bus (rows indexed by bus) to ``rows``."""
    gen_bus = np.asarray(case.gen_bus, dtype=np.int64)
    load_bus = np.asarray(case.load_bus, dtype=np.int64)
    n_gen, n_load = gen_bus.size, load_bus.size
    g_col = (lay.qg if reactive else lay.pg) + np.arange(n_gen)
    d_col = (lay.qd if reactive else lay.pd) + np.arange(n_load)
    lin.add(rows[gen_bus], g_col, sign)
    lin.add(rows[load_bus], d_col, -sign)
    n_bus = rows.shape[0]
    shunt = np.asarray(case.bs if reactive else case.gs, dtype=np.float64)
    lin.add(rows, lay.vm2 + np.arange(n_bus), sign * (shunt if reactive else -shunt))
    e = np.arange(tpl.n_branch)
    kf, kt = (1, 3) if reactive else (0, 2)
    lin.add(rows[tpl.f_bus], lay.vm2 + tpl.vv_bus[kf], -sign * tpl.vv[kf])
    lin.add(rows[tpl.f_bus], lay.wc + e, -sign * tpl.c[kf])
    lin.add(rows[tpl.f_bus], lay.ws + e, -sign * tpl.s[kf])
    lin.add(rows[tpl.t_bus], lay.vm2 + tpl.vv_bus[kt], -sign * tpl.vv[kt])
    lin.add(rows[tpl.t_bus], lay.wc + e, -sign * tpl.c[kt])
    lin.add(rows[tpl.t_bus], lay.ws + e, -sign * tpl.s[kt])


def build_physics_graph(
    case: Any, constraints: Sequence[Constraint], *, expose_flows: bool = False
) -> PhysicsGraph:
    """Physics graph of the given constraints (see module docstring).

    With ``expose_flows`` the graph has two more outputs, ``flows`` (``4E``:
    pf, qf, pt, qt of every branch) and ``residuals`` (``2N``: P then Q balance
    residual of every bus), for cross-checks against the grid flow equations.
    """
    constraints = tuple(constraints)
    if not constraints and not expose_flows:
        raise GraphError("physics graph: no constraints selected")
    tpl = branch_templates(case)
    n_gen, n_bus, n_load, n_br = case.n_gen, case.n_bus, case.n_load, case.n_branch
    fams = {c.family for c in constraints}
    need_flows = expose_flows or bool(
        fams & {"p_balance", "q_balance", "thermal_fr", "thermal_to"}
    )
    lay = _Layout(n_gen, n_bus, n_load, n_br, need_flows)

    b = GraphBuilder()
    x = b.input(LOAD_INPUT, 2 * n_load)
    y = b.input(PROXY_INPUT, 2 * n_gen + 2 * n_bus)
    parts = [y, x]
    if need_flows:
        vm = b.slice(y, lay.vm, lay.vm + n_bus, name="vm")
        va = b.slice(y, lay.va, lay.va + n_bus, name="va")
        vm2 = b.square(vm, name="vm2")
        w = b.mul(b.gather(vm, tpl.f_bus), b.gather(vm, tpl.t_bus), name="w_ft")
        e = np.arange(n_br)
        d = b.sparse_linear(
            va, np.concatenate([e, e]), np.concatenate([tpl.f_bus, tpl.t_bus]),
            np.concatenate([np.ones(n_br), -np.ones(n_br)]), n_br, name="dva",
        )
        wc = b.mul(w, b.cos(d), name="w_cos")
        ws = b.mul(w, b.sin(d), name="w_sin")
        parts += [vm2, wc, ws]
    u = b.concat(parts, name="u")

    # ---- rows linear in u
    lin = _Lin()
    lin_rows: list[tuple[int, int, int]] = []  # (lin row, constraint position, sign)
    vmin, vmax = np.asarray(case.vmin, float), np.asarray(case.vmax, float)
    limits = {
        "pg_max": (lay.pg, np.asarray(case.pmax, float), 1.0),
        "pg_min": (lay.pg, np.asarray(case.pmin, float), -1.0),
        "qg_max": (lay.qg, np.asarray(case.qmax, float), 1.0),
        "qg_min": (lay.qg, np.asarray(case.qmin, float), -1.0),
        "vm_max": (lay.vm, vmax, 1.0),
        "vm_min": (lay.vm, vmin, -1.0),
    }
    bal_rows: dict[tuple[bool, float], np.ndarray] = {}
    thermal: list[tuple[int, int]] = []  # (constraint position, branch index, side)
    thermal_side: list[int] = []
    for pos, c in enumerate(constraints):
        fam, i = c.family, c.index
        if fam in limits:
            off, lim, sgn = limits[fam]
            # sgn * (q - lim): q - max for *_max, min - q for *_min
            r = lin.new_rows(1, -sgn * lim[i])
            lin.add(r, [off + i], sgn)
            lin_rows.append((int(r[0]), pos, 1))
        elif fam in ("angle_max", "angle_min"):
            sgn = 1.0 if fam == "angle_max" else -1.0
            lim = float((case.angmax if fam == "angle_max" else case.angmin)[i])
            r = lin.new_rows(1, -sgn * lim)
            lin.add(r, [lay.va + tpl.f_bus[i], lay.va + tpl.t_bus[i]], [sgn, -sgn])
            lin_rows.append((int(r[0]), pos, 1))
        elif fam in ("p_balance", "q_balance"):
            reactive = fam == "q_balance"
            for sgn in (1.0, -1.0):
                key = (reactive, sgn)
                if key not in bal_rows:
                    bal_rows[key] = lin.new_rows(n_bus)
                    _add_balance(lin, bal_rows[key], case, lay, tpl, reactive, sgn)
                lin_rows.append((int(bal_rows[key][i]), pos, int(sgn)))
        elif fam in ("thermal_fr", "thermal_to"):
            thermal.append((pos, i))
            thermal_side.append(0 if fam == "thermal_fr" else 1)
        else:  # pragma: no cover - guarded by ConstraintSelection
            raise GraphError(f"physics graph: unknown family {fam!r}")
    expose_rows = None
    if expose_flows:
        expose_rows = lin.new_rows(4 * n_br)
        for k in range(4):
            _add_flow(lin, expose_rows[k * n_br:(k + 1) * n_br], lay, tpl, k, np.arange(n_br), 1.0)
        res_rows = lin.new_rows(2 * n_bus)
        _add_balance(lin, res_rows[:n_bus], case, lay, tpl, False, 1.0)
        _add_balance(lin, res_rows[n_bus:], case, lay, tpl, True, 1.0)

    blocks: list[int] = []
    row_constraint: list[int] = []
    row_sign: list[int] = []
    n_lin_used = len(lin_rows)
    lin_node = lin.emit(b, u, "linear_rows") if lin.bias else None
    if lin_rows:
        assert lin_node is not None
        blocks.append(b.gather(lin_node, np.array([r for r, _, _ in lin_rows], dtype=np.int64)))
        row_constraint += [p for _, p, _ in lin_rows]
        row_sign += [s for _, _, s in lin_rows]

    # ---- thermal rows: square(p) + square(q) - rate^2
    if thermal:
        tl = _Lin()
        n_t = len(thermal)
        pq = tl.new_rows(2 * n_t)
        for j, ((_pos, i), side) in enumerate(zip(thermal, thermal_side)):
            kp, kq = (0, 1) if side == 0 else (2, 3)
            br = np.array([i])
            _add_flow(tl, pq[j:j + 1], lay, tpl, kp, br, 1.0)
            _add_flow(tl, pq[n_t + j:n_t + j + 1], lay, tpl, kq, br, 1.0)
        flows = tl.emit(b, u, "thermal_flows")
        sq = b.square(flows, name="thermal_sq")
        rate = np.asarray(case.rate_a, dtype=np.float64)[[i for _, i in thermal]]
        jj = np.arange(n_t)
        th = b.sparse_linear(
            sq, np.concatenate([jj, jj]), np.concatenate([jj, jj + n_t]), np.ones(2 * n_t),
            n_t, bias=-(rate**2), name="thermal",
        )
        blocks.append(th)
        row_constraint += [p for p, _ in thermal]
        row_sign += [1] * n_t

    if blocks:
        out = b.concat(blocks, name=VIOLATION_OUTPUT) if len(blocks) > 1 else blocks[0]
        b.output(out, VIOLATION_OUTPUT)
    if expose_flows:
        assert lin_node is not None and expose_rows is not None
        start = int(expose_rows[0])
        b.output(b.slice(lin_node, start, start + 4 * n_br), "flows")
        b.output(b.slice(lin_node, start + 4 * n_br, start + 4 * n_br + 2 * n_bus), "residuals")
    del n_lin_used
    return PhysicsGraph(
        b.build(), constraints, np.asarray(row_constraint, dtype=np.int64),
        np.asarray(row_sign, dtype=np.int64),
    )


def compose_with_proxy(physics: PhysicsGraph, proxy_graph: Graph) -> Graph:
    """One graph from the proxy's input (the loads) to the ``violation`` rows.

    ``proxy_graph`` has one input (the ``2L`` loads) and its first output is the
    ``2G + 2N`` proxy output.
    """
    if len(proxy_graph.inputs) != 1:
        raise GraphError(
            f"proxy graph must have exactly one input (the loads), has {len(proxy_graph.inputs)}"
        )
    in_id = proxy_graph.inputs[0]
    n_in = proxy_graph.nodes[in_id].size
    load_size = physics.graph.nodes[physics.graph.inputs[0]].size
    if n_in != load_size:
        raise GraphError(f"proxy graph takes {n_in} inputs, the case has {load_size} load inputs")
    b = GraphBuilder(proxy_graph)
    b.output(proxy_graph.outputs[0], "proxy_out")
    b.output(in_id, "loads")
    inner = b.build()
    return compose(physics.graph, inner, {PROXY_INPUT: "proxy_out", LOAD_INPUT: "loads"})
