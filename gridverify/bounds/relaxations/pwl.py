"""The piecewise-linear op ``pwl``: ``f(x) = b + s x + sum_k w_k relu(x - t_k)`` per entry.

Its attributes are per entry (``breaks``/``weights`` ``(n, K)``, ``slope``/``bias``
``(n,)``), so the table entry is built for a node's attributes by
:func:`pwl_entry` rather than stored in ``RELAXATIONS``.

Interval
    ``f`` is linear between kinks, so its range on ``[l, u]`` is attained at
    ``l``, ``u`` or a kink inside: the extremes over those points are exact.
Relaxation
    For any slope ``k`` the offsets ``min/max_{x in [l, u]} f(x) - k x`` are
    attained at the same points, so every ``k`` gives a sound pair of lines
    (exact offsets whatever ``f``'s convexity).  ``alpha[0]`` (lower line) and
    ``alpha[1]`` (upper line) choose ``k = kmin + alpha (kmax - kmin)`` between
    the least and largest slope of the pieces that meet ``[l, u]``.  The default
    takes, per line, the better at the midpoint of two slopes: the chord's and
    the slope of the piece at the midpoint.  On a convex stretch that is the
    chord above and the supporting line at the midpoint below (the least-area
    pair); on a concave one the mirror; a single kink (relu) gives exactly
    relu's CROWN relaxation.
Rounding
    ``f`` is evaluated in float64 with an error below
    ``(K + 4) eps (|b| + |s x| + sum_k |w_k| relu(x - t_k))``; intervals and
    offsets are padded by twice that, then finalized like every other entry.
Infinite ends
    The function's limit slopes decide: an infinite end of the interval gives
    an infinite interval end unless ``f`` is constant there; the lines then
    fall back to the constant interval bounds (``finalize``).
"""

from __future__ import annotations

import torch
from torch import Tensor

from gridverify.bounds.relaxations._common import (
    EPS64,
    INF,
    PAD_ABS,
    as64,
    finalize,
    out_interval,
    safe_div,
    split_alpha,
)
from gridverify.bounds.relaxations.base import Relaxation, UnaryRelaxation
from gridverify.ir.ops import pwl_forward

__all__ = ["PwlParams", "pwl_entry", "pwl_interval", "pwl_relax"]


class PwlParams:
    """The four attributes of a ``pwl`` node as float64 tensors, moved lazily per device."""

    def __init__(self, breaks: Tensor, weights: Tensor, slope: Tensor, bias: Tensor) -> None:
        self.breaks = as64(breaks).detach()
        self.weights = as64(weights).detach()
        self.slope = as64(slope).detach().reshape(-1)
        self.bias = as64(bias).detach().reshape(-1)
        self._dev: dict[torch.device, tuple[Tensor, ...]] = {}

    @property
    def n_kinks(self) -> int:
        """``K``, the number of kinks per entry."""
        return int(self.breaks.shape[-1])

    def on(self, device: torch.device) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
        """``breaks, weights, slope, bias, piece slopes (n, K+1), f(breaks) (n, K)`` on device."""
        hit = self._dev.get(device)
        if hit is None:
            br, wt, sl, bi = (t.to(device) for t in (self.breaks, self.weights, self.slope,
                                                     self.bias))
            pieces = torch.cat([sl[:, None], sl[:, None] + torch.cumsum(wt, -1)], -1)
            fb = pwl_forward(br.T, br, wt, sl, bi).T  # fb[i, j] = f_i(t_ij)
            hit = (br, wt, sl, bi, pieces, fb)
            self._dev[device] = hit
        return hit  # type: ignore[return-value]

    def error(self, x: Tensor) -> Tensor:
        """A bound on the float64 rounding error of ``f(x)`` (``x``: ``(..., n)``)."""
        br, wt, sl, bi, _, _ = self.on(x.device)
        mag = bi.abs() + (sl * x).abs() + (torch.relu(x.unsqueeze(-1) - br) * wt.abs()).sum(-1)
        return 2.0 * (self.n_kinks + 4) * EPS64 * mag + PAD_ABS

    def error_breaks(self, device: torch.device) -> Tensor:
        """:meth:`error` at every kink, ``(n, K)``."""
        br = self.on(device)[0]
        return self.error(br.T).T


def _finite_ends(p: PwlParams, l: Tensor, u: Tensor) -> tuple[Tensor, Tensor]:
    """``l, u`` with infinite ends replaced by a finite point of the outer piece."""
    br = p.on(l.device)[0]
    if br.shape[-1]:
        tmin, tmax = br[:, 0].expand_as(l), br[:, -1].expand_as(u)
    else:
        tmin = tmax = torch.zeros_like(l)
    lf = torch.where(torch.isfinite(l), l, torch.minimum(tmin, torch.where(torch.isfinite(u), u,
                                                                           tmin)))
    uf = torch.where(torch.isfinite(u), u, torch.maximum(tmax, lf))
    return lf, uf


def _candidates(p: PwlParams, l: Tensor, u: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Points where extremes of ``f - k x`` are attained: ``xs (B, n, K+2)``, ``f``, error,
    and the mask of points that are in ``[l, u]``."""
    br, _, _, _, _, fb = p.on(l.device)
    lf, uf = _finite_ends(p, l, u)
    ends = torch.stack([lf, uf], -1)
    f_ends = torch.stack([pwl_forward(lf, *p.on(l.device)[:4]),
                          pwl_forward(uf, *p.on(l.device)[:4])], -1)
    e_ends = torch.stack([p.error(lf), p.error(uf)], -1)
    shape = (*l.shape, br.shape[-1])
    inside = (br >= lf.unsqueeze(-1)) & (br <= uf.unsqueeze(-1))
    xs = torch.cat([ends, br.expand(shape)], -1)
    fx = torch.cat([f_ends, fb.expand(shape)], -1)
    ex = torch.cat([e_ends, p.error_breaks(l.device).expand(shape)], -1)
    ok = torch.cat([torch.ones_like(ends, dtype=torch.bool), inside], -1)
    return xs, fx, ex, ok


def _limit_flags(p: PwlParams, l: Tensor, u: Tensor) -> tuple[Tensor, Tensor]:
    """Where the interval's lower / upper end is ``-inf`` / ``+inf`` by the outer slopes."""
    pieces = p.on(l.device)[4]
    m_left, m_right = pieces[:, 0], pieces[:, -1]
    neg_inf = ((l == -INF) & (m_left > 0)) | ((u == INF) & (m_right < 0))
    pos_inf = ((l == -INF) & (m_left < 0)) | ((u == INF) & (m_right > 0))
    return neg_inf, pos_inf


def _interval64(p: PwlParams, l: Tensor, u: Tensor) -> tuple[Tensor, Tensor]:
    xs, fx, ex, ok = _candidates(p, l, u)
    lo = torch.where(ok, fx - ex, torch.full_like(fx, INF)).amin(-1)
    hi = torch.where(ok, fx + ex, torch.full_like(fx, -INF)).amax(-1)
    neg_inf, pos_inf = _limit_flags(p, l, u)
    lo = torch.where(neg_inf, torch.full_like(lo, -INF), lo)
    hi = torch.where(pos_inf, torch.full_like(hi, INF), hi)
    return lo, hi


def pwl_interval(p: PwlParams, l: Tensor, u: Tensor) -> tuple[Tensor, Tensor]:
    """Exact (outward-rounded) ``f([l, u])`` of a ``pwl`` node with parameters ``p``."""
    lo, hi = _interval64(p, as64(l), as64(u))
    return out_interval(lo, hi, l.dtype)


def _offsets(cand: tuple[Tensor, Tensor, Tensor, Tensor], k: Tensor,
             upper: bool) -> Tensor:
    """Exact ``max`` (upper) or ``min`` of ``f(x) - k x`` on ``[l, u]``, padded by f's error."""
    xs, fx, ex, ok = cand
    g = fx - k.unsqueeze(-1) * xs
    if upper:
        return torch.where(ok, g + ex, torch.full_like(g, -INF)).amax(-1)
    return torch.where(ok, g - ex, torch.full_like(g, INF)).amin(-1)


def _slope_range(p: PwlParams, l: Tensor, u: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Least and largest piece slope on ``[l, u]``, and the slope at the midpoint."""
    br, _, _, _, pieces, _ = p.on(l.device)
    lf, uf = _finite_ends(p, l, u)
    n_k = br.shape[-1]
    left = torch.cat([br.new_full((br.shape[0], 1), -INF), br], -1)  # (n, K+1)
    right = torch.cat([br, br.new_full((br.shape[0], 1), INF)], -1)
    meets = (left <= uf.unsqueeze(-1)) & (right >= lf.unsqueeze(-1))
    shape = (*l.shape, n_k + 1)
    pc = pieces.expand(shape)
    kmin = torch.where(meets, pc, torch.full_like(pc, INF)).amin(-1)
    kmax = torch.where(meets, pc, torch.full_like(pc, -INF)).amax(-1)
    mid = (lf + uf) / 2
    idx = (br <= mid.unsqueeze(-1)).sum(-1, keepdim=True)
    kmid = pc.gather(-1, idx).squeeze(-1)
    return kmin, kmax, kmid


def _default_slopes(p: PwlParams, l: Tensor, u: Tensor, cand) -> tuple[Tensor, Tensor]:  # noqa: ANN001
    """Default lower and upper slopes (see module docstring)."""
    kmin, kmax, kmid = _slope_range(p, l, u)
    xs, fx = cand[0], cand[1]
    lf, uf = xs[..., 0], xs[..., 1]
    chord = safe_div(fx[..., 1] - fx[..., 0], uf - lf, kmid).clamp(kmin, kmax)
    mid = (lf + uf) / 2
    lo_c = _offsets(cand, chord, False) + chord * mid
    lo_m = _offsets(cand, kmid, False) + kmid * mid
    hi_c = _offsets(cand, chord, True) + chord * mid
    hi_m = _offsets(cand, kmid, True) + kmid * mid
    k_lo = torch.where(lo_m >= lo_c, kmid, chord)
    k_hi = torch.where(hi_m <= hi_c, kmid, chord)
    return k_lo, k_hi


def pwl_relax(p: PwlParams, l: Tensor, u: Tensor, alpha: Tensor | None = None) -> Relaxation:
    """Relaxation of a ``pwl`` node on ``[l, u]`` (``alpha[0]``/``alpha[1]``: lower/upper
    slope positions between the least and the largest piece slope on the interval)."""
    dtype = l.dtype
    l64, u64 = as64(l), as64(u)
    cand = _candidates(p, l64, u64)
    a_lo, a_hi = split_alpha(alpha, 2)
    if a_lo is None or a_hi is None:
        k_lo, k_hi = _default_slopes(p, l64, u64, cand)
    else:
        kmin, kmax, _ = _slope_range(p, l64, u64)
        k_lo = kmin + a_lo * (kmax - kmin)
        k_hi = kmin + a_hi * (kmax - kmin)
    lb = _offsets(cand, k_lo, False)
    ub = _offsets(cand, k_hi, True)
    lo, hi = _interval64(p, l64, u64)
    return finalize(k_lo, lb, k_hi, ub, l64, u64, lo, hi, dtype)


def pwl_init_alpha(p: PwlParams, l: Tensor, u: Tensor) -> Tensor:
    """The alpha of the default relaxation, ``(2, *l.shape)``."""
    l64, u64 = as64(l).detach(), as64(u).detach()
    cand = _candidates(p, l64, u64)
    k_lo, k_hi = _default_slopes(p, l64, u64, cand)
    kmin, kmax, _ = _slope_range(p, l64, u64)
    span = kmax - kmin
    half = torch.full_like(span, 0.5)
    a = torch.stack([safe_div(k_lo - kmin, span, half), safe_div(k_hi - kmin, span, half)])
    return a.clamp(0.0, 1.0).to(l.dtype)


def pwl_entry(breaks: Tensor, weights: Tensor, slope: Tensor, bias: Tensor) -> UnaryRelaxation:
    """The relaxation-table entry of one ``pwl`` node (its attributes)."""
    p = PwlParams(breaks, weights, slope, bias)

    def func(x: Tensor) -> Tensor:
        br, wt, sl, bi = p.on(x.device)[:4]
        return pwl_forward(x, br.to(x.dtype), wt.to(x.dtype), sl.to(x.dtype), bi.to(x.dtype))

    return UnaryRelaxation(
        op="pwl",
        interval=lambda l, u: pwl_interval(p, l, u),
        relax=lambda l, u, alpha=None: pwl_relax(p, l, u, alpha),
        n_alpha=2,
        init_alpha=lambda l, u: pwl_init_alpha(p, l, u),
        func=func,
    )
