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
    start = time.monotonic()
    timeout = 2.0
    bab_maximize(_relu_net(), [-1.0] * 8, [1.0] * 8, [1.0],
                 options=BabOptions(timeout=timeout, attack_every=1), mode="optimization")
    assert len(calls) >= 2
    t_root, d_root = calls[0]
    assert d_root is not None and d_root <= t_root + 0.25 * timeout + 1e-6
    for _, d in calls[1:]:
        assert d is not None and d <= start + timeout + 1e-3
