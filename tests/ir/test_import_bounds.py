"""Bounds of the ONNX import == bounds of the torch import (same model), and they hold."""

from __future__ import annotations

import io

import numpy as np
import onnxruntime as ort
import pytest
import torch
from test_import_torch import AcopfLike
from torch import nn

from gridverify.bounds import compute_bounds
from gridverify.ir.onnx_export import to_onnx
from gridverify.ir.onnx_import import from_onnx
from gridverify.ir.torch_import import from_torch


def _export(m: nn.Module, n_in: int, dynamic: bool) -> bytes:
    buf = io.BytesIO()
    axes = {"x": {0: "N"}, "y": {0: "N"}} if dynamic else None
    torch.onnx.export(m, (torch.zeros(1, n_in, dtype=torch.float64),), buf, dynamo=False,
                      opset_version=17, input_names=["x"], output_names=["y"],
                      dynamic_axes=axes)
    return buf.getvalue()


def _models():
    torch.manual_seed(11)
    mlp = nn.Sequential(nn.Linear(22, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(),
                        nn.Linear(32, 38), nn.Sigmoid()).double().eval()
    return [("mlp", mlp, 22), ("acopf_like", AcopfLike().double().eval(), 6)]


def _same_structure(g1, g2) -> None:
    """Same ops in the same order with the same constants (so every bound method agrees)."""
    assert [n.op for n in g1.nodes] == [n.op for n in g2.nodes]
    assert [n.inputs for n in g1.nodes] == [n.inputs for n in g2.nodes]
    for n1, n2 in zip(g1.nodes, g2.nodes):
        assert n1.attrs.keys() == n2.attrs.keys()
        for k, v in n1.attrs.items():
            if isinstance(v, torch.Tensor):
                torch.testing.assert_close(v, n2.attrs[k], atol=1e-12, rtol=1e-12)
            else:
                assert v == n2.attrs[k]


def _check(tmp_path, which: int, dynamic: bool, methods: tuple[str, ...]) -> None:
    name, m, n_in = _models()[which]
    data = _export(m, n_in, dynamic)
    path = tmp_path / f"{name}.onnx"
    path.write_bytes(data)
    g_torch = from_torch(m)
    # the exporter's round trip of the torch graph must bound the same way too
    g_rt = from_onnx(to_onnx(g_torch, None, dtype=np.float64))
    _same_structure(from_onnx(path), g_torch)
    rng = np.random.default_rng(which)
    center = torch.from_numpy(rng.uniform(-0.5, 0.5, size=n_in))
    lo, hi = center - 0.3, center + 0.3
    sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    xs = lo + (hi - lo) * torch.rand(200, n_in, dtype=torch.float64)
    ys = np.concatenate([sess.run(None, {"x": xs[i:i + 1].numpy()})[0] for i in range(200)])
    for method in methods:
        b_onnx = compute_bounds(str(path), lo, hi, method=method)
        b_torch = compute_bounds(m, lo, hi, method=method)
        b_rt = compute_bounds(g_rt, lo, hi, method=method)
        for b in (b_onnx, b_rt):
            torch.testing.assert_close(b.lower, b_torch.lower, atol=1e-9, rtol=1e-9)
            torch.testing.assert_close(b.upper, b_torch.upper, atol=1e-9, rtol=1e-9)
        assert torch.isfinite(b_torch.lower).all() and torch.isfinite(b_torch.upper).all()
        assert (ys >= b_onnx.lower.numpy() - 1e-9).all()
        assert (ys <= b_onnx.upper.numpy() + 1e-9).all()


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("which,dynamic,methods", [
    (0, False, ("ibp", "crown")), (0, True, ("ibp",)), (1, False, ("ibp",)),
    (1, True, ("ibp",))])
def test_onnx_and_torch_imports_give_same_bounds(tmp_path, which, dynamic, methods):
    _check(tmp_path, which, dynamic, methods)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("dynamic", [False, True])
@pytest.mark.parametrize("which", [0, 1])
def test_onnx_and_torch_imports_give_same_bounds_all_methods(tmp_path, which, dynamic):
    _check(tmp_path, which, dynamic, ("ibp", "crown", "alpha-crown"))
