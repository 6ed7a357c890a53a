"""Fixtures for certification tests: tiny real proxies and the sampling-soundness check."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from gridverify.certify import evaluate_violations
from gridverify.spec.constraints import Constraint

_ACTS = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "gelu": nn.GELU}


def make_tiny_mlp(case, hidden=(8, 8), act="relu", seed=0, out_scale=0.05) -> nn.Sequential:
    """A fixed-seed float64 MLP following the proxy convention.

    Its output is the case's start point (pg0, qg0, vm0, va0) plus a small
    load-dependent term, so it behaves like a (poor) proxy; soundness must hold
    for every network anyway.
    """
    torch.manual_seed(seed)
    sizes = [2 * case.n_load, *hidden, 2 * case.n_gen + 2 * case.n_bus]
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b, dtype=torch.float64))
        if i < len(sizes) - 2:
            layers.append(_ACTS[act]())
    net = nn.Sequential(*layers)
    with torch.no_grad():
        net[-1].weight.mul_(out_scale)
        y0 = np.concatenate([case.pg0, case.qg0, case.vm0, case.va0])
        net[-1].bias.copy_(torch.from_numpy(y0))
    return net.eval()


def sampled_max(case, module, constraints, region, n=100_000, seed=123) -> np.ndarray:
    """Max violation per constraint over ``n`` uniform loads of the region (plus the
    corners of its search box: the box's, or a factor region's extreme factors)."""
    rng = np.random.default_rng(seed)
    space = region.search_box()
    x = np.concatenate([region.sample(n, rng), region.to_loads(space.lower),
                        region.to_loads(space.upper)])
    return evaluate_violations(case, module, constraints, x, batch=20000).max(axis=0)


def assert_sound(cert, case, module, n=100_000) -> None:
    """No sampled load exceeds any certified upper bound; attained <= upper bound."""
    cons = [Constraint(c.family, c.component, c.index) for c in cert.constraints]
    ub = np.array([c.upper_bound for c in cert.constraints])
    att = np.array([c.attained for c in cert.constraints])
    smax = sampled_max(case, module, cons, cert.region, n=n)
    bad = np.flatnonzero(smax > ub)
    assert bad.size == 0, [(cons[i], smax[i], ub[i]) for i in bad[:5]]
    assert np.all(att <= ub), "attained above the sound upper bound"


@pytest.fixture
def tiny_mlp():
    return make_tiny_mlp


@pytest.fixture
def check_sound():
    return assert_sound


@pytest.fixture(autouse=True)
def _one_torch_thread(one_torch_thread):
    """Every certify test runs with one torch thread (see ``tests/conftest.py``)."""
