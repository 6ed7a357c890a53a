"""Build the pre-optimized branching-point tables (``gridverify/data/branch_points.h5``).

Run as ``python -m gridverify.bab.build_points [--out FILE] [--n-l N] [--n-w N]``.

For each op and each interval ``[l, l + w]`` of a grid, try split ratios
``r`` in ``(0, 1)`` and keep the one that minimizes the total looseness of the
default relaxation over both halves, looseness on ``[a, b]`` being the area
between the upper and the lower line::

    int_a^b (uw - lw) x + (ub - lb) dx = (uw - lw)(b^2 - a^2)/2 + (ub - lb)(b - a)

(exact for lines, so no quadrature).  The midpoint is one of the candidates and
wins ties, so a table point is never worse than the midpoint by this measure.
The file records a format version and the grid of every table; it is written
atomically (temporary file, then ``os.replace``).
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
from pathlib import Path

import numpy as np
import torch

from gridverify.bab.points import POINTS_FILE, POINTS_VERSION
from gridverify.bounds.relaxations import unary
from gridverify.ir.ops import OPS

__all__ = ["GRIDS", "build_tables", "looseness", "main", "write_tables"]

# op -> (l_min, l_max, w_min, w_max): the grid of interval starts and widths (the
# period, where the op has one, is the op table's)
GRIDS: dict[str, tuple[float, float, float, float]] = {
    "sigmoid": (-10.0, 10.0, 1e-2, 20.0),
    "tanh": (-6.0, 6.0, 1e-2, 12.0),
    "sin": (0.0, 2 * math.pi, 1e-2, 2 * math.pi),
    "cos": (0.0, 2 * math.pi, 1e-2, 2 * math.pi),
}


def looseness(op: str, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Area between the default upper and lower relaxation lines of ``op`` on ``[a, b]``."""
    r = unary(op).relax(a, b, None)
    return (r.uw - r.lw) * (b * b - a * a) / 2 + (r.ub - r.lb) * (b - a)


def build_tables(n_l: int = 96, n_w: int = 64, n_r: int = 39,
                 ops: tuple[str, ...] = tuple(GRIDS)) -> dict[str, dict]:
    """Compute every op's ratio table: ``{op: {"ratio": (n_l, n_w), grid attrs...}}``."""
    ratios = torch.linspace(0.05, 0.95, n_r, dtype=torch.float64)
    mid = int(torch.argmin((ratios - 0.5).abs()))
    ratios[mid] = 0.5
    out: dict[str, dict] = {}
    for op in ops:
        l_min, l_max, w_min, w_max = GRIDS[op]
        period = OPS[op].period
        ls = torch.linspace(l_min, l_max, n_l, dtype=torch.float64)
        ws = torch.exp(torch.linspace(math.log(w_min), math.log(w_max), n_w,
                                      dtype=torch.float64))
        L = ls[:, None, None].expand(n_l, n_w, n_r)
        W = ws[None, :, None].expand(n_l, n_w, n_r)
        R = ratios[None, None, :].expand(n_l, n_w, n_r)
        P = L + R * W
        total = looseness(op, L, P) + looseness(op, P, L + W)
        total = torch.nan_to_num(total, nan=math.inf)
        best = total.argmin(-1)
        # ties (or near ties) go to the midpoint
        mid_tot = total[..., mid]
        best_tot = total.gather(-1, best[..., None])[..., 0]
        use_mid = best_tot >= mid_tot * (1 - 1e-9)
        ratio = torch.where(use_mid, torch.full_like(best_tot, 0.5), ratios[best])
        out[op] = {"ratio": ratio.numpy(), "l_min": l_min, "l_max": l_max, "w_min": w_min,
                   "w_max": w_max, "period": period or 0.0}
    return out


def write_tables(tables: dict[str, dict], path: str | Path) -> Path:
    """Write tables to HDF5 atomically, with the format version and grids."""
    import h5py

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".branch_points.", suffix=".h5", dir=path.parent)
    os.close(fd)
    try:
        with h5py.File(tmp, "w") as f:
            f.attrs["version"] = POINTS_VERSION
            f.attrs["format"] = "gridverify-branch-points"
            f.attrs["measure"] = "area between default relaxation lines, both halves summed"
            for op, t in tables.items():
                grp = f.create_group(op)
                grp.create_dataset("ratio", data=np.asarray(t["ratio"], dtype=np.float64))
                for k in ("l_min", "l_max", "w_min", "w_max", "period"):
                    grp.attrs[k] = float(t[k])
                grp.attrs["l_grid"] = "uniform"
                grp.attrs["w_grid"] = "log-uniform"
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def main(argv: list[str] | None = None) -> int:
    """Command line entry: build and write the tables."""
    ap = argparse.ArgumentParser(prog="python -m gridverify.bab.build_points",
                                 description="Build the pre-optimized branching-point tables.")
    ap.add_argument("--out", default=str(POINTS_FILE), help="output HDF5 file")
    ap.add_argument("--n-l", type=int, default=96, help="grid size in l")
    ap.add_argument("--n-w", type=int, default=64, help="grid size in w")
    ap.add_argument("--n-r", type=int, default=39, help="candidate ratios")
    args = ap.parse_args(argv)
    tabs = build_tables(args.n_l, args.n_w, args.n_r)
    p = write_tables(tabs, args.out)
    for op, t in tabs.items():
        r = t["ratio"]
        print(f"{op:8s} grid {r.shape}  ratio in [{r.min():.3f}, {r.max():.3f}]  "
              f"non-midpoint cells {(r != 0.5).mean():.0%}")
    print(f"wrote {p}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
