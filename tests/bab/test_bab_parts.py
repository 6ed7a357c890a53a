"""Branch-and-bound parts: domain store, branching points and tables, branching, children."""

from __future__ import annotations

import math

import h5py
import numpy as np
import pytest
import torch

from gridverify.bab.bounding import Bounder
from gridverify.bab.branching import INPUT, NEURON, choose, neuron_points, neuron_scores
from gridverify.bab.build_points import build_tables, looseness, write_tables
from gridverify.bab.domains import DomainStore
from gridverify.bab.points import (
    POINTS_FILE,
    POINTS_VERSION,
    PointsFileError,
    PointsUnavailableError,
    load_tables,
    split_points,
)
from gridverify.bab.search import _children
from gridverify.ir import GraphBuilder


def _rows(n, n_in=2, n_flat=3, ub=None):
    ub = torch.arange(n, dtype=torch.float64) if ub is None else ub
    return dict(lo=torch.zeros(n, n_in), hi=torch.ones(n, n_in), ilo=torch.zeros(n, n_flat),
                ihi=torch.ones(n, n_flat), ub=ub, kind=torch.zeros(n, dtype=torch.int64),
                index=torch.zeros(n, dtype=torch.int64), point=torch.zeros(n))


def test_store_pops_best_first_and_prunes():
    st = DomainStore(2, 3, memory_mb=1.0)
    st.push(**_rows(5))
    st.push(**_rows(3, ub=torch.tensor([10.0, -1.0, 2.5])))
    assert len(st) == 8 and st.max_upper() == 10.0
    top = st.pop(3)
    assert sorted(top["ub"].tolist(), reverse=True) == [10.0, 4.0, 3.0]
    n, worst = st.prune(1.0)
    assert n == 3 and worst == 1.0  # -1, 0, 1 pruned
    assert len(st) == 2 and st.max_upper() == 2.5
    assert st.nbytes == 2 * st.row_bytes


def test_store_memory_cap_remembers_refused_bounds():
    st = DomainStore(2, 3, memory_mb=1e-9)
    assert st.capacity == 1
    kept = st.push(**_rows(4, ub=torch.tensor([1.0, 7.0, 3.0, 5.0])))
    assert kept == 1 and st.full and st.refused == 3
    assert st.max_upper() == 7.0  # the best one is kept
    assert st.lost_upper == 5.0
    with pytest.raises(IndexError):
        DomainStore(1, 1, 1.0).pop(1)


def test_split_points_relu_midpoint_table():
    l = torch.tensor([-1.0, -3.0, 0.5, -2.0], dtype=torch.float64)
    u = torch.tensor([2.0, 1.0, 1.5, -1.0], dtype=torch.float64)
    assert split_points("relu", l, u, None)[:2].tolist() == [0.0, 0.0]
    assert split_points("sin", l, u, None).tolist() == ((l + u) / 2).tolist()
    tabs = load_tables()
    for op in ("sin", "cos", "tanh", "sigmoid"):
        p = split_points(op, l, u, tabs)
        assert torch.all((p > l) & (p < u))


def test_shipped_table_file_has_version_and_grid():
    with h5py.File(POINTS_FILE, "r") as f:
        assert int(f.attrs["version"]) == POINTS_VERSION
        for op in ("sin", "cos", "tanh", "sigmoid"):
            a = f[op].attrs
            assert {"l_min", "l_max", "w_min", "w_max", "period"} <= set(a)
            r = np.asarray(f[op]["ratio"])
            assert r.ndim == 2 and np.all((r > 0) & (r < 1))


@pytest.mark.parametrize("op", ["sin", "tanh", "sigmoid", "cos"])
def test_table_points_never_looser_than_midpoint_on_grid(op):
    tab = load_tables()[op]
    rng = np.random.default_rng(0)
    i = rng.integers(0, tab.n_l, 200)
    j = rng.integers(0, tab.n_w, 200)
    l = torch.tensor(tab.l_min + (tab.l_max - tab.l_min) * i / (tab.n_l - 1))
    w = torch.exp(torch.tensor(math.log(tab.w_min) + (math.log(tab.w_max) - math.log(tab.w_min))
                               * j / (tab.n_w - 1)))
    u = l + w
    p = tab.lookup(l, u)
    m = (l + u) / 2
    lt = looseness(op, l, p) + looseness(op, p, u)
    lm = looseness(op, l, m) + looseness(op, m, u)
    assert torch.all(lt <= lm * (1 + 1e-9) + 1e-15)
    assert bool((lt < lm * (1 - 1e-3)).any()), "the table should beat the midpoint somewhere"
    # periodic lookup: shifting by the period gives the same ratio
    if tab.period:
        p2 = tab.lookup(l + tab.period, u + tab.period)
        assert torch.allclose(p2 - tab.period, p, atol=1e-9)


def test_points_file_errors(tmp_path):
    with pytest.raises(PointsFileError, match="not found"):
        load_tables(tmp_path / "none.h5")
    bad = tmp_path / "bad.h5"
    with h5py.File(bad, "w") as f:
        f.attrs["version"] = POINTS_VERSION + 1
    with pytest.raises(PointsFileError, match="version"):
        load_tables(bad)
    ok = write_tables(build_tables(n_l=5, n_w=4, n_r=7, ops=("tanh",)), tmp_path / "t.h5")
    tabs = load_tables(ok)
    assert set(tabs) == {"tanh"} and tabs["tanh"].ratio.shape == (5, 4)


def test_points_unavailable_is_typed(tmp_path):
    """A missing or unreadable table (certify falls back to midpoints) has its own type;
    a table of another version does not."""
    with pytest.raises(PointsUnavailableError):
        load_tables(tmp_path / "none.h5")
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not hdf5")
    with pytest.raises(PointsUnavailableError, match="malformed"):
        load_tables(junk)
    bad = tmp_path / "bad.h5"
    with h5py.File(bad, "w") as f:
        f.attrs["version"] = POINTS_VERSION + 1
    with pytest.raises(PointsFileError) as info:
        load_tables(bad)
    assert not isinstance(info.value, PointsUnavailableError)


def _graph():
    b = GraphBuilder()
    x = b.input("x", 2)
    h = b.linear(x, np.array([[1.0, -1.0], [0.5, 2.0], [1.0, 1.0]]), np.array([0.1, -0.2, 0.0]))
    r = b.relu(h)
    s = b.sin(b.linear(x, np.array([[2.0, 1.0]]), None))
    t = b.mul(b.gather(r, np.array([0])), s)
    b.output(b.concat([b.linear(r, np.array([[1.0, -2.0, 1.0]]), None), t]), "y")
    return b.build()


def test_bounder_split_nodes_and_children():
    g = _graph()
    spec = torch.tensor([[1.0, 1.0]], dtype=torch.float64)
    bd = Bounder(g, spec, torch.device("cpu"))
    ops = {g.nodes[i].op for i in bd.split_nodes}
    assert "linear" in ops and "gather" in ops  # relu/sin inputs, product operands
    lo, hi = -torch.ones(1, 2, dtype=torch.float64), torch.ones(1, 2, dtype=torch.float64)
    db = bd.bound(lo, hi, None, None, want_lin=True)
    assert db.ilo.shape == (1, bd.n_flat) and db.input_coef.shape == (1, 2)
    assert set(db.lin) == set(bd.split_nodes)
    for h in ("bbps", "babsr", "widest"):
        d = choose(bd, db, lo, hi, h, None)
        assert int(d.kind[0]) == NEURON
        k = int(d.index[0])
        assert float(db.ilo[0, k]) < float(d.point[0]) < float(db.ihi[0, k])
        par = dict(lo=lo, hi=hi, ilo=db.ilo, ihi=db.ihi, ub=db.upper, kind=d.kind,
                   index=d.index, point=d.point)
        ch = _children(par)
        assert float(ch["ihi"][0, k]) == float(d.point[0]) == float(ch["ilo"][1, k])
        cb = bd.bound(ch["lo"], ch["hi"], ch["ilo"], ch["ihi"])
        # a child's computed intervals stay inside the fixed ones
        assert torch.all(cb.ilo >= ch["ilo"] - 1e-12) and torch.all(cb.ihi <= ch["ihi"] + 1e-12)
    d = choose(bd, db, lo, hi, "input", None)
    assert int(d.kind[0]) == INPUT and float(d.point[0]) == 0.0
    ch = _children(dict(lo=lo, hi=hi, ilo=db.ilo, ihi=db.ihi, ub=db.upper, kind=d.kind,
                        index=d.index, point=d.point))
    k = int(d.index[0])
    assert float(ch["hi"][0, k]) == 0.0 == float(ch["lo"][1, k])


def test_relu_points_and_stable_neurons_not_split():
    g = _graph()
    bd = Bounder(g, torch.tensor([[1.0, 0.0]], dtype=torch.float64), torch.device("cpu"))
    lo = torch.tensor([[0.5, -0.1]], dtype=torch.float64)
    hi = torch.tensor([[0.6, 0.1]], dtype=torch.float64)
    db = bd.bound(lo, hi, None, None, want_lin=True)
    pts = neuron_points(bd, db.ilo, db.ihi, None)
    sc = neuron_scores(bd, db, pts, "bbps")
    first = bd.offsets[bd.split_nodes[0]]
    l, u = db.ilo[0, first:first + 3], db.ihi[0, first:first + 3]
    stable = (l >= 0) | (u <= 0)
    assert torch.all(torch.isinf(sc[0, first:first + 3][stable]))


def test_auto_branching_by_input_dimension():
    from gridverify.bab.branching import resolve_branching

    assert resolve_branching("auto", 22, 32, 100) == "input"
    assert resolve_branching("auto", 84, 32, 100) == "babsr"
    assert resolve_branching("auto", 84, 32, 0) == "input"
    # a network stable over the region branches on inputs, an unstable one on neurons
    assert resolve_branching("auto", 84, 32, 100, (0, 256)) == "input"
    assert resolve_branching("auto", 84, 32, 100, (12, 256)) == "input"
    assert resolve_branching("auto", 84, 32, 100, (23, 256)) == "babsr"
    assert resolve_branching("auto", 84, 32, 100, (0, 0)) == "babsr"  # no relu at all
    assert resolve_branching("bbps", 2, 32, 100) == "bbps"
    # few inputs (a factor region's): inputs, whatever the relus
    assert resolve_branching("auto", 1, 32, 100, (256, 256), always_dim=12) == "input"
    assert resolve_branching("auto", 12, 32, 100, (256, 256), always_dim=12) == "input"
    assert resolve_branching("auto", 13, 32, 100, (256, 256), always_dim=12) == "babsr"
    assert resolve_branching("bbps", 1, 32, 100, always_dim=12) == "bbps"
    # optimization mode, unstable relus, few inputs: several rows (or not known) split
    # inputs, one row the neurons its bound depends on; a stable network inputs
    unstable, stable = (100, 128), (0, 128)
    assert resolve_branching("auto", 22, 32, 100, unstable, decision=False) == "input"
    assert resolve_branching("auto", 22, 32, 100, unstable, decision=False, rows=28) == "input"
    assert resolve_branching("auto", 22, 32, 100, unstable, decision=False, rows=1) == "babsr"
    assert resolve_branching("auto", 22, 32, 100, stable, decision=False, rows=1) == "input"
    assert resolve_branching("auto", 22, 32, 100, unstable, rows=28) == "babsr"  # decision


def test_affine_split_halfspaces_keep_every_point_of_the_domain():
    """The split constraints of a node affine in the inputs, as halfspaces, clip the box
    without losing a point that satisfies them; a contradictory split empties it."""
    from gridverify.bab.search import _clip_splits
    from gridverify.bounds.domains import DomainBounds

    rng = np.random.default_rng(0)
    b = GraphBuilder()
    x = b.input("x", 3)
    z = b.linear(x, rng.normal(size=(4, 3)), rng.normal(size=4), name="fc0")
    h = b.relu(z)
    b.output(b.linear(h, rng.normal(size=(1, 4)), None), "y")
    g = b.build()
    bounder = Bounder(g, torch.eye(1, dtype=torch.float64), torch.device("cpu"))
    assert list(bounder.affine) == [z]
    A, c = bounder.affine[z].a, bounder.affine[z].b
    lo, hi = -torch.ones(2, 3, dtype=torch.float64), torch.ones(2, 3, dtype=torch.float64)
    xs = lo[0] + (hi[0] - lo[0]) * torch.rand(50_000, 3, dtype=torch.float64)
    vals = g.evaluate_all(xs)[z]
    assert torch.allclose(xs @ A.T + c, vals, atol=1e-12)
    F = bounder.n_flat
    ilo = torch.full((2, F), -torch.inf, dtype=torch.float64)
    ihi = torch.full((2, F), torch.inf, dtype=torch.float64)
    off = bounder.offsets[z]
    p = float(vals[:, 0].quantile(0.8))
    ilo[0, off] = p  # domain 0: z_0 >= its 80 % quantile
    ihi[1, off] = float(vals[:, 0].min()) - 1.0  # domain 1: below its minimum
    db = DomainBounds(torch.zeros(2, 1), torch.zeros(2), torch.zeros(2, dtype=torch.bool),
                      ilo, ihi, None, None)
    clo, chi, empty = _clip_splits(bounder, db, lo, hi)
    assert not bool(empty[0]) and bool(empty[1])
    inside = xs[vals[:, 0] >= p]
    assert bool((inside >= clo[0]).all()) and bool((inside <= chi[0]).all())
    assert float((chi[0] - clo[0]).prod()) < 8.0  # the box did shrink


def test_affine_maps_with_a_large_offset_keep_the_split_points():
    """``u = -0.001 x + 1e6`` on ``x`` near 1e9: the map read off the graph carries
    rounding of about eps * 1e6 per weight, 5e-8 relative; the halfspace of the
    split ``u >= 0`` must still keep ``x = 999999980`` (where ``u = 0.02``), and a
    search must not certify ``relu(u0) - 2 relu(u1) <= 0.01`` (its value there is
    0.02)."""
    from gridverify.bab import BabOptions, bab_maximize
    from gridverify.bab.search import _clip_splits
    from gridverify.bounds.domains import DomainBounds

    b = GraphBuilder()
    x = b.input("x", 1)
    u = b.linear(x, np.array([[-1e-3], [-1e-3]]), np.array([1e6, 1e6 - 0.02]))
    b.output(b.linear(b.relu(u), np.array([[1.0, -2.0]]), None), "y")
    g = b.build()
    lo = torch.tensor([[0.999e9]], dtype=torch.float64)
    hi = torch.tensor([[1.001e9]], dtype=torch.float64)
    bounder = Bounder(g, torch.eye(1, dtype=torch.float64), torch.device("cpu"))
    ilo = torch.tensor([[0.0, -torch.inf]], dtype=torch.float64)
    ihi = torch.full((1, 2), torch.inf, dtype=torch.float64)
    db = DomainBounds(torch.zeros(1, 1), torch.zeros(1), torch.zeros(1, dtype=torch.bool),
                      ilo, ihi, None, None)
    clo, chi, empty = _clip_splits(bounder, db, lo, hi)
    xp = 999999980.0
    assert not bool(empty[0]) and float(clo[0, 0]) <= xp <= float(chi[0, 0])
    assert float(g.evaluate_flat(torch.tensor([[xp]], dtype=torch.float64))) > 0.0199
    for branching in ("babsr", "widest"):
        r = bab_maximize(g, lo[0].numpy(), hi[0].numpy(), np.array([1.0]), threshold=0.01,
                         options=BabOptions(timeout=2, branching=branching, attack_every=0,
                                            attack_restarts=1, attack_steps=1,
                                            root_alpha_iterations=0, points="midpoint"))
        assert r.status != "certified" and r.upper_bound >= 0.0199, (branching, r)


def _relu_mlp(seed: int = 0):
    gen = np.random.default_rng(seed)
    b = GraphBuilder()
    x = b.input("x", 4)
    h = b.relu(b.linear(x, gen.normal(size=(16, 4)), gen.normal(size=16)))
    h = b.relu(b.linear(h, gen.normal(size=(16, 16)) / 4, gen.normal(size=16)))
    b.output(b.linear(h, gen.normal(size=(2, 16)), None), "y")
    return b.build()


def test_warm_alphas_travel_from_parent_to_children():
    """The flat warm state carries the parent's optimized alphas (after the split
    multipliers): a domain bounded from them starts where its parent ended,
    tighter than from the default alphas, and still above every sampled point;
    the "no warm" state reproduces the default start exactly."""
    g = _relu_mlp()
    spec = torch.tensor([[1.0, -1.0]], dtype=torch.float64)
    bd = Bounder(g, spec, torch.device("cpu"))
    assert bd.warm_width > 4 * bd.n_flat  # relus have alphas
    lo, hi = -torch.ones(1, 4, dtype=torch.float64), torch.ones(1, 4, dtype=torch.float64)
    root = bd.bound(lo, hi, None, None, method="alpha-crown", alpha_iterations=40)
    w = bd.flat_warm(root)
    assert w.shape == (1, bd.warm_width)
    alphas = w[:, 4 * bd.n_flat:]
    assert bool(((alphas >= 0) & (alphas <= 1)).all())
    cold = bd.bound(lo, hi, root.ilo, root.ihi, beta_iterations=1)
    none = bd.bound(lo, hi, root.ilo, root.ihi, beta_iterations=1, warm=bd.no_warm(1))
    hot = bd.bound(lo, hi, root.ilo, root.ihi, beta_iterations=1, warm=w)
    assert abs(float(none.upper[0]) - float(cold.upper[0])) < 1e-12
    assert float(hot.upper[0]) < float(cold.upper[0]) - 1e-3
    xs = lo + (hi - lo) * torch.rand(50_000, 4, generator=torch.Generator().manual_seed(0),
                                     dtype=torch.float64)
    top = float((g.evaluate_flat(xs) @ spec.T).max())
    assert float(hot.upper[0]) >= top - 1e-9
    # children (two copies of the parent's state) read it the same way
    ch = _children(dict(lo=lo, hi=hi, ilo=root.ilo, ihi=root.ihi, ub=root.upper,
                        kind=torch.tensor([INPUT]), index=torch.tensor([0]),
                        point=torch.tensor([0.0], dtype=torch.float64), warm=w))
    assert ch["warm"].shape == (2, bd.warm_width)
