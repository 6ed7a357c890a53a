"""Graph evaluation speed of ``sparse_linear``: cached CSR matmul against ``index_add``.

Usage: ``python benchmarks/graph_eval.py [--case case300] [--batch 4096] [--repeats 5]``.

Builds the composed certification graph (shipped relu proxy, every constraint)
of a case and, for every ``sparse_linear`` node, times a forward plus backward
pass on a random float64 batch of its input with the two implementations in
the same process: the one :func:`gridverify.ir.graph.sparse_forward` uses
(CSR) and the gather/``index_add`` form it replaced.  Prints per-node and total
seconds and the ratio; also times a whole-graph forward plus backward.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

CASES = {
    "case14": ("pglib_opf_case14_ieee", "models/case14_relu"),
    "case57": ("pglib_opf_case57_ieee", "models/case57_relu"),
    "case118": ("pglib_opf_case118_ieee", "models/case118_relu"),
    "case300": ("pglib_opf_case300_ieee", "models/case300_relu"),
}


def build(case_key: str):
    from gridverify.grid import load_compiled
    from gridverify.ir import from_torch
    from gridverify.physics.acp import build_physics_graph, compose_with_proxy
    from gridverify.proxy.load import load_proxy
    from gridverify.spec.constraints import ConstraintSelection, select_constraints
    from gridverify.spec.region import box_region

    name, model = CASES[case_key]
    case = load_compiled(name, emit_warnings=False)
    prox = load_proxy(model, case=case)
    ph = build_physics_graph(case, select_constraints(case, ConstraintSelection()))
    reg = box_region(case, 0.9, 1.1)
    return compose_with_proxy(ph, from_torch(prox.module, input_size=reg.n_input)), reg


def index_add_forward(graph, node, x: torch.Tensor) -> torch.Tensor:
    dt, dev = x.dtype, x.device
    rows = graph.attr(node, "rows", dt, dev)
    cols = graph.attr(node, "cols", dt, dev)
    vals = graph.attr(node, "vals", dt, dev)
    y = x.new_zeros(*x.shape[:-1], node.size)
    y.index_add_(-1, rows, x.index_select(-1, cols) * vals)
    return y


def timed(fn, x: torch.Tensor, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        xx = x.detach().requires_grad_(True)
        t = time.perf_counter()
        fn(xx).sum().backward()
        best = min(best, time.perf_counter() - t)
    return best


def main(argv: list[str] | None = None) -> int:
    from gridverify.ir.graph import sparse_forward

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--case", default="case300", choices=sorted(CASES))
    ap.add_argument("--batch", type=int, default=4096)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    g, reg = build(args.case)
    dt, dev = torch.float64, torch.device("cpu")
    gen = torch.Generator().manual_seed(0)
    tot_csr = tot_idx = 0.0
    print("| node | in -> out | nnz | CSR s | index_add s | ratio |")
    print("|---|---|---|---|---|---|")
    for node in g.nodes:
        if node.op != "sparse_linear":
            continue
        n_in = g.nodes[node.inputs[0]].size
        x = torch.randn(args.batch, n_in, generator=gen, dtype=dt)
        sparse_forward(g, node, x, dt, dev)  # build the cached CSR matrix
        t_csr = timed(lambda v, n=node: sparse_forward(g, n, v, dt, dev), x, args.repeats)
        t_idx = timed(lambda v, n=node: index_add_forward(g, n, v), x, args.repeats)
        tot_csr += t_csr
        tot_idx += t_idx
        print(f"| {node.name} | {n_in} -> {node.size} | {node.attrs['vals'].numel()} | "
              f"{t_csr:.4f} | {t_idx:.4f} | {t_idx / t_csr:.2f}x |")
    print(f"\nall sparse_linear nodes ({args.case}, batch {args.batch}, forward + backward): "
          f"CSR {tot_csr:.3f} s, index_add {tot_idx:.3f} s, ratio {tot_idx / tot_csr:.2f}x")
    x = reg.lower + torch.rand(args.batch, reg.n_input, generator=gen, dtype=dt).numpy() * (
        reg.upper - reg.lower)
    xt = torch.from_numpy(x)
    t_all = timed(lambda v: g.evaluate_flat(v, dtype=dt), xt, args.repeats)
    print(f"whole graph forward + backward: {t_all:.3f} s "
          f"({args.batch / t_all:.0f} loads/s, one thread)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
