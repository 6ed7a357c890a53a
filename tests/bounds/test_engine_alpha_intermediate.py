"""Alpha-optimized intermediate bounds (``BoundOptions(intermediate="alpha-crown")``):
sound on random all-op graphs and the ACOPF-like graph (10,000 samples and the
PGD extremes per domain), never looser than CROWN intermediate bounds on the
intermediate nodes, and tighter on the outputs of the ACOPF-like graph."""

from __future__ import annotations

import pytest
import torch
from engine_graphs import acopf_small, pgd_extremes, random_graph, sample_box

from gridverify.bounds import BoundOptions, BoundOptionsError, compute_bounds

ALPHA_INTERM = BoundOptions(alpha_iterations=10, alpha_lr=0.2, intermediate="alpha-crown",
                            keep_intermediate=True)
CROWN_INTERM = BoundOptions(alpha_iterations=10, alpha_lr=0.2, keep_intermediate=True)


def _box(n_in: int, batch: int, radius: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    c = torch.randn(batch, n_in, generator=gen, dtype=torch.float64)
    return c - radius, c + radius


def _contains(lower: torch.Tensor, upper: torch.Tensor, vals: torch.Tensor) -> None:
    slack = 1e-9 * (1 + vals.abs())
    assert bool((lower.unsqueeze(1) <= vals + slack).all()), float(
        (lower.unsqueeze(1) - vals).max())
    assert bool((upper.unsqueeze(1) >= vals - slack).all()), float(
        (vals - upper.unsqueeze(1)).max())


@pytest.mark.parametrize("seed", range(4))
def test_random_graphs_sound_with_alpha_intermediate(seed: int) -> None:
    g = random_graph(seed + 20, depth=4)
    lo, hi = _box(g.input_size, 2, [0.1, 0.5, 1.5, 0.3][seed], seed)
    xs = sample_box(lo, hi, 10_000)
    vals = torch.stack([g.evaluate_flat(xs[k]) for k in range(2)])
    mn, mx = pgd_extremes(g, lo, hi, steps=25, restarts=2)
    vals = torch.cat([vals, mn.unsqueeze(1), mx.unsqueeze(1)], 1)
    for method in ("crown", "alpha-crown"):
        r = compute_bounds(g, lo, hi, method=method, options=ALPHA_INTERM)
        _contains(r.lower, r.upper, vals)
    # every kept intermediate interval contains the sampled node values too
    r = compute_bounds(g, lo, hi, method="alpha-crown", options=ALPHA_INTERM)
    for k in range(2):
        every = g.evaluate_all(xs[k])
        for nid, (nl, nu) in r.interm.items():
            v = every[nid]
            slack = 1e-9 * (1 + v.abs())
            assert bool((nl[k] <= v + slack).all()) and bool((nu[k] >= v - slack).all()), nid


def test_acopf_like_alpha_intermediate_tighter_and_sound() -> None:
    g = acopf_small(seed=3)
    lo, hi = _box(22, 2, 0.3, 5)
    xs = sample_box(lo, hi, 10_000)
    vals = torch.stack([g.evaluate_flat(xs[k]) for k in range(2)])
    mn, mx = pgd_extremes(g, lo, hi, steps=25, restarts=2)
    vals = torch.cat([vals, mn.unsqueeze(1), mx.unsqueeze(1)], 1)
    a = compute_bounds(g, lo, hi, method="alpha-crown", options=ALPHA_INTERM)
    c = compute_bounds(g, lo, hi, method="alpha-crown", options=CROWN_INTERM)
    _contains(a.lower, a.upper, vals)
    # intermediate intervals: tighter overall (not entry by entry: CROWN's default
    # relaxations are not monotone in their input intervals, so an entry
    # downstream of tighter intervals can come out slightly looser)
    tighter = looser = total = 0
    sum_a = sum_c = 0.0
    for nid, (cl, cu) in c.interm.items():
        al, au = a.interm[nid]
        tighter += int(((au - al) < (cu - cl) - 1e-9).sum())
        looser += int(((au - al) > (cu - cl) + 1e-9).sum())
        total += cl.numel()
        sum_a += float((au - al).sum())
        sum_c += float((cu - cl).sum())
    assert looser <= 0.05 * total
    assert sum_a < sum_c
    assert tighter > 0
    wa, wc = a.upper - a.lower, c.upper - c.lower
    assert float(wa.sum()) < float(wc.sum())


def test_intermediate_option_validated() -> None:
    with pytest.raises(BoundOptionsError, match="intermediate"):
        BoundOptions(intermediate="beta")


def test_a_passed_deadline_stops_every_optimization_after_one_iteration() -> None:
    """``deadline`` (certify's time budget): past it the intermediate nodes keep CROWN's
    bounds and the output's optimization stops after the iteration it is in; the bounds
    are sound, and no tighter than the full optimization's."""
    g = acopf_small(seed=3)
    lo, hi = _box(22, 2, 0.3, 5)
    xs = sample_box(lo, hi, 5_000)
    vals = torch.stack([g.evaluate_flat(xs[k]) for k in range(2)])
    opts = BoundOptions(alpha_iterations=10, alpha_lr=0.2, intermediate="alpha-crown")
    cut = compute_bounds(g, lo, hi, method="alpha-crown", options=opts, deadline=0.0)
    one = compute_bounds(g, lo, hi, method="alpha-crown",
                         options=BoundOptions(alpha_iterations=1, alpha_lr=0.2))
    full = compute_bounds(g, lo, hi, method="alpha-crown", options=opts)
    assert torch.equal(cut.upper, one.upper) and torch.equal(cut.lower, one.lower)
    assert not torch.equal(cut.upper, full.upper)  # the full run did go on
    assert bool((full.upper <= cut.upper + 1e-9).all())
    _contains(cut.lower, cut.upper, vals)
