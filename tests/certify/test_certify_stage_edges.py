"""Edges of comparing certificates, of the branch-and-bound stage's choices (which
constraint, which rows, what limits and reasons) and of the row searches."""

from __future__ import annotations

import dataclasses
import math
import time

import numpy as np
import pytest
import torch
from torch import nn

from gridverify.bab import BabOptions
from gridverify.bab.search import BabResult
from gridverify.certify import (
    CERTIFIED,
    OPEN,
    VIOLATED,
    CertifyOptions,
    bab_available,
    certify,
    compare_certificates,
)
from gridverify.certify.bab_stage import (
    CUT_SHORT,
    WORKER_DIED,
    _apply_search,
    _next_search,
    _row_search,
)
from gridverify.certify.searches import RowSearch, SearchOutcome, SearchPool, run_search
from gridverify.certify.state import Budget, State
from gridverify.errors import SpecError
from gridverify.grid import load_compiled
from gridverify.physics.acp import build_physics_graph
from gridverify.spec import box_region
from gridverify.spec.constraints import parse_constraints, select_constraints

_CASE5 = load_compiled("pglib_opf_case5_pjm")


def _mlp(case, seed=0, out_scale=0.05):
    torch.manual_seed(seed)
    sizes = [2 * case.n_load, 8, 8, 2 * case.n_gen + 2 * case.n_bus]
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b, dtype=torch.float64))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    net = nn.Sequential(*layers)
    with torch.no_grad():
        net[-1].weight.mul_(out_scale)
        net[-1].bias.copy_(torch.from_numpy(
            np.concatenate([case.pg0, case.qg0, case.vm0, case.va0])))
    return net.eval()


@pytest.fixture(scope="module")
def cert5():
    """A crown certificate of a tiny proxy of case5 (computed once)."""
    return certify(_CASE5, _mlp(_CASE5), box_region(_CASE5, 0.9, 1.1), method="crown",
                   options=CertifyOptions(samples=8, radius=False),
                   constraints="p_balance")


def _with(cert, changes, drop=()):
    rows = tuple(dataclasses.replace(c, **changes.get((c.family, c.component), {}))
                 for c in cert.constraints if (c.family, c.component) not in drop)
    return dataclasses.replace(cert, constraints=rows)


def _keys(cert, n):
    return [(c.family, c.component) for c in cert.constraints[:n]]


# ---------------------------------------------------------------- compare


def test_same_status_is_unchanged_and_delta_is_new_minus_old(cert5):
    k = _keys(cert5, 1)[0]
    c0 = cert5.constraints[0]
    old = _with(cert5, {k: {"status": OPEN}})
    new = _with(cert5, {k: {"status": OPEN, "upper_bound": c0.upper_bound + 2.0,
                            "attained": c0.attained - 0.5}})
    d = compare_certificates(old, new)
    ch = next(c for c in d.changes if (c.family, c.component) == k)
    assert ch.kind == "unchanged" and not d.regressed
    assert ch.delta("upper_bound") == pytest.approx(2.0)
    assert ch.delta("attained") == pytest.approx(-0.5)


def test_regressions_are_ordered_worst_new_then_best_old_then_largest_rise(cert5):
    k = _keys(cert5, 5)
    att = {key: c.attained for key, c in zip(k, cert5.constraints)}
    old = _with(cert5, {k[0]: {"status": CERTIFIED}, k[1]: {"status": OPEN},
                        k[2]: {"status": CERTIFIED}, k[3]: {"status": CERTIFIED},
                        k[4]: {"status": CERTIFIED}})
    new = _with(cert5, {k[0]: {"status": OPEN}, k[1]: {"status": VIOLATED},
                        k[2]: {"status": VIOLATED},
                        k[3]: {"status": OPEN, "attained": att[k[3]] + 1.0},
                        k[4]: {"status": OPEN, "attained": att[k[4]] + 3.0}})
    d = compare_certificates(old, new)
    reg = [(c.family, c.component) for c in d.of_kind("regression")]
    # violated now (certified before, then open before), then open now by largest rise
    assert reg == [k[2], k[1], k[4], k[3], k[0]]
    assert d.regressed


def test_only_a_certified_removed_constraint_is_lost(cert5):
    k = _keys(cert5, 3)
    old = _with(cert5, {k[0]: {"status": OPEN}, k[1]: {"status": CERTIFIED},
                        k[2]: {"status": VIOLATED}})
    same = _with(old, {})
    d = compare_certificates(old, _with(same, {}, drop={k[0], k[2]}))
    assert d.counts["removed"] == 2 and d.lost == [] and not d.regressed
    assert not any("lost certificates" in n for n in d.notes)
    assert any("2 only in the old" in n for n in d.notes)
    d = compare_certificates(old, _with(same, {}, drop={k[0], k[1], k[2]}))
    removed = [(c.family, c.component) for c in d.of_kind("removed")]
    assert removed[0] == k[1] and [(c.family, c.component) for c in d.lost] == [k[1]]
    assert d.regressed and d.to_dict()["regressed"] and d.to_dict()["lost"] == 1
    assert any("; 1 constraint(s) certified in the old" in n for n in d.notes)


def test_cases_with_other_contents_are_refused(cert5):
    prov = dict(cert5.provenance, case_hash="a" * 64)
    other = dataclasses.replace(cert5, provenance=dict(cert5.provenance, case_hash="b" * 64))
    with pytest.raises(SpecError, match="different contents"):
        compare_certificates(dataclasses.replace(cert5, provenance=prov), other)


def test_nested_regions_one_threshold_and_a_resumed_side_are_noted(cert5):
    k = _keys(cert5, 1)[0]
    thr = cert5.constraints[0].threshold
    new = dataclasses.replace(_with(cert5, {k: {"threshold": thr + 1.0}}),
                              region=box_region(_CASE5, 0.95, 1.05),
                              warnings=(*cert5.warnings, "resumed from checkpoint x.json"))
    d = compare_certificates(cert5, new)
    assert any(n.startswith("the regions differ") for n in d.notes), d.notes
    assert "1 constraint(s) have other thresholds" in d.notes
    assert "the new certificate was resumed from a checkpoint" in d.notes
    assert "the old certificate was resumed from a checkpoint" not in d.notes


# ---------------------------------------------------------------- bab stage


def _state(ub, att, thr=0.0, sel="p_balance[1,2,3]"):
    case = load_compiled("pglib_opf_case14_ieee")
    cons = select_constraints(case, parse_constraints(sel))
    ph = build_physics_graph(case, cons)
    k = len(cons)
    st = State(ph, np.full(k, thr, dtype=float), np.asarray(ub, float),
               np.asarray(att, float), np.zeros((k, 2 * case.n_load)), np.zeros(k))
    return case, st


def test_next_search_skips_busy_and_fully_searched_constraints():
    _, st = _state([1.0, 2.0, 4.0], [-1.0, -1.0, -1.0])
    shares = (1 / 16, 1 / 4, 1.0)
    searched = np.zeros(3, dtype=np.int64)
    assert _next_search(st, searched, shares) == 0
    busy = np.array([True, False, False])
    assert _next_search(st, searched, shares, busy) == 1
    searched[:] = [3, 3, 2]
    assert _next_search(st, searched, shares) == 2
    searched[2] = 3
    assert _next_search(st, searched, shares) is None


def test_row_search_in_decision_mode():
    _, st = _state([1.0, 1.0, 1.0], [-1.0, -1.0, -1.0], thr=0.5)
    own = np.flatnonzero(st.physics.row_constraint == 1)
    assert own.size == 2
    st.row_ub[own] = [1.0, 0.8]  # both above the threshold: the looser last
    opts = CertifyOptions(jobs=2, bab=BabOptions(timeout=1.0, memory_mb=1000.0))
    t0 = time.time()
    task = _row_search(st, 1, 0.5, True, opts, Budget(time.perf_counter(), 3600.0))
    assert task.rows == (int(own[1]), int(own[0]))
    assert task.threshold < 0.5 and task.stop_above == 0.5 and task.floor is None
    assert t0 + 3000 < task.deadline < t0 + 4000
    assert task.options.memory_mb == pytest.approx(500.0)
    st.row_ub[own[0]] = 0.4  # below the threshold: not searched
    task = _row_search(st, 1, 0.5, True, opts, Budget(time.perf_counter(), None))
    assert task.rows == (int(own[1]),) and task.deadline == math.inf


def test_row_search_in_optimization_mode_starts_from_the_worst_found():
    _, st = _state([1.0, 1.0, 1.0], [0.25, 0.25, 0.25], thr=0.5)
    own = np.flatnonzero(st.physics.row_constraint == 0)
    st.row_ub[own] = [1.0, 0.2]  # the second row is below the worst found
    task = _row_search(st, 0, None, False, CertifyOptions(), Budget(time.perf_counter(), None))
    assert task.rows == (int(own[0]),)
    assert task.threshold is None and task.stop_above is None and task.floor == 0.25


def _result(ub, att=-math.inf, reason="timeout", status=OPEN):
    return BabResult(upper_bound=ub, attained=att, witness=None, status=status,
                     domains_visited=3, seconds=0.1, reason=reason, open_domains=2,
                     branching="test", mode="decision", history=[])


def _apply(st, case, k, results, decide, final, budget):
    own = np.flatnonzero(st.physics.row_constraint == k)
    outcome = SearchOutcome([(int(r), time.time(), res) for r, res in zip(own, results)], 0.2)
    _apply_search(st, k, outcome, decide, final, case, _mlp(case), box_region(case, 0.9, 1.1),
                  CertifyOptions(), budget, [], time.time())


def test_a_search_never_loosens_a_bound_and_names_why_it_stopped():
    case, st = _state([1.0, 1.0, 1.0], [-1.0, -1.0, -1.0])
    st.row_ub[:] = 5.0
    live = Budget(time.perf_counter(), None)
    _apply(st, case, 0, [_result(2.0), _result(3.0)], True, True, live)
    assert st.ub[0] == 1.0  # the bound before stands
    assert st.reason[0] == "gap above tolerance" and st.stage[0] == "bab"
    spent = Budget(time.perf_counter() - 10.0, 1.0)
    _apply(st, case, 1, [_result(0.9), _result(0.7)], True, False, spent)
    assert st.reason[1] == CUT_SHORT and st.ub[1] < 1.0
    # a worker's death is forgotten once the constraint is searched again and settled
    st.reason[2] = WORKER_DIED
    _apply(st, case, 2, [_result(-0.5, reason="certified", status=CERTIFIED),
                         _result(-0.6, reason="certified", status=CERTIFIED)], True, True, live)
    assert st.reason[2] is None and st.ub[2] <= 0.0


def test_a_settled_constraint_gets_no_reason():
    case, st = _state([1.0, 1.0, 1.0], [-1.0, -1.0, -1.0])
    st.row_ub[:] = 5.0
    # certified by the bound, gap still above the tolerance
    _apply(st, case, 0, [_result(-0.2, att=-1.0), _result(-0.3, att=-1.0)], True, True,
           Budget(time.perf_counter(), None))
    assert st.ub[0] <= 0.0 and st.reason[0] is None


# ---------------------------------------------------------------- searches


@pytest.fixture(scope="module")
def net_graph():
    """A small fixed-seed relu network with two outputs, as a graph, and its box."""
    if not bab_available():
        pytest.skip("bab unavailable")
    from gridverify.bab import bab_maximize
    from gridverify.bounds import to_graph

    torch.manual_seed(3)
    net = nn.Sequential(nn.Linear(4, 12), nn.ReLU(), nn.Linear(12, 12), nn.ReLU(),
                        nn.Linear(12, 2)).double().eval()
    graph = to_graph(net, torch.zeros(4, dtype=torch.float64))
    out = bab_maximize, graph, -np.ones(4), np.ones(4)
    run_search(*out, _task([0]))  # warm up the search's imports
    return out


def _recording(fn, calls):
    """The real search, recording what each call was given."""
    def call(*args, options=None, **kw):
        calls.append({"timeout": options.timeout, **kw})
        return fn(*args, options=options, **kw)
    return call


def _task(rows, threshold=None, stop_above=None, seconds=None, deadline=math.inf, floor=None):
    return RowSearch(rows=tuple(rows), n_rows=2, threshold=threshold, seconds=seconds,
                     deadline=deadline, options=BabOptions(max_domains=4, attack_every=0),
                     stop_above=stop_above, floor=floor)


def test_rows_share_the_seconds_and_the_deadline_caps_them(net_graph):
    fn, graph, lo, hi = net_graph
    calls: list = []
    run_search(_recording(fn, calls), graph, lo, hi, _task([0, 1], seconds=100.0))
    assert calls[0]["timeout"] == pytest.approx(50.0, abs=1.0)
    assert calls[1]["timeout"] > 75.0  # all that the first left, not half of it
    calls.clear()
    run_search(_recording(fn, calls), graph, lo, hi,
               _task([0], seconds=1000.0, deadline=time.time() + 100.0))
    assert 50.0 < calls[0]["timeout"] <= 100.0


def test_rows_pass_on_the_worst_found_in_optimization_mode_only(net_graph):
    fn, graph, lo, hi = net_graph
    calls: list = []
    out = run_search(_recording(fn, calls), graph, lo, hi, _task([0, 1], floor=-50.0))
    first = out.rows[0][2]
    assert calls[0]["mode"] == "optimization" and calls[0]["floor"] == -50.0
    assert calls[1]["floor"] == pytest.approx(max(-50.0, first.attained))


def test_decision_rows_get_no_floor(net_graph):
    fn, graph, lo, hi = net_graph
    calls: list = []
    out = run_search(_recording(fn, calls), graph, lo, hi,
                     _task([0, 1], threshold=1e6, stop_above=1e6))
    assert [c["mode"] for c in calls] == ["decision", "decision"]
    assert all("floor" not in c for c in calls)
    assert [r for r, _, _ in out.rows] == [0, 1]


def test_search_progress_names_its_row_and_errors_reach_the_future(net_graph):
    fn, graph, lo, hi = net_graph
    seen: list = []
    run_search(fn, graph, lo, hi, _task([1]), progress=seen.append)
    assert seen and all(info["row"] == 1 for info in seen)
    with SearchPool(fn, graph, lo, hi, jobs=1, threads=1) as pool:
        fut = pool.submit(dataclasses.replace(_task([5])))
    with pytest.raises(IndexError):
        fut.result()


def test_a_threshold_alone_means_decision_mode(net_graph):
    fn, graph, lo, hi = net_graph
    calls: list = []
    run_search(_recording(fn, calls), graph, lo, hi, _task([0], threshold=1e6))
    assert calls[0]["mode"] == "decision" and calls[0]["threshold"] == 1e6


def test_after_a_dead_worker_the_rest_runs_in_this_process(net_graph):
    fn, graph, lo, hi = net_graph
    with SearchPool(fn, graph, lo, hi, jobs=2, threads=1) as pool:
        pool.run_here()
        assert pool.jobs == 1
        fut = pool.submit(_task([0]))
        assert fut.done() and math.isfinite(fut.result().rows[0][2].upper_bound)
