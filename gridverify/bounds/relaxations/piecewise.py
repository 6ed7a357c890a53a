"""Piecewise-linear ops: relu and floor.

relu
    Stable elements are exact (``0`` or ``x``).  For ``l < 0 < u`` the upper
    line is the chord ``u (x - l) / (u - l)`` (the concave envelope, optimal) and
    the lower line is ``a x`` with ``a`` in ``[0, 1]`` -- sound because
    ``relu(x) >= 0`` and ``relu(x) >= x`` and ``a x`` is below ``max(0, x)`` for
    any ``a`` in ``[0, 1]``.  ``alpha[0]`` is ``a``; the default is the adaptive
    CROWN choice (``1`` when ``u > -l``, else ``0``).  min/max/clamp are lowered
    to relu by the IR.

floor
    For a slope ``k >= 0`` the offsets ``max/min_{x in [l,u]} floor(x) - k x`` are
    computed exactly: on each unit step ``floor`` is constant, so the supremum is
    at ``l`` or at an integer in ``[l, u]`` and the infimum at ``u`` or just left
    of an integer in ``(l, u]``; the values at integers are affine in the
    integer, so only the extreme integers matter.  The slope is the chord of the
    staircase when ``[l, u]`` spans at least one unit, else ``0`` (the constant
    lines ``floor(l)``, ``floor(u)``).  No parameters.

    Both are taken over ``[l, u]`` widened by :data:`FLOOR_INPUT_PAD` of its
    larger end (at least 1): a step function turns the rounding of its input
    into a whole step, and graphs evaluated in float32 (ONNX runtimes) round
    ``10 * 0.7`` up to ``7`` where the exact product of the stored weights is
    ``6.99999988``.  The bounds therefore hold for the exact function and for
    evaluations whose input to floor is off by up to that much.
"""

from __future__ import annotations

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


def relu_interval(l: Tensor, u: Tensor) -> tuple[Tensor, Tensor]:
    """Exact ``relu([l, u])``."""
    return torch.relu(l), torch.relu(u)


def _relu_default_slope(l: Tensor, u: Tensor) -> Tensor:
    return (u > -l).to(l.dtype)


def relu_relax(l: Tensor, u: Tensor, alpha: Tensor | None = None) -> Relaxation:
    """Relaxation of relu on ``[l, u]`` (``alpha[0]``: lower slope of unstable elements)."""
    dtype = l.dtype
    l64, u64 = as64(l), as64(u)
    (a,) = split_alpha(alpha, 1)
    if a is None:
        a = _relu_default_slope(l64, u64)
    active = l64 >= 0
    inactive = u64 <= 0
    one, zero = torch.ones_like(l64), torch.zeros_like(l64)
    chord = safe_div(u64, u64 - l64, one)
    uw = torch.where(active, one, torch.where(inactive, zero, chord))
    ub = torch.where(active | inactive, zero, -chord * l64)
    lw = torch.where(active, one, torch.where(inactive, zero, a))
    lb = zero
    # the chord offset -u*l/(u-l) is rounded: pad it (only it is inexact)
    unstable = ~(active | inactive)
    ms = torch.maximum(l64.abs(), u64.abs())
    ub = torch.where(unstable, ub + 8.0 * torch.finfo(torch.float64).eps * (ub.abs() + uw * ms), ub)
    lo, hi = relu_interval(l64, u64)
    return finalize(lw, lb, uw, ub, l64, u64, lo, hi, dtype, exact=True)


def relu_init_alpha(l: Tensor, u: Tensor) -> Tensor:
    """The alpha of the default relu relaxation, shape ``(1, *l.shape)``."""
    return _relu_default_slope(l, u).unsqueeze(0)


RELU = UnaryRelaxation(
    op="relu",
    interval=lambda l, u: relu_interval(l, u),
    relax=relu_relax,
    n_alpha=1,
    init_alpha=relu_init_alpha,
    func=torch.relu,
)


FLOOR_INPUT_PAD = 2.0**-17
"""Relative widening of floor's input interval (64 float32 ulps of its larger end)."""


def _widen(l: Tensor, u: Tensor) -> tuple[Tensor, Tensor]:
    """``[l, u]`` widened by :data:`FLOOR_INPUT_PAD` of ``max(1, |l|, |u|)``."""
    pad = FLOOR_INPUT_PAD * torch.maximum(torch.maximum(l.abs(), u.abs()),
                                          torch.ones_like(l))
    return l - pad, u + pad


def floor_interval(l: Tensor, u: Tensor) -> tuple[Tensor, Tensor]:
    """``floor`` over ``[l, u]`` widened for its input's rounding (:data:`FLOOR_INPUT_PAD`)."""
    wl, wu = _widen(l, u)
    return torch.floor(wl), torch.floor(wu)


def _floor_offsets(l: Tensor, u: Tensor, k: Tensor) -> tuple[Tensor, Tensor]:
    """Exact ``min`` (infimum) and ``max`` of ``floor(x) - k x`` on ``[l, u]`` for ``k >= 0``."""
    fl, fu = torch.floor(l), torch.floor(u)
    steps = fu > fl
    first = fl + 1.0  # the smallest integer in (l, u] when steps
    inf = torch.full_like(l, float("inf"))
    # supremum: at l, or at an integer n in [l, u] (value n (1 - k)), extremes only
    hi = fl - k * l
    hi = torch.maximum(hi, torch.where(steps, first * (1.0 - k), -inf))
    hi = torch.maximum(hi, torch.where(steps, fu * (1.0 - k), -inf))
    # infimum: at u, or just left of an integer m in (l, u] (value m (1 - k) - 1)
    lo = fu - k * u
    lo = torch.minimum(lo, torch.where(steps, first * (1.0 - k) - 1.0, inf))
    lo = torch.minimum(lo, torch.where(steps, fu * (1.0 - k) - 1.0, inf))
    return lo, hi


def floor_relax(l: Tensor, u: Tensor, alpha: Tensor | None = None) -> Relaxation:
    """Relaxation of floor on ``[l, u]`` (no parameters; ``alpha`` is ignored)."""
    dtype = l.dtype
    l64, u64 = _widen(as64(l), as64(u))
    fl, fu = torch.floor(l64), torch.floor(u64)
    wide = (u64 - l64) >= 1.0
    zero = torch.zeros_like(l64)
    k = torch.where(wide, safe_div(fu - fl, u64 - l64, zero), zero)
    lb, ub = _floor_offsets(l64, u64, k)
    flat = k == 0
    # constant lines are exact; sloped ones were rounded (finalize pads them)
    rel_flat = finalize(k, lb, k, ub, l64, u64, fl, fu, dtype, exact=True)
    rel_slope = finalize(k, lb, k, ub, l64, u64, fl, fu, dtype, exact=False)
    return Relaxation(*(torch.where(flat, a, b) for a, b in zip(rel_flat, rel_slope)))


FLOOR = UnaryRelaxation(
    op="floor",
    interval=lambda l, u: out_interval(*floor_interval(as64(l), as64(u)), l.dtype),
    relax=floor_relax,
    n_alpha=0,
    init_alpha=None,
    func=torch.floor,
)
