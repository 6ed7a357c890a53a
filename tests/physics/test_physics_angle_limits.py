"""PowerModels' angle-limit correction is the same in every backend.

The case is ``pglib_opf_case5_pjm`` with its six branches' angle limits
rewritten to values that need the correction (both 0, beyond +-90 degrees,
+-90 degrees exactly, unlimited) and values that do not.  The OPF model, the physics graph, the
sampled evaluation and the exact SCIP check must all use the corrected limits.
"""

from __future__ import annotations

import importlib.util
import math
import re
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from gridverify.grid import load_compiled
from gridverify.grid.case import resolve_case_path
from gridverify.physics.acp import build_physics_graph
from gridverify.physics.equations import angle_limits, limit_values
from gridverify.physics.evaluate import violation_values
from gridverify.spec.constraints import Constraint

# raw (angmin, angmax) in degrees per branch, and PowerModels' corrected limits (a limit
# at +-90 degrees exactly is corrected: PowerModels tests angmin <= -pi/2, angmax >= pi/2)
RAW = [(0.0, 0.0), (-90.0, 90.0), (-math.inf, math.inf), (-30.0, 45.0), (-89.0, 91.0),
       (0.0, 30.0)]
CORRECTED = [(-60.0, 60.0), (-60.0, 60.0), (-60.0, 60.0), (-30.0, 45.0), (-89.0, 60.0),
             (0.0, 30.0)]


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    text = resolve_case_path("pglib_opf_case5_pjm").read_text()
    head, body = text.split("mpc.branch = [\n", 1)
    rows, tail = body.split("];", 1)
    lines = [ln for ln in rows.splitlines() if ln.strip()]
    assert len(lines) == len(RAW)
    out = []
    for ln, (lo, hi) in zip(lines, RAW):
        cols = re.split(r"\s+", ln.strip().rstrip(";"))
        cols[-2:] = [f"{lo:g}".replace("inf", "Inf"), f"{hi:g}".replace("inf", "Inf")]
        out.append("\t" + "\t ".join(cols) + ";")
    path = tmp_path_factory.mktemp("anglimits") / "case5_anglimits.m"
    path.write_text(head + "mpc.branch = [\n" + "\n".join(out) + "\n];" + tail)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # limits beyond the plausible range warn
        return load_compiled(path, emit_warnings=False)


def _expected(case):
    lo = np.deg2rad([a for a, _ in CORRECTED])
    hi = np.deg2rad([b for _, b in CORRECTED])
    return lo, hi


def _angle_constraints(case):
    n = case.n_branch
    return ([Constraint("angle_max", int(case.branch_row[k]), k) for k in range(n)]
            + [Constraint("angle_min", int(case.branch_row[k]), k) for k in range(n)])


def _outputs(case, rng, b):
    g, n = case.n_gen, case.n_bus
    y = np.concatenate([rng.uniform(0, 1, (b, 2 * g)), rng.uniform(0.9, 1.1, (b, n)),
                        rng.uniform(-1.5, 1.5, (b, n))], axis=1)
    x = np.tile(np.concatenate([case.pd, case.qd]), (b, 1))
    return x, y


def _reference(case, y):
    lo, hi = _expected(case)
    va = y[:, 2 * case.n_gen + case.n_bus:]
    d = va[:, case.f_bus] - va[:, case.t_bus]
    return np.concatenate([d - hi, lo - d], axis=1)


def test_correction_rule(case):
    np.testing.assert_allclose(np.rad2deg(case.angmin), [a for a, _ in RAW])
    lo, hi = angle_limits(case)
    elo, ehi = _expected(case)
    np.testing.assert_allclose(lo, elo, rtol=0, atol=1e-15)
    np.testing.assert_allclose(hi, ehi, rtol=0, atol=1e-15)
    np.testing.assert_array_equal(limit_values(case, "angle_min"), lo)
    np.testing.assert_array_equal(limit_values(case, "angle_max"), hi)


def test_correction_is_centred_on_a_phase_shift():
    """Padded limits sit about the branch's phase shift, taken in [-180, 180) degrees;
    limits that need no correction stay as written."""
    from types import SimpleNamespace

    raw = [(-360.0, 360.0, 150.0), (-360.0, 360.0, 330.0), (0.0, 0.0, -30.0),
           (-30.0, 45.0, 150.0), (-100.0, 20.0, 30.0), (-360.0, 360.0, 0.0)]
    want = [(90.0, 210.0), (-90.0, 30.0), (-90.0, 30.0), (-30.0, 45.0), (-30.0, 20.0),
            (-60.0, 60.0)]
    branches = SimpleNamespace(**{name: np.deg2rad([r[i] for r in raw])
                                  for i, name in enumerate(("angmin", "angmax", "shift"))})
    lo, hi = angle_limits(branches)
    np.testing.assert_allclose(np.rad2deg(lo), [a for a, _ in want], atol=1e-12)
    np.testing.assert_allclose(np.rad2deg(hi), [b for _, b in want], atol=1e-12)


def test_one_sided_correction_never_empties_the_range():
    """One side corrected about a large shift would cross the kept side: it falls
    back to PowerModels' +-60 about 0, then to 60 degrees beyond the kept side."""
    from types import SimpleNamespace

    raw = [(-360.0, 30.0, 100.0), (-30.0, 360.0, -100.0), (-360.0, 0.0, 60.0),
           (-360.0, -70.0, 0.0), (70.0, 360.0, 0.0), (-360.0, 30.0, -20.0),
           (-360.0, -80.0, 150.0)]
    want = [(-60.0, 30.0), (-30.0, 60.0), (-60.0, 0.0), (-130.0, -70.0), (70.0, 130.0),
            (-80.0, 30.0), (-140.0, -80.0)]
    branches = SimpleNamespace(**{name: np.deg2rad([r[i] for r in raw])
                                  for i, name in enumerate(("angmin", "angmax", "shift"))})
    lo, hi = angle_limits(branches)
    np.testing.assert_allclose(np.rad2deg(lo), [a for a, _ in want], atol=1e-12)
    np.testing.assert_allclose(np.rad2deg(hi), [b for _, b in want], atol=1e-12)
    # on random limits and shifts the corrected range is never empty
    rng = np.random.default_rng(0)
    n = 20_000
    a = rng.choice([-360.0, -120.0, -90.0, -45.0, 0.0, 10.0, 80.0], n)
    b = a + rng.choice([0.0, 20.0, 90.0, 200.0, 720.0], n)
    rand = SimpleNamespace(angmin=np.deg2rad(a), angmax=np.deg2rad(b),
                           shift=np.deg2rad(rng.uniform(-180, 180, n)))
    lo, hi = angle_limits(rand)
    assert bool((lo <= hi).all()) and bool(np.isfinite(lo).all() & np.isfinite(hi).all())


def test_opf_model_uses_corrected_limits(case):
    import pyomo.environ as pyo

    from gridverify.opf.acopf import _build_model

    m = _build_model(case)
    elo, ehi = _expected(case)
    for k in range(case.n_branch):
        assert pyo.value(m.angle_diff[k].lower) == pytest.approx(elo[k], abs=1e-15)
        assert pyo.value(m.angle_diff[k].upper) == pytest.approx(ehi[k], abs=1e-15)


def test_graph_and_evaluation_use_corrected_limits(case):
    cons = _angle_constraints(case)
    phys = build_physics_graph(case, cons)
    x, y = _outputs(case, np.random.default_rng(3), 32)
    (rows,) = phys.graph.evaluate({"load": torch.from_numpy(x), "proxy_out": torch.from_numpy(y)},
                               dtype=torch.float64)
    ref = _reference(case, y)
    np.testing.assert_allclose(phys.reduce(rows.numpy()), ref, rtol=0, atol=1e-12)
    np.testing.assert_allclose(violation_values(case, cons, x, y), ref, rtol=0, atol=1e-12)
    yt = torch.from_numpy(y)
    np.testing.assert_allclose(violation_values(case, cons, torch.from_numpy(x), yt).numpy(),
                               ref, rtol=0, atol=1e-12)


@pytest.mark.skipif(importlib.util.find_spec("pyscipopt") is None, reason="pyscipopt missing")
def test_exact_check_uses_corrected_limits(case):
    from gridverify.exact import ExactOptions, exact_worst_case

    x, y = _outputs(case, np.random.default_rng(5), 1)
    # a constant proxy: the exact worst case is the violation at its output
    lin = nn.Linear(x.shape[1], y.shape[1]).double()
    with torch.no_grad():
        lin.weight.zero_()
        lin.bias.copy_(torch.from_numpy(y[0]))
    module = nn.Sequential(lin)
    ref = _reference(case, y)[0]
    lo, hi = 0.95 * x[0], 1.05 * x[0]
    box = np.minimum(lo, hi), np.maximum(lo, hi)
    opts = ExactOptions(time_limit=30.0)
    for k, c in enumerate(_angle_constraints(case)):
        res = exact_worst_case(case, module, box[0], box[1], c, opts)
        assert res.value == pytest.approx(ref[k], abs=1e-6)
        assert res.witness_value == pytest.approx(ref[k], abs=1e-12)
        assert math.isfinite(res.bound)


def test_selection_covers_every_branch_the_opf_limits(case):
    """The angle families of a selection are the branches the AC-OPF limits (all six,
    the unlimited one (``Inf``) included, at its corrected 60 degrees), in the graph's
    rows too."""
    from gridverify.spec.constraints import ConstraintSelection, select_constraints

    cons = select_constraints(case, ConstraintSelection(("angle_max", "angle_min")))
    assert cons == _angle_constraints(case)
    phys = build_physics_graph(case, cons)
    x, y = _outputs(case, np.random.default_rng(5), 16)
    (rows,) = phys.graph.evaluate({"load": torch.from_numpy(x), "proxy_out": torch.from_numpy(y)},
                               dtype=torch.float64)
    np.testing.assert_allclose(phys.reduce(rows.numpy()), _reference(case, y), rtol=0,
                               atol=1e-12)
