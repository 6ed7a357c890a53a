"""Graph pass: a weighted sum of shifted relus of one scalar becomes one ``pwl`` node.

Lookup tables and piecewise-linear interpolants are written in ONNX as
``Relu(x - t_k)`` terms (a broadcast ``Sub``/``Add`` of a constant, or a ``Gemm``
whose rows each copy one entry) weighted and summed (``Mul`` + ``ReduceSum``,
``MatMul``, ``Gemm``).  After lowering that is::

    relu( affine(x) )  ->  linear / sparse_linear

where ``affine`` is a chain of ``gather``/``scale``/``add_const``/``neg``/
``reshape`` nodes and linear maps with at most one nonzero per row, so that
each relu entry ``m`` reads ``s_m * x[j_m] + c_m`` of one source node ``x``,
and where every row ``r`` of the consuming linear map reads relu entries of a
single source entry ``j(r)``.  Row ``r`` is then exactly

    ``sum_m v_rm relu(s_m x_j + c_m) + bias_r = b_r + a_r x_j + sum_m w_m relu(x_j - t_m)``

with ``t_m = -c_m / s_m``, ``w_m = v_rm |s_m|`` (a negative ``s_m`` adds the
linear term of ``relu(-y) = relu(y) - y``; ``s_m = 0`` a constant).  The pass
replaces the linear map by ``pwl(gather(x, j))`` (no gather when ``j`` is the
identity) and leaves the relu and its feeders to :func:`prune` when nothing
else reads them.  Affine terms added to the sum afterwards (``add_const``, and
``add``/``sub`` of an entrywise affine image of the same entries ``x[j]``, the
"linear term and bias" of a table) are folded into the node's slope and bias.
It is exact up to float64 rounding of ``t_m``.

Every other relu (hidden layers, whose consumer mixes entries; relus read by
more than one node or by an output) is left alone.
"""

from __future__ import annotations

import numpy as np
import torch

from gridverify.ir.graph import Graph, Node

__all__ = ["merge_pwl"]


def _affine_source(graph: Graph, start: int, size: int) -> tuple[int, np.ndarray, np.ndarray,
                                                                  np.ndarray]:
    """Walk back from ``start``: ``(x, j, s, c)`` with ``value[m] = s[m] * x[j[m]] + c[m]``."""
    j = np.arange(size, dtype=np.int64)
    s = np.ones(size)
    c = np.zeros(size)
    cur = start
    while True:
        nd = graph.nodes[cur]
        a = nd.attrs
        if nd.op == "add_const":
            c = c + s * a["const"].numpy()[j]
        elif nd.op == "scale":
            s = s * a["coef"].numpy()[j]
        elif nd.op == "neg":
            s = -s
        elif nd.op == "gather":
            j = a["index"].numpy()[j]
        elif nd.op == "reshape":
            pass
        elif nd.op in ("linear", "sparse_linear"):
            one = _one_per_row(nd, graph.nodes[nd.inputs[0]].size)
            if one is None:
                break
            col, val, bias = one
            c = c + s * bias[j]
            s = s * val[j]
            j = col[j]
        else:
            break
        cur = nd.inputs[0]
    return cur, j, s, c


def _entries(nd: Node, n_in: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Nonzero ``(rows, cols, vals)`` of a linear or sparse_linear node."""
    if nd.op == "linear":
        w = nd.attrs["weight"].numpy()
        rows, cols = np.nonzero(w)
        return rows, cols, w[rows, cols]
    rows, cols, vals = (nd.attrs[k].numpy() for k in ("rows", "cols", "vals"))
    keep = vals != 0
    return rows[keep], cols[keep], vals[keep]


def _bias(nd: Node) -> np.ndarray:
    b = nd.attrs.get("bias")
    return np.zeros(nd.size) if b is None else b.numpy().reshape(-1)


def _one_per_row(nd: Node, n_in: int) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """``(col, val, bias)`` per row of a linear map with at most one nonzero per row."""
    rows, cols, vals = _entries(nd, n_in)
    if np.bincount(rows, minlength=nd.size).max(initial=0) > 1:
        return None
    col = np.zeros(nd.size, dtype=np.int64)
    val = np.zeros(nd.size)
    col[rows] = cols
    val[rows] = vals
    return col, val, _bias(nd)


def _pwl_rows(lin: Node, n_relu: int, j: np.ndarray, s: np.ndarray, c: np.ndarray):  # noqa: ANN202
    """Per-row source entry and pwl attributes of ``lin(relu(s * x[j] + c))``, or None."""
    rows, cols, vals = _entries(lin, n_relu)
    n = lin.size
    src = np.full(n, -1, dtype=np.int64)
    live = s[cols] != 0
    for r, jj in zip(rows[live], j[cols[live]]):
        if src[r] == -1:
            src[r] = jj
        elif src[r] != jj:
            return None
    if not live.any():
        return None
    src[src == -1] = 0
    slope = np.zeros(n)
    bias = _bias(lin).copy()
    # constant terms (s = 0)
    dead = ~live
    np.add.at(bias, rows[dead], vals[dead] * np.maximum(c[cols[dead]], 0.0))
    r_l, m_l, v_l = rows[live], cols[live], vals[live]
    sm, cm = s[m_l], c[m_l]
    t = -cm / sm
    w = v_l * np.abs(sm)
    neg = sm < 0
    # relu(s (x - t)) for s < 0 is |s| (relu(x - t) - (x - t))
    np.add.at(slope, r_l[neg], -w[neg])
    np.add.at(bias, r_l[neg], w[neg] * t[neg])
    # per row: merge equal breaks, drop zero weights, pad to a common K
    order = np.lexsort((t, r_l))
    r_l, t, w = r_l[order], t[order], w[order]
    per_row: list[tuple[np.ndarray, np.ndarray]] = []
    for r in range(n):
        a, b = np.searchsorted(r_l, r, "left"), np.searchsorted(r_l, r, "right")
        tr, wr = t[a:b], w[a:b]
        if tr.size:
            uniq, inv = np.unique(tr, return_inverse=True)
            ws = np.zeros(uniq.size)
            np.add.at(ws, inv, wr)
            keep = ws != 0
            tr, wr = uniq[keep], ws[keep]
        per_row.append((tr, wr))
    k = max(1, max(tr.size for tr, _ in per_row))
    breaks = np.zeros((n, k))
    weights = np.zeros((n, k))
    for r, (tr, wr) in enumerate(per_row):
        breaks[r, : tr.size] = tr
        breaks[r, tr.size:] = tr[-1] if tr.size else 0.0
        weights[r, : tr.size] = wr
    return src, breaks, weights, slope, bias


def _absorb_affine(graph: Graph, consumers: dict[int, list[int]], outputs: set[int], nid: int,
                   x: int, src: np.ndarray, slope: np.ndarray, bias: np.ndarray) -> int:
    """Fold the affine terms added after the relu sum into ``slope``/``bias`` (in place).

    Follows single consumers of ``nid``: ``add_const`` and ``add``/``sub`` of an
    entrywise affine image of the same source entries ``x[src]``.  Returns the
    last node absorbed (the one the ``pwl`` node replaces).
    """
    while nid not in outputs:
        cons = consumers.get(nid, [])
        if len(cons) != 1:
            break
        nd = graph.nodes[cons[0]]
        if nd.op == "add_const":
            bias += nd.attrs["const"].numpy()
        elif nd.op in ("add", "sub") and nd.inputs[0] != nd.inputs[1] and (
                nd.op == "add" or nd.inputs[0] == nid):
            other = nd.inputs[1] if nd.inputs[0] == nid else nd.inputs[0]
            x2, j2, s2, c2 = _affine_source(graph, other, nd.size)
            if x2 != x or not np.all((j2 == src) | (s2 == 0)):
                break
            sign = 1.0 if nd.op == "add" else -1.0
            slope += sign * s2
            bias += sign * c2
        else:
            break
        nid = nd.id
    return nid


def _f64(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float64))


def merge_pwl(graph: Graph) -> Graph:
    """``graph`` with every mergeable relu sum rewritten as a ``pwl`` node (see module doc).

    Returns ``graph`` itself when nothing matches; dead nodes are left for ``prune``.
    """
    nodes = graph.nodes
    live = graph.ancestors(graph.outputs)
    consumers: dict[int, list[int]] = {}
    for nd in nodes:
        if nd.id not in live:
            continue
        for i in nd.inputs:
            consumers.setdefault(i, []).append(nd.id)
    outputs = set(graph.outputs)
    plans: dict[int, tuple[int, np.ndarray, tuple[np.ndarray, ...]]] = {}
    for nd in nodes:
        if nd.op != "relu" or nd.id in outputs or nd.id not in live:
            continue
        cons = consumers.get(nd.id, [])
        if len(cons) != 1 or nodes[cons[0]].op not in ("linear", "sparse_linear"):
            continue
        lin = nodes[cons[0]]
        x, j, s, c = _affine_source(graph, nd.inputs[0], nd.size)
        got = _pwl_rows(lin, nd.size, j, s, c)
        if got is None:
            continue
        src, breaks, weights, slope, bias = got
        last = _absorb_affine(graph, consumers, outputs, lin.id, x, src, slope, bias)
        plans[last] = (x, src, (breaks, weights, slope, bias))
    if not plans:
        return graph
    new: list[Node] = []
    remap: dict[int, int] = {}

    def add(op: str, inputs: tuple[int, ...], attrs: dict, size: int, shape: tuple[int, ...],
            name: str) -> int:
        nid = len(new)
        new.append(Node(nid, op, inputs, attrs, size, shape, name))
        return nid

    for nd in nodes:
        plan = plans.get(nd.id)
        if plan is None:
            remap[nd.id] = add(nd.op, tuple(remap[i] for i in nd.inputs), dict(nd.attrs),
                               nd.size, nd.shape, nd.name)
            continue
        x, src, (breaks, weights, slope, bias) = plan
        xin = remap[x]
        if not (src.size == nodes[x].size and np.array_equal(src, np.arange(src.size))):
            xin = add("gather", (xin,), {"index": torch.from_numpy(src.copy())}, src.size,
                      (src.size,), f"{nd.name}_pwl_in")
        remap[nd.id] = add("pwl", (xin,), {"breaks": _f64(breaks), "weights": _f64(weights),
                                           "slope": _f64(slope), "bias": _f64(bias)},
                           nd.size, nd.shape, nd.name)
    return Graph(tuple(new), tuple(remap[o] for o in graph.outputs), graph.output_names)
