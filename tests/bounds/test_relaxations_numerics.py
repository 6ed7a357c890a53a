"""Float32 soundness, tightness sanity, parameters, gradients, overflow and domain edges."""

from __future__ import annotations

import math

import pytest
import torch

from gridverify.bounds.relaxations import RELAXATIONS, RelaxationError, unary
from gridverify.bounds.relaxations.checks import unary_violation
from gridverify.errors import GraphError, GridverifyError

F64, F32 = torch.float64, torch.float32
TOL = 4.0
OPS = sorted(RELAXATIONS)
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])

def _random_intervals(op: str, n: int, seed: int, dtype: torch.dtype) -> tuple:
    g = torch.Generator().manual_seed(seed)
    scale = {"exp": 20.0, "pow5": 8.0, "pow6": 6.0, "pow7": 5.0, "pow8": 4.0}.get(op, 12.0)
    a = (torch.rand(2, n, generator=g, dtype=F64) - 0.5) * 2 * scale
    w = torch.rand(n, generator=g, dtype=F64)
    a[1, : n // 4] = a[0, : n // 4] + 1e-6 * w[: n // 4]  # tiny intervals
    if op in ("sqrt", "reciprocal"):
        a = a.abs() + 1e-4
    l, u = torch.minimum(a[0], a[1]).to(dtype), torch.maximum(a[0], a[1]).to(dtype)
    return l, u


@pytest.mark.parametrize("op", OPS)
def test_float32_relaxations_are_sound_against_float64_function(op: str) -> None:
    entry = unary(op)
    l, u = _random_intervals(op, 80, 7, F32)
    alphas = [None]
    if entry.n_alpha:
        alphas.append(torch.rand((entry.n_alpha, 80), generator=torch.Generator().manual_seed(1)))
    for alpha in alphas:
        rel = entry.relax(l, u, alpha)
        lo, hi = entry.interval(l, u)
        assert all(t.dtype == F32 and t.shape == l.shape for t in (*rel, lo, hi))
        v = unary_violation(entry, l, u, alpha, n=1000)
        assert v.worst() <= TOL, (op, v)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [F32, F64])
@pytest.mark.parametrize("op", OPS)
def test_dtype_device_shape_and_init_alpha(op: str, dtype: torch.dtype, device: str) -> None:
    entry = unary(op)
    l, u = _random_intervals(op, 24, 3, dtype)
    l, u = l.view(2, 3, 4).to(device), u.view(2, 3, 4).to(device)
    rel = entry.relax(l, u, None)
    for t in (*rel, *entry.interval(l, u)):
        assert t.dtype == dtype and t.shape == l.shape and t.device == l.device
        assert not torch.isnan(t).any()
    if entry.n_alpha:
        a0 = entry.init_alpha(l, u)
        assert a0.shape == (entry.n_alpha, *l.shape) and a0.dtype == dtype
        assert bool(((a0 >= 0) & (a0 <= 1)).all())
        rel0 = entry.relax(l, u, a0)
        for a, b in zip(rel0, rel):
            assert torch.allclose(a.double(), b.double(), rtol=1e-5, atol=1e-6), op
    else:
        assert entry.init_alpha is None


@pytest.mark.parametrize("op", [op for op in OPS if RELAXATIONS[op].n_alpha])
def test_alpha_gradients_are_finite(op: str) -> None:
    entry = unary(op)
    l, u = _random_intervals(op, 64, 5, F32)
    l = l.clone().requires_grad_(True)
    u = u.clone().requires_grad_(True)
    alpha = torch.rand(entry.n_alpha, 64, generator=torch.Generator().manual_seed(2))
    alpha.requires_grad_(True)
    rel = entry.relax(l, u, alpha)
    (rel.lw * 0.3 + rel.lb - rel.uw * 0.7 - rel.ub).sum().backward()
    for t in (alpha, l, u):
        assert t.grad is not None and torch.isfinite(t.grad).all(), op
    assert float(alpha.grad.abs().sum()) > 0


def _f64(*xs: float) -> list[torch.Tensor]:
    return [torch.tensor([x], dtype=F64) for x in xs]


def test_relu_tightness() -> None:
    l, u = _f64(-1.0, 3.0)
    rel = unary("relu").relax(l, u, None)
    assert torch.allclose(rel.uw, u / (u - l)) and torch.allclose(rel.ub, -u * l / (u - l))
    assert rel.lw.item() == 1.0 and rel.lb.item() == 0.0  # u > -l: slope 1
    rel = unary("relu").relax(-u, -l, torch.tensor([[0.25]], dtype=F64))
    assert rel.lw.item() == 0.25 and rel.lb.item() == 0.0
    for a, b, w in ((1.0, 2.0, 1.0), (-2.0, -1.0, 0.0)):
        rel = unary("relu").relax(*_f64(a, b), None)
        assert rel.lw.item() == w == rel.uw.item() and rel.lb.item() == 0 == rel.ub.item()


def _assert_chord(rel_w: torch.Tensor, rel_b: torch.Tensor, f, l, u) -> None:  # noqa: ANN001
    for x in (l, u):
        assert torch.allclose(rel_w * x + rel_b, f(x), rtol=1e-9, atol=1e-12)


def _assert_tangent(rel_w, rel_b, f, fp, t) -> None:  # noqa: ANN001
    assert torch.allclose(rel_w, fp(t), rtol=1e-6, atol=1e-12)
    assert torch.allclose(rel_w * t + rel_b, f(t), rtol=1e-6, atol=1e-9)


CONVEX_CASES = [
    ("exp", torch.exp, torch.exp, -1.0, 2.0),
    ("square", torch.square, lambda x: 2 * x, -1.0, 3.0),
    ("pow4", lambda x: x**4, lambda x: 4 * x**3, -0.5, 2.0),
    ("reciprocal", torch.reciprocal, lambda x: -1 / x**2, 0.5, 4.0),
    ("sigmoid", torch.sigmoid, lambda x: torch.sigmoid(x) * (1 - torch.sigmoid(x)), -5.0, -1.0),
    ("tanh", torch.tanh, lambda x: 1 - torch.tanh(x) ** 2, -4.0, -0.5),
    ("pow3", lambda x: x**3, lambda x: 3 * x**2, 0.5, 2.0),
    ("sin", torch.sin, torch.cos, 3.5, 6.0),
    ("cos", torch.cos, lambda x: -torch.sin(x), 2.0, 4.0),
]


@pytest.mark.parametrize(("op", "f", "fp", "lo", "hi"), CONVEX_CASES)
def test_convex_piece_gets_chord_above_and_midpoint_tangent_below(op, f, fp, lo, hi) -> None:  # noqa: ANN001
    l, u = _f64(lo, hi)
    rel = unary(op).relax(l, u, None)
    _assert_chord(rel.uw, rel.ub, f, l, u)
    _assert_tangent(rel.lw, rel.lb, f, fp, (l + u) / 2)


CONCAVE_CASES = [
    ("sqrt", torch.sqrt, lambda x: 0.5 / torch.sqrt(x), 0.25, 9.0),
    ("reciprocal", torch.reciprocal, lambda x: -1 / x**2, -4.0, -0.5),
    ("sigmoid", torch.sigmoid, lambda x: torch.sigmoid(x) * (1 - torch.sigmoid(x)), 0.5, 5.0),
    ("tanh", torch.tanh, lambda x: 1 - torch.tanh(x) ** 2, 0.2, 3.0),
    ("pow3", lambda x: x**3, lambda x: 3 * x**2, -2.0, -0.1),
    ("sin", torch.sin, torch.cos, 0.3, 2.8),
    ("cos", torch.cos, lambda x: -torch.sin(x), -1.2, 1.0),
]


@pytest.mark.parametrize(("op", "f", "fp", "lo", "hi"), CONCAVE_CASES)
def test_concave_piece_gets_chord_below_and_midpoint_tangent_above(op, f, fp, lo, hi) -> None:  # noqa: ANN001
    l, u = _f64(lo, hi)
    rel = unary(op).relax(l, u, None)
    _assert_chord(rel.lw, rel.lb, f, l, u)
    _assert_tangent(rel.uw, rel.ub, f, fp, (l + u) / 2)


def test_s_shaped_upper_line_is_the_tangent_through_the_left_endpoint() -> None:
    # sigmoid on [-6, 2]: the midpoint -2 lies left of the tangent point d, so the
    # least-area upper line passes through (l, f(l)) and touches f at d in (0, u)
    l, u = _f64(-6.0, 2.0)
    rel = unary("sigmoid").relax(l, u, None)
    assert torch.allclose(rel.uw * l + rel.ub, torch.sigmoid(l), atol=1e-9)
    x = torch.linspace(0.0, 2.0, 20001, dtype=F64)
    gap = rel.uw * x + rel.ub - torch.sigmoid(x)
    assert gap.min().item() < 1e-8 and gap.min().item() > -1e-12
    d = x[gap.argmin()]
    assert 0.0 < d.item() < 2.0
    # the lower line touches the function too (exact offset) and stays below it
    x = torch.linspace(-6.0, 2.0, 20001, dtype=F64)
    gap = torch.sigmoid(x) - (rel.lw * x + rel.lb)
    assert -1e-12 < gap.min().item() < 1e-8


def test_sin_over_periods_gets_constant_lines_and_exact_interval() -> None:
    l, u = _f64(-10.0, 10.0)
    entry = unary("sin")
    rel = entry.relax(l, u, None)
    assert rel.lw.item() == 0.0 and rel.uw.item() == 0.0
    assert abs(rel.lb.item() + 1) < 1e-12 and abs(rel.ub.item() - 1) < 1e-12
    lo, hi = entry.interval(*_f64(0.5, 2.0))
    assert abs(hi.item() - 1.0) < 1e-15 and abs(lo.item() - math.sin(0.5)) < 1e-14
    lo, hi = unary("cos").interval(*_f64(3.0, 3.5))
    assert lo.item() == -1.0 and abs(hi.item() - math.cos(3.5)) < 1e-14


def test_random_alpha_is_never_tighter_than_the_exact_envelope() -> None:
    # any alpha: the upper line touches the function (exact offset) somewhere
    entry = unary("tanh")
    l, u = _f64(-2.0, 3.0)
    x = torch.linspace(-2.0, 3.0, 50001, dtype=F64)
    for a in torch.linspace(0, 1, 11, dtype=F64):
        rel = entry.relax(l, u, torch.stack([a.view(1), a.view(1)]))
        gap = rel.uw * x + rel.ub - torch.tanh(x)
        assert -1e-12 < gap.min().item() < 1e-6


def test_exp_overflow_is_no_bound_not_nan() -> None:
    for dtype, lo, hi in ((F64, 700.0, 800.0), (F32, 80.0, 100.0), (F64, 750.0, 760.0)):
        l, u = torch.tensor([lo], dtype=dtype), torch.tensor([hi], dtype=dtype)
        rel = unary("exp").relax(l, u, None)
        ilo, ihi = unary("exp").interval(l, u)
        for t in (*rel, ilo, ihi):
            assert not torch.isnan(t).any()
        assert rel.ub.item() == math.inf and ihi.item() == math.inf
        assert torch.isfinite(rel.lw).all() and torch.isfinite(ilo).all()
        assert ilo.item() > 0 and ilo.item() <= math.exp(min(lo, 709.0))


def test_reciprocal_across_zero_is_no_bound_and_flagged() -> None:
    entry = unary("reciprocal")
    l, u = torch.tensor([-1.0, 0.0, 0.5, -3.0]), torch.tensor([1.0, 2.0, 1.0, -1.0])
    rel = entry.relax(l, u, None)
    lo, hi = entry.interval(l, u)
    for t in (*rel, lo, hi):
        assert not torch.isnan(t).any()
    assert rel.lb[0] == -math.inf and rel.ub[0] == math.inf and rel.lw[0] == 0
    assert lo[1] == -math.inf and hi[1] == math.inf
    assert entry.domain is not None
    assert entry.domain(l, u).tolist() == [False, False, True, True]
    assert unary("sqrt").domain(torch.tensor([-1.0, 0.0]), torch.tensor([1.0, 1.0])).tolist() == [
        False,
        True,
    ]


def test_sqrt_below_zero_is_no_bound() -> None:
    """torch's sqrt is NaN below 0, where no bound holds: an interval reaching there
    gets the no-bound relaxation (-inf/+inf constants, zero slopes), never a finite
    bound of sqrt(max(x, 0))."""
    entry = unary("sqrt")
    l, u = torch.tensor([-2.0, -1e-12, 0.0, 0.25], dtype=F64), torch.tensor(
        [-1.0, 4.0, 4.0, 9.0], dtype=F64)
    rel = entry.relax(l, u, None)
    lo, hi = entry.interval(l, u)
    for t in (*rel, lo, hi):
        assert not torch.isnan(t).any()
    assert lo[:2].tolist() == [-math.inf] * 2 and hi[:2].tolist() == [math.inf] * 2
    assert rel.lb[:2].tolist() == [-math.inf] * 2 and rel.ub[:2].tolist() == [math.inf] * 2
    assert rel.lw[:2].tolist() == [0.0, 0.0] and rel.uw[:2].tolist() == [0.0, 0.0]
    assert torch.isfinite(lo[2:]).all() and torch.isfinite(hi[2:]).all()
    assert lo[3] <= 0.5 and hi[3] >= 3.0


def test_degenerate_intervals_give_finite_lines() -> None:
    for op in OPS:
        entry = unary(op)
        pts = [0.0, 1e-300, 0.3, 2.0, 4.0] if op not in ("reciprocal",) else [1e-3, 0.3, 2.0]
        l = torch.tensor(pts, dtype=F64)
        rel = entry.relax(l, l.clone(), None)
        assert all(torch.isfinite(t).all() for t in rel), op
        v = unary_violation(entry, l, l.clone())
        assert v.worst() <= TOL, (op, v)


def test_unknown_ops_and_bad_exponents_raise_named_errors() -> None:
    assert issubclass(RelaxationError, GraphError) and issubclass(RelaxationError, GridverifyError)
    with pytest.raises(RelaxationError, match="asinh"):
        unary("asinh")
    for k in (None, 0, 1, 2.5, 1000):
        with pytest.raises(RelaxationError, match="pow"):
            unary("pow", k)
    with pytest.raises(RelaxationError):
        unary("sin", 3)


def test_checker_detects_slightly_unsound_lines() -> None:
    """The sampling check used by these tests must catch a line lowered by 1e-12."""
    from dataclasses import replace

    from gridverify.bounds.relaxations import Relaxation

    base = unary("sigmoid")

    def shifted(l, u, alpha=None):  # noqa: ANN001, ANN202
        r = base.relax(l, u, alpha)
        return Relaxation(r.lw, r.lb + 1e-12, r.uw, r.ub - 1e-12)

    bad = replace(base, relax=shifted)
    l, u = torch.tensor([0.5, -3.0, -6.0], dtype=F64), torch.tensor([2.5, 1.0, 2.0], dtype=F64)
    v = unary_violation(bad, l, u)
    assert v.lower > 100 and v.upper > 100
    assert unary_violation(base, l, u).worst() <= TOL


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_relaxations_are_sound(dtype: torch.dtype) -> None:
    """Narrow dtypes overflow early (x^6 of 7 in float16): results stay sound, never NaN."""
    for op in OPS:
        l, u = _random_intervals(op, 40, 11, F64)
        l, u = l.to(dtype), u.to(dtype)
        u = torch.maximum(l, u)
        v = unary_violation(unary(op), l, u)
        assert v.worst() <= TOL, (op, dtype, v)


def _smooth_intervals(name: str, n: int, seed: int, min_width: float = 0.0):
    """The smooth op ``name`` and ``n`` random intervals of ``[-3, 3] +- 3``:
    ``(op, l, u, kmin, kmax, m)`` (range of the derivative, midpoints)."""
    from gridverify.bounds.relaxations import sshaped, trig

    op = {"sin": trig.SIN_OP, "cos": trig.COS_OP, "sigmoid": sshaped.SIGMOID_OP,
          "tanh": sshaped.TANH_OP, "atan": sshaped.ATAN_OP}[name]
    g = torch.Generator().manual_seed(seed)
    c = (torch.rand(n, generator=g, dtype=F64) - 0.5) * 6.0
    w = torch.rand(n, generator=g, dtype=F64) * 3.0 + min_width
    l, u = c - w, c + w
    kmin, kmax = op.fp_range(l, u)
    return op, l, u, kmin, kmax, 0.5 * (l + u)


@pytest.mark.parametrize("name", ["sin", "cos", "sigmoid", "tanh", "atan"])
def test_least_area_slope_search_agrees_whatever_the_grid(name: str) -> None:
    from gridverify.bounds.relaxations import smooth

    op, l, u, kmin, kmax, m = _smooth_intervals(name, 300, 3)
    for upper in (False, True):
        ks = [smooth.area_slope(op, l, u, upper, grid=grid) for grid in (2, 4, 16)]
        for k in ks[1:]:
            assert ((k - ks[0]).abs() <= 4.0 * 2.0**-smooth.SLOPE_SEARCH_BITS
                    * (kmax - kmin) + 1e-15).all()
        # least area: no slope a little to either side gives a lower line value at the midpoint
        def at_mid(k: torch.Tensor, _upper: bool = upper) -> torch.Tensor:
            off, _ = smooth.extreme_offset(op, l, u, k, _upper)
            return k * m + off

        best = at_mid(ks[0])
        for dk in (-1e-3, 1e-3):
            other = at_mid((ks[0] + dk * (kmax - kmin)).clamp(kmin, kmax))
            worse = other - best if upper else best - other
            assert (worse >= -1e-9).all()


@pytest.mark.parametrize("name", ["sin", "cos", "sigmoid", "tanh", "atan"])
def test_least_area_slope_beats_a_dense_grid_of_slopes(name: str) -> None:
    # the line of the slope found is at least as low (upper; high, lower) at the
    # midpoint as the line of any of 20,001 evenly spaced slopes of f''s range
    from gridverify.bounds.relaxations import smooth

    op, l, u, kmin, kmax, m = _smooth_intervals(name, 64, 5, min_width=1e-3)
    grid = kmin + torch.linspace(0.0, 1.0, 20001, dtype=F64).unsqueeze(1) * (kmax - kmin)
    for upper in (False, True):
        k = smooth.area_slope(op, l, u, upper)
        off, _ = smooth.extreme_offset(op, l, u, k, upper)
        goff, _ = smooth.extreme_offset(op, l, u, grid, upper)
        found, dense = k * m + off, grid * m + goff
        best = dense.min(0).values if upper else dense.max(0).values
        slack = 1e-12 * (1.0 + best.abs())
        assert ((found <= best + slack) if upper else (found >= best - slack)).all()


def test_slope_search_grid_keeps_each_pass_within_its_entry_budget() -> None:
    from gridverify.bounds.relaxations import smooth

    for dev in (torch.device("cpu"), torch.device("cuda")):  # a device object needs no GPU
        budget = smooth.SLOPE_SEARCH_ENTRIES["cpu" if dev.type == "cpu" else "other"]
        for n in (1, 64, 546, 547, 2730, 2731, 10**5, 10**7):
            grid = smooth._slope_search_grid(n, dev)
            assert grid in (2, 4, 16)
            assert grid == 2 or n * (grid - 1) <= budget
            assert grid == 16 or n * 15 > budget  # the most slopes the budget allows
