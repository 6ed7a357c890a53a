"""How ``certify`` should split a short ``--timeout`` between the bounds and the attack.

Usage: ``python benchmarks/time_split.py [--cases case300] [--timeouts 20,35]
[--shares 1,0.75,0.5]``

Per proxy and timeout, ``certify`` (default method alpha-crown, training region,
one torch thread) with each ``bounds_time_share`` (the share of the time left
that the bound stages may take when an attack follows; 1: all of it, as before
the option existed), in the same process: wall seconds of the bound and attack
stages, how many constraints end certified, violated and open, and per family
with a thermal or balance limit the worst violation found (what the attack adds
to the samples' finds) and the largest bound.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402
from bab_ablation import CASES, case_and_proxy  # noqa: E402

FAMILIES = ("p_balance", "thermal_fr", "angle_max")


def main(argv: list[str] | None = None) -> int:
    from gridverify.certify import CertifyOptions, certify
    from gridverify.spec import box_region

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", type=_common.keys(CASES, "case"), default="case300",
                    help=f"comma list of {', '.join(CASES)}")
    ap.add_argument("--timeouts", type=_common.number_list(_common.positive_float),
                    default="20,35", help="comma list of --timeout seconds")
    ap.add_argument("--shares", type=_common.number_list(_share), default="1,0.75,0.5",
                    help="comma list of bounds_time_share values in (0, 1]")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    print("| proxy | timeout s | bounds share | bounds s / attack s | certified / violated "
          "/ open | " + " | ".join(f"{f} found / bound" for f in FAMILIES) + " |")
    print("|---|---|---|---|---|" + "---|" * len(FAMILIES))
    for key in a.cases:
        case, proxy = case_and_proxy(key)
        region = box_region(case, 0.9, 1.1)
        certify(case, proxy, region, constraints="vm_max[1]",  # warm-up, not timed
                options=CertifyOptions(samples=8, radius=False))
        for timeout in a.timeouts:
            for share in a.shares:
                opts = replace(CertifyOptions(timeout=timeout), bounds_time_share=share)
                cert = certify(case, proxy, region, options=opts)
                laps = cert.provenance["stage_seconds"]
                n = Counter(c.status for c in cert.constraints)
                cells = []
                for fam in FAMILIES:
                    rows = [c for c in cert.constraints if c.family == fam]
                    if rows:
                        found = max(c.attained for c in rows)
                        bound = max(c.upper_bound for c in rows)
                        cells.append(f"{found:.3g} / {bound:.3g}")
                    else:
                        cells.append("-")
                print(f"| {key} | {timeout:g} | {share:g} | {laps['bounds']:.1f} / "
                      f"{laps['attack']:.1f} | {n['certified']} / {n['violated']} / "
                      f"{n['open']} | " + " | ".join(cells) + " |", flush=True)
    return 0


def _share(text: str) -> float:
    value = _common.positive_float(text)
    if value > 1:
        raise argparse.ArgumentTypeError(f"a share in (0, 1], got {text}")
    return value


if __name__ == "__main__":
    _common.run(main)
