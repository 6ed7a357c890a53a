"""The falsifier: search an input box for points that make objectives of a graph large.

:func:`falsify` maximizes ``m`` objectives of a :class:`~gridverify.ir.Graph`'s
flat outputs, each over its own box (one shared box, or one box per
objective), and returns for each the best point found with its value
re-evaluated in float64.  It is a falsifier: every value it reports is the
objective at a real point of the box, but finding nothing proves nothing.

The search runs in phases over all objectives at once (batched), in the order
the objectives are given (callers put the most valuable first, so that a
deadline cuts the least valuable):

1. **starts**: the box centre and the vertex its gradient points to
   (gradient-sign vertex) for every objective; with a shared box also the
   caller's points (samples, dataset points, extremizers of the proxy outputs),
   ``pool`` uniform points and ``pool`` random vertices, all scored once
   against every objective; each objective starts from its best-scoring
   candidates (two thirds of ``restarts``) and uniform points (the rest);
2. **ascent**: signed-gradient projected ascent with a cosine-decaying step
   relative to the box width, from every start;
3. **cross**: with a shared box, every objective's best point is scored
   against every other objective (a point good for one row of a constraint is
   often good for its neighbours);
4. **polish**: projected gradient ascent from each objective's best point with
   a step that doubles on success and shrinks on failure (a local refinement
   for smooth proxies);
5. **vertex**: a sign-vector search for piecewise-linear proxies, whose worst
   cases sit at box vertices: from the nearest vertex and the gradient-sign
   vertex of the best point, rounds of single-coordinate flips ranked by the
   gradient's predicted gain, plus the combined flip of all improving ones.

With ``rounds`` > 1 the phases run again, the best point of every objective
joining the candidate starts (with a shared box) and other random starts.

The search uses ``options.dtype`` (float64 by default); whatever it finds is
evaluated once more in float64 before it is returned.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from gridverify.attack.options import AttackOptions
from gridverify.errors import SpecError

__all__ = [
    "AttackResult",
    "Objectives",
    "falsify",
    "function_objectives",
    "linear_objectives",
    "objective_bytes",
    "output_extremizers",
    "row_objectives",
]

Objective = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class AttackResult:
    """Best point found per objective.

    ``values`` (m,) float64: the objective at ``inputs`` re-evaluated in float64
    (``-inf`` where the graph gave NaN everywhere tried); ``inputs`` (m, n_in)
    float64, inside the box; ``evaluations`` the number of graph evaluations
    (batched samples) spent; ``seconds`` the wall time; ``reached`` (m,) bool:
    the objectives whose ascent ran to the end (False where a deadline or a
    target cut it; None when not recorded).
    """

    values: torch.Tensor
    inputs: torch.Tensor
    evaluations: int
    seconds: float
    reached: torch.Tensor | None = None


class Objectives:
    """``m`` objectives of a graph's flat outputs ``y``.

    ``at(y, rows)`` is objective ``rows[i]`` at ``y[i]`` (differentiable in
    ``y``); ``every(y)`` is every objective at every ``y`` ``(B, m)``.
    ``sliced(start, stop)``, when given, builds objectives ``start .. stop - 1``
    on their own (so that a group's ``every`` does not compute all ``m``).
    """

    def __init__(self, m: int, at: Objective, every: Callable[[torch.Tensor], torch.Tensor],
                 sliced: Callable[[int, int], Objectives] | None = None):
        if m <= 0:
            raise SpecError("nothing to attack (m = 0)")
        self.m = m
        self.at = at
        self.every = every
        self._sliced = sliced

    def subset(self, start: int, stop: int) -> Objectives:
        """Objectives ``start .. stop - 1`` of these, numbered from 0."""
        if self._sliced is not None:
            return self._sliced(start, stop)
        at, every = self.at, self.every

        def at_sub(y: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
            return at(y, rows + start)

        def every_sub(y: torch.Tensor) -> torch.Tensor:
            return every(y)[:, start:stop]

        return Objectives(stop - start, at_sub, every_sub)


def objective_bytes(n_in: int, restarts: int) -> float:
    """Bytes :func:`falsify` holds per objective besides its evaluation batches: the
    objective's box (float64 and working copies), its best point, its starts and
    start candidates, for ``n_in`` inputs and ``restarts`` starts."""
    return 8.0 * n_in * (2 * restarts + 9)


def _f64(a) -> torch.Tensor:
    """A float64 CPU tensor copy of ``a`` (numpy arrays may be read-only)."""
    if isinstance(a, torch.Tensor):
        return a.detach().to(device="cpu", dtype=torch.float64).clone()
    return torch.tensor(np.array(a, dtype=np.float64))


def linear_objectives(matrix, n_out: int) -> Objectives:
    """Objective ``j`` is ``matrix[j] @ y`` (``matrix`` (m, n_out) or (n_out,))."""
    c = _f64(matrix)
    if c.dim() == 1:
        c = c.unsqueeze(0)
    if c.dim() != 2 or c.shape[1] != n_out:
        raise SpecError(
            f"objective has shape {tuple(c.shape)}, expected (m, {n_out}) "
            "(one row per objective over the graph outputs)"
        )
    cache: dict = {}

    def cm(y: torch.Tensor) -> torch.Tensor:
        key = (y.device, y.dtype)
        if key not in cache:
            cache[key] = c.to(y)
        return cache[key]

    def at(y: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        return (y * cm(y)[rows]).sum(dim=-1)

    def every(y: torch.Tensor) -> torch.Tensor:
        return y @ cm(y).T

    def sliced(start: int, stop: int) -> Objectives:
        return linear_objectives(c[start:stop], n_out)

    return Objectives(c.shape[0], at, every, sliced)


def row_objectives(indices, n_out: int, signs=None) -> Objectives:
    """Objective ``j`` is output entry ``indices[j]`` (a one-hot row, stored as an index),
    times ``signs[j]`` (``+1``/``-1``; default all ``+1``) when given."""
    idx = torch.as_tensor(np.asarray(indices, dtype=np.int64)).reshape(-1)
    if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= n_out):
        raise SpecError(f"row objectives: indices must lie in [0, {n_out})")
    sg = None if signs is None else _f64(signs).reshape(-1)
    if sg is not None and sg.shape != idx.shape:
        raise SpecError(f"row objectives: {sg.numel()} signs for {idx.numel()} indices")
    cache: dict = {}

    def ix(y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        key = (y.device, y.dtype)
        if key not in cache:
            cache[key] = (idx.to(y.device), None if sg is None else sg.to(y))
        return cache[key]

    def at(y: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        i, s = ix(y)
        v = y.gather(1, i[rows].unsqueeze(1)).squeeze(1)
        return v if s is None else v * s[rows]

    def every(y: torch.Tensor) -> torch.Tensor:
        i, s = ix(y)
        return y[:, i] if s is None else y[:, i] * s

    def sliced(start: int, stop: int) -> Objectives:
        return row_objectives(idx[start:stop], n_out, None if sg is None else sg[start:stop])

    return Objectives(int(idx.numel()), at, every, sliced)


def function_objectives(fn: Objective, m: int) -> Objectives:
    """Objectives given as one function ``fn(y, rows) -> (B,)`` (see :class:`Objectives`)."""

    def every(y: torch.Tensor) -> torch.Tensor:
        b = y.shape[0]
        rows = torch.arange(m, device=y.device).repeat(b)
        return fn(y.repeat_interleave(m, dim=0), rows).reshape(b, m)

    return Objectives(m, fn, every)


def _box(graph, lower, upper, m: int) -> tuple[torch.Tensor, torch.Tensor, bool]:
    lo, hi = _f64(lower), _f64(upper)
    n = graph.input_size
    shared = lo.dim() <= 1 and hi.dim() <= 1
    if shared:
        lo, hi = lo.reshape(-1), hi.reshape(-1)
        if lo.numel() != n or hi.numel() != n:
            raise SpecError(
                f"box has {lo.numel()}/{hi.numel()} entries, graph inputs total {n}"
            )
        lo, hi = lo.expand(m, n).clone(), hi.expand(m, n).clone()
    elif lo.shape != (m, n) or hi.shape != (m, n):
        raise SpecError(f"per-objective boxes must be ({m}, {n}), got {tuple(lo.shape)}")
    if not (torch.isfinite(lo).all() and torch.isfinite(hi).all()):
        raise SpecError("the attack box must be finite")
    if bool((lo > hi).any()):
        raise SpecError("empty box: some lower bound exceeds its upper bound")
    return lo, hi, shared


def falsify(
    graph,
    lower,
    upper,
    objectives: Objectives,
    options: AttackOptions | None = None,
    *,
    starts=None,
    deadline: float | None = None,
    target: float | None = None,
    device: torch.device | str | None = None,
    max_batch: int = 4096,
    max_objectives: int | None = None,
) -> AttackResult:
    """Maximize every objective over its box (see the module docstring).

    ``lower``/``upper``: one box ``(n_in,)`` or one per objective ``(m, n_in)``.
    ``starts``: extra candidate start points ``(S, n_in)`` (shared box only; clipped
    into the box).  ``deadline``: a :func:`time.monotonic` time after which the
    search stops (the result is always valid).  ``target``: stop as soon as any
    objective reaches it.  ``max_batch``: points per graph evaluation.
    ``max_objectives``: objectives per search (more are searched in groups of
    that many, one after the other, the cross phase within a group): the memory
    of a search is about ``max_objectives * objective_bytes(n_in, restarts)``
    plus ``max_batch`` evaluated points.
    """
    if max_objectives is not None and objectives.m > max(1, int(max_objectives)):
        return _falsify_in_groups(graph, lower, upper, objectives, options, starts, deadline,
                                  target, device, max_batch, max(1, int(max_objectives)))
    t0 = time.monotonic()
    opts = options or AttackOptions()
    m = objectives.m
    lo, hi, shared = _box(graph, lower, upper, m)
    run = _Run(graph, objectives, lo, hi, opts, device, deadline, target, max_batch)
    extra = None
    if starts is not None and shared:
        s = _f64(starts)
        if s.numel() % lo.shape[1] or (s.ndim >= 2 and s.shape[-1] != lo.shape[1]):
            raise SpecError(f"falsify: starts must be points of {lo.shape[1]} inputs, got "
                            f"shape {tuple(s.shape)}")
        s = s.reshape(-1, lo.shape[1])
        extra = torch.maximum(torch.minimum(s, hi[0]), lo[0]) if s.shape[0] else None
    for rnd in range(opts.rounds):
        if rnd and run.stop():
            break
        pool = extra
        if rnd and shared:
            # later rounds also start from the best point of every objective
            best = run.best_x.to("cpu", torch.float64)
            pool = best if extra is None else torch.cat([extra, best])
        x0 = run.starts(pool, shared)
        if "ascent" in opts.phases:
            run.ascent(x0)
        elif not run.stop():
            run.reached[:] = True
        if shared and m > 1:
            run.cross()
        if "polish" in opts.phases:
            run.polish()
        if "vertex" in opts.phases:
            run.vertex()
            if shared and m > 1:
                run.cross()
        run.gen.manual_seed(int(opts.seed) + 7919 * (rnd + 1))
    return run.result(t0)


def _falsify_in_groups(graph, lower, upper, objectives: Objectives, options, starts, deadline,
                       target, device, max_batch: int, size: int) -> AttackResult:
    """:func:`falsify` on groups of ``size`` objectives in turn, results concatenated.

    Once an objective reaches ``target`` the groups left get a deadline in the
    past (valid points, not searched; ``reached`` False).
    """
    t0 = time.monotonic()
    lo, hi = _f64(lower), _f64(upper)
    per_objective = lo.dim() > 1 or hi.dim() > 1
    parts: list[AttackResult] = []
    for s in range(0, objectives.m, size):
        e = min(objectives.m, s + size)
        hit = target is not None and any(bool((p.values >= target).any()) for p in parts)
        parts.append(falsify(graph, lo[s:e] if per_objective else lo,
                             hi[s:e] if per_objective else hi, objectives.subset(s, e), options,
                             starts=starts, deadline=time.monotonic() - 1.0 if hit else deadline,
                             target=target, device=device, max_batch=max_batch))
    reached = (None if any(p.reached is None for p in parts)
               else torch.cat([p.reached for p in parts]))
    return AttackResult(torch.cat([p.values for p in parts]), torch.cat([p.inputs for p in parts]),
                        sum(p.evaluations for p in parts), time.monotonic() - t0, reached)


class _Run:
    """Working state of one :func:`falsify` call (internal)."""

    def __init__(self, graph, obj: Objectives, lo, hi, opts: AttackOptions, device, deadline,
                 target, max_batch: int) -> None:
        self.graph, self.obj, self.opts = graph, obj, opts
        self.dev = torch.device(device) if device is not None else torch.device("cpu")
        self.dtype = torch.float64 if opts.dtype == "float64" else torch.float32
        self.lo64, self.hi64 = lo, hi
        self.lo = lo.to(self.dev, self.dtype)
        self.hi = hi.to(self.dev, self.dtype)
        self.deadline, self.target = deadline, target
        self.max_batch = max(1, int(max_batch))
        # points per graph evaluation: max_batch, in cache-sized chunks on the CPU
        self.chunk = min(self.max_batch, graph.eval_chunk(self.dtype, self.dev) or self.max_batch)
        self.gen = torch.Generator().manual_seed(int(opts.seed))
        self.m, self.n = lo.shape
        self.best_v = torch.full((self.m,), -math.inf, dtype=torch.float64)
        self.best_x = ((lo + hi) / 2).to(self.dev, self.dtype)
        self.n_eval = 0
        self.reached = torch.zeros(self.m, dtype=torch.bool)

    # -- bookkeeping -------------------------------------------------------------------
    def stop(self) -> bool:
        if self.target is not None and bool((self.best_v >= self.target).any()):
            return True
        return self.deadline is not None and time.monotonic() > self.deadline

    def value(self, x: torch.Tensor, rows: torch.Tensor, grad: bool = False):
        """Objective ``rows[i]`` at ``x[i]`` (NaN -> -inf) and, with ``grad``, its gradient."""
        vs, gs = [], []
        for s in range(0, x.shape[0], self.chunk):
            xb = x[s:s + self.chunk].detach().to(self.dev, self.dtype)
            rb = rows[s:s + self.chunk].to(self.dev)
            if grad:
                xb.requires_grad_(True)
            with torch.set_grad_enabled(grad):
                y = self.graph.evaluate_flat(xb, dtype=self.dtype, device=self.dev)
                v = self.obj.at(y, rb)
                ok = ~torch.isnan(v)
                if grad:
                    (g,) = torch.autograd.grad(
                        torch.where(ok, v, torch.zeros_like(v)).sum(), xb, allow_unused=True
                    )
                    g = torch.zeros_like(xb) if g is None else torch.nan_to_num(g.detach())
                    gs.append(g)
            v = v.detach()
            vs.append(torch.where(ok, v, torch.full_like(v, -math.inf)))
            self.n_eval += xb.shape[0]
        v = torch.cat(vs)
        return (v, torch.cat(gs)) if grad else v

    def top(self, x: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The ``k`` best of the points ``x`` for every objective: values and indices ``(k, m)``.

        Points are scored in chunks (at most about 4M scores at a time), so the
        memory stays bounded for many points and objectives.
        """
        k = min(k, x.shape[0])
        best_v = torch.full((0, self.m), -math.inf, dtype=torch.float64)
        best_i = torch.zeros((0, self.m), dtype=torch.int64)
        chunk = max(1, min(self.chunk, (1 << 22) // max(1, self.m)))
        with torch.no_grad():
            for s in range(0, x.shape[0], chunk):
                xb = x[s:s + chunk].to(self.dev, self.dtype)
                y = self.graph.evaluate_flat(xb, dtype=self.dtype, device=self.dev)
                v = torch.nan_to_num(self.obj.every(y).to(torch.float64).cpu(), nan=-math.inf)
                self.n_eval += xb.shape[0]
                idx = torch.arange(s, s + xb.shape[0]).unsqueeze(1).expand(-1, self.m)
                allv, alli = torch.cat([best_v, v]), torch.cat([best_i, idx])
                tv, ti = allv.topk(min(k, allv.shape[0]), dim=0)
                best_v, best_i = tv, alli.gather(0, ti)
        return best_v, best_i

    def offer(self, x: torch.Tensor, rows: torch.Tensor, v: torch.Tensor) -> None:
        """Keep, per objective, the best of the points ``x`` scored ``v``."""
        v = v.detach().to(torch.float64).cpu()
        rows = rows.cpu()
        top = torch.full((self.m,), -math.inf, dtype=torch.float64)
        top = top.scatter_reduce(0, rows, v, "amax")
        win = (v == top[rows]) & (v > self.best_v[rows])
        idx = win.nonzero().reshape(-1)
        if idx.numel():
            r = rows[idx]
            self.best_v[r] = v[idx]
            self.best_x[r.to(self.dev)] = x[idx.to(x.device)].detach().to(self.dev, self.dtype)

    def _clip(self, x: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        return torch.maximum(torch.minimum(x, self.hi[rows]), self.lo[rows])

    # -- phases ------------------------------------------------------------------------
    def starts(self, extra: torch.Tensor | None, shared: bool) -> torch.Tensor:
        """Start points ``(m, restarts, n)``: best structured candidates, then uniform ones."""
        m, n, R = self.m, self.n, self.opts.restarts
        rows = torch.arange(m, device=self.dev)
        centre = (self.lo + self.hi) / 2
        vc, gc = self.value(centre, rows, grad=True)
        self.offer(centre, rows, vc)
        gsv = torch.where(gc >= 0, self.hi, self.lo)
        vg = self.value(gsv, rows)
        self.offer(gsv, rows, vg)
        cands, vals = [centre[:, None], gsv[:, None]], [vc[:, None], vg[:, None]]
        if shared:
            parts = [] if extra is None else [extra]
            p = self.opts.pool
            if p:
                lo0, hi0 = self.lo64[0], self.hi64[0]
                u = torch.rand((p, n), generator=self.gen, dtype=torch.float64)
                parts.append(lo0 + u * (hi0 - lo0))
                bits = torch.rand((p, n), generator=self.gen) < 0.5
                parts.append(torch.where(bits, hi0, lo0))
            if parts:
                pool = torch.cat(parts).to(self.dev, self.dtype)
                sv, si = self.top(pool, R)  # (k, m)
                self.offer(pool[si[0].to(self.dev)], torch.arange(m), sv[0])
                cands.append(pool[si.T.to(self.dev)])
                vals.append(sv.T.to(self.dev, self.dtype))
        cand, val = torch.cat(cands, dim=1), torch.cat(vals, dim=1)
        n_struct = min(cand.shape[1], max(1, R - R // 3))
        pick = val.topk(n_struct, dim=1).indices
        x = cand[torch.arange(m, device=self.dev)[:, None], pick]
        n_rand = R - n_struct
        if n_rand:
            u = torch.rand((m, n_rand, n), generator=self.gen, dtype=torch.float64)
            u = u.to(self.dev, self.dtype)
            x = torch.cat([x, self.lo[:, None] + u * (self.hi - self.lo)[:, None]], dim=1)
        return x

    def ascent(self, x0: torch.Tensor) -> None:
        """Signed-gradient projected ascent from every start, objectives in chunks."""
        m, R, n = x0.shape
        steps = self.opts.steps
        top = self.opts.step
        lo_step = top / 150
        per = max(1, self.max_batch // R)
        for s in range(0, m, per):
            if self.stop():
                return
            rows = torch.arange(s, min(m, s + per), device=self.dev).repeat_interleave(R)
            x = x0[s:s + per].reshape(-1, n)
            lo, hi = self.lo[rows], self.hi[rows]
            w = hi - lo
            for t in range(steps + 1):
                last = t == steps
                if last:
                    v = self.value(x, rows)
                else:
                    v, g = self.value(x, rows, grad=True)
                self.offer(x, rows, v)
                if last:
                    self.reached[s:s + per] = True
                if last or self.stop():
                    break
                cos = 0.5 * (1.0 + math.cos(math.pi * t / max(1, steps)))
                step = lo_step + (top - lo_step) * cos
                x = torch.maximum(torch.minimum(x + step * w * torch.sign(g), hi), lo)

    def cross(self) -> None:
        """Score every objective's best point against every objective (shared box)."""
        if self.stop():
            return
        v, i = self.top(self.best_x, 1)  # the best of the m points for each objective
        self.offer(self.best_x[i[0].to(self.dev)].clone(), torch.arange(self.m), v[0])

    def polish(self) -> None:
        """Projected gradient from each best point, step doubled on success, quartered else."""
        per = self.max_batch
        for s in range(0, self.m, per):
            rows = torch.arange(s, min(self.m, s + per), device=self.dev)
            x = self.best_x[rows].clone()
            v = self.best_v[rows.cpu()].to(self.dev, self.dtype)
            lo, hi = self.lo[rows], self.hi[rows]
            w = hi - lo
            step = torch.full((rows.numel(), 1), 0.05, device=self.dev, dtype=self.dtype)
            for _ in range(self.opts.polish_steps):
                if self.stop():
                    return
                live = (step.reshape(-1) > 1e-7) & torch.isfinite(v)
                if not bool(live.any()):
                    break
                _, g = self.value(x[live], rows[live], grad=True)
                d = g * w[live]
                d = d / d.abs().amax(dim=1, keepdim=True).clamp_min(1e-300)
                xn = torch.maximum(torch.minimum(x[live] + step[live] * w[live] * d,
                                                 hi[live]), lo[live])
                vn = self.value(xn, rows[live])
                self.offer(xn, rows[live], vn)
                acc = vn > v[live]
                li = live.nonzero().reshape(-1)
                x[li[acc]] = xn[acc]
                v[li[acc]] = vn[acc]
                step[li] = torch.where(acc[:, None], (step[li] * 2).clamp(max=1.0),
                                       step[li] / 4)

    def vertex(self) -> None:
        """Sign-vector search between box vertices by coordinate flips."""
        k = min(self.opts.vertex_flips, self.n)
        per = max(1, self.max_batch // (k + 3))
        for s in range(0, self.m, per):
            rows = torch.arange(s, min(self.m, s + per), device=self.dev)
            x = self.best_x[rows].clone()
            v = self.best_v[rows.cpu()].to(self.dev, self.dtype)
            lo, hi = self.lo[rows], self.hi[rows]
            mid = (lo + hi) / 2
            live = torch.ones(rows.numel(), dtype=torch.bool, device=self.dev)
            for r in range(self.opts.vertex_rounds):
                if self.stop() or not bool(live.any()):
                    return
                li = live.nonzero().reshape(-1)
                xl, rl = x[li], rows[li]
                _, g = self.value(xl, rl, grad=True)
                up = xl >= mid[li]
                opp = torch.where(up, lo[li], hi[li])  # the far side of each coordinate
                gain = g * (opp - xl)
                idx = gain.topk(k, dim=1).indices  # (b, k)
                flips = xl[:, None].repeat(1, k, 1)
                flips.scatter_(2, idx[:, :, None], opp.gather(1, idx)[:, :, None])
                near = torch.where(up, hi[li], lo[li])
                gsv = torch.where(g > 0, hi[li], torch.where(g < 0, lo[li], near))
                good = gain > 0
                combined = torch.where(good, opp, near)
                cand = torch.cat([flips, gsv[:, None], combined[:, None], near[:, None]], dim=1)
                c = cand.shape[1]
                cr = rl.repeat_interleave(c)
                cv = self.value(cand.reshape(-1, self.n), cr).reshape(-1, c)
                self.offer(cand.reshape(-1, self.n), cr, cv.reshape(-1))
                bv, bi = cv.max(dim=1)
                # round 0 always moves to the best vertex candidate (x may be interior)
                acc = (bv > v[li]) | ((r == 0) & torch.isfinite(bv))
                best = cand[torch.arange(li.numel(), device=self.dev), bi]
                x[li[acc]] = best[acc]
                v[li[acc]] = bv[acc]
                live[li[~acc]] = False

    def result(self, t0: float) -> AttackResult:
        """Best points, projected exactly in float64 and re-evaluated in float64.

        A coordinate the search left on a bound of the box (in its dtype) is put on
        the float64 bound: a float32 search holds a bound rounded, perhaps into the
        box, and a violation at a vertex can be smaller than that rounding's cost."""
        x = self.best_x.detach()
        on_lo, on_hi = (x <= self.lo).cpu(), (x >= self.hi).cpu()
        lo64, hi64 = self.lo64.cpu(), self.hi64.cpu()
        x = torch.where(on_lo, lo64, torch.where(on_hi, hi64, x.to("cpu", torch.float64)))
        x = torch.maximum(torch.minimum(x, hi64), lo64)
        vals = []
        with torch.no_grad():
            for s in range(0, self.m, self.chunk):
                xb = x[s:s + self.chunk].to(self.dev)
                y = self.graph.evaluate_flat(xb, dtype=torch.float64, device=self.dev)
                rows = torch.arange(s, s + xb.shape[0], device=self.dev)
                vals.append(self.obj.at(y, rows).to(torch.float64).cpu())
        v = torch.cat(vals)
        v = torch.where(torch.isnan(v), torch.full_like(v, -math.inf), v)
        return AttackResult(v, x, self.n_eval + self.m, time.monotonic() - t0, self.reached)


def output_extremizers(graph, lower, upper, options: AttackOptions | None = None,
                       deadline: float | None = None, outputs=None, max_batch: int = 4096,
                       max_objectives: int | None = None) -> torch.Tensor:
    """Points ``(2 k, n_in)`` of the box that maximize and minimize each of ``k`` outputs.

    ``outputs``: the indices of the graph's (flat) outputs to extremize (default:
    all of them); the first ``k`` points maximize them in that order, the next
    ``k`` minimize them.  A cheap search (the given options, by default one
    restart of 10 steps and the vertex phase): used as starts for objectives of a
    larger graph built on this one (a proxy's output extremes drive the physics
    violations); objectives that read a few outputs need the extremes of those
    only.  ``max_batch`` and ``max_objectives``: as in :func:`falsify`.
    """
    n_out = graph.output_size
    idx = (torch.arange(n_out) if outputs is None
           else torch.as_tensor(np.asarray(outputs, dtype=np.int64)).reshape(-1))
    if not idx.numel():
        return torch.zeros((0, graph.input_size), dtype=torch.float64)
    opts = options or AttackOptions(restarts=1, steps=10, phases=("ascent", "vertex"),
                                    vertex_rounds=2, pool=16)
    k = idx.numel()
    signs = torch.cat([torch.ones(k), -torch.ones(k)]).to(torch.float64)
    obj = row_objectives(torch.cat([idx, idx]), n_out, signs=signs)
    return falsify(graph, lower, upper, obj, opts, deadline=deadline, max_batch=max_batch,
                   max_objectives=max_objectives).inputs
