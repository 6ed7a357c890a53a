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

from typing import NamedTuple

import torch

from gridverify.bounds.alpha import alphas_per_entry
from gridverify.bounds.domains import DomainBounds, bound_domains
from gridverify.bounds.ibp import ibp, input_boxes, nan_as
from gridverify.ir.graph import Graph, Node
from gridverify.ir.ops import OPS

__all__ = ["Bounder", "DomainBounds"]


class AffineMap(NamedTuple):
    """A split node affine in the inputs: ``z = a x + b`` up to ``err_a . |x| + err_b``
    (``a`` ``(size, n_in)``, ``b`` ``(size,)``, ``err_a`` like ``a``, ``err_b`` like ``b``)."""

    a: torch.Tensor
    b: torch.Tensor
    err_a: torch.Tensor
    err_b: torch.Tensor



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
        #: warm state of a domain, flat: 4 multipliers per split entry, then the
        #: upper-stream alphas of every nonlinear node that has some
        #: (``{node: (offset, n_alpha, size)}``, offsets after the multipliers)
        self.alpha_layout: dict[int, tuple[int, int, int]] = {}
        aoff = 4 * self.n_flat
        for n in self.nonlinear:
            k, size = alphas_per_entry(n), graph.nodes[n.inputs[0]].size
            if k:
                self.alpha_layout[n.id] = (aoff, k, size)
                aoff += k * size
        self.warm_width = aoff
        #: consumers of each split node (nonlinear nodes reading it)
        self.consumers: dict[int, list[Node]] = {i: [] for i in self.split_nodes}
        for n in self.nonlinear:
            for i in dict.fromkeys(n.inputs):
                if i in self.consumers:
                    self.consumers[i].append(n)

        #: split nodes affine in the inputs (no nonlinear ancestor): their exact map
        #: ``z = A x + b`` turns their split constraints into halfspaces of the input
        self.affine = self._affine_maps()
        if self.affine:  # stacked once: halfspace rows, offsets, flat entries they read
            A = torch.cat([m.a for m in self.affine.values()])
            self._hs_a = torch.cat([A, -A])
            self._hs_b = torch.cat([m.b for m in self.affine.values()])
            #: the maps' error: ``|z - (A x + b)| <= err_a . |x| + err_b`` exactly
            self._hs_err_a = torch.cat([m.err_a for m in self.affine.values()])
            self._hs_err_b = torch.cat([m.err_b for m in self.affine.values()])
            self._hs_cols = torch.cat([
                torch.arange(self.offsets[i], self.offsets[i] + graph.nodes[i].size)
                for i in self.affine])

    def _affine_maps(self) -> dict[int, AffineMap]:
        """``{split node: its map z = A x + b}`` for nodes affine in the inputs.

        Read off the graph's own evaluation at 0 and at the unit vectors; these
        carry float64 rounding (about ``eps |b|`` per entry of ``A``, far more than
        the clipping's own padding when ``|b|`` is large), so each map comes with
        a bound on its error from IBP's outward-rounded enclosures of the exact
        values at the same points.
        """
        g = self.graph
        nodes = [i for i in self.split_nodes
                 if not any(OPS[g.nodes[a].op].nonlinear for a in g.ancestors([i]))]
        if not nodes:
            return {}
        x = torch.cat([torch.zeros(1, self.n_in, dtype=torch.float64),
                       torch.eye(self.n_in, dtype=torch.float64)])
        with torch.no_grad():
            vals = g.evaluate_all(x)
            encl = ibp(g, input_boxes(g, x, x), torch.float64, torch.device("cpu"))
        out = {}
        tiny = torch.finfo(torch.float64).tiny
        for i in nodes:
            if encl[i] is None:
                continue  # not read by an output: no clipping by it
            v = vals[i].to(torch.float64)
            lo, hi = encl[i]
            if not bool(torch.isfinite(lo).all() and torch.isfinite(hi).all()):
                continue
            b, a = v[0], v[1:] - v[0]
            # exact z(e_j) - z(0) lies in [lo_j - hi_0, hi_j - lo_0], z(0) in [lo_0, hi_0]
            err_a = torch.maximum((hi[1:] - lo[0] - a).abs(), (a - (lo[1:] - hi[0])).abs())
            err_b = torch.maximum(hi[0] - b, b - lo[0])
            err_a = err_a * (1 + 1e-12) + tiny
            err_b = err_b * (1 + 1e-12) + tiny
            out[i] = AffineMap(*(t.T.contiguous().to(self.device, self.dtype) if t.dim() == 2
                                 else t.to(self.device, self.dtype)
                                 for t in (a, b, err_a, err_b)))
        return out

    def split_halfspaces(self, ilo: torch.Tensor, ihi: torch.Tensor, xlo: torch.Tensor,
                         xhi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The split constraints of the affine split nodes as halfspaces ``a.x >= t``.

        ``ilo``/``ihi`` ``(B, F)`` flat intervals, ``xlo``/``xhi`` ``(B, n_in)`` the
        input boxes (the maps' error over them loosens each halfspace, so every
        point meeting the splits keeps it); returns ``a`` ``(B, K, n_in)`` and
        ``t`` ``(B, K)`` (``-inf`` where an end is infinite), or ``None``.
        """
        if not self.affine:
            return None
        cols = self._hs_cols.to(ilo.device)
        lo = ilo[:, cols].to(self._hs_a)
        hi = ihi[:, cols].to(self._hs_a)
        a = self._hs_a[None].expand(lo.shape[0], -1, -1)
        mag = torch.maximum(xlo.abs(), xhi.abs()).to(self._hs_a)
        err = (mag @ self._hs_err_a.T + self._hs_err_b) * (1 + 1e-12)
        t = torch.cat([lo - self._hs_b - err, self._hs_b - hi - err], -1)
        return a, nan_as(t, -torch.inf)

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
        warm: torch.Tensor | None = None,
        deadline: float | None = None,
    ) -> DomainBounds:
        """Bound ``B`` domains (input boxes ``lo``/``hi``, split intervals ``ilo``/``ihi``).

        The split intervals become split constraints of
        :func:`gridverify.bounds.domains.bound_domains`, which does the work
        (see there for the options).  ``warm``: ``(B, warm_width)`` flat split
        multipliers and alphas (:meth:`flat_warm` of the parents' bounds) to start
        from (NaN alphas: the default start).  ``deadline``: a :func:`time.monotonic`
        time at which the optimizations stop at the iteration they are in.
        """
        dev, dt = self.device, self.dtype
        splits = None
        if ilo is not None and ihi is not None and self.n_flat:
            flo = self.unflat(ilo.to(device=dev, dtype=dt))
            fhi = self.unflat(ihi.to(device=dev, dtype=dt))
            splits = {i: (flo[i], fhi[i]) for i in self.split_nodes}
        wd = wa = None
        if warm is not None:
            warm = warm.to(device=dev, dtype=dt)
            if splits is not None:
                w = self.unflat4(warm[:, :4 * self.n_flat])
                wd = {i: w[i] for i in splits}
            B = warm.shape[0]
            wa = {nid: warm[:, o:o + k * size].reshape(B, k, size).transpose(0, 1)
                  for nid, (o, k, size) in self.alpha_layout.items()}
        return bound_domains(
            self.graph, lo.to(device=dev, dtype=dt), hi.to(device=dev, dtype=dt), splits,
            self.spec, split_nodes=self.split_nodes, relevant=self.relevant, method=method,
            alpha_iterations=alpha_iterations, beta_iterations=beta_iterations, beta_lr=beta_lr,
            intermediate=intermediate, want_coef=want_coef, want_lin=want_lin, warm=wd,
            warm_alpha=wa, deadline=deadline,
        )

    def unflat4(self, flat: torch.Tensor) -> dict[int, torch.Tensor]:
        """``{split node: (4, B, size)}`` from ``(B, 4 F)`` flat multipliers."""
        B = flat.shape[0]
        return {i: flat[:, 4 * o:4 * (o + self.graph.nodes[i].size)]
                .reshape(B, 4, self.graph.nodes[i].size).transpose(0, 1)
                for i, o in self.offsets.items()}

    def no_warm(self, batch: int) -> torch.Tensor:
        """A ``(batch, warm_width)`` warm state that starts from the defaults."""
        w = torch.zeros(batch, self.warm_width, dtype=torch.float32)
        w[:, 4 * self.n_flat:] = torch.nan
        return w

    def flat_warm(self, db: DomainBounds) -> torch.Tensor | None:
        """The ``(B, warm_width)`` float32 flat form of ``db.warm`` and ``db.warm_alpha``
        (multipliers of missing nodes 0, alphas of missing nodes NaN: the default);
        ``None`` when the bounding optimized neither."""
        if db.warm is None and db.warm_alpha is None:
            return None
        B = db.upper.shape[0]
        parts = []
        for i in self.split_nodes:
            w = None if db.warm is None else db.warm.get(i)
            size = self.graph.nodes[i].size
            parts.append(torch.zeros(B, 4 * size, dtype=torch.float32) if w is None
                         else w.transpose(0, 1).reshape(B, 4 * size).float().cpu())
        for nid, (_, k, size) in self.alpha_layout.items():
            a = None if db.warm_alpha is None else db.warm_alpha.get(nid)
            ok = a is not None and tuple(a.shape) == (k, B, size)
            parts.append(a.transpose(0, 1).reshape(B, k * size).float().cpu() if ok
                         else torch.full((B, k * size), torch.nan))
        return torch.cat(parts, -1)

