"""Graph evaluation speed: batch size on the CPU, and ``sparse_linear`` products.

Usage: ``python benchmarks/graph_eval.py [--case case300] [--batch 4096] [--repeats 5]
[--batches 128,256,512,1024,3348]``.

Builds the composed certification graph (shipped relu proxy, every constraint)
of a case and measures, in the same process, one thread, float64:

* **batch**: loads per second of the graph's evaluator (``evaluate_flat``,
  feature-major values), forward plus the backward of one output entry per
  point (what the falsifier's objectives read), per batch size, against the
  last batch of ``--batches`` as the baseline (3,348: about what the falsifier
  used before it evaluated in :meth:`Graph.eval_chunk` chunks), and the chunk
  ``eval_chunk`` picks;
* **sparse_linear**: for every such node a forward plus backward pass on a random
  batch of its input with the CSR product the evaluator uses
  (:func:`gridverify.ir.graph.sparse_forward_fm`) against the gather/``index_add``
  form it replaced.

The layout change itself (feature-major against batch-major values) was
measured when it was made: docs/scaling.md.
"""

from __future__ import annotations

import argparse
import time

import _common
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


def batch_table(g, lo, hi, batches: list[int], repeats: int) -> None:
    """Loads per second, forward plus backward of one output entry per point."""
    dt = torch.float64
    gen = torch.Generator().manual_seed(1)
    lo_t, hi_t = torch.from_numpy(lo.copy()), torch.from_numpy(hi.copy())
    chunk = g.eval_chunk(dt, "cpu")
    print(f"eval_chunk (CPU, float64): {chunk} points")
    rates = {}
    for b in sorted({*batches, chunk}):
        x = lo_t + torch.rand(b, lo_t.numel(), generator=gen, dtype=dt) * (hi_t - lo_t)
        sel = torch.randint(0, g.output_size, (b, 1), generator=gen)
        t = timed(lambda v, s=sel: g.evaluate_flat(v, dtype=dt).gather(1, s), x, repeats)
        rates[b] = b / t
    base = batches[-1]
    print(f"| batch | loads/s | vs batch {base} |")
    print("|---|---|---|")
    for b, r in rates.items():
        print(f"| {b}{' (eval_chunk)' if b == chunk else ''} | {r:.0f} | {r / rates[base]:.2f}x |")


def main(argv: list[str] | None = None) -> int:
    from gridverify.ir.graph import sparse_forward_fm, sparse_forward_gather

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--case", default="case300", choices=sorted(CASES))
    ap.add_argument("--batch", type=_common.count(1), default=4096)
    ap.add_argument("--repeats", type=_common.count(1), default=5)
    ap.add_argument("--batches", type=_common.number_list(), default="128,256,512,1024,3348",
                    help="batch sizes of the batch table (the last one is the baseline)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    g, lo, hi, _ = instance(args.case)
    batch_table(g, lo, hi, args.batches, args.repeats)
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
        sparse_forward_fm(g, node, x.T, dt, dev)  # build the cached CSR matrices
        t_csr = timed(lambda v, n=node: sparse_forward_fm(g, n, v.T, dt, dev), x, args.repeats)
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
    _common.run(main)
