"""alpha-CROWN: CROWN's final backward pass with relaxation parameters optimized.

Choice of parameters: every nonlinear node on a path to the outputs gets its own
alphas per domain and neuron, ``(n_alpha, B, size)`` (the relaxation table's
``init_alpha`` shape; ``(2, B, size)`` for products), *shared by all spec rows*
(memory stays linear in the spec size), and two independent sets: one for the
lower bounds and one for the upper bounds.  The intermediate bounds are CROWN's,
or, with ``BoundOptions(intermediate="alpha-crown")``, optimized the same way
node by node during the forward sweep (each node's bounds with fresh alphas of
its own ancestors, so later nodes are relaxed on the tightened intervals).
Adam (or SGD) maximizes the summed lower bounds and minimizes the summed upper
bounds; after each step the alphas are projected to [0, 1].  The best bound
seen per output over the iterations is kept, starting from CROWN's own
bounds, so alpha-CROWN is never looser than CROWN.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

import torch

from gridverify.bounds.crown import Engine, LinearBounds
from gridverify.bounds.ibp import nan_as, node_relaxation
from gridverify.ir.graph import Node
from gridverify.ir.ops import OPS


def alphas_per_entry(node: Node) -> int:
    """How many alphas a nonlinear node's relaxation takes per entry of its input
    (0: none; products take 2, one per operand's line)."""
    if node.op == "mul":
        return 2
    rel = node_relaxation(node)
    return rel.n_alpha if rel.n_alpha and rel.init_alpha is not None else 0


def _init_alphas(engine: Engine, targets: list[int],
                 warm: Mapping[int, torch.Tensor] | None = None
                 ) -> dict[tuple[int, int], torch.Tensor]:
    """Initial alphas of every nonlinear node that feeds ``targets``, per stream.

    ``warm``: ``{node: (n_alpha, B, size)}`` starts of the upper stream (e.g. the
    parent domain's optimized alphas); any value in [0, 1] is sound, so a start
    of the right shape is taken as is (clamped; NaN entries: the default start),
    others are ignored.
    """
    g = engine.graph
    reach = g.ancestors(targets)
    alphas: dict[tuple[int, int], torch.Tensor] = {}
    for node in g.nodes:
        if node.id not in reach or not OPS[node.op].nonlinear or not alphas_per_entry(node):
            continue
        if node.op == "mul":
            lx = engine.bounds[node.inputs[0]][0]
            a0 = torch.full((2, *lx.shape), 0.5, dtype=engine.dtype, device=engine.device)
        else:
            l, u = engine.bounds[node.inputs[0]]
            a0 = node_relaxation(node).init_alpha(l, u).to(dtype=engine.dtype, device=engine.device)
        for stream in (0, 1):
            a = a0
            w = None if (warm is None or stream == 0) else warm.get(node.id)
            if w is not None and w.shape == a0.shape:
                w = w.to(a0)
                a = torch.where(torch.isnan(w), a0, w.clamp(0.0, 1.0))
            alphas[(node.id, stream)] = a.detach().clone().requires_grad_(True)
    return alphas


Splits = Mapping[int, tuple[torch.Tensor, torch.Tensor]]


def alpha_rows(engine: Engine, nid: int, spec: torch.Tensor, cl: torch.Tensor,
               cu: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Alpha-optimized bounds of ``spec @ value(nid)`` during the forward sweep.

    The ``refine`` hook of :class:`~gridverify.bounds.crown.Engine` for
    ``intermediate="alpha-crown"``: never looser than CROWN's ``cl``/``cu``; the
    relaxations built meanwhile are on final input intervals (the sweep is in
    graph order).  Linear bounds kept for ``linear_nodes`` stay CROWN's (sound,
    if looser).  Past ``engine.deadline`` CROWN's are kept as they are (an
    optimization would still run one iteration, a CROWN pass, per node).
    """
    if engine.deadline is not None and time.monotonic() >= engine.deadline:
        return cl, cu
    with torch.enable_grad():
        al, au, _ = optimize_alpha(engine, {nid: spec}, cl, cu)
    return al.detach(), au.detach()


def _beta_starts(starts: dict[int, torch.Tensor], betas: dict[int, tuple], m: int,
                 batch: int) -> tuple[dict[int, object], torch.Tensor, torch.Tensor]:
    """Start coefficients with the dualized split terms, and their constant offsets.

    For split constraints ``lo <= z <= hi`` of a node ``z`` and multipliers
    ``bl, bu >= 0`` (one set per stream), every point of the domain satisfies
    ``c.y <= c.y + bu (hi - z) + bl (z - lo)`` and
    ``c.y >= c.y - bu' (hi - z) - bl' (z - lo)``: the upper stream starts with
    ``bl - bu`` at ``z`` and the offset ``bu.hi - bl.lo``, the lower stream with
    ``bu' - bl'`` and the offset ``bl'.lo - bu'.hi``.  Any multipliers >= 0 give
    sound bounds.
    """
    out: dict[int, object] = dict(starts)
    cu = torch.zeros((), dtype=torch.float64)
    cl = torch.zeros((), dtype=torch.float64)
    for nid, (lo, hi, (bl_l, bu_l, bl_u, bu_u)) in betas.items():
        wl = (bu_l - bl_l)[:, None, :].expand(batch, m, lo.shape[-1])
        wu = (bl_u - bu_u)[:, None, :].expand(batch, m, lo.shape[-1])
        prev = out.get(nid)
        if prev is None:
            out[nid] = (wl, wu)
        else:  # a split node that is also a start (an output)
            pl, pu = prev if isinstance(prev, tuple) else (prev, prev)
            out[nid] = (pl + wl, pu + wu)
        tu = torch.cat([bu_u * hi, -bl_u * lo], -1)
        tl = torch.cat([bl_l * lo, -bu_l * hi], -1)
        # rounding of the sums (and of the running total), outward
        eps = torch.finfo(tu.dtype).eps
        cu = cu + tu.sum(-1, keepdim=True)
        cu = cu + (tu.shape[-1] + 2) * eps * (tu.abs().sum(-1, keepdim=True) + cu.abs())
        cl = cl + tl.sum(-1, keepdim=True)
        cl = cl - (tl.shape[-1] + 2) * eps * (tl.abs().sum(-1, keepdim=True) + cl.abs())
    return out, cl, cu


def _add_outward(x: torch.Tensor, c: torch.Tensor, side: float) -> torch.Tensor:
    """``x + c`` moved by its rounding towards ``side`` (+1 up, -1 down)."""
    eps = torch.finfo(x.dtype).eps
    return x + c + side * eps * (x.abs() + c.abs())


def _init_betas(splits: Splits, warm: Mapping[int, torch.Tensor] | None
                ) -> dict[int, tuple]:
    """Multipliers ``(bl_lower, bu_lower, bl_upper, bu_upper)`` per split node.

    Entries whose split end is infinite keep a zero multiplier (masked) so the
    offset stays finite.  ``warm``: a ``(4, B, size)`` start per node.
    """
    betas: dict[int, tuple] = {}
    for nid, (lo, hi) in splits.items():
        fin_lo, fin_hi = torch.isfinite(lo), torch.isfinite(hi)
        lo0 = torch.where(fin_lo, lo, torch.zeros_like(lo))
        hi0 = torch.where(fin_hi, hi, torch.zeros_like(hi))
        w = None if warm is None else warm.get(nid)
        if w is None or w.shape[1:] != lo.shape:
            w = torch.zeros(4, *lo.shape, dtype=lo.dtype, device=lo.device)
        ps = tuple(w[k].detach().clone().requires_grad_(True) for k in range(4))
        betas[nid] = (lo0, hi0, ps, (fin_lo, fin_hi))
    return betas


def optimize_alpha(
    engine: Engine,
    starts: dict[int, torch.Tensor],
    crown_lower: torch.Tensor,
    crown_upper: torch.Tensor,
    crown_lin: LinearBounds | None = None,
    return_A: bool = False,
    splits: Splits | None = None,
    sides: str = "both",
    warm: Mapping[int, torch.Tensor] | None = None,
    iterations: int | None = None,
    beta_lr: float | None = None,
    warm_alphas: Mapping[int, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, LinearBounds | None]:
    """Optimize alphas (and split multipliers) for the bounds of ``starts``.

    Call after ``compute_intermediate``.  Returns the best lower and upper bounds
    per domain and row (never looser than ``crown_lower``/``crown_upper``) and,
    with ``return_A``, the linear bounds of the iteration with the best summed
    objective (sound, though per row possibly looser than the returned bounds).

    ``splits``: ``{node id: (lo, hi)}`` with ``(B, size)`` constraints that every
    point of each domain satisfies (branch-and-bound splits, beta-CROWN style):
    they are dualized with multipliers optimized jointly with the alphas, which
    lets a split tighten every bound of its domain, not only the split node's
    relaxation.  ``sides``: ``"both"``, ``"upper"`` or ``"lower"``: which bounds
    the objective improves.  ``warm``: initial multipliers per split node (the
    ``(4, B, size)`` tensors of ``engine.warm_betas`` after a previous call);
    the final multipliers are left in ``engine.warm_betas``.  ``iterations`` and
    ``beta_lr`` (the multipliers' step) default to the options' alpha values.
    ``warm_alphas``: initial alphas of the upper stream per nonlinear node
    (``(n_alpha, B, size)``, ``engine.warm_alphas`` after a previous call); the
    final ones are left in ``engine.warm_alphas``.
    """
    opts = engine.options
    n_iter = opts.alpha_iterations if iterations is None else iterations
    alphas = _init_alphas(engine, list(starts), warm_alphas)
    betas = _init_betas(splits or {}, warm)
    best_l = crown_lower.detach().clone()
    best_u = crown_upper.detach().clone()
    best_lin = crown_lin
    beta_params = [p for _, _, ps, _ in betas.values() for p in ps]
    if (not alphas and not beta_params) or n_iter == 0:
        return best_l, best_u, best_lin
    optim = ProjectedAdam(
        [(list(alphas.values()), 0.0, 1.0, opts.alpha_lr),
         (beta_params, 0.0, None, opts.alpha_lr if beta_lr is None else beta_lr)],
        opts.optimizer,
    )

    def relax(node: Node, stream: int) -> object:
        a = alphas.get((node.id, stream))
        if a is None:
            return engine.default_relax(node, stream)
        return engine.relax_with(node, a)

    best_obj = float((crown_upper - crown_lower).sum())
    m = crown_lower.shape[1]
    chunk = engine.row_chunk()
    w_lo = 0.0 if sides == "upper" else 1.0
    w_hi = 0.0 if sides == "lower" else 1.0
    for _ in range(n_iter):
        optim.zero_grad()
        # one backward pass (and one autograd graph) per chunk of spec rows
        los, his, lins = [], [], []
        finite = True
        for r0 in range(0, m, chunk):
            part = {k: a[..., r0:r0 + chunk, :] for k, a in starts.items()}
            mk = next(iter(part.values())).shape[-2]
            masked = {n: (lo, hi, tuple(p * f for p, f in zip(ps, (fl, fh, fl, fh))))
                      for n, (lo, hi, ps, (fl, fh)) in betas.items()}
            full, c_lo, c_hi = _beta_starts(part, masked, mk, engine.batch)
            lo, hi, lin = engine.backward(full, relax, return_A=return_A)
            if betas:  # the dualized splits' offsets (none without splits)
                lo, hi = _add_outward(lo, c_lo, -1.0), _add_outward(hi, c_hi, 1.0)
                if lin is not None:
                    lin.lbias = _add_outward(lin.lbias, c_lo, -1.0)
                    lin.ubias = _add_outward(lin.ubias, c_hi, 1.0)
            loss = w_hi * hi.sum() - w_lo * lo.sum()
            finite = finite and bool(torch.isfinite(loss))
            if finite and loss.requires_grad:
                loss.backward()
            los.append(lo.detach())
            his.append(hi.detach())
            lins.append(lin)
        lo, hi = torch.cat(los, 1), torch.cat(his, 1)
        best_l = torch.maximum(best_l, nan_as(lo, -torch.inf))
        best_u = torch.minimum(best_u, nan_as(hi, torch.inf))
        if not finite:
            break
        obj = float((hi - lo).sum())
        if return_A and obj < best_obj:
            best_obj = obj
            best_lin = LinearBounds(
                {k: torch.cat([x.lA[k] for x in lins], 1).detach() for k in lins[0].lA},
                torch.cat([x.lbias for x in lins], 1).detach(),
                {k: torch.cat([x.uA[k] for x in lins], 1).detach() for k in lins[0].uA},
                torch.cat([x.ubias for x in lins], 1).detach(),
            )
        if engine.deadline is not None and time.monotonic() >= engine.deadline:
            break  # out of time: the best bounds so far are sound
        optim.step()
    engine.warm_betas = {n: torch.stack([p.detach() for p in ps])
                         for n, (_, _, ps, _) in betas.items()}
    engine.warm_alphas = {nid: a.detach() for (nid, stream), a in alphas.items() if stream == 1}
    return best_l, best_u, best_lin


class ProjectedAdam:
    """Adam (or SGD with momentum) followed by projection onto a box per group.

    ``groups``: ``(params, lower, upper, step)`` with ``None`` for no limit (alphas
    live in [0, 1], split multipliers in [0, inf)).  Written here rather than taken
    from ``torch.optim``, whose import pulls in the compiler stack (seconds of
    start-up) for a few lines of arithmetic.
    """

    def __init__(self,
                 groups: list[tuple[list[torch.Tensor], float | None, float | None, float]],
                 kind: str = "adam") -> None:
        self.groups = groups
        self.kind = kind
        self.params = [p for ps, _, _, _ in groups for p in ps]
        self.m = [torch.zeros_like(p) for p in self.params]
        self.v = [torch.zeros_like(p) for p in self.params]
        self.t = 0

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        self.t += 1
        b1, b2, eps = 0.9, 0.999, 1e-8
        k = 0
        for ps, lo, hi, lr in self.groups:
            for p in ps:
                m, v = self.m[k], self.v[k]
                k += 1
                g = p.grad
                if g is None:
                    continue
                g = torch.nan_to_num(g, nan=0.0, posinf=0.0, neginf=0.0)
                if self.kind == "adam":
                    m.mul_(b1).add_(g, alpha=1 - b1)
                    v.mul_(b2).addcmul_(g, g, value=1 - b2)
                    mhat = m / (1 - b1**self.t)
                    vhat = v / (1 - b2**self.t)
                    p.sub_(lr * mhat / (vhat.sqrt() + eps))
                else:
                    m.mul_(0.9).add_(g)
                    p.sub_(lr * m)
                p.clamp_(lo, hi)
