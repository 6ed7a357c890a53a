"""The memory guard (``--memory-cap``): stages sized to the cap, cheaper fallbacks, open
constraints with a reason, or one line and exit status 2; never an OS kill."""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pytest

from gridverify.bounds import BoundOptions
from gridverify.bounds.memory import estimate_mb, fit_options, min_memory_mb
from gridverify.certify import CertifyOptions, certify
from gridverify.certify.certify import _fit_stage, proxy_graph
from gridverify.certify.memory import MemoryBudget, MemoryCapError, resident_mb
from gridverify.cli import main
from gridverify.grid import load_compiled
from gridverify.physics.acp import build_physics_graph, compose_with_proxy
from gridverify.proxy.load import load_proxy
from gridverify.spec.constraints import (
    ConstraintSelection,
    parse_constraints,
    select_constraints,
)

CASE300 = "pglib_opf_case300_ieee"


@pytest.fixture(scope="module")
def case300():
    case = load_compiled(CASE300)
    return case, load_proxy("models/case300_relu", case=case)


@dataclass(frozen=True)
class _Left(MemoryBudget):
    """A budget with a fixed amount left (the real one reads this process's RSS)."""

    fixed_left: float = 0.0

    def left(self) -> float:
        return self.fixed_left


def test_cli_tiny_memory_cap_on_case300_is_one_line_exit_2():
    # a fresh process: in this one, earlier tests may have loaded what the run needs
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "gridverify", "certify", CASE300, "--model",
                        "models/case300_relu", "--method", "crown", "--memory-cap", "0.01",
                        "--samples", "0", "--attack", "none", "--quiet"],
                       capture_output=True, text=True, timeout=600)
    code, err = r.returncode, r.stderr.strip()
    assert code == 2
    assert err.count("\n") == 0 and "Traceback" not in err
    assert err.startswith("gridverify: error: memory cap 0.01 MB (--memory-cap) used up before")


@pytest.mark.slow  # 35 s; the chunking itself: test_small_cap_on_case300_chunks_to_the_same_bounds
def test_cli_small_memory_cap_on_case300_completes(capsys):
    code = main(["certify", CASE300, "--model", "models/case300_relu", "--method", "crown",
                 "--memory-cap", "48", "--samples", "16", "--constraints",
                 "thermal_fr,vm_max", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code in (0, 1, 3)
    assert all(c["attained"] <= c["upper_bound"] for c in out["constraints"])


def test_cli_memory_cap_must_be_positive(capsys):
    code = main(["certify", "pglib_opf_case14_ieee", "--model", "models/case14_relu",
                 "--memory-cap", "-1"])
    assert code == 2 and "--memory-cap: must be > 0" in capsys.readouterr().err


def test_small_cap_on_case300_chunks_to_the_same_bounds(case300):
    case, proxy = case300
    cons = "thermal_fr,p_balance"
    base = CertifyOptions(samples=8, attack="none")
    free = certify(case, proxy, constraints=cons, method="crown", options=base)
    graph = compose_with_proxy(
        build_physics_graph(case, select_constraints(case, parse_constraints(cons))),
        proxy_graph(proxy))
    rows = graph.output_size
    est = estimate_mb(graph, "crown", rows, BoundOptions())
    # room for chunks of ~1/8 of the default size only
    cap = 200.0 + est.fixed + est.per_chunk_mb * 64.0
    capped = certify(case, proxy, constraints=cons, method="crown",
                     options=CertifyOptions(samples=8, attack="none", memory_cap_mb=cap))
    ub_free = np.array([c.upper_bound for c in free.constraints])
    ub_cap = np.array([c.upper_bound for c in capped.constraints])
    np.testing.assert_allclose(ub_cap, ub_free, rtol=1e-9, atol=1e-9)
    assert not capped.warnings


def test_fit_stage_shrinks_then_falls_back_then_leaves_open(case300):
    case, proxy = case300
    cons = select_constraints(case, ConstraintSelection())
    graph = compose_with_proxy(build_physics_graph(case, cons), proxy_graph(proxy))
    m = graph.output_size
    opts = BoundOptions()
    crown = estimate_mb(graph, "crown", m, opts)
    ibp = estimate_mb(graph, "ibp", m, opts)
    assert crown.total > ibp.total > 0
    floor = min_memory_mb(graph)
    # 1. plenty: unchanged
    notes: list[str] = []
    meth, o = _fit_stage(graph, "crown", m, opts, _Left(1e9, "t", fixed_left=1e9), notes)
    assert (meth, o) == ("crown", opts) and not notes
    # 2. smaller chunks
    left = crown.at(10 * floor)
    meth, o = _fit_stage(graph, "crown", m, opts, _Left(left, "t", fixed_left=left), notes)
    assert meth == "crown" and floor <= o.memory_mb < opts.memory_mb and not notes
    assert estimate_mb(graph, "crown", m, o).total <= left + 1e-9
    # 3. crown does not fit at all: ibp, with a note
    left = (ibp.total + crown.fixed) / 2
    assert fit_options(graph, "crown", m, opts, left) is None
    meth, o = _fit_stage(graph, "crown", m, opts, _Left(left, "t", fixed_left=left), notes)
    assert meth == "ibp" and len(notes) == 1 and "ran ibp" in notes[0]
    # 4. not even ibp: skipped, rows left open, with the reason
    notes.clear()
    tiny = _Left(1.0, "t", fixed_left=ibp.total / 2)
    assert _fit_stage(graph, "ibp", m, opts, tiny, notes) is None
    assert "left open" in notes[0]
    # alpha-crown first drops its alpha intermediate bounds, then is skipped
    aopts = BoundOptions(intermediate="alpha-crown")
    alpha = estimate_mb(graph, "alpha-crown", m, aopts)
    assert alpha.total > crown.total
    notes.clear()
    tiny = _Left(1.0, "t", fixed_left=0.5)
    assert _fit_stage(graph, "alpha-crown", m, aopts, tiny, notes) is None
    assert "keep their CROWN bounds" in notes[0]


def test_stage_left_open_says_why(case300, monkeypatch):
    case, proxy = case300
    monkeypatch.setattr(MemoryBudget, "left", lambda self: 0.01)
    cert = certify(case, proxy, constraints="vm_max[1,2,3]", method="crown",
                   options=CertifyOptions(samples=0, attack="all"))
    assert all(c.status != "certified" for c in cert.constraints)
    assert any("left open" in w for w in cert.warnings)
    assert any("no room" in w or "skipped" in w for w in cert.warnings)


def test_budget_resolve_and_check():
    b = MemoryBudget.resolve(None)
    assert b.source == "default" and b.cap_mb > 0 and b.left() > 0
    with pytest.raises(MemoryCapError, match="raise --memory-cap"):
        MemoryBudget(1.0, "x", 0.0).check_start("sampling")
    assert MemoryBudget(10.0, "x", resident_mb()).batch(2**20, 100) <= 10
    assert MemoryBudget(1.0, "x", 0.0).batch(1.0, 100) == 0


def test_attack_sized_to_the_memory_left(case300):
    """Points per evaluation and objectives per search shrink with the memory left; with
    no room for one objective's starts the attack is skipped (None)."""
    from gridverify.attack import objective_bytes
    from gridverify.certify.certify import _attack_sizes, _point_bytes

    case, proxy = case300
    cons = select_constraints(case, parse_constraints("thermal_fr"))
    graph = compose_with_proxy(build_physics_graph(case, cons), proxy_graph(proxy))
    R = 24
    roomy = _attack_sizes(_Left(1e9, "x", 0.0, fixed_left=1e9), graph, R)
    assert roomy is not None and roomy[0] == 4096 and roomy[1] > 10**5
    point_mb = 3.0 * _point_bytes(graph) / 2**20
    obj_mb = objective_bytes(graph.input_size, R) / 2**20
    left = 2.0 * R * point_mb + 2.0 * 3 * obj_mb  # room for R points and a few objectives
    small = _attack_sizes(_Left(left, "x", 0.0, fixed_left=left), graph, R)
    assert small is not None and R <= small[0] < 4096 and 1 <= small[1] < roomy[1]
    # what the attack is given fits what is left: half for points, half for objectives
    assert small[0] * point_mb <= left / 2 + 1e-9 and small[1] * obj_mb <= left / 2 + 1e-9
    tiny = 0.5 * 2.0 * R * point_mb
    assert _attack_sizes(_Left(tiny, "x", 0.0, fixed_left=tiny), graph, R) is None


def test_radius_passes_skipped_for_memory_are_one_note(monkeypatch):
    """With no memory left every radius pass is skipped: one note says so (it used to
    repeat the stage's note once per pass, as if constraints were left open)."""
    case = load_compiled("pglib_opf_case14_ieee")
    proxy = load_proxy("case14_relu", case=case)
    monkeypatch.setattr(MemoryBudget, "left", lambda self: 0.01)
    cert = certify(case, proxy, constraints="p_balance[1,2,3],vm_max[1,2]", method="crown",
                   options=CertifyOptions(samples=64, attack="none"))
    radius = [w for w in cert.warnings if w.startswith("radius stage:")]
    assert len(radius) == 1 and "have no radius" in radius[0], cert.warnings
    assert len(cert.warnings) == len(set(cert.warnings))


def test_memory_figures_in_messages_are_never_negative_nor_rounded_to_zero():
    from gridverify.certify.memory import mb_text

    assert [mb_text(x) for x in (-3.2, 0.0, 0.0001, 0.5, 1.4, 480.6)] == [
        "0", "0", "0.0001", "0.5", "1", "481"]


def test_memory_a_run_freed_is_not_counted_as_used():
    """What the guard counts comes back down when a run frees what it allocated, small
    pieces included (the allocator keeps their pages unless handed back: the same
    run's figure drifted by tens of MB and a cap passed or failed by chance)."""
    import gc

    import numpy as np

    budget = MemoryBudget.resolve(1000.0)
    pieces = [np.ones(100) for _ in range(200_000)]  # ~170 MB in 800-byte pieces
    held = budget.used()
    del pieces
    gc.collect()
    assert held > 120
    assert budget.used() < 20, held
