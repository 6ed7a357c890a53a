"""Graph evaluation speed: the evaluators' layout and batch size, and ``sparse_linear``.

Usage: ``python benchmarks/graph_eval.py [--case case300] [--batch 4096] [--repeats 5]
[--batches 128,256,512,1024,3348]``.

Builds the composed certification graph (shipped relu proxy, every constraint)
of a case and measures, in the same process, one thread, float64:

* **layout and batch**: forward plus backward (one output entry per point, as
  the falsifier's objectives read them) of the whole graph per batch size, with
  the graph's evaluator (feature-major values, ``forward_node_fm``) against the
  batch-major evaluation it replaced (``forward_node`` node by node, the
  baseline); loads per second of both, their ratio, and the batch
  :meth:`Graph.eval_chunk` picks for the CPU;
* **sparse_linear**: for every such node a forward plus backward pass on a random
  batch of its input with the batch-major CSR product
  (:func:`gridverify.ir.graph.sparse_forward`) and the gather/``index_add``
  form it replaced.
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


def batch_major_flat(g, x: torch.Tensor, dt: torch.dtype) -> torch.Tensor:
    """The baseline evaluator: every node batch-major ``(B, size)`` (``forward_node``)."""
    from gridverify.ir.graph import forward_node

    inputs, batch, device = g._prepare_inputs(x, dt, None)
    vals: dict[int, torch.Tensor] = {}
    for node in g.nodes:
        vals[node.id] = inputs[node.id] if node.op == "input" else forward_node(
            g, node, [vals[i] for i in node.inputs], batch, dt, device)
    return torch.cat([vals[o] for o in g.outputs], dim=-1)


def layout_table(g, lo, hi, batches: list[int], repeats: int) -> None:
    """Loads per second, forward plus backward of one output entry per point."""
    dt = torch.float64
    gen = torch.Generator().manual_seed(1)
    lo_t, hi_t = torch.from_numpy(lo.copy()), torch.from_numpy(hi.copy())
    print(f"eval_chunk (CPU, float64): {g.eval_chunk(dt, 'cpu')} points")
    print("| batch | batch-major loads/s | feature-major loads/s | ratio |")
    print("|---|---|---|---|")
    for b in batches:
        x = lo_t + torch.rand(b, lo_t.numel(), generator=gen, dtype=dt) * (hi_t - lo_t)
        sel = torch.randint(0, g.output_size, (b, 1), generator=gen)
        rates = []
        for flat in (lambda v: batch_major_flat(g, v, dt),
                     lambda v: g.evaluate_flat(v, dtype=dt)):
            t = timed(lambda v, f=flat, s=sel: f(v).gather(1, s), x, repeats)
            rates.append(b / t)
        print(f"| {b} | {rates[0]:.0f} | {rates[1]:.0f} | {rates[1] / rates[0]:.2f}x |")


def main(argv: list[str] | None = None) -> int:
    from gridverify.ir.graph import sparse_forward, sparse_forward_gather

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--case", default="case300", choices=sorted(CASES))
    ap.add_argument("--batch", type=int, default=4096)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--batches", default="128,256,512,1024,3348",
                    help="batch sizes of the layout table")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    g, lo, hi, _ = instance(args.case)
    layout_table(g, lo, hi, [int(b) for b in args.batches.split(",")], args.repeats)
    print()
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
