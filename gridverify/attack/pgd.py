"""Entry points of the falsifier for one box: linear rows and VNN-COMP polytopes.

* :func:`pgd_maximize` maximizes each row ``c`` of a matrix of the linear
  objective ``c @ y(x)`` separately (batched over rows);
* :func:`pgd_maximize_fn` maximizes ``m`` arbitrary objectives given as one
  function of the outputs; :func:`polytope_objective` builds the one used by
  VNN-COMP, ``min_k (b_k - A_k y)`` per disjunct, which is ``>= 0`` exactly when
  the disjunct ``A y <= b`` holds.

Both run :func:`gridverify.attack.falsify.falsify` (structured starts, ascent,
polish, vertex search; every value re-evaluated in float64).
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
import torch

from gridverify.attack.falsify import (
    AttackResult,
    Objective,
    _f64,
    falsify,
    function_objectives,
    linear_objectives,
)
from gridverify.attack.options import AttackOptions
from gridverify.errors import SpecError

__all__ = ["AttackResult", "pgd_maximize", "pgd_maximize_fn", "polytope_objective"]


def _options(options: AttackOptions | None, restarts: int | None, steps: int | None,
             seed: int | None, dtype: torch.dtype | None,
             include_corners: bool) -> AttackOptions:
    o = options or AttackOptions()
    kw = {}
    if restarts is not None:
        kw["restarts"] = max(1, int(restarts))
    if steps is not None:
        kw["steps"] = int(steps)
    if seed is not None:
        kw["seed"] = int(seed)
    if dtype is not None:
        kw["dtype"] = "float32" if dtype == torch.float32 else "float64"
    if not include_corners:
        kw["phases"] = tuple(p for p in o.phases if p != "vertex")
        kw["pool"] = 0
    return replace(o, **kw) if kw else o


def _deadline(time_limit: float | None) -> float | None:
    return None if time_limit is None else time.monotonic() + max(0.0, time_limit)


def pgd_maximize(
    graph,
    lower: np.ndarray | torch.Tensor,
    upper: np.ndarray | torch.Tensor,
    objective: np.ndarray | torch.Tensor,
    *,
    restarts: int | None = None,
    steps: int | None = None,
    seed: int | None = None,
    include_corners: bool = True,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
    time_limit: float | None = None,
    max_batch: int = 4096,
    options: AttackOptions | None = None,
    starts=None,
) -> AttackResult:
    """Maximize each row ``c`` of ``objective`` ``(m, n_out)``: ``max c @ y(x)`` over the box.

    ``options`` (default :class:`AttackOptions`) with ``restarts``/``steps``/
    ``seed``/``dtype`` overriding its fields when given; ``include_corners=False``
    drops the vertex phase and the random-vertex pool.  Returned values are
    recomputed in float64 at the returned inputs.
    """
    obj = linear_objectives(objective, graph.output_size)
    opts = _options(options, restarts, steps, seed, dtype, include_corners)
    return falsify(graph, lower, upper, obj, opts, starts=starts,
                   deadline=_deadline(time_limit), device=device, max_batch=max_batch)


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
    restarts: int | None = None,
    steps: int | None = None,
    seed: int | None = None,
    include_corners: bool = True,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
    time_limit: float | None = None,
    max_batch: int = 4096,
    target: float | None = None,
    options: AttackOptions | None = None,
    starts=None,
) -> AttackResult:
    """Maximize ``m`` objectives ``fn(y, rows) -> (B,)`` of the flat outputs over the box.

    ``fn`` receives outputs ``y`` (B, n_out) and the objective index of each
    sample ``rows`` (B,) and returns the objective values (B,); it must be
    differentiable in ``y``.  With ``target`` the search stops as soon as any
    objective reaches it (used to stop at a first counterexample).
    ``time_limit`` (seconds) bounds the search; the result is always valid.
    ``starts``: extra candidate start points ``(S, n_in)`` (see :func:`falsify`).
    """
    obj = function_objectives(fn, m)
    opts = _options(options, restarts, steps, seed, dtype, include_corners)
    return falsify(graph, lower, upper, obj, opts, starts=starts,
                   deadline=_deadline(time_limit), target=target, device=device,
                   max_batch=max_batch)

