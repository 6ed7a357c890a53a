"""The op table is the one declaration of an op: every part of the package reads it.

Each check runs over the table, so a new entry (``atan``, the worked example of
``docs/ir.md``) is covered by adding it: ONNX export and import through
onnxruntime, torch import of every spelling the entry declares, the bound
engine's relaxation table, and sound bounds of the example op.
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch
from torch import nn

from gridverify.bounds import compute_bounds
from gridverify.bounds.relaxations import RELAXATIONS
from gridverify.errors import GraphError
from gridverify.ir import GraphBuilder
from gridverify.ir.lowering import _NUMPY_UNARY
from gridverify.ir.onnx_export import to_onnx
from gridverify.ir.onnx_import import from_onnx
from gridverify.ir.ops import OPS, UNARY_NONLINEAR
from gridverify.ir.torch_import import from_torch

UNARY = sorted(op for op in UNARY_NONLINEAR if op not in ("pow", "pwl"))


def _one_op_graph(op: str, n: int = 4, seed: int = 0):
    """x -> linear -> op -> linear; inputs of positive-domain ops pass through exp first."""
    rng = np.random.default_rng(seed)
    b = GraphBuilder()
    x = b.input("x", n)
    h = b.linear(x, rng.normal(size=(n, n)), rng.normal(size=n))
    if OPS[op].domain[0] >= 0:
        h = b.exp(h)
    y = b.unary(op, h)
    b.output(b.linear(y, rng.normal(size=(2, n)), rng.normal(size=2)), "y")
    return b.build()


@pytest.mark.parametrize("op", UNARY)
def test_every_unary_op_has_its_relaxation_and_numpy_form(op: str) -> None:
    info = OPS[op]
    assert info.relaxation is not None and RELAXATIONS[op].op == op
    assert info.func is not None and info.numpy is not None
    x = np.linspace(0.1, 3.0, 7) if info.domain[0] >= 0 else np.linspace(-3.0, 3.0, 7)
    np.testing.assert_allclose(_NUMPY_UNARY[op](x), info.func(torch.tensor(x)).numpy(),
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("op", [op for op in UNARY if OPS[op].onnx])
def test_onnx_spelling_round_trips_through_onnxruntime(op: str) -> None:
    g = _one_op_graph(op)
    model = to_onnx(g, None, batch_dim=None, dtype=np.float64)
    assert OPS[op].onnx in {node.op_type for node in model.graph.node}
    x = np.random.default_rng(1).uniform(-2, 2, size=(9, 4))
    want = g.evaluate(torch.from_numpy(x))[0].numpy()
    # onnxruntime in float32 (it has no float64 kernel of some ops, Erf among them)
    m32 = to_onnx(g, None, batch_dim=None, dtype=np.float32)
    sess = ort.InferenceSession(m32.SerializeToString(), providers=["CPUExecutionProvider"])
    (got,) = sess.run(None, {"x": x.astype(np.float32)})
    np.testing.assert_allclose(got, want, rtol=2e-4, atol=2e-4)
    again = from_onnx(model)
    assert op in {n.op for n in again.nodes}
    np.testing.assert_allclose(again.evaluate(torch.from_numpy(x))[0].numpy(), want,
                               rtol=1e-12, atol=1e-12)


class _Spelled(nn.Module):
    """``op`` written as torch.<op>, Tensor.<op>, in place and F.<op> (where they exist)."""

    def __init__(self, op: str) -> None:
        super().__init__()
        self.op, self.lin = op, nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.lin(x)
        if OPS[self.op].domain[0] >= 0:
            h = torch.exp(h)
        parts = [getattr(torch, self.op)(h), getattr(h, self.op)(),
                 getattr(h.clone(), self.op + "_")()]
        f = getattr(nn.functional, self.op, None)
        if f is not None:
            parts.append(f(h))
        return torch.cat(parts, dim=-1)


@pytest.mark.parametrize("op", [op for op in UNARY if OPS[op].torch])
def test_torch_spellings_import(op: str) -> None:
    m = _Spelled(op).double().eval()
    g = from_torch(m, input_size=4)
    assert op in {n.op for n in g.nodes}
    x = torch.rand(16, 4, dtype=torch.float64) * 4 - 2
    with torch.no_grad():
        want = m(x)
    torch.testing.assert_close(g.evaluate(x)[0], want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("op", [op for op in UNARY if OPS[op].module])
def test_torch_module_spelling_imports(op: str) -> None:
    m = nn.Sequential(nn.Linear(3, 5), getattr(nn, OPS[op].module)(), nn.Linear(5, 2))
    g = from_torch(m.double().eval())
    assert op in {n.op for n in g.nodes}


def test_builder_unary_rejects_what_is_not_a_unary_op() -> None:
    b = GraphBuilder()
    x = b.input("x", 2)
    for bad in ("add", "pow", "pwl", "linear", "no_such_op"):
        with pytest.raises(GraphError, match="unary"):
            b.unary(bad, x)


@pytest.mark.parametrize("method", ["ibp", "crown", "alpha-crown"])
def test_atan_bounds_bracket_dense_samples(method: str) -> None:
    """The worked example: bounds of a graph through atan hold at 20,000 samples (float64)."""
    g = _one_op_graph("atan", n=3, seed=4)
    lo = torch.tensor([[-1.5, -0.5, 0.2]], dtype=torch.float64)
    hi = torch.tensor([[0.5, 1.0, 2.0]], dtype=torch.float64)
    res = compute_bounds(g, lo, hi, method=method)
    x = lo + (hi - lo) * torch.rand(20_000, 3, dtype=torch.float64,
                                    generator=torch.Generator().manual_seed(0))
    y = g.evaluate(x)[0]
    assert torch.all(y >= res.lower - 1e-12) and torch.all(y <= res.upper + 1e-12)
    assert torch.all(res.upper - res.lower < 50.0)  # finite, not a blanket
