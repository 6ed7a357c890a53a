"""ACOPF proxies: the MLP, training, metrics, model directories, ONNX, loading.

Convention (``docs/proxy.md``): input ``[pd (L), qd (L)]`` per unit in compiled
load order; output ``[pg (G), qg (G), vm (N), va (N)]`` per unit and radians.
"""

from __future__ import annotations

from gridverify.proxy.artifacts import (
    ModelDir,
    read_card,
    read_model_dir,
    verify_model_dir,
    write_model_dir,
)
from gridverify.proxy.load import InputRegion, Proxy, load_proxy, save_checkpoint
from gridverify.proxy.model import ACTIVATIONS, ProxyArch, ProxyMLP
from gridverify.proxy.onnx_export import export_onnx, proxy_to_onnx

__all__ = [
    "ACTIVATIONS",
    "InputRegion",
    "ModelDir",
    "Proxy",
    "ProxyArch",
    "ProxyMLP",
    "export_onnx",
    "load_proxy",
    "proxy_to_onnx",
    "read_card",
    "read_model_dir",
    "save_checkpoint",
    "verify_model_dir",
    "write_model_dir",
]
