"""A search does not start a round its last round's time says would end past the timeout."""

from __future__ import annotations

import time

import torch

from gridverify.bab import BabOptions, bab_maximize
from gridverify.ir import GraphBuilder


def _relu_net(width: int = 64, depth: int = 3, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    b = GraphBuilder()
    h = b.input("x", 8)
    n = 8
    for _ in range(depth):
        w = torch.randn(width, n, generator=g, dtype=torch.float64) / n**0.5
        h = b.relu(b.linear(h, w))
        n = width
    b.output(b.linear(h, torch.randn(1, n, generator=g, dtype=torch.float64)), "y")
    return b.build()


def test_rounds_are_not_started_past_the_timeout(monkeypatch) -> None:
    """Each round made slow (0.6 s, as on a loaded machine): with a 1 s timeout, a
    second round (which would end near 1.25 s) is not started after the first."""
    import gridverify.bab.search as search

    real = search._Search.round
    rounds = []

    def slow_round(self) -> None:  # noqa: ANN001
        rounds.append(1)
        time.sleep(0.6)
        real(self)

    monkeypatch.setattr(search._Search, "round", slow_round)
    r = bab_maximize(_relu_net(), [-1.0] * 8, [1.0] * 8, [1.0],
                     options=BabOptions(timeout=1.0), mode="optimization")
    assert r.reason == "timeout" and r.status == "open"
    assert len(rounds) <= 1, len(rounds)


def test_attacks_stop_at_the_search_deadline(monkeypatch) -> None:
    """The root attack gets at most a quarter of the search's time, the attacks in
    the search at most what is left: a short search is not spent attacking (a
    0.5 s search took 0.8 s in its root attack)."""
    import gridverify.attack as attack

    real = attack.falsify
    calls: list[tuple[float, float | None]] = []

    def spy(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        calls.append((time.monotonic(), kwargs.get("deadline")))
        return real(*args, **kwargs)

    monkeypatch.setattr(attack, "falsify", spy)
    timeout = 2.0
    net, opts = _relu_net(), BabOptions(timeout=timeout, attack_every=1)
    start = time.monotonic()  # the search's clock starts after its arguments are built
    bab_maximize(net, [-1.0] * 8, [1.0] * 8, [1.0], options=opts, mode="optimization")
    assert len(calls) >= 2
    t_root, d_root = calls[0]
    assert d_root is not None and d_root <= t_root + 0.25 * timeout + 1e-6
    for t_call, d in calls[1:]:  # past the timeout (a slow round), at once
        assert d is not None and d <= max(start + timeout, t_call) + 1e-3


def test_root_alpha_optimization_stops_at_the_search_deadline() -> None:
    """Alpha steps at the root stop at the search's deadline (an alpha-CROWN root bound
    on a loaded machine ran 6-10 s of a 4.6 s search): the search ends near its
    timeout, its bound still sound (above every sampled value)."""
    g = _relu_net(width=128, depth=4)
    opts = BabOptions(timeout=1.0, root_alpha_iterations=5_000)
    start = time.monotonic()
    r = bab_maximize(g, [-1.0] * 8, [1.0] * 8, [1.0], options=opts, mode="optimization")
    took = time.monotonic() - start
    assert took < 6.0 and r.reason == "timeout", (took, r.reason)
    xs = torch.rand(4096, 8, dtype=torch.float64) * 2 - 1
    assert r.upper_bound >= float(g.evaluate_flat(xs).max())


def test_an_optimization_past_its_deadline_keeps_one_step_and_crown() -> None:
    """A deadline already past: one alpha step, bounds never looser than CROWN's and
    equal to those of a single iteration."""
    from gridverify.bounds.domains import bound_domains

    g = _relu_net(width=32, depth=2)
    lo = torch.full((3, 8), -1.0, dtype=torch.float64)
    hi = torch.full((3, 8), 1.0, dtype=torch.float64)
    spec = torch.ones(1, 1, dtype=torch.float64)
    crown = bound_domains(g, lo, hi, None, spec, want_coef=False).upper
    late = bound_domains(g, lo, hi, None, spec, method="alpha-crown", alpha_iterations=500,
                         want_coef=False, deadline=0.0).upper
    one = bound_domains(g, lo, hi, None, spec, method="alpha-crown", alpha_iterations=1,
                        want_coef=False).upper
    assert torch.all(late <= crown) and torch.equal(late, one)
