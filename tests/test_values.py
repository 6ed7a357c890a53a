"""Value equality of the frozen dataclasses that hold arrays (cases, regions)."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, replace

import numpy as np
import pytest
import scipy.sparse as sp

from gridverify._values import ArrayValueEq, same_value
from gridverify.grid import load_case, load_compiled
from gridverify.spec import box_region


@dataclass(frozen=True, eq=False)
class _Holder(ArrayValueEq):
    a: np.ndarray
    rest: dict


def test_same_value_compares_arrays_sparse_and_containers_by_value():
    x = np.array([1.0, math.nan])
    assert same_value(x, x.copy()) and not same_value(x, np.array([1.0, 2.0]))
    assert not same_value(x, x.reshape(2, 1)) and not same_value(x, [1.0, math.nan])
    m = sp.csr_matrix(np.eye(3))
    assert same_value(m, sp.csr_matrix(np.eye(3)))
    assert not same_value(m, sp.csr_matrix(2 * np.eye(3)))
    assert not same_value(m, np.eye(3))
    assert same_value(math.nan, float("nan")) and not same_value(1.0, 2.0)
    assert same_value({"k": [x]}, {"k": [x.copy()]}) and not same_value((1,), [1])
    h = _Holder(np.arange(3), {"b": np.ones(2)})
    assert h == _Holder(np.arange(3), {"b": np.ones(2)}) and h in [h]
    assert h != _Holder(np.arange(3), {"b": np.zeros(2)})
    assert (h == 3) is False  # another type: NotImplemented, then identity
    with pytest.raises(TypeError, match="unhashable"):
        hash(h)


def test_cases_and_regions_compare_by_value_and_print_short():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        raw, raw2 = load_case("pglib_opf_case14_ieee"), load_case("pglib_opf_case14_ieee")
        c14, c14b = load_compiled("pglib_opf_case14_ieee"), load_compiled("pglib_opf_case14_ieee")
        c5 = load_compiled("pglib_opf_case5_pjm")
    assert raw == raw2 and raw in [raw2]
    assert raw != replace(raw, base_mva=50.0)
    assert c14 == c14b and hash(c14) == hash(c14b) and c14 != c5 and len({c14, c14b, c5}) == 2
    assert c14 != replace(c14, content_hash="0" * 64)
    assert repr(c14).startswith("CompiledCase(name='pglib_opf_case14_ieee', buses=14")
    assert len(repr(c14)) < 200 and len(repr(raw)) < 300
    r = box_region(c14, 0.9, 1.1)
    assert r == box_region(c14, 0.9, 1.1) and r in [box_region(c14, 0.9, 1.1)]
    assert r != box_region(c14, 0.9, 1.2)
    with pytest.raises(TypeError, match="unhashable"):
        hash(r)
