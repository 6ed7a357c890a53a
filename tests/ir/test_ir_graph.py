"""Tests of the gridverify graph: building, lowering, evaluation, composition, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from gridverify.errors import GraphError
from gridverify.ir import OPS, Graph, GraphBuilder, compose, op_info

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)]


def _device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    return torch.device(name)


def _all_ops_graph() -> tuple[Graph, callable]:
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(6, 4, generator=gen, dtype=torch.float64)
    bias = torch.randn(6, generator=gen, dtype=torch.float64)
    b = GraphBuilder()
    x = b.input("x", 4)
    y = b.input("y", 2)
    h = b.linear(x, w, bias)
    s = b.sparse_linear(h, [0, 0, 1, 2, 2], [0, 5, 1, 2, 3], [1.0, -2.0, 0.5, 1.5, 1.0], 3)
    t = b.concat([s, b.slice(h, 0, 6, 2)])  # size 6
    u = b.add(b.sigmoid(t), b.tanh(h))
    v = b.sub(b.mul(b.sin(u), b.cos(h)), b.square(b.relu(h)))
    p = b.pow(b.scale(v, 0.05), 3)
    q = b.add_const(b.exp(b.neg(b.clamp(p, -1.0, 1.0))), 0.1)
    r = b.div(b.floor(b.maximum(q, b.gather(y, [0, 1, 0, 1, 0, 1]))), b.add_const(
        b.sqrt(b.add_const(b.square(q), 1.0)), 0.0))
    m = b.minimum(r, b.reshape(h, (2, 3)))
    b.output(b.sum(m), "total")
    b.output(m, "m")

    def ref(xv: torch.Tensor, yv: torch.Tensor) -> list[torch.Tensor]:
        hv = xv @ w.T.to(xv) + bias.to(xv)
        sv = torch.stack([hv[:, 0] - 2 * hv[:, 5], 0.5 * hv[:, 1], 1.5 * hv[:, 2] + hv[:, 3]], 1)
        tv = torch.cat([sv, hv[:, 0:6:2]], 1)
        uv = torch.sigmoid(tv) + torch.tanh(hv)
        vv = torch.sin(uv) * torch.cos(hv) - torch.relu(hv) ** 2
        pv = (0.05 * vv) ** 3
        qv = torch.exp(-torch.clamp(pv, -1, 1)) + 0.1
        rv = torch.floor(torch.maximum(qv, yv[:, [0, 1, 0, 1, 0, 1]])) / torch.sqrt(qv**2 + 1)
        mv = torch.minimum(rv, hv)
        return [mv.sum(1, keepdim=True), mv]

    return b.build(), ref


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_evaluate_matches_torch_reference(device: str, dtype: torch.dtype) -> None:
    dev = _device(device)
    g, ref = _all_ops_graph()
    gen = torch.Generator().manual_seed(1)
    xv = torch.randn(50, 4, generator=gen, dtype=torch.float64) * 2
    yv = torch.randn(50, 2, generator=gen, dtype=torch.float64) * 2
    out = g.evaluate({"x": xv, "y": yv}, dtype=dtype, device=dev)
    want = ref(xv.to(dev, dtype), yv.to(dev, dtype))
    tol = 1e-10 if dtype == torch.float64 else 1e-4
    for o, w in zip(out, want):
        assert o.dtype == dtype and o.device.type == dev.type
        torch.testing.assert_close(o, w, atol=tol, rtol=tol)
    allv = g.evaluate_all(torch.cat([xv, yv], 1), dtype=dtype, device=dev)
    assert len(allv) == len(g.nodes)
    torch.testing.assert_close(allv[g.outputs[1]], out[1])
    flat = g.evaluate_flat([xv, yv], dtype=dtype, device=dev)
    assert flat.shape == (50, 7)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_evaluate_gradients_match_torch_reference(device: str, dtype: torch.dtype) -> None:
    """The evaluators hold values feature-major (``forward_node_fm``); their gradients,
    through every op, a one-point input broadcast over the batch and a constant,
    are the reference's."""
    dev = _device(device)
    g, ref = _all_ops_graph()
    gen = torch.Generator().manual_seed(2)
    xv = (torch.randn(40, 4, generator=gen, dtype=torch.float64) * 2).to(dev, dtype)
    yv = (torch.randn(1, 2, generator=gen, dtype=torch.float64) * 2).to(dev, dtype)
    w = torch.randn(40, 7, generator=gen, dtype=torch.float64).to(dev, dtype)
    xa = xv.clone().requires_grad_(True)
    flat = g.evaluate_flat({"x": xa, "y": yv}, dtype=dtype, device=dev)
    (got,) = torch.autograd.grad((flat * w).sum(), xa)
    xb = xv.clone().requires_grad_(True)
    (want,) = torch.autograd.grad((torch.cat(ref(xb, yv.expand(40, -1)), 1) * w).sum(), xb)
    tol = 1e-10 if dtype == torch.float64 else 1e-3
    torch.testing.assert_close(got, want, atol=tol, rtol=tol)
    b = GraphBuilder()  # a constant and a piecewise-linear node, with gradients
    x = b.input("x", 3)
    k = b.add(b.constant(torch.tensor([0.5, -1.0, 2.0])), x)
    b.output(b.pwl(k, [-0.5, 0.0, 1.0], [1.0, -2.0, 0.5], slope=0.3, bias=0.1), "y")
    g2 = b.build()
    xv = torch.randn(9, 3, generator=gen, dtype=torch.float64).to(dev, dtype)
    xv.requires_grad_(True)

    def pwl_ref(v: torch.Tensor) -> torch.Tensor:
        u = v + torch.tensor([0.5, -1.0, 2.0], dtype=dtype, device=dev)
        return 0.1 + 0.3 * u + torch.relu(u + 0.5) - 2 * torch.relu(u) + 0.5 * torch.relu(u - 1)

    y = g2.evaluate_flat(xv, dtype=dtype, device=dev)
    torch.testing.assert_close(y, pwl_ref(xv), atol=tol, rtol=tol)
    torch.testing.assert_close(torch.autograd.grad(y.sum(), xv)[0],
                               torch.autograd.grad(pwl_ref(xv).sum(), xv)[0], atol=tol, rtol=tol)


def test_eval_chunk_sizes_cpu_batches_by_node_bytes() -> None:
    from gridverify.ir.graph import CPU_CHUNK_BYTES

    g, _ = _all_ops_graph()
    per_point = sum(n.size for n in g.nodes) * 8
    assert g.eval_chunk(torch.float64, "cpu") == max(64, CPU_CHUNK_BYTES // per_point)
    assert g.eval_chunk(torch.float32, None) == max(64, CPU_CHUNK_BYTES // (per_point // 2))
    b = GraphBuilder()
    b.output(b.relu(b.input("x", 10 ** 6)), "y")
    assert b.build().eval_chunk(torch.float64, "cpu") == 64  # never below 64 points
    assert g.eval_chunk(torch.float64, "cuda") is None  # no limit off the CPU


def test_lowering_uses_primitive_ops_only() -> None:
    g, _ = _all_ops_graph()
    ops = {n.op for n in g.nodes}
    assert ops <= set(OPS)
    assert "relu" in ops and "reciprocal" in ops and "gather" in ops
    for bad in ("min", "max", "clamp", "div", "slice", "sum"):
        assert bad not in ops


def test_clamp_min_max_lowering_exact() -> None:
    b = GraphBuilder()
    x = b.input("x", 5)
    c = b.input("c", 5)
    b.output(b.clamp(x, -0.5, 0.7))
    b.output(b.clamp(x, lo=0.2))
    b.output(b.clamp(x, hi=0.3))
    b.output(b.maximum(x, c))
    b.output(b.minimum(x, c))
    g = b.build()
    xv = torch.linspace(-2, 2, 5).repeat(3, 1)
    cv = torch.randn(3, 5, dtype=torch.float64)
    o = g.evaluate({"x": xv, "c": cv})
    xv = xv.double()
    torch.testing.assert_close(o[0], xv.clamp(-0.5, 0.7))
    torch.testing.assert_close(o[1], xv.clamp(min=0.2))
    torch.testing.assert_close(o[2], xv.clamp(max=0.3))
    torch.testing.assert_close(o[3], torch.maximum(xv, cv))
    torch.testing.assert_close(o[4], torch.minimum(xv, cv))


def test_constant_folding_and_const_operands() -> None:
    b = GraphBuilder()
    x = b.input("x", 3)
    c = b.constant([1.0, 2.0, 3.0])
    d = b.sin(b.mul(c, c))  # all-constant -> folded
    assert b.node(d).op == "constant"
    m = b.mul(x, c)
    assert b.node(m).op == "scale"
    a = b.add(c, x)
    assert b.node(a).op == "add_const"
    s = b.sub(c, x)
    b.output(b.add(b.add(m, a), s))
    b.output(b.pow(x, 0))
    g = b.build()
    xv = torch.tensor([[0.5, -1.0, 2.0]], dtype=torch.float64)
    cv = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    out = g.evaluate(xv)
    torch.testing.assert_close(out[0], xv * cv + (cv + xv) + (cv - xv))
    torch.testing.assert_close(out[1], torch.ones(1, 3, dtype=torch.float64))


def test_compose_feeds_outputs_into_inputs() -> None:
    b = GraphBuilder()
    x = b.input("load", 2)
    b.output(b.sigmoid(b.linear(x, torch.tensor([[1.0, 2.0], [0.5, -1.0], [1.0, 1.0]]))), "y")
    proxy = b.build()
    b = GraphBuilder()
    y = b.input("y", 3)
    z = b.input("extra", 1)
    b.output(b.add(b.sum(b.square(y)), z), "phys")
    phys = b.build()
    g = compose(phys, proxy, {"y": "y"}, keep_inner_outputs=True)
    assert g.input_names == ["load", "extra"]
    assert list(g.output_names) == ["y", "phys"]
    xv = torch.randn(4, 2, dtype=torch.float64)
    zv = torch.randn(4, 1, dtype=torch.float64)
    yv = proxy.evaluate(xv)[0]
    out = g.evaluate({"load": xv, "extra": zv})
    torch.testing.assert_close(out[0], yv)
    torch.testing.assert_close(out[1], phys.evaluate({"y": yv, "extra": zv})[0])
    g2 = compose(phys, proxy, {"y": (proxy, 0)})
    assert len(g2.outputs) == 1
    with pytest.raises(GraphError, match="no input named"):
        compose(phys, proxy, {"nope": 0})
    b = GraphBuilder()
    y = b.input("y", 2)
    b.output(y)
    with pytest.raises(GraphError, match="size"):
        compose(b.build(), proxy, {"y": 0})


def test_extend_existing_graph() -> None:
    g, _ = _all_ops_graph()
    b = GraphBuilder(g)
    b.output(b.exp(g.outputs[0]), "e")
    g2 = b.build()
    xv, yv = torch.randn(3, 4), torch.randn(3, 2)
    torch.testing.assert_close(
        g2.evaluate([xv, yv])[0], torch.exp(g.evaluate([xv, yv])[0])
    )


def test_errors_name_the_node() -> None:
    b = GraphBuilder()
    x = b.input("x", 3)
    with pytest.raises(GraphError, match="weight shape"):
        b.linear(x, torch.zeros(2, 4), name="fc1")
    with pytest.raises(GraphError, match="fc2"):
        b.linear(x, torch.zeros(2, 4), name="fc2")
    with pytest.raises(GraphError, match="index out of range"):
        b.gather(x, [0, 3], name="g")
    with pytest.raises(GraphError, match="column index"):
        b.sparse_linear(x, [0], [5], [1.0], 2, name="sp")
    y = b.input("y", 2)
    with pytest.raises(GraphError, match="sizes differ"):
        b.mul(x, y)
    with pytest.raises(GraphError, match="duplicate input"):
        b.input("x", 1)
    with pytest.raises(GraphError, match="not a node handle"):
        b.relu(99)
    with pytest.raises(GraphError, match="non-finite"):
        b.scale(x, math.nan)
    with pytest.raises(GraphError, match="no outputs"):
        b.build()
    b.output(x)
    g = b.build()
    with pytest.raises(GraphError, match="entries"):
        g.evaluate(torch.zeros(2, 7))


def test_traits() -> None:
    assert OPS["sin"].period == pytest.approx(2 * math.pi)
    assert OPS["sigmoid"].monotone == "increasing" and OPS["sigmoid"].inflections == (0.0,)
    assert OPS["reciprocal"].domain == (0.0, math.inf)
    assert op_info("pow", {"k": 3}).monotone == "increasing"
    assert op_info("pow", {"k": 4}).monotone is None
    assert OPS["mul"].nonlinear and not OPS["mul"].interval_exact
    assert OPS["sparse_linear"].linear and not OPS["sparse_linear"].interval_exact


def _sparse_graph():
    rng = np.random.default_rng(3)
    b = GraphBuilder()
    x = b.input("x", 6)
    k = 20  # repeated (row, col) pairs must add up
    s = b.sparse_linear(x, rng.integers(0, 4, k), rng.integers(0, 6, k), rng.normal(size=k), 4,
                        bias=rng.normal(size=4))
    b.output(b.tanh(s), "y")
    return b.build(), s


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.float16])
def test_sparse_linear_csr_matches_dense_with_gradients(dtype):
    g, sid = _sparse_graph()
    node = g.nodes[sid]
    dense = torch.zeros(4, 6, dtype=torch.float64)
    dense.index_put_((node.attrs["rows"], node.attrs["cols"]),
                     node.attrs["vals"].to(torch.float64), accumulate=True)
    x = torch.randn(7, 6, dtype=torch.float64)
    want = torch.tanh(x @ dense.T + node.attrs["bias"].to(torch.float64))
    xd = x.to(dtype).requires_grad_(True)
    got = g.evaluate_flat(xd, dtype=dtype)
    tol = {torch.float64: 1e-12, torch.float32: 1e-5, torch.float16: 5e-3}[dtype]
    assert torch.allclose(got.double(), want, atol=tol, rtol=tol)
    (gx,) = torch.autograd.grad(got.sum(), xd)
    xr = x.clone().requires_grad_(True)
    (gw,) = torch.autograd.grad(torch.tanh(xr @ dense.T + node.attrs["bias"].double()).sum(), xr)
    assert torch.allclose(gx.double(), gw, atol=tol * 10, rtol=tol * 10)


def test_graph_pickles_and_copies_after_evaluation():
    import copy
    import pickle

    g, _ = _sparse_graph()
    x = torch.randn(3, 6, dtype=torch.float64)
    y = g.evaluate_flat(x)  # fills the cache (a CSR matrix, which torch cannot pickle)
    for g2 in (pickle.loads(pickle.dumps(g)), copy.deepcopy(g)):
        assert torch.equal(g2.evaluate_flat(x), y)


def _digest_of(w: np.ndarray, act: str = "relu", names: tuple[str, str] = ("x", "y")) -> str:
    b = GraphBuilder()
    x = b.input(names[0], 2)
    h = b.linear(x, w, np.zeros(w.shape[0]))
    b.output(b.relu(h) if act == "relu" else b.unary(act, h), names[1])
    return b.build().digest()


def test_digest_tells_functions_apart_and_ignores_names() -> None:
    w = np.array([[1.0, -2.0], [0.5, 3.0]])
    same = _digest_of(w.copy())
    assert _digest_of(w) == same
    assert _digest_of(w, names=("loads", "out")) == same  # names change no value
    assert _digest_of(w, act="tanh") != same  # the op
    w2 = w.copy()
    w2[1, 1] = np.nextafter(3.0, 4.0)
    assert _digest_of(w2) != same  # one constant, one ulp
