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
from bab_ablation import CASES, instance


def timed(fn, x: torch.Tensor, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        xx = x.detach().requires_grad_(True)
        t = time.perf_counter()
        fn(xx).sum().backward()
        best = min(best, time.perf_counter() - t)
    return best


def main(argv: list[str] | None = None) -> int:
    from gridverify.ir.graph import sparse_forward, sparse_forward_gather

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--case", default="case300", choices=sorted(CASES))
    ap.add_argument("--batch", type=int, default=4096)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    g, lo, hi, _ = instance(args.case)
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
        t_idx = timed(lambda v, n=node: sparse_forward_gather(g, n, v, dt, dev), x,
                      args.repeats)
        tot_csr += t_csr
        tot_idx += t_idx
        print(f"| {node.name} | {n_in} -> {node.size} | {node.attrs['vals'].numel()} | "
              f"{t_csr:.4f} | {t_idx:.4f} | {t_idx / t_csr:.2f}x |")
    print(f"\nall sparse_linear nodes ({args.case}, batch {args.batch}, forward + backward): "
          f"CSR {tot_csr:.3f} s, index_add {tot_idx:.3f} s, ratio {tot_idx / tot_csr:.2f}x")
    lo_t, hi_t = torch.from_numpy(lo.copy()), torch.from_numpy(hi.copy())
    xt = lo_t + torch.rand(args.batch, lo_t.numel(), generator=gen, dtype=dt) * (hi_t - lo_t)
    t_all = timed(lambda v: g.evaluate_flat(v, dtype=dt), xt, args.repeats)
    print(f"whole graph forward + backward: {t_all:.3f} s "
          f"({args.batch / t_all:.0f} loads/s, one thread)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
