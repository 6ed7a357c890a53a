"""What the radius stage of ``certify`` costs and what it says, on the shipped relu proxies.

Usage: ``python benchmarks/radius.py [--cases case57,case118] [--repeats 1]``

Per proxy, ``certify`` (default method alpha-crown, training region, one torch
thread) with ``CertifyOptions(radius=False)`` and ``radius=True`` in the same
process, alternating; prints the best wall times, their ratio and, of the open
and violated constraints, how many got a radius (the largest box about the
region's centre, a fraction of its half-widths, on which CROWN certifies them)
with the smallest and median radius.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bab_ablation import CASES  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    from gridverify.certify import CertifyOptions, certify
    from gridverify.grid import load_compiled
    from gridverify.proxy.load import load_proxy
    from gridverify.spec import box_region

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", default="case57,case118")
    ap.add_argument("--repeats", type=int, default=1)
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    print("| proxy | s without / with radius | ratio | open with a radius (min / median) "
          "| violated with a radius (min / median) |")
    print("|---|---|---|---|---|")
    for key in a.cases.split(","):
        name, model = CASES[key]
        case = load_compiled(name, emit_warnings=False)
        proxy = load_proxy(model, case=case)
        region = box_region(case, 0.9, 1.1)
        best = {False: np.inf, True: np.inf}
        cert = None
        for _ in range(a.repeats):
            for radius in (False, True):
                t0 = time.perf_counter()
                c = certify(case, proxy, region, options=CertifyOptions(radius=radius))
                best[radius] = min(best[radius], time.perf_counter() - t0)
                if radius:
                    cert = c
        assert cert is not None
        cells = []
        for status in ("open", "violated"):
            rows = [c for c in cert.constraints if c.status == status]
            got = [c.radius for c in rows if c.radius is not None]
            stats = f" ({min(got):.3g} / {float(np.median(got)):.3g})" if got else ""
            cells.append(f"{len(got)} of {len(rows)}{stats}")
        print(f"| {key}_relu | {best[False]:.1f} / {best[True]:.1f} | "
              f"{best[True] / best[False]:.3f} | {cells[0]} | {cells[1]} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
