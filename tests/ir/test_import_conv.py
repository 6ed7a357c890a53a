"""Convolutions and pooling (ONNX Conv / MaxPool / AveragePool / Global*Pool, torch
convNd, max/avg/adaptive pooling) import as torch and onnxruntime compute them, and
their bounds hold against sampling."""

from __future__ import annotations

import io

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from gridverify.bounds import compute_bounds
from gridverify.errors import UnsupportedOpError
from gridverify.ir import from_onnx, from_torch
from gridverify.ir.torch_import import from_exported
from gridverify.ir.windows import windows


class _Functional(nn.Module):
    """Convolution and pooling written with ``torch.nn.functional``."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.randn(3, 2, 3, 3))
        self.b = nn.Parameter(torch.randn(3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.conv2d(x, self.w, self.b, padding="same")
        y = F.max_pool2d(torch.relu(y), 2, ceil_mode=True)
        y = F.avg_pool2d(y, 2, stride=1, padding=1)
        return F.adaptive_avg_pool2d(y, (2, 1)).flatten(1)


def _models() -> dict[str, tuple[nn.Module, tuple[int, ...]]]:
    torch.manual_seed(0)
    return {
        "conv2d_stride_pad": (nn.Sequential(
            nn.Conv2d(2, 3, 3, stride=2, padding=1), nn.ReLU(), nn.MaxPool2d(2, padding=1),
            nn.Flatten(), nn.Linear(27, 2)), (2, 7, 7)),
        "conv2d_dilation_groups": (nn.Sequential(
            nn.Conv2d(4, 6, (3, 2), stride=(1, 2), padding=(2, 1), dilation=(2, 1), groups=2,
                      bias=False), nn.Tanh(), nn.Flatten()), (4, 6, 5)),
        "conv1d_avgpool_depthwise": (nn.Sequential(
            nn.Conv1d(1, 4, 3, padding=2, dilation=2), nn.Tanh(), nn.AvgPool1d(2),
            nn.Conv1d(4, 4, 2, groups=4, bias=False), nn.Flatten()), (1, 9)),
        "maxpool_ceil": (nn.Sequential(
            nn.Conv2d(1, 2, 2), nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True),
            nn.Flatten()), (1, 8, 8)),
        "avgpool_counts": (nn.Sequential(
            nn.Conv2d(1, 2, 2), nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False),
            nn.AvgPool2d(2, stride=2, padding=1, count_include_pad=True, ceil_mode=True),
            nn.Flatten()), (1, 9, 9)),
        "global_pools": (nn.Sequential(
            nn.Conv2d(1, 3, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten()), (1, 5, 5)),
        "functional": (_Functional(), (2, 6, 6)),
        "conv3d": (nn.Sequential(nn.Conv3d(1, 2, 2), nn.ReLU(), nn.Flatten()), (1, 3, 3, 3)),
    }


MODELS = _models()


def _x(shape: tuple[int, ...], n: int = 200, seed: int = 1) -> torch.Tensor:
    size = int(np.prod(shape))
    return torch.tensor(np.random.default_rng(seed).uniform(-1, 1, (n, size)))


def _assert_bounds_hold(g, x0: torch.Tensor, radius: float = 0.3) -> None:
    lo, hi = x0 - radius, x0 + radius
    gen = torch.Generator().manual_seed(0)
    xs = lo + (hi - lo) * torch.rand(4000, x0.shape[1], dtype=torch.float64, generator=gen)
    ys = torch.cat(g.evaluate(xs), 1)
    for method in ("ibp", "crown", "alpha-crown"):
        r = compute_bounds(g, lo, hi, method=method)
        assert torch.all(ys <= r.upper.reshape(1, -1) + 1e-9), method
        assert torch.all(ys >= r.lower.reshape(1, -1) - 1e-9), method


@pytest.mark.parametrize("name", sorted(MODELS))
def test_torch_import_computes_the_module(name: str) -> None:
    m, shape = MODELS[name]
    m = m.double().eval()
    x = _x(shape)
    ref = m(x.reshape((-1, *shape))).reshape(x.shape[0], -1)
    g = from_torch(m, example=torch.zeros((1, *shape), dtype=torch.float64))
    assert torch.allclose(torch.cat(g.evaluate(x), 1), ref, atol=1e-12)
    prog = torch.export.export(m, (torch.zeros((2, *shape), dtype=torch.float64),),
                               dynamic_shapes=({0: torch.export.Dim("b")},))
    g2 = from_exported(prog)
    assert torch.allclose(torch.cat(g2.evaluate(x), 1), ref, atol=1e-12)
    _assert_bounds_hold(g, x[:1])


@pytest.mark.parametrize("name", [n for n in sorted(MODELS) if n != "conv3d"])
def test_onnx_import_computes_what_onnxruntime_does(name: str) -> None:
    m, shape = MODELS[name]
    buf = io.BytesIO()
    torch.onnx.export(m.float().eval(), torch.zeros((1, *shape)), buf, input_names=["x"],
                      output_names=["y"], opset_version=17, dynamo=False)
    m.double()
    model = onnx.load_from_string(buf.getvalue())
    g = from_onnx(model)
    x = _x(shape, n=64)
    sess = ort.InferenceSession(buf.getvalue(), providers=["CPUExecutionProvider"])
    ref = np.concatenate([
        sess.run(None, {"x": xi.reshape((1, *shape)).numpy().astype(np.float32)})[0].ravel()[None]
        for xi in x])
    assert np.allclose(torch.cat(g.evaluate(x), 1).numpy(), ref, atol=1e-5)
    _assert_bounds_hold(g, x[:1])


def _onnx_conv(auto_pad: str) -> onnx.ModelProto:
    from onnx import TensorProto, helper, numpy_helper

    w = np.random.default_rng(3).normal(size=(2, 1, 3, 2)).astype(np.float32)
    node = helper.make_node("Conv", ["x", "w"], ["y"], auto_pad=auto_pad, strides=[2, 1])
    graph = helper.make_graph(
        [node], "c", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 5, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        initializer=[numpy_helper.from_array(w, "w")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize("auto_pad", ["SAME_UPPER", "SAME_LOWER", "VALID"])
def test_onnx_auto_pad(auto_pad: str) -> None:
    model = _onnx_conv(auto_pad)
    g = from_onnx(model)
    x = _x((1, 5, 4), n=16)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    ref = np.concatenate([
        sess.run(None, {"x": xi.reshape(1, 1, 5, 4).numpy().astype(np.float32)})[0].ravel()[None]
        for xi in x])
    assert np.allclose(torch.cat(g.evaluate(x), 1).numpy(), ref, atol=1e-5)


def test_unsupported_variants_are_named() -> None:
    m = nn.Sequential(nn.Conv2d(1, 1, 3, padding=1, padding_mode="reflect"), nn.Flatten())
    with pytest.raises(UnsupportedOpError, match="padding_mode='reflect'"):
        from_torch(m, example=torch.zeros(1, 1, 4, 4))
    m = nn.Sequential(nn.AdaptiveAvgPool2d(3), nn.Flatten())
    with pytest.raises(UnsupportedOpError, match="only even divisions"):
        from_torch(m, example=torch.zeros(1, 1, 4, 4))


@settings(max_examples=60, deadline=None)
@given(size=st.integers(1, 7), k=st.integers(1, 4), stride=st.integers(1, 3),
       pad=st.integers(0, 2), dil=st.integers(1, 2), ceil=st.booleans())
def test_windows_match_torch_unfold_counts(size: int, k: int, stride: int, pad: int,
                                           dil: int, ceil: bool) -> None:
    """Every window reads what torch's pooling reads: the sum over windows (average
    pooling that counts padding, times its divisor) equals torch's."""
    if dil * (k - 1) + 1 > size + 2 * pad or pad > k // 2:
        return  # torch refuses these shapes
    x = torch.randn(1, 1, size, dtype=torch.float64)
    win = windows([size], [k], [stride], [pad], [pad], [dil], ceil)
    ours = np.zeros(win.n_out)
    np.add.at(ours, win.p, x.numpy().ravel()[win.at])
    if dil == 1:
        ref = F.avg_pool1d(x, k, stride, pad, ceil_mode=ceil, count_include_pad=True)
        n_ref = ref.shape[-1]
        assert win.n_out == n_ref
        assert np.allclose(ours / win.padded, ref.numpy().ravel())
    ref_max = F.max_pool1d(x, k, stride, pad, dil, ceil_mode=ceil).numpy().ravel()
    assert win.n_out == ref_max.size
    best = np.full(win.n_out, -np.inf)
    np.maximum.at(best, win.p, x.numpy().ravel()[win.at])
    assert np.allclose(best, ref_max)
