"""Building gridverify graphs: :class:`GraphBuilder` and :func:`compose`.

The builder returns integer node handles, validates every node as it is added
(``GraphError`` naming the op and node), folds ops whose inputs are all
constants, folds constant operands of binary ops into ``scale``/``add_const``,
and lowers convenience ops to primitives:

* ``maximum(a, c) = c + relu(a - c)``, ``minimum(a, c) = a - relu(a - c)``,
  ``clamp(x, lo, hi) = hi - relu(hi - lo - relu(x - lo))`` (one side when the
  other is ``None``);
* ``slice`` to ``gather``; ``sum`` to ``sparse_linear``; ``div`` to ``mul`` by
  ``reciprocal`` (or ``scale`` by ``1/c`` for a constant divisor);
* ``pow(a, 2)`` to ``square``; ``mul(a, a)`` to ``square``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from gridverify.errors import GraphError
from gridverify.ir.graph import Graph, Node, forward_node_fm, validate_node
from gridverify.ir.ops import OPS

TensorLike = Any  # torch.Tensor, numpy array, list or float


def _f64(x: TensorLike) -> torch.Tensor:
    # python floats/lists must not pass through float32 (torch's default dtype)
    if isinstance(x, np.ndarray):  # copy: read-only arrays (compiled cases) warn in torch
        x = np.array(x, dtype=np.float64)
    t = x if isinstance(x, torch.Tensor) else torch.as_tensor(x, dtype=torch.float64)
    return t.detach().to(device="cpu", dtype=torch.float64).clone()


def _i64(x: TensorLike) -> torch.Tensor:
    if isinstance(x, np.ndarray):  # copy: read-only arrays warn in torch
        x = np.array(x)
    t = torch.as_tensor(x)
    if t.is_floating_point():
        if not torch.equal(t, t.round()):
            raise GraphError("index tensor has non-integer entries")
    return t.detach().to(device="cpu", dtype=torch.int64).reshape(-1).clone()


class GraphBuilder:
    """Incremental builder of a :class:`Graph` (see ``docs/ir.md``).

    ``GraphBuilder(graph)`` starts from a copy of an existing graph's nodes (its
    outputs are not kept), so a graph can be extended.
    """

    def __init__(self, graph: Graph | None = None) -> None:
        self._nodes: list[Node] = []
        self._outputs: list[int] = []
        self._output_names: list[str] = []
        if graph is not None:
            self._nodes = list(graph.nodes)

    # ------------------------------------------------------------------ basics
    def __len__(self) -> int:
        return len(self._nodes)

    def size(self, h: int) -> int:
        """Flat size of node ``h``."""
        return self._node(h).size

    def node(self, h: int) -> Node:
        """The node with handle ``h``."""
        return self._node(h)

    def inline(self, graph: Graph, bind: Mapping[int, int]) -> dict[int, int]:
        """Copy the nodes of ``graph`` into this builder; an input node of ``graph``
        whose id is in ``bind`` stands for the handle it maps to here (same size),
        the other inputs become inputs here.  Returns ``{node id of graph: handle}``
        for every node of ``graph`` (its outputs are not made outputs here)."""
        mapping: dict[int, int] = {}
        for node in graph.nodes:
            if node.id in bind:
                h = bind[node.id]
                if node.op != "input" or self._node(h).size != node.size:
                    raise GraphError(f"inline: node {node.name!r} of size {node.size} bound "
                                     f"to a node of size {self._node(h).size}")
                mapping[node.id] = h
                continue
            nid = len(self._nodes)
            new = Node(nid, node.op, tuple(mapping[i] for i in node.inputs), node.attrs,
                       node.size, node.shape, node.name)
            validate_node(new, [n.size for n in self._nodes])
            self._nodes.append(new)
            mapping[node.id] = nid
        return mapping

    def _node(self, h: int) -> Node:
        if not isinstance(h, int) or not (0 <= h < len(self._nodes)):
            raise GraphError(f"{h!r} is not a node handle of this builder")
        return self._nodes[h]

    def _is_const(self, h: int) -> bool:
        return self._node(h).op == "constant"

    def _const(self, h: int) -> torch.Tensor:
        return self._node(h).attrs["value"]

    def _add(
        self,
        op: str,
        inputs: Sequence[int],
        attrs: Mapping[str, Any] | None = None,
        size: int | None = None,
        shape: Sequence[int] | None = None,
        name: str | None = None,
    ) -> int:
        inputs = tuple(int(i) for i in inputs)
        for i in inputs:
            self._node(i)
        if size is None:
            size = self._nodes[inputs[0]].size if inputs else 0
        if shape is None:
            shape = (size,)
        nid = len(self._nodes)
        node = Node(
            id=nid,
            op=op,
            inputs=inputs,
            attrs=dict(attrs or {}),
            size=int(size),
            shape=tuple(int(s) for s in shape),
            name=name or f"{op}_{nid}",
        )
        validate_node(node, [n.size for n in self._nodes])
        # fold ops whose inputs are all constants
        if inputs and op != "constant" and all(self._is_const(i) for i in inputs):
            tmp = Graph((*self._nodes, node), (nid,), ("_",))
            vals = [self._const(i).reshape(-1, 1) for i in inputs]  # (size, batch 1)
            v = forward_node_fm(tmp, node, vals, 1, torch.float64, torch.device("cpu"))
            node = Node(nid, "constant", (), {"value": v.reshape(-1).clone()}, node.size,
                        node.shape, node.name)
            validate_node(node, [n.size for n in self._nodes])
        self._nodes.append(node)
        return nid

    # ------------------------------------------------------------------ sources
    def input(self, name: str, size: int, shape: Sequence[int] | None = None) -> int:
        """A graph input of flat ``size`` (names must be unique)."""
        if any(n.op == "input" and n.name == name for n in self._nodes):
            raise GraphError(f"duplicate input name {name!r}")
        return self._add("input", (), size=size, shape=shape, name=name)

    def constant(self, value: TensorLike, name: str | None = None) -> int:
        """A constant node (no batch dependence)."""
        v = _f64(value)
        return self._add("constant", (), {"value": v.reshape(-1)}, size=v.numel(),
                         shape=tuple(v.shape) if v.dim() else (1,), name=name)

    # ------------------------------------------------------------------ affine
    def linear(self, x: int, weight: TensorLike, bias: TensorLike | None = None,
               name: str | None = None) -> int:
        """Dense ``x @ W.T + bias`` with ``W`` of shape ``(out, in)``."""
        w = _f64(weight)
        if w.dim() != 2:
            raise GraphError(f"linear weight must be 2-D, got shape {tuple(w.shape)}")
        b = None if bias is None else _f64(bias).reshape(-1)
        return self._add("linear", (x,), {"weight": w, "bias": b}, size=w.shape[0], name=name)

    def sparse_linear(self, x: int, rows: TensorLike, cols: TensorLike, vals: TensorLike,
                      out_size: int, bias: TensorLike | None = None,
                      name: str | None = None) -> int:
        """``y[rows[k]] += vals[k] * x[cols[k]]`` (+ bias), size ``out_size``."""
        r, c = _i64(rows), _i64(cols)
        v = _f64(vals).reshape(-1)
        if v.numel() == 1 and r.numel() != 1:
            v = v.expand(r.numel()).clone()
        b = None if bias is None else _f64(bias).reshape(-1)
        if b is not None and b.numel() == 1 and out_size != 1:
            b = b.expand(out_size).clone()
        return self._add("sparse_linear", (x,), {"rows": r, "cols": c, "vals": v, "bias": b},
                         size=out_size, name=name)

    def _full(self, h: int, c: TensorLike, what: str) -> torch.Tensor:
        v = _f64(c).reshape(-1)
        n = self._node(h).size
        if v.numel() == 1:
            return v.expand(n).clone()
        if v.numel() != n:
            raise GraphError(f"{what} of size {v.numel()} does not broadcast to size {n} "
                             f"of node {self._node(h).name!r}")
        return v

    def scale(self, a: int, coef: TensorLike, name: str | None = None) -> int:
        """Elementwise ``a * coef`` for a constant ``coef`` (scalar or of a's size)."""
        return self._add("scale", (a,), {"coef": self._full(a, coef, "coef")}, name=name)

    def add_const(self, a: int, const: TensorLike, name: str | None = None) -> int:
        """Elementwise ``a + const``."""
        return self._add("add_const", (a,), {"const": self._full(a, const, "const")}, name=name)

    def _same(self, a: int, c: int, op: str) -> None:
        sa, sc = self._node(a).size, self._node(c).size
        if sa != sc:
            raise GraphError(f"{op} of nodes {self._node(a).name!r} (size {sa}) and "
                             f"{self._node(c).name!r} (size {sc}): sizes differ")

    def add(self, a: int, c: int, name: str | None = None) -> int:
        """``a + c`` (equal sizes)."""
        self._same(a, c, "add")
        if self._is_const(c) and not self._is_const(a):
            return self.add_const(a, self._const(c), name=name)
        if self._is_const(a) and not self._is_const(c):
            return self.add_const(c, self._const(a), name=name)
        return self._add("add", (a, c), name=name)

    def sub(self, a: int, c: int, name: str | None = None) -> int:
        """``a - c`` (equal sizes)."""
        self._same(a, c, "sub")
        if self._is_const(c) and not self._is_const(a):
            return self.add_const(a, -self._const(c), name=name)
        if self._is_const(a) and not self._is_const(c):
            return self.add_const(self.neg(c), self._const(a), name=name)
        return self._add("sub", (a, c), name=name)

    def neg(self, a: int, name: str | None = None) -> int:
        """``-a``."""
        return self._add("neg", (a,), name=name)

    def gather(self, a: int, index: TensorLike, name: str | None = None) -> int:
        """``out[k] = a[index[k]]`` (1-D int64 index)."""
        idx = _i64(index)
        return self._add("gather", (a,), {"index": idx}, size=idx.numel(), name=name)

    def slice(self, a: int, start: int, stop: int, step: int = 1,
              name: str | None = None) -> int:
        """``a[start:stop:step]`` on the flat vector (lowered to gather)."""
        idx = torch.arange(self._node(a).size)[slice(start, stop, step)]
        return self.gather(a, idx, name=name)

    def concat(self, parts: Sequence[int], name: str | None = None) -> int:
        """Flat concatenation of ``parts``."""
        parts = list(parts)
        if len(parts) == 1:
            return parts[0]
        size = sum(self._node(p).size for p in parts)
        return self._add("concat", parts, size=size, name=name)

    def reshape(self, a: int, shape: Sequence[int], name: str | None = None) -> int:
        """Metadata-only reshape (the flat value is unchanged)."""
        shape = tuple(int(s) for s in shape)
        if math.prod(shape) != self._node(a).size:
            raise GraphError(f"cannot reshape node {self._node(a).name!r} of size "
                             f"{self._node(a).size} to {shape}")
        return self._add("reshape", (a,), shape=shape, name=name)

    def sum(self, a: int, name: str | None = None) -> int:
        """Sum of all entries (size 1), lowered to sparse_linear."""
        n = self._node(a).size
        return self.sparse_linear(a, torch.zeros(n, dtype=torch.int64), torch.arange(n),
                                  torch.ones(n), 1, name=name)

    # --------------------------------------------------------------- nonlinear
    def mul(self, a: int, c: int, name: str | None = None) -> int:
        """Elementwise product of two variables (a constant operand becomes scale)."""
        self._same(a, c, "mul")
        if self._is_const(c) and not self._is_const(a):
            return self.scale(a, self._const(c), name=name)
        if self._is_const(a) and not self._is_const(c):
            return self.scale(c, self._const(a), name=name)
        if a == c:
            return self.square(a, name=name)
        return self._add("mul", (a, c), name=name)

    def div(self, a: int, c: int, name: str | None = None) -> int:
        """``a / c`` = ``a * reciprocal(c)`` (``c`` needs a positive interval to bound)."""
        self._same(a, c, "div")
        if self._is_const(c):
            return self.scale(a, 1.0 / self._const(c), name=name)
        return self.mul(a, self.reciprocal(c), name=name)

    def _unary(self, op: str, a: int, name: str | None) -> int:
        return self._add(op, (a,), name=name)

    def unary(self, op: str, a: int, name: str | None = None) -> int:
        """Elementwise unary ``op`` of the op table (:data:`~gridverify.ir.ops.OPS`):
        ``relu``, ``sin``, ``atan``...; also ``neg`` and ``square``.  ``pow`` and
        ``pwl`` take attributes: use :meth:`pow` and :meth:`pwl`."""
        info = OPS.get(op)
        if info is None or info.arity != 1 or not info.elementwise or op in ("pow", "pwl") \
                or not (info.nonlinear or op == "neg"):
            raise GraphError(f"unary: {op!r} is not a unary elementwise op of the op table")
        if op == "neg":
            return self.neg(a, name)
        return self._unary(op, a, name)

    def square(self, a: int, name: str | None = None) -> int:
        """``a ** 2``."""
        return self._unary("square", a, name)

    def pow(self, a: int, k: int, name: str | None = None) -> int:
        """``a ** k`` for an integer ``k`` (0 and 1 fold; 2 is square)."""
        if int(k) != k:
            raise GraphError(f"pow at node {name!r}: exponent {k!r} is not an integer")
        k = int(k)
        if k == 0:
            return self.constant(torch.ones(self._node(a).size), name=name)
        if k == 1:
            return a
        if k == 2:
            return self.square(a, name=name)
        if k < 0:
            return self.reciprocal(self.pow(a, -k), name=name)
        return self._add("pow", (a,), {"k": k}, name=name)

    def softplus(self, a: int, threshold: float | None = None, name: str | None = None) -> int:
        """``log(1 + exp(a))``; with a finite ``threshold``, ``a`` where ``a > threshold``
        (torch's softplus; :func:`gridverify.ir.ops.softplus`)."""
        if threshold is None:
            return self._unary("softplus", a, name)
        t = float(threshold)
        if not math.isfinite(t):
            raise GraphError(f"softplus at node {name!r}: threshold {threshold!r} is not finite")
        return self._add("softplus", (a,), {"threshold": t}, name=name)

    def sin(self, a: int, name: str | None = None) -> int:
        """``sin(a)``."""
        return self._unary("sin", a, name)

    def cos(self, a: int, name: str | None = None) -> int:
        """``cos(a)``."""
        return self._unary("cos", a, name)

    def relu(self, a: int, name: str | None = None) -> int:
        """``max(a, 0)``."""
        return self._unary("relu", a, name)

    def sigmoid(self, a: int, name: str | None = None) -> int:
        """Logistic sigmoid."""
        return self._unary("sigmoid", a, name)

    def tanh(self, a: int, name: str | None = None) -> int:
        """Hyperbolic tangent."""
        return self._unary("tanh", a, name)

    def erf(self, a: int, name: str | None = None) -> int:
        """Gauss error function."""
        return self._unary("erf", a, name)

    def exp(self, a: int, name: str | None = None) -> int:
        """``exp(a)``."""
        return self._unary("exp", a, name)

    def reciprocal(self, a: int, name: str | None = None) -> int:
        """``1 / a`` (bounded only on positive intervals)."""
        return self._unary("reciprocal", a, name)

    def sqrt(self, a: int, name: str | None = None) -> int:
        """``sqrt(a)`` (bounded only on positive intervals)."""
        return self._unary("sqrt", a, name)

    def floor(self, a: int, name: str | None = None) -> int:
        """``floor(a)``."""
        return self._unary("floor", a, name)

    def pwl(self, a: int, breaks: TensorLike, weights: TensorLike,
            slope: TensorLike | None = None, bias: TensorLike | None = None,
            name: str | None = None) -> int:
        """Piecewise-linear ``bias + slope * a + sum_k weights[:, k] relu(a - breaks[:, k])``.

        ``breaks``/``weights``: ``(K,)`` (shared by every entry) or ``(size, K)``;
        ``slope``/``bias``: scalars or ``(size,)`` (default 0).  Each row is sorted
        by its breaks (weights follow).
        """
        n = self._node(a).size
        br, wt = _f64(breaks), _f64(weights)
        if br.dim() == 1:
            br = br.reshape(1, -1).expand(n, -1).clone()
        if wt.dim() == 1:
            wt = wt.reshape(1, -1).expand(n, -1).clone()
        if br.shape != wt.shape:
            raise GraphError(f"pwl at node {name!r}: breaks {tuple(br.shape)} and weights "
                             f"{tuple(wt.shape)} differ")
        order = torch.argsort(br, dim=-1, stable=True) if br.dim() == 2 else None
        if order is not None:
            br, wt = br.gather(-1, order), wt.gather(-1, order)

        def vec(v: TensorLike | None) -> torch.Tensor:
            t = torch.zeros(n, dtype=torch.float64) if v is None else _f64(v).reshape(-1)
            return t.expand(n).clone() if t.numel() == 1 else t

        attrs = {"breaks": br, "weights": wt, "slope": vec(slope), "bias": vec(bias)}
        return self._add("pwl", (a,), attrs, name=name)

    # ----------------------------------------------------- lowered min/max/clamp
    def maximum(self, a: int, c: int, name: str | None = None) -> int:
        """``max(a, c) = c + relu(a - c)``."""
        return self.add(c, self.relu(self.sub(a, c)), name=name)

    def minimum(self, a: int, c: int, name: str | None = None) -> int:
        """``min(a, c) = a - relu(a - c)``."""
        return self.sub(a, self.relu(self.sub(a, c)), name=name)

    def extreme(self, op: str, nodes: Sequence[int]) -> int:
        """The elementwise ``op`` (``"maximum"`` / ``"minimum"``) of same-size nodes, as a
        balanced tree (depth ``ceil(log2 n)``, one relu per entry a level)."""
        if op not in ("maximum", "minimum") or not nodes:
            raise GraphError(f"extreme: {op!r} of {len(nodes)} node(s)")
        terms = list(nodes)
        while len(terms) > 1:
            paired = [getattr(self, op)(a, c) for a, c in zip(terms[::2], terms[1::2])]
            terms = paired + terms[len(paired) * 2:]
        return terms[0]

    def clamp(self, x: int, lo: TensorLike | None = None, hi: TensorLike | None = None,
              name: str | None = None) -> int:
        """``clamp(x, lo, hi) = hi - relu(hi - lo - relu(x - lo))`` (constant lo/hi; ``hi``
        where ``lo > hi``, as torch and ONNX clamp).

        The nested form (the min of a max) rather than ``lo + relu(x - lo) -
        relu(x - hi)``: the same function, whose intervals stay in ``[lo, hi]`` (the
        two relus of the sum are relaxed apart, so its interval is up to the input's
        width too wide) and whose CROWN bounds were never looser on random hardtanh,
        relu6, hardsigmoid and hardswish networks (up to 3.4x tighter)."""
        if lo is None and hi is None:
            return x
        if hi is None:
            lo_t = self._full(x, lo, "lo")
            return self.add_const(self.relu(self.add_const(x, -lo_t)), lo_t, name=name)
        hi_t = self._full(x, hi, "hi")
        if lo is None:  # min(x, hi) = x - relu(x - hi)
            return self.sub(x, self.relu(self.add_const(x, -hi_t)), name=name)
        # min(max(x, lo), hi) is hi where lo > hi (torch's and ONNX's clamp): so is
        # the clamp to [min(lo, hi), hi]
        lo_t = np.minimum(self._full(x, lo, "lo"), hi_t)
        r1 = self.relu(self.add_const(x, -lo_t))  # max(x, lo) - lo
        r2 = self.relu(self.add_const(self.neg(r1), hi_t - lo_t))  # hi - min(max(x, lo), hi)
        return self.add_const(self.neg(r2), hi_t, name=name)

    # ------------------------------------------------------------------ finish
    def output(self, node: int, name: str | None = None) -> int:
        """Mark ``node`` as an output (order kept); returns the node."""
        self._node(node)
        self._outputs.append(node)
        self._output_names.append(name or self._nodes[node].name)
        return node

    def build(self) -> Graph:
        """The immutable :class:`Graph` (validated)."""
        if not self._outputs:
            raise GraphError("graph has no outputs (call GraphBuilder.output)")
        return Graph(tuple(self._nodes), tuple(self._outputs), tuple(self._output_names))


def compose(
    outer: Graph,
    inner: Graph,
    bind: Mapping[str, int | str | tuple[Graph, int | str]],
    keep_inner_outputs: bool = False,
) -> Graph:
    """One graph where inner's outputs feed outer's inputs.

    ``bind`` maps an input name of ``outer`` to an output of ``inner`` given by
    index or name (or as ``(inner, index_or_name)``).  The composed graph's
    inputs are inner's inputs followed by outer's unbound inputs (names must not
    clash); its outputs are outer's outputs (preceded by inner's outputs when
    ``keep_inner_outputs``).
    """
    b = GraphBuilder(inner)
    bound: dict[int, int] = {}
    in_names = {inner.nodes[i].name for i in inner.inputs}
    for key in bind:
        if key not in outer.input_names:
            raise GraphError(f"compose: outer graph has no input named {key!r}")
    for node in outer.nodes:
        if node.op == "input" and node.name in bind:
            ref = bind[node.name]
            if isinstance(ref, tuple):
                if ref[0] is not inner:
                    raise GraphError(f"compose: binding of {node.name!r} names another graph")
                ref = ref[1]
            if isinstance(ref, str):
                if ref not in inner.output_names:
                    raise GraphError(f"compose: inner graph has no output named {ref!r}")
                ref = inner.output_names.index(ref)
            if not (0 <= int(ref) < len(inner.outputs)):
                raise GraphError(f"compose: inner output index {ref} out of range")
            src = inner.outputs[int(ref)]
            if inner.nodes[src].size != node.size:
                raise GraphError(
                    f"compose: input {node.name!r} of size {node.size} bound to inner output "
                    f"{inner.output_names[int(ref)]!r} of size {inner.nodes[src].size}"
                )
            bound[node.id] = src
        elif node.op == "input" and node.name in in_names:
            raise GraphError(f"compose: input name {node.name!r} exists in both graphs")
    mapping = b.inline(outer, bound)
    if keep_inner_outputs:
        for o, nm in zip(inner.outputs, inner.output_names):
            b.output(o, nm)
    for o, nm in zip(outer.outputs, outer.output_names):
        b.output(mapping[o], nm)
    return b.build()


def concat_outputs(g: Graph, name: str = "solution") -> Graph:
    """``g`` with its outputs concatenated, in order, into one output ``name``
    (``g`` itself when it has one output): a proxy's heads (``pg, qg, vm, va``)
    read one after the other, as its torch module returns them."""
    if len(g.outputs) <= 1:
        return g
    b = GraphBuilder(g)
    b.output(b.concat(list(g.outputs), name=name), name)
    return b.build()
