"""Import an ONNX model into the gridverify graph (IR).

The importer walks the ONNX nodes in their (topological) file order and keeps,
for every ONNX tensor, either a numpy constant or a :class:`Var` (an IR node
plus the tensor's per-sample shape).  Any node whose inputs are all constants is
evaluated with numpy at import time, so shape-computing subgraphs
(``Shape -> Gather -> Concat -> Reshape``) fold away.

Batch convention: a leading batch dimension in the file (fixed at 1, or
symbolic such as ``'N'`` / ``-1``) is treated as size 1 while importing; IR
values are flat per-sample vectors and the runtime batch of the IR replaces it.
Every structural op (Transpose, Slice, Gather, Expand, broadcasting, Concat along
an axis, Where) is lowered by applying the numpy op to an array of flat element
positions and emitting one IR ``gather`` (or nothing when it is the identity).

The tensor algebra (:class:`Lowering`) is shared with the torch importer.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from gridverify.errors import GraphError, UnsupportedOpError
from gridverify.ir import Graph, GraphBuilder
from gridverify.ir.lowering import (
    COMPARE_HINT,
    Compare,
    Lowering,
    Value,
    Var,
    _Unsupported,
    einsum_keeps_batch,
    prune,
)
from gridverify.ir.ops import OPS, UNARY_NONLINEAR
from gridverify.ir.pwl_merge import merge_pwl
from gridverify.ir.windows import same_pads

__all__ = ["Lowering", "Var", "from_onnx", "onnx_type_name", "prune"]

#: the default-domain opsets the importer implements (opset 7 replaced the legacy
#: ``broadcast``/``axis`` attributes of Add/Mul/... by numpy broadcasting; later
#: opsets than the highest here may change an op's semantics unseen)
OPSET_MIN, OPSET_MAX = 7, 22


def onnx_type_name(code: int) -> str:
    """The name of an ONNX tensor element type (``INT64``), or the code when unknown."""
    from onnx import TensorProto as TP

    return TP.DataType.Name(code) if code in TP.DataType.values() else str(code)


def _f32(v: float) -> float:
    """An ONNX float attribute's default: a float32 value (as onnxruntime reads it)."""
    return float(np.float32(v))


#: ONNX ops that broadcast their operands (numpy rules) elementwise
_BROADCASTING = frozenset({"Add", "Sub", "Mul", "Div", "Pow", "Where", "Sum", "Mean", "Max",
                           "Min", "PRelu"})
#: the batch message: per sample the graph would not be the model's function
_BATCH_HINT = ("of a model whose batch is dynamic: per sample it is not the function the "
               "model computes on a batch")


# ---------------------------------------------------------------------------
# ONNX
# ---------------------------------------------------------------------------

#: ONNX op type -> unary nonlinear op, from the op table
_UNARY_OPS = {info.onnx: name for name, info in OPS.items()
              if info.onnx is not None and name in UNARY_NONLINEAR}
_CONST_ONLY_OPS: dict[str, Callable[..., np.ndarray]] = {
    "Equal": np.equal, "Less": np.less, "Greater": np.greater, "LessOrEqual": np.less_equal,
    "GreaterOrEqual": np.greater_equal, "Not": np.logical_not, "And": np.logical_and,
    "Or": np.logical_or, "Xor": np.logical_xor, "Ceil": np.ceil, "Abs": np.abs,
    "Sign": np.sign,
}
_ALGEBRA: dict[str, Callable[[Lowering, list], Value]] = {
    "Identity": lambda lw, v: v[0],
    "Neg": lambda lw, v: lw.neg(v[0]),
    "Add": lambda lw, v: lw.add(v[0], v[1]),
    "Sub": lambda lw, v: lw.sub(v[0], v[1]),
    "Mul": lambda lw, v: lw.mul(v[0], v[1]),
    "Div": lambda lw, v: lw.div(v[0], v[1]),
    "Pow": lambda lw, v: lw.power(v[0], v[1]),
    "MatMul": lambda lw, v: lw.matmul(v[0], v[1]),
    "Where": lambda lw, v: lw.where(v[0], v[1], v[2]),
    "Log": lambda lw, v: lw.log(v[0]),
    "Sum": lambda lw, v: functools.reduce(lw.add, v),
    "Mean": lambda lw, v: lw.div(functools.reduce(lw.add, v), np.array(float(len(v)))),
    "Max": lambda lw, v: functools.reduce(lambda a, c: lw.minmax("maximum", a, c), v),
    "Min": lambda lw, v: functools.reduce(lambda a, c: lw.minmax("minimum", a, c), v),
}
#: comparisons of a variable with a constant (True: ``x > t`` for ``op(x, t)``)
_COMPARISONS = {"Greater": True, "GreaterOrEqual": True, "Less": False, "LessOrEqual": False}
_LEGACY_UNSUPPORTED_HINT = {
    "Softmax": "softmax is not boundable by gridverify",
    "LSTM": "recurrent ops are not supported",
    "GRU": "recurrent ops are not supported",
    "RNN": "recurrent ops are not supported",
    "If": "control flow is not supported",
    "Loop": "control flow is not supported",
}


def _resolve_shape(in_shape: Sequence[int], target: Sequence[int], allowzero: bool) -> list[int]:
    """ONNX Reshape semantics: 0 copies the input dim (unless allowzero), -1 is inferred."""
    shp = [int(d) for d in target]
    for i, d in enumerate(shp):
        if d == 0 and not allowzero:
            if i >= len(in_shape):
                raise ValueError(f"reshape: dim {i} copies a missing input dim")
            shp[i] = int(in_shape[i])
    total = int(np.prod(in_shape, dtype=np.int64))
    if shp.count(-1) > 1:
        raise ValueError("reshape: more than one -1")
    if -1 in shp:
        known = int(np.prod([d for d in shp if d != -1], dtype=np.int64))
        if known == 0 or total % known:
            raise ValueError(f"reshape: cannot infer -1 for {[int(d) for d in in_shape]} -> "
                             f"{[int(d) for d in target]}")
        shp[shp.index(-1)] = total // known
    if int(np.prod(shp, dtype=np.int64)) != total:
        raise ValueError(f"reshape: {[int(d) for d in in_shape]} -> {[int(d) for d in target]} "
                         "changes the size")
    return shp


class _OnnxImporter:
    """One import: walks the ONNX graph, keeping a value per tensor name."""

    def __init__(self, model: Any, source: str, batch_axis: bool = False) -> None:
        import onnx

        self.onnx = onnx
        self.model = model
        self.source = source
        self.batch_axis = batch_axis
        self.opset = 13
        for imp in model.opset_import:
            if imp.domain in ("", "ai.onnx"):
                self.opset = int(imp.version)
        self.b = GraphBuilder()
        self.lw = Lowering(self.b)
        self.env: dict[str, Value] = {}
        # the value at a batch of 2 of a constant that depends on the batch size
        # (``Shape`` of a batched tensor...; None: depends on it in a way not followed)
        self.shadow: dict[str, np.ndarray | None] = {}
        self._outputs: list[str] = []
        # an input's first axis is a batch of any size (symbolic, or batch_axis):
        # a reduction over axis 0 would then mix the samples of a batch
        self.dynamic_batch = False
        # the fixed batch size written in the file (batch_axis): a reshape target
        # starting with it means the batch axis, as a static export writes x.view(B, -1)
        self.file_batch: int | None = None

    @property
    def keeps_batch(self) -> bool:
        """Whether every variable must keep the batch as its axis 0 (:meth:`_batch_check`):
        a proxy (``batch_axis``), which gridverify evaluates on batches of samples.  A
        graph read for one sample (``vnncomp run``, ``compute_bounds``, ``check-physics``:
        a symbolic leading axis read at size 1, as VNN-COMP runs a model) is the model's
        function of that sample; only a reduction over its axis 0 is refused there."""
        return self.batch_axis and self.dynamic_batch

    # -------------------------------------------------------------- helpers
    def _attrs(self, node: Any) -> dict[str, Any]:
        from onnx import helper, numpy_helper

        out: dict[str, Any] = {}
        for a in node.attribute:
            if a.type in (self.onnx.AttributeProto.GRAPH, self.onnx.AttributeProto.GRAPHS):
                raise _Unsupported("subgraph attributes (control flow)")
            v = helper.get_attribute_value(a)
            if a.type == self.onnx.AttributeProto.TENSOR:
                v = numpy_helper.to_array(v)
            out[a.name] = v
        return out

    @staticmethod
    def _const(v: Value | None, what: str) -> np.ndarray:
        if isinstance(v, Var):
            raise _Unsupported(f"{what} must be a constant")
        if v is None:
            raise ValueError(f"missing input {what}")
        return np.asarray(v)

    def _axes(self, ins: list[Value | None], at: dict[str, Any], pos: int) -> list[int] | None:
        if len(ins) > pos and ins[pos] is not None:
            return [int(a) for a in self._const(ins[pos], "axes").ravel()]
        if "axes" in at:
            return [int(a) for a in at["axes"]]
        return None

    # ------------------------------------------------------------------ run
    def run(self, keep_outputs: int | None, merge: bool = True) -> Graph:
        from onnx import numpy_helper

        g = self.model.graph
        self._check_model()
        for init in g.initializer:
            self.env[init.name] = numpy_helper.to_array(init)
        for vi in g.input:
            if vi.name in self.env:
                continue  # a default value onnxruntime uses when it is not fed: a constant
            self.env[vi.name] = self._input(vi)
        self._producer = {o: i for i, node in enumerate(g.node) for o in node.output if o}
        for i, node in enumerate(g.node):
            self._node(node, i)
        outs: list[tuple[str, Value]] = []
        if not g.output:
            raise GraphError(f"{self.source}: the ONNX graph has no outputs")
        for vi in g.output:
            if vi.name not in self.env:
                raise GraphError(f"{self.source}: graph output {vi.name!r} is never computed")
            if isinstance(self.env[vi.name], Compare):
                raise UnsupportedOpError("Greater", vi.name, COMPARE_HINT)
            outs.append((vi.name, self.env[vi.name]))
        if keep_outputs is not None:
            outs = self._truncate(outs, int(keep_outputs))
        for name, v in outs:
            self.lw.output(v, name)
        g = self.b.build()
        return prune(merge_pwl(g) if merge else g)

    def _check_model(self) -> None:
        """Opset range, inputs and single assignment, before any node is read."""
        g = self.model.graph
        if not OPSET_MIN <= self.opset <= OPSET_MAX:
            raise GraphError(f"{self.source}: ONNX opset {self.opset} (default domain) is not "
                             f"supported: gridverify imports opsets {OPSET_MIN} to {OPSET_MAX} "
                             "(convert the model with onnx.version_converter)")
        if not g.output:
            raise GraphError(f"{self.source}: the ONNX graph has no outputs")
        names = [vi.name for vi in g.input]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise GraphError(f"{self.source}: graph input {dup[0]!r} is listed twice")
        inits = {t.name for t in g.initializer}
        if not [n for n in names if n not in inits]:
            which = (f"every graph input ({', '.join(repr(n) for n in names)}) has an "
                     "initializer (a default value onnxruntime uses when it is not fed)"
                     if names else "the graph has no inputs")
            raise GraphError(f"{self.source}: the ONNX model has no variable input: {which}; "
                             "there is nothing to bound")
        written = set(names) | inits
        for i, node in enumerate(g.node):
            for o in node.output:
                if not o:
                    continue
                if o in written:
                    raise GraphError(f"{self.source}: ONNX node "
                                     f"{node.name or f'{node.op_type}_{i}'!r} ({node.op_type}) "
                                     f"writes {o!r}, which is already defined (an input, "
                                     "an initializer or an earlier node's output)")
                written.add(o)

    def _truncate(self, outs: list[tuple[str, Value]], k: int) -> list[tuple[str, Value]]:
        if k <= 0:
            raise GraphError(f"{self.source}: keep_outputs must be positive, got {k}")
        kept: list[tuple[str, Value]] = []
        left = k
        for name, v in outs:
            if left <= 0:
                break
            n = int(np.prod(self.lw.shape(v), dtype=np.int64))
            if n <= left:
                kept.append((name, v))
            else:
                flat = self.lw.reshape(v, (n,))
                kept.append((name, self.lw.index(flat, lambda a, m=left: a[:m])))
            left -= n
        if left > 0:
            raise GraphError(f"{self.source}: keep_outputs={k} but the model has only "
                             f"{k - left} output entries")
        return kept

    def _input(self, vi: Any) -> Var:
        tt = vi.type.tensor_type
        if not vi.type.HasField("tensor_type"):
            raise GraphError(f"{self.source}: input {vi.name!r} is not a tensor")
        TP = self.onnx.TensorProto
        if tt.elem_type not in (TP.FLOAT, TP.DOUBLE):
            raise GraphError(f"{self.source}: input {vi.name!r} has element type "
                             f"{onnx_type_name(tt.elem_type)}; "
                             "only float and double inputs can be bounded")
        if not tt.HasField("shape"):
            raise GraphError(f"{self.source}: input {vi.name!r} has no shape (unknown rank); "
                             "give the input a shape (only the batch axis may be dynamic)")
        dims: list[int] = []
        rank = len(tt.shape.dim)
        for i, d in enumerate(tt.shape.dim):
            known = d.HasField("dim_value") and d.dim_value > 0
            if i == 0 and self.batch_axis and rank >= 2:
                dims.append(1)
                self.dynamic_batch = True
                if known:
                    self.file_batch = int(d.dim_value)
            elif known:
                dims.append(int(d.dim_value))
            elif i == 0:
                dims.append(1)  # symbolic / dynamic batch dimension
                self.dynamic_batch = self.dynamic_batch or rank >= 2
            else:
                raise GraphError(f"{self.source}: input {vi.name!r} has a dynamic "
                                 f"dimension at axis {i}; only the batch axis may be dynamic")
        shape = tuple(dims)
        size = int(np.prod(shape, dtype=np.int64))
        return Var(self.b.input(vi.name, size=size), shape)

    def _node(self, node: Any, i: int) -> None:
        op = node.op_type
        name = node.name or f"{op}_{i}({node.output[0] if node.output else ''})"
        try:
            if node.domain not in ("", "ai.onnx"):
                raise _Unsupported(f"custom domain {node.domain!r}")
            ins: list[Value | None] = []
            for n in node.input:
                if n == "":
                    ins.append(None)
                elif n in self.env:
                    ins.append(self.env[n])
                else:
                    raise GraphError(f"{self.source}: node {name!r} ({op}) reads {n!r}, "
                                     "which no earlier node or initializer defines")
            at = self._attrs(node)
            if "broadcast" in at:
                raise _Unsupported("the legacy 'broadcast' attribute (opset 6 and older)")
            self._outputs = list(node.output)
            res = self._dispatch(op, ins, at, node)
            if self.keeps_batch and any(isinstance(v, Var) for v in ins):
                self._batch_check(op, node, ins, at, res)
            self._shadow(op, node, ins, at, res)
        except _Unsupported as e:
            raise UnsupportedOpError(op, name, str(e)) from None
        except (ValueError, IndexError, TypeError, KeyError) as e:
            raise GraphError(f"{self.source}: ONNX node {name!r} ({op}): {e}") from e
        results = res if isinstance(res, list) else [res]
        for out_name, v in zip(node.output, results):
            if out_name:
                self.env[out_name] = v

    def _dispatch(self, op: str, ins: list[Value | None], at: dict[str, Any], node: Any
                  ) -> Any:
        """The value(s) of one node on its input values."""
        handler = getattr(self, "_op_" + op, None)
        if op == "Not" and len(ins) == 1 and isinstance(ins[0], Compare):
            c = ins[0]  # not (x > t): x <= t (the boundary: continuous branches only)
            return Compare(c.z, c.t, not c.above)
        if any(isinstance(v, Compare) for v in ins):
            return self._where_compare(op, ins, node)
        if op in _COMPARISONS and any(isinstance(v, Var) for v in ins):
            return self.lw.compare(ins[0], ins[1], _COMPARISONS[op])
        if handler is not None:
            return handler(ins, at)
        if op in _ALGEBRA:
            return _ALGEBRA[op](self.lw, ins)
        if op in _UNARY_OPS:
            return self.lw.unary(_UNARY_OPS[op], ins[0])
        if op in _CONST_ONLY_OPS:
            if any(isinstance(v, Var) for v in ins):
                raise _Unsupported("only supported on constants (folded at import)")
            return _CONST_ONLY_OPS[op](*[np.asarray(v) for v in ins])
        if op not in _LEGACY_UNSUPPORTED_HINT and ins and \
                not any(isinstance(v, Var) for v in ins):
            return self._reference_eval(node, ins)
        raise _Unsupported(_LEGACY_UNSUPPORTED_HINT.get(op, ""))


    # ------------------------------------------------------------ batch axis
    def _batch_check(self, op: str, node: Any, ins: list[Value | None], at: dict[str, Any],
                     res: Any) -> None:
        """With a dynamic batch, every variable keeps the batch as its axis 0 (size 1
        here): refuse an op that reads across that axis, or moves it or merges it
        with another axis (its per-sample import would be another function)."""
        def refuse(what: str) -> None:
            raise _Unsupported(f"{what} {_BATCH_HINT}")

        outs = [v for v in (res if isinstance(res, list) else [res]) if isinstance(v, Var)]
        var_ins = [v for v in ins if isinstance(v, Var)]
        rank = len(var_ins[0].shape)
        if op in _BROADCASTING or op == "Expand":
            out_rank = max((len(v.shape) for v in outs), default=rank)
            if any(len(v.shape) != out_rank for v in var_ins):
                refuse(f"broadcasting to {out_rank} axes moves the batch axis")
        elif op == "MatMul":
            a, c = ins[0], ins[1]
            out_rank = len(self.lw.shape(res))
            if isinstance(a, Var) and (len(a.shape) < 2 or len(a.shape) != out_rank):
                refuse("a matrix product that contracts or moves the batch axis")
            if isinstance(c, Var) and (len(c.shape) < 3 or len(c.shape) != out_rank):
                refuse("a matrix product that contracts over the batch axis")
        elif op == "Gemm":
            if (isinstance(ins[0], Var) and at.get("transA", 0)) or isinstance(ins[1], Var):
                refuse("a Gemm that transposes or contracts the batch axis")
        elif op == "Transpose":
            perm = at.get("perm")
            if (rank - 1 if perm is None else int(perm[0])) != 0:
                refuse("a Transpose that moves the batch axis (axis 0)")
        elif op in ("Gather", "GatherElements", "ScatterElements", "Concat", "Split",
                    "LayerNormalization"):
            default = -1 if op == "LayerNormalization" else 0
            if int(at.get("axis", default)) % rank == 0:
                refuse(f"{op} along the batch axis (axis 0)")
        elif op == "GatherND":
            if int(at.get("batch_dims", 0)) < 1:
                refuse("GatherND indexing the batch axis (batch_dims=0)")
        elif op == "Slice":
            starts, ends, axes, steps = self._slice_params(ins, at)
            for j, ax in enumerate(axes):
                step = 1 if steps is None else int(steps[j])
                full = step == 1 and (int(starts[j]) == 0 or int(starts[j]) <= -(1 << 31)) \
                    and int(ends[j]) >= (1 << 31) - 1
                if ax == 0 and not full:
                    refuse("a Slice of the batch axis (axis 0)")
        elif op == "Unsqueeze":
            axes = self._axes(ins, at, 1) or []
            if any(int(a) % (rank + len(axes)) == 0 for a in axes):
                refuse("an Unsqueeze at axis 0 (it moves the batch axis)")
        elif op == "Squeeze":
            axes = self._axes(ins, at, 1)
            if axes is not None and any(int(a) % rank == 0 for a in axes):
                refuse("a Squeeze of the batch axis (axis 0)")
        elif op in ("Reshape", "Flatten"):
            self._reshape_keeps_batch(op, node, ins, at, res, refuse)
        elif op == "Einsum":
            eq = at["equation"]
            eq = eq.decode() if isinstance(eq, bytes) else str(eq)
            if not einsum_keeps_batch(eq, [isinstance(v, Var) for v in ins]):
                refuse("an Einsum that does not keep the batch axis as the output's "
                       "first axis (or that reads it from a constant)")
        for v in outs:
            if not v.shape or v.shape[0] != 1:
                refuse(f"{op} giving shape {list(v.shape)} (the batch axis must stay axis 0)")

    def _reshape_keeps_batch(self, op: str, node: Any, ins: list[Value | None],
                             at: dict[str, Any], res: Any, refuse: Callable[[str], None]) -> None:
        """Reshape / Flatten: the output at a batch of 2 must be the per-sample output
        with a batch of 2 in front (the batch axis neither merged nor moved)."""
        s = tuple(self.lw.shape(ins[0]))
        out1 = tuple(self.lw.shape(res))
        big = (2, *s[1:])
        if op == "Flatten":
            axis = int(at.get("axis", 1)) % (len(s) + 1) if s else 0
            out2 = (int(np.prod(big[:axis], dtype=np.int64)),
                    int(np.prod(big[axis:], dtype=np.int64)))
        else:
            key = node.input[1]
            if key in self.shadow and self.shadow[key] is None:
                refuse("a Reshape whose target shape depends on the batch size in a way "
                       "gridverify does not follow")
            target = np.asarray(self.shadow.get(key, ins[1])).ravel()
            if key not in self.shadow and self.file_batch is not None and target.size and \
                    int(target[0]) == self.file_batch:
                target = np.concatenate([[2], target[1:]]).astype(np.int64)
            try:
                out2 = tuple(_resolve_shape(big, np.asarray(target).ravel(),
                                            bool(at.get("allowzero", 0))))
            except ValueError:
                return  # the model cannot run a batch of 2: its batch is 1 in fact
        if out2 != (2, *out1[1:]):
            refuse(f"a {op} that merges or moves the batch axis (per sample {list(s)} -> "
                   f"{list(out1)}, at a batch of 2 {list(big)} -> {list(out2)})")

    def _shadow(self, op: str, node: Any, ins: list[Value | None], at: dict[str, Any],
                res: Any) -> None:
        """Keep the value at a batch of 2 of constants that depend on the batch size."""
        if not self.dynamic_batch:
            return
        outs = [o for o in node.output if o]
        if op in ("Shape", "Size") and isinstance(ins[0], Var):
            full = np.asarray((2, *ins[0].shape[1:]), dtype=np.int64)
            if op == "Size":
                val = np.asarray(np.prod(full, dtype=np.int64))
            else:
                val = full[at.get("start", 0):at.get("end", None)]
            if not np.array_equal(val, np.asarray(res)):
                self.shadow[outs[0]] = val
            return
        if any(isinstance(v, Var) for v in ins) or not any(n in self.shadow for n in node.input):
            return
        if any(self.shadow.get(n, 0) is None for n in node.input):
            shadowed: list = [None] * len(outs)
        else:
            ins2 = [self.shadow.get(n, v) if n else v for n, v in zip(node.input, ins)]
            try:
                r2 = self._dispatch(op, ins2, at, node)
                shadowed = [np.asarray(v) for v in (r2 if isinstance(r2, list) else [r2])]
            except Exception:  # noqa: BLE001 - any failure: the batch-2 value is unknown
                shadowed = [None] * len(outs)
        for o, v in zip(outs, shadowed):
            self.shadow[o] = v

    def _where_compare(self, op: str, ins: list[Value | None], node: Any) -> Value:
        """``Where`` on a comparison of a variable (:meth:`Lowering.where_compare`)."""
        cond, x, y = (ins + [None, None, None])[:3]
        if op != "Where" or not isinstance(cond, Compare) or isinstance(x, Compare) \
                or isinstance(y, Compare):
            raise _Unsupported(COMPARE_HINT)
        branches = list(node.input[1:3])

        def relower(v: Var, k: int, value: Value) -> Value:
            return self._relower(branches[k], v, value)

        return self.lw.where_compare(cond, x, y, relower)

    def _relower(self, target: str, v: Var, value: Value) -> Value:
        """Tensor ``target`` computed again with the tensor holding ``v`` replaced by
        ``value`` (the nodes between them run again on a copy of the values)."""
        name = next((n for n, e in self.env.items()
                     if isinstance(e, Var) and e.node == v.node and e.shape == v.shape), None)
        if name is None or target not in self._producer:
            return self.env[target] if name != target else value
        nodes = self.model.graph.node
        start = self._producer.get(name, -1)
        below, stack = {self._producer[target]}, [self._producer[target]]
        while stack:  # the nodes computing the target, back to the replaced tensor
            for i in nodes[stack.pop()].input:
                k = self._producer.get(i)
                if k is not None and k > start and k not in below:
                    below.add(k)
                    stack.append(k)
        changed, cone = {name}, []
        for k in sorted(below):  # those of them that read it
            if changed.intersection(nodes[k].input):
                cone.append(k)
                changed.update(nodes[k].output)
        saved, outs = self.env, self._outputs
        self.env = dict(saved)
        self.env[name] = value
        try:
            for k in cone:
                self._node(nodes[k], k)
            return self.env[target]
        finally:
            self.env, self._outputs = saved, outs

    def _reference_eval(self, node: Any, ins: list[Value | None]) -> list[np.ndarray]:
        """Fold an op we do not lower by hand, when all its inputs are constants."""
        from onnx.reference import ReferenceEvaluator

        try:
            ev = ReferenceEvaluator(self._single_node_model(node, ins))
            feeds = {n: np.asarray(v) for n, v in zip(node.input, ins) if n}
            return [np.asarray(r) for r in ev.run(None, feeds)]
        except Exception as e:  # noqa: BLE001 - any failure means we cannot fold it
            raise _Unsupported(f"cannot fold on constants ({e})") from None

    def _single_node_model(self, node: Any, ins: list[Value | None]) -> Any:
        from onnx import TensorProto, helper

        inputs = [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(
            np.asarray(v).dtype), np.shape(v)) for n, v in zip(node.input, ins) if n]
        outputs = [helper.make_tensor_value_info(n, TensorProto.UNDEFINED, None)
                   for n in node.output if n]
        graph = helper.make_graph([node], "fold", inputs, outputs)
        return helper.make_model(graph, opset_imports=list(self.model.opset_import))

    # -------------------------------------------------------------- the ops
    def _op_Constant(self, ins: list, at: dict) -> Value:
        if "value" in at:
            return np.asarray(at["value"])
        for key, dt in (("value_float", np.float32), ("value_floats", np.float32),
                        ("value_int", np.int64), ("value_ints", np.int64)):
            if key in at:
                return np.asarray(at[key], dtype=dt)
        raise _Unsupported("Constant without a numeric value (sparse or string)")

    def _op_Cast(self, ins: list, at: dict) -> Value:
        from onnx import helper

        to = int(at["to"])
        TP = self.onnx.TensorProto
        if isinstance(ins[0], Var):
            # float32 is read as exact (float64): the certificate is about the real-valued
            # function (docs/ir.md); a half-precision cast rounds far coarser: refused
            if to not in (TP.FLOAT, TP.DOUBLE):
                raise _Unsupported(f"cast of a variable to {onnx_type_name(to)} (only FLOAT "
                                   "and DOUBLE are read as exact)")
            return ins[0]
        dt = np.dtype(helper.tensor_dtype_to_np_dtype(to))
        return np.asarray(ins[0]).astype(dt)

    def _op_Clip(self, ins: list, at: dict) -> Value:
        lo = ins[1] if len(ins) > 1 else at.get("min")
        hi = ins[2] if len(ins) > 2 else at.get("max")
        if isinstance(lo, Var) or isinstance(hi, Var):
            raise _Unsupported("variable clip bounds")
        if lo is not None and hi is not None and np.any(np.asarray(lo) > np.asarray(hi)):
            # the ONNX spec (and onnxruntime): min > max sets every value to max
            lo = np.minimum(np.asarray(lo, dtype=np.float64), np.asarray(hi, dtype=np.float64))
            if np.all(np.asarray(lo) == np.asarray(hi)):
                return np.broadcast_to(np.asarray(hi, dtype=np.float64),
                                       self.lw.shape(ins[0])).copy()
        return self.lw.clamp(ins[0], lo, hi)

    def _op_Dropout(self, ins: list, at: dict) -> Value:
        training = ins[2] if len(ins) > 2 else None
        if isinstance(training, Var):
            raise _Unsupported("a variable training_mode input")
        if training is not None and bool(np.asarray(training).ravel()[0]):
            raise _Unsupported("dropout in training mode (training_mode is true)")
        if int(at.get("is_test", 1)) == 0:
            raise _Unsupported("dropout in training mode (is_test=0)")
        if any(self._outputs[1:]):
            raise _Unsupported("the mask output of Dropout")
        return ins[0]

    def _op_LeakyRelu(self, ins: list, at: dict) -> Value:
        return self.lw.prelu(ins[0], float(at.get("alpha", _f32(0.01))))

    def _op_PRelu(self, ins: list, at: dict) -> Value:
        return self.lw.prelu(ins[0], self._const(ins[1], "PRelu slope"))

    def _op_HardSigmoid(self, ins: list, at: dict) -> Value:
        return self.lw.hardsigmoid(ins[0], float(at.get("alpha", _f32(0.2))),
                                   float(at.get("beta", _f32(0.5))))

    def _op_HardSwish(self, ins: list, at: dict) -> Value:
        return self.lw.hardswish(ins[0])

    def _op_Elu(self, ins: list, at: dict) -> Value:
        return self.lw.elu(ins[0], float(at.get("alpha", 1.0)))

    def _op_Selu(self, ins: list, at: dict) -> Value:
        return self.lw.elu(ins[0], float(at.get("alpha", 1.67326319217681884765625)),
                           float(at.get("gamma", 1.05070102214813232421875)))

    def _op_Celu(self, ins: list, at: dict) -> Value:
        alpha = float(at.get("alpha", 1.0))
        return self.lw.elu(ins[0], alpha, width=alpha)

    def _op_Mish(self, ins: list, at: dict) -> Value:
        return self.lw.mish(ins[0])

    def _op_Softsign(self, ins: list, at: dict) -> Value:
        return self.lw.softsign(ins[0])

    def _op_Gelu(self, ins: list, at: dict) -> Value:
        approx = at.get("approximate", "none")
        if isinstance(approx, bytes):
            approx = approx.decode()
        return self.lw.gelu(ins[0], str(approx))

    def _op_Abs(self, ins: list, at: dict) -> Value:
        return self.lw.abs(ins[0])

    def _op_Gemm(self, ins: list, at: dict) -> Value:
        a, bm = ins[0], ins[1]
        c = ins[2] if len(ins) > 2 else None
        alpha, beta = float(at.get("alpha", 1.0)), float(at.get("beta", 1.0))
        if at.get("transA", 0):
            a = self.lw.index(a, lambda t: t.T)
        if at.get("transB", 0):
            bm = self.lw.index(bm, lambda t: t.T)
        sa, sb = self.lw.shape(a), self.lw.shape(bm)
        if len(sa) != 2 or len(sb) != 2:
            raise ValueError(f"Gemm needs 2-D operands, got {sa} and {sb}")
        if int(sa[1]) != int(sb[0]):
            raise ValueError(f"operands of shapes {[int(d) for d in sa]} and "
                             f"{[int(d) for d in sb]} (after transA/transB) do not multiply")
        for what, v in (("weight", bm), ("bias", c)):
            if v is not None and not isinstance(v, Var) and not np.isfinite(
                    np.asarray(v, dtype=np.float64)).all():
                raise ValueError(f"the {what} holds NaN or inf")
        if isinstance(a, Var) and not isinstance(bm, Var) and sa[0] == 1 and not isinstance(c, Var):
            out_shape = (1, sb[1])
            bias = None
            if c is not None and beta != 0.0:
                bias = beta * np.broadcast_to(np.asarray(c, dtype=np.float64), out_shape)
            w = np.asarray(bm, dtype=np.float64).T
            w = w if alpha == 1.0 else alpha * w
            return self.lw.dense(a, w, bias, out_shape)
        y = self.lw.matmul(a, bm)
        if alpha != 1.0:
            y = self.lw.mul(y, alpha)
        if c is not None and beta != 0.0:
            y = self.lw.add(y, self.lw.mul(c, beta) if beta != 1.0 else c)
        return y

    def _op_Expand(self, ins: list, at: dict) -> Value:
        target = [int(d) for d in self._const(ins[1], "shape").ravel()]
        shape = np.broadcast_shapes(self.lw.shape(ins[0]), tuple(target))
        return self.lw.broadcast(ins[0], shape)

    def _op_ConstantOfShape(self, ins: list, at: dict) -> Value:
        shape = [int(d) for d in self._const(ins[0], "shape").ravel()]
        value = np.asarray(at.get("value", np.zeros(1, dtype=np.float32)))
        return np.full(shape, value.ravel()[0], dtype=value.dtype)

    def _op_Shape(self, ins: list, at: dict) -> Value:
        shape = np.asarray(self.lw.shape(ins[0]), dtype=np.int64)
        start, end = at.get("start", 0), at.get("end", None)
        return shape[start:end]

    def _op_Size(self, ins: list, at: dict) -> Value:
        return np.asarray(np.prod(self.lw.shape(ins[0]), dtype=np.int64))

    def _slice_params(self, ins: list, at: dict) -> tuple[Any, Any, list[int], Any]:
        """Starts, ends, axes (non-negative) and steps (None: all 1) of a Slice."""
        rank = len(self.lw.shape(ins[0]))
        if len(ins) > 1:
            starts = self._const(ins[1], "starts").ravel()
            ends = self._const(ins[2], "ends").ravel()
            axes = self._axes(ins, {}, 3)
            steps = (self._const(ins[4], "steps").ravel()
                     if len(ins) > 4 and ins[4] is not None else None)
        else:
            starts, ends = np.asarray(at["starts"]), np.asarray(at["ends"])
            axes, steps = at.get("axes"), None
        axes = list(range(len(starts))) if axes is None else [int(a) % rank for a in axes]
        return starts, ends, axes, steps

    def _op_Slice(self, ins: list, at: dict) -> Value:
        x = ins[0]
        rank = len(self.lw.shape(x))
        starts, ends, axes, steps = self._slice_params(ins, at)
        key = [slice(None)] * rank
        for j, ax in enumerate(axes):
            step = 1 if steps is None else int(steps[j])
            key[ax] = slice(int(starts[j]), int(ends[j]), step)
        return self.lw.index(x, lambda t: t[tuple(key)])

    def _op_Gather(self, ins: list, at: dict) -> Value:
        idx = self._const(ins[1], "indices").astype(np.int64)
        axis = int(at.get("axis", 0))
        return self.lw.index(ins[0], lambda t: np.take(t, idx, axis=axis))

    def _op_Concat(self, ins: list, at: dict) -> Value:
        if "axis" not in at:
            raise ValueError("missing attribute 'axis'")
        return self.lw.concat([v for v in ins if v is not None], int(at["axis"]))

    def _op_Reshape(self, ins: list, at: dict) -> Value:
        target = self._const(ins[1], "shape").ravel()
        shp = _resolve_shape(self.lw.shape(ins[0]), target, bool(at.get("allowzero", 0)))
        return self.lw.reshape(ins[0], shp)

    def _op_Flatten(self, ins: list, at: dict) -> Value:
        s = self.lw.shape(ins[0])
        axis = int(at.get("axis", 1))
        axis = axis + len(s) if axis < 0 else axis
        lead = int(np.prod(s[:axis], dtype=np.int64))
        return self.lw.reshape(ins[0], (lead, int(np.prod(s[axis:], dtype=np.int64))))

    def _op_Split(self, ins: list, at: dict) -> list[Value]:
        s = self.lw.shape(ins[0])
        axis = int(at.get("axis", 0)) % len(s)
        sizes = self._axes(ins, {"axes": at["split"]} if "split" in at else {}, 1)
        if sizes is None:
            n = int(at.get("num_outputs", 0)) or len(self._outputs)
            chunk = -(-s[axis] // n)
            sizes = [min(chunk, s[axis] - k * chunk) for k in range(n)]
        return self.lw.split(ins[0], sizes, axis)

    def _op_Squeeze(self, ins: list, at: dict) -> Value:
        s = self.lw.shape(ins[0])
        axes = self._axes(ins, at, 1)
        if axes is None:  # every axis of size 1, but the batch axis (of any size at run time)
            keep = 1 if self.keeps_batch and isinstance(ins[0], Var) and s else 0
            new = list(s[:keep]) + [d for d in s[keep:] if d != 1]
        else:
            ax = {a % len(s) for a in axes}
            if any(s[a] != 1 for a in ax):
                raise ValueError(f"Squeeze of a dimension that is not 1 in {s}")
            new = [d for i, d in enumerate(s) if i not in ax]
        return self.lw.reshape(ins[0], new)

    def _op_Unsqueeze(self, ins: list, at: dict) -> Value:
        s = list(self.lw.shape(ins[0]))
        axes = self._axes(ins, at, 1) or []
        rank = len(s) + len(axes)
        for a in sorted(a % rank for a in axes):
            s.insert(a, 1)
        return self.lw.reshape(ins[0], s)

    def _op_Transpose(self, ins: list, at: dict) -> Value:
        perm = at.get("perm")
        return self.lw.index(ins[0], lambda t: np.transpose(t, perm))

    def _op_ScatterElements(self, ins: list, at: dict) -> Value:
        data, upd = ins[0], ins[2]
        idx = self._const(ins[1], "indices").astype(np.int64)
        red = at.get("reduction", b"none")
        red = red.decode() if isinstance(red, bytes) else str(red)
        ds = self.lw.shape(data)
        axis = int(at.get("axis", 0)) % len(ds)
        idx = np.where(idx < 0, idx + ds[axis], idx)
        n = int(np.prod(ds, dtype=np.int64))
        pos = np.arange(n).reshape(ds)
        pos = pos[tuple(slice(None) if d == axis else slice(0, idx.shape[d])
                        for d in range(len(ds)))]
        target = np.take_along_axis(pos, idx, axis).ravel()
        if not isinstance(data, Var) and not isinstance(upd, Var):
            out = np.array(data, dtype=np.result_type(data, upd)).ravel()
            vals = np.asarray(upd).ravel()
            if red == "add":
                np.add.at(out, target, vals)
            elif red == "none":
                out[target] = vals
            else:
                raise _Unsupported(f"reduction {red!r}")
            return out.reshape(ds)
        upd = self.lw.reshape(self.lw.broadcast(upd, idx.shape), (idx.size,))
        if red == "add":
            if not isinstance(upd, Var):
                raise _Unsupported("variable data with constant updates")
            scattered = self.lw.linear_map(upd, target, np.arange(idx.size), np.ones(idx.size),
                                           ds)
            return self.lw.add(data, scattered) if isinstance(data, Var) or np.any(data) \
                else scattered
        if red != "none" or np.unique(target).size != target.size:
            raise _Unsupported(f"reduction {red!r} with these indices")
        flat = self.lw.reshape(data, (n,))
        src = np.arange(n)
        src[target] = n + np.arange(idx.size)
        return self.lw.index(self.lw.concat([flat, upd], 0), lambda t: t[src].reshape(ds))

    def _batch_reduction(self, x: Value, axes: list[int] | None) -> None:
        """Refuse a reduction over the batch axis of a model with a dynamic batch: per
        sample it is not the function the model computes on a batch."""
        rank = len(self.lw.shape(x))
        if self.dynamic_batch and isinstance(x, Var) and rank >= 2 and \
                (axes is None or any(a % rank == 0 for a in axes)):
            raise _Unsupported("a reduction over the batch axis (axis 0 of a model whose "
                               "batch is dynamic) mixes the samples of a batch; reduce over "
                               "feature axes only")

    def _reduce(self, ins: list, at: dict, reduce: Callable[[Value, Any, bool], Value]) -> Value:
        """ONNX reduction semantics (axes as input or attribute, empty = all unless
        ``noop_with_empty_axes``), never over a dynamic batch axis."""
        axes = self._axes(ins, at, 1)
        if axes is not None and len(axes) == 0:
            axes = None
        if axes is None and at.get("noop_with_empty_axes", 0):
            return ins[0]
        self._batch_reduction(ins[0], axes)
        return reduce(ins[0], axes, bool(at.get("keepdims", 1)))

    def _op_ReduceSum(self, ins: list, at: dict) -> Value:
        return self._reduce(ins, at, self.lw.reduce_sum)

    def _reduce_extreme(self, op: str, ins: list, at: dict) -> Value:
        return self._reduce(ins, at, lambda x, axes, keep: self.lw.reduce_extreme(x, op, axes,
                                                                                  keep))

    def _op_ReduceMax(self, ins: list, at: dict) -> Value:
        return self._reduce_extreme("maximum", ins, at)

    def _op_ReduceMin(self, ins: list, at: dict) -> Value:
        return self._reduce_extreme("minimum", ins, at)

    def _op_ReduceMean(self, ins: list, at: dict) -> Value:
        def mean(x: Value, axes: list[int] | None, keep: bool) -> Value:
            s = self.lw.shape(x)
            over = range(len(s)) if axes is None else axes
            count = int(np.prod([s[a % len(s)] for a in over], dtype=np.int64))
            return self.lw.mul(self.lw.reduce_sum(x, axes, keep), 1.0 / count)

        return self._reduce(ins, at, mean)

    def _op_LayerNormalization(self, ins: list, at: dict) -> Value | list[Value]:
        x = ins[0]
        rank = len(self.lw.shape(x))
        axis = int(at.get("axis", -1)) % rank
        if int(at.get("stash_type", 1)) != 1:
            raise _Unsupported("stash_type other than float")
        scale = None if len(ins) < 2 or ins[1] is None else self._const(ins[1], "Scale")
        bias = None if len(ins) < 3 or ins[2] is None else self._const(ins[2], "B")
        if len(self._outputs) > 1 and any(self._outputs[1:]):
            raise _Unsupported("the Mean / InvStdDev outputs")
        return self.lw.layer_norm(x, rank - axis, float(at.get("epsilon", _f32(1e-5))), scale,
                                  bias)

    def _op_Einsum(self, ins: list, at: dict) -> Value:
        eq = at["equation"]
        return self.lw.einsum(eq.decode() if isinstance(eq, bytes) else str(eq), ins)

    def _op_GatherElements(self, ins: list, at: dict) -> Value:
        idx = np.asarray(self._const(ins[1], "indices"), dtype=np.int64)
        x = ins[0]
        shape = self.lw.shape(x)
        axis = int(at.get("axis", 0)) % len(shape)
        idx = np.where(idx < 0, idx + shape[axis], idx)
        return self.lw.index(x, lambda t: np.take_along_axis(t, idx, axis=axis))

    def _op_GatherND(self, ins: list, at: dict) -> Value:
        idx = np.asarray(self._const(ins[1], "indices"), dtype=np.int64)
        x = ins[0]
        b = int(at.get("batch_dims", 0))
        shape = self.lw.shape(x)
        k = idx.shape[-1]
        idx = np.where(idx < 0, idx + np.asarray(shape[b:b + k]), idx)

        def pick(t: np.ndarray) -> np.ndarray:
            lead = t.shape[:b]
            flat_t = t.reshape((-1,) + t.shape[b:])
            flat_i = np.broadcast_to(idx, lead + idx.shape[b:]).reshape((-1,) + idx.shape[b:])
            out = np.stack([ti[tuple(np.moveaxis(ii, -1, 0))] for ti, ii in zip(flat_t, flat_i)])
            return out.reshape(lead + out.shape[1:])

        return self.lw.index(x, pick)

    def _window_attrs(self, x: Value, at: dict, kernel: Sequence[int]
                      ) -> tuple[list[int], list[int], list[int], list[int]]:
        """Strides, begin pads, end pads and dilations of a Conv or pooling node."""
        d = len(kernel)
        strides = [int(v) for v in at.get("strides", [1] * d)]
        dilations = [int(v) for v in at.get("dilations", [1] * d)]
        auto = at.get("auto_pad", b"NOTSET")
        auto = auto.decode() if isinstance(auto, bytes) else str(auto)
        if auto in ("SAME_UPPER", "SAME_LOWER"):
            begin, end = same_pads(self.lw.shape(x)[2:], kernel, strides, dilations,
                                   auto == "SAME_UPPER")
        elif auto in ("NOTSET", "VALID"):
            pads = [int(v) for v in at.get("pads", [0] * 2 * d)] if auto == "NOTSET" \
                else [0] * 2 * d
            if len(pads) != 2 * d:
                raise ValueError(f"pads has {len(pads)} entries for {d} spatial axes")
            begin, end = pads[:d], pads[d:]
        else:
            raise ValueError(f"unknown auto_pad {auto!r}")
        return strides, begin, end, dilations

    def _op_Conv(self, ins: list, at: dict) -> Value:
        w = np.asarray(self._const(ins[1], "weight W"), dtype=np.float64)
        bias = None if len(ins) < 3 or ins[2] is None else self._const(ins[2], "bias B")
        kernel = [int(v) for v in at.get("kernel_shape", w.shape[2:])]
        if tuple(kernel) != w.shape[2:]:
            raise ValueError(f"kernel_shape {kernel} does not match the weight {w.shape}")
        strides, begin, end, dil = self._window_attrs(ins[0], at, kernel)
        return self.lw.conv(ins[0], w, bias, strides, begin, end, dil, int(at.get("group", 1)))

    def _pool(self, kind: str, ins: list, at: dict) -> Value:
        if int(at.get("storage_order", 0)):
            raise _Unsupported("storage_order=1")
        if len(self._outputs) > 1 and self._outputs[1]:
            raise _Unsupported("the Indices output of MaxPool")
        kernel = [int(v) for v in at["kernel_shape"]]
        strides, begin, end, dil = self._window_attrs(ins[0], at, kernel)
        return self.lw.pool(ins[0], kind, kernel, strides, begin, end, dil,
                            bool(at.get("ceil_mode", 0)), bool(at.get("count_include_pad", 0)))

    def _op_MaxPool(self, ins: list, at: dict) -> Value:
        return self._pool("max", ins, at)

    def _op_AveragePool(self, ins: list, at: dict) -> Value:
        return self._pool("average", ins, at)

    def _global_pool(self, kind: str, ins: list) -> Value:
        spatial = list(self.lw.shape(ins[0])[2:])
        zeros = [0] * len(spatial)
        return self.lw.pool(ins[0], kind, spatial, [1] * len(spatial), zeros, zeros)

    def _op_GlobalMaxPool(self, ins: list, at: dict) -> Value:
        return self._global_pool("max", ins)

    def _op_GlobalAveragePool(self, ins: list, at: dict) -> Value:
        return self._global_pool("average", ins)

    def _op_BatchNormalization(self, ins: list, at: dict) -> Value:
        x = ins[0]
        if int(at.get("training_mode", 0)):
            raise _Unsupported("training-mode batch norm (training_mode=1 normalizes with "
                               "the statistics of the batch)")
        if not int(at.get("spatial", 1)):
            raise _Unsupported("batch norm with spatial=0")
        if any(self._outputs[1:]):
            raise _Unsupported("the running statistics outputs (training-mode batch norm)")
        scale, bias, mean, var = (np.asarray(self._const(v, "parameters"), dtype=np.float64)
                                  for v in ins[1:5])
        s = scale / np.sqrt(var + float(at.get("epsilon", _f32(1e-5))))
        return self.lw.channel_affine(x, s, bias - mean * s)


def _unloaded_external(model: Any, name: str) -> Any:
    """``model`` (in memory) when none of its tensors is still in an external file:
    such a tensor would be read relative to the current folder, not the model's
    (another model's weights, or protobuf's error)."""
    import onnx

    if not model.HasField("graph"):
        return model
    g = model.graph
    tensors = list(g.initializer) + [a.t for node in g.node for a in node.attribute
                                     if a.type == onnx.AttributeProto.TENSOR]
    for t in tensors:
        if t.data_location == onnx.TensorProto.EXTERNAL:
            where = {e.key: e.value for e in t.external_data}.get("location", "?")
            raise GraphError(
                f"{name}: tensor {t.name!r} is stored in the external file {where!r}, which "
                "was not loaded: give the model's path, or onnx.load it with its external "
                "data (load_external_data=True)")
    return model


def _load(path_or_model: Any) -> tuple[Any, str]:
    import onnx

    if isinstance(path_or_model, onnx.ModelProto):
        return _unloaded_external(path_or_model, "<onnx model>"), "<onnx model>"
    if isinstance(path_or_model, (bytes, bytearray)):
        try:
            model = onnx.load_from_string(bytes(path_or_model))
        except Exception as e:  # noqa: BLE001 - protobuf raises several types
            raise GraphError(f"<onnx bytes>: not an ONNX model ({e})") from None
        return _unloaded_external(model, "<onnx bytes>"), "<onnx bytes>"
    path = os.fspath(path_or_model)
    if not os.path.isfile(path):
        raise GraphError(f"{path}: no such ONNX file")
    try:
        return onnx.load(path), path
    except Exception as e:  # noqa: BLE001 - protobuf raises several types
        raise GraphError(f"{path}: cannot read ONNX model ({e})") from None


def from_onnx(path_or_model: Any, keep_outputs: int | None = None,
              merge_pwl: bool = True, source: str | None = None,
              batch_axis: bool = False) -> Graph:
    """Import an ONNX model (path, ``onnx.ModelProto`` or bytes) as an IR graph.

    Graph inputs keep their ONNX names and become flat per-sample vectors (a
    leading batch dimension in the file, symbolic or fixed at 1, is stripped;
    with ``batch_axis``, the leading axis of every input of two or more axes is
    the batch whatever its size: a model exported with a fixed example batch).
    Outputs keep their names and order; ``keep_outputs=k`` keeps only the first
    ``k`` entries of the flattened outputs (truncating the last kept output).
    ``merge_pwl``: rewrite weighted sums of shifted relus of one scalar (lookup
    tables) as ``pwl`` nodes (:mod:`gridverify.ir.pwl_merge`).  ``source``: the
    name errors give the model (default: its path, or ``<onnx model>``).

    Raises :class:`UnsupportedOpError` naming the op type and node for an op that
    cannot be lowered, and :class:`GraphError` for a malformed model.
    """
    model, name = _load(path_or_model)
    if not model.HasField("graph"):  # an empty file parses as an empty model
        raise GraphError(f"{source or name}: not an ONNX model (no graph)")
    return _OnnxImporter(model, source or name, batch_axis).run(keep_outputs, merge_pwl)
