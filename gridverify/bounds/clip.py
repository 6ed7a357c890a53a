"""Clipping: shrink an input box by linear constraints, in closed form.

Branch-and-bound knows, for every domain, linear functions of the input that
must reach a level somewhere for the domain to matter: the linear upper bound
of a spec row must reach the level the search is trying to prove (elsewhere
the row stays below it), and the linear bounds of a split neuron must be
compatible with the split (``upper_line(x) >= split lower end``).  Each is a
halfspace ``a . x >= t``; the part of the box outside it can be dropped.

For one halfspace the smallest box that holds ``box ∩ {a . x >= t}`` has a
closed form.  With ``S = max_box a . x = sum_i max(a_i l_i, a_i u_i)`` and the
slack ``s = S - t``: the set is empty when ``s < 0``; otherwise a coordinate
with ``a_i > 0`` keeps ``x_i >= u_i - s / a_i`` and one with ``a_i < 0`` keeps
``x_i <= l_i + s / |a_i|`` (every other coordinate at its best end leaves
exactly ``s`` for this one).  Several halfspaces are applied in turn, which is
sound (each step keeps every point of the intersection) though not always the
tightest box.  Slacks are padded for rounding, so a clipped box never loses a
feasible point to floating-point error.

The idea follows Clip-and-Verify (NeurIPS 2025); the code here is written from
the formula above.
"""

from __future__ import annotations

import torch

from gridverify.bounds.ibp import nan_as

__all__ = ["clip_halfspaces", "clip_union"]

# least relative padding of the slack: a few thousand float64 ulps of the terms summed
_REL_PAD = 1e-12


def _rel_pad(x: torch.Tensor) -> float:
    """Relative rounding pad of a sum of ``x.shape[-1] + 2`` terms in ``x``'s dtype.

    A sum of ``m`` products in floating point is off by at most about
    ``m * eps`` times the sum of the magnitudes; four times that, and never
    less than ``_REL_PAD`` (float32 boxes get about ``1e-7 * m``).
    """
    eps = torch.finfo(x.dtype).eps
    return max(_REL_PAD, 4.0 * (x.shape[-1] + 2) * eps)


def _slack(a: torch.Tensor, t: torch.Tensor, lo: torch.Tensor,
           hi: torch.Tensor) -> torch.Tensor:
    """Slack ``max_box a.x - t``, padded for rounding, ``(...,)``."""
    terms = torch.maximum(a * lo, a * hi)
    scale = terms.abs().sum(-1) + t.abs()
    return terms.sum(-1) - t + _rel_pad(a) * scale + torch.finfo(a.dtype).tiny


def _clip_one(lo: torch.Tensor, hi: torch.Tensor, a: torch.Tensor,
              t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Smallest box holding ``[lo, hi] ∩ {a.x >= t}``; ``(..., n)``, ``t`` ``(...,)``.

    Returns the new bounds and a mask of the empty ones (their bounds are
    returned unchanged).  Non-finite ``a`` or ``t`` entries leave a box as is.
    """
    ok = torch.isfinite(t) & torch.isfinite(a).all(-1)
    a = torch.where(ok[..., None], a, torch.zeros_like(a))
    s = _slack(a, torch.where(ok, t, torch.zeros_like(t)), lo, hi)
    s = torch.where(ok, s, torch.full_like(s, torch.inf))
    empty = s < 0
    sn = s.clamp(min=0)[..., None]
    safe = torch.where(a != 0, a.abs(), torch.ones_like(a))
    step = sn / safe
    # outward rounding of the subtraction/addition below
    pad = _rel_pad(a) * (hi.abs() + lo.abs() + step)
    new_lo = torch.where(a > 0, hi - step - pad, lo)
    new_hi = torch.where(a < 0, lo + step + pad, hi)
    new_lo = torch.maximum(lo, nan_as(new_lo, -torch.inf))
    new_hi = torch.minimum(hi, nan_as(new_hi, torch.inf))
    keep = ~empty[..., None]
    return torch.where(keep, new_lo, lo), torch.where(keep, new_hi, hi), empty


def clip_halfspaces(lo: torch.Tensor, hi: torch.Tensor, a: torch.Tensor, t: torch.Tensor,
                    passes: int = 2) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Box holding ``[lo, hi] ∩ {a_k . x >= t_k for every k}``.

    ``lo``/``hi`` ``(B, n)``, ``a`` ``(B, K, n)``, ``t`` ``(B, K)``.  Each
    halfspace is applied in turn, ``passes`` times over the list.  Returns
    ``(lo, hi, empty)`` with ``empty`` ``(B,)`` true where the intersection is
    empty (the bounds of those rows are meaningless).
    """
    empty = torch.zeros(lo.shape[0], dtype=torch.bool, device=lo.device)
    # a halfspace that holds on the whole box holds on every box inside it: only
    # those that cut their box by more than rounding can change it (skipping one
    # only keeps more of the box); each box's cutting ones are gathered to the
    # front, in their order (the others become no-ops)
    B, K, n = a.shape
    terms = torch.minimum(a * lo[:, None], a * hi[:, None])
    low = terms.sum(-1)
    noise = 4 * _rel_pad(a) * (terms.abs().sum(-1) + t.abs().nan_to_num(0.0, 0.0, 0.0))
    cuts = torch.isfinite(t) & (t > low + noise)
    kmax = int(cuts.sum(1).max()) if B else 0
    order = torch.arange(K, device=t.device).expand(B, K)
    idx = torch.where(cuts, order, order + K).sort(1).values[:, :kmax] % K
    a = a.gather(1, idx[..., None].expand(B, kmax, n))
    t = torch.where(cuts.gather(1, idx), t.gather(1, idx), torch.full_like(t[:, :kmax], -torch.inf))
    for _ in range(passes):
        for k in range(kmax):
            lo, hi, e = _clip_one(lo, hi, a[:, k], t[:, k])
            empty |= e
    return lo, hi, empty


def clip_union(lo: torch.Tensor, hi: torch.Tensor, a: torch.Tensor, t: torch.Tensor,
               active: torch.Tensor | None = None
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Box holding ``[lo, hi] ∩ (union over k of {a_k . x >= t_k})``.

    The hull of the per-halfspace clipped boxes.  ``a`` ``(B, K, n)``, ``t``
    ``(B, K)``; ``active`` ``(B, K)`` drops the halfspaces known to hold no point
    (rows already below the level by another bound).  Returns ``(lo, hi,
    empty)``: ``empty`` where no halfspace meets the box.
    """
    B, K, n = a.shape
    blo = lo[:, None, :].expand(B, K, n)
    bhi = hi[:, None, :].expand(B, K, n)
    clo, chi, e = _clip_one(blo, bhi, a, t)
    if active is not None:
        e = e | ~active
    inf = torch.full_like(clo, torch.inf)
    new_lo = torch.where(e[..., None], inf, clo).min(1).values
    new_hi = torch.where(e[..., None], -inf, chi).max(1).values
    empty = e.all(1)
    new_lo = torch.where(empty[:, None], lo, torch.maximum(new_lo, lo))
    new_hi = torch.where(empty[:, None], hi, torch.minimum(new_hi, hi))
    return new_lo, new_hi, empty
