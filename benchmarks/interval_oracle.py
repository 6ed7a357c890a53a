"""What would exact intermediate bounds of the proxy's relus buy?  (A diagnosis, not a bound.)

Usage::

    python benchmarks/interval_oracle.py [--cases case14,case57] [--families p_balance,...]
                                         [--factors 1,1.5,2] [--milp-seconds 2 --milp-neurons 8]
                                         [--md FILE]

For a shipped relu proxy over its training region ``[0.9, 1.1] x nominal`` and
a constraint family (every row of the family, composed with the physics):

* **attack ranges of every relu pre-activation**: per neuron and sign, a
  projected sign-gradient ascent from random starts (8 starts, 60 steps).  These
  are *inner* estimates of the true ranges (they are reached by some load); the
  width of CROWN's interval over them is printed per layer (the first layer is
  affine in the loads, so there the ratio is 1.00 when the attack finds the
  extreme vertex);
* **the oracle bound**: CROWN and alpha-CROWN on the composed graph with the
  second-layer pre-activation intervals replaced by the attack ranges widened
  ``f`` times about their centres (clamped into CROWN's intervals), for each
  ``f`` of ``--factors``; plus the rows certified (bound at most the family's
  default threshold).  ``f = 1`` is an *optimistic, unsound* stand-in for
  exact intermediate bounds: no sound tightening of intermediate intervals
  alone can do better than it, so it is the ceiling of that whole class of
  methods (optimized intermediate bounds, per-neuron searches, MILP refinement);
* the same with the inputs of the physics' nonlinearities (products, sin, cos,
  squares, the proxy's sigmoid head: their attack ranges from 4 starts and 40
  steps), and with every nonlinearity's input at its attack range: the ceiling
  of every method that only tightens intermediate intervals.  A thermal
  row's flows ``pf, qf`` (the operands of its final squares) are left to the
  bound: fixing them would fix the row's bound almost directly
  (:func:`row_operands`); a last row with them fixed too is printed for
  reference;
* ``--milp-seconds S --milp-neurons K``: the dual bound HiGHS (through scipy)
  proves in ``S`` seconds for the upper end of the first ``K`` second-layer
  neurons (one-hidden-layer program, big-M from the exact first-layer
  intervals), as a ratio of half-widths about the attack's centre (CROWN's
  ratio beside it).

One torch thread.  Prints markdown; ``--md`` also writes it to a file (atomically).
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
from tightness import CASES, _parts  # noqa: E402

from gridverify.bounds import BoundOptions, compute_bounds  # noqa: E402
from gridverify.fileio import atomic_write_text  # noqa: E402
from gridverify.ir.graph import Graph  # noqa: E402

NONLINEAR = ("relu", "sigmoid", "tanh", "mul", "sin", "cos", "square")


def attack_range(g: Graph, nid: int, lo: torch.Tensor, hi: torch.Tensor,
                 starts: int = 8, steps: int = 60, seed: int = 1) -> tuple[torch.Tensor, ...]:
    """Inner estimate ``(low, high)`` of node ``nid``'s range over the box, per entry."""
    size, n = g.nodes[nid].size, lo.numel()
    gen = torch.Generator().manual_seed(seed)
    rows = torch.arange(size * starts)
    idx = torch.arange(size).repeat_interleave(starts)
    ends = []
    for sign in (-1.0, 1.0):
        x = lo + (hi - lo) * torch.rand(size * starts, n, generator=gen, dtype=torch.float64)
        step = (hi - lo) * 0.25
        for _ in range(steps):
            x.requires_grad_(True)
            obj = sign * g.evaluate_all(x)[nid][rows, idx]
            (grad,) = torch.autograd.grad(obj.sum(), x)
            with torch.no_grad():
                x = torch.minimum(torch.maximum(x + step * grad.sign(), lo), hi)
            step = step * 0.93
        with torch.no_grad():
            z = g.evaluate_all(x)[nid][rows, idx].reshape(size, starts)
        ends.append(z.min(1).values if sign < 0 else z.max(1).values)
    return ends[0], ends[1]


def row_operands(g: Graph) -> set[int]:
    """The affine operands of the rows' final squares: the flows of the thermal form.

    ``physics.acp`` writes a thermal row as ``square(pf) + square(qf) - rate**2``
    with ``pf, qf`` one ``sparse_linear`` of the base terms; fixing their
    intervals would fix the row's bound almost directly, so the oracle leaves
    them to the bound.  (A balance row's last nonlinearities are products, and
    ``vm2 = square(vm)`` squares a proxy output, not an affine combination.)
    """
    consumers: dict[int, list[int]] = {}
    for nd in g.nodes:
        for i in nd.inputs:
            consumers.setdefault(i, []).append(nd.id)
    near: dict[int, bool] = {}
    for nd in reversed(g.nodes):  # consumers come after their inputs
        near[nd.id] = nd.id in g.outputs or bool(consumers.get(nd.id)) and all(
            g.nodes[c].op not in NONLINEAR and near[c] for c in consumers[nd.id])
    return {nd.inputs[0] for nd in g.nodes if nd.op == "square" and near[nd.id]
            and g.nodes[nd.inputs[0]].op == "sparse_linear"}


def milp_upper(w1: np.ndarray, b1: np.ndarray, row: np.ndarray, lo: np.ndarray,
               hi: np.ndarray, seconds: float) -> float:
    """HiGHS's proven upper bound of ``row . relu(w1 x + b1)`` over the box in ``seconds``."""
    from scipy.optimize import Bounds, LinearConstraint, milp
    from scipy.sparse import lil_matrix

    c, r = (lo + hi) / 2, (hi - lo) / 2
    l1 = w1 @ c + b1 - np.abs(w1) @ r
    u1 = w1 @ c + b1 + np.abs(w1) @ r
    m, n = w1.shape
    a = lil_matrix((3 * m, n + 2 * m))
    ub = np.zeros(3 * m)
    for j in range(m):  # h >= w x + b;  h <= w x + b - l (1 - d);  h <= u d
        a[j, :n], a[j, n + j], ub[j] = w1[j], -1.0, -b1[j]
        a[m + j, :n], a[m + j, n + j], a[m + j, n + m + j] = -w1[j], 1.0, -l1[j]
        ub[m + j] = b1[j] - l1[j]
        a[2 * m + j, n + j], a[2 * m + j, n + m + j] = 1.0, -u1[j]
    box = Bounds(np.concatenate([lo, np.zeros(2 * m)]),
                 np.concatenate([hi, np.maximum(u1, 0.0), np.ones(m)]))
    res = milp(np.concatenate([np.zeros(n), -row, np.zeros(m)]),
               constraints=LinearConstraint(a.tocsr(), np.full(3 * m, -np.inf), ub),
               integrality=np.concatenate([np.zeros(n + m), np.ones(m)]), bounds=box,
               options={"time_limit": seconds, "disp": False})
    bound = getattr(res, "mip_dual_bound", None)
    return float("inf") if bound is None else -float(bound)


def oracle(case_key: str, family: str, factors: list[float], milp_s: float,
        milp_k: int) -> list[str]:
    from gridverify.physics.acp import compose_with_proxy
    from gridverify.spec.thresholds import default_rule

    _case, _cons, ph, pgraph, reg = _parts(case_key, family)
    g = compose_with_proxy(ph, pgraph)
    lo, hi = torch.tensor(reg.lower), torch.tensor(reg.upper)
    thr = default_rule(family).a
    pre = [nd.inputs[0] for nd in g.nodes if nd.op == "relu"]
    base = compute_bounds(g, lo, hi, method="crown", options=BoundOptions(keep_intermediate=True))
    t0 = time.perf_counter()
    ranges = {p: attack_range(g, p, lo, hi) for p in pre}
    lines = [f"### {case_key} {family} (attack on {len(pre)} relu layers: "
             f"{time.perf_counter() - t0:.1f} s)", ""]
    for k, p in enumerate(pre):
        cl, cu = (t[0] for t in base.interm[p])
        alo, ahi = ranges[p]
        ratio = (cu - cl) / (ahi - alo).clamp(min=1e-12)
        lines.append(f"* layer {k + 1} ({g.nodes[p].size} relus): CROWN width / attack width "
                     f"median {float(ratio.median()):.2f}, min {float(ratio.min()):.2f}")
    lines += ["", "| second-layer intervals | CROWN bound / rows certified | "
              "alpha-CROWN bound / rows certified |", "|---|---|---|"]
    m = g.output_size

    def cell(interm: dict | None, method: str) -> str:
        b = compute_bounds(g, lo, hi, method=method, options=BoundOptions(), interm=interm)
        up = b.upper[0]
        return f"{float(up.max()):.4g} / {int((up <= thr).sum())} of {m}"

    lines.append(f"| CROWN's own | {cell(None, 'crown')} | {cell(None, 'alpha-crown')} |")
    if len(pre) >= 2:
        p = pre[1]
        cl, cu = (t[0] for t in base.interm[p])
        alo, ahi = ranges[p]
        for f in factors:
            mid, half = (alo + ahi) / 2, (ahi - alo) / 2 * f
            interm = {p: (torch.maximum(mid - half, cl), torch.minimum(mid + half, cu))}
            lines.append(f"| attack ranges x {f:g} (oracle) | {cell(interm, 'crown')} | "
                         f"{cell(interm, 'alpha-crown')} |")
    feeds = {i for nd in g.nodes if nd.op in NONLINEAR for i in nd.inputs} - set(g.inputs)
    feeds = sorted((feeds - set(pre)) & set(base.interm))
    for p in feeds:
        ranges[p] = attack_range(g, p, lo, hi, starts=4, steps=40)

    def clamped(p: int) -> tuple[torch.Tensor, torch.Tensor]:
        cl, cu = (t[0] for t in base.interm[p])
        return torch.maximum(ranges[p][0], cl), torch.minimum(ranges[p][1], cu)

    own = row_operands(g)
    inner = [p for p in feeds if p not in own]
    for label, keys in (("physics inputs but the rows' operands", inner),
                        ("every nonlinearity's input but the rows' operands", inner + pre),
                        ("every nonlinearity's input (rows' operands too)", feeds + pre)):
        interm = {p: clamped(p) for p in keys}
        lines.append(f"| {label} at attack ranges (oracle) | {cell(interm, 'crown')} | "
                     f"{cell(interm, 'alpha-crown')} |")
    if milp_k and len(pre) >= 2:
        lin1, lin2 = g.nodes[pre[0]], g.nodes[pre[1]]
        if (lin1.op == lin2.op == "linear" and lin1.inputs[0] in g.inputs
                and g.nodes[lin2.inputs[0]].inputs[0] == lin1.id):
            w1 = lin1.attrs["weight"].numpy()
            b1 = lin1.attrs["bias"].numpy()
            w2 = lin2.attrs["weight"].numpy()
            b2 = lin2.attrs["bias"].numpy()
            alo, ahi = ranges[pre[1]]
            cu = base.interm[pre[1]][1][0]
            lines += ["", f"HiGHS MILP, {milp_s:g} s per neuron, upper end of second-layer "
                      "neuron k, half-width ratio about the attack's centre:", "",
                      "| k | attack | CROWN (ratio) | MILP dual bound (ratio) | seconds |",
                      "|---|---|---|---|---|"]
            for k in range(min(milp_k, w2.shape[0])):
                t = time.perf_counter()
                ub = milp_upper(w1, b1, w2[k], reg.lower, reg.upper, milp_s) + b2[k]
                mid, top = float(alo[k] + ahi[k]) / 2, float(ahi[k])
                den = max(top - mid, 1e-12)
                lines.append(f"| {k} | {top:.3f} | {float(cu[k]):.3f} "
                             f"({(float(cu[k]) - mid) / den:.2f}) | {ub:.3f} "
                             f"({(ub - mid) / den:.2f}) | {time.perf_counter() - t:.1f} |")
    return lines + [""]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=_common.keys(CASES, "case"), default="case14,case57",
                    help=f"comma list of {', '.join(CASES)}")
    ap.add_argument("--families", type=_common.families, default="p_balance,thermal_fr")
    ap.add_argument("--factors", type=_common.number_list(_common.positive_float),
                    default="1,1.5,2")
    ap.add_argument("--milp-seconds", type=_common.positive_float, default=2.0)
    ap.add_argument("--milp-neurons", type=_common.count(0), default=0)
    ap.add_argument("--md", default=None)
    args = ap.parse_args(argv)
    _common.check_outputs(md=args.md)
    torch.set_num_threads(1)
    lines: list[str] = []
    for case_key in args.cases:
        for family in args.families:
            part = oracle(case_key, family, args.factors, args.milp_seconds, args.milp_neurons)
            print("\n".join(part), flush=True)
            lines += part
    if args.md:
        atomic_write_text(args.md, "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    _common.run(main)
