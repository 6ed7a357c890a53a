"""Trigonometric ops: sin and cos.

Interval: the values at the endpoints, widened to +-1 when a maximum
(``pi/2 + 2 pi n`` for sin, ``2 pi n`` for cos) or minimum lies in ``[l, u]``;
the test "some ``n`` has ``l <= c + 2 pi n <= u``" is done on ``(l - c) / 2 pi``
with a tolerance that covers its rounding, so it can only err towards the
wider (still sound) interval.  Intervals spanning a period give ``[-1, 1]``.

Relaxation: the generic exact-offset engine of
:mod:`gridverify.bounds.relaxations.smooth`.  For a slope ``k`` the critical
points of ``sin(x) - k x`` are ``x = +-acos(k) + 2 pi n`` (for cos,
``x = -asin(k) + 2 pi n`` and ``pi + asin(k) + 2 pi n``).  The values at the
local maxima (or minima) of one family are affine in ``n``, so only the
smallest and largest ``n`` with a point in ``[l, u]`` matter; we also include
their neighbours, so an off-by-one from rounding ``n`` cannot drop the extreme
point.  With the endpoints, the extremum of ``f(x) - k x`` is exact for every
slope, so every alpha (slope in the range of ``f'`` on ``[l, u]``) is sound.
The default is the least-area line: on a concave or convex piece the midpoint
tangent and the chord, across an inflection the tangent through an endpoint,
and over more than a period a line of slope near 0 at height +-1.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial

import torch
from torch import Tensor

from gridverify.bounds.relaxations._common import EPS64, pad_interval
from gridverify.bounds.relaxations.base import UnaryRelaxation
from gridverify.bounds.relaxations.smooth import SmoothOp, make_unary

TWO_PI = 2.0 * math.pi


def hits(c: float, l: Tensor, u: Tensor) -> Tensor:
    """Mask of elements where some ``c + 2 pi n`` may lie in ``[l, u]`` (never a false no)."""
    tl = (l - c) / TWO_PI
    tu = (u - c) / TWO_PI
    tol = 64.0 * EPS64 * (1.0 + tl.abs() + tu.abs())
    return (torch.floor(tu + tol) >= torch.ceil(tl - tol)) | ~torch.isfinite(tl + tu)


def _periodic_interval(
    f: Callable[[Tensor], Tensor], l: Tensor, u: Tensor, c_max: float, c_min: float
) -> tuple[Tensor, Tensor]:
    fl, fu = f(l), f(u)
    lo, hi = pad_interval(torch.minimum(fl, fu), torch.maximum(fl, fu))
    one = torch.ones_like(l)
    wide = ~((u - l) < TWO_PI)  # also catches NaN/inf widths
    hi = torch.where(hits(c_max, l, u) | wide, one, hi.clamp(max=1.0))
    lo = torch.where(hits(c_min, l, u) | wide, -one, lo.clamp(min=-1.0))
    return lo, hi


def sin_interval64(l: Tensor, u: Tensor) -> tuple[Tensor, Tensor]:
    """Sound float64 enclosure of ``sin([l, u])``."""
    return _periodic_interval(torch.sin, l, u, 0.5 * math.pi, -0.5 * math.pi)


def cos_interval64(l: Tensor, u: Tensor) -> tuple[Tensor, Tensor]:
    """Sound float64 enclosure of ``cos([l, u])``."""
    return _periodic_interval(torch.cos, l, u, 0.0, math.pi)


def _family(base: Tensor, l: Tensor, u: Tensor) -> list[Tensor]:
    """The points ``base + 2 pi n`` for the extreme ``n`` in ``[l, u]`` and their neighbours."""
    n_lo = torch.ceil((l - base) / TWO_PI)
    n_hi = torch.floor((u - base) / TWO_PI)
    return [base + TWO_PI * n for n in (n_lo - 1.0, n_lo, n_hi, n_hi + 1.0)]


def _family_ends(base: Tensor, l: Tensor, u: Tensor) -> list[Tensor]:
    """The points ``base + 2 pi n`` for the extreme ``n`` only (for the slope search)."""
    n_lo = torch.ceil((l - base) / TWO_PI)
    n_hi = torch.floor((u - base) / TWO_PI)
    return [base + TWO_PI * n_lo, base + TWO_PI * n_hi]


def _sin_crit_search(k: Tensor, l: Tensor, u: Tensor) -> list[Tensor]:
    a = torch.acos(k.clamp(-1.0, 1.0))
    return _family_ends(a, l, u) + _family_ends(-a, l, u)


def _cos_crit_search(k: Tensor, l: Tensor, u: Tensor) -> list[Tensor]:
    a = torch.asin(k.clamp(-1.0, 1.0))
    return _family_ends(-a, l, u) + _family_ends(math.pi + a, l, u)


def _sin_crit(k: Tensor, l: Tensor, u: Tensor) -> list[Tensor]:
    a = torch.acos(k.clamp(-1.0, 1.0))
    return _family(a, l, u) + _family(-a, l, u)


def _cos_crit(k: Tensor, l: Tensor, u: Tensor) -> list[Tensor]:
    a = torch.asin(k.clamp(-1.0, 1.0))
    return _family(-a, l, u) + _family(math.pi + a, l, u)


def _sin_fp_range(l: Tensor, u: Tensor) -> tuple[Tensor, Tensor]:
    lo, hi = cos_interval64(l, u)
    return lo.clamp(min=-1.0), hi.clamp(max=1.0)


def _cos_fp_range(l: Tensor, u: Tensor) -> tuple[Tensor, Tensor]:
    lo, hi = sin_interval64(l, u)
    return (-hi).clamp(min=-1.0), (-lo).clamp(max=1.0)


def _curvature(f: Callable[[Tensor], Tensor], c: float, l: Tensor, u: Tensor) -> Tensor:
    """-sign(f(midpoint)) when no inflection ``c + n pi`` may lie inside ``(l, u)``, else 0."""
    tl = (l - c) / math.pi
    tu = (u - c) / math.pi
    tol = 64.0 * EPS64 * (1.0 + tl.abs() + tu.abs())
    maybe = (torch.floor(tu + tol) >= torch.ceil(tl - tol)) | ~torch.isfinite(tl + tu)
    sign = -torch.sign(f(0.5 * (l + u)))
    return torch.where(maybe, torch.zeros_like(l), sign)


def _crit_pad(l: Tensor, u: Tensor) -> Tensor:
    """Bound on ``h(x*) - h(c)`` for a computed critical point ``c = base + 2 pi n``.

    ``c`` is within ``delta = 4 eps (max|x| + 8)`` of the true ``x*`` (rounding of
    ``base``, of the constant ``2 pi`` times ``n`` and of the sum) and
    ``h'(x*) = 0``, ``|h''| <= 1``, so the loss is at most ``delta^2 / 2``; we pad
    by four times that.
    """
    m = torch.maximum(l.abs(), u.abs())
    m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
    delta = 4.0 * EPS64 * (m + 8.0)
    return 2.0 * delta * delta


def _neg_sin(x: Tensor) -> Tensor:
    return -torch.sin(x)


SIN_OP = SmoothOp(
    "sin", torch.sin, torch.cos, _sin_fp_range, _sin_crit, sin_interval64,
    partial(_curvature, torch.sin, 0.0), TWO_PI, _sin_crit_search, _crit_pad,
)
COS_OP = SmoothOp(
    "cos", torch.cos, _neg_sin, _cos_fp_range, _cos_crit, cos_interval64,
    partial(_curvature, torch.cos, 0.5 * math.pi), TWO_PI, _cos_crit_search, _crit_pad,
)
SIN: UnaryRelaxation = make_unary(SIN_OP, torch.sin)
COS: UnaryRelaxation = make_unary(COS_OP, torch.cos)
