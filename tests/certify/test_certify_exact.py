"""Exact bracket: attained <= exact (SCIP) <= certified upper bound, tiny cases and proxies."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

pytest.importorskip("pyscipopt")

from gridverify.attack import AttackOptions  # noqa: E402
from gridverify.certify import CertifyOptions, certify  # noqa: E402
from gridverify.exact import ExactError, ExactOptions, exact_worst_case, mlp_layers  # noqa: E402
from gridverify.grid import load_compiled  # noqa: E402
from gridverify.spec import FAMILIES, box_region  # noqa: E402
from gridverify.spec.constraints import Constraint  # noqa: E402

TOL = 1e-5  # SCIP feasibility/optimality tolerance, absolute


def _bracket(case, net, cert, families, time_limit):
    """For the first constraint of each family: attained <= dual bound, exact <= upper bound."""
    out = {}
    for fam in families:
        res = next(c for c in cert.constraints if c.family == fam)
        con = Constraint(res.family, res.component, res.index)
        ex = exact_worst_case(case, net, cert.region.lower, cert.region.upper, con,
                              ExactOptions(time_limit=time_limit))
        scale = 1.0 + abs(ex.bound)
        # the falsifier can never beat the global optimum (SCIP's dual bound)
        assert res.attained <= ex.bound + TOL * scale, (fam, res.attained, ex.bound)
        # the global optimum's point, re-evaluated in float64, stays under the sound bound
        assert ex.witness_value <= res.upper_bound + 1e-9, (fam, ex.witness_value,
                                                            res.upper_bound)
        assert ex.value <= res.upper_bound + TOL * scale
        assert ex.witness_value == pytest.approx(ex.value, abs=TOL * scale)
        out[fam] = (res.attained, ex.value, ex.bound, res.upper_bound, ex.status)
    return out


@pytest.mark.parametrize(
    "case_name",
    ["pglib_opf_case3_lmbd", pytest.param("pglib_opf_case5_pjm", marks=pytest.mark.slow)],
)
def test_exact_bracket_relu_every_family(case_name, tiny_mlp, check_sound):
    case = load_compiled(case_name)
    net = tiny_mlp(case, hidden=(8, 8), act="relu", seed=11, out_scale=0.3)
    cert = certify(case, net, box_region(case, 0.8, 1.2), method="alpha-crown",
                   options=CertifyOptions(samples=512, attack="all",
                                                  attack_options=AttackOptions(steps=20)))
    check_sound(cert, case, net)
    fams = [f for f in FAMILIES if any(c.family == f for c in cert.constraints)]
    out = _bracket(case, net, cert, fams, time_limit=20)
    # ReLU problems are solved to optimality on these tiny cases
    assert sum(v[4] in ("optimal", "gaplimit") for v in out.values()) >= len(fams) - 2


@pytest.mark.parametrize("act", ["tanh", "sigmoid"])
def test_exact_bracket_smooth_quick(act, tiny_mlp, check_sound):
    case = load_compiled("pglib_opf_case3_lmbd")
    net = tiny_mlp(case, hidden=(8, 8), act=act, seed=12, out_scale=0.3)
    cert = certify(case, net, box_region(case, 0.9, 1.1), method="crown",
                   options=CertifyOptions(samples=512, attack="all",
                                                  attack_options=AttackOptions(steps=20)))
    check_sound(cert, case, net)
    _bracket(case, net, cert, ["p_balance", "vm_max", "angle_min"], time_limit=3)


@pytest.mark.slow
@pytest.mark.parametrize("act", ["relu", "tanh", "sigmoid"])
@pytest.mark.parametrize("case_name", ["pglib_opf_case3_lmbd", "pglib_opf_case5_pjm"])
def test_exact_bracket_every_family_slow(case_name, act, tiny_mlp, check_sound):
    case = load_compiled(case_name)
    net = tiny_mlp(case, hidden=(12, 12), act=act, seed=13, out_scale=0.3)
    cert = certify(case, net, box_region(case, 0.9, 1.1), method="alpha-crown",
                   options=CertifyOptions(samples=1024, attack="all",
                                                  attack_options=AttackOptions(steps=30)))
    check_sound(cert, case, net)
    fams = [f for f in FAMILIES if any(c.family == f for c in cert.constraints)]
    _bracket(case, net, cert, fams, time_limit=30)


def test_exact_rejects_unsupported_modules():
    from torch import nn

    with pytest.raises(ExactError, match="GELU"):
        mlp_layers(nn.Sequential(nn.Linear(2, 2), nn.GELU(), nn.Linear(2, 2)))
    with pytest.raises(ExactError):
        mlp_layers(nn.Identity())


def test_exact_on_proxy_mlp_with_clamp_head(check_sound):
    import torch

    from gridverify.proxy.model import ProxyArch, ProxyMLP, case_limits

    case = load_compiled("pglib_opf_case3_lmbd")
    arch = ProxyArch(case.n_load, case.n_gen, case.n_bus, (8, 8), "relu", True)
    lo, hi = case_limits(case)
    torch.manual_seed(4)
    m = ProxyMLP(arch, head_lo=lo, head_hi=hi, dtype=torch.float64).eval()
    region = box_region(case, 0.9, 1.1)
    cert = certify(case, m, region, constraints="p_balance[1],vm_max[1],qg_min",
                   method="crown", options=CertifyOptions(samples=256, attack="all"))
    check_sound(cert, case, m)
    _bracket(case, m, cert, ["p_balance", "vm_max", "qg_min"], time_limit=10)
    assert np.isfinite(cert.constraints[0].upper_bound)


def test_exact_refuses_problems_that_do_not_fit_the_case(tiny_mlp):
    case = load_compiled("pglib_opf_case5_pjm")
    net = tiny_mlp(case)
    n = 2 * case.n_load
    lo, hi = np.full(n, 0.5), np.full(n, 1.0)
    vm = Constraint("vm_max", 1, 0)
    bad = {
        "the box must have 6 entries": (net, lo[:-1], hi[:-1], vm),
        "the box must be finite": (net, np.full(n, np.nan), hi, vm),
        "the box is empty": (net, hi, lo, vm),
        "unknown constraint family 'foo'": (net, lo, hi, Constraint("foo", 1, 0)),
        "has no constraint at index 999": (net, lo, hi, Constraint("vm_max", 1000, 999)),
        "starts and ends with Linear": (torch.nn.Sequential(torch.nn.ReLU(), *net), lo, hi, vm),
        "needs 6 -> ": (torch.nn.Sequential(torch.nn.Linear(n, 3)), lo, hi, vm),
    }
    for match, (module, a, b, c) in bad.items():
        with pytest.raises(ExactError, match=match):
            exact_worst_case(case, module, a, b, c)
    # the hint names what applies to the family only
    with pytest.raises(ExactError) as err:
        exact_worst_case(case, net, lo, hi, Constraint("p_balance", 1000, 999))
    assert "thermal" not in str(err.value) and "limit" not in str(err.value)
    with pytest.raises(ExactError, match="unrated branch"):
        exact_worst_case(case, net, lo, hi, Constraint("thermal_fr", 1000, 999))


@pytest.mark.parametrize("kw", [{"time_limit": -1.0}, {"time_limit": float("nan")},
                                {"gap": -1e-3}, {"gap": float("inf")}, {"feastol": 0.0},
                                {"time_limit": "60"}, {"gap": True}])
def test_bad_exact_options_name_the_option(kw):
    """Refused before SCIP sees them (SCIP would print C errors, then a bare ValueError)."""
    with pytest.raises(ExactError, match=f"exact options: {next(iter(kw))}"):
        ExactOptions(**kw)


def test_a_balance_worst_case_is_optimal_only_when_both_signs_are():
    from gridverify.exact.scip import combined_status

    assert combined_status(["optimal", "optimal"]) == "optimal"
    assert combined_status(["gaplimit", "optimal"]) == "gaplimit"  # was: optimal
    assert combined_status(["optimal", "timelimit"]) == "timelimit"


def _case3_flat_net(vm: float):
    """case3 and a relu proxy whose outputs barely move with the loads: no generation,
    voltage magnitudes ``vm``, angles 0 (its last layer's weights scaled by 0.01)."""
    from torch import nn

    case = load_compiled("pglib_opf_case3_lmbd")
    L, G, N = case.n_load, case.n_gen, case.n_bus
    torch.manual_seed(3)
    net = nn.Sequential(nn.Linear(2 * L, 8), nn.ReLU(), nn.Linear(8, 2 * G + 2 * N)).double()
    with torch.no_grad():
        net[-1].weight.mul_(0.01)
        net[-1].bias.zero_()
        net[-1].bias[2 * G:2 * G + N] = vm
    return case, net


def test_exact_worst_cases_of_any_magnitude_are_bracketed():
    """A worst case far beyond 1e6 (vm = 40 pu squared into a 0.5 pu thermal rating) and
    one far below -1e6 (a huge rating): SCIP's dual bound stays above every sampled
    value, and the problem is never called infeasible."""
    from gridverify.physics.evaluate import violation_values

    case, net = _case3_flat_net(vm=40.0)
    with torch.no_grad():
        net[-1].bias[2 * case.n_gen + case.n_bus:] = torch.tensor([0.0, 0.5, -0.5],
                                                                   dtype=torch.float64)
    reg = box_region(case, 0.9, 1.1)
    x = reg.lower + np.random.default_rng(0).random((500, reg.lower.size)) * (
        reg.upper - reg.lower)
    with torch.no_grad():
        y = net(torch.from_numpy(x)).numpy()
    huge = dataclasses.replace(case, rate_a=np.asarray(case.rate_a) * 3000.0)
    for c in (case, huge):
        con = Constraint("thermal_fr", 2, 1)
        worst = float(violation_values(c, [con], x, y).max())
        ex = exact_worst_case(c, net, reg.lower, reg.upper, con, ExactOptions(time_limit=20))
        assert abs(worst) > 1e6
        assert ex.bound >= worst - TOL * abs(worst), (ex.bound, worst)
        assert ex.witness_value == pytest.approx(ex.value, rel=1e-6)


def test_a_balance_mismatch_of_one_sign_is_bracketed_by_both_rows() -> None:
    """A proxy that leaves every load unmet (no generation, flat voltages): the
    mismatch at a load bus has one sign, so only one of the balance constraint's two
    rows holds its worst case, and the exact value is that row's, not the other's."""
    from gridverify.physics.evaluate import violation_values

    case, net = _case3_flat_net(vm=1.0)
    region = box_region(case, 0.9, 1.1)
    for family in ("p_balance", "q_balance"):
        bus = int(case.load_bus[0])
        con = Constraint(family, int(case.bus_ids[bus]), bus)
        x = region.sample(2000, np.random.default_rng(0))
        with torch.no_grad():
            y = net(torch.from_numpy(x)).numpy()
        sampled = float(np.max(violation_values(case, [con], x, y)))
        assert sampled > 0.05  # the loads are unmet
        ex = exact_worst_case(case, net, region.lower, region.upper, con,
                              ExactOptions(time_limit=20))
        assert ex.bound >= sampled - TOL * (1 + sampled), (family, ex.bound, sampled)
        assert ex.value >= sampled - TOL * (1 + sampled), (family, ex.value, sampled)
