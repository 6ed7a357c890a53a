"""Soundness of every unary relaxation (float64), property-tested against the true function.

Intervals: tiny, wide, crossing zero, crossing inflection points, spanning
several periods (sin, cos) and extreme ([-50, 50] and beyond); default alpha,
alpha at the ends of [0, 1] and random alpha.  Each check samples 1,000 grid
points (endpoints included), 1,000 random points and 1,000 points around the
worst sample, see :mod:`gridverify.bounds.relaxations.checks`.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gridverify.bounds.relaxations import RELAXATIONS, unary
from gridverify.bounds.relaxations.checks import unary_violation

F64 = torch.float64
TOL = 4.0  # ulps of the float64 check itself
OPS = [
    "relu", "floor", "sigmoid", "tanh", "erf", "atan", "sin", "cos", "exp", "softplus",
    "reciprocal", "sqrt", "square", "pow3", "pow4", "pow5", "pow6", "pow7",
]
POSITIVE = {"reciprocal", "sqrt"}
PI = math.pi

# op -> (range of centers, inflection/kink points used by the "inflect" kind)
RANGE = {"exp": 40.0, "pow3": 30.0, "pow4": 30.0, "pow5": 20.0, "pow6": 15.0, "pow7": 12.0}
INFLECT = {
    "relu": [0.0], "floor": [-3.0, 0.0, 1.0, 7.0], "sigmoid": [0.0], "tanh": [0.0], "erf": [0.0],
    "atan": [0.0],
    "sin": [n * PI for n in range(-4, 5)], "cos": [PI / 2 + n * PI for n in range(-4, 4)],
    "pow3": [0.0], "pow5": [0.0], "pow7": [0.0], "square": [0.0], "pow4": [0.0],
    "pow6": [0.0], "exp": [0.0], "softplus": [0.0],
}


def curated(op: str) -> list[tuple[float, float]]:
    """Hand-picked intervals of every kind for ``op``."""
    if op in POSITIVE:
        out = [(1e-6, 1e-3), (1e-3, 1e3), (0.5, 0.5), (2.0, 2.0 + 1e-12), (1e-8, 50.0),
               (0.1, 0.2), (3.0, 3.0 + 1e-6), (1e-300, 1.0), (7.0, 1e4)]
        if op == "sqrt":
            out += [(0.0, 0.0), (0.0, 4.0), (0.0, 1e-12), (-1.0, 4.0), (-1e-9, 1e-3)]
        return out
    r = RANGE.get(op, 50.0)
    out = [(-1e-9, 1e-9), (0.3, 0.3), (0.3, 0.3 + 1e-12), (-2.0, 3.0), (-0.1, 0.2),
           (1.0, 4.0), (-4.0, -1.0), (-7.0, 2.0), (-1.5, 9.0), (0.0, 0.0), (-3.0, 0.0),
           (0.0, 3.0), (-r, r), (-r, -r + 1.0), (r - 1.0, r), (-r, 0.5)]
    if op in ("sin", "cos"):
        out += [(-20.0, 20.0), (0.0, 2 * PI), (-PI, PI), (PI / 2 - 0.1, PI / 2 + 0.1),
                (PI - 0.5, PI + 0.5), (3.0, 9.0), (1e3, 1e3 + 5.0), (-1e4, -1e4 + 1.0),
                (2 * PI - 1e-9, 2 * PI + 1e-9), (-0.5, PI + 0.5), (PI - 0.5, 2 * PI + 0.5),
                (0.1, 2 * PI - 0.1), (-1e5, 1e5), (123456.7, 123459.9),
                (1e9, 1e9 + 20.0), (1e12, 1e12 + 3.0), (-1e12 - 0.5, -1e12), (1e15, 1e15 + 2.0)]
    if op in ("sigmoid", "tanh", "erf", "atan"):
        out += [(-800.0, 800.0), (-40.0, 3.0), (-3.0, 40.0), (-700.0, -690.0), (690.0, 700.0)]
    if op == "exp":
        out += [(-700.0, -600.0), (600.0, 700.0), (-800.0, -700.0), (-50.0, 50.0)]
    if op == "softplus":
        out += [(-800.0, 800.0), (-800.0, -700.0), (700.0, 800.0), (15.0, 25.0), (-40.0, -30.0),
                (1e6, 1e6 + 1.0)]
    if op == "floor":
        out += [(-50.0, 50.0), (0.999, 1.001), (0.5, 1.5), (-2.0, -1.0), (1e6, 1e6 + 3.5)]
    return out


def _alphas(entry, l: torch.Tensor, seed: int, full: bool = True) -> list[torch.Tensor | None]:  # noqa: ANN001
    """Default, the ends of [0, 1] (``full``) and random alphas for ``entry`` on ``l``."""
    if not entry.n_alpha:
        return [None]
    g = torch.Generator().manual_seed(seed)
    shape = (entry.n_alpha, *l.shape)
    rand = torch.rand(shape, generator=g, dtype=F64).to(l.dtype)
    if not full:
        return [None, rand]
    return [
        None,
        torch.zeros(shape, dtype=l.dtype),
        torch.ones(shape, dtype=l.dtype),
        rand,
        torch.rand(shape, generator=g, dtype=F64).to(l.dtype),
    ]


def _check(op: str, ivs: list[tuple[float, float]], seed: int = 0, full: bool = True) -> None:
    entry = unary(op)
    l = torch.tensor([a for a, _ in ivs], dtype=F64)
    u = torch.tensor([b for _, b in ivs], dtype=F64)
    for alpha in _alphas(entry, l, seed, full):
        v = unary_violation(entry, l, u, alpha, n=1000, seed=seed)
        assert v.worst() <= TOL, (op, v, "alpha None" if alpha is None else alpha)


@pytest.mark.parametrize("op", OPS)
def test_curated_intervals_are_sound(op: str) -> None:
    _check(op, curated(op))


@st.composite
def interval(draw: st.DrawFn, op: str) -> tuple[float, float]:
    """An interval of a random kind for ``op``."""
    if op in POSITIVE:
        lo = draw(st.floats(-8.0, 3.0))
        width = draw(st.sampled_from([0.0, 1e-14, 1e-9, 1e-4, 0.1, 1.0, 10.0, 1e3]))
        l = 10.0**lo
        return l, l + width * draw(st.floats(0.0, 1.0))
    r = RANGE.get(op, 50.0)
    kind = draw(st.sampled_from(["tiny", "wide", "cross", "inflect", "period", "extreme", "any"]))
    if kind == "tiny":
        c = draw(st.floats(-r, r))
        w = draw(st.sampled_from([0.0, 1e-300, 1e-15, 1e-12, 1e-9, 1e-6, 1e-3]))
        return c, c + w * draw(st.floats(0.0, 1.0))
    if kind == "wide":
        c = draw(st.floats(-r / 4, r / 4))
        w = draw(st.floats(5.0, r))
        return c - w / 2, c + w / 2
    if kind == "cross":
        return -draw(st.floats(1e-6, r)), draw(st.floats(1e-6, r))
    if kind == "inflect":
        p = draw(st.sampled_from(INFLECT.get(op, [0.0])))
        return p - draw(st.floats(0.0, 3.0)), p + draw(st.floats(0.0, 3.0))
    if kind == "period":
        c = draw(st.floats(-r, r))
        return c, c + draw(st.floats(2 * PI, 10 * PI))
    if kind == "extreme":
        return -draw(st.floats(0.9 * r, r)), draw(st.floats(0.9 * r, r))
    a, b = draw(st.floats(-r, r)), draw(st.floats(-r, r))
    return min(a, b), max(a, b)


@pytest.mark.parametrize("op", OPS)
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_random_intervals_are_sound(op: str, data: st.DataObject) -> None:
    """20 batches of up to 12 intervals per op; default and one random alpha each."""
    ivs = data.draw(st.lists(interval(op), min_size=1, max_size=12), label="intervals")
    seed = data.draw(st.integers(0, 2**31 - 1), label="seed")
    _check(op, ivs, seed, full=False)


@pytest.mark.slow
@pytest.mark.parametrize("op", OPS)
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_random_intervals_are_sound_long(op: str, data: st.DataObject) -> None:
    """The long run: 200 batches per op, five alphas each (default, 0, 1, two random)."""
    ivs = data.draw(st.lists(interval(op), min_size=1, max_size=12), label="intervals")
    seed = data.draw(st.integers(0, 2**31 - 1), label="seed")
    _check(op, ivs, seed, full=True)


def test_table_covers_the_ir_ops() -> None:
    for op in ("relu", "sigmoid", "tanh", "erf", "sin", "cos", "exp", "softplus", "reciprocal",
               "sqrt", "square", "floor"):
        assert RELAXATIONS[op].op == op
    assert unary("pow", 2).op == "square"
    assert unary("pow", 3).op == "pow3"
    assert unary("pow", 12).op == "pow12"


@pytest.mark.parametrize("k", [9, 10, 11, 12])
def test_high_powers_are_sound(k: int) -> None:
    entry = unary("pow", k)
    l = torch.tensor([-3.0, -1.0, 0.5, -2.0, 0.0, -1e-3], dtype=F64)
    u = torch.tensor([3.0, 2.0, 1.5, -1.0, 0.0, 1e-3], dtype=F64)
    for alpha in _alphas(entry, l, k):
        v = unary_violation(entry, l, u, alpha)
        assert v.worst() <= TOL, (k, v)


THRESHOLDS = [-3.0, 0.0, 1.0, 5.0, 20.0]


def _threshold_intervals(t: float) -> list[tuple[float, float]]:
    """Intervals below, above and across ``t``, tight around it and wide."""
    return [(t - 3.0, t - 1.0), (t + 1e-9, t + 1.0), (t - 1.0, t + 1.0), (t - 1e-6, t + 1e-6),
            (t, t + 1e-3), (t - 40.0, t + 40.0), (t - 0.5, t + 1e-12), (t - 800.0, t + 800.0),
            (t + 0.3, t + 0.3)]


@pytest.mark.parametrize("t", THRESHOLDS)
def test_thresholded_softplus_is_sound(t: float) -> None:
    """torch's softplus (the identity above ``t``, a downward jump of
    ``log(1 + exp(-t))`` there) against its relaxation, default and random alphas."""
    from gridverify.bounds.relaxations.convex import softplus_above

    entry = softplus_above(t)
    ivs = _threshold_intervals(t)
    l = torch.tensor([a for a, _ in ivs], dtype=F64)
    u = torch.tensor([b for _, b in ivs], dtype=F64)
    for alpha in _alphas(entry, l, 3):
        v = unary_violation(entry, l, u, alpha, n=4000, seed=1)
        assert v.worst() <= TOL, (t, v)


@pytest.mark.parametrize("t", [-3.0, 0.0, 1.0])
def test_thresholded_softplus_needs_its_drop(t: float) -> None:
    """The plain softplus relaxation is *not* sound for the thresholded function
    (the check above can fail): the jump must be accounted for."""
    from dataclasses import replace

    from gridverify.bounds.relaxations.convex import softplus_above

    plain = replace(unary("softplus"), func=softplus_above(t).func)
    l = torch.tensor([t - 1.0, t + 0.5], dtype=F64)
    u = torch.tensor([t + 1.0, t + 2.0], dtype=F64)
    assert unary_violation(plain, l, u, None, n=4000).worst() > 1e3


@settings(max_examples=30, deadline=None)
@given(t=st.floats(-30.0, 30.0), a=st.floats(-60.0, 60.0), w=st.floats(0.0, 60.0),
       seed=st.integers(0, 2**31 - 1))
def test_thresholded_softplus_random_intervals(t: float, a: float, w: float, seed: int) -> None:
    from gridverify.bounds.relaxations.convex import softplus_above

    entry = softplus_above(t)
    l = torch.tensor([a, t - w / 2], dtype=F64)
    u = torch.tensor([a + w, t + w / 2], dtype=F64)
    for alpha in _alphas(entry, l, seed, full=False):
        v = unary_violation(entry, l, u, alpha, n=2000, seed=seed)
        assert v.worst() <= TOL, (t, v)


def test_floor_allows_for_float32_rounding_of_its_input() -> None:
    """float32 evaluates ``10 * 0.7f`` as 7 where the exact product is 6.99999988:
    floor's bounds over the exact interval must reach the step float32 lands on."""
    import numpy as np

    w = float(np.float32(0.7))
    assert np.float32(10.0) * np.float32(w) == np.float32(7.0) and 10.0 * w < 7.0
    l = torch.tensor([9.0 * w, -10.0 * w], dtype=F64)
    u = torch.tensor([10.0 * w, -9.0 * w], dtype=F64)
    entry = RELAXATIONS["floor"]
    lo, hi = entry.interval(l, u)
    assert hi[0] >= 7.0 and lo[1] <= -8.0
    rel = entry.relax(l, u, None)
    # the upper line at the interval's top end, the lower line at the negative one's bottom
    assert float(rel.uw[0] * u[0] + rel.ub[0]) >= 7.0
    assert float(rel.lw[1] * l[1] + rel.lb[1]) <= -8.0



@pytest.mark.parametrize("op", OPS)
def test_infinite_ends_are_sound(op: str) -> None:
    """A line's offset on an interval with an infinite end must hold out there too (a
    flat line's offset taken over finite points only was once kept)."""
    inf = float("inf")
    ends = [(-inf, inf), (-inf, 0.0), (0.0, inf), (-inf, -3.0), (2.0, inf), (-inf, 40.0)]
    if op in POSITIVE:
        ends = [(1e-3, inf), (2.0, inf), (0.5, inf)]
    l = torch.tensor([a for a, _ in ends], dtype=F64)
    u = torch.tensor([b for _, b in ends], dtype=F64)
    entry = unary(op)
    alphas = [None]
    if entry.n_alpha:
        alphas += [torch.full((entry.n_alpha, l.numel()), v, dtype=F64) for v in (0.0, 0.5, 1.0)]
    for alpha in alphas:
        assert unary_violation(entry, l, u, alpha).worst() <= TOL, (op, alpha)
