"""Branch-and-bound on ``pwl`` nodes: one split per domain, at a kink."""

from __future__ import annotations

import numpy as np
import torch

from gridverify.bab import BabOptions, bab_maximize
from gridverify.bab.points import kink_points
from gridverify.ir import GraphBuilder


def test_kink_points_pick_the_middle_kink_inside():
    kinks = torch.tensor([[-2.0, -1.0, 0.0, 1.0, 2.0]], dtype=torch.float64)
    w = torch.tensor([[1.0, 1.0, 0.0, 1.0, 1.0]], dtype=torch.float64)
    l = torch.tensor([[-3.0], [-1.5], [0.5], [-1.0], [-0.5]], dtype=torch.float64)
    u = torch.tensor([[3.0], [1.5], [0.9], [2.0], [0.5]], dtype=torch.float64)
    p = kink_points(kinks, w, l, u)
    # [-3, 3]: kinks -2, -1, 1, 2 (0 has no weight) -> the 2nd; [-1.5, 1.5]: -1, 1 -> -1;
    # [0.5, 0.9]: none -> l; [-1, 2]: only 1 strictly inside; [-0.5, 0.5]: none (0 is weightless)
    assert p[:, 0].tolist() == [-1.0, -1.0, 0.5, 1.0, -0.5]


def _kinked_graph():
    rng = np.random.default_rng(4)
    b = GraphBuilder()
    x = b.input("x", 1)
    h = b.linear(x, np.array([[1.0], [-0.7]]), np.array([0.1, 0.2]))
    p = b.pwl(h, np.sort(rng.normal(size=(2, 3)), -1), rng.normal(size=(2, 3)) * 2,
              np.array([0.3, -0.2]), None)
    b.output(b.linear(p, np.array([[1.0, 1.0]]), None), "y")
    return b.build()


def test_neuron_branching_on_kinks_closes_the_gap():
    g = _kinked_graph()
    lo, hi = np.array([-2.0]), np.array([2.0])
    xs = torch.linspace(-2, 2, 400001, dtype=torch.float64)[:, None]
    true = float(g.evaluate_flat(xs).max())
    for branching in ("babsr", "widest", "bbps"):
        res = bab_maximize(g, lo, hi, np.array([1.0]),
                           options=BabOptions(timeout=20.0, tolerance=1e-9,
                                              branching=branching))
        assert res.upper_bound >= true - 1e-12
        assert res.status == "certified" and res.reason == "gap", (branching, res)
        # each split removes kinks: 2 entries x 3 kinks end in a handful of domains
        assert res.domains_visited <= 40, res.domains_visited
