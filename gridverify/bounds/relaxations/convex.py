"""Convex and concave ops: exp, softplus, reciprocal, sqrt, square and even powers.

On an interval where ``f`` is convex the chord is the best upper line (the
concave envelope) and every tangent is a lower line; for concave ``f`` the roles
swap.  Offsets are computed exactly anyway -- the chord's as the extremum of
``f(x) - s x`` over the two endpoints (exact for convex ``f`` whatever ``s``),
the tangent's as the extremum over ``{l, u, t}`` (``t`` is the minimizer of the
convex ``f(x) - f'(t) x``) -- so rounding of the slopes cannot break soundness.
``alpha[0]`` is the tangent point ``t = l + alpha (u - l)``; the default 0.5
(midpoint) is the tangent of least area.

* ``exp``: convex.  The tangent point is capped at ``log(max(dtype)) - 8`` so its
  slope and offset stay finite; when ``exp(u)`` would overflow that cap the
  upper line is ``+inf`` (no bound).  The interval's lower end uses
  ``exp(min(l, 709))``, which never overflows.
* ``softplus``: ``log(1 + exp(x))``, convex and increasing everywhere (evaluated
  as ``logaddexp(x, 0)``, which neither overflows nor, unlike torch's
  ``softplus``, switches to the identity for large ``x``); a node with a
  ``threshold`` attribute is torch's softplus, which does switch
  (:func:`softplus_above`).
* ``reciprocal``: convex on ``l > 0``, concave on ``u < 0`` (handled as
  ``-1/y`` with ``y = -x``); an interval containing 0 gives the no-bound
  relaxation (``-inf``/``+inf`` constants) and ``domain`` reports it.
* ``sqrt``: chord below, tangent above, with the exact offsets taken over
  ``{l, 0, t, u}``; an interval reaching below 0 (where torch's sqrt is NaN, so
  that no bound holds) gives the no-bound relaxation (``-inf``/``+inf``
  constants), as reciprocal's interval containing 0 does, and ``domain``
  reports it: a constraint through it is never certified.
* ``square`` and ``x^p`` for even ``p``: convex everywhere.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import cache, partial

import torch
from torch import Tensor

from gridverify.bounds.relaxations._common import (
    INF,
    as64,
    finalize,
    out_interval,
    pad_interval,
    safe_div,
    split_alpha,
)
from gridverify.bounds.relaxations.base import Relaxation, UnaryRelaxation
from gridverify.ir.ops import softplus, softplus_drop

Fn = Callable[[Tensor], Tensor]


def _extreme(f: Fn, xs: list[Tensor], k: Tensor, upper: bool) -> Tensor:
    """``max`` (upper) or ``min`` of ``f(x) - k x`` over the candidate points ``xs``."""
    best = f(xs[0]) - k * xs[0]
    for x in xs[1:]:
        v = f(x) - k * x
        best = torch.maximum(best, v) if upper else torch.minimum(best, v)
    return best


def _tangent_point(l: Tensor, u: Tensor, alpha: Tensor | None) -> Tensor:
    (a,) = split_alpha(alpha, 1)
    if a is None:
        a = torch.full_like(l, 0.5)
    return l + a * (u - l)


def _half_alpha(l: Tensor, u: Tensor) -> Tensor:
    """Default alpha of the one-parameter ops (the midpoint tangent), ``(1, *l.shape)``."""
    return torch.full((1, *l.shape), 0.5, dtype=l.dtype, device=l.device)


def convex_lines(
    f: Fn, fp: Fn, l: Tensor, u: Tensor, t: Tensor
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Tangent at ``t`` (lower) and chord (upper) of a convex ``f`` on ``[l, u]``, float64."""
    fl, fu = f(l), f(u)
    s = safe_div(fu - fl, u - l, fp(0.5 * (l + u)))
    ub = torch.maximum(fl - s * l, fu - s * u)
    k = fp(t)
    lb = _extreme(f, [l, u, t], k, upper=False)
    return k, lb, s, ub


# ---------------------------------------------------------------- exp
_EXP_MAX_ARG = 709.0  # exp(709) < max float64


def _exp_interval64(l: Tensor, u: Tensor) -> tuple[Tensor, Tensor]:
    return pad_interval(torch.exp(l.clamp(max=_EXP_MAX_ARG)), torch.exp(u))


def exp_relax(l: Tensor, u: Tensor, alpha: Tensor | None = None) -> Relaxation:
    """Relaxation of exp on ``[l, u]`` (``alpha[0]``: lower tangent point)."""
    dtype = l.dtype
    l64, u64 = as64(l), as64(u)
    cap = math.log(torch.finfo(dtype).max) - 8.0
    t = _tangent_point(l64, u64, alpha).clamp(max=cap)
    lc, uc = l64.clamp(max=cap), u64.clamp(max=cap)
    k, lb, s, ub = convex_lines(torch.exp, torch.exp, lc, uc, t)
    over = u64 > cap
    s = torch.where(over, torch.zeros_like(s), s)
    ub = torch.where(over, torch.full_like(ub, INF), ub)
    lo, hi = _exp_interval64(l64, u64)
    return finalize(k, lb, s, ub, l64, u64, lo, hi, dtype)


EXP = UnaryRelaxation(
    op="exp",
    interval=lambda l, u: out_interval(*_exp_interval64(as64(l), as64(u)), l.dtype),
    relax=exp_relax,
    n_alpha=1,
    init_alpha=_half_alpha,
    func=torch.exp,
)


# ---------------------------------------------------------------- softplus
def _softplus_interval64(l: Tensor, u: Tensor, threshold: float | None = None
                         ) -> tuple[Tensor, Tensor]:
    lo, hi = pad_interval(softplus(l), softplus(u))
    return lo - _drop(u, threshold), hi


def _drop(u: Tensor, threshold: float | None) -> Tensor | float:
    """How far below ``log(1 + exp(x))`` the thresholded softplus may lie on ``[l, u]``:
    :func:`~gridverify.ir.ops.softplus_drop` (padded) where ``u`` is above the threshold."""
    if threshold is None:
        return 0.0
    d = softplus_drop(threshold) * (1.0 + 1e-9)
    return torch.where(u > threshold, torch.full_like(u, d), torch.zeros_like(u))


def softplus_relax(l: Tensor, u: Tensor, alpha: Tensor | None = None,
                   threshold: float | None = None) -> Relaxation:
    """Relaxation of ``log(1 + exp(x))`` on ``[l, u]`` (``alpha[0]``: lower tangent point).

    With a ``threshold`` (torch's softplus, the identity above it), which lies
    below ``log(1 + exp(x))`` by at most ``log(1 + exp(-threshold))``: the same
    upper line, the lower line and interval lowered by that much where ``u`` is
    above the threshold."""
    dtype = l.dtype
    l64, u64 = as64(l), as64(u)
    t = _tangent_point(l64, u64, alpha)
    k, lb, s, ub = convex_lines(softplus, torch.sigmoid, l64, u64, t)
    lo, hi = _softplus_interval64(l64, u64, threshold)
    return finalize(k, lb - _drop(u64, threshold), s, ub, l64, u64, lo, hi, dtype)


@cache
def softplus_above(threshold: float | None) -> UnaryRelaxation:
    """The entry of a ``softplus`` node; with a ``threshold`` attribute, torch's
    softplus (``None``: exact ``log(1 + exp(x))``, the table's :data:`SOFTPLUS`)."""
    t = None if threshold is None else float(threshold)
    return UnaryRelaxation(
        op="softplus",
        interval=lambda l, u: out_interval(*_softplus_interval64(as64(l), as64(u), t), l.dtype),
        relax=softplus_relax if t is None else partial(softplus_relax, threshold=t),
        n_alpha=1,
        init_alpha=_half_alpha,
        func=softplus if t is None else partial(softplus, threshold=t),
    )


SOFTPLUS = softplus_above(None)


# ---------------------------------------------------------------- reciprocal
def _recip_fp(x: Tensor) -> Tensor:
    return -1.0 / (x * x)


def _recip_domain(l: Tensor, u: Tensor) -> Tensor:
    return (l > 0) | (u < 0)


def _recip_interval64(l: Tensor, u: Tensor) -> tuple[Tensor, Tensor]:
    ok = _recip_domain(l, u)
    one = torch.ones_like(l)
    lo, hi = pad_interval(1.0 / torch.where(ok, u, one), 1.0 / torch.where(ok, l, one))
    return (
        torch.where(ok, lo, torch.full_like(lo, -INF)),
        torch.where(ok, hi, torch.full_like(hi, INF)),
    )


def reciprocal_relax(l: Tensor, u: Tensor, alpha: Tensor | None = None) -> Relaxation:
    """Relaxation of ``1/x`` on ``[l, u]`` (``alpha[0]``: tangent point of the tangent side)."""
    dtype = l.dtype
    l64, u64 = as64(l), as64(u)
    pos, ok = l64 > 0, _recip_domain(l64, u64)
    one = torch.ones_like(l64)
    # positive image [a, b] of the interval: y = x (pos) or y = -x (neg)
    a = torch.where(ok, torch.where(pos, l64, -u64), one)
    b = torch.where(ok, torch.where(pos, u64, -l64), one)
    k, lb, s, ub = convex_lines(torch.reciprocal, _recip_fp, a, b, _tangent_point(a, b, alpha))
    # x > 0: lower (k, lb), upper (s, ub); x < 0: 1/x = -1/y, y = -x: lower s x - ub, upper k x - lb
    lw = torch.where(pos, k, s)
    lbx = torch.where(pos, lb, -ub)
    uw = torch.where(pos, s, k)
    ubx = torch.where(pos, ub, -lb)
    zero = torch.zeros_like(l64)
    lw, uw = torch.where(ok, lw, zero), torch.where(ok, uw, zero)
    lbx = torch.where(ok, lbx, torch.full_like(lbx, -INF))
    ubx = torch.where(ok, ubx, torch.full_like(ubx, INF))
    lo, hi = _recip_interval64(l64, u64)
    return finalize(lw, lbx, uw, ubx, l64, u64, lo, hi, dtype)


RECIPROCAL = UnaryRelaxation(
    op="reciprocal",
    interval=lambda l, u: out_interval(*_recip_interval64(as64(l), as64(u)), l.dtype),
    relax=reciprocal_relax,
    n_alpha=1,
    init_alpha=_half_alpha,
    func=torch.reciprocal,
    domain=_recip_domain,
)


# ---------------------------------------------------------------- sqrt
def _sqrt_total(x: Tensor) -> Tensor:
    """``sqrt(max(x, 0))``: the function the sqrt relaxation bounds."""
    return torch.sqrt(x.clamp(min=0.0))


def _sqrt_domain(l: Tensor, u: Tensor) -> Tensor:
    return l >= 0


def _sqrt_interval64(l: Tensor, u: Tensor) -> tuple[Tensor, Tensor]:
    lo, hi = pad_interval(_sqrt_total(l), _sqrt_total(u))
    ok = _sqrt_domain(l, u)  # below 0 sqrt is NaN: no bound holds for it
    return (torch.where(ok, lo.clamp(min=0.0), torch.full_like(lo, -INF)),
            torch.where(ok, hi, torch.full_like(hi, INF)))


def sqrt_relax(l: Tensor, u: Tensor, alpha: Tensor | None = None) -> Relaxation:
    """Relaxation of ``sqrt(max(x, 0))`` on ``[l, u]`` (``alpha[0]``: upper tangent point)."""
    dtype = l.dtype
    l64, u64 = as64(l), as64(u)
    l0, u0 = l64.clamp(min=0.0), u64.clamp(min=0.0)
    rl, ru = torch.sqrt(l0), torch.sqrt(u0)
    zero = torch.zeros_like(l64)
    # chord of sqrt on [l0, u0] (lower)
    fp_l0 = safe_div(torch.ones_like(rl), 2.0 * rl, zero)
    s = safe_div(ru - rl, u0 - l0, fp_l0)
    pts = [l64, u64, zero.clamp(min=l64, max=u64), l0.clamp(max=u64)]
    lb = _extreme(_sqrt_total, pts, s, upper=False)
    # tangent at t in [l0, u0] (upper), kept off 0 so the slope is finite
    t = _tangent_point(l0, u0, alpha)
    t = torch.maximum(t, torch.maximum(1e-12 * u0, torch.full_like(t, 1e-300)))
    k = 0.5 / torch.sqrt(t)
    ub = _extreme(_sqrt_total, [*pts, t.clamp(max=u64)], k, upper=True)
    flat = u0 == 0  # the function is 0 on the whole interval
    k = torch.where(flat, zero, k)
    ub = torch.where(flat, zero, ub)
    ok = _sqrt_domain(l64, u64)  # an interval reaching below 0: the no-bound relaxation
    s, k = torch.where(ok, s, zero), torch.where(ok, k, zero)
    lb = torch.where(ok, lb, torch.full_like(lb, -INF))
    ub = torch.where(ok, ub, torch.full_like(ub, INF))
    lo, hi = _sqrt_interval64(l64, u64)
    return finalize(s, lb, k, ub, l64, u64, lo, hi, dtype)


SQRT = UnaryRelaxation(
    op="sqrt",
    interval=lambda l, u: out_interval(*_sqrt_interval64(as64(l), as64(u)), l.dtype),
    relax=sqrt_relax,
    n_alpha=1,
    init_alpha=_half_alpha,
    func=_sqrt_total,
    domain=_sqrt_domain,
)


# ---------------------------------------------------------------- even powers
def _pow(x: Tensor, p: int) -> Tensor:
    return torch.pow(x, p)


def _pow_fp(x: Tensor, p: int) -> Tensor:
    return p * torch.pow(x, p - 1)


def _even_interval64(p: int, l: Tensor, u: Tensor) -> tuple[Tensor, Tensor]:
    fl, fu = _pow(l, p), _pow(u, p)
    lo, hi = pad_interval(torch.minimum(fl, fu), torch.maximum(fl, fu))
    cross = (l <= 0) & (u >= 0)
    return torch.where(cross, torch.zeros_like(lo), lo.clamp(min=0.0)), hi


def _even_relax(p: int, l: Tensor, u: Tensor, alpha: Tensor | None = None) -> Relaxation:
    dtype = l.dtype
    l64, u64 = as64(l), as64(u)
    f, fp = partial(_pow, p=p), partial(_pow_fp, p=p)
    k, lb, s, ub = convex_lines(f, fp, l64, u64, _tangent_point(l64, u64, alpha))
    lo, hi = _even_interval64(p, l64, u64)
    return finalize(k, lb, s, ub, l64, u64, lo, hi, dtype)


def even_power(p: int) -> UnaryRelaxation:
    """The table entry of ``x^p`` for an even ``p >= 2`` (op ``square`` for ``p = 2``)."""
    if p < 2 or p % 2:
        raise ValueError(f"even_power needs an even exponent >= 2, got {p}")

    def interval(l: Tensor, u: Tensor) -> tuple[Tensor, Tensor]:
        return out_interval(*_even_interval64(p, as64(l), as64(u)), l.dtype)

    return UnaryRelaxation(
        op="square" if p == 2 else f"pow{p}",
        interval=interval,
        relax=partial(_even_relax, p),
        n_alpha=1,
        init_alpha=_half_alpha,
        func=partial(_pow, p=p),
    )


SQUARE = even_power(2)
