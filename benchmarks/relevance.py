"""Relevance-restricted CROWN rows for a one-constraint spec: how much faster, same bounds?

Usage: ``python benchmarks/relevance.py [--cases case57,case118] [--repeats 3]``

For each shipped relu proxy composed with its whole physics graph (every
constraint), the spec is one constraint's rows (the first p_balance bus, the
first thermal_fr branch): ``compute_bounds`` with ``BoundOptions(relevance=False)``
(every entry of every intermediate node gets a CROWN row) against the default
``relevance=True`` (only the entries the spec depends on), CROWN and
alpha-CROWN, best of ``--repeats`` wall times, same process, one torch thread.
Prints the speed ratio and the difference of the two bounds, relative
(``|all - relevant| / max(1, |all|)``).

CROWN: the entries left out get zero coefficients in the spec's backward pass,
so the two bounds must agree to 1e-9 relative; a row that does not is marked
``MISMATCH`` and the script exits 1.  alpha-CROWN: the two bounds need not
agree (both are sound).  With every entry bounded, the rows of the entries the
spec cannot reach take part in the alpha optimization too, which changes the
gradient steps the optimizer takes over its fixed number of iterations, so it can
stop at a slightly different bound.  The difference is reported, not checked:
often at rounding level, but 5e-5 on case14 p_balance[0] (CROWN there: 1e-16).
"""

from __future__ import annotations

import argparse
import sys
import time

import _common
import torch

from gridverify.bounds import BoundOptions, compute_bounds


def main(argv: list[str] | None = None) -> int:
    from bab_ablation import CASES, constraint_spec, whole_instance

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", type=_common.keys(CASES, "case"), default="case57,case118",
                    help=f"comma-separated keys of bab_ablation.CASES ({', '.join(CASES)})")
    ap.add_argument("--families", type=_common.families, default="p_balance,thermal_fr")
    ap.add_argument("--repeats", type=_common.count(1), default=3)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    mismatches = 0
    print("| case | spec | method | all entries (s) | relevant entries (s) | speed-up | bound "
          "| difference (rel.) |")
    print("|---|---|---|---|---|---|---|---|")
    for case in args.cases:
        g, lo, hi, ph = whole_instance(case)
        for fam in args.families:
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
                diff = abs(u_all - u_rel) / max(1.0, abs(u_all))
                note = ""
                if method == "crown" and diff > 1e-9:
                    mismatches += 1
                    note = f" MISMATCH (all entries: {u_all:.9g})"
                print(f"| {case} | {fam}[0] | {method} | {t_all:.3f} | {t_rel:.3f} | "
                      f"{t_all / t_rel:.1f}x | {u_rel:.9g}{note} | {diff:.1e} |", flush=True)
    if mismatches:
        print(f"{mismatches} CROWN bound(s) differ by more than 1e-9 relative", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    _common.run(main)
