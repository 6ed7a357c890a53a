"""End-to-end soundness of IBP, CROWN and alpha-CROWN on random all-op graphs and an
ACOPF-like graph: the bounds contain 10,000 sampled outputs per domain and the
extremes found by projected gradient ascent."""

from __future__ import annotations

import math

import pytest
import torch
from engine_graphs import acopf_small, pgd_extremes, random_graph, sample_box

from gridverify.bounds import BoundOptions, compute_bounds
from gridverify.ir import OPS, GraphBuilder

METHODS = ["ibp", "crown", "alpha-crown"]
OPTS = BoundOptions(alpha_iterations=8, alpha_lr=0.2)
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)]


def _device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    return torch.device(name)


def _boxes(n_in: int, batch: int, radius: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    c = torch.randn(batch, n_in, generator=gen, dtype=torch.float64)
    r = radius * torch.rand(batch, n_in, generator=gen, dtype=torch.float64)
    return c - r, c + r


def _assert_contains(lower: torch.Tensor, upper: torch.Tensor, vals: torch.Tensor,
                     tol: float) -> None:
    """``vals`` (B, n, m) inside ``[lower, upper]`` (B, m), up to a relative ``tol``."""
    lower, upper = lower.double().cpu(), upper.double().cpu()
    slack = tol * (1 + vals.abs())
    assert not torch.isnan(lower).any() and not torch.isnan(upper).any()
    low_ok = lower.unsqueeze(1) <= vals + slack
    up_ok = upper.unsqueeze(1) >= vals - slack
    assert bool(low_ok.all()), f"lower bound violated by {float((lower.unsqueeze(1) - vals).max())}"
    assert bool(up_ok.all()), f"upper bound violated by {float((vals - upper.unsqueeze(1)).max())}"


def _check_graph(g, lo, hi, methods, device, dtype, n_samples=10_000, pgd=True):  # noqa: ANN001
    xs = sample_box(lo, hi, n_samples)
    vals = torch.stack([g.evaluate_flat(xs[k]) for k in range(lo.shape[0])])
    if pgd:
        mn, mx = pgd_extremes(g, lo, hi, steps=25, restarts=2)
        vals = torch.cat([vals, mn.unsqueeze(1), mx.unsqueeze(1)], 1)
    tol = 1e-9 if dtype == torch.float64 else 2e-5
    widths = {}
    for m in methods:
        r = compute_bounds(g, lo.to(device), hi.to(device), method=m, options=OPTS, dtype=dtype)
        assert r.lower.shape == (lo.shape[0], g.output_size)
        assert r.lower.dtype == dtype and r.lower.device.type == device.type
        _assert_contains(r.lower, r.upper, vals, tol)
        widths[m] = (r.upper - r.lower).double().cpu()
    return widths


@pytest.mark.parametrize("seed", range(6))
def test_random_graphs_sound(seed: int) -> None:
    g = random_graph(seed, depth=4)
    assert len([n for n in g.nodes if OPS[n.op].nonlinear]) >= 8
    lo, hi = _boxes(g.input_size, 2, [0.05, 0.5, 2.0][seed % 3], seed)
    _check_graph(g, lo, hi, METHODS, torch.device("cpu"), torch.float64)


def test_random_graphs_cover_every_op() -> None:
    ops = set()
    for seed in range(6):
        ops |= {n.op for n in random_graph(seed, depth=4).nodes}
    assert ops >= set(OPS) - {"constant"}, set(OPS) - ops


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_acopf_like_sound(device: str, dtype: torch.dtype) -> None:
    dev = _device(device)
    g = acopf_small(seed=1)
    lo, hi = _boxes(22, 2, 0.3, 7)
    _check_graph(g, lo, hi, METHODS, dev, dtype, pgd=dtype == torch.float64)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_random_graph_devices_dtypes(device: str, dtype: torch.dtype) -> None:
    dev = _device(device)
    g = random_graph(11, depth=4)
    lo, hi = _boxes(g.input_size, 3, 0.4, 11)
    _check_graph(g, lo, hi, METHODS, dev, dtype, n_samples=2000, pgd=False)


def test_spec_bounds_sound() -> None:
    g = acopf_small(seed=2)
    lo, hi = _boxes(22, 2, 0.2, 3)
    gen = torch.Generator().manual_seed(0)
    spec = torch.randn(2, 5, g.output_size, generator=gen, dtype=torch.float64)
    xs = sample_box(lo, hi, 5000)
    vals = torch.stack([g.evaluate_flat(xs[k]) @ spec[k].T for k in range(2)])
    for m in METHODS:
        r = compute_bounds(g, lo, hi, method=m, spec=spec, options=OPTS)
        assert r.lower.shape == (2, 5)
        _assert_contains(r.lower, r.upper, vals, 1e-9)
    r2 = compute_bounds(g, lo, hi, method="crown", spec=spec[0])
    assert r2.lower.shape == (2, 5)


@pytest.mark.parametrize("method", ["ibp", "crown", "alpha-crown"])
def test_wide_intervals_are_rounded_outward(method: str) -> None:
    """A sum over an input spanning 13 decades: the midpoint-radius form loses the
    small end below the ulp of 1e13 unless the interval is widened by its
    rounding error; the bound must hold for the exact (rational) value."""
    from fractions import Fraction

    from gridverify.ir import GraphBuilder

    b = GraphBuilder()
    x = b.input("x", 2)
    y = b.linear(x, torch.tensor([[1.0, 1.0], [-1.0, 1.0]], dtype=torch.float64),
                 bias=torch.tensor([0.1, 0.3], dtype=torch.float64))
    b.output(b.add_const(y, -0.2))
    g = b.build()
    lo = torch.tensor([1e-3, 0.5], dtype=torch.float64)
    hi = torch.tensor([3e13, 0.7], dtype=torch.float64)
    out = compute_bounds(g, lo, hi, method=method)
    fl = [Fraction(float(v)) for v in lo]
    fh = [Fraction(float(v)) for v in hi]
    c = Fraction(-0.2)
    exact_lo0 = fl[0] + fl[1] + Fraction(0.1) + c  # both weights +1: the lower corner
    exact_hi1 = -fl[0] + fh[1] + Fraction(0.3) + c  # -x0 + x1: low x0, high x1
    assert Fraction(float(out.lower[0, 0])) <= exact_lo0
    assert Fraction(float(out.upper[0, 1])) >= exact_hi1


def test_a_steep_unused_line_does_not_cancel_the_used_one() -> None:
    """A negative coefficient takes the upper line of atan; alpha makes the lower
    line steep.  Mixing the two as ``a w_pos + min(a, 0) (w_neg - w_pos)`` lost the
    used line to cancellation and gave an upper bound below the true maximum."""
    from gridverify.ir import GraphBuilder

    b = GraphBuilder()
    x = b.input("x", 1)
    b.output(x, "x")
    b.output(b.unary("atan", x), "y")
    g = b.build()
    spec = torch.tensor([[0.0, 1.0], [0.0, -1.0], [1.0, 1.0], [-1.0, 1.0], [0.5, 1.0],
                         [-2.0, 1.0]], dtype=torch.float64)
    for dtype, scale in ((torch.float32, 1.0), (torch.float64, 1.0), (torch.float64, 1e6)):
        lo, hi = -24399.184080359242 * scale, 12041.043186207224 * scale
        box = torch.tensor([lo, hi], dtype=torch.float64)
        r = compute_bounds(g, box[:1], box[1:], method="alpha-crown",
                           spec=spec, dtype=dtype,
                           options=BoundOptions(alpha_iterations=10, alpha_lr=0.3))
        assert float(r.upper[0, 1]) >= -math.atan(lo), (dtype, scale)
        assert float(r.lower[0, 0]) <= math.atan(lo), (dtype, scale)


@pytest.mark.parametrize("method", ["ibp", "crown", "alpha-crown"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_overflowing_bounds_stay_infinite(method: str, dtype: torch.dtype) -> None:
    """exp on [0, 1000] exceeds every float: its upper bound is +inf, never the
    largest finite float (a finite bound below the true value)."""
    from gridverify.ir import GraphBuilder

    b = GraphBuilder()
    b.output(b.exp(b.input("x", 1)), "y")
    r = compute_bounds(b.build(), torch.tensor([0.0]), torch.tensor([1000.0]), method=method,
                       dtype=dtype)
    assert float(r.upper.reshape(-1)[0]) == math.inf
    b = GraphBuilder()
    b.output(b.reciprocal(b.input("x", 1)), "y")
    r = compute_bounds(b.build(), torch.tensor([0.0]), torch.tensor([1.0]), method=method,
                       dtype=dtype)
    assert float(r.upper.reshape(-1)[0]) == math.inf


@pytest.mark.parametrize("method", ["ibp", "crown", "alpha-crown"])
def test_a_float64_box_is_rounded_outward_to_float32(method: str) -> None:
    """10000.0004 is not a float32; rounded to nearest (10000.0) the box would
    lose the one point it holds, and sin there differs by 4e-4."""
    from gridverify.ir import GraphBuilder

    b = GraphBuilder()
    b.output(b.sin(b.input("x", 1)), "y")
    v = 10000.0004
    box = torch.tensor([v], dtype=torch.float64)
    r = compute_bounds(b.build(), box, box, method=method, dtype=torch.float32)
    assert float(r.lower.reshape(-1)[0]) <= math.sin(v) <= float(r.upper.reshape(-1)[0])


@pytest.mark.parametrize("method", ["crown", "alpha-crown"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_offsets_that_cancel_are_padded_by_their_magnitudes(method: str,
                                                            dtype: torch.dtype) -> None:
    """``s sin(1e5 tanh(z))`` on a box where tanh is 1: the offsets of sin's lines
    (about -s 1e5) and of tanh's (about +s 1e5) cancel to a value near ``s sin(1e5)``;
    a rounding pad taken on that small sum left the true value outside the float32
    bounds (s = 1000: [40.0, 40.0] against 35.75)."""
    from gridverify.ir import GraphBuilder

    for s in (2.0, 191.45583053805643, 1000.0):
        b = GraphBuilder()
        z = b.input("z", 1)
        b.output(b.linear(b.sin(b.linear(b.tanh(z), [[1e5]])), [[s]]), "y")
        g = b.build()
        true = float(g.evaluate_flat(torch.tensor([[25.0]], dtype=torch.float64))[0, 0])
        r = compute_bounds(g, torch.tensor([20.0], dtype=torch.float64),
                           torch.tensor([30.0], dtype=torch.float64), method=method, dtype=dtype)
        assert float(r.lower.reshape(-1)[0]) <= true <= float(r.upper.reshape(-1)[0]), s


def _overflow_pwl_graph():
    """``z = relu(5 - exp(x))``: on x in [0, 720] exp overflows float64 (interval
    ``[1, inf]``), and ``inf - inf`` in the next affine op must not become a NaN
    that a later op reads as a finite end.  Max 4 at x = 0."""
    from gridverify.ir import GraphBuilder

    b = GraphBuilder()
    x = b.input("x", 1)
    y = b.linear(b.exp(x), [[-1.0]])
    b.output(b.pwl(y, [-5.0], [1.0]), "z")
    return b.build()


@pytest.mark.parametrize("method", METHODS)
def test_an_unbounded_interval_never_becomes_a_finite_wrong_one(method: str) -> None:
    g = _overflow_pwl_graph()
    lo, hi = (torch.tensor([v], dtype=torch.float64) for v in (0.0, 720.0))
    bd = compute_bounds(g, lo, hi, method=method, options=BoundOptions(keep_intermediate=True))
    assert float(bd.upper) >= 4.0
    y_lo, y_hi = bd.interm[g.nodes[g.outputs[0]].inputs[0]]
    assert float(y_lo) == -math.inf and -1.0 <= float(y_hi) < -1.0 + 1e-12
    # a product with the unbounded node: 0 * inf corners are 0, NaN inputs are not
    b = GraphBuilder()
    t, w = b.input("t", 1), b.input("w", 1)
    y = b.add_const(b.linear(b.exp(t), [[-1.0]]), 10.0)  # 10 - exp(t) <= 9
    b.output(b.mul(y, w), "z")
    g2 = b.build()
    bd = compute_bounds(g2, [torch.tensor([0.0], dtype=torch.float64),
                             torch.tensor([1.0], dtype=torch.float64)],
                        [torch.tensor([720.0], dtype=torch.float64),
                         torch.tensor([2.0], dtype=torch.float64)], method=method)
    assert float(bd.upper) >= 18.0 and float(bd.lower) == -math.inf


@pytest.mark.parametrize("method", ["crown", "alpha-crown"])
def test_weights_rounded_to_float32_that_cancel_are_padded(method: str) -> None:
    """``(1e8 + 1) x - 1e8 x = x``: in float32 both weights round to 1e8 and the
    coefficients cancel to 0; the bound must still hold ``[1, 2]``."""

    b = GraphBuilder()
    x = b.input("x", 1)
    b.output(b.sub(b.linear(x, [[1e8 + 1.0]]), b.linear(x, [[1e8]])), "y")
    g = b.build()
    bd = compute_bounds(g, torch.tensor([1.0]), torch.tensor([2.0]), method=method,
                        dtype=torch.float32)
    assert float(bd.lower) <= 1.0 and float(bd.upper) >= 2.0


@pytest.mark.parametrize("method", ["crown", "alpha-crown"])
@pytest.mark.parametrize("scale", [1e8, 1e12])
def test_coefficients_that_cancel_in_back_substitution_are_padded(method: str,
                                                                  scale: float) -> None:
    """``(1/3)(3x) - x`` is ``-5.55e-17 x`` with the stored weights, evaluated in
    float64 down to about ``-1.2e-16 x``: on a box near ``scale`` the bounds must hold
    every float64 evaluation, which the rounding of ``a @ W`` alone would miss."""

    b = GraphBuilder()
    x = b.input("x", 1)
    y = b.linear(b.linear(x, [[3.0]]), [[1.0 / 3.0]])
    b.output(b.sub(y, x), "y")
    g = b.build()
    lo = torch.tensor([scale], dtype=torch.float64)
    hi = lo + 1000.0
    bd = compute_bounds(g, lo, hi, method=method)
    xs = torch.linspace(scale, scale + 1000.0, 20001, dtype=torch.float64)[:, None]
    v = g.evaluate_flat(xs)
    exact = -5.551115123125783e-17 * xs  # real arithmetic with the stored weights
    for vals in (v, exact):
        assert float(bd.lower) <= float(vals.min()) and float(bd.upper) >= float(vals.max())


@pytest.mark.parametrize("method", METHODS)
def test_repeated_sparse_entries_count_as_terms(method: str) -> None:
    """``W = 1 + 1000 * 2**-54`` spelt as 1001 repeated (row, col) entries: its sum has
    1001 terms, not one per input, and ``W x - x`` at x = 1 is ``5.55e-14``."""
    n = 1000
    b = GraphBuilder()
    x = b.input("x", 1)
    t = b.sparse_linear(x, [0] * (n + 1), [0] * (n + 1), [1.0] + [2.0**-54] * n, 1)
    b.output(b.sub(t, x), "y")
    g = b.build()
    one = torch.tensor([1.0], dtype=torch.float64)
    bd = compute_bounds(g, one, one, method=method)
    for v in (n * 2.0**-54, float(g.evaluate_flat(one[None]))):
        assert float(bd.lower) <= v <= float(bd.upper)


@pytest.mark.parametrize("method", METHODS)
def test_float32_engine_covers_constants_it_cannot_hold(method: str) -> None:
    """``relu(1e8 + 1 - x)`` at x = 1e8 is 1; float32 holds neither 1e8 + 1 nor the
    result's neighbourhood exactly, and the interval must still contain 1."""
    b = GraphBuilder()
    x = b.input("x", 1)
    b.output(b.relu(b.neg(b.add_const(x, -(1e8 + 1.0)))), "y")
    g = b.build()
    X = torch.tensor([1e8], dtype=torch.float64)
    bd = compute_bounds(g, X, X, method=method, dtype=torch.float32)
    assert float(bd.lower) <= 1.0 <= float(bd.upper)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_boxes_and_specs_given_as_lists_are_read_in_float64(dtype: torch.dtype) -> None:
    """A list is not rounded to torch's default float32 before the outward cast, and a
    spec the engine's dtype cannot hold is padded by its rounding times the outputs."""
    b = GraphBuilder()
    x = b.input("x", 2)
    b.output(b.scale(x, 1.0), "y")
    g = b.build()
    bd = compute_bounds(g, [0.1, 0.1], [0.1, 0.1], method="crown", dtype=dtype)
    assert (bd.lower.double() <= 0.1).all() and (bd.upper.double() >= 0.1).all()
    bd = compute_bounds(g, [1.0, 1.0], [1.0, 1.0], method="crown", dtype=dtype,
                        spec=[[1e8 + 1.0, -1e8]])
    assert float(bd.lower) <= 1.0 <= float(bd.upper)


@pytest.mark.parametrize("method", METHODS)
def test_spec_sums_of_outputs_are_rounded_outward(method: str) -> None:
    """``spec @ outputs`` over exact output intervals: ``1e8 + 1 - 1e8`` is 0 in
    float32 and ``2**54 + 3 - 2**54`` is 4 in float64; the true value (1, 3) must
    stay inside the bounds (the interval of the spec rows was not padded)."""
    b = GraphBuilder()
    x = b.input("x", 3)
    b.output(b.gather(x, [0, 1, 2]))
    g = b.build()
    spec = torch.tensor([[1.0, 1.0, -1.0]], dtype=torch.float64)
    for dtype, big, small in ((torch.float32, 1e8, 1.0), (torch.float64, 2.0**54, 3.0),
                              (torch.float64, 2.0**54, 1.0)):
        box = torch.tensor([big, small, big], dtype=torch.float64)
        r = compute_bounds(g, box, box, method=method, spec=spec, dtype=dtype)
        assert float(r.lower.reshape(-1)[0]) <= small <= float(r.upper.reshape(-1)[0]), dtype


def test_spec_rounding_pad_keeps_a_finite_end_finite() -> None:
    """An output bounded below but not above (exp overflows): the spec row's lower
    end stays finite (the rounding pad of each end reads only that end's terms)."""
    b = GraphBuilder()
    x = b.input("x", 2)
    b.output(b.concat([b.exp(b.gather(x, [0])), b.gather(x, [1])]))
    g = b.build()
    lo = torch.tensor([0.0, 1.0], dtype=torch.float64)
    hi = torch.tensor([1000.0, 3.0], dtype=torch.float64)
    spec = torch.tensor([[0.5, 2.0]], dtype=torch.float64)
    r = compute_bounds(g, lo, hi, method="ibp", spec=spec)
    low = float(r.lower.reshape(-1)[0])
    assert math.isfinite(low) and low <= 2.5
    assert float(r.upper.reshape(-1)[0]) == math.inf
