"""The gridverify computation graph: nodes in topological order over flat values.

Every node's per-sample value is a flat vector of ``size`` entries; at run time a
leading batch dimension is added, so values are ``(B, size)`` tensors.  Constants
(weights, indices, biases) are stored as float64 / int64 CPU tensors and cast to
the evaluation dtype and device on use.  See ``docs/ir.md``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from gridverify.errors import GraphError
from gridverify.ir.ops import OPS, UNARY_NONLINEAR, op_info, pwl_forward, softplus

#: What the evaluation methods accept: one tensor over all inputs concatenated,
#: a dict by input name, or a sequence in input order.
GraphInput = torch.Tensor | Mapping[str, torch.Tensor] | Sequence[torch.Tensor]


@dataclass(frozen=True)
class Node:
    """One node: ``op`` applied to the values of ``inputs`` (node ids).

    ``attrs`` holds the op's constants (float64 / int64 tensors, ints, floats); ``size``
    is the flat size of the value and ``shape`` metadata with ``prod == size``.
    """

    id: int
    op: str
    inputs: tuple[int, ...]
    attrs: Mapping[str, Any]
    size: int
    shape: tuple[int, ...]
    name: str

    @property
    def info(self):  # noqa: ANN201 - OpInfo, avoided import cycle in annotations
        """The op's traits (:class:`gridverify.ir.ops.OpInfo`)."""
        return op_info(self.op, dict(self.attrs))


def _digest_value(h: Any, v: Any) -> None:
    """Feed an attribute's value to the hash ``h`` (tensors and arrays by dtype, shape
    and bytes, sparse tensors by their parts, containers item by item)."""
    if isinstance(v, torch.Tensor):
        if v.layout == torch.sparse_coo:
            v = v.coalesce()
            parts = [v.indices(), v.values()]
        elif v.layout == torch.sparse_csr:
            parts = [v.crow_indices(), v.col_indices(), v.values()]
        elif v.layout == torch.strided:
            parts = [v]
        else:
            parts = [v.to_dense()]
        h.update(f"tensor{tuple(v.shape)}".encode())
        for t in parts:
            _digest_value(h, t.detach().cpu().contiguous().numpy())
    elif isinstance(v, np.ndarray):
        a = np.ascontiguousarray(v)
        h.update(f"array{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    elif isinstance(v, list | tuple):
        h.update(f"{type(v).__name__}{len(v)}".encode())
        for x in v:
            _digest_value(h, x)
    elif isinstance(v, Mapping):
        h.update(f"map{len(v)}".encode())
        for k in sorted(v, key=repr):
            h.update(repr(k).encode())
            _digest_value(h, v[k])
    else:
        h.update(f"{type(v).__name__}:{v!r}".encode())


def _err(node: Node | None, msg: str) -> GraphError:
    if node is None:
        return GraphError(msg)
    return GraphError(f"op {node.op!r} at node {node.name!r} (#{node.id}): {msg}")


def validate_node(node: Node, sizes: Sequence[int]) -> None:
    """Check ``node`` against the sizes of the earlier nodes; raise GraphError."""
    if node.op not in OPS:
        raise _err(node, "unknown op")
    info = OPS[node.op]
    n_in = len(node.inputs)
    if info.arity >= 0 and n_in != info.arity:
        raise _err(node, f"expects {info.arity} inputs, got {n_in}")
    if info.arity < 0 and n_in < 1:
        raise _err(node, "expects at least one input")
    for i in node.inputs:
        if not (0 <= i < node.id):
            raise _err(node, f"input #{i} is not an earlier node (graph must be topological)")
    if node.size < 0 or math.prod(node.shape) != node.size:
        raise _err(node, f"shape {node.shape} does not match size {node.size}")
    in_sizes = [sizes[i] for i in node.inputs]
    a = node.attrs
    op = node.op
    if info.elementwise and any(s != node.size for s in in_sizes):
        raise _err(node, f"elementwise op on sizes {in_sizes} -> {node.size}")
    if op == "constant":
        v = a.get("value")
        if not isinstance(v, torch.Tensor) or v.numel() != node.size:
            raise _err(node, "constant value missing or of wrong size")
    elif op == "linear":
        w = a["weight"]
        if w.dim() != 2 or tuple(w.shape) != (node.size, in_sizes[0]):
            raise _err(node, f"weight shape {tuple(w.shape)} != {(node.size, in_sizes[0])}")
        b = a.get("bias")
        if b is not None and b.numel() != node.size:
            raise _err(node, f"bias of size {b.numel()} != {node.size}")
    elif op == "sparse_linear":
        rows, cols, vals = a["rows"], a["cols"], a["vals"]
        if not (rows.dim() == cols.dim() == vals.dim() == 1) or not (
            rows.numel() == cols.numel() == vals.numel()
        ):
            raise _err(node, "rows, cols, vals must be 1-D of equal length")
        if rows.numel() and (int(rows.min()) < 0 or int(rows.max()) >= node.size):
            raise _err(node, f"row index out of range [0, {node.size})")
        if cols.numel() and (int(cols.min()) < 0 or int(cols.max()) >= in_sizes[0]):
            raise _err(node, f"column index out of range [0, {in_sizes[0]})")
        b = a.get("bias")
        if b is not None and b.numel() != node.size:
            raise _err(node, f"bias of size {b.numel()} != {node.size}")
    elif op in ("scale", "add_const"):
        key = "coef" if op == "scale" else "const"
        if a[key].numel() != node.size:
            raise _err(node, f"{key} of size {a[key].numel()} != {node.size}")
    elif op == "gather":
        idx = a["index"]
        if idx.dim() != 1 or idx.numel() != node.size:
            raise _err(node, "index must be 1-D of the output size")
        if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= in_sizes[0]):
            raise _err(node, f"index out of range [0, {in_sizes[0]})")
    elif op == "concat":
        if sum(in_sizes) != node.size:
            raise _err(node, f"sizes {in_sizes} do not add up to {node.size}")
    elif op == "reshape":
        if in_sizes[0] != node.size:
            raise _err(node, f"reshape of size {in_sizes[0]} to {node.size}")
    elif op == "pwl":
        br, wt, sl, bi = (a.get(k) for k in ("breaks", "weights", "slope", "bias"))
        if not all(isinstance(t, torch.Tensor) for t in (br, wt, sl, bi)):
            raise _err(node, "pwl needs tensors breaks, weights, slope and bias")
        if br.dim() != 2 or tuple(wt.shape) != tuple(br.shape) or br.shape[0] != node.size:
            raise _err(node, f"breaks/weights must both be ({node.size}, K), got "
                             f"{tuple(br.shape)} and {tuple(wt.shape)}")
        if sl.numel() != node.size or bi.numel() != node.size:
            raise _err(node, f"slope and bias must have {node.size} entries")
        if br.shape[1] > 1 and bool((br[:, 1:] < br[:, :-1]).any()):
            raise _err(node, "breaks must be sorted along each row")
    elif op == "pow":
        k = a.get("k")
        if not isinstance(k, int) or k < 2:
            raise _err(node, f"pow needs an integer exponent k >= 2, got {k!r}")
    elif op == "softplus" and a.get("threshold") is not None:
        t = a["threshold"]
        if not isinstance(t, float) or not math.isfinite(t):
            raise _err(node, f"softplus threshold must be a finite float, got {t!r}")
    # numpy's check is single-threaded and ~100x cheaper than torch's on busy CPUs
    if any(
        isinstance(v, torch.Tensor)
        and v.is_floating_point()
        and not np.isfinite(v.detach().cpu().numpy()).all()
        for v in a.values()
    ):
        raise _err(node, "non-finite constant in attributes")


@dataclass(frozen=True, eq=False)
class Graph:
    """An immutable graph: ``nodes`` in topological order, ``outputs`` node ids.

    Build one with :class:`gridverify.ir.GraphBuilder`.
    """

    nodes: tuple[Node, ...]
    outputs: tuple[int, ...]
    output_names: tuple[str, ...]
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        sizes: list[int] = []
        names: set[str] = set()
        for k, node in enumerate(self.nodes):
            if node.id != k:
                raise _err(node, f"node id {node.id} at position {k}")
            validate_node(node, sizes)
            sizes.append(node.size)
            if node.op == "input":
                if node.name in names:
                    raise _err(node, "duplicate input name")
                names.add(node.name)
        if not self.outputs:
            raise GraphError("graph has no outputs")
        for o in self.outputs:
            if not (0 <= o < len(self.nodes)):
                raise GraphError(f"output #{o} is not a node")
        if len(self.output_names) != len(self.outputs):
            raise GraphError("output_names and outputs differ in length")

    def __getstate__(self) -> dict:
        """Pickle/deepcopy state without the cache (rebuilt on use; CSR tensors don't pickle)."""
        state = dict(self.__dict__)
        state["_cache"] = {}
        return state

    # ------------------------------------------------------------------ queries
    @property
    def inputs(self) -> list[int]:
        """Ids of the input nodes, in creation order."""
        return [n.id for n in self.nodes if n.op == "input"]

    @property
    def input_names(self) -> list[str]:
        """Names of the input nodes, in creation order."""
        return [self.nodes[i].name for i in self.inputs]

    @property
    def input_size(self) -> int:
        """Total flat size of all inputs (concatenated in creation order)."""
        return sum(self.nodes[i].size for i in self.inputs)

    @property
    def output_size(self) -> int:
        """Total flat size of all outputs (concatenated in order)."""
        return sum(self.nodes[o].size for o in self.outputs)

    def __len__(self) -> int:
        return len(self.nodes)

    def digest(self) -> str:
        """sha256 of the function the graph computes, as written: every node's op,
        inputs, shape and constants (their dtype, shape and bytes), the outputs.
        Node and output names are left out (they change no value)."""
        import hashlib

        h = hashlib.sha256()
        for node in self.nodes:
            h.update(f"{node.op}|{node.inputs}|{node.size}|{node.shape}|".encode())
            for key in sorted(node.attrs):
                h.update(key.encode())
                _digest_value(h, node.attrs[key])
        h.update(str(self.outputs).encode())
        return h.hexdigest()

    def __repr__(self) -> str:
        return (
            f"Graph({len(self.nodes)} nodes, inputs={self.input_names}, "
            f"outputs={list(self.output_names)})"
        )

    # ---------------------------------------------------------------- constants
    def attr(self, node: Node, key: str, dtype: torch.dtype, device: torch.device) -> Any:
        """Attribute ``key`` of ``node`` cast to ``dtype`` (floats) on ``device`` (cached)."""
        ck = (node.id, key, dtype, device)
        hit = self._cache.get(ck)
        if hit is not None:
            return hit
        v = node.attrs[key]
        if isinstance(v, torch.Tensor):
            v = v.to(device=device, dtype=dtype) if v.is_floating_point() else v.to(device)
        self._cache[ck] = v
        return v

    # --------------------------------------------------------------- evaluation
    def split_inputs(
        self,
        x: GraphInput,
        dtype: torch.dtype,
        device: torch.device | str | None,
    ) -> dict[int, torch.Tensor]:
        """Map user input(s) to ``{input_id: (B, size)}`` tensors.

        ``x`` is one tensor over all inputs concatenated, a dict by input name or
        a sequence in input order; a missing batch dimension is added.
        """
        ids = self.inputs
        if isinstance(x, Mapping):
            missing = [self.nodes[i].name for i in ids if self.nodes[i].name not in x]
            if missing:
                raise GraphError(f"missing graph inputs {missing}")
            parts = [torch.as_tensor(x[self.nodes[i].name]) for i in ids]
        elif isinstance(x, torch.Tensor):
            xt = x
            if xt.dim() > 2 or xt.dim() == 0:
                xt = xt.reshape(-1, self.input_size) if xt.dim() > 2 else xt.reshape(1, 1)
            if xt.dim() == 1:
                xt = xt.unsqueeze(0)
            if xt.shape[-1] != self.input_size:
                raise GraphError(
                    f"input has {xt.shape[-1]} entries, graph inputs total {self.input_size}"
                )
            parts = list(torch.split(xt, [self.nodes[i].size for i in ids], dim=-1))
        else:
            parts = [torch.as_tensor(p) for p in x]
            if len(parts) != len(ids):
                raise GraphError(f"{len(parts)} inputs given, graph has {len(ids)}")
        out: dict[int, torch.Tensor] = {}
        batch = None
        for i, p in zip(ids, parts):
            size = self.nodes[i].size
            if p.dim() == 1 or (p.dim() == 0 and size == 1):
                p = p.reshape(1, -1)
            elif p.dim() > 2:
                p = p.reshape(p.shape[0], -1)
            if p.shape[-1] != size:
                raise GraphError(
                    f"input {self.nodes[i].name!r} has {p.shape[-1]} entries, expected {size}"
                )
            if batch is not None and p.shape[0] != batch and p.shape[0] != 1 and batch != 1:
                raise GraphError("inputs have different batch sizes")
            batch = p.shape[0] if batch in (None, 1) else batch
            out[i] = p.to(device=device, dtype=dtype)
        if batch is not None:
            out = {i: (v.expand(batch, -1) if v.shape[0] != batch else v) for i, v in out.items()}
        return out

    def _prepare_inputs(
        self,
        x: GraphInput,
        dtype: torch.dtype,
        device: torch.device | str | None,
    ) -> tuple[dict[int, torch.Tensor], int, torch.device]:
        """The inputs by node id (see :meth:`split_inputs`), the batch size and the device.

        ``device=None``: the device of a tensor ``x``, else the CPU.
        """
        if device is None:
            device = x.device if isinstance(x, torch.Tensor) else torch.device("cpu")
        device = torch.device(device)
        inputs = self.split_inputs(x, dtype, device)
        batch = next(iter(inputs.values())).shape[0] if inputs else 1
        return inputs, batch, device

    def evaluate_all(
        self,
        x: GraphInput,
        dtype: torch.dtype = torch.float64,
        device: torch.device | str | None = None,
    ) -> list[torch.Tensor]:
        """Value of every node, ``(B, size)`` each, indexed by node id."""
        vals = self._forward_fm(x, dtype, device, keep_all=True)
        return [vals[node.id].T for node in self.nodes]

    def evaluate(
        self,
        x: GraphInput,
        dtype: torch.dtype = torch.float64,
        device: torch.device | str | None = None,
    ) -> list[torch.Tensor]:
        """Values of the outputs, ``(B, size)`` each, in output order."""
        vals = self._forward_fm(x, dtype, device)
        return [vals[o].T for o in self.outputs]

    def _forward_fm(
        self,
        x: GraphInput,
        dtype: torch.dtype,
        device: torch.device | str | None,
        keep_all: bool = False,
    ) -> dict[int, torch.Tensor]:
        """Node values by id, feature-major ``(size, B)`` (see :func:`forward_node_fm`):
        every node's with ``keep_all``, else the outputs' (only the nodes they depend
        on are computed, and a value is dropped after its last use)."""
        inputs, batch, device = self._prepare_inputs(x, dtype, device)
        needed = None if keep_all else self.ancestors(self.outputs)
        last_use: dict[int, int] = {}
        for node in self.nodes:
            for i in node.inputs:
                last_use[i] = node.id
        keep = set(self.outputs)
        vals: dict[int, torch.Tensor] = {}
        for node in self.nodes:
            if needed is not None and node.id not in needed:
                continue
            if node.op == "input":
                vals[node.id] = inputs[node.id].T.contiguous()
            else:
                vals[node.id] = forward_node_fm(
                    self, node, [vals[i] for i in node.inputs], batch, dtype, device
                )
            if keep_all:
                continue
            for i in node.inputs:
                if last_use.get(i) == node.id and i not in keep:
                    vals.pop(i, None)
        return vals

    def evaluate_flat(
        self,
        x: GraphInput,
        dtype: torch.dtype = torch.float64,
        device: torch.device | str | None = None,
    ) -> torch.Tensor:
        """All outputs concatenated, ``(B, output_size)`` (a transposed view of a
        contiguous ``(output_size, B)`` tensor)."""
        vals = self._forward_fm(x, dtype, device)
        return torch.cat([vals[o] for o in self.outputs], dim=0).T

    def eval_chunk(self, dtype: torch.dtype, device: torch.device | str | None) -> int | None:
        """Points per evaluation for cache-friendly batches on ``device``, ``None`` for
        no limit (a GPU).

        On the CPU a batch whose node values outgrow the caches runs slower per
        point (case118's certify graph, forward and backward: about twice the
        loads per second in chunks of 394 points as in batches of 3,348;
        ``benchmarks/graph_eval.py``): callers that evaluate many points split
        them into chunks whose node values take about :data:`CPU_CHUNK_BYTES`
        (at least 64 points).
        """
        if torch.device(device if device is not None else "cpu").type != "cpu":
            return None
        per_point = sum(n.size for n in self.nodes) * torch.finfo(dtype).bits // 8
        return max(64, CPU_CHUNK_BYTES // max(per_point, 1))

    def ancestors(self, nodes: Sequence[int]) -> set[int]:
        """Ids of ``nodes`` and every node they depend on."""
        seen: set[int] = set()
        stack = list(nodes)
        while stack:
            n = stack.pop()
            if n in seen:
                continue
            seen.add(n)
            stack.extend(self.nodes[n].inputs)
        return seen


#: node values per evaluation chunk on the CPU (see :meth:`Graph.eval_chunk`)
CPU_CHUNK_BYTES = 32 << 20


def forward_node_fm(
    graph: Graph,
    node: Node,
    xs: Sequence[torch.Tensor],
    batch: int,
    dtype: torch.dtype,
    device: torch.device,
) -> torch.Tensor:
    """Value ``(size, B)`` of ``node`` from its feature-major input values ``(n_i, B)``.

    The graph evaluators hold values in this layout: a ``gather`` or ``concat``
    then moves whole contiguous rows, and a ``sparse_linear`` is one CSR-by-dense
    product with a contiguous result (:func:`sparse_forward_fm`); on the physics
    graphs of the larger cases that is faster than batch-major values, forward
    and backward (docs/scaling.md).  Every op's semantics are written here once.
    """
    op = node.op
    if op == "constant":
        return graph.attr(node, "value", dtype, device).reshape(-1, 1).expand(-1, batch)
    if op == "linear":
        w = graph.attr(node, "weight", dtype, device)
        if node.attrs.get("bias") is not None:
            return torch.addmm(graph.attr(node, "bias", dtype, device).reshape(-1, 1), w, xs[0])
        return w @ xs[0]
    if op == "sparse_linear":
        return sparse_forward_fm(graph, node, xs[0], dtype, device)
    if op == "add":
        return xs[0] + xs[1]
    if op == "sub":
        return xs[0] - xs[1]
    if op == "neg":
        return -xs[0]
    if op == "scale":
        return xs[0] * graph.attr(node, "coef", dtype, device).reshape(-1, 1)
    if op == "add_const":
        return xs[0] + graph.attr(node, "const", dtype, device).reshape(-1, 1)
    if op == "gather":
        return xs[0].index_select(0, graph.attr(node, "index", dtype, device))
    if op == "concat":
        return torch.cat(list(xs), dim=0)
    if op == "reshape":
        return xs[0]
    if op == "mul":
        return xs[0] * xs[1]
    if op == "pow":
        return xs[0] ** int(node.attrs["k"])
    if op == "pwl":  # its parameters are per entry: batch-major for pwl_forward
        return pwl_forward(xs[0].T, *(graph.attr(node, k, dtype, device)
                                      for k in ("breaks", "weights", "slope", "bias"))).T
    if op == "softplus":
        return softplus(xs[0], node.attrs.get("threshold"))
    if op in UNARY_NONLINEAR:
        return OPS[op].func(xs[0])  # type: ignore[misc]
    raise _err(node, "cannot evaluate op")  # pragma: no cover


def csr_matmul(w: torch.Tensor, x: torch.Tensor, bias: torch.Tensor | None = None
               ) -> torch.Tensor:
    """``w @ x (+ bias)`` for a CSR ``w`` and a dense ``x`` as one ``addmm``: several
    times faster than ``w @ x`` on the CPU (case118's constraint rows: 0.57 ms
    against 3.7 ms for 394 points, ``benchmarks/graph_eval.py``), same values."""
    if bias is None:
        bias = x.new_zeros(w.shape[0], 1)
    return torch.addmm(bias, w, x)


class _CsrProduct(torch.autograd.Function):
    """``W @ X + b`` for a CSR matrix ``W``, a dense ``X`` and a constant column ``b``;
    the backward multiplies by the cached CSR transpose ``Wt`` (autograd would
    transpose ``W`` on every call)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, w: torch.Tensor, wt: torch.Tensor,
                bias: torch.Tensor | None) -> torch.Tensor:
        ctx.wt = wt
        return csr_matmul(w, x, bias)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None, None]:
        return csr_matmul(ctx.wt, grad.contiguous()), None, None, None


def sparse_forward_fm(
    graph: Graph, node: Node, x: torch.Tensor, dtype: torch.dtype, device: torch.device
) -> torch.Tensor:
    """``y[r] = sum_k vals[k] x[cols[k]] (+ bias)`` of a ``sparse_linear`` node, feature-major:
    ``(size, B)`` from ``(in, B)``.

    float32/float64 values go through a cached CSR matrix (:func:`csr_matmul`; no
    ``(nnz, B)`` intermediate), with the cached transpose in the backward; other
    dtypes through :func:`sparse_forward_gather`.
    """
    bias = None
    if node.attrs.get("bias") is not None:
        bias = graph.attr(node, "bias", dtype, device).reshape(-1, 1)
    if dtype in (torch.float32, torch.float64) and x.dtype == dtype:
        w = _csr(graph, node, dtype, device)
        if x.requires_grad:
            return _CsrProduct.apply(x, w, _csr(graph, node, dtype, device, transpose=True),
                                     bias)
        return csr_matmul(w, x, bias)
    y = sparse_forward_gather(graph, node, x.T, dtype, device).T
    return y if bias is None else y + bias


def _csr(graph: Graph, node: Node, dtype: torch.dtype, device: torch.device,
         transpose: bool = False) -> torch.Tensor:
    """The ``(size, in)`` matrix of a ``sparse_linear`` node in CSR form (cached per dtype);
    with ``transpose`` its ``(in, size)`` transpose."""
    ck = (node.id, "_csr_t" if transpose else "_csr", dtype, device)
    hit = graph._cache.get(ck)
    if hit is None:
        rows = graph.attr(node, "rows", dtype, device)
        cols = graph.attr(node, "cols", dtype, device)
        vals = graph.attr(node, "vals", dtype, device)
        n_in = graph.nodes[node.inputs[0]].size
        idx, shape = torch.stack([rows, cols]), (node.size, n_in)
        if transpose:
            idx, shape = torch.stack([cols, rows]), (n_in, node.size)
        with warnings.catch_warnings():  # "sparse CSR support is in beta"
            warnings.simplefilter("ignore", UserWarning)
            coo = torch.sparse_coo_tensor(idx, vals, shape, check_invariants=True)
            hit = coo.coalesce().to_sparse_csr()
        graph._cache[ck] = hit
    return hit


def sparse_transpose_apply(
    graph: Graph, node: Node, a: torch.Tensor, dtype: torch.dtype, device: torch.device
) -> torch.Tensor:
    """``a @ W`` for the ``(size, in)`` matrix ``W`` of a ``sparse_linear`` node.

    ``a`` is ``(..., size)`` (coefficients of a backward bound walk); the result
    ``(..., in)``.  One CSR product (time ``O(rows(a) * nnz)``, no ``(rows, nnz)``
    intermediate), differentiable in ``a``.
    """
    a2 = a.reshape(-1, a.shape[-1])
    out = csr_matmul(_csr(graph, node, dtype, device, transpose=True), a2.T).T
    return out.reshape(*a.shape[:-1], graph.nodes[node.inputs[0]].size)


def sparse_forward_gather(
    graph: Graph, node: Node, x: torch.Tensor, dtype: torch.dtype, device: torch.device,
    vals: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """``sparse_linear`` without bias: a ``(batch, nnz)`` gather, then ``index_add`` (any
    dtype); ``vals`` maps the entries first (e.g. ``torch.abs`` for ``|W| x``)."""
    rows = graph.attr(node, "rows", dtype, device)
    cols = graph.attr(node, "cols", dtype, device)
    v = graph.attr(node, "vals", dtype, device)
    vals = v if vals is None else vals(v)
    y = x.new_zeros(*x.shape[:-1], node.size)
    y.index_add_(-1, rows, x.index_select(-1, cols) * vals)
    return y
