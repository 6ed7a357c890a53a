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

import torch

from gridverify.bounds.crown import Engine, LinearBounds
from gridverify.bounds.ibp import node_relaxation
from gridverify.ir.graph import Node
from gridverify.ir.ops import OPS


def _init_alphas(engine: Engine, targets: list[int]) -> dict[tuple[int, int], torch.Tensor]:
    """Initial alphas of every nonlinear node that feeds ``targets``, per stream."""
    g = engine.graph
    reach = g.ancestors(targets)
    alphas: dict[tuple[int, int], torch.Tensor] = {}
    for node in g.nodes:
        if node.id not in reach or not OPS[node.op].nonlinear:
            continue
        if node.op == "mul":
            lx = engine.bounds[node.inputs[0]][0]
            a0 = torch.full((2, *lx.shape), 0.5, dtype=engine.dtype, device=engine.device)
        else:
            rel = node_relaxation(node)
            if not rel.n_alpha or rel.init_alpha is None:
                continue
            l, u = engine.bounds[node.inputs[0]]
            a0 = rel.init_alpha(l, u).to(dtype=engine.dtype, device=engine.device)
        for stream in (0, 1):
            alphas[(node.id, stream)] = a0.detach().clone().requires_grad_(True)
    return alphas


def optimize_alpha(
    engine: Engine,
    starts: dict[int, torch.Tensor],
    crown_lower: torch.Tensor,
    crown_upper: torch.Tensor,
    crown_lin: LinearBounds | None = None,
    return_A: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, LinearBounds | None]:
    """Optimize alphas for the bounds of ``starts`` (after ``compute_intermediate``).

    Returns the best lower and upper bounds per domain and row (never looser
    than ``crown_lower``/``crown_upper``) and, with ``return_A``, the linear
    bounds of the iteration with the best summed objective (sound, though per
    row possibly looser than the returned bounds).
    """
    opts = engine.options
    alphas = _init_alphas(engine, list(starts))
    best_l = crown_lower.detach().clone()
    best_u = crown_upper.detach().clone()
    best_lin = crown_lin
    if not alphas or opts.alpha_iterations == 0:
        return best_l, best_u, best_lin
    params = list(alphas.values())
    optim = _Optimizer(params, opts.alpha_lr, opts.optimizer)

    def relax(node: Node, stream: int) -> object:
        a = alphas.get((node.id, stream))
        if a is None:
            return engine.default_relax(node, stream)
        return engine.relax_with(node, a)

    best_obj = float((crown_upper - crown_lower).sum())
    m = crown_lower.shape[1]
    chunk = engine.row_chunk()
    for _ in range(opts.alpha_iterations):
        for p in params:
            p.grad = None
        # one backward pass (and one autograd graph) per chunk of spec rows
        los, his, lins = [], [], []
        finite = True
        for r0 in range(0, m, chunk):
            part = {k: a[..., r0:r0 + chunk, :] for k, a in starts.items()}
            lo, hi, lin = engine.backward(part, relax, return_A=return_A)
            loss = hi.sum() - lo.sum()
            finite = finite and bool(torch.isfinite(loss))
            if finite and loss.requires_grad:
                loss.backward()
            los.append(lo.detach())
            his.append(hi.detach())
            lins.append(lin)
        lo, hi = torch.cat(los, 1), torch.cat(his, 1)
        best_l = torch.maximum(best_l, torch.nan_to_num(lo, nan=-torch.inf))
        best_u = torch.minimum(best_u, torch.nan_to_num(hi, nan=torch.inf))
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
        optim.step()
    return best_l, best_u, best_lin


class _Optimizer:
    """Adam (or SGD with momentum) followed by projection onto [0, 1].

    Written here rather than taken from ``torch.optim``, whose import pulls in
    the compiler stack (seconds of start-up) for a few lines of arithmetic.
    """

    def __init__(self, params: list[torch.Tensor], lr: float, kind: str) -> None:
        self.params, self.lr, self.kind = params, lr, kind
        self.m = [torch.zeros_like(p) for p in params]
        self.v = [torch.zeros_like(p) for p in params]
        self.t = 0

    @torch.no_grad()
    def step(self) -> None:
        self.t += 1
        b1, b2, eps = 0.9, 0.999, 1e-8
        for p, m, v in zip(self.params, self.m, self.v):
            g = p.grad
            if g is None:
                continue
            g = torch.nan_to_num(g, nan=0.0, posinf=0.0, neginf=0.0)
            if self.kind == "adam":
                m.mul_(b1).add_(g, alpha=1 - b1)
                v.mul_(b2).addcmul_(g, g, value=1 - b2)
                mhat = m / (1 - b1**self.t)
                vhat = v / (1 - b2**self.t)
                p.sub_(self.lr * mhat / (vhat.sqrt() + eps))
            else:
                m.mul_(0.9).add_(g)
                p.sub_(self.lr * m)
            p.clamp_(0.0, 1.0)
