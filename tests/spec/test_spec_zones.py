"""Zones of a grid: connected groups of buses with about equal load counts."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from gridverify.errors import SpecError
from gridverify.grid import load_compiled
from gridverify.spec.zones import bus_zones, load_zones

CASES = ["pglib_opf_case14_ieee", "pglib_opf_case57_ieee", "pglib_opf_case118_ieee",
         "pglib_opf_case300_ieee"]


def _connected(case, buses: np.ndarray) -> bool:
    """Whether ``buses`` induce a connected subgraph of the case's network."""
    n = case.n_bus
    adj = coo_matrix((np.ones(case.f_bus.size), (case.f_bus, case.t_bus)), shape=(n, n)).tocsr()
    sub = adj[buses][:, buses]
    return connected_components(sub, directed=False)[0] == 1


@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("k", [1, 2, 5, 8])
def test_zones_cover_every_bus_are_connected_and_hold_loads(name: str, k: int) -> None:
    case = load_compiled(name, emit_warnings=False)
    zb = bus_zones(case, k)
    assert zb.shape == (case.n_bus,) and zb.min() == 0 and zb.max() == k - 1
    zl = load_zones(case, k)
    np.testing.assert_array_equal(zl, zb[case.load_bus])
    counts = np.bincount(zl, minlength=k)
    assert (counts >= 1).all()
    for z in range(k):
        assert _connected(case, np.flatnonzero(zb == z)), (name, k, z)
    # about equal load counts on these meshed grids (grown together, smallest first)
    if k > 1 and case.n_load >= 40:
        assert counts.max() <= 3 * counts.min(), counts
    # deterministic
    np.testing.assert_array_equal(bus_zones(case, k), zb)


def test_one_zone_per_load_and_bad_counts() -> None:
    case = load_compiled("pglib_opf_case14_ieee", emit_warnings=False)
    zl = load_zones(case, case.n_load)
    assert sorted(zl.tolist()) == list(range(case.n_load))
    for k in (0, case.n_load + 1):
        with pytest.raises(SpecError, match="zones: k="):
            bus_zones(case, k)
