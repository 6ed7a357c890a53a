"""Indexed row selections (``gridverify.bounds.selection``): the same bounds as the one-hot
spec matrix, with start matrices densified one row chunk at a time."""

from __future__ import annotations

import pytest
import torch
from engine_graphs import acopf_small, sample_box

from gridverify.bounds import BoundOptions, compute_bounds
from gridverify.bounds.relevance import relevant_entries
from gridverify.bounds.selection import OneHotRows, RowSelection, one_hot_start
from gridverify.errors import GridverifyError


def _box(g, seed=0):
    gen = torch.Generator().manual_seed(seed)
    c = torch.rand(g.input_size, generator=gen, dtype=torch.float64)
    return c - 0.3, c + 0.3


@pytest.mark.parametrize("method", ["ibp", "crown", "alpha-crown"])
@pytest.mark.parametrize("memory_mb", [512.0, 0.02])  # 0.02 MB: many row chunks, lazy starts
def test_selection_equals_one_hot_spec(method, memory_mb):
    g = acopf_small(1)
    lo, hi = _box(g)
    idx = torch.tensor([3, g.output_size - 1, 40, 3, 57, 0, 61, 62, 63, 64, 65, 66, 67])
    sel = RowSelection(idx, g.output_size)
    opts = BoundOptions(alpha_iterations=3, memory_mb=memory_mb)
    a = compute_bounds(g, lo, hi, method=method, spec=sel, options=opts)
    b = compute_bounds(g, lo, hi, method=method, spec=sel.dense(), options=opts)
    torch.testing.assert_close(a.lower, b.lower, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(a.upper, b.upper, rtol=1e-12, atol=1e-12)
    # sound on samples
    x = sample_box(lo[None], hi[None], 500)[0]
    y = g.evaluate_flat(x)[:, idx]
    assert bool((y <= a.upper + 1e-9).all()) and bool((y >= a.lower - 1e-9).all())


def test_no_spec_chunked_identity_matches_small_chunks():
    g = acopf_small(2)
    lo, hi = _box(g, 1)
    a = compute_bounds(g, lo, hi, method="crown")
    b = compute_bounds(g, lo, hi, method="crown", options=BoundOptions(memory_mb=0.02))
    torch.testing.assert_close(a.lower, b.lower, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(a.upper, b.upper, rtol=1e-12, atol=1e-12)


def test_relevance_of_selection_equals_dense():
    g = acopf_small(0)
    sel = RowSelection(torch.tensor([5, 44, 60]), g.output_size)
    a = relevant_entries(g, sel)
    b = relevant_entries(g, sel.dense())
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k])


def test_one_hot_rows_blocks():
    cols = torch.tensor([2, -1, 0, 4, 4])
    lazy = OneHotRows(cols, 5, torch.float64, torch.device("cpu"))
    assert lazy.shape == (5, 5) and lazy.dim() == 2
    full = lazy[..., 0:5, :]
    want = torch.zeros(5, 5, dtype=torch.float64)
    want[0, 2] = want[2, 0] = want[3, 4] = want[4, 4] = 1.0
    assert torch.equal(full, want)
    assert torch.equal(lazy[1:3], want[1:3])
    with pytest.raises(TypeError):
        lazy[[0, 1]]
    dense = one_hot_start(cols, 5, 10, torch.float64, torch.device("cpu"))
    assert isinstance(dense, torch.Tensor) and torch.equal(dense, want)
    assert isinstance(one_hot_start(cols, 5, 2, torch.float64, torch.device("cpu")), OneHotRows)


def test_selection_validation():
    with pytest.raises(GridverifyError, match="out of range"):
        RowSelection(torch.tensor([0, 7]), 5)
    with pytest.raises(GridverifyError, match="1-D integer"):
        RowSelection(torch.tensor([0.5]), 5)
    g = acopf_small(0)
    lo, hi = _box(g)
    with pytest.raises(GridverifyError, match="row selection over"):
        compute_bounds(g, lo, hi, spec=RowSelection(torch.tensor([0]), 3))


@pytest.mark.parametrize("method", ["crown", "alpha-crown"])
def test_lazy_identity_starts_of_intermediate_nodes(method):
    """Intermediate nodes wider than a chunk get lazy identity starts: same bounds."""
    g = acopf_small(3)
    lo, hi = _box(g, 2)
    sel = RowSelection(torch.arange(0, g.output_size, 3), g.output_size)
    # one alpha step: further steps amplify last-bit differences of the two paths'
    # matrix products (Adam on a nonsmooth bound), which is not what is tested here
    kw = {"alpha_iterations": 1, "intermediate": "alpha-crown" if method == "alpha-crown"
          else "crown"}
    a = compute_bounds(g, lo, hi, method=method, spec=sel, options=BoundOptions(**kw))
    b = compute_bounds(g, lo, hi, method=method, spec=sel,
                       options=BoundOptions(memory_mb=0.005, **kw))
    torch.testing.assert_close(a.lower, b.lower, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(a.upper, b.upper, rtol=1e-12, atol=1e-12)
