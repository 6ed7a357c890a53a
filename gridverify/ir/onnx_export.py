"""Export a gridverify graph (IR) to a standard ONNX file that onnxruntime runs.

Every IR value ``(B, size)`` becomes an ONNX tensor of the same shape; the batch
dimension is fixed (``batch_dim=1``, the VNN-COMP convention) or symbolic
(``batch_dim=None`` gives ``'N'``).  The op mapping:

=================  =====================================================
IR op              ONNX
=================  =====================================================
linear             Gemm(x, W, bias, transB=1)
sparse_linear      MatMul with the dense (in, out) matrix when it is small or
                   dense enough; otherwise rows grouped by their number of
                   entries (rounded up to a power of two, K), each group
                   Gather(x, cols) * vals, Reshape to (batch, rows, K) and
                   ReduceSum over the K slots (padding slots read column 0 with
                   weight 0), the groups joined by Concat and put back in row
                   order by one Gather
add/sub/neg/mul    Add/Sub/Neg/Mul
scale/add_const    Mul/Add with a (size,) constant
gather             Gather(axis=1);  concat: Concat(axis=1);  reshape: Identity
square / pow k     Mul(x, x) / Pow(x, k)
relu sigmoid tanh erf sin cos exp softplus sqrt floor reciprocal: the ONNX op of that name
softplus (with     Where(Greater(x, t), x, Softplus(x)), as torch's exporter writes
threshold t)       torch's softplus (re-imports as the same node)
pwl                the lookup-table pattern: ReduceSum(Relu(Unsqueeze(x) - T) * W,
                   last axis) + bias (+ x * slope when nonzero); re-imports as pwl
constant           an initializer of shape (1, size) (broadcast over the batch)
=================  =====================================================

Portability: the file uses only the ops of :data:`PORTABLE_OPS` (no
ScatterElements with a reduction, no control flow), which onnxruntime and the
common ONNX-to-torch converters (onnx2torch, onnx2pytorch) read.  The opset is
stated in the file (:data:`OPSET` unless asked otherwise; 13 or later).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from gridverify.errors import GraphError, UnsupportedOpError
from gridverify.fileio import atomic_path
from gridverify.ir import Graph
from gridverify.ir.ops import OPS

__all__ = ["OPSET", "PORTABLE_OPS", "to_onnx"]

OPSET = 17
"""The ONNX opset gridverify's exports state (ai.onnx domain)."""

PORTABLE_OPS = frozenset({
    "Gemm", "MatMul", "Gather", "Concat", "Reshape", "ReduceSum", "Identity",
    "Add", "Sub", "Mul", "Neg", "Pow", "Relu", "Sigmoid", "Tanh", "Erf", "Sin", "Cos", "Exp",
    "Sqrt", "Floor", "Reciprocal", "Shape", "Slice", "Expand",
})
"""Every op :func:`to_onnx` may write (Shape/Slice/Expand only for constant outputs and
symbolic batches)."""

# sparse_linear is exported as a dense MatMul up to this many matrix entries, or
# at any size when at least this fraction of the entries are nonzero; otherwise
# as row groups of Gather + Mul + Reshape + ReduceSum (each re-imports as a sparse_linear).
_DENSE_MAX_ENTRIES = 1 << 16
_DENSE_MIN_DENSITY = 0.1

#: ops written as the ONNX op of the same meaning, from the op table
_SAME_NAME = {name: info.onnx for name, info in OPS.items() if info.onnx is not None}


class _Exporter:
    def __init__(self, graph: Graph, opset: int, batch_dim: int | None, dtype: Any) -> None:
        from onnx import helper

        self.helper = helper
        self.g = graph
        self.opset = int(opset)
        self.batch: int | str = "N" if batch_dim is None else int(batch_dim)
        self.np_dtype = np.dtype(dtype)
        if self.np_dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
            raise GraphError(f"to_onnx: dtype must be float32 or float64, got {self.np_dtype}")
        self.elem = helper.np_dtype_to_tensor_dtype(self.np_dtype)
        self.nodes: list[Any] = []
        self.inits: list[Any] = []
        self.name: dict[int, str] = {}
        self._shape_name: str | None = None

    # ------------------------------------------------------------- helpers
    def init(self, key: str, value: Any, dtype: Any | None = None) -> str:
        from onnx import numpy_helper

        arr = np.asarray(value, dtype=self.np_dtype if dtype is None else dtype)
        name = f"gv_{key}"
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(arr), name))
        return name

    def emit(self, op: str, inputs: Sequence[str], out: str, **attrs: Any) -> str:
        self.nodes.append(self.helper.make_node(op, list(inputs), [out], name=out, **attrs))
        return out

    def batch_shape(self, size: int) -> str:
        """A (2,) int64 tensor ``[B, size]`` for the runtime batch B."""
        first = self.name[self.g.inputs[0]] if self.g.inputs else None
        if first is None or self.batch != "N":
            b = 1 if first is None else int(self.batch)
            return self.init(f"shape_{size}_{len(self.inits)}", [b, size], np.int64)
        if self._shape_name is None:
            shp = self.emit("Shape", [first], "gv_in_shape")
            start = self.init("zero_1", [0], np.int64)
            stop = self.init("one_1", [1], np.int64)
            self._shape_name = self.emit("Slice", [shp, start, stop], "gv_batch")
        tail = self.init(f"size_{size}_{len(self.inits)}", [size], np.int64)
        return self.emit("Concat", [self._shape_name, tail], f"gv_bshape_{len(self.nodes)}",
                         axis=0)

    # ---------------------------------------------------------------- nodes
    def node(self, nd: Any) -> None:
        op, out = nd.op, f"gv_n{nd.id}"
        ins = [self.name[i] for i in nd.inputs]
        a = nd.attrs
        if op == "input":
            return
        if op == "constant":
            self.name[nd.id] = self.init(f"n{nd.id}", a["value"].numpy().reshape(1, -1))
            return
        if op == "linear":
            w = self.init(f"n{nd.id}_w", a["weight"].numpy())
            args = [ins[0], w]
            if a.get("bias") is not None:
                args.append(self.init(f"n{nd.id}_b", a["bias"].numpy()))
            self.emit("Gemm", args, out, transB=1)
        elif op == "sparse_linear":
            self.sparse(nd, ins[0], out)
        elif op == "softplus" and a.get("threshold") is not None:
            # torch's softplus, spelled as its ONNX exporter does (re-imports as this node)
            sp = self.emit("Softplus", ins, f"{out}_sp")
            t = self.init(f"n{nd.id}_t", float(a["threshold"]))
            above = self.emit("Greater", [ins[0], t], f"{out}_gt")
            self.emit("Where", [above, ins[0], sp], out)
        elif op in _SAME_NAME:
            self.emit(_SAME_NAME[op], ins, out)
        elif op == "scale":
            self.emit("Mul", [ins[0], self.init(f"n{nd.id}_c", a["coef"].numpy())], out)
        elif op == "add_const":
            self.emit("Add", [ins[0], self.init(f"n{nd.id}_c", a["const"].numpy())], out)
        elif op == "gather":
            idx = self.init(f"n{nd.id}_i", a["index"].numpy(), np.int64)
            self.emit("Gather", [ins[0], idx], out, axis=1)
        elif op == "concat":
            self.emit("Concat", ins, out, axis=1)
        elif op == "reshape":
            self.name[nd.id] = ins[0]
            return
        elif op == "square":
            self.emit("Mul", [ins[0], ins[0]], out)
        elif op == "pow":
            self.emit("Pow", [ins[0], self.init(f"n{nd.id}_k", float(a["k"]))], out)
        elif op == "pwl":
            self.pwl(nd, ins[0], out)
        else:
            raise UnsupportedOpError(op, nd.name, "no ONNX mapping in gridverify's exporter")
        self.name[nd.id] = out

    def pwl(self, nd: Any, x: str, out: str) -> None:
        """``sum_k W[:, k] Relu(x - T[:, k]) + bias (+ slope * x)`` in plain ONNX ops."""
        a, p = nd.attrs, f"n{nd.id}"
        if self.opset >= 13:
            xu = self.emit("Unsqueeze", [x, self.init(f"{p}_ax", [2], np.int64)], out + "_x")
        else:
            xu = self.emit("Unsqueeze", [x], out + "_x", axes=[2])
        d = self.emit("Sub", [xu, self.init(f"{p}_breaks", a["breaks"].numpy())], out + "_d")
        r = self.emit("Relu", [d], out + "_r")
        m = self.emit("Mul", [r, self.init(f"{p}_weights", a["weights"].numpy())], out + "_m")
        if self.opset >= 13:
            s = self.emit("ReduceSum", [m, self.init(f"{p}_rax", [2], np.int64)], out + "_s",
                          keepdims=0)
        else:
            s = self.emit("ReduceSum", [m], out + "_s", axes=[2], keepdims=0)
        slope = a["slope"].numpy()
        if np.any(slope != 0):
            s = self.emit("Add", [s, self.emit("Mul", [x, self.init(f"{p}_slope", slope)],
                                               out + "_lin")], out + "_sum")
        self.emit("Add", [s, self.init(f"{p}_bias", a["bias"].numpy())], out)

    def sparse(self, nd: Any, x: str, out: str) -> None:
        a = nd.attrs
        rows, cols = a["rows"].numpy(), a["cols"].numpy()
        vals = a["vals"].numpy()
        n_in, n_out = self.g.nodes[nd.inputs[0]].size, nd.size
        entries = n_in * n_out
        y_name = out if a.get("bias") is None else out + "_mm"
        if entries <= _DENSE_MAX_ENTRIES or rows.size >= _DENSE_MIN_DENSITY * entries:
            m = np.bincount(cols * n_out + rows, weights=vals, minlength=entries)
            y = self.emit("MatMul", [x, self.init(f"n{nd.id}_m", m.reshape(n_in, n_out))], y_name)
        else:
            buckets = _row_buckets(rows, cols, vals, n_out)
            sums = []
            for j, (members, idx, w) in enumerate(buckets):
                key, name = f"n{nd.id}_{j}", f"{out}_{j}"
                g = self.emit("Gather", [x, self.init(f"{key}_cols", idx.ravel(), np.int64)],
                              name + "_g", axis=1)
                u = self.emit("Mul", [g, self.init(f"{key}_vals", w.ravel())], name + "_u")
                shp = self.init(f"{key}_shape", [-1, members.size, idx.shape[1]], np.int64)
                r = self.emit("Reshape", [u, shp], name + "_r")
                sums.append(self.emit("ReduceSum", [r, self.init(f"{key}_axes", [2], np.int64)],
                                      y_name if len(buckets) == 1 else name + "_s", keepdims=0))
            if len(buckets) == 1:
                y = sums[0]
            else:  # back to row order
                cat = self.emit("Concat", sums, out + "_cat", axis=1)
                pos = np.empty(n_out, dtype=np.int64)
                pos[np.concatenate([m for m, _, _ in buckets])] = np.arange(n_out)
                y = self.emit("Gather", [cat, self.init(f"n{nd.id}_pos", pos, np.int64)], y_name,
                              axis=1)
        if a.get("bias") is not None:
            self.emit("Add", [y, self.init(f"n{nd.id}_b", a["bias"].numpy())], out)

    # ---------------------------------------------------------------- model
    def build(self, input_names: Sequence[str] | None, output_names: Sequence[str] | None) -> Any:
        helper, g = self.helper, self.g
        in_names = list(input_names) if input_names is not None else g.input_names
        out_names = list(output_names) if output_names is not None else list(g.output_names)
        if len(in_names) != len(g.inputs):
            raise GraphError(f"to_onnx: {len(in_names)} input names for {len(g.inputs)} inputs")
        if len(out_names) != len(g.outputs):
            raise GraphError(f"to_onnx: {len(out_names)} output names for "
                             f"{len(g.outputs)} outputs")
        if len(set(in_names) | set(out_names)) != len(in_names) + len(out_names):
            raise GraphError("to_onnx: input and output names must be distinct")
        if any(n.startswith("gv_") for n in [*in_names, *out_names]):
            raise GraphError("to_onnx: names starting with 'gv_' are reserved")
        for i, nm in zip(g.inputs, in_names):
            self.name[i] = nm
        needed = g.ancestors(g.outputs)
        for nd in g.nodes:
            if nd.id in needed:
                self.node(nd)
        for o, nm in zip(g.outputs, out_names):
            if g.nodes[o].op == "constant":
                self.emit("Expand", [self.name[o], self.batch_shape(g.nodes[o].size)], nm)
            else:
                self.emit("Identity", [self.name[o]], nm)
        inputs = [helper.make_tensor_value_info(nm, self.elem, [self.batch, g.nodes[i].size])
                  for i, nm in zip(g.inputs, in_names)]
        outputs = [helper.make_tensor_value_info(nm, self.elem, [self.batch, g.nodes[o].size])
                   for o, nm in zip(g.outputs, out_names)]
        graph = helper.make_graph(self.nodes, "gridverify", inputs, outputs, self.inits)
        opsets = [helper.make_opsetid("", self.opset)]
        model = helper.make_model(graph, opset_imports=opsets, producer_name="gridverify")
        model.ir_version = helper.find_min_ir_version_for(opsets)
        return model


def _row_buckets(
    rows: np.ndarray, cols: np.ndarray, vals: np.ndarray, n_out: int
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """A sparse map as padded row blocks: ``(members, cols (n, K), weights (n, K))`` each.

    Rows are grouped by their number of entries rounded up to a power of two
    (``K``), so padding at most doubles the entries; row ``r`` of a block holds
    the entries of output ``members[r]`` in its first slots, the other slots read
    column 0 with weight 0.  Blocks come in increasing ``K``; every output row is
    in exactly one block (a row without entries in the ``K = 1`` block).
    """
    rows = np.asarray(rows, dtype=np.int64)
    order = np.argsort(rows, kind="stable")
    r = rows[order]
    c = np.asarray(cols, dtype=np.int64)[order]
    v = np.asarray(vals, dtype=np.float64)[order]
    counts = np.bincount(r, minlength=n_out)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    slot = np.arange(r.size) - starts[r]
    width = 1 << np.ceil(np.log2(np.maximum(counts, 1))).astype(np.int64)
    out = []
    for k in np.unique(width):
        members = np.nonzero(width == k)[0]
        at = np.full(n_out, -1, dtype=np.int64)
        at[members] = np.arange(members.size)
        mine = at[r] >= 0
        idx = np.zeros((members.size, int(k)), dtype=np.int64)
        w = np.zeros((members.size, int(k)), dtype=np.float64)
        idx[at[r[mine]], slot[mine]] = c[mine]
        w[at[r[mine]], slot[mine]] = v[mine]
        out.append((members, idx, w))
    return out


def to_onnx(
    graph: Graph,
    path: str | os.PathLike[str] | None,
    opset: int = OPSET,
    batch_dim: int | None = 1,
    input_names: Sequence[str] | None = None,
    output_names: Sequence[str] | None = None,
    dtype: Any = np.float32,
    check: bool = True,
) -> Any:
    """Write ``graph`` as an ONNX model to ``path`` (atomically) and return the ModelProto.

    Inputs and outputs are ``(batch, size)`` tensors named after the graph's
    inputs and outputs (or ``input_names`` / ``output_names``); ``batch_dim``
    fixes the batch size in the file (``None``: a symbolic ``'N'``).  ``dtype``
    is the element type of the file (float32, the ONNX norm, or float64).
    ``path=None`` only builds the model.  ``check`` runs ``onnx.checker``.
    """
    import onnx

    if opset < 13:
        raise GraphError(f"to_onnx: opset {opset} is not supported (13 or later)")
    if batch_dim is not None and int(batch_dim) < 1:
        raise GraphError(f"to_onnx: batch_dim must be positive or None, got {batch_dim}")
    model = _Exporter(graph, opset, batch_dim, dtype).build(input_names, output_names)
    if check:
        onnx.checker.check_model(model)
    if path is not None:
        with atomic_path(path, fsync=False, mkdir=False) as tmp:
            onnx.save(model, str(tmp))
    return model
