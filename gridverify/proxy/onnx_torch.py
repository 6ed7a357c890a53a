"""A small ONNX -> torch path for feed-forward proxy graphs.

:class:`OnnxModule` evaluates the nodes of an ONNX graph with torch ops, in any
floating dtype (float64 included).  It covers the ops MLP proxies use: Gemm,
MatMul, Add, Sub, Mul, Div, Neg, Relu, LeakyRelu, Sigmoid, Tanh, Erf, Gelu,
Softplus, Clip, Concat, Flatten, Reshape (to ``(batch, -1)``), Slice (constant
arguments), Identity, Constant.  Anything else raises
:class:`~gridverify.errors.UnsupportedOpError` naming the op and node.

The module's output is the concatenation of the graph outputs, each flattened
to ``(batch, -1)``; ``keep`` truncates it to its first ``keep`` entries (a proxy
whose ONNX has extra outputs after the solution, e.g. physics residuals).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from gridverify.errors import ProxyError, UnsupportedOpError

if TYPE_CHECKING:  # onnx is imported when an ONNX file is read (~0.7 s at start-up)
    import onnx

_SUPPORTED = {
    "Gemm", "MatMul", "Add", "Sub", "Mul", "Div", "Neg", "Relu", "LeakyRelu", "Sigmoid",
    "Tanh", "Erf", "Gelu", "Softplus", "Clip", "Concat", "Flatten", "Reshape", "Slice",
    "Identity", "Constant",
}


def read_onnx(path: str | os.PathLike[str]) -> onnx.ModelProto:
    """Load and check an ONNX file; a malformed file raises :class:`ProxyError`."""
    import onnx

    try:
        m = onnx.load(os.fspath(path))
        onnx.checker.check_model(m)
    except FileNotFoundError:
        raise
    except Exception as exc:  # onnx raises several unrelated types
        raise ProxyError(f"{path}: not a valid ONNX model: {exc}") from None
    return m


def onnx_metadata(m: onnx.ModelProto) -> dict[str, str]:
    """The model's ``metadata_props`` as a dict."""
    return {p.key: p.value for p in m.metadata_props}


class OnnxModule(nn.Module):
    """Torch evaluation of a (feed-forward) ONNX graph; see module docstring."""

    def __init__(self, m: onnx.ModelProto, *, keep: int | None = None, source: str = "onnx"):
        from onnx import helper, numpy_helper

        super().__init__()
        g = m.graph
        init_names = {t.name for t in g.initializer}
        inputs = [i.name for i in g.input if i.name not in init_names]
        if len(inputs) != 1:
            raise ProxyError(f"{source}: a proxy ONNX graph needs exactly one input, "
                             f"found {len(inputs)}")
        self.input_name = inputs[0]
        self.output_names = [o.name for o in g.output]
        self.keep = keep
        self._consts: dict[str, str] = {}
        self._ints: dict[str, list[int]] = {}
        for t in g.initializer:
            self._add_const(t.name, numpy_helper.to_array(t))
        self._nodes: list[tuple[str, list[str], list[str], dict[str, Any], str]] = []
        for k, node in enumerate(g.node):
            name = node.name or f"node{k}"
            if node.domain not in ("", "ai.onnx"):
                raise UnsupportedOpError(node.op_type, name, f"domain {node.domain!r}")
            if node.op_type not in _SUPPORTED:
                raise UnsupportedOpError(node.op_type, name)
            attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            if node.op_type == "Constant":
                if "value" not in attrs:
                    raise UnsupportedOpError("Constant", name, "only the 'value' attribute")
                self._add_const(node.output[0], numpy_helper.to_array(attrs["value"]))
                continue
            self._nodes.append((node.op_type, list(node.input), list(node.output), attrs, name))

    def _add_const(self, name: str, arr: np.ndarray) -> None:
        if np.issubdtype(arr.dtype, np.integer):
            self._ints[name] = [int(v) for v in arr.reshape(-1)]
        buf = f"c{len(self._consts)}"
        t = torch.from_numpy(np.array(arr, dtype=np.float64))
        self.register_buffer(buf, t)
        self._consts[name] = buf

    def _ints_of(self, name: str, node: str, op: str) -> list[int]:
        if name not in self._ints:
            raise UnsupportedOpError(op, node, f"argument {name!r} must be a constant")
        return self._ints[name]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, n_in) -> (B, n_out)`` in ``x``'s dtype."""
        env: dict[str, torch.Tensor] = {self.input_name: x}

        def get(name: str) -> torch.Tensor:
            if name in env:
                return env[name]
            return getattr(self, self._consts[name]).to(x.dtype)

        for op, ins, outs, attrs, name in self._nodes:
            a = [get(i) if i else None for i in ins]
            env[outs[0]] = self._apply(op, a, ins, attrs, name)
        ys = [env[o].reshape(x.shape[0], -1) if o in env else get(o).expand(x.shape[0], -1)
              for o in self.output_names]
        y = torch.cat(ys, dim=1) if len(ys) > 1 else ys[0]
        if self.keep is not None:
            y = y[:, : self.keep]
        return y

    def _apply(self, op: str, a: list[Any], ins: list[str], attrs: dict[str, Any],
               name: str) -> torch.Tensor:
        if op == "Gemm":
            A, B = a[0], a[1]
            if attrs.get("transA", 0):
                A = A.transpose(-1, -2)
            if attrs.get("transB", 0):
                B = B.transpose(-1, -2)
            y = attrs.get("alpha", 1.0) * (A @ B)
            if len(a) > 2 and a[2] is not None:
                y = y + attrs.get("beta", 1.0) * a[2]
            return y
        if op == "MatMul":
            return a[0] @ a[1]
        if op == "Add":
            return a[0] + a[1]
        if op == "Sub":
            return a[0] - a[1]
        if op == "Mul":
            return a[0] * a[1]
        if op == "Div":
            return a[0] / a[1]
        if op == "Neg":
            return -a[0]
        if op == "Relu":
            return torch.relu(a[0])
        if op == "LeakyRelu":
            return torch.nn.functional.leaky_relu(a[0], attrs.get("alpha", 0.01))
        if op == "Sigmoid":
            return torch.sigmoid(a[0])
        if op == "Tanh":
            return torch.tanh(a[0])
        if op == "Erf":
            return torch.erf(a[0])
        if op == "Gelu":
            approx = attrs.get("approximate", b"none")
            approx = approx.decode() if isinstance(approx, bytes) else approx
            return torch.nn.functional.gelu(a[0], approximate=approx)
        if op == "Softplus":
            return torch.nn.functional.softplus(a[0])
        if op == "Clip":
            lo = a[1] if len(a) > 1 else None
            hi = a[2] if len(a) > 2 else None
            return torch.clamp(a[0], min=lo, max=hi)
        if op == "Concat":
            return torch.cat(a, dim=int(attrs.get("axis", 0)))
        if op in ("Flatten", "Reshape"):
            if op == "Reshape":
                shape = self._ints_of(ins[1], name, op)
                width = a[0].reshape(a[0].shape[0], -1).shape[1]
                if len(shape) != 2 or shape[1] not in (-1, width):
                    raise UnsupportedOpError(op, name, f"only reshapes to (batch, -1), got {shape}")
            return a[0].reshape(a[0].shape[0], -1)
        if op == "Slice":
            starts = self._ints_of(ins[1], name, op)
            ends = self._ints_of(ins[2], name, op)
            axes = self._ints_of(ins[3], name, op) if len(ins) > 3 and ins[3] else None
            steps = self._ints_of(ins[4], name, op) if len(ins) > 4 and ins[4] else None
            y = a[0]
            axes = axes or list(range(len(starts)))
            steps = steps or [1] * len(starts)
            for s, e, ax, st in zip(starts, ends, axes, steps):
                if st <= 0:
                    raise UnsupportedOpError(op, name, "only positive steps")
                idx = [slice(None)] * y.dim()
                idx[ax] = slice(s, min(e, y.shape[ax]), st)
                y = y[tuple(idx)]
            return y
        if op == "Identity":
            return a[0]
        raise UnsupportedOpError(op, name)  # pragma: no cover


def probe_sizes(m: onnx.ModelProto) -> tuple[int | None, list[int | None]]:
    """Declared input width and output widths (None where symbolic)."""

    def width(vi: onnx.ValueInfoProto) -> int | None:
        dims = vi.type.tensor_type.shape.dim
        if not dims:
            return None
        d = dims[-1]
        return int(d.dim_value) if d.HasField("dim_value") else None

    init = {t.name for t in m.graph.initializer}
    ins = [i for i in m.graph.input if i.name not in init]
    n_in = width(ins[0]) if ins else None
    return n_in, [width(o) for o in m.graph.output]
