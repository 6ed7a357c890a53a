"""``relu_stability``: unstable relus over a box, counted from the intermediate bounds."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gridverify.bounds import relu_stability


def test_exact_count_on_a_known_layer():
    # box [0, 1]^2: pre-activations x0 - 0.5 in [-0.5, 0.5] (unstable), x1 + 0.5 in
    # [0.5, 1.5] (active), x0 + x1 - 3 in [-3, -1] (inactive)
    lin = nn.Linear(2, 3, dtype=torch.float64)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]))
        lin.bias.copy_(torch.tensor([-0.5, 0.5, -3.0]))
    net = nn.Sequential(lin, nn.ReLU(), nn.Linear(3, 1, dtype=torch.float64))
    lo, hi = torch.zeros(2, dtype=torch.float64), torch.ones(2, dtype=torch.float64)
    for method in ("ibp", "crown", "alpha-crown"):
        assert relu_stability(net, lo, hi, method=method) == (1, 3)


def test_no_relu_counts_nothing():
    net = nn.Sequential(nn.Linear(3, 4, dtype=torch.float64), nn.Tanh())
    lo = -torch.ones(3, dtype=torch.float64)
    assert relu_stability(net, lo, -lo) == (0, 0)


@pytest.mark.parametrize("seed", range(5))
def test_every_relu_seen_with_both_signs_is_counted(seed):
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(4, 12), nn.ReLU(), nn.Linear(12, 12), nn.ReLU(),
                        nn.Linear(12, 2)).double()
    lo = torch.randn(4, dtype=torch.float64)
    hi = lo + 0.5 * torch.rand(4, dtype=torch.float64)
    x = lo + (hi - lo) * torch.rand(20_000, 4, dtype=torch.float64)
    with torch.no_grad():
        z1 = net[0](x)
        z2 = net[2](torch.relu(z1))
    both = sum(int(((z.min(0).values < 0) & (z.max(0).values > 0)).sum()) for z in (z1, z2))
    ibp = relu_stability(net, lo, hi, method="ibp")
    crown = relu_stability(net, lo, hi)
    assert ibp[1] == crown[1] == 24
    assert both <= crown[0] and both <= ibp[0]  # sound with either bound method
