"""ONNX export of a deployed :class:`~gridverify.proxy.model.ProxyMLP`.

The file is the graph the bounds see: the folded module imported by
:func:`~gridverify.ir.torch_import.from_torch` (one lowering of each activation,
in portable ops) and written by :func:`~gridverify.ir.onnx_export.to_onnx`: a
chain of ``Gemm`` + activation nodes; with the clamp head, the clamped rows
(``Sigmoid``, ``Mul`` by the span, ``Add`` of the lower limit) and the unclamped
``va`` rows are joined by ``Concat``.  Input ``loads``
``(batch, 2L)``, output ``solution`` ``(batch, 2G + 2N)``, float32 by default.
Case identity and the architecture go into the model's metadata.  The opset is
gridverify's :data:`~gridverify.ir.onnx_export.OPSET`, stated in the file, and
every op is one of :data:`~gridverify.ir.onnx_export.PORTABLE_OPS` (read by
onnxruntime, onnx2torch and onnx2pytorch; onnxruntime has no float64 ``Erf``, so a
float64 export of a GELU proxy does not run there: the float32 default does).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from gridverify.errors import ProxyError
from gridverify.fileio import atomic_write_bytes
from gridverify.ir.onnx_export import OPSET
from gridverify.proxy.model import ProxyMLP

__all__ = ["INPUT_NAME", "OPSET", "OUTPUT_NAME", "export_onnx", "proxy_to_onnx",
           "write_bytes_atomic"]

INPUT_NAME = "loads"
OUTPUT_NAME = "solution"

if TYPE_CHECKING:  # onnx is imported when a model is written (it costs ~0.7 s at start-up)
    import onnx

_DTYPES = {"float32": np.float32, "float64": np.float64}


def proxy_to_onnx(
    model: ProxyMLP,
    *,
    case_name: str = "",
    case_hash: str = "",
    dtype: str = "float32",
) -> onnx.ModelProto:
    """Build the ONNX model of a folded proxy (see module docstring)."""
    import onnx
    from onnx import helper

    from gridverify.ir.onnx_export import to_onnx
    from gridverify.ir.torch_import import from_torch

    if dtype not in _DTYPES:
        raise ProxyError(f"ONNX dtype must be float32 or float64, got {dtype!r}")
    arch = model.arch
    # the graph the bounds see (one lowering of each activation), written as ONNX
    graph = from_torch(model.folded(torch.float64), input_size=arch.input_size,
                       merge_pwl=False)
    m = to_onnx(graph, None, batch_dim=None, input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME], dtype=_DTYPES[dtype], check=False)
    m.graph.name = "gridverify_proxy"
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

