"""Searches of a constraint's rows, in this process or side by side in worker processes."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
import torch
from torch import nn

from gridverify.bab import BabOptions
from gridverify.certify import bab_available
from gridverify.certify.searches import RowSearch, SearchPool, run_search

pytestmark = pytest.mark.skipif(not bab_available(), reason="bab unavailable")


def _net_graph():
    """A small fixed-seed relu network with two outputs, as a graph, and its box."""
    from gridverify.bab import bab_maximize
    from gridverify.bounds import to_graph

    torch.manual_seed(3)
    net = nn.Sequential(nn.Linear(4, 12), nn.ReLU(), nn.Linear(12, 12), nn.ReLU(),
                        nn.Linear(12, 2)).double().eval()
    graph = to_graph(net, torch.zeros(4, dtype=torch.float64))
    return bab_maximize, graph, -np.ones(4), np.ones(4), net


def _task(rows, threshold=None, stop_above=None, deadline=math.inf, domains=40):
    opts = BabOptions(timeout=None, max_domains=domains, attack_every=0)
    return RowSearch(rows=tuple(rows), n_rows=2, threshold=threshold, seconds=None,
                     deadline=deadline, options=opts, stop_above=stop_above)


def test_worker_processes_give_the_searches_of_this_process() -> None:
    """Two searches side by side in worker processes return exactly what the same
    searches return here (same rows, same bounds, same points), and the bounds hold
    on sampled inputs."""
    fn, graph, lo, hi, net = _net_graph()
    tasks = [_task([0]), _task([1, 0])]
    with SearchPool(fn, graph, lo, hi, jobs=1, threads=1) as here:
        local = [here.submit(t).result() for t in tasks]
    with SearchPool(fn, graph, lo, hi, jobs=2, threads=1) as pool:
        futs = [pool.submit(t) for t in tasks]
        done: set = set()
        while len(done) < 2:
            done |= SearchPool.first_done([f for f in futs if f not in done])
        remote = [f.result() for f in futs]
    x = torch.from_numpy(np.random.default_rng(0).uniform(lo, hi, (20000, 4)))
    with torch.no_grad():
        y = net(x).numpy()
    for a, b in zip(local, remote):
        assert [r for r, _, _ in a.rows] == [r for r, _, _ in b.rows]
        for (r, _, ra), (_, _, rb) in zip(a.rows, b.rows):
            assert ra.upper_bound == rb.upper_bound and ra.attained == rb.attained
            assert ra.domains_visited == rb.domains_visited
            assert y[:, r].max() <= ra.upper_bound
    assert [r for r, _, _ in local[1].rows] == [1, 0]


def test_a_decision_search_stops_at_the_first_violated_row() -> None:
    """``stop_above``: once a row attains more, the constraint is violated and its
    other rows are not searched; without it every row is."""
    fn, graph, lo, hi, _ = _net_graph()
    out = run_search(fn, graph, lo, hi, _task([0, 1], threshold=-1e6, stop_above=-1e6))
    assert [r for r, _, _ in out.rows] == [0]
    out = run_search(fn, graph, lo, hi, _task([0, 1], threshold=-1e6))
    assert [r for r, _, _ in out.rows] == [0, 1]


def test_a_search_past_its_deadline_searches_no_further_row() -> None:
    """The run's deadline ends the search after the row under way (which gets the
    minimum time), and the outcome still carries that row's sound bound."""
    fn, graph, lo, hi, _ = _net_graph()
    t0 = time.time()
    out = run_search(fn, graph, lo, hi, _task([0, 1], deadline=t0 - 1.0, domains=10**6))
    assert [r for r, _, _ in out.rows] == [0]
    assert math.isfinite(out.rows[0][2].upper_bound)
    assert out.seconds < 30
