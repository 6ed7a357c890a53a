"""Searches of a constraint's rows, in this process or side by side in worker processes."""

from __future__ import annotations

import math
import os
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
            done |= pool.first_done([f for f in futs if f not in done])
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


def test_optimization_rows_search_down_to_the_constraints_worst_found() -> None:
    """In optimization mode a row's search ends once its bound is within the
    tolerance of the constraint's worst found (the floor) or of what the rows
    searched before attained: below it the row cannot lower the maximum."""
    from dataclasses import replace

    fn, graph, lo, hi, net = _net_graph()
    x = torch.from_numpy(np.random.default_rng(0).uniform(lo, hi, (20000, 4)))
    with torch.no_grad():
        true = net(x).numpy().max(0)
    free = run_search(fn, graph, lo, hi, _task([0], domains=10**6))
    (_, _, alone), = free.rows
    floor = float(true[0]) + 0.5 * (alone.upper_bound - true[0]) + 0.05
    task = replace(_task([0], domains=10**6), floor=floor)
    (_, _, capped), = run_search(fn, graph, lo, hi, task).rows
    assert true[0] <= capped.upper_bound <= floor + task.options.tolerance
    assert capped.domains_visited <= alone.domains_visited
    # the second row's search starts from what the first attained
    both = run_search(fn, graph, lo, hi, _task([0, 1], domains=10**6))
    first, second = both.rows[0][2], both.rows[1][2]
    assert second.upper_bound >= true[1] - 1e-12
    assert second.upper_bound - max(first.attained, second.attained) \
        <= task.options.tolerance + 1e-12 or second.reason != "gap"


def test_a_search_past_its_deadline_searches_no_further_row() -> None:
    """The run's deadline ends the search after the row under way (which gets the
    minimum time), and the outcome still carries that row's sound bound."""
    fn, graph, lo, hi, _ = _net_graph()
    t0 = time.time()
    out = run_search(fn, graph, lo, hi, _task([0, 1], deadline=t0 - 1.0, domains=10**6))
    assert [r for r, _, _ in out.rows] == [0]
    assert math.isfinite(out.rows[0][2].upper_bound)
    assert out.seconds < 30


def _bab_dying_in_workers(*args, **kw):
    """``bab_maximize`` in the test's process, a crash (``os._exit``) in any other."""
    from gridverify.bab import bab_maximize

    if str(os.getpid()) != os.environ.get("GRIDVERIFY_TEST_PARENT"):
        os._exit(3)
    return bab_maximize(*args, **kw)


def test_a_dead_worker_leaves_sound_bounds_and_the_rest_runs_here(tiny_mlp, check_sound,
                                                                monkeypatch) -> None:
    """Worker processes that die (out of memory, a crash) break the pool: their
    constraints keep the bounds of the stages before and say why, the certificate
    warns, and the other searches run in this process."""
    import importlib
    from dataclasses import replace

    from gridverify.certify import CertifyOptions, certify
    from gridverify.grid import load_compiled
    from gridverify.spec import box_region

    cm = importlib.import_module("gridverify.certify.certify")  # the module, not the function
    monkeypatch.setenv("GRIDVERIFY_TEST_PARENT", str(os.getpid()))
    monkeypatch.setattr(cm, "bab_entry", lambda: _bab_dying_in_workers)
    case = load_compiled("pglib_opf_case14_ieee")
    net = tiny_mlp(case, hidden=(8, 8), act="relu", seed=7, out_scale=3.0)
    opts = CertifyOptions(samples=16, attack="none", timeout=120.0, jobs=2,
                          bab=BabOptions(timeout=0.4, tolerance=1e-4))
    region = box_region(case, 0.7, 1.3)
    cert = certify(case, net, region, method="bab", constraints="p_balance", options=opts)
    check_sound(cert, case, net)
    died = [c for c in cert.constraints if c.reason == "bab worker died"]
    assert 1 <= len(died) <= 2
    assert any("worker process died" in w for w in cert.warnings)
    assert cert.provenance["bab"]  # the searches after the crash ran here
    before = certify(case, net, region, method="alpha-crown", constraints="p_balance",
                     options=replace(opts, jobs=1))
    ub0 = {(c.family, c.component): c.upper_bound for c in before.constraints}
    for c in died:
        assert c.upper_bound <= ub0[(c.family, c.component)] + 1e-12


def test_worker_searches_report_their_progress_to_the_parent() -> None:
    """A search in a worker process hands its bounds so far to the ``progress`` given at
    submit, in this process (an interrupted run keeps them); each reported bound holds."""
    fn, graph, lo, hi, net = _net_graph()
    seen: dict[int, list[dict]] = {0: [], 1: []}
    with SearchPool(fn, graph, lo, hi, jobs=2, threads=1) as pool:
        futs = [pool.submit(_task([r], domains=400), seen[r].append) for r in (0, 1)]
        done: set = set()
        while len(done) < 2:
            done |= pool.first_done([f for f in futs if f not in done])
        t0 = time.time()
        while not (seen[0] and seen[1]) and time.time() - t0 < 10:  # reports still in flight
            pool.relay()
            time.sleep(0.05)
    x = torch.from_numpy(np.random.default_rng(1).uniform(lo, hi, (20000, 4)))
    with torch.no_grad():
        y = net(x).numpy()
    for r in (0, 1):
        assert seen[r], f"no progress reported for row {r}"
        assert all(info["row"] == r for info in seen[r])
        assert all(y[:, r].max() <= info["bound"] for info in seen[r])
