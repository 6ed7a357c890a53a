"""Bounding a batch of branch-and-bound domains: the one call branch-and-bound makes.

A domain is an input box plus *split constraints*: intervals ``lo <= z <= hi``
on entries of intermediate nodes (``-inf``/``+inf``: no constraint).
:func:`bound_domains` takes boxes, splits, a spec and how to bound, and returns
the domains' bounds and what branching needs:

* the upper bound of every spec row (CROWN, tightened by IBP, and with
  ``alpha_iterations``/``beta_iterations`` by alphas and split multipliers
  optimized together: a split then tightens every bound of its domain, not only
  the split node's relaxation, see :func:`gridverify.bounds.alpha.optimize_alpha`);
* the computed intervals of the split nodes (children inherit them);
* the coefficient of the worst row's upper bound at the output of every
  nonlinear node (``d bound / d offset`` of its relaxation, read with autograd);
* the linear upper bounds of the rows w.r.t. the inputs (input splitting and
  clipping) and, when asked, the linear bounds of the split nodes.

Like the rest of ``bounds/`` it knows nothing of grids.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch

from gridverify.bounds.alpha import alpha_rows, optimize_alpha
from gridverify.bounds.crown import Engine
from gridverify.bounds.ibp import input_boxes, nan_as
from gridverify.bounds.options import BoundOptions
from gridverify.bounds.relaxations.base import BilinearRelaxation, Relaxation
from gridverify.ir.graph import Graph, Node

__all__ = ["DomainBounds", "bound_domains"]


@dataclass
class DomainBounds:
    """Bounds of a batch of ``B`` domains (all tensors on the bounding device).

    ``row_upper`` ``(B, m)``: upper bound of every spec row; ``upper`` ``(B,)``:
    their maximum (``-inf`` for an infeasible, i.e. empty, domain);
    ``ilo``/``ihi`` ``(B, F)``: computed intervals of the split nodes;
    ``coef``: ``{nonlinear node id: (B, size)}`` coefficient of the upper bound
    of the domain's worst row at the node's output (``None`` unless asked);
    ``input_coef`` ``(B, n_in)``: the same row's linear coefficients w.r.t. the
    inputs (``None`` unless asked).
    """

    row_upper: torch.Tensor
    upper: torch.Tensor
    infeasible: torch.Tensor
    ilo: torch.Tensor
    ihi: torch.Tensor
    coef: dict[int, torch.Tensor] | None
    input_coef: torch.Tensor | None
    lin: dict[int, tuple[torch.Tensor, ...]] | None = None
    box: tuple[torch.Tensor, torch.Tensor] | None = None
    #: split multipliers after the optimization, ``{node: (4, B, size)}`` (the warm
    #: start of the children; ``None`` when no multipliers were optimized)
    warm: dict[int, torch.Tensor] | None = None
    #: linear upper bound of every spec row w.r.t. the inputs, ``(B, m, n_in)``
    #: coefficients and ``(B, m)`` offsets (``None`` unless ``want_coef``)
    row_lin: tuple[torch.Tensor, torch.Tensor] | None = None
    #: upper-stream alphas after the optimization, ``{nonlinear node: (n_alpha, B,
    #: size)}`` (the warm start of the children; ``None`` when none were optimized)
    warm_alpha: dict[int, torch.Tensor] | None = None


def bound_domains(
    graph: Graph,
    lo: torch.Tensor,
    hi: torch.Tensor,
    splits: Mapping[int, tuple[torch.Tensor, torch.Tensor]] | None,
    spec: torch.Tensor,
    *,
    split_nodes: list[int] | tuple[int, ...] = (),
    relevant: Mapping[int, torch.Tensor] | None = None,
    method: str = "crown",
    alpha_iterations: int = 0,
    beta_iterations: int = 0,
    beta_lr: float = 0.05,
    intermediate: str = "crown",
    want_coef: bool = True,
    want_lin: bool = False,
    warm: Mapping[int, torch.Tensor] | None = None,
    warm_alpha: Mapping[int, torch.Tensor] | None = None,
    deadline: float | None = None,
) -> DomainBounds:
    """Bound ``B`` domains: input boxes ``lo``/``hi`` ``(B, n_in)`` (their device and
    dtype are the bounding's), split constraints ``{node: (lo, hi)}`` ``(B, size)``
    and the ``(m, n_out)`` rows ``spec`` to upper-bound.

    ``split_nodes``: nodes whose computed intervals (and with ``want_lin`` linear
    bounds) are returned, in this order.  ``relevant``: the relevance map of
    ``spec`` (:mod:`gridverify.bounds.relevance`).  ``method``/``alpha_iterations``:
    ``"alpha-crown"`` optimizes the alphas of the final bound.
    ``beta_iterations > 0`` dualizes the split constraints with multipliers
    optimized jointly with the alphas (step ``beta_lr``).  ``intermediate``: how
    intermediate intervals are computed: ``"crown"``, ``"alpha-crown"`` (see
    :class:`~gridverify.bounds.BoundOptions`) or ``"inherit"`` (IBP intersected
    with the split constraints, which then carry the parent's intervals: no
    CROWN pass per node).  ``warm``: initial split multipliers per node
    (``(4, B, size)``, e.g. the parent's ``DomainBounds.warm``); ``warm_alpha``:
    initial alphas of the final bound per nonlinear node (``(n_alpha, B, size)``,
    e.g. the parent's ``DomainBounds.warm_alpha``; any alphas are sound).
    ``deadline``: a :func:`time.monotonic` time at which the optimizations stop
    early (see :class:`~gridverify.bounds.crown.Engine`).
    """
    dev, dt = lo.device, lo.dtype
    B = lo.shape[0]
    fixed = dict(splits or {})
    # "inherit": the split nodes keep the intervals passed in (the parent's, the
    # split entry narrowed) intersected with IBP; no CROWN pass per node
    inherit = intermediate == "inherit"
    opts = BoundOptions(alpha_iterations=alpha_iterations,
                        intermediate="crown" if inherit else intermediate)
    eng = Engine(graph, input_boxes(graph, lo, hi), dt, dev, opts, fixed,
                 relevant=relevant, refine=alpha_rows, deadline=deadline)
    with torch.no_grad():
        eng.compute_intermediate(
            use_crown=not inherit,
            linear_nodes=frozenset(split_nodes) if want_lin else frozenset(),
        )
    starts, m = eng.output_starts(spec)
    rec: dict[int, object] = {}

    def relax(node: Node, stream: int) -> object:
        r = eng.default_relax(node, stream)
        if stream == 0 or not want_coef:
            return r
        hit = rec.get(node.id)
        if hit is not None:
            return hit
        if isinstance(r, BilinearRelaxation):
            r = BilinearRelaxation(r.lwx, r.lwy, r.lb.detach().clone().requires_grad_(True),
                                   r.uwx, r.uwy, r.ub.detach().clone().requires_grad_(True))
        else:
            r = Relaxation(r.lw, r.lb.detach().clone().requires_grad_(True),
                           r.uw, r.ub.detach().clone().requires_grad_(True))
        rec[node.id] = r
        return r

    with torch.enable_grad():
        cl, cu, lin = eng.crown_spec(starts, m, relax, return_A=want_coef)
        _, ibp_hi = eng.output_interval(spec)
        row_up = torch.minimum(cu, ibp_hi)
        arg = torch.nan_to_num(row_up.detach(), nan=torch.inf).argmax(1)
        coef = input_coef = row_lin = None
        if want_coef:
            coef = {}
            sel = cu.gather(1, arg[:, None]).sum()
            tensors = [t for r in rec.values() for t in (r.lb, r.ub)]
            grads = (torch.autograd.grad(sel, tensors, allow_unused=True)
                     if tensors and sel.requires_grad else [None] * len(tensors))
            for k, nid in enumerate(rec):
                g_lb, g_ub = grads[2 * k], grads[2 * k + 1]
                size = graph.nodes[nid].size
                c = torch.zeros(B, size, dtype=dt, device=dev)
                for gg in (g_lb, g_ub):
                    if gg is not None:
                        c = c + torch.nan_to_num(gg.expand(B, size), nan=0.0,
                                                 posinf=0.0, neginf=0.0)
                coef[nid] = c
            rows = arg[:, None, None]
            parts = []
            for i in graph.inputs:
                ua = lin.uA[i]
                parts.append(ua.gather(1, rows.expand(B, 1, ua.shape[-1]))[:, 0])
            input_coef = torch.cat(parts, -1).detach()
            row_lin = (torch.cat([lin.uA[i] for i in graph.inputs], -1).detach(),
                       lin.ubias.detach())
    row_up = row_up.detach()
    n_alpha = alpha_iterations if method == "alpha-crown" else 0
    warm_out = alpha_out = None
    if n_alpha > 0 or (beta_iterations > 0 and fixed):
        # alphas and split multipliers optimized together (beta-CROWN style)
        _, au, _ = optimize_alpha(eng, starts, cl.detach(), cu.detach(),
                                  splits=fixed if beta_iterations > 0 else None,
                                  sides="upper", iterations=max(n_alpha, beta_iterations),
                                  beta_lr=beta_lr, warm=warm, warm_alphas=warm_alpha)
        row_up = torch.minimum(row_up, au.detach())
        warm_out = eng.warm_betas or None
        alpha_out = eng.warm_alphas or None
    row_up = nan_as(row_up, torch.inf)
    infeasible = eng.infeasible.clone()
    up = row_up.max(1).values
    up = torch.where(infeasible, torch.full_like(up, -torch.inf), up)
    if split_nodes:
        nlo = torch.cat([eng.bounds[i][0] for i in split_nodes], -1).detach()
        nhi = torch.cat([eng.bounds[i][1] for i in split_nodes], -1).detach()
    else:
        nlo = nhi = torch.zeros(B, 0, dtype=dt, device=dev)
    lin_out = None
    if want_lin:
        lin_out = {}
        for i in split_nodes:
            lb = eng.linear.get(i)
            if lb is None:  # no CROWN pass for this node: constant (interval) bounds
                z = torch.zeros(B, graph.nodes[i].size, graph.input_size, dtype=dt, device=dev)
                lin_out[i] = (z, eng.bounds[i][0].detach(), z, eng.bounds[i][1].detach())
                continue
            lA = torch.cat([lb.lA[k] for k in graph.inputs], -1)
            uA = torch.cat([lb.uA[k] for k in graph.inputs], -1)
            lin_out[i] = (lA.detach(), lb.lbias.detach(), uA.detach(), lb.ubias.detach())
    return DomainBounds(row_up, up, infeasible, nlo, nhi, coef, input_coef, lin_out,
                        (lo, hi), warm_out, row_lin, warm_alpha=alpha_out)
