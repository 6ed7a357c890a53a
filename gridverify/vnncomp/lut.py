"""Lookup-table variants of our instances: smooth nonlinearities become ReLU tables.

Competition graphs often write ``sin``, ``cos`` and ``sigmoid`` as lookup
tables: piecewise-linear interpolation on a grid, spelled in ONNX as weighted
sums of ``Relu(x - t_k)``.  :func:`lut_graph` rewrites every such node of a
graph as a ``pwl`` node that interpolates the function on ``n_points`` evenly
spaced points per entry and is constant outside them::

    table(x) = f(t_0) + sum_k d_k relu(x - t_k),   k = 0 .. n_points - 1

(``d_0`` the first segment's slope, ``d_k`` the change of slope at ``t_k``,
``d_{n-1}`` minus the last slope).  The grid of an entry covers the interval
the bound engine gives its input over the box (IBP, tightened by CROWN),
widened by ``pad``, so the table covers every input the smooth graph reaches
and those of the table graph up to the interpolation error.  The exported
graph *is* the network to verify: what matters for the instances is that it
is a faithful model of the table, not of the smooth function.
:func:`gridverify.ir.onnx_export.to_onnx` writes ``pwl`` nodes in the
``Relu(x - t_k)`` pattern and the importer merges them back into ``pwl``
nodes (:mod:`gridverify.ir.pwl_merge`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from gridverify.errors import SpecError
from gridverify.ir import Graph, Node
from gridverify.sysmem import format_bytes, memory_shortfall

__all__ = ["LUT_OPS", "lut_graph", "table_attrs"]

#: the smooth unary ops replaced by tables (products and powers stay as they are)
LUT_OPS = ("sin", "cos", "sigmoid", "tanh", "erf", "exp")


def table_attrs(f: Callable[[torch.Tensor], torch.Tensor], lo: torch.Tensor, hi: torch.Tensor,
                n_points: int) -> dict[str, torch.Tensor]:
    """``pwl`` attributes interpolating ``f`` on ``n_points`` points from ``lo`` to ``hi``.

    ``lo``/``hi``: ``(n,)`` float64 with ``lo < hi``.  Constant outside ``[lo, hi]``.
    """
    t = lo[:, None] + (hi - lo)[:, None] * torch.linspace(0.0, 1.0, n_points,
                                                          dtype=torch.float64)
    fv = f(t)
    s = (fv[:, 1:] - fv[:, :-1]) / (t[:, 1:] - t[:, :-1])  # (n, N-1) segment slopes
    zero = torch.zeros_like(s[:, :1])
    d = torch.cat([s, zero], 1) - torch.cat([zero, s], 1)  # (n, N)
    return {"breaks": t.contiguous(), "weights": d.contiguous(),
            "slope": torch.zeros_like(lo), "bias": fv[:, 0].clone()}


def _input_intervals(graph: Graph, lo: np.ndarray, hi: np.ndarray,
                     ids: list[int]) -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
    """Bounds of the nodes ``ids`` over the box: IBP, intersected with CROWN's where kept."""
    from gridverify.bounds import BoundOptions, compute_bounds
    from gridverify.bounds.ibp import ibp, input_boxes

    lo_t = torch.as_tensor(lo, dtype=torch.float64).reshape(1, -1)
    hi_t = torch.as_tensor(hi, dtype=torch.float64).reshape(1, -1)
    iv = ibp(graph, input_boxes(graph, lo_t, hi_t), torch.float64, torch.device("cpu"))
    out = {i: (iv[i][0][0], iv[i][1][0]) for i in ids}
    try:
        r = compute_bounds(graph, lo_t, hi_t, method="crown",
                           options=BoundOptions(keep_intermediate=True))
    except Exception:  # noqa: BLE001 - IBP alone is sound; CROWN only tightens
        return out
    for i in ids:
        if r.interm and i in r.interm:
            cl, cu = r.interm[i]
            out[i] = (torch.maximum(out[i][0], cl.reshape(-1)),
                      torch.minimum(out[i][1], cu.reshape(-1)))
    return out


ONNX_LIMIT_BYTES = 2**31  # protobuf's limit on one ONNX model


def _check_table_size(entries: int, n_points: int) -> None:
    """Refuse tables that cannot be built or written: ``entries`` tables of ``n_points``
    points hold at least two float32 numbers per point (the point and its slope
    change) in the ONNX model, and four float64 ones while they are built."""
    onnx_bytes = 8 * entries * n_points
    if onnx_bytes > ONNX_LIMIT_BYTES:
        raise SpecError(f"--lut-points {n_points}: {entries} tables of {n_points} points take "
                        f"{format_bytes(onnx_bytes)} in the ONNX model, more than ONNX's "
                        f"{format_bytes(ONNX_LIMIT_BYTES)} limit")
    short = memory_shortfall(32 * entries * n_points)
    if short is not None:
        raise SpecError(f"--lut-points {n_points}: {entries} tables of {n_points} points {short}")


def lut_graph(graph: Graph, lo: np.ndarray, hi: np.ndarray, n_points: int = 32,
              ops: tuple[str, ...] = LUT_OPS, pad: float = 0.05) -> Graph:
    """``graph`` with every node of ``ops`` replaced by its lookup table (see module doc).

    ``lo``/``hi``: the input box (inputs concatenated) the tables must cover;
    ``n_points >= 2`` grid points per entry; ``pad``: the grid spans the input
    interval widened by ``pad`` times its width (plus ``1e-3``) on each side.
    """
    if int(n_points) != n_points or n_points < 2:
        raise SpecError(f"--lut-points: need an integer >= 2, got {n_points!r}")
    targets = [n for n in graph.nodes if n.op in ops]
    if not targets:
        return graph
    _check_table_size(sum(n.size for n in targets), int(n_points))
    ivs = _input_intervals(graph, lo, hi, sorted({n.inputs[0] for n in targets}))
    nodes = list(graph.nodes)
    for nd in targets:
        l, u = ivs[nd.inputs[0]]
        if not bool(torch.isfinite(l).all() and torch.isfinite(u).all()):
            raise SpecError(f"lookup table for {nd.op} node {nd.name!r}: its input interval "
                            "over the box is unbounded")
        w = u - l
        l, u = l - pad * w - 1e-3, u + pad * w + 1e-3
        f = nd.info.func  # with the node's attributes (a thresholded softplus)
        attrs = table_attrs(f, l.double(), u.double(), int(n_points))
        nodes[nd.id] = Node(nd.id, "pwl", nd.inputs, attrs, nd.size, nd.shape, nd.name)
    return Graph(tuple(nodes), graph.outputs, graph.output_names)
