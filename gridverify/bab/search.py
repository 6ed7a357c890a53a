"""The branch-and-bound loop: decision and optimization modes, anytime.

``bab_maximize`` upper-bounds ``max_k spec_k @ y(x)`` over the input box (the
maximum over the spec rows: one constraint's rows, or a whole family).

Each round pops the ``batch`` open domains with the highest upper bounds,
splits each by the decision stored with it (input or neuron, see
:mod:`gridverify.bab.branching`), bounds all children in **one** engine call,
takes their branching decisions, prunes the children that cannot matter and
stores the rest.  Every few rounds projected gradient ascent runs on the input
boxes of the most promising domains; every point found is re-evaluated in
float64 on the graph before it counts as attained.

The reported upper bound is always sound: the maximum of the bounds of the
open domains, of the pruned ones, of the ones that cannot be split further and
of the ones the memory cap refused.  At a timeout, at the memory cap or at the
domain cap the search stops with status ``open`` and that bound.

Modes: *decision* (a threshold is given) stops when the bound is at most the
threshold (``certified``) or a point exceeds it (``violated``);
*optimization* (no threshold) stops when ``bound - attained <= tolerance``
(``certified``: the worst value is known within the tolerance).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch

from gridverify._consistency import INCONSISTENT, below_attained
from gridverify.bab.bounding import Bounder
from gridverify.bab.branching import (
    INPUT,
    NEURON,
    NONE,
    choose,
    relu_unstable,
    resolve_branching,
)
from gridverify.bab.domains import DomainStore
from gridverify.bab.options import BabOptions, BabOptionsError
from gridverify.bab.points import load_tables
from gridverify.bounds.clip import clip_halfspaces, clip_union
from gridverify.bounds.ibp import nan_as
from gridverify.errors import GridverifyError, SpecError

__all__ = ["BabResult", "bab_maximize"]

CERTIFIED, VIOLATED, OPEN = "certified", "violated", "open"
#: the root attack's share of the search's time: a short search keeps the rest to
#: bound (a 0.5 s search spent 0.8 s in its root attack)
_ROOT_ATTACK_SHARE = 0.25
Progress = Callable[[dict[str, float]], None]


@dataclass
class BabResult:
    """Outcome of :func:`bab_maximize`.

    ``upper_bound``: sound upper bound of ``max_k spec_k @ y`` over the box;
    ``attained``: the best value found, at ``witness`` (re-evaluated in
    float64; ``-inf`` and ``None`` when nothing was evaluated); ``status``:
    ``certified``, ``violated`` or ``open``; ``reason``: why the search stopped
    (``threshold``, ``violation``, ``gap``, ``timeout``, ``memory``,
    ``max_domains``, ``unsplittable``, ``error: ...``, ``inconsistent: ...`` (the
    bound fell below a value attained: a bug; ``upper_bound`` is then ``inf``));
    ``domains_visited``:
    domains bounded (root included); ``open_domains``: left in the store;
    ``history``: ``(seconds, bound, attained)`` after every round.
    """

    upper_bound: float
    attained: float
    witness: np.ndarray | None
    status: str
    domains_visited: int
    seconds: float
    reason: str
    open_domains: int
    branching: str
    mode: str
    history: list[tuple[float, float, float]] = field(default_factory=list)

    @property
    def upper(self) -> float:
        """Alias of ``upper_bound``."""
        return self.upper_bound

    @property
    def gap(self) -> float:
        """``upper_bound - attained``."""
        return self.upper_bound - self.attained


def _as_box(graph: Any, lower: Any, upper: Any) -> tuple[torch.Tensor, torch.Tensor]:
    lo = torch.as_tensor(np.asarray(lower, dtype=np.float64).copy()).reshape(-1)
    hi = torch.as_tensor(np.asarray(upper, dtype=np.float64).copy()).reshape(-1)
    n = graph.input_size
    if lo.numel() != n or hi.numel() != n:
        raise SpecError(f"bab: box has {lo.numel()}/{hi.numel()} entries, the graph {n} inputs")
    if not (torch.isfinite(lo).all() and torch.isfinite(hi).all()):
        raise SpecError("bab: the input box must be finite")
    if bool((lo > hi).any()):
        k = int((lo > hi).nonzero()[0, 0])
        raise SpecError(f"bab: input box has lower > upper at entry {k}")
    return lo, hi


def _as_spec(graph: Any, spec: Any) -> torch.Tensor:
    c = torch.as_tensor(np.asarray(spec, dtype=np.float64).copy())
    if c.dim() == 1:
        c = c.unsqueeze(0)
    if c.dim() != 2 or c.shape[1] != graph.output_size or c.shape[0] < 1:
        raise SpecError(f"bab: spec of shape {tuple(c.shape)}, expected (m, {graph.output_size})")
    if not torch.isfinite(c).all():
        raise SpecError("bab: spec has non-finite entries")
    return c


class _Falsifier:
    """The in-search falsifier: :func:`gridverify.attack.falsify` on domain boxes.

    Keeps the best point found (re-checked in float64 on every spec row).
    """

    def __init__(self, graph: Any, spec: torch.Tensor, device: torch.device, seed: int) -> None:
        self.graph = graph
        self.spec = spec.to(device)
        self.device = device
        self.seed = seed
        self.calls = 0
        self.best = -math.inf
        self.witness: np.ndarray | None = None
        #: spec rows the in-search attacks target (the root's worst bounds)
        self.top_rows = torch.arange(spec.shape[0])

    def value(self, x: torch.Tensor) -> torch.Tensor:
        """``max_k spec_k @ y(x)`` in float64 (NaN -> -inf)."""
        with torch.no_grad():
            y = self.graph.evaluate_flat(x.to(self.device, torch.float64), dtype=torch.float64,
                                         device=self.device)
            v = (y @ self.spec.T).max(-1).values
        return nan_as(v, -torch.inf).cpu()

    def offer(self, x: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> bool:
        """Re-check points ``x`` (clipped to the root box) and keep the best; True if better."""
        x = torch.maximum(torch.minimum(x.detach().cpu().to(torch.float64), hi), lo)
        v = self.value(x)
        k = int(v.argmax())
        if float(v[k]) > self.best:
            self.best = float(v[k])
            self.witness = x[k].numpy().copy()
            return True
        return False

    def attack(self, lo: torch.Tensor, hi: torch.Tensor, restarts: int, steps: int,
               rows: torch.Tensor | None = None, deadline: float | None = None
               ) -> torch.Tensor:
        """Best points of the falsifier on each box ``(D, n)``; returns candidate points.

        Each objective is one (box, spec row) pair (the maximum of the rows
        follows only the row that is largest at the start, and misses the
        others): every box is attacked on the target ``rows`` (default: every
        row; at most ``restarts`` of them), with the restarts shared among them.
        ``deadline``: a :func:`time.monotonic` time the attack stops at.
        """
        from gridverify.attack import AttackOptions, falsify, linear_objectives

        D, n = lo.shape
        m = self.spec.shape[0]
        targets = (rows if rows is not None else torch.arange(m)).reshape(-1)[:max(1, restarts)]
        T = targets.numel()
        per = max(1, restarts // T)
        c = self.spec[targets.to(self.device)].repeat(D, 1)  # (D * T, n_out)
        blo = lo.repeat_interleave(T, 0)
        bhi = hi.repeat_interleave(T, 0)
        self.calls += 1
        opts = AttackOptions(restarts=per, steps=steps, seed=self.seed + self.calls,
                             rounds=1, vertex_rounds=2, polish_steps=5)
        res = falsify(self.graph, blo, bhi, linear_objectives(c.cpu(), self.graph.output_size),
                      opts, device=self.device, deadline=deadline)
        # candidates: every objective's best point (offer() re-checks them on every row)
        return res.inputs


def _clip(db: Any, lo: torch.Tensor, hi: torch.Tensor,
          level: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Input boxes shrunk to where some spec row's linear upper bound reaches ``level``.

    Elsewhere every row stays below the level, so that part of a domain cannot
    change the answer (see :mod:`gridverify.bounds.clip`).  Returns CPU boxes
    and a mask of the domains left empty.
    """
    if db.row_lin is None or not math.isfinite(level):
        return lo, hi, torch.zeros(lo.shape[0], dtype=torch.bool)
    uA, ub = db.row_lin
    dev = uA.device
    active = nan_as(db.row_upper, torch.inf) >= level
    nlo, nhi, empty = clip_union(lo.to(dev, uA.dtype), hi.to(dev, uA.dtype), uA, level - ub,
                                 active)
    return nlo.cpu(), nhi.cpu(), empty.cpu()


def _clip_splits(bounder: Bounder, db: Any, lo: torch.Tensor, hi: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Input boxes shrunk by the split constraints of the nodes affine in the inputs.

    A domain's points satisfy its split constraints; for a node ``z = A x + b``
    they are halfspaces of the input, so the box shrinks to their intersection
    (empty: the domain holds no point).  Returns CPU boxes and the empty mask.
    """
    hs = bounder.split_halfspaces(db.ilo, db.ihi, lo, hi)
    if hs is None:
        return lo, hi, torch.zeros(lo.shape[0], dtype=torch.bool)
    a, t = hs
    nlo, nhi, empty = clip_halfspaces(lo.to(a), hi.to(a), a, t)
    return nlo.cpu(), nhi.cpu(), empty.cpu()


def _children(parents: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Two children per parent (left block then right block) by the stored decisions."""
    P = parents["ub"].shape[0]
    kind, idx, pt = parents["kind"], parents["index"], parents["point"]
    ch = {k: torch.cat([parents[k], parents[k]])
          for k in ("lo", "hi", "ilo", "ihi", "ub", "warm") if k in parents}
    rows = torch.arange(P)
    inp = kind == INPUT
    r = rows[inp]
    if r.numel():
        ch["hi"][r, idx[r]] = pt[r]
        ch["lo"][r + P, idx[r]] = pt[r]
    neu = kind == NEURON
    r = rows[neu]
    if r.numel():
        ch["ihi"][r, idx[r]] = pt[r]
        ch["ilo"][r + P, idx[r]] = pt[r]
    return ch


def bab_maximize(
    graph: Any,
    lower: Any,
    upper: Any,
    spec: Any,
    threshold: float | None = None,
    options: BabOptions | None = None,
    *,
    timeout: float | None = None,
    memory_mb: float | None = None,
    mode: str = "auto",
    progress: Progress | None = None,
    floor: float | None = None,
) -> BabResult:
    """Branch-and-bound upper bound of ``max_k spec_k @ y(x)`` over ``lower <= x <= upper``.

    ``graph``: a :class:`~gridverify.ir.Graph` (or anything
    :func:`gridverify.bounds.to_graph` takes); ``spec``: one row ``(n_out,)``
    or rows ``(m, n_out)``; ``threshold``: decision mode's threshold.
    ``timeout``/``memory_mb`` override the options' values when given.
    ``mode``: ``"decision"`` (needs a threshold), ``"optimization"`` or
    ``"auto"`` (decision when a threshold is given).  ``progress(info)`` is
    called after every round with ``open``, ``bound``, ``attained``, ``gap``,
    ``visited`` and ``seconds``.  ``floor`` (optimization mode): a value known to
    be attained elsewhere (another row of the same constraint, whose maximum is
    what counts): domains at or below it do not matter, and the search ends once
    its bound is within the tolerance of it, whatever this spec attains.  Never
    raises on a timeout or the memory cap; bad input raises a
    :class:`~gridverify.errors.GridverifyError`.
    """
    t0 = time.perf_counter()
    from gridverify.bounds import to_graph

    opts = options or BabOptions()
    if timeout is not None:
        opts = replace(opts, timeout=timeout)
    if memory_mb is not None:
        opts = replace(opts, memory_mb=memory_mb)
    if mode not in ("auto", "decision", "optimization"):
        raise BabOptionsError(f"mode: 'auto', 'decision' or 'optimization', got {mode!r}")
    if threshold is not None and not math.isfinite(float(threshold)):
        raise SpecError(f"bab: threshold must be finite, got {threshold!r}")
    if floor is not None and math.isnan(float(floor)):
        raise SpecError("bab: floor must not be NaN")
    if mode == "decision" and threshold is None:
        raise BabOptionsError("mode 'decision' needs a threshold")
    if mode == "auto":
        mode = "decision" if threshold is not None else "optimization"
    g = to_graph(graph, torch.as_tensor(lower, dtype=torch.float64)
                 if isinstance(graph, torch.nn.Module) else None)  # its size from the box
    lo, hi = _as_box(g, lower, upper)
    search = _Search(g, lo, hi, _as_spec(g, spec), threshold, opts, mode, t0,
                     -math.inf if floor is None or mode == "decision" else float(floor))
    search.root()
    notify = progress or (lambda info: None)
    while True:
        search.record(notify)
        if search.finished():
            break
        start = search.elapsed()
        search.round()
        search.last_round = search.elapsed() - start
    return search.result()


class _Search:
    """The state of one branch-and-bound search (see :func:`bab_maximize`).

    The reported bound is the maximum of the open domains' bounds
    (:attr:`store`), of the pruned ones (``pruned_max``: at or below the level
    when pruned), of the ones with nothing left to split (``stuck_max``) and of
    the ones the memory cap refused.
    """

    def __init__(self, g: Any, lo: torch.Tensor, hi: torch.Tensor, c: torch.Tensor,
                 threshold: float | None, opts: BabOptions, mode: str, t0: float,
                 floor: float = -math.inf) -> None:
        self.g, self.lo, self.hi, self.threshold, self.opts, self.mode = (
            g, lo, hi, threshold, opts, mode)
        self.floor = floor
        dev = torch.device(opts.device) if opts.device else torch.device("cpu")
        self.bounder = Bounder(g, c, dev, relevance=opts.focus)
        self.heuristic = resolve_branching(opts.branching, g.input_size,
                                           opts.input_split_max_dim, self.bounder.n_flat,
                                           always_dim=opts.input_split_always_dim)
        self.fals = _Falsifier(g, c, dev, opts.seed)
        self.clock = time.process_time if opts.clock == "cpu" else time.perf_counter
        self.c0 = (self.clock() - (time.perf_counter() - t0) if opts.clock == "wall"
                   else self.clock())
        #: split multipliers and alphas travel with the domains (warm starts of the
        #: children) when they are optimized
        self.warm = opts.beta_iterations > 0 and self.bounder.n_flat > 0
        self.store = DomainStore(g.input_size, self.bounder.n_flat, opts.memory_mb,
                                 warm_width=self.bounder.warm_width if self.warm else 0)
        self.tables = None
        self.visited = 0
        #: seconds (of ``clock``) the last round took
        self.last_round = 0.0
        self.rounds = 0
        self.pruned_max = self.stuck_max = -math.inf
        self.history: list[tuple[float, float, float]] = []
        self.status, self.reason = OPEN, ""

    # ------------------------------------------------------------ bookkeeping
    def elapsed(self) -> float:
        return self.clock() - self.c0

    def deadline(self, share: float = 1.0) -> float | None:
        """A :func:`time.monotonic` time ``share`` of the time left from now (None
        without a timeout): attacks stop there, so a short search keeps its time."""
        if self.opts.timeout is None:
            return None
        return time.monotonic() + share * max(0.0, self.opts.timeout - self.elapsed())

    def bound_now(self) -> float:
        """The sound upper bound over the whole box right now."""
        return max(self.store.max_upper(), self.pruned_max, self.stuck_max,
                   self.store.lost_upper)

    def level(self) -> float:
        """Domains whose bound is at or below this cannot change the answer."""
        opts, thr = self.opts, self.threshold
        if self.mode == "decision":
            return thr
        known = self.known()
        lev = known + opts.gap_tolerance(known)
        return min(lev, thr) if thr is not None else lev

    def known(self) -> float:
        """The larger of the value attained here and the floor (optimization mode)."""
        return max(self.fals.best, self.floor)

    def clip_level(self) -> float:
        """The level input clipping keeps: what it drops stays below this, which then
        bounds it (:attr:`pruned_max`).  Just under the threshold (a bound equal to a
        threshold must not stand for "below" it) and halfway to the gap tolerance
        (the gap can still close)."""
        opts, thr = self.opts, self.threshold
        below = None if thr is None else thr - 1e-9 * (1.0 + abs(thr))
        if self.mode == "decision":
            return below
        known = self.known()
        lev = known + 0.5 * opts.gap_tolerance(known)
        return min(lev, below) if below is not None else lev

    def record(self, notify: Progress) -> None:
        gub, att = self.bound_now(), self.fals.best
        self.history.append((self.elapsed(), gub, att))
        notify({"open": float(len(self.store)), "bound": gub, "attained": att,
                "gap": gub - att, "visited": float(self.visited), "seconds": self.elapsed()})

    def finished(self) -> bool:
        """Decide (status, reason) when the search should stop."""
        opts, gub, att = self.opts, self.bound_now(), self.fals.best
        if self.mode == "decision":
            if att > self.threshold:
                self.status, self.reason = VIOLATED, "violation"
                return True
            if gub <= self.threshold:
                self.status, self.reason = CERTIFIED, "threshold"
                return True
        elif gub - self.known() <= opts.gap_tolerance(self.known()):
            self.status, self.reason = CERTIFIED, "gap"
            return True
        if not len(self.store):
            self.reason = "memory" if self.store.full else "unsplittable"
        elif self.store.full:
            self.reason = "memory"
        elif opts.timeout is not None and self.elapsed() + self.last_round > opts.timeout:
            # a round is not cut short: one that the last round's time says would end
            # past the timeout is not started (on a loaded machine rounds slow down,
            # and a search overran its timeout by rounds several seconds long)
            self.reason = "timeout"
        elif opts.max_domains is not None and self.visited >= opts.max_domains:
            self.reason = "max_domains"
        return bool(self.reason)

    def result(self) -> BabResult:
        gub = self.bound_now()
        status, thr = self.status, self.threshold
        if self.mode == "optimization" and thr is not None and status == CERTIFIED:
            status = CERTIFIED if gub <= thr else (VIOLATED if self.fals.best > thr else OPEN)
        att = self.fals.best
        if below_attained(gub, att):
            # a sound bound never lies below a value attained in the box: a bug, and
            # nothing this search bounded is to be trusted
            status = VIOLATED if thr is not None and att > thr else OPEN
            self.reason = (f"{INCONSISTENT}: bound {gub:.6g} below the value {att:.6g} "
                           "attained (a bug; please report it)")
            gub = math.inf
        return BabResult(
            upper_bound=gub, attained=self.fals.best, witness=self.fals.witness,
            status=status, domains_visited=self.visited, seconds=self.elapsed(),
            reason=self.reason, open_domains=len(self.store), branching=self.heuristic,
            mode=self.mode, history=self.history,
        )

    # ------------------------------------------------------------ the algorithm
    def root(self) -> None:
        """Bound and attack the whole box, drop the rows already decided, store the root."""
        opts, lo, hi, bounder, fals = self.opts, self.lo, self.hi, self.bounder, self.fals
        fals.offer(((lo + hi) / 2)[None], lo, hi)
        root_method = "alpha-crown" if opts.root_alpha_iterations > 0 else "crown"
        db = bounder.bound(lo[None], hi[None], None, None, method=root_method,
                           alpha_iterations=opts.root_alpha_iterations,
                           want_lin=self.heuristic == "bbps",
                           intermediate=opts.root_intermediate, deadline=self.deadline())
        self.visited = 1
        root_rows = db.row_upper[0].detach().cpu()
        self._root_attack(root_rows)
        # rows whose root bound is already below the level need no more work: bound
        # only the others from here on (fewer CROWN rows per domain, see
        # Bounder.restrict_rows); the dropped rows' root bounds still count
        level = self.level()
        keep = root_rows > level
        if opts.focus and 0 < int(keep.sum()) < keep.numel() and not bool(db.infeasible[0]):
            self.pruned_max = float(root_rows[~keep].max())
            bounder.restrict_rows(keep.nonzero().reshape(-1))
        if opts.branching == "auto":
            # relus decide: stable over the region -> inputs, else neurons
            self.heuristic = resolve_branching(
                "auto", self.g.input_size, opts.input_split_max_dim, bounder.n_flat,
                relu_unstable(bounder, db.ilo, db.ihi), decision=self.mode == "decision",
                rows=int(keep.sum()), always_dim=opts.input_split_always_dim)
        if opts.points == "table" and self.heuristic != "input":
            self.tables = load_tables()
        dec = choose(bounder, db, lo[None], hi[None], self.heuristic, self.tables)
        if bool(db.infeasible[0]):
            return
        if int(dec.kind[0]) == NONE:
            self.stuck_max = float(db.upper[0])
            return
        rlo, rhi = lo[None], hi[None]
        if opts.clip:
            clev = self.clip_level()
            rlo, rhi, _ = _clip(db, rlo, rhi, clev)
            if bool(((rlo != lo) | (rhi != hi)).any()):
                self.pruned_max = max(self.pruned_max, clev)  # the dropped part
        extra = {}
        if self.warm:  # the root's alphas start its children
            w = bounder.flat_warm(db)
            extra["warm"] = w if w is not None else bounder.no_warm(1)
        self.store.push(lo=rlo, hi=rhi, ilo=db.ilo.cpu(), ihi=db.ihi.cpu(),
                        ub=db.upper.cpu(), kind=dec.kind, index=dec.index, point=dec.point,
                        **extra)

    def _root_attack(self, root_rows: torch.Tensor) -> None:
        """Every row whose bound leaves room, worst bound first, ``2 * attack_restarts``
        restarts each (at most 1024 in all) and ``5 * attack_steps`` steps (the
        objective is multi-modal: many restarts pay); the in-search attacks then
        cycle over the worst rows."""
        opts, fals = self.opts, self.fals
        order = torch.argsort(root_rows, descending=True)
        fals.top_rows = order[: max(1, opts.attack_restarts)]
        live = order[root_rows[order] > fals.best]
        if live.numel():
            n_r = min(max(4 * opts.attack_restarts, 2 * opts.attack_restarts * live.numel()),
                      1024)
            fals.offer(fals.attack(self.lo[None], self.hi[None], n_r, 5 * opts.attack_steps,
                                   rows=live, deadline=self.deadline(_ROOT_ATTACK_SHARE)),
                       self.lo, self.hi)

    def round(self) -> None:
        """Pop the best domains, split them, bound every child in one call, prune,
        clip and store the rest; every few rounds, attack the best boxes."""
        opts, bounder, store = self.opts, self.bounder, self.store
        parents = store.pop(opts.batch)
        ch = _children(parents)
        neuron = self.heuristic != "input"
        try:
            cb = bounder.bound(ch["lo"], ch["hi"], ch["ilo"], ch["ihi"],
                               method=opts.bound_method, alpha_iterations=opts.alpha_iterations,
                               want_lin=self.heuristic == "bbps",
                               beta_iterations=opts.beta_iterations if neuron else 0,
                               beta_lr=opts.beta_lr,
                               intermediate=opts.domain_intermediate if neuron else "crown",
                               warm=ch.get("warm") if neuron else None,
                               deadline=self.deadline())
            cdec = choose(bounder, cb, ch["lo"], ch["hi"], self.heuristic, self.tables)
        except (GridverifyError, RuntimeError) as exc:
            # keep the parents' (sound) bounds and stop: never crash mid-search
            store.push(**parents)
            self.reason = f"error: {exc}"
            return
        self.visited += int(ch["ub"].shape[0])
        self.rounds += 1
        ub = torch.minimum(cb.upper.cpu(), ch["ub"])
        infeasible = cb.infeasible.cpu()
        level = self.level()
        done = (ub <= level) & ~infeasible
        if bool(done.any()):
            self.pruned_max = max(self.pruned_max, float(ub[done].max()))
        stuck = (cdec.kind == NONE) & ~done & ~infeasible
        if bool(stuck.any()):
            self.stuck_max = max(self.stuck_max, float(ub[stuck].max()))
        keep = ~done & ~infeasible & ~stuck
        if opts.clip and bool(keep.any()):
            clev = self.clip_level()
            clo, chi, empty = _clip(cb, ch["lo"], ch["hi"], clev)
            cut = keep & ((clo != ch["lo"]) | (chi != ch["hi"])).any(-1)
            if bool((cut | (empty & keep)).any()):
                # what clipping drops stays below the level: the level bounds it
                self.pruned_max = max(self.pruned_max, clev)
            keep = keep & ~empty
            if neuron:  # split constraints on nodes affine in the inputs
                clo, chi, void = _clip_splits(bounder, cb, clo, chi)
                keep = keep & ~void  # no point of the box meets the splits
            ch["lo"], ch["hi"] = clo, chi
        if bool(keep.any()):
            extra = {}
            if self.warm:
                w = bounder.flat_warm(cb)
                extra["warm"] = (w if w is not None else ch["warm"])[keep]
            store.push(lo=ch["lo"][keep], hi=ch["hi"][keep], ilo=cb.ilo.cpu()[keep],
                       ihi=cb.ihi.cpu()[keep], ub=ub[keep], kind=cdec.kind[keep],
                       index=cdec.index[keep], point=cdec.point[keep], **extra)
        if opts.attack_every and self.rounds % opts.attack_every == 0 and len(store):
            self._attack_best()

    def _attack_best(self) -> None:
        """PGD on the best open boxes; a better point prunes domains (optimization mode)."""
        opts, fals, store = self.opts, self.fals, self.store
        blo, bhi = store.peek_boxes(opts.attack_domains)
        xs = fals.attack(blo, bhi, opts.attack_restarts, opts.attack_steps, rows=fals.top_rows,
                         deadline=self.deadline())
        if fals.offer(xs, self.lo, self.hi) and self.mode != "decision":
            known = self.known()
            n, worst = store.prune(known + opts.gap_tolerance(known))
            if n:
                self.pruned_max = max(self.pruned_max, worst)
