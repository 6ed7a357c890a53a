"""What the Python API accepts as a case, a proxy, thresholds and options, and the
one-line errors it gives for anything else (a notebook user's mistakes)."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch

from gridverify.bounds import compute_bounds
from gridverify.certify import CertifyOptions, certify
from gridverify.errors import CaseFormatError, GraphError, ProxyError, SpecError
from gridverify.grid import compile_case, load_compiled
from gridverify.proxy.load import load_proxy
from gridverify.spec.thresholds import ThresholdSpec, as_thresholds, parse_threshold

FAST = CertifyOptions(samples=8, attack="none", radius=False)


@pytest.fixture(scope="module")
def case14():
    return load_compiled("pglib_opf_case14_ieee")


@pytest.mark.parametrize("bad", [None, 14, 1.5, ["pglib_opf_case14_ieee"]])
def test_a_case_of_another_type_is_a_one_line_error(bad, case14, tiny_mlp):
    with pytest.raises(CaseFormatError, match=f"expected a case: .*got {type(bad).__name__}$"):
        compile_case(bad)
    with pytest.raises(CaseFormatError, match="expected a case"):
        load_compiled(bad)
    with pytest.raises(CaseFormatError, match="expected a case"):
        certify(bad, tiny_mlp(case14), options=FAST)
    if bad is not None:  # load_proxy's case=None: no case
        with pytest.raises(CaseFormatError, match="expected a case"):
            load_proxy(tiny_mlp(case14), case=bad)


@pytest.mark.parametrize("bad", [None, 3, np.zeros(3)])
def test_a_proxy_of_another_type_is_a_one_line_error(bad, case14):
    with pytest.raises(ProxyError, match="expected a proxy: .*got "):
        certify(case14, bad, options=FAST)


def test_a_pandapower_network_is_a_case_everywhere(tiny_mlp):
    pn = pytest.importorskip("pandapower.networks")
    net = pn.case9()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        compiled = compile_case(net)
        from gridverify.grid import from_pandapower

        raw = from_pandapower(net)
        assert compile_case(raw).content_hash == compiled.content_hash
        assert load_compiled(net).content_hash == compiled.content_hash
        module = tiny_mlp(compiled)
        proxy = load_proxy(module, case=net)
        a = certify(net, proxy, constraints="vm_max", method="ibp", options=FAST)
        b = certify(compiled, module, constraints="vm_max", method="ibp", options=FAST)
    assert a.provenance["case_hash"] == compiled.content_hash
    ub_a, ub_b = ([r.upper_bound for r in c.constraints] for c in (a, b))
    assert np.array_equal(ub_a, ub_b)


def test_a_case_without_loads_is_refused_naming_it():
    pp = pytest.importorskip("pandapower")
    net = pp.create_empty_network()
    b0, b1 = pp.create_bus(net, 20.0), pp.create_bus(net, 20.0)
    pp.create_ext_grid(net, b0)
    pp.create_line(net, b0, b1, 1.0, "NAYY 4x50 SE")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(SpecError, match="'pandapower_net' has no in-service load"):
            certify(net, torch.nn.Linear(2, 2))


def test_thresholds_as_a_number_a_string_or_a_mapping(case14, tiny_mlp):
    assert as_thresholds(None) == ThresholdSpec()
    assert as_thresholds(0.01) == parse_threshold("0.01") == as_thresholds({"default": 0.01})
    assert as_thresholds(np.float64(0.01)) == as_thresholds(0.01)
    spec = parse_threshold("p_balance=0.02,thermal_fr=0")
    assert as_thresholds("p_balance=0.02,thermal_fr=0") == spec
    assert as_thresholds({"p_balance": 0.02, "thermal_fr": 0}) == spec
    for bad in (True, [0.01], object()):
        with pytest.raises(SpecError, match="^thresholds: expected a ThresholdSpec"):
            as_thresholds(bad)
    net = tiny_mlp(case14)
    cert = certify(case14, net, constraints="vm_max", method="ibp", options=FAST,
                   thresholds=0.25)
    assert all(r.threshold == 0.25 for r in cert.constraints)
    with pytest.raises(SpecError, match="unknown family"):
        certify(case14, net, options=FAST, thresholds={"p_balanse": 0.1})


@pytest.mark.parametrize("field, value, match", [
    ("timeout", "10", "options.timeout: a number of seconds > 0"),
    ("timeout", float("nan"), "options.timeout"),
    ("timeout", 0, "options.timeout"),
    ("attack_focus", "1", "options.attack_focus: an integer >= 0"),
    ("attack_focus", -1, "options.attack_focus"),
    ("bounds_time_share", 0, r"options.bounds_time_share: in \(0, 1\]"),
    ("bounds_time_share", 1.5, "options.bounds_time_share"),
    ("bounds_time_share", "0.5", "options.bounds_time_share"),
    ("bounds_time_share", True, "options.bounds_time_share"),
    ("bounds_time_share", float("nan"), "options.bounds_time_share"),
    ("memory_cap_mb", "100", "options.memory_cap_mb: a number of MB > 0"),
    ("pad_rel", -1e-9, "options.pad_rel: a number >= 0"),
    ("pad_abs", "0", "options.pad_abs"),
    ("threads", 0, "options.threads: an integer >= 1"),
    ("threads", 1.0, "options.threads"),
    ("threads", 100_000, r"options.threads: an integer >= 1 and <= 1024"),
    ("jobs", 5000, r"options.jobs: an integer >= 1 and <= 1024"),
    ("seed", 2**40, r"options.seed: must be an integer in \[0, 4294967295\]"),
    ("radius", "no", "options.radius: True or False"),
    # nested options as dicts failed deep inside certify (AttributeError)
    ("bounds", {}, r"options.bounds: expected BoundOptions\(...\), got dict"),
    ("bab", {"timeout": 1}, r"options.bab: expected BabOptions\(...\), got dict"),
    ("attack_options", None, r"options.attack_options: expected AttackOptions"),
])
def test_options_of_the_wrong_type_are_one_line_errors(field, value, match):
    with pytest.raises(SpecError, match=match) as info:
        CertifyOptions(**{field: value})
    assert "\n" not in str(info.value)


def test_numpy_numbers_in_options_are_stored_as_python_numbers(case14, tiny_mlp, tmp_path):
    opts = CertifyOptions(samples=np.int64(8), seed=np.int32(3), timeout=np.float32(60),
                          attack_focus=np.int64(0), threads=np.int64(1), radius=np.bool_(False),
                          attack="none")
    assert type(opts.samples) is int and type(opts.seed) is int and type(opts.timeout) is float
    assert type(opts.threads) is int and opts.radius is False
    cert = certify(case14, tiny_mlp(case14), constraints="vm_max", method="ibp", options=opts)
    out = tmp_path / "cert.json"
    cert.write(out)  # JSON-serializable all through
    assert json.loads(out.read_text())["provenance"]["options"]["samples"] == 8


def test_threads_are_set_for_the_call_and_restored(case14, tiny_mlp):
    net = tiny_mlp(case14)
    seen: list[int] = []
    torch.set_num_threads(2)
    try:
        certify(case14, net, constraints="vm_max", method="ibp",
                options=CertifyOptions(samples=8, attack="none", radius=False, threads=1),
                progress=lambda stage, frac: seen.append(torch.get_num_threads()))
        assert seen and set(seen) == {1} and torch.get_num_threads() == 2
        seen.clear()
        certify(case14, net, constraints="vm_max", method="ibp",
                options=CertifyOptions(samples=8, attack="none", radius=False, threads=None),
                progress=lambda stage, frac: seen.append(torch.get_num_threads()))
        assert set(seen) == {2}
    finally:
        torch.set_num_threads(1)


def test_region_as_a_path_and_progress_must_be_callable(case14, tiny_mlp, tmp_path):
    spec = tmp_path / "near.toml"
    spec.write_text("[region]\nbox = [0.95, 1.05]\n")
    net = tiny_mlp(case14)
    a = certify(case14, net, region=spec, constraints="vm_max", method="ibp", options=FAST)
    b = certify(case14, net, region=str(spec), constraints="vm_max", method="ibp", options=FAST)
    assert np.array_equal(a.region.lower, b.region.lower)
    with pytest.raises(SpecError, match="^progress: expected a function"):
        certify(case14, net, constraints="vm_max", options=FAST, progress=1)
    with pytest.raises(SpecError, match="^method: "):
        certify(case14, net, constraints="vm_max", options=FAST, method=["ibp"])


def test_compute_bounds_names_a_box_the_module_does_not_take(case14, tiny_mlp):
    net = tiny_mlp(case14)
    with pytest.raises(GraphError, match="the module does not take the input box's 3 entries"):
        compute_bounds(net, np.zeros(3), np.ones(3))
    n = 2 * case14.n_load
    lo = np.zeros(n)
    lo.flags.writeable = False  # as a region's box is
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        b = compute_bounds(net, lo, lo + 0.1, method="crown")
    assert torch.isfinite(b.upper).all()



def test_constraints_as_any_collection_of_names_or_constraint_objects(case14, tiny_mlp):
    pd = pytest.importorskip("pandas")
    from gridverify.spec.constraints import Constraint

    net = tiny_mlp(case14)

    def names(cons):
        cert = certify(case14, net, constraints=cons, method="ibp", options=FAST)
        return [(c.family, c.component) for c in cert.constraints]

    want = names("vm_max,thermal_fr[2]")
    assert names(["vm_max", "thermal_fr[2]"]) == want
    assert names(np.array(["vm_max", "thermal_fr[2]"])) == want
    assert names(pd.Series(["vm_max", "thermal_fr[2]"])) == want
    assert sorted(names({"vm_max", "thermal_fr[2]"})) == sorted(want)
    objs = certify(case14, net, constraints="thermal_fr[2]", method="ibp", options=FAST)
    one = Constraint(objs.constraints[0].family, objs.constraints[0].component,
                     objs.constraints[0].index)
    assert names([one, one]) == [("thermal_fr", 2)]  # repeated: certified once
    with pytest.raises(SpecError, match=r"thermal_fr\[2\] \(index 99\) is not a constraint"):
        certify(case14, net, constraints=[Constraint("thermal_fr", 2, 99)], options=FAST)
    with pytest.raises(SpecError, match="expected family names or constraint strings"):
        certify(case14, net, constraints=["vm_max", 3], options=FAST)
    with pytest.raises(SpecError, match="^constraints: expected a string such as"):
        certify(case14, net, constraints=3, options=FAST)
    with pytest.raises(SpecError, match="empty"):
        certify(case14, net, constraints=[], options=FAST)


def test_more_samples_than_memory_holds_are_one_line_errors(case14, tiny_mlp):
    """The sample points are drawn at once: a count whose points cannot fit the memory
    cap is refused, naming --samples, before anything is allocated."""
    from gridverify.certify.memory import MemoryCapError

    opts = CertifyOptions(samples=10**11, radius=False, attack="none")
    with pytest.raises(MemoryCapError, match=r"^samples 100000000000 \(--samples\)") as info:
        certify(case14, tiny_mlp(case14), constraints="vm_max", method="ibp", options=opts)
    assert "\n" not in str(info.value)


def test_a_float64_onnx_proxy_onnxruntime_cannot_run_is_certified_with_a_warning(
        case14, tmp_path):
    """onnxruntime has no float64 Elu: the cross-check against it is skipped with a
    warning (it was an internal error), and the bounds are still those of the graph."""
    n_in, n_out = 2 * case14.n_load, 2 * case14.n_gen + 2 * case14.n_bus
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(n_in, 8), torch.nn.ELU(),
                              torch.nn.Linear(8, n_out)).double()
    with torch.no_grad():
        net[2].weight.mul_(0.01)
        net[2].bias.copy_(torch.as_tensor(np.concatenate([
            (case14.pmin + case14.pmax) / 2, (case14.qmin + case14.qmax) / 2,
            np.ones(case14.n_bus), np.zeros(case14.n_bus)])))
    path = tmp_path / "elu64.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (torch.zeros(1, n_in, dtype=torch.float64),), str(path),
                          input_names=["x"], dynamic_axes={"x": {0: "b"}}, dynamo=False)
    proxy = load_proxy(str(path), case=case14)
    cert = certify(case14, proxy, constraints="vm_max", method="ibp", options=FAST)
    assert any("onnxruntime cannot run the model" in w and "Elu" in w
               for w in cert.warnings), cert.warnings
    y = proxy.module(torch.as_tensor(np.concatenate([case14.pd, case14.qd]))[None])
    assert torch.isfinite(y).all()
    assert all(np.isfinite(r.upper_bound) for r in cert.constraints)
