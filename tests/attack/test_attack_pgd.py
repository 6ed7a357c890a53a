"""The projected-gradient attack finds known maxima and returns honest float64 values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gridverify.attack.pgd import pgd_maximize, pgd_maximize_fn, polytope_objective
from gridverify.errors import SpecError
from gridverify.ir import GraphBuilder


def _trig_graph():
    """y = (sin(3 x0), cos(2 x1))."""
    b = GraphBuilder()
    x = b.input("x", 2)
    s0 = b.sin(b.scale(b.slice(x, 0, 1), 3.0))
    c1 = b.cos(b.scale(b.slice(x, 1, 2), 2.0))
    b.output(b.concat([s0, c1]), "y")
    return b.build()


def _relu_net(seed: int, n_in: int = 3, hidden: int = 16, n_out: int = 2):
    rng = np.random.default_rng(seed)
    W1, b1 = rng.normal(size=(hidden, n_in)), rng.normal(size=hidden) * 0.5
    W2, b2 = rng.normal(size=(n_out, hidden)) / 4, rng.normal(size=n_out)
    b = GraphBuilder()
    x = b.input("x", n_in)
    h = b.relu(b.linear(x, torch.tensor(W1), torch.tensor(b1)))
    b.output(b.linear(h, torch.tensor(W2), torch.tensor(b2)), "y")
    return b.build(), (W1, b1, W2, b2)


def test_known_trig_maximum() -> None:
    g = _trig_graph()
    lo, hi = np.array([-2.0, -2.0]), np.array([2.0, 2.0])
    rows = np.array([[1.0, 1.0], [1.0, -1.0], [-1.0, 0.0], [0.0, -1.0]])
    res = pgd_maximize(g, lo, hi, rows, restarts=8, steps=60, seed=1)
    # maxima: 2 (x0 = pi/6, x1 = 0), 2 (sin = 1, cos = -1), 1, 1
    np.testing.assert_allclose(res.values.numpy(), [2.0, 2.0, 1.0, 1.0], atol=1e-4)
    assert res.values.dtype == torch.float64 and res.inputs.shape == (4, 2)
    assert torch.all(res.inputs >= torch.tensor(lo)) and torch.all(res.inputs <= torch.tensor(hi))


def test_linear_graph_hits_the_exact_corner() -> None:
    rng = np.random.default_rng(0)
    W, c0 = rng.normal(size=(3, 5)), rng.normal(size=3)
    b = GraphBuilder()
    x = b.input("x", 5)
    b.output(b.linear(x, torch.tensor(W), torch.tensor(c0)), "y")
    g = b.build()
    lo, hi = -rng.random(5), rng.random(5)
    C = rng.normal(size=(4, 3))
    res = pgd_maximize(g, lo, hi, C, restarts=2, steps=0)
    for k in range(4):
        w = C[k] @ W
        exact = C[k] @ c0 + np.sum(np.where(w > 0, w * hi, w * lo))
        assert res.values[k].item() == pytest.approx(exact, abs=1e-12)


# derandomized: the attack is a heuristic, and about one network in 3,000 hides its
# maximum at a kink no start reaches (seed 1118: 256 starts reach -0.095, a grid -0.038);
# a quality check must not fail at random in CI
@settings(max_examples=8, deadline=None, derandomize=True)
@given(seed=st.integers(0, 10_000))
def test_relu_net_matches_dense_sampling(seed: int) -> None:
    """The attack is at least as good as a dense grid (up to a small tolerance)."""
    g, (W1, b1, W2, b2) = _relu_net(seed)
    lo, hi = np.full(3, -1.0), np.full(3, 1.0)
    rows = np.array([[1.0, 0.0], [0.0, -1.0], [1.0, 1.0]])
    res = pgd_maximize(g, lo, hi, rows, restarts=16, steps=80, seed=seed)
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, 41)] * 3), -1).reshape(-1, 3)
    y = np.maximum(grid @ W1.T + b1, 0) @ W2.T + b2
    dense = (y @ rows.T).max(axis=0)
    assert np.all(res.values.numpy() >= dense - 0.05 * (1 + np.abs(dense)))
    # values are the true objective at the returned inputs (float64, numpy reference)
    x = res.inputs.numpy()
    yx = np.maximum(x @ W1.T + b1, 0) @ W2.T + b2
    np.testing.assert_allclose(res.values.numpy(), np.sum(yx * rows, axis=1), rtol=1e-12)


def test_float32_search_is_reevaluated_in_float64() -> None:
    g, (W1, b1, W2, b2) = _relu_net(3)
    lo, hi = np.full(3, -1.0), np.full(3, 1.0)
    res = pgd_maximize(g, lo, hi, np.eye(2), dtype=torch.float32, restarts=4, steps=20)
    x = res.inputs.numpy()
    y = np.maximum(x @ W1.T + b1, 0) @ W2.T + b2
    np.testing.assert_allclose(res.values.numpy(), np.diag(y), rtol=1e-13)
    assert res.inputs.dtype == torch.float64


def test_polytope_objective_finds_a_counterexample() -> None:
    g = _trig_graph()
    lo, hi = np.array([-2.0, -2.0]), np.array([2.0, 2.0])
    polys = [
        (np.array([[-1.0, 0.0], [0.0, -1.0]]), np.array([-0.99, -0.99])),  # y0, y1 >= 0.99: sat
        (np.array([[-1.0, 0.0]]), np.array([-1.5])),  # y0 >= 1.5: impossible
        (np.zeros((0, 2)), np.zeros(0)),  # no rows: always holds
    ]
    fn, m = polytope_objective(polys)
    res = pgd_maximize_fn(g, lo, hi, fn, m, restarts=8, steps=60)
    assert res.values[0] >= 0.0
    y = g.evaluate_flat(res.inputs[:1])[0].numpy()
    assert np.all(polys[0][0] @ y <= polys[0][1])
    assert res.values[1] == pytest.approx(-0.5, abs=1e-6)
    assert res.values[2] > 1e299


def test_target_stops_early() -> None:
    g = _trig_graph()
    fn, m = polytope_objective([(np.array([[-1.0, 0.0]]), np.array([0.0]))] * 50)
    res = pgd_maximize_fn(
        g, [-2, -2], [2, 2], fn, m, restarts=4, steps=200, target=0.0, max_batch=8
    )
    assert res.values[0] >= 0.0
    assert res.evaluations < 50 * 4 * 201  # stopped well before the full budget


def test_nan_regions_are_avoided() -> None:
    """sqrt is NaN for negative inputs: returned values are finite and honest."""
    b = GraphBuilder()
    x = b.input("x", 1)
    b.output(b.neg(b.sqrt(x)), "y")
    g = b.build()
    res = pgd_maximize(g, [-1.0], [1.0], [[1.0]], restarts=4, steps=30)
    assert math.isfinite(res.values[0].item())
    assert res.inputs[0, 0] >= 0.0
    assert res.values[0].item() == pytest.approx(-math.sqrt(res.inputs[0, 0].item()))


def test_degenerate_box_and_bad_arguments() -> None:
    g = _trig_graph()
    res = pgd_maximize(g, [0.5, 0.5], [0.5, 0.5], [[1.0, 1.0]])
    assert res.values[0].item() == pytest.approx(math.sin(1.5) + math.cos(1.0))
    with pytest.raises(SpecError, match="objective has shape"):
        pgd_maximize(g, [0, 0], [1, 1], [[1.0, 1.0, 1.0]])
    with pytest.raises(SpecError, match="empty box"):
        pgd_maximize(g, [0, 2], [1, 1], [[1.0, 1.0]])
    with pytest.raises(SpecError, match="finite"):
        pgd_maximize(g, [0, -np.inf], [1, 1], [[1.0, 1.0]])
    with pytest.raises(SpecError, match="graph inputs total"):
        pgd_maximize(g, [0], [1], [[1.0, 1.0]])


def test_polytope_objective_matches_the_dense_formula() -> None:
    rng = np.random.default_rng(5)
    n_out = 7
    polys = []
    for j in range(12):
        k = int(rng.integers(0, 4))
        A = rng.normal(size=(k, n_out)) * (rng.random((k, n_out)) < 0.4)
        if j == 3 and k:
            A[0] = rng.normal(size=n_out)  # a dense row
        polys.append((A, rng.normal(size=k)))
    fn, m = polytope_objective(polys)
    y = torch.tensor(rng.normal(size=(40, n_out)))
    rows = torch.tensor(rng.integers(0, m, size=40))
    got = fn(y, rows).numpy()
    for i in range(40):
        A, b = polys[int(rows[i])]
        want = np.min(b - A @ y[i].numpy()) if A.shape[0] else 1e300
        assert got[i] == pytest.approx(want, rel=1e-12, abs=1e-12)
    got32 = fn(y.float(), rows).numpy()
    finite = np.array([polys[int(r)][0].shape[0] > 0 for r in rows])
    np.testing.assert_allclose(got32[finite], got[finite], rtol=1e-4, atol=1e-4)
