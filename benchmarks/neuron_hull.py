"""What would the tightest one-neuron relaxation of the relus buy?  (A diagnosis, not a bound.)

Usage::

    python benchmarks/neuron_hull.py [--cases case14,case57] [--outputs 10] [--md FILE]

Every relaxation of a relu in the bound engine (and in CROWN, alpha-CROWN and
the LP they approximate) is the *triangle*: the convex hull of ``y = relu(z)``
over the interval ``[l, u]`` of its pre-activation ``z = w.x + b``.  The
tightest relaxation of one neuron on its own is the convex hull of its graph
over the *box of its inputs* ``x`` (Anderson et al. 2020, "Strong mixed-integer
programming formulations for trained neural networks"), which also knows which
combinations of inputs give which ``z``; it is what "tightened single-neuron
relaxations" (Tjandraatmadja et al. 2020) propagate.  This script measures the
ceiling of that whole class of methods on a shipped relu proxy:

* intermediate intervals of every hidden layer by the triangle LP, layer by
  layer (the same intervals for both relaxations below);
* for the first ``--outputs`` pre-head outputs of the proxy, both signs: the
  upper bound of the LP with triangles (the best any triangle-based bound with
  those intervals reaches) and of the LP with each relu's convex hull over the
  box of its layer's inputs (the extended formulation of the disjunction
  ``z <= 0, y = 0`` or ``z >= 0, y = z``; the previous layer's post-activation
  box for hidden layers), with the triangles and the pre-activation intervals
  kept as valid cuts;
* the worst value a sign-gradient attack finds (24 starts, 150 steps);
* the gap (bound minus found) of both, their ratio, and the widths of the
  output intervals against the attack's ranges.  (A check: the hull LP must
  lie between the value found and the triangle LP; the script stops if not.)

LPs are solved by HiGHS (through scipy), one torch thread.  Prints markdown;
``--md`` also writes it to a file (atomically).
"""

from __future__ import annotations

import argparse
import sys
import time

import _common
import numpy as np
import scipy.sparse as sp
import torch
from scipy.optimize import linprog

from gridverify.fileio import atomic_write_text
from gridverify.proxy.load import load_proxy


def dense_layers(module: torch.nn.Module) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(W, b)`` in float64 of every ``nn.Linear`` of the proxy, in order."""
    return [(m.weight.detach().double().numpy(), m.bias.detach().double().numpy())
            for m in module.modules() if isinstance(m, torch.nn.Linear)]


class ReluLP:
    """The LP relaxation of ``x in box -> relu layers -> last affine layer``.

    ``hull``: relax each unstable relu by its convex hull over the box of its
    layer's inputs (else the triangle only).  Hidden intervals are computed by
    this LP itself, layer by layer (triangle form), unless ``intervals`` is given.
    """

    def __init__(self, layers, lo: np.ndarray, hi: np.ndarray, hull: bool,
                 intervals: list[tuple[np.ndarray, np.ndarray]] | None = None) -> None:
        self.layers, self.hull = layers, hull
        self.cols, self.bounds = 0, []
        self.ub: list[tuple[list[int], list[float], float]] = []
        self.eq: list[tuple[list[int], list[float], float]] = []
        self._cache: tuple | None = None  # (sizes, matrices) of the last LP built
        self.x = self._alloc(lo.size, list(zip(lo, hi)))
        self.intervals: list[tuple[np.ndarray, np.ndarray]] = []
        prev, plo, phi = self.x, lo, hi
        for k, (w, b) in enumerate(layers[:-1]):
            if intervals is not None:
                zl, zu = intervals[k]
            else:
                zl, zu = self._layer_interval(prev, w, b)
            self.intervals.append((zl, zu))
            ylo, yhi = np.maximum(zl, 0.0), np.maximum(zu, 0.0)
            y = self._alloc(w.shape[0], list(zip(ylo, yhi)))
            for j in range(w.shape[0]):
                self._relu(prev, plo, phi, w[j], b[j], zl[j], zu[j], y[j])
            prev, plo, phi = y, ylo, yhi
        self.last = prev

    # -- building ------------------------------------------------------------------
    def _alloc(self, k: int, bounds) -> list[int]:
        idx = list(range(self.cols, self.cols + k))
        self.cols += k
        self.bounds += bounds
        return idx

    def _relu(self, xs, xlo, xhi, w, b, zl, zu, y) -> None:
        """Constraints tying ``y = relu(w.x + b)`` (``x`` at columns ``xs``)."""
        wl = list(w)
        self.ub.append((xs, wl, zu - b))  # the pre-activation interval, a valid cut
        self.ub.append((xs, list(-w), b - zl))
        if zu <= 0:
            return  # y is fixed to 0 by its bounds
        if zl >= 0:
            self.eq.append(([y, *xs], [1.0, *(-w)], b))
            return
        s = zu / (zu - zl)
        self.ub.append(([*xs, y], [*wl, -1.0], -b))  # y >= z
        self.ub.append(([y, *xs], [1.0, *(-s * w)], s * (b - zl)))  # y <= s (z - l)
        if not self.hull:
            return
        # convex hull of the two pieces over the box: x = x0 + x1, x1 the "active" copy
        x1 = self._alloc(len(xs), [(None, None)] * len(xs))
        (sg,) = self._alloc(1, [(0.0, 1.0)])
        for i, (xi, ci) in enumerate(zip(xs, x1)):
            self.ub.append(([ci, sg], [1.0, -xhi[i]], 0.0))  # x1 <= hi sg
            self.ub.append(([ci, sg], [-1.0, xlo[i]], 0.0))  # x1 >= lo sg
            self.ub.append(([xi, ci, sg], [1.0, -1.0, xhi[i]], xhi[i]))  # x0 <= hi (1 - sg)
            self.ub.append(([xi, ci, sg], [-1.0, 1.0, -xlo[i]], -xlo[i]))  # x0 >= lo (1 - sg)
        self.ub.append(([*xs, *x1, sg], [*wl, *(-w), -b], -b))  # w.x0 + b (1 - sg) <= 0
        self.ub.append(([*x1, sg], [*(-w), -b], 0.0))  # w.x1 + b sg >= 0
        self.eq.append(([y, *x1, sg], [1.0, *(-w), -b], 0.0))  # y = w.x1 + b sg

    def _matrices(self):
        key = (len(self.ub), len(self.eq), self.cols)
        if self._cache is None or self._cache[0] != key:
            self._cache = (key, self._build())
        return self._cache[1]

    def _build(self):
        def mat(rows):
            r = [i for i, (c, _, _) in enumerate(rows) for _ in c]
            c = [j for cs, _, _ in rows for j in cs]
            v = [a for _, vs, _ in rows for a in vs]
            return (sp.csr_matrix((v, (r, c)), shape=(len(rows), self.cols)),
                    np.array([t for _, _, t in rows]))
        return mat(self.ub), (mat(self.eq) if self.eq else (None, None))

    def maximize(self, cols: list[int], coef: np.ndarray) -> float:
        """Maximum of ``coef . v[cols]`` over the LP."""
        (a, bu), (ae, be) = self._matrices()
        c = np.zeros(self.cols)
        c[cols] = -coef
        res = linprog(c, A_ub=a, b_ub=bu, A_eq=ae, b_eq=be, bounds=self.bounds,
                      method="highs")
        if res.status != 0:
            raise RuntimeError(f"LP failed: {res.message}")
        return float(-res.fun)

    def _layer_interval(self, prev, w, b) -> tuple[np.ndarray, np.ndarray]:
        up = np.array([self.maximize(prev, w[j]) + b[j] for j in range(w.shape[0])])
        dn = np.array([-self.maximize(prev, -w[j]) + b[j] for j in range(w.shape[0])])
        return dn, up


def attack(layers, lo: np.ndarray, hi: np.ndarray, rows: np.ndarray, starts: int = 24,
           steps: int = 150, seed: int = 0) -> np.ndarray:
    """Largest value of ``rows[r] . out(x)`` found per row (sign-gradient ascent)."""
    g = torch.Generator().manual_seed(seed)
    lo_t, hi_t = torch.tensor(lo), torch.tensor(hi)
    ws = [(torch.tensor(w), torch.tensor(b)) for w, b in layers]
    c = torch.tensor(rows)
    m = c.shape[0]

    def f(x, r):
        z = x
        for k, (w, b) in enumerate(ws):
            z = z @ w.T + b
            if k < len(ws) - 1:
                z = torch.relu(z)
        return (z * c[r]).sum(1)

    r = torch.arange(m).repeat_interleave(starts)
    x = lo_t + (hi_t - lo_t) * torch.rand((r.numel(), lo.size), generator=g, dtype=torch.float64)
    best = torch.full((m,), -np.inf, dtype=torch.float64)
    for t in range(steps + 1):
        x.requires_grad_(True)
        v = f(x, r)
        (grad,) = torch.autograd.grad(v.sum(), x)
        best = torch.maximum(best, v.detach().view(m, starts).max(1).values)
        step = 0.002 + 0.1 * 0.5 * (1 + np.cos(np.pi * t / steps))
        x = torch.minimum(torch.maximum(x.detach() + step * (hi_t - lo_t) * grad.sign(), lo_t),
                          hi_t)
    return best.numpy()


def run_case(case: str, n_out: int) -> dict:
    """Triangle and hull LP bounds of the first ``n_out`` pre-head outputs, both signs."""
    proxy = load_proxy(f"{case}_relu")
    lo, hi = np.asarray(proxy.region.lower, float), np.asarray(proxy.region.upper, float)
    layers = dense_layers(proxy.module)
    w_last, b_last = layers[-1]
    k = min(n_out, w_last.shape[0])
    t0 = time.perf_counter()
    tri = ReluLP(layers, lo, hi, hull=False)
    t_int = time.perf_counter() - t0
    hull = ReluLP(layers, lo, hi, hull=True, intervals=tri.intervals)
    rows = np.concatenate([np.eye(w_last.shape[0])[:k], -np.eye(w_last.shape[0])[:k]])
    found = attack(layers, lo, hi, rows)
    out = {"case": f"{case}_relu", "rows": 2 * k, "tri": [], "hull": [], "found": found,
           "hidden": [w.shape[0] for w, _ in layers[:-1]], "seconds_intervals": t_int,
           "unstable": [int(((zl < 0) & (zu > 0)).sum()) for zl, zu in tri.intervals]}
    times = {"tri": 0.0, "hull": 0.0}
    for r in rows:
        coef = r @ w_last
        off = float(r @ b_last)
        for name, lp in (("tri", tri), ("hull", hull)):
            t = time.perf_counter()
            out[name].append(lp.maximize(lp.last, coef) + off)
            times[name] += time.perf_counter() - t
    out["seconds"] = times
    tri_b, hull_b = np.array(out["tri"]), np.array(out["hull"])
    if (hull_b > tri_b + 1e-6).any() or (hull_b < found - 1e-6).any():
        raise RuntimeError(f"{case}: the hull LP is not between the attack and the triangle LP")
    return out


def table(results: list[dict]) -> str:
    lines = [
        "| proxy | hidden (unstable) | rows | gap, triangle LP (median) | gap, hull LP (median) "
        "| hull / triangle gap: median, min, max | width / attack range: triangle, hull (median) "
        "| LP seconds per row: triangle, hull |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        tri, hull, found = np.array(r["tri"]), np.array(r["hull"]), r["found"]
        gt, gh = tri - found, hull - found
        ok = gt > 1e-9
        ratio = gh[ok] / gt[ok]
        k = r["rows"] // 2
        rng = found[:k] + found[k:]
        wide = rng > 1e-9
        wt = ((tri[:k] + tri[k:]) / np.where(wide, rng, 1.0))[wide]
        wh = ((hull[:k] + hull[k:]) / np.where(wide, rng, 1.0))[wide]
        hid = " x ".join(f"{h} ({u})" for h, u in zip(r["hidden"], r["unstable"]))
        lines.append(
            f"| {r['case']} | {hid} | {r['rows']} | {np.median(gt):.4g} | {np.median(gh):.4g} "
            f"| {np.median(ratio):.2f}, {ratio.min():.2f}, {ratio.max():.2f} "
            f"| {np.median(wt):.2f}, {np.median(wh):.2f} "
            f"| {r['seconds']['tri'] / r['rows']:.2f}, {r['seconds']['hull'] / r['rows']:.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    relu = [m.removesuffix("_relu") for m in _common.shipped_models() if m.endswith("_relu")]
    ap.add_argument("--cases", type=_common.keys(relu, "case"), default="case14,case57",
                    help=f"comma list of cases with a shipped relu proxy ({', '.join(relu)})")
    ap.add_argument("--outputs", type=_common.count(1), default=10,
                    help="pre-head outputs bounded (both signs), the first ones")
    ap.add_argument("--md", help="also write the table to this markdown file")
    a = ap.parse_args(argv)
    _common.check_outputs(md=a.md)
    torch.set_num_threads(1)
    results = []
    for case in a.cases:
        results.append(run_case(case, a.outputs))
        print(f"{case}: done", file=sys.stderr)
    text = table(results)
    print(text)
    if a.md:
        atomic_write_text(a.md, text + "\n")
    return 0


if __name__ == "__main__":
    _common.run(main)
