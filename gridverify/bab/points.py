"""Branching points: where to cut a neuron's interval ``[l, u]``.

* relu (and anything whose kink is at 0): 0 -- both halves are then exact;
* ops with per-entry kinks (``OpInfo.kinks``: ``pwl``): the middle one of the
  kinks strictly inside the interval (:func:`kink_points`), so that each split
  halves the number of kinks left and a domain with none is exact;
* midpoint: ``(l + u) / 2``;
* pre-optimized: a lookup table per op computed once (see
  :mod:`gridverify.bab.build_points`): for every interval on a grid of lower
  ends ``l`` and widths ``w`` the split ratio ``r`` whose two halves
  ``[l, l + r w]`` and ``[l + r w, l + w]`` have the least total looseness of
  the default relaxation, looseness being the area between the upper and the
  lower line over the half.  Lookup is constant time (nearest grid cell);
  intervals off the grid fall back to the midpoint.  Periodic ops (sin, cos)
  look up ``l`` modulo the period.

The tables ship in ``gridverify/data/branch_points.h5`` with a format version
and the grid they were computed on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import torch

from gridverify.errors import GridverifyError

__all__ = [
    "POINTS_FILE",
    "POINTS_VERSION",
    "PointTable",
    "PointsFileError",
    "PointsUnavailableError",
    "kink_points",
    "load_tables",
    "split_points",
]

POINTS_VERSION = 1
POINTS_FILE = Path(__file__).resolve().parent.parent / "data" / "branch_points.h5"


class PointsFileError(GridverifyError):
    """A branching-point table file is missing, malformed or of another version."""


class PointsUnavailableError(PointsFileError):
    """The branching-point table file is missing or unreadable (callers may use midpoints)."""


@dataclass(frozen=True)
class PointTable:
    """Optimal split ratios of one op on a grid of ``(l, w)`` cells.

    ``l`` takes ``n_l`` values from ``l_min`` to ``l_max`` (uniform); ``w``
    takes ``n_w`` values from ``w_min`` to ``w_max`` (uniform in ``log w``);
    ``ratio[i, j]`` in ``(0, 1)``.  ``period``: look ``l`` up modulo it.
    """

    op: str
    l_min: float
    l_max: float
    w_min: float
    w_max: float
    ratio: np.ndarray
    period: float | None = None

    @property
    def n_l(self) -> int:
        """Number of grid values of ``l``."""
        return int(self.ratio.shape[0])

    @property
    def n_w(self) -> int:
        """Number of grid values of ``w``."""
        return int(self.ratio.shape[1])

    def lookup(self, l: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """Split points for intervals ``[l, u]`` (midpoints where off the grid)."""
        w = u - l
        ll = l
        if self.period is not None:
            ll = torch.remainder(l, self.period)
        fl = (ll - self.l_min) / max(self.l_max - self.l_min, 1e-300) * (self.n_l - 1)
        lw = torch.log(torch.clamp(w, min=1e-300))
        fw = (lw - math.log(self.w_min)) / max(
            math.log(self.w_max) - math.log(self.w_min), 1e-300) * (self.n_w - 1)
        il = torch.round(fl).long()
        iw = torch.round(fw).long()
        on = (il >= 0) & (il < self.n_l) & (iw >= 0) & (iw < self.n_w) & (w > 0)
        tab = torch.as_tensor(self.ratio, dtype=l.dtype, device=l.device)
        r = tab[il.clamp(0, self.n_l - 1), iw.clamp(0, self.n_w - 1)]
        r = torch.where(on, r, torch.full_like(r, 0.5))
        return l + r * w


@cache
def _load_cached(path: str) -> dict[str, PointTable]:
    import h5py

    p = Path(path)
    if not p.is_file():
        raise PointsUnavailableError(f"{p}: branching-point table file not found "
                                     "(build it with python -m gridverify.bab.build_points)")
    try:
        with h5py.File(p, "r") as f:
            version = int(f.attrs.get("version", -1))
            if version != POINTS_VERSION:
                raise PointsFileError(
                    f"{p}: attribute version is {version}, this gridverify reads {POINTS_VERSION}"
                )
            out: dict[str, PointTable] = {}
            for op in f:
                d = f[op]
                ratio = np.asarray(d["ratio"], dtype=np.float64)
                a = d.attrs
                per = float(a["period"]) if "period" in a and a["period"] > 0 else None
                tab = PointTable(op, float(a["l_min"]), float(a["l_max"]), float(a["w_min"]),
                                 float(a["w_max"]), ratio, per)
                if ratio.ndim != 2 or not np.all((ratio > 0) & (ratio < 1)):
                    raise PointsFileError(
                        f"{p}: table {op}/ratio must be 2-D with values in (0, 1)")
                out[op] = tab
    except (OSError, KeyError, ValueError) as exc:
        raise PointsUnavailableError(
            f"{p}: malformed branching-point table file ({exc})") from None
    return out


def load_tables(path: str | Path | None = None) -> dict[str, PointTable]:
    """The pre-optimized tables ``{op: PointTable}`` (cached per path)."""
    return _load_cached(str(Path(path) if path is not None else POINTS_FILE))


def kink_points(kinks: torch.Tensor, weights: torch.Tensor, l: torch.Tensor,
                u: torch.Tensor) -> torch.Tensor:
    """The middle kink strictly inside each ``[l, u]`` (``l`` itself when there is none).

    ``kinks``/``weights``: ``(n, K)`` sorted kink positions of each entry and the
    slope changes there (kinks of zero weight are not kinks); ``l, u``: ``(B, n)``.
    A returned ``l`` is not strictly inside, so the entry is not splittable.
    """
    k = kinks.to(l)
    inside = (k > l.unsqueeze(-1)) & (k < u.unsqueeze(-1)) & (weights.to(l) != 0)
    count = inside.sum(-1, keepdim=True)
    rank = torch.cumsum(inside.to(torch.int64), -1)
    pick = inside & (rank == (count + 1) // 2)
    p = torch.where(pick, k.expand_as(pick), torch.zeros_like(k)).sum(-1)
    return torch.where(count.squeeze(-1) > 0, p, l)


def split_points(op: str, l: torch.Tensor, u: torch.Tensor,
                 tables: dict[str, PointTable] | None) -> torch.Tensor:
    """Branching points of op ``op``'s input intervals ``[l, u]``.

    relu: 0; an op with a table (when ``tables`` is given): the table's point;
    otherwise (and for infinite intervals) the midpoint.  Points lie strictly
    inside ``(l, u)`` whenever ``l < u`` allows it.
    """
    if op == "relu":
        p = torch.zeros_like(l)
    elif tables is not None and op in tables:
        p = tables[op].lookup(l, u)
    else:
        p = (l + u) / 2
    mid = (l + u) / 2
    inside = (p > l) & (p < u) & torch.isfinite(p)
    if op == "relu":
        return p
    return torch.where(inside, p, torch.where(torch.isfinite(mid), mid, torch.zeros_like(mid)))
