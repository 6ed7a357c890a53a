"""Which entries of which nodes can move an objective: element-level relevance.

A spec often reads a few entries of a wide output (one bus of a balance
vector), yet every intermediate node would be bounded in full.  CROWN rows for
the entries that cannot reach the objective are wasted work: their relaxations
get zero coefficients in every backward pass.  :func:`relevant_entries` finds,
for every node, the entries that ``spec @ outputs`` structurally depends on: a
reverse sweep of boolean masks, where a nonlinear (elementwise) op passes its
mask to its inputs entry by entry and an affine op passes it through the
sparsity of its Jacobian (read with autograd at a random point with random
positive weights, so an entry is dropped only where the Jacobian is zero).

Values never enter, so the map holds on every sub-box.  It is only a *work*
hint: an entry left out keeps its interval (IBP) bounds, which are sound.
"""

from __future__ import annotations

import torch

from gridverify.bounds.selection import RowSelection
from gridverify.ir.graph import Graph, forward_node_fm
from gridverify.ir.ops import OPS

__all__ = ["relevant_entries"]


def relevant_entries(graph: Graph, spec: torch.Tensor | RowSelection, *,
                     seed: int = 0) -> dict[int, torch.Tensor]:
    """Boolean mask ``(size,)`` per node id of the entries ``spec @ outputs`` depends on.

    ``spec`` ``(m, n_out)`` (or ``(B, m, n_out)``) over the concatenated outputs,
    or a :class:`~gridverify.bounds.selection.RowSelection`.  Memory and time
    are linear in the graph (one boolean mask per node, one autograd pass per
    affine node at a single point).
    """
    dt, dev = torch.float64, torch.device("cpu")
    if isinstance(spec, RowSelection):
        used = spec.used()
    else:
        sp = spec.detach().to(dev, dt)
        used = (sp != 0).reshape(-1, sp.shape[-1]).any(0)
    need = {n.id: torch.zeros(n.size, dtype=torch.bool) for n in graph.nodes}
    off = 0
    for o in graph.outputs:
        sz = graph.nodes[o].size
        need[o] |= used[off:off + sz]
        off += sz
    gen = torch.Generator().manual_seed(seed)
    for node in reversed(graph.nodes):
        mask = need[node.id]
        if node.op in ("input", "constant") or not bool(mask.any()):
            continue
        info = OPS[node.op]
        if info.nonlinear:  # elementwise: entry k reads entry k of every input
            for i in node.inputs:
                size = graph.nodes[i].size
                need[i] |= mask if size == mask.numel() else mask.any().expand(size)
            continue
        xs = [torch.randn(graph.nodes[i].size, 1, generator=gen, dtype=dt).requires_grad_(True)
              for i in node.inputs]  # one point, feature-major
        with torch.enable_grad():
            y = forward_node_fm(graph, node, xs, 1, dt, dev).reshape(-1)
            w = (0.5 + torch.rand(mask.numel(), generator=gen, dtype=dt)) * mask
            grads = torch.autograd.grad((y * w).sum(), xs, allow_unused=True)
        for i, g in zip(node.inputs, grads):
            if g is not None:
                need[i] |= g.reshape(-1) != 0
    return need
