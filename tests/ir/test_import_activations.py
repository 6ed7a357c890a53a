"""The activations built from the op table, through both importers.

Each activation sits in a small MLP with batch norm; the graph imported from
the torch module and the graph imported from its ONNX export both compute the
module (float64; onnxruntime for the ONNX file), the ONNX proxy module loads,
and every bound method contains sampled and attacked outputs over a box.
"""

from __future__ import annotations

import io
import math

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torch import nn

from gridverify.bounds import compute_bounds
from gridverify.errors import UnsupportedOpError
from gridverify.ir import from_onnx, from_torch
from gridverify.proxy.onnx_torch import OnnxModule

ACTIVATIONS = {
    "elu": lambda: nn.ELU(0.7),
    "selu": nn.SELU,
    "celu": lambda: nn.CELU(1.5),
    "prelu": lambda: nn.PReLU(8, init=0.3),
    "prelu_one": lambda: nn.PReLU(1, init=1.7),
    "silu": nn.SiLU,
    "hardsigmoid": nn.Hardsigmoid,
    "hardswish": nn.Hardswish,
    "softsign": nn.Softsign,
    "leaky": lambda: nn.LeakyReLU(0.2),
}

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # TorchScript export

ONNX_ONLY = {"softplus": nn.Softplus, "mish": nn.Mish}  # torch's threshold: see below


def _mlp(act: nn.Module, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    m = nn.Sequential(nn.Linear(5, 8), nn.BatchNorm1d(8), act, nn.Linear(8, 3))
    with torch.no_grad():  # non-trivial running statistics
        m[1].running_mean.uniform_(-0.3, 0.3)
        m[1].running_var.uniform_(0.5, 2.0)
        m[1].weight.uniform_(0.5, 1.5)
        m[1].bias.uniform_(-0.2, 0.2)
    return m.eval()


def _onnx(m: nn.Module) -> onnx.ModelProto:
    buf = io.BytesIO()
    torch.onnx.export(m.double(), torch.zeros(1, 5, dtype=torch.float64), buf,
                      input_names=["x"], output_names=["y"], opset_version=18, dynamo=False,
                      dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}})
    return onnx.load_from_string(buf.getvalue())


def _x(n: int = 64) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(3).uniform(-4, 4, (n, 5)))


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_torch_import_computes_the_module(name):
    m = _mlp(ACTIVATIONS[name]()).double()
    x = _x()
    (y,) = from_torch(m, input_size=5).evaluate(x)
    with torch.no_grad():
        np.testing.assert_allclose(y.numpy(), m(x).numpy(), rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", sorted(ACTIVATIONS | ONNX_ONLY))
def test_onnx_import_computes_the_module_and_loads_as_a_proxy(name):
    m = _mlp({**ACTIVATIONS, **ONNX_ONLY}[name]()).double()
    model = _onnx(m)
    x = _x()
    (y,) = from_onnx(model).evaluate(x)
    with torch.no_grad():
        np.testing.assert_array_equal(OnnxModule(model)(x).numpy(), y.numpy())
        # ONNX stores activation attributes (alpha, ...) as float32: 1e-6, not exact
        np.testing.assert_allclose(y.numpy(), m(x).numpy(), rtol=0, atol=1e-6)
    # onnxruntime agrees too (some of its double kernels compute in float32)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    (ort_y,) = sess.run(None, {"x": x.numpy()})
    np.testing.assert_allclose(y.numpy(), ort_y, rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", sorted(ONNX_ONLY))
def test_torch_softplus_is_refused_with_a_hint(name):
    with pytest.raises(UnsupportedOpError, match="export the proxy to ONNX"):
        from_torch(_mlp(ONNX_ONLY[name]()), input_size=5)


def _attack(g, lo: torch.Tensor, hi: torch.Tensor, steps: int = 80) -> tuple[np.ndarray, ...]:
    """Min and max of every output found by projected gradient steps from random starts."""
    gen = torch.Generator().manual_seed(0)
    n = 64
    best_lo = np.full(g.output_size, math.inf)
    best_hi = np.full(g.output_size, -math.inf)
    for sign in (1.0, -1.0):
        x = (lo + (hi - lo) * torch.rand(n, lo.numel(), generator=gen, dtype=torch.float64))
        for _ in range(steps):
            x.requires_grad_(True)
            (y,) = g.evaluate(x)
            (grad,) = torch.autograd.grad((sign * y).sum(), x)
            with torch.no_grad():
                x = torch.minimum(torch.maximum(x + 0.05 * (hi - lo) * grad.sign(), lo), hi)
        with torch.no_grad():
            (y,) = g.evaluate(x)
        best_lo = np.minimum(best_lo, y.min(0).values.numpy())
        best_hi = np.maximum(best_hi, y.max(0).values.numpy())
    return best_lo, best_hi


@pytest.mark.parametrize("name", sorted(ACTIVATIONS | ONNX_ONLY))
def test_bounds_contain_sampled_and_attacked_outputs(name):
    m = _mlp({**ACTIVATIONS, **ONNX_ONLY}[name](), seed=1).double()
    g = from_onnx(_onnx(m))
    lo = torch.tensor([-2.0, -1.0, 0.0, 0.5, -3.0], dtype=torch.float64)
    hi = lo + torch.tensor([1.0, 2.5, 0.3, 1.0, 4.0], dtype=torch.float64)
    xs = lo + (hi - lo) * torch.rand(20000, 5, generator=torch.Generator().manual_seed(1),
                                     dtype=torch.float64)
    (ys,) = g.evaluate(xs)
    a_lo, a_hi = _attack(g, lo, hi)
    s_lo = np.minimum(ys.min(0).values.numpy(), a_lo)
    s_hi = np.maximum(ys.max(0).values.numpy(), a_hi)
    for method in ("ibp", "crown", "alpha-crown"):
        r = compute_bounds(g, lo, hi, method=method)
        b_lo, b_hi = r.lower.reshape(-1).numpy(), r.upper.reshape(-1).numpy()
        assert np.all(b_lo <= s_lo + 1e-12) and np.all(s_hi <= b_hi + 1e-12), method
