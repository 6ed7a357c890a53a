"""Affine and indexing ops users write in proxies (``new_zeros``, ``index_select``,
``narrow``, ``flip``, ``roll``, ``unbind``, ``gather``, ``masked_fill``, ``einsum``,
``bmm``, ``mm``, ``addmm``, ``clamp_min``, two-tensor ``max``), imported by torch.fx,
torch.export and ONNX as torch and onnxruntime compute them; reductions over the
batch axis are refused (they change the function per sample)."""

from __future__ import annotations

import io

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from gridverify.bounds import compute_bounds
from gridverify.errors import UnsupportedOpError
from gridverify.ir import from_onnx, from_torch
from gridverify.ir.torch_import import from_exported

N_IN = 6


class _Op(nn.Module):
    """``head(relu(x @ W1 + b1))``, ``head`` the op under test (8 hidden units)."""

    def __init__(self, head, seed: int = 0) -> None:  # noqa: ANN001
        super().__init__()
        torch.manual_seed(seed)
        self.l1 = nn.Linear(N_IN, 8)
        self.register_buffer("W", torch.randn(8, 5))
        self.register_buffer("mask", torch.tensor([True, False, True, False, False, True,
                                                   False, False]))
        self.register_buffer("idx", torch.tensor([[3, 0, 7, 7, 1]]))
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self, torch.relu(self.l1(x)))


HEADS = {
    "new_zeros": lambda s, h: torch.cat([h, h.new_zeros(h.shape[0], 2), h.new_ones(h.shape[0], 1),
                                         h.new_full((h.shape[0], 1), 2.5)], 1),
    "expand_as": lambda s, h: h + s.W[:, 0].expand_as(h),
    "index_select": lambda s, h: torch.index_select(h, 1, torch.tensor([2, 2, 0, 5])),
    "narrow": lambda s, h: h.narrow(1, 2, 4),
    "flip": lambda s, h: torch.flip(h, [1]) - h,
    "roll": lambda s, h: torch.roll(h, 3, 1) * 2.0,
    "unbind": lambda s, h: torch.stack(list(torch.unbind(h, 1))[::-2], 1),
    "gather": lambda s, h: torch.gather(h, 1, s.idx.expand(h.shape[0], 5)),
    "masked_fill": lambda s, h: h.masked_fill(s.mask, -1.5),
    "einsum": lambda s, h: torch.einsum("bi,ij->bj", h, s.W),
    "einsum_outer": lambda s, h: torch.einsum("bi,j->bij", h[:, :3], s.W[0]).flatten(1),
    "bmm": lambda s, h: torch.bmm(h.unsqueeze(1), s.W.unsqueeze(0).expand(h.shape[0], 8, 5))
    .squeeze(1),
    "mm": lambda s, h: torch.mm(h, s.W),
    "addmm": lambda s, h: torch.addmm(s.W[0], h, s.W, beta=0.5, alpha=2.0),
    "clamp_min": lambda s, h: torch.clamp_min(h - 0.3, 0.1) + torch.clamp_max(h, 0.5),
    "max_two": lambda s, h: torch.max(h, 0.5 - h) + torch.min(h, s.W[:, 1]),
    "max_dim": lambda s, h: torch.cat([torch.max(h, 1).values.unsqueeze(1),
                                       torch.min(h.view(-1, 2, 4), 2, keepdim=True)[0]
                                       .flatten(1), h.amax(1, keepdim=True),
                                       torch.amin(h.view(-1, 2, 4), (1, 2)).unsqueeze(1)], 1),
}


def _x(n: int = 64) -> torch.Tensor:
    return torch.tensor(np.random.default_rng(1).uniform(-1, 1, (n, N_IN)))


@pytest.mark.parametrize("name", sorted(HEADS))
def test_torch_paths_compute_the_module(name: str) -> None:
    m = _Op(HEADS[name]).double().eval()
    x = _x()
    ref = m(x)
    g = from_torch(m, input_size=N_IN)
    assert torch.allclose(torch.cat(g.evaluate(x), 1), ref, atol=1e-12)
    prog = torch.export.export(m, (torch.zeros(3, N_IN, dtype=torch.float64),),
                               dynamic_shapes=({0: torch.export.Dim("b")},))
    assert torch.allclose(torch.cat(from_exported(prog).evaluate(x), 1), ref, atol=1e-12)
    lo, hi = x[:1] - 0.2, x[:1] + 0.2
    xs = lo + (hi - lo) * torch.rand(3000, N_IN, dtype=torch.float64)
    ys = torch.cat(g.evaluate(xs), 1)
    r = compute_bounds(g, lo, hi, method="crown")
    assert torch.all(ys <= r.upper + 1e-9) and torch.all(ys >= r.lower - 1e-9)


@pytest.mark.parametrize("name", ["einsum", "gather", "index_select", "flip", "masked_fill",
                                  "max_dim"])
def test_onnx_export_of_the_ops_imports(name: str) -> None:
    m = _Op(HEADS[name]).float().eval()
    buf = io.BytesIO()
    torch.onnx.export(m, torch.zeros(1, N_IN), buf, input_names=["x"], output_names=["y"],
                      opset_version=17, dynamo=False, dynamic_axes={"x": {0: "b"}})
    g = from_onnx(onnx.load_from_string(buf.getvalue()))
    x = _x()
    sess = ort.InferenceSession(buf.getvalue(), providers=["CPUExecutionProvider"])
    ref = sess.run(None, {"x": x.numpy().astype(np.float32)})[0]
    assert np.allclose(torch.cat(g.evaluate(x), 1).numpy(), ref, atol=1e-5)


def _onnx_one(op: str, const: np.ndarray, out_shape: list[int] | None = None, **attrs):  # noqa: ANN201
    node = helper.make_node(op, ["x", "c"] if op != "Einsum" else ["x", "c"], ["y"], **attrs)
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)],
        initializer=[numpy_helper.from_array(const, "c")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize(("op", "const", "attrs"), [
    ("GatherND", np.array([[1, 2], [0, -1], [1, 0]], dtype=np.int64), {}),
    ("GatherND", np.array([[[2]], [[0]]], dtype=np.int64), {"batch_dims": 1}),
    ("GatherND", np.array([[0, 1, 3], [1, 2, 0]], dtype=np.int64), {}),
    ("GatherElements", np.array([[[0, 3], [1, 1], [2, 0]], [[3, 3], [0, 1], [2, -1]]],
                                dtype=np.int64), {"axis": 2}),
    ("Einsum", np.random.default_rng(0).normal(size=(4, 5)).astype(np.float32),
     {"equation": "abc,cd->bda"}),
])
def test_onnx_gathers_and_einsum_match_onnxruntime(op: str, const: np.ndarray, attrs) -> None:  # noqa: ANN001
    model = _onnx_one(op, const, **attrs)
    g = from_onnx(model)
    x = np.random.default_rng(2).normal(size=(5, 24))
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    ref = np.stack([sess.run(None, {"x": xi.reshape(2, 3, 4).astype(np.float32)})[0].ravel()
                    for xi in x])
    assert np.allclose(torch.cat(g.evaluate(torch.tensor(x)), 1).numpy(), ref, atol=1e-5)


class _BatchMean(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.l = nn.Linear(N_IN, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.l(x)
        return z - z.mean(0, keepdim=True)


def test_reductions_over_the_batch_axis_are_refused() -> None:
    m = _BatchMean().eval()
    with pytest.raises(UnsupportedOpError, match="batch axis"):
        from_torch(m, input_size=N_IN)
    prog = torch.export.export(m, (torch.zeros(3, N_IN),),
                               dynamic_shapes=({0: torch.export.Dim("b")},))
    with pytest.raises(UnsupportedOpError, match="batch axis"):
        from_exported(prog)
    buf = io.BytesIO()
    torch.onnx.export(m, torch.zeros(2, N_IN), buf, input_names=["x"], output_names=["y"],
                      opset_version=17, dynamo=False, dynamic_axes={"x": {0: "b"}})
    with pytest.raises(UnsupportedOpError, match="batch axis"):
        from_onnx(onnx.load_from_string(buf.getvalue()))
    # over the features it is a per-sample function, and a static batch of 1 is one sample
    buf = io.BytesIO()
    torch.onnx.export(m, torch.zeros(1, N_IN), buf, input_names=["x"], output_names=["y"],
                      opset_version=17, dynamo=False)
    g = from_onnx(onnx.load_from_string(buf.getvalue()))
    assert torch.allclose(torch.cat(g.evaluate(_x(3)), 1), torch.zeros(3, 4, dtype=torch.float64))


def test_indices_of_a_max_over_an_axis_are_refused() -> None:
    m = _Op(lambda s, h: torch.max(h, 1).indices.unsqueeze(1) * 1.0).double().eval()
    with pytest.raises(UnsupportedOpError, match="indices"):
        from_torch(m, input_size=N_IN)
    m = _Op(lambda s, h: h.amax()).double().eval()
    with pytest.raises(UnsupportedOpError, match="batch axis"):
        from_torch(m, input_size=N_IN)


@pytest.mark.parametrize("kind", ["max", "min"])
def test_reading_max_indices_in_a_program_names_the_argmax_not_an_assert(kind: str) -> None:
    """torch.export guards the cast of the indices with ``aten._assert_tensor_metadata``:
    that check computes nothing and is skipped, so the error names the indices
    (the argmax/argmin), read by the op that really uses them."""
    def head(s, h):  # noqa: ANN001, ANN202
        i = getattr(torch, kind)(h.reshape(-1, 2, 4), 1).indices.double()
        return torch.cat([h, i], 1)

    m = _Op(head).double().eval()
    prog = torch.export.export(m, (torch.zeros(3, N_IN, dtype=torch.float64),),
                               dynamic_shapes=({0: torch.export.Dim("b")},))
    assert any("_assert_tensor_metadata" in str(n.target) for n in prog.graph.nodes)
    with pytest.raises(UnsupportedOpError) as info:
        from_exported(prog)
    msg = str(info.value)
    assert "_assert" not in msg and "\n" not in msg
    assert f"arg{kind}" in msg and f"torch.{kind}(x, dim).indices" in msg
    assert "indices of a max/min over an axis" in msg
    # the values of the same max/min import (the assert on them is skipped too)
    m = _Op(lambda s, h: torch.cat([h, getattr(torch, kind)(h.reshape(-1, 2, 4), 1)
                                    .values.double()], 1)).double().eval()
    prog = torch.export.export(m, (torch.zeros(3, N_IN, dtype=torch.float64),),
                               dynamic_shapes=({0: torch.export.Dim("b")},))
    x = _x(5)
    assert torch.allclose(torch.cat(from_exported(prog).evaluate(x), 1), m(x), atol=1e-12)
