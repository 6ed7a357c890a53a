"""Tightness of the two ways to build ``clamp(x, lo, hi)`` from relus.

Usage: ``python benchmarks/clamp_forms.py [--nets 12]``.  Random two-layer
networks with hardtanh, relu6, hardsigmoid and hardswish (16 units) over boxes of
half-width 0.5, 2 and 4 are bounded with the builder's clamp (the nested form,
``hi - relu(hi - lo - relu(x - lo))``) and, in the same process, with the sum
form ``lo + relu(x - lo) - relu(x - hi)`` it replaced; the table gives the summed
output widths of the nested form over those of the sum form, per bound method
(below 1: the nested form is tighter).
"""

from __future__ import annotations

import argparse

import _common
import numpy as np
import torch
from torch import nn

from gridverify.bounds import compute_bounds
from gridverify.ir import builder as ir_builder
from gridverify.ir import from_torch

METHODS = ("ibp", "crown", "alpha-crown")
NESTED = ir_builder.GraphBuilder.clamp


def sum_form(self, x, lo=None, hi=None, name=None):  # noqa: ANN001, ANN201
    """The earlier clamp: ``lo + relu(x - lo) - relu(x - hi)``."""
    if lo is None or hi is None:
        return NESTED(self, x, lo, hi, name)
    lo_t, hi_t = self._full(x, lo, "lo"), self._full(x, hi, "hi")
    r1 = self.relu(self.add_const(x, -lo_t))
    r2 = self.relu(self.add_const(x, -hi_t))
    return self.add_const(self.sub(r1, r2), lo_t, name=name)


def widths(net: nn.Module, half: float, form) -> dict[str, float]:  # noqa: ANN001
    ir_builder.GraphBuilder.clamp = form
    try:
        g = from_torch(net, input_size=5)
    finally:
        ir_builder.GraphBuilder.clamp = NESTED
    lo = -half * torch.ones(5, dtype=torch.float64)
    out = {}
    for m in METHODS:
        r = compute_bounds(g, lo, -lo, method=m)
        out[m] = float((r.upper - r.lower).sum())
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nets", type=_common.count(1), default=12)
    args = ap.parse_args(argv)
    acts = (nn.Hardtanh, nn.ReLU6, nn.Hardsigmoid, nn.Hardswish)
    ratios: dict[str, list[float]] = {m: [] for m in METHODS}
    print("| net | activation | half-width | " + " | ".join(METHODS) + " |")
    print("|---|---|---|" + "---|" * len(METHODS))
    for seed in range(args.nets):
        torch.manual_seed(seed)
        act = acts[seed % len(acts)]()
        net = nn.Sequential(nn.Linear(5, 16), act, nn.Linear(16, 16), act,
                            nn.Linear(16, 3)).double().eval()
        half = (0.5, 2.0, 4.0)[seed % 3]
        a, b = widths(net, half, NESTED), widths(net, half, sum_form)
        row = {m: a[m] / b[m] for m in METHODS}
        for m in METHODS:
            ratios[m].append(row[m])
        print(f"| {seed} | {type(act).__name__} | {half} | "
              + " | ".join(f"{row[m]:.3f}" for m in METHODS) + " |")
    for m in METHODS:
        r = np.array(ratios[m])
        print(f"{m}: nested / sum width, min {r.min():.3f}, median {np.median(r):.3f}, "
              f"max {r.max():.3f}")
    return 0


if __name__ == "__main__":
    _common.run(main)
