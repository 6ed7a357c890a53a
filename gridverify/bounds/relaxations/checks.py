"""Soundness checks of relaxations by dense sampling (used by the tests; handy for new ops).

The measure is the violation in units of the rounding of the check itself:
``(line(x) - f(x)) / (eps64 * (|f(x)| + |w x| + |b|) + tiny)`` for the lower line
(and the mirror for the upper line), evaluated in float64 with the
coefficients converted exactly to float64.  A sound relaxation scores ``<= 0``
up to the few ulps of the float64 evaluation of ``f`` and of the line; a value
of a few units or more means the line crosses the function.

Sampling: ``n`` evenly spaced points including both endpoints, ``n`` uniform
random points, then a second dense pass of ``n`` points around the worst
sample of each element (so that a line that is slightly wrong near a tangent
point is still caught).  An infinite end is sampled out to :data:`FAR` beyond
the other end, and at offsets from ``1e-3`` to ``FAR`` from it.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from gridverify.bounds.relaxations.base import BilinearRelaxation, UnaryRelaxation

F64 = torch.float64
EPS64 = torch.finfo(F64).eps
TINY = 1e-300


class Violation(NamedTuple):
    """Worst scaled violations (ulps; ``<= ~4`` is sound) of each part of a relaxation."""

    lower: float
    upper: float
    interval_lower: float
    interval_upper: float

    def worst(self) -> float:
        """The largest of the four."""
        return max(self)


#: how far out an infinite end of an interval is sampled
FAR = 1e6


def _stand_ins(l: Tensor, u: Tensor) -> tuple[Tensor, Tensor]:
    """Finite stand-ins for infinite ends: :data:`FAR` beyond the other end (about 0
    when both are infinite)."""
    lf = torch.where(torch.isfinite(l), l, torch.where(torch.isfinite(u), u, 0.0) - FAR)
    uf = torch.where(torch.isfinite(u), u, torch.where(torch.isfinite(l), l, 0.0) + FAR)
    return lf, uf


def _grid(l: Tensor, u: Tensor, n: int, gen: torch.Generator | None) -> Tensor:
    lf, uf = _stand_ins(l, u)
    t = torch.linspace(0.0, 1.0, n, dtype=F64, device=l.device)
    t = t.view(-1, *([1] * l.dim()))
    r = torch.rand((n, *l.shape), dtype=F64, generator=gen).to(l.device)
    parts = [lf + (uf - lf) * t, lf + (uf - lf) * r]
    if not bool((torch.isfinite(l) & torch.isfinite(u)).all()):
        # out along an infinite end: offsets from 1e-3 to FAR from the finite end
        off = torch.logspace(-3.0, 6.0, n, dtype=F64, device=l.device)
        off = off.view(-1, *([1] * l.dim()))
        start = torch.where(torch.isfinite(l), l, torch.where(torch.isfinite(u), u, 0.0))
        parts += [start + off, start - off]
    x = torch.cat(parts)
    return torch.minimum(torch.maximum(x, l), u)


def _scaled(gap: Tensor, fx: Tensor, wx: Tensor, b: Tensor) -> Tensor:
    """``gap`` (positive = violation) in units of the float64 rounding of the check.
    Where ``f(x)`` overflows to an infinity the check is exact: ``inf`` when the
    bound does not reach it (``gap > 0``), ``-inf`` when it does."""
    scale = EPS64 * (fx.abs() + wx.abs() + b.abs()) + TINY
    v = gap / scale
    v = torch.where(torch.isnan(v), torch.full_like(v, float("inf")), v)
    inf = torch.full_like(v, float("inf"))
    return torch.where(torch.isinf(fx), torch.where(gap > 0, inf, -inf), v)


def _line_viol(f, x: Tensor, w: Tensor, b: Tensor, upper: bool) -> Tensor:  # noqa: ANN001
    fx = f(x)
    wx = torch.where(w == 0, torch.zeros_like(x), w * x)
    line = wx + b
    gap = fx - line if upper else line - fx
    v = _scaled(gap, fx, wx, b)
    no_bound = (w == 0) & (b == (float("inf") if upper else -float("inf")))
    return torch.where(no_bound & torch.isfinite(fx), torch.full_like(v, -float("inf")), v)


def _refine(l: Tensor, u: Tensor, x: Tensor, viol: Tensor, n: int) -> Tensor:
    """``n`` points spread around the worst sample of each element."""
    idx = viol.argmax(0, keepdim=True)
    xw = x.gather(0, idx).squeeze(0)
    lf, uf = _stand_ins(l, u)
    h = (uf - lf) / max(n, 2) * 4.0
    t = torch.linspace(-1.0, 1.0, n, dtype=F64, device=l.device).view(-1, *([1] * l.dim()))
    xr = xw + h * t
    return torch.minimum(torch.maximum(xr, l), u)


def unary_violation(
    entry: UnaryRelaxation,
    l: Tensor,
    u: Tensor,
    alpha: Tensor | None = None,
    n: int = 1000,
    seed: int = 0,
) -> Violation:
    """Worst violations of ``entry.relax(l, u, alpha)`` and ``entry.interval(l, u)``.

    ``l``/``u`` may be of any float dtype (the relaxation is computed in it);
    the true function is always evaluated in float64.
    """
    gen = torch.Generator().manual_seed(seed)
    rel = entry.relax(l, u, alpha)
    lo, hi = entry.interval(l, u)
    for t in (*rel, lo, hi):
        if bool(torch.isnan(t).any()):
            return Violation(*(float("inf"),) * 4)
    l64, u64 = l.detach().to(F64), u.detach().to(F64)
    lw, lb, uw, ub = (t.detach().to(F64) for t in rel)
    lo, hi = lo.detach().to(F64), hi.detach().to(F64)
    f = entry.func
    x = _grid(l64, u64, n, gen)
    out = []
    for w, b, upper in ((lw, lb, False), (uw, ub, True)):
        v = _line_viol(f, x, w, b, upper)
        xr = _refine(l64, u64, x, v, n)
        v2 = _line_viol(f, xr, w, b, upper)
        out.append(max(float(v.max()), float(v2.max())))
    fx = f(x)
    zero = torch.zeros_like(fx)
    out.append(float(_scaled(lo - fx, fx, zero, zero).max()))
    out.append(float(_scaled(fx - hi, fx, zero, zero).max()))
    return Violation(*out)


def bilinear_violation(
    rel: BilinearRelaxation,
    lx: Tensor,
    ux: Tensor,
    ly: Tensor,
    uy: Tensor,
    interval: tuple[Tensor, Tensor] | None = None,
    n: int = 40,
) -> float:
    """Worst scaled violation of McCormick planes (and optionally an interval) on an
    ``n x n`` grid of the box that includes its corners."""
    lx, ux, ly, uy = (t.detach().to(F64) for t in (lx, ux, ly, uy))
    lwx, lwy, lb, uwx, uwy, ub = (t.detach().to(F64) for t in rel)
    t = torch.linspace(0.0, 1.0, n, dtype=F64, device=lx.device)
    shape = (n, 1) + (1,) * lx.dim()
    x = torch.minimum(torch.maximum(lx + (ux - lx) * t.view(shape), lx), ux)
    y = ly + (uy - ly) * t.view((1, n) + (1,) * lx.dim())
    y = torch.minimum(torch.maximum(y, ly), uy)
    xy = x * y
    lowp = lwx * x + lwy * y + lb
    upp = uwx * x + uwy * y + ub
    sc_l = EPS64 * (xy.abs() + (lwx * x).abs() + (lwy * y).abs() + lb.abs()) + TINY
    sc_u = EPS64 * (xy.abs() + (uwx * x).abs() + (uwy * y).abs() + ub.abs()) + TINY
    worst = max(float(((lowp - xy) / sc_l).max()), float(((xy - upp) / sc_u).max()))
    if interval is not None:
        lo, hi = (t.detach().to(F64) for t in interval)
        sc = EPS64 * xy.abs() + TINY
        worst = max(worst, float(((lo - xy) / sc).max()), float(((xy - hi) / sc).max()))
    return worst
