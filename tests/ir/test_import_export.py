"""to_onnx: IR -> ONNX -> onnxruntime == IR evaluate, for every IR op; re-import round trip."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gridverify.errors import GraphError
from gridverify.ir import GraphBuilder
from gridverify.ir.onnx_export import to_onnx
from gridverify.ir.onnx_import import from_onnx


def _ort(model, feeds):
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def all_ops_graph(seed: int, n: int = 5, big_sparse: bool = False):
    """A graph that uses every IR op the builder can emit, over two inputs."""
    rng = np.random.default_rng(seed)
    b = GraphBuilder()
    x = b.input("x", size=n)
    u = b.input("u", size=3)
    h = b.linear(x, rng.normal(size=(8, n)), rng.normal(size=8))
    hn = b.linear(u, rng.normal(size=(8, 3)))                       # no bias
    rows = rng.integers(0, 6, size=20)
    cols = rng.integers(0, 8, size=20)
    sp = b.sparse_linear(h, rows, cols, rng.normal(size=20), 6, bias=rng.normal(size=6))
    s = b.sin(b.slice(h, 0, 6))
    c = b.cos(b.gather(h, [7, 1, 1, 3, 0, 2]))
    prod = b.mul(s, c)
    sq = b.square(b.sub(sp, s))
    p3 = b.pow(b.add(c, sp), 3)
    sig = b.sigmoid(b.scale(hn, rng.normal(size=8)))
    th = b.tanh(b.add_const(hn, rng.normal(size=8)))
    rl = b.relu(b.neg(h))
    pos = b.exp(b.scale(th, 0.5))                                   # positive
    rec = b.reciprocal(pos)
    sr = b.sqrt(b.add_const(pos, 0.1))
    fl = b.floor(b.scale(h, 3.0))
    mx = b.maximum(sig, th)
    mn = b.minimum(sig, rl)
    cl = b.clamp(h, -0.5, 0.75)
    tot = b.sum(prod)
    cat = b.concat([prod, sq, p3, rec, sr, fl, mx, mn, cl, tot])
    rs = b.reshape(cat, (1, int(b.size(cat))))
    b.output(rs, "main")
    b.output(sig, "sig")
    b.output(b.constant(torch.tensor([1.5, -2.0])), "const")
    if big_sparse:  # forces the Gather/ReduceSum path of the exporter
        m, k, nnz = 3000, 2048, 4000
        big = b.gather(x, np.arange(k) % n)
        sb = b.sparse_linear(big, rng.integers(0, m, nnz), rng.integers(0, k, nnz),
                             rng.normal(size=nnz), m)
        b.output(sb, "big")
    return b.build()


def _feeds(g, batch, dtype, rng):
    return {g.nodes[i].name: rng.uniform(-2, 2, size=(batch, g.nodes[i].size)).astype(dtype)
            for i in g.inputs}


@pytest.mark.parametrize("batch_dim", [1, None])
@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-9), (np.float32, 2e-4)])
def test_every_op_round_trip_through_onnxruntime(tmp_path, batch_dim, dtype, tol):
    g = all_ops_graph(0)
    path = tmp_path / "g.onnx"
    model = to_onnx(g, path, batch_dim=batch_dim, dtype=dtype)
    assert path.exists() and not list(tmp_path.glob("*.tmp*"))
    loaded = onnx.load(path)
    onnx.checker.check_model(loaded)
    assert [i.name for i in loaded.graph.input] == ["x", "u"]
    assert [o.name for o in loaded.graph.output] == ["main", "sig", "const"]
    rng = np.random.default_rng(1)
    batch = 1 if batch_dim == 1 else 7
    for _ in range(3):
        feeds = _feeds(g, batch, dtype, rng)
        got = _ort(model, feeds)
        want = g.evaluate({k: torch.from_numpy(v.astype(np.float64)) for k, v in feeds.items()})
        for a, w in zip(got, want):
            assert a.shape == tuple(w.shape)
            np.testing.assert_allclose(a, w.numpy(), atol=tol, rtol=tol)


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 10_000), batch=st.integers(1, 5))
def test_round_trip_random_graphs_and_reimport(seed, batch):
    g = all_ops_graph(seed)
    model = to_onnx(g, None, batch_dim=None, dtype=np.float64)
    rng = np.random.default_rng(seed)
    feeds = _feeds(g, batch, np.float64, rng)
    tfeeds = {k: torch.from_numpy(v) for k, v in feeds.items()}
    want = g.evaluate(tfeeds)
    for a, w in zip(_ort(model, feeds), want):
        np.testing.assert_allclose(a, w.numpy(), atol=1e-9, rtol=1e-9)
    g2 = from_onnx(model)
    assert g2.input_names == g.input_names and g2.output_names == g.output_names
    for a, w in zip(g2.evaluate(tfeeds), want):
        torch.testing.assert_close(a, w, atol=1e-9, rtol=1e-9)


def test_large_sparse_linear_uses_gather_reducesum_and_reimports():
    g = all_ops_graph(3, n=7, big_sparse=True)
    model = to_onnx(g, None, batch_dim=None, dtype=np.float64)
    ops = {n.op_type for n in model.graph.node}
    assert "ReduceSum" in ops and "ScatterElements" not in ops
    rng = np.random.default_rng(5)
    feeds = _feeds(g, 3, np.float64, rng)
    tfeeds = {k: torch.from_numpy(v) for k, v in feeds.items()}
    want = g.evaluate(tfeeds)
    for a, w in zip(_ort(model, feeds), want):
        np.testing.assert_allclose(a, w.numpy(), atol=1e-9, rtol=1e-9)
    g2 = from_onnx(model)
    assert "sparse_linear" in {n.op for n in g2.nodes}
    for a, w in zip(g2.evaluate(tfeeds), want):
        torch.testing.assert_close(a, w, atol=1e-9, rtol=1e-9)
    # the same graph at the oldest opset we write (13) and a fixed batch
    m13 = to_onnx(g, None, opset=13, batch_dim=1, dtype=np.float64)
    assert m13.opset_import[0].version == 13
    feeds1 = {k: v[:1] for k, v in feeds.items()}
    np.testing.assert_allclose(_ort(m13, feeds1)[-1], want[-1][:1].numpy(), atol=1e-9)


def test_names_and_argument_errors(tmp_path):
    g = all_ops_graph(1)
    model = to_onnx(g, None, input_names=["a", "b"], output_names=["p", "q", "r"])
    assert [i.name for i in model.graph.input] == ["a", "b"]
    assert [o.name for o in model.graph.output] == ["p", "q", "r"]
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    with pytest.raises(GraphError, match="input names"):
        to_onnx(g, None, input_names=["a"])
    with pytest.raises(GraphError, match="distinct"):
        to_onnx(g, None, input_names=["a", "p"], output_names=["p", "q", "r"])
    with pytest.raises(GraphError, match="batch_dim"):
        to_onnx(g, None, batch_dim=0)
    with pytest.raises(GraphError, match="dtype"):
        to_onnx(g, None, dtype=np.int32)
    with pytest.raises(GraphError, match="opset"):
        to_onnx(g, None, opset=11)
    empty = onnx.ModelProto()
    empty.graph.name = "empty"
    with pytest.raises(GraphError, match="the ONNX graph has no outputs"):
        from_onnx(empty)


def test_torch_mlp_with_physics_export_matches_torch(tmp_path):
    """A proxy + physics graph from torch, exported with batch 1 as VNN-COMP does."""
    from gridverify.ir.torch_import import from_torch

    torch.manual_seed(0)

    class Proxy(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(),
                                           torch.nn.Linear(16, 6), torch.nn.Sigmoid())

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.net(x)
            vm, va = 0.9 + 0.2 * y[:, :3], y[:, 3:] - 0.5
            d = va[:, [0, 1]] - va[:, [1, 2]]
            w = vm[:, [0, 1]] * vm[:, [1, 2]]
            return torch.cat([w * torch.cos(d), w * torch.sin(d), vm ** 2], dim=1)

    m = Proxy().double().eval()
    g = from_torch(m)
    path = tmp_path / "proxy.onnx"
    to_onnx(g, path, batch_dim=1, dtype=np.float32, input_names=["X"], output_names=["Y"])
    x = torch.rand(1, 4, dtype=torch.float64)
    got = _ort(onnx.load(path), {"X": x.numpy().astype(np.float32)})[0]
    np.testing.assert_allclose(got, m(x).detach().numpy(), atol=1e-5)


def test_sparse_export_reimports_as_one_sparse_linear():
    """Row groups of Gather/ReduceSum come back as one sparse_linear with the same entries."""
    from gridverify.ir.onnx_export import _row_buckets

    rng = np.random.default_rng(9)
    b = GraphBuilder()
    x = b.input("x", size=1000)
    nnz = 3000
    rows, cols = rng.integers(0, 800, nnz), rng.integers(0, 1000, nnz)
    s = b.sparse_linear(x, rows, cols, rng.normal(size=nnz), 800, bias=rng.normal(size=800))
    b.output(b.sin(s), "y")
    g = b.build()
    model = to_onnx(g, None, dtype=np.float64)
    ops = [n.op_type for n in model.graph.node]
    assert "ScatterElements" not in ops
    # padding at most doubles the entries a runtime gathers
    n_gathered = sum(idx.size for _, idx, _ in _row_buckets(rows, cols, np.ones(nnz), 800))
    assert n_gathered <= 2 * nnz + 800
    assert ops.count("ReduceSum") > 1
    g2 = from_onnx(model)
    assert [n.op for n in g2.nodes] == ["input", "sparse_linear", "add_const", "sin"]
    assert g2.nodes[1].attrs["rows"].numel() == nnz
    xx = torch.from_numpy(rng.normal(size=(4, 1000)))
    torch.testing.assert_close(g2.evaluate(xx)[0], g.evaluate(xx)[0], atol=1e-12, rtol=1e-12)


def test_row_buckets_cover_every_row_once():
    from gridverify.ir.onnx_export import _row_buckets

    rows = np.array([4, 0, 4, 4, 2, 4, 4])
    cols = np.array([1, 2, 3, 4, 5, 6, 0])
    vals = np.arange(1.0, 8.0)
    buckets = _row_buckets(rows, cols, vals, 6)
    assert [idx.shape[1] for _, idx, _ in buckets] == [1, 8]
    members = np.concatenate([m for m, _, _ in buckets])
    assert sorted(members) == list(range(6))
    dense = np.zeros((6, 7))
    for m, idx, w in buckets:
        for r, ir, wr in zip(m, idx, w):
            np.add.at(dense[r], ir, wr)
    want = np.zeros((6, 7))
    np.add.at(want, (rows, cols), vals)
    np.testing.assert_array_equal(dense, want)


def test_selecting_rows_of_concatenated_sparse_maps_folds_into_one():
    """Lowering.select on a concat of sparse_linear maps of one input: one exact sparse_linear."""
    from gridverify.ir.lowering import Lowering

    rng = np.random.default_rng(2)
    b = GraphBuilder()
    x = b.input("x", size=9)
    s1 = b.sparse_linear(x, rng.integers(0, 4, 10), rng.integers(0, 9, 10), rng.normal(size=10), 4)
    s2 = b.sparse_linear(x, rng.integers(0, 3, 6), rng.integers(0, 9, 6), rng.normal(size=6), 3)
    c = b.concat([s1, s2])
    idx = np.array([6, 0, 0, 3, 5, 2])  # a subset with a repeat
    v = Lowering(b).select(c, 7, idx)
    assert b.node(v.node).op == "sparse_linear"
    b.output(v.node, "y")
    b.output(c, "c")
    g = b.build()
    xx = torch.from_numpy(rng.normal(size=(3, 9)))
    y, full = g.evaluate(xx)
    torch.testing.assert_close(y, full[:, idx], atol=1e-12, rtol=1e-12)
