"""A generic projected-gradient attack on a :class:`~gridverify.ir.Graph` over a box.

The attack looks for inputs ``x`` in ``lower <= x <= upper`` that make an
objective of the graph's outputs large.  It is a falsifier: whatever it finds is
a real point of the box whose objective value was recomputed in float64, but
not finding anything proves nothing.

Two entry points share one engine:

* :func:`pgd_maximize` maximizes each row ``c`` of a matrix of the linear
  objective ``c @ y(x)`` separately (batched over rows): used by certification
  to push each constraint violation as high as it goes;
* :func:`pgd_maximize_fn` maximizes ``m`` arbitrary objectives given as one
  function of the outputs; :func:`polytope_objective` builds the one used by
  VNN-COMP, ``min_k (b_k - A_k y)`` per disjunct, which is ``>= 0`` exactly when
  the disjunct ``A y <= b`` holds.

The search is signed-gradient ascent (L-infinity PGD) with a cosine-decaying
step relative to the box width, projection onto the box, and several starts
per objective: the box centre, the box corner the gradient at the centre
points to, random corners and uniformly random points.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from gridverify.errors import SpecError

__all__ = ["AttackResult", "pgd_maximize", "pgd_maximize_fn", "polytope_objective"]

Objective = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class AttackResult:
    """Best point found per objective.

    ``values`` (m,) float64: the objective at ``inputs`` re-evaluated in float64
    (``-inf`` where the graph gave NaN everywhere tried); ``inputs`` (m, n_in)
    float64, inside the box; ``evaluations`` the number of graph evaluations
    (batched samples) spent; ``seconds`` the wall time.
    """

    values: torch.Tensor
    inputs: torch.Tensor
    evaluations: int
    seconds: float


def _f64(a) -> torch.Tensor:
    """A float64 CPU tensor copy of ``a`` (numpy arrays may be read-only)."""
    if isinstance(a, torch.Tensor):
        return a.detach().to(device="cpu", dtype=torch.float64).clone()
    return torch.tensor(np.array(a, dtype=np.float64))


def pgd_maximize(
    graph,
    lower: np.ndarray | torch.Tensor,
    upper: np.ndarray | torch.Tensor,
    objective: np.ndarray | torch.Tensor,
    *,
    restarts: int = 8,
    steps: int = 50,
    seed: int = 0,
    include_corners: bool = True,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
    time_limit: float | None = None,
    max_batch: int = 4096,
) -> AttackResult:
    """Maximize each row ``c`` of ``objective`` ``(m, n_out)``: ``max c @ y(x)`` over the box.

    Rows are attacked separately and in one batch (``restarts`` starts each).
    Returned values are recomputed in float64 at the returned inputs.
    """
    c = _f64(objective)
    if c.dim() == 1:
        c = c.unsqueeze(0)
    if c.dim() != 2 or c.shape[1] != graph.output_size:
        raise SpecError(
            f"objective has shape {tuple(c.shape)}, expected (m, {graph.output_size}) "
            "(one row per objective over the graph outputs)"
        )

    def fn(y: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        return (y * c.to(y)[rows]).sum(dim=-1)

    return pgd_maximize_fn(
        graph,
        lower,
        upper,
        fn,
        c.shape[0],
        restarts=restarts,
        steps=steps,
        seed=seed,
        include_corners=include_corners,
        dtype=dtype,
        device=device,
        time_limit=time_limit,
        max_batch=max_batch,
    )


def polytope_objective(polytopes: list[tuple[np.ndarray, np.ndarray]]) -> tuple[Objective, int]:
    """The objective ``min_k (b_k - A_k y)`` for each polytope ``A y <= b``.

    Returns ``(fn, m)`` for :func:`pgd_maximize_fn`; the value is ``>= 0``
    exactly where the polytope's inequalities all hold.  A polytope with no rows
    scores ``+inf``-like (``1e300``): every output satisfies it.
    """
    m = len(polytopes)
    if m == 0:
        raise SpecError("no polytopes to attack")
    n_out = polytopes[0][0].shape[1]
    k = max(1, max(a.shape[0] for a, _ in polytopes))
    # Rows are stored sparsely: the z nonzero columns of each row (padded with
    # column 0 and coefficient 0), so that a sample costs k * z, not k * n_out.
    z = 1
    for j, (a, _) in enumerate(polytopes):
        if a.shape[1] != n_out:
            raise SpecError(f"polytope {j} has {a.shape[1]} columns, expected {n_out}")
        if a.size:
            z = max(z, int((np.asarray(a) != 0).sum(axis=1).max()))
    cols = torch.zeros((m, k, z), dtype=torch.int64)
    vals = torch.zeros((m, k, z), dtype=torch.float64)
    b = torch.full((m, k), 1e300, dtype=torch.float64)
    for j, (a, bb) in enumerate(polytopes):
        a = np.asarray(a, dtype=np.float64)
        for r in range(a.shape[0]):
            (nz,) = np.nonzero(a[r])
            cols[j, r, : nz.size] = torch.from_numpy(nz.astype(np.int64))
            vals[j, r, : nz.size] = torch.from_numpy(a[r, nz].copy())
        b[j, : a.shape[0]] = _f64(bb)
    cache: dict = {}

    def fn(y: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        key = (y.device, y.dtype)
        if key not in cache:
            bb = b if y.dtype == torch.float64 else b.clamp(max=1e30)
            cache[key] = (cols.to(y.device), vals.to(y), bb.to(y))
        c, v, bd = cache[key]
        cr, vr = c[rows], v[rows]  # (B, k, z)
        yz = torch.gather(y, 1, cr.reshape(cr.shape[0], -1)).reshape(cr.shape)
        return (bd[rows] - (yz * vr).sum(dim=-1)).amin(dim=-1)

    return fn, m


def pgd_maximize_fn(
    graph,
    lower: np.ndarray | torch.Tensor,
    upper: np.ndarray | torch.Tensor,
    fn: Objective,
    m: int,
    *,
    restarts: int = 8,
    steps: int = 50,
    seed: int = 0,
    include_corners: bool = True,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
    time_limit: float | None = None,
    max_batch: int = 4096,
    target: float | None = None,
) -> AttackResult:
    """Maximize ``m`` objectives ``fn(y, rows) -> (B,)`` of the flat outputs over the box.

    ``fn`` receives outputs ``y`` (B, n_out) and the objective index of each
    sample ``rows`` (B,) and returns the objective values (B,); it must be
    differentiable in ``y``.  With ``target`` the search stops as soon as any
    objective reaches it (used to stop at a first counterexample).
    ``time_limit`` (seconds) bounds the search; the result is always valid.
    """
    t0 = time.monotonic()
    deadline = None if time_limit is None else t0 + max(0.0, time_limit)
    dev = torch.device(device) if device is not None else torch.device("cpu")
    lo = _f64(lower).reshape(-1)
    hi = _f64(upper).reshape(-1)
    n_in = graph.input_size
    if lo.numel() != n_in or hi.numel() != n_in:
        raise SpecError(f"box has {lo.numel()}/{hi.numel()} entries, graph inputs total {n_in}")
    if not (torch.isfinite(lo).all() and torch.isfinite(hi).all()):
        raise SpecError("the attack box must be finite")
    if bool((lo > hi).any()):
        raise SpecError("empty box: some lower bound exceeds its upper bound")
    if m <= 0:
        raise SpecError("nothing to attack (m = 0)")
    restarts = max(1, int(restarts))
    gen = torch.Generator().manual_seed(int(seed))

    best_x = ((lo + hi) / 2).expand(m, n_in).clone()
    best_v = torch.full((m,), -math.inf, dtype=torch.float64)
    evaluations = 0
    per_chunk = max(1, max_batch // restarts)
    for start in range(0, m, per_chunk):
        rows = torch.arange(start, min(m, start + per_chunk))
        if deadline is not None and time.monotonic() > deadline and start > 0:
            break
        x, v, n_eval = _attack_rows(
            graph,
            lo,
            hi,
            fn,
            rows,
            restarts,
            steps,
            gen,
            include_corners,
            dtype,
            dev,
            deadline,
            target,
        )
        evaluations += n_eval
        best_x[rows] = x
        best_v[rows] = v
        if target is not None and bool((v >= target).any()):
            break
    # Re-evaluate every returned point in float64 (the search may have used float32).
    values = _evaluate(graph, fn, best_x, torch.arange(m), torch.float64, dev)
    values = torch.where(torch.isnan(values), torch.full_like(values, -math.inf), values)
    return AttackResult(values.cpu(), best_x.cpu(), evaluations + m, time.monotonic() - t0)


def _evaluate(graph, fn: Objective, x: torch.Tensor, rows: torch.Tensor, dtype, dev):
    with torch.no_grad():
        y = graph.evaluate_flat(x.to(device=dev, dtype=dtype), dtype=dtype, device=dev)
        return fn(y, rows.to(dev)).to(torch.float64).cpu()


def _starts(graph, lo, hi, fn, rows, restarts, gen, include_corners, dtype, dev) -> torch.Tensor:
    """Start points (len(rows), restarts, n_in) in float64 on the CPU."""
    r, n = rows.numel(), lo.numel()
    width = hi - lo
    u = torch.rand((r, restarts, n), generator=gen, dtype=torch.float64)
    x = lo + u * width
    x[:, 0] = (lo + hi) / 2
    if include_corners and restarts > 1:
        centre = ((lo + hi) / 2).expand(r, n).clone().to(device=dev, dtype=dtype)
        centre.requires_grad_(True)
        y = graph.evaluate_flat(centre, dtype=dtype, device=dev)
        val = fn(y, rows.to(dev))
        (grad,) = torch.autograd.grad(val.sum(), centre, allow_unused=True)
        if grad is None:
            grad = torch.zeros_like(centre)
        grad = torch.nan_to_num(grad.detach().to(torch.float64).cpu())
        x[:, 1] = torch.where(grad >= 0, hi, lo)
        n_screen = (restarts - 2) // 2
        if n_screen > 0:
            # Screening: evaluate a pool of corners (all of them for small inputs)
            # and random points once, start from the best of the pool; the
            # remaining slots stay uniformly random (exploration).
            pool = _pool(lo, hi, r, 4 * restarts, gen)  # (r, P, n)
            with torch.no_grad():
                p = pool.shape[1]
                yp = graph.evaluate_flat(
                    pool.reshape(r * p, n).to(device=dev, dtype=dtype), dtype=dtype, device=dev
                )
                vp = fn(yp, rows.to(dev).repeat_interleave(p)).reshape(r, p)
                vp = torch.nan_to_num(vp.to(torch.float64).cpu(), nan=-math.inf)
            best = vp.topk(min(n_screen, p), dim=1).indices  # (r, n_screen)
            x[:, 2 : 2 + best.shape[1]] = pool[torch.arange(r).unsqueeze(1), best]
    return x


def _pool(lo: torch.Tensor, hi: torch.Tensor, r: int, size: int, gen) -> torch.Tensor:
    """Candidate starts (r, P, n): box corners (all when few) and uniform points."""
    n = lo.numel()
    if n <= 16 and 2**n <= size // 2:
        bits = ((torch.arange(2**n).unsqueeze(1) >> torch.arange(n)) & 1).bool()
        corners = torch.where(bits, hi, lo).expand(r, -1, -1)
    else:
        bits = torch.rand((r, size // 2, n), generator=gen, dtype=torch.float64) < 0.5
        corners = torch.where(bits, hi, lo)
    k = size - corners.shape[1]
    uni = lo + torch.rand((r, k, n), generator=gen, dtype=torch.float64) * (hi - lo)
    return torch.cat([corners, uni], dim=1)


def _attack_rows(
    graph, lo, hi, fn, rows, restarts, steps, gen, include_corners, dtype, dev, deadline, target
):
    r, n = rows.numel(), lo.numel()
    x0 = _starts(graph, lo, hi, fn, rows, restarts, gen, include_corners, dtype, dev)
    lo_d = lo.to(device=dev, dtype=dtype)
    hi_d = hi.to(device=dev, dtype=dtype)
    width = hi_d - lo_d
    rows_b = rows.to(dev).repeat_interleave(restarts)  # (r*restarts,)
    x = x0.reshape(r * restarts, n).to(device=dev, dtype=dtype)
    best_x = x.detach().clone()
    best_v = torch.full((r * restarts,), -math.inf, dtype=dtype, device=dev)
    n_eval = 0
    for t in range(steps + 1):
        x = x.detach().requires_grad_(True)
        y = graph.evaluate_flat(x, dtype=dtype, device=dev)
        v = fn(y, rows_b)
        n_eval += x.shape[0]
        vd = v.detach()
        ok = ~torch.isnan(vd)
        better = ok & (vd > best_v)
        best_v = torch.where(better, vd, best_v)
        best_x = torch.where(better.unsqueeze(-1), x.detach(), best_x)
        if t == steps:
            break
        if target is not None and bool((best_v >= target).any()):
            break
        if deadline is not None and time.monotonic() > deadline:
            break
        (grad,) = torch.autograd.grad(
            torch.where(ok, v, torch.zeros_like(v)).sum(), x, allow_unused=True
        )
        if grad is None:
            break  # the objective does not depend on the input
        grad = torch.nan_to_num(grad)
        alpha = 0.002 + 0.098 * 0.5 * (1.0 + math.cos(math.pi * t / max(1, steps)))
        x = x.detach() + alpha * width * torch.sign(grad)
        x = torch.maximum(torch.minimum(x, hi_d), lo_d)
    # Best of the restarts per row.
    bv = best_v.reshape(r, restarts)
    idx = bv.argmax(dim=1)
    bx = best_x.reshape(r, restarts, n)[torch.arange(r, device=dev), idx]
    bx = bx.to(torch.float64).cpu()
    bx = torch.maximum(torch.minimum(bx, hi), lo)  # exact projection in float64
    return bx, bv.max(dim=1).values.to(torch.float64).cpu(), n_eval
