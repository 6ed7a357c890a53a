"""The falsifier on the shipped proxies: the default attack against a heavy one.

Usage::

    python benchmarks/falsify.py [--proxies case14_relu,case57_relu] [--factor 10]
                                 [--top 3] [--random 2] [--out FILE]

For each shipped proxy (``models/*``; default: every one), over its training
region, per constraint family: the worst violation found by the falsification
of ``gridverify certify`` (sampling, then the attack with certify's default
options, ``CertifyOptions().attack_options``: a float32 search, on every
constraint, ``attack="all"``, bounds by IBP so that the attack dominates the
time) against a heavy attack (``AttackOptions().heavy(factor)``: a float64
search with ``factor`` times the restarts, steps, polish and vertex effort,
every phase; no focused second attack) in the same
run, and the seconds of each (the default's include its focused attack,
``CertifyOptions.attack_focus``).

The heavy attack costs about ``factor**2`` times the default one, so it runs
on the ``--top`` constraints per family that the default attack found worst
plus ``--random`` others per family (seeded): a family's heavy worst is the
best of the default's and the heavy run's (the heavy run can only add points).
``short`` is ``(heavy - default) / max(|heavy|, tiny)`` and ``ok`` says whether
the default is within 1 % or 1e-5 absolute of the heavy worst.

One torch thread.  Prints a markdown table; ``--out FILE`` writes the rows as JSON
(written to a temporary file, then renamed).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import _common
import numpy as np
import torch

from gridverify.attack import AttackOptions
from gridverify.certify import CertifyOptions, certify
from gridverify.grid import load_compiled
from gridverify.proxy.load import load_proxy
from gridverify.spec.constraints import Constraint

ROOT = Path(__file__).resolve().parent.parent


def _case_of(model: Path) -> str:
    return json.loads((model / "card.json").read_text())["case_name"]


def _run(case, proxy, constraints, attack: AttackOptions,
         focus: int | None = None) -> tuple[dict, float]:
    opts = CertifyOptions(attack="all", attack_options=attack)
    if focus is not None:
        opts = replace(opts, attack_focus=focus)
    t = time.perf_counter()
    cert = certify(case, proxy, constraints=constraints, method="ibp", options=opts)
    return {(c.family, c.component): c for c in cert.constraints}, time.perf_counter() - t


def bench(name: str, factor: int, top: int, n_random: int, seed: int = 0) -> list[dict]:
    """Rows (one per family) for proxy ``models/NAME``."""
    model = ROOT / "models" / name
    case = load_compiled(_case_of(model))
    proxy = load_proxy(str(model), case=case)
    default, t_def = _run(case, proxy, None, CertifyOptions().attack_options)
    rng = np.random.default_rng(seed)
    pick: list = []
    fams = sorted({f for f, _ in default})
    for fam in fams:
        rows = sorted((c for (f, _), c in default.items() if f == fam),
                      key=lambda c: -c.attained)
        chosen = rows[:top]
        rest = rows[top:]
        if rest and n_random:
            chosen += [rest[i] for i in rng.choice(len(rest), min(n_random, len(rest)),
                                                   replace=False)]
        pick += [Constraint(c.family, c.component, c.index) for c in chosen]
    heavy, t_heavy = _run(case, proxy, pick, AttackOptions().heavy(factor), focus=0)
    out = []
    for fam in fams:
        d = max(c.attained for (f, _), c in default.items() if f == fam)
        h = max([d] + [c.attained for (f, _), c in heavy.items() if f == fam])
        short = (h - d) / max(abs(h), 1e-12)
        out.append({"proxy": name, "family": fam, "default": d, "heavy": h,
                    "short": short, "ok": bool(h - d <= max(0.01 * abs(h), 1e-5)),
                    "seconds_default": t_def, "seconds_heavy": t_heavy,
                    "heavy_constraints": len(pick)})
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    shipped = _common.shipped_models()
    ap.add_argument("--proxies", type=_common.keys(shipped, "proxy"), default=",".join(shipped),
                    help="shipped proxies (models/NAME), comma separated (default: every one)")
    ap.add_argument("--factor", type=_common.count(1), default=10,
                    help="effort of the heavy attack, x the default's (default 10)")
    ap.add_argument("--top", type=_common.count(0), default=3,
                    help="per family, the constraints the default attack found worst (default 3)")
    ap.add_argument("--random", type=_common.count(0), default=2,
                    help="per family, further constraints picked at random (seeded, default 2)")
    ap.add_argument("--out", help="write the rows as JSON to this file")
    args = ap.parse_args(argv)
    names = args.proxies
    if args.top + args.random == 0:
        ap.error("--top and --random: not both 0 (the heavy attack needs rows)")
    _common.check_outputs(out=args.out)
    torch.set_num_threads(1)
    rows: list[dict] = []
    print("| proxy | family | default | heavy | short | ok | s default | s heavy |")
    print("|---|---|---:|---:|---:|---|---:|---:|")
    for name in names:
        for r in bench(name, args.factor, args.top, args.random):
            rows.append(r)
            print(f"| {r['proxy']} | {r['family']} | {r['default']:.6g} | {r['heavy']:.6g} | "
                  f"{100 * r['short']:.2f} % | {'yes' if r['ok'] else 'NO'} | "
                  f"{r['seconds_default']:.1f} | {r['seconds_heavy']:.1f} |", flush=True)
    if args.out:
        _common.write_json(args.out, rows)
    bad = [r for r in rows if not r["ok"]]
    print(f"\n{len(rows) - len(bad)} of {len(rows)} families within 1 % (or 1e-5) of heavy")
    return 0


if __name__ == "__main__":
    _common.run(main)
