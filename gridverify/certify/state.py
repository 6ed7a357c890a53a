"""The working state of one ``certify`` run, shared by its stages (internal).

:class:`State` holds, per constraint and per violation row, what the stages
have established so far (bounds, worst values found and their loads, reasons,
radii); :class:`Budget` is the run's one time budget.  The helpers here are the
ones every stage applies to it: float64 evaluation of the violations at loads,
the rounding pad of upper bounds and the update of the per-constraint bound
from row bounds.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from gridverify.certify.options import CertifyOptions
from gridverify.physics.acp import PhysicsGraph
from gridverify.physics.evaluate import violation_values
from gridverify.spec.constraints import Constraint

__all__ = ["Budget", "Progress", "State", "apply_row_bounds", "evaluate_violations", "padded",
           "update_attained"]

#: ``notify(what, fraction)``: a stage reports progress
Progress = Callable[[str, float], None]


@dataclass
class State:
    """Mutable working state of one certify run (internal)."""

    physics: PhysicsGraph
    thresholds: np.ndarray
    ub: np.ndarray  # per constraint
    att: np.ndarray  # per constraint
    #: (K, n) point of the attained value in the search space (the loads, or the
    #: factors of a factor region: :attr:`to_loads` maps it)
    worst: np.ndarray
    seconds: np.ndarray  # per constraint share
    #: per constraint: why its work stopped short (None: processed)
    reason: list[str | None] = field(default_factory=list)
    #: per constraint: the last stage that bounded it ("none" before any)
    stage: list[str] = field(default_factory=list)
    #: the proxy's (unstable, total) relus over the region; None without relus
    relus: tuple[int, int] | None = None
    #: per violation row: its padded upper bound (``ub`` is the max over a constraint's)
    row_ub: np.ndarray = field(init=False)
    #: per constraint: the largest radius found certifying it (NaN: none, or not asked)
    radius: np.ndarray = field(init=False)
    #: points of the search space -> loads ``(B, 2 n_load)`` (the region's ``to_loads``)
    to_loads: Callable[[np.ndarray], np.ndarray] = np.atleast_2d
    #: per constraint: how many evaluated points gave it a NaN value (proxy undefined)
    nan_count: np.ndarray = field(init=False)
    #: per constraint: a point of the search space where its value is NaN (NaN: none)
    nan_point: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        k = len(self.thresholds)
        self.reason = [None] * k
        self.stage = ["none"] * k
        self.row_ub = np.full(self.physics.n_rows, np.inf)
        self.radius = np.full(k, np.nan)
        self.nan_count = np.zeros(k, dtype=np.int64)
        self.nan_point = np.full((k, self.worst.shape[1]), np.nan)

    def rows_of(self, cons_mask: np.ndarray) -> np.ndarray:
        """Indices of the violation rows of the constraints in ``cons_mask``."""
        return np.flatnonzero(cons_mask[self.physics.row_constraint])

    def row_max(self, rows: np.ndarray, values: np.ndarray) -> np.ndarray:
        """Per constraint, the largest of ``values`` over its rows among ``rows``
        (``-inf`` for a constraint with none of them)."""
        out = np.full(len(self.thresholds), -np.inf)
        np.maximum.at(out, self.physics.row_constraint[rows], values)
        return out

    def uncertified(self) -> np.ndarray:
        """Constraint mask: not certified by the bound."""
        return ~(self.ub <= self.thresholds)

    def undecided(self) -> np.ndarray:
        """Constraint mask: not certified by the bound and not violated by a point."""
        return ~(self.ub <= self.thresholds) & ~(self.att > self.thresholds)

    def skip(self, cons: np.ndarray, stage: str) -> None:
        """Constraints (mask or indices) a stage did not reach before the timeout."""
        cons = np.asarray(cons)
        idx = np.flatnonzero(cons) if cons.dtype == bool else cons.astype(np.int64)
        for k in idx:
            if self.reason[k] is None:
                self.reason[k] = f"not reached: timeout ({stage})"

    def priority(self, cons: np.ndarray) -> np.ndarray:
        """Constraint indices of ``cons`` (mask), the nearest to deciding first.

        Undecided ones first, by the share of their bracket ``[attained, bound]``
        that lies below the threshold (small: a violation is near); then
        violated ones, then certified ones, each by decreasing gap.
        """
        idx = np.flatnonzero(cons)
        ub, att, thr = self.ub[idx], self.att[idx], self.thresholds[idx]
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            near = (thr - att) / np.maximum(ub - att, 1e-300)
        near = np.nan_to_num(near, nan=np.inf, posinf=np.inf, neginf=-np.inf)
        rank = np.where(att > thr, 1, np.where(ub <= thr, 2, 0))
        gap = np.nan_to_num(ub - att, nan=np.inf, posinf=np.inf, neginf=0.0)
        key2 = np.where(rank == 0, near, -gap)
        return idx[np.lexsort((key2, rank))]

    def cut_odds(self, idx: np.ndarray) -> np.ndarray:
        """Per constraint of ``idx``: how much of its bracket ``[attained, bound]``
        lies above the threshold, as odds ``above / below`` (0: the bound is at the
        threshold; large: the threshold is near the worst found; ``inf`` for a
        constraint without a finite bracket)."""
        ub, att, thr = self.ub[idx], self.att[idx], self.thresholds[idx]
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            odds = (ub - thr) / np.maximum(thr - att, 1e-300)
        return np.nan_to_num(odds, nan=np.inf, posinf=np.inf, neginf=np.inf)


class Budget:
    """The one time budget of a certificate (``timeout`` seconds from ``t0``), and the
    wall seconds of its stages (``laps``, ``provenance["stage_seconds"]``)."""

    def __init__(self, t0: float, timeout: float | None) -> None:
        self.t0, self.timeout = t0, timeout
        self.laps: dict[str, float] = {}
        self._mark = t0

    def lap(self, stage: str) -> None:
        """Record the seconds since the last lap (or ``t0``) as ``stage``'s."""
        now = time.perf_counter()
        self.laps[stage] = round(now - self._mark, 3)
        self._mark = now

    def left(self) -> float:
        """Seconds left (``inf`` without a timeout)."""
        if self.timeout is None:
            return math.inf
        return self.timeout - (time.perf_counter() - self.t0)

    def deadline(self, share: float = 1.0) -> float | None:
        """The :func:`time.monotonic` time at which ``share`` of the seconds left are
        spent (``None`` without a timeout): the deadline handed to a stage's searches."""
        left = self.left()
        return None if math.isinf(left) else time.monotonic() + share * left

    def expired(self) -> bool:
        """Whether the budget is spent."""
        return self.left() <= 0


def evaluate_violations(
    case: Any, module: torch.nn.Module, constraints: Sequence[Constraint], x: np.ndarray,
    batch: int = 8192,
) -> np.ndarray:
    """Violations ``(B, K)`` at loads ``x`` in float64 on the proxy module and grid equations."""
    x = np.atleast_2d(np.asarray(x, dtype=np.float64))
    outs = []
    with torch.no_grad():
        for s in range(0, x.shape[0], batch):
            xt = torch.from_numpy(x[s:s + batch])
            y = module(xt).to(torch.float64)
            outs.append(violation_values(case, constraints, xt, y).numpy())
    if not outs:
        return np.zeros((0, len(constraints)))
    return np.concatenate(outs, axis=0)


def update_attained(st: State, case: Any, module: torch.nn.Module, x: np.ndarray,
                     batch: int = 8192) -> None:
    """Evaluate the search-space points ``x`` at their loads; keep each constraint's worst."""
    if x.shape[0] == 0:
        return
    v = evaluate_violations(case, module, st.physics.constraints, st.to_loads(x), batch=batch)
    # NaN or infinite (an output overflowed: vm = +inf makes vm_min's value -inf): the
    # proxy is undefined there (a JSON attained value is finite); never certified, and
    # said (certify)
    nan = ~np.isfinite(v)
    if nan.any():
        hit = nan.any(axis=0)
        first = nan.argmax(axis=0)
        fresh = hit & (st.nan_count == 0)
        st.nan_point[fresh] = x[first[fresh]]
        st.nan_count += nan.sum(axis=0)
    v = np.where(nan, -np.inf, v)
    best = v.argmax(axis=0)
    vals = v[best, np.arange(v.shape[1])]
    better = vals > st.att
    st.att[better] = vals[better]
    st.worst[better] = x[best[better]]


def padded(up: Any, opts: CertifyOptions) -> Any:
    """Upper bounds (a float or an array) padded for rounding."""
    return up + opts.pad_abs + opts.pad_rel * np.abs(up)


def apply_row_bounds(st: State, rows: np.ndarray, up: np.ndarray, opts: CertifyOptions) -> None:
    """Fold new upper bounds ``up`` of violation ``rows`` (padded for rounding) into
    ``st``: each row keeps the smaller bound, and a constraint's bound becomes the
    max over its rows once all of them were bounded in this call."""
    up = padded(up, opts)
    st.row_ub[rows] = np.minimum(st.row_ub[rows], up)
    K = len(st.physics.constraints)
    rc = st.physics.row_constraint
    per = st.row_max(rows, up)
    # a constraint's bound is the max over ALL its rows: only update constraints whose
    # rows were all bounded in this call
    hit = np.zeros(rc.size, dtype=bool)
    hit[rows] = True
    done = np.bincount(rc[hit], minlength=K) == np.bincount(rc, minlength=K)
    done &= np.bincount(rc[rows], minlength=K) > 0
    st.ub[done] = np.minimum(st.ub[done], per[done])
