"""Regenerate ``bound_rows.json``: the violation-row upper bounds of shipped proxies.

Usage: ``PYTHONPATH=. OMP_NUM_THREADS=1 python tests/data/bound_rows/make_fixture.py``

The fixture pins what :func:`gridverify.certify.certify._bound_rows` returned
before the row selections became index vectors (issue 15), so
``tests/certify/test_bound_rows_fixture.py`` can check the change is in memory,
not in results: for each case and method, the bounds of every violation row
(``ibp``, ``crown``) and of a fixed subset of rows (every method, alpha-CROWN
with CROWN and alpha-CROWN intermediate bounds).  Values are stored as JSON
floats (exact round trip); unbounded rows as ``null``.
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
#: (case, model) pairs pinned by the fixture
MODELS = (
    ("pglib_opf_case14_ieee", "models/case14_relu"),
    ("pglib_opf_case14_ieee", "models/case14_tanh"),
    ("pglib_opf_case57_ieee", "models/case57_relu"),
    ("pglib_opf_case118_ieee", "models/case118_relu"),
)
#: (label, method, intermediate, all rows?)
RUNS = (
    ("ibp", "ibp", "crown", True),
    ("crown", "crown", "crown", True),
    ("ibp_subset", "ibp", "crown", False),
    ("crown_subset", "crown", "crown", False),
    ("alpha_subset", "alpha-crown", "crown", False),
    ("alpha_alpha_subset", "alpha-crown", "alpha-crown", False),
)
SUBSET = 12
ALPHA_ITERATIONS = 5


def instance(case_name: str, model: str) -> tuple:
    """The composed graph, region, physics graph and subset rows of one pinned pair."""
    from gridverify.certify.certify import _resolve_constraints, default_region, proxy_graph
    from gridverify.grid import load_compiled
    from gridverify.physics.acp import build_physics_graph, compose_with_proxy
    from gridverify.proxy.load import load_proxy

    root = HERE.parents[2]
    case = load_compiled(case_name)
    prox = load_proxy(root / model, case=case)
    physics = build_physics_graph(case, _resolve_constraints(case, None))
    graph = compose_with_proxy(physics, proxy_graph(prox))
    region = default_region(case, prox)
    rng = np.random.default_rng(15)
    subset = np.sort(rng.choice(physics.n_rows, size=SUBSET, replace=False))
    return graph, region, physics, subset


def _num(v: float) -> float | None:
    return float(v) if math.isfinite(v) else None


def main() -> int:
    from gridverify.certify.certify import _bound_rows

    torch.set_num_threads(1)
    out: dict = {"alpha_iterations": ALPHA_ITERATIONS, "subset": SUBSET, "entries": []}
    for case_name, model in MODELS:
        graph, region, physics, subset = instance(case_name, model)
        for label, method, interm, every in RUNS:
            rows = np.arange(physics.n_rows) if every else subset
            up = _bound_rows(graph, region, rows, physics.n_rows, method, ALPHA_ITERATIONS,
                             interm)
            out["entries"].append({
                "case": case_name, "model": model, "run": label, "method": method,
                "intermediate": interm, "rows": rows.tolist(),
                "upper": [_num(v) for v in up],
            })
            print(case_name, model, label, len(rows), file=sys.stderr, flush=True)
    tmp = HERE / "bound_rows.json.tmp"
    tmp.write_text(json.dumps(out, indent=0) + "\n")
    os.replace(tmp, HERE / "bound_rows.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
