"""What factor regions change: ``certify`` over the training box and over loads that move
together, on the shipped relu proxies, in the same process.

Usage: ``python benchmarks/factor_regions.py [--cases case14,case57] [--regions
'box:0.9,1.1;scale:0.9,1.1;...'] [--method bab] [--timeout 120] [--jobs 1]``

Per proxy and region (the box first: the baseline), one ``certify`` run with the
given method and time limit for the whole certificate, one torch thread: the
search dimension, certified / violated / open counts, the summed gap (bound
minus worst found) over the constraints the bound does not certify, with its
ratio to the box's, the worst p_balance and thermal_fr bound against the worst
found, and the wall seconds.  Regions are separated by ``;`` (their own numbers
use commas).
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


def _family(cert, fam: str) -> str:
    rows = [c for c in cert.constraints if c.family == fam]
    if not rows:
        return "-"
    ub = max(c.upper_bound for c in rows)
    att = max(c.attained for c in rows)
    return f"{ub:.3g} ({att:.3g})"


def main(argv: list[str] | None = None) -> int:
    from gridverify.certify import CertifyOptions, certify
    from gridverify.certify.options import METHODS
    from gridverify.errors import GridverifyError
    from gridverify.spec import parse_region

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", type=_common.keys(CASES, "case"), default="case14,case57",
                    help=f"comma list of {', '.join(CASES)} (default %(default)s)")
    ap.add_argument("--regions",
                    default="box:0.9,1.1;scale:0.9,1.1;zones:0.9,1.1,4;zones:0.9,1.1,8;"
                            "load-factors:0.9,1.1;correlated:0.92,1.08,0.02",
                    help="regions separated by ';' (their numbers use commas), the "
                    "first the baseline (default %(default)s)")
    ap.add_argument("--method", default="bab", choices=METHODS,
                    help="certify method (default %(default)s)")
    ap.add_argument("--timeout", type=_common.positive_float, default=120.0,
                    help="seconds per certificate (default %(default)s)")
    ap.add_argument("--jobs", type=_common.count(1), default=1,
                    help="branch-and-bound searches side by side (default %(default)s)")
    a = ap.parse_args(argv)
    texts = [t.strip() for t in a.regions.split(";") if t.strip()]
    if not texts:
        ap.error("--regions: no region given")
    torch.set_num_threads(1)
    opts = CertifyOptions(timeout=a.timeout, jobs=a.jobs)
    print(f"method {a.method}, --timeout {a.timeout:g} s per certificate, --jobs {a.jobs}")
    print("| proxy | region | factors | certified / violated / open | summed gap (x box) "
          "| p_balance bound (found) | thermal_fr bound (found) | s |")
    print("|---|---|---|---|---|---|---|---|")
    for key in a.cases:
        case, proxy = case_and_proxy(key)
        base = None
        for text in texts:
            try:
                region = parse_region(text, case)
            except GridverifyError as exc:
                ap.error(f"--regions: {exc} (regions are separated by ';')")
            t0 = time.perf_counter()
            cert = certify(case, proxy, region, method=a.method, options=opts)
            dt = time.perf_counter() - t0
            counts = {s: sum(c.status == s for c in cert.constraints)
                      for s in ("certified", "violated", "open")}
            gap = float(sum(max(c.upper_bound - c.attained, 0.0)
                            for c in cert.constraints if c.status != "certified"))
            base = gap if base is None else base
            ratio = base / gap if gap > 0 else np.inf
            print(f"| {key}_relu | {text} | {region.n_search} | {counts['certified']} / "
                  f"{counts['violated']} / {counts['open']} | {gap:.4g} ({ratio:.3g}x) | "
                  f"{_family(cert, 'p_balance')} | {_family(cert, 'thermal_fr')} | {dt:.0f} |",
                  flush=True)
    return 0


if __name__ == "__main__":
    _common.run(main)
