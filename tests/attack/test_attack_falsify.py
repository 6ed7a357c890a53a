"""The falsifier's phases, options and bookkeeping."""

from __future__ import annotations

import itertools
import time

import numpy as np
import pytest
import torch

from gridverify.attack import (
    AttackOptions,
    AttackOptionsError,
    falsify,
    linear_objectives,
    output_extremizers,
    row_objectives,
)
from gridverify.ir import GraphBuilder


def _abs_net(seed: int, n_in: int = 8, hidden: int = 12):
    """y = (sum_i |W x + b|_i, -sum_i |W x + b|_i): convex, maxima at box vertices."""
    rng = np.random.default_rng(seed)
    W, b0 = rng.normal(size=(hidden, n_in)), rng.normal(size=hidden) * 0.3
    b = GraphBuilder()
    x = b.input("x", n_in)
    z = b.linear(x, torch.tensor(W), torch.tensor(b0))
    a = b.linear(b.concat([b.relu(z), b.relu(b.neg(z))]), torch.ones(1, 2 * hidden),
                 torch.zeros(1))
    b.output(b.concat([a, b.neg(a)]), "y")
    return b.build(), W, b0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_vertex_phase_finds_the_best_vertex(seed: int) -> None:
    g, W, b0 = _abs_net(seed)
    n = W.shape[1]
    lo, hi = -np.ones(n), np.ones(n)
    verts = np.array(list(itertools.product([-1.0, 1.0], repeat=n)))
    best = np.abs(verts @ W.T + b0).sum(axis=1).max()
    opts = AttackOptions(restarts=1, steps=0, rounds=1, phases=("vertex",), pool=0,
                         vertex_rounds=40)
    res = falsify(g, lo, hi, linear_objectives([[1.0, 0.0]], 2), opts)
    assert res.values[0].item() == pytest.approx(best, rel=1e-9)
    assert np.all(np.isin(res.inputs.numpy(), [-1.0, 1.0]))


def test_a_float32_search_returns_the_float64_vertex() -> None:
    """Bounds float32 rounds into the box (1.18323 -> 1.1832300424...): the vertex the
    search reaches is returned on the float64 bounds, not 1e-7 inside them, where a
    violation smaller than that rounding would be lost."""
    lo = np.array([2.7, 0.88749, 1.18323, -0.1])
    hi = np.array([3.3, 1.08471, 1.4461700000000002, 0.1])
    a = np.array([1.0, -1.0, 1.0, -1.0])
    b = GraphBuilder()
    x = b.input("x", 4)
    b.output(b.linear(x, torch.tensor(a[None, :]), torch.zeros(1)), "y")
    g = b.build()
    best = np.where(a > 0, hi, lo)
    for dtype in ("float32", "float64"):
        res = falsify(g, lo, hi, row_objectives([0], 1), AttackOptions(dtype=dtype))
        np.testing.assert_array_equal(res.inputs.numpy()[0], best)
        assert res.values[0].item() == float(a @ best)


def test_per_objective_boxes_and_row_objectives() -> None:
    g, W, b0 = _abs_net(3, n_in=3)
    lo = torch.tensor([[-1.0, -1, -1], [0.0, 0, 0]])
    hi = torch.tensor([[0.0, 0, 0], [1.0, 1, 1]])
    res = falsify(g, lo, hi, row_objectives([0, 0], 2), AttackOptions(restarts=4, steps=20))
    x = res.inputs
    assert torch.all(x >= lo) and torch.all(x <= hi)
    want = np.abs(x.numpy() @ W.T + b0).sum(axis=1)
    np.testing.assert_allclose(res.values.numpy(), want, rtol=1e-12)
    assert bool(res.reached.all())


def test_deadline_in_the_past_returns_valid_points() -> None:
    g, W, b0 = _abs_net(4, n_in=4)
    res = falsify(g, -np.ones(4), np.ones(4), row_objectives([0, 1], 2),
                  AttackOptions(steps=1000), deadline=time.monotonic() - 1)
    assert not bool(res.reached.any())
    want = np.abs(res.inputs.numpy() @ W.T + b0).sum(axis=1)
    np.testing.assert_allclose(res.values.numpy(), [want[0], -want[1]], rtol=1e-12)


def test_output_extremizers_and_options() -> None:
    g, _, _ = _abs_net(5, n_in=3)
    pts = output_extremizers(g, -np.ones(3), np.ones(3))
    assert pts.shape == (4, 3)
    with pytest.raises(AttackOptionsError, match="phases"):
        AttackOptions(phases=("ascent", "magic"))
    with pytest.raises(AttackOptionsError, match="time_share"):
        AttackOptions(time_share=0.0)
    h = AttackOptions().heavy(10)
    assert h.restarts == 10 * AttackOptions().restarts and h.steps == 10 * AttackOptions().steps


def test_signed_row_objectives_equal_the_linear_ones() -> None:
    g, _, _ = _abs_net(6, n_in=4)
    x = torch.tensor(np.random.default_rng(0).uniform(-1, 1, (5, 4)))
    y = g.evaluate_flat(x, dtype=torch.float64)
    eye = torch.eye(2, dtype=torch.float64)
    lin = linear_objectives(torch.cat([eye, -eye]), 2)
    signed = row_objectives([0, 1, 0, 1], 2, signs=[1.0, 1.0, -1.0, -1.0])
    torch.testing.assert_close(signed.every(y), lin.every(y), rtol=0, atol=0)
    rows = torch.tensor([3, 2, 1, 0, 3])
    torch.testing.assert_close(signed.at(y, rows), lin.at(y, rows), rtol=0, atol=0)
    with pytest.raises(Exception, match="signs"):
        row_objectives([0, 1], 2, signs=[1.0])


def test_output_extremizers_of_chosen_outputs() -> None:
    """Outputs ``[1]``: two points in the box, maximizing then minimizing output 1."""
    g, W, b0 = _abs_net(7, n_in=3)
    lo, hi = -np.ones(3), np.ones(3)
    one = output_extremizers(g, lo, hi, outputs=[1])  # max y1, min y1
    assert one.shape == (2, 3)
    assert torch.all(one >= -1) and torch.all(one <= 1)
    y1 = g.evaluate_flat(one, dtype=torch.float64)[:, 1]
    centre = float(g.evaluate_flat(torch.zeros(1, 3), dtype=torch.float64)[0, 1])
    verts = np.array(list(itertools.product([-1.0, 1.0], repeat=3)))
    lowest = -np.abs(verts @ W.T + b0).sum(axis=1).max()  # y1 is concave: min at a vertex
    assert float(y1[0]) >= centre and float(y1[1]) <= centre
    assert float(y1[1]) == pytest.approx(lowest, rel=1e-9)
    assert output_extremizers(g, lo, hi, outputs=[]).shape == (0, 3)


@pytest.mark.parametrize("per_box", [False, True])
def test_objectives_in_groups_give_valid_points_for_every_objective(per_box: bool) -> None:
    g, W, b0 = _abs_net(8, n_in=4)
    m = 5
    if per_box:
        lo = torch.tensor(np.random.default_rng(1).uniform(-1, 0, (m, 4)))
        hi = lo + 0.5
    else:
        lo, hi = -torch.ones(4), torch.ones(4)
    obj = row_objectives([0, 1, 0, 1, 0], 2)
    opts = AttackOptions(restarts=3, steps=10)
    whole = falsify(g, lo, hi, obj, opts)
    grouped = falsify(g, lo, hi, obj, opts, max_objectives=2)
    assert grouped.values.shape == (m,) and grouped.inputs.shape == (m, 4)
    assert bool(grouped.reached.all())
    x = grouped.inputs
    assert torch.all(x >= lo - 0.0) and torch.all(x <= hi + 0.0)
    y = np.abs(x.numpy() @ W.T + b0).sum(axis=1)
    want = np.where(np.array([0, 1, 0, 1, 0]) == 0, y, -y)
    np.testing.assert_allclose(grouped.values.numpy(), want, rtol=1e-12)
    # a group searches its objectives as the whole call does (vertex maxima are found)
    np.testing.assert_allclose(grouped.values.numpy()[[0, 2, 4]],
                               whole.values.numpy()[[0, 2, 4]], rtol=1e-6)


def test_groups_after_a_target_is_reached_are_not_searched() -> None:
    g, _, _ = _abs_net(9, n_in=3)
    obj = row_objectives([0, 0, 0, 0], 2)
    res = falsify(g, -np.ones(3), np.ones(3), obj, AttackOptions(restarts=2, steps=5),
                  target=-1e9, max_objectives=2)
    assert res.values.shape == (4,)
    assert not bool(res.reached[2:].any())


def test_subsets_of_every_kind_of_objectives_agree_with_the_whole() -> None:
    from gridverify.attack import function_objectives

    y = torch.tensor(np.random.default_rng(2).normal(size=(5, 3)))
    kinds = [
        row_objectives([2, 0, 1, 2], 3),
        row_objectives([2, 0, 1, 2], 3, signs=[1.0, -1.0, -1.0, 1.0]),
        linear_objectives(np.random.default_rng(3).normal(size=(4, 3)), 3),
        function_objectives(lambda yy, rows: yy.gather(1, (rows % 3)[:, None])[:, 0] * 2.0, 4),
    ]
    for obj in kinds:
        sub = obj.subset(1, 3)
        assert sub.m == 2
        torch.testing.assert_close(sub.every(y), obj.every(y)[:, 1:3], rtol=0, atol=0)
        rows = torch.tensor([0, 1, 1, 0, 1])
        torch.testing.assert_close(sub.at(y, rows), obj.at(y, rows + 1), rtol=0, atol=0)


def test_starts_of_another_width_are_refused() -> None:
    from gridverify.errors import SpecError

    g, _, _ = _abs_net(9, n_in=3)
    obj = row_objectives([0, 0], 2)
    opts = AttackOptions(restarts=2, steps=2)
    for bad in (np.zeros((2, 4)), np.zeros(5)):
        with pytest.raises(SpecError, match="starts must be points of 3 inputs"):
            falsify(g, -np.ones(3), np.ones(3), obj, opts, starts=bad)
    res = falsify(g, -np.ones(3), np.ones(3), obj, opts, starts=np.zeros(3))  # one point
    assert res.values.shape == (2,)


def test_starts_outside_the_box_are_clipped_into_it() -> None:
    """A start outside the box (where the value is 30) must not stand as the best: it is
    clipped into the box first, and the value found is the box's maximum, 1 at -1."""
    b = GraphBuilder()
    x = b.input("x", 1)
    r1 = b.relu(b.linear(x, torch.tensor([[1.0]]), torch.tensor([-2.0])))
    r2 = b.relu(b.neg(x))
    b.output(b.linear(b.concat([r1, r2]), torch.tensor([[10.0, 1.0]]), torch.zeros(1)), "y")
    g = b.build()
    res = falsify(g, -np.ones(1), np.ones(1), linear_objectives([[1.0]], 1),
                  AttackOptions(restarts=2, steps=10, rounds=1, pool=0),
                  starts=np.array([[5.0]]))
    assert res.values.tolist() == [1.0]
    assert res.inputs.tolist() == [[-1.0]]


def test_the_ascent_phase_alone_climbs_to_an_interior_maximum() -> None:
    """``-sum |x - 0.3|`` on [-1, 1]^4 with the ascent phase only (no vertex or polish
    phase to make up for it): the gradient steps reach the interior maximum 0."""
    n = 4
    b = GraphBuilder()
    x = b.input("x", n)
    z = b.add_const(x, torch.full((n,), -0.3, dtype=torch.float64))
    b.output(b.linear(b.concat([b.relu(z), b.relu(b.neg(z))]), -torch.ones(1, 2 * n),
                      torch.zeros(1)), "y")
    g = b.build()
    res = falsify(g, -np.ones(n), np.ones(n), row_objectives([0], 1),
                  AttackOptions(restarts=3, steps=50, rounds=1, phases=("ascent",), pool=0))
    assert res.values[0] > -0.05


def test_each_objective_ascends_from_its_own_starts() -> None:
    """Two objectives on disjoint boxes, three restarts each, ascent only: each climbs
    in its own box to its own maximum (``x0 - 2 |x1 - 0.5|``: 1 and 4)."""
    b = GraphBuilder()
    x = b.input("x", 2)
    x1 = b.add_const(b.slice(x, 1, 2), torch.tensor([-0.5], dtype=torch.float64))
    ab = b.add(b.relu(x1), b.relu(b.neg(x1)))
    b.output(b.sub(b.slice(x, 0, 1), b.scale(ab, torch.tensor([2.0], dtype=torch.float64))),
             "y")
    g = b.build()
    lo = torch.tensor([[0.0, 0.0], [3.0, 0.4]], dtype=torch.float64)
    hi = torch.tensor([[1.0, 1.0], [4.0, 0.6]], dtype=torch.float64)
    res = falsify(g, lo, hi, row_objectives([0, 0], 1),
                  AttackOptions(restarts=3, steps=50, rounds=1, phases=("ascent",), pool=0))
    assert res.values.tolist() == pytest.approx([1.0, 4.0], rel=1e-9)


def test_values_belong_to_their_points_across_batches() -> None:
    """Ten objectives searched four at a time: every value returned is its objective at
    the point returned with it (re-evaluated here), in every chunk."""
    b = GraphBuilder()
    x = b.input("x", 3)
    w = torch.tensor(np.random.default_rng(0).normal(size=(10, 3)))
    b.output(b.linear(x, w, torch.zeros(10)), "y")
    g = b.build()
    res = falsify(g, -np.ones(3), np.ones(3),
                  linear_objectives(torch.eye(10, dtype=torch.float64), 10), AttackOptions(),
                  max_batch=4)
    want = (torch.as_tensor(res.inputs) @ w.T).diagonal()
    np.testing.assert_allclose(np.asarray(res.values), want.numpy(), rtol=0, atol=1e-12)
