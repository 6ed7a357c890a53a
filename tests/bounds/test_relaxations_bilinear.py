"""Soundness and tightness of the product relaxation (McCormick with a mixing parameter)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gridverify.bounds.relaxations import interval_mul, relax_mul
from gridverify.bounds.relaxations.checks import bilinear_violation

F64 = torch.float64
TOL = 4.0

BOXES = [
    # (lx, ux, ly, uy)
    (-1.0, 2.0, -3.0, 0.5),
    (0.0, 0.0, -1.0, 1.0),
    (1.0, 1.0, 2.0, 2.0),
    (-50.0, 50.0, -50.0, 50.0),
    (1e-9, 2e-9, -1e-9, 1e-9),
    (0.9, 1.1, 0.95, 1.05),
    (-3.0, -1.0, 2.0, 5.0),
    (-1e6, 1e6, 1e-3, 2e-3),
    (0.3, 0.3 + 1e-12, -7.0, 7.0),
    (-2.0, -1.0, -4.0, -3.0),
]


def _tensors(boxes, dtype=F64):  # noqa: ANN001, ANN202
    return [torch.tensor([b[i] for b in boxes], dtype=dtype) for i in range(4)]


def _alphas(n: int, seed: int, dtype: torch.dtype = F64) -> list[torch.Tensor | None]:
    g = torch.Generator().manual_seed(seed)
    return [
        None,
        torch.zeros(2, n, dtype=dtype),
        torch.ones(2, n, dtype=dtype),
        torch.rand(2, n, generator=g, dtype=F64).to(dtype),
    ]


def test_curated_boxes_are_sound() -> None:
    lx, ux, ly, uy = _tensors(BOXES)
    iv = interval_mul(lx, ux, ly, uy)
    for alpha in _alphas(len(BOXES), 0):
        rel = relax_mul(lx, ux, ly, uy, alpha)
        assert bilinear_violation(rel, lx, ux, ly, uy, iv, n=40) <= TOL


def _ordered(a: float, b: float) -> tuple[float, float]:
    return (a, b) if a <= b else (b, a)


@st.composite
def box(draw: st.DrawFn) -> tuple[float, float, float, float]:
    scale = draw(st.sampled_from([1e-6, 1.0, 10.0, 100.0]))
    fl = st.floats(-scale, scale)
    lx, ux = _ordered(draw(fl), draw(fl))
    ly, uy = _ordered(draw(fl), draw(fl))
    if draw(st.booleans()):
        ux = lx + draw(st.sampled_from([0.0, 1e-12, 1e-6])) * scale
    return lx, ux, ly, uy


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(boxes=st.lists(box(), min_size=1, max_size=8), seed=st.integers(0, 2**31 - 1))
def test_random_boxes_are_sound(boxes: list, seed: int) -> None:
    lx, ux, ly, uy = _tensors(boxes)
    iv = interval_mul(lx, ux, ly, uy)
    for alpha in _alphas(len(boxes), seed):
        rel = relax_mul(lx, ux, ly, uy, alpha)
        assert bilinear_violation(rel, lx, ux, ly, uy, iv, n=32) <= TOL


def test_float32_boxes_are_sound_against_float64_product() -> None:
    g = torch.Generator().manual_seed(3)
    a = (torch.rand(4, 500, generator=g, dtype=F64) - 0.5) * 200
    lx, ux = torch.minimum(a[0], a[1]).float(), torch.maximum(a[0], a[1]).float()
    ly, uy = torch.minimum(a[2], a[3]).float(), torch.maximum(a[2], a[3]).float()
    iv = interval_mul(lx, ux, ly, uy)
    assert iv[0].dtype == torch.float32
    for alpha in _alphas(500, 1, torch.float32):
        rel = relax_mul(lx, ux, ly, uy, alpha)
        assert all(t.dtype == torch.float32 and t.shape == lx.shape for t in rel)
        assert bilinear_violation(rel, lx, ux, ly, uy, iv, n=24) <= TOL


def test_planes_are_the_mccormick_planes_and_tight_at_corners() -> None:
    lx, ux, ly, uy = (torch.tensor([v], dtype=F64) for v in (-1.0, 2.0, -3.0, 0.5))
    one = torch.ones(2, 1, dtype=F64)
    rel = relax_mul(lx, ux, ly, uy, one)  # L1 and U1
    assert torch.allclose(rel.lwx, ly) and torch.allclose(rel.lwy, lx)
    assert torch.allclose(rel.uwx, uy) and torch.allclose(rel.uwy, lx)
    # L1 is exact on the two edges x = lx and y = ly; U1 on x = lx and y = uy
    for x, y in ((lx, ly), (lx, uy), (ux, ly)):
        assert torch.allclose(rel.lwx * x + rel.lwy * y + rel.lb, x * y, atol=1e-12)
    for x, y in ((lx, ly), (lx, uy), (ux, uy)):
        assert torch.allclose(rel.uwx * x + rel.uwy * y + rel.ub, x * y, atol=1e-12)
    iv = interval_mul(lx, ux, ly, uy)
    assert torch.allclose(iv[0], torch.tensor([-6.0], dtype=F64))
    assert torch.allclose(iv[1], torch.tensor([3.0], dtype=F64))


def test_default_mix_is_half_and_alpha_is_differentiable() -> None:
    lx, ux, ly, uy = _tensors(BOXES)
    half = torch.full((2, len(BOXES)), 0.5, dtype=F64)
    d, h = relax_mul(lx, ux, ly, uy), relax_mul(lx, ux, ly, uy, half)
    for a, b in zip(d, h):
        assert torch.equal(a, b)
    alpha = half.clone().requires_grad_(True)
    rel = relax_mul(lx, ux, ly, uy, alpha)
    (rel.lb.sum() + rel.ub.sum() + rel.lwx.sum()).backward()
    assert alpha.grad is not None and torch.isfinite(alpha.grad).all()


def test_infinite_bounds_give_no_nan() -> None:
    inf = float("inf")
    lx, ux, ly, uy = _tensors([(0.0, 1.0, 0.0, inf), (-inf, inf, 1.0, 2.0)])
    lo, hi = interval_mul(lx, ux, ly, uy)
    rel = relax_mul(lx, ux, ly, uy)
    for t in (lo, hi, *rel):
        assert not torch.isnan(t).any()
    assert hi[0] == inf and -1e-300 < lo[0] <= 0.0


@pytest.mark.parametrize("shape", [(3,), (2, 5), (4, 1, 3)])
def test_shapes_are_kept(shape: tuple[int, ...]) -> None:
    g = torch.Generator().manual_seed(0)
    a = torch.randn(4, *shape, generator=g, dtype=F64)
    lx, ux = torch.minimum(a[0], a[1]), torch.maximum(a[0], a[1])
    ly, uy = torch.minimum(a[2], a[3]), torch.maximum(a[2], a[3])
    rel = relax_mul(lx, ux, ly, uy, torch.rand(2, *shape, dtype=F64))
    assert all(t.shape == shape for t in rel)


@pytest.mark.parametrize("seed", range(3))
def test_planes_hold_exactly_at_the_corners(seed: int) -> None:
    """In exact rational arithmetic, with the planes' float64 coefficients: each plane
    lies on the right side of ``x y`` at the four corners, where McCormick's planes
    touch the product, so float64 rounding of their offsets would show (the
    sampling check forgives a few ulps)."""
    from fractions import Fraction

    g = torch.Generator().manual_seed(seed)
    n = 400
    c = (torch.rand(2, n, generator=g, dtype=F64) - 0.5) * 10
    w = torch.rand(2, n, generator=g, dtype=F64) * torch.tensor([[1e-3], [3.0]], dtype=F64)
    lx, ly = c[0], c[1]
    ux, uy = lx + w[0], ly + w[1]
    for alpha in _alphas(n, seed):
        r = relax_mul(lx, ux, ly, uy, alpha)
        cols = [t.tolist() for t in (lx, ux, ly, uy, *r)]
        for i in range(n):
            bx = [Fraction(cols[k][i]) for k in range(4)]
            lwx, lwy, lb, uwx, uwy, ub = (Fraction(cols[k][i]) for k in range(4, 10))
            for x in bx[:2]:
                for y in bx[2:]:
                    assert lwx * x + lwy * y + lb <= x * y, (i, float(x), float(y))
                    assert uwx * x + uwy * y + ub >= x * y, (i, float(x), float(y))
