"""How close is a global solver to the true worst case?  SCIP's bracket beside the certificate's.

Usage::

    python benchmarks/exact_bracket.py [--case case14] [--family p_balance] [--rows 1]
                                       [--seconds 300] [--md FILE]

For a shipped relu proxy over the training region ``[0.9, 1.1] x nominal``:
certify the family with alpha-CROWN (:func:`gridverify.certify.certify`, its
sampling and attack giving the worst value found), then, for the ``--rows``
constraints with the largest certified bound, hand the same problem to SCIP's
spatial branch-and-bound (:func:`gridverify.exact.exact_worst_case`: big-M per
unstable relu, the AC flows with SCIP's own sin and cos) for ``--seconds`` per
sign of the residual.  Printed per row: the certificate's bracket ``[worst
found, bound]`` and SCIP's ``[primal value, dual bound]`` with its status.

The question it answers: is the gap of the certificates on the plain relu
proxies a weakness of bound propagation, or is the problem itself hard for an
exact method at this size?  (On case14_relu it is the latter: see
``docs/tightness.md``, "A global solver on the same problem".)

One torch thread; SCIP single-threaded.  Prints markdown; ``--md`` also writes
it to a file (atomically).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402
from bab_ablation import CASES  # noqa: E402

from gridverify.certify import CertifyOptions, certify  # noqa: E402
from gridverify.exact import ExactOptions, exact_worst_case  # noqa: E402
from gridverify.fileio import atomic_write_text  # noqa: E402
from gridverify.grid import load_compiled  # noqa: E402
from gridverify.proxy.load import load_proxy  # noqa: E402
from gridverify.spec.constraints import Constraint  # noqa: E402
from gridverify.spec.region import box_region  # noqa: E402


def brackets(case_key: str, family: str, rows: int, seconds: float) -> list[str]:
    """Markdown rows: certificate bracket and SCIP bracket of the ``rows`` loosest constraints."""
    name, model = CASES[case_key]
    case = load_compiled(name, emit_warnings=False)
    prox = load_proxy(model, case=case)
    region = box_region(case, 0.9, 1.1)
    t0 = time.perf_counter()
    cert = certify(case, prox, region, method="alpha-crown", constraints=family,
                   options=CertifyOptions(attack="all"))
    t_cert = time.perf_counter() - t0
    top = sorted(cert.constraints, key=lambda r: -r.upper_bound)[:rows]
    out = []
    for r in top:
        ex = exact_worst_case(case, prox.module, region.lower, region.upper,
                              Constraint(r.family, r.component, r.index),
                              ExactOptions(time_limit=seconds))
        out.append(
            f"| {Path(model).name} | {r.family} {r.component} | {r.attained:.4g} | "
            f"{r.upper_bound:.4g} ({t_cert:.0f} s) | {ex.witness_value:.4g} | {ex.bound:.4g} | "
            f"{ex.status}, {ex.seconds:.0f} s |"
        )
        print(out[-1], flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--case", default="case14", choices=CASES, help="key of bab_ablation.CASES")
    ap.add_argument("--family", type=_common.family, default="p_balance")
    ap.add_argument("--rows", type=_common.count(1), default=1,
                    help="constraints, loosest bound first")
    ap.add_argument("--seconds", type=_common.positive_float, default=300.0,
                    help="SCIP time per sign")
    ap.add_argument("--md", default=None)
    args = ap.parse_args(argv)
    _common.check_outputs(md=args.md)
    torch.set_num_threads(1)
    head = ("| proxy | constraint | certify: worst found | certify: bound (seconds) "
            "| SCIP: primal value | SCIP: dual bound | SCIP: status, seconds |\n"
            "|---|---|---|---|---|---|---|")
    print(head, flush=True)
    body = brackets(args.case, args.family, args.rows, args.seconds)
    if args.md:
        atomic_write_text(args.md, "\n".join([head, *body]) + "\n")
    return 0


if __name__ == "__main__":
    _common.run(main)
