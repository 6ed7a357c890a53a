"""``certify`` over factor regions: it bounds and searches over the factors, so the
loads keep their correlation; every figure is checked at loads of the region itself.

The shipped case14 relu proxy over ``scale:0.9,1.1`` (every load at one factor of
nominal) is a one-dimensional region: dense sampling along it is a near-exact
maximum, against which the certificate's bounds are checked from both sides.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from gridverify.bab import BabOptions, bab_maximize
from gridverify.certify import Certificate, CertifyOptions, certify, evaluate_violations
from gridverify.certify.certify import _resolve_constraints, on_search_space, proxy_graph
from gridverify.cli import main
from gridverify.grid import load_compiled
from gridverify.physics.acp import build_physics_graph, compose_with_proxy
from gridverify.proxy.load import load_proxy
from gridverify.spec import parse_region
from gridverify.spec.constraints import Constraint

_MODELS = Path(__file__).resolve().parents[2] / "models"
_CONS = "p_balance,q_balance,thermal_fr[1,2,3],angle_max[1,2]"


@pytest.fixture(scope="module")
def case14():
    return load_compiled("pglib_opf_case14_ieee")


@pytest.fixture(scope="module")
def proxy(case14):
    return load_proxy(_MODELS / "case14_relu", case=case14)


def _line_max(case, module, cons, region, n=20_001):
    """Max violation per constraint over ``n`` evenly spaced loads of a one-factor region."""
    e = np.linspace(-1.0, 1.0, n)[:, None]
    return evaluate_violations(case, module, cons, region.to_loads(e), batch=20_000).max(axis=0)


def _on_line(case, x):
    """Whether the loads ``x`` are one common factor times nominal."""
    nom = np.concatenate([np.asarray(case.pd, float), np.asarray(case.qd, float)])
    s = x[nom != 0] / nom[nom != 0]
    return bool(np.allclose(s, s[0], rtol=0, atol=1e-9) and 0.9 - 1e-9 <= s[0] <= 1.1 + 1e-9)


def test_scale_region_certificate_is_sound_and_reports_loads(case14, proxy, check_sound):
    region = parse_region("scale:0.9,1.1", case14)
    cert = certify(case14, proxy, region, constraints=_CONS,
                   options=CertifyOptions(samples=256))
    check_sound(cert, case14, proxy.module, n=5_000)
    cons = [Constraint(c.family, c.component, c.index) for c in cert.constraints]
    dense = _line_max(case14, proxy.module, cons, region)
    ub = np.array([c.upper_bound for c in cert.constraints])
    att = np.array([c.attained for c in cert.constraints])
    assert np.all(dense <= ub)  # sound along the whole line
    # found values are attained on the line: at most what the grid of 20,001 factors
    # misses between its points (the attack may land between them)
    assert np.all(att <= dense + 1e-6)
    # the worst loads lie in the region (one factor for every load), and their values
    # are the violations there
    worst = np.stack([c.worst_load for c in cert.constraints])
    assert all(_on_line(case14, x) for x in worst)
    again = evaluate_violations(case14, proxy.module, cons, worst)
    np.testing.assert_allclose(np.diag(again), att, rtol=0, atol=1e-12)
    # the box enclosing the line leaves more open than the line itself
    boxed = certify(case14, proxy, parse_region("box:0.9,1.1", case14), constraints=_CONS,
                    options=CertifyOptions(samples=256, radius=False))
    assert all(b.upper_bound >= c.upper_bound - 1e-9
               for b, c in zip(boxed.constraints, cert.constraints))
    # the certificate keeps its factors through JSON
    back = Certificate.from_dict(json.loads(json.dumps(cert.to_dict())))
    np.testing.assert_array_equal(back.region.factors, region.factors)
    assert back.region.describe() == "scale:0.9,1.1"


def test_bab_over_one_factor_matches_the_dense_maximum(case14, proxy):
    """On one factor, branch-and-bound (input splitting, chosen by ``auto``) brings the
    loosest balance bound to within 1e-3 of the dense maximum along the line."""
    region = parse_region("scale:0.9,1.1", case14)
    cons = _resolve_constraints(case14, "p_balance")
    physics = build_physics_graph(case14, cons)
    graph = on_search_space(compose_with_proxy(physics, proxy_graph(proxy)), region)
    assert graph.input_size == 1
    dense = _line_max(case14, proxy.module, cons, region)
    k = int(np.argmax(dense))
    rows = np.flatnonzero(physics.row_constraint == k)
    spec = torch.zeros(rows.size, physics.n_rows, dtype=torch.float64)
    spec[torch.arange(rows.size), torch.from_numpy(rows)] = 1.0
    res = bab_maximize(graph, torch.tensor([-1.0]), torch.tensor([1.0]), spec,
                       options=BabOptions(tolerance=1e-4, timeout=120, clock="cpu"))
    assert res.branching == "input"
    assert res.upper_bound >= dense[k] - 1e-9
    assert res.upper_bound - dense[k] <= 1e-3, (res.upper_bound, dense[k], res.reason)
    assert _on_line(case14, region.to_loads(res.witness)[0])


def test_correlated_region_certificate_is_sound(case14, proxy, check_sound):
    region = parse_region("correlated:0.92,1.08,0.02", case14)
    cert = certify(case14, proxy, region, constraints=_CONS,
                   options=CertifyOptions(samples=256))
    check_sound(cert, case14, proxy.module, n=20_000)
    assert {c.status for c in cert.constraints} >= {"certified", "violated"}
    # worst loads: pd and qd of each load by one factor, within [0.92 - r, 1.08 + r]
    nom = np.concatenate([np.asarray(case14.pd, float), np.asarray(case14.qd, float)])
    n = int(case14.n_load)
    for c in cert.constraints:
        s = c.worst_load / nom
        np.testing.assert_allclose(s[:n][nom[n:] != 0], s[n:][nom[n:] != 0], atol=1e-9)
        assert np.all((s[:n] >= 0.9 - 1e-9) & (s[:n] <= 1.1 + 1e-9))


def test_zone_region_certificate_is_sound_and_worst_loads_keep_zones(case14, proxy,
                                                                      check_sound):
    from gridverify.spec.zones import load_zones

    region = parse_region("zones:0.9,1.1,3", case14)
    cert = certify(case14, proxy, region, constraints=_CONS, method="bab",
                   options=CertifyOptions(samples=256, timeout=12,
                                          bab=BabOptions(timeout=2.0)))
    check_sound(cert, case14, proxy.module, n=20_000)
    nom = np.concatenate([np.asarray(case14.pd, float), np.asarray(case14.qd, float)])
    n, zones = int(case14.n_load), load_zones(case14, 3)
    for c in cert.constraints:  # each zone's loads at one factor in [0.9, 1.1]
        s = c.worst_load[:n] / nom[:n]
        for z in range(3):
            np.testing.assert_allclose(s[zones == z], s[zones == z][0], atol=1e-9)
        assert np.all((s >= 0.9 - 1e-9) & (s <= 1.1 + 1e-9))


def test_cli_certify_over_a_factor_region(tmp_path, capsys):
    out = tmp_path / "cert.json"
    rc = main(["certify", "pglib_opf_case14_ieee", "--model", str(_MODELS / "case14_relu"),
               "--region", "scale:0.95,1.05", "--constraints", "thermal_fr[1,2]",
               "--method", "crown", "--samples", "32", "--json", "--out", str(out)])
    assert rc == 0
    d = json.loads(out.read_text())
    assert d["region"]["kind"] == "scale" and d["region"]["factors"]["shape"] == [22, 1]
    capsys.readouterr()
    from dataclasses import replace

    from gridverify.cli.certify import open_hint

    cert = Certificate.from_dict(d)  # as if left open: the hint offers no factor region again
    cert = replace(cert, constraints=[replace(c, status="open") for c in cert.constraints])
    hint = " ".join(open_hint(cert).split())
    assert "a narrower region, or a proxy" in hint and "--region scale" not in hint
    rc = main(["certify", "pglib_opf_case14_ieee", "--model", str(_MODELS / "case14_relu"),
               "--region", "scale:0.95", "--constraints", "thermal_fr[1]"])
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["gridverify: error: region 'scale:0.95': expected scale:A,B"]
