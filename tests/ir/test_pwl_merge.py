"""The piecewise merge pass: relu sums of one scalar import as ``pwl`` nodes, exactly."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from gridverify.errors import GraphError
from gridverify.ir import GraphBuilder, from_onnx, from_torch
from gridverify.ir.onnx_export import to_onnx
from gridverify.ir.pwl_merge import merge_pwl

F64 = torch.float64


def _ops(g) -> list[str]:  # noqa: ANN001
    return [n.op for n in g.nodes]


def _assert_same(g_merged, g_plain, xs: torch.Tensor) -> None:  # noqa: ANN001
    a, b = g_merged.evaluate_flat(xs), g_plain.evaluate_flat(xs)
    assert torch.allclose(a, b, rtol=1e-12, atol=1e-12 * float(b.abs().max() + 1)), \
        float((a - b).abs().max())


def _onnx_model(nodes, inits, n_in: int, n_out: int):  # noqa: ANN001, ANN202
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        nodes, "t",
        [helper.make_tensor_value_info("x", TensorProto.DOUBLE, [1, n_in])],
        [helper.make_tensor_value_info("y", TensorProto.DOUBLE, [1, n_out])],
        [numpy_helper.from_array(np.asarray(v, dtype=v.dtype if v.dtype == np.int64
                                            else np.float64), k) for k, v in inits.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _ort(model, xs: np.ndarray) -> np.ndarray:  # noqa: ANN001
    import onnxruntime as ort

    s = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return np.concatenate([s.run(None, {"x": x[None]})[0] for x in xs])


def test_lookup_table_pattern_sub_relu_matmul_plus_linear_term():
    """x (n) -> Unsqueeze -> Sub t (K,) -> Relu -> MatMul w (K, 1) -> Squeeze, + a x + c."""
    from onnx import helper

    rng = np.random.default_rng(0)
    n, k = 5, 9
    inits = {"ax": np.array([2], dtype=np.int64), "t": np.sort(rng.normal(size=k)),
             "w": rng.normal(size=(k, 1)), "a": rng.normal(size=n), "c": rng.normal(size=n)}
    nodes = [
        helper.make_node("Unsqueeze", ["x", "ax"], ["xu"]),
        helper.make_node("Sub", ["xu", "t"], ["d"]),
        helper.make_node("Relu", ["d"], ["r"]),
        helper.make_node("MatMul", ["r", "w"], ["m"]),
        helper.make_node("Squeeze", ["m", "ax"], ["s"]),
        helper.make_node("Mul", ["x", "a"], ["lin"]),
        helper.make_node("Add", ["s", "lin"], ["s2"]),
        helper.make_node("Add", ["s2", "c"], ["y"]),
    ]
    model = _onnx_model(nodes, inits, n, n)
    g = from_onnx(model)
    plain = from_onnx(model, merge_pwl=False)
    assert _ops(g) == ["input", "pwl"]  # the linear term and bias are folded in
    assert "relu" in _ops(plain)
    xs = torch.tensor(rng.normal(size=(2000, n)) * 3, dtype=F64)
    _assert_same(g, plain, xs)
    ref = _ort(model, xs.numpy())
    assert np.allclose(g.evaluate_flat(xs).numpy(), ref, rtol=1e-12, atol=1e-12)


def test_gemm_pattern_with_scaled_and_negative_copies():
    """A scalar copied by a Gemm (slopes 1, 2, -1.5, 0), Relu, then a Gemm summing."""
    from onnx import helper

    rng = np.random.default_rng(1)
    k = 6
    w1 = np.array([[1.0], [2.0], [-1.5], [1.0], [0.0], [0.5]])
    inits = {"w1": w1, "b1": rng.normal(size=k), "w2": rng.normal(size=(1, k)),
             "b2": np.array([0.3])}
    nodes = [
        helper.make_node("Gemm", ["x", "w1", "b1"], ["h"], transB=1),
        helper.make_node("Relu", ["h"], ["r"]),
        helper.make_node("Gemm", ["r", "w2", "b2"], ["y"], transB=1),
    ]
    model = _onnx_model(nodes, inits, 1, 1)
    g = from_onnx(model)
    assert _ops(g).count("pwl") == 1 and "relu" not in _ops(g)
    pw = next(n for n in g.nodes if n.op == "pwl")
    assert float(pw.attrs["slope"][0]) != 0.0  # the negative copy adds a linear term
    xs = torch.linspace(-6, 6, 4001, dtype=F64)[:, None]
    _assert_same(g, from_onnx(model, merge_pwl=False), xs)
    assert np.allclose(g.evaluate_flat(xs).numpy(), _ort(model, xs.numpy()), atol=1e-12)


def test_per_entry_tables_round_trip_through_onnx():
    rng = np.random.default_rng(2)
    b = GraphBuilder()
    x = b.input("x", 4)
    h = b.linear(x, rng.normal(size=(7, 4)), rng.normal(size=7))
    p = b.pwl(h, np.sort(rng.normal(size=(7, 5)), -1), rng.normal(size=(7, 5)),
              rng.normal(size=7), rng.normal(size=7))
    b.output(b.sin(p), "y")
    g = b.build()
    model = to_onnx(g, None, batch_dim=None, dtype=np.float64)
    g2 = from_onnx(model)
    assert _ops(g2).count("pwl") == 1 and "relu" not in _ops(g2)
    xs = torch.tensor(rng.normal(size=(3000, 4)) * 2, dtype=F64)
    _assert_same(g2, g, xs)
    assert np.allclose(_ort(model, xs.numpy()), g.evaluate_flat(xs).numpy(), atol=1e-12)


class _Table(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.t = torch.tensor([-1.0, -0.2, 0.4, 1.5], dtype=F64)
        self.w = torch.tensor([0.5, -1.0, 2.0, -1.5], dtype=F64)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r = torch.relu(x.unsqueeze(-1) - self.t)
        return (r * self.w).sum(-1) + 0.25


def test_torch_import_merges_too():
    m = _Table()
    g = from_torch(m, input_size=3)
    assert "pwl" in _ops(g) and "relu" not in _ops(g)
    xs = torch.linspace(-3, 3, 601, dtype=F64)[:, None].expand(-1, 3) * torch.tensor([1, -1, .5])
    assert torch.allclose(g.evaluate_flat(xs), m(xs), atol=1e-12)
    _assert_same(g, from_torch(m, input_size=3, merge_pwl=False), xs)


def test_hidden_relu_layers_are_left_alone():
    mlp = nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 2)).double()
    g = from_torch(mlp)
    assert "relu" in _ops(g) and "pwl" not in _ops(g)
    assert merge_pwl(g) is g


def test_relu_read_elsewhere_is_left_alone():
    b = GraphBuilder()
    x = b.input("x", 2)
    r = b.relu(b.add_const(b.gather(x, [0, 0, 1]), [-1.0, 1.0, 0.0]))
    s = b.sparse_linear(r, [0, 0, 1], [0, 1, 2], [1.0, 2.0, 3.0], 2)
    b.output(s, "s")
    b.output(r, "r")  # the relu is an output itself
    g = b.build()
    assert merge_pwl(g) is g


def test_builder_pwl_validation():
    b = GraphBuilder()
    x = b.input("x", 3)
    with pytest.raises(GraphError, match="breaks"):
        b.pwl(x, np.zeros((2, 2)), np.zeros((2, 2)))
    h = b.pwl(x, [1.0, -1.0], [2.0, 3.0])  # shared kinks, sorted by the builder
    nd = b.node(h)
    assert nd.attrs["breaks"].shape == (3, 2) and float(nd.attrs["breaks"][0, 0]) == -1.0
    assert float(nd.attrs["weights"][0, 0]) == 3.0


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_merge_is_exact_on_random_relu_sums(seed):
    """Random copies (scales of any sign, zeros), shifts, weights, linear terms: same function."""
    rng = np.random.default_rng(seed)
    n, n_out = int(rng.integers(1, 5)), int(rng.integers(1, 6))
    jrow = rng.integers(0, n, size=n_out)
    rows = np.repeat(np.arange(n_out), rng.integers(1, 7, size=n_out))
    m = rows.size
    s = rng.normal(size=m) * rng.choice([0.0, 1.0, -1.0, 3.0], size=m)
    b = GraphBuilder()
    x = b.input("x", n)
    h = b.add_const(b.scale(b.gather(x, jrow[rows]), s), rng.normal(size=m) * 2)
    lin = b.sparse_linear(b.relu(h), rows, np.arange(m), rng.normal(size=m), n_out,
                          bias=rng.normal(size=n_out))
    if rng.random() < 0.5:
        lin = b.add(lin, b.scale(b.gather(x, jrow), rng.normal(size=n_out)))
    if rng.random() < 0.5:
        lin = b.sub(lin, b.add_const(b.gather(x, jrow), rng.normal(size=n_out)))
    b.output(lin, "y")
    g = b.build()
    merged = merge_pwl(g)
    live = [nd.op for nd in merged.nodes if nd.id in merged.ancestors(merged.outputs)]
    assert live.count("relu") == (0 if np.any(s != 0) else 1)
    xs = torch.tensor(rng.normal(size=(500, n)) * 4, dtype=F64)
    _assert_same(merged, g, xs)
