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
