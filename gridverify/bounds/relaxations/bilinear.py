"""Product of two variables: interval and McCormick relaxation with a mixing parameter.

On the box ``[lx, ux] x [ly, uy]`` the four McCormick planes follow from
products of non-negative factors, e.g. ``(x - lx)(y - ly) >= 0``:

    L1: x y >= ly x + lx y - lx ly        L2: x y >= uy x + ux y - ux uy
    U1: x y <= uy x + lx y - lx uy        U2: x y <= ly x + ux y - ux ly

A convex combination of two valid lower (upper) planes is a valid lower
(upper) plane, so ``alpha[0]`` mixes ``L1``/``L2`` and ``alpha[1]`` mixes
``U1``/``U2`` and every alpha in ``[0, 1]`` is sound.  The two planes of a pair
enclose the same volume over the box (their integrals are equal), so the
default is the symmetric mix 0.5; alpha-CROWN then tilts each element towards
the plane that serves its specification.  Coefficients are computed in float64
and the offsets padded by a few ulps of ``max|x| * max|y|``, which bounds every
term of the plane on the box; narrower dtypes are rounded outward.
"""

from __future__ import annotations

import torch
from torch import Tensor

from gridverify.bounds.relaxations._common import (
    INF,
    PAD_ABS,
    PAD_REL,
    PAD_REL_INTERVAL,
    as64,
    cast_down,
    cast_up,
    magnitude,
    out_interval,
    split_alpha,
)
from gridverify.bounds.relaxations.base import BilinearRelaxation


def _interval64(lx: Tensor, ux: Tensor, ly: Tensor, uy: Tensor) -> tuple[Tensor, Tensor]:
    lo = hi = None
    for p in (lx * ly, lx * uy, ux * ly, ux * uy):
        p = torch.where(torch.isnan(p), torch.zeros_like(p), p)  # 0 * inf at a corner
        lo = p if lo is None else torch.minimum(lo, p)
        hi = p if hi is None else torch.maximum(hi, p)
    lo = lo - (PAD_REL_INTERVAL * lo.abs() + PAD_ABS)
    hi = hi + (PAD_REL_INTERVAL * hi.abs() + PAD_ABS)
    return lo, hi


def interval_mul(lx: Tensor, ux: Tensor, ly: Tensor, uy: Tensor) -> tuple[Tensor, Tensor]:
    """Sound, tight interval of ``x * y`` over the box (extreme corner products, rounded out)."""
    lo, hi = _interval64(as64(lx), as64(ux), as64(ly), as64(uy))
    return out_interval(lo, hi, lx.dtype)


def relax_mul(
    lx: Tensor, ux: Tensor, ly: Tensor, uy: Tensor, alpha: Tensor | None = None
) -> BilinearRelaxation:
    """McCormick planes of ``x * y`` on the box; ``alpha`` ``(2, *lx.shape)`` mixes them.

    ``alpha[0]`` is the weight of ``L1`` (``1 - alpha[0]`` of ``L2``) in the lower
    plane and ``alpha[1]`` the weight of ``U1`` in the upper plane; ``None``
    uses 0.5 for both.
    """
    dtype = lx.dtype
    lx, ux, ly, uy = as64(lx), as64(ux), as64(ly), as64(uy)
    a, b = split_alpha(alpha, 2)
    if a is None:
        a = torch.full_like(lx, 0.5)
    if b is None:
        b = torch.full_like(lx, 0.5)
    lwx = a * ly + (1.0 - a) * uy
    lwy = a * lx + (1.0 - a) * ux
    lb = -(a * (lx * ly) + (1.0 - a) * (ux * uy))
    uwx = b * uy + (1.0 - b) * ly
    uwy = b * lx + (1.0 - b) * ux
    ub = -(b * (lx * uy) + (1.0 - b) * (ux * ly))
    mx, finx = magnitude(lx, ux)
    my, finy = magnitude(ly, uy)
    pad = PAD_REL * 4.0 * mx * my + PAD_ABS
    lb = lb - pad
    ub = ub + pad
    lwx_o, lwy_o, uwx_o, uwy_o = (t.to(dtype) for t in (lwx, lwy, uwx, uwy))
    if dtype != torch.float64:
        f64 = torch.float64
        lb = lb - (lwx_o.to(f64) - lwx).abs() * mx - (lwy_o.to(f64) - lwy).abs() * my
        ub = ub + (uwx_o.to(f64) - uwx).abs() * mx + (uwy_o.to(f64) - uwy).abs() * my
    fin = finx & finy
    bad_l = ~(torch.isfinite(lwx_o) & torch.isfinite(lwy_o) & fin) | torch.isnan(lb) | (lb == INF)
    bad_u = ~(torch.isfinite(uwx_o) & torch.isfinite(uwy_o) & fin) | torch.isnan(ub) | (ub == -INF)
    lo, hi = _interval64(lx, ux, ly, uy)
    zero = torch.zeros_like(lwx_o)
    lb_o = cast_down(torch.where(bad_l, lo, lb), dtype)
    ub_o = cast_up(torch.where(bad_u, hi, ub), dtype)
    bad_l = bad_l | torch.isinf(lb_o)  # "no bound" planes are constant
    bad_u = bad_u | torch.isinf(ub_o)
    return BilinearRelaxation(
        torch.where(bad_l, zero, lwx_o),
        torch.where(bad_l, zero, lwy_o),
        lb_o,
        torch.where(bad_u, zero, uwx_o),
        torch.where(bad_u, zero, uwy_o),
        ub_o,
    )
