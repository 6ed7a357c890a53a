"""CROWN: backward linear bound propagation over a gridverify graph.

The :class:`Engine` holds one batch of domains (input boxes, optional fixed
intermediate bounds) and walks the graph:

* a forward sweep (:meth:`Engine.compute_intermediate`) gives every node an
  interval by IBP; the nodes whose bounds matter (inputs of nonlinear ops, and
  what they pass through exactly) are tightened by a CROWN backward pass started
  at that node with the identity spec, keeping the tighter of the two, and by
  the user's fixed bounds (``interm``);
* :meth:`Engine.backward` propagates linear coefficient matrices ``A``
  (``(m, size)`` while batch independent, else ``(B, m, size)``) from any set of
  nodes back to the inputs, one stream for the lower and one for the upper
  bound, and concretizes them on the input box.  Sparse linear ops and gathers
  use ``index_select``/``index_add`` on the last dimension of ``A`` (never
  densified); products of two variables send coefficients to both operands.

Relaxations come from :mod:`gridverify.bounds.relaxations`; a walk picks them
with a ``relax(node, stream)`` callback (CROWN: the default parameters;
alpha-CROWN: optimized ones).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch

from gridverify.bounds.ibp import Interval, ibp_node, nan_as, node_relaxation, sparse_terms
from gridverify.bounds.options import BoundOptions
from gridverify.ir.graph import Graph, Node, sparse_forward_gather, sparse_transpose_apply
from gridverify.ir.ops import OPS, UNARY_NONLINEAR

# ops through which exact interval bounds pass: when such a node needs tight
# bounds, its inputs need them too (and IBP then suffices for the node itself)
_PASS_EXACT = frozenset({"gather", "concat", "reshape", "scale", "add_const", "neg"})

RelaxFn = Callable[[Node, int], object]  # (node, stream 0 lower / 1 upper) -> relaxation


@dataclass
class LinearBounds:
    """Linear bounds w.r.t. the inputs, valid on the input box of each domain.

    ``lower >= sum_i lA[i] @ x_i + lbias`` and ``upper <= sum_i uA[i] @ x_i + ubias``
    with ``lA[i]``/``uA[i]`` of shape ``(B, m, input_size_i)`` keyed by input node
    id, biases ``(B, m)``.
    """

    lA: dict[int, torch.Tensor]
    lbias: torch.Tensor
    uA: dict[int, torch.Tensor]
    ubias: torch.Tensor


def _dot(a: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``sum_n a[..., m, n] * v[b, n]`` -> ``(B, m)`` for ``a`` of 2 or 3 dims."""
    if a.dim() == 2:
        return v @ a.T
    if a.is_cuda:
        return torch.bmm(a, v.unsqueeze(-1)).squeeze(-1)
    # CPU batched matrix-vector products are much slower through bmm
    return (a * v.unsqueeze(-2)).sum(-1)


def _dot_off(a: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``_dot`` for offsets that may be infinite ("no bound"), with ``0 * inf = 0``.

    Only called with ``a >= 0`` or ``a <= 0`` and ``v`` whose infinities have
    the sign that makes the bound vacuous, so a nonzero coefficient meeting an
    infinite offset yields that infinity.
    """
    fin = torch.isfinite(v)
    if bool(fin.all()):
        return _dot(a, v)
    out = _dot(a, torch.where(fin, v, torch.zeros_like(v)))
    hit = (a != 0) & ~fin.unsqueeze(-2)
    if not bool(hit.any()):
        return out
    vv = v.unsqueeze(-2).expand_as(hit) if a.dim() == 3 else v.unsqueeze(-2)
    contrib = torch.where(hit, a.sign() * vv, torch.zeros((), dtype=a.dtype, device=a.device))
    return out + contrib.sum(-1)


def _abs_dot(a: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``_dot_off(|a|, v)`` for ``v >= 0`` without a product the size of ``a``
    (one ``|a|`` temporary, a batched matrix-vector product)."""
    with torch.no_grad():
        fin = torch.isfinite(v)
        vf = v if bool(fin.all()) else torch.where(fin, v, torch.zeros_like(v))
        aa = a.detach().abs()
        out = vf @ aa.T if aa.dim() == 2 else torch.bmm(aa, vf.unsqueeze(-1)).squeeze(-1)
        if vf is not v:  # a nonzero coefficient on an unbounded entry
            hit = (aa > 0).to(v.dtype)
            inf = (~fin).to(v.dtype)
            cnt = inf @ hit.T if aa.dim() == 2 else torch.bmm(hit, inf.unsqueeze(-1)).squeeze(-1)
            out = torch.where(cnt > 0, torch.full_like(out, torch.inf), out)
        return out


def _split(a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(max(a, 0), min(a, 0))``, exactly (one of the two is zero in each entry)."""
    an = a.clamp(max=0)
    return a - an, an


def _mix(ap: torch.Tensor, an: torch.Tensor, w_pos: torch.Tensor,
         w_neg: torch.Tensor) -> torch.Tensor:
    """``ap * w_pos + an * w_neg`` for ``(ap, an) = _split(a)``, weights ``(B, n)``.

    Each entry is one product: ``a * w_pos + an * (w_neg - w_pos)`` would cancel,
    and lose the line that is used to the steepness of the one that is not."""
    return torch.addcmul(ap * w_pos.unsqueeze(-2), an, w_neg.unsqueeze(-2))


def _bias(ap: torch.Tensor, an: torch.Tensor, b_pos: torch.Tensor,
          b_neg: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``ap . b_pos + an . b_neg`` -> ``(B, m)`` for ``(ap, an) = _split(a)``, infinite
    offsets allowed, and the sum of its terms' magnitudes (what its rounding error
    is relative to)."""
    finite = bool(torch.isfinite(b_pos).all()) and bool(torch.isfinite(b_neg).all())
    dot = _dot if finite else _dot_off
    val = dot(ap, b_pos) + dot(an, b_neg)
    with torch.no_grad():
        mag = dot(ap, b_pos.abs()) - dot(an, b_neg.abs())
    return val, mag


def _vec_mag(a: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``a @ v`` and the sum of its terms' magnitudes ``|a| @ |v|``."""
    with torch.no_grad():
        mag = _vec(a.abs(), v.abs())
    return _vec(a, v), mag


def _vec(a: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``a @ v`` for a constant vector ``v`` -> ``(m,)`` or ``(B, m)``."""
    return a @ v


class Engine:
    """Bounds of one batch of domains on one graph (see module docstring)."""

    def __init__(
        self,
        graph: Graph,
        boxes: Mapping[int, Interval],
        dtype: torch.dtype,
        device: torch.device,
        options: BoundOptions,
        interm: Mapping[int, Interval] | None = None,
        extra_nodes: frozenset[int] = frozenset(),
        relevant: Mapping[int, torch.Tensor] | None = None,
        refine: Callable[..., tuple[torch.Tensor, torch.Tensor]] | None = None,
        deadline: float | None = None,
    ) -> None:
        self.graph = graph
        #: a :func:`time.monotonic` time after which optimizations (alphas, split
        #: multipliers) stop at the iteration they are in, keeping their best bounds
        #: so far (any alphas are sound); None: they run every iteration
        self.deadline = deadline
        #: ``refine(engine, nid, spec, lower, upper) -> (lower, upper)`` tightens
        #: intermediate bounds when ``options.intermediate == "alpha-crown"``
        #: (:func:`gridverify.bounds.alpha.alpha_rows`); None: CROWN's are kept
        self.refine = refine
        #: per node, the entries worth CROWN rows (see :mod:`gridverify.bounds.relevance`;
        #: the others keep interval bounds); None: every entry
        self.relevant = relevant
        self.boxes = dict(boxes)
        self.dtype = dtype
        self.device = device
        self.options = options
        self.batch = next(iter(self.boxes.values()))[0].shape[0]
        self.interm = dict(interm or {})
        self.bounds: list[Interval | None] = [None] * len(graph.nodes)
        self.infeasible = torch.zeros(self.batch, dtype=torch.bool, device=device)
        # nodes to bound: ancestors of the outputs, of fixed-bound nodes and of
        # ``extra_nodes`` (nodes whose linear bounds are wanted)
        self.active = graph.ancestors([*graph.outputs, *self.interm, *extra_nodes])
        #: size of the largest node a backward pass goes through
        self.widest = max([graph.nodes[i].size for i in self.active] + [1])
        self.needed = self._needed_nodes()
        # nodes whose bounds CROWN could not improve (CROWN-bounded, or exact
        # interval images of such nodes): their output rows skip the final pass
        self.tight: set[int] = set()
        self._consumers: dict[int, list[int]] = {}
        for n in graph.nodes:
            if n.id in self.active:
                for i in n.inputs:
                    self._consumers.setdefault(i, []).append(n.id)
        self._default_relax: dict[int, object] = {}
        self.linear: dict[int, LinearBounds] = {}
        #: split multipliers left by the last optimization with splits (warm starts)
        self.warm_betas: dict[int, torch.Tensor] = {}
        #: upper-stream alphas left by the last optimization (warm starts)
        self.warm_alphas: dict[int, torch.Tensor] = {}

    # ------------------------------------------------------------ bookkeeping
    def _needed_nodes(self) -> set[int]:
        """Nodes whose bounds enter a relaxation, closed under exact pass-through ops."""
        g = self.graph
        need: set[int] = set()
        for n in g.nodes:
            if n.id in self.active and OPS[n.op].nonlinear:
                need.update(n.inputs)
        for n in reversed(g.nodes):
            if n.id in need and n.op in _PASS_EXACT:
                need.update(n.inputs)
        return need

    def _tighten(self, nid: int, lo: torch.Tensor, hi: torch.Tensor) -> Interval:
        """Intersect with the user's fixed bounds; flag domains left empty."""
        fixed = self.interm.get(nid)
        if fixed is not None:
            lo = torch.maximum(lo, fixed[0])
            hi = torch.minimum(hi, fixed[1])
        empty = lo > hi
        if bool(empty.any()):
            self.infeasible |= empty.any(-1)
            mid = torch.where(empty, (lo + hi) / 2, lo)
            lo = torch.where(empty, mid, lo)
            hi = torch.where(empty, mid, hi)
        return lo, hi

    # ------------------------------------------------------------ relaxations
    def default_relax(self, node: Node, stream: int) -> object:
        """CROWN's relaxation of a nonlinear node (default parameters, cached)."""
        rel = self._default_relax.get(node.id)
        if rel is None:
            rel = self.relax_with(node, None)
            self._default_relax[node.id] = rel
        return rel

    def relax_with(self, node: Node, alpha: torch.Tensor | None) -> object:
        """Relaxation of ``node`` on its input bounds with parameters ``alpha``."""
        if node.op == "mul":
            from gridverify.bounds.relaxations import relax_mul

            (lx, ux), (ly, uy) = (self.bounds[i] for i in node.inputs)
            return relax_mul(lx, ux, ly, uy, alpha)
        l, u = self.bounds[node.inputs[0]]
        return node_relaxation(node).relax(l, u, alpha)

    # ------------------------------------------------------- forward sweep
    def compute_intermediate(
        self,
        use_crown: bool,
        relax: RelaxFn | None = None,
        linear_nodes: frozenset[int] = frozenset(),
    ) -> None:
        """Bounds of every active node: IBP, tightened by CROWN where it matters."""
        g = self.graph
        relax = relax or self.default_relax
        for node in g.nodes:
            if node.id not in self.active:
                continue
            if node.op == "input" or (
                (node.op in _PASS_EXACT or node.op in UNARY_NONLINEAR or node.op == "constant")
                and all(i in self.tight for i in node.inputs)
            ):
                self.tight.add(node.id)
            if node.op == "input":
                lo, hi = self.boxes[node.id]
            else:
                lo, hi = ibp_node(g, node, [self.bounds[i] for i in node.inputs],
                                  self.batch, self.dtype, self.device)
            lo, hi = self._tighten(node.id, lo, hi)
            want_lin = node.id in linear_nodes
            if (
                use_crown
                and (node.id in self.needed or want_lin)
                and (not OPS[node.op].interval_exact or want_lin)
                and (self.options.crown_max_size is None
                     or node.size <= self.options.crown_max_size)
            ):
                rows = self._relevant_rows(node.id) if want_lin else self._crown_rows(
                    node.id, lo, hi)
                if rows is None:
                    eye = self.one_hot(torch.arange(node.size), node.size)
                    cl, cu, lin = self.crown_spec({node.id: eye}, node.size, relax,
                                                  return_A=want_lin)
                    if lin is not None:
                        self.linear[node.id] = lin
                    cl, cu = self._alpha_rows(node.id, eye, cl, cu)
                    lo = torch.maximum(lo, nan_as(cl, -torch.inf))
                    hi = torch.minimum(hi, nan_as(cu, torch.inf))
                    self.tight.add(node.id)
                elif rows.numel():
                    spec = self.one_hot(rows, node.size)
                    cl, cu, lin = self.crown_spec({node.id: spec}, rows.numel(), relax,
                                                  return_A=want_lin)
                    cl, cu = self._alpha_rows(node.id, spec, cl, cu)
                    lo, hi = lo.clone(), hi.clone()
                    lo[:, rows] = torch.maximum(lo[:, rows], nan_as(cl, -torch.inf))
                    hi[:, rows] = torch.minimum(hi[:, rows], nan_as(cu, torch.inf))
                    if lin is not None:
                        self.linear[node.id] = self._scatter_linear(lin, rows, node.size)
                lo, hi = self._tighten(node.id, lo, hi)
                if want_lin and node.id in self.linear and rows is not None:
                    # entries without a CROWN row: their (constant) interval bounds
                    lb = self.linear[node.id]
                    other = torch.ones(node.size, dtype=torch.bool, device=self.device)
                    other[rows] = False
                    lb.lbias[:, other] = lo[:, other]
                    lb.ubias[:, other] = hi[:, other]
            self.bounds[node.id] = (lo, hi)

    def _alpha_rows(self, nid: int, spec: torch.Tensor, cl: torch.Tensor,
                    cu: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Bounds of ``spec @ value(nid)`` refined by ``self.refine`` (alpha-optimized)
        when ``intermediate="alpha-crown"``; CROWN's ``cl``/``cu`` otherwise."""
        if (self.refine is None or self.options.intermediate != "alpha-crown"
                or self.options.alpha_iterations == 0):
            return cl, cu
        return self.refine(self, nid, spec, cl, cu)

    def _relevant_rows(self, nid: int) -> torch.Tensor | None:
        """Entries of ``nid`` in the relevance map (``None``: all of them)."""
        rel = None if self.relevant is None else self.relevant.get(nid)
        if rel is None or bool(rel.all()):
            return None
        return rel.to(self.device).nonzero().reshape(-1)

    def _scatter_linear(self, lin: LinearBounds, rows: torch.Tensor, size: int) -> LinearBounds:
        """Linear bounds of ``rows`` placed into full-size ones (zero coefficients elsewhere;
        the caller sets the other biases to the entries' interval bounds)."""
        def put(a: torch.Tensor) -> torch.Tensor:  # (B, m, ...) -> (B, size, ...)
            full = a.new_zeros(a.shape[0], size, *a.shape[2:])
            full[:, rows] = a
            return full

        return LinearBounds({i: put(_batched(a, self.batch)) for i, a in lin.lA.items()},
                            put(_full(lin.lbias, self.batch, rows.numel())),
                            {i: put(_batched(a, self.batch)) for i, a in lin.uA.items()},
                            put(_full(lin.ubias, self.batch, rows.numel())))

    def _crown_rows(self, nid: int, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor | None:
        """Entries of ``nid`` to bound by CROWN (``None``: all of them).

        The unstable entries of relu inputs (:meth:`_unstable_rows`), within the
        relevant entries when the engine was given a relevance map.
        """
        rows = self._unstable_rows(nid, lo, hi)
        rel = self._relevant_rows(nid)
        if rel is None or rows is None:
            return rows if rel is None else rel
        return rows[self.relevant[nid].to(rows.device)[rows]]

    def _unstable_rows(self, nid: int, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor | None:
        """Entries worth a CROWN row when every consumer of ``nid`` is a relu.

        A relu's relaxation is exact where its input interval does not cross 0,
        so only the entries unstable in some domain need tighter bounds;
        ``None`` when some consumer needs every entry.
        """
        cons = self._consumers.get(nid, ())
        if not cons or any(self.graph.nodes[c].op != "relu" for c in cons):
            return None
        return ((lo < 0) & (hi > 0)).any(0).nonzero().reshape(-1)

    # ------------------------------------------------------- backward walks
    def crown_spec(
        self,
        starts: Mapping[int, torch.Tensor],
        m: int,
        relax: RelaxFn,
        return_A: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor, LinearBounds | None]:
        """Bounds of ``sum_k starts[k] @ value(k)`` (``m`` rows), split into row chunks."""
        chunk = self.row_chunk()
        if chunk >= m:
            return self.backward(starts, relax, return_A)
        los, his, lins = [], [], []
        for r0 in range(0, m, chunk):
            part = {k: a[..., r0:r0 + chunk, :] for k, a in starts.items()}
            lo, hi, lin = self.backward(part, relax, return_A)
            los.append(lo)
            his.append(hi)
            lins.append(lin)
        lin = None
        if return_A:
            lin = LinearBounds(
                {i: torch.cat([x.lA[i] for x in lins], 1) for i in lins[0].lA},
                torch.cat([x.lbias for x in lins], 1),
                {i: torch.cat([x.uA[i] for x in lins], 1) for i in lins[0].uA},
                torch.cat([x.ubias for x in lins], 1),
            )
        return torch.cat(los, 1), torch.cat(his, 1), lin

    def one_hot(self, cols: torch.Tensor, size: int) -> torch.Tensor:
        """Start matrix of the entries ``cols`` of a node of ``size`` (one-hot rows; lazy,
        densified one row chunk at a time, when larger than a chunk)."""
        from gridverify.bounds.selection import one_hot_start

        return one_hot_start(cols, size, self.row_chunk(), self.dtype, self.device)

    def row_chunk(self) -> int:
        """Spec rows per backward pass so one coefficient tensor fits ``memory_mb``."""
        per_row = self.batch * self.widest * torch.finfo(self.dtype).bits / 8 * 4
        return max(1, int(self.options.memory_mb * 2**20 // max(per_row, 1)))

    def backward(
        self,
        starts: Mapping[int, torch.Tensor],
        relax: RelaxFn,
        return_A: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor, LinearBounds | None]:
        """One backward pass from ``starts`` (node -> ``(m, size)`` or ``(B, m, size)``).

        Returns lower and upper bounds ``(B, m)`` of ``sum_k starts[k] @ value(k)``
        and, with ``return_A``, the linear bounds w.r.t. the inputs.
        """
        g = self.graph
        Al: dict[int, torch.Tensor] = {}
        Au: dict[int, torch.Tensor] = {}
        zero = torch.zeros((), dtype=self.dtype, device=self.device)
        acc = _Accumulator(self, Al, Au, zero, starts)
        for k, a in starts.items():
            # a pair gives the lower and the upper stream different starts
            al0, au0 = a if isinstance(a, tuple) else (a, a)
            acc(k, al0, au0)
        bl, bu = zero, zero
        ml, mu = zero, zero  # the offsets' terms' magnitudes (their rounding is relative to)
        in_l: dict[int, torch.Tensor] = {}
        in_u: dict[int, torch.Tensor] = {}
        for nid in range(max(starts), -1, -1):
            if nid not in Al:
                continue
            al, au = Al.pop(nid), Au.pop(nid)
            node = g.nodes[nid]
            op = node.op
            if op == "input":
                in_l[nid], in_u[nid] = al, au
                continue
            if op == "constant":
                v = g.attr(node, "value", self.dtype, self.device)
                dbl, dbu = _vec_mag(al, v), _vec_mag(au, v)
                bl, bu, ml, mu = bl + dbl[0], bu + dbu[0], ml + dbl[1], mu + dbu[1]
                continue
            if OPS[op].nonlinear:
                back = self._back_mul if op == "mul" else self._back_unary
                dbl, dbu = back(node, al, au, acc, relax)
                bl, bu, ml, mu = bl + dbl[0], bu + dbu[0], ml + dbl[1], mu + dbu[1]
                continue
            shared = al is au
            outs_l, dbl = self._back_linear(node, al)
            if shared:
                outs_u, dbu = outs_l, dbl
            else:
                outs_u, dbu = self._back_linear(node, au)
            if dbl is not None:
                bl, bu, ml, mu = bl + dbl[0], bu + dbu[0], ml + dbl[1], mu + dbu[1]
            acc.charge_affine(node, al, au)
            skip_zero = op == "concat" and len(outs_l) > 1
            for (i, nl), (_, nu) in zip(outs_l, outs_u):
                # a spec that reads a few parts of a concatenation (one constraint of
                # many) leaves the others' coefficients zero: their whole subgraphs,
                # relaxations included, would only add zeros
                if skip_zero and not bool(nl.any()) and (nu is nl or not bool(nu.any())):
                    continue
                acc(i, nl, nu)
        # rounding: the products and sums above and below are widened by their
        # error bound, (n + graph size) eps * sum |a| |x| (the offsets included:
        # the sum of their terms' magnitudes, which may cancel to a small bl), so
        # that a bound computed in floating point holds the exact one.  The
        # coefficients' own rounding (sums in a @ W and in accumulation, products,
        # weights rounded to the engine's dtype) was charged step by step to the
        # offsets (:class:`_Accumulator`): a bound holds even where the products
        # cancel to tiny coefficients
        bl, bu = bl - acc.charge_l, bu + acc.charge_u
        eps = torch.finfo(self.dtype).eps
        n_ops = len(g.nodes) + 3
        k_off = (n_ops + self.widest) * eps
        bl = bl - k_off * (ml + bl.detach().abs())
        bu = bu + k_off * (mu + bu.detach().abs())
        lower = bl
        upper = bu
        pad_l = torch.zeros_like(bl.detach())
        pad_u = torch.zeros_like(bu.detach())
        for i, al in in_l.items():
            lo_i, hi_i = self.boxes[i]
            c, r = (hi_i + lo_i) / 2, (hi_i - lo_i) / 2
            au = in_u[i]
            lower = lower + _dot(al, c) - _dot(al.abs(), r)
            upper = upper + _dot(au, c) + _dot(au.abs(), r)
            mag = (c.abs() + r).detach()
            k = (n_ops + c.shape[-1]) * eps
            pad_l = pad_l + k * _dot(al.detach().abs(), mag)
            pad_u = pad_u + k * _dot(au.detach().abs(), mag)
        tiny = torch.finfo(self.dtype).tiny
        lower = lower - (pad_l + tiny)
        upper = upper + (pad_u + tiny)
        first = next(iter(starts.values()))
        m = (first[0] if isinstance(first, tuple) else first).shape[-2]
        lower = _full(lower, self.batch, m)
        upper = _full(upper, self.batch, m)
        lin = None
        if return_A:
            for i in g.inputs:  # every input gets coefficients, zero when unreached
                if i not in in_l:
                    in_l[i] = in_u[i] = torch.zeros(m, g.nodes[i].size, dtype=self.dtype,
                                                    device=self.device)
            lin = LinearBounds(
                {i: _batched(a, self.batch) for i, a in in_l.items()}, _full(bl, self.batch, m),
                {i: _batched(a, self.batch) for i, a in in_u.items()}, _full(bu, self.batch, m),
            )
        return lower, upper, lin

    def _back_linear(
        self, node: Node, a: torch.Tensor
    ) -> tuple[list[tuple[int, torch.Tensor]], torch.Tensor | None]:
        """Coefficients for the inputs of an affine node, and the bias term with its
        terms' magnitudes (:func:`_vec_mag`), or None."""
        g, op, dt, dev = self.graph, node.op, self.dtype, self.device
        ins = node.inputs
        if op == "linear":
            w = g.attr(node, "weight", dt, dev)
            bias = None
            if node.attrs.get("bias") is not None:
                bias = _vec_mag(a, g.attr(node, "bias", dt, dev))
            return [(ins[0], a @ w)], bias
        if op == "sparse_linear":
            out = sparse_transpose_apply(g, node, a, dt, dev)  # a @ W, one CSR product
            bias = None
            if node.attrs.get("bias") is not None:
                bias = _vec_mag(a, g.attr(node, "bias", dt, dev))
            return [(ins[0], out)], bias
        if op == "add":
            return [(ins[0], a), (ins[1], a)], None
        if op == "sub":
            return [(ins[0], a), (ins[1], -a)], None
        if op == "neg":
            return [(ins[0], -a)], None
        if op == "scale":
            return [(ins[0], a * g.attr(node, "coef", dt, dev))], None
        if op == "add_const":
            return [(ins[0], a)], _vec_mag(a, g.attr(node, "const", dt, dev))
        if op == "gather":
            idx = g.attr(node, "index", dt, dev)
            out = a.new_zeros(*a.shape[:-1], g.nodes[ins[0]].size)
            out.index_add_(-1, idx, a)
            return [(ins[0], out)], None
        if op == "concat":
            sizes = [g.nodes[i].size for i in ins]
            return list(zip(ins, torch.split(a, sizes, dim=-1))), None
        if op == "reshape":
            return [(ins[0], a)], None
        raise AssertionError(f"no backward rule for {op}")  # pragma: no cover

    def _back_unary(self, node, al, au, acc, relax):  # noqa: ANN001, ANN202
        """Coefficients through a unary relaxation; the offsets of both streams, each
        with its terms' magnitudes."""
        i = node.inputs[0]
        rl = relax(node, 0)
        ru = rl if relax == self.default_relax else relax(node, 1)
        # lower stream: positive coefficients take the lower line, negative the upper
        ap, an = _split(al)
        new_l = _mix(ap, an, rl.lw, rl.uw)
        dbl = _bias(ap, an, rl.lb, rl.ub)
        ap, an = _split(au)
        new_u = _mix(ap, an, ru.uw, ru.lw)
        dbu = _bias(ap, an, ru.ub, ru.lb)
        acc(i, new_l, new_u)
        if not acc.deferred(i):
            z, k = acc.zmax(i), 1.0 + acc.sums(i)
            acc.charge(al, au, [(_steepest(rl.lw, rl.uw, z), None if ru is rl else
                                 _steepest(ru.lw, ru.uw, z), k)])
        return dbl, dbu

    def _back_mul(self, node, al, au, acc, relax):  # noqa: ANN001, ANN202
        """Coefficients through a product's planes; offsets as :meth:`_back_unary`."""
        x, y = node.inputs
        rl = relax(node, 0)
        ru = rl if relax == self.default_relax else relax(node, 1)
        ap, an = _split(al)
        lx = _mix(ap, an, rl.lwx, rl.uwx)
        ly = _mix(ap, an, rl.lwy, rl.uwy)
        dbl = _bias(ap, an, rl.lb, rl.ub)
        ap, an = _split(au)
        ux = _mix(ap, an, ru.uwx, ru.lwx)
        uy = _mix(ap, an, ru.uwy, ru.lwy)
        dbu = _bias(ap, an, ru.ub, ru.lb)
        acc(x, lx, ux)
        acc(y, ly, uy)
        items = []
        for i, (lw, uw), (lw2, uw2) in ((x, (rl.lwx, rl.uwx), (ru.lwx, ru.uwx)),
                                        (y, (rl.lwy, rl.uwy), (ru.lwy, ru.uwy))):
            if not acc.deferred(i) or x == y:
                z = acc.zmax(i)
                items.append((_steepest(lw, uw, z),
                              None if ru is rl else _steepest(lw2, uw2, z), 1.0 + acc.sums(i)))
        if items:
            acc.charge(al, au, items)
        return dbl, dbu

    # ------------------------------------------------------------ final bounds
    def output_starts(self, spec: torch.Tensor | None) -> tuple[dict[int, torch.Tensor], int]:
        """Start matrices at the output nodes for ``spec`` (``(m, n_out)`` or ``(B, m, n_out)``)."""
        g = self.graph
        n_out = g.output_size
        if spec is None:
            spec = torch.eye(n_out, dtype=self.dtype, device=self.device)
        starts: dict[int, torch.Tensor] = {}
        unread: dict[int, torch.Tensor] = {}
        off = 0
        for o in g.outputs:
            sz = g.nodes[o].size
            part = spec[..., off:off + sz]
            off += sz
            if not bool(part.any()):
                # an output no row reads: its subgraph would only add zeros
                unread.setdefault(o, part)
                continue
            starts[o] = part if o not in starts else starts[o] + part
        if not starts:  # no row reads anything: one zero start keeps the shapes
            o, part = next(iter(unread.items()))
            starts[o] = part
        return starts, spec.shape[-2]

    def output_interval(self, spec: torch.Tensor | None) -> Interval:
        """IBP interval of ``spec @ outputs`` from the current node bounds."""
        lo = torch.cat([self.bounds[o][0] for o in self.graph.outputs], -1)
        hi = torch.cat([self.bounds[o][1] for o in self.graph.outputs], -1)
        if spec is None:
            return lo, hi
        sp, sn = spec.clamp(min=0), spec.clamp(max=0)
        # an output a spec row does not read adds nothing, even an unbounded one
        out_lo = _dot_off(sp, lo) + _dot_off(sn, hi)
        out_hi = _dot_off(sp, hi) + _dot_off(sn, lo)
        # the rounding of each end's sum: at most (k + 1) eps times its terms'
        # magnitudes for k terms (infinite only where that end is); a row reading one
        # output with coefficient +-1 (a selection) is exact
        nnz = (spec != 0).sum(-1)
        exact = (nnz <= 1) & ((spec == 0) | (spec.abs() == 1)).all(-1)
        k = torch.where(exact, torch.zeros_like(nnz), nnz + 1).to(lo.dtype)
        fi = torch.finfo(lo.dtype)

        def pad(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            mag = _dot_off(sp, a.abs()) + _dot_off(-sn, b.abs())
            return torch.where(k == 0, torch.zeros_like(mag), k * fi.eps * mag) + fi.tiny

        return out_lo - pad(lo, hi), out_hi + pad(hi, lo)


class _Accumulator:
    """Coefficients accumulated into both streams of a backward pass (shared tensors
    kept shared), with the rounding of every coefficient charged to the offsets.

    The pass computes coefficients ``c~`` that differ from the exact ones ``c`` by
    rounding; everything after a step is a valid bound for the coefficients it was
    given, so the error of the step, ``(c - c~) . z`` over the node's values ``z``,
    is what the bound must absorb: at most ``err(c) . max|z|`` with ``max|z|``
    from the node's interval (``0 * inf = 0``; a nonzero error on an unbounded
    node makes the bound infinite).  Each step through a node with coefficients
    ``a`` charges, per input, ``k eps |a| . v``: ``v`` bounds the magnitudes of the
    terms of the input's coefficients times ``max|z_in|`` (``|W| max|z_in|`` for an
    affine op, the larger line slope times ``max|z_in|`` for a relaxation), ``k``
    counts the roundings: the sums of ``a @ W`` (``n + 2`` for ``n`` terms and the
    weights rounded to the engine's dtype), one product, and the sums of the
    contributions the input receives from its consumers (each partial sum is at
    most the sum of the contributions' magnitudes).  ``charge_l`` and ``charge_u``,
    ``(B, m)`` or scalar zero, are subtracted from the lower and added to the upper
    offset.
    """

    def __init__(self, engine: Engine, Al: dict, Au: dict, zero: torch.Tensor,
                 starts: Mapping[int, object]) -> None:
        self.engine, self.Al, self.Au = engine, Al, Au
        self.starts = starts
        self.eps = torch.finfo(engine.dtype).eps
        self.charge_l = zero
        self.charge_u = zero

    def zmax(self, nid: int) -> torch.Tensor:
        """``max(|lower|, |upper|)`` of node ``nid``, ``(B, size)``."""
        e = self.engine
        b = e.boxes[nid] if e.graph.nodes[nid].op == "input" else e.bounds[nid]
        if b is None:
            raise AssertionError(f"node #{nid} reached by a backward pass has no bounds")
        return torch.maximum(b[0].detach().abs(), b[1].detach().abs())

    def sums(self, nid: int) -> float:
        """Additions of contributions node ``nid`` can see in a pass (one fewer than
        its consumers, plus one when it is a start)."""
        n = len(self.engine._consumers.get(nid, ())) - 1 + (nid in self.starts)
        return float(max(n, 0))

    def deferred(self, nid: int) -> bool:
        """Whether a product's rounding of node ``nid``'s coefficients is left to
        :meth:`charge_affine` at ``nid``: an affine node whose coefficients are that
        one contribution (its charge covers ``eps |a| . max|z|``)."""
        e = self.engine
        return (e.graph.nodes[nid].op in ("linear", "sparse_linear")
                and self.sums(nid) == 0)

    def charge(self, al: torch.Tensor, au: torch.Tensor,
               items: list[tuple[torch.Tensor, torch.Tensor | None, float]]) -> None:
        """Charge ``k eps |a| . v`` per item ``(v_l, v_u, k)`` (``v_u`` None: ``v_l``)."""
        with torch.no_grad():
            for v_l, v_u, k in items:
                cl = k * self.eps * _abs_dot(al, v_l)
                self.charge_l = self.charge_l + cl
                if v_u is None and au is al:
                    self.charge_u = self.charge_u + cl
                else:
                    v = v_l if v_u is None else v_u
                    self.charge_u = self.charge_u + k * self.eps * _abs_dot(au, v)

    def __call__(self, i: int, nl: torch.Tensor, nu: torch.Tensor) -> None:
        """Add ``nl`` / ``nu`` to node ``i``'s coefficients."""
        Al, Au = self.Al, self.Au
        ol, ou = Al.get(i), Au.get(i)
        if nl is nu and ol is ou:
            v = nl if ol is None else ol + nl
            Al[i] = v
            Au[i] = v
            return
        Al[i] = nl if ol is None else ol + nl
        Au[i] = nu if ou is None else ou + nu

    def charge_affine(self, node: Node, al: torch.Tensor, au: torch.Tensor) -> None:
        """The roundings of a backward step through an affine node."""
        e = self.engine
        g, op = e.graph, node.op
        if op == "concat":
            k = max(self.sums(i) for i in node.inputs)
            if k > 0:
                self.charge(al, au, [(torch.cat([self.zmax(i) for i in node.inputs], -1),
                                      None, k)])
            return
        z_in = self.zmax(node.inputs[0])
        if op in ("linear", "sparse_linear"):
            # |W| max|z_in| (+ |bias|: at least max|z| of this node, whose own product
            # rounding, when deferred here, is charged by the extra 1 in k)
            v = _abs_weight_apply(g, node, z_in, e.dtype, e.device)
            if node.attrs.get("bias") is not None:
                v = v + g.attr(node, "bias", e.dtype, e.device).abs()
            terms = node.size if op == "linear" else sparse_terms(node, "cols")
            k = terms + 2.0 + 1.0 + 1.0 + self.sums(node.inputs[0])
        elif op == "gather":
            idx = g.attr(node, "index", e.dtype, e.device)
            reps = int(torch.bincount(idx).max()) if idx.numel() else 0
            # no repeated index: a scatter, exact; r repeats: r - 1 additions
            v, k = z_in.index_select(-1, idx), float(max(reps - 1, 0)) + self.sums(node.inputs[0])
        elif op == "scale":
            coef = g.attr(node, "coef", e.dtype, e.device).abs()
            v, k = _times_off(coef, z_in), 1.0 + self.sums(node.inputs[0])
        elif op in ("add", "sub"):
            k = max(self.sums(i) for i in node.inputs)
            v = z_in + self.zmax(node.inputs[1])
        else:  # neg, reshape, add_const: the coefficients pass unchanged
            v, k = z_in, self.sums(node.inputs[0])
        if k > 0:  # copies into a node no other contribution is added to: exact
            self.charge(al, au, [(v, None, k)])


def _steepest(w1: torch.Tensor, w2: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """``max(|w1|, |w2|) * z``: what a product of a coefficient with either slope,
    times the values ``z >= 0``, is at most per unit of the coefficient."""
    return _times_off(torch.maximum(w1.detach().abs(), w2.detach().abs()), z)


def _times_off(w: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """``w * z`` for ``w, z >= 0`` with ``0 * inf = 0``."""
    return torch.where(w == 0, torch.zeros_like(z), w * z)


def _abs_weight_apply(g: Graph, node: Node, z: torch.Tensor, dtype: torch.dtype,
                      device: torch.device) -> torch.Tensor:
    """``|W| @ z`` per domain for ``z >= 0`` that may be infinite (``0 * inf = 0``)."""
    fin = torch.isfinite(z)
    zf = torch.where(fin, z, torch.zeros_like(z))
    inf = (~fin).to(dtype)
    if node.op == "linear":
        wa = g.attr(node, "weight", dtype, device).abs()
        out = zf @ wa.T
        hit = (inf @ (wa > 0).to(dtype).T) > 0 if not bool(fin.all()) else None
    else:
        out = sparse_forward_gather(g, node, zf, dtype, device, torch.abs)
        hit = None
        if not bool(fin.all()):
            hit = sparse_forward_gather(g, node, inf, dtype, device,
                                        lambda v: (v != 0).to(dtype)) > 0
    return out if hit is None else torch.where(hit, torch.full_like(out, torch.inf), out)


def _full(b: torch.Tensor, batch: int, m: int) -> torch.Tensor:
    return b.expand(batch, m).clone() if b.dim() < 2 or b.shape[0] != batch else b


def _batched(a: torch.Tensor, batch: int) -> torch.Tensor:
    return a.expand(batch, *a.shape[-2:]) if a.dim() == 2 else a

