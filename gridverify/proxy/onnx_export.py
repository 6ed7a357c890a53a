"""ONNX export of a deployed :class:`~gridverify.proxy.model.ProxyMLP`.

The graph is written directly with ``onnx.helper`` (no tracing): a chain of
``Gemm`` + activation nodes; with the clamp head, the last layer is split into
the clamped rows (``Sigmoid``, ``Mul`` by the span, ``Add`` of the lower limit)
and the unclamped ``va`` rows, joined by ``Concat``.  Input ``loads``
``(batch, 2L)``, output ``solution`` ``(batch, 2G + 2N)``, float32 by default.
Case identity and the architecture go into the model's metadata.  The opset is
gridverify's :data:`~gridverify.ir.onnx_export.OPSET`, stated in the file, and
every op is one of :data:`~gridverify.ir.onnx_export.PORTABLE_OPS` (read by
onnxruntime, onnx2torch and onnx2pytorch).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from gridverify.errors import ProxyError
from gridverify.fileio import atomic_write_bytes
from gridverify.ir.onnx_export import OPSET
from gridverify.proxy.model import LEAKY_SLOPE, ProxyMLP

__all__ = ["INPUT_NAME", "OPSET", "OUTPUT_NAME", "export_onnx", "proxy_to_onnx",
           "write_bytes_atomic"]

INPUT_NAME = "loads"
OUTPUT_NAME = "solution"

if TYPE_CHECKING:  # onnx is imported when a model is written (it costs ~0.7 s at start-up)
    import onnx

_DTYPES = {"float32": (np.float32, "FLOAT"), "float64": (np.float64, "DOUBLE")}


def proxy_to_onnx(
    model: ProxyMLP,
    *,
    case_name: str = "",
    case_hash: str = "",
    dtype: str = "float32",
) -> onnx.ModelProto:
    """Build the ONNX model of a folded proxy (see module docstring)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    if not model.is_folded:
        model = model.folded()
    if dtype not in _DTYPES:
        raise ProxyError(f"ONNX dtype must be float32 or float64, got {dtype!r}")
    np_dt, onnx_name = _DTYPES[dtype]
    onnx_dt = getattr(TensorProto, onnx_name)
    arch = model.arch
    inits: list[onnx.TensorProto] = []
    nodes: list[onnx.NodeProto] = []

    def const(name: str, arr: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(np.asarray(arr, dtype=np_dt), name=name))
        return name

    def gemm(x: str, w: np.ndarray, b: np.ndarray, name: str) -> str:
        wn = const(f"{name}.weight", w)
        bn = const(f"{name}.bias", b)
        out = f"{name}.out"
        nodes.append(helper.make_node("Gemm", [x, wn, bn], [out], name=name, transB=1))
        return out

    def activation(x: str, name: str) -> str:
        act = arch.activation
        out = f"{name}.out"
        if act == "relu":
            nodes.append(helper.make_node("Relu", [x], [out], name=name))
        elif act == "sigmoid":
            nodes.append(helper.make_node("Sigmoid", [x], [out], name=name))
        elif act == "tanh":
            nodes.append(helper.make_node("Tanh", [x], [out], name=name))
        elif act == "gelu":  # exact GELU: x * 0.5 * (1 + erf(x / sqrt 2))
            c = const(f"{name}.inv_sqrt2", np.array(1.0 / math.sqrt(2.0)))
            one = const(f"{name}.one", np.array(1.0))
            half = const(f"{name}.half", np.array(0.5))
            nodes.extend([
                helper.make_node("Mul", [x, c], [f"{name}.s"], name=f"{name}.scale"),
                helper.make_node("Erf", [f"{name}.s"], [f"{name}.e"], name=f"{name}.erf"),
                helper.make_node("Add", [f"{name}.e", one], [f"{name}.p"], name=f"{name}.add"),
                helper.make_node("Mul", [f"{name}.p", half], [f"{name}.h"], name=f"{name}.half"),
                helper.make_node("Mul", [x, f"{name}.h"], [out], name=name),
            ])
        elif act == "silu":  # x * sigmoid(x)
            nodes.extend([
                helper.make_node("Sigmoid", [x], [f"{name}.s"], name=f"{name}.sigmoid"),
                helper.make_node("Mul", [x, f"{name}.s"], [out], name=name),
            ])
        elif act == "leaky_relu":  # slope * x + (1 - slope) * relu(x), in portable ops
            a = const(f"{name}.slope", np.array(LEAKY_SLOPE))
            b = const(f"{name}.rest", np.array(1.0 - LEAKY_SLOPE))
            nodes.extend([
                helper.make_node("Relu", [x], [f"{name}.r"], name=f"{name}.relu"),
                helper.make_node("Mul", [x, a], [f"{name}.ax"], name=f"{name}.lin"),
                helper.make_node("Mul", [f"{name}.r", b], [f"{name}.br"], name=f"{name}.kink"),
                helper.make_node("Add", [f"{name}.ax", f"{name}.br"], [out], name=name),
            ])
        elif act == "elu":  # relu(x) + exp(-relu(-x)) - 1, in portable ops
            one = const(f"{name}.one", np.array(1.0))
            nodes.extend([
                helper.make_node("Relu", [x], [f"{name}.r"], name=f"{name}.relu"),
                helper.make_node("Neg", [x], [f"{name}.nx"], name=f"{name}.neg"),
                helper.make_node("Relu", [f"{name}.nx"], [f"{name}.rn"], name=f"{name}.relu_neg"),
                helper.make_node("Neg", [f"{name}.rn"], [f"{name}.m"], name=f"{name}.min0"),
                helper.make_node("Exp", [f"{name}.m"], [f"{name}.e"], name=f"{name}.exp"),
                helper.make_node("Sub", [f"{name}.e", one], [f"{name}.e1"], name=f"{name}.sub"),
                helper.make_node("Add", [f"{name}.r", f"{name}.e1"], [out], name=name),
            ])
        else:  # pragma: no cover - ProxyArch validates
            raise ProxyError(f"unknown activation {act!r}")
        return out

    h = INPUT_NAME
    n_layers = len(model.layers)
    for i, lin in enumerate(model.layers[:-1]):
        w = lin.weight.detach().cpu().numpy().astype(np.float64)
        b = lin.bias.detach().cpu().numpy().astype(np.float64)
        h = activation(gemm(h, w, b, f"layers.{i}"), f"act.{i}")
    last = model.layers[-1]
    w = last.weight.detach().cpu().numpy().astype(np.float64)
    b = last.bias.detach().cpu().numpy().astype(np.float64)
    li = n_layers - 1
    if arch.clamp_head:
        nc = arch.n_clamped
        zc = gemm(h, w[:nc], b[:nc], f"layers.{li}.clamped")
        lo = model.head_lo.detach().cpu().numpy().astype(np.float64)
        span = model.head_span.detach().cpu().numpy().astype(np.float64)
        nodes.append(helper.make_node("Sigmoid", [zc], ["head.sig"], name="head.sigmoid"))
        nodes.append(
            helper.make_node("Mul", ["head.sig", const("head_span", span)], ["head.mul"],
                             name="head.mul")
        )
        nodes.append(
            helper.make_node("Add", ["head.mul", const("head_lo", lo)], ["head.clamped"],
                             name="head.add")
        )
        zl = gemm(h, w[nc:], b[nc:], f"layers.{li}.free")
        nodes.append(
            helper.make_node("Concat", ["head.clamped", zl], [OUTPUT_NAME], name="head.concat",
                             axis=1)
        )
    else:
        nodes.append(
            helper.make_node("Gemm", [h, const(f"layers.{li}.weight", w),
                                      const(f"layers.{li}.bias", b)],
                             [OUTPUT_NAME], name=f"layers.{li}", transB=1)
        )
    graph = helper.make_graph(
        nodes,
        "gridverify_proxy",
        [helper.make_tensor_value_info(INPUT_NAME, onnx_dt, ["batch", arch.input_size])],
        [helper.make_tensor_value_info(OUTPUT_NAME, onnx_dt, ["batch", arch.output_size])],
        initializer=inits,
    )
    m = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="gridverify",
    )
    m.ir_version = 8
    helper.set_model_props(
        m,
        {
            "gridverify.case_name": case_name,
            "gridverify.case_hash": case_hash,
            "gridverify.arch": arch.to_json(),
        },
    )
    onnx.checker.check_model(m)
    return m


def export_onnx(
    model: ProxyMLP,
    path: str | os.PathLike[str],
    *,
    case_name: str = "",
    case_hash: str = "",
    dtype: str = "float32",
) -> Path:
    """Write the ONNX form of ``model`` to ``path`` atomically; returns the path."""
    m = proxy_to_onnx(model, case_name=case_name, case_hash=case_hash, dtype=dtype)
    path = Path(path)
    data = m.SerializeToString(deterministic=True)
    write_bytes_atomic(path, data)
    return path


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and ``os.replace``."""
    atomic_write_bytes(path, data, fsync=False)

