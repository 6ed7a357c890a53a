"""``gridverify.certify`` from Python with one torch thread (``CertifyOptions.threads=1``,
the default, as ``certify --threads``) against torch's own thread count (``threads=None``).

Usage::

    python benchmarks/api_threads.py [--case pglib_opf_case14_ieee] [--model case14_relu]
        [--method crown] [--samples 64] [--repeats 3]

Both settings run in this process, alternating, on the same case, proxy and
region; the figure is the best wall time of ``--repeats`` runs of each, the
ratio below 1 when one thread is faster.  The certificates must agree
(bounds of a deterministic method do not depend on the thread count).
"""

from __future__ import annotations

import argparse
import time

import _common
import numpy as np
import torch

from gridverify.certify import CertifyOptions, certify
from gridverify.certify.options import METHODS
from gridverify.grid import load_compiled
from gridverify.proxy.load import load_proxy


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--case", default="pglib_opf_case14_ieee")
    ap.add_argument("--model", default="case14_relu")
    ap.add_argument("--method", default="crown", choices=METHODS)
    ap.add_argument("--samples", type=_common.count(1), default=64)
    ap.add_argument("--repeats", type=_common.count(1), default=3)
    args = ap.parse_args()
    case = load_compiled(args.case, emit_warnings=False)
    proxy = load_proxy(args.model, case=case)
    times: dict[str, list[float]] = {"threads=1": [], "threads=None": []}
    bounds: dict[str, np.ndarray] = {}
    for _ in range(args.repeats):
        for label, threads in (("threads=1", 1), ("threads=None", None)):
            opts = CertifyOptions(samples=args.samples, seed=0, radius=False, threads=threads)
            t0 = time.perf_counter()
            cert = certify(case, proxy, method=args.method, options=opts)
            times[label].append(time.perf_counter() - t0)
            bounds[label] = np.array([c.upper_bound for c in cert.constraints])
    one, default = min(times["threads=1"]), min(times["threads=None"])
    print(f"torch threads by default here: {torch.get_num_threads()}")
    print(f"certify {args.case} --model {args.model} --method {args.method} "
          f"--samples {args.samples}: threads=1 {one:.2f} s, threads=None {default:.2f} s, "
          f"ratio {one / default:.2f}")
    same = np.allclose(bounds["threads=1"], bounds["threads=None"], rtol=1e-9, atol=1e-12)
    print(f"bounds agree: {same}")
    return 0


if __name__ == "__main__":
    _common.run(main)
