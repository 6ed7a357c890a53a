"""Batching for branch-and-bound: batched domains, fixed intermediate bounds,
returned linear coefficients and intermediate bounds, options, model types, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from engine_graphs import acopf_small, random_graph, sample_box

from gridverify.bounds import BoundError, BoundOptions, BoundOptionsError, compute_bounds
from gridverify.errors import GraphError, GridverifyError
from gridverify.ir import GraphBuilder

OPTS = BoundOptions(alpha_iterations=5)


def _box(n: int, batch: int, radius: float, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    c = torch.randn(batch, n, generator=gen, dtype=torch.float64)
    return c - radius, c + radius


@pytest.mark.parametrize("method", ["ibp", "crown", "alpha-crown"])
def test_batch_equals_one_by_one(method: str) -> None:
    g = acopf_small(3)
    lo, hi = _box(22, 3, 0.1)
    rb = compute_bounds(g, lo, hi, method=method, options=OPTS)
    for k in range(3):
        r1 = compute_bounds(g, lo[k], hi[k], method=method, options=OPTS)
        if method != "alpha-crown":
            torch.testing.assert_close(rb.lower[k:k + 1], r1.lower, atol=1e-9, rtol=1e-9)
            torch.testing.assert_close(rb.upper[k:k + 1], r1.upper, atol=1e-9, rtol=1e-9)
        else:
            # Adam turns rounding-level gradient differences (summation order
            # differs between batch sizes) into full steps, so trajectories may
            # part; the batched result must still be as good on the whole
            w_b, w_1 = float(rb.width[k].sum()), float(r1.width.sum())
            assert abs(w_b - w_1) <= 0.02 * w_1
    if method == "alpha-crown":
        rc = compute_bounds(g, lo, hi, method="crown")
        assert bool((rb.lower >= rc.lower - 1e-12).all() and (rb.upper <= rc.upper + 1e-12).all())


def _relu_net():
    rng = np.random.default_rng(0)
    b = GraphBuilder()
    x = b.input("x", 3)
    z = b.linear(x, rng.normal(size=(8, 3)), rng.normal(size=8) * 0.1, name="z1")
    h = b.relu(z)
    y = b.linear(b.sin(h), rng.normal(size=(2, 8)))
    b.output(y, "y")
    return b.build(), z


@pytest.mark.parametrize("method", ["crown", "alpha-crown"])
def test_interm_split_is_sound_and_tighter(method: str) -> None:
    g, z = _relu_net()
    lo, hi = _box(3, 1, 0.8, seed=4)
    base = compute_bounds(g, lo, hi, method=method, options=BoundOptions(
        alpha_iterations=5, keep_intermediate=True))
    zl, zu = base.interm[z]
    j = int(((zl < 0) & (zu > 0)).double().argmax())  # an unstable neuron
    assert zl[0, j] < 0 < zu[0, j]
    # two subdomains: z_j <= 0 and z_j >= 0
    il = zl.repeat(2, 1).clone()
    iu = zu.repeat(2, 1).clone()
    iu[0, j] = 0.0
    il[1, j] = 0.0
    r = compute_bounds(g, lo.repeat(2, 1), hi.repeat(2, 1), method=method,
                       interm={z: (il, iu)}, options=OPTS)
    xs = sample_box(lo, hi, 20000)[0]
    zv = g.evaluate_all(xs)[z][:, j]
    yv = g.evaluate_flat(xs)
    for k, mask in enumerate([zv <= 0, zv >= 0]):
        assert mask.any()
        assert bool((r.lower[k] <= yv[mask] + 1e-9).all())
        assert bool((r.upper[k] >= yv[mask] - 1e-9).all())
    # CROWN is not monotone in the intermediate bounds (default slopes move), so a
    # child may be looser than its parent on some output; on average it is tighter
    assert float(r.width.mean()) <= float(base.width.mean()) + 1e-9
    assert not bool(r.infeasible.any())


def test_interm_infeasible_flag() -> None:
    g, z = _relu_net()
    lo, hi = _box(3, 2, 0.5)
    big = torch.full((2, 8), 1e6, dtype=torch.float64)
    il = -big.clone()
    il[1, 0] = 1e5  # lower above any reachable value -> empty
    r = compute_bounds(g, lo, hi, method="crown", interm={z: (il, big)})
    assert r.infeasible.tolist() == [False, True]
    assert not torch.isnan(r.lower).any()


@pytest.mark.parametrize("method", ["crown", "alpha-crown"])
def test_return_A_linear_bounds_hold(method: str) -> None:
    g = random_graph(3, depth=4)
    lo, hi = _box(g.input_size, 2, 0.3, seed=1)
    mid = [n.id for n in g.nodes if n.op == "linear"][3]
    r = compute_bounds(g, lo, hi, method=method, return_A=[mid], options=OPTS)
    r3 = compute_bounds(g, lo, hi, method=method, return_A=[mid, "output"], options=OPTS)
    assert set(r3.linear) == {mid, "output"}
    r2 = compute_bounds(g, lo, hi, method=method, return_A=True, options=OPTS)
    assert "output" in r2.linear and mid in r.linear and "output" not in r.linear
    xs = sample_box(lo, hi, 3000)
    inputs = g.inputs
    for key, lin in (("output", r2.linear["output"]), (mid, r.linear[mid])):
        for k in range(2):
            vals_all = g.evaluate_all(xs[k])
            vals = g.evaluate_flat(xs[k]) if key == "output" else vals_all[key]
            low = lin.lbias[k].unsqueeze(0).clone()
            up = lin.ubias[k].unsqueeze(0).clone()
            for i in inputs:
                low = low + vals_all[i] @ lin.lA[i][k].T
                up = up + vals_all[i] @ lin.uA[i][k].T
            assert bool((low <= vals + 1e-8).all())
            assert bool((up >= vals - 1e-8).all())


def test_keep_intermediate_contains_node_values() -> None:
    g = acopf_small(5)
    lo, hi = _box(22, 2, 0.2, seed=2)
    r = compute_bounds(g, lo, hi, method="crown",
                       options=BoundOptions(keep_intermediate=True))
    assert r.interm
    xs = sample_box(lo, hi, 2000)
    for k in range(2):
        vals = g.evaluate_all(xs[k])
        for nid, (l, u) in r.interm.items():
            assert bool((l[k] <= vals[nid] + 1e-9).all()), g.nodes[nid].name
            assert bool((u[k] >= vals[nid] - 1e-9).all()), g.nodes[nid].name


@pytest.mark.parametrize("opts", [
    BoundOptions(memory_mb=0.2),
    BoundOptions(crown_max_size=10),
    BoundOptions(intermediate="ibp"),
    BoundOptions(optimizer="sgd", alpha_lr=0.01, alpha_iterations=3),
])
def test_options_sound(opts: BoundOptions) -> None:
    g = acopf_small(6)
    lo, hi = _box(22, 2, 0.1, seed=3)
    xs = sample_box(lo, hi, 3000)
    vals = torch.stack([g.evaluate_flat(xs[k]) for k in range(2)])
    ref = compute_bounds(g, lo, hi, method="crown")
    r = compute_bounds(g, lo, hi, method="alpha-crown", options=opts)
    assert bool((r.lower.unsqueeze(1) <= vals + 1e-9).all())
    assert bool((r.upper.unsqueeze(1) >= vals - 1e-9).all())
    if opts.memory_mb < 1:  # chunking changes nothing but memory
        r2 = compute_bounds(g, lo, hi, method="crown", options=opts)
        torch.testing.assert_close(r2.lower, ref.lower)
        torch.testing.assert_close(r2.upper, ref.upper)


def test_sparse_equals_dense() -> None:
    rng = np.random.default_rng(1)
    w = rng.normal(size=(6, 5)) * (rng.random((6, 5)) < 0.4)
    rows, cols = np.nonzero(w)
    graphs = []
    for sparse in (False, True):
        b = GraphBuilder()
        x = b.input("x", 5)
        h = (b.sparse_linear(x, rows, cols, w[rows, cols], 6) if sparse else b.linear(x, w))
        b.output(b.linear(b.cos(h), rng.normal(size=(3, 6)) if not graphs else graphs[0][1]))
        graphs.append((b.build(), b.node(len(b) - 1).attrs["weight"]))
    lo, hi = _box(5, 2, 0.5)
    for m in ("ibp", "crown"):
        a = compute_bounds(graphs[0][0], lo, hi, method=m)
        s = compute_bounds(graphs[1][0], lo, hi, method=m)
        torch.testing.assert_close(a.lower, s.lower)
        torch.testing.assert_close(a.upper, s.upper)


def test_torch_module_and_onnx_model() -> None:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3),
                              torch.nn.Sigmoid()).double()
    from gridverify.ir import from_torch

    g = from_torch(net, input_size=4)
    lo, hi = _box(4, 2, 0.3)
    a = compute_bounds(net, lo, hi, method="crown")
    b = compute_bounds(g, lo, hi, method="crown")
    torch.testing.assert_close(a.lower, b.lower)
    xs = sample_box(lo, hi, 1000)
    with torch.no_grad():
        v = net(xs)
    assert bool((a.lower.unsqueeze(1) <= v + 1e-9).all())
    assert bool((a.upper.unsqueeze(1) >= v - 1e-9).all())


def test_onnx_path(tmp_path) -> None:  # noqa: ANN001
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w = rng.normal(size=(3, 4))
    bias = rng.normal(size=3)
    nodes = [helper.make_node("Gemm", ["x", "W", "B"], ["h"], transB=1),
             helper.make_node("Sigmoid", ["h"], ["y"])]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.DOUBLE, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.DOUBLE, [1, 3])],
        [numpy_helper.from_array(w, "W"), numpy_helper.from_array(bias, "B")])
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    lo, hi = _box(4, 1, 0.2)
    r = compute_bounds(str(path), lo, hi, method="crown")
    with torch.no_grad():
        xs = sample_box(lo, hi, 500)[0]
        v = torch.sigmoid(xs @ torch.as_tensor(w).T + torch.as_tensor(bias))
    assert bool((r.lower <= v + 1e-9).all() and (r.upper >= v - 1e-9).all())


def test_reciprocal_off_domain_gives_no_bound_not_nan() -> None:
    b = GraphBuilder()
    x = b.input("x", 2)
    b.output(b.reciprocal(x))
    g = b.build()
    lo = torch.tensor([[-1.0, 1.0]], dtype=torch.float64)
    hi = torch.tensor([[1.0, 2.0]], dtype=torch.float64)
    for m in ("ibp", "crown", "alpha-crown"):
        r = compute_bounds(g, lo, hi, method=m)
        assert not torch.isnan(r.lower).any() and not torch.isnan(r.upper).any()
        assert r.lower[0, 0] <= -1e300 and r.upper[0, 0] >= 1e300
        assert 0.5 - 1e-12 <= r.lower[0, 1] <= r.upper[0, 1] <= 1.0 + 1e-12


def test_errors_are_named() -> None:
    g = acopf_small(0)
    lo, hi = _box(22, 1, 0.1)
    with pytest.raises(BoundOptionsError, match="method"):
        compute_bounds(g, lo, hi, method="zonotope")
    with pytest.raises(BoundError, match="does not match"):
        compute_bounds(g, lo[:, :5], hi[:, :5])
    with pytest.raises(BoundError, match="lower > upper"):
        compute_bounds(g, hi, lo)
    with pytest.raises(BoundError, match="non-finite"):
        compute_bounds(g, lo * torch.inf, hi)
    with pytest.raises(BoundError, match="spec"):
        compute_bounds(g, lo, hi, spec=torch.ones(2, 3))
    with pytest.raises(BoundError, match="not a node"):
        compute_bounds(g, lo, hi, interm={10_000: (0.0, 1.0)})
    with pytest.raises(BoundOptionsError):
        BoundOptions(alpha_iterations=-1)
    with pytest.raises(BoundOptionsError):
        BoundOptions(intermediate="exact")
    with pytest.raises(GraphError):
        compute_bounds(object(), lo, hi)
    assert issubclass(BoundError, GridverifyError)


def test_nodes_off_the_output_paths() -> None:
    b = GraphBuilder()
    x = b.input("x", 3)
    side = b.sin(b.linear(x, torch.ones(2, 3)))  # feeds no output
    b.output(b.relu(b.linear(x, torch.eye(3))), "y")
    g = b.build()
    lo, hi = _box(3, 2, 0.3)
    r = compute_bounds(g, lo, hi, method="crown", return_A=[side],
                       interm={side: (-torch.ones(2), torch.ones(2))})
    xs = sample_box(lo, hi, 500)
    for k in range(2):
        v = g.evaluate_all(xs[k])[side]
        lin = r.linear[side]
        low = v.new_zeros(v.shape) + lin.lbias[k] + xs[k] @ lin.lA[0][k].T
        assert bool((low <= v + 1e-9).all())
    with pytest.raises(BoundError, match="return_A"):
        compute_bounds(g, lo, hi, method="crown", return_A=[99])


def test_float32_linear_intervals_hold_exactly() -> None:
    """IBP of a float32 linear layer on boxes centred at 0 (so the midpoint term is 0
    and only the radius sum is padded): the upper ends are at least the exact maximum
    ``sum |W_ji| hi_i`` computed in rational arithmetic."""
    from fractions import Fraction

    from gridverify.bounds.ibp import ibp

    gen = torch.Generator().manual_seed(0)
    for _ in range(40):
        n = 16
        w = torch.randn(3, n, generator=gen, dtype=torch.float64).float().double()
        b = GraphBuilder()
        x = b.input("x", n)
        y = b.linear(x, w.numpy())
        b.output(y, "y")
        g = b.build()
        r = (torch.rand(1, n, generator=gen, dtype=torch.float64) + 0.5).float()
        lo, hi = ibp(g, {x: (-r, r)}, torch.float32, torch.device("cpu"))[y]
        for j in range(3):
            exact = sum(abs(Fraction(float(w[j, i]))) * Fraction(float(r[0, i]))
                        for i in range(n))
            assert Fraction(float(hi[0, j])) >= exact
            assert Fraction(float(lo[0, j])) <= -exact


def test_an_infeasible_domain_has_no_upper_bound_above_minus_infinity() -> None:
    """A split no input reaches (``z0 >= 5`` where ``z0 <= 2``): the domain is flagged
    infeasible and its bound is ``-inf`` (it holds no point), next to a feasible one."""
    from gridverify.bounds.domains import bound_domains

    b = GraphBuilder()
    x = b.input("x", 2)
    z = b.linear(x, np.array([[1.0, 1.0], [1.0, -1.0]]))
    b.output(b.linear(b.relu(z), np.array([[1.0, 1.0]])), "y")
    g = b.build()
    lo = -torch.ones(2, 2, dtype=torch.float64)
    inf = torch.inf
    slo = torch.tensor([[-inf, -inf], [5.0, -inf]], dtype=torch.float64)
    shi = torch.full((2, 2), inf, dtype=torch.float64)
    db = bound_domains(g, lo, -lo, {z: (slo, shi)}, torch.eye(1, dtype=torch.float64),
                       split_nodes=[z])
    assert db.infeasible.tolist() == [False, True]
    assert float(db.upper[0]) >= 2.0 and float(db.upper[1]) == -inf


def test_domain_row_bounds_are_never_above_ibp() -> None:
    """Each domain row's upper bound is the better of CROWN's and IBP's: on a wide box
    of a tanh network, where CROWN is looser than IBP on some rows, never above IBP."""
    from engine_graphs import mlp_physics_graph

    from gridverify.bounds.domains import bound_domains
    from gridverify.bounds.ibp import ibp

    g = mlp_physics_graph(4, (8, 8), 8, 4, seed=1, activation="tanh")
    gen = torch.Generator().manual_seed(1)
    c = torch.randn(1, g.input_size, generator=gen, dtype=torch.float64)
    lo, hi = c - 3.0, c + 3.0
    db = bound_domains(g, lo, hi, None, torch.eye(g.output_size, dtype=torch.float64))
    iv = ibp(g, {g.inputs[0]: (lo, hi)}, torch.float64, torch.device("cpu"))
    ibp_hi = torch.cat([iv[o][1] for o in g.outputs], -1)
    assert bool((db.row_upper <= ibp_hi).all())


def test_alpha_crown_tightens_lower_bounds_too() -> None:
    """alpha-CROWN optimizes the lower bounds as well as the upper ones: on a relu
    network it beats CROWN's lower bound strictly on some rows."""
    from engine_graphs import mlp_physics_graph

    g = mlp_physics_graph(4, (16, 16), 8, 4, seed=0, activation="relu")
    gen = torch.Generator().manual_seed(0)
    c = torch.randn(1, g.input_size, generator=gen, dtype=torch.float64)
    o = BoundOptions(alpha_iterations=20, alpha_lr=0.1)
    cr = compute_bounds(g, c - 0.5, c + 0.5, method="crown", options=o)
    al = compute_bounds(g, c - 0.5, c + 0.5, method="alpha-crown", options=o)
    assert bool((al.lower >= cr.lower - 1e-12).all())
    assert bool((al.lower > cr.lower + 1e-6).any())


@pytest.mark.parametrize("act", ["relu", "tanh"])
def test_alpha_crown_is_never_looser_than_crown_whatever_the_step(act: str) -> None:
    """The best bound over the iterations is kept, never the last one: with steps so
    large that the slopes overshoot, alpha-CROWN still ends at or inside CROWN."""
    from engine_graphs import mlp_physics_graph

    for seed in range(2):
        g = mlp_physics_graph(4, (16, 16), 8, 4, seed=seed, activation=act)
        gen = torch.Generator().manual_seed(seed)
        c = torch.randn(1, g.input_size, generator=gen, dtype=torch.float64)
        for lr in (5.0, 50.0):
            o = BoundOptions(alpha_iterations=6, alpha_lr=lr)
            cr = compute_bounds(g, c - 0.5, c + 0.5, method="crown", options=o)
            al = compute_bounds(g, c - 0.5, c + 0.5, method="alpha-crown", options=o)
            assert bool((al.upper <= cr.upper).all() and (al.lower >= cr.lower).all())
