"""Our ONNX exports are portable: onnx2torch converts them and agrees with onnxruntime.

Every shipped proxy (``models/*``) is exported as ``vnncomp make-instances``
does (proxy + AC physics, float32, batch 1) and as the proxy alone
(``proxy_to_onnx``).  Each file must use only :data:`PORTABLE_OPS` at the stated
opset, convert with onnx2torch, and agree with onnxruntime: in float64 (the file
widened, so that float32 rounding of two runtimes is not compared) to 1e-6, and
as stored in float32 to the rounding of float32.  gridverify's own importer
must read the export back.

onnx2torch imports torchvision at import time for its NMS and RoIAlign
converters.  The only torchvision build for torch 2.13 on PyPI is CUDA-built and
cannot load its ops with the CPU torch (or torchvision is absent); then
onnx2torch is imported with a stand-in ``torchvision`` whose ops raise, which
none of our graphs reach.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper

from gridverify.ir import from_onnx
from gridverify.ir.onnx_export import OPSET, PORTABLE_OPS
from gridverify.proxy.load import load_proxy
from gridverify.proxy.onnx_export import proxy_to_onnx
from gridverify.vnncomp.check_physics import onnx_float64
from gridverify.vnncomp.instances import acopf_graph, export_onnx

MODELS = Path(__file__).resolve().parents[2] / "models"
SMALL = ["case14_relu", "case14_tanh", "case14_gelu", "case14_relu_stable", "case57_relu",
         "case57_tanh", "case57_relu_stable"]
BIG = ["case118_relu", "case118_tanh", "case300_relu", "case300_tanh"]


def _onnx2torch():
    """``onnx2torch.convert`` (see the module docstring for the torchvision stand-in)."""
    try:
        import onnx2torch
    except ModuleNotFoundError as exc:
        if exc.name != "torchvision":
            pytest.fail("onnx2torch is a dev dependency: pip install -e '.[dev]'")
    except RuntimeError as exc:  # a torchvision whose compiled ops do not load
        if "torchvision" not in str(exc):
            raise
    else:
        return onnx2torch.convert
    for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")
                 or m.startswith("onnx2torch")]:
        del sys.modules[name]

    def unavailable(*args, **kwargs):
        raise RuntimeError("torchvision is not available")

    tv, ops = types.ModuleType("torchvision"), types.ModuleType("torchvision.ops")
    ops.nms = ops.roi_align = ops.box_convert = unavailable
    tv.ops = ops
    sys.modules.update({"torchvision": tv, "torchvision.ops": ops})
    try:
        import onnx2torch
    finally:
        del sys.modules["torchvision"], sys.modules["torchvision.ops"]
    return onnx2torch.convert


@pytest.fixture(scope="module")
def convert():
    return _onnx2torch()


def _runnable_float64(model: onnx.ModelProto) -> onnx.ModelProto:
    """The file widened to float64; Erf (no float64 kernel in onnxruntime) kept in float32."""
    wide = onnx_float64(model)
    nodes = []
    for nd in wide.graph.node:
        if nd.op_type != "Erf":
            nodes.append(nd)
            continue
        a, b = nd.input[0] + "_f32", nd.output[0] + "_f32"
        nodes += [helper.make_node("Cast", [nd.input[0]], [a], to=TensorProto.FLOAT),
                  helper.make_node("Erf", [a], [b]),
                  helper.make_node("Cast", [b], [nd.output[0]], to=TensorProto.DOUBLE)]
    del wide.graph.node[:]
    wide.graph.node.extend(nodes)
    return wide


def _compare(model: onnx.ModelProto, convert, xs: np.ndarray, tol32: float) -> None:
    """onnxruntime vs onnx2torch: float64 to 1e-6, the stored float32 file to ``tol32``."""
    ops = {nd.op_type for nd in model.graph.node}
    assert ops <= PORTABLE_OPS, ops - PORTABLE_OPS
    assert [(o.domain, o.version) for o in model.opset_import] == [("", OPSET)]
    name = model.graph.input[0].name
    for m, dtype, tol in ((_runnable_float64(model), np.float64, 1e-6),
                          (model, np.float32, tol32)):
        sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
        module = convert(m).eval()
        for x in xs:
            xx = x[None].astype(dtype)
            want = sess.run(None, {name: xx})[0]
            with torch.no_grad():
                got = module(torch.from_numpy(xx)).numpy()
            assert got.dtype == want.dtype == dtype
            err = np.abs(got - want) / np.maximum(1.0, np.abs(want))
            assert err.max() <= tol, (dtype, float(err.max()))


def _check_model(name: str, convert) -> None:
    proxy = load_proxy(MODELS / name)
    from gridverify.grid import load_compiled

    case = load_compiled(proxy.case_name, emit_warnings=False)
    x0 = np.concatenate([case.pd, case.qd])
    rng = np.random.default_rng(0)
    xs = x0 * rng.uniform(0.9, 1.1, size=(3, x0.size))
    # the proxy alone (the shipped model.onnx is the same exporter's output)
    _compare(proxy_to_onnx(proxy.module, case_name=case.name), convert, xs, 1e-5)
    # proxy + physics, as vnncomp make-instances writes it
    graph, _ = acopf_graph(case, proxy.module)
    model = onnx.load_from_string(_export_bytes(graph))
    assert "ScatterElements" not in {nd.op_type for nd in model.graph.node}
    _compare(model, convert, xs, 1e-3)
    # gridverify's importer reads it back
    back = from_onnx(model)
    sess = ort.InferenceSession(_runnable_float64(model).SerializeToString(),
                                providers=["CPUExecutionProvider"])
    for x in xs:
        want = sess.run(None, {"X": x[None]})[0]
        got = back.evaluate_flat(torch.from_numpy(x[None])).numpy()
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


def _export_bytes(graph) -> bytes:
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        return export_onnx(graph, Path(d) / "m.onnx").read_bytes()


@pytest.mark.parametrize("name", SMALL + BIG)  # about 1.5 s for the biggest (case300)
def test_shipped_proxy_exports_convert_with_onnx2torch(name, convert):
    _check_model(name, convert)


def test_every_shipped_model_is_listed():
    shipped = sorted(p.name for p in MODELS.iterdir() if (p / "card.json").exists())
    assert shipped == sorted(SMALL + BIG)
