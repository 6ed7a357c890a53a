"""Property test: certified upper bounds hold for random proxies, regions and methods."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gridverify.bounds import BoundOptions
from gridverify.certify import CertifyOptions, certify
from gridverify.grid import load_compiled
from gridverify.spec import box_region, pglearn_region

_CASE = load_compiled("pglib_opf_case5_pjm")


@settings(max_examples=3, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    seed=st.integers(0, 10_000),
    act=st.sampled_from(["relu", "tanh", "sigmoid"]),
    method=st.sampled_from(["ibp", "crown", "alpha-crown"]),
    lo=st.floats(0.5, 1.0),
    width=st.floats(0.0, 0.5),
    noise=st.floats(0.0, 0.2),
    scale=st.floats(0.01, 2.0),
    pglearn=st.booleans(),
)
def test_random_proxy_bounds_hold(tiny_mlp, check_sound, seed, act, method, lo, width, noise,
                                  scale, pglearn):
    net = tiny_mlp(_CASE, hidden=(8, 8), act=act, seed=seed, out_scale=scale)
    region = (pglearn_region(_CASE, lo, lo + width, noise) if pglearn
              else box_region(_CASE, lo, lo + width))
    cert = certify(_CASE, net, region, method=method,
                   options=CertifyOptions(samples=64, attack="none", bounds=BoundOptions(
                                              alpha_iterations=5, intermediate="alpha-crown")))
    check_sound(cert, _CASE, net)
    assert all(c.status in ("certified", "violated", "open") for c in cert.constraints)


def test_point_region_bounds_are_tight(tiny_mlp, check_sound):
    """A zero-width region: bounds collapse onto the single load's violations."""
    net = tiny_mlp(_CASE, hidden=(8, 8), act="relu", seed=1, out_scale=0.5)
    region = box_region(_CASE, 1.0, 1.0)
    cert = certify(_CASE, net, region, method="crown",
                   options=CertifyOptions(samples=0, attack="none"))
    check_sound(cert, _CASE, net, n=1000)
    for c in cert.constraints:
        assert c.upper_bound == pytest.approx(c.attained, abs=1e-6 * (1 + abs(c.attained)))
