"""How tight are the certificates of the shipped proxies, and where does the gap come from?

Usage::

    python benchmarks/tightness.py [--cases case14,case57] [--families p_balance,...]
                                   [--timeout 60] [--configs default,no-beta,...]
                                   [--out rows.json] [--md /tmp/tightness_tables.md]

Per shipped proxy (``bab_ablation.CASES`` keys, ``case14t``/``case57t``/... for the
tanh proxies) over its training region ``[0.9, 1.1] x nominal`` and per constraint
family (the spec is every row of the family, so the bound is the family's worst
violation):

* **bounds**: the alpha-CROWN bound (the branch-and-bound root: alpha-CROWN
  with alpha-optimized intermediate bounds), the branch-and-bound bound after
  ``--timeout`` CPU seconds (optimization mode), the worst value found, the gap
  shrink ``(root - found) / (bab - found)``, domains and seconds;
* **open at the root**: constraints of the family whose alpha-CROWN bound is above
  their default threshold while no sampled point violates it;
* **stage diagnosis** (``--diagnose``): the family's bound computed on the physics
  graph alone, with the proxy outputs free in a box: (a) the box of the proxy's
  outputs *sampled* over the region (20 000 points and their vertices' images:
  close to the true ranges), (b) the box of the proxy's outputs *bounded* by
  alpha-CROWN.  (a) far above the composed bound means the physics needs the
  correlation between outputs that only the composed graph keeps; (b) far above
  (a) means the proxy's own output intervals are loose.  The median ratio of
  bounded to sampled output widths is printed too.

``--configs`` runs the same search with parts of the bounding switched off, in the
same process (the ablation): ``default``, ``no-beta`` (split multipliers off),
``no-clip`` (input clipping off), ``input`` (input splitting), ``babsr``.

One torch thread; timeouts are CPU seconds.  Prints markdown; ``--md`` also writes
it to a file (atomically).  That file holds only the generated tables and is
overwritten whole, so give it a file of its own and paste from it into
``docs/tightness.md`` (never ``--md docs/tightness.md``: the hand-written page
would be replaced).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402
from bab_ablation import CASES as ABLATION_CASES  # noqa: E402
from bab_ablation import case_families, instance  # noqa: E402

from gridverify.bab import BabOptions, bab_maximize  # noqa: E402
from gridverify.fileio import atomic_write_text  # noqa: E402

CASES = {
    **ABLATION_CASES,
    "case14t": ("pglib_opf_case14_ieee", _common.model_path("case14_tanh")),
    "case57t": ("pglib_opf_case57_ieee", _common.model_path("case57_tanh")),
    "case118t": ("pglib_opf_case118_ieee", _common.model_path("case118_tanh")),
    "case300t": ("pglib_opf_case300_ieee", _common.model_path("case300_tanh")),
}
CONFIGS = {
    "default": BabOptions(),
    "no-beta": BabOptions(beta_iterations=0),
    "no-clip": BabOptions(clip=False),
    "input": BabOptions(branching="input"),
    "babsr": BabOptions(branching="babsr"),
}


def _ablation_key(case_key: str) -> str:
    """``case_key`` as ``bab_ablation`` takes it: itself, or ``KEY=MODEL_DIR`` (a key of the
    same case) for the proxies only this script knows (the tanh ones)."""
    if case_key in ABLATION_CASES:
        return case_key
    name, model = CASES[case_key]
    base = next(k for k, (n, _) in ABLATION_CASES.items() if n == name)
    return f"{base}={model}"


def _parts(case_key: str, family: str):
    """The composed instance plus the pieces the diagnosis needs."""
    from gridverify.grid import load_compiled
    from gridverify.ir import from_torch
    from gridverify.physics.acp import build_physics_graph
    from gridverify.proxy.load import load_proxy
    from gridverify.spec.constraints import parse_constraints, select_constraints
    from gridverify.spec.region import box_region

    name, model = CASES[case_key]
    case = load_compiled(name, emit_warnings=False)
    prox = load_proxy(model, case=case)
    cons = select_constraints(case, parse_constraints(family))
    ph = build_physics_graph(case, cons)
    reg = box_region(case, 0.9, 1.1)
    return case, cons, ph, from_torch(prox.module, input_size=reg.n_input), reg


def _samples(lo: torch.Tensor, hi: torch.Tensor, n: int, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    u = torch.rand(n, lo.numel(), generator=gen, dtype=torch.float64)
    v = (torch.rand(n, lo.numel(), generator=gen) < 0.5).to(torch.float64)
    return torch.cat([lo + (hi - lo) * u, lo + (hi - lo) * v])


def diagnose(case_key: str, family: str) -> dict:
    """Composed bound vs the physics alone over sampled / bounded proxy-output boxes."""
    from gridverify.bounds import BoundOptions, compute_bounds
    from gridverify.physics.acp import compose_with_proxy
    from gridverify.spec.thresholds import default_rule

    case, cons, ph, pgraph, reg = _parts(case_key, family)
    g = compose_with_proxy(ph, pgraph)
    lo, hi = torch.tensor(reg.lower), torch.tensor(reg.upper)
    opts = BoundOptions(intermediate="alpha-crown")
    comp = compute_bounds(g, lo, hi, method="alpha-crown", options=opts).upper[0]
    xs = _samples(lo, hi, 10_000)
    with torch.no_grad():
        y = g.evaluate_flat(xs, dtype=torch.float64)
        yp = pgraph.evaluate_flat(xs, dtype=torch.float64)
    plo, phi = yp.min(0).values, yp.max(0).values
    pb = compute_bounds(pgraph, lo, hi, method="alpha-crown", options=opts)
    ratio = (pb.upper[0] - pb.lower[0]) / (phi - plo).clamp(min=1e-9)

    phg = ph.graph

    def physics_over(out_lo: torch.Tensor, out_hi: torch.Tensor) -> float:
        los, his = [], []
        for i in phg.inputs:
            if phg.nodes[i].size == lo.numel() and "load" in phg.nodes[i].name:
                los.append(lo)
                his.append(hi)
            else:
                los.append(out_lo)
                his.append(out_hi)
        b = compute_bounds(phg, torch.cat(los), torch.cat(his), method="alpha-crown",
                           options=opts)
        return float(b.upper[0].max())

    # open at the root: per constraint, bound above the threshold, no sample above it
    per_bound = ph.reduce(comp.numpy()[None])[0]
    per_found = ph.reduce(y.numpy()).max(0)
    thr = default_rule(family).a  # the default rules are absolute
    open_root = int(((per_bound > thr) & (per_found <= thr)).sum())
    return {
        "composed": float(comp.max()), "sampled_max": float(y.max()),
        "physics_sampled_box": physics_over(plo, phi),
        "physics_bounded_box": physics_over(pb.lower[0], pb.upper[0]),
        "proxy_width_ratio_median": float(ratio.median()),
        "constraints": len(cons), "open_root": open_root,
        "violated_found": int((per_found > thr).sum()),
    }


def search(case_key: str, family: str, opts: BabOptions) -> dict:
    g, lo, hi, spec = instance(_ablation_key(case_key), family)
    t0 = time.perf_counter()
    r = bab_maximize(g, lo, hi, spec, options=opts, mode="optimization")
    root_b = r.history[0][1]
    tol = opts.tolerance
    root_gap, gap = root_b - r.attained, r.gap
    if root_gap <= tol:
        shrink = "closed at the root"
    elif gap <= tol:
        shrink = "closed"
    else:
        shrink = f"{root_gap / gap:.2f}x"
    return {
        "case": case_key, "family": family, "branching": r.branching,
        "root_bound": root_b, "bound": r.upper_bound, "attained": r.attained,
        "root_gap": root_gap, "gap": gap, "shrink": shrink, "status": r.status,
        "visited": r.domains_visited, "seconds": time.perf_counter() - t0,
    }


def _f(v: float | None) -> str:
    return "-" if v is None else f"{v:.3g}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cases", type=_common.keys(CASES, "case"), default="case14,case57",
                   help=f"comma list of {', '.join(CASES)}")
    p.add_argument("--families", type=_common.families, default=None,
                   help="comma list (default: every family)")
    p.add_argument("--timeout", type=_common.positive_float, default=60.0,
                   help="CPU seconds per family")
    p.add_argument("--configs", type=_common.keys(CONFIGS, "config"), default="default",
                   help=f"comma list of {', '.join(CONFIGS)}")
    p.add_argument("--diagnose", action="store_true", help="also the stage diagnosis")
    p.add_argument("--out", default=None, help="write the rows as JSON")
    p.add_argument("--md", default=None,
                   help="write the generated tables (only) to this file, replacing it")
    a = p.parse_args(argv)
    _common.check_outputs(out=a.out, md=a.md)
    torch.set_num_threads(1)
    lines: list[str] = []

    def emit(s: str) -> None:
        print(s, flush=True)
        lines.append(s)

    rows: list[dict] = []
    cfgs = a.configs
    emit(f"Branch-and-bound: {a.timeout:g} CPU s per family, optimization mode.\n")
    emit("| case | family | config | alpha-CROWN | BaB | found | gap shrink | branching "
         "| domains | s |")
    emit("|---|---|---|---|---|---|---|---|---|---|")
    fams_of = {ck: (a.families or case_families(_ablation_key(ck))) for ck in a.cases}
    for ck, fams in fams_of.items():
        for fam in fams:
            for cfg in cfgs:
                row = search(ck, fam, replace(CONFIGS[cfg], timeout=a.timeout, clock="cpu"))
                row["config"] = cfg
                rows.append(row)
                emit(f"| {ck} | {fam} | {cfg} | {_f(row['root_bound'])} | {_f(row['bound'])} "
                     f"| {_f(row['attained'])} | {row['shrink']} | {row['branching']} "
                     f"| {row['visited']} | {row['seconds']:.0f} |")
    if a.diagnose:
        emit("\nStage diagnosis (physics graph alone, proxy outputs free in a box):\n")
        emit("| case | family | composed bound | physics, sampled output box "
             "| physics, bounded output box | sampled max | proxy width ratio (median) "
             "| open at root / constraints |")
        emit("|---|---|---|---|---|---|---|---|")
        for ck, fams in fams_of.items():
            for fam in fams:
                d = diagnose(ck, fam)
                d.update(case=ck, family=fam, kind="diagnosis")
                rows.append(d)
                emit(f"| {ck} | {fam} | {_f(d['composed'])} | {_f(d['physics_sampled_box'])} "
                     f"| {_f(d['physics_bounded_box'])} | {_f(d['sampled_max'])} "
                     f"| {d['proxy_width_ratio_median']:.1f} "
                     f"| {d['open_root']} / {d['constraints']} |")
    if a.out:
        _common.write_json(a.out, rows)
    if a.md:
        atomic_write_text(a.md, "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    _common.run(main)
