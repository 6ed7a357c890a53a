"""S-shaped ops: sigmoid, tanh, erf, atan (convex left of 0, concave right) and odd powers x^p.

``x^p`` for odd ``p >= 3`` is concave left of 0 and convex right, so it is
S-shaped as well (inflection at 0).  All three go through the generic engine of
:mod:`gridverify.bounds.relaxations.smooth`: the slope is chosen (by least area
by default, by alpha otherwise) and the offsets are the exact extrema of
``f(x) - k x`` over the endpoints and the two critical points ``f'(x) = k``:

* sigmoid: ``f'(x) = 1 / (4 cosh^2(x/2))``, so ``x = +-2 acosh(1 / (2 sqrt k))``;
* tanh: ``f'(x) = 1 / cosh^2 x``, so ``x = +-acosh(1 / sqrt k)``;
* erf: ``f'(x) = (2 / sqrt pi) exp(-x^2)``, so ``x = +-sqrt(log(2 / (sqrt(pi) k)))``;
* atan: ``f'(x) = 1 / (1 + x^2)``, so ``x = +-sqrt(1 / k - 1)``;
* ``x^p``: ``f'(x) = p x^(p-1)``, so ``x = +-(k / p)^(1 / (p - 1))``.

Since ``f'`` is even and unimodal (or monotone in ``|x|``) for all five, those
are all the critical points, so the offsets are the true extrema: every
``alpha`` is sound.  On an interval inside one convex or concave piece the
default lines are the chord and the midpoint tangent; across the inflection
the least-area line is the tangent from an endpoint (or the chord when the
tangent point falls outside).  The derivatives are evaluated in forms that do
not lose precision or overflow for large ``|x|``.
"""

from __future__ import annotations

import math
from functools import partial

import torch
from torch import Tensor

from gridverify.bounds.relaxations._common import pad_interval
from gridverify.bounds.relaxations.base import UnaryRelaxation
from gridverify.bounds.relaxations.smooth import SmoothOp, make_unary

_KMIN = 1e-300


def _acosh(y: Tensor) -> Tensor:
    """``acosh(y)`` for ``y >= 1`` (faster than ``torch.acosh`` on CPU; ``y <= 1e150`` here)."""
    return torch.log(y + torch.sqrt((y - 1.0) * (y + 1.0)))


def _near_far(l: Tensor, u: Tensor) -> tuple[Tensor, Tensor]:
    """``min |x|`` and ``max |x|`` over ``[l, u]``."""
    cross = (l <= 0) & (u >= 0)
    near = torch.where(cross, torch.zeros_like(l), torch.minimum(l.abs(), u.abs()))
    return near, torch.maximum(l.abs(), u.abs())


def _curv_convex_left(l: Tensor, u: Tensor) -> Tensor:
    """+1 on ``u <= 0``, -1 on ``l >= 0``, 0 across 0 (sigmoid, tanh)."""
    one = torch.ones_like(l)
    return torch.where(u <= 0, one, torch.where(l >= 0, -one, torch.zeros_like(l)))


def _curv_concave_left(l: Tensor, u: Tensor) -> Tensor:
    """-1 on ``u <= 0``, +1 on ``l >= 0``, 0 across 0 (odd powers)."""
    return -_curv_convex_left(l, u)


def _even_fp_range(fp, l: Tensor, u: Tensor) -> tuple[Tensor, Tensor]:  # noqa: ANN001
    """Range of an even derivative that decreases in ``|x|`` (sigmoid, tanh, erf)."""
    near, far = _near_far(l, u)
    return fp(far), fp(near)


def _bounded_interval(f, lo_lim: float, hi_lim: float, l: Tensor,  # noqa: ANN001
                      u: Tensor) -> tuple[Tensor, Tensor]:
    """Padded image of an increasing ``f`` kept inside its range ``[lo_lim, hi_lim]``."""
    lo, hi = pad_interval(f(l), f(u))
    return lo.clamp(min=lo_lim), hi.clamp(max=hi_lim)


# ---------------------------------------------------------------- sigmoid
def _sigmoid_fp(x: Tensor) -> Tensor:
    e = torch.exp(-x.abs())
    return e / (1.0 + e) ** 2


def _sigmoid_crit(k: Tensor, l: Tensor, u: Tensor) -> list[Tensor]:
    kc = k.clamp(_KMIN, 0.25)
    x = 2.0 * _acosh((0.5 / torch.sqrt(kc)).clamp(min=1.0))
    return [x, -x]


SIGMOID_OP = SmoothOp(
    "sigmoid",
    torch.sigmoid,
    _sigmoid_fp,
    partial(_even_fp_range, _sigmoid_fp),
    _sigmoid_crit,
    partial(_bounded_interval, torch.sigmoid, 0.0, 1.0),
    _curv_convex_left,
)
SIGMOID: UnaryRelaxation = make_unary(SIGMOID_OP, torch.sigmoid)


# ---------------------------------------------------------------- tanh
def _tanh_fp(x: Tensor) -> Tensor:
    e = torch.exp(-2.0 * x.abs())
    return 4.0 * e / (1.0 + e) ** 2


def _tanh_crit(k: Tensor, l: Tensor, u: Tensor) -> list[Tensor]:
    kc = k.clamp(_KMIN, 1.0)
    x = _acosh((1.0 / torch.sqrt(kc)).clamp(min=1.0))
    return [x, -x]


TANH_OP = SmoothOp(
    "tanh", torch.tanh, _tanh_fp, partial(_even_fp_range, _tanh_fp), _tanh_crit,
    partial(_bounded_interval, torch.tanh, -1.0, 1.0), _curv_convex_left,
)
TANH: UnaryRelaxation = make_unary(TANH_OP, torch.tanh)


# ---------------------------------------------------------------- erf
_ERF_FP0 = 2.0 / math.sqrt(math.pi)


def _erf_fp(x: Tensor) -> Tensor:
    return _ERF_FP0 * torch.exp(-x * x)


def _erf_crit(k: Tensor, l: Tensor, u: Tensor) -> list[Tensor]:
    kc = k.clamp(_KMIN, _ERF_FP0)
    x = torch.sqrt(torch.log(_ERF_FP0 / kc).clamp(min=0.0))
    return [x, -x]


ERF_OP = SmoothOp(
    "erf", torch.erf, _erf_fp, partial(_even_fp_range, _erf_fp), _erf_crit,
    partial(_bounded_interval, torch.erf, -1.0, 1.0), _curv_convex_left,
)
ERF: UnaryRelaxation = make_unary(ERF_OP, torch.erf)


# ---------------------------------------------------------------- atan
def _atan_fp(x: Tensor) -> Tensor:
    return 1.0 / (1.0 + x * x)


def _atan_crit(k: Tensor, l: Tensor, u: Tensor) -> list[Tensor]:
    kc = k.clamp(_KMIN, 1.0)
    x = torch.sqrt((1.0 / kc - 1.0).clamp(min=0.0))
    return [x, -x]


# the float64 pi / 2 lies below the true one: the enclosure may reach the next float
_HALF_PI_UP = math.nextafter(math.pi / 2, math.inf)

ATAN_OP = SmoothOp(
    "atan", torch.atan, _atan_fp, partial(_even_fp_range, _atan_fp), _atan_crit,
    partial(_bounded_interval, torch.atan, -_HALF_PI_UP, _HALF_PI_UP), _curv_convex_left,
)
ATAN: UnaryRelaxation = make_unary(ATAN_OP, torch.atan)


# ---------------------------------------------------------------- odd powers
def _pow(x: Tensor, p: int) -> Tensor:
    return torch.pow(x, p)


def _odd_fp(p: int, x: Tensor) -> Tensor:
    return p * torch.pow(x, p - 1)


def _odd_fp_range(p: int, l: Tensor, u: Tensor) -> tuple[Tensor, Tensor]:
    near, far = _near_far(l, u)
    return p * near ** (p - 1), p * far ** (p - 1)


def _odd_crit(p: int, k: Tensor, l: Tensor, u: Tensor) -> list[Tensor]:
    x = (k.clamp(min=0.0) / p) ** (1.0 / (p - 1))
    return [x, -x]


def _odd_interval(p: int, l: Tensor, u: Tensor) -> tuple[Tensor, Tensor]:
    return pad_interval(_pow(l, p), _pow(u, p))


def odd_power(p: int) -> UnaryRelaxation:
    """The table entry of ``x^p`` for an odd ``p >= 3``."""
    if p < 3 or p % 2 == 0:
        raise ValueError(f"odd_power needs an odd exponent >= 3, got {p}")
    op = SmoothOp(
        f"pow{p}",
        partial(_pow, p=p),
        partial(_odd_fp, p),
        partial(_odd_fp_range, p),
        partial(_odd_crit, p),
        partial(_odd_interval, p),
        _curv_concave_left,
    )
    return make_unary(op, partial(_pow, p=p))
