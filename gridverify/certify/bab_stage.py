"""The branch-and-bound stage of ``certify`` (method ``bab``).

First the undecided constraints are decided at their threshold, in searches of
growing length, the next one picked by cost times odds (:func:`_next_search`);
then, in ``tighten`` mode, every constraint whose gap still exceeds the
tolerance is tightened.  Each search runs on one violation row at a time
(:func:`_row_search`), in this process or side by side in worker processes
(:mod:`gridverify.certify.searches`); results are written into the run's
:class:`~gridverify.certify.state.State`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np
import torch

from gridverify.certify.checkpoint import Checkpoint
from gridverify.certify.options import CertifyOptions
from gridverify.certify.searches import BrokenProcessPool, RowSearch, SearchOutcome, SearchPool
from gridverify.certify.state import Budget, Progress, State, padded, update_attained
from gridverify.errors import GridverifyError, SpecError
from gridverify.spec.constraints import Constraint
from gridverify.spec.region import Region

__all__ = ["WORKER_DIED", "bab_available", "bab_entry", "run_bab"]


def bab_available() -> bool:
    """Whether method ``bab`` can run (:mod:`gridverify.bab` and its ``bab_maximize`` import)."""
    try:
        bab_entry()
    except GridverifyError:
        return False
    return True


def bab_entry() -> Any:
    """:func:`gridverify.bab.bab_maximize`, or SpecError when it cannot be imported."""
    try:
        from gridverify.bab import bab_maximize
    except ImportError:
        raise SpecError("method bab: gridverify.bab (bab_maximize) is not available") from None
    return bab_maximize


#: the reason of a constraint whose search the certificate's time budget ended
CUT_SHORT = "cut short: timeout (bab)"
#: the reason of a constraint whose search was lost with its worker process
WORKER_DIED = "bab worker died"
#: why branch-and-bound stopped (BabResult.reason) -> the constraint's reason
_BAB_REASONS = {"memory": "memory cap", "timeout": "gap above tolerance",
                "max_domains": "gap above tolerance", "unsplittable": "gap above tolerance"}


#: the decision searches of one undecided constraint, as shares of ``bab.timeout``:
#: a short one first, longer ones while it stays undecided (1/16 + 1/4 + 1 in all)
_DECIDE_SHARES = (1 / 16, 1 / 4, 1.0)
#: ``tighten`` mode: the share of the time left at the start of branch-and-bound
#: that the decision searches may take; the tightening has the rest
_DECIDE_TIME_SHARE = 0.5


def _next_search(st: State, searched: np.ndarray, shares: tuple[float, ...],
                 busy: np.ndarray | None = None) -> int | None:
    """The undecided constraint to search next (``None``: none left).

    ``searched``: decision searches each constraint has had; ``busy``: constraints
    being searched now (skipped).  The key is the
    cost of its next search (its share) times the odds of its bracket lying
    above the threshold (:meth:`State.cut_odds`): the bound has to cut that
    much to certify, and the attack before branch-and-bound is strong, so an
    undecided constraint is settled by its bound far more often than by a new
    violation.  A constraint whose threshold sits near its worst found waits
    behind the short and the longer searches of those nearly certified.
    """
    mask = st.undecided() & (searched < len(shares))
    if busy is not None:
        mask &= ~busy
    idx = np.flatnonzero(mask)
    if not idx.size:
        return None
    key = st.cut_odds(idx) * np.asarray(shares)[searched[idx]]
    return int(idx[np.argmin(key)])


def _row_search(st: State, k: int, per: float | None, decide: bool, opts: CertifyOptions,
                budget: Budget) -> RowSearch:
    """The search of constraint ``k`` within ``per`` seconds and the budget
    (``decide``: decision mode at its threshold, less twice the rounding pad so
    that a bound at it still certifies once padded; else optimization mode).
    One search per violation row whose bound is above the level (the
    threshold, or the worst found plus the tolerance), the loosest last, each
    with an equal share of what is left of ``per``: searched together, a
    domain is dropped only where every row is below the level, so each row's
    splits repeat in the leaves of the other's (case57_relu p_balance bus 12,
    60 CPU s: 7.71 together, 7.02 row by row).  With ``jobs`` searches side by
    side, each domain store gets ``1 / jobs`` of ``bab.memory_mb``."""
    thr = float(st.thresholds[k])
    decide_at = thr - 2.0 * (opts.pad_abs + opts.pad_rel * abs(thr))
    own = np.flatnonzero(st.physics.row_constraint == k)
    level = thr if decide else st.att[k] + opts.bab.gap_tolerance(st.att[k])
    rows = own[~(st.row_ub[own] <= level)]
    rows = rows[np.argsort(st.row_ub[rows], kind="stable")]
    left = budget.left()
    return RowSearch(
        rows=tuple(int(r) for r in rows), n_rows=st.physics.n_rows,
        threshold=decide_at if decide else None, seconds=per,
        deadline=time.time() + left if math.isfinite(left) else math.inf,
        options=replace(opts.bab, seed=opts.seed, memory_mb=opts.bab.memory_mb / opts.jobs),
        stop_above=thr if decide else None,
        floor=None if decide or not np.isfinite(st.att[k]) else float(st.att[k]))


def run_bab(fn: Any, st: State, graph: Any, region: Region, case: Any,
             module: torch.nn.Module, opts: CertifyOptions, budget: Budget,
             notify: Progress | None = None,
             checkpoint: Checkpoint | None = None) -> list[dict[str, Any]]:
    """Branch-and-bound within the one budget; one trace per call (:func:`_bab_trace`).

    First the undecided constraints, in decision mode at their threshold, in
    searches of growing length (:data:`_DECIDE_SHARES` of ``bab.timeout``), the
    next one picked by :func:`_next_search`: a status changed is what the
    engineer values most, and the constraints a short search settles no longer
    wait behind those no search settles.  Then, in ``tighten`` mode (where the
    decision searches take at most :data:`_DECIDE_TIME_SHARE` of the time left),
    every constraint whose gap (bound minus worst found) still exceeds
    ``bab.tolerance``, in optimization mode (undecided ones first, then violated
    and certified ones by decreasing gap) with what is left of ``timeout``; a
    constraint still open after all its decision searches is not searched
    again.  The spec of a constraint is its violation rows (:func:`_row_search`).
    ``opts.jobs`` searches run side by side, each in a worker process
    (:class:`~gridverify.certify.searches.SearchPool`); the next one starts as
    soon as one ends, picked from the state as it then stands.
    ``checkpoint``: searches an earlier run finished are not repeated, and the
    progress is saved as searches end (:mod:`gridverify.certify.checkpoint`).
    """
    K = len(st.thresholds)
    searched = np.zeros(K, dtype=np.int64)
    tightened = np.zeros(K, dtype=bool)
    if checkpoint is not None and checkpoint.searched is not None:
        searched, tightened = checkpoint.searched.copy(), checkpoint.tightened.copy()
    try:
        return _run_bab(fn, st, graph, region, case, module, opts, budget, notify, checkpoint,
                        searched, tightened)
    finally:
        if checkpoint is not None:
            checkpoint.save(st, searched, tightened, force=True)


def _run_bab(fn: Any, st: State, graph: Any, region: Region, case: Any,
             module: torch.nn.Module, opts: CertifyOptions, budget: Budget,
             notify: Progress | None, checkpoint: Checkpoint | None, searched: np.ndarray,
             tightened: np.ndarray) -> list[dict[str, Any]]:
    """:func:`run_bab` on the arrays of searches done, updated in place (a decision
    search counts when it ends)."""
    runs: list[dict[str, Any]] = []
    wall0 = time.time() - (time.perf_counter() - budget.t0)  # budget.t0 on the wall clock
    K = len(st.thresholds)
    started_decide = searched.copy()  # decision searches started (those running included)
    # future -> (constraint, decide, final, cut: its time limit was cut by the decision
    # phase's end, so it does not count as one of the constraint's searches)
    running: dict[Any, tuple[int, bool, bool, bool]] = {}

    def start(pool: SearchPool, k: int, per: float | None, decide: bool, label: str,
              frac: float, final: bool, cut: bool = False) -> None:
        def show(info: dict) -> None:
            # a search's bound holds at any moment: keep it, so that an interrupted
            # run's checkpoint has the progress of the search it was in
            r, ub = info.get("row"), float(info.get("bound", math.inf))
            if r is not None and math.isfinite(ub):
                st.row_ub[r] = min(st.row_ub[r], float(padded(ub, opts)))
            if notify is not None:
                notify(f"{label}: {int(info['open'])} open domains, bound "
                       f"{info['bound']:.4g}, gap {info['gap']:.3g}", frac)

        if notify is not None and pool.jobs > 1:
            notify(f"{label} ({len(running) + 1} of {pool.jobs} searches running)", frac)
        running[pool.submit(_row_search(st, k, per, decide, opts, budget), show)] = (
            k, decide, final, cut)

    def run_all(pool: SearchPool, start_next: Callable[[], bool]) -> None:
        """Keep ``pool.jobs`` searches running while ``start_next()`` starts one (False:
        none to start) and the budget lasts; apply each outcome as it arrives."""
        while True:
            while len(running) < pool.jobs and not budget.expired() and start_next():
                pass
            if not running:
                return
            for fut in pool.first_done(running):
                k, decide, final, cut = running.pop(fut)
                try:
                    outcome = fut.result()
                except BrokenProcessPool:  # its bounds stand; the rest runs in this process
                    st.reason[k] = st.reason[k] or WORKER_DIED
                    pool.run_here()
                    continue
                _apply_search(st, k, outcome, decide, final and not cut, case, module,
                              region, opts, budget, runs, wall0)
                if decide:
                    # cut short by the budget or by the decision phase's end: a resumed
                    # run (or this run's tightening) searches it again
                    if not budget.expired() and not cut:
                        searched[k] += 1
                else:
                    # a tightening cut short by the budget counts too: its bound is kept,
                    # and a resumed run goes on with the next constraints instead of
                    # spending its piece on the same search from its root again
                    tightened[k] = True
                if checkpoint is not None:
                    checkpoint.save(st, searched, tightened)

    per = opts.bab.timeout
    shares = _DECIDE_SHARES if per is not None else (1.0,)
    # searched to the end by an earlier run (a checkpoint) and still above the tolerance
    earlier = (st.undecided() & (searched >= len(shares))) | tightened
    for k in np.flatnonzero(earlier & ~(st.ub - st.att <= opts.bab.gap_tolerance(st.att))):
        st.reason[k] = st.reason[k] or _BAB_REASONS["timeout"]
        st.stage[k] = "bab"
    tighten = opts.bab_mode == "tighten"
    phase = Budget(time.perf_counter(), _DECIDE_TIME_SHARE * budget.left()
                    if tighten and math.isfinite(budget.left()) else None)
    with SearchPool(fn, graph, region.lower, region.upper, opts.jobs,
                    torch.get_num_threads()) as pool:

        def decide_next() -> bool:
            if phase.expired():
                return False
            busy = np.zeros(K, dtype=bool)
            busy[[k for k, _, _, _ in running.values()]] = True
            k = _next_search(st, started_decide, shares, busy)
            if k is None:
                return False
            n = int(started_decide[k])
            own = math.inf if per is None else per * shares[n]
            limit = min(own, phase.left())
            c = st.physics.constraints[k]
            started_decide[k] += 1
            start(pool, k, limit if math.isfinite(limit) else None, True,
                  f"bab decide {c.family}[{c.component}] (search {n + 1}/{len(shares)})",
                  0.85 + 0.1 * started_decide.sum() / max(len(shares) * K, 1),
                  final=n == len(shares) - 1, cut=limit < own)
            return True

        run_all(pool, decide_next)
        # the tightening takes those whose gap exceeds the tolerance, but not the
        # undecided ones open after every search nor those an earlier run tightened
        spent = st.undecided() & (searched >= len(shares))
        todo_mask = (~(st.ub - st.att <= opts.bab.gap_tolerance(st.att)) & ~spent
                     & ~tightened) if tighten else np.zeros(K, dtype=bool)
        if budget.expired():  # neither the decisions left nor the tightening were reached
            st.skip((st.undecided() & (searched < len(shares))) | todo_mask, "bab")
            return runs
        if not tighten:
            return runs
        todo = st.priority(todo_mask)
        started = 0

        def tighten_next() -> bool:
            nonlocal started
            if started >= todo.size:
                return False
            k = int(todo[started])
            c = st.physics.constraints[k]
            start(pool, k, per, False,
                  f"bab tighten {c.family}[{c.component}] ({started + 1}/{todo.size})",
                  0.95 + 0.05 * started / max(todo.size, 1), final=True)
            started += 1
            return True

        run_all(pool, tighten_next)
        st.skip(todo[started:], "bab")
    return runs


def _apply_search(st: State, k: int, outcome: SearchOutcome, decide: bool, final: bool,
                  case: Any, module: torch.nn.Module, region: Region, opts: CertifyOptions,
                  budget: Budget, runs: list[dict[str, Any]], wall0: float) -> None:
    """Fold one search of constraint ``k`` into the state: its rows' bounds (padded),
    the points it found (re-evaluated on the proxy and the grid equations) and a
    trace per row; ``final``: the constraint's last search (an open one gets its
    reason)."""
    own = np.flatnonzero(st.physics.row_constraint == k)
    if st.reason[k] == WORKER_DIED:
        st.reason[k] = None  # searched again since
    out = None
    for r, started, out in outcome.rows:
        ub = float(out.upper_bound)
        if math.isfinite(ub):
            st.row_ub[r] = min(st.row_ub[r], float(padded(ub, opts)))
        if out.witness is not None:
            x = np.clip(np.atleast_2d(np.asarray(out.witness, dtype=np.float64)),
                        region.lower, region.upper)
            update_attained(st, case, module, x)
        runs.append(_bab_trace(st.physics.constraints[k], int(np.searchsorted(own, r)),
                               out, started - wall0))
    # rows not searched keep the bounds of the stages before
    st.ub[k] = min(st.ub[k], float(st.row_ub[own].max()))
    st.stage[k] = "bab"
    settled = decide and not st.undecided()[k]
    closed = st.ub[k] - st.att[k] <= opts.bab.gap_tolerance(st.att[k])
    if out is not None and not closed and not settled and (final or budget.expired()):
        reason = _BAB_REASONS.get(str(out.reason), f"bab {out.reason}")
        if str(out.reason) == "timeout" and budget.expired():
            reason = CUT_SHORT  # searched, but the certificate's budget ran out
        st.reason[k] = reason
    st.seconds[k] += outcome.seconds


def _json_num(v: Any) -> float | None:
    v = float(v)
    return v if math.isfinite(v) else None


def _bab_trace(c: Constraint, row: int, out: Any, offset: float) -> dict[str, Any]:
    """One BaB call as JSON: ``{"family", "component", "row", "history", "domains",
    "status"}``.

    ``row``: which of the constraint's violation rows was searched (0 or 1 for the
    two signs of a balance residual).  ``history`` rows are ``[seconds, bound,
    attained]`` with ``seconds`` counted from the start of :func:`certify` (the BaB
    call's own clock plus ``offset``, when it started) and the unpadded BaB bound;
    non-finite values are ``None``.
    """
    hist = [[float(t) + offset, _json_num(b), _json_num(a)] for t, b, a in out.history]
    return {"family": c.family, "component": int(c.component), "row": int(row),
            "history": hist, "domains": int(out.domains_visited), "status": str(out.status)}
