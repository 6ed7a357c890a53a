"""Branch-and-bound searches side by side: ``certify --method bab`` with 1 and N jobs.

Usage::

    python benchmarks/bab_jobs.py [--case case14] [--model models/case14_relu]
                                  [--jobs 1,2] [--timeout 120] [--bab-timeout 8]
                                  [--constraints p_balance,q_balance] [--md FILE]

Runs :func:`gridverify.certify` with method ``bab`` once per value of ``--jobs``
(one after the other in this process, the first value as the baseline), each
with the same one ``--timeout`` and one torch thread per search, and prints per
run: wall seconds, branch-and-bound row searches and the domains they bounded
(and both per second of branch-and-bound, as a ratio against the baseline), the
open / certified / violated counts, and the summed gap (bound minus worst found)
of the constraints that are not certified.  The question it answers: on a
machine with N free cores, how much more search does ``--jobs N`` buy within
the same budget, and what does it change in the certificate?  See
``docs/tightness.md``, "Searches side by side".

Prints markdown; ``--md`` also writes it to a file (atomically).
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import _common
import torch

from gridverify.bab import BabOptions
from gridverify.certify import CertifyOptions, certify
from gridverify.fileio import atomic_write_text
from gridverify.grid import load_compiled


def run(case: str, model: str, jobs: int, timeout: float, bab_timeout: float,
        constraints: str | None) -> dict:
    """One certify run; its figures."""
    opts = CertifyOptions(timeout=timeout, bab=BabOptions(timeout=bab_timeout), jobs=jobs)
    t0 = time.perf_counter()
    cert = certify(case, model, constraints=constraints, method="bab", options=opts)
    wall = time.perf_counter() - t0
    runs = cert.provenance["bab"]
    starts = [r["history"][0][0] for r in runs if r["history"]]
    bab_s = wall - min(starts) if starts else math.nan
    st = [c.status for c in cert.constraints]
    gap = sum(c.upper_bound - c.attained for c in cert.constraints if c.status != "certified")
    return {"jobs": jobs, "wall": wall, "bab_s": bab_s, "searches": len(runs),
            "domains": sum(r["domains"] for r in runs), "open": st.count("open"),
            "certified": st.count("certified"), "violated": st.count("violated"), "gap": gap}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--case", default="case14")
    ap.add_argument("--model", default=None, help="default: the shipped models/<case>_relu")
    ap.add_argument("--jobs", type=_common.number_list(), default="1,2",
                    help="comma list of job counts, the first the baseline")
    ap.add_argument("--timeout", type=_common.positive_float, default=120.0)
    ap.add_argument("--bab-timeout", type=_common.positive_float, default=8.0)
    ap.add_argument("--constraints", default=None)
    ap.add_argument("--md", default=None)
    a = ap.parse_args()
    _common.check_outputs(md=a.md)
    torch.set_num_threads(1)
    case = a.case if a.case.startswith("pglib") else f"pglib_opf_{a.case}_ieee"
    load_compiled(case, emit_warnings=False)  # an unknown case: one line now, not later
    if a.model is None:  # the shipped one, from any directory
        model = f"models/{a.case.replace('pglib_opf_', '').replace('_ieee', '')}_relu"
        path = str(_common.REPO / model)
        if not (_common.REPO / model).is_dir():
            ap.error(f"--case {a.case}: no shipped {model} (give --model)")
    else:
        model = path = a.model
    res = [run(case, path, j, a.timeout, a.bab_timeout, a.constraints) for j in a.jobs]
    base = res[0]
    lines = [f"`certify {case} --model {model} --method bab --timeout {a.timeout:g} "
             f"--bab-timeout {a.bab_timeout:g}`" + (f" (`{a.constraints}`)" if a.constraints
                                                   else ""), "",
             "| jobs | wall s | bab s | row searches | domains | searches/s vs jobs 1 | "
             "domains/s vs jobs 1 | open | certified | violated | summed gap, not certified |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in res:
        sr = (r["searches"] / r["bab_s"]) / (base["searches"] / base["bab_s"])
        dr = (r["domains"] / r["bab_s"]) / max(base["domains"] / base["bab_s"], 1e-300)
        lines.append(f"| {r['jobs']} | {r['wall']:.0f} | {r['bab_s']:.0f} | {r['searches']} | "
                     f"{r['domains']} | {sr:.2f}x | {dr:.2f}x | {r['open']} | "
                     f"{r['certified']} | {r['violated']} | {r['gap']:.4g} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if a.md:
        atomic_write_text(Path(a.md), text)
    return 0


if __name__ == "__main__":
    _common.run(main)
