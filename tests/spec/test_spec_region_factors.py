"""Factor regions: load vectors that move together, ``center + factors @ e``."""

from __future__ import annotations

import json

import numpy as np
import pytest

from gridverify.errors import SpecError
from gridverify.grid import load_compiled
from gridverify.spec import (
    Region,
    box_region,
    correlated_region,
    load_factor_region,
    parse_region,
    scale_region,
    zone_region,
)
from gridverify.spec.region import region_from_mapping


@pytest.fixture(scope="module")
def case14():
    return load_compiled("pglib_opf_case14_ieee")


def _nominal(case):
    return np.concatenate([np.asarray(case.pd, float), np.asarray(case.qd, float)])


def _ratios(case, x):
    """Per sample and load: pd / nominal pd and qd / nominal qd (NaN where nominal is 0)."""
    nom = _nominal(case)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(nom != 0, x / nom, np.nan)
    n = int(case.n_load)
    return r[:, :n], r[:, n:]


def test_scale_region_moves_every_load_by_one_factor(case14):
    reg = scale_region(case14, 0.9, 1.1)
    assert reg.n_search == 1 and reg.factors.shape == (22, 1)
    assert reg.describe() == "scale:0.9,1.1"
    box = box_region(case14, 0.9, 1.1)  # the enclosing box is the box region's
    np.testing.assert_allclose(reg.lower, box.lower)
    np.testing.assert_allclose(reg.upper, box.upper)
    x = reg.sample(500, np.random.default_rng(0))
    rp, rq = _ratios(case14, x)
    s = np.nanmean(rp, axis=1)
    assert np.all((s >= 0.9 - 1e-12) & (s <= 1.1 + 1e-12))
    np.testing.assert_allclose(rp, np.broadcast_to(s[:, None], rp.shape), atol=1e-12)
    np.testing.assert_allclose(np.nan_to_num(rq, nan=0.0),
                               np.where(np.isnan(rq), 0.0, s[:, None]), atol=1e-12)
    # the search box and its map: e = -1, 0, 1 give 0.9, 1.0, 1.1 x nominal
    sb = reg.search_box()
    assert sb.n_input == 1 and sb.factors is None
    ends = reg.to_loads(np.array([[-1.0], [0.0], [1.0]]))
    np.testing.assert_allclose(ends, np.outer([0.9, 1.0, 1.1], _nominal(case14)), atol=1e-15)


def test_load_factor_region_keeps_power_factors(case14):
    reg = load_factor_region(case14, 0.9, 1.1)
    n = int(case14.n_load)
    assert reg.n_search == n
    x = reg.sample(500, np.random.default_rng(1))
    rp, rq = _ratios(case14, x)
    both = ~np.isnan(rq)
    np.testing.assert_allclose(rp[both], rq[both], atol=1e-12)  # pd and qd by one factor
    assert np.nanmin(rp) >= 0.9 - 1e-12 and np.nanmax(rp) <= 1.1 + 1e-12
    assert np.nanstd(rp, axis=1).min() > 0  # loads move apart


def test_correlated_region_contains_pglearn_samples(case14):
    a, b, r = 0.8, 1.2, 0.1
    reg = correlated_region(case14, a, b, b * r)
    assert reg.n_search == 1 + int(case14.n_load)
    rng = np.random.default_rng(2)
    alpha = rng.uniform(a, b, size=(300, 1))
    eta = rng.uniform(1 - r, 1 + r, size=(300, int(case14.n_load)))
    x = alpha * np.concatenate([eta, eta], axis=1) * _nominal(case14)
    # x = center + G e with e in [-1, 1]^p for every PGLearn sample: the global
    # factor's column first, then each load's alpha * (eta - 1) / (b r)
    e = np.concatenate([(alpha - 0.5 * (a + b)) / (0.5 * (b - a)),
                        alpha * (eta - 1) / (b * r)], axis=1)
    assert np.abs(e).max() <= 1 + 1e-12
    np.testing.assert_allclose(reg.to_loads(e), x, atol=1e-12)
    # r = 0: the scale region's set
    np.testing.assert_allclose(correlated_region(case14, 0.9, 1.1, 0.0).factors,
                               scale_region(case14, 0.9, 1.1).factors)


def test_zone_region_moves_each_zone_by_its_own_factor(case14):
    from gridverify.spec.zones import load_zones

    reg = zone_region(case14, 0.9, 1.1, 4)
    assert reg.n_search == 4 and reg.describe() == "zones:0.9,1.1,4"
    box = box_region(case14, 0.9, 1.1)
    np.testing.assert_allclose(reg.lower, box.lower)
    np.testing.assert_allclose(reg.upper, box.upper)
    zones = load_zones(case14, 4)
    x = reg.sample(400, np.random.default_rng(1))
    rp, rq = _ratios(case14, x)
    for z in range(4):  # one factor per zone, in [a, b], shared by pd and qd of its loads
        f = rp[:, zones == z]
        np.testing.assert_allclose(f, np.broadcast_to(f[:, :1], f.shape), atol=1e-12)
        assert np.all((f >= 0.9 - 1e-12) & (f <= 1.1 + 1e-12))
        q = rq[:, zones == z]
        ok = ~np.isnan(q)
        np.testing.assert_allclose(q[ok], np.broadcast_to(f[:, :1], q.shape)[ok], atol=1e-12)
    # zones move apart: two zones' factors are not tied
    assert np.std(rp[:, zones == 0][:, 0] - rp[:, zones == 1][:, 0]) > 0.01
    # one zone is the system load level, one zone per load each load on its own
    np.testing.assert_allclose(zone_region(case14, 0.9, 1.1, 1).factors,
                               scale_region(case14, 0.9, 1.1).factors)
    per_load = zone_region(case14, 0.9, 1.1, int(case14.n_load)).factors
    lf = load_factor_region(case14, 0.9, 1.1).factors
    np.testing.assert_allclose(np.sort(per_load, axis=1), np.sort(lf, axis=1))
    back = Region.from_dict(json.loads(json.dumps(reg.to_dict())))
    np.testing.assert_array_equal(back.factors, reg.factors)
    assert back.describe() == "zones:0.9,1.1,4"


def test_factor_region_roundtrip_shrink_and_contains(case14):
    reg = parse_region("correlated:0.9,1.1,0.02", case14)
    assert reg.describe() == "correlated:0.9,1.1,0.02"
    back = Region.from_dict(json.loads(json.dumps(reg.to_dict())))
    np.testing.assert_array_equal(back.factors, reg.factors)
    np.testing.assert_allclose(back.lower, reg.lower)
    assert back.kind == "correlated" and back.params == reg.params
    half = reg.shrunk(0.5)
    np.testing.assert_allclose(half.factors, 0.5 * reg.factors)
    np.testing.assert_allclose(half.center, reg.center)
    assert dict(half.params)["radius"] == 0.5
    assert reg.contains(half) and not half.contains(reg)
    assert not reg.contains(box_region(case14, 0.95, 1.05))  # a box is not one of its shrinks
    assert box_region(case14, 0.85, 1.15).contains(reg)  # its enclosing box is inside
    x = half.sample(200, np.random.default_rng(3))
    assert np.all(x >= half.lower - 1e-12) and np.all(x <= half.upper + 1e-12)


def test_factor_regions_from_spec_tables_and_cli(case14):
    for table, text in (({"scale": [0.9, 1.1]}, "scale:0.9,1.1"),
                        ({"load-factors": [0.95, 1.05]}, "load-factors:0.95,1.05"),
                        ({"correlated": [0.9, 1.1, 0.01]}, "correlated:0.9,1.1,0.01"),
                        ({"zones": [0.9, 1.1, 3]}, "zones:0.9,1.1,3")):
        a, b = region_from_mapping(case14, table), parse_region(text, case14)
        np.testing.assert_array_equal(a.factors, b.factors)
        assert a.describe() == text


@pytest.mark.parametrize("text,match", [
    ("scale:0.9", "expected scale:A,B"),
    ("correlated:0.9,1.1", "expected correlated:A,B,R"),
    ("load-factors:1.1,0.9", "inverted factors"),
    ("correlated:0.9,1.1,-0.1", "negative noise level"),
    ("scale:-0.5,1.1", "negative active load"),
    ("scale:0.9,x", "factors must be numbers"),
    ("zonal:0.9,1.1", "expected box:A,B, pglearn:A,B,R, scale:A,B"),
    ("zones:0.9,1.1", "expected zones:A,B,K"),
    ("zones:0.9,1.1,2.5", "whole number of zones from 1 to the case's 11 loads"),
    ("zones:0.9,1.1,0", "whole number of zones"),
    ("zones:0.9,1.1,12", "whole number of zones"),
])
def test_bad_factor_region_strings(case14, text, match):
    with pytest.raises(SpecError, match=match):
        parse_region(text, case14)


@pytest.mark.parametrize("table,match", [
    ({"scale": 1.0}, r"region.scale: expected \[a, b\]"),
    ({"correlated": [0.9, 1.1]}, r"region.correlated: expected \[a, b, r\]"),
    ({"scale": [0.9, 1.1], "box": [0.9, 1.1]}, "conflicting keys"),
])
def test_bad_factor_region_tables(case14, table, match):
    with pytest.raises(SpecError, match=match):
        region_from_mapping(case14, table)


@pytest.mark.parametrize("mutate,match", [
    (lambda f: f.pop("rows"), "expected shape, rows, cols and values"),
    (lambda f: f.update(shape=[21, 1]), "does not fit 22 inputs"),
    (lambda f: f.update(cols=[5] * len(f["cols"])), "outside the shape"),
    (lambda f: f.update(values=f["values"][:-1]), "differ in length"),
])
def test_bad_factor_dicts(case14, mutate, match):
    d = scale_region(case14, 0.9, 1.1).to_dict()
    mutate(d["factors"])
    with pytest.raises(SpecError, match=match):
        Region.from_dict(d)


def test_bad_factor_matrix():
    with pytest.raises(SpecError, match="factors must be a"):
        Region.from_factors(np.ones(4), np.ones((3, 1)))
    with pytest.raises(SpecError, match="factors must be finite"):
        Region.from_factors(np.ones(2), np.array([[np.inf], [0.0]]))


@pytest.mark.parametrize("text", ["scale:0.85,1.15", "zones:0.9,1.1,3", "load-factors:0.9,1.1",
                                  "correlated:0.9,1.1,0.02"])
def test_factor_regions_keep_their_centre_to_the_bit(case14, text):
    """The loads of the search box's vertices and samples lie inside ``lower``/``upper``
    (no ulp outside: the centre is kept as given, not re-derived as the midpoint), and
    a certificate's region reads back bit for bit (centre, bounds, factors)."""
    reg = parse_region(text, case14)
    p = reg.n_search
    rng = np.random.default_rng(0)
    e = np.vstack([-np.ones(p), np.ones(p), rng.choice([-1.0, 1.0], (64, p)),
                   rng.uniform(-1, 1, (64, p))])
    x = reg.to_loads(e)
    assert np.all(x >= reg.lower) and np.all(x <= reg.upper)
    if p == 1 or text.startswith(("zones", "load-factors")):  # one factor per load: exact
        down = np.where(reg.factors.sum(axis=1) >= 0, reg.lower, reg.upper)
        np.testing.assert_array_equal(reg.to_loads(-np.ones(p))[0], down)
    back = Region.from_dict(json.loads(json.dumps(reg.to_dict())))
    for name in ("center", "lower", "upper", "factors"):
        np.testing.assert_array_equal(getattr(back, name), getattr(reg, name), err_msg=name)
    again = Region.from_dict(json.loads(json.dumps(back.to_dict())))
    assert again.to_dict() == reg.to_dict()


def test_a_factor_dict_whose_bounds_contradict_its_centre_is_refused(case14):
    d = scale_region(case14, 0.9, 1.1).to_dict()
    d["lower"] = [v - 0.01 for v in d["lower"]]
    with pytest.raises(SpecError, match="not center"):
        Region.from_dict(d)
    old = scale_region(case14, 0.9, 1.1).to_dict()
    del old["center"]  # written before the centre was: still read
    assert Region.from_dict(old).factors is not None
