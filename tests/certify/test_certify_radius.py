"""``CertifyOptions.radius``: where a constraint the bound leaves open or violated still holds.

The radius of a constraint is a claim about the box ``region.shrunk(radius)``:
checked here on the shipped case57 relu proxy by sampling that box and attacking
inside it, and against the violating load, which must lie outside it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from gridverify.certify import Certificate, CertifyOptions, certify, evaluate_violations
from gridverify.certify.options import RADII, radius_midpoint, radius_text
from gridverify.cli import main
from gridverify.display import certificate_frame, certificate_html, plot
from gridverify.errors import SpecError
from gridverify.grid import load_compiled
from gridverify.proxy.load import load_proxy
from gridverify.spec import box_region
from gridverify.spec.constraints import Constraint
from gridverify.spec.region import Region

_MODELS = Path(__file__).resolve().parents[2] / "models"
# violated balance constraints with small worst cases, open thermal ones, a certified one
_CONS = "p_balance[4,7,11,21,24,26],thermal_fr[7,8,11,19],vm_max[1]"


def _sampled_max(case, module, cons, region, n):
    """Max violation per constraint over ``n`` uniform loads of the box and its corners."""
    x = np.concatenate([region.sample(n, np.random.default_rng(7)), region.lower[None],
                        region.upper[None]])
    return evaluate_violations(case, module, cons, x, batch=20_000).max(axis=0)


@pytest.fixture(scope="module")
def case57():
    return load_compiled("pglib_opf_case57_ieee")


def test_radius_holds_on_its_box_and_keeps_the_witness_outside(case57, check_sound):
    proxy = load_proxy(_MODELS / "case57_relu", case=case57)
    region = box_region(case57, 0.9, 1.1)
    cert = certify(case57, proxy, region, constraints=_CONS, method="crown",
                   options=CertifyOptions(samples=256))
    check_sound(cert, case57, proxy.module, n=20_000)
    statuses = {c.status for c in cert.constraints}
    assert statuses == {"certified", "violated", "open"}
    for c in cert.constraints:
        if c.status == "certified":
            assert c.radius == 1.0
        else:
            assert c.radius is None or 0 < c.radius < 1
    partial = [c for c in cert.constraints if c.status != "certified" and c.radius is not None]
    assert {c.status for c in partial} == {"violated", "open"}
    for r in sorted({c.radius for c in partial}):
        sub = region.shrunk(r)
        assert region.contains(sub) and np.all(sub.upper - sub.lower > 0)
        group = [c for c in partial if c.radius == r]
        cons = [Constraint(c.family, c.component, c.index) for c in group]
        thr = np.array([c.threshold for c in group])
        assert np.all(_sampled_max(case57, proxy.module, cons, sub, 20_000) <= thr)
        # the attack inside the box (every constraint attacked: IBP certifies none)
        inside = certify(case57, proxy, sub, constraints=cons, method="ibp",
                         options=CertifyOptions(samples=0, attack="all", radius=False))
        for c, again in zip(group, inside.constraints):
            assert again.attained <= c.threshold, (c.family, c.component, again.attained)
            assert again.radius is None
        for c in group:
            if c.status == "violated":
                w = c.witness
                assert np.any((w < sub.lower) | (w > sub.upper)), (c.family, c.component)
    assert cert.radius_note().startswith("certified on a smaller box")
    for fam, d in cert.families().items():  # the family's radius: its least constraint's
        rows = [c for c in cert.constraints if c.family == fam]
        assert d["radius"] == min(c.radius or 0.0 for c in rows)
    assert cert.families()["vm_max"]["radius"] == 1.0
    frame = certificate_frame(cert)
    assert [None if np.isnan(r) else r for r in frame["radius"]] == [
        c.radius for c in cert.constraints]
    assert "certified on a smaller box" in certificate_html(cert)
    assert "<th>radius</th>" in certificate_html(cert)
    fig = plot(cert, kind="radius")
    lines = {ln.get_label().split(" (")[0]: ln for ln in fig.axes[0].get_lines()}
    assert set(lines) == {"all", "p_balance", "thermal_fr", "vm_max"}
    xs, share = lines["all"].get_data()
    got = np.array([-1.0 if c.radius is None else c.radius for c in cert.constraints])
    np.testing.assert_allclose(share, [(got >= x).mean() for x in xs])
    assert share[-1] == np.mean([c.status == "certified" for c in cert.constraints])
    again = Certificate.from_json(cert.to_json())
    assert [c.radius for c in again.constraints] == [c.radius for c in cert.constraints]


def _bisection_points(lo: float, hi: float, steps: int) -> set[float]:
    """Every radius ``steps`` bisection steps can record inside the bracket ``[lo, hi)``."""
    if steps == 0:
        return {lo}
    mid = radius_midpoint(lo, hi)
    return _bisection_points(lo, mid, steps - 1) | _bisection_points(mid, hi, steps - 1)


def test_bisection_refines_the_ladder(case57):
    """``radius_steps`` only ever raises a radius, within the ladder's bracket, and each
    refined radius is one CROWN certifies the constraint at (checked again here)."""
    proxy = load_proxy(_MODELS / "case57_relu", case=case57)
    region = box_region(case57, 0.9, 1.1)
    certs = {steps: certify(case57, proxy, region, constraints=_CONS, method="crown",
                            options=CertifyOptions(samples=64, radius_steps=steps))
             for steps in (0, 3)}
    ladder = [c.radius for c in certs[0].constraints]
    refined = [c.radius for c in certs[3].constraints]
    assert all(r is None or r == 1.0 or r in RADII for r in ladder)
    assert [r is None for r in ladder] == [r is None for r in refined]
    above = dict(zip(RADII, (1.0, *RADII[:-1])))  # ladder radius -> the failed one above it
    moved = 0

    def certified_at(c, radius: float) -> bool:  # noqa: ANN001
        again = certify(case57, proxy, region.shrunk(radius),
                        constraints=[Constraint(c.family, c.component, c.index)],
                        method="crown", options=CertifyOptions(samples=0, attack="none",
                                                               radius=False))
        return again.constraints[0].status == "certified"

    for c, lo, r in zip(certs[3].constraints, ladder, refined):
        if lo is None or lo == 1.0:
            assert r == lo
            continue
        assert lo <= r < above[lo]
        assert r in _bisection_points(lo, above[lo], 3)
        moved += r > lo
        # the same three bisection steps, one constraint at a time: each step keeps
        # the half whose end it certified
        a, b = lo, above[lo]
        for _ in range(3):
            m = radius_midpoint(a, b)
            if not a < m < b:
                break
            a, b = (m, b) if certified_at(c, m) else (a, m)
        assert r == a, (c.family, c.component, r, a)
    assert moved > 0
    with pytest.raises(SpecError, match="radius_steps"):
        CertifyOptions(radius_steps=-1)


def test_no_radius_when_not_asked(case57):
    proxy = load_proxy(_MODELS / "case57_relu", case=case57)
    cert = certify(case57, proxy, box_region(case57, 0.9, 1.1), constraints="thermal_fr[8]",
                   method="crown", options=CertifyOptions(samples=32, radius=False))
    assert [c.radius for c in cert.constraints] == [None]
    assert cert.radius_note() is None
    assert cert.families()["thermal_fr"]["radius"] is None
    assert "radius" not in certificate_html(cert)
    with pytest.raises(ValueError, match="no radius"):
        plot(cert, kind="radius")


def test_shrunk_region():
    case = load_compiled("pglib_opf_case14_ieee")
    region = box_region(case, 0.9, 1.1)
    sub = region.shrunk(0.25)
    np.testing.assert_allclose(sub.upper - sub.lower, 0.25 * (region.upper - region.lower))
    np.testing.assert_allclose(sub.center, region.center)
    whole = region.shrunk(1.0)
    assert region.contains(whole) and whole.contains(region)
    assert dict(sub.params)["radius"] == 0.25 and sub.describe() == region.describe()
    assert dict(sub.shrunk(0.5).params)["radius"] == 0.125
    assert Region.from_dict(sub.to_dict()).params == sub.params
    for bad in (0.0, -0.5, 1.5, float("nan")):
        with pytest.raises(SpecError, match="radius"):
            region.shrunk(bad)


def test_cli_radius_flag(capsys):
    args = ["certify", "pglib_opf_case57_ieee", "--model", str(_MODELS / "case57_relu"),
            "--constraints", "thermal_fr[8],vm_max[1]", "--method", "crown", "--samples", "32"]
    code = main(args + ["--json"])
    d = json.loads(capsys.readouterr().out)
    assert code == 3
    r, one = (c["radius"] for c in d["constraints"])
    assert 0.25 <= r < 0.3536 and one == 1.0
    assert d["provenance"]["options"]["radius"] is True
    main(args + ["--no-radius", "--json"])
    assert [c["radius"] for c in json.loads(capsys.readouterr().out)["constraints"]] == [None,
                                                                                          None]
    main(args + ["--no-progress"])
    out = capsys.readouterr().out
    assert "certified on a smaller box about the region's centre" in out
    assert f"1 of 1 open (radius {radius_text(r)} to {radius_text(r)}" in " ".join(out.split())
    main(args + ["--radius-steps", "0", "--json"])
    assert [c["radius"] for c in json.loads(capsys.readouterr().out)["constraints"]] == [0.25,
                                                                                          1.0]


def test_radius_text_rounds_down():
    for r in (*RADII, 0.2726, 0.02409, 0.009263, 0.123456, 1.0):
        shown = float(radius_text(r))
        assert shown <= r and shown > r * (1 - 1e-2)
    assert radius_text(0.2726) == "0.272" and radius_text(0.0078) == "0.0078"


def test_ibp_radii_are_ibp_claims():
    """With ``method="ibp"`` the radius stage bounds with IBP too: a stronger bound would
    give constraints that IBP leaves open radii of 0.9999 (CROWN certifies them on the
    whole region).  Every radius is one IBP certifies the constraint at."""
    case = load_compiled("pglib_opf_case14_ieee")
    proxy = load_proxy(_MODELS / "case14_relu", case=case)
    region = box_region(case, 0.9, 1.1)
    cert = certify(case, proxy, region, constraints="p_balance,thermal_fr", method="ibp",
                   options=CertifyOptions(samples=64, radius_steps=1))
    partial = [c for c in cert.constraints if c.radius is not None and c.radius < 1]
    assert partial and {c.status for c in cert.constraints} >= {"open", "certified"}
    for c in partial:
        again = certify(case, proxy, region.shrunk(c.radius),
                        constraints=[Constraint(c.family, c.component, c.index)],
                        method="ibp", options=CertifyOptions(samples=0, attack="none",
                                                             radius=False))
        assert again.constraints[0].status == "certified", (c.family, c.component, c.radius)
