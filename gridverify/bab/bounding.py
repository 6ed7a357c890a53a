"""Bounding a batch of domains in one engine call, with what branching needs.

A domain is an input box plus intervals on the *split nodes*: the nodes whose
values enter a nonlinear op (the pre-activations of relu/tanh/sin..., the
operands of products).  Their intervals are stored flat, node after node, in
``(B, F)`` tensors; ``-inf``/``+inf`` means "no constraint".  They go to the
bound engine as fixed intermediate bounds (intersected with the computed
ones), so a child of a neuron split is bounded with that neuron's interval
narrowed and every relaxation recomputed on the narrowed intervals.

Besides the bound, one bounding returns the computed intervals of the split
nodes (children inherit them: a sub-domain's bounds can only be tighter), the
coefficient of the objective's upper bound at the output of every nonlinear
node (``d bound / d offset`` of the node's relaxation: the gradient of the
bound with respect to the relaxation offsets, read with autograd, so no engine
internals are touched), and the linear coefficients of the upper bound with
respect to the inputs (for input splitting).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from gridverify.bounds.alpha import optimize_alpha
from gridverify.bounds.crown import Engine
from gridverify.bounds.options import BoundOptions
from gridverify.bounds.relaxations.base import BilinearRelaxation, Relaxation
from gridverify.ir.graph import Graph, Node
from gridverify.ir.ops import OPS

__all__ = ["Bounder", "DomainBounds"]


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
    #: linear upper bound of every spec row w.r.t. the inputs, ``(B, m, n_in)``
    #: coefficients and ``(B, m)`` offsets (``None`` unless ``want_coef``)
    row_lin: tuple[torch.Tensor, torch.Tensor] | None = None


class Bounder:
    """Bounds domains of one graph and one spec (``(m, n_out)`` rows to upper-bound)."""

    def __init__(self, graph: Graph, spec: torch.Tensor, device: torch.device,
                 dtype: torch.dtype = torch.float64, relevance: bool = True) -> None:
        self.graph = graph
        self.device = device
        self.dtype = dtype
        #: every row of the spec; :attr:`spec` holds the rows still bounded
        self.full_spec = spec.to(device=device, dtype=dtype)
        self.spec = self.full_spec
        #: indices (into :attr:`full_spec`) of the rows of :attr:`spec`
        self.rows = torch.arange(self.full_spec.shape[0])
        self.use_relevance = relevance
        #: entries of each node that reach the bounded rows (``None``: all), see
        #: :mod:`gridverify.bounds.relevance`: only those get CROWN rows
        self.relevant: dict[int, torch.Tensor] | None = None
        if relevance:
            self._update_relevance()
        reach = graph.ancestors(graph.outputs)
        #: nonlinear nodes that feed the outputs
        self.nonlinear: list[Node] = [
            n for n in graph.nodes if n.id in reach and OPS[n.op].nonlinear
        ]
        split: list[int] = []
        for n in self.nonlinear:
            for i in n.inputs:
                if graph.nodes[i].op not in ("input", "constant") and i not in split:
                    split.append(i)
        #: split nodes (ids, in graph order) and their offsets in the flat vector
        self.split_nodes: list[int] = sorted(split)
        self.offsets: dict[int, int] = {}
        off = 0
        for i in self.split_nodes:
            self.offsets[i] = off
            off += graph.nodes[i].size
        self.n_flat = off
        self.n_in = graph.input_size
        #: consumers of each split node (nonlinear nodes reading it)
        self.consumers: dict[int, list[Node]] = {i: [] for i in self.split_nodes}
        for n in self.nonlinear:
            for i in dict.fromkeys(n.inputs):
                if i in self.consumers:
                    self.consumers[i].append(n)

    # ------------------------------------------------------------------ rows
    def restrict_rows(self, rows: torch.Tensor) -> None:
        """Bound only the rows ``rows`` of the full spec from now on (at least one).

        The caller accounts for the dropped rows (their bounds at the time they
        were dropped still bound them in every sub-domain).  The relevance map
        shrinks with the rows: fewer CROWN rows per domain.
        """
        rows = torch.as_tensor(rows, dtype=torch.int64).reshape(-1).cpu()
        if rows.numel() == 0:
            raise ValueError("restrict_rows: at least one row must stay")
        self.rows = self.rows[rows]
        self.spec = self.full_spec[self.rows.to(self.full_spec.device)]
        if self.use_relevance:
            self._update_relevance()

    def _update_relevance(self) -> None:
        from gridverify.bounds.relevance import relevant_entries

        self.relevant = relevant_entries(self.graph, self.spec)

    # ------------------------------------------------------------------ helpers
    def unflat(self, flat: torch.Tensor) -> dict[int, torch.Tensor]:
        """Per split node views of a ``(B, F)`` flat tensor."""
        return {
            i: flat[:, o:o + self.graph.nodes[i].size] for i, o in self.offsets.items()
        }

    def _boxes(self, lo: torch.Tensor, hi: torch.Tensor) -> dict[int, tuple]:
        boxes, off = {}, 0
        for i in self.graph.inputs:
            sz = self.graph.nodes[i].size
            boxes[i] = (lo[:, off:off + sz], hi[:, off:off + sz])
            off += sz
        return boxes

    # ------------------------------------------------------------------ bounding
    def bound(
        self,
        lo: torch.Tensor,
        hi: torch.Tensor,
        ilo: torch.Tensor | None,
        ihi: torch.Tensor | None,
        *,
        method: str = "crown",
        alpha_iterations: int = 0,
        want_coef: bool = True,
        want_lin: bool = False,
        beta_iterations: int = 0,
        beta_lr: float = 0.05,
        intermediate: str = "crown",
    ) -> DomainBounds:
        """Bound ``B`` domains (input boxes ``lo``/``hi``, split intervals ``ilo``/``ihi``).

        ``beta_iterations > 0`` tightens the bound with Lagrangian terms of the
        split constraints ``ilo <= z <= ihi`` (see :meth:`_beta`).
        ``intermediate``: how the split nodes' intervals are computed (see
        :class:`~gridverify.bounds.BoundOptions`; ``"alpha-crown"`` uses
        ``alpha_iterations`` steps per node).
        """
        dev, dt = self.device, self.dtype
        lo = lo.to(device=dev, dtype=dt)
        hi = hi.to(device=dev, dtype=dt)
        B = lo.shape[0]
        fixed: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        if ilo is not None and ihi is not None and self.n_flat:
            flo = self.unflat(ilo.to(device=dev, dtype=dt))
            fhi = self.unflat(ihi.to(device=dev, dtype=dt))
            fixed = {i: (flo[i], fhi[i]) for i in self.split_nodes}
        # "inherit": the split nodes keep the intervals passed in (the parent's, the
        # split entry narrowed) intersected with IBP; no CROWN pass per node
        inherit = intermediate == "inherit"
        opts = BoundOptions(alpha_iterations=alpha_iterations,
                            intermediate="crown" if inherit else intermediate)
        eng = Engine(self.graph, self._boxes(lo, hi), dt, dev, opts, fixed,
                     relevant=self.relevant)
        with torch.no_grad():
            eng.compute_intermediate(
                use_crown=not inherit,
                linear_nodes=frozenset(self.split_nodes) if want_lin else frozenset(),
            )
        starts, m = eng.output_starts(self.spec)
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
            _, ibp_hi = eng.output_interval(self.spec)
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
                    size = self.graph.nodes[nid].size
                    c = torch.zeros(B, size, dtype=dt, device=dev)
                    for gg in (g_lb, g_ub):
                        if gg is not None:
                            c = c + torch.nan_to_num(gg.expand(B, size), nan=0.0,
                                                     posinf=0.0, neginf=0.0)
                    coef[nid] = c
                rows = arg[:, None, None]
                parts = []
                for i in self.graph.inputs:
                    ua = lin.uA[i]
                    parts.append(ua.gather(1, rows.expand(B, 1, ua.shape[-1]))[:, 0])
                input_coef = torch.cat(parts, -1).detach()
                row_lin = (torch.cat([lin.uA[i] for i in self.graph.inputs], -1).detach(),
                           lin.ubias.detach())
        row_up = row_up.detach()
        n_alpha = alpha_iterations if method == "alpha-crown" else 0
        if n_alpha > 0 or (beta_iterations > 0 and fixed):
            # alphas and split multipliers optimized together (beta-CROWN style)
            _, au, _ = optimize_alpha(eng, starts, cl.detach(), cu.detach(),
                                      splits=fixed if beta_iterations > 0 else None,
                                      sides="upper", iterations=max(n_alpha, beta_iterations),
                                      beta_lr=beta_lr)
            row_up = torch.minimum(row_up, au.detach())
        row_up = torch.nan_to_num(row_up, nan=torch.inf)
        infeasible = eng.infeasible.clone()
        up = row_up.max(1).values
        up = torch.where(infeasible, torch.full_like(up, -torch.inf), up)
        if self.n_flat:
            nlo = torch.cat([eng.bounds[i][0] for i in self.split_nodes], -1).detach()
            nhi = torch.cat([eng.bounds[i][1] for i in self.split_nodes], -1).detach()
        else:
            nlo = nhi = torch.zeros(B, 0, dtype=dt, device=dev)
        lin_out = None
        if want_lin:
            lin_out = {}
            for i in self.split_nodes:
                lb = eng.linear.get(i)
                if lb is None:  # no CROWN pass for this node: constant (interval) bounds
                    z = torch.zeros(B, self.graph.nodes[i].size, self.n_in, dtype=dt, device=dev)
                    lin_out[i] = (z, eng.bounds[i][0].detach(), z, eng.bounds[i][1].detach())
                    continue
                lA = torch.cat([lb.lA[k] for k in self.graph.inputs], -1)
                uA = torch.cat([lb.uA[k] for k in self.graph.inputs], -1)
                lin_out[i] = (lA.detach(), lb.lbias.detach(), uA.detach(), lb.ubias.detach())
        return DomainBounds(row_up, up, infeasible, nlo, nhi, coef, input_coef, lin_out,
                            (lo, hi), row_lin)
