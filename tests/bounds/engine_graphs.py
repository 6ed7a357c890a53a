"""Graphs for the bound-engine tests and benchmarks: random all-op graphs and
ACOPF-proxy-shaped graphs (an MLP with a sigmoid head feeding a physics block)."""

from __future__ import annotations

import math

import numpy as np
import torch

from gridverify.ir import Graph, GraphBuilder


def mlp_physics_graph(
    n_in: int,
    hidden: tuple[int, ...],
    n_out: int,
    n_branch: int,
    seed: int = 0,
    activation: str = "relu",
) -> Graph:
    """An ACOPF-proxy-shaped graph.

    MLP ``n_in -> hidden -> n_out`` (``activation`` between layers, sigmoid
    head), outputs split into bus voltage magnitudes ``vm`` in [0.9, 1.1], angles
    ``va`` in [-0.5, 0.5] and generator set points; then for ``n_branch`` random
    branches: ``w = vm_f*vm_t``, ``cos``/``sin`` of ``va_f - va_t``, flows
    ``p = g vm_f^2 - w (g cos + b sin)``, ``q = ...``, bus balances (sparse sums
    of flows minus generation) and squared apparent flows ``p^2 + q^2``.
    """
    rng = np.random.default_rng(seed)
    n_bus = max(2, (n_out * 3) // 8)
    n_gen = n_out - 2 * n_bus
    assert n_gen >= 1, "n_out too small"
    b = GraphBuilder()
    x = b.input("load", n_in)
    h = x
    width = n_in
    for k, w in enumerate(hidden):
        wt = rng.normal(size=(w, width)) * math.sqrt(2.0 / width)
        h = b.linear(h, wt, rng.normal(size=w) * 0.1, name=f"fc{k}")
        h = getattr(b, activation)(h)
        width = w
    wt = rng.normal(size=(n_out, width)) * math.sqrt(1.0 / width)
    z = b.sigmoid(b.linear(h, wt, rng.normal(size=n_out) * 0.1, name="head"))
    scale = np.concatenate([np.full(n_bus, 0.2), np.full(n_bus, 1.0), np.full(n_gen, 2.0)])
    shift = np.concatenate([np.full(n_bus, 0.9), np.full(n_bus, -0.5), np.zeros(n_gen)])
    y = b.add_const(b.scale(z, scale), shift, name="proxy_out")
    vm = b.slice(y, 0, n_bus)
    va = b.slice(y, n_bus, 2 * n_bus)
    pg = b.slice(y, 2 * n_bus, n_out)
    # a connected random branch list
    f = np.array([rng.integers(0, i) if i > 0 else 0 for i in range(1, n_bus)] +
                 list(rng.integers(0, n_bus, size=max(0, n_branch - n_bus + 1))))[:n_branch]
    t = np.array(list(range(1, n_bus)) +
                 list(rng.integers(0, n_bus, size=max(0, n_branch - n_bus + 1))))[:n_branch]
    t = np.where(t == f, (t + 1) % n_bus, t)
    nb = len(f)
    gc = rng.uniform(0.5, 2.0, nb)
    bc = -rng.uniform(2.0, 10.0, nb)
    vm_f, vm_t = b.gather(vm, f), b.gather(vm, t)
    d = b.sparse_linear(va, np.r_[np.arange(nb), np.arange(nb)], np.r_[f, t],
                        np.r_[np.ones(nb), -np.ones(nb)], nb, name="angle_diff")
    c, s = b.cos(d), b.sin(d)
    w = b.mul(vm_f, vm_t, name="w")
    wc, ws = b.mul(w, c), b.mul(w, s)
    vf2 = b.square(vm_f)
    p = b.sub(b.scale(vf2, gc), b.add(b.scale(wc, gc), b.scale(ws, bc)), name="p_flow")
    q = b.add(b.scale(vf2, -bc), b.sub(b.scale(wc, bc), b.scale(ws, gc)), name="q_flow")
    gen_bus = rng.integers(0, n_bus, size=n_gen)
    bal = b.sparse_linear(
        b.concat([p, pg]),
        np.r_[f, gen_bus], np.arange(nb + n_gen), np.r_[np.ones(nb), -np.ones(n_gen)],
        n_bus, bias=rng.uniform(-0.5, 0.5, n_bus), name="p_balance",
    )
    smax = b.add(b.square(p), b.square(q), name="s2")
    b.output(y, "proxy")
    b.output(bal, "balance")
    b.output(smax, "flow2")
    return b.build()


def acopf_small(seed: int = 0) -> Graph:
    """The ACOPF-like graph of the acceptance tests: MLP 22->32->32->32->38, 20 branches."""
    return mlp_physics_graph(22, (32, 32, 32), 38, 20, seed=seed)


def random_graph(seed: int, n_in: int = 4, depth: int = 5, width: int = 6) -> Graph:
    """A random graph mixing every builder op, ``depth`` layers of ops."""
    rng = np.random.default_rng(seed)
    b = GraphBuilder()
    x = b.input("x", n_in)
    y = b.input("y", 2)
    cur = b.linear(x, rng.normal(size=(width, n_in)), rng.normal(size=width) * 0.3)
    ops = ["relu", "sigmoid", "tanh", "erf", "sin", "cos", "exp", "square", "pow3", "pow4",
           "reciprocal", "sqrt", "floor", "mul", "add", "sub", "neg", "scale", "clamp",
           "maximum", "minimum", "gather", "concat", "sum", "sparse", "div", "atan"]
    pool = [cur]
    for _ in range(depth):
        for op in rng.choice(ops, size=3, replace=False):
            a = pool[int(rng.integers(len(pool)))]
            # keep magnitudes moderate: squash through a linear + tanh first
            a = b.linear(a, rng.normal(size=(width, width)) / math.sqrt(width),
                         rng.normal(size=width) * 0.2)
            other = b.tanh(pool[int(rng.integers(len(pool)))])
            if op == "relu":
                r = b.relu(a)
            elif op == "sigmoid":
                r = b.sigmoid(a)
            elif op == "tanh":
                r = b.tanh(a)
            elif op == "erf":
                r = b.erf(b.scale(a, 1.5))
            elif op == "atan":
                r = b.unary("atan", b.scale(a, 2.0))
            elif op == "sin":
                r = b.sin(b.scale(a, 2.0))
            elif op == "cos":
                r = b.cos(a)
            elif op == "exp":
                r = b.exp(b.tanh(a))
            elif op == "square":
                r = b.square(a)
            elif op == "pow3":
                r = b.pow(b.tanh(a), 3)
            elif op == "pow4":
                r = b.pow(b.tanh(a), 4)
            elif op == "reciprocal":
                r = b.reciprocal(b.add_const(b.square(b.tanh(a)), 0.5))
            elif op == "sqrt":
                r = b.sqrt(b.add_const(b.unary("softplus", b.scale(a, 3.0)), 0.1))
            elif op == "floor":
                r = b.floor(b.scale(a, 2.0))
            elif op == "mul":
                r = b.mul(b.tanh(a), other)
            elif op == "add":
                r = b.add(a, other)
            elif op == "sub":
                r = b.sub(a, other)
            elif op == "neg":
                r = b.neg(a)
            elif op == "scale":
                r = b.scale(a, rng.normal(size=width))
            elif op == "clamp":
                r = b.clamp(a, -0.5, 0.5)
            elif op == "maximum":
                r = b.maximum(a, other)
            elif op == "minimum":
                r = b.minimum(a, other)
            elif op == "gather":
                r = b.gather(a, rng.integers(0, width, size=width))
            elif op == "concat":
                r = b.slice(b.reshape(b.concat([a, other]), (2, width)), 0, 2 * width, 2)
            elif op == "sum":
                r = b.add(a, b.gather(b.sum(other), np.zeros(width, dtype=np.int64)))
            elif op == "sparse":
                k = 2 * width
                r = b.sparse_linear(a, rng.integers(0, width, k), rng.integers(0, width, k),
                                    rng.normal(size=k), width, bias=rng.normal(size=width))
            else:  # div
                r = b.div(a, b.add_const(b.sigmoid(other), 0.5))
            pool.append(r)
        cur = b.add(pool[-1], b.add(pool[-2], pool[-3]))
        pool.append(cur)
    yy = b.gather(b.sigmoid(y), np.arange(width) % 2)
    # a non-convex piecewise-linear op (fixed kinks: the rng stream above is unchanged)
    kinked = b.pwl(cur, [-1.0, 0.0, 0.5, 2.0], [1.0, -2.0, 1.5, -0.5], 0.3, 0.1)
    b.output(b.mul(b.tanh(kinked), yy), "out")
    b.output(b.sum(b.cos(cur)), "total")
    return b.build()


def sample_box(lo: torch.Tensor, hi: torch.Tensor, n: int, seed: int = 0) -> torch.Tensor:
    """``n`` uniform samples per domain, including the corners' midpoint: ``(B, n, d)``."""
    gen = torch.Generator().manual_seed(seed)
    r = torch.rand(lo.shape[0], n, lo.shape[1], generator=gen, dtype=torch.float64)
    r[:, 0] = 0.5
    return lo.double().unsqueeze(1) + (hi - lo).double().unsqueeze(1) * r


def pgd_extremes(g: Graph, lo: torch.Tensor, hi: torch.Tensor, steps: int = 60,
                 restarts: int = 4, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-domain min and max of every output found by projected gradient ascent.

    Returns ``(B, n_out)`` min and max (float64).
    """
    gen = torch.Generator().manual_seed(seed)
    n_out = g.output_size
    mins, maxs = [], []
    for k in range(lo.shape[0]):
        l, u = lo[k].double(), hi[k].double()
        best_min = torch.full((n_out,), math.inf, dtype=torch.float64)
        best_max = torch.full((n_out,), -math.inf, dtype=torch.float64)
        for sign in (1.0, -1.0):
            x = l + (u - l) * torch.rand(restarts, n_out, l.numel(), generator=gen,
                                         dtype=torch.float64)
            step = (u - l) / 10
            eye = torch.eye(n_out, dtype=torch.float64)
            for it in range(steps):
                x = x.detach().requires_grad_(True)
                v = g.evaluate_flat(x.reshape(-1, l.numel())).reshape(restarts, n_out, n_out)
                obj = (v * eye).sum(-1)  # output j for row j
                (sign * obj).sum().backward()
                with torch.no_grad():
                    own = obj.detach()
                    if sign > 0:
                        best_max = torch.maximum(best_max, own.max(0).values)
                    else:
                        best_min = torch.minimum(best_min, own.min(0).values)
                    gs = torch.nan_to_num(x.grad).sign()
                    x = torch.minimum(torch.maximum(x + step * gs * (0.97 ** it), l), u)
        mins.append(best_min)
        maxs.append(best_max)
    return torch.stack(mins), torch.stack(maxs)
