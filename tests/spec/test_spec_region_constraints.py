"""Regions, constraint selection, thresholds and spec files."""

from __future__ import annotations

import json
from dataclasses import replace

import h5py
import numpy as np
import pytest

from gridverify.errors import SpecError
from gridverify.grid import load_compiled
from gridverify.spec import (
    FAMILIES,
    ConstraintSelection,
    Region,
    ThresholdRule,
    ThresholdSpec,
    box_region,
    dataset_region,
    explicit_region,
    load_spec,
    parse_constraints,
    parse_region,
    parse_threshold,
    pglearn_region,
    resolve_thresholds,
    select_constraints,
)
from gridverify.spec.constraints import family_candidates


@pytest.fixture(scope="module")
def case14():
    return load_compiled("pglib_opf_case14_ieee")


def test_box_region_flips_negative_nominal(case14):
    reg = box_region(case14, 0.9, 1.1)
    nom = np.concatenate([case14.pd, case14.qd])
    assert np.all(reg.lower <= reg.upper)
    for i, d in enumerate(nom):
        assert (reg.lower[i], reg.upper[i]) == pytest.approx((min(0.9 * d, 1.1 * d),
                                                              max(0.9 * d, 1.1 * d)))
    # negative nominal loads flip the interval
    fake = replace(case14, qd=-np.abs(case14.qd))
    r2 = box_region(fake, 0.9, 1.1)
    L = case14.n_load
    np.testing.assert_allclose(r2.lower[L:], 1.1 * fake.qd)
    np.testing.assert_allclose(r2.upper[L:], 0.9 * fake.qd)


def test_pglearn_region_encloses_samples(case14):
    a, b, r = 0.8, 1.2, 0.1
    reg = pglearn_region(case14, a, b, r)
    rng = np.random.default_rng(0)
    nom = np.concatenate([case14.pd, case14.qd])
    alpha = rng.uniform(a, b, (5000, 1))
    eta = rng.uniform(1 - r, 1 + r, (5000, nom.size))
    x = alpha * eta * nom
    assert np.all(x >= reg.lower - 1e-15) and np.all(x <= reg.upper + 1e-15)
    # tight: the corners are reached
    np.testing.assert_allclose(reg.upper[: case14.n_load], 1.32 * case14.pd)
    np.testing.assert_allclose(reg.lower[: case14.n_load], 0.72 * case14.pd)


def test_explicit_and_dataset_regions(case14, tmp_path):
    n = 2 * case14.n_load
    reg = explicit_region(case14, np.zeros(n), np.ones(n))
    assert reg.n_input == n and reg.kind == "explicit"
    rng = np.random.default_rng(1)
    pd = case14.pd * rng.uniform(0.9, 1.1, (50, case14.n_load))
    qd = case14.qd * rng.uniform(0.9, 1.1, (50, case14.n_load))
    path = tmp_path / "data.h5"
    with h5py.File(path, "w") as f:
        f["input/pd"] = pd
        f["input/qd"] = qd
    dr = dataset_region(case14, path)
    np.testing.assert_allclose(dr.lower, np.concatenate([pd.min(0), qd.min(0)]))
    np.testing.assert_allclose(dr.upper, np.concatenate([pd.max(0), qd.max(0)]))
    assert parse_region(f"dataset:{path}", case14).kind == "dataset"
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f.attrs["case_hash"] = "0" * 64
        f["inputs/pd"] = pd
        f["inputs/qd"] = qd
    with pytest.raises(SpecError, match="made for case"):
        dataset_region(case14, other)


@pytest.mark.parametrize(
    "lower_fn, upper_fn, match",
    [
        (lambda n: np.ones(n), lambda n: np.zeros(n), "inverted"),
        (lambda n: np.full(n, np.nan), lambda n: np.ones(n), "finite"),
        (lambda n: -np.ones(n), lambda n: np.ones(n), "negative active load"),
        (lambda n: np.zeros(n - 1), lambda n: np.ones(n - 1), "inputs"),
        (lambda n: [], lambda n: [], "empty"),
    ],
)
def test_bad_regions(case14, lower_fn, upper_fn, match):
    n = 2 * case14.n_load
    with pytest.raises(SpecError, match=match):
        explicit_region(case14, lower_fn(n), upper_fn(n))


@pytest.mark.parametrize(
    "text, match",
    [
        ("box:1.1,0.9", "inverted"),
        ("box:nan,1", "finite"),
        ("box:-0.5,1", "negative"),
        ("box:1", "expected"),
        ("pglearn:0.8,1.2,-1", "negative noise"),
        ("foo:1,2", "expected"),
        ("", "empty"),
        ("dataset:/nonexistent.h5", "not found"),
        ("box:1e308,1e308", "overflows"),  # the centre was inf (a JSON error at the end)
    ],
)
def test_bad_region_strings(case14, text, match):
    with pytest.raises(SpecError, match=match):
        parse_region(text, case14)


def test_region_roundtrip_and_sampling(case14):
    reg = box_region(case14, 0.9, 1.1)
    again = Region.from_dict(json.loads(json.dumps(reg.to_dict())))
    np.testing.assert_array_equal(again.lower, reg.lower)
    assert again.kind == "box" and again.describe() == "box:0.9,1.1"
    x = reg.sample(1000, np.random.default_rng(0))
    assert np.all(x >= reg.lower) and np.all(x <= reg.upper)
    assert box_region(case14, 0.8, 1.2).contains(reg)
    assert not reg.contains(box_region(case14, 0.8, 1.2))


def test_select_all_families(case14):
    cons = select_constraints(case14)
    fams = {c.family for c in cons}
    assert fams == set(FAMILIES)
    n_rated = int(np.sum(np.isfinite(case14.rate_a) & (case14.rate_a > 0)))
    assert sum(c.family == "thermal_fr" for c in cons) == n_rated
    assert sum(c.family == "p_balance" for c in cons) == case14.n_bus
    # components: bus ids, 1-based branch rows, 1-based gen rows
    assert {c.component for c in cons if c.family == "vm_max"} == set(case14.bus_ids.tolist())
    assert {c.component for c in cons if c.family == "pg_max"} == set(case14.gen_row.tolist())
    assert {c.component for c in cons if c.family == "angle_max"} <= set(
        case14.branch_row.tolist())


def test_parse_constraints_components(case14):
    sel = parse_constraints("p_balance[1,3],thermal_fr[2],vm_max")
    cons = select_constraints(case14, sel)
    assert [(c.family, c.component) for c in cons if c.family != "vm_max"] == [
        ("p_balance", 1), ("p_balance", 3), ("thermal_fr", 2)]
    assert sum(c.family == "vm_max" for c in cons) == case14.n_bus
    assert set(parse_constraints("all").families) == set(FAMILIES)


@pytest.mark.parametrize("text", ["p_balance,p_balance[1]", "p_balance[1],p_balance",
                                  "all,p_balance[1]", "p_balance[1],all"])
def test_bare_family_and_components_is_the_whole_family(case14, text):
    # items are a union: the bare family (or all) already holds component 1
    cons = select_constraints(case14, parse_constraints(text))
    assert sum(c.family == "p_balance" for c in cons) == case14.n_bus
    assert dict(parse_constraints(text).components) == {}


def test_repeated_components_add_up(case14):
    cons = select_constraints(case14, parse_constraints("p_balance[3],vm_max,p_balance[1,3]"))
    assert [(c.family, c.component) for c in cons if c.family == "p_balance"] == [
        ("p_balance", 1), ("p_balance", 3)]


@pytest.mark.parametrize(
    "text, match",
    [
        ("p_balanse", "unknown family"),
        ("thermal_fr[9999]", "no component 9999"),
        ("p_balance,p_balance[9999]", "no component 9999"),  # named ids still checked
        ("all,vm_max[77]", "no component 77"),
        ("pg_max[0]", "no component 0"),
        ("vm_max[abc]", "not an integer"),
        ("", "empty"),
    ],
)
def test_bad_constraint_selection(case14, text, match):
    with pytest.raises(SpecError, match=match):
        select_constraints(case14, parse_constraints(text))


def test_unrated_branches_have_no_thermal_constraint(case14):
    rate = np.array(case14.rate_a, dtype=float)
    rate[0] = np.inf
    fake = replace(case14, rate_a=rate)
    idx, ids = family_candidates(fake, "thermal_fr")
    assert 0 not in idx
    with pytest.raises(SpecError, match="rated"):
        select_constraints(fake, ConstraintSelection(("thermal_fr",), (("thermal_fr", (1,)),)))


def test_thresholds_rules(case14):
    cons = select_constraints(case14, parse_constraints("p_balance,q_balance,vm_max"))
    t = resolve_thresholds(case14, cons)
    assert all(v == 1e-3 for c, v in zip(cons, t) if c.family.endswith("balance"))
    assert all(v == 1e-6 for c, v in zip(cons, t) if c.family == "vm_max")
    spec = ThresholdSpec((("p_balance", ThresholdRule("max", 0.002, 0.05)),
                          ("q_balance", ThresholdRule("relative", 0.0, 0.1))))
    t = resolve_thresholds(case14, cons, spec)
    for c, v in zip(cons, t):
        if c.family == "p_balance":
            assert v == pytest.approx(max(0.002, 0.05 * abs(case14.pd_bus[c.index])))
        elif c.family == "q_balance":
            assert v == pytest.approx(0.1 * abs(case14.qd_bus[c.index]))
    parsed = parse_threshold("p_balance=max:0.002:0.05,q_balance=rel:0.1,vm_max=0.01")
    assert parsed.rule("p_balance") == ThresholdRule("max", 0.002, 0.05)
    assert parsed.rule("vm_max") == ThresholdRule("absolute", 0.01)
    assert parse_threshold("0.5").rule("angle_min").a == 0.5
    # a finite factor whose product with a demand overflows: one line, not an
    # internal error when the certificate is written as JSON
    with pytest.raises(SpecError, match=r"threshold p_balance: relative factor 1e\+308 "
                                        r"times the demand .* is not a finite threshold"):
        case5 = load_compiled("pglib_opf_case5_pjm")  # demands of 3 pu
        resolve_thresholds(case5, select_constraints(case5, parse_constraints("p_balance")),
                           parse_threshold("p_balance=rel:1e308"))


@pytest.mark.parametrize(
    "text, match",
    [("vm_max=rel:0.1", "p_balance/q_balance only"), ("x=1", "unknown family"),
     ("p_balance=abc", "not a number"), ("nan", "finite"), ("-1", ">= 0"),
     ("p_balance=1,p_balance=2", "rule for p_balance is given twice"),
     ("vm_max=0,p_balance=1,p_balance=rel:0.1", "rule for p_balance is given twice"),
     ("0.1,vm_max=0,0.2", "default .* is given twice")],
)
def test_bad_thresholds(text, match):
    with pytest.raises(SpecError, match=match):
        parse_threshold(text)


def test_spec_files_toml_and_json(case14, tmp_path):
    toml = tmp_path / "spec.toml"
    toml.write_text(
        '[region]\nbox = [0.95, 1.05]\n\n[constraints]\nfamilies = ["p_balance", "vm_max"]\n'
        'components = { vm_max = [1, 2] }\n\n[thresholds]\ndefault = 1e-4\n'
        'p_balance = { absolute = 1e-3, relative = 0.01 }\n'
    )
    spec = load_spec(toml, case14)
    assert spec.region is not None and spec.region.describe() == "box:0.95,1.05"
    cons = select_constraints(case14, spec.constraints)
    assert [c.component for c in cons if c.family == "vm_max"] == [1, 2]
    assert spec.thresholds.rule("p_balance").kind == "max"
    assert spec.thresholds.rule("vm_min").a == 1e-4
    js = tmp_path / "spec.json"
    js.write_text(json.dumps({"region": {"pglearn": [0.8, 1.2, 0.05]},
                              "constraints": {"families": ["thermal_fr"]}}))
    spec2 = load_spec(js, case14)
    assert spec2.region.kind == "pglearn"
    assert parse_region(str(toml), case14).describe() == "box:0.95,1.05"


@pytest.mark.parametrize(
    "body, suffix, match",
    [
        ("[region]\nbox = [0.9, nan]\n", ".toml", "finite"),
        ("[region]\nbox = [1.1, 0.9]\n", ".toml", "inverted"),
        ("[constraints]\nfamilies = ['nope']\n", ".toml", "unknown family"),
        ("[constraints]\ncomponents = { vm_max = [999] }\n", ".toml", None),
        ("[thresholds]\nvm_max = nan\n", ".toml", "finite"),
        ("[regions]\nbox = [0.9, 1.1]\n", ".toml", "unknown key"),
        ("[region\n", ".toml", "invalid TOML"),
        ('{"region": {"box": [0.9, NaN]}}', ".json", "finite"),
        ('{"region": ', ".json", "invalid JSON"),
    ],
)
def test_bad_spec_files(case14, tmp_path, body, suffix, match):
    p = tmp_path / f"bad{suffix}"
    p.write_text(body)
    with pytest.raises(SpecError, match=match):
        spec = load_spec(p, case14)
        select_constraints(case14, spec.constraints)


def test_spec_file_not_utf8_or_a_folder(case14, tmp_path):
    p = tmp_path / "bin.toml"
    p.write_bytes(b"\xff\xfe[region]\n")
    with pytest.raises(SpecError, match=r"bin.toml: not UTF-8 text"):
        load_spec(p, case14)
    d = tmp_path / "dir.toml"
    d.mkdir()
    with pytest.raises(SpecError, match=r"dir.toml: is a folder"):
        load_spec(d, case14)


@pytest.mark.parametrize(
    "body, suffix, key",
    [
        ("[constraints]\nfamilies = ['p_balance']\ncomponents = { p_balance = [99] }\n",
         ".toml", "constraints.components.p_balance: p_balance has no component 99"),
        ("[constraints]\nfamilies = []\n", ".toml", "constraints.families: empty list"),
        ("[thresholds]\ndefault = -1\n", ".toml", "threshold.default: must be >= 0"),
        ("[thresholds]\nvm_max = -1e-3\n", ".toml", "threshold.vm_max: must be >= 0"),
        ("[thresholds]\np_balance = { absolute = 1e-3, relative = -1 }\n", ".toml",
         "threshold.p_balance.relative: must be >= 0"),
        ("[thresholds]\np_balance = { absolute = 1e-3, a = 2e-3 }\n", ".toml",
         "threshold.p_balance: conflicting keys 'absolute' and 'a'"),
        ('{"thresholds": {"vm_max": 0.1, "vm_max": 0.2}}', ".json", "key 'vm_max' is given twice"),
        ('{"region": {"box": [0.9, 1.1]}, "region": {"box": [0.8, 1.2]}}', ".json",
         "key 'region' is given twice"),
        ("[thresholds]\ndefault = nan\n", ".toml", "thresholds.default: not a finite number"),
        ('{"region": {"box": [0.9, NaN]}}', ".json", "region.box[1]: not a finite number"),
    ],
)
def test_spec_file_errors_name_the_file_and_key(case14, tmp_path, body, suffix, key):
    p = tmp_path / f"bad{suffix}"
    p.write_text(body)
    with pytest.raises(SpecError) as err:
        load_spec(p, case14)
    msg = str(err.value)
    assert msg.startswith(f"{p}: ") and key in msg and "\n" not in msg, msg


@pytest.mark.parametrize(
    "text, match",
    [("p_balance=max:0.1", r"'p_balance=max:0\.1': max needs max:A:B, two numbers"),
     ("p_balance=max:0.1:x", "max needs max:A:B"),
     ("p_balance=max:1:2:3", "max needs max:A:B"),
     ("max:0.1", "max needs max:A:B"),
     ("q_balance=rel:", "rel needs rel:B, B a number"),
     ("q_balance=rel:x", "rel needs rel:B"),
     ("p_balance=abs:0.1", r"unknown rule 'abs' \(expected A, rel:B or max:A:B\)"),
     ("p_balance=abc", r"'abc' is not a number \(expected A, rel:B or max:A:B\)")],
)
def test_bad_threshold_rules_name_the_form_their_kind_needs(text, match):
    with pytest.raises(SpecError, match=match) as info:
        parse_threshold(text)
    assert "\n" not in str(info.value)
    if "max:" in text or "rel:" in text:  # the kind was recognized: no "not a number"
        assert "not a number" not in str(info.value)


@pytest.mark.parametrize("ids, msg", [
    ([], "empty list of component ids"),
    ([1.5], "id 1.5 is not an integer"),
    ([2.0], "id 2.0 is not an integer"),
    ([1e30], "is not an integer"),
    ([True], "id True is not an integer"),
    ([99999999999999999999], "out of range"),
    ([-1], "out of range"),
    ("3", "expected a list of ids"),
])
def test_component_ids_are_a_non_empty_list_of_integers(ids, msg) -> None:
    from gridverify.spec.constraints import selection_from_mapping

    with pytest.raises(SpecError, match=rf"constraints\.components\.p_balance: .*{msg}"):
        selection_from_mapping({"components": {"p_balance": ids}})
    sel = selection_from_mapping({"components": {"p_balance": [np.int64(3), 4]}})
    assert sel.components == (("p_balance", (3, 4)),)


def test_dataset_region_file_must_be_a_string(case14) -> None:
    from gridverify.spec.region import region_from_mapping

    with pytest.raises(SpecError, match="region.dataset: expected a string"):
        region_from_mapping(case14, {"dataset": 5})


@pytest.mark.parametrize("table, match", [
    ({"box": [True, 1.1]}, r"factor a: not a number \(True\)"),
    ({"box": ["0.9", "1.1"]}, r"factor a: not a number \('0.9'\)"),
    ({"pglearn": [0.9, 1.1, False]}, "noise r: not a number"),
    ({"zones": [0.9, 1.1, "3"]}, "count k: not a number"),
    ({"lower": ["0.1"] * 22, "upper": [1.0] * 22}, r"region.lower: not a list of numbers"),
    ({"lower": [0.1] * 22, "upper": [True] * 22}, r"region.upper: not a list of numbers"),
])
def test_spec_file_numbers_are_numbers(case14, table, match):
    """A spec file's string or boolean is no number (true read as 1, "0.9" as 0.9)."""
    from gridverify.spec.region import region_from_mapping

    with pytest.raises(SpecError, match=match):
        region_from_mapping(case14, table)


def test_command_line_default_replaces_the_files_default_only(tmp_path):
    """``--threshold 0.01`` is a default: over a file's ``default = 0.2, thermal_fr = 0,
    p_balance = {relative = 0.01}`` the named families keep the file's rules (every
    family became 0.01); a family rule replaces the file's rule of that family only."""
    import tomllib

    from gridverify.spec.thresholds import parse_threshold, thresholds_from_mapping

    file = thresholds_from_mapping(tomllib.loads(
        "default = 0.2\nthermal_fr = 0\np_balance = { relative = 0.01 }\n"))
    both = file.overridden(parse_threshold("0.01"))
    assert both.rule("thermal_fr").a == 0.0
    assert both.rule("p_balance").kind == "relative" and both.rule("p_balance").b == 0.01
    assert both.rule("vm_max").a == 0.01 and both.rule("q_balance").a == 0.01
    one = file.overridden(parse_threshold("vm_max=0.5,thermal_fr=0.3"))
    assert one.rule("vm_max").a == 0.5 and one.rule("thermal_fr").a == 0.3
    assert one.rule("vm_min").a == 0.2
    # a relative default reaches the balance families only, the others keep theirs
    rel = thresholds_from_mapping({"default": {"relative": 0.05}})
    assert rel.rule("p_balance").kind == "relative" and rel.rule("vm_max").a == 1e-6


def test_region_kind_and_params_are_checked_and_always_describable(case14):
    """A hand-built box without its numbers is described by its size (repr of its
    certificate raised KeyError); a kind that is no string, params that are not
    finite JSON values are refused when the region is built or read."""
    base = box_region(case14, 0.9, 1.1)
    bare = Region(base.lower, base.upper, "box")
    assert bare.describe() == f"box ({base.n_input} inputs)"
    assert Region(base.lower, base.upper, "box", {"b": 1.1, "a": np.float64(0.9)}) == base
    with pytest.raises(SpecError, match="kind must be a string"):
        Region(base.lower, base.upper, 5)
    with pytest.raises(SpecError, match="is not finite"):
        Region(base.lower, base.upper, "box", (("a", float("nan")),))
    with pytest.raises(SpecError, match="not a number or a string"):
        Region(base.lower, base.upper, "box", (("a", [1, 2]),))
    d = base.to_dict()
    for params, ok in (({}, True), (None, True), ("x", False), ({"a": "0.9", "b": 1.1}, True)):
        if ok:
            assert Region.from_dict({**d, "params": params}).describe().startswith("box")
        else:
            with pytest.raises(SpecError, match="region.params"):
                Region.from_dict({**d, "params": params})
    with pytest.raises(SpecError, match="region.kind"):
        Region.from_dict({**d, "kind": 3})


@pytest.mark.parametrize("body, match", [
    ("[region]\nbox = [1.1, 0.9]\n", "region box: inverted factors"),
    ("[region]\nlower = [1.0, 1.0]\nupper = [2.0, 2.0]\n", "2 inputs, but case"),
    ("[region]\nlower = [" + ", ".join(["1.0"] * 22) + "]\nupper = ["
     + ", ".join(["0.5"] * 22) + "]\n", "inverted bounds at input 0"),
])
def test_region_file_errors_name_the_file(case14, tmp_path, body, match):
    """``--region FILE``: every error starts with the file (an inverted box or a wrong
    size were found later, without it)."""
    p = tmp_path / "r.toml"
    p.write_text(body)
    with pytest.raises(SpecError) as info:
        parse_region(str(p), case14)
    assert str(info.value).startswith(f"{p}: ") and match in str(info.value), info.value


def test_generator_families_are_named_by_case_rows_when_one_is_out(tmp_path):
    """case5 with its first generator out of service: the generator families' components
    are the case's generator rows of the ones in service (2 to 5), so ``pg_max[5]``
    names row 5 and ``pg_max[1]`` names none."""
    import re
    import warnings

    from gridverify.grid.case import resolve_case_path

    text = resolve_case_path("pglib_opf_case5_pjm").read_text()
    head, body = text.split("mpc.gen = [\n", 1)
    first, rest = body.split("\n", 1)
    cols = re.split(r"\s+", first.strip().rstrip(";"))
    cols[7] = "0"  # GEN_STATUS
    path = tmp_path / "case5_gen_out.m"
    path.write_text(head + "mpc.gen = [\n\t" + "\t".join(cols) + ";\n" + rest)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        case = load_compiled(path, emit_warnings=False)
    assert case.gen_row.tolist() == [2, 3, 4, 5]
    for fam in ("pg_max", "pg_min", "qg_max", "qg_min"):
        cons = select_constraints(case, ConstraintSelection((fam,)))
        assert [c.component for c in cons] == [2, 3, 4, 5]
        assert [c.index for c in cons] == [0, 1, 2, 3]
    (c5,) = select_constraints(case, parse_constraints("pg_max[5]"))
    assert (c5.component, c5.index) == (5, 3)
    with pytest.raises(SpecError, match="no component 1"):
        select_constraints(case, parse_constraints("pg_max[1]"))
