"""The ``pwl`` relaxation (float64): sound for random kinks, weights, intervals and alphas.

Same measure as the other unary relaxations
(:func:`gridverify.bounds.relaxations.checks.unary_violation`): dense grid,
random and refined samples; plus exactness of the interval, the chord on
convex functions and relu's relaxation for a single kink.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gridverify.bounds.relaxations import RelaxationError, pwl_entry, unary
from gridverify.bounds.relaxations.checks import unary_violation
from gridverify.ir.ops import pwl_forward

F64 = torch.float64
TOL = 4.0


def random_pwl(rng: np.random.Generator, n: int, k: int, scale: float = 2.0,
               convex: bool = False):  # noqa: ANN201
    br = np.sort(rng.normal(size=(n, k)) * scale, -1)
    if k > 1:  # some repeated kinks and kinks of zero weight
        br[0, 1] = br[0, 0]
    wt = rng.normal(size=(n, k)) * rng.choice([0.1, 1.0, 10.0], size=(n, 1))
    if convex:
        wt = np.abs(wt)
    wt[1 % n, 0] = 0.0
    sl = rng.normal(size=n) * 2
    bi = rng.normal(size=n) * 3
    return tuple(torch.tensor(a, dtype=F64) for a in (br, wt, sl, bi))


def intervals(rng: np.random.Generator, br: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per entry: a random interval of one of several kinds (wide, tiny, at a kink...)."""
    n = br.shape[0]
    kind = rng.integers(0, 6, size=n)
    c = rng.normal(size=n) * 3
    w = np.where(kind == 0, 1e-9, np.where(kind == 1, 0.0, rng.exponential(2.0, size=n)))
    w = np.where(kind == 2, 50.0, w)
    lo, hi = c - w / 2, c + w / 2
    at = br[:, 0].numpy()
    lo = np.where(kind == 3, at, lo)  # starts exactly at a kink
    hi = np.where(kind == 3, at + rng.exponential(1.0, size=n), hi)
    hi = np.where(kind == 4, br[:, -1].numpy(), hi)  # ends exactly at a kink
    lo = np.where(kind == 4, np.minimum(hi, lo), lo)
    return torch.tensor(lo, dtype=F64), torch.tensor(hi, dtype=F64)


def alphas(rng: np.random.Generator, l: torch.Tensor) -> list[torch.Tensor | None]:
    shape = (2, *l.shape)
    return [None, torch.zeros(shape, dtype=F64), torch.ones(shape, dtype=F64),
            torch.tensor(rng.random(shape), dtype=F64)]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**31 - 1), k=st.integers(1, 12), convex=st.booleans())
def test_pwl_relaxation_sound_random(seed: int, k: int, convex: bool) -> None:
    rng = np.random.default_rng(seed)
    params = random_pwl(rng, 24, k, scale=float(rng.choice([0.01, 1.0, 30.0])), convex=convex)
    entry = pwl_entry(*params)
    l, u = intervals(rng, params[0])
    for alpha in alphas(rng, l):
        v = unary_violation(entry, l, u, alpha, n=600, seed=seed % 1000)
        assert v.worst() <= TOL, (v, seed, k)


def test_pwl_float32_inputs_sound() -> None:
    rng = np.random.default_rng(3)
    params = random_pwl(rng, 30, 6)
    entry = pwl_entry(*params)
    l, u = intervals(rng, params[0])
    for alpha in alphas(rng, l):
        al = None if alpha is None else alpha.float()
        v = unary_violation(entry, l.float(), u.float(), al, n=600)
        assert v.worst() <= TOL, v
        r = entry.relax(l.float(), u.float(), al)
        assert all(t.dtype == torch.float32 for t in r)


def test_pwl_interval_is_exact() -> None:
    rng = np.random.default_rng(1)
    params = random_pwl(rng, 40, 7)
    entry = pwl_entry(*params)
    l, u = intervals(rng, params[0])
    lo, hi = entry.interval(l, u)
    # the true range: dense samples plus the kinks inside
    t = torch.linspace(0, 1, 20001, dtype=F64)[:, None]
    xs = torch.cat([l + (u - l) * t, torch.maximum(torch.minimum(params[0].T, u), l)])
    fx = pwl_forward(xs, *params)
    tol = 1e-12 * (1 + fx.abs().amax(0))
    assert bool((lo <= fx.amin(0) + 1e-14).all() and (hi >= fx.amax(0) - 1e-14).all())
    assert bool(((fx.amin(0) - lo) <= tol).all()), "interval not tight at the minimum"
    assert bool(((hi - fx.amax(0)) <= tol).all()), "interval not tight at the maximum"


def test_single_kink_is_relu() -> None:
    n = 64
    l = torch.linspace(-3, 1, n, dtype=F64)
    u = l + torch.linspace(0.0, 4.0, n, dtype=F64)
    entry = pwl_entry(torch.zeros(n, 1, dtype=F64), torch.ones(n, 1, dtype=F64),
                      torch.zeros(n, dtype=F64), torch.zeros(n, dtype=F64))
    mine, ref = entry.relax(l, u, None), unary("relu").relax(l, u, None)
    for a, b in zip(mine, ref):
        assert torch.allclose(a, b, atol=1e-12, rtol=1e-12)
    lo, hi = entry.interval(l, u)
    assert torch.allclose(lo, torch.relu(l), atol=1e-15) and torch.allclose(hi, torch.relu(u))


def test_convex_pwl_upper_line_is_the_chord_and_lower_touches() -> None:
    rng = np.random.default_rng(5)
    params = random_pwl(rng, 20, 5, convex=True)
    entry = pwl_entry(*params)
    l = torch.tensor(rng.normal(size=20) * 2 - 2, dtype=F64)
    u = l + 4.0
    r = entry.relax(l, u, None)
    f = lambda x: pwl_forward(x, *params)  # noqa: E731
    chord = (f(u) - f(l)) / (u - l)
    assert torch.allclose(r.uw, chord, atol=1e-12)
    assert torch.allclose(r.uw * l + r.ub, f(l), atol=1e-10)
    # the default lower line is a supporting line at the midpoint
    mid = (l + u) / 2
    assert torch.allclose(r.lw * mid + r.lb, f(mid), atol=1e-10)


def test_alpha_default_round_trip_and_range() -> None:
    rng = np.random.default_rng(7)
    params = random_pwl(rng, 25, 6)
    entry = pwl_entry(*params)
    l, u = intervals(rng, params[0])
    a = entry.init_alpha(l, u)
    assert a.shape == (2, 25) and bool(((a >= 0) & (a <= 1)).all())
    r0, r1 = entry.relax(l, u, None), entry.relax(l, u, a)
    for x, y in zip(r0, r1):
        assert torch.allclose(x, y, atol=1e-9, rtol=1e-9)


def test_infinite_ends_no_nan_and_sound() -> None:
    br = torch.tensor([[-1.0, 1.0]] * 4, dtype=F64)
    wt = torch.tensor([[1.0, -1.0]] * 4, dtype=F64)  # clamp-like: constant outside
    entry = pwl_entry(br, wt, torch.zeros(4, dtype=F64), torch.zeros(4, dtype=F64))
    inf = float("inf")
    l = torch.tensor([-inf, -inf, 0.0, -2.0], dtype=F64)
    u = torch.tensor([inf, 0.0, inf, 3.0], dtype=F64)
    lo, hi = entry.interval(l, u)
    assert torch.allclose(lo, torch.tensor([0.0, 0.0, 1.0, 0.0], dtype=F64), atol=1e-14)
    assert torch.allclose(hi, torch.tensor([2.0, 1.0, 2.0, 2.0], dtype=F64), atol=1e-14)
    r = entry.relax(l, u, None)
    assert not any(bool(torch.isnan(t).any()) for t in r)
    # a function with slope 1 at the left: the lower end is -inf
    e2 = pwl_entry(br, wt, torch.ones(4, dtype=F64), torch.zeros(4, dtype=F64))
    lo2, _ = e2.interval(l, u)
    assert lo2[0] == -inf and lo2[1] == -inf
    assert not any(bool(torch.isnan(t).any()) for t in e2.relax(l, u, None))


def test_unary_pwl_needs_attributes() -> None:
    with pytest.raises(RelaxationError, match="pwl_entry"):
        unary("pwl")


@pytest.mark.parametrize("seed", range(6))
def test_infinite_ends_lines_hold_out_there(seed: int) -> None:
    """Random kinks (functions that grow, fall or level off beyond them) on intervals
    with an infinite end, default and random alphas (0 gives flat lines on a stretch
    where slope 0 lies between the outer slopes): every line holds at points far out."""
    import math

    rng = np.random.default_rng(seed)
    params = random_pwl(rng, 6, 3)
    entry = pwl_entry(*params)
    inf = math.inf
    l = torch.tensor([-inf, -inf, 0.0, -inf, 5.0, -2.0], dtype=F64)
    u = torch.tensor([inf, 0.0, inf, -4.0, inf, inf], dtype=F64)
    for alpha in (None, torch.zeros(2, 6, dtype=F64), torch.ones(2, 6, dtype=F64),
                  torch.tensor(rng.random((2, 6)), dtype=F64)):
        assert unary_violation(entry, l, u, alpha).worst() <= TOL, alpha
    # the kink beyond which relu(x - 5) grows: no flat line may stand above it
    relu5 = pwl_entry(torch.tensor([[5.0]], dtype=F64), torch.tensor([[1.0]], dtype=F64),
                      torch.zeros(1, dtype=F64), torch.zeros(1, dtype=F64))
    for alpha in (None, torch.zeros(2, 1, dtype=F64)):
        r = relu5.relax(torch.zeros(1, dtype=F64), torch.full((1,), inf, dtype=F64), alpha)
        assert float(r.ub[0]) == inf


def test_no_kinks_is_an_affine_function() -> None:
    """A ``pwl`` with no kinks (``K = 0``): ``b + s x``, bounded exactly by IBP and
    CROWN alike."""
    from gridverify.bounds import compute_bounds
    from gridverify.ir import GraphBuilder

    b = GraphBuilder()
    x = b.input("x", 2)
    b.output(b.pwl(x, np.zeros((2, 0)), np.zeros((2, 0)), slope=2.0, bias=1.0), "y")
    g = b.build()
    for method in ("ibp", "crown", "alpha-crown"):
        r = compute_bounds(g, np.array([1.0, -2.0]), np.array([3.0, 0.0]), method=method)
        np.testing.assert_allclose(r.lower.reshape(-1).numpy(), [3.0, -3.0], atol=1e-9)
        np.testing.assert_allclose(r.upper.reshape(-1).numpy(), [7.0, 1.0], atol=1e-9)
    entry = pwl_entry(torch.zeros(2, 0, dtype=F64), torch.zeros(2, 0, dtype=F64),
                      torch.full((2,), 2.0, dtype=F64), torch.ones(2, dtype=F64))
    l, u = torch.tensor([1.0, -2.0], dtype=F64), torch.tensor([3.0, 0.0], dtype=F64)
    for alpha in (None, torch.full((2, 2), 0.3, dtype=F64)):
        r = entry.relax(l, u, alpha)
        np.testing.assert_allclose(r.lw.numpy(), [2.0, 2.0])
        np.testing.assert_allclose(r.uw.numpy(), [2.0, 2.0])
        assert unary_violation(entry, l, u, alpha).worst() <= TOL
