"""Load samplers: determinism, region membership, spec parsing."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridverify.errors import DatasetError
from gridverify.grid import load_compiled
from gridverify.opf.samplers import (
    BoxSampler,
    PGLearnSampler,
    SamplerError,
    sampler_from_json,
    sampler_from_spec,
)

CASE = load_compiled("pglib_opf_case14_ieee", emit_warnings=False)


@settings(max_examples=60, deadline=None)
@given(
    low=st.floats(0.0, 2.0, allow_subnormal=False),
    width=st.floats(0.0, 1.0, allow_subnormal=False),
    seed=st.integers(0, 2**31),
    index=st.integers(0, 10**6),
)
def test_box_inside_region_and_deterministic(low: float, width: float, seed: int,
                                             index: int) -> None:
    s = BoxSampler(low, low + width)
    pd, qd = s.sample(CASE, seed, index)
    f = pd / CASE.pd
    assert np.all(f >= low - 1e-12) and np.all(f <= low + width + 1e-12)
    nz = CASE.qd != 0
    np.testing.assert_allclose(qd[nz] / CASE.qd[nz], f[nz], rtol=1e-12)  # same factor
    pd2, qd2 = s.sample(CASE, seed, index)
    assert np.array_equal(pd, pd2) and np.array_equal(qd, qd2)


@settings(max_examples=60, deadline=None)
@given(
    a=st.floats(0.5, 1.0, allow_subnormal=False),
    span=st.floats(0.0, 0.5, allow_subnormal=False),
    r=st.floats(0.0, 0.3, allow_subnormal=False),
    seed=st.integers(0, 2**31),
    index=st.integers(0, 10**6),
)
def test_pglearn_factors_bounded(a: float, span: float, r: float, seed: int, index: int) -> None:
    s = PGLearnSampler(a, a + span, r)
    pd, _ = s.sample(CASE, seed, index)
    f = pd / CASE.pd
    assert np.all(f >= a * (1 - r) - 1e-12) and np.all(f <= (a + span) * (1 + r) + 1e-12)
    if r == 0:
        assert np.allclose(f, f[0])  # one global factor


def test_samples_depend_on_seed_and_index_only() -> None:
    s = BoxSampler()
    a = s.sample(CASE, 1, 5)[0]
    assert not np.array_equal(a, s.sample(CASE, 1, 6)[0])
    assert not np.array_equal(a, s.sample(CASE, 2, 5)[0])
    for _ in range(3):
        s.sample(CASE, 1, 99)
    assert np.array_equal(a, s.sample(CASE, 1, 5)[0])


def test_pglearn_global_factor_spreads() -> None:
    s = PGLearnSampler(0.8, 1.2, 0.0)
    totals = [s.sample(CASE, 0, i)[0].sum() / CASE.pd.sum() for i in range(200)]
    assert min(totals) < 0.85 and max(totals) > 1.15


def test_spec_parsing() -> None:
    assert sampler_from_spec("box:0.8,1.2") == BoxSampler(0.8, 1.2)
    assert sampler_from_spec("pglearn:0.8,1.2,0.1") == PGLearnSampler(0.8, 1.2, 0.1)
    assert sampler_from_spec("box") == BoxSampler()
    for s in (BoxSampler(0.7, 1.3), PGLearnSampler(0.9, 1.0, 0.05)):
        assert sampler_from_json(s.to_json()) == s
        assert json.loads(s.to_json())["kind"] == s.kind


@pytest.mark.parametrize(
    "spec",
    ["cube:1,2", "box:1", "box:1,2,3", "box:a,b", "box:1.2,0.8", "box:-1,1", "pglearn:1,2",
     "pglearn:1.2,0.8,0.1", "pglearn:0.8,1.2,2", "box:nan,1"],
)
def test_bad_specs_are_named_errors(spec: str) -> None:
    with pytest.raises(SamplerError) as info:
        sampler_from_spec(spec)
    assert isinstance(info.value, DatasetError)


def test_bad_json_attribute() -> None:
    with pytest.raises(SamplerError):
        sampler_from_json('{"kind": "box", "low": 1}')
    with pytest.raises(SamplerError):
        sampler_from_json("not json")
