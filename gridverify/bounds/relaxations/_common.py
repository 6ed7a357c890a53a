"""Shared numerics of the relaxation table: float64 work, outward rounding, finalization.

Every relaxation is computed in float64 whatever the input dtype, then

1. offsets are padded outward by ``PAD_REL * (|b| + |w| * max(|l|, |u|)) + PAD_ABS``,
   which dominates the rounding error of evaluating ``f(x) - w*x`` at a handful
   of points (each a few ulps of ``|f(x)| + |w x|``) -- unless the relaxation is
   exact in floating point (relu's pieces, floor's constants);
2. when the output dtype is narrower, slopes are rounded to it and the offsets
   absorb the change ``|w_out - w| * max(|l|, |u|)`` before being rounded
   outward (``cast_down``/``cast_up``);
3. a line whose slope is not finite (overflow) or whose offset is NaN or of the
   wrong infinity falls back to the constant line given by the interval bound,
   so no result is ever NaN; so does every line on an interval with an infinite
   end (a relaxation's offsets are taken over finite points); a line that lies
   beyond the interval bound at both ends of ``[l, u]`` is replaced by that
   constant bound (it dominates it).
"""

from __future__ import annotations

import torch
from torch import Tensor

from gridverify.bounds.relaxations.base import Relaxation

F64 = torch.float64
EPS64 = torch.finfo(F64).eps
PAD_REL = 16.0 * EPS64
PAD_REL_INTERVAL = 8.0 * EPS64
PAD_ABS = 16.0 * torch.finfo(F64).tiny
INF = float("inf")


def as64(t: Tensor) -> Tensor:
    """``t`` as float64 (differentiable; a no-op for float64)."""
    return t.to(F64)


def safe_div(num: Tensor, den: Tensor, fallback: Tensor) -> Tensor:
    """``num / den`` where ``den != 0``, else ``fallback`` (NaN-free values and gradients)."""
    ok = den != 0
    return torch.where(ok, num / torch.where(ok, den, torch.ones_like(den)), fallback)


def magnitude(l: Tensor, u: Tensor) -> tuple[Tensor, Tensor]:
    """``max(|l|, |u|)`` with infinities replaced by 0, and the mask where it was finite."""
    m = torch.maximum(l.abs(), u.abs())
    fin = torch.isfinite(m)
    return torch.where(fin, m, torch.zeros_like(m)), fin


def cast_down(x: Tensor, dtype: torch.dtype) -> Tensor:
    """``x`` (float64) rounded to ``dtype`` so that the result is ``<= x``."""
    if dtype == F64:
        return x
    fi = torch.finfo(dtype)
    xc = x.clamp(max=fi.max)
    y = xc.to(dtype)
    y_dn = (xc - (fi.eps * xc.abs() + fi.tiny)).to(dtype)
    return torch.where(y.to(F64) > xc, y_dn, y)


def cast_up(x: Tensor, dtype: torch.dtype) -> Tensor:
    """``x`` (float64) rounded to ``dtype`` so that the result is ``>= x``."""
    return -cast_down(-x, dtype)


def pad_interval(lo: Tensor, hi: Tensor) -> tuple[Tensor, Tensor]:
    """Widen a float64 interval by a few ulps (for functions evaluated by libm)."""
    lo = lo - (PAD_REL_INTERVAL * lo.abs() + PAD_ABS)
    hi = hi + (PAD_REL_INTERVAL * hi.abs() + PAD_ABS)
    return lo, hi


def out_interval(lo: Tensor, hi: Tensor, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """Round a sound float64 interval outward to ``dtype`` (NaN-free)."""
    lo = torch.where(torch.isnan(lo), torch.full_like(lo, -INF), lo)
    hi = torch.where(torch.isnan(hi), torch.full_like(hi, INF), hi)
    return cast_down(lo, dtype), cast_up(hi, dtype)


def finalize(
    lw: Tensor,
    lb: Tensor,
    uw: Tensor,
    ub: Tensor,
    l: Tensor,
    u: Tensor,
    lo: Tensor,
    hi: Tensor,
    dtype: torch.dtype,
    exact: bool = False,
) -> Relaxation:
    """Pad, round and sanitize float64 lines into a :class:`Relaxation` of ``dtype``.

    ``l, u`` are the float64 input bounds and ``lo, hi`` a sound float64
    enclosure of ``f([l, u])`` used as the fallback constant lines.  ``exact``
    skips step 1 of the module docstring (the lines are exact in float64).
    """
    ms, fin = magnitude(l, u)
    if not exact:
        lb = lb - (PAD_REL * (lb.abs() + lw.abs() * ms) + PAD_ABS)
        ub = ub + (PAD_REL * (ub.abs() + uw.abs() * ms) + PAD_ABS)
    # a line that lies beyond the interval bound at both ends is dominated by it
    fin_lu = torch.isfinite(l) & torch.isfinite(u)
    dom_l = fin_lu & (lw * l + lb <= lo) & (lw * u + lb <= lo)
    dom_u = fin_lu & (uw * l + ub >= hi) & (uw * u + ub >= hi)
    lw = torch.where(dom_l, torch.zeros_like(lw), lw)
    lb = torch.where(dom_l, lo, lb)
    uw = torch.where(dom_u, torch.zeros_like(uw), uw)
    ub = torch.where(dom_u, hi, ub)
    lw_o = lw.to(dtype)
    uw_o = uw.to(dtype)
    if dtype != F64:
        lb = lb - (lw_o.to(F64) - lw).abs() * ms
        ub = ub + (uw_o.to(F64) - uw).abs() * ms
    # on an infinite interval every line falls back to the interval bound: a sloped one
    # is unbounded there, and a flat one's offset was taken over finite points only
    bad_l = ~torch.isfinite(lw_o) | torch.isnan(lb) | (lb == INF) | ~fin
    bad_u = ~torch.isfinite(uw_o) | torch.isnan(ub) | (ub == -INF) | ~fin
    zero = torch.zeros_like(lw_o)
    lo = torch.where(torch.isnan(lo), torch.full_like(lo, -INF), lo)
    hi = torch.where(torch.isnan(hi), torch.full_like(hi, INF), hi)
    lb = torch.where(bad_l, lo, lb)
    ub = torch.where(bad_u, hi, ub)
    lb_o, ub_o = cast_down(lb, dtype), cast_up(ub, dtype)
    # an infinite offset (overflow in dtype) is "no bound": make the line constant
    return Relaxation(
        torch.where(bad_l | torch.isinf(lb_o), zero, lw_o),
        lb_o,
        torch.where(bad_u | torch.isinf(ub_o), zero, uw_o),
        ub_o,
    )


def split_alpha(alpha: Tensor | None, n: int) -> list[Tensor | None]:
    """The ``n`` rows of ``alpha`` as float64 tensors clamped to ``[0, 1]`` (or ``None``s)."""
    if alpha is None:
        return [None] * n
    a = as64(alpha).clamp(0.0, 1.0)
    return [a[i] for i in range(n)]
