"""The AC-OPF constraints written as a gridverify graph (ACP: polar voltages).

:func:`build_physics_graph` makes a graph with inputs ``load`` (``2L``:
``[pd, qd]``) and ``proxy_out`` (``2G + 2N``: ``[pg, qg, vm, va]``) and one output
``violation``: one row per (constraint, sign).  Every constraint's violation
value is the maximum of its rows; balance constraints have two rows
(``+residual`` and ``-residual``) so that the bound of ``|residual|`` is the
larger of the two row bounds, every other constraint has one row.

The equations are those of :mod:`gridverify.physics.equations`; this module is
their graph formulation (chosen to keep relaxations tight):

* the nonlinear base terms (``equations.base_terms`` on graph nodes):
  ``vm2 = square(vm)`` per bus, ``w = vm_f * vm_t``, ``d = va_f - va_t`` (one
  sparse linear op), ``wc = w * cos(d)``, ``ws = w * sin(d)`` per branch;
* every quantity that is linear in ``u = [proxy_out, load, vm2, wc, ws]``
  (balance residuals, voltage, generator and angle limits) is written by the
  same equations on affine rows of ``u`` and emitted as **one**
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
from gridverify.physics import equations as eq
from gridverify.spec.constraints import BALANCE_FAMILIES, THERMAL_FAMILIES, Constraint

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


class _Rows:
    """A vector of affine forms over the base vector ``u`` (the graph's linear backend).

    Entries ``(row, col, val)`` are kept unsummed (the sparse matrix sums them
    once, when emitted); ``bias`` has one value per row, or is ``None`` for no
    constant term (so that a constant added later is kept bit for bit).
    """

    __array_ufunc__ = None  # numpy scalars and arrays defer to the operators below

    def __init__(self, n: int, row: np.ndarray, col: np.ndarray, val: np.ndarray,
                 bias: np.ndarray | None = None) -> None:
        self.n = n
        self.row = np.asarray(row, dtype=np.int64)
        self.col = np.asarray(col, dtype=np.int64)
        self.val = np.asarray(val, dtype=np.float64)
        self.bias = None if bias is None else np.asarray(bias, dtype=np.float64)

    @classmethod
    def identity(cls, start: int, n: int) -> _Rows:
        """``u[start:start + n]``."""
        return cls(n, np.arange(n), start + np.arange(n), np.ones(n))

    def __add__(self, other: Any) -> _Rows:
        if isinstance(other, _Rows):
            return _Rows(self.n, np.concatenate([self.row, other.row]),
                         np.concatenate([self.col, other.col]),
                         np.concatenate([self.val, other.val]), _add(self.bias, other.bias))
        if isinstance(other, (int, float)) and other == 0:  # a missing term
            return self
        return _Rows(self.n, self.row, self.col, self.val,
                     _add(self.bias, np.broadcast_to(np.asarray(other, float), (self.n,))))

    __radd__ = __add__

    def __neg__(self) -> _Rows:
        return _Rows(self.n, self.row, self.col, -self.val, _mul(-1.0, self.bias))

    def __sub__(self, other: Any) -> _Rows:
        return self + (-other)

    def __rmul__(self, s: float) -> _Rows:
        return _Rows(self.n, self.row, self.col, s * self.val, _mul(s, self.bias))

    @staticmethod
    def stack(parts: list[_Rows]) -> _Rows:
        """The rows of ``parts`` one after the other."""
        off = np.cumsum([0] + [r.n for r in parts])
        bias = None if all(r.bias is None for r in parts) else np.concatenate(
            [np.zeros(r.n) if r.bias is None else r.bias for r in parts])
        return _Rows(int(off[-1]), np.concatenate([r.row + o for r, o in zip(parts, off)]),
                     np.concatenate([r.col for r in parts]),
                     np.concatenate([r.val for r in parts]), bias)

    def take(self, idx: np.ndarray) -> _Rows:
        """Rows ``idx`` (repeats allowed)."""
        idx = np.asarray(idx, dtype=np.int64)
        order = np.argsort(self.row, kind="stable")
        counts = np.bincount(self.row, minlength=self.n)
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        cnt = counts[idx]
        new_row = np.repeat(np.arange(idx.size), cnt)
        pos = np.repeat(starts[idx] - np.concatenate([[0], np.cumsum(cnt)[:-1]]), cnt) \
            + np.arange(int(cnt.sum()))
        sel = order[pos]
        return _Rows(idx.size, new_row, self.col[sel], self.val[sel],
                     None if self.bias is None else self.bias[idx])

    def scale(self, coef: np.ndarray) -> _Rows:
        """Row ``k`` times ``coef[k]``."""
        coef = np.asarray(coef, dtype=np.float64)
        return _Rows(self.n, self.row, self.col, coef[self.row] * self.val, _mul(coef, self.bias))

    def scatter(self, idx: np.ndarray, n: int) -> _Rows:
        """Row ``j`` of the result sums the rows ``k`` with ``idx[k] == j``."""
        idx = np.asarray(idx, dtype=np.int64)
        bias = None
        if self.bias is not None:
            bias = np.zeros(n)
            np.add.at(bias, idx, self.bias)
        return _Rows(n, idx[self.row], self.col, self.val, bias)


def _add(a: np.ndarray | None, b: np.ndarray | None) -> np.ndarray | None:
    if a is None or b is None:
        return b if a is None else a
    return a + b


def _mul(s: Any, a: np.ndarray | None) -> np.ndarray | None:
    return None if a is None else s * a


class _SumOfSquares:
    """``sum_k square(terms[k]) + bias`` over affine rows (the thermal form).

    Emitted as one ``square`` node of the stacked terms and one ``sparse_linear``
    that sums them per row and adds ``bias``.
    """

    def __init__(self, terms: list[_Rows], bias: np.ndarray | None = None) -> None:
        self.terms = terms
        self.bias = bias

    def __add__(self, other: _SumOfSquares) -> _SumOfSquares:
        return _SumOfSquares(self.terms + other.terms, _add(self.bias, other.bias))

    def __sub__(self, other: np.ndarray) -> _SumOfSquares:
        return _SumOfSquares(self.terms, _add(self.bias, -np.asarray(other, dtype=np.float64)))

    def emit(self, b: GraphBuilder, u: int, name: str) -> int:
        n, k = self.terms[0].n, len(self.terms)
        lin = _Lin()
        rows = lin.new_rows(k * n)
        for j, t in enumerate(self.terms):
            lin.put(rows[j * n:(j + 1) * n], t)
        sq = b.square(lin.emit(b, u, f"{name}_flows"), name=f"{name}_sq")
        jj = np.arange(n)
        return b.sparse_linear(
            sq, np.tile(jj, k), np.arange(k * n), np.ones(k * n), n, bias=self.bias, name=name,
        )


class _RowsAlgebra:
    """The linear part of the equations on :class:`_Rows` (see ``physics.equations``);
    ``square`` gives the sum-of-squares form of the thermal rows."""

    def const(self, a: Any) -> np.ndarray:
        return np.asarray(a, dtype=np.float64)

    def square(self, a: _Rows, name: str | None = None) -> _SumOfSquares:
        return _SumOfSquares([a])

    def take(self, a: _Rows, idx: np.ndarray) -> _Rows:
        return a.take(idx)

    def scale(self, coef: np.ndarray, a: _Rows) -> _Rows:
        return a.scale(coef)

    def scatter(self, a: _Rows, idx: np.ndarray, n: int) -> _Rows:
        return a.scatter(idx, n)

    def angle_diff(self, va: _Rows, f: np.ndarray, t: np.ndarray, name: str | None = None
                   ) -> _Rows:
        return va.take(f) - va.take(t)


class _NodeAlgebra:
    """The nonlinear base terms on graph-builder nodes (see ``physics.equations``)."""

    def __init__(self, b: GraphBuilder) -> None:
        self.b = b

    def take(self, a: int, idx: np.ndarray) -> int:
        return self.b.gather(a, idx)

    def square(self, a: int, name: str | None = None) -> int:
        return self.b.square(a, name=name)

    def mul(self, a: int, c: int, name: str | None = None) -> int:
        return self.b.mul(a, c, name=name)

    def cos(self, a: int) -> int:
        return self.b.cos(a)

    def sin(self, a: int) -> int:
        return self.b.sin(a)

    def angle_diff(self, va: int, f: np.ndarray, t: np.ndarray, name: str | None = None) -> int:
        e = np.arange(f.size)
        return self.b.sparse_linear(
            va, np.concatenate([e, e]), np.concatenate([f, t]),
            np.concatenate([np.ones(f.size), -np.ones(f.size)]), f.size, name=name,
        )


class _Lin:
    """Accumulates a sparse linear map ``out = A u + bias`` from :class:`_Rows` blocks."""

    def __init__(self) -> None:
        self.blocks: list[_Rows] = []
        self.n = 0
        self.bias: list[float] = []

    def new_rows(self, n: int) -> np.ndarray:
        """Reserve ``n`` rows (filled by :meth:`put`)."""
        self.bias.extend([0.0] * n)
        self.n += n
        return np.arange(self.n - n, self.n)

    def put(self, positions: np.ndarray, rows: _Rows) -> None:
        """Row ``k`` of ``rows`` becomes row ``positions[k]``."""
        positions = np.asarray(positions, dtype=np.int64)
        self.blocks.append(_Rows(self.n, positions[rows.row], rows.col, rows.val))
        if rows.bias is not None:
            for p, v in zip(positions.tolist(), rows.bias.tolist()):
                self.bias[p] = v

    def emit(self, b: GraphBuilder, u: int, name: str, select: np.ndarray | None = None) -> int:
        """The rows as one ``sparse_linear`` node of ``u``; with ``select``, only the rows
        ``select`` (in that order, repeats allowed): one node instead of a node and a
        ``gather`` of it."""
        import scipy.sparse as sp

        if self.blocks:
            r = np.concatenate([k.row for k in self.blocks])
            c = np.concatenate([k.col for k in self.blocks])
            v = np.concatenate([k.val for k in self.blocks])
        else:
            r = c = np.zeros(0, dtype=np.int64)
            v = np.zeros(0)
        m = sp.coo_matrix((v, (r, c)), shape=(self.n, b.size(u))).tocsr()
        bias = np.asarray(self.bias)
        if select is not None:
            m, bias = m[select], bias[select]
        m.eliminate_zeros()
        m = m.tocoo()
        return b.sparse_linear(
            u, m.row.astype(np.int64), m.col.astype(np.int64), m.data, m.shape[0],
            bias=bias, name=name,
        )


class _Layout:
    """Column offsets of the base vector ``u`` and its parts as :class:`_Rows`."""

    def __init__(self, case: Any, flows: bool) -> None:
        n_gen, n_bus, n_load, n_br = case.n_gen, case.n_bus, case.n_load, case.n_branch
        self.pg = 0
        self.qg = n_gen
        self.vm = 2 * n_gen
        self.va = 2 * n_gen + n_bus
        self.pd = 2 * n_gen + 2 * n_bus
        self.qd = self.pd + n_load
        end = self.qd + n_load
        self.vm2 = end
        self.wc = end + n_bus
        self.ws = self.wc + n_br
        self.size = self.ws + n_br if flows else end
        self.parts = {
            "pg": _Rows.identity(self.pg, n_gen), "qg": _Rows.identity(self.qg, n_gen),
            "vm": _Rows.identity(self.vm, n_bus), "va": _Rows.identity(self.va, n_bus),
            "pd": _Rows.identity(self.pd, n_load), "qd": _Rows.identity(self.qd, n_load),
        }
        self.base = eq.Base(_Rows.identity(self.vm2, n_bus), _Rows.identity(self.wc, n_br),
                            _Rows.identity(self.ws, n_br)) if flows else None


_FLOW_FAMILIES = frozenset(BALANCE_FAMILIES + THERMAL_FAMILIES)


def _base_vector(b: GraphBuilder, case: Any, lay: _Layout) -> int:
    """Inputs, the ACP base terms (``physics.equations.base_terms``) and ``u``."""
    x = b.input(LOAD_INPUT, 2 * case.n_load)
    y = b.input(PROXY_INPUT, 2 * case.n_gen + 2 * case.n_bus)
    parts = [y, x]
    if lay.base is not None:
        n_bus = case.n_bus
        vm = b.slice(y, lay.vm, lay.vm + n_bus, name="vm")
        va = b.slice(y, lay.va, lay.va + n_bus, name="va")
        base = eq.base_terms(_NodeAlgebra(b), case, vm, va)
        parts += [base.vm2, base.wc, base.ws]
    return b.concat(parts, name="u")


def _balance(case: Any, lay: _Layout, reactive: bool) -> _Rows:
    """Balance residual rows of every bus (``physics.equations.bus_balance``)."""
    alg = _RowsAlgebra()
    assert lay.base is not None
    flows = eq.branch_flows(alg, case, lay.base)
    p = lay.parts
    if reactive:
        return eq.bus_balance(alg, case, True, p["qg"], p["qd"], lay.base.vm2, flows.qf,
                              flows.qt)
    return eq.bus_balance(alg, case, False, p["pg"], p["pd"], lay.base.vm2, flows.pf, flows.pt)


def _linear_rows(case: Any, constraints: tuple[Constraint, ...], lay: _Layout, lin: _Lin
                 ) -> tuple[list[tuple[int, int, int]], list[tuple[int, int, int]]]:
    """Fill ``lin`` with every row linear in ``u``, in constraint order.

    Returns ``(lin_rows, thermal)``: ``(lin row, constraint position, sign)`` of
    every linear row and ``(constraint position, branch, side)`` of every
    thermal constraint.
    """
    alg = _RowsAlgebra()
    lin_rows: list[tuple[int, int, int]] = []
    thermal: list[tuple[int, int, int]] = []
    limit_at: dict[str, list[tuple[int, int]]] = {}  # family -> (lin row, component index)
    bal_rows: dict[tuple[bool, float], np.ndarray] = {}
    for pos, c in enumerate(constraints):
        fam, i = c.family, c.index
        if fam in eq.LIMITS:
            r = int(lin.new_rows(1)[0])
            limit_at.setdefault(fam, []).append((r, i))
            lin_rows.append((r, pos, 1))
        elif fam in BALANCE_FAMILIES:
            for sgn in (1.0, -1.0):
                key = (fam == "q_balance", sgn)
                if key not in bal_rows:
                    bal_rows[key] = lin.new_rows(case.n_bus)
                lin_rows.append((int(bal_rows[key][i]), pos, int(sgn)))
        elif fam in THERMAL_FAMILIES:
            thermal.append((pos, i, 0 if fam == "thermal_fr" else 1))
        else:  # pragma: no cover - guarded by ConstraintSelection
            raise GraphError(f"physics graph: unknown family {fam!r}")
    for fam, at in limit_at.items():
        idx = np.array([i for _, i in at], dtype=np.int64)
        value = eq.quantity(alg, case, eq.LIMITS[fam].quantity, lay.parts, idx)
        lin.put(np.array([r for r, _ in at]), eq.limit_violation(alg, case, fam, value, idx))
    for (reactive, sgn), rows in bal_rows.items():
        lin.put(rows, sgn * _balance(case, lay, reactive))
    return lin_rows, thermal


def _thermal_block(b: GraphBuilder, u: int, case: Any, lay: _Layout,
                   thermal: list[tuple[int, int, int]]) -> int:
    """Thermal rows (``physics.equations.thermal_violation``), ``p, q`` affine in ``u``."""
    assert lay.base is not None
    alg = _RowsAlgebra()
    fl = eq.branch_flows(alg, case, lay.base)
    n_br = case.n_branch
    at = np.array([i + side * n_br for _, i, side in thermal], dtype=np.int64)  # into [fr; to]
    p = _Rows.stack([fl.pf, fl.pt]).take(at)
    q = _Rows.stack([fl.qf, fl.qt]).take(at)
    rate = np.asarray(case.rate_a, dtype=np.float64)[[i for _, i, _ in thermal]]
    return eq.thermal_violation(alg, p, q, rate).emit(b, u, "thermal")


def _expose(case: Any, lay: _Layout, lin: _Lin) -> int:
    """Reserve and fill the exposed flow rows (4E) then residual rows (2N); returns the first."""
    alg = _RowsAlgebra()
    n_br, n_bus = case.n_branch, case.n_bus
    assert lay.base is not None
    rows = lin.new_rows(4 * n_br)
    for k, fl in enumerate(eq.branch_flows(alg, case, lay.base)):
        lin.put(rows[k * n_br:(k + 1) * n_br], fl)
    res = lin.new_rows(2 * n_bus)
    lin.put(res[:n_bus], _balance(case, lay, False))
    lin.put(res[n_bus:], _balance(case, lay, True))
    return int(rows[0]) if rows.size else int(res[0]) if res.size else lin.n


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
    need_flows = expose_flows or bool({c.family for c in constraints} & _FLOW_FAMILIES)
    lay = _Layout(case, need_flows)
    b = GraphBuilder()
    u = _base_vector(b, case, lay)

    lin = _Lin()
    lin_rows, thermal = _linear_rows(case, constraints, lay, lin)
    exposed = _expose(case, lay, lin) if expose_flows else None
    blocks: list[int] = []
    row_constraint: list[int] = []
    row_sign: list[int] = []
    picked = np.array([r for r, _, _ in lin_rows], dtype=np.int64)
    lin_node = None
    if exposed is not None:  # the flows and residuals read the rows too
        lin_node = lin.emit(b, u, "linear_rows")
        if lin_rows:
            blocks.append(b.gather(lin_node, picked))
    elif lin_rows:  # only the constraints' rows, in their order
        blocks.append(lin.emit(b, u, "linear_rows", select=picked))
    if lin_rows:
        row_constraint += [p for _, p, _ in lin_rows]
        row_sign += [s for _, _, s in lin_rows]
    if thermal:
        blocks.append(_thermal_block(b, u, case, lay, thermal))
        row_constraint += [p for p, _, _ in thermal]
        row_sign += [1] * len(thermal)

    if blocks:
        out = b.concat(blocks, name=VIOLATION_OUTPUT) if len(blocks) > 1 else blocks[0]
        b.output(out, VIOLATION_OUTPUT)
    if exposed is not None:
        assert lin_node is not None
        mid = exposed + 4 * case.n_branch
        b.output(b.slice(lin_node, exposed, mid), "flows")
        b.output(b.slice(lin_node, mid, mid + 2 * case.n_bus), "residuals")
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
