"""certify(): bounds, falsification, statuses, certificates, sampling soundness."""

from __future__ import annotations

import json
import math
import stat
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

import gridverify
from gridverify.attack import AttackOptions
from gridverify.bab import BabOptions
from gridverify.bounds import BoundOptions
from gridverify.certify import (
    Certificate,
    CertifyOptions,
    RegionWarning,
    certify,
    decide_status,
    evaluate_violations,
)
from gridverify.errors import GridverifyError, ProxyError, SpecError
from gridverify.grid import load_compiled
from gridverify.physics.evaluate import violation_values
from gridverify.proxy.load import InputRegion, load_proxy
from gridverify.spec import FAMILIES, box_region, explicit_region, pglearn_region
from gridverify.spec.constraints import Constraint


@pytest.fixture(scope="module")
def case14():
    return load_compiled("pglib_opf_case14_ieee")


CONTRACT_KEYS = {"family", "component", "upper_bound", "attained", "threshold", "status",
                 "witness"}


@pytest.mark.parametrize("method", ["ibp", "crown", "alpha-crown"])
def test_certify_methods_sound(case14, tiny_mlp, check_sound, method):
    net = tiny_mlp(case14, hidden=(16, 16), act="relu", seed=1)
    proxy = load_proxy(net, case=case14)
    region = box_region(case14, 0.9, 1.1)
    cert = certify(case14, proxy, region, method=method,
                   options=CertifyOptions(samples=256, attack="all", attack_options=AttackOptions(
                                              steps=10, restarts=2)))
    assert {c.family for c in cert.constraints} == set(FAMILIES)
    for c in cert.constraints:
        assert c.status == decide_status(c.upper_bound, c.attained, c.threshold)
        assert math.isfinite(c.upper_bound) and c.attained <= c.upper_bound
        # the worst load lies in the region and reproduces the attained value in float64
        assert np.all(c.worst_load >= region.lower) and np.all(c.worst_load <= region.upper)
    check_sound(cert, case14, proxy.module)
    # witnesses re-evaluate to their attained violation
    viol = [c for c in cert.constraints if c.status == "violated"]
    assert viol, "a start-point proxy violates the balance equations"
    from gridverify.spec.constraints import Constraint

    for c in viol[:10]:
        v = evaluate_violations(case14, proxy.module, [Constraint(c.family, c.component,
                                                                  c.index)], c.witness[None])
        assert v[0, 0] == pytest.approx(c.attained, rel=1e-12, abs=1e-12)
        assert v[0, 0] > c.threshold


def test_crown_tighter_than_ibp(case14, tiny_mlp, check_sound):
    net = tiny_mlp(case14, hidden=(16, 16), act="tanh", seed=2)
    region = box_region(case14, 0.9, 1.1)
    opts = CertifyOptions(samples=64, attack="none")
    ibp = certify(case14, net, region, method="ibp", options=opts)
    crown = certify(case14, net, region, method="crown", options=opts)
    ub_i = np.array([c.upper_bound for c in ibp.constraints])
    ub_c = np.array([c.upper_bound for c in crown.constraints])
    assert np.all(ub_c <= ub_i + 1e-9)
    assert np.mean(ub_c < ub_i - 1e-6) > 0.3
    check_sound(ibp, case14, net)
    check_sound(crown, case14, net)


@pytest.mark.parametrize("act", ["tanh", "sigmoid", "gelu"])
def test_smooth_proxies_sound_pglearn(case14, tiny_mlp, check_sound, act):
    net = tiny_mlp(case14, hidden=(8, 8), act=act, seed=3)
    proxy = load_proxy(net, case=case14)
    region = pglearn_region(case14, 0.8, 1.2, 0.05)
    cert = certify(case14, proxy, region, method="crown",
                   options=CertifyOptions(samples=128,
                                          attack_options=AttackOptions(steps=10, restarts=2)))
    check_sound(cert, case14, proxy.module)


def test_certificate_json_contract_and_roundtrip(case14, tiny_mlp, tmp_path, check_sound):
    net = tiny_mlp(case14)
    cert = certify(case14, net, box_region(case14, 0.95, 1.05), constraints="p_balance,vm_max",
                   method="crown", options=CertifyOptions(samples=32, attack="none"))
    d = json.loads(cert.to_json())
    for key in ("case", "model", "region", "method", "seconds", "summary", "constraints"):
        assert key in d
    assert set(d["region"]) >= {"lower", "upper"}
    assert len(d["region"]["lower"]) == 2 * case14.n_load
    assert set(d["summary"]) >= {"certified", "violated", "open"}
    for c in d["constraints"]:
        assert CONTRACT_KEYS <= set(c)
        assert c["family"] in ("p_balance", "vm_max")
        assert (c["witness"] is not None) == (c["status"] == "violated")
    assert {c["component"] for c in d["constraints"] if c["family"] == "vm_max"} == set(
        case14.bus_ids.tolist())
    path = cert.write(tmp_path / "sub" / "cert.json")
    back = Certificate.read(path)
    assert back.summary == cert.summary and back.region.describe() == "box:0.95,1.05"
    for a, b in zip(back.constraints, cert.constraints):
        assert (a.family, a.component, a.status) == (b.family, b.component, b.status)
        assert a.upper_bound == b.upper_bound and a.attained == b.attained
    assert d["provenance"]["case_hash"] == case14.content_hash
    assert len(d["provenance"]["model_hash"]) == 64
    assert "torch" in d["provenance"]["versions"]
    assert not list(path.parent.glob(".*tmp"))
    from gridverify.fileio import default_file_mode

    assert stat.S_IMODE(path.stat().st_mode) == default_file_mode()
    assert "bab" not in d["provenance"]  # only method bab records traces
    assert "certified" in cert._repr_html_() and case14.name in case14._repr_html_()
    check_sound(cert, case14, net)


def test_thermal_loading_and_families_summary(case14, tiny_mlp, check_sound):
    net = tiny_mlp(case14)
    cert = certify(case14, net, box_region(case14, 0.9, 1.1),
                   constraints=["thermal_fr", "thermal_to"], method="crown",
                   options=CertifyOptions(samples=32, attack="none"))
    c = cert.constraints[0]
    la, lu = c.loading()
    assert la <= lu
    assert la == pytest.approx(math.sqrt(max(c.attained + c.rate**2, 0)) / c.rate)
    fams = cert.families()
    assert set(fams) == {"thermal_fr", "thermal_to"}
    assert fams["thermal_fr"]["max_upper_bound"] == max(
        x.upper_bound for x in cert.constraints if x.family == "thermal_fr")
    check_sound(cert, case14, net)


def test_decide_status_never_certifies_nan():
    assert decide_status(float("nan"), -1.0, 0.0) == "open"
    assert decide_status(float("inf"), -1.0, 0.0) == "open"
    assert decide_status(-1.0, float("nan"), 0.0) == "certified"
    assert decide_status(1.0, 0.5, 0.1) == "violated"
    assert decide_status(0.05, 0.0, 0.1) == "certified"
    assert decide_status(0.2, 0.0, 0.1) == "open"


def test_a_bound_below_the_worst_found_is_never_certified(case14, tiny_mlp, monkeypatch):
    """Fault injection: an engine whose upper bounds are far too low.  Every constraint
    whose bound then lies below its worst found is reported open or violated with the
    'inconsistent' reason and a warning; none of them certified."""
    from gridverify.bounds import crown

    real = crown.Engine.backward

    def too_low(self, starts, relax, return_A=False):
        lo, up, lin = real(self, starts, relax, return_A)
        return lo, up - 10.0, lin

    monkeypatch.setattr(crown.Engine, "backward", too_low)
    net = tiny_mlp(case14)
    cert = certify(case14, net, box_region(case14, 0.9, 1.1), method="crown",
                   constraints="p_balance,vm_max", options=CertifyOptions(samples=64))
    bad = [c for c in cert.constraints if c.attained > c.upper_bound + 1e-6]
    assert bad
    for c in bad:
        assert c.status != "certified" and c.reason.startswith("inconsistent"), c
    assert any("bound below the worst value found" in w for w in cert.warnings)
    Certificate.from_dict(json.loads(json.dumps(cert.to_dict())))  # a readable file


def test_timeout_leaves_constraints_open(case14, tiny_mlp, check_sound):
    net = tiny_mlp(case14)
    cert = certify(case14, net, box_region(case14, 0.9, 1.1), method="crown",
                   options=CertifyOptions(timeout=1e-6, samples=8))
    assert all(c.status != "certified" for c in cert.constraints)
    assert any("timeout" in w for w in cert.warnings)
    assert cert.exit_status in (1, 3)
    check_sound(cert, case14, net)


def test_callable_package_and_exit_status(case14, tiny_mlp, check_sound):
    net = tiny_mlp(case14)
    cert = gridverify.certify(case14, net, box_region(case14, 0.9, 1.1),
                              constraints="pg_max", method="ibp",
                              options=CertifyOptions(samples=16, attack="none"))
    assert cert.summary["total"] == case14.n_gen
    expected = 1 if cert.summary["violated"] else (3 if cert.summary["open"] else 0)
    assert cert.exit_status == expected
    check_sound(cert, case14, net)


def test_bad_inputs(case14, tiny_mlp):
    case5 = load_compiled("pglib_opf_case5_pjm")
    net5 = tiny_mlp(case5)
    with pytest.raises(ProxyError):
        certify(case14, net5, None)
    p5 = load_proxy(net5, case=case5)
    with pytest.raises(SpecError, match="belongs to case"):
        certify(case14, p5, None)
    net = tiny_mlp(case14)
    with pytest.raises(SpecError, match="unknown family"):
        certify(case14, net, None, constraints="p_balanse")
    with pytest.raises(SpecError, match="no component"):
        certify(case14, net, None, constraints="thermal_fr[999]")
    with pytest.raises(SpecError, match="method"):
        certify(case14, net, None, method="magic")
    n = 2 * case14.n_load
    with pytest.raises(SpecError, match="inverted"):
        certify(case14, net, explicit_region(case14, np.ones(n), np.zeros(n)))
    with pytest.raises(SpecError):
        CertifyOptions(timeout=-1)
    assert issubclass(SpecError, GridverifyError)


def test_default_region_and_wider_region_warning(case14, tiny_mlp, check_sound):
    net = tiny_mlp(case14)
    proxy = load_proxy(net, case=case14)
    opts = CertifyOptions(samples=8, attack="none")
    cert = certify(case14, proxy, None, constraints="vm_max", method="ibp", options=opts)
    np.testing.assert_allclose(cert.region.lower, box_region(case14, 0.9, 1.1).lower)
    train = box_region(case14, 0.95, 1.05)
    trained = replace(proxy, region=InputRegion(train.lower, train.upper))
    cert = certify(case14, trained, None, constraints="vm_max", method="ibp", options=opts)
    np.testing.assert_allclose(cert.region.upper, train.upper)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        cert = certify(case14, trained, box_region(case14, 0.9, 1.1), constraints="vm_max",
                       method="ibp", options=opts)
    assert any(issubclass(w.category, RegionWarning) for w in rec)
    assert cert.warnings and "wider" in cert.warnings[0]
    check_sound(cert, case14, net)


def test_attack_improves_attained(case14, tiny_mlp, check_sound):
    net = tiny_mlp(case14, hidden=(16, 16), act="relu", seed=5, out_scale=0.5)
    region = box_region(case14, 0.8, 1.2)
    base = certify(case14, net, region, constraints="angle_max,vm_max", method="ibp",
                   options=CertifyOptions(samples=0, attack="none"))
    att = certify(case14, net, region, constraints="angle_max,vm_max", method="ibp",
                  options=CertifyOptions(samples=0, attack="all",
                                                 attack_options=AttackOptions(steps=20)))
    a0 = np.array([c.attained for c in base.constraints])
    a1 = np.array([c.attained for c in att.constraints])
    assert np.all(a1 >= a0 - 1e-12) and np.any(a1 > a0 + 1e-6)
    check_sound(base, case14, net)
    check_sound(att, case14, net)


_MODEL14 = Path(__file__).resolve().parents[2] / "models" / "case14_relu"


def test_uncertified_attack_pushes_violated_rows(case14, check_sound):
    """The default attack also climbs on rows a sample already violated, so the
    reported worst violation is not the first sample past the threshold."""
    if not _MODEL14.is_dir():
        pytest.skip("bundled case14 proxy not present")
    proxy = load_proxy(_MODEL14, case=case14)
    region = box_region(case14, 0.9, 1.1)
    assert CertifyOptions().attack == "uncertified"
    kw = dict(constraints="p_balance", method="crown")
    und = certify(case14, proxy, region, options=CertifyOptions(samples=256, attack="undecided"),
                  **kw)
    unc = certify(case14, proxy, region, options=CertifyOptions(samples=256), **kw)
    a0 = np.array([c.attained for c in und.constraints])
    a1 = np.array([c.attained for c in unc.constraints])
    assert all(c.status == "violated" for c in und.constraints)
    # rows both runs attack (undecided after sampling) come out of two different
    # searches: equal up to the search's own noise, not to rounding
    assert np.all(a1 >= a0 - 1e-3 * np.abs(a0) - 1e-12)
    assert a1.max() > a0.max() + 1e-3
    check_sound(unc, case14, proxy.module)



@pytest.mark.skipif(not _MODEL14.is_dir(), reason="bundled case14 proxy not present")
def test_bundled_case14_proxy_sound_and_onnx_agrees(case14, check_sound):
    proxy = load_proxy(_MODEL14, case=case14)
    assert "proxy " in proxy._repr_html_() and proxy.case_name in proxy._repr_html_()
    region = box_region(case14, 0.9, 1.1)
    cert = certify(case14, proxy, region, method="alpha-crown",
                   options=CertifyOptions(samples=512))
    check_sound(cert, case14, proxy.module)
    oprox = load_proxy(_MODEL14 / "model.onnx", case=case14)
    onnx = certify(case14, oprox, region,
                   method="crown", constraints="p_balance,thermal_fr,vm_min",
                   options=CertifyOptions(samples=64, attack="none"))
    check_sound(onnx, case14, proxy.module)
    for c in onnx.constraints:
        ref = cert.get(c.family, c.component)
        assert c.upper_bound >= ref.upper_bound - 1e-6 * (1 + abs(ref.upper_bound))
    # a violation counts at the lower of the graph's and onnxruntime's values
    viol = [c for c in onnx.constraints if c.status == "violated"]
    assert viol
    x = np.stack([c.worst_load for c in viol])
    y = oprox.module.reference(x)[:, : oprox.output_size]
    cons = [Constraint(c.family, c.component, c.index) for c in viol]
    ort = violation_values(case14, cons, x, y)[np.arange(len(viol)), np.arange(len(viol))]
    assert all(c.attained <= v for c, v in zip(viol, ort))


def test_bab_method_sound(case14, tiny_mlp, check_sound):
    from gridverify.certify import bab_available

    pytest.importorskip("gridverify.bab")
    assert bab_available()
    from gridverify.spec import ThresholdRule, ThresholdSpec

    net = tiny_mlp(case14, hidden=(8, 8), act="relu", seed=7, out_scale=3.0)
    region = box_region(case14, 0.9, 1.1)
    opts = CertifyOptions(samples=64, attack="none", bab=BabOptions(timeout=5))
    crown = certify(case14, net, region, constraints="thermal_fr[18]", method="crown",
                    options=opts)
    c0 = crown.constraints[0]
    assert c0.upper_bound > c0.attained
    # a threshold between the attained value and the CROWN bound: undecided after
    # bounding, so branch-and-bound runs on it
    mid = 0.5 * (c0.attained + c0.upper_bound)
    thr = ThresholdSpec((("thermal_fr", ThresholdRule("absolute", mid)),))
    bab = certify(case14, net, region, constraints="thermal_fr[18]", method="bab",
                  options=opts, thresholds=thr)
    check_sound(crown, case14, net)
    check_sound(bab, case14, net)
    b0 = bab.constraints[0]
    assert b0.upper_bound <= c0.upper_bound + 1e-9
    assert b0.method == "bab" and b0.seconds > 0
    _check_bab_provenance(bab)


def _check_bab_provenance(cert):
    """``provenance["bab"]``: one trace per BaB call, kept by JSON, drawn by the report."""
    import types

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from gridverify.report.figures import _bab_traces

    runs = cert.provenance["bab"]
    assert len(runs) >= 1  # a decision pass, maybe longer ones, maybe a tightening
    for run in runs:
        assert set(run) == {"family", "component", "row", "history", "domains", "status"}
        assert (run["family"], run["component"], run["row"]) == ("thermal_fr", 18, 0)
        assert run["domains"] >= 1 and run["status"] in ("certified", "violated", "open")
        hist = run["history"]
        assert hist and all(len(row) == 3 for row in hist)
        times = [row[0] for row in hist]
        assert times == sorted(times) and 0 < times[-1] <= cert.seconds
    back = Certificate.from_json(cert.to_json())
    assert back.provenance["bab"] == json.loads(json.dumps(runs))
    results = types.SimpleNamespace(done=[{"job": {"case_key": "k"},
                                           "certificate": back.to_dict()}])
    fig, axes = plt.subplots(1, 2)
    try:
        _bab_traces(results, "k", axes)
        assert len(axes[1].get_lines()) == len(runs)  # gap panel: every trace
        assert len(axes[0].get_lines()) == 0  # bound panel: balance constraints only
    finally:
        plt.close(fig)


def test_alpha_intermediate_stage_sound_and_not_looser(case14, tiny_mlp, check_sound):
    net = tiny_mlp(case14, hidden=(16, 16), act="relu", seed=3, out_scale=0.3)
    region = box_region(case14, 0.85, 1.15)
    kw = dict(constraints="thermal_fr,angle_max,vm_min", method="alpha-crown")
    crown_i = certify(case14, net, region,
                      options=CertifyOptions(samples=64, refine="all",
                                                 bounds=BoundOptions(intermediate="crown")), **kw)
    alpha_i = certify(case14, net, region, options=CertifyOptions(samples=64, refine="all"), **kw)
    check_sound(alpha_i, case14, net)
    ub_c = np.array([c.upper_bound for c in crown_i.constraints])
    ub_a = np.array([c.upper_bound for c in alpha_i.constraints])
    # CROWN's relaxations are not monotone in their intervals: most rows no looser
    assert np.mean(ub_a <= ub_c + 1e-9 * (1 + np.abs(ub_c))) >= 0.9
    assert ub_a.sum() < ub_c.sum()
    with pytest.raises(SpecError, match="intermediate"):
        CertifyOptions(bounds=BoundOptions(intermediate="ibp"))


def test_attack_starts_from_the_extremes_of_the_proxy_outputs_the_rows_read(case14):
    """One line's thermal limit reads vm and va at its two buses: four proxy outputs
    (layout pg, qg, vm, va), not the 2G + 2N of the whole proxy."""
    from gridverify.certify.certify import _proxy_outputs_read, _resolve_constraints
    from gridverify.physics.acp import build_physics_graph

    G, N = case14.n_gen, case14.n_bus
    for k in (1, 3, 8):  # 1-based branch rows
        cons = _resolve_constraints(case14, f"thermal_fr[{k}]")
        got = _proxy_outputs_read(build_physics_graph(case14, cons), np.ones(1, dtype=bool))
        f, t = int(case14.f_bus[k - 1]), int(case14.t_bus[k - 1])
        assert sorted(got) == sorted({2 * G + f, 2 * G + t, 2 * G + N + f, 2 * G + N + t})
    cons = _resolve_constraints(case14, "all")
    every = _proxy_outputs_read(build_physics_graph(case14, cons), np.ones(len(cons), bool))
    assert every.size > 2 * N  # the whole grid reads (nearly) every output


def test_model_hash_tells_the_function_not_only_the_weights(tmp_path) -> None:
    """A model folder whose arch.json names another activation holds the same
    weights (the same state dict) and is another function: another hash."""
    import hashlib
    import json
    import shutil
    from pathlib import Path

    from gridverify.certify import model_hash
    from gridverify.proxy import load_proxy

    src = Path(__file__).resolve().parents[2] / "models" / "case14_relu"
    dst = tmp_path / "m"
    shutil.copytree(src, dst)
    arch = json.loads((dst / "arch.json").read_text())
    assert arch["activation"] == "relu", arch
    old = hashlib.sha256((dst / "arch.json").read_bytes()).hexdigest()
    arch["activation"] = "softplus"
    (dst / "arch.json").write_text(json.dumps(arch))
    new = hashlib.sha256((dst / "arch.json").read_bytes()).hexdigest()
    card = json.loads((dst / "card.json").read_text().replace(old, new))
    card["arch"]["activation"] = "softplus"
    (dst / "card.json").write_text(json.dumps(card))
    a, b = load_proxy(src), load_proxy(dst)
    assert a.module.state_dict().keys() == b.module.state_dict().keys()
    assert model_hash(a.module) == model_hash(load_proxy(src).module)
    assert model_hash(a.module) != model_hash(b.module)


def test_model_info_of_a_model_directory_shows_the_hash_certificates_record(capsys) -> None:
    from gridverify.cli import main

    case = load_compiled("pglib_opf_case14_ieee")
    assert main(["model", "info", "case14_relu"]) == 0
    line = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("model hash")]
    cert = certify(case, load_proxy("case14_relu", case=case),
                   region=box_region(case, 0.95, 1.05), constraints="vm_max",
                   method="ibp", options=CertifyOptions(samples=8, radius=False))
    assert line == [f"model hash {cert.provenance['model_hash'][:16]}... (as certificates "
                    "record it)"]


class _StartPoint(torch.nn.Module):
    """The case's start point whatever the loads, angles scaled by ``va_scale`` (a
    proxy in degrees read as radians: 180 / pi)."""

    def __init__(self, case, va_scale: float = 1.0, swap_pq: bool = False) -> None:  # noqa: ANN001
        super().__init__()
        va = np.asarray(case.va0) * va_scale
        va[0] = 0.5 * va_scale  # an angle a degrees proxy would give as 0.5 * 57
        pq = [case.qg0, case.pg0] if swap_pq else [case.pg0, case.qg0]
        y0 = np.concatenate([*pq, case.vm0, va])
        self.register_buffer("y0", torch.from_numpy(y0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.y0.expand(x.shape[0], -1) + 0.0 * x[:, :1]


def test_outputs_in_another_layout_or_units_are_said() -> None:
    """Angles of a degrees proxy read as radians: certified as declared (sound for
    that function) with a warning naming what looks off; the same in radians: none."""
    import math

    case = load_compiled("pglib_opf_case14_ieee")
    opts = CertifyOptions(samples=8, radius=False)
    for scale, odd in ((180 / math.pi, True), (1.0, False)):
        cert = certify(case, _StartPoint(case, scale).double(), region=box_region(case, 0.95,
                                                                                  1.05),
                       constraints="vm_max", method="ibp", options=opts)
        said = [w for w in cert.warnings if "another layout or units" in w]
        assert bool(said) == odd, cert.warnings
        if odd:
            assert "|va| up to 28.6 rad" in said[0] and "--angle-units" in said[0]
    # reactive power where the active is declared: generation far below the load
    cert = certify(case, _StartPoint(case, swap_pq=True).double(),
                   region=box_region(case, 0.95, 1.05), constraints="vm_max", method="ibp",
                   options=opts)
    said = [w for w in cert.warnings if "another layout or units" in w]
    assert said and "total pg 0.43 pu for a total load of 2.59 pu" in said[0], cert.warnings
    # far from its data a proxy extrapolates, which is no layout: checked at the loads
    # it was trained about (and never for gridverify's model directories)
    case57 = load_compiled("pglib_opf_case57_ieee")
    for model in ("models/case57_relu", "models/case57_relu/model.onnx"):
        cert = certify(case57, load_proxy(model, case=case57), region=box_region(case57, 0.0,
                                                                                  0.2),
                       constraints="vm_max", method="ibp", options=opts)
        assert not any("another layout" in w for w in cert.warnings), (model, cert.warnings)


def test_the_default_region_of_a_box_trained_proxy_names_the_load_factors_region() -> None:
    case = load_compiled("pglib_opf_case14_ieee")
    proxy = load_proxy("case14_relu", case=case)
    assert proxy.region.sampler == {"kind": "box", "low": 0.9, "high": 1.1}
    opts = CertifyOptions(samples=8, radius=False)
    cert = certify(case, proxy, constraints="vm_max", method="ibp", options=opts)
    assert not cert.warnings  # a note, not a warning
    assert "--region load-factors:0.9,1.1 is the set of loads the data came from" in \
        cert.region_note()
    back = Certificate.from_dict(json.loads(json.dumps(cert.to_dict())))
    assert back.region_note() == cert.region_note()
    for region in ("load-factors:0.9,1.1", "box:0.9,1.1"):
        cert = certify(case, proxy, region=region, constraints="vm_max", method="ibp",
                       options=opts)
        assert cert.region_note() is None


def test_bab_bounds_are_padded_like_every_stage(case14, tiny_mlp):
    """A constraint bounded by branch-and-bound carries the search's bound plus the
    rounding pad (``ub + pad_abs + pad_rel |ub|``), as the bounds of the other stages do."""
    from gridverify.spec import ThresholdRule, ThresholdSpec

    net = tiny_mlp(case14, hidden=(8, 8), act="relu", seed=7, out_scale=3.0)
    region = box_region(case14, 0.9, 1.1)
    opts = CertifyOptions(samples=64, attack="none", bab=BabOptions(timeout=5), pad_abs=1e-3)
    crown = certify(case14, net, region, constraints="thermal_fr[18]", method="crown",
                    options=opts)
    c0 = crown.constraints[0]
    mid = 0.5 * (c0.attained + c0.upper_bound)
    thr = ThresholdSpec((("thermal_fr", ThresholdRule("absolute", mid)),))
    bab = certify(case14, net, region, constraints="thermal_fr[18]", method="bab",
                  options=opts, thresholds=thr)
    found = [h[1] for run in bab.provenance["bab"] for h in run["history"] if h[1] is not None]
    best = min(found)
    assert best < c0.upper_bound - 1e-3  # the search's bound is the one kept
    assert bab.constraints[0].upper_bound == pytest.approx(best + 1e-3 + 1e-9 * abs(best),
                                                           rel=0, abs=1e-12)
