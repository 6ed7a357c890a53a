"""Branching heuristics: which input or which neuron to split, and where.

A decision per domain is ``(kind, index, point)``: ``kind`` 0 splits input
``index`` at ``point``, 1 splits the flat split-node entry ``index`` (see
:mod:`gridverify.bab.bounding`) at ``point``, -1 means nothing left to split.
Decisions are taken right after a domain is bounded, while its coefficients
are at hand, and stored with the domain (three numbers).

Heuristics
----------
* ``input``: score ``|a_i| (u_i - l_i)`` with ``a`` the linear coefficients of
  the domain's upper bound w.r.t. the inputs; split at the midpoint.
* ``bbps`` (GenBaB's bound propagation with shortcuts, interval shortcut): for
  every candidate neuron and each child, re-relax only the consumers of that
  neuron on the child's interval, combine the new lines with the coefficient
  ``a`` of the upper bound at the consumer's output (``a+`` times the upper
  line plus ``a-`` times the lower line), and concretize the line over the
  child's interval of the neuron (the shortcut: the rest of the bound is taken
  as fixed).  The estimated change of the bound is the worse child's change;
  the score is its decrease.
* ``babsr``: the same, intercepts only (slopes ignored), in the spirit of BaBSR.
* ``widest``: the widest interval among the splittable neurons.
* ``auto``: ``input`` for graphs with few inputs, else ``babsr`` (on the
  shipped case14/case57 proxies the intercept score beat this BBPS at equal
  CPU time; see ``benchmarks/bab_ablation.py``).

A neuron is splittable when its point lies strictly inside its interval (for
relu: the interval contains 0 strictly).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from gridverify.bab.bounding import Bounder, DomainBounds
from gridverify.bab.points import PointTable, kink_points, split_points
from gridverify.bounds.ibp import node_relaxation
from gridverify.bounds.relaxations import relax_mul

__all__ = ["Decisions", "choose", "input_scores", "neuron_points", "neuron_scores",
           "relu_unstable", "resolve_branching"]

INPUT, NEURON, NONE = 0, 1, -1


@dataclass
class Decisions:
    """One branching decision per domain (CPU tensors): kind, index, point."""

    kind: torch.Tensor
    index: torch.Tensor
    point: torch.Tensor


def resolve_branching(name: str, n_in: int, input_split_max_dim: int, n_flat: int,
                      relu_unstable: tuple[int, int] | None = None,
                      stable_fraction: float = 0.95, decision: bool = True,
                      rows: int | None = None, always_dim: int = 0) -> str:
    """The heuristic ``auto`` stands for on a graph with ``n_in`` inputs.

    Input splitting when there is no split node.  When ``relu_unstable =
    (unstable, total)`` (the relu neurons whose root interval contains 0, of all
    relu neurons) is known and the graph has relus, it decides: a network stable
    over the region (at least ``stable_fraction`` of its relus, as proxies trained
    with ``--stability-weight``) splits inputs (splitting a neuron then only
    narrows a smooth op's interval, and the looseness of the smooth relaxations
    shrinks with the width of the box); otherwise relu neurons are split (BaBSR-like
    score), whatever the input size: a relu relaxation's error shrinks only
    linearly with the box, so input splitting stalls on unstable relu networks
    even with few inputs (on a case14 relu proxy's open VNN-COMP balance
    property: input splitting open after 30 s, neuron splitting certified in 2 s).
    In optimization mode (``decision=False``: the whole gap to the worst value
    must shrink, not a threshold be reached) on a spec of several ``rows`` (those
    still above the level; ``None``: not known), graphs with at most
    ``input_split_max_dim`` inputs split inputs anyway: every relaxation error of
    every row shrinks with the box, where a neuron split removes one error in one
    domain, and the rows need different neurons (case14_relu p_balance, all 28
    rows, 60 CPU s: gap 1.49x smaller by input splitting, 1.35x by neuron
    splitting).  One row is the opposite case: the neurons its bound depends on
    are the ones split (case14_relu, the loosest p_balance row, 60 CPU s: 2.06x
    by neuron splitting, 1.48x by input splitting).  Without relu information (or
    without relus): input splitting for at most ``input_split_max_dim`` inputs,
    else the BaBSR-like score.

    Whatever the relus, graphs with at most ``always_dim`` inputs split inputs:
    in few dimensions each split narrows a large share of the box, and the relus
    along it stabilise within a few splits (the open constraints of certify over
    factor regions, 10 s per constraint, decision mode: case14_relu
    ``scale:0.9,1.1``, one input, 16 of 16 certified in 11 s by input splitting, 9
    by neuron splitting in 99 s; case57_relu the same, 42 of 42 in 30 s against 5
    in 401 s; case14_relu ``correlated:0.9,1.1,0.02``, 12 inputs, 3 of 10 against
    0 of 10).
    """
    if name != "auto":
        return name
    if n_flat == 0 or n_in <= always_dim:
        return "input"
    if relu_unstable is not None and relu_unstable[1] > 0:
        if not decision and rows != 1 and n_in <= input_split_max_dim:
            return "input"
        unstable, total = relu_unstable
        return "input" if unstable <= (1.0 - stable_fraction) * total else "babsr"
    if n_in <= input_split_max_dim:
        return "input"
    return "babsr"


def relu_unstable(bounder: Bounder, ilo: torch.Tensor, ihi: torch.Tensor) -> tuple[int, int]:
    """``(unstable, total)`` relu neurons of the first domain of ``(B, F)`` intervals."""
    unstable = total = 0
    for nid, off in bounder.offsets.items():
        if not any(c.op == "relu" for c in bounder.consumers[nid]):
            continue
        sz = bounder.graph.nodes[nid].size
        lo, hi = ilo[0, off:off + sz], ihi[0, off:off + sz]
        total += sz
        unstable += int(((lo < 0) & (hi > 0)).sum())
    return unstable, total


def _node_op(bounder: Bounder, nid: int) -> str:
    """The op whose branching point a split node uses (relu wins, else a unary consumer)."""
    ops = [c.op for c in bounder.consumers[nid]]
    if "relu" in ops:
        return "relu"
    for op in ops:
        if op != "mul":
            return op
    return "mul"


def _kinked_consumer(bounder: Bounder, nid: int):  # noqa: ANN202 - Node | None
    """The consumer of a split node with per-entry kinks (``OpInfo.kinks``), if any."""
    for c in bounder.consumers[nid]:
        if c.op != "relu" and c.info.kinks is not None:
            return c
    return None


def neuron_points(bounder: Bounder, ilo: torch.Tensor, ihi: torch.Tensor,
                  tables: dict[str, PointTable] | None) -> torch.Tensor:
    """Branching point of every flat entry ``(B, F)``."""
    pts = torch.empty_like(ilo)
    for nid, off in bounder.offsets.items():
        sz = bounder.graph.nodes[nid].size
        sl = slice(off, off + sz)
        op = _node_op(bounder, nid)
        kinked = None if op == "relu" else _kinked_consumer(bounder, nid)
        if kinked is not None:
            pts[:, sl] = kink_points(kinked.attrs[kinked.info.kinks], kinked.attrs["weights"],
                                     ilo[:, sl], ihi[:, sl])
        else:
            pts[:, sl] = split_points(op, ilo[:, sl], ihi[:, sl], tables)
    return pts


def _line_max(a: torch.Tensor, lw, lb, uw, ub, lo, hi, intercept_only: bool) -> torch.Tensor:
    ap, an = a.clamp(min=0), a.clamp(max=0)
    b = ap * ub + an * lb
    if intercept_only:
        return b
    s = ap * uw + an * lw
    return b + torch.maximum(s * lo, s * hi)


def neuron_scores(bounder: Bounder, db: DomainBounds, pts: torch.Tensor,
                  heuristic: str,
                  box: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """Score ``(B, F)`` of splitting each flat entry (``-inf``: not splittable).

    ``box``: the domains' input boxes ``(B, n_in)`` (default ``db.box``), the
    intervals of product operands that are graph inputs."""
    box = box if box is not None else db.box
    lo_all, hi_all = db.ilo, db.ihi
    B, F = lo_all.shape
    valid = (pts > lo_all) & (pts < hi_all) & torch.isfinite(lo_all) & torch.isfinite(hi_all)
    if heuristic == "widest":
        touched = torch.zeros_like(valid)
        for nid, off in bounder.offsets.items():
            sz = bounder.graph.nodes[nid].size
            for c in bounder.consumers[nid]:
                a = (db.coef or {}).get(c.id)
                if a is not None:
                    touched[:, off:off + sz] |= a != 0
        score = torch.where(valid & touched, hi_all - lo_all, torch.full_like(lo_all, -torch.inf))
        return score
    if heuristic == "bbps" and db.lin is not None and db.box is not None:
        score = _bbps(bounder, db, pts, valid)
        score = torch.nan_to_num(score, nan=-torch.inf, posinf=-torch.inf)
        return torch.where(valid, score, torch.full_like(score, -torch.inf))
    io = heuristic == "babsr"
    dl = torch.zeros_like(lo_all)
    dr = torch.zeros_like(lo_all)
    nodes = bounder.graph.nodes
    for nid, off in bounder.offsets.items():
        sz = nodes[nid].size
        sl = slice(off, off + sz)
        l, u, p = lo_all[:, sl], hi_all[:, sl], pts[:, sl]
        p = torch.where(valid[:, sl], p, (l + u) / 2)
        for c in bounder.consumers[nid]:
            a = (db.coef or {}).get(c.id)
            if a is None:
                continue
            if c.op == "mul":
                x, y = c.inputs
                other = y if x == nid else x
                ol, ou = _interval(bounder, db, other, B, box)

                def t_mul(nl, nu, _x=x, _ol=ol, _ou=ou, _a=a, _nid=nid):
                    if _x == _nid:
                        r = relax_mul(nl, nu, _ol, _ou)
                        lx, ux, ly, uy = nl, nu, _ol, _ou
                    else:
                        r = relax_mul(_ol, _ou, nl, nu)
                        lx, ux, ly, uy = _ol, _ou, nl, nu
                    ap, an = _a.clamp(min=0), _a.clamp(max=0)
                    b = ap * r.ub + an * r.lb
                    if io:
                        return b
                    sx = ap * r.uwx + an * r.lwx
                    sy = ap * r.uwy + an * r.lwy
                    return (b + torch.maximum(sx * lx, sx * ux)
                            + torch.maximum(sy * ly, sy * uy))

                tp, tl, tr = t_mul(l, u), t_mul(l, p), t_mul(p, u)
            else:
                rel = node_relaxation(c)

                def t_un(nl, nu, _rel=rel, _a=a):
                    r = _rel.relax(nl, nu, None)
                    return _line_max(_a, r.lw, r.lb, r.uw, r.ub, nl, nu, io)

                tp, tl, tr = t_un(l, u), t_un(l, p), t_un(p, u)
            dl[:, sl] += tl - tp
            dr[:, sl] += tr - tp
    score = -torch.maximum(dl, dr)
    score = torch.nan_to_num(score, nan=-torch.inf, posinf=-torch.inf)
    return torch.where(valid, score, torch.full_like(score, -torch.inf))


def _rows(S: torch.Tensor, lin: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """Linear upper bound of ``S * x`` per entry: coefficient rows ``(B, size, n)``, offsets."""
    lA, lb, uA, ub = lin
    sp, sn = S.clamp(min=0), S.clamp(max=0)
    return sp[..., None] * uA + sn[..., None] * lA, sp * ub + sn * lb


def _bbps(bounder: Bounder, db: DomainBounds, pts: torch.Tensor,
          valid: torch.Tensor) -> torch.Tensor:
    """BBPS: estimated bound decrease of the worse child, per flat entry ``(B, F)``.

    Per nonlinear consumer ``c`` with coefficient ``a`` at its output, the
    contribution ``a+ * upper line + a- * lower line`` of all its entries is
    written as a linear function of the inputs through the saved linear bounds
    of its operands (the shortcuts) and concretized jointly on the input box;
    a candidate's child replaces that entry's lines by the lines re-relaxed on
    the child's interval and is concretized the same way.
    """
    lo_box, hi_box = db.box
    cen = ((lo_box + hi_box) / 2)[:, None, :]
    rad = ((hi_box - lo_box) / 2)[:, None, :]
    imp_l = torch.zeros_like(pts)
    imp_r = torch.zeros_like(pts)
    nodes = bounder.graph.nodes
    lin = db.lin
    for c in bounder.nonlinear:
        a = (db.coef or {}).get(c.id)
        if a is None or not bool((a != 0).any()):
            continue
        if any(i not in bounder.offsets for i in c.inputs):
            continue
        ap, an = a.clamp(min=0), a.clamp(max=0)
        ivs = {}
        for i in c.inputs:
            o = bounder.offsets[i]
            sl = slice(o, o + nodes[i].size)
            p = torch.where(valid[:, sl], pts[:, sl], (db.ilo[:, sl] + db.ihi[:, sl]) / 2)
            ivs[i] = (db.ilo[:, sl], db.ihi[:, sl], p, sl)

        def lines(bnd: dict[int, tuple[torch.Tensor, torch.Tensor]], _c=c, _ap=ap, _an=an):
            """Per operand slope ``S`` and the intercept of ``a``-weighted lines on ``bnd``."""
            if _c.op == "mul":
                x, y = _c.inputs
                r = relax_mul(*bnd[x], *bnd[y])
                return ({x: _ap * r.uwx + _an * r.lwx, y: _ap * r.uwy + _an * r.lwy},
                        _ap * r.ub + _an * r.lb)
            r = node_relaxation(_c).relax(*bnd[_c.inputs[0]], None)
            return {_c.inputs[0]: _ap * r.uw + _an * r.lw}, _ap * r.ub + _an * r.lb

        base_bnd = {i: (v[0], v[1]) for i, v in ivs.items()}
        S0, b0 = lines(base_bnd)
        rows0 = {i: _rows(S0[i], lin[i]) for i in S0}
        R0 = sum(r[0] for r in rows0.values())  # (B, size, n)
        k0 = sum(r[1] for r in rows0.values()) + b0  # (B, size)
        G = R0.sum(1, keepdim=True)  # (B, 1, n)
        K = k0.sum(1, keepdim=True)
        phi = K[:, 0] + (G * cen).sum(-1)[:, 0] + (G.abs() * rad).sum(-1)[:, 0]  # (B,)
        for i, (l, u, p, sl) in ivs.items():
            for side, acc in ((0, imp_l), (1, imp_r)):
                bnd = dict(base_bnd)
                bnd[i] = (l, p) if side == 0 else (p, u)
                S1, b1 = lines(bnd)
                rows1 = {j: _rows(S1[j], lin[j]) for j in S1}
                R1 = sum(r[0] for r in rows1.values())
                k1 = sum(r[1] for r in rows1.values()) + b1
                Gj = G - R0 + R1  # (B, size, n)
                Kj = K - k0 + k1
                phij = Kj + (Gj * cen).sum(-1) + (Gj.abs() * rad).sum(-1)
                acc[:, sl] += phi[:, None] - phij
    return torch.minimum(imp_l, imp_r)


def _interval(bounder: Bounder, db: DomainBounds, nid: int, B: int,
              box: tuple[torch.Tensor, torch.Tensor] | None
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """The domains' intervals ``(B, size)`` of a product's operand: a split node's
    computed interval, a graph input's part of the box, a constant's value."""
    g = bounder.graph
    size = g.nodes[nid].size
    off = bounder.offsets.get(nid)
    if off is not None:
        return db.ilo[:, off:off + size], db.ihi[:, off:off + size]
    node = g.nodes[nid]
    if node.op == "constant":
        v = node.attrs["value"].to(db.ilo).reshape(1, -1).expand(B, size)
        return v, v
    if node.op == "input" and box is not None:
        start = sum(g.nodes[i].size for i in g.inputs[:g.inputs.index(nid)])
        lo, hi = box
        return (lo[:, start:start + size].to(db.ilo), hi[:, start:start + size].to(db.ilo))
    raise KeyError(nid)  # pragma: no cover - split nodes, inputs and constants only


def input_scores(db: DomainBounds, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """Score ``(B, n_in)`` of splitting each input (``-inf`` for zero-width inputs)."""
    w = (hi - lo).to(db.input_coef)
    s = db.input_coef.abs() * w
    return torch.where(w > 0, s, torch.full_like(s, -torch.inf))


def choose(bounder: Bounder, db: DomainBounds, lo: torch.Tensor, hi: torch.Tensor,
           heuristic: str, tables: dict[str, PointTable] | None) -> Decisions:
    """Branching decisions for freshly bounded domains (``heuristic`` resolved, not auto)."""
    B = lo.shape[0]
    lo = lo.to(db.ilo)
    hi = hi.to(db.ilo)
    kind = torch.full((B,), NONE, dtype=torch.int64, device=lo.device)
    index = torch.zeros(B, dtype=torch.int64, device=lo.device)
    point = torch.zeros(B, dtype=lo.dtype, device=lo.device)
    if heuristic != "input" and bounder.n_flat:
        pts = neuron_points(bounder, db.ilo, db.ihi, tables)
        sc = neuron_scores(bounder, db, pts, heuristic, (lo, hi))
        best, idx = sc.max(1)
        if heuristic in ("bbps", "babsr"):
            # no estimated gain: fall back to the widest splittable interval
            weak = ~(best > 0)
            if bool(weak.any()):
                sw = neuron_scores(bounder, db, pts, "widest", (lo, hi))
                bw, iw = sw.max(1)
                idx = torch.where(weak & torch.isfinite(bw), iw, idx)
                best = torch.where(weak, bw, best)
        ok = torch.isfinite(best)
        kind = torch.where(ok, torch.full_like(kind, NEURON), kind)
        index = torch.where(ok, idx, index)
        point = torch.where(ok, pts.gather(1, idx[:, None])[:, 0], point)
    need_input = kind == NONE
    if bool(need_input.any()) and db.input_coef is not None:
        si = input_scores(db, lo, hi)
        # a zero coefficient still allows a split of a non-degenerate input
        si = torch.where(torch.isfinite(si), si + 1e-300 * (hi - lo), si)
        best, idx = si.max(1)
        ok = need_input & torch.isfinite(best)
        mid = ((lo + hi) / 2).gather(1, idx[:, None])[:, 0]
        kind = torch.where(ok, torch.full_like(kind, INPUT), kind)
        index = torch.where(ok, idx, index)
        point = torch.where(ok, mid, point)
    return Decisions(kind.cpu(), index.cpu(), point.cpu())
