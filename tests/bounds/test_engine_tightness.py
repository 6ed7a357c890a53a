"""Tightness on the ACOPF-like graph (MLP 22 -> 32 -> 32 -> 32 -> 38, sigmoid head,
physics block): alpha-CROWN at least as tight as CROWN, CROWN at least as tight as
IBP, on >= 95 % of the outputs, and strictly tighter on average."""

from __future__ import annotations

import pytest
import torch
from engine_graphs import acopf_small

from gridverify.bounds import BoundOptions, compute_bounds


def _widths(radius: float, seed: int = 0) -> dict[str, torch.Tensor]:
    g = acopf_small(seed)
    gen = torch.Generator().manual_seed(seed)
    c = torch.randn(4, 22, generator=gen, dtype=torch.float64)
    out = {}
    for m in ("ibp", "crown", "alpha-crown"):
        r = compute_bounds(g, c - radius, c + radius, method=m,
                           options=BoundOptions(alpha_iterations=20, alpha_lr=0.1))
        assert torch.isfinite(r.lower).all() and torch.isfinite(r.upper).all()
        out[m] = r.width
    return out


@pytest.mark.parametrize("radius", [0.05, 0.2])
def test_tightness_order(radius: float) -> None:
    w = _widths(radius)
    tol = 1e-9
    frac_ci = float((w["crown"] <= w["ibp"] * (1 + tol) + tol).double().mean())
    frac_ac = float((w["alpha-crown"] <= w["crown"] * (1 + tol) + tol).double().mean())
    assert frac_ci >= 0.95
    assert frac_ac >= 0.95
    k = w["ibp"] > 1e-12
    r_ci = float((w["crown"][k] / w["ibp"][k]).mean())
    r_ac = float((w["alpha-crown"][k] / w["crown"][k]).mean())
    print(f"radius {radius}: width ratio crown/ibp {r_ci:.4f}, alpha/crown {r_ac:.4f}, "
          f"fractions {frac_ci:.3f} {frac_ac:.3f}")
    assert r_ci < 0.8  # CROWN is much tighter than IBP on small boxes
    assert r_ac < 0.995  # the optimization improves on CROWN's default relaxations
