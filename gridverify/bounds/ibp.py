"""Interval bound propagation (IBP) over a gridverify graph.

``ibp_node`` gives the interval of one node from the intervals of its inputs;
the walks in :mod:`gridverify.bounds.crown` call it for every node (and then
tighten the nodes that feed nonlinear ops with CROWN).  Unary nonlinear ops use
the ``interval`` function of the relaxation table, which is exact for every
elementwise unary op (monotone or not).
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from collections.abc import Callable
from functools import lru_cache

import torch

from gridverify.bounds.relaxations import interval_mul
from gridverify.errors import GraphError
from gridverify.ir.graph import Graph, Node, sparse_forward_gather
from gridverify.ir.ops import UNARY_NONLINEAR

Interval = tuple[torch.Tensor, torch.Tensor]


class BoundError(GraphError):
    """A graph cannot be bounded on the given box (e.g. reciprocal of an interval with 0)."""


@lru_cache(maxsize=64)
def unary_relaxation(op: str, k: int | None = None):  # noqa: ANN201 - UnaryRelaxation
    """The relaxation-table entry of a unary op (``k``: exponent of ``pow``)."""
    from gridverify.bounds.relaxations import unary

    return unary(op, k) if op == "pow" else unary(op)


# pwl entries depend on the node's attributes: cached by the identity of its breaks
# tensor (kept alive in the cache, so the identity cannot be reused while cached)
_PWL_CACHE: OrderedDict[int, tuple[torch.Tensor, object]] = OrderedDict()
_PWL_CACHE_SIZE = 256


def _pwl_relaxation(node: Node):  # noqa: ANN202 - UnaryRelaxation
    from gridverify.bounds.relaxations import pwl_entry

    br = node.attrs["breaks"]
    hit = _PWL_CACHE.get(id(br))
    if hit is not None and hit[0] is br:
        _PWL_CACHE.move_to_end(id(br))
        return hit[1]
    entry = pwl_entry(br, node.attrs["weights"], node.attrs["slope"], node.attrs["bias"])
    _PWL_CACHE[id(br)] = (br, entry)
    while len(_PWL_CACHE) > _PWL_CACHE_SIZE:
        _PWL_CACHE.popitem(last=False)
    return entry


_TERMS_CACHE: OrderedDict[int, tuple[torch.Tensor, int]] = OrderedDict()


def sparse_terms(node: Node, key: str) -> int:
    """Most entries of a ``sparse_linear`` node that share one row (``key="rows"``:
    the terms of an output's sum) or one column (``"cols"``: the terms of an input's
    coefficient in ``a @ W``), repeated (row, col) pairs counted; at least 1.  Cached
    by the identity of the index tensor (kept alive in the cache)."""
    t = node.attrs[key]
    hit = _TERMS_CACHE.get(id(t))
    if hit is not None and hit[0] is t:
        return hit[1]
    idx = torch.as_tensor(t).reshape(-1).long().cpu()
    n = max(int(torch.bincount(idx).max()), 1) if idx.numel() else 1
    _TERMS_CACHE[id(t)] = (t, n)
    while len(_TERMS_CACHE) > _PWL_CACHE_SIZE:
        _TERMS_CACHE.popitem(last=False)
    return n


def node_relaxation(node: Node):  # noqa: ANN201 - UnaryRelaxation
    """The relaxation-table entry of a unary nonlinear node."""
    if node.op == "pwl":
        return _pwl_relaxation(node)
    if node.op == "softplus" and node.attrs.get("threshold") is not None:
        from gridverify.bounds.relaxations.convex import softplus_above

        return softplus_above(float(node.attrs["threshold"]))
    return unary_relaxation(node.op, int(node.attrs["k"]) if node.op == "pow" else None)


def nan_as(x: torch.Tensor, fill: float) -> torch.Tensor:
    """``x`` with its NaNs replaced by ``fill`` and its infinities kept
    (``torch.nan_to_num`` would make them the largest finite float: a bound that
    overflowed would read as a finite, unsound one)."""
    return torch.where(torch.isnan(x), torch.full_like(x, fill), x)


def _outward(lo: torch.Tensor, hi: torch.Tensor,
             scale: torch.Tensor | None = None) -> Interval:
    """``[lo, hi]`` widened by the rounding error of the arithmetic that made it:
    ``eps * scale`` (default: the ends' own magnitude, one rounding) plus the
    smallest normal number, so that an interval computed in floating point
    holds the exact one."""
    fi = torch.finfo(lo.dtype)
    # the widening carries no gradient (slope optimization sees the unrounded ends)
    if scale is None:
        return (lo - (fi.eps * lo.detach().abs() + fi.tiny),
                hi + (fi.eps * hi.detach().abs() + fi.tiny))
    pad = fi.eps * scale.detach() + fi.tiny
    return lo - pad, hi + pad


def _linear_unbounded(graph: Graph, node: Node, l: torch.Tensor, u: torch.Tensor,
                      dtype: torch.dtype, device: torch.device) -> Interval:
    """``linear`` / ``sparse_linear`` on an interval with infinite ends: each output
    end from the weights' signs, ``0 * inf = 0``, an infinite term making the end
    infinite (the midpoint-radius form would give ``inf - inf``)."""
    def apply(x: torch.Tensor, vals: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        if node.op == "linear":
            return x @ vals(graph.attr(node, "weight", dtype, device)).T
        return sparse_forward_gather(graph, node, x, dtype, device, vals)

    big = torch.full_like(l, torch.finfo(dtype).max)
    zero = torch.zeros_like(l)
    # a lower end of +inf (or an upper end of -inf) overflowed: the value is at least
    # (at most) the largest finite float
    lf = torch.where(torch.isfinite(l), l, torch.where(l > 0, big, zero))
    uf = torch.where(torch.isfinite(u), u, torch.where(u < 0, -big, zero))
    l_inf, u_inf = torch.isneginf(l).to(dtype), torch.isposinf(u).to(dtype)

    def pos(w: torch.Tensor) -> torch.Tensor:
        return w.clamp(min=0)

    def neg(w: torch.Tensor) -> torch.Tensor:
        return w.clamp(max=0)

    def is_pos(w: torch.Tensor) -> torch.Tensor:
        return (w > 0).to(dtype)

    def is_neg(w: torch.Tensor) -> torch.Tensor:
        return (w < 0).to(dtype)

    lo = apply(lf, pos) + apply(uf, neg)
    hi = apply(uf, pos) + apply(lf, neg)
    mag = apply(lf.abs(), torch.abs) + apply(uf.abs(), torch.abs)
    if node.attrs.get("bias") is not None:
        bias = graph.attr(node, "bias", dtype, device)
        lo, hi, mag = lo + bias, hi + bias, mag + bias.abs()
    fan_in = (sparse_terms(node, "rows") if node.op == "sparse_linear"
              else node.attrs["weight"].shape[1])
    lo, hi = _outward(lo, hi, (fan_in + 3) * mag)
    lo = torch.where((apply(l_inf, is_pos) + apply(u_inf, is_neg)) > 0, -torch.inf, lo)
    hi = torch.where((apply(u_inf, is_pos) + apply(l_inf, is_neg)) > 0, torch.inf, hi)
    return lo, hi


def _never_nan(fn: Callable[..., Interval]) -> Callable[..., Interval]:
    """``fn`` with an end its arithmetic leaves undefined (``inf - inf`` where an input
    is unbounded) made no bound, ``-inf`` below and ``+inf`` above, so that no later
    op can read it as a finite one."""
    @functools.wraps(fn)
    def wrapped(*args: object, **kwargs: object) -> Interval:
        lo, hi = fn(*args, **kwargs)
        return nan_as(lo, -torch.inf), nan_as(hi, torch.inf)

    return wrapped


@_never_nan
def ibp_node(
    graph: Graph,
    node: Node,
    ins: list[Interval],
    batch: int,
    dtype: torch.dtype,
    device: torch.device,
) -> Interval:
    """Interval ``(lower, upper)``, each ``(B, size)``, of ``node`` given its inputs'
    intervals; never NaN (see :func:`_never_nan`)."""
    op = node.op
    if op == "constant":
        v = graph.attr(node, "value", dtype, device).reshape(1, -1).expand(batch, -1)
        if dtype == torch.float64:
            return v, v
        return _outward(v, v)  # the stored value rounded to ``dtype``
    if op in ("linear", "sparse_linear"):
        l, u = ins[0]
        if not (bool(torch.isfinite(l).all()) and bool(torch.isfinite(u).all())):
            return _linear_unbounded(graph, node, l, u, dtype, device)
        mid, rad = (u + l) / 2, (u - l) / 2
        if op == "linear":
            w = graph.attr(node, "weight", dtype, device)
            wa = w.abs()
            ym, yr, ya = mid @ w.T, rad @ wa.T, mid.abs() @ wa.T
            fan_in = w.shape[1]
        else:
            rows = graph.attr(node, "rows", dtype, device)
            cols = graph.attr(node, "cols", dtype, device)
            vals = graph.attr(node, "vals", dtype, device)
            ym = mid.new_zeros(mid.shape[0], node.size)
            yr = mid.new_zeros(mid.shape[0], node.size)
            ya = mid.new_zeros(mid.shape[0], node.size)
            ym.index_add_(-1, rows, mid.index_select(-1, cols) * vals)
            yr.index_add_(-1, rows, rad.index_select(-1, cols) * vals.abs())
            ya.index_add_(-1, rows, mid.abs().index_select(-1, cols) * vals.abs())
            fan_in = sparse_terms(node, "rows")  # repeated entries counted
        if node.attrs.get("bias") is not None:
            bias = graph.attr(node, "bias", dtype, device)
            ym, ya = ym + bias, ya + bias.abs()
        # the sums are rounded: widen by their error bound, (n + 3) eps * sum |w| |x|
        return _outward(ym - yr, ym + yr, (fan_in + 3) * (ya + yr))
    if op == "add":
        return _outward(ins[0][0] + ins[1][0], ins[0][1] + ins[1][1])
    if op == "sub":
        return _outward(ins[0][0] - ins[1][1], ins[0][1] - ins[1][0])
    if op == "neg":
        return -ins[0][1], -ins[0][0]
    if op == "scale":
        c = graph.attr(node, "coef", dtype, device)
        a, b = ins[0][0] * c, ins[0][1] * c
        return _outward(torch.minimum(a, b), torch.maximum(a, b))
    if op == "add_const":
        c = graph.attr(node, "const", dtype, device)
        lo, hi = ins[0][0] + c, ins[0][1] + c
        if dtype == torch.float64:
            return _outward(lo, hi)
        # the sum's rounding and the constant's own, rounded to ``dtype``
        return _outward(lo, hi, lo.detach().abs() + hi.detach().abs() + c.abs())
    if op == "gather":
        idx = graph.attr(node, "index", dtype, device)
        return ins[0][0].index_select(-1, idx), ins[0][1].index_select(-1, idx)
    if op == "concat":
        return (torch.cat([i[0] for i in ins], -1), torch.cat([i[1] for i in ins], -1))
    if op == "reshape":
        return ins[0]
    if op == "mul":
        return interval_mul(ins[0][0], ins[0][1], ins[1][0], ins[1][1])
    if op in UNARY_NONLINEAR:
        l, u = ins[0]
        # off the op's domain (reciprocal of an interval holding 0) the table
        # returns infinite ("no bound") intervals and lines: sound, never NaN
        lo, hi = node_relaxation(node).interval(l, u)
        return lo, hi
    raise BoundError(f"op {op!r} at node {node.name!r} (#{node.id}): no interval rule")



def input_boxes(graph: Graph, lo: torch.Tensor, hi: torch.Tensor) -> dict[int, Interval]:
    """A flat input box ``(B, input_size)`` as the box of each input node, in order."""
    boxes, off = {}, 0
    for i in graph.inputs:
        sz = graph.nodes[i].size
        boxes[i] = (lo[:, off:off + sz], hi[:, off:off + sz])
        off += sz
    return boxes


def ibp(
    graph: Graph,
    boxes: dict[int, Interval],
    dtype: torch.dtype,
    device: torch.device,
) -> list[Interval | None]:
    """IBP intervals of every ancestor of the outputs (``None`` for other nodes)."""
    needed = graph.ancestors(graph.outputs)
    batch = next(iter(boxes.values()))[0].shape[0]
    out: list[Interval | None] = [None] * len(graph.nodes)
    for node in graph.nodes:
        if node.id not in needed:
            continue
        if node.op == "input":
            out[node.id] = boxes[node.id]
        else:
            out[node.id] = ibp_node(graph, node, [out[i] for i in node.inputs], batch,
                                    dtype, device)
    return out
