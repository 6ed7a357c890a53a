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
from gridverify.errors import GridverifyError, SpecError

__all__ = ["BabResult", "bab_maximize"]

CERTIFIED, VIOLATED, OPEN = "certified", "violated", "open"
Progress = Callable[[dict[str, float]], None]


@dataclass
class BabResult:
    """Outcome of :func:`bab_maximize`.

    ``upper_bound``: sound upper bound of ``max_k spec_k @ y`` over the box;
    ``attained``: the best value found, at ``witness`` (re-evaluated in
    float64; ``-inf`` and ``None`` when nothing was evaluated); ``status``:
    ``certified``, ``violated`` or ``open``; ``reason``: why the search stopped
    (``threshold``, ``violation``, ``gap``, ``timeout``, ``memory``,
    ``max_domains``, ``unsplittable``, ``error: ...``); ``domains_visited``:
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
        return torch.nan_to_num(v, nan=-torch.inf).cpu()

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
               rows: torch.Tensor | None = None) -> torch.Tensor:
        """Best points of the falsifier on each box ``(D, n)``; returns candidate points.

        Each objective is one (box, spec row) pair (the maximum of the rows
        follows only the row that is largest at the start, and misses the
        others): every box is attacked on the target ``rows`` (default: every
        row; at most ``restarts`` of them), with the restarts shared among them.
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
                      opts, device=self.device)
        # candidates: every objective's best point (offer() re-checks them on every row)
        return res.inputs


def _children(parents: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Two children per parent (left block then right block) by the stored decisions."""
    P = parents["ub"].shape[0]
    kind, idx, pt = parents["kind"], parents["index"], parents["point"]
    ch = {k: torch.cat([parents[k], parents[k]]) for k in ("lo", "hi", "ilo", "ihi", "ub")}
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
) -> BabResult:
    """Branch-and-bound upper bound of ``max_k spec_k @ y(x)`` over ``lower <= x <= upper``.

    ``graph``: a :class:`~gridverify.ir.Graph` (or anything
    :func:`gridverify.bounds.to_graph` takes); ``spec``: one row ``(n_out,)``
    or rows ``(m, n_out)``; ``threshold``: decision mode's threshold.
    ``timeout``/``memory_mb`` override the options' values when given.
    ``mode``: ``"decision"`` (needs a threshold), ``"optimization"`` or
    ``"auto"`` (decision when a threshold is given).  ``progress(info)`` is
    called after every round with ``open``, ``bound``, ``attained``, ``gap``,
    ``visited`` and ``seconds``.  Never raises on a timeout or the memory cap;
    bad input raises a :class:`~gridverify.errors.GridverifyError`.
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
    if mode == "decision" and threshold is None:
        raise BabOptionsError("mode 'decision' needs a threshold")
    if mode == "auto":
        mode = "decision" if threshold is not None else "optimization"
    g = to_graph(graph)
    lo, hi = _as_box(g, lower, upper)
    c = _as_spec(g, spec)
    dev = torch.device(opts.device) if opts.device else torch.device("cpu")
    bounder = Bounder(g, c, dev, relevance=opts.focus)
    heuristic = resolve_branching(opts.branching, g.input_size, opts.input_split_max_dim,
                                  bounder.n_flat)
    fals = _Falsifier(g, c, dev, opts.seed)
    notify = progress or (lambda info: None)

    clock = time.process_time if opts.clock == "cpu" else time.perf_counter
    c0 = clock() - (time.perf_counter() - t0) if opts.clock == "wall" else clock()

    def elapsed() -> float:
        return clock() - c0

    fals.offer(((lo + hi) / 2)[None], lo, hi)
    root_method = "alpha-crown" if opts.root_alpha_iterations > 0 else "crown"
    db = bounder.bound(lo[None], hi[None], None, None, method=root_method,
                       alpha_iterations=opts.root_alpha_iterations,
                       want_lin=heuristic == "bbps", intermediate=opts.root_intermediate)
    # root attack (the objective is multi-modal: many restarts pay): every row
    # whose bound leaves room, worst bound first, 2 * attack_restarts restarts
    # each (at most 1024 in all) and 5 * attack_steps steps; the in-search
    # attacks cycle over the worst rows
    root_rows = db.row_upper[0].detach().cpu()
    order = torch.argsort(root_rows, descending=True)
    fals.top_rows = order[: max(1, opts.attack_restarts)]
    live = order[root_rows[order] > fals.best]
    if live.numel():
        n_r = min(max(4 * opts.attack_restarts, 2 * opts.attack_restarts * live.numel()), 1024)
        fals.offer(fals.attack(lo[None], hi[None], n_r, 5 * opts.attack_steps, rows=live),
                   lo, hi)
    visited = 1
    pruned_max = stuck_max = -math.inf
    # rows whose root bound is already below the level need no more work: bound
    # only the others from here on (fewer CROWN rows per domain, see
    # Bounder.restrict_rows); the dropped rows' root bounds still count
    level = threshold if mode == "decision" else fals.best + opts.tolerance
    if mode != "decision" and threshold is not None:
        level = min(level, threshold)
    keep = root_rows > level
    if opts.focus and 0 < int(keep.sum()) < keep.numel() and not bool(db.infeasible[0]):
        pruned_max = float(root_rows[~keep].max())
        bounder.restrict_rows(keep.nonzero().reshape(-1))
    if opts.branching == "auto" and heuristic != "input":
        # a network stable over the region (relus decided at the root) branches on inputs
        heuristic = resolve_branching("auto", g.input_size, opts.input_split_max_dim,
                                      bounder.n_flat, relu_unstable(bounder, db.ilo, db.ihi))
    tables = load_tables() if opts.points == "table" and heuristic != "input" else None
    dec = choose(bounder, db, lo[None], hi[None], heuristic, tables)
    store = DomainStore(g.input_size, bounder.n_flat, opts.memory_mb)
    root_ub = float(db.upper[0])
    if bool(db.infeasible[0]):
        root_ub = -math.inf
    elif int(dec.kind[0]) == NONE:
        stuck_max = root_ub
    else:
        store.push(lo=lo[None], hi=hi[None], ilo=db.ilo.cpu(), ihi=db.ihi.cpu(),
                   ub=db.upper.cpu(), kind=dec.kind, index=dec.index, point=dec.point)

    history: list[tuple[float, float, float]] = []
    reason = ""
    status = OPEN
    rounds = 0

    def bound_now() -> float:
        return max(store.max_upper(), pruned_max, stuck_max, store.lost_upper)

    while True:
        gub = bound_now()
        att = fals.best
        history.append((elapsed(), gub, att))
        notify({"open": float(len(store)), "bound": gub, "attained": att, "gap": gub - att,
                "visited": float(visited), "seconds": elapsed()})
        if mode == "decision":
            if att > threshold:
                status, reason = VIOLATED, "violation"
                break
            if gub <= threshold:
                status, reason = CERTIFIED, "threshold"
                break
        elif gub - att <= opts.tolerance:
            status, reason = CERTIFIED, "gap"
            break
        if not len(store):
            reason = "memory" if store.full else "unsplittable"
            break
        if store.full:
            reason = "memory"
            break
        if opts.timeout is not None and elapsed() > opts.timeout:
            reason = "timeout"
            break
        if opts.max_domains is not None and visited >= opts.max_domains:
            reason = "max_domains"
            break
        parents = store.pop(opts.batch)
        ch = _children(parents)
        try:
            cb = bounder.bound(ch["lo"], ch["hi"], ch["ilo"], ch["ihi"],
                               method=opts.bound_method, alpha_iterations=opts.alpha_iterations,
                               want_lin=heuristic == "bbps",
                               beta_iterations=0 if heuristic == "input" else opts.beta_iterations,
                               beta_lr=opts.beta_lr)
            cdec = choose(bounder, cb, ch["lo"], ch["hi"], heuristic, tables)
        except (GridverifyError, RuntimeError) as exc:
            # keep the parents' (sound) bounds and stop: never crash mid-search
            store.push(**parents)
            reason = f"error: {exc}"
            break
        visited += int(ch["ub"].shape[0])
        rounds += 1
        ub = torch.minimum(cb.upper.cpu(), ch["ub"])
        infeasible = cb.infeasible.cpu()
        level = threshold if mode == "decision" else att + opts.tolerance
        if mode != "decision" and threshold is not None:
            level = min(level, threshold)
        done = (ub <= level) & ~infeasible
        if bool(done.any()):
            pruned_max = max(pruned_max, float(ub[done].max()))
        stuck = (cdec.kind == NONE) & ~done & ~infeasible
        if bool(stuck.any()):
            stuck_max = max(stuck_max, float(ub[stuck].max()))
        keep = ~done & ~infeasible & ~stuck
        if bool(keep.any()):
            store.push(lo=ch["lo"][keep], hi=ch["hi"][keep], ilo=cb.ilo.cpu()[keep],
                       ihi=cb.ihi.cpu()[keep], ub=ub[keep], kind=cdec.kind[keep],
                       index=cdec.index[keep], point=cdec.point[keep])
        if opts.attack_every and rounds % opts.attack_every == 0 and len(store):
            blo, bhi = store.peek_boxes(opts.attack_domains)
            xs = fals.attack(blo, bhi, opts.attack_restarts, opts.attack_steps,
                              rows=fals.top_rows)
            if fals.offer(xs, lo, hi) and mode != "decision":
                n, worst = store.prune(fals.best + opts.tolerance)
                if n:
                    pruned_max = max(pruned_max, worst)

    gub = bound_now()
    if mode == "optimization" and threshold is not None and status == CERTIFIED:
        status = CERTIFIED if gub <= threshold else (VIOLATED if fals.best > threshold else OPEN)
    return BabResult(
        upper_bound=gub, attained=fals.best, witness=fals.witness, status=status,
        domains_visited=visited, seconds=elapsed(), reason=reason, open_domains=len(store),
        branching=heuristic, mode=mode, history=history,
    )
