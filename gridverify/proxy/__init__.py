"""ACOPF proxies: the MLP, training, metrics, model directories, ONNX, loading.

Convention (``docs/proxy.md``): input ``[pd (L), qd (L)]`` per unit in compiled
load order; output ``[pg (G), qg (G), vm (N), va (N)]`` per unit and radians.
Names are imported lazily so that light users (the CLI) do not import torch.
"""

from __future__ import annotations

from gridverify._lazy import lazy_module_attrs

_EXPORTS: dict[str, str] = {
    "ACTIVATIONS": "gridverify.proxy.options",
    "TrainOptions": "gridverify.proxy.options",
    "InputRegion": "gridverify.proxy.load",
    "Proxy": "gridverify.proxy.load",
    "load_proxy": "gridverify.proxy.load",
    "check_source": "gridverify.proxy.load",
    "save_checkpoint": "gridverify.proxy.load",
    "ModelDir": "gridverify.proxy.artifacts",
    "read_card": "gridverify.proxy.artifacts",
    "read_model_dir": "gridverify.proxy.artifacts",
    "verify_model_dir": "gridverify.proxy.artifacts",
    "write_model_dir": "gridverify.proxy.artifacts",
    "ProxyArch": "gridverify.proxy.model",
    "ProxyMLP": "gridverify.proxy.model",
    "export_onnx": "gridverify.proxy.onnx_export",
    "proxy_to_onnx": "gridverify.proxy.onnx_export",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_module_attrs(__name__, _EXPORTS)
