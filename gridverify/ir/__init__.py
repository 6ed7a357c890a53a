"""The gridverify graph (IR): build, evaluate and compose computation graphs.

``GraphBuilder``/``Graph``/``Node``/``compose`` and the op table ``OPS`` live
here; the importers ``from_torch``, ``from_exported`` (torch.export programs)
and ``from_onnx`` are loaded lazily from ``gridverify.ir.torch_import`` and
``gridverify.ir.onnx_import``.
"""

from __future__ import annotations

import importlib
from typing import Any

from gridverify.ir.builder import GraphBuilder, compose
from gridverify.ir.graph import Graph, Node
from gridverify.ir.ops import OPS, OpInfo, op_info

__all__ = [
    "OPS",
    "Graph",
    "GraphBuilder",
    "Node",
    "OpInfo",
    "compose",
    "from_exported",
    "from_onnx",
    "from_torch",
    "op_info",
]

_LAZY = {
    "from_torch": "gridverify.ir.torch_import",
    "from_exported": "gridverify.ir.torch_import",
    "from_onnx": "gridverify.ir.onnx_import",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'gridverify.ir' has no attribute {name!r}")
