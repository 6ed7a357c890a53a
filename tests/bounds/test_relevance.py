"""Element-level relevance (``gridverify.bounds.relevance``): which entries reach a spec,
and an engine that spends CROWN rows on those entries only gives the same sound bounds."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from engine_graphs import acopf_small, sample_box

from gridverify.bounds import BoundOptions, Engine
from gridverify.bounds.relevance import relevant_entries
from gridverify.ir import GraphBuilder


def _spec_bounds(g, lo, hi, spec, relevant=None):
    boxes = {g.inputs[0]: (lo, hi)}
    eng = Engine(g, boxes, torch.float64, torch.device("cpu"), BoundOptions(),
                 relevant=relevant)
    with torch.no_grad():
        eng.compute_intermediate(use_crown=True)
        starts, m = eng.output_starts(spec)
        cl, cu, _ = eng.crown_spec(starts, m, eng.default_relax)
        il, iu = eng.output_interval(spec)
    return torch.maximum(cl, il), torch.minimum(cu, iu), eng


def _row_spec(g, rows):
    spec = torch.zeros(len(rows), g.output_size, dtype=torch.float64)
    for k, (r, s) in enumerate(rows):
        spec[k, r] = s
    return spec


def test_structurally_unreachable_entries_are_not_relevant():
    b = GraphBuilder()
    x = b.input("x", 3)
    h = b.relu(b.linear(x, np.eye(3), np.ones(3)))
    left = b.sin(b.gather(h, [0]))        # reads entry 0 only
    right = b.square(b.gather(h, [1, 2]))  # reads entries 1 and 2
    b.output(left, "left")
    b.output(right, "right")
    g = b.build()
    m = relevant_entries(g, _row_spec(g, [(0, 1.0)]))
    assert m[h].tolist() == [True, False, False]
    assert not bool(m[right].any()) and bool(m[left].all())
    m = relevant_entries(g, _row_spec(g, [(2, -1.0)]))
    assert m[h].tolist() == [False, False, True]
    assert m[right].tolist() == [False, True]


def test_relevant_rows_give_the_same_sound_bounds_on_the_acopf_like_graph():
    g = acopf_small(seed=4)
    gen = torch.Generator().manual_seed(1)
    c = torch.randn(2, 22, generator=gen, dtype=torch.float64)
    lo, hi = c - 0.3, c + 0.3
    n_proxy = g.nodes[g.outputs[0]].size
    # one balance row and one squared-flow row: few entries of the physics nodes matter
    spec = _row_spec(g, [(n_proxy + 1, 1.0), (g.output_size - 3, -1.0)])
    rel = relevant_entries(g, spec)
    used = sum(int(v.sum()) for v in rel.values())
    assert used < 0.6 * sum(v.numel() for v in rel.values())
    full_l, full_u, _ = _spec_bounds(g, lo, hi, spec)
    part_l, part_u, eng = _spec_bounds(g, lo, hi, spec, rel)
    # entries outside the map only ever get zero coefficients: same bounds
    torch.testing.assert_close(part_l, full_l, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(part_u, full_u, rtol=1e-9, atol=1e-9)
    xs = sample_box(lo, hi, 5000)
    for k in range(2):
        v = g.evaluate_flat(xs[k]) @ spec.T
        assert bool((v >= part_l[k] - 1e-9).all()) and bool((v <= part_u[k] + 1e-9).all())
        # every intermediate interval, relevant or not, still holds
        every = g.evaluate_all(xs[k])
        for n in g.nodes:
            nl, nu = eng.bounds[n.id]
            assert bool((every[n.id] >= nl[k] - 1e-9).all()), n.id
            assert bool((every[n.id] <= nu[k] + 1e-9).all()), n.id


def test_an_empty_map_is_still_sound():
    """An entry left out keeps its interval bounds: never unsound."""
    g = acopf_small(seed=5)
    lo = torch.full((1, 22), -0.2, dtype=torch.float64)
    hi = torch.full((1, 22), 0.3, dtype=torch.float64)
    spec = torch.eye(g.output_size, dtype=torch.float64)
    none = {n.id: torch.zeros(n.size, dtype=torch.bool) for n in g.nodes}
    l0, u0, _ = _spec_bounds(g, lo, hi, spec, none)
    v = g.evaluate_flat(sample_box(lo, hi, 5000)[0])
    assert bool((v >= l0[0] - 1e-9).all()) and bool((v <= u0[0] + 1e-9).all())


def test_linear_bounds_of_partially_relevant_nodes_are_sound():
    """Linear bounds asked for a node whose entries are only partly relevant (BBPS asks
    for every split node's): CROWN rows for the relevant entries, constant interval
    bounds for the others; every entry's pair holds on samples."""
    g = acopf_small(seed=6)
    gen = torch.Generator().manual_seed(2)
    c = torch.randn(2, 22, generator=gen, dtype=torch.float64)
    lo, hi = c - 0.25, c + 0.25
    n_proxy = g.nodes[g.outputs[0]].size
    spec = _row_spec(g, [(n_proxy + 2, 1.0)])
    rel = relevant_entries(g, spec)
    partial = [n.id for n in g.nodes
               if n.op not in ("input", "constant") and 0 < int(rel[n.id].sum()) < n.size]
    assert partial
    eng = Engine(g, {g.inputs[0]: (lo, hi)}, torch.float64, torch.device("cpu"),
                 BoundOptions(), relevant=rel)
    with torch.no_grad():
        eng.compute_intermediate(use_crown=True, linear_nodes=frozenset(partial))
    xs = sample_box(lo, hi, 4000)
    checked = 0
    for nid in partial:
        lb = eng.linear.get(nid)
        if lb is None:
            continue
        checked += 1
        for k in range(2):
            v = g.evaluate_all(xs[k])[nid]
            x = xs[k]
            low = x @ lb.lA[g.inputs[0]][k].T + lb.lbias[k]
            up = x @ lb.uA[g.inputs[0]][k].T + lb.ubias[k]
            assert bool((low <= v + 1e-9).all()) and bool((v <= up + 1e-9).all()), nid
            # irrelevant entries: zero coefficients, their interval bounds as biases
            other = ~rel[nid]
            assert float(lb.uA[g.inputs[0]][k][other].abs().sum()) == 0.0
            torch.testing.assert_close(lb.ubias[k][other], eng.bounds[nid][1][k][other])
    assert checked


def _two_parts(unread: str | None):
    """``W sin(A x)`` and ``exp(400 B x)``, whose bounds overflow to ``inf`` on the unit
    box, as one ``concat`` output or two outputs (``unread``); ``None``: the first
    part alone."""
    rng = np.random.default_rng(0)
    A, B, W = rng.normal(size=(4, 3)), rng.normal(size=(2, 3)), rng.normal(size=(2, 4))
    b = GraphBuilder()
    x = b.input("x", 3)
    a = b.linear(b.sin(b.linear(x, A)), W)
    if unread is None:
        b.output(a, "y")
    elif unread == "concat":
        b.output(b.concat([a, b.exp(b.linear(x, 400 * B))]), "y")
    else:
        b.output(a, "y")
        b.output(b.exp(b.linear(x, 400 * B)), "z")
    return b.build()


@pytest.mark.parametrize("method", ["crown", "alpha-crown"])
@pytest.mark.parametrize("unread", ["concat", "outputs"])
def test_parts_no_spec_row_reads_cost_nothing(method, unread, monkeypatch) -> None:
    """A spec that reads one part of a concatenation (one constraint of many), or one
    of several outputs, gets the bound of that part alone, even where another part
    is unbounded (its ``0 * inf`` would make the bound vacuous), and the other
    part's relaxation is never built."""
    from gridverify.bounds import compute_bounds
    from gridverify.bounds.crown import Engine as CrownEngine

    lo, hi = -torch.ones(1, 3, dtype=torch.float64), torch.ones(1, 3, dtype=torch.float64)
    spec = torch.tensor([[1.0, 0.0], [0.5, -2.0]], dtype=torch.float64)
    alone = compute_bounds(_two_parts(None), lo, hi, method=method, spec=spec)
    relaxed: list[str] = []
    back = CrownEngine._back_unary

    def spy(self, node, *args):
        relaxed.append(node.op)
        return back(self, node, *args)

    monkeypatch.setattr(CrownEngine, "_back_unary", spy)
    g = _two_parts(unread)
    wide = torch.cat([spec, torch.zeros(2, 2, dtype=torch.float64)], 1)
    both = compute_bounds(g, lo, hi, method=method, spec=wide)
    assert torch.isfinite(both.upper).all() and torch.isfinite(both.lower).all()
    assert torch.allclose(both.upper, alone.upper, rtol=0, atol=1e-12)
    assert torch.allclose(both.lower, alone.lower, rtol=0, atol=1e-12)
    assert relaxed and "exp" not in relaxed
    xs = sample_box(lo, hi, 20000)[0]
    val = g.evaluate_flat(xs)[:, :2] @ spec.T  # the unread part overflows
    assert bool((val <= both.upper + 1e-12).all() and (val >= both.lower - 1e-12).all())
