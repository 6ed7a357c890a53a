"""Anytime statuses, the one time budget with per-constraint reasons, bab modes."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from gridverify.attack import AttackOptions
from gridverify.bab import BabOptions
from gridverify.certify import Certificate, CertifyOptions, bab_available, certify
from gridverify.cli import main
from gridverify.grid import load_compiled
from gridverify.spec import box_region


@pytest.fixture(scope="module")
def case14():
    return load_compiled("pglib_opf_case14_ieee")


def test_case57_relu_q_balance_bus22_is_violated() -> None:
    """A violation exists (1.114e-3 > 1e-3 by the grid equations): never ``open``."""
    cert = certify("pglib_opf_case57_ieee", "models/case57_relu", constraints="q_balance[22]")
    c = cert.get("q_balance", 22)
    assert c.status == "violated", (c.attained, c.threshold)
    assert c.attained > c.threshold and c.witness is not None


def test_timeout_reasons_in_certificate_and_json(case14, tiny_mlp, check_sound) -> None:
    net = tiny_mlp(case14)
    cert = certify(case14, net, box_region(case14, 0.9, 1.1), method="alpha-crown",
                   options=CertifyOptions(timeout=1e-6, samples=8))
    assert any(w.startswith("timeout") for w in cert.warnings)
    for c in cert.constraints:
        assert c.status != "certified"
        assert c.reason is not None and c.reason.startswith("not reached: timeout")
        assert c.method == "none"  # no stage bounded it
    d = json.loads(cert.to_json())
    assert all(c["reason"].startswith("not reached: timeout") for c in d["constraints"])
    assert Certificate.from_json(cert.to_json()).constraints[0].reason == cert.constraints[0].reason
    check_sound(cert, case14, net)


def test_complete_run_has_no_timeout_reason(case14, tiny_mlp) -> None:
    net = tiny_mlp(case14)
    cert = certify(case14, net, box_region(case14, 0.9, 1.1), method="crown",
                   constraints="vm_max,p_balance[1,2]", options=CertifyOptions(samples=32))
    assert not any(w.startswith("timeout") for w in cert.warnings)
    for c in cert.constraints:
        assert c.reason is None or c.reason == "bound above threshold"  # crown: no gap tol
        assert (c.reason is not None) == (c.status == "open")


def test_cli_table_says_incomplete(tmp_path, capsys) -> None:
    code = main(["certify", "pglib_opf_case14_ieee", "--model", "models/case14_relu",
                 "--constraints", "p_balance[1,2]", "--timeout", "0.001", "--samples", "8"])
    out = capsys.readouterr()
    assert code in (1, 3)
    assert "incomplete: timeout" in out.out
    assert "warning: timeout" in out.err


@pytest.mark.skipif(not bab_available(), reason="bab unavailable")
def test_bab_tighten_works_on_violated_constraints_and_decide_does_not(tiny_mlp) -> None:
    case = load_compiled("pglib_opf_case3_lmbd")
    net = tiny_mlp(case, act="relu", seed=23, out_scale=0.3)
    region = box_region(case, 0.9, 1.1)
    base = dict(samples=128, bab=BabOptions(timeout=1.0, tolerance=1e-4), timeout=60.0)
    tight = certify(case, net, region, method="bab", constraints="p_balance",
                    options=CertifyOptions(**base))
    decide = certify(case, net, region, method="bab", constraints="p_balance",
                     options=CertifyOptions(bab_mode="decide", **base))
    viol = {(c.family, c.component) for c in decide.constraints if c.status == "violated"}
    ran_t = {(r["family"], r["component"]) for r in tight.provenance["bab"]}
    ran_d = {(r["family"], r["component"]) for r in decide.provenance["bab"]}
    assert not (ran_d & viol)  # decision mode leaves decided constraints alone
    # tighten mode works on them: alpha-CROWN first (it refines all), then every one whose
    # gap is still above the tolerance (a search only shrinks it: the final gap tells)
    gaps = {(c.family, c.component): c.gap for c in tight.constraints}
    assert {k for k in viol if gaps[k] > 1e-4} <= ran_t
    assert ran_t & viol
    for a, b in zip(decide.constraints, tight.constraints):
        assert a.status == b.status or "open" in (a.status, b.status)
        if (a.family, a.component) in ran_t:
            assert b.upper_bound <= a.upper_bound + 1e-9 * (1 + abs(a.upper_bound))
    ub = np.array([c.upper_bound for c in tight.constraints])
    att = np.array([c.attained for c in tight.constraints])
    assert np.all(att <= ub)


def test_bab_searches_nearly_certified_constraints_first(case14) -> None:
    from gridverify.certify.bab_stage import _next_search
    from gridverify.certify.state import State
    from gridverify.physics.acp import build_physics_graph
    from gridverify.spec.constraints import parse_constraints, select_constraints

    cons = select_constraints(case14, parse_constraints("vm_max[1,2,3,4,5]"))
    ph = build_physics_graph(case14, cons)
    ub = np.array([1.0, 10.0, 0.5, 2.0, -1.0])
    att = np.array([-1.0, -1.0, -3.0, 5.0, -2.0])
    st = State(ph, np.zeros(5), ub, att, np.zeros((5, 2)), np.zeros(5))
    # undecided 0, 1, 2 with odds above/below the threshold 1, 10, 1/6; 3 violated,
    # 4 certified: never searched in decision mode
    shares = (1 / 16, 1 / 4, 1.0)
    searched = np.zeros(5, dtype=np.int64)
    order = []
    while (k := _next_search(st, searched, shares)) is not None:
        order.append(k)
        searched[k] += 1
    # keys: odds x share (1/96, 1/24, 1/6 | 1/16, 1/4, 1 | 10/16, 10/4, 10)
    assert order == [2, 2, 0, 2, 0, 1, 0, 1, 1]
    # the attack's order is unchanged: a violation nearest first
    assert st.priority(np.ones(5, bool)).tolist() == [1, 0, 2, 3, 4]
    st.ub[2] = -0.5  # certified meanwhile: no longer searched
    assert _next_search(st, np.zeros(5, dtype=np.int64), shares) == 0


def _short_searches(tiny_mlp, mode: str):
    """case14, a relu net whose brackets are wide, a wide box, no attack and short
    branch-and-bound searches: (case, net, region, options)."""
    case = load_compiled("pglib_opf_case14_ieee")
    net = tiny_mlp(case, hidden=(8, 8), act="relu", seed=7, out_scale=3.0)
    opts = CertifyOptions(samples=16, attack="none", timeout=120.0, bab_mode=mode,
                          bab=BabOptions(timeout=0.4, tolerance=1e-4))
    return case, net, box_region(case, 0.7, 1.3), opts


@pytest.mark.skipif(not bab_available(), reason="bab unavailable")
@pytest.mark.parametrize(("mode", "jobs"), [("decide", 1), ("tighten", 1), ("tighten", 2)])
def test_bab_searches_never_search_a_settled_constraint_again(tiny_mlp, check_sound,
                                                              mode, jobs) -> None:
    """Decision searches of growing length: a constraint is searched again only while
    it is open, at most three times; the tightening skips those open after all three.
    The same with two searches side by side in worker processes (``jobs=2``): a
    constraint is never searched by both at once."""
    from gridverify.spec.thresholds import ThresholdRule, ThresholdSpec

    # no attack, few samples, threshold 0: some brackets [found, bound] straddle it
    case, net, region, opts = _short_searches(tiny_mlp, mode)
    opts = replace(opts, jobs=jobs)
    sel = "thermal_fr,angle_max"
    thr = ThresholdSpec(tuple((fam, ThresholdRule("absolute", 0.0))
                              for fam in ("thermal_fr", "angle_max")))
    first = certify(case, net, region, method="alpha-crown", constraints=sel, options=opts,
                    thresholds=thr)
    open0 = {(c.family, c.component) for c in first.constraints if c.status == "open"}
    assert open0
    cert = certify(case, net, region, method="bab", constraints=sel, options=opts,
                   thresholds=thr)
    check_sound(cert, case, net)
    runs = cert.provenance["bab"]
    assert runs
    per: dict = {}
    spans: dict = {}
    for r in runs:
        per.setdefault((r["family"], r["component"]), []).append(r["status"])
        if r["history"]:
            spans.setdefault((r["family"], r["component"]), []).append(
                (r["history"][0][0], r["history"][-1][0]))
    for key, sp in spans.items():  # one search of a constraint at a time
        sp.sort()
        assert all(b[0] >= a[1] - 1e-3 for a, b in zip(sp, sp[1:])), (key, sp)
    for key, statuses in per.items():
        decided_at = next((i for i, s in enumerate(statuses) if s != "open"), None)
        if mode == "decide":
            assert len(statuses) <= 3 and key in open0
            assert decided_at is None or decided_at == len(statuses) - 1
        else:
            assert len(statuses) <= 4
            if len(statuses) == 4:  # three decision searches, then one tightening
                assert statuses[:3] != ["open"] * 3


@pytest.mark.skipif(not bab_available(), reason="bab unavailable")
@pytest.mark.parametrize("mode", ["decide", "tighten"])
def test_bab_searches_each_violation_row_alone(tiny_mlp, check_sound, mode) -> None:
    """A balance constraint's two violation rows (the two signs of its residual) are
    searched one at a time, never both in one search, and the bounds are never
    looser than before branch-and-bound."""
    from gridverify.spec.thresholds import ThresholdRule, ThresholdSpec

    case, net, region, opts = _short_searches(tiny_mlp, mode)
    sel = "p_balance"
    first = certify(case, net, region, method="alpha-crown", constraints=sel, options=opts)
    thr = None
    if mode == "decide":  # the threshold that leaves the most constraints open
        mids = [(c.attained + c.upper_bound) / 2 for c in first.constraints]
        level = max(mids, key=lambda t: sum(c.attained < t < c.upper_bound
                                            for c in first.constraints))
        thr = ThresholdSpec((("p_balance", ThresholdRule("absolute", level)),))
        first = certify(case, net, region, method="alpha-crown", constraints=sel,
                        options=opts, thresholds=thr)
        assert any(c.status == "open" for c in first.constraints)
    cert = certify(case, net, region, method="bab", constraints=sel, options=opts,
                   thresholds=thr)
    check_sound(cert, case, net)
    rows: dict = {}
    for r in cert.provenance["bab"]:
        rows.setdefault((r["family"], r["component"]), []).append(r["row"])
    assert rows and all(set(v) <= {0, 1} for v in rows.values())
    if mode == "tighten":  # every gap is tightened: both signs, one at a time
        assert any(set(v) == {0, 1} for v in rows.values())
    before = {(c.family, c.component): c.upper_bound for c in first.constraints}
    for c in cert.constraints:
        assert c.upper_bound <= before[(c.family, c.component)] + 1e-12
        assert c.attained <= c.upper_bound


def test_options_validation() -> None:
    from gridverify.errors import SpecError

    with pytest.raises(SpecError, match="bab_mode"):
        CertifyOptions(bab_mode="fast")
    with pytest.raises(SpecError, match="refine"):
        CertifyOptions(refine="violated")
    for bad in (0, -1, 1.5, True):
        with pytest.raises(SpecError, match="jobs"):
            CertifyOptions(jobs=bad)
    # auto: every constraint's bound is tightened where that is the point (bab, tighten)
    auto, decide = CertifyOptions(), CertifyOptions(bab_mode="decide")
    assert auto.refines_all("bab") and not decide.refines_all("bab")
    assert not any(auto.refines_all(m) for m in ("ibp", "crown", "alpha-crown"))
    assert CertifyOptions(refine="all").refines_all("alpha-crown")
    assert not CertifyOptions(refine="undecided").refines_all("bab")
    o = CertifyOptions(timeout=5.0, bab=BabOptions(timeout=2.0, tolerance=0.5), jobs=3)
    assert CertifyOptions.from_dict(json.loads(json.dumps(o.to_dict()))) == o
    # the certificate's search runs in float32 (re-evaluated in float64); a float64
    # search stays available and round-trips
    assert o.attack_options.dtype == "float32" and AttackOptions().dtype == "float64"
    o64 = CertifyOptions(attack_options=AttackOptions(dtype="float64"))
    assert CertifyOptions.from_dict(json.loads(json.dumps(o64.to_dict()))) == o64


def test_dataset_region_points_are_tried(case14, tiny_mlp, tmp_path) -> None:
    import h5py

    from gridverify.certify import evaluate_violations
    from gridverify.spec.region import dataset_region

    rng = np.random.default_rng(0)
    nom = np.concatenate([case14.pd, case14.qd])
    x = nom * rng.uniform(0.9, 1.1, size=(20, nom.size))
    path = tmp_path / "data.h5"
    with h5py.File(path, "w") as f:
        f["input/pd"] = x[:, : case14.n_load]
        f["input/qd"] = x[:, case14.n_load:]
    region = dataset_region(case14, path)
    net = tiny_mlp(case14)
    cert = certify(case14, net, region, method="ibp", constraints="p_balance",
                   options=CertifyOptions(samples=20, attack="none"))
    cons = [c for c in cert.constraints]
    from gridverify.spec.constraints import Constraint

    v = evaluate_violations(case14, net, [Constraint(c.family, c.component, c.index)
                                          for c in cons], x)
    att = np.array([c.attained for c in cons])
    assert np.all(att >= v.max(axis=0) - 1e-12)


def test_onnx_witnesses_are_rechecked_in_onnxruntime() -> None:
    """An ONNX proxy's violations stand only where onnxruntime reproduces them."""
    from gridverify.physics.evaluate import violation_values
    from gridverify.proxy.load import load_proxy
    from gridverify.spec.constraints import Constraint
    from gridverify.vnncomp.runner import OnnxChecker

    case = load_compiled("pglib_opf_case14_ieee")
    path = "models/case14_relu/model.onnx"
    proxy = load_proxy(path, case=case)
    cert = certify(case, proxy, constraints="p_balance[1,2,3]",
                   options=CertifyOptions(samples=64))
    checker = OnnxChecker(open(path, "rb").read())
    for c in cert.constraints:
        if c.status != "violated":
            continue
        y = checker.run(c.witness)[: proxy.output_size]
        v = violation_values(case, [Constraint(c.family, c.component, c.index)],
                             torch.from_numpy(c.witness[None]), torch.from_numpy(y[None]))
        assert float(v[0, 0]) >= c.attained - 1e-12 and float(v[0, 0]) > c.threshold


def test_onnx_proxy_with_weights_in_a_side_file(tmp_path) -> None:
    """torch's exporter writes the weights to ``NAME.onnx.data``: the proxy loads
    from it and onnxruntime re-checks its witnesses with the same weights."""
    import onnx

    from gridverify.proxy.load import load_proxy

    case = load_compiled("pglib_opf_case14_ieee")
    path = tmp_path / "proxy.onnx"
    onnx.save(onnx.load("models/case14_relu/model.onnx"), path, save_as_external_data=True,
              all_tensors_to_one_file=True, location="proxy.onnx.data", size_threshold=0)
    inline = load_proxy("models/case14_relu/model.onnx", case=case)
    side = load_proxy(path, case=case)
    opts = CertifyOptions(samples=64)
    a = certify(case, inline, constraints="p_balance[1,2,3]", options=opts)
    b = certify(case, side, constraints="p_balance[1,2,3]", options=opts)
    assert [c.status for c in a.constraints] == [c.status for c in b.constraints]
    assert "violated" in {c.status for c in b.constraints}  # the re-check ran
    np.testing.assert_array_equal([c.attained for c in a.constraints],
                                  [c.attained for c in b.constraints])


def test_onnx_proxy_exported_with_a_fixed_batch(tmp_path) -> None:
    """A proxy exported with a fixed example batch (input ``(8, 2L)``, no dynamic
    axis) is the same proxy as with a dynamic batch: the leading axis is the batch."""
    import warnings

    from gridverify.proxy.load import load_proxy

    case = load_compiled("pglib_opf_case14_ieee")
    module = load_proxy("models/case14_relu", case=case).module.float().eval()
    n_in = 2 * case.pd.size
    paths = {}
    for name, axes in (("fixed", None), ("dynamic", {"x": {0: "b"}, "y": {0: "b"}})):
        paths[name] = tmp_path / f"{name}.onnx"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(module, (torch.zeros(8, n_in),), paths[name], dynamo=False,
                              input_names=["x"], output_names=["y"], dynamic_axes=axes)
    opts = CertifyOptions(samples=64)
    certs = {name: certify(case, load_proxy(p, case=case), constraints="p_balance[1,2,3]",
                           options=opts) for name, p in paths.items()}
    a, b = certs["fixed"], certs["dynamic"]
    assert "violated" in {c.status for c in b.constraints}  # onnxruntime re-checked them
    assert [c.status for c in a.constraints] == [c.status for c in b.constraints]
    np.testing.assert_array_equal([c.attained for c in a.constraints],
                                  [c.attained for c in b.constraints])
    np.testing.assert_array_equal([c.upper_bound for c in a.constraints],
                                  [c.upper_bound for c in b.constraints])


def test_onnx_proxy_with_one_output_per_quantity(tmp_path) -> None:
    """Outputs ``pg, qg, vm, va`` (widths G, G, N, N) are read one after the other:
    the same proxy as one output of ``2G + 2N``; named in another order, refused."""
    import warnings

    import pytest

    from gridverify.errors import ProxyError
    from gridverify.proxy.load import load_proxy

    case = load_compiled("pglib_opf_case14_ieee")
    base = load_proxy("models/case14_relu", case=case).module.float().eval()
    g, n = case.n_gen, case.n_bus
    cuts = [0, g, 2 * g, 2 * g + n, 2 * g + 2 * n]

    class Heads(torch.nn.Module):
        def __init__(self, order: tuple[int, ...]) -> None:
            super().__init__()
            self.base, self.order = base, order

        def forward(self, x):  # noqa: ANN001, ANN202
            y = self.base(x)
            return tuple(y[:, cuts[k]:cuts[k + 1]] for k in self.order)

    names = ("pg", "qg", "vm", "va")
    paths = {}
    for label, module, outs in (("one", base, ["y"]),
                                ("heads", Heads((0, 1, 2, 3)), list(names)),
                                ("swapped", Heads((1, 0, 2, 3)), ["qg", "pg", "vm", "va"])):
        paths[label] = tmp_path / f"{label}.onnx"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(module, (torch.zeros(1, 2 * case.pd.size),), paths[label],
                              dynamo=False, input_names=["x"], output_names=outs,
                              dynamic_axes={"x": {0: "b"}})
    with pytest.raises(ProxyError, match="read in order as pg, qg, vm, va"):
        load_proxy(paths["swapped"], case=case)
    opts = CertifyOptions(samples=64)
    a, b = (certify(case, load_proxy(paths[k], case=case), constraints="p_balance[1,2,3]",
                    options=opts) for k in ("one", "heads"))
    assert [c.status for c in a.constraints] == [c.status for c in b.constraints]
    np.testing.assert_allclose([c.upper_bound for c in a.constraints],
                               [c.upper_bound for c in b.constraints], rtol=1e-12)
    np.testing.assert_array_equal([c.attained for c in a.constraints],
                                  [c.attained for c in b.constraints])


@pytest.mark.parametrize("kind", ["export-dynamic", "export-static", "script", "trace"])
def test_torch_file_witnesses_are_rechecked_by_torch(tmp_path, kind) -> None:
    """A proxy read from a torch.export program or a TorchScript archive: its
    violations stand only where the file itself, run by torch in its own dtype
    (float32 here), reproduces them."""
    from gridverify.physics.evaluate import violation_values
    from gridverify.proxy.load import load_proxy
    from gridverify.spec.constraints import Constraint

    case = load_compiled("pglib_opf_case14_ieee")
    n_in = 2 * case.pd.size
    torch.manual_seed(0)  # a user's network (not gridverify's ProxyMLP): scriptable
    module = torch.nn.Sequential(torch.nn.Linear(n_in, 32), torch.nn.ReLU(),
                                 torch.nn.Linear(32, 32), torch.nn.Tanh(),
                                 torch.nn.Linear(32, 38), torch.nn.Sigmoid()).eval()
    example = torch.zeros(4, n_in)
    if kind.startswith("export"):
        path = tmp_path / "proxy.pt2"
        dyn = ({0: torch.export.Dim("b")},) if kind == "export-dynamic" else None
        torch.export.save(torch.export.export(module, (example,), dynamic_shapes=dyn), path)
    else:
        path = tmp_path / "proxy.pt"
        script = torch.jit.script(module) if kind == "script" else torch.jit.trace(module,
                                                                                  example)
        torch.jit.save(script, path)
    proxy = load_proxy(path, case=case)
    x = np.random.default_rng(0).uniform(0.0, 0.5, (5, n_in))
    with torch.no_grad():
        want = module.double()(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(proxy.module(torch.from_numpy(x)).detach().numpy(), want,
                               rtol=1e-6, atol=1e-6)  # float32 weights, float64 graph
    np.testing.assert_allclose(proxy.module.reference(x), want, rtol=1e-5, atol=1e-6)
    cert = certify(case, proxy, constraints="p_balance[1,2,3]",
                   options=CertifyOptions(samples=64))
    assert "violated" in {c.status for c in cert.constraints}
    for c in cert.constraints:
        if c.status != "violated":
            continue
        y = proxy.module.reference(c.witness[None])
        v = violation_values(case, [Constraint(c.family, c.component, c.index)],
                             torch.from_numpy(c.witness[None]), torch.from_numpy(y))
        assert float(v[0, 0]) >= c.attained - 1e-12 and float(v[0, 0]) > c.threshold


def test_the_time_budget_reaches_alpha_crown_as_a_deadline(case14, tiny_mlp,
                                                          monkeypatch) -> None:
    """The bound stages hand the budget's end to the engine (alpha-CROWN ran to its
    last iteration past ``--timeout``), or with an attack to follow the end of their
    share of it (``bounds_time_share``); a pass it stops early says so, and its
    constraints keep sound bounds."""
    import importlib
    import time

    certify_module = importlib.import_module("gridverify.certify.certify")

    seen: list[tuple[str, float | None]] = []
    real = certify_module._bound_rows

    def spy(*args, **kw):
        seen.append((args[4], kw.get("deadline")))
        return real(*args, **kw)

    monkeypatch.setattr(certify_module, "_bound_rows", spy)
    net = tiny_mlp(case14)
    region = box_region(case14, 0.9, 1.1)
    t = time.monotonic()
    certify(case14, net, region, method="alpha-crown", constraints="p_balance",
            options=CertifyOptions(timeout=600, samples=8, radius=False, refine="all",
                                   attack="none"))
    stages = dict(seen)
    assert set(stages) >= {"crown", "alpha-crown"}
    assert t + 590 < stages["alpha-crown"] < time.monotonic() + 600
    for share in (0.75, 0.3):  # the attack's share is kept from the bounds
        seen.clear()
        t = time.monotonic()
        opts = CertifyOptions(timeout=600, samples=8, radius=False, refine="all")
        opts = opts if share == 0.75 else replace(opts, bounds_time_share=share)
        assert opts.bounds_time_share == share
        certify(case14, net, region, method="alpha-crown", constraints="p_balance",
                options=opts)
        assert t + share * 600 - 10 < dict(seen)["alpha-crown"] < t + share * 600 + 1
    seen.clear()
    certify(case14, net, region, method="alpha-crown", constraints="p_balance",
            options=CertifyOptions(samples=8, radius=False, refine="all"))
    assert dict(seen)["alpha-crown"] is None  # no timeout: every iteration

    def late(*args, **kw):  # the budget runs out during the alpha-CROWN pass
        out = real(*args, **kw)
        if args[4] == "alpha-crown":
            time.sleep(1.2)
        return out

    monkeypatch.setattr(certify_module, "_bound_rows", late)
    cert = certify(case14, net, region, method="alpha-crown", constraints="p_balance",
                   options=CertifyOptions(timeout=1.0, samples=8, radius=False,
                                          refine="all"))
    reasons = {c.reason for c in cert.constraints}
    assert "cut short: timeout (alpha-crown)" in reasons, reasons
    assert any(w.startswith("timeout") for w in cert.warnings)


@pytest.mark.skipif(not bab_available(), reason="bab unavailable")
def test_a_budget_spent_before_tightening_names_what_it_left(case14, tiny_mlp,
                                                             monkeypatch) -> None:
    """``bab_mode="tighten"`` with the budget gone before branch-and-bound: every
    constraint it would have tightened (gap above the tolerance, certified and
    violated ones too) says so, as when the budget runs out during the tightening."""
    import importlib
    import time

    from gridverify.certify.state import Budget

    certify_module = importlib.import_module("gridverify.certify.certify")
    real = certify_module._radius_stage

    def slow(*args, **kw):  # the stage before branch-and-bound spends the budget
        real(*args, **kw)
        budget = next(a for a in args if isinstance(a, Budget))
        while not budget.expired():
            time.sleep(0.05)

    monkeypatch.setattr(certify_module, "_radius_stage", slow)
    net = tiny_mlp(case14)
    opts = CertifyOptions(timeout=3.0, samples=8, bab=BabOptions(timeout=1.0))
    cert = certify(case14, net, box_region(case14, 0.9, 1.1), method="bab",
                   constraints="p_balance,vm_max", options=opts)
    tol = opts.bab.gap_tolerance
    left = [c for c in cert.constraints
            if c.reason is None and not c.upper_bound - c.attained <= tol(c.attained)]
    assert not left, [(c.family, c.component, c.status) for c in left[:5]]
    n = sum(c.reason is not None and c.reason.startswith(("not reached: timeout",
                                                          "cut short: timeout"))
            for c in cert.constraints)
    assert n and any(f"before {n} constraint(s)" in w for w in cert.warnings)
