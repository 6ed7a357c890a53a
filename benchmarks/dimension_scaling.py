"""How does the branch-and-bound's work grow with the number of free loads?

Usage::

    python benchmarks/dimension_scaling.py [--case case14] [--family p_balance]
                                           [--dims 1,2,4,8,22] [--timeout 60]
                                           [--branching auto] [--md FILE]

For a shipped proxy over its training region ``[0.9, 1.1] x nominal`` and one
constraint (the row of ``--family`` with the worst value found by a short
search over the whole box): the loads are ranked by how much the constraint
moves when each alone sweeps its interval at that worst point; for each ``k``
of ``--dims`` the ``k`` most influential loads stay free over their intervals
and the others are fixed at the worst point.  On each such sub-box,
:func:`gridverify.bab.bab_maximize` in optimization mode runs for ``--timeout``
CPU seconds; printed: its root (alpha-CROWN) bound, the worst value found, the
gap shrink against the root at 1/6, 1/2 and all of the budget, the CPU seconds
until the gap was 10x smaller than the root's (the tight-certificate issue's
case14 target), and the domains bounded.

The question it answers: is the gap on the plain relu proxies a matter of
search speed (a faster engine would close it) or of dimension (the tree a
sound search needs grows exponentially with the free loads)?  See
``docs/tightness.md``, "Gap against the number of free loads".

One torch thread; timeouts are CPU seconds.  Prints markdown; ``--md`` also
writes it to a file (atomically).
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
from bab_ablation import CASES, instance  # noqa: E402

from gridverify.bab import BabOptions, bab_maximize  # noqa: E402
from gridverify.bab.options import BRANCHINGS  # noqa: E402
from gridverify.fileio import atomic_write_text  # noqa: E402


def _value(g, x: np.ndarray, row: np.ndarray) -> np.ndarray:
    """The constraint's value at the loads ``x`` ``(N, n)``, float64."""
    with torch.no_grad():
        y = g.evaluate_flat(torch.as_tensor(x, dtype=torch.float64), dtype=torch.float64)
    return (y.numpy() @ row).reshape(-1)


def influence(g, lo: np.ndarray, hi: np.ndarray, x0: np.ndarray, row: np.ndarray,
              points: int = 17) -> np.ndarray:
    """Per load: the range of the constraint as that load alone sweeps its interval at ``x0``."""
    n = lo.size
    t = np.linspace(0.0, 1.0, points)
    out = np.zeros(n)
    for i in range(n):
        x = np.repeat(x0[None, :], points, axis=0)
        x[:, i] = lo[i] + t * (hi[i] - lo[i])
        v = _value(g, x, row)
        out[i] = v.max() - v.min()
    return out


def _gap_at(history: list[tuple[float, float, float]], t: float) -> float:
    """The gap (bound minus found) at the last round ending by ``t`` seconds."""
    seen = [(b, a) for s, b, a in history if s <= t] or [history[0][1:]]
    b, a = seen[-1]
    return b - a


def _shrink(root_gap: float, gap: float, tolerance: float) -> str:
    """Gap shrink ``root gap / gap``, or ``closed`` when the gap is within the tolerance."""
    return "closed" if gap <= tolerance else f"{root_gap / gap:.2f}x"


def scaling(case_key: str, family: str, dims: list[int], timeout: float,
            branching: str) -> list[str]:
    """Markdown rows, one per number of free loads."""
    g, lo, hi, spec = instance(case_key, family)
    lo = np.asarray(lo, dtype=np.float64)
    hi = np.asarray(hi, dtype=np.float64)
    probe = bab_maximize(g, lo, hi, spec, mode="optimization",
                         options=BabOptions(timeout=5.0, clock="cpu"))
    x0 = probe.witness
    k_row = int(np.argmax(_value(g, x0[None, :], spec.T)))
    row = spec[k_row]
    infl = influence(g, lo, hi, x0, row)
    order = np.argsort(-infl)
    n = lo.size
    print(f"{case_key} {family}: row {k_row}, {n} loads, value at the worst point "
          f"{float(_value(g, x0[None, :], row)[0]):.4g}; influence (top 8) "
          + ", ".join(f"{infl[i]:.3g}" for i in order[:8]), flush=True)
    out = []
    for k in dims:
        k = min(k, n)
        free = order[:k]
        slo, shi = x0.copy(), x0.copy()
        slo[free], shi[free] = lo[free], hi[free]
        opts = BabOptions(timeout=timeout, clock="cpu", branching=branching)
        t0 = time.process_time()
        r = bab_maximize(g, slo, shi, row[None, :], options=opts, mode="optimization")
        secs = time.process_time() - t0
        root_b = r.history[0][1]
        root_gap = root_b - r.attained
        if root_gap <= opts.tolerance:
            ten = "closed at the root"
            shrinks = ["-"] * 3
        else:
            hit = next((s for s, b, a in r.history
                        if b - r.attained <= max(root_gap / 10, opts.tolerance)), None)
            ten = "-" if hit is None else f"{hit:.1f}"
            # the last column is the final result: the last round ends just after the
            # timeout, so the history up to ``timeout`` seconds would leave it out
            gaps = [_gap_at(r.history, timeout * f) for f in (1 / 6, 1 / 2)] + [r.gap]
            shrinks = [_shrink(root_gap, gap, opts.tolerance) for gap in gaps]
        out.append(f"| {case_key} | {family} | {k} | {r.branching} | {root_b:.4g} | "
                   f"{r.attained:.4g} | {r.upper_bound:.4g} | {' / '.join(shrinks)} | {ten} | "
                   f"{r.domains_visited} | {r.reason} | {secs:.0f} |")
        print(out[-1], flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--case", default="case14", choices=CASES, help="key of bab_ablation.CASES")
    ap.add_argument("--family", type=_common.family, default="p_balance")
    ap.add_argument("--dims", type=_common.number_list(), default="1,2,4,8,22",
                    help="comma list of free-load counts")
    ap.add_argument("--timeout", type=_common.positive_float, default=60.0,
                    help="CPU seconds per sub-box")
    ap.add_argument("--branching", default="auto", choices=BRANCHINGS,
                    help="BabOptions.branching")
    ap.add_argument("--md", default=None)
    args = ap.parse_args(argv)
    _common.check_outputs(md=args.md)
    torch.set_num_threads(1)
    head = ["| case | family | free loads | branching | root bound | found | bound | "
            f"gap shrink at {args.timeout / 6:g} / {args.timeout / 2:g} / {args.timeout:g} s | "
            "s to 10x | domains | stop | s |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    print("\n".join(head), flush=True)
    rows = scaling(args.case, args.family, args.dims, args.timeout, args.branching)
    if args.md:
        atomic_write_text(Path(args.md), "\n".join(head + rows) + "\n")
    return 0


if __name__ == "__main__":
    _common.run(main)
