"""Generic relaxation of smooth unary functions by supporting lines of exact offset.

For a slope ``k`` the tightest sound lines are

    upper:  k x + max_{x in [l, u]} (f(x) - k x)
    lower:  k x + min_{x in [l, u]} (f(x) - k x)

and the extrema of ``h(x) = f(x) - k x`` lie at ``l``, ``u`` or an interior
critical point where ``f'(x) = k``.  Each op supplies the critical points in
closed form (``crit``: for sigmoid/tanh ``x = +-acosh(..)``, for ``x^p``
``x = +-(k/p)^(1/(p-1))``, for sin ``x = +-acos(k) + 2 pi n`` with the extreme
``n`` only, since the values at the local extrema are affine in ``n``).  The
offsets are therefore exact whatever the slope heuristic, which makes every
slope -- hence every alpha -- sound; the candidates are clamped into
``[l, u]``, so a candidate that is off by rounding only makes the offset
smaller by a second-order amount, which the float64 padding of
:func:`~gridverify.bounds.relaxations._common.finalize` covers.

Parameterization: ``alpha`` in ``[0, 1]`` picks the slope ``k = k_min + alpha
(k_max - k_min)`` where ``[k_min, k_max]`` is the range of ``f'`` over ``[l, u]``;
every supporting line of the concave (upper) or convex (lower) envelope has a
slope in that range, so this is the family of tangent lines of the envelopes,
parameterized by slope (equivalently by tangent point on each convex/concave
piece).

Default (CROWN) slope: the line of least area -- for the upper line the
``k`` that minimizes ``k m + max_x (f(x) - k x)`` with ``m = (l + u) / 2``, i.e.
the tangent of the concave envelope at the midpoint.  This function of ``k`` is
convex with derivative ``m - argmax``, so its minimizer is found by a
search over ``k`` (:func:`area_slope`).  On a concave piece it gives the
midpoint tangent, on a convex piece the chord, on an S-shaped interval the
secant-tangent line through an endpoint (or the midpoint tangent), and on a
wide sin interval nearly the constant 1.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from gridverify.bounds.relaxations._common import (
    as64,
    finalize,
    out_interval,
    safe_div,
    split_alpha,
)
from gridverify.bounds.relaxations.base import Relaxation, UnaryRelaxation

# the least-area slope is searched to a cell of 2**-12 of the range of f', then
# refined by the chord through the points its two ends touch (see area_slope)
SLOPE_SEARCH_BITS = 12


@dataclass(frozen=True)
class SmoothOp:
    """What the generic engine needs to know about a smooth unary function (float64).

    ``f``, ``fp``: the function and its derivative; ``fp_range(l, u)``: the
    range of ``f'`` on ``[l, u]`` (only used to parameterize slopes, soundness
    does not depend on it); ``crit(k, l, u)``: points that include every local
    extremum of ``f(x) - k x`` in ``[l, u]`` (any extra points are harmless);
    ``interval(l, u)``: a sound float64 enclosure of ``f([l, u])``;
    ``curvature(l, u)``: ``+1`` where ``f`` is convex on ``[l, u]``, ``-1`` where
    concave, ``0`` where mixed or unknown (a speed hint: the default lines of a
    single piece are the chord and the midpoint tangent in closed form);
    ``period``: for periodic ``f``, intervals at least this wide get the
    constant lines (slope 0); ``crit_search``: a cheaper ``crit`` for the
    search of the default slope (it only steers the search; the offsets
    always use ``crit``); ``offset_pad(l, u)``: an extra absolute padding of
    the offsets for ops whose critical points lose absolute accuracy on large
    inputs (sin, cos: ``x = base + 2 pi n``).
    """

    name: str
    f: Callable[[Tensor], Tensor]
    fp: Callable[[Tensor], Tensor]
    fp_range: Callable[[Tensor, Tensor], tuple[Tensor, Tensor]]
    crit: Callable[[Tensor, Tensor, Tensor], list[Tensor]]
    interval: Callable[[Tensor, Tensor], tuple[Tensor, Tensor]]
    curvature: Callable[[Tensor, Tensor], Tensor]
    period: float | None = None
    crit_search: Callable[[Tensor, Tensor, Tensor], list[Tensor]] | None = None
    offset_pad: Callable[[Tensor, Tensor], Tensor] | None = None


def extreme_offset(
    op: SmoothOp, l: Tensor, u: Tensor, k: Tensor, upper: bool, search: bool = False
) -> tuple[Tensor, Tensor]:
    """Exact ``max`` (upper) or ``min`` of ``f(x) - k x`` on ``[l, u]`` and its argument.

    The critical points are detached: by the envelope theorem the gradient of
    the extremum with respect to ``k`` is ``-argmax``, which the detached point
    gives exactly; gradients with respect to ``l``/``u`` flow through endpoint
    candidates.
    """
    crit = op.crit_search if search and op.crit_search is not None else op.crit
    with torch.no_grad():
        cands = crit(k.detach(), l.detach(), u.detach())
    xs = [l, u] + [torch.minimum(torch.maximum(c, l), u) for c in cands]
    # elementwise running extremum (dim reductions are slow for small tensors on CPU)
    best, xstar = None, None
    for x in xs:
        v = op.f(x) - k * x
        if best is None:
            best, xstar = v, x.detach()
            continue
        better = v > best if upper else v < best
        best = torch.where(better, v, best)
        xstar = torch.where(better, x.detach(), xstar)
    return best, xstar


#: entries per pass of :func:`area_slope` (``n x (G - 1)``) up to which more slopes a
#: round pay: small passes cost per pass on a CPU, and every pass does on a GPU
SLOPE_SEARCH_ENTRIES = {"cpu": 1 << 13, "other": 1 << 24}


def _slope_search_grid(n: int, device: torch.device) -> int:
    """Slopes per round of :func:`area_slope` for ``n`` intervals: ``2`` is bisection.

    The most slopes a round (16, 4) whose pass stays within
    :data:`SLOPE_SEARCH_ENTRIES`: few passes for small tensors (on a CPU, tensors
    of a few hundred entries cost per pass, not per entry) and on GPUs, and
    bisection, the fewest evaluations, for large CPU tensors; the cap also bounds
    the search's temporaries.
    """
    budget = SLOPE_SEARCH_ENTRIES["cpu" if device.type == "cpu" else "other"]
    for grid in (16, 4):
        if n * (grid - 1) <= budget:
            return grid
    return 2


def area_slope(
    op: SmoothOp, l: Tensor, u: Tensor, upper: bool, grid: int | None = None
) -> Tensor:
    """The slope of the least-area upper (or lower) supporting line on ``[l, u]`` (detached).

    The least-area slope is where the argument of the extremum crosses the
    midpoint, and that argument is non-increasing in the slope: each round
    evaluates it at ``G - 1`` evenly spaced slopes of the current cell at once
    and keeps the sub-cell where it crosses, until the cell is
    ``1 / 2**SLOPE_SEARCH_BITS`` of the range of ``f'`` (``G`` from
    :func:`_slope_search_grid` unless given; a power of two).  Of the cell's
    middle, the chord through the points the lines of the cell's two ends touch
    (kept within the cell) and ``f'(m)``, the slope returned is the one whose
    line is lowest (upper; highest for the lower line) at ``m``: where the
    least-area line touches ``f`` twice (through an endpoint, or a bitangent)
    the chord is its slope to rounding, where it is the tangent at ``m``,
    ``f'(m)`` is.
    """
    with torch.no_grad():
        kmin, kmax = op.fp_range(l, u)
        m = 0.5 * (l + u)
        grid = grid or _slope_search_grid(l.numel(), l.device)
        bits = grid.bit_length() - 1
        steps = torch.arange(1, grid, dtype=l.dtype, device=l.device)
        steps = steps.reshape((-1,) + (1,) * l.dim())
        lo, width = kmin.clone(), kmax - kmin
        for _ in range(-(-SLOPE_SEARCH_BITS // bits)):
            width = width / grid
            _, xs = extreme_offset(op, l, u, lo + steps * width, upper, search=True)
            go_up = xs > m if upper else xs < m
            lo = lo + go_up.sum(0).to(l.dtype) * width
        # the points the lines of the cell's two ends touch lie on either side of m:
        # the chord through them is the slope of a least-area line that touches f
        # twice (exact, whatever the cell's width), f'(m) that of one tangent at m;
        # the one whose line is lowest (highest) at m wins, the cell's middle if none
        mid = lo + 0.5 * width
        ends = torch.stack([lo, lo + width])
        _, (xa, xb) = extreme_offset(op, l, u, ends, upper, search=True)
        chord = safe_div(op.f(xb) - op.f(xa), xb - xa, mid)
        chord = torch.minimum(torch.maximum(chord, ends[0]), ends[1])
        ks = torch.stack([mid, chord, op.fp(m)])
        ks = torch.where(torch.isfinite(ks), ks, mid)
        off, _ = extreme_offset(op, l, u, ks, upper, search=True)
        at_m = ks * m + off
        pick = (at_m.argmin(0) if upper else at_m.argmax(0)).unsqueeze(0)
        k = ks.gather(0, pick).squeeze(0)
        return torch.where(torch.isfinite(k), k, torch.zeros_like(k))


def default_slopes(op: SmoothOp, l: Tensor, u: Tensor) -> tuple[Tensor, Tensor]:
    """Slopes of the default (least-area) lower and upper lines (detached).

    On a single convex (concave) piece these are the midpoint tangent and the
    chord (swapped), in closed form; periodic intervals of a full period or more
    get slope 0; the rest (intervals across inflection points) are solved by
    :func:`area_slope`, on that subset only.
    """
    with torch.no_grad():
        m = 0.5 * (l + u)
        tan_m = op.fp(m)
        chord = safe_div(op.f(u) - op.f(l), u - l, tan_m)
        curv = op.curvature(l, u)
        kl = torch.where(curv > 0, tan_m, chord)
        ku = torch.where(curv > 0, chord, tan_m)
        mixed = curv == 0
        if op.period is not None:
            wide = ~((u - l) < op.period)
            zero = torch.zeros_like(kl)
            kl, ku = torch.where(wide, zero, kl), torch.where(wide, zero, ku)
            mixed = mixed & ~wide
        if bool(mixed.any()):
            lm, um = l[mixed], u[mixed]
            kl = kl.masked_scatter(mixed, area_slope(op, lm, um, upper=False))
            ku = ku.masked_scatter(mixed, area_slope(op, lm, um, upper=True))
        zero = torch.zeros_like(kl)
        return (
            torch.where(torch.isfinite(kl), kl, zero),
            torch.where(torch.isfinite(ku), ku, zero),
        )


def smooth_relax(op: SmoothOp, l: Tensor, u: Tensor, alpha: Tensor | None = None) -> Relaxation:
    """Relaxation of ``op`` on ``[l, u]``; ``alpha[0]``/``alpha[1]`` pick the lower/upper slope."""
    dtype = l.dtype
    l64, u64 = as64(l), as64(u)
    a_lo, a_up = split_alpha(alpha, 2)
    kmin, kmax = op.fp_range(l64, u64)
    span = kmax - kmin
    if a_lo is None or a_up is None:
        dl, du = default_slopes(op, l64, u64)
    kl = dl if a_lo is None else kmin + a_lo * span
    ku = du if a_up is None else kmin + a_up * span
    lb, _ = extreme_offset(op, l64, u64, kl, upper=False)
    ub, _ = extreme_offset(op, l64, u64, ku, upper=True)
    lo, hi = op.interval(l64, u64)
    if op.offset_pad is not None:
        pad = op.offset_pad(l64, u64)
        lb, ub = lb - pad, ub + pad
    # a flat line never needs to be beyond the (sound, padded) interval bound
    lb = torch.where(kl == 0, torch.minimum(lb, lo), lb)
    ub = torch.where(ku == 0, torch.maximum(ub, hi), ub)
    return finalize(kl, lb, ku, ub, l64, u64, lo, hi, dtype)


def smooth_init_alpha(op: SmoothOp, l: Tensor, u: Tensor) -> Tensor:
    """The alpha ``(2, *l.shape)`` that reproduces the default relaxation."""
    l64, u64 = as64(l.detach()), as64(u.detach())
    kmin, kmax = op.fp_range(l64, u64)
    span = kmax - kmin
    half = torch.full_like(l64, 0.5)
    rows = []
    for k in default_slopes(op, l64, u64):
        a = safe_div(k - kmin, span, half)
        rows.append(torch.where(torch.isfinite(a), a, half).clamp(0.0, 1.0))
    return torch.stack(rows).to(l.dtype)


def make_unary(op: SmoothOp, func: Callable[[Tensor], Tensor]) -> UnaryRelaxation:
    """The table entry of a smooth op (two parameters: lower and upper slope)."""

    def interval(l: Tensor, u: Tensor) -> tuple[Tensor, Tensor]:
        return out_interval(*op.interval(as64(l), as64(u)), l.dtype)

    def relax(l: Tensor, u: Tensor, alpha: Tensor | None = None) -> Relaxation:
        return smooth_relax(op, l, u, alpha)

    def init_alpha(l: Tensor, u: Tensor) -> Tensor:
        return smooth_init_alpha(op, l, u)

    interval.__doc__ = f"Sound enclosure of {op.name}([l, u])."
    relax.__doc__ = f"Relaxation of {op.name} on [l, u] (see gridverify.bounds.relaxations.smooth)."
    return UnaryRelaxation(
        op=op.name, interval=interval, relax=relax, n_alpha=2, init_alpha=init_alpha, func=func
    )
