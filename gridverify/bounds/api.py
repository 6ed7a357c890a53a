"""``gridverify.compute_bounds``: the public entry of the bound engine."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch

from gridverify.bounds.alpha import alpha_rows, optimize_alpha
from gridverify.bounds.crown import Engine, LinearBounds
from gridverify.bounds.ibp import BoundError, Interval, input_boxes, nan_as
from gridverify.bounds.options import METHODS, BoundOptions, BoundOptionsError
from gridverify.bounds.relaxations._common import out_interval
from gridverify.bounds.selection import RowSelection, selection_starts
from gridverify.errors import GraphError
from gridverify.ir.graph import Graph


@dataclass
class Bounds:
    """Result of :func:`compute_bounds`.

    ``lower``/``upper``: ``(B, m)`` bounds of the outputs concatenated (``m`` =
    output size) or of ``spec @ outputs`` (``m`` = spec rows), one row per
    domain.  ``infeasible``: ``(B,)`` domains whose fixed intermediate bounds
    are contradictory (empty domain: any bound holds vacuously).  ``linear``:
    with ``return_A``, :class:`LinearBounds` w.r.t. the inputs, key ``"output"``
    for the outputs/spec and node ids for the requested nodes.  ``interm``:
    with ``keep_intermediate``, the bounds of every node whose bounds enter a
    relaxation, ``{node_id: (lower, upper)}`` of ``(B, size)``.
    """

    lower: torch.Tensor
    upper: torch.Tensor
    method: str
    infeasible: torch.Tensor
    linear: dict[Any, LinearBounds] = field(default_factory=dict)
    interm: dict[int, Interval] = field(default_factory=dict)

    @property
    def width(self) -> torch.Tensor:
        """``upper - lower``."""
        return self.upper - self.lower


def to_graph(model: Any, lower: torch.Tensor | None = None) -> Graph:
    """The gridverify graph of ``model`` (Graph, ``nn.Module`` or ONNX path/model)."""
    if isinstance(model, Graph):
        return model
    if isinstance(model, str | os.PathLike):
        from gridverify.ir.onnx_import import from_onnx

        return from_onnx(os.fspath(model))
    if isinstance(model, torch.nn.Module):
        from gridverify.ir.torch_import import from_torch

        example = None
        if lower is not None:
            example = lower.reshape(1, -1) if lower.dim() == 1 else lower[:1]
        try:
            return from_torch(model, example=example)
        except GraphError as exc:
            if example is None:
                raise
            raise GraphError(f"the module does not take the input box's {example.shape[-1]} "
                             f"entries: {exc}") from None
    if type(model).__name__ == "ModelProto":
        from gridverify.ir.onnx_import import from_onnx

        return from_onnx(model)
    raise GraphError(f"cannot bound a model of type {type(model).__name__}")


def _as_tensor(x: Any) -> torch.Tensor:
    """``x`` as a tensor; a read-only numpy array (a region's box) is copied, as torch
    would warn about sharing it; Python numbers and lists are read in float64 (torch's
    default, float32, would round them before the box or spec is cast outward)."""
    if isinstance(x, torch.Tensor):
        return x
    if isinstance(x, np.ndarray):
        return torch.as_tensor(np.array(x) if not x.flags.writeable else x)
    return torch.as_tensor(x, dtype=torch.float64)


def _outward_cast(lower: Any, upper: Any, dtype: torch.dtype,
                  device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """``lower``/``upper`` as ``dtype`` tensors rounded outward (down, up), so that a
    box or interval given in float64 keeps every point it holds in float32."""
    lo = _as_tensor(lower).to(device=device, dtype=torch.float64)
    hi = _as_tensor(upper).to(device=device, dtype=torch.float64)
    if dtype == torch.float64:
        return lo, hi
    return out_interval(lo, hi, dtype)


def _batch_box(graph: Graph, lower: Any, upper: Any, dtype: torch.dtype,
               device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    n = graph.input_size
    if n == 0:
        raise BoundError("the graph has no inputs (input size 0): there is no input box to "
                         "bound over")
    lo, hi = _outward_cast(lower, upper, dtype, device)
    if lo.shape != hi.shape:
        raise BoundError(f"lower shape {tuple(lo.shape)} != upper shape {tuple(hi.shape)}")
    if lo.numel() == n:
        lo, hi = lo.reshape(1, n), hi.reshape(1, n)
    elif lo.numel() % n == 0 and lo.dim() >= 2:
        lo, hi = lo.reshape(-1, n), hi.reshape(-1, n)
    else:
        raise BoundError(f"input box of shape {tuple(lo.shape)} does not match the graph's "
                         f"{n} inputs")
    if not (torch.isfinite(lo).all() and torch.isfinite(hi).all()):
        raise BoundError("input box has non-finite entries")
    if bool((lo > hi).any()):
        k = int((lo > hi).nonzero()[0, 1])
        raise BoundError(f"input box has lower > upper at input entry {k}")
    return lo, hi


def _interm(graph: Graph, interm: Mapping[int, tuple[Any, Any]] | None, batch: int,
            dtype: torch.dtype, device: torch.device) -> dict[int, Interval]:
    out: dict[int, Interval] = {}
    for nid, (lo, hi) in (interm or {}).items():
        if not (0 <= int(nid) < len(graph.nodes)):
            raise BoundError(f"interm: #{nid} is not a node of the graph")
        node = graph.nodes[int(nid)]
        pair = []
        for v in _outward_cast(lo, hi, dtype, device):
            t = v.reshape(-1, node.size)
            if t.shape[0] not in (1, batch):
                raise BoundError(f"interm bounds of node {node.name!r}: batch {t.shape[0]} "
                                 f"!= {batch} domains")
            pair.append(t.expand(batch, node.size))
        out[int(nid)] = (pair[0], pair[1])
    return out


def _spec(spec: Any, graph: Graph, batch: int, dtype: torch.dtype,
          device: torch.device) -> torch.Tensor | None:
    if spec is None:
        return None
    c = _as_tensor(spec).to(device=device, dtype=dtype)
    if c.dim() == 1:
        c = c.unsqueeze(0)
    if c.shape[-1] != graph.output_size or c.dim() not in (2, 3):
        raise BoundError(f"spec of shape {tuple(c.shape)}: expected (m, {graph.output_size}) "
                         f"or (B, m, {graph.output_size})")
    if c.dim() == 3 and c.shape[0] not in (1, batch):
        raise BoundError(f"spec batch {c.shape[0]} != {batch} domains")
    if c.dim() == 3 and c.shape[0] == 1 and batch != 1:
        c = c.expand(batch, *c.shape[1:])
    if not torch.isfinite(c).all():
        raise BoundError("spec has non-finite entries")
    return c


def _spec_rounding(eng: Engine, spec: Any, c: torch.Tensor, lo: torch.Tensor,
                   hi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``[lo, hi]`` widened by ``|spec - c| . max|y|``: the spec rounded to the engine's
    dtype (``c``, ``(m, n)`` or ``(B, m, n)``) is not the one asked for; ``y`` ranges
    over the outputs' intervals."""
    c64 = _as_tensor(spec).to(device=c.device, dtype=torch.float64)
    c64 = (c64.unsqueeze(0) if c64.dim() == 1 else c64).expand_as(c)
    d = (c64 - c.double()).abs()
    if not bool((d > 0).any()):
        return lo, hi
    ylo, yhi = eng.output_interval(None)
    ymax = torch.maximum(ylo.abs(), yhi.abs()).double()[:, None, :]  # (B, 1, n)
    zero = torch.zeros((), dtype=torch.float64, device=d.device)
    pad = torch.where(d == 0, zero, d * ymax).sum(-1)  # 0 * inf = 0
    pad = (pad * (1 + 2.0**-20)).to(lo.dtype)  # rounded up past the cast's own rounding
    return lo - pad, hi + pad


def _rows_to_bound(graph: Graph, eng: Engine, spec: torch.Tensor | None, want_out: bool,
                   options: BoundOptions) -> torch.Tensor | None:
    """Output entries that need the final backward pass (``None``: the whole spec).

    Without a spec, outputs whose node bounds are already CROWN-tight (a node
    bounded by CROWN, or an exact interval image of one, e.g. a sigmoid head)
    cannot be improved by another pass and are skipped.
    """
    if spec is not None or want_out or options.intermediate == "ibp":
        return None
    keep = []
    off = 0
    for o in graph.outputs:
        sz = graph.nodes[o].size
        if o not in eng.tight:
            keep.append(torch.arange(off, off + sz))
        off += sz
    if len(keep) == len(graph.outputs):
        return None
    idx = torch.cat(keep) if keep else torch.zeros(0, dtype=torch.int64)
    return idx.to(eng.device)


def compute_bounds(
    model: Any,
    lower: Any,
    upper: Any,
    method: str = "ibp",
    spec: Any = None,
    device: torch.device | str | None = None,
    options: BoundOptions | None = None,
    dtype: torch.dtype = torch.float64,
    interm: Mapping[int, tuple[Any, Any]] | None = None,
    return_A: bool | Sequence[int] = False,
    deadline: float | None = None,
) -> Bounds:
    """Sound bounds of ``model``'s outputs (or ``spec @ outputs``) over input boxes.

    ``model``: a :class:`~gridverify.ir.Graph`, a torch ``nn.Module`` or an ONNX
    file path.  ``lower``/``upper``: the input box, of the input size or with a
    leading batch of domains ``(B, n_in)``.  ``method``: ``"ibp"``, ``"crown"``
    or ``"alpha-crown"``.  ``spec``: ``(m, n_out)`` or ``(B, m, n_out)``, or a
    :class:`~gridverify.bounds.selection.RowSelection` (row ``r`` reads output
    entry ``index[r]``; the same bounds as its one-hot matrix in memory linear in
    the graph: IBP gathers, CROWN densifies one row chunk at a time).
    ``interm``: fixed bounds ``{node_id: (lower, upper)}`` (``(size,)`` or
    ``(B, size)``) intersected with the computed ones (branch-and-bound splits).
    ``return_A``: ``True`` for the linear bounds of the outputs (or spec rows)
    w.r.t. the inputs, key ``"output"``; or a list of node ids (and/or
    ``"output"``) whose linear bounds to return (CROWN methods only).
    Bounds that came out NaN are replaced by ``-inf``/``+inf``.
    ``deadline``: a :func:`time.monotonic` time at which alpha-CROWN's
    optimizations (the output's and, with ``intermediate="alpha-crown"``, each
    node's) stop at the iteration they are in and keep their best bounds so far,
    which are sound; ``None``: every iteration runs.
    """
    if method not in METHODS:
        raise BoundOptionsError(f"method must be one of {METHODS}, got {method!r}")
    if dtype not in (torch.float32, torch.float64):
        raise BoundOptionsError(f"dtype must be float32 or float64, got {dtype}")
    options = options or BoundOptions()
    if device is None:
        device = lower.device if isinstance(lower, torch.Tensor) else torch.device("cpu")
    device = torch.device(device)
    lower, upper = _as_tensor(lower), _as_tensor(upper)
    graph = to_graph(model, lower)
    lo, hi = _batch_box(graph, lower, upper, dtype, device)
    batch = lo.shape[0]
    boxes = input_boxes(graph, lo, hi)
    fixed = _interm(graph, interm, batch, dtype, device)
    sel = spec if isinstance(spec, RowSelection) else None
    if sel is not None and sel.n_out != graph.output_size:
        raise BoundError(f"row selection over {sel.n_out} outputs: the graph has "
                         f"{graph.output_size}")
    c = None if sel is not None else _spec(spec, graph, batch, dtype, device)
    if isinstance(return_A, bool):
        want_out, lin_nodes = return_A, frozenset()
    else:
        want_out = "output" in list(return_A)
        lin_nodes = frozenset(int(n) for n in return_A if n != "output")
    want_out = want_out and method != "ibp"
    for n in lin_nodes:
        if not (0 <= n < len(graph.nodes)):
            raise BoundError(f"return_A: #{n} is not a node of the graph")
    relevant = None
    picked = sel if sel is not None else c
    if (picked is not None and options.relevance and not options.keep_intermediate
            and not lin_nodes):
        from gridverify.bounds.relevance import relevant_entries

        relevant = relevant_entries(graph, picked)
    eng = Engine(graph, boxes, dtype, device, options, fixed, extra_nodes=lin_nodes,
                 relevant=relevant, refine=alpha_rows, deadline=deadline)
    with torch.no_grad():
        eng.compute_intermediate(
            use_crown=method != "ibp" and options.intermediate != "ibp",
            linear_nodes=lin_nodes if method != "ibp" else frozenset(),
        )
    if sel is not None:
        out_lo, out_hi = eng.output_interval(None)
        pick = sel.index.to(device)
        out_lo, out_hi = out_lo[:, pick], out_hi[:, pick]
    else:
        out_lo, out_hi = eng.output_interval(c)
    linear: dict[Any, LinearBounds] = dict(eng.linear)
    if method != "ibp":
        rows = _rows_to_bound(graph, eng, picked, want_out, options)
        if rows is not None:
            sel = RowSelection(rows.cpu(), graph.output_size)
        elif sel is None and c is None:  # every output: the identity, one row chunk at a time
            sel = RowSelection(torch.arange(graph.output_size), graph.output_size)
        if rows is None or rows.numel():
            if sel is not None:
                starts, m = selection_starts(eng, sel)
            else:
                starts, m = eng.output_starts(c)
            with torch.no_grad():
                cl, cu, lin = eng.crown_spec(starts, m, eng.default_relax, return_A=want_out)
            if method == "alpha-crown":
                cl, cu, lin = optimize_alpha(eng, starts, cl, cu, lin, return_A=want_out)
            if lin is not None:
                linear["output"] = lin
            if rows is None:
                out_lo = torch.maximum(out_lo, cl.detach())
                out_hi = torch.minimum(out_hi, cu.detach())
            else:
                out_lo, out_hi = out_lo.clone(), out_hi.clone()
                out_lo[:, rows] = torch.maximum(out_lo[:, rows], cl.detach())
                out_hi[:, rows] = torch.minimum(out_hi[:, rows], cu.detach())
    if c is not None and dtype != torch.float64:
        out_lo, out_hi = _spec_rounding(eng, spec, c, out_lo, out_hi)
    out_lo = nan_as(out_lo, -torch.inf)
    out_hi = nan_as(out_hi, torch.inf)
    kept: dict[int, Interval] = {}
    if options.keep_intermediate:
        kept = {n: eng.bounds[n] for n in sorted(eng.needed) if eng.bounds[n] is not None}
    return Bounds(out_lo, out_hi, method, eng.infeasible, linear, kept)


def relu_stability(
    model: Any,
    lower: Any,
    upper: Any,
    method: str = "crown",
    device: torch.device | str | None = None,
    options: BoundOptions | None = None,
) -> tuple[int, int]:
    """``(unstable, total)`` relu neurons of ``model`` over the input box.

    A relu is *unstable* when the bound interval of its input (from ``method``'s
    intermediate bounds, CROWN by default) has zero strictly inside: its
    relaxation is then a triangle, not the function itself, and every bound
    through it is loose.  Sound in this direction: a relu whose input takes
    both signs somewhere in the box is always counted.  ``lower``/``upper``:
    one box (the first domain of a batch is read).
    """
    options = replace(options or BoundOptions(), keep_intermediate=True)
    lo, hi = (v if isinstance(v, torch.Tensor) else torch.tensor(v) for v in (lower, upper))
    graph = to_graph(model, lo)
    relus = [node for node in graph.nodes if node.op == "relu"]
    if not relus:  # nothing to bound
        return 0, 0
    b = compute_bounds(graph, lo, hi, method=method, device=device, options=options)
    unstable = 0
    for node in relus:
        z_lo, z_hi = b.interm[node.inputs[0]]
        unstable += int(((z_lo[0] < 0) & (z_hi[0] > 0)).sum())
    return unstable, sum(node.size for node in relus)
