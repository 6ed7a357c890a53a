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
        #: the graph with one more output, the split nodes concatenated (for beta terms)
        self.aug: Graph | None = None
        if self.n_flat:
            from gridverify.ir.builder import GraphBuilder

            b = GraphBuilder(graph)
            for o, name in zip(graph.outputs, graph.output_names):
                b.output(o, name)
            cat = (b.concat(list(self.split_nodes), name="bab_split")
                   if len(self.split_nodes) > 1 else self.split_nodes[0])
            b.output(cat, "bab_split")
            self.aug = b.build()
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
        opts = BoundOptions(alpha_iterations=alpha_iterations, intermediate=intermediate)
        eng = Engine(self.graph, self._boxes(lo, hi), dt, dev, opts, fixed,
                     relevant=self.relevant)
        with torch.no_grad():
            eng.compute_intermediate(
                use_crown=True,
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
            coef = input_coef = None
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
        row_up = row_up.detach()
        if method == "alpha-crown" and alpha_iterations > 0:
            _, au, _ = optimize_alpha(eng, starts, cl.detach(), cu.detach())
            row_up = torch.minimum(row_up, au.detach())
        if beta_iterations > 0 and self.aug is not None and ilo is not None and ihi is not None:
            bu = self._beta(eng, lo, hi, ilo.to(device=dev, dtype=dt), ihi.to(device=dev, dtype=dt),
                            fixed, beta_iterations, beta_lr)
            row_up = torch.minimum(row_up, bu)
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
                            (lo, hi))

    def _beta(self, eng: Engine, lo: torch.Tensor, hi: torch.Tensor, ilo: torch.Tensor,
              ihi: torch.Tensor, fixed: dict, iterations: int, lr: float) -> torch.Tensor:
        """Upper bounds with the split constraints dualized (beta-CROWN style, CROWN relaxations).

        Every point of a domain satisfies ``ilo <= z <= ihi`` for the split
        nodes ``z``, so for any ``bu, bl >= 0``
        ``spec @ y <= spec @ y + bu (ihi - z) + bl (z - ilo)``; the right side is
        bounded by one backward pass on the graph with ``z`` as an extra output
        and the multipliers are improved by projected Adam.  Every iterate is a
        sound bound; the best per domain and row is kept.
        """
        dev, dt = self.device, self.dtype
        B = lo.shape[0]
        aug = self.aug
        assert aug is not None
        opts = BoundOptions()
        e2 = Engine(aug, self._boxes(lo, hi), dt, dev, opts, fixed)
        # the intermediate bounds are the ones just computed (the split nodes' outputs
        # are plain ancestors of the outputs): copy them instead of recomputing
        e2.bounds = list(eng.bounds) + [None] * (len(aug.nodes) - len(eng.bounds))
        for n in aug.nodes[len(eng.bounds):]:
            from gridverify.bounds.ibp import ibp_node

            e2.bounds[n.id] = ibp_node(aug, n, [e2.bounds[i] for i in n.inputs], B, dt, dev)
        e2.infeasible = eng.infeasible
        finite = torch.isfinite(ilo) & torch.isfinite(ihi)
        a = torch.where(finite, ilo, torch.zeros_like(ilo))
        b = torch.where(finite, ihi, torch.zeros_like(ihi))
        m = self.spec.shape[0]
        n_out = self.graph.output_size
        base = self.spec.expand(B, m, n_out)
        bu = torch.zeros(B, self.n_flat, dtype=dt, device=dev, requires_grad=True)
        bl = torch.zeros(B, self.n_flat, dtype=dt, device=dev, requires_grad=True)
        mom = [torch.zeros_like(bu), torch.zeros_like(bl)]
        var = [torch.zeros_like(bu), torch.zeros_like(bl)]
        best = torch.full((B, m), torch.inf, dtype=dt, device=dev)
        mask = finite.to(dt)
        for t in range(1, iterations + 1):
            with torch.enable_grad():
                w = (bl - bu) * mask
                spec = torch.cat([base, w[:, None, :].expand(B, m, self.n_flat)], -1)
                starts, _ = e2.output_starts(spec)
                _, cu, _ = e2.crown_spec(starts, m, e2.default_relax)
                const = ((bu * b - bl * a) * mask).sum(-1, keepdim=True)
                up = cu + const
                obj = up.sum()
                if not torch.isfinite(obj):
                    break
                gu, gl = torch.autograd.grad(obj, [bu, bl])
            with torch.no_grad():
                best = torch.minimum(best, torch.nan_to_num(up.detach(), nan=torch.inf))
                for k, (p, g) in enumerate(((bu, gu), (bl, gl))):
                    g = torch.nan_to_num(g)
                    mom[k].mul_(0.9).add_(g, alpha=0.1)
                    var[k].mul_(0.999).addcmul_(g, g, value=0.001)
                    mh = mom[k] / (1 - 0.9**t)
                    vh = var[k] / (1 - 0.999**t)
                    p.sub_(lr * mh / (vh.sqrt() + 1e-8))
                    p.clamp_(min=0.0)
        return best
