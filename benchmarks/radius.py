"""What the radius stage of ``certify`` costs and what it says, on the shipped relu proxies.

Usage: ``python benchmarks/radius.py [--cases case57,case118] [--repeats 1]``

Per proxy, ``certify`` (default method alpha-crown, training region, one torch
thread) three ways in the same process, alternating: ``radius=False``, the
ladder alone (``radius_steps=0``) and the default bisection steps after it;
prints the best wall times, their ratios to the run without the radius and, of
the open and violated constraints, how many got a radius (the largest box about
the region's centre, a fraction of its half-widths, on which CROWN certifies
them) with the smallest and median radius, ladder and refined, and how many
radii the bisection steps raised.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402
from bab_ablation import CASES, case_and_proxy  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    from gridverify.certify import CertifyOptions, certify
    from gridverify.spec import box_region

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", type=_common.keys(CASES, "case"), default="case57,case118",
                    help=f"comma list of {', '.join(CASES)}")
    ap.add_argument("--repeats", type=_common.count(1), default=1)
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    steps = CertifyOptions().radius_steps
    runs = {"none": CertifyOptions(radius=False), "ladder": CertifyOptions(radius_steps=0),
            "refined": CertifyOptions()}
    print(f"| proxy | s: no radius / ladder / ladder + {steps} steps | ratios | "
          "open with a radius (min / median), ladder -> refined "
          "| violated with a radius (min / median), ladder -> refined | radii the steps "
          "raised |")
    print("|---|---|---|---|---|---|")
    for key in a.cases:
        case, proxy = case_and_proxy(key)
        region = box_region(case, 0.9, 1.1)
        # warm-up (imports, first graph builds) outside the timed runs
        certify(case, proxy, region, constraints="vm_max[1]",
                options=CertifyOptions(samples=8, radius=False))
        best = dict.fromkeys(runs, np.inf)
        certs = {}
        for _ in range(a.repeats):
            for kind, opts in runs.items():
                t0 = time.perf_counter()
                certs[kind] = certify(case, proxy, region, options=opts)
                best[kind] = min(best[kind], time.perf_counter() - t0)
        cells = []
        for status in ("open", "violated"):
            parts = []
            for kind in ("ladder", "refined"):
                rows = [c for c in certs[kind].constraints if c.status == status]
                got = [c.radius for c in rows if c.radius is not None]
                stats = f" ({min(got):.3g} / {float(np.median(got)):.3g})" if got else ""
                parts.append(f"{len(got)} of {len(rows)}{stats}")
            cells.append(" -> ".join(parts))
        raised = sum(a.radius is not None and b.radius is not None and b.radius > a.radius
                     for a, b in zip(certs["ladder"].constraints, certs["refined"].constraints))
        cells.append(f"{raised} raised")
        t = best["none"]
        print(f"| {key}_relu | {t:.1f} / {best['ladder']:.1f} / {best['refined']:.1f} | "
              f"{best['ladder'] / t:.3f} / {best['refined'] / t:.3f} | {cells[0]} | "
              f"{cells[1]} | {cells[2]} |", flush=True)
    return 0


if __name__ == "__main__":
    _common.run(main)
