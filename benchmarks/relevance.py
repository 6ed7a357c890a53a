"""Relevance-restricted CROWN rows: the same bounds for a one-constraint spec, how much faster.

Usage: ``python benchmarks/relevance.py [--cases case57,case118] [--repeats 3]``

For each shipped relu proxy composed with its whole physics graph (every
constraint), the spec is one constraint's rows (the first p_balance bus, the
first thermal_fr branch): ``compute_bounds`` with ``BoundOptions(relevance=False)``
(every entry of every intermediate node gets a CROWN row) against the default
``relevance=True`` (only the entries the spec depends on), CROWN and
alpha-CROWN, best of ``--repeats`` wall times, same process, one torch thread.
Checks the two bounds agree (to 1e-9 relative) and prints the speed ratio.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

from gridverify.bounds import BoundOptions, compute_bounds


def main(argv: list[str] | None = None) -> int:
    from bab_ablation import constraint_spec, whole_instance

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", default="case57,case118")
    ap.add_argument("--families", default="p_balance,thermal_fr")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    print("| case | spec | method | all entries (s) | relevant entries (s) | speed-up | bound |")
    print("|---|---|---|---|---|---|---|")
    for case in args.cases.split(","):
        g, lo, hi, ph = whole_instance(case)
        for fam in args.families.split(","):
            spec = constraint_spec(g, ph, fam)
            for method in ("crown", "alpha-crown"):
                res = {}
                for rel in (False, True):
                    best, ub = float("inf"), None
                    for _ in range(args.repeats):
                        t0 = time.perf_counter()
                        r = compute_bounds(g, lo, hi, method=method, spec=spec,
                                           options=BoundOptions(relevance=rel))
                        best = min(best, time.perf_counter() - t0)
                        ub = float(r.upper.max())
                    res[rel] = (best, ub)
                (t_all, u_all), (t_rel, u_rel) = res[False], res[True]
                same = abs(u_all - u_rel) <= 1e-9 * max(1.0, abs(u_all))
                note = "" if same else f" (all entries: {u_all:.6g})"
                print(f"| {case} | {fam}[0] | {method} | {t_all:.3f} | {t_rel:.3f} | "
                      f"{t_all / t_rel:.1f}x | {u_rel:.6g}{note} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
